/* The mount's life: what is negotiated with the kernel at init, and the
 * clean unmount at destroy (fusermount3 -u, SIGTERM, SIGINT). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "vhdmount.h"

static void *op_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    /* FUSE numbers the inodes itself: FAT has no inode numbers, and a
     * first cluster changes when an empty file grows. */
    cfg->use_ino = 0;
    /* This mount is the only writer of the image (the flock), so the
     * kernel may keep attributes and names for 1 s (negative ones too).
     * Pages are dropped at each open (kernel_cache off): FAT matches names
     * case-insensitively, and the kernel sees "a.txt" and "A.TXT" as two
     * inodes whose page caches would otherwise disagree across opens. */
    cfg->attr_timeout = 1.0;
    cfg->entry_timeout = 1.0;
    cfg->negative_timeout = 1.0;
    cfg->kernel_cache = 0;
    /* Unlink really unlinks, with no ".fuse_hidden*" rename: the library
     * keeps an unlinked open file's clusters until its last close. */
    cfg->hard_remove = 1;
    /* libfuse refuses (ESTALE) read/write/... on a node it cannot name
     * unless nullpath_ok: then those calls get a NULL path and we use the
     * handle in fi->fh (the path it was opened by, for messages), so an
     * unlinked open file (a POSIX orphan, kept by the library) still works.
     * Directories keep their path in fi->fh for readdir (ops_tree.c). */
    cfg->nullpath_ok = 1;
    /* Big writes: up to 1 MiB per request instead of 128 KiB (the FUSE3
     * successor of big_writes). Reads come in the kernel's read-ahead
     * window, which INIT cannot widen; readahead.c raises the bdi's
     * read_ahead_kb after INIT when it may. */
    conn->max_write = 1u << 20;
    vmnt_ctx *c = vmnt_ctx_get();
    vmnt_committer_start(c); /* here: a thread started before the fork dies in it */
    return c;
}

static void op_destroy(void *private_data)
{
    vmnt_volume_close(private_data);
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
            free(w);
            left++;
        }
        (void)pthread_mutex_unlock(&c->files_lock);
    }
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

void vmnt_ops_volume(struct fuse_operations *ops)
{
    ops->init = op_init;
    ops->destroy = op_destroy;
}
