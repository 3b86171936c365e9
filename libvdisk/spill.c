/* Spilled data (format 5): a stream of new data without a commit each
 * time the cache fills.
 *
 * A block whose committed version is "never written" (fresh) may be put
 * in place at any time: every record a crash can fall back on reads it as
 * zeros without touching the disk (sync.c, block_fresh). So when the
 * cache fills with fresh data it need not be committed to make room: it
 * is sealed and written in place, and its new version goes into its
 * level-1 node in the cache, which stays pinned, as the node on disk does
 * not name it yet. A commit round that takes the node later seals it with
 * those slots and writes its record only after a flush has made the
 * spilled data durable (sync.c: round_io_oneflush; the in-place protocol
 * flushes before any node goes in place). Until then a crash loses the
 * spilled data as it loses the dirty data of the cache, and nothing that
 * was synced. A stream then flushes once per sync, as a plain file's
 * write-back does, instead of once per cache-full.
 *
 * While spilled (the node's bit), a slot's committed version is still
 * "never written": a block spilled again is still fresh, and the round
 * that commits it journals no old version for it. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

static_assert(MT_FANOUT <= 128, "vc_entry.spill holds 128 slots");

typedef struct spill_cand {
    uint64_t idx;
    uint32_t ent;  /* the dirty leaf */
    uint32_t node; /* its level-1 node (pinned), VC_NONE: not fresh */
} spill_cand;

