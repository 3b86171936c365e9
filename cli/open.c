/* Opening an image for a tool: host file (with its lock), freshness
 * anchor, secret, unlock; then optionally the FAT32 volume. Each failure
 * is one line naming the image and the cause, and an exit status. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "copy.h"
#include "mstate.h"
#include "vdisk/anchor.h"

static void cli_image_release(cli_image *ci)
{
    if (ci->anchor)
        cli_anchor_close(ci->anchor);
    if (ci->host)
        vd_host_close(ci->host);
    int quiet = ci->quiet;
    memset(ci, 0, sizeof *ci);
    ci->quiet = quiet;
}

int cli_lock_wait(const char *prog, const char *path, int quiet)
{
    struct stat st;
    cli_mstate s;
    if (stat(path, &st) != 0 ||
        !cli_mstate_exiting((unsigned long long)st.st_dev, (unsigned long long)st.st_ino, &s))
        return 0;
    if (!quiet)
        cli_errorf(prog, path, "note: waiting for vhdmount (pid %ld), which is closing it",
                   s.pid);
    double end = cli_now() + CLI_LOCK_WAIT_SECONDS;
    while (cli_now() < end) {
        cli_sleep_ms(20);
        if (!cli_mstate_alive(&s))
            break;
        cli_mstate cur;
        char sp[PATH_MAX];
        if (cli_mstate_path(s.mountpoint, 0, sp, sizeof sp) == 0 &&
            cli_mstate_read(sp, &cur) == 0 && cur.state == CLI_MSTATE_CLOSED)
            break;
    }
    return 1;
}

/* cli_host_open; quiet for cli_lock_wait's note. */
static int host_open(const char *prog, const char *image, int hflags, int quiet,
                     vd_host **out, vd_err *err)
{
    char why[256];
    int sys = 0;
    vd_err e = vd_host_open(image, hflags, out, &sys, why, sizeof why);
    /* A vhdmount that is being unmounted still holds the lock while it
     * syncs and closes: wait for it (bounded), then try once more. */
    if (e == VD_ERR_BUSY && cli_lock_wait(prog, image, quiet))
        e = vd_host_open(image, hflags, out, &sys, why, sizeof why);
    if (err != NULL)
        *err = e;
    if (e == VD_OK)
        return 0;
    if (e == VD_ERR_BUSY)
        return cli_fail(prog, image, e, "another program has it open for writing");
    if (why[0] != '\0') {
        cli_errorf(prog, image, "%s", why);
        return cli_exit_status(e);
    }
    return cli_fail_errno(prog, image, e, sys);
}

int cli_host_open(const char *prog, const char *image, int hflags, vd_host **out,
                  vd_err *err)
{
    return host_open(prog, image, hflags, 0, out, err);
}

int cli_image_open(const char *prog, const char *path, const cli_keyopts *k,
                   int flags, size_t cache_bytes, cli_image *out)
{
    memset(out, 0, sizeof *out);
    out->quiet = k->quiet;
    int ro = (flags & CLI_OPEN_READONLY) != 0;
    int hflags = (ro ? VD_HOST_READONLY : 0) | ((flags & CLI_OPEN_NOLOCK) ? VD_HOST_NOLOCK : 0) |
                 ((flags & CLI_OPEN_PREFAULT) ? VD_HOST_PREFAULT : 0);
    vd_err e;
    int hrc = host_open(prog, path, hflags, k->quiet, &out->host, &e);
    if (hrc != 0) {
        out->err = e;
        return hrc;
    }

    if (k->anchor) {
        out->anchor_name = k->anchor;
        int rc = cli_anchor_open(prog, k, flags, &out->anchor);
        if (rc != 0) {
            cli_image_release(out);
            return rc;
        }
    } else if (!k->quiet) {
        cli_errorf(prog, path, "note: no --anchor given; freshness across restarts "
                               "is not guaranteed (an old copy of the image would open)");
    }

    cli_secret s;
    int rc = cli_secret_get(prog, path, k, 0, &s);
    if (rc != 0) {
        cli_image_release(out);
        return rc;
    }
    vd_open_opts o = {
        .read_only = ro,
        .cache_bytes = cache_bytes,
        .anchor = out->anchor,
        .anchor_mode = cli_anchor_mode(k),
        .anchor_bind = (flags & CLI_OPEN_ANCHOR_BIND) != 0,
    };
    e = vd_image_open_unlock(out->host, &s.u, &o, &out->img);
    if (e != VD_OK) {
        rc = cli_is_anchor_err(e) ? cli_anchor_fail(prog, path, k, out->anchor, e)
                                  : cli_fail(prog, path, e, cli_open_detail(e, s.u.type));
        cli_secret_wipe(&s);
        cli_image_release(out);
        out->err = e;
        return rc;
    }
    cli_secret_wipe(&s);
    vd_image_info info;
    if (!k->quiet && vd_image_info_get(out->img, &info) == VD_OK && info.rekey)
        cli_errorf(prog, path, "note: a key rotation is in progress (read-only until "
                               "vhdtool rekey finishes it)");
    return 0;
}

