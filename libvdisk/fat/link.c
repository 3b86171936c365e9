/* Symbolic links as Minshall+French files (Linux cifs "mfsymlinks",
 * Samba, macOS): a regular file of exactly FAT_LINK_FILE bytes,
 *   "XSym\n" LLLL "\n" <32 lowercase hex digits of MD5(target)> "\n"
 *   <target> "\n" <spaces up to 1067 bytes>
 * (no "\n" when the target fills its 1024 bytes). FAT itself knows
 * nothing of it, so fsck.fat and mtools see a small file; a file is taken
 * for a link only when its size, header and checksum all match. */
#include <stdlib.h>
#include <string.h>

#include "crypto/crypto.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

#define LINK_LEN_OFF 5u              /* after "XSym\n" */
#define LINK_MD5_OFF (LINK_LEN_OFF + 5u)
#define LINK_TARGET_OFF (LINK_MD5_OFF + 33u)
/* A cluster is at least 512 bytes: a link file spans at most this many. */
#define LINK_MAX_CLUSTERS ((FAT_LINK_FILE + 511u) / 512u)

static const char hexdig[] = "0123456789abcdef";

static vd_err md5_hex(const char *target, size_t len, char hex[32])
{
    uint8_t h[VDC_MD5_BYTES];
    if (vdc_md5(h, target, len) != 0)
        return VD_ERR_NOMEM; /* EVP could not set up a digest */
    for (unsigned i = 0; i < VDC_MD5_BYTES; i++) {
        hex[2 * i] = hexdig[h[i] >> 4];
        hex[2 * i + 1] = hexdig[h[i] & 15];
    }
    return VD_OK;
}

vd_err fat_link_format(const char *target, size_t len, uint8_t buf[FAT_LINK_FILE])
{
    if (len == 0)
        return VD_ERR_NOENT; /* POSIX: an empty target names nothing */
    if (len > FAT_LINK_MAX)
        return VD_ERR_NAME;
    if (memchr(target, 0, len))
        return VD_ERR_INVAL;
    memset(buf, ' ', FAT_LINK_FILE);
    memcpy(buf, "XSym\n", 5);
    size_t l = len;
    for (int i = 3; i >= 0; i--) {
        buf[LINK_LEN_OFF + (size_t)i] = (uint8_t)('0' + l % 10);
        l /= 10;
    }
    buf[LINK_LEN_OFF + 4] = '\n';
    vd_err e = md5_hex(target, len, (char *)buf + LINK_MD5_OFF);
    if (e != VD_OK)
        return e;
    buf[LINK_MD5_OFF + 32] = '\n';
    memcpy(buf + LINK_TARGET_OFF, target, len);
    if (LINK_TARGET_OFF + len < FAT_LINK_FILE)
        buf[LINK_TARGET_OFF + len] = '\n';
    return VD_OK;
}

/* 1 and the target's length when buf is a link file. Stricter than Linux
 * cifs (which compares 16 hex digits): all 32 must match, and a target
 * that is empty or holds a NUL is no path, so the file stays a file. */
static int link_parse(const uint8_t buf[FAT_LINK_FILE], size_t *len)
{
    if (memcmp(buf, "XSym\n", 5) != 0 || buf[LINK_LEN_OFF + 4] != '\n' ||
        buf[LINK_MD5_OFF + 32] != '\n')
        return 0;
    size_t l = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint8_t c = buf[LINK_LEN_OFF + i];
        if (c < '0' || c > '9')
            return 0;
        l = l * 10 + (size_t)(c - '0');
    }
    if (l == 0 || l > FAT_LINK_MAX || memchr(buf + LINK_TARGET_OFF, 0, l))
        return 0;
    char hex[32];
    if (md5_hex((const char *)buf + LINK_TARGET_OFF, l, hex) != VD_OK ||
        memcmp(hex, buf + LINK_MD5_OFF, 32) != 0)
        return 0;
    *len = l;
    return 1;
}

int fat_link_candidate(const fat_dent *d)
{
    return !(d->attr & (ATTR_DIRECTORY | ATTR_VOLUME_ID)) && d->size == FAT_LINK_FILE &&
           d->first != 0;
}

/* The first FAT_LINK_FILE bytes of the file d (which has that size),
 * through its chain. A chain that ends early or leaves the volume is not
 * a link (*ok = 0): the file is damaged, and vhdfsck says so; a read
 * that fails is an error. */
static vd_err link_bytes(vd_fs *fs, const fat_dent *d, uint8_t buf[FAT_LINK_FILE], int *ok)
{
    *ok = 0;
    uint32_t c = d->first;
    size_t got = 0;
    for (unsigned i = 0; got < FAT_LINK_FILE; i++) {
        if (i >= LINK_MAX_CLUSTERS || !fat_valid_cluster(fs, c))
            return VD_OK;
        size_t k = FAT_LINK_FILE - got;
        if (k > fs->cluster_bytes)
            k = fs->cluster_bytes;
        vd_err e = fat_dev_read(fs, fat_clus_off(fs, c), buf + got, k);
        if (e != VD_OK)
            return e;
        got += k;
        if (got < FAT_LINK_FILE) {
            e = fat_get(fs, c, &c);
            if (e != VD_OK)
                return e;
        }
    }
    *ok = 1;
    return VD_OK;
}

