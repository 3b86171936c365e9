/* Key rotation (vhdtool rekey; SECURITY.md R8, FORMAT.md §6 "Key
 * rotation"): a new random master key, every written block re-encrypted
 * in place through ordinary sync rounds, the key slots replaced.
 *
 *   start   two BEGIN records (standard MAC under the old key, a second MAC
 *           and the link, the old key wrapped under the new, under the new
 *           key), so both slots are vouched for by both keys; then the new
 *           key-slot block. Before that write the old secrets open the
 *           image, after it the new ones; the BEGIN state opens with either.
 *   pass    rounds of written data blocks in block order, sealed under the
 *           new key with every node on their paths; their records are
 *           RUNNING records (standard MAC under the new key, the cursor).
 *   finish  the header's key check value, then two plain records: the old
 *           key is gone from the image.
 *
 * Only this code writes while a rotation is in progress (other writable
 * opens get VD_ERR_REKEY), so the cursor means what it says: data blocks
 * below it are under the new key. */
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

#define REKEY_CACHE (64u << 20)

static vd_err record_write(vd_image *img, vd_super *s, const uint8_t *new_sb_key)
{
    /* Rotation rounds are never left in flight (sync.c); a commit forced
     * before the rotation began would be: it comes first. */
    vd_err e = vd_flight_join(img);
    /* Blocks in place after the newest record are covered only by its
     * redo journal, which this record does not name: durable first. */
    if (e == VD_OK && img->redo_pending)
        e = vd_io_flush(img);
    if (e != VD_OK)
        return e;
    uint8_t *blk = img->scratch;
    vd_super_encode(s, blk);
    e = vd_super_seal_with(img->sb_key, new_sb_key, img->hdr.image_id, blk);
    if (e == VD_OK)
        e = vd_io_write(img, (img->hdr.sb_start + s->slot) * VDF_BLOCK, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK)
        return e;
    img->epoch = img->committed = s->epoch;
    img->sb_state = SB_STATE_COMMITTED;
    img->slot_redo[s->slot] = 0;
    img->sb_clean = 0;
    memcpy(img->sb_last, blk, VDF_BLOCK);
    return VD_OK;
}

/* A COMMITTED record of the current tree at the next epoch. */
static void record_next(vd_image *img, vd_super *s)
{
    memset(s, 0, sizeof *s);
    s->version = img->hdr.format_version;
    s->epoch = img->epoch + 1;
    s->slot = (uint32_t)(s->epoch % 2);
    s->base_epoch = img->committed;
    s->state = SB_STATE_COMMITTED;
    memcpy(s->header_digest, img->header_digest, 32);
    s->root = img->root;
    s->time_ns = vd_host_now(&img->host);
    memcpy(s->anchor_tag, img->anchor_tag, SB_ANCHOR_TAG_BYTES);
}

static vd_err anchor_to(vd_image *img, uint64_t epoch)
{
    if (!img->have_anchor)
        return VD_OK;
    int rc = img->anchor.advance(img->anchor.ctx, epoch);
    if (rc != 0) {
        img->anchor_due = epoch;
        return vd_anchor_err(rc);
    }
    img->anchor_due = 0;
    return VD_OK;
}

/* From the old key alone to the rotation: BEGIN records, the new slots,
 * and the handle turned into the new key's. */
