/* Scrub: verify every authenticated block of an image and keep going past
 * failures (vhdfsck). An ordinary read stops at the first bad tree node and
 * fails the handle (STYLE "sticky failed state"); a scrub must instead name
 * every bad block and every bad node's range, so it walks the data blocks
 * in runs, verifying each run's path first, and skips a bad node's range
 * after reporting it. Nothing here trusts a block it could not verify: a
 * bad node never enters the cache, so later reads under it still fail. */
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"
#include "vdisk/check.h"

uint64_t vd_node_span(const vd_image *img, uint32_t level)
{
    const uint64_t n = img->geo.nblocks;
    uint64_t span = 1;
    for (uint32_t l = 0; l < level && span < n; l++)
        span *= img->geo.fanout;
    return span < n ? span : n;
}

vd_err vd_image_tolerate_nodes(vd_image *img, int on)
{
    if (!img)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    img->tolerate_nodes = on;
    (void)pthread_mutex_unlock(&img->lock);
    return VD_OK;
}

/* The range of the node that failed last (have_bad, bad_level > 0). */
static void bad_node_range(const vd_image *img, vd_bad_range *r)
{
    uint64_t span = vd_node_span(img, img->bad_level);
    r->level = img->bad_level;
    r->first_lbn = img->bad_idx * span;
    if (r->first_lbn >= img->geo.nblocks)
        r->first_lbn = img->geo.nblocks - 1;
    r->nblocks =
        span < img->geo.nblocks - r->first_lbn ? span : img->geo.nblocks - r->first_lbn;
}

typedef struct scrub {
    vd_image *img;
    const vd_scrub_ops *ops;
    vd_scrub_stats *st;
    uint8_t *out; /* VD_RUN_MAX blocks: verified plaintext, thrown away */
} scrub;

static vd_err report(scrub *s, const vd_bad_range *r)
{
    if (r->level == 0)
        s->st->bad_blocks++;
    else {
        s->st->bad_nodes++;
        s->st->unverifiable += r->nblocks;
    }
    return s->ops && s->ops->bad ? s->ops->bad(s->ops->ctx, r) : VD_OK;
}

/* After an AUTH at block lbn: a node on its path (report its range and
 * return how far to skip) or the block itself (report it, skip one). */
static vd_err after_auth(scrub *s, uint64_t lbn, uint64_t *next)
{
    vd_image *img = s->img;
    vd_bad_range r;
    if (img->have_bad && img->bad_level > 0) {
        bad_node_range(img, &r);
        /* A node covers whole runs from its first block; anything before
         * lbn in its range was already verified before the node fell out
         * of the cache and changed on the host: count from lbn on. */
        if (r.first_lbn < lbn) {
            r.nblocks -= lbn - r.first_lbn;
            r.first_lbn = lbn;
        }
    } else {
        r.level = 0;
        r.first_lbn = lbn;
        r.nblocks = 1;
    }
    *next = r.first_lbn + r.nblocks;
    s->st->blocks += r.nblocks;
    return report(s, &r);
}

/* Verify [lbn, lbn + n) (within one level-1 node) block by block. */
static vd_err scrub_each(scrub *s, uint64_t lbn, uint32_t n, uint64_t *next)
{
    vd_image *img = s->img;
    uint64_t end = lbn + n;
    while (lbn < end) {
        uint32_t t;
        img->have_bad = 0;
        vd_err e = vd_get_block(img, 0, lbn, &t);
        if (e == VD_OK) {
            vd_unpin(img, t);
            s->st->blocks++;
            s->st->blocks_ok++;
            lbn++;
            continue;
        }
        if (e != VD_ERR_AUTH)
            return e;
        uint64_t skip;
        e = after_auth(s, lbn, &skip);
        if (e != VD_OK)
            return e;
        if (img->bad_level > 0 && img->have_bad) {
            *next = skip;
            return VD_OK;
        }
        lbn = skip;
    }
    *next = end;
    return VD_OK;
}

/* Does the (verified) level-1 node in cache entry t say that all of
 * [lbn, lbn + n) were never written? Then they read as zeros on the
 * node's word (R2) and there is nothing on the host to verify. Not while
 * an interrupted sync's journal may name other versions. */
static int never_written(const vd_image *img, uint32_t t, uint64_t lbn, uint32_t n)
{
    if (img->nrecov)
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        mt_version v;
        mt_node_get(img->cache.e[t].buf, mt_parent_slot(&img->geo, lbn + i), &v);
        if (!mt_version_is_none(&v))
            return 0;
    }
    return 1;
}

static vd_err scrub_locked(scrub *s)
{
    vd_image *img = s->img;
    const uint64_t total = img->geo.nblocks;
    const uint64_t leafspan = vd_node_span(img, 1);
    vd_err e = VD_OK;
    uint64_t lbn = 0;
    while (e == VD_OK && lbn < total) {
        /* One run stays under one level-1 node, so a failing node costs
         * one report, not one per block. */
        uint64_t node_end = (lbn / leafspan + 1) * leafspan;
        if (node_end > total)
            node_end = total;
        uint32_t n =
            (uint32_t)(node_end - lbn < VD_RUN_MAX ? node_end - lbn : VD_RUN_MAX);
        img->have_bad = 0;
        uint32_t t;
        e = vd_get_block(img, 1, lbn / leafspan, &t); /* the path, root down */
        if (e == VD_OK) {
            int unwritten = never_written(img, t, lbn, n);
            vd_unpin(img, t);
            /* Verified outside the cache: a scrub reads each block once,
             * and must not push the tree nodes out while it does. */
            e = unwritten ? VD_OK : vd_read_data_run(img, lbn, n, s->out);
            if (e == VD_OK) {
                s->st->blocks += n;
                s->st->blocks_ok += n;
                lbn += n;
            } else if (e == VD_ERR_AUTH) {
                /* Which block(s): again one at a time. */
                e = scrub_each(s, lbn, n, &lbn);
            }
        } else if (e == VD_ERR_AUTH) {
            e = after_auth(s, lbn, &lbn);
        }
        if (e == VD_OK && s->ops && s->ops->progress)
            s->ops->progress(s->ops->ctx, lbn, total);
    }
    return e;
}

