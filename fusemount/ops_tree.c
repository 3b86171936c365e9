/* The name-space operations: lookups, attributes, listings, directories,
 * names, symbolic links, times, space. Each turns its inode into a path
 * (nodes.c) and makes one library call; the library serializes calls on
 * the volume with its own lock (vdisk/fs.h). The kernel resolves paths
 * itself, following links through readlink, so every call here acts on
 * the path's last component as it is: lstat and lutimes, never the
 * following variants. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "vhdmount.h"

/* This mount is the only writer of the image (the flock), so the kernel
 * may keep attributes and names for 1 s, negative ones too (vhdmount(8),
 * CONCURRENCY AND CACHING). */
#define VMNT_TIMEOUT 1.0

void vmnt_stat_fill(const vmnt_ctx *c, const vd_stat *vs, const vmnt_node *n,
                    struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = n->ino;
    st->st_mode = vmnt_mode(c, vs, n->name); /* as vfat shows it (modes.c) */
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

/* The path of ino (and of its child name), with the name-space lock held
 * shared (exclusive with excl) on success: release with path_done. NULL
 * with *err set otherwise (nothing held). */
static char *path_take(vmnt_ctx *c, fuse_ino_t ino, const char *name, int excl,
                       vmnt_node **node, int *err)
{
    vmnt_node *n = vmnt_node_get(&c->nodes, ino);
    if (!n) {
        *err = ESTALE;
        return NULL;
    }
    if ((excl ? pthread_rwlock_wrlock(&c->nodes.ns) : pthread_rwlock_rdlock(&c->nodes.ns)) != 0) {
        *err = EIO;
        return NULL;
    }
    char *p = vmnt_node_path(&c->nodes, n, name, err);
    if (!p)
        (void)pthread_rwlock_unlock(&c->nodes.ns);
    if (node)
        *node = n;
    return p;
}

static void path_done(vmnt_ctx *c, char *path)
{
    free(path);
    (void)pthread_rwlock_unlock(&c->nodes.ns);
}

int vmnt_node_stat(vmnt_ctx *c, vmnt_node *n, struct stat *st)
{
    int err;
    vd_stat vs;
    char *path = path_take(c, n->ino, NULL, 0, NULL, &err);
    if (path) {
        vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
        err = e == VD_OK ? 0 : vmnt_fail(c, "stat", path, e);
        path_done(c, path);
        if (err == 0)
            vmnt_stat_fill(c, &vs, n, st);
        return err;
    }
    if (err != ENOENT)
        return err;
    /* Unlinked while open: the attributes are an open handle's. */
    vd_err e = VD_ERR_NOENT;
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return EIO;
    for (vmnt_file *w = c->files; w; w = w->next)
        if (w->node == n) {
            e = vd_file_stat(w->f, &vs);
            break;
        }
    (void)pthread_mutex_unlock(&c->files_lock);
    if (e != VD_OK)
        return vmnt_errno(e);
    vmnt_stat_fill(c, &vs, n, st);
    return 0;
}

/* Look up parent/name (held: the name-space lock) and answer the entry. */
static void entry_reply(fuse_req_t req, vmnt_ctx *c, vmnt_node *parent, const char *name,
                        const char *path, const char *what)
{
    vd_stat vs;
    vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
    if (e != VD_OK) {
        int err = vmnt_fail(c, what, path, e);
        if (err == ENOENT && strcmp(what, "lookup") == 0) {
            /* A negative entry: the kernel may remember "no such name". */
            struct fuse_entry_param ep;
            memset(&ep, 0, sizeof ep);
            ep.entry_timeout = VMNT_TIMEOUT;
            (void)fuse_reply_entry(req, &ep);
            return;
        }
        (void)fuse_reply_err(req, err);
        return;
    }
    vmnt_node *n = vmnt_node_learn(&c->nodes, parent, name, vs.entry_id);
    if (!n) {
        (void)fuse_reply_err(req, ENOMEM);
        return;
    }
    struct fuse_entry_param ep;
    memset(&ep, 0, sizeof ep);
    ep.ino = n->ino;
    ep.attr_timeout = VMNT_TIMEOUT;
    ep.entry_timeout = VMNT_TIMEOUT;
    vmnt_stat_fill(c, &vs, n, &ep.attr);
    if (fuse_reply_entry(req, &ep) != 0)
        vmnt_node_forget(&c->nodes, n, 1); /* the kernel did not take it */
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_node *pn;
    int err;
    char *path = path_take(c, parent, name, 0, &pn, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    entry_reply(req, c, pn, name, path, "lookup");
    path_done(c, path);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_node *n = vmnt_node_get(&c->nodes, ino);
    if (n)
        vmnt_node_forget(&c->nodes, n, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    for (size_t i = 0; i < count; i++) {
        vmnt_node *n = vmnt_node_get(&c->nodes, forgets[i].ino);
        if (n)
            vmnt_node_forget(&c->nodes, n, forgets[i].nlookup);
    }
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    struct stat st;
    vmnt_node *n = vmnt_node_get(&c->nodes, ino);
    int err = ESTALE;
    if (n && fi && fi->fh) {
        const vmnt_file *w = (const vmnt_file *)(uintptr_t)fi->fh;
        vd_stat vs;
        vd_err e = vd_file_stat(w->f, &vs);
        err = e == VD_OK ? 0 : vmnt_fail(c, "stat", w->path, e);
        if (err == 0)
            vmnt_stat_fill(c, &vs, n, &st);
    } else if (n) {
        err = vmnt_node_stat(c, n, &st);
    }
    if (err)
        (void)fuse_reply_err(req, err);
    else
        (void)fuse_reply_attr(req, &st, VMNT_TIMEOUT);
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* The times part of a setattr: one vd_fs_lutimes. *unchanged is set when
 * nothing had to be written, and vs is then the entry as it stands. */
static int times_set(vmnt_ctx *c, const char *path, const struct stat *attr, int to_set,
                     vd_stat *vs_out, int *unchanged)
{
    vd_stat vs;
    *unchanged = 0;
    vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
    if (e != VD_OK)
        return vmnt_fail(c, "utimens", path, e);
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return errno;
    int64_t at = vs.atime_ns, mt = vs.mtime_ns;
    if (to_set & FUSE_SET_ATTR_ATIME_NOW)
        at = ts_ns(&now);
    else if (to_set & FUSE_SET_ATTR_ATIME)
        at = ts_ns(&attr->st_atim);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW)
        mt = ts_ns(&now);
    else if (to_set & FUSE_SET_ATTR_MTIME)
        mt = ts_ns(&attr->st_mtim);
    /* The writeback cache sends the kernel's mtime of every file it wrote
     * back; the library already set the entry's at those writes. Where
     * FAT's 2 s would store the same value, nothing is written. */
    if (!(to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) && mt >= 0 &&
        mt / 2000000000 == vs.mtime_ns / 2000000000) {
        *vs_out = vs;
        *unchanged = 1;
        return 0;
    }
    e = vd_fs_lutimes(c->ci.fs, path, at, mt);
    return e == VD_OK ? 0 : vmnt_fail(c, "utimens", path, e);
}

/* The size part: through the handle when there is one (an unlinked open
 * file has no path), else by opening the path. */
static int size_set(vmnt_ctx *c, const char *path, off_t size, struct fuse_file_info *fi)
{
    if (size < 0)
        return EINVAL;
    if (fi && fi->fh) {
        vmnt_file *w = (vmnt_file *)(uintptr_t)fi->fh;
        vd_err e = vd_file_truncate(w->f, (uint64_t)size);
        if (e == VD_OK)
            vmnt_wgate_resized(&c->nodes, w->node, (uint64_t)size);
        return e == VD_OK ? 0 : vmnt_fail(c, "truncate", w->path, e);
    }
    if (!path)
        return ENOENT;
    vd_file *f = NULL;
    vd_err e = vd_file_open(c->ci.fs, path, VD_O_WRONLY, &f);
    if (e == VD_OK) {
        e = vd_file_truncate(f, (uint64_t)size);
        vd_err e2 = vd_file_close(f);
        if (e == VD_OK)
            e = e2;
    }
    return e == VD_OK ? 0 : vmnt_fail(c, "truncate", path, e);
}

/* The time bits of a setattr, FUSE_SET_ATTR_CTIME (the writeback cache's)
 * included. */
#define VMNT_SET_TIMES                                                                  \
    (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |            \
     FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_node *n;
    int err;
    char *path = path_take(c, ino, NULL, 0, &n, &err);
    if (!path && err != ENOENT) {
        (void)fuse_reply_err(req, err);
        return;
    }
    /* Without a path (unlinked while open) only the size can change; the
     * times the writeback cache sends at close have nowhere to go and
     * are dropped (an error would fail the close). */
    if (!path && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
        (void)fuse_reply_err(req, ENOENT);
        return;
    }
    err = 0;
    if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
        err = vmnt_modes_set(c, path, n->name, attr, to_set);
    if (!err && (to_set & FUSE_SET_ATTR_SIZE))
        err = size_set(c, path, attr->st_size, fi);
    /* FUSE_SET_ATTR_CTIME (the writeback cache's) has nowhere to go: FAT's
     * third time is the creation time. */
    vd_stat vs;
    int unchanged = 0;
    if (!err && path && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
                           FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)))
        err = times_set(c, path, attr, to_set, &vs, &unchanged);
    if (path)
        path_done(c, path);
    struct stat st;
    /* The writeback cache's mtime at every close and fsync, already
     * stored to FAT's 2 s: times_set's lookup is the answer (one path walk
     * under the volume lock instead of two). */
    if (!err && unchanged && !(to_set & ~VMNT_SET_TIMES))
        vmnt_stat_fill(c, &vs, n, &st);
    else if (!err)
        err = vmnt_node_stat(c, n, &st);
    if (err == ENOENT && !path && !(to_set & ~VMNT_SET_TIMES)) {
        /* The times the kernel writes back as it forgets a file that was
         * removed (or renamed over) and is no longer open: no name, no
         * handle, nothing to store. An error here is kept by the kernel
         * as a writeback error of the whole mount, and the next syncfs(2)
         * on it would fail with ENOENT; the kernel ignores these
         * attributes, so answer what is left of the file. */
        memset(&st, 0, sizeof st);
        st.st_ino = n->ino;
        st.st_mode = S_IFREG | (0777 & ~c->fmask);
        st.st_uid = c->uid;
        st.st_gid = c->gid;
        st.st_blksize = c->cluster_bytes;
        err = 0;
    }
    if (err)
        (void)fuse_reply_err(req, err);
    else
        (void)fuse_reply_attr(req, &st, VMNT_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    int err;
    char *path = path_take(c, ino, NULL, 0, NULL, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    char target[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    vd_err e = vd_fs_readlink(c->ci.fs, path, target, sizeof target, &len);
    err = e == VD_OK ? 0 : vmnt_fail(c, "readlink", path, e);
    path_done(c, path);
    if (err)
        (void)fuse_reply_err(req, err);
    else
        (void)fuse_reply_readlink(req, target);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)mode; /* FAT stores no permission bits */
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_node *pn;
    int err;
    char *path = path_take(c, parent, name, 0, &pn, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    vd_err e = vd_fs_mkdir(c->ci.fs, path);
    if (e == VD_OK)
        entry_reply(req, c, pn, name, path, "mkdir");
    else
        (void)fuse_reply_err(req, vmnt_fail(c, "mkdir", path, e));
    path_done(c, path);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    if (strlen(link) > VD_FS_LINK_MAX) {
        (void)fuse_reply_err(req, ENAMETOOLONG); /* the format's limit (FORMAT.md) */
        return;
    }
    vmnt_node *pn;
    int err;
    char *path = path_take(c, parent, name, 0, &pn, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    vd_err e = vd_fs_symlink(c->ci.fs, link, path);
    if (e == VD_OK)
        entry_reply(req, c, pn, name, path, "symlink");
    else
        (void)fuse_reply_err(req, vmnt_fail(c, "symlink", path, e));
    path_done(c, path);
}

/* The other names the kernel may still hold for an entry that went or
 * moved (nodes.c): invalidated once the operation's reply is out and
 * every lock of ours released, since the kernel takes the directory's
 * lock for it. */
typedef struct stale_names {
    char **v;
    unsigned n;
    fuse_ino_t parent;
} stale_names;

static void stale_take(vmnt_ctx *c, stale_names *s, uint64_t key)
{
    s->v = vmnt_node_names(&c->nodes, key, &s->parent, &s->n);
}

static void stale_inval(vmnt_ctx *c, stale_names *s, fuse_ino_t used_parent, const char *used)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->parent != used_parent || strcmp(s->v[i], used) != 0)
            (void)fuse_lowlevel_notify_inval_entry(c->se, s->parent, s->v[i],
                                                   strlen(s->v[i]));
    vmnt_names_free(s->v, s->n);
    s->v = NULL;
    s->n = 0;
}

/* unlink and rmdir: the entry goes, its node keeps its inode for the
 * kernel's references and open handles but loses its key (a later entry
 * in the same slot is another file). */
static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int dir)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    const char *what = dir ? "rmdir" : "unlink";
    int err;
    char *path = path_take(c, parent, name, 1, NULL, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    vd_stat vs;
    stale_names stale = {NULL, 0, 0};
    vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
    if (e == VD_OK)
        e = dir ? vd_fs_rmdir(c->ci.fs, path) : vd_fs_unlink(c->ci.fs, path);
    if (e == VD_OK) {
        stale_take(c, &stale, vs.entry_id);
        vmnt_node_unkey(&c->nodes, vs.entry_id);
    }
    err = e == VD_OK ? 0 : vmnt_fail(c, what, path, e);
    path_done(c, path);
    (void)fuse_reply_err(req, err);
    stale_inval(c, &stale, parent, name);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, 1);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    /* vfat's answer to RENAME_EXCHANGE and RENAME_WHITEOUT. */
    if (flags & ~(unsigned int)RENAME_NOREPLACE) {
        (void)fuse_reply_err(req, EINVAL);
        return;
    }
    int err;
    char *from = path_take(c, parent, name, 1, NULL, &err);
    if (!from) {
        (void)fuse_reply_err(req, err);
        return;
    }
    /* The lock is held: the second path is built under it. */
    vmnt_node *np = vmnt_node_get(&c->nodes, newparent);
    char *to = np ? vmnt_node_path(&c->nodes, np, newname, &err) : NULL;
    if (!np)
        err = ESTALE;
    vd_stat src, dst;
    stale_names stale_src = {NULL, 0, 0}, stale_dst = {NULL, 0, 0};
    int replaced = 0;
    vd_err e = VD_OK;
    if (to) {
        e = vd_fs_lstat(c->ci.fs, from, &src);
        if (e == VD_OK)
            replaced = vd_fs_lstat(c->ci.fs, to, &dst) == VD_OK;
        if (e == VD_OK)
            e = vd_fs_rename(c->ci.fs, from, to,
                             (flags & RENAME_NOREPLACE) ? VD_RENAME_NOREPLACE : 0);
    }
    if (to && e == VD_OK) {
        /* A rename onto another spelling of itself keeps the one entry. */
        stale_take(c, &stale_src, src.entry_id);
        if (replaced && dst.entry_id != src.entry_id) {
            stale_take(c, &stale_dst, dst.entry_id);
            vmnt_node_unkey(&c->nodes, dst.entry_id);
        }
        vd_stat now;
        if (vd_fs_lstat(c->ci.fs, to, &now) == VD_OK)
            (void)vmnt_node_move(&c->nodes, src.entry_id, np, newname, now.entry_id);
        else
            vmnt_node_unkey(&c->nodes, src.entry_id); /* lost: no path, never a wrong one */
        err = 0;
    } else if (to) {
        if (e == VD_ERR_PERM)
            err = EINVAL; /* a directory into its own subtree, as rename(2) says */
        else if (e == VD_ERR_NAME)
            err = vmnt_name_errno(to); /* the source's name was already stored */
        else
            err = vmnt_fail(c, "rename", from, e);
    }
    free(to);
    path_done(c, from);
    (void)fuse_reply_err(req, err);
    stale_inval(c, &stale_src, parent, name);
    stale_inval(c, &stale_dst, newparent, newname);
}

/* A listing is read whole at its first readdir (offset 0) and served from
 * that copy, so a directory changing between two readdir calls cannot
 * make entries skip or repeat. Each pass opens its own directory handle:
 * the library refuses to remove a directory that is being listed, and
 * `rm -r` keeps a parent open while it removes the children. */
typedef struct dir_entry {
    char *name;
    mode_t type;
} dir_entry;

/* Linked in the context (under files_lock) so that handles the kernel
 * never released (an end by signal; releasedir is sent without waiting)
 * are freed at the close. */
struct vmnt_dir {
    dir_entry *v;
    size_t n, cap;
    struct vmnt_dir *prev, *next;
};

static void dir_clear(vmnt_dir *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->v[i].name);
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}