static vd_err rekey_start(vd_image *img, const vd_rekey_opts *o, vd_rekey_info *info)
{
    if (!o->slots || o->nslots == 0 || o->nslots > KS_SLOTS)
        return VD_ERR_INVAL;
    /* The TPM anchor's authorization is derived from the master key and
     * cannot change (SECURITY.md R4): a rotation would lock it out. */
    if (img->have_anchor && img->anchor.authorize)
        return VD_ERR_UNSUPPORTED;
    static const uint8_t zero[SB_ANCHOR_TAG_BYTES];
    if (!img->have_anchor && memcmp(img->anchor_tag, zero, sizeof zero) != 0)
        return VD_ERR_ANCHOR_MISMATCH; /* bound: its tag must move along */
    vd_err e = vd_sync_locked(img);
    if (e == VD_OK)
        e = vd_log_drain(img); /* its records name the tree alone */
    if (e != VD_OK)
        return e;
    uint8_t *nm = vdc_secure_alloc(VD_KEY_BYTES);
    uint8_t *nsb = vdc_secure_alloc(VDC_KEY_BYTES);
    uint8_t *kblk = vdc_secure_alloc(VDF_BLOCK);
    uint8_t *old = vdc_secure_alloc(VD_KEY_BYTES); /* master's home in keymem stays */
    if (!nm || !nsb || !kblk || !old) {
        e = VD_ERR_NOMEM;
        goto out;
    }
    vdc_random(nm, VD_KEY_BYTES);
    if (vdc_kdf(nsb, nm, VD_KDF_SUPER, 0) != 0)
        e = VD_ERR_NOMEM;
    /* Every secret's slot (Argon2id) before anything is written. */
    if (e == VD_OK)
        e = vd_keyblock_build(o->slots, o->nslots, nm, img->hdr.image_id, kblk);
    if (e == VD_OK)
        e = vd_rekey_link_make(nm, img->master, img->hdr.image_id, img->rk.nonce,
                               img->rk.link, img->rk.tag);
    /* Both slots BEGIN, so that once the new slots are in, no record
     * remains that only the old key vouches for. */
    for (int k = 0; e == VD_OK && k < 2; k++) {
        vd_super s;
        record_next(img, &s);
        s.flags = SB_FLAG_REKEY;
        s.rk_phase = SB_RK_BEGIN;
        memcpy(s.rk_nonce, img->rk.nonce, sizeof s.rk_nonce);
        memcpy(s.rk_link, img->rk.link, sizeof s.rk_link);
        memcpy(s.rk_link_tag, img->rk.tag, sizeof s.rk_link_tag);
        e = record_write(img, &s, nsb);
    }
    if (e == VD_OK)
        e = anchor_to(img, img->epoch);
    if (e == VD_OK) {
        /* Written or not, a failure here may have put it on disk. */
        info->slots_written = 1;
        e = vd_keyblock_write(img, kblk);
    }
    if (e != VD_OK)
        goto out;
    /* The handle is the new key's now: it seals under it and opens blocks
     * under either; the records it writes are RUNNING records. */
    memcpy(img->rk.dig_old, img->header_digest, 32);
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++)
        vd_subkey_clear(&img->subkeys[i]);
    memcpy(old, img->master, VD_KEY_BYTES);
    vdc_secure_free(img->old_master);
    img->old_master = old;
    old = NULL;
    memcpy(img->master, nm, VD_KEY_BYTES);
    memcpy(img->sb_key, nsb, VDC_KEY_BYTES);
    vd_new_keyid(img);
    img->rk.active = 1;
    img->rk.old_holder = 0;
    img->rk.phase = SB_RK_RUNNING;
    img->rk.cursor = 0;
    if (memcmp(img->anchor_tag, zero, sizeof zero) != 0 || img->have_anchor) {
        e = vd_anchor_tag_of(img, img->master, img->anchor_cur);
        if (e == VD_OK)
            memcpy(img->anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES);
    }
out:
    vdc_secure_free(nm);
    vdc_secure_free(nsb);
    vdc_secure_free(kblk);
    vdc_secure_free(old);
    return e;
}

/* Blocks a round of the pass holds at most. Each round's ciphertext stays
 * in memory from its read until its writes are done, and three rounds are
 * held at once (one written and the one after next read on the host's
 * thread while the next is resealed): 3 x 4 MiB, touched once and reused.
 * Small, because fresh memory is what a rotation pays for beyond the AES
 * and the kernel's copies: on this project's VM a first touch costs 2-9
 * ms per MiB. 4,096-block rounds (3 x 16 MiB) spent ~0.3 s of a 1 GB
 * rotation faulting their buffers in and rotated at 43-48 % of the seal
 * ceiling on /dev/shm, 1,024-block rounds at 50-55 %, 512-block ones at
 * 45-50 % (more records and node seals); on ext4 the disk's flush sets
 * the pace and the three were within noise (docs/PERFORMANCE.md, "Key
 * rotation"). */
