/* export: the decrypted FAT32 volume as a sparse raw file, written to a
 * temporary next to RAW and renamed into place when complete. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdtool.h"

typedef struct sink {
    int fd;
    int sys; /* errno of a failed write */
    cli_progress *p;
    const volatile sig_atomic_t *cancel;
} sink;

static int sink_write(void *ctx, uint64_t off, const void *buf, size_t len)
{
    sink *s = ctx;
    const uint8_t *b = buf;
    if (*s->cancel)
        return -1;
    while (len > 0) {
        ssize_t w = pwrite(s->fd, b, len, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            s->sys = w < 0 ? errno : EIO;
            return -1;
        }
        b += w;
        off += (uint64_t)w;
        len -= (size_t)w;
        cli_progress_add(s->p, (uint64_t)w, 0);
    }
    return 0;
}

/* A local file whose public header reads as a vdisk image (no key needed).
 * A URI counts as an image: it is never an archive's name. */
static int is_image(const char *path)
{
    if (vd_host_is_uri(path))
        return 1;
    vd_host *host = NULL;
    if (vd_host_file_open(path, VD_HOST_READONLY | VD_HOST_NOLOCK, &host, NULL) != VD_OK)
        return 0;
    vd_image_info info;
    vd_err e = vd_image_probe(host, &info);
    vd_host_close(host);
    return e == VD_OK;
}

/* With --tar both spellings work: DESIGN's "export --tar ARCHIVE|- IMAGE"
 * and "export --tar IMAGE ARCHIVE|-". The image is the operand that is
 * one; an archive is never written over an image, not even with --force,
 * so neither order can destroy the image it was meant to read. */
static int tar_operands(vt_opts *o)
{
    char *a = o->pos[0], *b = o->pos[1];
    int a_img = strcmp(a, "-") != 0 && is_image(a);
    int b_img = strcmp(b, "-") != 0 && is_image(b);
    if (a_img && b_img) {
        cli_errorf(VT_PROG, b, "is a vdisk image: refusing to write a tar archive over it");
        return CLI_EXIT_FAIL;
    }
    if (b_img) {
        o->pos[0] = b;
        o->pos[1] = a;
        return 0;
    }
    if (a_img)
        return 0;
    /* Neither reads as an image: the image is the operand that exists
     * (its open then reports why it is not one, with the usual status). */
    int a_ex = strcmp(a, "-") != 0 && access(a, F_OK) == 0;
    int b_ex = strcmp(b, "-") != 0 && access(b, F_OK) == 0;
    if (strcmp(a, "-") == 0 || (b_ex && !a_ex)) {
        o->pos[0] = b;
        o->pos[1] = a;
        return 0;
    }
    if (strcmp(b, "-") == 0 || (a_ex && !b_ex))
        return 0;
    cli_errorf(VT_PROG, NULL, "%s, %s: %s", a, b,
               a_ex ? "neither is a vdisk image" : "neither exists");
    return CLI_EXIT_FAIL;
}

int vt_cmd_export(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    if (o->tar) {
        int rc = tar_operands(o);
        return rc ? rc : vt_export_tar(o);
    }
    /* Checked before the destination: a misplaced RAW would otherwise
     * answer "IMAGE: exists, give --force". */
    if (!vd_host_is_uri(o->pos[0]) && access(o->pos[0], F_OK) != 0) {
        cli_errorf(VT_PROG, o->pos[0], "%s (the image comes first: vhdtool export IMAGE RAW)",
                   strerror(errno));
        return CLI_EXIT_FAIL;
    }
    const char *image = o->pos[0], *raw = o->pos[1];
    char *tmp = NULL;
    sink s = {.fd = -1, .cancel = o->cancel};
    cli_image ci;
    if (!o->force && access(raw, F_OK) == 0) {
        cli_errorf(VT_PROG, raw, "exists (give --force to replace it)");
        return CLI_EXIT_FAIL;
    }
    int rc = cli_image_open(VT_PROG, image, &o->keys, CLI_OPEN_READONLY, 0, &ci);
    if (rc)
        return rc;
    size_t n = strlen(raw) + sizeof ".tmp.XXXXXX";
    tmp = malloc(n);
    if (!tmp) {
        cli_errorf(VT_PROG, raw, "out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    snprintf(tmp, n, "%s.tmp.XXXXXX", raw);
    s.fd = mkstemp(tmp);
    if (s.fd < 0) {
        cli_errorf(VT_PROG, tmp, "%s", strerror(errno));
        free(tmp);
        tmp = NULL;
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    vd_image_info info;
    uint64_t vol = 0;
    vd_err e = vd_image_info_get(ci.img, &info);
    cli_progress p;
    cli_progress_start(&p, "exporting", e == VD_OK ? info.nblocks * VD_BLOCK_SIZE : 0, 0,
                       o->quiet);
    s.p = &p;
    if (e == VD_OK)
        e = vd_fs_export(ci.img, sink_write, &s, 1, &vol);
    cli_progress_end(&p);
    if (*o->cancel) {
        cli_errorf(VT_PROG, image, "interrupted");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (e == VD_ERR_IO && s.sys) {
        cli_errorf(VT_PROG, tmp, "%s", strerror(s.sys));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (e != VD_OK) {
        rc = cli_fs_fail(VT_PROG, image, ci.img, NULL, e);
        goto out;
    }
    /* Holes at the end still count: the file is the whole volume. */
    if (ftruncate(s.fd, (off_t)vol) != 0 || fsync(s.fd) != 0) {
        cli_errorf(VT_PROG, tmp, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    int fd = s.fd;
    s.fd = -1;
    if (close(fd) != 0) {
        cli_errorf(VT_PROG, tmp, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    rc = vt_install(tmp, raw, o->force);
    if (rc == 0) {
        free(tmp);
        tmp = NULL;
    }
out:
    if (s.fd >= 0)
        (void)close(s.fd);
    if (tmp) {
        (void)unlink(tmp);
        free(tmp);
    }
    return vt_close(o, &ci, rc);
}