static vd_err dir_push(vmnt_dir *d, const char *name, mode_t type)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 32;
        dir_entry *v = realloc(d->v, cap * sizeof *v);
        if (!v)
            return VD_ERR_NOMEM;
        d->v = v;
        d->cap = cap;
    }
    d->v[d->n].name = strdup(name);
    if (!d->v[d->n].name)
        return VD_ERR_NOMEM;
    d->v[d->n++].type = type;
    return VD_OK;
}

static vd_err dir_load(vmnt_ctx *c, const char *path, vmnt_dir *d)
{
    dir_clear(d);
    vd_dir *h = NULL;
    vd_dirent ent;
    vd_err e = vd_dir_open(c->ci.fs, path, &h);
    if (e == VD_OK)
        e = dir_push(d, ".", S_IFDIR);
    if (e == VD_OK)
        e = dir_push(d, "..", S_IFDIR);
    while (e == VD_OK && (e = vd_dir_read(h, &ent)) == VD_OK)
        e = dir_push(d, ent.name, ent.is_link ? S_IFLNK : ent.is_dir ? S_IFDIR : S_IFREG);
    if (e == VD_ERR_NOENT)
        e = VD_OK;
    if (h) {
        vd_err e2 = vd_dir_close(h);
        if (e == VD_OK)
            e = e2;
    }
    return e;
}