#define REKEY_ROUND 1024u

/* Written data blocks per round: all of them fit in one journal with
 * their nodes, so each round's record can move the cursor past them. */
static uint32_t batch_blocks(const vd_image *img)
{
    uint64_t f = img->geo.fanout;
    uint64_t room = (uint64_t)img->jcap > 2u * img->geo.height + 8
                        ? img->jcap - 2u * img->geo.height - 8 : 1;
    uint64_t b = room * f / (f + 1);
    if (b > REKEY_ROUND)
        b = REKEY_ROUND;
    return b ? (uint32_t)b : 1;
}

/* Blocks resealed per parallel batch. A whole round per batch was slower
 * (0.66-0.72 s against 0.60-0.63 for 1 GB, interleaved): with lanes four
 * times as long, a lane held by a preempted worker (the host's thread
 * shares the two cores) keeps the caller waiting longer. */
#define REKEY_CHUNK 256u

/* One round's written blocks: their ciphertext is read, resealed under
 * the new key in place and written from here, never through the cache. */
typedef struct rekey_round {
    uint64_t *lbn;
    mt_version *v; /* the version the parent names; then the new one */
    uint32_t n;
    uint64_t end;  /* where the pass stands once the round is done */
    uint8_t *ct;
    /* The read of the ciphertext (round_read), maybe on the host's
     * thread: what it did, looked at only after the join. */
    vd_err read_err;
    uint64_t read_bytes;
    const vd_host *host;
    uint64_t data_start, file_bytes;
} rekey_round;

typedef struct rekey_pass_state {
    rekey_round r[3];
    vd_crypt_job jobs[REKEY_CHUNK];
    uint8_t *pt; /* one block, for a block found under the new key */
    /* The first data block under each sealed level-1 node that has no
     * written block (vd_sync_paths seals it anew). */
    uint64_t *empty;
    uint32_t nempty, empty_cap;
} rekey_pass_state;

static void pass_free(rekey_pass_state *p)
{
    for (int i = 0; i < 3; i++) {
        free(p->r[i].lbn);
        free(p->r[i].v);
        free(p->r[i].ct);
    }
    if (p->pt)
        vdc_memzero(p->pt, VDF_BLOCK);
    free(p->pt);
    free(p->empty);
    free(p);
}

static rekey_pass_state *pass_new(const vd_image *img, uint32_t max)
{
    rekey_pass_state *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    int ok = (p->pt = malloc(VDF_BLOCK)) != NULL;
    /* The rounds' ciphertext buffers on huge pages where the host backs
     * them so (vd_buf_new): 4 MiB filled by one read takes two page
     * faults, not 1,024. With memory in steady state (warm-memory.py
     * before each rotation), interleaved, 1 GB on /dev/shm: less wall
     * time in 11 of 14 pairs (by 1-19 %, median 5.5 %), more in 2; the
     * first two rounds' reads, which nothing overlaps, took 11 ms instead
     * of 31-34 (docs/PERFORMANCE.md, "Session of 2026-12-07 00:25 UTC"). */
    for (int i = 0; ok && i < 3; i++) {
        rekey_round *rr = &p->r[i];
        rr->host = &img->host;
        rr->data_start = img->hdr.data_start;
        rr->file_bytes = img->file_bytes;
        ok = (rr->lbn = malloc((size_t)max * sizeof *rr->lbn)) != NULL &&
             (rr->v = malloc((size_t)max * sizeof *rr->v)) != NULL &&
             (rr->ct = vd_buf_new(img, (size_t)max * VDF_BLOCK)) != NULL;
    }
    if (!ok) {
        pass_free(p);
        return NULL;
    }
    return p;
}

