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
#include <time.h>
#include <unistd.h>

#include "vhdmount.h"

int vmnt_session_new(vmnt_ctx *c, struct fuse_args *fargs)
{
    struct fuse_lowlevel_ops ops;
    memset(&ops, 0, sizeof ops);
    vmnt_ops_volume(&ops);
    vmnt_ops_tree(&ops);
    vmnt_ops_file(&ops);
    vmnt_ops_refused(&ops);
    c->se = fuse_session_new(fargs, &ops, sizeof ops, c);
    if (!c->se) {
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

/* The end of a mount by SIGTERM, SIGINT or SIGHUP. These are blocked in
 * every thread and taken by this one with sigwait, so that before the
 * loop stops, while the request threads still answer, the kernel can be
 * made to write the dirty pages of files still open (vmnt_flush_kernel):
 * with the writeback cache they would be lost otherwise. Then the session
 * is told to exit and the main thread, waiting inside the loop, is woken
 * with SIGUSR1 (a handler that does nothing: only the wake-up counts),
 * again until it is out, since one signal may come just before it waits. */
typedef struct sig_waiter {
    vmnt_ctx *c;
    pthread_t main, thread;
    sigset_t set;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int loop_done; /* the loop returned: stop waking, and stop */
} sig_waiter;

static void wake_noop(int sig)
{
    (void)sig;
}

static void *sig_run(void *arg)
{
    sig_waiter *w = arg;
    int sig = 0;
    if (sigwait(&w->set, &sig) != 0 || pthread_mutex_lock(&w->mu) != 0)
        return NULL;
    int done = w->loop_done;
    (void)pthread_mutex_unlock(&w->mu);
    if (done)
        return NULL; /* woken by the end of the loop, not a signal */
    vmnt_flush_kernel(w->c);
    fuse_session_exit(w->c->se);
    if (pthread_mutex_lock(&w->mu) != 0)
        return NULL;
    while (!w->loop_done) {
        (void)pthread_kill(w->main, SIGUSR1);
        struct timespec due;
        if (clock_gettime(CLOCK_REALTIME, &due) != 0)
            break;
        due.tv_nsec += 20 * 1000000L;
        if (due.tv_nsec >= 1000000000L) {
            due.tv_sec++;
            due.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&w->cv, &w->mu, &due);
    }
    (void)pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Block the end signals here (inherited by every thread made later) and
 * start the waiter. 0 or -1. */
static int sig_start(sig_waiter *w, vmnt_ctx *c)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    w->main = pthread_self();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    if (sigemptyset(&sa.sa_mask) != 0 || sigaction(SIGPIPE, &sa, NULL) != 0)
        return -1;
    sa.sa_handler = wake_noop; /* no SA_RESTART: the wait returns EINTR */
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return -1;
    if (sigemptyset(&w->set) != 0 || sigaddset(&w->set, SIGTERM) != 0 ||
        sigaddset(&w->set, SIGINT) != 0 || sigaddset(&w->set, SIGHUP) != 0 ||
        pthread_sigmask(SIG_BLOCK, &w->set, NULL) != 0)
        return -1;
    if (pthread_mutex_init(&w->mu, NULL) != 0)
        return -1;
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        (void)pthread_mutex_destroy(&w->mu);
        return -1;
    }
    if (pthread_create(&w->thread, NULL, sig_run, w) != 0) {
        (void)pthread_cond_destroy(&w->cv);
        (void)pthread_mutex_destroy(&w->mu);
        return -1;
    }
    return 0;
}

static void sig_stop(sig_waiter *w)
{
    if (pthread_mutex_lock(&w->mu) == 0) {
        w->loop_done = 1;
        (void)pthread_cond_signal(&w->cv);
        (void)pthread_mutex_unlock(&w->mu);
    }
    /* Ends a sigwait still waiting (the unmount came from outside). */
    (void)pthread_kill(w->thread, SIGTERM);
    (void)pthread_join(w->thread, NULL);
    (void)pthread_cond_destroy(&w->cv);
    (void)pthread_mutex_destroy(&w->mu);
}

int vmnt_serve(vmnt_ctx *c, const vmnt_serve_args *a)
{
    vd_statfs sf;
    vd_err e = vd_fs_statfs(c->ci.fs, &sf);
    if (e != VD_OK)
        return cli_fail(c->prog, c->image, e, NULL);
    c->cluster_bytes = sf.cluster_bytes;

    struct fuse_session *se = c->se;
    int rc = CLI_EXIT_FAIL;
    struct fuse_loop_config *lc = NULL;
    int mounted = 0, waiter = 0;
    sig_waiter sw;
    /* Before mounting: afterwards resolving the path would ask this server. */
    c->real_mountpoint = realpath(a->mountpoint, NULL);
    /* In the foreground the pid is final: the state file is there before
     * the mount answers its first request. */
    if (a->foreground)
        vmnt_state_begin(c, a->state_image, a->mountpoint);
    if (fuse_session_mount(se, a->mountpoint) != 0) {
        cli_errorf(c->prog, a->mountpoint, "the kernel refused the FUSE mount (see above)");
        vmnt_state_drop(c); /* nothing was mounted: nothing to wait for */
        goto out;
    }
    mounted = 1;
    if (!a->foreground && detach(c, a) != 0)
        goto out;
    if (sig_start(&sw, c) != 0) {
        vmnt_log(c, LOG_ERR, "cannot install signal handlers");
        goto out;
    }
    waiter = 1;
    lc = fuse_loop_cfg_create();
    if (!lc) {
        vmnt_log(c, LOG_ERR, "out of memory");
        goto out;
    }
    fuse_loop_cfg_set_clone_fd(lc, 0);
    fuse_loop_cfg_set_max_threads(lc, a->threads ? a->threads : VMNT_THREADS_DEFAULT);
    /* 0 after an unmount or an end signal (sig_run): a clean end. */
    int r = fuse_session_loop_mt(se, lc);
    rc = r == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (rc != CLI_EXIT_OK)
        vmnt_log(c, LOG_ERR, "the FUSE session failed (%d)", r);
out:
    if (waiter)
        sig_stop(&sw);
    if (lc)
        fuse_loop_cfg_destroy(lc);
    /* Closes the device first: requests still pending end with an error,
     * so nothing waits on a loop that is gone. */
    if (mounted)
        fuse_session_unmount(se);
    return rc;
}

int vmnt_finish(vmnt_ctx *c, int rc)
{
    if (c->se)
        fuse_session_destroy(c->se); /* runs destroy (the clean unmount) if init ran */
    c->se = NULL;
    if (c->ci.host || c->ci.fs) {
        vmnt_volume_close(c); /* init never ran, or the loop failed */
        if (rc == 0)
            rc = c->close_status;
    } else if (c->closed && rc == 0) {
        rc = c->close_status;
    }
    free(c->real_mountpoint); /* after the committer, which used it, stopped */
    c->real_mountpoint = NULL;
    return rc;
}

int vmnt_ctx_init(vmnt_ctx *c, const char *prog)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    if (vmnt_nodes_init(&c->nodes) != 0)
        return -1;
    if (pthread_mutex_init(&c->files_lock, NULL) != 0) {
        vmnt_nodes_fini(&c->nodes);
        return -1;
    }
    c->lock_ok = 1;
    return 0;
}

void vmnt_ctx_fini(vmnt_ctx *c)
{
    if (c->lock_ok)
        (void)pthread_mutex_destroy(&c->files_lock);
    c->lock_ok = 0;
    vmnt_nodes_fini(&c->nodes);
}
