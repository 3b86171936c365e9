/* Reading blocks through the tree: each block is verified lazily, on the
 * path of the read, against the version its parent holds (R2, R3). Opening
 * an image reads O(1) blocks; memory stays within the cache budget. */
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

vd_jentry *vd_recov_find(const vd_image *img, uint64_t phys)
{
    uint32_t lo = 0, hi = img->nrecov;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (img->recov[mid].phys < phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < img->nrecov && img->recov[lo].phys == phys ? &img->recov[lo]
                                                           : NULL;
}

/* Which versions may block (level, idx) hold? Normally exactly the one its
 * parent names. While an interrupted sync is unresolved, a block that sync
 * touched may hold its journal's before or after version, and nothing
 * else (C1); its parent may be stale, so the journal decides. */
static vd_err expected_versions(vd_image *img, uint32_t level, uint64_t idx,
                                mt_version cand[2], unsigned *n)
{
    const vd_jentry *j =
        img->nrecov ? vd_recov_find(img, vd_phys_of(img, level, idx)) : NULL;
    if (j) {
        /* The journal names this block's versions, but its parent is still
         * loaded (and so verified): every read checks its whole path, so a
         * tampered node is caught even when all its children are named in
         * the journal. */
        if (level < img->geo.height) {
            uint32_t p;
            vd_err e = vd_get_block(img, level + 1, mt_parent_idx(&img->geo, idx), &p);
            if (e != VD_OK)
                return e;
            vd_unpin(img, p);
        }
        cand[0] = j->after;
        cand[1] = j->before;
        *n = mt_version_equal(&j->after, &j->before) ? 1 : 2;
        return VD_OK;
    }
    *n = 1;
    if (level == img->geo.height) {
        cand[0] = img->root;
        return VD_OK;
    }
    uint32_t p;
    vd_err e = vd_get_block(img, level + 1, mt_parent_idx(&img->geo, idx), &p);
    if (e != VD_OK)
        return e;
    mt_node_get(img->cache.e[p].buf, mt_parent_slot(&img->geo, idx), &cand[0]);
    vd_unpin(img, p);
    return VD_OK;
}

/* Verify ct (already read) against the candidates into pt. A candidate
 * that says "never written" accepts the block as zeros without looking at
 * the host's bytes: the authenticated parent vouches for that. */
static vd_err accept_block(vd_image *img, uint64_t phys, const uint8_t *ct,
                           const mt_version *cand, unsigned n, uint8_t *pt,
                           mt_version *matched)
{
    for (unsigned k = 0; k < n; k++) {
        if (mt_version_is_none(&cand[k]))
            continue;
        vd_err e = vd_block_open(img, phys, ct, &cand[k], pt);
        if (e == VD_OK) {
            *matched = cand[k];
            return VD_OK;
        }
        if (e != VD_ERR_AUTH)
            return e;
    }
    /* "Never written" competing with a real version: a block an
     * interrupted sync writes for the first time, which reads as its
     * before version, zeros, unless its after version landed. Not the
     * host's bytes: since format 5 a never-written block may hold a write
     * no record names (a one-flush commit's fresh block that a crash cut
     * off, spilled data, spill.c), and zeros are what C1 allows there
     * anyway: a host that put zeros there would get the same answer. */
    for (unsigned k = 0; k < n; k++) {
        if (mt_version_is_none(&cand[k])) {
            memset(pt, 0, VDF_BLOCK);
            *matched = cand[k];
            return VD_OK;
        }
    }
    memset(pt, 0, VDF_BLOCK);
    return VD_ERR_AUTH;
}

static int all_none(const mt_version *cand, unsigned n)
{
    for (unsigned k = 0; k < n; k++)
        if (!mt_version_is_none(&cand[k]))
            return 0;
    return 1;
}

vd_err vd_cache_take(vd_image *img, uint32_t *out)
{
    uint32_t t = vc_take(&img->cache);
    if (t == VC_NONE && img->cache.ndirty > 0 && !img->in_sync &&
        !img->read_only) {
        /* Every entry is dirty: commit to make room (an implicit sync;
         * C1 allows newer content to become durable early). */
        vd_err e = vd_sync_implicit(img);
        if (e != VD_OK)
            return e;
        t = vc_take(&img->cache);
    }
    if (t == VC_NONE && img->flight) {
        /* The entries a commit in flight holds come back once it is
         * written (a sync under way takes this path: it cannot commit). */
        vd_err e = vd_flight_join(img);
        if (e != VD_OK)
            return e;
        t = vc_take(&img->cache);
    }
    if (t == VC_NONE)
        return VD_ERR_NOMEM;
    *out = t;
    return VD_OK;
}

static void fill_entry(vd_image *img, uint32_t t, uint32_t level, uint64_t idx,
                       const mt_version *v)
{
    vc_entry *e = &img->cache.e[t];
    e->phys = vd_phys_of(img, level, idx);
    e->idx = idx;
    e->level = (uint8_t)level;
    e->version = *v;
    e->dirty = 0;
    e->pins = 1;
    vc_insert(&img->cache, t);
}

/* Verify block (level, idx) against its candidate versions into pt,
 * reading its ciphertext unless the caller has it (ct_or_null). The block
 * does not enter the cache. */
static vd_err verify_into(vd_image *img, uint32_t level, uint64_t idx,
                          const mt_version *cand, unsigned n,
                          const uint8_t *ct_or_null, uint8_t *pt,
                          mt_version *matched_out)
{
    uint64_t phys = vd_phys_of(img, level, idx);
    mt_version matched;
    vd_err e = VD_OK;
    if (all_none(cand, n)) {
        memset(pt, 0, VDF_BLOCK);
        matched = cand[0];
    } else {
        const uint8_t *ct = ct_or_null;
        if (!ct) {
            e = vd_io_read(img, (img->nredo ? vd_redo_source(img, phys) : phys) * VDF_BLOCK,
                           img->scratch, VDF_BLOCK);
            ct = img->scratch;
        }
        if (e == VD_OK)
            e = accept_block(img, phys, ct, cand, n, pt, &matched);
        if (e != VD_OK) {
            /* A tree node that fails authentication poisons the handle
             * (sticky, like Gramine's PF_STATUS_CORRUPTED); a data block
             * only fails its own reads. A scrub reports the node's range
             * and walks on instead: the node never enters the cache, so a
             * later ordinary read under it fails (and fails the handle). */
            if (e == VD_ERR_AUTH && level > 0 && !img->tolerate_nodes)
                img->failed = VD_ERR_AUTH;
            if (e == VD_ERR_AUTH) {
                img->have_bad = 1;
                img->bad_level = level;
                img->bad_idx = idx;
            }
            return e;
        }
    }
    /* Once a journaled block has shown one of its two versions, only that
     * one is acceptable for the rest of the session: the host must not
     * switch versions after an eviction (R3). */
    vd_jentry *j = img->nrecov ? vd_recov_find(img, phys) : NULL;
    if (j)
        j->before = j->after = matched;
    *matched_out = matched;
    return VD_OK;
}

static vd_err load_block(vd_image *img, uint32_t level, uint64_t idx,
                         const uint8_t *ct_or_null, uint32_t *out)
{
    /* The entry first: taking it may commit (cache pressure), and that
     * commit can load this very block (a node over a dirty leaf), write a
     * new version of it and name that in its parent; the versions it may
     * hold are asked for only after that. */
    uint32_t t;
    vd_err e = vd_cache_take(img, &t);
    if (e != VD_OK)
        return e;
    mt_version cand[2];
    unsigned n;
    e = expected_versions(img, level, idx, cand, &n);
    /* The parent load, or the commit, may have brought this block in:
     * keep the cache free of duplicates. */
    uint32_t c = e == VD_OK ? vc_lookup(&img->cache, vd_phys_of(img, level, idx)) : VC_NONE;
    if (e != VD_OK || c != VC_NONE) {
        vc_drop(&img->cache, t);
        if (c != VC_NONE) {
            img->cache.e[c].pins++;
            *out = c;
        }
        return e;
    }
    mt_version matched;
    e = verify_into(img, level, idx, cand, n, ct_or_null, img->cache.e[t].buf,
                    &matched);
    if (e != VD_OK) {
        vc_drop(&img->cache, t);
        return e;
    }
    fill_entry(img, t, level, idx, &matched);
    *out = t;
    return VD_OK;
}

vd_err vd_get_block(vd_image *img, uint32_t level, uint64_t idx, uint32_t *out)
{
    uint32_t t = vc_lookup(&img->cache, vd_phys_of(img, level, idx));
    if (t != VC_NONE) {
        img->cache.e[t].pins++;
        *out = t;
        return VD_OK;
    }
    return load_block(img, level, idx, NULL, out);
}

vd_err vd_read_data_run(vd_image *img, uint64_t lbn, uint32_t count,
                        uint8_t *out)
{
    if (count > VD_RUN_MAX)
        count = VD_RUN_MAX;
    vd_err e = vd_io_read(img, vd_phys_of(img, 0, lbn) * VDF_BLOCK, img->runbuf,
                          (size_t)count * VDF_BLOCK);
    /* A read-only open over a commit whose metadata may not be in place
     * reads those blocks from their redo copies. */
    for (uint32_t i = 0; e == VD_OK && img->nredo && i < count; i++) {
        uint64_t phys = vd_phys_of(img, 0, lbn + i);
        uint64_t src = vd_redo_source(img, phys);
        if (src != phys)
            e = vd_io_read(img, src * VDF_BLOCK, img->runbuf + (size_t)i * VDF_BLOCK,
                           VDF_BLOCK);
    }
    /* Blocks with one written version to match (the usual case) are
     * opened as one batch, in parallel where the host runs jobs; the rest
     * (never written, or named by an interrupted sync's journal), and any
     * that fails, take the one-block path, which also records failures. */
    vd_crypt_job jobs[VD_RUN_MAX];
    uint32_t at[VD_RUN_MAX], nj = 0;
    uint8_t single[VD_RUN_MAX];
    for (uint32_t i = 0; e == VD_OK && i < count; i++) {
        mt_version cand[2];
        unsigned n;
        e = expected_versions(img, 0, lbn + i, cand, &n);
        single[i] = e == VD_OK && n == 1 && !mt_version_is_none(&cand[0]) &&
                    !img->nrecov;
        if (e != VD_OK || !single[i])
            continue;
        jobs[nj].phys = vd_phys_of(img, 0, lbn + i);
        jobs[nj].in = img->runbuf + (size_t)i * VDF_BLOCK;
        jobs[nj].out = out + (size_t)i * VDF_BLOCK;
        jobs[nj].v = cand[0];
        jobs[nj].err = VD_OK;
        at[nj++] = i;
    }
    if (e == VD_OK)
        e = vd_block_open_batch(img, jobs, nj);
    for (uint32_t k = 0; e == VD_OK && k < nj; k++)
        if (jobs[k].err != VD_OK)
            single[at[k]] = 0;
    for (uint32_t i = 0; e == VD_OK && i < count; i++) {
        if (single[i])
            continue;
        mt_version cand[2], matched;
        unsigned n;
        e = expected_versions(img, 0, lbn + i, cand, &n);
        if (e == VD_OK)
            e = verify_into(img, 0, lbn + i, cand, n,
                            img->runbuf + (size_t)i * VDF_BLOCK,
                            out + (size_t)i * VDF_BLOCK, &matched);
    }
    return e;
}

vd_err vd_get_block_for_write(vd_image *img, uint64_t lbn, uint32_t *out)
{
    uint64_t phys = vd_phys_of(img, 0, lbn);
    uint32_t t = vc_lookup(&img->cache, phys);
    if (t == VC_NONE) {
        vd_err e = vd_cache_take(img, &t);
        if (e != VD_OK)
            return e;
        /* The on-disk version is looked up in the parent at sync time. */
        mt_version none;
        memset(&none, 0, sizeof none);
        fill_entry(img, t, 0, lbn, &none);
    } else {
        img->cache.e[t].pins++;
    }
    *out = t;
    return VD_OK;
}

/* ---- reads outside the image lock --------------------------------------------
 * Called with img->lock held, and returns with it held; drops it while
 * the host reads the ciphertext and the blocks are opened. What may
 * change meanwhile, and why the answer stays sound (R2, R3):
 *  - the versions the blocks are checked against were taken from the
 *    verified tree under the lock: a block that opens under one was the
 *    block's content at that moment, a read that linearizes there;
 *  - a block that does not open failed, as under the lock, if its
 *    parent still names the version it was opened under: nothing
 *    rewrote it, the host answered wrong. Only if a commit moved its
 *    version meanwhile (rewriting it in place) is it read and checked
 *    again under the lock;
 *  - a block read alone enters the cache (as a locked read would put it
 *    there) only if nothing holds it yet and its parent still names the
 *    version it opened under: never a stale copy over a newer write. */

int vd_read_unlocked_ok(const vd_image *img)
{
    /* Journal-recovered blocks (two candidate versions), redo copies, a
     * key rotation (two keys per block) and a scrub's tolerance stay on
     * the locked path: rare, and each needs more than one version. */
    return !img->nrecov && !img->nredo && !img->old_master && !img->tolerate_nodes;
}

/* Does block lbn's parent, if cached, name v? No load: 0 if not cached. */
static int version_current(vd_image *img, uint64_t lbn, const mt_version *v)
{
    mt_version cur;
    if (img->geo.height == 0) {
        cur = img->root;
    } else {
        uint32_t p = vc_lookup(&img->cache, vd_phys_of(img, 1, mt_parent_idx(&img->geo, lbn)));
        if (p == VC_NONE)
            return 0;
        mt_node_get(img->cache.e[p].buf, mt_parent_slot(&img->geo, lbn), &cur);
    }
    return mt_version_equal(&cur, v);
}

static void publish_block(vd_image *img, uint64_t lbn, const mt_version *v,
                          const uint8_t *pt)
{
    if (vc_lookup(&img->cache, vd_phys_of(img, 0, lbn)) != VC_NONE ||
        !version_current(img, lbn, v))
        return;
    uint32_t t = vc_take(&img->cache); /* no commit for a cache fill */
    if (t == VC_NONE)
        return;
    memcpy(img->cache.e[t].buf, pt, VDF_BLOCK);
    fill_entry(img, t, 0, lbn, v);
    vd_unpin(img, t);
}

vd_err vd_read_data_unlocked(vd_image *img, uint64_t lbn, uint32_t count,
                             uint8_t *out, uint32_t *done)
{
    if (count > VD_RUN_MAX)
        count = VD_RUN_MAX;
    /* The run's versions, up to the first block never written (zeros, no
     * read) or under another subkey (one lease per run). */
    vd_crypt_job jobs[VD_RUN_MAX];
    uint32_t n = 0;
    for (uint32_t k = 0; k < count; k++) {
        mt_version cand[2];
        unsigned nc;
        vd_err e = expected_versions(img, 0, lbn + k, cand, &nc);
        if (e != VD_OK)
            return e;
        if (mt_version_is_none(&cand[0]) ||
            (n > 0 && cand[0].keyid != jobs[0].v.keyid))
            break;
        jobs[n].phys = vd_phys_of(img, 0, lbn + k);
        jobs[n].in = out + (size_t)k * VDF_BLOCK; /* opened in place */
        jobs[n].out = out + (size_t)k * VDF_BLOCK;
        jobs[n].v = cand[0];
        jobs[n].err = VD_OK;
        n++;
    }
    if (n == 0) { /* never written: the verified parent says zeros */
        memset(out, 0, VDF_BLOCK);
        *done = 1;
        return VD_OK;
    }
    *done = n;
    uint64_t off = jobs[0].phys * VDF_BLOCK;
    size_t len = (size_t)n * VDF_BLOCK;
    if (off > img->file_bytes || len > img->file_bytes - off)
        return VD_ERR_RANGE;
    vd_err e = vd_flight_read_guard(img, off, len);
    if (e != VD_OK)
        return e;
    vd_open_lease l;
    e = vd_open_lease_take(img, jobs[0].v.keyid, n, &l);
    if (e == VD_ERR_BUSY) { /* every reader slot in use: as before */
        if (n > 1)
            return vd_read_data_run(img, lbn, n, out);
        uint32_t t;
        e = vd_get_block(img, 0, lbn, &t);
        if (e == VD_OK) {
            memcpy(out, img->cache.e[t].buf, VDF_BLOCK);
            vd_unpin(img, t);
        }
        return e;
    }
    if (e != VD_OK)
        return e;
    (void)pthread_mutex_unlock(&img->lock);
    e = vd_host_read(&l.host, off, out, len);
    if (e == VD_OK)
        vd_block_open_leased(&l, jobs, n);
    (void)pthread_mutex_lock(&img->lock);
    vd_open_lease_give(img, &l);
    if (e != VD_OK)
        return e;
    img->stat_bytes_read += len;
    for (uint32_t k = 0; e == VD_OK && k < n; k++) {
        if (jobs[k].err == VD_OK) {
            img->stat_verified++;
            continue;
        }
        mt_version cand[2], matched;
        unsigned nc;
        e = expected_versions(img, 0, lbn + k, cand, &nc);
        if (e != VD_OK)
            break;
        if (mt_version_equal(&cand[0], &jobs[k].v)) {
            /* Its version has not moved, so nothing rewrote it: the host
             * answered with other bytes, a failure as a locked read at
             * that moment would have found (even if the host now answers
             * right: a one-shot attack is reported, not retried away). */
            img->have_bad = 1;
            img->bad_level = 0;
            img->bad_idx = lbn + k;
            e = VD_ERR_AUTH;
            break;
        }
        /* A commit rewrote it meanwhile: the block as the tree names it
         * now, from the cache or checked (and recorded) as any read. */
        uint32_t t = vc_lookup(&img->cache, jobs[k].phys);
        if (t != VC_NONE) {
            memcpy(jobs[k].out, img->cache.e[t].buf, VDF_BLOCK);
            jobs[k].v = img->cache.e[t].version;
            continue;
        }
        e = verify_into(img, 0, lbn + k, cand, nc, NULL, jobs[k].out, &matched);
        if (e == VD_OK)
            jobs[k].v = matched;
    }
    if (e == VD_OK && n == 1)
        publish_block(img, lbn, &jobs[0].v, out);
    return e;
}
