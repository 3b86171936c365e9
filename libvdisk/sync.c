/* The sync protocol: crash consistency with a journal of two versions.
 *
 * A sync of epoch X = (newest superblock epoch) + 1 runs in rounds; each
 * round commits a batch of dirty blocks:
 *
 *   1. seal the dirty data blocks and, bottom-up, every node on their paths
 *      (each parent takes its children's new versions);
 *   2. journal: for every block the round rewrites, (phys, before, after),
 *      where before is the version it holds on disk now; inline in the
 *      superblock when it fits, else in the journal area of slot X % 2,
 *      flushed first;
 *   3. the IN_PROGRESS superblock for X in slot X % 2 (root = old root,
 *      journal digest), flush;
 *   4. nodes and data blocks in place, and the sealed contents of the
 *      round's metadata blocks (image_fs.h) into the journal slot after the
 *      entries, flush;
 *   5. the COMMITTED superblock for X in the same slot (root = new root;
 *      naming the journal again when it holds metadata), flush; then the
 *      freshness anchor advances to X (R4) — with VD_ANCHOR_EXPLICIT_SYNC
 *      only inside vd_image_sync / vd_image_close, otherwise the advance
 *      stays owed (anchor_due) until then; a round an anchor with a step
 *      advances to commits at an epoch that anchor can hold
 *      (vd_anchor_fold);
 *   6. the metadata blocks in place, unflushed (redo: a crash before they
 *      are durable is repaired from the journal at open, image.c).
 * So a commit's metadata is all on disk or none of it (DESIGN C4), and the
 * data it points to was durable first.
 *
 * A crash anywhere leaves each journaled block holding its before or after
 * version; on open, blocks named in the journal of an IN_PROGRESS
 * superblock accept exactly those two versions (C1), every other block
 * the version its parent names. Once X commits, the journal is no longer
 * referenced and only the new versions verify (C3). A writable open over
 * an interrupted sync resolves the journal's blocks (O(journal) reads) and
 * commits them before anything else can commit, so no entry is left
 * ambiguous (the pitfall of DESIGN §4). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "image_internal.h"

typedef struct vd_change {
    uint64_t idx;         /* index within the level */
    uint32_t ent;         /* cache entry, or VC_NONE (resolved leaf, no write) */
    int have_before;
    int meta;             /* a metadata leaf: through the redo journal */
    int sealed;           /* sealed by the caller (vd_sync_sealed): after
                             set, its ciphertext in the round's ct[0] */
    mt_version before, after;
} vd_change;

typedef struct vd_round {
    vd_change *chg[MT_MAX_HEIGHT + 1]; /* per level, sorted by idx */
    uint32_t n[MT_MAX_HEIGHT + 1];
    uint8_t *ct[MT_MAX_HEIGHT + 1];    /* ciphertext per change */
    vd_jentry *j;
    uint32_t nj;
    uint32_t nredo;   /* metadata leaves */
    int ct0_borrowed; /* ct[0] is img->ctbuf[ct0_borrowed - 1] */
    int ct0_given;    /* ct[0] is the caller's, its leaves sealed */
    int explicit_sync; /* img->sync_explicit when built */
    int sync_ack;      /* img->sync_ack when built: may advance the anchor */
    uint64_t epoch;    /* committed by round_io */
    uint64_t anchor_to; /* where the anchor then moves (vd_anchor_fold) */
    int64_t commit_ns; /* the commit record's time */
    int fresh_early;   /* its fresh blocks are in place already (fresh_early) */
    uint64_t *sp;      /* level-1 nodes holding spilled data (spill.c),
                          sorted: changes of the round, leaves or not */
    uint32_t nsp;
    int spill_flush;   /* a node of the round names spilled data: the
                          record comes after a flush that made it durable */
    uint64_t early_bytes; /* written so, tallied after the join */
    int force_one;     /* the log's drain: one flush whatever its size */
    /* The drain's level-1 nodes are sealed into the commit buffer its
     * (absent) leaves would use, and its journal is assembled in the other
     * one: buffers that stay mapped, where a malloc of that size came
     * fresh from the kernel each time (page faults were most of a drain's
     * cost). No round is in flight then (vd_log_drain joins it). */
    int ct1_shared;
    uint8_t *jbuf;
    size_t jbuf_bytes;
    int log;           /* a log commit (format 6): leaves only */
    uint8_t *logblk;   /* its log block */
    uint8_t log_head[32]; /* the chain's head after it */
    uint8_t sb[VDF_BLOCK]; /* superblock records (not img->scratch: the
                              round may be written on a host thread) */
} vd_round;

/* A round whose writes run on a host thread (overlapped commits, below). */
struct vd_flight {
    vd_image *img;
    vd_round r;
    vd_err err;
    atomic_int ran;   /* round_io returned (set by the job; the caller
                         looks at it before the join too: fresh_early) */
    uint64_t ticket;  /* 0: run on the caller's thread */
    int boundary; /* the last round of a sync at a boundary: meta_commits */
    void (*then)(void *arg); /* after the writes, on the same thread */
    void *then_arg;
    /* Or no round but a spill's writes (spill.c, vd_flight_writes): the
     * runs, the leaves they hold pinned, and the bytes to tally. */
    vd_wrun *runs;
    uint32_t nruns, npins;
    uint32_t *pins;
    uint64_t run_bytes;
    uint64_t lo, hi; /* the bytes the runs cover lie in [lo, hi) */
};

/* The round's entries into buf, JE_PER_BLOCK to a block. */
static void encode_entries(const vd_round *r, uint8_t *buf)
{
    for (uint32_t k = 0; k < r->nj; k++)
        vd_jentry_encode(&r->j[k], buf + (size_t)(k / JE_PER_BLOCK) * VDF_BLOCK +
                                       (size_t)(k % JE_PER_BLOCK) * JE_BYTES);
}

static void round_free(vd_image *img, vd_round *r)
{
    if (r->ct0_borrowed || r->ct0_given)
        r->ct[0] = NULL;
    if (r->ct1_shared)
        r->ct[1] = NULL;
    for (uint32_t l = 0; l <= MT_MAX_HEIGHT; l++) {
        if (l > 0) /* nodes stay pinned for the whole round */
            for (uint32_t k = 0; k < r->n[l]; k++)
                if (r->chg[l][k].ent != VC_NONE)
                    vd_unpin(img, r->chg[l][k].ent);
        free(r->chg[l]);
        free(r->ct[l]);
    }
    free(r->j);
    free(r->sp);
    free(r->logblk);
    memset(r, 0, sizeof *r);
}

