/* File freshness anchor (vdisk_host): a counter and a random id in a
 * 48-byte file (image_format.h "anchor file", docs/FORMAT.md §15),
 * replaced atomically: temporary file in the same directory, fsync, rename
 * over the anchor, fsync of the directory. The id is the file's identity
 * (R7); a version-1 file (no id) gets one at its next advance. Callbacks
 * return 0 or a negative errno. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "endian.h"
#include "image_format.h"
#include "vdisk/anchor.h"

typedef struct file_anchor {
    vd_anchor a; /* first: the vd_anchor handed out is this struct */
    char *path;
    char *dir;     /* directory of path, for the temporary file and fsync */
    char *tmpl;    /* mkostemp template: dir/.name.XXXXXX */
    uint64_t seen; /* highest value read or written through this handle */
    uint8_t id[AF_ID_BYTES];
    int has_id;    /* 0: a version-1 file, not yet upgraded */
} file_anchor;

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

static void af_encode(uint64_t v, const uint8_t id[AF_ID_BYTES], uint8_t out[AF_BYTES])
{
    memset(out, 0, AF_BYTES);
    memcpy(out + AF_OFF_MAGIC, AF_MAGIC, 8);
    vd_put_le32(out + AF_OFF_VERSION, AF_VERSION);
    vd_put_le64(out + AF_OFF_COUNTER, v);
    memcpy(out + AF_OFF_ID, id, AF_ID_BYTES);
    vd_put_le64(out + AF_OFF_CHECKSUM, XXH64(out, AF_OFF_CHECKSUM, 0));
}

/* A valid record of either version: 1 (and *v, id, *has_id), else 0. */
static int af_decode(const uint8_t *buf, size_t got, uint64_t *v,
                     uint8_t id[AF_ID_BYTES], int *has_id)
{
    if (got < AF_V1_BYTES || memcmp(buf + AF_OFF_MAGIC, AF_MAGIC, 8) != 0 ||
        vd_get_le32(buf + AF_OFF_RESERVED) != 0)
        return 0;
    uint32_t ver = vd_get_le32(buf + AF_OFF_VERSION);
    if (ver == 1) {
        if (got != AF_V1_BYTES ||
            vd_get_le64(buf + AF_V1_OFF_CHECKSUM) != XXH64(buf, AF_V1_OFF_CHECKSUM, 0))
            return 0;
        *has_id = 0;
    } else if (ver == AF_VERSION) {
        if (got != AF_BYTES ||
            vd_get_le64(buf + AF_OFF_CHECKSUM) != XXH64(buf, AF_OFF_CHECKSUM, 0))
            return 0;
        memcpy(id, buf + AF_OFF_ID, AF_ID_BYTES);
        *has_id = 1;
    } else {
        return 0;
    }
    *v = vd_get_le64(buf + AF_OFF_COUNTER);
    return 1;
}

/* Read and check the file: 0 and *v (fa->id / has_id updated), -EBADMSG
 * for anything but a valid record, or the errno of a failed call. */
