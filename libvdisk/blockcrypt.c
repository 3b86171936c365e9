/* Block encryption bound to image and position, and the MACs of the
 * superblock and key check. Keys: every block is sealed under
 * KDF(master, "vd-block", keyid) with nonce = counter; keyid is a fresh
 * random 64-bit id per session (and per 2^40 blocks), so even a host that
 * replays old images or crashes us repeatedly never sees one (key, nonce)
 * pair twice (R5). */
#include <string.h>

#include "endian.h"
#include "image_internal.h"

static void block_ad(const vd_image *img, uint64_t phys, uint8_t ad[VD_AD_BYTES])
{
    memcpy(ad, img->hdr.image_id, 16);
    vd_put_le64(ad + 16, phys);
}

static void block_nonce(uint64_t counter, uint8_t nonce[VDC_NONCE_BYTES])
{
    vd_put_le64(nonce, counter);
    vd_put_le32(nonce + 8, 0);
}

/* An AEAD context for keyid under the master key (gen 0) or, during a key
 * rotation, the key being replaced (gen 1). Subkeys live only inside the
 * AEAD contexts. The subkey passes through key_scratch: every caller
 * holds the image lock (they all change the subkey cache). */
static vdc_aead *lane_new(vd_image *img, uint64_t keyid, int gen)
{
    const uint8_t *master = gen ? img->old_master : img->master;
    if (!master)
        return NULL;
    uint8_t *k = img->key_scratch;
    vdc_aead *a = NULL;
    if (vdc_kdf(k, master, VD_KDF_BLOCK, keyid) == 0)
        a = vdc_aead_new(img->alg, k);
    vdc_memzero(k, VDC_KEY_BYTES);
    return a;
}

void vd_subkey_clear(vd_subkey *s)
{
    /* Lanes and leases share one context where the algorithm allows it:
     * free each distinct one once. */
    vdc_aead *all[VD_LANES * (1 + VD_READERS)];
    unsigned n = 0;
    for (unsigned l = 0; l < VD_LANES; l++) {
        all[n++] = s->aead[l];
        for (unsigned r = 0; r < VD_READERS; r++)
            all[n++] = s->rd[r][l];
    }
    for (unsigned i = 0; i < n; i++) {
        int seen = 0;
        for (unsigned k = 0; k < i && !seen; k++)
            seen = all[k] == all[i];
        if (!seen)
            vdc_aead_free(all[i]);
    }
    memset(s->aead, 0, sizeof s->aead);
    memset(s->rd, 0, sizeof s->rd);
    memset(s->rd_busy, 0, sizeof s->rd_busy);
    s->leases = 0;
    s->keyid = 0;
}

/* The subkey slot for (keyid, gen), deriving it if it is not among the
 * few cached ones. */
static vd_subkey *subkey_get(vd_image *img, uint64_t keyid, int gen)
{
    /* A slot leased to a reader outside the lock is never the victim
     * (vd_open_lease_take keeps most slots free of leases). */
    vd_subkey *victim = NULL;
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++) {
        vd_subkey *s = &img->subkeys[i];
        if (s->keyid == keyid && s->gen == gen && s->aead[0]) {
            s->last_use = ++img->subkey_clock;
            return s;
        }
        if (!s->leases && (!victim || s->last_use < victim->last_use))
            victim = s;
    }
    if (!victim)
        return NULL;
    vdc_aead *a = lane_new(img, keyid, gen);
    if (!a)
        return NULL;
    vd_subkey_clear(victim);
    victim->aead[0] = a;
    victim->keyid = keyid;
    victim->gen = gen;
    victim->last_use = ++img->subkey_clock;
    return victim;
}

/* Contexts for lanes [0, want) of s; returns how many lanes exist (at
 * least 1): a context that cannot be made only means fewer lanes. */
static unsigned subkey_lanes(vd_image *img, vd_subkey *s, unsigned want)
{
    unsigned l = 1;
    for (; l < want; l++) {
        if (s->aead[l])
            continue;
        s->aead[l] = vdc_aead_concurrent(img->alg) ? s->aead[0]
                                                  : lane_new(img, s->keyid, s->gen);
        if (!s->aead[l])
            break;
    }
    return l;
}