static vd_err empty_add(rekey_pass_state *p, uint64_t lbn)
{
    if (p->nempty == p->empty_cap) {
        uint32_t cap = p->empty_cap ? 2 * p->empty_cap : 64;
        uint64_t *a = realloc(p->empty, (size_t)cap * sizeof *a);
        if (!a)
            return VD_ERR_NOMEM;
        p->empty = a;
        p->empty_cap = cap;
    }
    p->empty[p->nempty++] = lbn;
    return VD_OK;
}

/* The written blocks from *lbn on, up to max of them, into rr; *lbn
 * moves past what was looked at. Level-1 nodes with a version of their
 * own but no written block below (a grown image's tree is written whole,
 * resize.c) are sealed anew right away, up to max of them per call: no
 * data round would seal them under the new key. Sealed before the data
 * round whose cursor passes them (a resumed rotation starts at the
 * cursor); earlier is no harm, nodes open under either key. A block still
 * in the cache is dropped from it: the round writes it from its
 * ciphertext, and only this pass writes during a rotation, so a cached
 * copy is clean. */
static vd_err round_fill(vd_image *img, uint64_t *lbn, uint32_t max,
                         rekey_pass_state *p, rekey_round *rr)
{
    const uint64_t n = img->hdr.nblocks, f = img->geo.fanout;
    uint64_t x = *lbn;
    vd_err e = VD_OK;
    rr->n = 0;
    p->nempty = 0;
    while (e == VD_OK && x < n && rr->n < max && p->nempty < max) {
        uint32_t t;
        e = vd_get_block(img, 1, x / f, &t);
        if (e != VD_OK)
            break;
        uint64_t end = (x / f + 1) * f < n ? (x / f + 1) * f : n;
        /* Started at its first block, a node is empty until a written one. */
        int empty = x % f == 0 && !mt_version_is_none(&img->cache.e[t].version);
        for (; x < end && rr->n < max; x++) {
            mt_version v;
            mt_node_get(img->cache.e[t].buf, (uint32_t)(x % f), &v);
            if (mt_version_is_none(&v))
                continue; /* never written: nothing to re-encrypt */
            empty = 0;
            uint32_t c = vc_lookup(&img->cache, vd_phys_of(img, 0, x));
            if (c != VC_NONE) {
                if (img->cache.e[c].dirty || img->cache.e[c].pins) {
                    e = VD_ERR_INVAL; /* nothing else writes during a rotation */
                    break;
                }
                vc_drop(&img->cache, c);
            }
            rr->lbn[rr->n] = x;
            rr->v[rr->n++] = v;
        }
        vd_unpin(img, t);
        if (e == VD_OK && empty && x == end)
            e = empty_add(p, end - 1 - (end - 1) % f);
    }
    *lbn = x;
    rr->end = x;
    if (e == VD_OK && p->nempty) {
        img->sync_explicit = 1;
        e = vd_sync_paths(img, p->empty, p->nempty);
        img->sync_explicit = 0;
    }
    return e;
}

/* The round's ciphertext, one host read per run of consecutive blocks.
 * Runs on the host's thread after a round's writes (vd_sync_sealed), so
 * it touches only the round and the host. */
static void round_read(void *arg)
{
    rekey_round *rr = arg;
    rr->read_err = VD_OK;
    rr->read_bytes = 0;
    for (uint32_t i = 0; rr->read_err == VD_OK && i < rr->n;) {
        uint32_t end = i + 1;
        while (end < rr->n && rr->lbn[end] == rr->lbn[end - 1] + 1)
            end++;
        uint64_t off = (rr->data_start + rr->lbn[i]) * VDF_BLOCK;
        size_t len = (size_t)(end - i) * VDF_BLOCK;
        if (off > rr->file_bytes || len > rr->file_bytes - off)
            rr->read_err = VD_ERR_RANGE;
        else
            rr->read_err = vd_host_read(rr->host, off, rr->ct + (size_t)i * VDF_BLOCK, len);
        rr->read_bytes += len;
        i = end;
    }
}