static void dir_free(vmnt_ctx *c, vmnt_dir *d)
{
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return; /* leaked rather than unlinked unsafely */
    if (d->prev)
        d->prev->next = d->next;
    else
        c->dirs = d->next;
    if (d->next)
        d->next->prev = d->prev;
    (void)pthread_mutex_unlock(&c->files_lock);
    dir_clear(d);
    free(d);
}

void vmnt_dirs_free(vmnt_ctx *c)
{
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return;
    while (c->dirs) {
        vmnt_dir *d = c->dirs;
        c->dirs = d->next;
        dir_clear(d);
        free(d);
    }
    (void)pthread_mutex_unlock(&c->files_lock);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    int err;
    char *path = path_take(c, ino, NULL, 0, NULL, &err);
    if (!path) {
        (void)fuse_reply_err(req, err);
        return;
    }
    vd_dir *h = NULL;
    vd_err e = vd_dir_open(c->ci.fs, path, &h);
    if (e == VD_OK)
        e = vd_dir_close(h);
    err = e == VD_OK ? 0 : vmnt_fail(c, "opendir", path, e);
    path_done(c, path);
    vmnt_dir *d = err ? NULL : calloc(1, sizeof *d);
    if (!err && (!d || pthread_mutex_lock(&c->files_lock) != 0))
        err = ENOMEM;
    if (err) {
        free(d);
        (void)fuse_reply_err(req, err);
        return;
    }
    d->next = c->dirs;
    if (c->dirs)
        c->dirs->prev = d;
    c->dirs = d;
    (void)pthread_mutex_unlock(&c->files_lock);
    fi->fh = (uint64_t)(uintptr_t)d;
    if (fuse_reply_open(req, fi) != 0)
        dir_free(c, d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    vmnt_ctx *c = vmnt_req_ctx(req);
    vmnt_dir *d = (vmnt_dir *)(uintptr_t)fi->fh;
    if (off == 0) {
        int err;
        char *path = path_take(c, ino, NULL, 0, NULL, &err);
        if (!path) {
            (void)fuse_reply_err(req, err);
            return;
        }
        vd_err e = dir_load(c, path, d);
        err = e == VD_OK ? 0 : vmnt_fail(c, "readdir", path, e);
        path_done(c, path);
        if (err) {
            dir_clear(d);
            (void)fuse_reply_err(req, err);
            return;
        }
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        (void)fuse_reply_err(req, ENOMEM);
        return;
    }
    size_t used = 0;
    for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
        struct stat st;
        memset(&st, 0, sizeof st);
        /* Not the inode number: that needs a lookup (as vfat, whose
         * readdir numbers are made up too). */
        st.st_ino = 0xffffffffu;
        st.st_mode = d->v[i].type;
        size_t need = fuse_add_direntry(req, buf + used, size - used, d->v[i].name, &st,
                                        (off_t)(i + 1));
        if (need > size - used)
            break;
        used += need;
    }
    (void)fuse_reply_buf(req, buf, used);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    vmnt_dir *d = (vmnt_dir *)(uintptr_t)fi->fh;
    if (d)
        dir_free(vmnt_req_ctx(req), d);
    (void)fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                        struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    (void)fi;
    vmnt_ctx *c = vmnt_req_ctx(req);
    /* A directory's entries are metadata of the whole volume: a full sync
     * (C2 of the design) is the only kind there is. */
    vd_err e = vd_fs_sync(c->ci.fs);
    (void)fuse_reply_err(req, e == VD_OK ? 0 : vmnt_fail(c, "fsyncdir", "/", e));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    vmnt_ctx *c = vmnt_req_ctx(req);
    vd_statfs st;
    vd_err e = vd_fs_statfs(c->ci.fs, &st);
    if (e != VD_OK) {
        (void)fuse_reply_err(req, vmnt_fail(c, "statfs", "/", e));
        return;
    }
    struct statvfs sv;
    memset(&sv, 0, sizeof sv);
    sv.f_bsize = st.cluster_bytes;
    sv.f_frsize = st.cluster_bytes;
    sv.f_blocks = st.total_clusters;
    sv.f_bfree = st.free_clusters;
    sv.f_bavail = st.free_clusters;
    sv.f_fsid = st.volume_id;
    /* 255 UTF-16 units are at most 765 bytes of UTF-8. */
    sv.f_namemax = 765;
    (void)fuse_reply_statfs(req, &sv);
}

void vmnt_ops_tree(struct fuse_lowlevel_ops *ops)
{
    ops->lookup = op_lookup;
    ops->forget = op_forget;
    ops->forget_multi = op_forget_multi;
    ops->getattr = op_getattr;
    ops->setattr = op_setattr;
    ops->readlink = op_readlink;
    ops->mkdir = op_mkdir;
    ops->symlink = op_symlink;
    ops->unlink = op_unlink;
    ops->rmdir = op_rmdir;
    ops->rename = op_rename;
    ops->opendir = op_opendir;
    ops->readdir = op_readdir;
    ops->releasedir = op_releasedir;
    ops->fsyncdir = op_fsyncdir;
    ops->statfs = op_statfs;
}
