/* What the hardware allows, measured in the same run as the modes:
 * single-core AES-256-GCM seal and open of 4 KiB blocks (OpenSSL EVP and
 * libsodium, 8 bytes of associated data as the aead mode uses), memcpy of
 * 4 KiB blocks, and the --dir file system's own sequential write (+ one
 * fdatasync) and random 4 KiB writes with an fdatasync every 8 — the
 * pattern of rand-write, without any block device in between. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "crypto/crypto.h"

#define CEIL_BLOCKS 8192u /* 32 MiB per AES / memcpy measurement */
#define FILE_CHUNK (1u << 20)
#define RAND_FILE_MAX ((uint64_t)256 << 20)
#define SEED_CEIL 0x5EB0005u

static vd_err aead_ceiling(bench_res *r, vdc_aead_alg alg, const char *lib, uint8_t *buf)
{
    if (!vdc_aead_available(alg))
        return VD_OK;
    uint8_t nonce[VDC_NONCE_BYTES] = {0}, ad[8] = {0};
    uint8_t *key = vdc_secure_alloc(VDC_KEY_BYTES);
    uint8_t *tags = malloc((size_t)CEIL_BLOCKS * VDC_TAG_BYTES);
    vdc_aead *a = NULL;
    vd_err e = key && tags ? VD_OK : VD_ERR_NOMEM;
    if (e == VD_OK) {
        vdc_random(key, VDC_KEY_BYTES);
        a = vdc_aead_new(alg, key);
        e = a ? VD_OK : VD_ERR_UNSUPPORTED;
    }
    double t0 = bench_now();
    for (size_t i = 0; e == VD_OK && i < CEIL_BLOCKS; i++) {
        memcpy(nonce, &i, sizeof i);
        memcpy(ad, &i, sizeof i);
        uint8_t *blk = buf + i * BENCH_BLOCK;
        if (vdc_aead_seal(a, nonce, ad, sizeof ad, blk, BENCH_BLOCK, blk,
                          tags + i * VDC_TAG_BYTES) != 0)
            e = VD_ERR_IO;
    }
    double t1 = bench_now();
    char name[40];
    snprintf(name, sizeof name, "aes-gcm-seal-%s", lib);
    if (e == VD_OK)
        e = bench_add(r, "ceiling", name, -1, "MB/s", 1e6,
                      (double)CEIL_BLOCKS * BENCH_BLOCK / 1e6 / (t1 - t0));
    t0 = bench_now();
    for (size_t i = 0; e == VD_OK && i < CEIL_BLOCKS; i++) {
        memcpy(nonce, &i, sizeof i);
        memcpy(ad, &i, sizeof i);
        uint8_t *blk = buf + i * BENCH_BLOCK;
        if (vdc_aead_open(a, nonce, ad, sizeof ad, blk, BENCH_BLOCK,
                          tags + i * VDC_TAG_BYTES, blk) != 0)
            e = VD_ERR_AUTH;
    }
    t1 = bench_now();
    snprintf(name, sizeof name, "aes-gcm-open-%s", lib);
    if (e == VD_OK)
        e = bench_add(r, "ceiling", name, -1, "MB/s", 1e6,
                      (double)CEIL_BLOCKS * BENCH_BLOCK / 1e6 / (t1 - t0));
    if (a)
        vdc_aead_free(a);
    vdc_secure_free(key);
    free(tags);
    return e;
}

static vd_err memcpy_ceiling(bench_res *r, const uint8_t *buf)
{
    uint8_t *dst = malloc((size_t)CEIL_BLOCKS * BENCH_BLOCK);
    if (!dst)
        return VD_ERR_NOMEM;
    memset(dst, 1, (size_t)CEIL_BLOCKS * BENCH_BLOCK); /* fault the pages in first */
    double t0 = bench_now();
    for (size_t i = 0; i < CEIL_BLOCKS; i++)
        memcpy(dst + i * BENCH_BLOCK, buf + i * BENCH_BLOCK, BENCH_BLOCK);
    double t1 = bench_now();
    /* Use the copy so the compiler cannot drop it. */
    volatile uint8_t sink = dst[(size_t)CEIL_BLOCKS * BENCH_BLOCK / 2];
    (void)sink;
    free(dst);
    return bench_add(r, "ceiling", "memcpy", -1, "MB/s", 1e6,
                     (double)CEIL_BLOCKS * BENCH_BLOCK / 1e6 / (t1 - t0));
}