static int cmp_change(const void *a, const void *b)
{
    const vd_change *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_jentry(const void *a, const void *b)
{
    const vd_jentry *x = a, *y = b;
    return x->phys < y->phys ? -1 : x->phys > y->phys;
}

uint8_t *vd_buf_new(const vd_image *img, size_t bytes)
{
    uint8_t *b = vc_mem_alloc(bytes);
    if (b && img->host.mem_advise)
        img->host.mem_advise(img->host.ctx, b, bytes);
    return b;
}

int vd_flight_writing(const vd_image *img)
{
    return img->flight && img->flight->runs;
}

unsigned vd_ctbuf_free(const vd_image *img)
{
    return img->flight && img->flight->r.ct0_borrowed == 1 ? 1 : 0;
}

/* Ciphertext of the dirty data, kept from one sync to the next so a
 * stream of syncs does not fault fresh pages in every time; two, as the
 * round in flight may still be writing from one. NULL on failure:
 * round_build then takes a buffer of the round's size. */
uint8_t *vd_ctbuf_get(vd_image *img, unsigned k)
{
    if (!img->ctbuf[k] && img->dirty_limit)
        img->ctbuf[k] = vd_buf_new(img, (size_t)img->dirty_limit * VDF_BLOCK);
    return img->ctbuf[k];
}

/* How many of the sorted leaves fit in one round: journal entries (leaves
 * plus every distinct ancestor) within the journal capacity, and the nodes
 * to pin within what the cache can still hold; base: nodes the round
 * takes besides (spilled data's, spill_entries). */
static uint32_t round_limit(const vd_image *img, const vd_change *leaf,
                            uint32_t n, uint32_t node_room, uint32_t base)
{
    uint64_t last[MT_MAX_HEIGHT + 1];
    for (uint32_t l = 0; l <= MT_MAX_HEIGHT; l++)
        last[l] = UINT64_MAX;
    uint32_t nodes = base, metas = 0, k;
    for (k = 0; k < n; k++) {
        uint32_t add = 0;
        uint64_t idx = leaf[k].idx;
        for (uint32_t l = 1; l <= img->geo.height; l++) {
            idx /= img->geo.fanout;
            if (idx != last[l])
                add++;
        }
        uint32_t m = metas + (leaf[k].meta != 0);
        if (vd_journal_need((uint64_t)k + 1 + nodes + add, m) > img->hdr.journal_blocks ||
            nodes + add > node_room)
            break;
        nodes += add;
        metas = m;
        idx = leaf[k].idx;
        for (uint32_t l = 1; l <= img->geo.height; l++) {
            idx /= img->geo.fanout;
            last[l] = idx;
        }
    }
    return k;
}

/* Cache entries a round over nleaves leaves may pin for nodes: what can be
 * taken now, less room for one transient root-to-leaf path while nodes are
 * loaded. Never more than those leaves could need (one node per leaf per
 * level), so a small sync does not walk the whole cache. */
static uint32_t node_room(const vd_image *img, uint32_t nleaves)
{
    const uint64_t slack = (uint64_t)img->geo.height + 4;
    uint64_t need = (uint64_t)nleaves * img->geo.height + 1 + slack;
    uint32_t room = vc_available(&img->cache,
                                 need < img->cache.n ? (uint32_t)need : img->cache.n);
    return room > slack ? room - (uint32_t)slack : 0;
}

/* The next parent in order: of change k of chg[0..n), or spilled node s
 * of sp[0..nsp), whichever is lower. */
static uint64_t next_parent(const mt_geometry *g, const vd_change *chg, uint32_t n,
                            uint32_t k, const uint64_t *sp, uint32_t nsp, uint32_t s)
{
    uint64_t p = k < n ? mt_parent_idx(g, chg[k].idx) : UINT64_MAX;
    return s < nsp && sp[s] < p ? sp[s] : p;
}

/* The round's commit buffer for its leaves, and the leaves sealed into
 * it (those with a cache entry); *jobs: room for a job per leaf and per
 * spilled node, for the levels above (the caller frees it). */
static vd_err round_leaves(vd_image *img, vd_round *r, vd_crypt_job **jobs_out)
{
    vd_err e;
    unsigned cb = vd_ctbuf_free(img);
    if (r->ct0_given) {
        /* The caller's ciphertext; its leaves (ent VC_NONE) seal nothing. */
    } else if (r->n[0] <= img->dirty_limit && vd_ctbuf_get(img, cb)) {
        r->ct[0] = img->ctbuf[cb];
        r->ct0_borrowed = (int)cb + 1;
    } else {
        r->ct[0] = malloc((size_t)(r->n[0] ? r->n[0] : 1) * VDF_BLOCK);
    }
    if (!r->ct[0])
        return VD_ERR_NOMEM;
    /* One batch per level: the leaves, then each level of parents once
     * their slots hold the children's new versions (in parallel where the
     * host runs jobs). */
    size_t jcap = (size_t)r->n[0] + r->nsp ? (size_t)r->n[0] + r->nsp : 1;
    vd_crypt_job *jobs = malloc(jcap * sizeof *jobs);
    if (!jobs)
        return VD_ERR_NOMEM;
    size_t nj = 0;
    for (uint32_t k = 0; k < r->n[0]; k++) {
        vd_change *c = &r->chg[0][k];
        if (c->ent == VC_NONE)
            continue;
        jobs[nj].phys = vd_phys_of(img, 0, c->idx);
        jobs[nj].in = img->cache.e[c->ent].buf;
        jobs[nj].out = r->ct[0] + (size_t)k * VDF_BLOCK;
        nj++;
    }
    e = vd_block_seal_batch(img, jobs, nj);
    nj = 0;
    for (uint32_t k = 0; e == VD_OK && k < r->n[0]; k++)
        if (r->chg[0][k].ent != VC_NONE)
            r->chg[0][k].after = jobs[nj++].v;
    if (e != VD_OK) {
        free(jobs);
        return e;
    }
    *jobs_out = jobs;
    return VD_OK;
}

/* Seal the leaves, then each level of nodes bottom-up. Fills r->j. */
static vd_err round_build(vd_image *img, vd_round *r)
{
    const mt_geometry *g = &img->geo;
    vd_err e = VD_OK;
    for (uint32_t k = 0; k < r->n[0]; k++)
        r->nredo += r->chg[0][k].meta != 0;
    /* Journal entries: each leaf, at most one node per leaf on every level
     * below the root, and the root (round_limit keeps it within jcap). */
    uint64_t nj_max = ((uint64_t)r->n[0] + r->nsp) * g->height + 1;
    if (nj_max > (uint64_t)img->jcap + 1)
        nj_max = (uint64_t)img->jcap + 1;
    r->j = calloc((size_t)nj_max, sizeof *r->j);
    if (!r->j)
        return VD_ERR_NOMEM;

    vd_crypt_job *jobs = NULL;
    e = round_leaves(img, r, &jobs);
    if (e != VD_OK)
        return e;

    for (uint32_t l = 0; l < g->height; l++) {
        /* Parents of level l's changes, in order; level 1 also takes the
         * nodes holding spilled data (r->sp), with or without leaves. */
        const uint32_t nsp = l == 0 ? r->nsp : 0;
        uint32_t np = 0;
        for (uint32_t k = 0, s = 0; k < r->n[l] || s < nsp;) {
            uint64_t p = next_parent(g, r->chg[l], r->n[l], k, r->sp, nsp, s);
            for (; k < r->n[l] && mt_parent_idx(g, r->chg[l][k].idx) == p; k++)
                ;
            for (; s < nsp && r->sp[s] == p; s++)
                ;
            np++;
        }
        r->chg[l + 1] = calloc(np ? np : 1, sizeof(vd_change));
        if (l == 0 && r->force_one && r->n[0] == 0 && r->ct0_borrowed && np <= img->dirty_limit) {
            r->ct[1] = r->ct[0];
            r->ct1_shared = 1;
        } else {
            r->ct[l + 1] = malloc((size_t)(np ? np : 1) * VDF_BLOCK);
        }
        if (!r->chg[l + 1] || !r->ct[l + 1]) {
            free(jobs);
            return VD_ERR_NOMEM;
        }
        uint32_t pk = 0;
        for (uint32_t k = 0, s = 0; k < r->n[l] || s < nsp;) {
            uint64_t p = next_parent(g, r->chg[l], r->n[l], k, r->sp, nsp, s);
            for (; s < nsp && r->sp[s] == p; s++)
                ;
            vd_change *pc = &r->chg[l + 1][pk];
            pc->idx = p;
            pc->ent = VC_NONE;
            e = vd_get_block(img, l + 1, p, &pc->ent);
            if (e != VD_OK) {
                pc->ent = VC_NONE;
                r->n[l + 1] = pk;
                free(jobs);
                return e;
            }
            r->n[l + 1] = pk + 1;
            vc_entry *pe = &img->cache.e[pc->ent];
            for (; k < r->n[l] && mt_parent_idx(g, r->chg[l][k].idx) == p; k++) {
                vd_change *c = &r->chg[l][k];
                uint32_t slot = mt_parent_slot(g, c->idx);
                vd_jentry *je = &r->j[r->nj++];
                je->phys = vd_phys_of(img, l, c->idx);
                je->redo = l == 0 && c->meta;
                if (c->have_before)
                    je->before = c->before;
                else if (l > 0)
                    je->before = img->cache.e[c->ent].version;
                else if (vc_spilled(pe, slot)) /* committed: never written */
                    memset(&je->before, 0, sizeof je->before);
                else
                    mt_node_get(pe->buf, slot, &je->before);
                je->after = c->after;
                mt_node_set(pe->buf, slot, &c->after);
            }
            if (l == 0 && vc_any_spilled(pe))
                r->spill_flush = 1;
            pc->have_before = 1;
            pc->before = pe->version; /* what the node holds on disk now */
            jobs[pk].phys = pe->phys;
            jobs[pk].in = pe->buf;
            jobs[pk].out = r->ct[l + 1] + (size_t)pk * VDF_BLOCK;
            pk++;
        }
        e = vd_block_seal_batch(img, jobs, pk);
        if (e != VD_OK) {
            free(jobs);
            return e;
        }
        for (uint32_t k = 0; k < pk; k++)
            r->chg[l + 1][k].after = jobs[k].v;
    }
    free(jobs);
    /* The root's own journal entry; its parent is the superblock. */
    vd_change *root = &r->chg[g->height][0];
    vd_jentry *je = &r->j[r->nj++];
    je->phys = vd_phys_of(img, g->height, 0);
    je->before = root->before;
    je->after = root->after;
    qsort(r->j, r->nj, sizeof *r->j, cmp_jentry);
    return VD_OK;
}

/* The log a record names: log_len blocks under head (0: none). */
typedef struct vd_logref {
    uint32_t len;
    const uint8_t *head;
} vd_logref;

static const vd_logref no_log = {0, NULL};

/* log: the log the record names; NULL: the handle's (a record of the
 * state in memory, anchor.c). */
static vd_err super_write_flags(vd_image *img, uint8_t blk[VDF_BLOCK], uint64_t epoch,
                                uint32_t state, const mt_version *root,
                                const uint8_t tag[SB_ANCHOR_TAG_BYTES],
                                const vd_jentry *j, uint32_t nj, int jinline,
                                const uint8_t jdigest[32], int64_t *commit_ns,
                                uint32_t flags, const vd_logref *log)
{
    const vd_logref mine = {img->log_len, img->log_head};
    if (!log)
        log = &mine;
    vd_super s;
    memset(&s, 0, sizeof s);
    s.version = img->hdr.format_version;
    s.slot = (uint32_t)(epoch % 2);
    s.epoch = epoch;
    s.base_epoch = img->committed;
    s.state = state;
    memcpy(s.header_digest, img->header_digest, 32);
    s.root = *root;
    s.time_ns = vd_host_now(&img->host);
    memcpy(s.anchor_tag, tag, sizeof s.anchor_tag);
    vd_rekey_fill(img, &s, state == SB_STATE_COMMITTED ? img->rk.upto : 0);
    s.flags |= flags;
    if (log->len) {
        s.flags |= SB_FLAG_LOG;
        s.log_len = log->len;
        memcpy(s.log_head, log->head, 32);
    }
    if (nj) {
        s.jcount = nj;
        s.jinline = (uint32_t)jinline;
        if (!jinline || (flags & SB_FLAG_ONEFLUSH))
            memcpy(s.jdigest, jdigest, 32);
    }
    vd_super_encode(&s, blk);
    if (nj && jinline)
        for (uint32_t k = 0; k < nj; k++)
            vd_jentry_encode(&j[k], blk + SB_OFF_INLINE + (size_t)k * JE_BYTES);
    vd_err e = vd_super_seal(img, blk);
    if (e == VD_OK)
        e = vd_io_write(img, (img->hdr.sb_start + s.slot) * VDF_BLOCK, blk,
                        VDF_BLOCK);
    if (e == VD_OK)
        img->slot_redo[s.slot] = state == SB_STATE_COMMITTED && nj;
    if (e == VD_OK && (s.flags & SB_FLAG_REKEY))
        img->rk.cursor = s.rk_cursor;
    if (e == VD_OK && img->sb_last) {
        memcpy(img->sb_last, blk, VDF_BLOCK);
        img->sb_clean = 0;
        if (state == SB_STATE_COMMITTED)
            *(commit_ns ? commit_ns : &img->last_commit_ns) = s.time_ns;
    }
    return e;
}

vd_err vd_super_write(vd_image *img, uint8_t blk[VDF_BLOCK], uint64_t epoch,
                      uint32_t state, const mt_version *root,
                      const uint8_t tag[SB_ANCHOR_TAG_BYTES], const vd_jentry *j,
                      uint32_t nj, int jinline, const uint8_t jdigest[32],
                      int64_t *commit_ns)
{
    return super_write_flags(img, blk, epoch, state, root, tag, j, nj, jinline, jdigest,
                             commit_ns, 0, NULL);
}

/* A round's record: the commit record of a round with metadata keeps
 * naming the journal, since its metadata reaches its place only after the
 * record (redo). */
static vd_err write_super(vd_image *img, uint64_t epoch, uint32_t state,
                          const mt_version *root, vd_round *r,
                          const uint8_t jdigest[32], int jinline)
{
    int jnamed = state == SB_STATE_IN_PROGRESS || r->nredo > 0;
    return super_write_flags(img, r->sb, epoch, state, root, img->anchor_tag, r->j,
                             jnamed ? r->nj : 0, jinline, jdigest, &r->commit_ns, 0,
                             &no_log);
}

static vd_err write_journal(vd_image *img, uint64_t epoch, const vd_round *r,
                            uint8_t digest[32])
{
    uint32_t nblk = (uint32_t)vd_journal_entry_blocks(r->nj);
    uint64_t start = vd_journal_area(img, epoch);
    uint8_t *buf = calloc(nblk, VDF_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    encode_entries(r, buf);
    vd_err e = VD_ERR_NOMEM;
    if (vdc_hash_buf(digest, buf, (size_t)nblk * VDF_BLOCK) == 0)
        e = vd_io_write(img, start * VDF_BLOCK, buf, (size_t)nblk * VDF_BLOCK);
    free(buf);
    return e;
}

/* Nodes go in place at most this many to a write. A write makes page
 * cache folios as large as itself (libvdisk/host/file.c), and each later
 * 4 KiB write into a folio costs ext4 a walk of all its blocks: the nodes
 * a streaming commit writes are rewritten one by one by every later
 * commit over them. 16, the most a round of 7 MiB of new data wrote at a
 * time before spilled data (spill.c) put a stream's nodes into one commit:
 * with 128 to a write, random writes with fsync ran ~10 % slower. */
#define VD_NODE_RUN 16u

static int is_data(const vd_image *img, uint64_t phys)
{
    return phys >= img->hdr.data_start && phys - img->hdr.data_start < img->hdr.nblocks;
}

/* Does leaf k go out in this pass (meta: the metadata pass)? */
static int leaf_in_pass(const vd_round *r, uint32_t k, int meta)
{
    return (r->chg[0][k].ent != VC_NONE || r->chg[0][k].sealed) &&
           (r->chg[0][k].meta != 0) == meta;
}

/* Write level's ciphertexts in place, merging consecutive blocks into one
 * call; for level 0 only the leaves of one pass (data, or metadata). */
static vd_err write_level(vd_image *img, const vd_round *r, uint32_t l, int meta)
{
    uint32_t k = 0;
    while (k < r->n[l]) {
        if (l == 0 && !leaf_in_pass(r, k, meta)) {
            k++;
            continue;
        }
        uint32_t end = k + 1;
        const uint32_t most = l == 0 ? UINT32_MAX : VD_NODE_RUN;
        while (end < r->n[l] && end - k < most &&
               r->chg[l][end].idx == r->chg[l][end - 1].idx + 1 &&
               !(l == 0 && !leaf_in_pass(r, end, meta)))
            end++;
        vd_err e = vd_io_write(img, vd_phys_of(img, l, r->chg[l][k].idx) * VDF_BLOCK,
                               r->ct[l] + (size_t)k * VDF_BLOCK,
                               (size_t)(end - k) * VDF_BLOCK);
        if (e != VD_OK)
            return e;
        k = end;
    }
    return VD_OK;
}

/* The sealed contents of the round's metadata blocks, in entry order
 * (= leaf order), after the entry blocks in the journal slot of epoch. */
static vd_err write_redo(vd_image *img, uint64_t epoch, const vd_round *r,
                         int jinline)
{
    uint64_t start = vd_journal_area(img, epoch) + (jinline ? 0 : vd_journal_entry_blocks(r->nj));
    uint8_t *buf = malloc((size_t)r->nredo * VDF_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    uint32_t i = 0;
    for (uint32_t k = 0; k < r->n[0]; k++)
        if (r->chg[0][k].meta)
            memcpy(buf + (size_t)i++ * VDF_BLOCK, r->ct[0] + (size_t)k * VDF_BLOCK,
                   VDF_BLOCK);
    vd_err e = vd_io_write(img, start * VDF_BLOCK, buf, (size_t)r->nredo * VDF_BLOCK);
    free(buf);
    return e;
}

/* ack: inside an acknowledged sync (the round's own flag for a round in
 * flight: it may be joined by a vd_image_sync, and its record is then not
 * yet durable). */
static vd_err advance_anchor(vd_image *img, int ack)
{
    if (!img->anchor_due)
        return VD_OK;
    /* VD_ANCHOR_EXPLICIT_SYNC: a commit nobody waits on (cache pressure,
     * periodic, vd_image_commit) leaves the advance owed to the next
     * vd_image_sync or vd_image_close. */
    if (img->anchor_mode == VD_ANCHOR_EXPLICIT_SYNC && !ack)
        return VD_OK;
    return vd_anchor_advance_due(img);
}

/* The cache after a round is built: nodes and leaves hold the versions
 * the round writes, and its leaves are clean (pinned until the round is
 * written). Done before the writes, so the next round can be built while
 * this one's writes run (a failed write fails the handle anyway). */
static void round_apply(vd_image *img, vd_round *r)
{
    for (uint32_t l = 0; l <= img->geo.height; l++)
        for (uint32_t k = 0; k < r->n[l]; k++) {
            vd_change *c = &r->chg[l][k];
            if (c->ent == VC_NONE)
                continue;
            vc_entry *ce = &img->cache.e[c->ent];
            ce->version = c->after;
            if (l == 0 && ce->meta) {
                ce->meta = 0;
                img->meta_dirty--;
            }
            if (l == 0)
                vc_set_dirty(&img->cache, c->ent, 0);
            if (l == 1) /* sealed with every slot it holds */
                vd_spill_committed(img, c->ent);
        }
}

/* ---- one-flush commits (format 4) -----------------------------------------
 * A small round goes through the redo journal whole: the entries (every
 * one JE_REDO, nodes too) and the sealed contents of every block it
 * writes, then its COMMITTED record, whose digest covers both, and one
 * flush; then every block in place, unflushed. No IN_PROGRESS record and
 * no ordering inside the flush: a crash before it leaves a record whose
 * journal does not match it (the open falls back to the record before,
 * image.c: oneflush_settle) or the record before itself; after it, the
 * journal redoes whatever did not reach its place. One flush per commit
 * instead of three, for writing each block twice: worth it for the small
 * rounds of fsync-heavy work, not for an 8 MiB round of streaming writes.
 *
 * Format 5: a block whose before version is "never written" skips the
 * journal and goes in place in the same flush. Nothing can need its old
 * contents: the record a crash falls back on (the one before, durable
 * before this round's first write) reads it as zeros without touching the
 * disk. The digest covers it where it lies, so a record whose fresh block
 * did not reach the disk is not in force either. A new file's blocks are
 * fresh, so a round of streaming writes into new space commits with one
 * flush and writes each block once, whatever its size. */
static int block_fresh(const vd_image *img, const vd_jentry *je)
{
    return img->hdr.format_version >= 5 && mt_version_is_none(&je->before);
}

/* The round's blocks that go through the journal: all but the fresh. */
static uint32_t round_copies(const vd_image *img, const vd_round *r)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < r->nj; k++)
        n += !block_fresh(img, &r->j[k]);
    return n;
}

static int oneflush_ok(const vd_image *img, const vd_round *r, uint64_t epoch,
                       uint64_t cepoch)
{
    if (img->hdr.format_version < 4 || img->rk.active || epoch != cepoch ||
        (img->oneflush_max == 0 && !r->force_one))
        return 0;
    uint64_t nchg = 0;
    for (uint32_t l = 0; l <= img->geo.height; l++)
        nchg += r->n[l];
    for (uint32_t k = 0; k < r->n[0]; k++)
        if (r->chg[0][k].ent == VC_NONE) /* a resolved leaf: no contents */
            return 0;
    uint32_t ncopy = round_copies(img, r);
    return nchg == r->nj && (ncopy <= img->oneflush_max || r->force_one) &&
           vd_journal_need(r->nj, ncopy) <= img->hdr.journal_blocks;
}

typedef struct ct_ref {
    uint64_t phys;
    const uint8_t *ct;
} ct_ref;

static int cmp_ct_ref(const void *a, const void *b)
{
    const ct_ref *x = a, *y = b;
    return x->phys < y->phys ? -1 : x->phys > y->phys;
}

/* Every block of the round with its ciphertext, in entry (= phys) order. */
static vd_err round_refs(vd_image *img, const vd_round *r, ct_ref **out)
{
    ct_ref *ref = malloc((size_t)(r->nj ? r->nj : 1) * sizeof *ref);
    if (!ref)
        return VD_ERR_NOMEM;
    uint32_t n = 0;
    for (uint32_t l = 0; l <= img->geo.height; l++)
        for (uint32_t k = 0; k < r->n[l] && n < r->nj; k++) {
            ref[n].phys = vd_phys_of(img, l, r->chg[l][k].idx);
            ref[n].ct = r->ct[l] + (size_t)k * VDF_BLOCK;
            n++;
        }
    qsort(ref, n, sizeof *ref, cmp_ct_ref);
    for (uint32_t k = 0; k < r->nj; k++)
        if (n != r->nj || ref[k].phys != r->j[k].phys) {
            free(ref); /* round_build names each block once */
            return VD_ERR_INVAL;
        }
    *out = ref;
    return VD_OK;
}

/* The journal of a one-flush round into buf: entry blocks (eb of them, 0
 * when inline) then the ciphertext of every block that is not fresh, in
 * entry order; its digest over the entry blocks and every block's
 * ciphertext in entry order, fresh ones included, then a log commit's log
 * block. */
static vd_err oneflush_journal(vd_image *img, vd_round *r, const ct_ref *ref, uint32_t eb,
                               uint8_t *buf, uint8_t digest[32])
{
    for (uint32_t k = 0; k < r->nj; k++)
        r->j[k].redo = !block_fresh(img, &r->j[k]);
    if (eb)
        encode_entries(r, buf);
    vd_ofd d;
    if (vd_ofd_init(&d) != 0) {
        vd_ofd_free(&d);
        return VD_ERR_NOMEM;
    }
    vd_ofd_update(&d, buf, (size_t)eb * VDF_BLOCK);
    uint32_t i = eb;
    for (uint32_t k = 0; k < r->nj; k++) {
        vd_ofd_update(&d, ref[k].ct, VDF_BLOCK);
        if (r->j[k].redo)
            memcpy(buf + (size_t)i++ * VDF_BLOCK, ref[k].ct, VDF_BLOCK);
    }
    if (r->log)
        vd_ofd_update(&d, r->logblk, VDF_BLOCK);
    vd_ofd_final(&d, digest);
    return VD_OK;
}

/* The round's blocks in place, fresh ones or the others, merging runs
 * that are consecutive both on disk and in the round's buffers. */
static vd_err write_refs(vd_image *img, vd_round *r, const ct_ref *ref, int fresh,
                         int early)
{
    uint32_t k = 0;
    while (k < r->nj) {
        if (block_fresh(img, &r->j[k]) != fresh) {
            k++;
            continue;
        }
        uint32_t end = k + 1;
        const uint32_t most = is_data(img, ref[k].phys) ? UINT32_MAX : VD_NODE_RUN;
        while (end < r->nj && end - k < most && block_fresh(img, &r->j[end]) == fresh &&
               ref[end].phys == ref[end - 1].phys + 1 &&
               ref[end].ct == ref[end - 1].ct + VDF_BLOCK)
            end++;
        size_t len = (size_t)(end - k) * VDF_BLOCK;
        vd_err e = early ? vd_io_write_untallied(img, ref[k].phys * VDF_BLOCK, ref[k].ct, len)
                         : vd_io_write(img, ref[k].phys * VDF_BLOCK, ref[k].ct, len);
        if (e != VD_OK)
            return e;
        if (early)
            r->early_bytes += len;
        k = end;
    }
    return VD_OK;
}

/* Overlapped commits, format 5: while the round before is in flight (its
 * flush running on the host's thread), the caller puts this round's
 * fresh blocks in place, so its copying overlaps that flush. Safe at any
 * time for the same reason as in the one-flush commit: every record a
 * crash can fall back on (the one in flight's, or the one before it)
 * names such a block "never written" and never reads it. Not over a
 * round in flight that makes a block "never written" (a discard): the
 * record before that one may still name the block. Whichever way this
 * round then commits, it does not write them again in its one flush
 * (a three-flush round in place writes them again, harmlessly). Only
 * the caller's thread touches the round; the bytes are tallied after the
 * join, the statistics being the caller's. */
static vd_err fresh_early(vd_image *img, vd_round *r, vd_flight *f)
{
    /* A round in flight that is done already (a host whose flush costs
     * nothing, memory) has no flush left to overlap: the writes are left
     * to the round's own thread, where they run beside the caller's next
     * sealing instead of in its way. */
    if (img->hdr.format_version < 5 || img->rk.active || r->nj == 0 ||
        (!img->fresh_early_always && atomic_load_explicit(&f->ran, memory_order_acquire)))
        return VD_OK;
    /* Not beside a spill's writes (spill.c): a block this round writes
     * fresh may be one of them, written again since, and two writes of
     * one block on two threads land in either order. */
    if (f->runs)
        return VD_OK;
    const vd_round *fl = &f->r;
    for (uint32_t l = 0; l <= img->geo.height; l++)
        for (uint32_t k = 0; k < fl->n[l]; k++)
            if (mt_version_is_none(&fl->chg[l][k].after))
                return VD_OK;
    for (uint32_t k = 0; k < r->n[0]; k++)
        if (r->chg[0][k].ent == VC_NONE && !r->chg[0][k].sealed)
            return VD_OK; /* a resolved leaf: no contents */
    /* The entries' JE_REDO flags are not touched: a round that then
     * commits in place (three flushes) marks only its metadata. */
    ct_ref *ref = NULL;
    vd_err e = round_refs(img, r, &ref);
    if (e == VD_OK)
        e = write_refs(img, r, ref, 1, 1);
    free(ref);
    if (e == VD_OK)
        r->fresh_early = 1;
    return e;
}

/* A log commit (r->log, format 6) is a one-flush round of leaves only:
 * the record keeps the root and names the log, one block longer; that
 * block goes out with the journal, and the digest covers it last. */
static vd_err round_io_oneflush(vd_image *img, vd_round *r, uint64_t epoch,
                                uint64_t anchor_to)
{
    const mt_geometry *g = &img->geo;
    int jinline = r->nj <= (r->log ? SB_INLINE_MAX_REKEY : SB_INLINE_MAX);
    uint32_t eb = jinline ? 0 : (uint32_t)vd_journal_entry_blocks(r->nj);
    size_t bytes = (size_t)(eb + round_copies(img, r)) * VDF_BLOCK;
    const int own = !(r->jbuf && bytes <= r->jbuf_bytes);
    uint8_t *buf = own ? calloc(1, bytes ? bytes : 1) : r->jbuf;
    ct_ref *ref = NULL;
    if (!buf)
        return VD_ERR_NOMEM;
    if (!own) /* the entry blocks' padding; the copies fill the rest */
        memset(buf, 0, (size_t)eb * VDF_BLOCK);
    vd_err e = VD_OK;
    /* The record before this one is what a crash before the flush falls
     * back on, and it must cover what it promises: durable first when an
     * implicit commit deferred its last flush, or when metadata written in
     * place after it has only format 3's unchecked copies (a one-flush
     * record's own are checked, and a reader of this record redoes them:
     * image.c, load_redo). Fresh blocks rely on it too: it reads them as
     * zeros only if it is the record a crash falls back on. And spilled
     * data its nodes name (spill.c) must be durable before the record:
     * the digest does not cover it. */
    if (img->unflushed || img->redo_pending == VD_REDO_META || r->spill_flush)
        e = vd_io_flush(img);
    if (e == VD_OK)
        e = round_refs(img, r, &ref);
    uint8_t digest[32];
    if (e == VD_OK)
        e = oneflush_journal(img, r, ref, eb, buf, digest);
    if (e == VD_OK && bytes)
        e = vd_io_write(img, vd_journal_area(img, epoch) * VDF_BLOCK, buf, bytes);
    if (own)
        free(buf);
    /* Block log_len is named by no record yet: the log before it stays. */
    if (e == VD_OK && r->log)
        e = vd_io_write(img, (vd_header_log_start(&img->hdr) + img->log_len) * VDF_BLOCK,
                        r->logblk, VDF_BLOCK);
    if (e == VD_OK && !r->fresh_early)
        e = write_refs(img, r, ref, 1, 0);
    const vd_logref log = {r->log ? img->log_len + 1 : 0, r->log_head};
    if (e == VD_OK)
        e = super_write_flags(img, r->sb, epoch, SB_STATE_COMMITTED,
                              r->log ? &img->root : &r->chg[g->height][0].after,
                              img->anchor_tag, r->j, r->nj, jinline, digest, &r->commit_ns,
                              SB_FLAG_ONEFLUSH, &log);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e == VD_OK)
        img->epoch = epoch;
    /* In place, unflushed (root first: the node blocks precede the data):
     * until the next round's first flush a crash redoes them from the
     * journal; round epoch + 2, which reuses its area, comes after that
     * flush. */
    if (e == VD_OK)
        e = write_refs(img, r, ref, 0, 0);
    free(ref);
    if (e == VD_OK) {
        img->redo_pending = VD_REDO_ONEFLUSH;
        r->epoch = epoch;
        r->anchor_to = anchor_to;
    }
    return e;
}