/* Blocks [from, from + n) of rr, read already, resealed under the new
 * key in place. A block that does not open under the old key (one a
 * crash left under the new key) is read again and opened under either
 * key on the one-block path, which also records a failure; that path
 * reads the cursor, so the round in flight is joined first. */
static vd_err chunk_reseal(vd_image *img, rekey_pass_state *p, rekey_round *rr,
                           uint32_t from, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        p->jobs[k].phys = vd_phys_of(img, 0, rr->lbn[from + k]);
        p->jobs[k].in = p->jobs[k].out = rr->ct + (size_t)(from + k) * VDF_BLOCK;
        p->jobs[k].v = rr->v[from + k];
    }
    vd_err e = vd_block_reseal_batch(img, p->jobs, n);
    for (uint32_t k = 0; e == VD_OK && k < n; k++) {
        if (p->jobs[k].err == VD_OK) {
            rr->v[from + k] = p->jobs[k].v;
            continue;
        }
        e = vd_flight_join(img);
        if (e == VD_OK)
            e = vd_read_data_run(img, rr->lbn[from + k], 1, p->pt);
        if (e == VD_OK)
            e = vd_block_seal(img, p->jobs[k].phys, p->pt, p->jobs[k].out,
                              &rr->v[from + k]);
        vdc_memzero(p->pt, VDF_BLOCK);
    }
    return e;
}

/* Round i is read, resealed and committed while round i + 1 waits and
 * round i + 2 is found: its ciphertext is read on the host's thread right
 * after round i's writes, so the calling thread and the run_jobs workers
 * do nothing but reseal (the copies in and out of the host run beside
 * them). Without a host thread the same steps run one after another. */
static vd_err rekey_pass(vd_image *img, const vd_rekey_opts *o, vd_rekey_info *info)
{
    if (img->nrecov || img->nredo)
        return VD_ERR_INVAL; /* a writable open has resolved both */
    const uint64_t nb = img->hdr.nblocks;
    uint64_t lbn = img->rk.cursor;
    if (lbn >= nb)
        return VD_OK;
    const uint32_t max = batch_blocks(img);
    rekey_pass_state *p = pass_new(img, max);
    if (!p)
        return VD_ERR_NOMEM;
    /* Not when the tree lies after the data (a grown image): loading its
     * nodes reads the cursor that a round in flight moves (old_key_first). */
    const int fly = img->hdr.node_start < img->hdr.data_start;
    vd_err e = VD_OK;
    for (unsigned k = 0; k < 2; k++) {
        rekey_round *rr = &p->r[k];
        rr->n = 0;
        rr->end = nb;
        if (e == VD_OK && lbn < nb)
            e = round_fill(img, &lbn, max, p, rr);
        if (e == VD_OK)
            round_read(rr);
    }
    for (unsigned i = 0; e == VD_OK; i++) {
        rekey_round *rr = &p->r[i % 3], *nn = &p->r[(i + 2) % 3];
        e = rr->read_err;
        img->stat_bytes_read += rr->read_bytes;
        for (uint32_t k = 0; e == VD_OK && k < rr->n; k += REKEY_CHUNK)
            e = chunk_reseal(img, p, rr, k, rr->n - k < REKEY_CHUNK ? rr->n - k : REKEY_CHUNK);
        nn->n = 0;
        nn->end = nb;
        nn->read_err = VD_OK;
        nn->read_bytes = 0;
        if (e == VD_OK && lbn < nb)
            e = round_fill(img, &lbn, max, p, nn);
        if (e == VD_OK && rr->n) {
            img->sync_explicit = 1;
            e = vd_sync_sealed(img, rr->lbn, rr->v, rr->n, rr->ct, fly,
                               nn->n ? round_read : NULL, nn);
            img->sync_explicit = 0;
            info->blocks += rr->n;
        } else if (e == VD_OK) {
            /* No round to read it after: now, once the round in flight
             * (reading the next round) is done with the host's thread. */
            e = vd_flight_join(img);
            if (e == VD_OK)
                round_read(nn);
        }
        if (e == VD_OK && rr->end >= nb)
            break;
        if (e == VD_OK && o->progress && o->progress(o->progress_ctx, rr->end, nb) != 0)
            e = VD_ERR_REKEY;
    }
    /* The last round's writes and reads, before the buffers are freed. */
    vd_err j = vd_flight_join(img);
    if (e == VD_OK && o->progress)
        (void)o->progress(o->progress_ctx, nb, nb);
    pass_free(p);
    return e != VD_OK ? e : j;
}

