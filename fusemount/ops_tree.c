/* The name-space operations: attributes, listings, directories, names,
 * symbolic links, times, space. Each is one library call; the library
 * serializes calls on the volume with its own lock (vdisk/fs.h), so these
 * need none. The kernel resolves paths itself, following links through
 * readlink, so every call here acts on the path's last component as it
 * is: lstat and lutimes, never the following variants. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhdmount.h"

static void stat_fill(const vmnt_ctx *c, const vd_stat *vs, const char *path,
                      struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_mode = vmnt_mode(c, vs, path); /* as vfat shows it (modes.c) */
    st->st_nlink = vs->is_dir ? 2 : 1;
    st->st_uid = c->uid;
    st->st_gid = c->gid;
    st->st_size = (off_t)vs->size;
    st->st_blksize = c->cluster_bytes;
    uint64_t cl = c->cluster_bytes;
    st->st_blocks = (blkcnt_t)((vs->size + cl - 1) / cl * (cl / 512));
    st->st_atim.tv_sec = vs->atime_ns / 1000000000;
    st->st_atim.tv_nsec = vs->atime_ns % 1000000000;
    st->st_mtim.tv_sec = vs->mtime_ns / 1000000000;
    st->st_mtim.tv_nsec = vs->mtime_ns % 1000000000;
    st->st_ctim.tv_sec = vs->ctime_ns / 1000000000;
    st->st_ctim.tv_nsec = vs->ctime_ns % 1000000000;
}

static int op_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_ctx_get();
    vd_stat vs;
    vd_err e;
    const char *name = path;
    if (fi && fi->fh) {
        const vmnt_file *w = (const vmnt_file *)(uintptr_t)fi->fh;
        e = vd_file_stat(w->f, &vs);
        name = w->path;
    } else if (!path) {
        return -ENOENT; /* an unlinked file, asked without its handle */
    } else {
        e = vd_fs_lstat(c->ci.fs, path, &vs);
    }
    if (e != VD_OK)
        return vmnt_fail("stat", path, e);
    stat_fill(c, &vs, name, st);
    return 0;
}

/* Listings open their own directory handle for each pass instead of
 * holding one between opendir and releasedir: the library refuses to
 * remove a directory that is being listed, and `rm -r` keeps a parent
 * open while it removes the children. */
static int op_opendir(const char *path, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_ctx_get();
    vd_dir *d = NULL;
    vd_err e = vd_dir_open(c->ci.fs, path, &d);
    if (e == VD_OK)
        e = vd_dir_close(d);
    fi->fh = 0;
    if (e != VD_OK)
        return vmnt_fail("opendir", path, e);
    char *copy = strdup(path); /* readdir gets a NULL path (nullpath_ok) */
    if (!copy)
        return -ENOMEM;
    fi->fh = (uint64_t)(uintptr_t)copy;
    return 0;
}

static int op_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
                      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
    (void)off;
    (void)flags;
    if (!path)
        path = fi && fi->fh ? (const char *)(uintptr_t)fi->fh : NULL;
    if (!path)
        return -ENOENT;
    vmnt_ctx *c = vmnt_ctx_get();
    vd_dir *d = NULL;
    vd_dirent ent;
    vd_err e = vd_dir_open(c->ci.fs, path, &d);
    if (e != VD_OK)
        goto out;
    /* Offset 0 to the filler: libfuse gathers the whole listing in one
     * call, so a directory changing between calls cannot skip entries. */
    if (filler(buf, ".", NULL, 0, 0) != 0 || filler(buf, "..", NULL, 0, 0) != 0)
        goto out;
    while ((e = vd_dir_read(d, &ent)) == VD_OK) {
        struct stat st;
        memset(&st, 0, sizeof st);
        st.st_mode = ent.is_link ? S_IFLNK : ent.is_dir ? S_IFDIR : S_IFREG;
        if (filler(buf, ent.name, &st, 0, 0) != 0)
            break;
    }
    if (e == VD_ERR_NOENT)
        e = VD_OK;
out:
    if (d) {
        vd_err e2 = vd_dir_close(d);
        if (e == VD_OK)
            e = e2;
    }
    return e == VD_OK ? 0 : vmnt_fail("readdir", path, e);
}

static int op_releasedir(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    free((char *)(uintptr_t)fi->fh);
    fi->fh = 0;
    return 0;
}

static int op_mkdir(const char *path, mode_t mode)
{
    (void)mode; /* FAT stores no permission bits */
    vd_err e = vd_fs_mkdir(vmnt_ctx_get()->ci.fs, path);
    return e == VD_OK ? 0 : vmnt_fail("mkdir", path, e);
}