/* Persist one round (steps 2-6 above). Touches only the round and the
 * superblock state (epoch, the deferred flush, the redo slots, sb_last),
 * never the cache: it may run on a host thread (vd_flight) while the
 * caller reads through the cache and builds the next round. */
static vd_err round_io(vd_image *img, vd_round *r)
{
    const mt_geometry *g = &img->geo;
    /* epoch: the in-progress record's (its slot and journal area); cepoch:
     * the commit record's; anchor_to: the anchor's after the round. Equal
     * but for a stepped anchor advanced right after the round (anchor.c). */
    uint64_t epoch = img->epoch + 1, cepoch, anchor_to;
    if (r->log) /* log_ok ruled out a stepped anchor's fold */
        return round_io_oneflush(img, r, epoch, epoch);
    /* The log's drain must not leave the log's versions to a record a
     * crash could skip: one flush, at the next epoch. */
    if (r->force_one ||
        !vd_anchor_fold(img, r->sync_ack, r->nredo > 0, &epoch, &cepoch, &anchor_to))
        cepoch = anchor_to = epoch;
    if (oneflush_ok(img, r, epoch, cepoch))
        return round_io_oneflush(img, r, epoch, anchor_to);
    if (r->force_one)
        return VD_ERR_CORRUPT; /* held nodes beyond what the journal takes */
    uint8_t jdigest[32] = {0};
    int jinline = r->nj <= (img->rk.active ? SB_INLINE_MAX_REKEY : SB_INLINE_MAX);
    /* A rotation's cursor moves past a round whose leaves were all sealed
     * anew (not a recovery round, which only resolves them). */
    uint64_t upto = r->n[0] ? r->chg[0][r->n[0] - 1].idx + 1 : 0;
    for (uint32_t k = 0; k < r->n[0]; k++)
        if (r->chg[0][k].ent == VC_NONE && !r->chg[0][k].sealed)
            upto = 0;
    vd_err e = VD_OK;
    const mt_version *root_after = &r->chg[g->height][0].after;

    if (!jinline) {
        /* The record now in slot epoch % 2 (epoch - 2) may name this area
         * for its redo. While an implicit commit's record (epoch - 1) is
         * not durable, epoch - 2 can still be the base a crash falls back
         * on: make epoch - 1 durable before overwriting the area. */
        if (img->unflushed && img->slot_redo[epoch % 2])
            e = vd_io_flush(img);
        if (e == VD_OK)
            e = write_journal(img, epoch, r, jdigest);
        if (e == VD_OK)
            e = vd_io_flush(img);
    }
    if (e == VD_OK)
        e = write_super(img, epoch, SB_STATE_IN_PROGRESS,
                        &r->chg[g->height][0].before, r, jdigest, jinline);
    if (e == VD_OK)
        e = vd_io_flush(img);
    /* Top-down order is not required for correctness (the journal names
     * both versions) but keeps writes sequential: root first on disk.
     * Metadata blocks do not go in place yet: their sealed contents go to
     * the journal, durable with the data before the commit record. */
    for (uint32_t l = g->height; e == VD_OK && l >= 1; l--)
        e = write_level(img, r, l, 0);
    if (e == VD_OK)
        e = write_level(img, r, 0, 0);
    if (e == VD_OK && r->nredo)
        e = write_redo(img, epoch, r, jinline);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e == VD_OK) {
        img->epoch = epoch; /* the IN_PROGRESS record of epoch is on disk */
        img->rk.upto = upto;
        e = write_super(img, cepoch, SB_STATE_COMMITTED, root_after, r, jdigest,
                        jinline);
        img->rk.upto = 0;
        img->epoch = cepoch;
    }
    /* The last flush makes the commit durable, which only an explicit sync
     * promises, and which an anchor advanced now must not run ahead of. An
     * implicit commit (cache pressure) leaves its record to the next flush:
     * the next round's first flush, or the explicit sync's. A crash before
     * that finds this round's IN_PROGRESS record, already durable, and
     * resolves it as C1 says. Not with metadata: it must not reach its
     * place before the record is durable (all of it or none, C4). */
    int defer = !r->explicit_sync && r->nredo == 0 &&
                !(img->have_anchor && img->anchor_mode == VD_ANCHOR_EVERY_COMMIT);
    if (e == VD_OK && !defer)
        e = vd_io_flush(img);
    /* Metadata in place, unflushed: the next round's first flush makes it
     * durable before that round's journal can reuse this slot (epoch + 2),
     * and until then a crash replays it from the journal (image.c). */
    if (e == VD_OK && r->nredo) {
        e = write_level(img, r, 0, 1);
        if (e == VD_OK)
            img->redo_pending = VD_REDO_META;
    }
    if (e == VD_OK) {
        img->unflushed = defer;
        r->epoch = cepoch;
        r->anchor_to = anchor_to;
    }
    return e;
}