int cli_fs_mount(const char *prog, const char *path, cli_image *ci, int read_only)
{
    vd_fs_opts o = {.read_only = read_only, .now = cli_clock, .now_ctx = ci->host};
    vd_err e = vd_fs_mount(ci->img, &o, &ci->fs);
    if (e == VD_ERR_AUTH || e == VD_ERR_FAILED)
        return cli_fs_fail(prog, path, ci->img, NULL, e); /* names the block */
    if (e != VD_OK)
        return cli_fail(prog, path, e,
                        e == VD_ERR_CORRUPT ? "no valid FAT32 volume inside" : NULL);
    cli_unclean_note(prog, path, ci);
    return 0;
}

int cli_image_close_quiet(cli_image *ci)
{
    vd_err e = VD_OK;
    if (ci->fs)
        e = vd_fs_unmount(ci->fs);
    ci->fs = NULL;
    if (ci->img) {
        vd_err ce = vd_image_close(ci->img);
        if (e == VD_OK)
            e = ce;
    }
    ci->img = NULL;
    cli_image_release(ci);
    return cli_exit_status(e);
}

void cli_unclean_note(const char *prog, const char *path, const cli_image *ci)
{
    /* After a crash: every commit is a consistent volume (DESIGN C4), so
     * this is news (what was lost is the work after that commit), not a
     * call for vhdfsck. */
    vd_statfs sf;
    vd_image_info info;
    if (!ci->quiet && ci->fs && vd_fs_statfs(ci->fs, &sf) == VD_OK && sf.unclean &&
        vd_image_info_get(ci->img, &info) == VD_OK)
        cli_errorf(prog, path, "not unmounted cleanly; last commit at epoch %llu",
                   (unsigned long long)info.epoch);
}

int cli_image_close(const char *prog, const char *path, cli_image *ci)
{
    int rc = 0;
    /* VD_ERR_FAILED means the call that failed the handle already
     * returned (and reported) the cause: keep the status, not a 2nd line. */
    if (ci->fs) {
        vd_err e = vd_fs_unmount(ci->fs);
        ci->fs = NULL;
        if (e == VD_ERR_FAILED)
            rc = cli_exit_status(e);
        else if (e != VD_OK)
            rc = cli_fs_fail(prog, path, ci->img, NULL, e);
    }
    if (ci->img) {
        vd_err e = vd_image_close(ci->img);
        ci->img = NULL;
        if (e == VD_ERR_FAILED && rc == 0)
            rc = cli_exit_status(e);
        else if (e != VD_OK && rc == 0 && cli_is_anchor_err(e))
            rc = cli_anchor_fail(prog, path, &(cli_keyopts){.anchor = ci->anchor_name},
                                 ci->anchor, e);
        else if (e != VD_OK && rc == 0)
            rc = cli_fail(prog, path, e, "while syncing the image");
    }
    cli_image_release(ci);
    return rc;
}
