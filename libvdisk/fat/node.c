/* Open-file nodes. Each keeps its cluster chain as a list of contiguous
 * runs (an extent cache), built by one walk of the chain at first use and
 * kept in step by every resize, so a read or write at any offset finds its
 * cluster by binary search instead of walking the FAT from the start. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

fat_node *fat_node_find(vd_fs *fs, uint32_t dir, uint32_t slot)
{
    for (fat_node *n = fs->nodes; n; n = n->next)
        if (n->loc.dir == dir && n->loc.slot == slot)
            return n;
    return NULL;
}

vd_err fat_node_get(vd_fs *fs, const fat_dent *d, uint32_t dir, fat_node **out)
{
    fat_node *n = fat_node_find(fs, dir, d->slot);
    if (!n) {
        n = calloc(1, sizeof *n);
        if (!n)
            return VD_ERR_NOMEM;
        n->loc.dir = dir;
        n->loc.slot = d->slot;
        n->first = d->first;
        n->size = d->size;
        n->attr = d->attr;
        n->next = fs->nodes;
        fs->nodes = n;
    }
    n->refs++;
    *out = n;
    return VD_OK;
}

/* Release an orphan's clusters from file cluster `from` on (they are free
 * in the FAT already) and cut its runs there. */
static void orphan_cut(vd_fs *fs, fat_node *n, uint32_t from)
{
    while (n->nruns && n->runs[n->nruns - 1].fidx + n->runs[n->nruns - 1].len > from) {
        fat_run *r = &n->runs[n->nruns - 1];
        uint32_t keep = r->fidx < from ? from - r->fidx : 0;
        fat_orphan_release(fs, r->clus + keep, r->len - keep);
        if (keep) {
            r->len = keep;
            break;
        }
        n->nruns--;
    }
    n->nclus = from;
    if (from == 0)
        n->first = 0;
}

vd_err fat_node_put(vd_fs *fs, fat_node *n)
{
    if (--n->refs > 0)
        return VD_OK;
    for (fat_node **p = &fs->nodes; *p; p = &(*p)->next)
        if (*p == n) {
            *p = n->next;
            break;
        }
    if (n->orphan) {
        if (n->first)
            fat_dix_drop(fs, n->first); /* only on a cross-linked volume */
        orphan_cut(fs, n, 0);
    }
    free(n->runs);
    free(n);
    return VD_OK;
}

/* Append cluster c as the next file cluster. */
static vd_err runs_push(fat_node *n, uint32_t c)
{
    if (n->nruns) {
        fat_run *r = &n->runs[n->nruns - 1];
        if (r->clus + r->len == c) {
            r->len++;
            n->nclus++;
            return VD_OK;
        }
    }
    if (n->nruns == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 8;
        fat_run *v = realloc(n->runs, cap * sizeof *v);
        if (!v)
            return VD_ERR_NOMEM;
        n->runs = v;
        n->cap = cap;
    }
    n->runs[n->nruns].fidx = n->nclus;
    n->runs[n->nruns].clus = c;
    n->runs[n->nruns].len = 1;
    n->nruns++;
    n->nclus++;
    return VD_OK;
}

static vd_err push_cb(void *ctx, uint32_t c)
{
    return runs_push(ctx, c);
}

/* Walk the chain from c (the file's cluster number n->nclus), appending
 * up to `limit` clusters to the runs. */
static vd_err walk_from(vd_fs *fs, fat_node *n, uint32_t c, uint32_t limit)
{
    for (uint32_t i = 0; i < limit; i++) {
        if (!fat_valid_cluster(fs, c) || n->nclus >= fs->nclusters)
            return VD_ERR_CORRUPT;
        vd_err e = runs_push(n, c);
        if (e != VD_OK)
            return e;
        uint32_t next;
        e = fat_get(fs, c, &next);
        if (e != VD_OK)
            return e;
        if (next >= FAT_EOC_MIN)
            return VD_OK;
        c = next;
    }
    return VD_OK;
}

static vd_err ensure_mapped(vd_fs *fs, fat_node *n)
{
    if (n->mapped)
        return VD_OK;
    n->nruns = 0;
    n->nclus = 0;
    vd_err e = VD_OK;
    if (n->first)
        e = walk_from(fs, n, n->first, UINT32_MAX);
    if (e == VD_OK)
        n->mapped = 1;
    return e;
}

vd_err fat_node_map_all(vd_fs *fs, fat_node *n)
{
    return ensure_mapped(fs, n);
}

vd_err fat_node_orphan(vd_fs *fs, fat_node *n, const fat_dent *d, uint32_t in_fat)
{
    n->orphan = 1;
    n->loc.dir = UINT32_MAX; /* matches no directory slot any more */
    n->loc.slot = UINT32_MAX;
    n->o_attr = d->attr;
    n->o_mdate = d->mdate;
    n->o_mtime = d->mtime;
    n->o_adate = d->adate;
    n->o_cdate = d->cdate;
    n->o_ctime = d->ctime;
    n->o_ctenth = d->ctenth;
    if (!n->mapped)
        return VD_ERR_CORRUPT; /* fat_node_map_all was not called */
    if (n->first)
        fat_dix_drop(fs, n->first); /* only on a cross-linked volume */
    vd_err e = VD_OK;
    for (size_t r = 0; e == VD_OK && r < n->nruns && n->runs[r].fidx < in_fat; r++) {
        uint32_t len = n->runs[r].len;
        if (n->runs[r].fidx + len > in_fat)
            len = in_fat - n->runs[r].fidx;
        e = fat_orphan_free(fs, n->runs[r].clus, len);
    }
    return e;
}