/* After round_io, on the caller's thread: the trusted state moves on, or
 * the handle fails. */
static vd_err round_finish(vd_image *img, vd_round *r, vd_err e)
{
    if (e != VD_OK) {
        img->failed = e;
        return e;
    }
    img->committed = r->epoch;
    if (r->log) {
        img->log_len++;
        memcpy(img->log_head, r->log_head, sizeof img->log_head);
        img->stat_log_commits++;
    } else {
        img->root = r->chg[img->geo.height][0].after;
        img->log_len = 0; /* its record names no log: sealed into the tree */
        memset(img->log_head, 0, sizeof img->log_head);
    }
    img->sb_state = SB_STATE_COMMITTED;
    img->last_commit_ns = r->commit_ns;
    img->stat_syncs++;
    if (img->have_anchor) {
        /* A sync is acknowledged only once the anchor has advanced (R4);
         * a failed advance is retried by the next sync or close. */
        img->anchor_due = r->anchor_to;
        return advance_anchor(img, r->sync_ack);
    }
    return VD_OK;
}

/* ---- overlapped commits --------------------------------------------------
 * A round forced by cache pressure may leave its writes and flushes to a
 * host thread (vd_host.job_start) and return: the caller goes on filling
 * the cache, and the next round is sealed while this one's flushes wait on
 * the disk. At most one round is in flight. Its blocks stay pinned, so
 * reads find them in the cache and never read what is being written; the
 * I/O keeps its order (the next round's writes start only after the join),
 * so the host sees the same writes and flushes, in the same order, as
 * without the thread (the crash harnesses check those). A round in flight
 * (struct vd_flight, above) is the vd_round and its result. */