static int af_load(file_anchor *fa, uint64_t *v)
{
    uint8_t buf[AF_BYTES + 1];
    size_t got = 0;
    int fd;
    do
        fd = open(fa->path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return neg_errno();
    while (got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int rc = neg_errno();
            (void)close(fd);
            return rc;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    (void)close(fd); /* read-only: nothing to lose */
    uint8_t id[AF_ID_BYTES];
    int has_id = 0;
    if (!af_decode(buf, got, v, id, &has_id))
        return -EBADMSG;
    fa->has_id = has_id;
    if (has_id)
        memcpy(fa->id, id, AF_ID_BYTES);
    return 0;
}

/* A fresh random id for a new (or upgraded) file. */
static int af_new_id(file_anchor *fa)
{
    size_t got = 0;
    while (got < AF_ID_BYTES) {
        ssize_t r = getrandom(fa->id + got, AF_ID_BYTES - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return neg_errno();
        got += (size_t)r;
    }
    fa->has_id = 1;
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd;
    do
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return neg_errno();
    int rc = 0;
    while (fsync(fd) != 0) {
        if (errno == EINTR)
            continue;
        /* EINVAL: this file system cannot sync directories at all. */
        if (errno != EINVAL)
            rc = neg_errno();
        break;
    }
    if (close(fd) != 0 && rc == 0 && errno != EINTR)
        rc = neg_errno();
    return rc;
}

/* Write value durably. noreplace: create the file only if it does not
 * exist (-EEXIST otherwise), else replace it atomically. */
static int af_store(const file_anchor *fa, uint64_t v, int noreplace)
{
    uint8_t buf[AF_BYTES];
    size_t len = strlen(fa->tmpl);
    char *tmp = malloc(len + 1);
    if (!tmp)
        return -ENOMEM;
    memcpy(tmp, fa->tmpl, len + 1);
    int fd = mkostemp(tmp, O_CLOEXEC); /* O_EXCL, mode 0600 */
    if (fd < 0) {
        int rc = neg_errno();
        free(tmp);
        return rc;
    }
    af_encode(v, fa->id, buf);
    int rc = 0;
    size_t put = 0;
    while (rc == 0 && put < sizeof buf) {
        ssize_t w = write(fd, buf + put, sizeof buf - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = w < 0 ? neg_errno() : -EIO;
        else
            put += (size_t)w;
    }
    while (rc == 0 && fsync(fd) != 0)
        if (errno != EINTR)
            rc = neg_errno();
    if (close(fd) != 0 && rc == 0 && errno != EINTR)
        rc = neg_errno();
    if (rc == 0) {
        if (noreplace) {
            /* link() never replaces an existing name. */
            if (link(tmp, fa->path) != 0)
                rc = neg_errno();
        } else if (rename(tmp, fa->path) != 0) {
            rc = neg_errno();
        }
    }
    if (noreplace || rc != 0)
        (void)unlink(tmp); /* the temporary name; the anchor is untouched */
    free(tmp);
    if (rc == 0)
        rc = fsync_dir(fa->dir);
    return rc;
}

static int af_read(void *ctx, uint64_t *value)
{
    file_anchor *fa = ctx;
    uint64_t v;
    if (!fa || !value)
        return -EINVAL;
    int rc = af_load(fa, &v);
    if (rc != 0)
        return rc;
    if (v < fa->seen)
        return -ESTALE; /* the file went backwards under us */
    fa->seen = v;
    *value = v;
    return 0;
}

static int af_advance(void *ctx, uint64_t value)
{
    file_anchor *fa = ctx;
    uint64_t cur;
    if (!fa)
        return -EINVAL;
    int rc = af_read(fa, &cur);
    if (rc != 0)
        return rc;
    if (value < cur)
        return -EINVAL; /* never backwards */
    if (value == cur)
        return 0;
    if (!fa->has_id) {
        /* A version-1 file: the next open names it and binds its image. */
        rc = af_new_id(fa);
        if (rc != 0)
            return rc;
    }
    rc = af_store(fa, value, 0);
    if (rc == 0)
        fa->seen = value;
    return rc;
}

static int af_identity(void *ctx, uint8_t id[VD_ANCHOR_ID_MAX], size_t *len)
{
    const file_anchor *fa = ctx;
    if (!fa || !id || !len)
        return -EINVAL;
    *len = 0;
    if (fa->has_id) {
        memcpy(id, fa->id, AF_ID_BYTES);
        *len = AF_ID_BYTES;
    }
    return 0;
}

static void af_free(file_anchor *fa)
{
    if (!fa)
        return;
    free(fa->path);
    free(fa->dir);
    free(fa->tmpl);
    free(fa);
}

static vd_err set_err(int *sys_errno, int neg, vd_err e)
{
    if (sys_errno)
        *sys_errno = neg < 0 ? -neg : 0;
    return e;
}

vd_err vd_anchor_file_open(const char *path, int create, vd_anchor **out,
                           int *sys_errno)
{
    if (sys_errno)
        *sys_errno = 0;
    if (out)
        *out = NULL;
    if (!path || !out || !path[0] || (create != 0 && create != 1))
        return VD_ERR_INVAL;
    file_anchor *fa = calloc(1, sizeof *fa);
    size_t plen = strlen(path);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    if (!*base) {
        free(fa);
        return VD_ERR_INVAL; /* a directory name */
    }
    if (fa) {
        fa->path = malloc(plen + 1);
        fa->dir = malloc(dlen + 2);
        fa->tmpl = malloc(plen + 16);
    }
    if (!fa || !fa->path || !fa->dir || !fa->tmpl) {
        af_free(fa);
        return set_err(sys_errno, -ENOMEM, VD_ERR_NOMEM);
    }
    memcpy(fa->path, path, plen + 1);
    if (!slash)
        memcpy(fa->dir, ".", 2);
    else if (dlen == 0)
        memcpy(fa->dir, "/", 2);
    else {
        memcpy(fa->dir, path, dlen);
        fa->dir[dlen] = '\0';
    }
    /* dir/.base.XXXXXX (same directory, so rename is atomic) */
    memcpy(fa->tmpl, path, (size_t)(base - path));
    fa->tmpl[base - path] = '.';
    memcpy(fa->tmpl + (base - path) + 1, base, strlen(base));
    memcpy(fa->tmpl + plen + 1, ".XXXXXX", 8);

    uint64_t v;
    int rc = af_load(fa, &v);
    if (rc == -ENOENT && create) {
        rc = af_new_id(fa);
        if (rc == 0)
            rc = af_store(fa, 0, 1);
        if (rc == 0 || rc == -EEXIST) /* -EEXIST: someone else made it */
            rc = af_load(fa, &v);
    }
    if (rc != 0) {
        af_free(fa);
        return set_err(sys_errno, rc == -EBADMSG ? 0 : rc,
                       rc == -EBADMSG ? VD_ERR_CORRUPT
                       : rc == -ENOMEM ? VD_ERR_NOMEM
                                       : VD_ERR_IO);
    }
    fa->seen = v;
    fa->a.ctx = fa;
    fa->a.read = af_read;
    fa->a.advance = af_advance;
    fa->a.identity = af_identity;
    *out = &fa->a;
    return VD_OK;
}

void vd_anchor_file_close(vd_anchor *anchor)
{
    /* Only ever free what vd_anchor_file_open allocated. */
    if (!anchor || anchor->read != af_read || !anchor->ctx)
        return;
    af_free(anchor->ctx);
}
