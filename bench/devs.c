/* The weaker block devices the full scheme is compared against, all
 * behind the same vd_blockdev the FAT32 layer mounts:
 *   plain     blocks stored as given;
 *   checksum  XXH64 of each block (seeded with its number) in a side
 *             table, verified on every read: catches accidental
 *             corruption, not tampering;
 *   aead      AES-256-GCM per block, the block number as associated data
 *             and a per-device write counter as nonce, nonce + tag in the
 *             side table: catches tampering and moved blocks, but an old
 *             (block, nonce, tag) triple replayed by the host still
 *             verifies — no tree, no rollback detection.
 * The side table lives in memory and its changed 4 KiB pages are written
 * to the meta backing at sync (after the data's flush, then flushed), the
 * least any persistent scheme of this kind must do. No crash consistency
 * between data and table: these are cost baselines, not designs. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "benchdev.h"
#include "crypto/crypto.h"
#include "endian.h"

#define AEAD_ENTRY 32u  /* nonce 12 + tag 16 + 4 spare */
#define SUM_ENTRY 8u
#define DEV_CHUNK 256u  /* blocks encrypted per backing write */

struct bench_dev {
    vd_blockdev bd;
    bench_mode mode;
    bench_backing *data, *meta;
    uint64_t nblocks;
    size_t entry;
    uint8_t *table;
    size_t table_bytes;
    uint8_t *dirty; /* one byte per 4 KiB page of the table */
    vdc_aead *aead;
    uint64_t counter; /* last nonce used */
    uint8_t *scratch; /* DEV_CHUNK blocks of ciphertext */
};

static void mark(bench_dev *d, uint64_t lbn)
{
    d->dirty[lbn * d->entry / BENCH_BLOCK] = 1;
}

static vd_err dev_read(void *ctx, uint64_t lbn, uint32_t count, void *buf)
{
    bench_dev *d = ctx;
    if (lbn > d->nblocks || count > d->nblocks - lbn)
        return VD_ERR_RANGE;
    uint8_t *p = buf;
    vd_err e = bench_backing_read(d->data, lbn * BENCH_BLOCK, p, (size_t)count * BENCH_BLOCK);
    for (uint32_t i = 0; e == VD_OK && i < count; i++) {
        uint64_t b = lbn + i;
        uint8_t *blk = p + (size_t)i * BENCH_BLOCK;
        const uint8_t *ent = d->table + b * d->entry;
        if (d->mode == MODE_CHECKSUM) {
            uint64_t want = vd_get_le64(ent);
            /* 0 = never written (a stored sum always has bit 0 set). */
            if (want != 0 && (XXH64(blk, BENCH_BLOCK, b) | 1u) != want)
                e = VD_ERR_AUTH;
        } else if (d->mode == MODE_AEAD) {
            uint8_t ad[8];
            vd_put_le64(ad, b);
            if (vd_get_le64(ent) == 0)
                memset(blk, 0, BENCH_BLOCK); /* never written */
            else if (vdc_aead_open(d->aead, ent, ad, sizeof ad, blk, BENCH_BLOCK,
                                   ent + VDC_NONCE_BYTES, blk) != 0)
                e = VD_ERR_AUTH;
        }
    }
    if (e != VD_OK)
        memset(buf, 0, (size_t)count * BENCH_BLOCK);
    return e;
}

static vd_err dev_write(void *ctx, uint64_t lbn, uint32_t count, const void *buf)
{
    bench_dev *d = ctx;
    if (lbn > d->nblocks || count > d->nblocks - lbn)
        return VD_ERR_RANGE;
    const uint8_t *p = buf;
    if (d->mode == MODE_PLAIN)
        return bench_backing_write(d->data, lbn * BENCH_BLOCK, p,
                                   (size_t)count * BENCH_BLOCK);
    if (d->mode == MODE_CHECKSUM) {
        for (uint32_t i = 0; i < count; i++) {
            uint64_t b = lbn + i;
            vd_put_le64(d->table + b * d->entry,
                        XXH64(p + (size_t)i * BENCH_BLOCK, BENCH_BLOCK, b) | 1u);
            mark(d, b);
        }
        return bench_backing_write(d->data, lbn * BENCH_BLOCK, p,
                                   (size_t)count * BENCH_BLOCK);
    }
    vd_err e = VD_OK;
    for (uint32_t done = 0; e == VD_OK && done < count;) {
        uint32_t n = count - done < DEV_CHUNK ? count - done : DEV_CHUNK;
        for (uint32_t i = 0; e == VD_OK && i < n; i++) {
            uint64_t b = lbn + done + i;
            uint8_t *ent = d->table + b * d->entry;
            uint8_t ad[8];
            vd_put_le64(ad, b);
            memset(ent, 0, VDC_NONCE_BYTES);
            vd_put_le64(ent, ++d->counter); /* never 0, never reused */
            if (vdc_aead_seal(d->aead, ent, ad, sizeof ad,
                              p + (size_t)(done + i) * BENCH_BLOCK, BENCH_BLOCK,
                              d->scratch + (size_t)i * BENCH_BLOCK,
                              ent + VDC_NONCE_BYTES) != 0)
                e = VD_ERR_IO;
            mark(d, b);
        }
        if (e == VD_OK)
            e = bench_backing_write(d->data, (lbn + done) * BENCH_BLOCK, d->scratch,
                                    (size_t)n * BENCH_BLOCK);
        done += n;
    }
    return e;
}