static void flight_main(void *arg)
{
    vd_flight *f = arg;
    if (f->runs) {
        f->err = VD_OK;
        for (uint32_t k = 0; k < f->nruns && f->err == VD_OK; k++)
            f->err = vd_io_write_untallied(f->img, f->runs[k].off, f->runs[k].buf,
                                           f->runs[k].len);
    } else {
        f->err = round_io(f->img, &f->r);
        if (f->err == VD_OK && f->then)
            f->then(f->then_arg);
    }
    atomic_store_explicit(&f->ran, 1, memory_order_release);
}

/* The join of a spill's writes: the leaves come free, the bytes count. */
static vd_err writes_join(vd_image *img, vd_flight *f)
{
    vd_err e = f->err;
    if (e == VD_OK)
        img->stat_bytes_written += f->run_bytes;
    else if (!img->failed)
        img->failed = e; /* the cache names versions the disk may not hold */
    for (uint32_t k = 0; k < f->npins; k++)
        vd_unpin(img, f->pins[k]);
    free(f->runs);
    free(f->pins);
    free(f);
    return e;
}

vd_err vd_flight_writes(vd_image *img, vd_wrun *runs, uint32_t nruns, uint32_t *pins,
                        uint32_t npins, unsigned ctbuf)
{
    vd_err e = vd_flight_join(img);
    vd_flight *f = e == VD_OK ? calloc(1, sizeof *f) : NULL;
    if (!f) {
        for (uint32_t k = 0; e == VD_OK && k < nruns; k++)
            e = vd_io_write(img, runs[k].off, runs[k].buf, runs[k].len);
        for (uint32_t k = 0; k < npins; k++)
            vd_unpin(img, pins[k]);
        free(runs);
        free(pins);
        if (e != VD_OK && !img->failed)
            img->failed = e;
        return e;
    }
    f->img = img;
    f->runs = runs;
    f->nruns = nruns;
    f->pins = pins;
    f->npins = npins;
    f->lo = UINT64_MAX;
    for (uint32_t k = 0; k < nruns; k++) {
        f->run_bytes += runs[k].len;
        f->lo = runs[k].off < f->lo ? runs[k].off : f->lo;
        f->hi = runs[k].off + runs[k].len > f->hi ? runs[k].off + runs[k].len : f->hi;
    }
    f->r.ct0_borrowed = (int)ctbuf + 1; /* the next round seals into the other */
    atomic_init(&f->ran, 0);
    img->flight = f;
    f->ticket = img->host.job_start && img->host.job_wait
                    ? img->host.job_start(img->host.ctx, flight_main, f)
                    : 0;
    if (f->ticket == 0) { /* no host thread: now, and joined */
        flight_main(f);
        return vd_flight_join(img);
    }
    return VD_OK;
}