vd_err vd_image_scrub(vd_image *img, const vd_scrub_ops *ops, vd_scrub_stats *st)
{
    if (!img || !st)
        return VD_ERR_INVAL;
    memset(st, 0, sizeof *st);
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    vd_err e = img->failed ? VD_ERR_FAILED : VD_OK;
    if (e == VD_OK) {
        int was = img->tolerate_nodes;
        uint64_t read0 = img->stat_bytes_read;
        scrub s = {img, ops, st, aligned_alloc(VDF_BLOCK, (size_t)VD_RUN_MAX * VDF_BLOCK)};
        if (!s.out) {
            (void)pthread_mutex_unlock(&img->lock);
            return VD_ERR_NOMEM;
        }
        img->tolerate_nodes = 1;
        e = scrub_locked(&s);
        img->tolerate_nodes = was;
        vdc_memzero(s.out, (size_t)VD_RUN_MAX * VDF_BLOCK); /* plaintext */
        free(s.out);
        st->bytes_read = img->stat_bytes_read - read0;
    }
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}

/* The first block of a child of node (level + 1, pidx) other than child
 * `skip` whose path verifies; it comes back pinned. */
static vd_err neighbour_leaf(vd_image *img, uint64_t pidx, uint64_t skip, uint64_t span,
                             uint32_t *t)
{
    for (uint32_t s = 0; s < img->geo.fanout; s++) {
        uint64_t child = pidx * img->geo.fanout + s;
        if (child == skip)
            continue;
        if (child * span >= img->geo.nblocks)
            break;
        vd_err e = vd_get_block(img, 0, child * span, t);
        if (e == VD_OK)
            return VD_OK;
        if (e != VD_ERR_AUTH)
            return e;
    }
    return VD_ERR_UNSUPPORTED;
}

static vd_err discard_locked(vd_image *img, const vd_bad_range *r)
{
    const mt_geometry *g = &img->geo;
    uint32_t level = r->level;
    uint64_t span = vd_node_span(img, level);
    if (level < 1 || level > g->height || r->first_lbn % span ||
        r->first_lbn >= g->nblocks ||
        r->nblocks !=
            (span < g->nblocks - r->first_lbn ? span : g->nblocks - r->first_lbn))
        return VD_ERR_INVAL;
    uint64_t idx = r->first_lbn / span;
    /* Only a node that fails: this is a repair, not a way to drop data. */
    uint32_t tn;
    vd_err e = vd_get_block(img, level, idx, &tn);
    if (e == VD_OK) {
        vd_unpin(img, tn);
        return VD_ERR_INVAL;
    }
    if (e != VD_ERR_AUTH)
        return e;
    /* Climb while the parent covers nothing but this range: its entry for
     * us is the only one to clear, and a neighbour leaf must exist. */
    for (;;) {
        if (level >= g->height)
            return VD_ERR_UNSUPPORTED; /* the root: the whole disk */
        uint64_t pspan = vd_node_span(img, level + 1);
        uint64_t pidx = idx / g->fanout, p_first = pidx * pspan;
        uint64_t p_end = p_first + pspan < g->nblocks ? p_first + pspan : g->nblocks;
        uint64_t n_first = idx * span, n_end = n_first + span;
        if (p_first < n_first || n_end < p_end)
            break;
        level++;
        idx = pidx;
        span = pspan;
    }
    e = img->cache.ndirty || img->nspill_nodes ? vd_sync_locked(img) : VD_OK;
    if (e != VD_OK)
        return e;
    uint64_t pidx = idx / g->fanout;
    uint32_t tp, tl;
    e = vd_get_block(img, level + 1, pidx, &tp); /* verified, and stays pinned */
    if (e != VD_OK)
        return e;
    e = neighbour_leaf(img, pidx, idx, span, &tl);
    if (e == VD_OK) {
        mt_version none;
        memset(&none, 0, sizeof none);
        mt_node_set(img->cache.e[tp].buf, mt_parent_slot(g, idx), &none);
        /* The neighbour, unchanged, puts the parent in the next round. */
        vc_set_dirty(&img->cache, tl, 1);
        vd_unpin(img, tl);
        e = vd_sync_locked(img);
    }
    vd_unpin(img, tp);
    return e;
}

vd_err vd_image_discard_range(vd_image *img, const vd_bad_range *r)
{
    if (!img || !r)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    vd_err e = img->failed      ? VD_ERR_FAILED
               : img->read_only ? VD_ERR_READONLY
               : img->nrecov    ? VD_ERR_BUSY
                                : VD_OK;
    if (e == VD_OK) {
        /* Neighbours may sit under other bad nodes: look, do not fail. */
        int was = img->tolerate_nodes;
        img->tolerate_nodes = 1;
        e = discard_locked(img, r);
        img->tolerate_nodes = was;
    }
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}