static vd_err dev_sync(void *ctx)
{
    bench_dev *d = ctx;
    vd_err e = bench_backing_sync(d->data);
    if (e != VD_OK || !d->meta)
        return e;
    size_t pages = d->table_bytes / BENCH_BLOCK;
    for (size_t i = 0; e == VD_OK && i < pages; i++) {
        if (!d->dirty[i])
            continue;
        e = bench_backing_write(d->meta, (uint64_t)i * BENCH_BLOCK,
                                d->table + i * BENCH_BLOCK, BENCH_BLOCK);
        if (e == VD_OK)
            d->dirty[i] = 0;
    }
    if (e == VD_OK)
        e = bench_backing_sync(d->meta);
    return e;
}

vd_err bench_dev_new(bench_mode mode, bench_backing *data, bench_backing *meta,
                     uint64_t nblocks, int aead_alg, bench_dev **out)
{
    vd_err e = VD_OK;
    uint8_t *key = NULL;
    bench_dev *d = calloc(1, sizeof *d);
    if (!d) {
        bench_backing_free(data);
        bench_backing_free(meta);
        return VD_ERR_NOMEM;
    }
    d->mode = mode;
    d->data = data;
    d->meta = meta;
    d->nblocks = nblocks;
    d->bd.ctx = d;
    d->bd.nblocks = nblocks;
    d->bd.read = dev_read;
    d->bd.write = dev_write;
    d->bd.sync = dev_sync;
    if (mode == MODE_PLAIN)
        goto out;
    if (!meta) {
        e = VD_ERR_INVAL;
        goto out;
    }
    d->entry = mode == MODE_AEAD ? AEAD_ENTRY : SUM_ENTRY;
    d->table_bytes = (size_t)((nblocks * d->entry + BENCH_BLOCK - 1) / BENCH_BLOCK) *
                     BENCH_BLOCK;
    d->table = calloc(1, d->table_bytes);
    d->dirty = calloc(1, d->table_bytes / BENCH_BLOCK);
    if (!d->table || !d->dirty) {
        e = VD_ERR_NOMEM;
        goto out;
    }
    bench_touch(d->table, d->table_bytes); /* as the backings (backing.c) */
    if (mode != MODE_AEAD)
        goto out;
    d->scratch = malloc((size_t)DEV_CHUNK * BENCH_BLOCK);
    key = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!d->scratch || !key) {
        e = VD_ERR_NOMEM;
        goto out;
    }
    vdc_random(key, VDC_KEY_BYTES);
    d->aead = vdc_aead_new((vdc_aead_alg)aead_alg, key);
    if (!d->aead)
        e = VD_ERR_UNSUPPORTED;
out:
    if (key)
        vdc_secure_free(key); /* wipes */
    if (e != VD_OK) {
        bench_dev_free(d);
        return e;
    }
    *out = d;
    return VD_OK;
}

const vd_blockdev *bench_dev_blockdev(bench_dev *d)
{
    return &d->bd;
}

bench_backing *bench_dev_data(bench_dev *d)
{
    return d->data;
}

uint8_t *bench_dev_entry(bench_dev *d, uint64_t lbn, size_t *len)
{
    if (!d->table || lbn >= d->nblocks)
        return NULL;
    *len = d->entry;
    return d->table + lbn * d->entry;
}

vd_err bench_dev_drop(bench_dev *d)
{
    vd_err e = bench_backing_drop(d->data);
    if (e == VD_OK && d->meta)
        e = bench_backing_drop(d->meta);
    return e;
}

void bench_dev_free(bench_dev *d)
{
    if (!d)
        return;
    if (d->aead)
        vdc_aead_free(d->aead);
    bench_backing_free(d->data);
    bench_backing_free(d->meta);
    free(d->table);
    free(d->dirty);
    free(d->scratch);
    free(d);
}