vd_err vd_flight_read_guard(vd_image *img, uint64_t off, size_t len)
{
    const vd_flight *f = img->flight;
    if (!f || !f->runs || off >= f->hi || off + len <= f->lo)
        return VD_OK;
    for (uint32_t k = 0; k < f->nruns; k++)
        if (off < f->runs[k].off + f->runs[k].len && f->runs[k].off < off + len)
            return vd_flight_join(img);
    return VD_OK;
}

vd_err vd_flight_join(vd_image *img)
{
    vd_flight *f = img->flight;
    if (!f)
        return VD_OK;
    if (f->ticket)
        img->host.job_wait(img->host.ctx, f->ticket);
    /* A host that dropped the job: as run_jobs, run it here. */
    if (!atomic_load_explicit(&f->ran, memory_order_acquire))
        flight_main(f);
    img->flight = NULL;
    if (f->runs)
        return writes_join(img, f);
    vd_err e = round_finish(img, &f->r, f->err);
    if (e == VD_OK && f->boundary)
        img->meta_commits++;
    for (uint32_t k = 0; k < f->r.n[0]; k++)
        if (f->r.chg[0][k].ent != VC_NONE)
            vd_unpin(img, f->r.chg[0][k].ent);
    round_free(img, &f->r); /* unpins the nodes, frees chg[0] (a copy) */
    free(f);
    return e;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

/* The nodes holding spilled data, sorted, into the round (spill.c). */
static vd_err spill_nodes_take(const vd_image *img, vd_round *r)
{
    if (img->nspill_nodes == 0)
        return VD_OK;
    r->sp = malloc((size_t)img->nspill_nodes * sizeof *r->sp);
    if (!r->sp)
        return VD_ERR_NOMEM;
    for (uint32_t k = 0; k < img->nspill_nodes; k++)
        r->sp[k] = img->cache.e[img->spill_nodes[k]].idx;
    r->nsp = img->nspill_nodes;
    qsort(r->sp, r->nsp, sizeof *r->sp, cmp_u64);
    return VD_OK;
}

/* Round entries the nodes holding spilled data may need, their ancestors
 * included (at most one per level each). */
static uint32_t spill_entries(const vd_image *img)
{
    return img->nspill_nodes ? img->nspill_nodes * img->geo.height + 1 : 0;
}

/* Build a round over leaves [0, n) and persist it; with fly, leave the
 * writes in flight (the caller checked the host can run them). Either way
 * the previous round in flight is joined first, after this round is built
 * (its writes come before this round's). ct: the leaves' ciphertext,
 * sealed by the caller (vd_sync_sealed), or NULL: sealed here from their
 * cache entries. then: called after the writes, on their thread. */
static vd_err run_round_ct(vd_image *img, vd_change *leaves, uint32_t n, int fly,
                           uint8_t *ct, void (*then)(void *), void *then_arg,
                           int with_spill)
{
    vd_round r;
    memset(&r, 0, sizeof r);
    r.chg[0] = leaves;
    r.n[0] = n;
    if (with_spill && spill_nodes_take(img, &r) != VD_OK)
        return VD_ERR_NOMEM;
    r.ct[0] = ct;
    r.ct0_given = ct != NULL;
    r.explicit_sync = img->sync_explicit;
    r.sync_ack = img->sync_ack;
    vd_err e = round_build(img, &r);
    if (e == VD_OK && img->flight)
        e = fresh_early(img, &r, img->flight);
    vd_err j = vd_flight_join(img);
    img->stat_bytes_written += r.early_bytes;
    if (e == VD_OK)
        e = j;
    else if (!img->failed)
        img->failed = e; /* cached nodes may already hold unsynced entries */
    vd_flight *f = NULL;
    if (e == VD_OK && fly && (f = calloc(1, sizeof *f)) != NULL &&
        (f->r.chg[0] = malloc((size_t)(n ? n : 1) * sizeof *leaves)) == NULL) {
        free(f);
        f = NULL;
    }
    if (e == VD_OK)
        round_apply(img, &r);
    if (f) {
        if (n) /* a round of spilled data's nodes only has no leaves */
            memcpy(f->r.chg[0], leaves, (size_t)n * sizeof *leaves);
        vd_change *own = f->r.chg[0];
        f->r = r;
        f->r.chg[0] = own;
        f->img = img;
        f->then = then;
        f->then_arg = then_arg;
        atomic_init(&f->ran, 0);
        for (uint32_t k = 0; k < n; k++)
            if (leaves[k].ent != VC_NONE)
                img->cache.e[leaves[k].ent].pins++;
        img->flight = f;
        f->ticket = img->host.job_start(img->host.ctx, flight_main, f);
        if (f->ticket == 0) /* the host could not: write it now */
            flight_main(f);
        return VD_OK;
    }
    if (e == VD_OK)
        e = round_finish(img, &r, round_io(img, &r));
    if (e == VD_OK && then)
        then(then_arg);
    r.chg[0] = NULL; /* owned by the caller */
    round_free(img, &r);
    return e;
}

static vd_err run_round(vd_image *img, vd_change *leaves, uint32_t n, int fly)
{
    return run_round_ct(img, leaves, n, fly, NULL, NULL, NULL, 0);
}

/* ---- log commits (format 6, docs/FORMAT.md §7b) ----------------------------
 * A sync of a few rewritten data blocks seals and writes every node on
 * their paths too: on a random workload three times the blocks it was
 * asked for. A log commit seals the leaves only. Their versions go into
 * their level-1 nodes in the cache, which are held there (pinned, as
 * spilled data's are), and into one block of the log, which the commit
 * record names with the chain's head; the root stays. The record is a
 * one-flush record, its digest covering the log block, so a torn log
 * commit falls back on the record before it, whose log is a prefix.
 *
 * The nodes are sealed later, once for many commits: by the first round
 * of a sync that is not a log commit, which takes every held node. While
 * the log names blocks that round is the drain (vd_log_drain), of the
 * held nodes alone and with one flush, so no record a crash can fall
 * back on (an in-progress one) ever drops the log's versions; the held
 * nodes are bounded (log_cap) so that the drain always fits one flush. */

static int log_ok(vd_image *img, const vd_change *leaf, uint32_t n)
{
    if (img->hdr.log_blocks == 0 || img->log_len >= img->hdr.log_blocks || n == 0 ||
        n > LB_MAX || n > img->oneflush_max || img->rk.active || img->have_alt ||
        img->nrecov || img->nspilled || img->tolerate_nodes || img->flight ||
        img->geo.height == 0 || vd_journal_need(n, n) > img->hdr.journal_blocks)
        return 0;
    for (uint32_t k = 0; k < n; k++)
        if (leaf[k].ent == VC_NONE || leaf[k].have_before)
            return 0;
    /* A stepped anchor (a TPM's) folds each sync's commit onto a multiple
     * of its step; a log commit, and the drain it needs before a round
     * that seals nodes, would each cost a step more. */
    if (img->have_anchor && img->anchor.step > 1)
        return 0;
    uint32_t add = 0;
    uint64_t last = UINT64_MAX;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t p = mt_parent_idx(&img->geo, leaf[k].idx);
        if (p == last)
            continue;
        last = p;
        uint32_t i = vc_lookup(&img->cache, vd_phys_of(img, 1, p));
        add += i == VC_NONE || !vc_held(&img->cache.e[i]);
    }
    return img->nspill_nodes + add <= img->log_cap;
}

/* Seal the leaves; their versions into their level-1 nodes (held) and the
 * log block; the chain's next head. */
static vd_err round_build_log(vd_image *img, vd_round *r)
{
    const mt_geometry *g = &img->geo;
    r->j = calloc(r->n[0], sizeof *r->j);
    r->logblk = calloc(1, VDF_BLOCK);
    if (!r->j || !r->logblk)
        return VD_ERR_NOMEM;
    vd_crypt_job *jobs = NULL;
    vd_err e = round_leaves(img, r, &jobs);
    free(jobs);
    if (e != VD_OK)
        return e;
    uint8_t *lb = r->logblk;
    memcpy(lb + LB_OFF_MAGIC, LB_MAGIC, 8);
    vd_put_le32(lb + LB_OFF_INDEX, img->log_len);
    vd_put_le32(lb + LB_OFF_COUNT, r->n[0]);
    vd_put_le64(lb + LB_OFF_EPOCH, img->epoch + 1);
    for (uint32_t k = 0; k < r->n[0];) {
        uint64_t p = mt_parent_idx(g, r->chg[0][k].idx);
        uint32_t t;
        e = vd_get_block(img, 1, p, &t);
        if (e != VD_OK)
            return e;
        vc_entry *pe = &img->cache.e[t];
        for (; k < r->n[0] && mt_parent_idx(g, r->chg[0][k].idx) == p; k++) {
            const vd_change *c = &r->chg[0][k];
            const uint32_t slot = mt_parent_slot(g, c->idx);
            vd_jentry *je = &r->j[r->nj++];
            je->phys = vd_phys_of(img, 0, c->idx);
            mt_node_get(pe->buf, slot, &je->before);
            je->after = c->after;
            mt_node_set(pe->buf, slot, &c->after);
            uint8_t *ent = lb + LB_OFF_ENTRIES + (size_t)k * LB_ENTRY_BYTES;
            vd_put_le64(ent, c->idx);
            mt_version_encode(&c->after, ent + 8);
        }
        vd_log_hold(img, t);
    }
    return vd_logblk_chain(img->log_head, lb, r->n[0], r->log_head) == 0 ? VD_OK
                                                                        : VD_ERR_NOMEM;
}

