/* Directory listing handles (vd_dir_*). */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

struct vd_dir {
    vd_fs *fs;
    struct vd_dir *next;
    fat_dirit it;
};

/* A directory being listed cannot be removed or replaced: its clusters
 * would be freed under the reader. */
int fat_dir_is_open(const vd_fs *fs, uint32_t clus)
{
    for (const struct vd_dir *d = fs->dirs; d; d = d->next)
        if (d->it.first == clus)
            return 1;
    return 0;
}

static vd_err locked_dir_open(vd_fs *fs, const char *path, vd_dir **out)
{
    if (!fs || !path || !out)
        return VD_ERR_INVAL;
    if (fs->nopen >= FAT_MAX_OPEN)
        return VD_ERR_MFILE;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    vd_err e = fat_path_walk(fs, path, FAT_WALK_FOLLOW, p);
    if (e == VD_OK && !p->exists)
        e = VD_ERR_NOENT;
    else if (e == VD_OK && !p->is_root && !(p->d.attr & ATTR_DIRECTORY))
        e = VD_ERR_NOTDIR;
    if (e == VD_OK && !fat_valid_cluster(fs, p->d.first))
        e = VD_ERR_CORRUPT;
    vd_dir *d = NULL;
    if (e == VD_OK && !(d = calloc(1, sizeof *d)))
        e = VD_ERR_NOMEM;
    uint32_t first = p->d.first;
    free(p);
    /* Only reads happened, but an earlier failed write-back is reported
     * here too: then no handle is made. */
    e = fat_op_end(fs, e);
    if (e != VD_OK) {
        free(d);
        return e;
    }
    d->fs = fs;
    fat_dirit_init(&d->it, first);
    d->next = fs->dirs;
    fs->dirs = d;
    fs->nopen++;
    *out = d;
    return VD_OK;
}

static vd_err locked_dir_read(vd_dir *dir, vd_dirent *ent)
{
    if (!dir || !ent)
        return VD_ERR_INVAL;
    fat_dent *d = malloc(sizeof *d);
    if (!d)
        return VD_ERR_NOMEM;
    vd_err e = fat_dir_next(dir->fs, &dir->it, d);
    if (e == VD_OK) {
        memset(ent, 0, sizeof *ent);
        e = fat_utf16_to_utf8(d->name, d->nlen, ent->name, sizeof ent->name);
        ent->is_dir = (d->attr & ATTR_DIRECTORY) != 0;
        ent->attr = d->attr;
        ent->size = ent->is_dir ? 0 : d->size;
        fat_node *n = fat_node_find(dir->fs, dir->it.first, d->slot);
        if (n && !ent->is_dir)
            ent->size = n->size;
        /* Only files of the link size are read (one cluster or so). */
        size_t tlen = 0;
        if (e == VD_OK && !n && fat_link_candidate(d))
            e = fat_link_read(dir->fs, d, NULL, &tlen);
        if (tlen) {
            ent->is_link = 1;
            ent->size = tlen;
        }
    }
    free(d);
    return fat_op_end(dir->fs, e);
}

static vd_err locked_dir_close(vd_dir *dir)
{
    if (!dir)
        return VD_ERR_INVAL;
    vd_fs *fs = dir->fs;
    for (struct vd_dir **pp = &fs->dirs; *pp; pp = &(*pp)->next)
        if (*pp == dir) {
            *pp = dir->next;
            break;
        }
    fs->nopen--;
    free(dir);
    return VD_OK;
}

/* ---- public entry points (volume lock) ---- */

vd_err vd_dir_open(vd_fs *fs, const char *path, vd_dir **out)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_dir_open(fs, path, out);
    fat_unlock(lk);
    return e;
}

vd_err vd_dir_read(vd_dir *dir, vd_dirent *ent)
{
    if (!dir)
        return VD_ERR_INVAL;
    vd_fs *lk = dir->fs;
    fat_lock(lk);
    vd_err e = locked_dir_read(dir, ent);
    fat_unlock(lk);
    return e;
}

vd_err vd_dir_close(vd_dir *dir)
{
    if (!dir)
        return VD_ERR_INVAL;
    vd_fs *lk = dir->fs;
    fat_lock(lk);
    vd_err e = locked_dir_close(dir);
    fat_unlock(lk);
    return e;
}