static int op_rmdir(const char *path)
{
    vd_err e = vd_fs_rmdir(vmnt_ctx_get()->ci.fs, path);
    return e == VD_OK ? 0 : vmnt_fail("rmdir", path, e);
}

static int op_unlink(const char *path)
{
    vd_err e = vd_fs_unlink(vmnt_ctx_get()->ci.fs, path);
    return e == VD_OK ? 0 : vmnt_fail("unlink", path, e);
}

static int op_rename(const char *from, const char *to, unsigned int flags)
{
    /* vfat's answer to RENAME_EXCHANGE and RENAME_WHITEOUT. */
    if (flags & ~(unsigned int)RENAME_NOREPLACE)
        return -EINVAL;
    vd_err e = vd_fs_rename(vmnt_ctx_get()->ci.fs, from, to,
                            (flags & RENAME_NOREPLACE) ? VD_RENAME_NOREPLACE : 0);
    if (e == VD_ERR_PERM)
        return -EINVAL; /* a directory into its own subtree, as rename(2) says */
    if (e == VD_ERR_NAME)
        return -vmnt_name_errno(to); /* the source's name was already stored */
    return e == VD_OK ? 0 : vmnt_fail("rename", from, e);
}

static int op_symlink(const char *target, const char *path)
{
    if (strlen(target) > VD_FS_LINK_MAX)
        return -ENAMETOOLONG; /* the format's limit (FORMAT.md) */
    vd_err e = vd_fs_symlink(vmnt_ctx_get()->ci.fs, target, path);
    return e == VD_OK ? 0 : vmnt_fail("symlink", path, e);
}

static int op_readlink(const char *path, char *buf, size_t size)
{
    char target[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    vd_err e = vd_fs_readlink(vmnt_ctx_get()->ci.fs, path, target, sizeof target, &len);
    if (e != VD_OK)
        return vmnt_fail("readlink", path, e);
    if (size == 0)
        return -EINVAL;
    /* FUSE's contract: NUL-terminated, truncated to the buffer. */
    if (len >= size)
        len = size - 1;
    memcpy(buf, target, len);
    buf[len] = '\0';
    return 0;
}

static int64_t ts_ns(const struct timespec *ts, int64_t now_ns, int64_t old_ns)
{
    if (ts->tv_nsec == UTIME_OMIT)
        return old_ns;
    if (ts->tv_nsec == UTIME_NOW)
        return now_ns;
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int op_utimens(const char *path, const struct timespec tv[2],
                      struct fuse_file_info *fi)
{
    (void)fi;
    vmnt_ctx *c = vmnt_ctx_get();
    vd_stat vs;
    vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
    if (e != VD_OK)
        return vmnt_fail("utimens", path, e);
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return -errno;
    int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    int64_t at = tv ? ts_ns(&tv[0], now_ns, vs.atime_ns) : now_ns;
    int64_t mt = tv ? ts_ns(&tv[1], now_ns, vs.mtime_ns) : now_ns;
    e = vd_fs_lutimes(c->ci.fs, path, at, mt);
    return e == VD_OK ? 0 : vmnt_fail("utimens", path, e);
}

static int op_statfs(const char *path, struct statvfs *sv)
{
    vd_statfs st;
    vd_err e = vd_fs_statfs(vmnt_ctx_get()->ci.fs, &st);
    if (e != VD_OK)
        return vmnt_fail("statfs", path, e);
    memset(sv, 0, sizeof *sv);
    sv->f_bsize = st.cluster_bytes;
    sv->f_frsize = st.cluster_bytes;
    sv->f_blocks = st.total_clusters;
    sv->f_bfree = st.free_clusters;
    sv->f_bavail = st.free_clusters;
    sv->f_fsid = st.volume_id;
    /* 255 UTF-16 units are at most 765 bytes of UTF-8. */
    sv->f_namemax = 765;
    return 0;
}

static int op_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
    (void)datasync;
    (void)fi;
    /* A directory's entries are metadata of the whole volume: a full sync
     * (C2 of the design) is the only kind there is. */
    vd_err e = vd_fs_sync(vmnt_ctx_get()->ci.fs);
    return e == VD_OK ? 0 : vmnt_fail("fsyncdir", path, e);
}

void vmnt_ops_tree(struct fuse_operations *ops)
{
    ops->getattr = op_getattr;
    ops->opendir = op_opendir;
    ops->readdir = op_readdir;
    ops->releasedir = op_releasedir;
    ops->mkdir = op_mkdir;
    ops->rmdir = op_rmdir;
    ops->unlink = op_unlink;
    ops->rename = op_rename;
    ops->symlink = op_symlink;
    ops->readlink = op_readlink;
    ops->utimens = op_utimens;
    ops->statfs = op_statfs;
    ops->fsyncdir = op_fsyncdir;
}