/* A log commit of leaves [0, n) (log_ok), on this thread. */
static vd_err run_log_round(vd_image *img, vd_change *leaves, uint32_t n)
{
    vd_round r;
    memset(&r, 0, sizeof r);
    r.chg[0] = leaves;
    r.n[0] = n;
    r.log = 1;
    r.explicit_sync = img->sync_explicit;
    r.sync_ack = img->sync_ack;
    vd_err e = round_build_log(img, &r);
    if (e == VD_OK) {
        round_apply(img, &r);
        e = round_finish(img, &r, round_io(img, &r));
    } else if (!img->failed) {
        img->failed = e; /* nodes in the cache may hold the round's versions */
    }
    r.chg[0] = NULL; /* owned by the caller */
    round_free(img, &r);
    return e;
}

vd_err vd_log_drain(vd_image *img)
{
    if (img->log_len == 0)
        return VD_OK;
    if (img->failed)
        return VD_ERR_FAILED;
    vd_round r;
    memset(&r, 0, sizeof r);
    r.force_one = 1;
    r.explicit_sync = img->sync_explicit;
    r.sync_ack = img->sync_ack;
    vd_err e = vd_flight_join(img);
    if (e == VD_OK)
        e = spill_nodes_take(img, &r);
    r.jbuf = vd_ctbuf_get(img, 1 - vd_ctbuf_free(img));
    r.jbuf_bytes = r.jbuf ? (size_t)img->dirty_limit * VDF_BLOCK : 0;
    if (e == VD_OK)
        e = round_build(img, &r);
    if (e == VD_OK) {
        round_apply(img, &r);
        e = round_finish(img, &r, round_io(img, &r));
    } else if (!img->failed) {
        img->failed = e;
    }
    round_free(img, &r);
    return e;
}

/* A sync's first round takes every node holding spilled data (spill.c);
 * a round of their own when no leaf fits beside them, or none is dirty. */
typedef struct sync_spill {
    int pending;
    uint32_t base; /* the round entries they need (spill_entries) */
} sync_spill;

static vd_err run_round_sp(vd_image *img, vd_change *leaves, uint32_t n, int fly,
                           sync_spill *sp)
{
    int with = sp->pending;
    sp->pending = 0;
    return run_round_ct(img, leaves, n, fly, NULL, NULL, NULL, with);
}

/* How many of the n sorted leaves the next round takes (round_limit). The
 * round in flight holds cache entries until it is joined: when they are
 * what is missing, join it (a failure: 0 and *e set). */
static uint32_t round_take(vd_image *img, const vd_change *leaf, uint32_t n,
                           vd_err *e)
{
    uint32_t take = round_limit(img, leaf, n, node_room(img, n), 0);
    if (take < n && img->flight) {
        *e = vd_flight_join(img);
        take = *e == VD_OK ? round_limit(img, leaf, n, node_room(img, n), 0) : 0;
    }
    return take;
}

/* round_take for a sync that may still owe its spilled nodes a round:
 * with them if some leaves fit beside them, else after a round of their
 * own. */
static uint32_t round_take_sp(vd_image *img, const vd_change *leaf, uint32_t n,
                              int fly, sync_spill *sp, vd_err *e)
{
    if (sp->pending) {
        uint32_t take = round_limit(img, leaf, n, node_room(img, n + sp->base), sp->base);
        if (take > 0)
            return take;
        *e = run_round_sp(img, NULL, 0, fly, sp);
        if (*e != VD_OK)
            return 0;
    }
    return round_take(img, leaf, n, e);
}

/* The sorted data leaves d[0, nd) and metadata leaves m[0, nm) merged in
 * order into out; how many. */
static uint32_t merge_leaves(const vd_change *d, uint32_t nd, const vd_change *m,
                             uint32_t nm, vd_change *out)
{
    uint32_t a = 0, b = 0, n = 0;
    while (a < nd || b < nm)
        out[n++] = (b >= nm || (a < nd && d[a].idx < m[b].idx)) ? d[a++] : m[b++];
    return n;
}

/* fly: the commit is forced by cache pressure (vd_sync_implicit); its
 * rounds may be left in flight. */
static vd_err sync_run(vd_image *img, int fly)
{
    if (img->failed)
        return VD_ERR_FAILED;
    if (img->read_only)
        return VD_OK;
    /* Never within a sync somebody waits on, nor a rotation (its rounds
     * move the cursor its records carry), nor without the host's thread
     * (an enclave shield: the serial path). */
    fly = fly && !img->sync_explicit && !img->rk.active && img->host.job_start &&
          img->host.job_wait;
    vd_err e = VD_OK;
    /* A commit in flight is joined first, except by the next one with
     * blocks to commit: that one seals its first round while the previous
     * round's flushes run, and joins it before writing (run_round). */
    /* Nodes held for the log alone hold nothing uncommitted. */
    const int nothing = img->cache.ndirty == 0 && img->nspilled == 0;
    if (!fly || nothing)
        e = vd_flight_join(img);
    if (e != VD_OK)
        return e;
    if (img->sync_explicit && img->unflushed && nothing) {
        /* An implicit commit's record, before anything is acknowledged.
         * With blocks to commit, the round's own first flush does it. */
        e = vd_io_flush(img);
        if (e != VD_OK) {
            img->failed = e;
            return e;
        }
    }
    /* The anchor never runs ahead of a durable record: while one is
     * deferred, the round below advances the anchor after its flushes.
     * With blocks to commit it advances once, after the last round (one
     * step of a stepped anchor per sync, not one for the commits before
     * and one for this). */
    if (nothing)
        return img->unflushed ? VD_OK : advance_anchor(img, img->sync_ack);
    /* Inside a file-system operation an implicit commit takes data blocks
     * only: the metadata so far may hold half of the operation (C4). Data
     * is safe to commit at any time: it lies in clusters the committed
     * volume counts as free (freed ones are not reused before the commit
     * that frees them, fat/table.c) or in the same file's clusters. */
    const int in_op = img->op_depth > 0 && !img->sync_explicit;
    int data_only = in_op;
    if (data_only) {
        /* Only metadata to commit and no room left (one operation larger
         * than the cache): commit it rather than fail the operation; the
         * documented limit of C4 (docs/SECURITY.md §4). */
        int any_data = img->nspill_nodes > 0;
        for (uint32_t d = 0; d < img->cache.ndirty && !any_data; d++) {
            const vc_entry *ce = &img->cache.e[img->cache.dirty[d]];
            any_data = ce->valid && ce->level == 0 && !ce->meta;
        }
        data_only = any_data;
    }
    img->in_sync = 1;
    vd_change *leaves = calloc((size_t)img->cache.ndirty * 2, sizeof *leaves);
    if (!leaves) {
        img->in_sync = 0;
        return VD_ERR_NOMEM;
    }
    /* [0, nd) data leaves, [nd, nd + nm) metadata; merged copies after. */
    uint32_t nd = 0, nm = 0, n;
    vd_change *meta = leaves + img->cache.ndirty;
    for (uint32_t d = 0; d < img->cache.ndirty; d++) {
        uint32_t i = img->cache.dirty[d];
        vc_entry *ce = &img->cache.e[i];
        if (!ce->valid || ce->level != 0)
            continue;
        int m = ce->meta && !img->no_meta_journal;
        if (m && data_only)
            continue;
        vd_change *c = m ? &meta[nm++] : &leaves[nd++];
        c->idx = ce->idx;
        c->ent = i;
        c->meta = m;
        ce->pins++;
    }
    qsort(leaves, nd, sizeof *leaves, cmp_change);
    qsort(meta, nm, sizeof *leaves, cmp_change);
    vd_change *merged = NULL;
    if (nm && !(merged = calloc((size_t)nd + nm, sizeof *merged)))
        e = VD_ERR_NOMEM;
    /* A few blocks, and room in the log: a log commit. Else the nodes the
     * log holds are sealed first, with one flush of their own. */
    int logged = 0;
    if (e == VD_OK && img->hdr.log_blocks && nd + nm > 0 && nd + nm <= LB_MAX) {
        vd_change *all = leaves;
        if (nm) {
            all = merged;
            merge_leaves(leaves, nd, meta, nm, merged);
        }
        if (img->flight)
            e = vd_flight_join(img);
        int ok = e == VD_OK && log_ok(img, all, nd + nm);
        if (e == VD_OK && !ok && img->log_len) {
            /* The log full, or its nodes: seal them, then log anew. */
            e = vd_log_drain(img);
            ok = e == VD_OK && log_ok(img, all, nd + nm);
        }
        if (ok) {
            e = run_log_round(img, all, nd + nm);
            logged = 1;
        }
    }
    if (e == VD_OK && !logged)
        e = vd_log_drain(img);
    /* Data-only rounds until the rest of the data and all the metadata fit
     * in one round: then that round commits them together, data in place
     * before the record, metadata after it. Metadata that cannot fit in one
     * round at all (a single huge operation) is split over several: the
     * documented limit of C4 (docs/SECURITY.md §4). */
    sync_spill sp = {img->nspill_nodes > 0, spill_entries(img)};
    uint32_t done = 0;
    while (e == VD_OK && !logged) {
        uint32_t rest = nd - done;
        if (nm) {
            n = merge_leaves(leaves + done, nd - done, meta, nm, merged);
            if (round_take_sp(img, merged, n, fly, &sp, &e) == n) {
                e = run_round_sp(img, merged, n, fly, &sp);
                break;
            }
            if (e != VD_OK)
                break;
            if (rest == 0) {
                for (uint32_t md = 0; e == VD_OK && md < nm;) {
                    uint32_t take = round_take_sp(img, meta + md, nm - md, fly, &sp, &e);
                    if (e == VD_OK)
                        e = take ? run_round_sp(img, meta + md, take, fly, &sp)
                                 : VD_ERR_NOMEM;
                    md += take;
                }
                break;
            }
        } else if (rest == 0) {
            break;
        }
        uint32_t take = round_take_sp(img, leaves + done, rest, fly, &sp, &e);
        if (e != VD_OK)
            break;
        if (take == 0) {
            e = VD_ERR_NOMEM;
            break;
        }
        e = run_round_sp(img, leaves + done, take, fly, &sp);
        done += take;
    }
    if (e == VD_OK && !logged && sp.pending) /* nothing dirty but spilled data */
        e = run_round_sp(img, NULL, 0, fly, &sp);
    /* At a boundary every freed cluster is free; a round still in flight
     * counts once it is joined. */
    if (e == VD_OK && !in_op) {
        if (img->flight)
            img->flight->boundary = 1;
        else
            img->meta_commits++;
    }
    for (uint32_t k = 0; k < nd; k++)
        vd_unpin(img, leaves[k].ent);
    for (uint32_t k = 0; k < nm; k++)
        vd_unpin(img, meta[k].ent);
    free(merged);
    free(leaves);
    img->in_sync = 0;
    /* When no round ran (its own did; a round in flight, at its join). */
    if (e == VD_OK && !img->flight && !img->unflushed)
        e = advance_anchor(img, img->sync_ack);
    return e;
}