vd_err fat_link_read(vd_fs *fs, const fat_dent *d, char *target, size_t *len)
{
    *len = 0;
    if (!fat_link_candidate(d))
        return VD_OK;
    uint8_t *buf = malloc(FAT_LINK_FILE);
    if (!buf)
        return VD_ERR_NOMEM;
    int ok;
    size_t l = 0;
    vd_err e = link_bytes(fs, d, buf, &ok);
    if (e == VD_OK && ok && link_parse(buf, &l)) {
        if (target) {
            memcpy(target, buf + LINK_TARGET_OFF, l);
            target[l] = 0;
        }
        *len = l;
    }
    free(buf);
    return e;
}

typedef struct clus_list {
    uint32_t c[LINK_MAX_CLUSTERS];
    unsigned n;
} clus_list;

static vd_err clus_note(void *ctx, uint32_t clus)
{
    clus_list *l = ctx;
    if (l->n >= LINK_MAX_CLUSTERS)
        return VD_ERR_CORRUPT;
    l->c[l->n++] = clus;
    return VD_OK;
}

vd_err fat_link_create(vd_fs *fs, const uint8_t buf[FAT_LINK_FILE], uint32_t dir,
                       const uint16_t *name, size_t n)
{
    /* Contents first, entry last: a crash in between leaves only lost
     * clusters (vhdfsck frees them), never a half-written link. */
    uint32_t nclus = (FAT_LINK_FILE + fs->cluster_bytes - 1) >> fs->cluster_shift;
    clus_list l = {.n = 0};
    uint32_t first = 0;
    vd_err e = fat_alloc(fs, 0, nclus, &first, clus_note, &l);
    if (e != VD_OK)
        return e;
    size_t done = 0;
    for (unsigned i = 0; e == VD_OK && i < l.n && done < FAT_LINK_FILE; i++) {
        size_t k = FAT_LINK_FILE - done;
        if (k > fs->cluster_bytes)
            k = fs->cluster_bytes;
        e = fat_dev_write(fs, fat_clus_off(fs, l.c[i]), buf + done, k);
        done += k;
    }
    if (e == VD_OK && done != FAT_LINK_FILE)
        e = VD_ERR_CORRUPT;
    fat_dent d;
    memset(&d, 0, sizeof d);
    fat_time_encode(fat_now(fs), &d.cdate, &d.ctime, &d.ctenth);
    d.mdate = d.cdate;
    d.mtime = d.ctime;
    d.adate = d.cdate;
    d.attr = ATTR_ARCHIVE;
    d.first = first;
    d.size = FAT_LINK_FILE;
    uint32_t slot;
    if (e == VD_OK)
        e = fat_dir_add(fs, dir, name, n, &d, &slot);
    if (e != VD_OK)
        (void)fat_free_chain(fs, first); /* the first error is the one to report */
    return e;
}

/* ---- public entry points (volume lock) ---- */

static vd_err locked_fs_symlink(vd_fs *fs, const char *target, const char *linkpath)
{
    if (!fs || !target || !linkpath)
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    uint8_t *buf = malloc(FAT_LINK_FILE);
    fat_path *p = malloc(sizeof *p);
    if (!buf || !p)
        e = VD_ERR_NOMEM;
    if (e == VD_OK)
        e = fat_link_format(target, strlen(target), buf);
    if (e == VD_OK)
        e = fat_path_resolve(fs, linkpath, p);
    if (e == VD_OK && p->exists)
        e = VD_ERR_EXIST;
    if (e == VD_OK)
        e = fat_mark_dirty(fs);
    if (e == VD_OK)
        e = fat_link_create(fs, buf, p->parent, p->name, p->nlen);
    free(buf);
    free(p);
    return fat_op_end(fs, e);
}

static vd_err locked_fs_readlink(vd_fs *fs, const char *path, char *buf, size_t bufsz,
                                 size_t *len)
{
    if (!fs || !path || (!buf && bufsz) || !len)
        return VD_ERR_INVAL;
    *len = 0;
    fat_path *p = malloc(sizeof *p);
    char *target = malloc(FAT_LINK_MAX + 1);
    vd_err e = p && target ? fat_path_walk(fs, path, FAT_WALK_LOOKUP, p) : VD_ERR_NOMEM;
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    size_t tlen = 0;
    if (e == VD_OK && !p->is_root)
        e = fat_link_read(fs, &p->d, target, &tlen);
    if (e == VD_OK && tlen == 0)
        e = VD_ERR_INVAL; /* not a link (EINVAL, as readlink(2)) */
    if (e == VD_OK) {
        *len = tlen;
        if (bufsz <= tlen)
            e = VD_ERR_RANGE;
        else
            memcpy(buf, target, tlen + 1);
    }
    free(target);
    free(p);
    return fat_op_end(fs, e);
}

vd_err vd_fs_symlink(vd_fs *fs, const char *target, const char *linkpath)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_symlink(fs, target, linkpath);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_readlink(vd_fs *fs, const char *path, char *buf, size_t bufsz, size_t *len)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_readlink(fs, path, buf, bufsz, len);
    fat_unlock(lk);
    return e;
}
