/* Periodic commits (-o commit=SECONDS, DESIGN C5): a thread that syncs the
 * volume every interval, so a crash loses at most the last interval of
 * work nobody fsync'd. With the writeback cache, data written to a file
 * that is still open may sit in the kernel's page cache, out of our
 * reach: each round first has the kernel write this mount's dirty pages
 * (syncfs on the mount, served by the request threads), so the bound
 * holds for them too. vd_fs_commit takes the volume lock, so it runs
 * between two operations, never inside one; a sync with nothing changed
 * since the last one writes nothing (no commit, no anchor advance). The
 * thread starts in the daemon (init runs after the fork) and stops before
 * the final close. */
#include <errno.h>
#include <fcntl.h>
#include <sys/vfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "vhdmount.h"

#define FUSE_SUPER_MAGIC 0x65735546

void vmnt_flush_kernel(vmnt_ctx *c)
{
    if (!c->real_mountpoint)
        return;
    /* Dirty pages exist only for files open for writing (close flushes
     * them; a shared writable mapping keeps its file open): when none is,
     * no syncfs, and no descriptor on the mount that could make an
     * unmount at that moment fail with EBUSY. */
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return;
    unsigned writers = c->writeback ? c->nwriters : 0;
    (void)pthread_mutex_unlock(&c->files_lock);
    if (!writers)
        return;
    int fd = open(c->real_mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return; /* unmounted meanwhile */
    struct statfs sf;
    if (fstatfs(fd, &sf) == 0 && sf.f_type == FUSE_SUPER_MAGIC)
        (void)syncfs(fd);
    (void)close(fd);
}

static void *committer_run(void *arg)
{
    vmnt_ctx *c = arg;
    vmnt_committer *k = &c->committer;
    vd_err last = VD_OK;
    if (pthread_mutex_lock(&k->mu) != 0)
        return NULL;
    while (!k->stop) {
        struct timespec due;
        if (clock_gettime(CLOCK_MONOTONIC, &due) != 0)
            break;
        due.tv_sec += (time_t)c->commit_secs;
        int r = 0;
        while (!k->stop && r != ETIMEDOUT)
            r = pthread_cond_timedwait(&k->cv, &k->mu, &due);
        if (k->stop)
            break;
        (void)pthread_mutex_unlock(&k->mu);
        vmnt_flush_kernel(c);
        /* A commit, not an acknowledged sync: an anchor in explicit-sync
         * mode (every TPM anchor) advances only at fsync and unmount, so
         * an idle or busy mount does not wear the counter every interval
         * (docs/SECURITY.md, "R4"). */
        vd_err e = vd_fs_commit(c->ci.fs);
        /* A commit that wrote something is told in the state file: the
         * one sign outside the daemon that a commit is complete. */
        vd_image_info info;
        if (e == VD_OK && c->ci.img && vd_image_info_get(c->ci.img, &info) == VD_OK &&
            info.epoch != c->state.epoch) {
            c->state.epoch = info.epoch;
            vmnt_state_set(c, CLI_MSTATE_MOUNTED);
        }
        /* One line per new failure, not one per interval. */
        if (e != VD_OK && e != last)
            vmnt_log(c, LOG_ERR, "periodic commit failed: %s", vd_strerror(e));
        else if (e == VD_OK && last != VD_OK)
            vmnt_log(c, LOG_NOTICE, "periodic commits work again");
        last = e;
        if (pthread_mutex_lock(&k->mu) != 0)
            return NULL;
    }
    (void)pthread_mutex_unlock(&k->mu);
    return NULL;
}

void vmnt_committer_start(vmnt_ctx *c)
{
    vmnt_committer *k = &c->committer;
    if (c->read_only || c->commit_secs == 0 || !c->ci.fs || k->running)
        return;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    int r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (r == 0)
        r = pthread_cond_init(&k->cv, &ca);
    (void)pthread_condattr_destroy(&ca);
    if (r != 0)
        goto fail;
    if (pthread_mutex_init(&k->mu, NULL) != 0) {
        (void)pthread_cond_destroy(&k->cv);
        goto fail;
    }
    k->stop = 0;
    if (pthread_create(&k->thread, NULL, committer_run, c) != 0) {
        (void)pthread_mutex_destroy(&k->mu);
        (void)pthread_cond_destroy(&k->cv);
        goto fail;
    }
    k->running = 1;
    return;
fail:
    vmnt_log(c, LOG_ERR, "cannot start periodic commits; only fsync and the unmount commit");
}

void vmnt_committer_stop(vmnt_ctx *c)
{
    vmnt_committer *k = &c->committer;
    if (!k->running)
        return;
    if (pthread_mutex_lock(&k->mu) == 0) {
        k->stop = 1;
        (void)pthread_cond_signal(&k->cv);
        (void)pthread_mutex_unlock(&k->mu);
    }
    (void)pthread_join(k->thread, NULL);
    (void)pthread_mutex_destroy(&k->mu);
    (void)pthread_cond_destroy(&k->cv);
    k->running = 0;
}