static int cmp_cand(const void *a, const void *b)
{
    const spill_cand *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The dirty data leaves, sorted; NULL with *n = 0 when there are none. */
static spill_cand *dirty_data(vd_image *img, uint32_t *n)
{
    *n = 0;
    spill_cand *c = malloc((size_t)(img->cache.ndirty ? img->cache.ndirty : 1) * sizeof *c);
    if (!c)
        return NULL;
    for (uint32_t d = 0; d < img->cache.ndirty; d++) {
        uint32_t i = img->cache.dirty[d];
        const vc_entry *ce = &img->cache.e[i];
        if (!ce->valid || ce->level != 0 || ce->meta)
            continue; /* metadata reaches its place through a commit only */
        c[*n].idx = ce->idx;
        c[*n].ent = i;
        c[*n].node = VC_NONE;
        (*n)++;
    }
    qsort(c, *n, sizeof *c, cmp_cand);
    return c;
}

/* Pin the level-1 node of every candidate and mark the fresh ones (node
 * set); the nodes pinned go to pinned[], *fresh and *newnodes (nodes
 * holding no spilled slot yet) counted. */
static vd_err find_fresh(vd_image *img, spill_cand *c, uint32_t n, uint32_t *pinned,
                         uint32_t *npinned, uint32_t *fresh, uint32_t *newnodes)
{
    const mt_geometry *g = &img->geo;
    *npinned = *fresh = *newnodes = 0;
    for (uint32_t k = 0; k < n;) {
        uint64_t p = mt_parent_idx(g, c[k].idx);
        uint32_t t;
        vd_err e = vd_get_block(img, 1, p, &t);
        if (e != VD_OK)
            return e;
        pinned[(*npinned)++] = t;
        const vc_entry *pe = &img->cache.e[t];
        int any = 0;
        for (; k < n && mt_parent_idx(g, c[k].idx) == p; k++) {
            uint32_t slot = mt_parent_slot(g, c[k].idx);
            mt_version v;
            mt_node_get(pe->buf, slot, &v);
            if (mt_version_is_none(&v) || vc_spilled(pe, slot)) {
                c[k].node = t;
                (*fresh)++;
                any = 1;
            }
        }
        *newnodes += any && !vc_held(pe);
    }
    return VD_OK;
}

/* Keep the fresh candidates (node set), in order, at most m: how many. */
static uint32_t keep_fresh(spill_cand *c, uint32_t n, uint32_t m)
{
    uint32_t j = 0;
    for (uint32_t k = 0; k < n && j < m; k++)
        if (c[k].node != VC_NONE)
            c[j++] = c[k];
    return j;
}

/* Seal candidates [0, m) into ct (jobs[j].in set by the caller; jobs[]
 * gets their versions) and make the runs that put them in place, merging
 * blocks consecutive on disk. */
static vd_err seal_runs(vd_image *img, const spill_cand *c, uint32_t m, uint8_t *ct,
                        vd_crypt_job *jobs, vd_wrun *runs, uint32_t *nruns)
{
    for (uint32_t j = 0; j < m; j++) {
        jobs[j].phys = vd_phys_of(img, 0, c[j].idx);
        jobs[j].out = ct + (size_t)j * VDF_BLOCK;
    }
    vd_err e = vd_block_seal_batch(img, jobs, m);
    *nruns = 0;
    for (uint32_t a = 0; e == VD_OK && a < m;) {
        uint32_t b = a + 1;
        while (b < m && jobs[b].phys == jobs[b - 1].phys + 1)
            b++;
        runs[*nruns].off = jobs[a].phys * VDF_BLOCK;
        runs[*nruns].buf = jobs[a].out;
        runs[(*nruns)++].len = (size_t)(b - a) * VDF_BLOCK;
        a = b;
    }
    return e;
}

/* Candidate j's new version into its node (held until a commit takes
 * it). */
static void node_apply(vd_image *img, const spill_cand *cj, const mt_version *v)
{
    vc_entry *pe = &img->cache.e[cj->node];
    uint32_t slot = mt_parent_slot(&img->geo, cj->idx);
    if (!vc_held(pe)) {
        pe->spos = img->nspill_nodes;
        img->spill_nodes[img->nspill_nodes++] = cj->node;
        pe->pins++; /* held until a commit takes it */
    }
    img->nspilled += !vc_any_spilled(pe);
    pe->spill[slot / 64] |= (uint64_t)1 << (slot % 64);
    mt_node_set(pe->buf, slot, v);
}

/* The spilled blocks' versions (candidates [0, m)) into their nodes; the
 * leaves are clean. */
static void spill_apply(vd_image *img, const spill_cand *c, uint32_t m,
                        const vd_crypt_job *jobs)
{
    for (uint32_t j = 0; j < m; j++) {
        node_apply(img, &c[j], &jobs[j].v);
        vc_entry *ce = &img->cache.e[c[j].ent];
        ce->version = jobs[j].v;
        vc_set_dirty(&img->cache, c[j].ent, 0);
        ce->pins++; /* read from here, not the disk, until written */
    }
}

/* Before a spill's writes: the writes before them keep their place in
 * the host's order; the record a crash falls back on is durable (it is
 * the one that names these blocks "never written"); and a session that
 * spills has written to the image as surely as one that commits, so a
 * crash from now on is reported (vd_image_info.unclean), though what it
 * loses was never synced. */
static vd_err spill_prepare(vd_image *img)
{
    vd_err e = vd_flight_join(img);
    if (e == VD_OK && img->unflushed)
        e = vd_io_flush(img);
    if (e == VD_OK && img->sb_clean)
        e = vd_super_set_clean(img, 0);
    return e;
}

static int spill_allowed(const vd_image *img)
{
    return img->hdr.format_version >= 5 && !img->rk.active && !img->read_only &&
           !img->nrecov && img->geo.height > 0 && img->spill_cap > 0 && !img->in_sync;
}

/* Before a spill or a direct write: a round in flight is joined, as its
 * record is the one a crash falls back on when it fails, and it may make
 * a block "never written" that the record before it still names. A
 * spill's writes in flight stay until the next one is sealed: its sealing
 * overlaps them. */
static vd_err join_round(vd_image *img)
{
    return img->flight && !vd_flight_writing(img) ? vd_flight_join(img) : VD_OK;
}

/* What a spill or a direct write holds while it works (free(NULL) and no
 * pinned nodes are fine). */
typedef struct spill_work {
    spill_cand *c;
    uint32_t *pinned, npinned; /* level-1 nodes find_fresh pinned */
    vd_crypt_job *jobs;
    vd_wrun *runs;
    uint32_t *pins; /* a spill's leaves, pinned until its writes are joined */
} spill_work;

static void work_end(vd_image *img, spill_work *w)
{
    for (uint32_t q = 0; q < w->npinned; q++)
        vd_unpin(img, w->pinned[q]);
    img->in_sync = 0;
    free(w->runs);
    free(w->pins);
    free(w->jobs);
    free(w->pinned);
    free(w->c);
}

/* Seal candidates [0, m) (jobs[j].in set) into ct, commit buffer k, and
 * start their writes: a spill's leaves (w->pins) become clean; a direct
 * write's blocks (taken set) have no cache entry. A failure fails the
 * handle. */
static vd_err work_write(vd_image *img, spill_work *w, uint32_t m, uint8_t *ct, unsigned k,
                         uint8_t *taken)
{
    uint32_t nruns = 0;
    vd_err e = seal_runs(img, w->c, m, ct, w->jobs, w->runs, &nruns);
    if (e == VD_OK)
        e = spill_prepare(img);
    if (e != VD_OK) {
        if (!img->failed)
            img->failed = e;
        return e;
    }
    if (taken) {
        for (uint32_t j = 0; j < m; j++) {
            node_apply(img, &w->c[j], &w->jobs[j].v);
            taken[w->c[j].ent] = 1;
        }
        img->stat_direct += m;
    } else {
        spill_apply(img, w->c, m, w->jobs);
    }
    e = vd_flight_writes(img, w->runs, nruns, w->pins, w->pins ? m : 0, k);
    w->runs = NULL; /* vd_flight_writes took them */
    w->pins = NULL;
    return e;
}

vd_err vd_spill(vd_image *img, int *done)
{
    *done = 0;
    if (!spill_allowed(img))
        return VD_OK;
    vd_err e = join_round(img);
    if (e != VD_OK)
        return e;
    uint32_t n, fresh = 0, newnodes = 0;
    spill_work w = {0};
    w.c = dirty_data(img, &n);
    w.pinned = malloc((size_t)(n ? n : 1) * sizeof *w.pinned);
    if (!w.c || !w.pinned) {
        work_end(img, &w);
        return VD_OK; /* the commit makes the room instead */
    }
    img->in_sync = 1; /* loading the nodes commits nothing */
    if (n >= img->dirty_limit / 2)
        e = find_fresh(img, w.c, n, w.pinned, &w.npinned, &fresh, &newnodes);
    if (e == VD_ERR_NOMEM) { /* no room for the nodes: the commit's turn */
        e = VD_OK;
        fresh = 0;
    }
    /* Worth it only when it frees half the dirty data at least; and the
     * nodes it holds are bounded, so a stream commits them now and then. */
    uint32_t m = fresh < img->dirty_limit ? fresh : img->dirty_limit;
    const unsigned k = vd_ctbuf_free(img);
    uint8_t *ct = NULL;
    if (e == VD_OK && m >= img->dirty_limit / 2 && m > 0 &&
        img->nspill_nodes + newnodes <= vd_held_cap(img) &&
        (ct = vd_ctbuf_get(img, k)) != NULL &&
        (w.jobs = malloc((size_t)m * sizeof *w.jobs)) != NULL &&
        (w.runs = malloc((size_t)m * sizeof *w.runs)) != NULL &&
        (w.pins = malloc((size_t)m * sizeof *w.pins)) != NULL) {
        m = keep_fresh(w.c, n, m);
        for (uint32_t j = 0; j < m; j++) {
            w.jobs[j].in = img->cache.e[w.c[j].ent].buf;
            w.pins[j] = w.c[j].ent;
        }
        e = work_write(img, &w, m, ct, k, NULL);
        *done = e == VD_OK && img->cache.ndirty < img->dirty_limit;
    }
    work_end(img, &w);
    return e;
}

uint32_t vd_held_cap(const vd_image *img)
{
    return img->log_len ? img->log_cap : img->spill_cap;
}

void vd_log_hold(vd_image *img, uint32_t ent)
{
    vc_entry *pe = &img->cache.e[ent];
    if (vc_held(pe)) {
        pe->logged = 1;
        vd_unpin(img, ent);
        return;
    }
    pe->logged = 1;
    pe->spos = img->nspill_nodes;
    img->spill_nodes[img->nspill_nodes++] = ent; /* keeps the caller's pin */
}

void vd_spill_committed(vd_image *img, uint32_t ent)
{
    vc_entry *pe = &img->cache.e[ent];
    if (!vc_held(pe))
        return;
    img->nspilled -= vc_any_spilled(pe);
    pe->spill[0] = pe->spill[1] = 0;
    pe->logged = 0;
    uint32_t last = img->spill_nodes[--img->nspill_nodes];
    img->spill_nodes[pe->spos] = last;
    img->cache.e[last].spos = pe->spos;
    vd_unpin(img, ent);
}

/* ---- Direct writes -----------------------------------------------------------
 * A long run of whole blocks written by the caller (a stream of new data)
 * goes from the caller's buffer straight to a spill: sealed into a commit
 * buffer and put in place, without passing through the cache. That saves
 * a copy per block and the cache entries it would take and evict. Only
 * fresh blocks go this way (committed version "never written", or
 * spilled), and only those that no cache entry holds dirty or pinned: a
 * clean entry is dropped, its contents being replaced. The writes may
 * still be in flight when the call returns; a read of those blocks joins
 * them first (vd_flight_read_guard). */

/* One try: *again set when the held nodes left no room and were
 * committed, so that a second try can take the run. */
static vd_err direct_once(vd_image *img, uint64_t lbn, uint32_t count, const uint8_t *buf,
                          uint8_t *taken, int *again)
{
    *again = 0;
    if (!spill_allowed(img) || count < VD_DIRECT_MIN || count > img->dirty_limit)
        return VD_OK;
    vd_err e = join_round(img);
    if (e != VD_OK)
        return e;
    spill_work w = {0};
    w.c = malloc((size_t)count * sizeof *w.c);
    w.pinned = malloc((size_t)count * sizeof *w.pinned);
    w.jobs = malloc((size_t)count * sizeof *w.jobs);
    w.runs = malloc((size_t)count * sizeof *w.runs);
    if (!w.c || !w.pinned || !w.jobs || !w.runs) {
        work_end(img, &w);
        return VD_OK; /* out of memory: the cache's way */
    }
    uint32_t n = 0, fresh = 0, newnodes = 0;
    for (uint32_t k = 0; k < count; k++) {
        uint32_t t = vc_lookup(&img->cache, vd_phys_of(img, 0, lbn + k));
        if (t != VC_NONE) {
            if (img->cache.e[t].dirty || img->cache.e[t].pins)
                continue;
            vc_drop(&img->cache, t);
        }
        w.c[n].idx = lbn + k;
        w.c[n].ent = k; /* its place in buf */
        w.c[n].node = VC_NONE;
        n++;
    }
    img->in_sync = 1; /* loading the nodes commits nothing */
    e = find_fresh(img, w.c, n, w.pinned, &w.npinned, &fresh, &newnodes);
    if (e == VD_ERR_NOMEM) { /* no room for the nodes: the cache's way */
        e = VD_OK;
        fresh = 0;
    }
    const unsigned k = vd_ctbuf_free(img);
    uint8_t *ct = NULL;
    int full = img->nspill_nodes + newnodes > vd_held_cap(img);
    if (e == VD_OK && fresh >= VD_DIRECT_MIN && !full && (ct = vd_ctbuf_get(img, k)) != NULL) {
        uint32_t m = keep_fresh(w.c, n, fresh);
        for (uint32_t j = 0; j < m; j++)
            w.jobs[j].in = buf + (size_t)w.c[j].ent * VDF_BLOCK;
        e = work_write(img, &w, m, ct, k, taken);
    }
    work_end(img, &w);
    /* The nodes held bound what a crash may cost to redo: the commit that
     * takes them, then the run again (a spill-only round, sync.c). */
    if (e == VD_OK && fresh >= VD_DIRECT_MIN && full && img->nspill_nodes > 0) {
        e = vd_sync_implicit(img);
        *again = e == VD_OK && img->nspill_nodes == 0;
    }
    return e;
}

vd_err vd_spill_direct(vd_image *img, uint64_t lbn, uint32_t count, const uint8_t *buf,
                       uint8_t *taken)
{
    memset(taken, 0, count);
    vd_err e = VD_OK;
    for (int again = 1; e == VD_OK && again;)
        e = direct_once(img, lbn, count, buf, taken, &again);
    return e;
}