vd_err vd_new_keyid(vd_image *img)
{
    uint64_t id;
    do
        id = vdc_random_u64();
    while (id == 0);
    img->keyid = id;
    img->counter = 1;
    return VD_OK;
}

vd_err vd_block_seal(vd_image *img, uint64_t phys, const uint8_t *pt,
                     uint8_t *ct, mt_version *v)
{
    if (img->counter >= VD_COUNTER_LIMIT)
        vd_new_keyid(img);
    vd_subkey *s = subkey_get(img, img->keyid, 0);
    if (!s)
        return VD_ERR_NOMEM;
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    block_ad(img, phys, ad);
    v->keyid = img->keyid;
    v->counter = img->counter++;
    block_nonce(v->counter, nonce);
    if (vdc_aead_seal(s->aead[0], nonce, ad, sizeof ad, pt, VDF_BLOCK, ct, v->tag) != 0)
        return VD_ERR_IO;
    return VD_OK;
}

/* During a key rotation a block is under the new key or the old one
 * (both held here, the old one only through the link the new key opens;
 * SECURITY.md R8). Data blocks at or past the rotation's cursor are most
 * likely still under the old key: the key to try first (1: the old one). */
static int old_key_first(const vd_image *img, uint64_t phys)
{
    return img->old_master && phys >= img->hdr.data_start &&
           phys - img->hdr.data_start >= img->rk.cursor;
}

vd_err vd_block_open(vd_image *img, uint64_t phys, const uint8_t *ct,
                     const mt_version *v, uint8_t *pt)
{
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    block_ad(img, phys, ad);
    block_nonce(v->counter, nonce);
    int ngen = img->old_master ? 2 : 1;
    int first = old_key_first(img, phys);
    for (int k = 0; k < ngen; k++) {
        vd_subkey *s = subkey_get(img, v->keyid, k == 0 ? first : !first);
        if (!s) {
            vdc_memzero(pt, VDF_BLOCK);
            return VD_ERR_NOMEM;
        }
        if (vdc_aead_open(s->aead[0], nonce, ad, sizeof ad, ct, VDF_BLOCK, v->tag, pt) == 0) {
            img->stat_verified++;
            return VD_OK;
        }
    }
    return VD_ERR_AUTH;
}

/* ---- batches ------------------------------------------------------------
 * The parts that change the image (nonce counters, the subkey cache,
 * statistics) run on the calling thread before and after; the jobs only
 * read the image id and use their lane's contexts, one lane per job. */