vd_err vd_sync_locked(vd_image *img)
{
    vd_err e = sync_run(img, 0);
    /* Callers expect the commit done: the last round too. */
    vd_err j = vd_flight_join(img);
    return e != VD_OK ? e : j;
}

vd_err vd_sync_implicit(vd_image *img)
{
    int done = 0;
    vd_err e = vd_spill(img, &done); /* fresh data needs no commit yet */
    if (e != VD_OK || done)
        return e;
    return sync_run(img, 1);
}

/* A resolved leaf under node (level, idx) of the interrupted sync's
 * journal: its first block, the version its level-1 node names (no read
 * of the block), so that the recovery round seals the node anew from
 * what it holds now. A round may change a level-1 node without any
 * journaled block under it (spilled data, spill.c). */
static vd_err node_witness(vd_image *img, uint32_t level, uint64_t idx, vd_change *c)
{
    uint64_t lbn = idx * vd_node_span(img, level);
    if (lbn >= img->geo.nblocks)
        return VD_ERR_CORRUPT;
    uint32_t t;
    vd_err e = vd_get_block(img, 1, mt_parent_idx(&img->geo, lbn), &t);
    if (e != VD_OK)
        return e;
    c->idx = lbn;
    c->ent = VC_NONE;
    c->have_before = 1;
    mt_node_get(img->cache.e[t].buf, mt_parent_slot(&img->geo, lbn), &c->before);
    c->after = c->before;
    vd_unpin(img, t);
    return VD_OK;
}

/* Level and index of the block at phys: 0 / -1 (not a tree block). */
static int level_of(const vd_image *img, uint64_t phys, uint32_t *level, uint64_t *idx)
{
    const vd_header *h = &img->hdr;
    const mt_geometry *g = &img->geo;
    if (is_data(img, phys)) {
        *level = 0;
        *idx = phys - h->data_start;
        return 0;
    }
    for (uint32_t l = 1; phys >= h->node_start && l <= g->height; l++) {
        uint64_t i = phys - h->node_start;
        if (i >= g->level_start[l] && i - g->level_start[l] < g->count[l]) {
            *level = l;
            *idx = i - g->level_start[l];
            return 0;
        }
    }
    return -1;
}

/* Does the sorted run leaves[0, n) hold a block under level-1 node idx? */
static int has_leaf_under(const vd_image *img, const vd_change *leaves, uint32_t n,
                          uint64_t idx)
{
    uint64_t first = idx * img->geo.fanout;
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (leaves[mid].idx < first)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && mt_parent_idx(&img->geo, leaves[lo].idx) == idx;
}

vd_err vd_recover_commit(vd_image *img)
{
    /* Resolve every data block the interrupted sync touched: which of its
     * two versions is on disk. Nodes resolve as they are loaded; a
     * level-1 node with no journaled block under it gets a witness
     * (node_witness), so the round seals every journaled node anew. */
    uint32_t n = 0;
    vd_change *leaves = calloc(img->nrecov ? img->nrecov : 1, sizeof *leaves);
    if (!leaves)
        return VD_ERR_NOMEM;
    vd_err e = vd_log_drain(img);
    img->in_sync = 1;
    for (uint32_t k = 0; k < img->nrecov && e == VD_OK; k++) {
        uint64_t phys = img->recov[k].phys;
        uint32_t level;
        uint64_t idx;
        if (level_of(img, phys, &level, &idx) != 0) {
            e = VD_ERR_CORRUPT;
            break;
        }
        if (level > 0)
            continue;
        uint32_t t;
        e = vd_get_block(img, 0, idx, &t);
        if (e != VD_OK)
            break;
        leaves[n].idx = idx;
        leaves[n].ent = VC_NONE;
        leaves[n].have_before = 1;
        leaves[n].before = leaves[n].after = img->cache.e[t].version;
        n++;
        vd_unpin(img, t);
    }
    /* Sorted (the journal is, and data follows the nodes or precedes
     * them as a whole); the witnesses join after the search. */
    const uint32_t nreal = n;
    for (uint32_t k = 0; k < img->nrecov && e == VD_OK; k++) {
        uint32_t level;
        uint64_t idx;
        if (level_of(img, img->recov[k].phys, &level, &idx) == 0 && level == 1 &&
            !has_leaf_under(img, leaves, nreal, idx))
            e = node_witness(img, level, idx, &leaves[n++]);
    }
    if (e == VD_OK && n > nreal)
        qsort(leaves, n, sizeof *leaves, cmp_change);
    if (e == VD_OK && n > 0) {
        /* One round: the journal must be replaced by a commit covering
         * all of it. */
        if (round_limit(img, leaves, n, node_room(img, n), 0) != n)
            e = VD_ERR_NOMEM;
        else
            e = run_round(img, leaves, n, 0);
    }
    img->in_sync = 0;
    free(leaves);
    if (e == VD_OK) {
        free(img->recov);
        img->recov = NULL;
        img->nrecov = 0;
        img->recovered = 1;
    }
    return e;
}

vd_err vd_sync_paths(vd_image *img, const uint64_t *lbn, uint32_t n)
{
    if (img->failed)
        return VD_ERR_FAILED;
    vd_err e = vd_flight_join(img); /* a commit forced before comes first */
    if (e == VD_OK)
        e = vd_log_drain(img); /* its rounds take no held node */
    if (e != VD_OK)
        return e;
    /* Each block as a recovery round resolves it: no write of its own, the
     * version its parent names before and after; its nodes are sealed
     * anew like any round's. */
    vd_change *leaves = calloc(n ? n : 1, sizeof *leaves);
    if (!leaves)
        return VD_ERR_NOMEM;
    img->in_sync = 1;
    for (uint32_t k = 0; k < n && e == VD_OK; k++) {
        uint32_t t;
        e = vd_get_block(img, 1, mt_parent_idx(&img->geo, lbn[k]), &t);
        if (e != VD_OK)
            break;
        leaves[k].idx = lbn[k];
        leaves[k].ent = VC_NONE;
        leaves[k].have_before = 1;
        mt_node_get(img->cache.e[t].buf, mt_parent_slot(&img->geo, lbn[k]),
                    &leaves[k].before);
        leaves[k].after = leaves[k].before;
        vd_unpin(img, t);
    }
    for (uint32_t done = 0; e == VD_OK && done < n;) {
        uint32_t take = round_limit(img, leaves + done, n - done, node_room(img, n - done), 0);
        e = take ? run_round(img, leaves + done, take, 0) : VD_ERR_NOMEM;
        done += take;
    }
    img->in_sync = 0;
    free(leaves);
    return e;
}

vd_err vd_sync_sealed(vd_image *img, const uint64_t *lbn, const mt_version *v,
                      uint32_t n, uint8_t *ct, int fly, void (*then)(void *arg),
                      void *then_arg)
{
    if (img->failed)
        return VD_ERR_FAILED;
    fly = fly && img->host.job_start && img->host.job_wait;
    vd_err e = vd_log_drain(img); /* its rounds take no held node */
    if (e != VD_OK)
        return e;
    vd_change *leaves = calloc(n ? n : 1, sizeof *leaves);
    if (!leaves)
        return VD_ERR_NOMEM;
    for (uint32_t k = 0; k < n; k++) {
        leaves[k].idx = lbn[k];
        leaves[k].ent = VC_NONE;
        leaves[k].sealed = 1;
        leaves[k].after = v[k];
    }
    img->in_sync = 1;
    for (uint32_t done = 0; e == VD_OK && done < n;) {
        uint32_t take = round_take(img, leaves + done, n - done, &e);
        int last = done + take == n;
        if (e == VD_OK)
            e = take ? run_round_ct(img, leaves + done, take, fly,
                                    ct + (size_t)done * VDF_BLOCK, last ? then : NULL,
                                    then_arg, 0)
                     : VD_ERR_NOMEM;
        done += take;
    }
    img->in_sync = 0;
    free(leaves);
    return e;
}
