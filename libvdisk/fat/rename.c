/* vd_fs_rename: files and directories, across directories, replacing
 * files or empty directories, refusing to move a directory into its own
 * subtree. Ordered so a failure leaves the old name in place. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

/* Is directory `dir` the directory `anc` or inside it? Walks the ".."
 * entries up to the root, bounded so a corrupt loop cannot hang us. */
static vd_err is_within(vd_fs *fs, uint32_t dir, uint32_t anc, int *within)
{
    *within = 0;
    for (uint32_t guard = 0; guard <= fs->nclusters; guard++) {
        if (dir == anc) {
            *within = 1;
            return VD_OK;
        }
        if (dir == fs->root_clus)
            return VD_OK;
        vd_err e = fat_dir_get_parent(fs, dir, &dir);
        if (e != VD_OK)
            return e;
        if (!fat_valid_cluster(fs, dir))
            return VD_ERR_CORRUPT;
    }
    return VD_ERR_CORRUPT; /* a loop of ".." entries */
}

static vd_err do_rename(vd_fs *fs, fat_path *a, fat_path *b, int flags)
{
    if (!a->exists)
        return VD_ERR_NOENT;
    if (a->is_root || b->is_root)
        return VD_ERR_BUSY;
    if ((a->link_len && a->slashed) || (b->exists && b->link_len && b->slashed))
        return VD_ERR_NOTDIR; /* "link/" names no directory */
    int a_dir = (a->d.attr & ATTR_DIRECTORY) != 0;
    if (a_dir) {
        int within;
        vd_err e = is_within(fs, b->parent, a->d.first, &within);
        if (e != VD_OK)
            return e;
        if (within)
            return VD_ERR_PERM; /* into itself or its own subtree */
    }
    int same = b->exists && b->parent == a->parent && b->d.slot == a->d.slot;
    if (b->exists && !same) {
        if (flags & VD_RENAME_NOREPLACE)
            return VD_ERR_EXIST;
        int b_dir = (b->d.attr & ATTR_DIRECTORY) != 0;
        if (a_dir && !b_dir)
            return VD_ERR_NOTDIR;
        if (!a_dir && b_dir)
            return VD_ERR_ISDIR;
        if (b_dir) {
            int empty;
            vd_err e = fat_dir_is_empty(fs, b->d.first, &empty);
            if (e != VD_OK)
                return e;
            if (!empty)
                return VD_ERR_NOTEMPTY;
            if (fat_dir_is_open(fs, b->d.first))
                return VD_ERR_BUSY;
        }
    }
    /* An open target is replaced as POSIX says: its handles keep the old
     * contents until they close (fat_node.orphan). */
    fat_node *bn = b->exists && !same ? fat_node_find(fs, b->parent, b->d.slot) : NULL;
    fat_dent b_old = b->d;
    if (same && b->nlen == a->d.nlen &&
        memcmp(b->name, a->d.name, a->d.nlen * sizeof(uint16_t)) == 0)
        return VD_OK; /* renaming to itself */
    vd_err e = bn ? fat_node_map_all(fs, bn) : VD_OK;
    uint32_t in_fat = bn ? bn->nclus : 0;
    if (e == VD_OK)
        e = fat_mark_dirty(fs);
    if (e == VD_OK && b->exists && !same) /* too large for one commit: in steps */
        e = fat_entry_cut_steps(fs, b->parent, &b->d, bn, &in_fat);
    if (e != VD_OK)
        return e;
    fat_node *n = fat_node_find(fs, a->parent, a->d.slot);
    uint32_t new_dir = b->parent, new_slot;
    if (b->exists && !same) {
        /* Replace in place: b's short entry takes a's cluster, size,
         * attributes and times, keeping b's name. One slot write, so no
         * space is needed and no moment exists without the target. */
        fat_dent nd = a->d;
        nd.slot = b->d.slot;
        e = fat_dir_update(fs, b->parent, b->d.slot, &nd);
        new_slot = b->d.slot;
    } else {
        /* New entry first, old one after: a failure (a full volume when
         * the directory must grow) leaves the old name in place. */
        fat_dent nd = a->d;
        e = fat_dir_add(fs, b->parent, b->name, b->nlen, &nd, &new_slot);
    }
    if (e == VD_OK && bn) /* before n takes over that slot */
        e = fat_node_orphan(fs, bn, &b_old, in_fat);
    if (e == VD_OK)
        e = fat_dir_remove(fs, a->parent, &a->d);
    if (e != VD_OK)
        return e;
    if (n) {
        n->loc.dir = new_dir;
        n->loc.slot = new_slot;
    }
    if (a_dir && a->parent != b->parent) {
        e = fat_dir_set_parent(fs, a->d.first, b->parent);
        if (e != VD_OK)
            return e;
    }
    if (b->exists && !same && b->d.first && !bn) {
        fat_dix_drop(fs, b->d.first); /* a replaced directory's index */
        e = fat_free_chain(fs, b->d.first);
    }
    return e;
}

static vd_err locked_fs_rename(vd_fs *fs, const char *from, const char *to, int flags)
{
    if (!fs || !from || !to || (flags & ~VD_RENAME_NOREPLACE))
        return VD_ERR_INVAL;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_path *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    if (!a || !b)
        e = VD_ERR_NOMEM;
    if (e == VD_OK)
        e = fat_path_resolve(fs, from, a);
    if (e == VD_OK)
        e = fat_path_resolve(fs, to, b);
    if (e == VD_OK)
        e = do_rename(fs, a, b, flags);
    free(a);
    free(b);
    return fat_op_end(fs, e);
}

/* ---- public entry point (volume lock) ---- */

vd_err vd_fs_rename(vd_fs *fs, const char *from, const char *to, int flags)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_rename(fs, from, to, flags);
    fat_unlock(lk);
    return e;
}
