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

int vt_cmd_export(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    /* Checked before the destination: "export --tar out.tar IMG" (the
     * archive first) would otherwise answer "IMG: exists, give --force". */
    if (!vd_host_is_uri(o->pos[0]) && access(o->pos[0], F_OK) != 0) {
        cli_errorf(VT_PROG, o->pos[0], "%s (the image comes first: %s)", strerror(errno),
                   o->tar ? "vhdtool export --tar IMAGE ARCHIVE|-" : "vhdtool export IMAGE RAW");
        return CLI_EXIT_FAIL;
    }
    if (o->tar)
        return vt_export_tar(o);
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