/* The header's key check, then two plain records: the old key verifies
 * nothing any more, and no record names the link. */
static vd_err rekey_finish(vd_image *img)
{
    vd_header h = img->hdr;
    vd_err e = vd_flight_join(img);
    if (e == VD_OK)
        e = vd_keycheck_compute(img->key_scratch, img->master, h.image_id, h.keycheck);
    uint8_t d[32];
    if (e == VD_OK) {
        vd_header_encode(&h, img->scratch);
        e = vd_header_digest(&h, d);
    }
    if (e == VD_OK)
        e = vd_io_write(img, 0, img->scratch, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK)
        return e;
    img->hdr = h;
    memcpy(img->header_digest, d, 32);
    img->rk.active = 0;
    for (int k = 0; e == VD_OK && k < 2; k++) {
        vd_super s;
        record_next(img, &s);
        e = record_write(img, &s, NULL);
    }
    if (e != VD_OK)
        return e;
    /* Blocks are all under the new key; drop the old one and its subkeys. */
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++)
        if (img->subkeys[i].gen)
            vd_subkey_clear(&img->subkeys[i]);
    vdc_secure_free(img->old_master);
    img->old_master = NULL;
    memset(&img->rk, 0, sizeof img->rk);
    return anchor_to(img, img->epoch);
}

vd_err vd_image_rekey(const vd_host *host, const vd_unlock *unlock,
                      const vd_rekey_opts *opts, vd_rekey_info *info)
{
    vd_rekey_info dummy;
    if (!info)
        info = &dummy;
    memset(info, 0, sizeof *info);
    if (!host || !unlock || !opts || opts->nslots > KS_SLOTS)
        return VD_ERR_INVAL;
    vd_open_opts oo;
    memset(&oo, 0, sizeof oo);
    if (opts->open)
        oo = *opts->open;
    oo.read_only = 0;
    oo.anchor_bind = 0;
    oo.test_no_meta_journal = 0;
    if (oo.cache_bytes < REKEY_CACHE)
        oo.cache_bytes = REKEY_CACHE;
    vd_image *img;
    vd_err e = vd_image_open_unlock_ex(host, unlock, &oo, 1, &img);
    if (e != VD_OK)
        return e;
    if (pthread_mutex_lock(&img->lock) != 0) {
        (void)vd_image_close(img);
        return VD_ERR_BUSY;
    }
    if (img->rk.ending) {
        /* Interrupted before its last record: write it, and that is all. */
        vd_super s;
        record_next(img, &s);
        e = record_write(img, &s, NULL);
        if (e == VD_OK)
            e = anchor_to(img, img->epoch);
        info->resumed = 1;
        info->epoch = img->committed;
        goto done;
    }
    if (img->rk.active && !img->rk.old_holder)
        info->resumed = 1;
    else
        e = rekey_start(img, opts, info); /* also restarts a BEGIN the old key sees */
    if (e == VD_OK)
        e = rekey_pass(img, opts, info);
    if (e == VD_OK)
        e = rekey_finish(img);
    info->epoch = img->committed;
done:
    /* On failure nothing more is written: the next run resumes from the
     * records on disk (a clean-flag rewrite would add nothing). */
    if (e != VD_OK && !img->failed)
        img->failed = e;
    (void)pthread_mutex_unlock(&img->lock);
    vd_err ce = vd_image_close(img);
    return e != VD_OK ? e : ce;
}
