/* File contents: open/create, read, write, flush, fsync, release. The
 * vd_file handle lives in fi->fh (wrapped, see vmnt_file) from open to
 * release. Pages stay cached across opens (keep_cache): one file is one
 * kernel inode (nodes.c) and nothing but this mount changes the image. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhdmount.h"

static vmnt_file *file_of(const struct fuse_file_info *fi)
{
    return (vmnt_file *)(uintptr_t)fi->fh;
}

static int flags_map(const vmnt_ctx *c, int oflags)
{
    int f;
    switch (oflags & O_ACCMODE) {
    case O_RDONLY:
        f = VD_O_RDONLY;
        break;
    case O_WRONLY:
        /* With the writeback cache the kernel reads pages around partial
         * writes through the same handle. */
        f = c->writeback ? VD_O_RDWR : VD_O_WRONLY;
        break;
    default:
        f = VD_O_RDWR;
        break;
    }
    if (oflags & O_CREAT)
        f |= VD_O_CREAT;
    if (oflags & O_EXCL)
        f |= VD_O_EXCL;
    if (oflags & O_TRUNC)
        f |= VD_O_TRUNC;
    /* With the writeback cache the kernel places appends itself (at its
     * own i_size) and sends their offsets. */
    if ((oflags & O_APPEND) && !c->writeback)
        f |= VD_O_APPEND;
    return f;
}

/* Keep the open handle f of path (node n) in fi. 0 or a positive errno
 * (f closed). */
static int file_register(vmnt_ctx *c, vd_file *f, const char *path, vmnt_node *n, int oflags,
                         struct fuse_file_info *fi)
{
    vmnt_file *w = calloc(1, sizeof *w);
    if (w)
        w->path = strdup(path);
    if (!w || !w->path || pthread_mutex_lock(&c->files_lock) != 0) {
        (void)vd_file_close(f);
        if (w)
            free(w->path);
        free(w);
        return ENOMEM;
    }
    w->f = f;
    w->writer = (oflags & O_ACCMODE) != O_RDONLY;
    w->node = n;
    vmnt_node_open(&c->nodes, n, +1);
    if (oflags & O_TRUNC)
        vmnt_wgate_resized(&c->nodes, n, 0);
    w->next = c->files;
    if (c->files)
        c->files->prev = w;
    c->files = w;
    c->nwriters += w->writer ? 1u : 0u;
    (void)pthread_mutex_unlock(&c->files_lock);
    fi->fh = (uint64_t)(uintptr_t)w;
    fi->keep_cache = 1;
    return 0;
}

static void file_free(vmnt_ctx *c, vmnt_file *w)
{
    vmnt_node_open(&c->nodes, w->node, -1);
    free(w->path);
    free(w);
}

