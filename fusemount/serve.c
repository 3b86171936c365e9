/* Running a mount, shared by vhdmount and bench/vhdbench-mount: the FUSE
 * session made before the image is opened (a bad -o costs no
 * passphrase), the kernel mount, the detach into the background with the
 * state file written first, the request loop, and the clean end. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "vhdmount.h"

int vmnt_session_new(vmnt_ctx *c, struct fuse_args *fargs)
{
    struct fuse_operations ops;
    memset(&ops, 0, sizeof ops);
    vmnt_ops_volume(&ops);
    vmnt_ops_tree(&ops);
    vmnt_ops_file(&ops);
    vmnt_ops_refused(&ops);
    vmnt_ops_modes(&ops);
    c->fuse = fuse_new(fargs, &ops, sizeof ops, c);
    if (!c->fuse) {
        cli_errorf(c->prog, NULL, "invalid -o option (see above and mount.fuse3(8))");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* fuse_daemonize, except that the child writes its state file (state.c)
 * before the parent returns, so `vhdmount IMAGE M && ... && vhdmount -u M`
 * always finds it. 0 in the child, -1 on failure; the parent exits here. */
static int detach(vmnt_ctx *c, const vmnt_serve_args *a)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        (void)close(pfd[0]);
        (void)close(pfd[1]);
        return -1;
    }
    if (pid > 0) {
        (void)close(pfd[1]);
        char ok = 0;
        ssize_t r;
        while ((r = read(pfd[0], &ok, 1)) < 0 && errno == EINTR)
            ;
        _exit(r == 1 && ok == 1 ? CLI_EXIT_OK : CLI_EXIT_FAIL);
    }
    (void)close(pfd[0]);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (setsid() < 0 || chdir("/") != 0 || nul < 0 || dup2(nul, STDIN_FILENO) < 0 ||
        dup2(nul, STDOUT_FILENO) < 0 || dup2(nul, STDERR_FILENO) < 0) {
        cli_errorf(c->prog, c->image, "cannot detach into the background: %s", strerror(errno));
        if (nul >= 0)
            (void)close(nul);
        (void)close(pfd[1]); /* the parent exits 1 */
        return -1;
    }
    if (nul > STDERR_FILENO)
        (void)close(nul);
    openlog(c->prog, LOG_PID, LOG_DAEMON);
    c->use_syslog = 1;
    vmnt_state_begin(c, a->state_image, a->mountpoint);
    const char one = 1;
    ssize_t w;
    while ((w = write(pfd[1], &one, 1)) < 0 && errno == EINTR)
        ;
    (void)close(pfd[1]);
    return w == 1 ? 0 : -1;
}

int vmnt_serve(vmnt_ctx *c, const vmnt_serve_args *a)
{
    vd_statfs sf;
    vd_err e = vd_fs_statfs(c->ci.fs, &sf);
    if (e != VD_OK)
        return cli_fail(c->prog, c->image, e, NULL);
    c->cluster_bytes = sf.cluster_bytes;

    struct fuse *f = c->fuse;
    int rc = CLI_EXIT_FAIL;
    struct fuse_loop_config *lc = NULL;
    int mounted = 0, handlers = 0;
    /* Before mounting: afterwards resolving the path would ask this server. */
    c->real_mountpoint = realpath(a->mountpoint, NULL);
    /* In the foreground the pid is final: the state file is there before
     * the mount answers its first request. */
    if (a->foreground)
        vmnt_state_begin(c, a->state_image, a->mountpoint);
    if (fuse_mount(f, a->mountpoint) != 0) {
        cli_errorf(c->prog, a->mountpoint, "the kernel refused the FUSE mount (see above)");
        vmnt_state_drop(c); /* nothing was mounted: nothing to wait for */
        goto out;
    }
    mounted = 1;
    if (!a->foreground && detach(c, a) != 0)
        goto out;
    if (fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
        vmnt_log(c, LOG_ERR, "cannot install signal handlers");
        goto out;
    }
    handlers = 1;
    lc = fuse_loop_cfg_create();
    if (!lc) {
        vmnt_log(c, LOG_ERR, "out of memory");
        goto out;
    }
    fuse_loop_cfg_set_clone_fd(lc, 0);
    fuse_loop_cfg_set_max_threads(lc, 16);
    /* libfuse reports an exit by SIGTERM/SIGINT/SIGHUP as that signal's
     * number: an ordinary, clean end for a mount. */
    int r = fuse_loop_mt(f, lc);
    rc = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? CLI_EXIT_OK
                                                                : CLI_EXIT_FAIL;
    if (rc != CLI_EXIT_OK)
        vmnt_log(c, LOG_ERR, "the FUSE session failed (%d)", r);
out:
    free(c->real_mountpoint);
    c->real_mountpoint = NULL;
    if (lc)
        fuse_loop_cfg_destroy(lc);
    if (handlers)
        fuse_remove_signal_handlers(fuse_get_session(f));
    if (mounted)
        fuse_unmount(f);
    return rc;
}

int vmnt_finish(vmnt_ctx *c, int rc)
{
    if (c->fuse)
        fuse_destroy(c->fuse); /* runs destroy (the clean unmount) if init ran */
    c->fuse = NULL;
    if (c->ci.host || c->ci.fs) {
        vmnt_volume_close(c); /* init never ran, or the loop failed */
        if (rc == 0)
            rc = c->close_status;
    } else if (c->closed && rc == 0) {
        rc = c->close_status;
    }
    return rc;
}

int vmnt_ctx_init(vmnt_ctx *c, const char *prog)
{
    memset(c, 0, sizeof *c);
    c->readahead_once = (pthread_once_t)PTHREAD_ONCE_INIT;
    c->prog = prog;
    if (pthread_mutex_init(&c->files_lock, NULL) != 0)
        return -1;
    c->lock_ok = 1;
    return 0;
}

void vmnt_ctx_fini(vmnt_ctx *c)
{
    if (c->lock_ok)
        (void)pthread_mutex_destroy(&c->files_lock);
    c->lock_ok = 0;
}
