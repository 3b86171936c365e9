/* File contents: open/create, read, write, truncate, fsync, release. The
 * vd_file handle lives in fi->fh (wrapped, see vmnt_file) from open to
 * release. */
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

static int flags_map(int oflags)
{
    int f;
    switch (oflags & O_ACCMODE) {
    case O_RDONLY:
        f = VD_O_RDONLY;
        break;
    case O_WRONLY:
        f = VD_O_WRONLY;
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
    if (oflags & O_APPEND)
        f |= VD_O_APPEND;
    return f;
}

static int file_open(const char *what, const char *path, int vflags,
                     struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_ctx_get();
    vmnt_readahead_widen_once(c);
    vmnt_file *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->path = strdup(path);
    if (!w->path) {
        free(w);
        return -ENOMEM;
    }
    vd_err e = vd_file_open(c->ci.fs, path, vflags, &w->f);
    if (e != VD_OK) {
        free(w->path);
        free(w);
        return vmnt_fail(what, path, e);
    }
    if (pthread_mutex_lock(&c->files_lock) != 0) {
        (void)vd_file_close(w->f);
        free(w->path);
        free(w);
        return -EIO;
    }
    w->next = c->files;
    if (c->files)
        c->files->prev = w;
    c->files = w;
    (void)pthread_mutex_unlock(&c->files_lock);
    fi->fh = (uint64_t)(uintptr_t)w;
    return 0;
}

static int op_open(const char *path, struct fuse_file_info *fi)
{
    return file_open("open", path, flags_map(fi->flags), fi);
}

static int op_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)mode; /* FAT stores no permission bits */
    return file_open("create", path, flags_map(fi->flags) | VD_O_CREAT, fi);
}

static int op_read(const char *path, char *buf, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
    vmnt_file *w = file_of(fi);
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
        return vmnt_fail("read", path ? path : w->path, e);
    return (int)total;
}

static int op_write(const char *path, const char *buf, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    size_t done = 0;
    vd_err e = vd_file_write(file_of(fi)->f, (uint64_t)off, buf, size, &done);
    if (e != VD_OK)
        return vmnt_fail("write", path ? path : file_of(fi)->path, e);
    return (int)done;
}

static int op_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
    if (size < 0)
        return -EINVAL;
    if (fi && fi->fh) {
        vd_err e = vd_file_truncate(file_of(fi)->f, (uint64_t)size);
        return e == VD_OK ? 0 : vmnt_fail("truncate", path ? path : file_of(fi)->path, e);
    }
    if (!path)
        return -ENOENT; /* an unlinked file, without its handle */
    vd_file *f = NULL;
    vd_err e = vd_file_open(vmnt_ctx_get()->ci.fs, path, VD_O_WRONLY, &f);
    if (e == VD_OK) {
        e = vd_file_truncate(f, (uint64_t)size);
        vd_err e2 = vd_file_close(f);
        if (e == VD_OK)
            e = e2;
    }
    return e == VD_OK ? 0 : vmnt_fail("truncate", path, e);
}

static int op_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync; /* a sync commits the whole image: data and metadata */
    vd_err e = vd_file_sync(file_of(fi)->f);
    return e == VD_OK ? 0 : vmnt_fail("fsync", path ? path : file_of(fi)->path, e);
}

static int op_flush(const char *path, struct fuse_file_info *fi)
{
    /* close(2) promises nothing about durability (fsync does), and writes
     * are already in the image's cache: nothing to do. */
    (void)path;
    (void)fi;
    return 0;
}

static int op_release(const char *path, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_ctx_get();
    vmnt_file *w = file_of(fi);
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return -EIO;
    if (w->prev)
        w->prev->next = w->next;
    else
        c->files = w->next;
    if (w->next)
        w->next->prev = w->prev;
    (void)pthread_mutex_unlock(&c->files_lock);
    vd_err e = vd_file_close(w->f);
    int rc = e == VD_OK ? 0 : vmnt_fail("release", path ? path : w->path, e);
    free(w->path);
    free(w);
    fi->fh = 0;
    return rc;
}

void vmnt_ops_file(struct fuse_operations *ops)
{
    ops->open = op_open;
    ops->create = op_create;
    ops->read = op_read;
    ops->write = op_write;
    ops->truncate = op_truncate;
    ops->fsync = op_fsync;
    ops->flush = op_flush;
    ops->release = op_release;
}
