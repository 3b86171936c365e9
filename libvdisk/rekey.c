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
    if (e != VD_OK)
        return e;
    uint8_t *nm = vdc_secure_alloc(VD_KEY_BYTES);
    uint8_t *nsb = vdc_secure_alloc(VDC_KEY_BYTES);
    uint8_t *kblk = vdc_secure_alloc(VDF_BLOCK);
    if (!nm || !nsb || !kblk) {
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
    vdc_secure_free(img->old_master);
    img->old_master = img->master;
    img->master = nm;
    nm = NULL;
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
    return e;
}

/* Written data blocks per round: all of them fit in one journal with
 * their nodes, so each round's record can move the cursor past them. */
static uint32_t batch_blocks(const vd_image *img)
{
    uint64_t f = img->geo.fanout;
    uint64_t room = (uint64_t)img->jcap > 2u * img->geo.height + 8
                        ? img->jcap - 2u * img->geo.height - 8 : 1;
    uint64_t b = room * f / (f + 1);
    if (b > img->dirty_limit)
        b = img->dirty_limit;
    return b ? (uint32_t)b : 1;
}

/* Blocks read with one host read per run and opened as one batch: big
 * enough to keep every core busy opening under the old key, small enough
 * to stay in the processor's cache until the blocks are in place. */
#define REKEY_CHUNK 256u

typedef struct rekey_chunk {
    uint64_t lbn[REKEY_CHUNK];
    mt_version v[REKEY_CHUNK];
    uint32_t ent[REKEY_CHUNK];
    uint32_t n;
    uint8_t *ct; /* REKEY_CHUNK blocks of ciphertext */
    /* The first data block under each sealed level-1 node that has no
     * written block (vd_sync_paths seals it anew). */
    uint64_t *empty;
    uint32_t nempty, empty_cap;
} rekey_chunk;

/* The chunk's blocks into the cache as dirty: sealed under the new key by
 * the next round. */
static vd_err chunk_load(vd_image *img, rekey_chunk *ch)
{
    vd_err e = VD_OK;
    if (img->nrecov || img->nredo) {
        /* Blocks with two candidate versions: one at a time. */
        uint32_t got = 0;
        while (e == VD_OK && got < ch->n) {
            e = vd_get_block(img, 0, ch->lbn[got], &ch->ent[got]);
            got += e == VD_OK;
        }
        for (uint32_t i = 0; e != VD_OK && i < got; i++)
            vd_unpin(img, ch->ent[i]);
    } else {
        e = vd_load_data_batch(img, ch->lbn, ch->v, ch->n, ch->ct, ch->ent);
    }
    for (uint32_t i = 0; e == VD_OK && i < ch->n; i++) {
        vc_set_dirty(&img->cache, ch->ent[i], 1);
        vd_unpin(img, ch->ent[i]);
    }
    ch->n = 0;
    return e;
}

/* Put the written blocks from *lbn on into the cache as dirty, up to
 * max of them; *lbn moves past what was looked at. Level-1 nodes with a
 * version of their own but no written block below (a grown image's tree
 * is written whole, resize.c) go to ch->empty, up to max of them: no data
 * round would seal them under the new key. */
static vd_err batch_fill(vd_image *img, uint64_t *lbn, uint32_t max, rekey_chunk *ch,
                         uint32_t *taken)
{
    const uint64_t n = img->hdr.nblocks, f = img->geo.fanout;
    uint64_t x = *lbn;
    vd_err e = VD_OK;
    *taken = 0;
    ch->n = 0;
    ch->nempty = 0;
    while (e == VD_OK && x < n && *taken < max && ch->nempty < max) {
        uint32_t t;
        e = vd_get_block(img, 1, x / f, &t);
        if (e != VD_OK)
            break;
        uint64_t end = (x / f + 1) * f < n ? (x / f + 1) * f : n;
        /* Started at its first block, a node is empty until a written one. */
        int empty = x % f == 0 && !mt_version_is_none(&img->cache.e[t].version);
        for (; x < end && *taken < max && ch->n < REKEY_CHUNK; x++) {
            mt_version v;
            mt_node_get(img->cache.e[t].buf, (uint32_t)(x % f), &v);
            if (mt_version_is_none(&v))
                continue; /* never written: nothing to re-encrypt */
            empty = 0;
            (*taken)++;
            uint32_t c = vc_lookup(&img->cache, vd_phys_of(img, 0, x));
            if (c != VC_NONE) { /* cached: its contents are current */
                if (!img->cache.e[c].dirty)
                    vc_set_dirty(&img->cache, c, 1);
                continue;
            }
            ch->lbn[ch->n] = x;
            ch->v[ch->n++] = v;
        }
        vd_unpin(img, t);
        if (empty && x == end) {
            if (ch->nempty == ch->empty_cap) {
                uint32_t cap = ch->empty_cap ? 2 * ch->empty_cap : 64;
                uint64_t *p = realloc(ch->empty, (size_t)cap * sizeof *p);
                if (!p) {
                    e = VD_ERR_NOMEM;
                    break;
                }
                ch->empty = p;
                ch->empty_cap = cap;
            }
            ch->empty[ch->nempty++] = end - 1 - (end - 1) % f;
        }
        if (ch->n == REKEY_CHUNK)
            e = chunk_load(img, ch);
    }
    if (e == VD_OK && ch->n)
        e = chunk_load(img, ch);
    *lbn = x;
    return e;
}

static vd_err rekey_pass(vd_image *img, const vd_rekey_opts *o, vd_rekey_info *info)
{
    rekey_chunk *ch = calloc(1, sizeof *ch);
    if (ch)
        ch->ct = malloc((size_t)REKEY_CHUNK * VDF_BLOCK);
    if (!ch || !ch->ct) {
        free(ch);
        return VD_ERR_NOMEM;
    }
    const uint32_t max = batch_blocks(img);
    uint64_t lbn = img->rk.cursor;
    vd_err e = VD_OK;
    while (e == VD_OK && lbn < img->hdr.nblocks) {
        uint32_t taken;
        e = batch_fill(img, &lbn, max, ch, &taken);
        img->sync_explicit = 1;
        /* The empty nodes first: the data round moves the cursor past
         * them, and a resumed rotation starts at the cursor. */
        if (e == VD_OK && ch->nempty)
            e = vd_sync_paths(img, ch->empty, ch->nempty);
        if (e == VD_OK && taken) {
            e = vd_sync_locked(img);
            info->blocks += taken;
        }
        img->sync_explicit = 0;
        if (e == VD_OK && o->progress &&
            o->progress(o->progress_ctx, lbn, img->hdr.nblocks) != 0 &&
            lbn < img->hdr.nblocks)
            e = VD_ERR_REKEY;
    }
    free(ch->empty);
    free(ch->ct);
    free(ch);
    return e;
}

/* The header's key check, then two plain records: the old key verifies
 * nothing any more, and no record names the link. */
static vd_err rekey_finish(vd_image *img)
{
    vd_header h = img->hdr;
    vd_err e = vd_flight_join(img);
    if (e == VD_OK)
        e = vd_keycheck_compute(img->master, h.image_id, h.keycheck);
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