/* Unlink w from the open-file list and close it: 0 or a positive errno. */
static int file_close(vmnt_ctx *c, vmnt_file *w)
{
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return EIO;
    if (w->prev)
        w->prev->next = w->next;
    else
        c->files = w->next;
    if (w->next)
        w->next->prev = w->prev;
    c->nwriters -= w->writer ? 1u : 0u;
    (void)pthread_mutex_unlock(&c->files_lock);
    vd_err e = vd_file_close(w->f);
    int rc = e == VD_OK ? 0 : vmnt_fail(c, "release", w->path, e);
    file_free(c, w);
    return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_node *n = vmnt_node_get(&c->nodes, ino);
    if (!n || pthread_rwlock_rdlock(&c->nodes.ns) != 0) {
        (void)fuse_reply_err(req, n ? EIO : ESTALE);
        return;
    }
    vmnt_readahead_widen_once(c);
    int err;
    char *path = vmnt_node_path(&c->nodes, n, NULL, &err);
    if (path) {
        vd_file *f = NULL;
        vd_err e = vd_file_open(c->ci.fs, path, flags_map(c, fi->flags), &f);
        err = e == VD_OK ? file_register(c, f, path, n, fi->flags, fi)
                         : vmnt_fail(c, "open", path, e);
    }
    free(path);
    (void)pthread_rwlock_unlock(&c->nodes.ns);
    if (err) {
        (void)fuse_reply_err(req, err);
        return;
    }
    if (fuse_reply_open(req, fi) != 0)
        (void)file_close(c, file_of(fi)); /* the opener is gone (interrupted) */
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
    (void)mode; /* FAT stores no permission bits */
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_readahead_widen_once(c);
    vmnt_node *pn = vmnt_node_get(&c->nodes, parent);
    if (!pn || pthread_rwlock_rdlock(&c->nodes.ns) != 0) {
        (void)fuse_reply_err(req, pn ? EIO : ESTALE);
        return;
    }
    int err;
    vd_stat vs;
    vmnt_node *n = NULL;
    char *path = vmnt_node_path(&c->nodes, pn, name, &err);
    if (path) {
        /* Open (and create), then learn the node of the entry. */
        vd_file *f = NULL;
        vd_err e = vd_file_open(c->ci.fs, path, flags_map(c, fi->flags) | VD_O_CREAT, &f);
        if (e == VD_OK)
            e = vd_file_stat(f, &vs);
        err = e == VD_OK ? 0 : vmnt_fail(c, "create", path, e);
        if (!err) {
            n = vmnt_node_learn(&c->nodes, pn, name, vs.entry_id);
            err = n ? 0 : ENOMEM;
        }
        if (!err) {
            err = file_register(c, f, path, n, fi->flags, fi);
            if (err) {
                vmnt_node_forget(&c->nodes, n, 1);
                n = NULL;
            }
        } else if (f) {
            (void)vd_file_close(f);
        }
    }
    free(path);
    (void)pthread_rwlock_unlock(&c->nodes.ns);
    if (err) {
        (void)fuse_reply_err(req, err);
        return;
    }
    struct fuse_entry_param ep;
    memset(&ep, 0, sizeof ep);
    ep.ino = n->ino;
    ep.attr_timeout = 1.0;
    ep.entry_timeout = 1.0;
    vmnt_stat_fill(c, &vs, n, &ep.attr);
    if (fuse_reply_create(req, &ep, fi) != 0) {
        (void)file_close(c, file_of(fi));
        vmnt_node_forget(&c->nodes, n, 1);
    }
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    (void)ino;
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_file *w = file_of(fi);
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        (void)fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t total = 0;
    vd_err e = VD_OK;
    while (total < size) {
        size_t done = 0;
        e = vd_file_read(w->f, (uint64_t)off + total, buf + total, size - total, &done);
        if (e != VD_OK || done == 0)
            break;
        total += done;
    }
    /* Nothing from a read that failed verification reaches the caller,
     * not even the part before the bad block. */
    if (e != VD_OK)
        (void)fuse_reply_err(req, vmnt_fail(c, "read", w->path, e));
    else
        (void)fuse_reply_buf(req, buf, total);
    free(buf);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino;
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_file *w = file_of(fi);
    size_t done = 0;
    int slot = vmnt_wgate_enter(&c->nodes, w->node, (uint64_t)off);
    vd_err e = vd_file_write(w->f, (uint64_t)off, buf, size, &done);
    vmnt_wgate_leave(&c->nodes, w->node, slot, (uint64_t)off + done);
    if (e != VD_OK)
        (void)fuse_reply_err(req, vmnt_fail(c, "write", w->path, e));
    else
        (void)fuse_reply_write(req, done);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync; /* a sync commits the whole image: data and metadata */
    vmnt_ctx *c = vmnt_req_ctx(req);
    /* The kernel has written this file's dirty pages before asking: the
     * reply goes only after the commit and the anchor (DESIGN C2). */
    vd_err e = vd_file_sync(file_of(fi)->f);
    (void)fuse_reply_err(req, e == VD_OK ? 0 : vmnt_fail(c, "fsync", file_of(fi)->path, e));
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    /* close(2) promises nothing about durability (fsync does), and writes
     * are already in the image's cache (the kernel writes a file's dirty
     * pages before it would send this, and reports their errors itself):
     * nothing to do. ENOSYS tells the kernel so for the whole mount, and
     * it stops sending FLUSH (one round trip less per close(2)); POSIX
     * locks, the other reason for FLUSH, are the kernel's own here. */
    (void)ino;
    (void)fi;
    (void)fuse_reply_err(req, ENOSYS);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    vmnt_ctx *c = vmnt_req_ctx(req);
    int rc = file_close(c, file_of(fi));
    fi->fh = 0;
    (void)fuse_reply_err(req, rc);
}

void vmnt_ops_file(struct fuse_lowlevel_ops *ops)
{
    ops->open = op_open;
    ops->create = op_create;
    ops->read = op_read;
    ops->write = op_write;
    ops->fsync = op_fsync;
    ops->flush = op_flush;
    ops->release = op_release;
}