const fat_run *fat_run_find(const fat_node *n, uint32_t fidx)
{
    size_t lo = 0, hi = n->nruns;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (n->runs[mid].fidx <= fidx)
            lo = mid;
        else
            hi = mid;
    }
    return &n->runs[lo];
}

vd_err fat_node_map(vd_fs *fs, fat_node *n, uint32_t fidx, uint32_t *clus,
                    uint32_t *contig)
{
    vd_err e = ensure_mapped(fs, n);
    if (e != VD_OK)
        return e;
    if (fidx >= n->nclus)
        return VD_ERR_CORRUPT; /* the size says more than the chain holds */
    const fat_run *r = fat_run_find(n, fidx);
    *clus = r->clus + (fidx - r->fidx);
    *contig = r->len - (fidx - r->fidx);
    return VD_OK;
}

/* An orphan grows by pinned clusters the FAT never shows and shrinks by
 * releasing them (table.c). */
static vd_err orphan_resize(vd_fs *fs, fat_node *n, uint32_t clusters)
{
    if (clusters <= n->nclus) {
        orphan_cut(fs, n, clusters);
        return VD_OK;
    }
    uint32_t had = n->nclus;
    vd_err e = fat_orphan_alloc(fs, clusters - had, push_cb, n);
    if (e != VD_OK)
        orphan_cut(fs, n, had); /* all or nothing */
    else if (!n->first)
        n->first = n->runs[0].clus;
    return e;
}

vd_err fat_node_grow(vd_fs *fs, fat_node *n, uint32_t clusters)
{
    vd_err e = ensure_mapped(fs, n);
    if (e != VD_OK || clusters <= n->nclus)
        return e;
    if (n->orphan) /* no FAT change: no step */
        return orphan_resize(fs, n, clusters);
    uint32_t add = clusters - n->nclus;
    /* Allocation runs forward from the chain's end, so the new clusters
     * usually change add / 1024 + 2 FAT blocks: if that does not fit in
     * the commit under way, commit it first (the volume is consistent
     * here). Then take what fits: all of it, unless the free space is
     * fragmented or the growth is larger than one step. */
    uint32_t room = fat_step_room(fs);
    uint64_t likely = (uint64_t)add / (FAT_BLOCK / FAT_ENTRY_BYTES) + 2;
    if (likely <= FAT_STEP_SMALL && room < FAT_STEP_SMALL)
        room = FAT_STEP_SMALL; /* small: the operation's headroom takes it */
    else if (likely > room && room < fat_step_blocks(fs)) {
        e = fat_op_step(fs);
        room = fat_step_room(fs);
    }
    uint32_t last = 0, contig, first, got;
    if (e == VD_OK && n->nclus)
        e = fat_node_map(fs, n, n->nclus - 1, &last, &contig);
    if (e == VD_OK)
        e = fat_alloc_upto(fs, last, add, room ? room : 1, &got, &first, push_cb, n);
    if (e != VD_OK) {
        n->mapped = 0; /* rebuild from the FAT next time */
        return e;
    }
    if (!n->first)
        n->first = first;
    return VD_OK;
}

vd_err fat_node_resize(vd_fs *fs, fat_node *n, uint32_t clusters)
{
    vd_err e = ensure_mapped(fs, n);
    if (e != VD_OK)
        return e;
    if (n->orphan)
        return orphan_resize(fs, n, clusters);
    if (clusters > n->nclus)
        return VD_ERR_INVAL; /* growth: fat_node_grow */
    if (clusters == n->nclus)
        return VD_OK;
    e = fat_mark_dirty(fs);
    /* More FAT blocks than a commit takes: cut from the end in steps. */
    uint32_t len = n->nclus;
    if (e == VD_OK && (uint64_t)(n->nclus - clusters) + 1 > fat_step_room(fs))
        e = fat_node_cut_steps(fs, n, clusters, 0, &len);
    uint32_t cut = 0, contig;
    if (e == VD_OK && clusters == 0) {
        cut = n->first;
        n->first = 0;
    } else if (e == VD_OK) {
        uint32_t keep;
        e = fat_node_map(fs, n, clusters - 1, &keep, &contig);
        if (e == VD_OK)
            e = fat_node_map(fs, n, clusters, &cut, &contig);
        /* End the chain first: a crash then leaks clusters (fsck frees
         * them) rather than leaving a file that runs into free space. */
        if (e == VD_OK)
            e = fat_set(fs, keep, FAT_EOC);
    }
    if (e == VD_OK)
        e = fat_free_chain(fs, cut);
    /* Trim the runs. */
    while (n->nruns && n->runs[n->nruns - 1].fidx >= clusters)
        n->nruns--;
    if (n->nruns) {
        fat_run *r = &n->runs[n->nruns - 1];
        if (r->fidx + r->len > clusters)
            r->len = clusters - r->fidx;
    }
    n->nclus = clusters;
    if (e != VD_OK)
        n->mapped = 0;
    return e;
}

vd_err fat_node_store(vd_fs *fs, fat_node *n, int touch_mtime)
{
    if (n->orphan) { /* no entry to update; stat still sees the times */
        if (touch_mtime) {
            fat_time_encode(fat_now(fs), &n->o_mdate, &n->o_mtime, NULL);
            n->o_adate = n->o_mdate;
        }
        return VD_OK;
    }
    fat_dent d;
    vd_err e = fat_dir_read_slot(fs, n->loc.dir, n->loc.slot, &d);
    if (e != VD_OK)
        return e;
    d.first = n->first;
    d.size = n->size;
    if (touch_mtime) {
        int64_t now = fat_now(fs);
        fat_time_encode(now, &d.mdate, &d.mtime, NULL);
        d.adate = d.mdate;
        d.attr |= ATTR_ARCHIVE;
    }
    n->attr = d.attr;
    return fat_dir_update(fs, n->loc.dir, n->loc.slot, &d);
}