static void jobs_do(const vd_host *host, size_t n, void (*fn)(void *arg, size_t i),
                    void *arg)
{
    if (host->run_jobs && n > 1) {
        host->run_jobs(host->ctx, n, fn, arg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        fn(arg, i);
}

void vd_jobs_do(const vd_image *img, size_t n, void (*fn)(void *arg, size_t i),
                void *arg)
{
    jobs_do(&img->host, n, fn, arg);
}

typedef struct crypt_batch {
    const uint8_t *image_id;
    vd_crypt_job *jobs;
    size_t n;
    unsigned lanes;
    int seal;
    vdc_aead *const *ctx; /* a lease's contexts, one per lane (open only);
                             NULL: each job's subkey lanes */
    int failed[VD_LANES]; /* seal: a lane's call failed */
    int ran[VD_LANES];    /* the lane ran (checked: see batch_go) */
    /* A rotation's reseal: jobs open under their sk (the old key) and
     * seal under rk_sk as (rk_keyid, rk_counter + job index). */
    vd_subkey *rk_sk;
    uint64_t rk_keyid, rk_counter;
} crypt_batch;

static void reseal_lane(crypt_batch *b, size_t lane)
{
    size_t lo = b->n * lane / b->lanes, hi = b->n * (lane + 1) / b->lanes;
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    /* One block of plaintext, reused: it stays in the core's cache, and
     * the rotation touches no fresh memory for it. */
    uint8_t pt[VDF_BLOCK];
    memcpy(ad, b->image_id, 16);
    for (size_t k = lo; k < hi; k++) {
        vd_crypt_job *j = &b->jobs[k];
        vd_put_le64(ad + 16, j->phys);
        block_nonce(j->v.counter, nonce);
        if (vdc_aead_open(j->sk->aead[lane], nonce, ad, sizeof ad, j->in, VDF_BLOCK,
                          j->v.tag, pt) != 0)
            continue; /* err stays VD_ERR_AUTH */
        mt_version nv = {.keyid = b->rk_keyid, .counter = b->rk_counter + k};
        block_nonce(nv.counter, nonce);
        if (vdc_aead_seal(b->rk_sk->aead[lane], nonce, ad, sizeof ad, pt, VDF_BLOCK,
                          j->out, nv.tag) != 0) {
            b->failed[lane] = 1;
            continue;
        }
        j->v = nv;
        j->err = VD_OK;
    }
    vdc_memzero(pt, sizeof pt);
}

static void crypt_lane(void *arg, size_t lane)
{
    crypt_batch *b = arg;
    size_t lo = b->n * lane / b->lanes, hi = b->n * (lane + 1) / b->lanes;
    b->ran[lane] = 1;
    if (b->rk_sk) {
        reseal_lane(b, lane);
        return;
    }
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    memcpy(ad, b->image_id, 16);
    for (size_t k = lo; k < hi; k++) {
        vd_crypt_job *j = &b->jobs[k];
        vd_put_le64(ad + 16, j->phys);
        block_nonce(j->v.counter, nonce);
        vdc_aead *a = b->ctx ? b->ctx[lane] : j->sk->aead[lane];
        if (b->seal) {
            if (vdc_aead_seal(a, nonce, ad, sizeof ad, j->in, VDF_BLOCK, j->out,
                              j->v.tag) != 0)
                b->failed[lane] = 1;
        } else {
            j->err = vdc_aead_open(a, nonce, ad, sizeof ad, j->in, VDF_BLOCK,
                                   j->v.tag, j->out) == 0
                         ? VD_OK
                         : VD_ERR_AUTH;
        }
    }
}

/* Lanes for n blocks: enough jobs to keep every thread busy, none so
 * small that handing it over costs more than it saves. */
static unsigned lanes_for(const vd_image *img, size_t n)
{
    if (!img->host.run_jobs || n < VD_BATCH_MIN)
        return 1;
    size_t l = n / VD_LANE_MIN;
    return l > VD_LANES ? VD_LANES : (unsigned)l;
}

static void batch_go(const vd_host *host, crypt_batch *b)
{
    if (b->lanes == 1)
        crypt_lane(b, 0);
    else
        jobs_do(host, b->lanes, crypt_lane, b);
    /* A run_jobs that skipped a lane must not leave a block unsealed or
     * unverified behind: run what did not run here. */
    for (unsigned l = 0; l < b->lanes; l++)
        if (!b->ran[l])
            crypt_lane(b, l);
}

vd_err vd_block_seal_batch(vd_image *img, vd_crypt_job *jobs, size_t n)
{
    if (n == 0)
        return VD_OK;
    /* The whole batch under one subkey: its counters never reach the
     * limit (R5). */
    if (img->counter >= VD_COUNTER_LIMIT - n)
        vd_new_keyid(img);
    vd_subkey *s = subkey_get(img, img->keyid, 0);
    if (!s)
        return VD_ERR_NOMEM;
    crypt_batch b = {.jobs = jobs, .n = n, .seal = 1};
    b.lanes = subkey_lanes(img, s, lanes_for(img, n));
    for (size_t k = 0; k < n; k++) {
        jobs[k].sk = s;
        jobs[k].v.keyid = img->keyid;
        jobs[k].v.counter = img->counter++;
    }
    b.image_id = img->hdr.image_id;
    batch_go(&img->host, &b);
    for (unsigned l = 0; l < b.lanes; l++)
        if (b.failed[l])
            return VD_ERR_IO;
    return VD_OK;
}

/* The subkey of each of jobs [0, n) (derived once per run of jobs under
 * the same one), each job marked VD_ERR_AUTH until a lane has done it, and
 * *lanes lowered to what every subkey has contexts for. A subkey is under
 * the old key (generation 1) for a reseal (old_only), else under the key
 * the block most likely is under (old_key_first). */
static vd_err jobs_subkeys(vd_image *img, vd_crypt_job *jobs, size_t n, int old_only,
                           unsigned *lanes)
{
    int prev_gen = 0;
    for (size_t k = 0; k < n; k++) {
        jobs[k].err = VD_ERR_AUTH;
        int gen = old_only ? 1 : old_key_first(img, jobs[k].phys);
        int same = k > 0 && jobs[k].v.keyid == jobs[k - 1].v.keyid && gen == prev_gen;
        prev_gen = gen;
        if (same) {
            jobs[k].sk = jobs[k - 1].sk;
            continue;
        }
        jobs[k].sk = subkey_get(img, jobs[k].v.keyid, gen);
        if (!jobs[k].sk)
            return VD_ERR_NOMEM;
        unsigned got = subkey_lanes(img, jobs[k].sk, *lanes);
        if (got < *lanes)
            *lanes = got;
    }
    return VD_OK;
}

vd_err vd_block_open_batch(vd_image *img, vd_crypt_job *jobs, size_t n)
{
    if (n == 0)
        return VD_OK;
    /* Every subkey the batch names stays in the cache while it runs: with
     * at most half the slots, the least recently used victim of a later
     * derivation is never one of them. More keys than that (blocks of many
     * sessions) go one at a time. During a key rotation a subkey is a
     * keyid under one of two keys: each block is tried under the key it
     * most likely is under (old_key_first); one that fails here is tried
     * under the other by the caller's one-block path. */
    struct {
        uint64_t id;
        int gen;
    } ids[VD_SUBKEY_CACHE / 2];
    unsigned nids = 0;
    int serial = 0;
    for (size_t k = 0; k < n && !serial; k++) {
        int gen = old_key_first(img, jobs[k].phys);
        unsigned i = 0;
        while (i < nids && (ids[i].id != jobs[k].v.keyid || ids[i].gen != gen))
            i++;
        if (i == nids) {
            if (nids == VD_SUBKEY_CACHE / 2) {
                serial = 1;
            } else {
                ids[nids].id = jobs[k].v.keyid;
                ids[nids++].gen = gen;
            }
        }
    }
    if (serial) {
        for (size_t k = 0; k < n; k++) {
            vd_err e = vd_block_open(img, jobs[k].phys, jobs[k].in, &jobs[k].v,
                                     jobs[k].out);
            if (e != VD_OK && e != VD_ERR_AUTH)
                return e;
            jobs[k].err = e;
        }
        return VD_OK;
    }
    crypt_batch b = {.jobs = jobs, .n = n, .seal = 0};
    b.lanes = lanes_for(img, n);
    vd_err e = jobs_subkeys(img, jobs, n, 0, &b.lanes);
    if (e != VD_OK)
        return e;
    b.image_id = img->hdr.image_id;
    batch_go(&img->host, &b);
    for (size_t k = 0; k < n; k++)
        img->stat_verified += jobs[k].err == VD_OK;
    return VD_OK;
}

/* Jobs [0, n) whose old subkeys number at most VD_SUBKEY_CACHE / 2 - 1:
 * with the new key's, at most half the cache, so no derivation for this
 * batch evicts another subkey it uses (the least recently used slot is
 * never one of them). */
static vd_err reseal_some(vd_image *img, vd_crypt_job *jobs, size_t n)
{
    if (img->counter >= VD_COUNTER_LIMIT - n)
        vd_new_keyid(img);
    vd_subkey *ns = subkey_get(img, img->keyid, 0);
    if (!ns)
        return VD_ERR_NOMEM;
    crypt_batch b = {.jobs = jobs, .n = n, .rk_sk = ns, .rk_keyid = img->keyid,
                     .rk_counter = img->counter};
    img->counter += n;
    b.lanes = subkey_lanes(img, ns, lanes_for(img, n));
    vd_err e = jobs_subkeys(img, jobs, n, 1, &b.lanes);
    if (e != VD_OK)
        return e;
    b.image_id = img->hdr.image_id;
    batch_go(&img->host, &b);
    for (unsigned l = 0; l < b.lanes; l++)
        if (b.failed[l])
            return VD_ERR_IO;
    for (size_t k = 0; k < n; k++)
        img->stat_verified += jobs[k].err == VD_OK;
    return VD_OK;
}

vd_err vd_block_reseal_batch(vd_image *img, vd_crypt_job *jobs, size_t n)
{
    if (!img->old_master)
        return VD_ERR_INVAL;
    vd_err e = VD_OK;
    for (size_t lo = 0; e == VD_OK && lo < n;) {
        uint64_t ids[VD_SUBKEY_CACHE / 2 - 1];
        unsigned nids = 0;
        size_t hi = lo;
        for (; hi < n; hi++) {
            unsigned i = 0;
            while (i < nids && ids[i] != jobs[hi].v.keyid)
                i++;
            if (i == nids) {
                if (nids == VD_SUBKEY_CACHE / 2 - 1)
                    break;
                ids[nids++] = jobs[hi].v.keyid;
            }
        }
        e = reseal_some(img, jobs + lo, hi - lo);
        lo = hi;
    }
    return e;
}

/* ---- opening outside the image lock ----------------------------------------
 * A reader copies what it needs under the lock and leases one of the
 * subkey's reader slots: contexts no other thread uses until it gives the
 * slot back. At most VD_SUBKEY_CACHE / 4 subkeys have leases out, so a
 * derivation (and a batch of half the slots, vd_block_open_batch) always
 * finds a victim that is not leased. */

vd_err vd_open_lease_take(vd_image *img, uint64_t keyid, size_t n,
                          vd_open_lease *l)
{
    unsigned leased = 0;
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++)
        leased += img->subkeys[i].leases > 0;
    vd_subkey *s = NULL;
    for (unsigned i = 0; i < VD_SUBKEY_CACHE && !s; i++)
        if (img->subkeys[i].leases && img->subkeys[i].keyid == keyid &&
            img->subkeys[i].gen == 0)
            s = &img->subkeys[i];
    if (!s && leased >= VD_SUBKEY_CACHE / 4)
        return VD_ERR_BUSY;
    if (!s)
        s = subkey_get(img, keyid, 0);
    if (!s)
        return VD_ERR_NOMEM;
    unsigned r = 0;
    while (r < VD_READERS && s->rd_busy[r])
        r++;
    if (r == VD_READERS)
        return VD_ERR_BUSY;
    unsigned want = lanes_for(img, n), got = 0;
    for (; got < want; got++) {
        if (!s->rd[r][got])
            s->rd[r][got] = vdc_aead_concurrent(img->alg) ? s->aead[0]
                                                         : lane_new(img, s->keyid, s->gen);
        if (!s->rd[r][got])
            break;
    }
    if (got == 0)
        return VD_ERR_NOMEM;
    s->last_use = ++img->subkey_clock;
    s->rd_busy[r] = 1;
    s->leases++;
    l->sk = s;
    l->slot = r;
    l->lanes = got;
    memcpy(l->image_id, img->hdr.image_id, 16);
    l->host = img->host;
    return VD_OK;
}

void vd_block_open_leased(const vd_open_lease *l, vd_crypt_job *jobs, size_t n)
{
    if (n == 0)
        return;
    crypt_batch b = {.jobs = jobs, .n = n, .seal = 0, .ctx = l->sk->rd[l->slot]};
    b.lanes = l->lanes < n ? l->lanes : (unsigned)n;
    b.image_id = l->image_id;
    for (size_t k = 0; k < n; k++)
        jobs[k].err = VD_ERR_AUTH; /* until a lane has opened it */
    batch_go(&l->host, &b);
}

void vd_open_lease_give(vd_image *img, vd_open_lease *l)
{
    (void)img;
    l->sk->rd_busy[l->slot] = 0;
    l->sk->leases--;
    l->sk = NULL;
}

vd_err vd_keycheck_compute(uint8_t *scratch, const uint8_t key[VD_KEY_BYTES],
                           const uint8_t image_id[16], uint8_t out[32])
{
    vd_err e = VD_OK;
    if (vdc_kdf(scratch, key, VD_KDF_KEYCHECK, 0) != 0 ||
        vdc_mac(out, scratch, image_id, 16, NULL, 0, NULL, 0) != 0)
        e = VD_ERR_NOMEM;
    vdc_memzero(scratch, VDC_KEY_BYTES);
    return e;
}

vd_err vd_keys_derive(vd_image *img, const uint8_t key[VD_KEY_BYTES])
{
    _Static_assert(VD_KEY_BYTES == VDC_KEY_BYTES, "keymem holds three keys of one size");
    img->keymem = vdc_secure_alloc(3 * VDC_KEY_BYTES);
    if (!img->keymem)
        return VD_ERR_NOMEM;
    img->master = img->keymem;
    img->sb_key = img->keymem + VDC_KEY_BYTES;
    img->key_scratch = img->keymem + 2 * VDC_KEY_BYTES;
    memcpy(img->master, key, VD_KEY_BYTES);
    if (vdc_kdf(img->sb_key, img->master, VD_KDF_SUPER, 0) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

void vd_keys_wipe(vd_image *img)
{
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++)
        vd_subkey_clear(&img->subkeys[i]);
    vdc_secure_free(img->keymem); /* wipes */
    vdc_secure_free(img->old_master);
    img->keymem = img->master = img->sb_key = img->key_scratch = img->old_master = NULL;
}

/* The bytes the superblock MAC covers (format 2): the fixed fields and
 * the inline journal entries in use, not the whole block, so a commit's
 * two superblocks cost a few hundred bytes of MAC instead of 8 KiB. The
 * length comes from fields inside the covered part, so changing the count
 * changes the MAC input; every byte after it up to the MAC must be zero,
 * so no bit of the block goes unchecked. A rekey record (SB_FLAG_REKEY)
 * or a log record (SB_FLAG_LOG, format 6) also covers its extension,
 * [SB_OFF_REKEY, SB_REKEY_END). */
static uint32_t super_ext(const uint8_t blk[VDF_BLOCK])
{
    return vd_get_le32(blk + SB_OFF_FLAGS) & (SB_FLAG_REKEY | SB_FLAG_LOG);
}

static size_t super_mac_len(const uint8_t blk[VDF_BLOCK])
{
    uint32_t jinline = vd_get_le32(blk + SB_OFF_JINLINE);
    uint32_t jcount = vd_get_le32(blk + SB_OFF_JCOUNT);
    if (jinline == 1 && jcount <= (super_ext(blk) ? SB_INLINE_MAX_REKEY : SB_INLINE_MAX))
        return SB_OFF_INLINE + (size_t)jcount * JE_BYTES;
    return SB_OFF_INLINE;
}

static int super_is_rekey(const uint8_t blk[VDF_BLOCK])
{
    return (vd_get_le32(blk + SB_OFF_FLAGS) & SB_FLAG_REKEY) != 0;
}

/* Where the extension's fields end (the bytes after it, up to the MAC,
 * are zero); 0: none. A record with both flags is malformed (decode). */
static size_t super_ext_end(const uint8_t blk[VDF_BLOCK])
{
    uint32_t x = super_ext(blk);
    return x == 0 ? 0 : (x & SB_FLAG_REKEY) ? SB_RK_USED_END : SB_LOG_USED_END;
}

/* Zero every byte no field covers. */
static void super_zero_gaps(uint8_t blk[VDF_BLOCK], size_t len)
{
    size_t ext = super_ext_end(blk);
    if (ext) {
        memset(blk + len, 0, SB_OFF_REKEY - len);
        memset(blk + ext, 0, SB_OFF_MAC - ext);
    } else {
        memset(blk + len, 0, SB_OFF_MAC - len);
    }
}

static int super_gaps_zero(const uint8_t blk[VDF_BLOCK], size_t len)
{
    unsigned char extra = 0;
    size_t ext = super_ext_end(blk);
    for (size_t i = len; i < (ext ? SB_OFF_REKEY : SB_OFF_MAC); i++)
        extra |= blk[i];
    for (size_t i = ext; ext && i < SB_OFF_MAC; i++)
        extra |= blk[i];
    return extra == 0;
}

/* MAC of a record under sb_key: image_id, [0, len) and, for a record with
 * an extension, the extension up to `ext_end` (SB_REKEY_END for the
 * standard MAC, SB_RK_OFF_NEW_MAC for the new key's MAC of a BEGIN rekey
 * record). */
static int super_mac(uint8_t out[32], const uint8_t *sb_key, const uint8_t id[16],
                     const uint8_t blk[VDF_BLOCK], size_t len, size_t ext_end)
{
    int ext = super_ext(blk) != 0;
    return vdc_mac(out, sb_key, id, 16, blk, len, ext ? blk + SB_OFF_REKEY : NULL,
                   ext ? ext_end - SB_OFF_REKEY : 0);
}

vd_err vd_super_seal_with(const uint8_t *sb_key, const uint8_t *new_sb_key,
                          const uint8_t image_id[16], uint8_t blk[VDF_BLOCK])
{
    size_t len = super_mac_len(blk);
    super_zero_gaps(blk, len);
    if (super_is_rekey(blk)) {
        memset(blk + SB_RK_OFF_NEW_MAC, 0, 32);
        if (new_sb_key && super_mac(blk + SB_RK_OFF_NEW_MAC, new_sb_key, image_id, blk,
                                    len, SB_RK_OFF_NEW_MAC) != 0)
            return VD_ERR_NOMEM;
    }
    if (super_mac(blk + SB_OFF_MAC, sb_key, image_id, blk, len, SB_REKEY_END) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

vd_err vd_super_seal(vd_image *img, uint8_t blk[VDF_BLOCK])
{
    return vd_super_seal_with(img->sb_key, NULL, img->hdr.image_id, blk);
}

vd_err vd_super_verify_with(const uint8_t *sb_key, const uint8_t image_id[16],
                            const uint8_t blk[VDF_BLOCK], int new_mac)
{
    uint8_t mac[32];
    size_t len = super_mac_len(blk);
    if (new_mac && !super_is_rekey(blk))
        return VD_ERR_AUTH;
    if (super_mac(mac, sb_key, image_id, blk, len,
                  new_mac ? SB_RK_OFF_NEW_MAC : SB_REKEY_END) != 0)
        return VD_ERR_NOMEM;
    const uint8_t *want = blk + (new_mac ? SB_RK_OFF_NEW_MAC : SB_OFF_MAC);
    return vdc_memcmp(mac, want, 32) == 0 && super_gaps_zero(blk, len) ? VD_OK
                                                                      : VD_ERR_AUTH;
}

vd_err vd_super_verify(vd_image *img, const uint8_t blk[VDF_BLOCK])
{
    return vd_super_verify_with(img->sb_key, img->hdr.image_id, blk, 0);
}

/* ---- key rotation: the link (SECURITY.md R8) ------------------------------ */

static vd_err link_kek(const uint8_t *new_master, uint8_t **kek)
{
    *kek = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!*kek)
        return VD_ERR_NOMEM;
    if (vdc_kdf(*kek, new_master, VD_KDF_REKEY, 0) != 0) {
        vdc_secure_free(*kek);
        *kek = NULL;
        return VD_ERR_NOMEM;
    }
    return VD_OK;
}

static void link_ad(const uint8_t image_id[16], uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1])
{
    memcpy(ad, image_id, 16);
    memcpy(ad + 16, VD_REKEY_LINK_AD, sizeof VD_REKEY_LINK_AD - 1);
}

vd_err vd_rekey_link_make(const uint8_t *new_master, const uint8_t *old_master,
                          const uint8_t image_id[16], uint8_t nonce[24],
                          uint8_t link[32], uint8_t tag[16])
{
    uint8_t *kek;
    vd_err e = link_kek(new_master, &kek);
    if (e != VD_OK)
        return e;
    uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1];
    link_ad(image_id, ad);
    vdc_random(nonce, 24);
    if (vdc_wrap(kek, nonce, ad, sizeof ad, old_master, VD_KEY_BYTES, link, tag) != 0)
        e = VD_ERR_NOMEM;
    vdc_secure_free(kek);
    return e;
}

vd_err vd_rekey_link_open(const uint8_t *new_master, const uint8_t image_id[16],
                          const uint8_t nonce[24], const uint8_t link[32],
                          const uint8_t tag[16], uint8_t *old_master)
{
    uint8_t *kek;
    vd_err e = link_kek(new_master, &kek);
    if (e != VD_OK)
        return e;
    uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1];
    link_ad(image_id, ad);
    if (vdc_unwrap(kek, nonce, ad, sizeof ad, link, VD_KEY_BYTES, tag, old_master) != 0)
        e = VD_ERR_AUTH;
    vdc_secure_free(kek);
    return e;
}
