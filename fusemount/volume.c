/* The mount's life: what is negotiated with the kernel at init, and the
 * clean unmount at destroy (fusermount3 -u, SIGTERM, SIGINT). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "vhdmount.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    vmnt_ctx *c = userdata;
    /* Big writes: up to 1 MiB per request instead of 128 KiB. Reads come
     * in the kernel's read-ahead window, which INIT cannot widen;
     * readahead.c raises the bdi's read_ahead_kb after INIT when it may. */
    conn->max_write = 1u << 20;
    /* The writeback cache (vhdmount(8), CONCURRENCY AND CACHING): this
     * mount is the only writer of the image (the flock), so the kernel's
     * page cache, size and mtime are never stale; fsync still reaches us
     * after the kernel wrote the file's pages, and is answered only after
     * the commit and the anchor. Off with -o nowriteback or read-only. */
    if (!c->no_writeback && !c->read_only && (conn->capable & FUSE_CAP_WRITEBACK_CACHE) &&
        pthread_mutex_lock(&c->files_lock) == 0) {
        conn->want |= FUSE_CAP_WRITEBACK_CACHE;
        c->writeback = 1; /* under the lock: the signal thread reads it */
        (void)pthread_mutex_unlock(&c->files_lock);
    }
    /* Pages stay across opens (keep_cache, ops_file.c) and nothing else
     * changes the image: no invalidation when a getattr shows another
     * mtime (FAT keeps it to 2 s, the kernel to the ns). */
    conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
    /* Listings answer names and types only (ops_tree.c). */
    conn->want &= ~(unsigned)(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
    if (c->debug)
        vmnt_log(c, LOG_NOTICE, "kernel caches: writeback cache %s, pages kept across opens",
                 c->writeback ? "on" : "off");
    vmnt_committer_start(c); /* here: a thread started before the fork dies in it */
}

static void op_destroy(void *userdata)
{
    vmnt_volume_close(userdata);
}

/* Logged, and the first one kept for the state file (vhdmount -u). */
static void close_fail(vmnt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void close_fail(vmnt_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    vmnt_log(c, LOG_ERR, "%s", msg);
    if (!c->close_reason[0])
        snprintf(c->close_reason, sizeof c->close_reason, "%s", msg);
}

void vmnt_volume_close(vmnt_ctx *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    /* The committer thread writes the state file too: join it first, so
     * every later write of c->state is this thread's alone (TSan). */
    vmnt_committer_stop(c);
    vmnt_state_set(c, CLI_MSTATE_CLOSING);
    vd_err first = VD_OK;
    int left = 0;
    /* Files the kernel never released (signal, lazy unmount): close them so
     * the volume can be unmounted cleanly (fs.h: open files make it BUSY). */
    if (pthread_mutex_lock(&c->files_lock) == 0) {
        while (c->files) {
            vmnt_file *w = c->files;
            c->files = w->next;
            vd_err e = vd_file_close(w->f);
            if (first == VD_OK)
                first = e;
            free(w->path);
            free(w); /* the node table goes whole (vmnt_ctx_fini) */
            left++;
        }
        c->nwriters = 0;
        (void)pthread_mutex_unlock(&c->files_lock);
    }
    vmnt_dirs_free(c);
    if (left)
        vmnt_log(c, LOG_NOTICE, "closed %d file(s) still open at unmount", left);
    if (c->ci.fs) {
        vd_err e = vd_fs_unmount(c->ci.fs);
        c->ci.fs = NULL;
        if (e == VD_ERR_FAILED)
            close_fail(c, "not synced: an integrity failure made the image refuse all "
                          "writes; it keeps its last commit (check it with vhdfsck)");
        else if (e != VD_OK)
            close_fail(c, "unmounting the volume: %s", vd_strerror(e));
        if (first == VD_OK)
            first = e;
    }
    if (c->ci.img) {
        vd_err e = vd_image_close(c->ci.img);
        c->ci.img = NULL;
        /* One line per cause: a failed handle was reported just above. */
        if (e != VD_OK && e != first)
            close_fail(c, "closing the image: %s", vd_strerror(e));
        if (first == VD_OK)
            first = e;
    }
    /* Only the host file (dropping the lock) and the anchor are left. */
    (void)cli_image_close(c->prog, c->image, &c->ci);
    c->close_status = cli_exit_status(first);
    if (first != VD_OK && !c->close_reason[0])
        snprintf(c->close_reason, sizeof c->close_reason, "closing the files: %s",
                 vd_strerror(first));
    /* After the lock is released: "closed" tells vhdmount -u it may go. */
    vmnt_state_set(c, CLI_MSTATE_CLOSED);
}

void vmnt_ops_volume(struct fuse_lowlevel_ops *ops)
{
    ops->init = op_init;
    ops->destroy = op_destroy;
}
