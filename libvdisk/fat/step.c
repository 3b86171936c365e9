/* Operations too large for one commit (DESIGN C4, docs/SECURITY.md §4).
 * A commit takes an operation's metadata whole only up to
 * vd_image_meta_cap blocks (one round's journal area). A chain grown or
 * freed by more FAT blocks than that (about cap / 2 * 1024 clusters with
 * two FAT copies) changes in steps: each step leaves a consistent volume,
 * the entry's size matching its chain, and is committed before the next
 * begins. A crash in between shows the file grown or shrunk part of the
 * way, at a step boundary; vd_fsck finds nothing. */
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

static uint32_t fat_copies(const vd_fs *fs)
{
    return fs->mirror ? fs->nfats : 1;
}

/* What a step changes besides its FAT blocks: the entry's directory
 * block, FSInfo, and a block more per copy when the copies are aligned
 * otherwise. */
static uint32_t step_slack(const vd_fs *fs)
{
    return 2 + fat_copies(fs);
}

uint32_t fat_step_blocks(vd_fs *fs)
{
    if (!fs->img)
        return UINT32_MAX;
    uint32_t room, cap = vd_image_meta_cap(fs->img, &room);
    uint32_t slack = step_slack(fs), copies = fat_copies(fs);
    return cap >= slack + copies ? (cap - slack) / copies : 1;
}

uint32_t fat_step_room(vd_fs *fs)
{
    if (!fs->img)
        return UINT32_MAX;
    uint32_t room;
    (void)vd_image_meta_cap(fs->img, &room);
    uint32_t other = step_slack(fs);
    return room > other ? (room - other) / fat_copies(fs) : 0;
}

vd_err fat_op_step(vd_fs *fs)
{
    vd_err e = fat_op_end(fs, VD_OK);
    if (e == VD_OK && fs->img)
        e = vd_image_commit_all(fs->img);
    if (e == VD_OK) /* what follows is a new half to guard (fat_op_end) */
        fs->op_changed = 0;
    return e;
}

/* Where the next cut of n's chain [target, len) goes: the first file
 * cluster c (target < c < len) such that [c, len) lies in at most
 * `step` FAT blocks; target when all of it does (*blocks: in how many,
 * with the block of the new end). */
static uint32_t cut_point(const vd_fs *fs, const fat_node *n, uint32_t target, uint32_t len,
                          uint32_t step, uint32_t *blocks_out)
{
    size_t r = n->nruns;
    uint32_t blocks = 1; /* the block that gets the new end of chain */
    uint64_t cur = UINT64_MAX;
    uint32_t c = len;
    while (c > target) {
        while (r > 0 && n->runs[r - 1].fidx >= c)
            r--;
        if (r == 0)
            break; /* runs shorter than len: the caller's checks fail */
        const fat_run *run = &n->runs[r - 1];
        uint32_t clus = run->clus + (c - 1 - run->fidx);
        uint64_t b = fat_entry_block(fs, clus);
        if (b != cur) {
            if (blocks + 1 > step && c < len)
                return c;
            blocks++;
            cur = b;
        }
        c--;
    }
    *blocks_out = blocks;
    return target;
}

vd_err fat_node_cut_steps(vd_fs *fs, fat_node *n, uint32_t target, int pin, uint32_t *len)
{
    vd_err e = fat_node_map_all(fs, n);
    uint32_t step = fat_step_blocks(fs), rest = 0, c;
    while (e == VD_OK && (c = cut_point(fs, n, target, *len, step, &rest)) > target) {
        if (fat_step_room(fs) < step)
            e = fat_op_step(fs); /* the volume is consistent here */
        uint32_t keep, first, contig;
        if (e == VD_OK)
            e = fat_node_map(fs, n, c - 1, &keep, &contig);
        if (e == VD_OK)
            e = fat_node_map(fs, n, c, &first, &contig);
        if (e == VD_OK)
            e = fat_set(fs, keep, FAT_EOC);
        if (e == VD_OK && !pin)
            e = fat_free_chain(fs, first);
        /* Pinned: n keeps using them as an orphan (table.c). */
        for (size_t r = 0; e == VD_OK && pin && r < n->nruns; r++) {
            const fat_run *run = &n->runs[r];
            uint32_t a = run->fidx > c ? run->fidx : c;
            uint32_t b = run->fidx + run->len < *len ? run->fidx + run->len : *len;
            if (a < b)
                e = fat_orphan_free(fs, run->clus + (a - run->fidx), b - a);
        }
        fat_dent d;
        if (e == VD_OK)
            e = fat_dir_read_slot(fs, n->loc.dir, n->loc.slot, &d);
        if (e == VD_OK) {
            uint64_t end = (uint64_t)c << fs->cluster_shift;
            if (d.size > end)
                d.size = (uint32_t)end;
            e = fat_dir_update(fs, n->loc.dir, n->loc.slot, &d);
        }
        if (e == VD_OK) {
            *len = c;
            e = fat_op_step(fs);
        }
    }
    /* Room for the caller's last piece in the commit under way (a small
     * one fits in the headroom every operation starts with). */
    if (e == VD_OK && rest > FAT_STEP_SMALL && fat_step_room(fs) < rest)
        e = fat_op_step(fs);
    return e;
}

vd_err fat_entry_cut_steps(vd_fs *fs, uint32_t dir, const fat_dent *d, fat_node *open,
                           uint32_t *in_fat)
{
    /* Every cluster changes at most one FAT block: most files need no
     * look at their chain. */
    uint64_t est = open ? open->nclus
                        : ((uint64_t)d->size + fs->cluster_bytes - 1) >> fs->cluster_shift;
    if (est + 1 <= fat_step_room(fs))
        return VD_OK;
    if (open)
        return fat_node_cut_steps(fs, open, 0, 1, in_fat);
    fat_node *t; /* not open: a node of its own while it shrinks */
    vd_err e = fat_node_get(fs, d, dir, &t);
    if (e != VD_OK)
        return e;
    e = fat_node_map_all(fs, t);
    uint32_t len = t->nclus;
    if (e == VD_OK)
        e = fat_node_cut_steps(fs, t, 0, 0, &len);
    vd_err p = fat_node_put(fs, t);
    return e != VD_OK ? e : p;
}