static vd_err file_ceilings(const bench_cfg *c, bench_res *r, const uint8_t *buf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vhdbench-%ld.raw", c->dir, (long)getpid());
    bench_backing *f = NULL;
    uint64_t bytes = c->seq_bytes;
    vd_err e = bench_backing_new(BACK_FILE, path, bytes, &f);
    double t0 = bench_start(c);
    for (uint64_t off = 0; e == VD_OK && off < bytes; off += FILE_CHUNK) {
        size_t n = bytes - off < FILE_CHUNK ? (size_t)(bytes - off) : FILE_CHUNK;
        e = bench_backing_write(f, off, buf, n);
    }
    if (e == VD_OK)
        e = bench_backing_sync(f);
    double t1 = bench_now();
    if (e == VD_OK)
        e = bench_add(r, "ceiling", "file-seq-write", BACK_FILE, "MB/s", 1e6,
                      (double)bytes / 1e6 / (t1 - t0));
    uint64_t nblk = (bytes < RAND_FILE_MAX ? bytes : RAND_FILE_MAX) / BENCH_BLOCK;
    bench_rng g;
    bench_rng_seed(&g, SEED_CEIL);
    t0 = bench_start(c);
    for (uint32_t i = 0; e == VD_OK && i < c->rand_ops; i++) {
        e = bench_backing_write(f, bench_rng_below(&g, nblk) * BENCH_BLOCK, buf,
                                BENCH_BLOCK);
        if (e == VD_OK && (i % 8 == 7 || i + 1 == c->rand_ops))
            e = bench_backing_sync(f);
    }
    t1 = bench_now();
    if (e == VD_OK)
        e = bench_add(r, "ceiling", "file-rand-write-fsync8", BACK_FILE, "ops/s",
                      BENCH_BLOCK, c->rand_ops / (t1 - t0));
    bench_backing_free(f);
    return e;
}

vd_err bench_run_ceilings(const bench_cfg *c, bench_res *r)
{
    uint8_t *buf = malloc((size_t)CEIL_BLOCKS * BENCH_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    bench_rng g;
    bench_rng_seed(&g, SEED_CEIL);
    bench_rng_fill(&g, buf, (size_t)CEIL_BLOCKS * BENCH_BLOCK);
    vd_err e = aead_ceiling(r, VDC_AES256GCM_OPENSSL, "openssl", buf);
    if (e == VD_OK)
        e = aead_ceiling(r, VDC_AES256GCM_SODIUM, "libsodium", buf);
    if (e == VD_OK)
        e = memcpy_ceiling(r, buf);
    if (e == VD_OK && (c->backend_mask & (1 << BACK_FILE)))
        e = file_ceilings(c, r, buf);
    free(buf);
    return e;
}

void bench_choose_aead(bench_cfg *c, const bench_res *r)
{
    const bench_fig *o = bench_find(r, "ceiling", "aes-gcm-seal-openssl", -1);
    const bench_fig *s = bench_find(r, "ceiling", "aes-gcm-seal-libsodium", -1);
    double om = o ? bench_median(o) : 0, sm = s ? bench_median(s) : 0;
    /* The same implementation for aead and full, as vd_image's AUTO would
     * pick: the faster one here. */
    if (sm > om) {
        c->aead_alg = VDC_AES256GCM_SODIUM;
        c->impl = VD_AEAD_SODIUM;
    } else {
        c->aead_alg = VDC_AES256GCM_OPENSSL;
        c->impl = VD_AEAD_OPENSSL;
    }
}

double bench_aes_ceiling(const bench_res *r)
{
    const bench_fig *o = bench_find(r, "ceiling", "aes-gcm-seal-openssl", -1);
    const bench_fig *s = bench_find(r, "ceiling", "aes-gcm-seal-libsodium", -1);
    double om = o ? bench_median(o) : 0, sm = s ? bench_median(s) : 0;
    return om > sm ? om : sm;
}
