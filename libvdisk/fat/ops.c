/* Path operations: stat, lstat, mkdir, rmdir, unlink, utimes, attributes. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

static void fill_stat(const fat_dent *d, int is_root, vd_stat *st)
{
    memset(st, 0, sizeof *st);
    st->attr = d->attr;
    st->is_dir = is_root || (d->attr & ATTR_DIRECTORY) != 0;
    st->size = st->is_dir ? 0 : d->size;
    st->first_cluster = d->first;
    st->mtime_ns = fat_time_decode(d->mdate, d->mtime, 0);
    st->atime_ns = fat_time_decode(d->adate, 0, 0);
    st->ctime_ns = fat_time_decode(d->cdate, d->ctime, d->ctenth);
}

static vd_err locked_fs_stat(vd_fs *fs, const char *path, int follow, vd_stat *st)
{
    if (!fs || !path || !st)
        return VD_ERR_INVAL;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    vd_err e = fat_path_walk(fs, path, follow, p);
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    if (e == VD_OK) {
        if (p->is_root) {
            memset(&p->d, 0, sizeof p->d);
            p->d.attr = ATTR_DIRECTORY;
            p->d.first = fs->root_clus;
            p->d.mdate = p->d.cdate = p->d.adate = (1 << 5) | 1;
        }
        fill_stat(&p->d, p->is_root, st);
        if (!p->is_root)
            st->entry_id = ((uint64_t)p->parent << 32) | p->d.slot;
        /* An open file's size lives in its node until stored. */
        fat_node *n = p->is_root ? NULL : fat_node_find(fs, p->parent, p->d.slot);
        if (n && !st->is_dir)
            st->size = n->size;
        if (p->link_len) { /* only when not followed */
            st->is_link = 1;
            st->size = p->link_len;
        }
    }
    free(p);
    return fat_op_end(fs, e);
}

static void new_dent(vd_fs *fs, fat_dent *d, uint8_t attr)
{
    memset(d, 0, sizeof *d);
    int64_t now = fat_now(fs);
    fat_time_encode(now, &d->cdate, &d->ctime, &d->ctenth);
    d->mdate = d->cdate;
    d->mtime = d->ctime;
    d->adate = d->cdate;
    d->attr = attr;
}

static vd_err locked_fs_mkdir(vd_fs *fs, const char *path)
{
    if (!fs || !path)
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    e = fat_path_resolve(fs, path, p);
    if (e == VD_OK && p->exists)
        e = VD_ERR_EXIST;
    if (e == VD_OK)
        e = fat_mark_dirty(fs);
    fat_dent d;
    uint32_t clus = 0;
    new_dent(fs, &d, ATTR_DIRECTORY);
    if (e == VD_OK)
        e = fat_dir_create(fs, p->parent, &d, &clus);
    if (e == VD_OK) {
        d.first = clus;
        e = fat_dir_add(fs, p->parent, p->name, p->nlen, &d, &d.slot);
        if (e != VD_OK)
            (void)fat_free_chain(fs, clus);
    }
    free(p);
    return fat_op_end(fs, e);
}

static vd_err locked_fs_rmdir(vd_fs *fs, const char *path)
{
    if (!fs || !path)
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    e = fat_path_resolve(fs, path, p);
    int empty = 0;
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    else if (e == VD_OK && p->is_root)
        e = VD_ERR_BUSY;
    else if (e == VD_OK && !(p->d.attr & ATTR_DIRECTORY))
        e = VD_ERR_NOTDIR;
    if (e == VD_OK && !fat_valid_cluster(fs, p->d.first))
        e = VD_ERR_CORRUPT;
    if (e == VD_OK)
        e = fat_dir_is_empty(fs, p->d.first, &empty);
    if (e == VD_OK && !empty)
        e = VD_ERR_NOTEMPTY;
    if (e == VD_OK && fat_dir_is_open(fs, p->d.first))
        e = VD_ERR_BUSY;
    if (e == VD_OK)
        e = fat_mark_dirty(fs);
    if (e == VD_OK)
        e = fat_dir_remove(fs, p->parent, &p->d);
    fat_dix_drop(fs, p->d.first); /* its clusters may become another's */
    if (e == VD_OK)
        e = fat_free_chain(fs, p->d.first);
    free(p);
    return fat_op_end(fs, e);
}

static vd_err locked_fs_unlink(vd_fs *fs, const char *path)
{
    if (!fs || !path)
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    e = fat_path_resolve(fs, path, p);
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    else if (e == VD_OK && (p->is_root || (p->d.attr & ATTR_DIRECTORY)))
        e = VD_ERR_ISDIR;
    else if (e == VD_OK && p->link_len && p->slashed)
        e = VD_ERR_NOTDIR; /* "link/": the link is no directory */
    fat_node *open_node = e == VD_OK ? fat_node_find(fs, p->parent, p->d.slot) : NULL;
    uint32_t in_fat = 0;
    if (e == VD_OK && open_node) {
        e = fat_node_map_all(fs, open_node);
        in_fat = open_node->nclus;
    }
    if (e == VD_OK)
        e = fat_mark_dirty(fs);
    if (e == VD_OK) /* too large for one commit: shrink it in steps first */
        e = fat_entry_cut_steps(fs, p->parent, &p->d, open_node, &in_fat);
    if (e == VD_OK)
        e = fat_dir_remove(fs, p->parent, &p->d);
    if (e == VD_OK && open_node) {
        /* Open: the name goes now, and so does the chain in the FAT (no
         * committed state shows clusters without an entry); the handles
         * keep the clusters until the last close (POSIX). */
        e = fat_node_orphan(fs, open_node, &p->d, in_fat);
    } else if (e == VD_OK && p->d.first) {
        /* A file's clusters are no directory's, unless the volume is
         * cross-linked: then no index may outlive them either. */
        fat_dix_drop(fs, p->d.first);
        e = fat_free_chain(fs, p->d.first);
    }
    free(p);
    return fat_op_end(fs, e);
}

/* What an entry update changes: times, or attribute bits. */
typedef struct ent_change {
    int times;
    int64_t atime_ns, mtime_ns;
    uint8_t attr, mask;
} ent_change;

static vd_err locked_fs_change(vd_fs *fs, const char *path, int follow,
                               const ent_change *c)
{
    if (!fs || !path)
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    e = fat_path_walk(fs, path, follow, p);
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    if (e == VD_OK && p->is_root && !c->times)
        e = VD_ERR_PERM;
    if (e == VD_OK && !p->is_root) { /* the root has no entry: no times */
        if (c->times) {
            uint16_t t;
            fat_time_encode(c->mtime_ns, &p->d.mdate, &p->d.mtime, NULL);
            fat_time_encode(c->atime_ns, &p->d.adate, &t, NULL);
        } else {
            p->d.attr = (uint8_t)((p->d.attr & ~c->mask) | (c->attr & c->mask));
        }
        e = fat_mark_dirty(fs);
        fat_node *n = fat_node_find(fs, p->parent, p->d.slot);
        if (n) { /* an open file's size and chain live in its node */
            p->d.size = n->size;
            p->d.first = n->first;
            n->attr = p->d.attr;
        }
        if (e == VD_OK)
            e = fat_dir_update(fs, p->parent, p->d.slot, &p->d);
    }
    free(p);
    return fat_op_end(fs, e);
}

/* ---- public entry points (volume lock) ---- */

vd_err vd_fs_stat(vd_fs *fs, const char *path, vd_stat *st)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_stat(fs, path, FAT_WALK_FOLLOW, st);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_lstat(vd_fs *fs, const char *path, vd_stat *st)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_stat(fs, path, FAT_WALK_LOOKUP, st);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_mkdir(vd_fs *fs, const char *path)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_mkdir(fs, path);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_rmdir(vd_fs *fs, const char *path)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_rmdir(fs, path);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_unlink(vd_fs *fs, const char *path)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_unlink(fs, path);
    fat_unlock(lk);
    return e;
}

static vd_err fs_change(vd_fs *fs, const char *path, int follow, const ent_change *c)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_change(fs, path, follow, c);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_utimes(vd_fs *fs, const char *path, int64_t atime_ns, int64_t mtime_ns)
{
    ent_change c = {.times = 1, .atime_ns = atime_ns, .mtime_ns = mtime_ns};
    return fs_change(fs, path, FAT_WALK_FOLLOW, &c);
}

vd_err vd_fs_lutimes(vd_fs *fs, const char *path, int64_t atime_ns, int64_t mtime_ns)
{
    ent_change c = {.times = 1, .atime_ns = atime_ns, .mtime_ns = mtime_ns};
    return fs_change(fs, path, FAT_WALK_LOOKUP, &c);
}

vd_err vd_fs_set_attr(vd_fs *fs, const char *path, uint8_t attr, uint8_t mask)
{
    if (mask & ~(VD_ATTR_READONLY | VD_ATTR_HIDDEN | VD_ATTR_SYSTEM | VD_ATTR_ARCHIVE))
        return VD_ERR_INVAL;
    ent_change c = {.times = 0, .attr = attr, .mask = mask};
    return fs_change(fs, path, FAT_WALK_FOLLOW, &c);
}
