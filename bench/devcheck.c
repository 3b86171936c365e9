/* vhdbench --self-test: the weaker devices detect what they claim, and
 * only that, so the comparison with `full` is between working schemes:
 *   plain     a flipped byte reads back silently;
 *   checksum  a flipped byte or a block moved to another number fails;
 *   aead      the same, and a replayed old (block, nonce, tag) still
 *             verifies — the rollback `full` exists to catch. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define CHECK_BLOCKS 8u

typedef struct check {
    FILE *log;
    const char *mode;
    int bad;
} check;

static void expect(check *k, int ok, const char *what)
{
    fprintf(k->log, "%s: %s: %s\n", k->mode, what, ok ? "ok" : "FAILED");
    if (!ok)
        k->bad = 1;
}

static vd_err check_mode(bench_mode m, int aead_alg, FILE *log, int *bad)
{
    check k = {log, bench_mode_name(m), 0};
    bench_backing *data = NULL, *meta = NULL;
    bench_dev *d = NULL;
    uint8_t *a = malloc(BENCH_BLOCK), *b = malloc(BENCH_BLOCK), *raw = malloc(BENCH_BLOCK);
    uint8_t *old_raw = malloc(BENCH_BLOCK), *old_ent = malloc(64);
    vd_err e = a && b && raw && old_raw && old_ent ? VD_OK : VD_ERR_NOMEM;
    if (e == VD_OK)
        e = bench_backing_new(BACK_MEM, NULL, (uint64_t)CHECK_BLOCKS * BENCH_BLOCK, &data);
    if (e == VD_OK && m != MODE_PLAIN)
        e = bench_backing_new(BACK_MEM, NULL, (uint64_t)CHECK_BLOCKS * 32 + BENCH_BLOCK, &meta);
    if (e == VD_OK) {
        e = bench_dev_new(m, data, meta, CHECK_BLOCKS, aead_alg, &d);
        data = meta = NULL; /* owned by d, even on failure */
    }
    if (e != VD_OK)
        goto out;
    const vd_blockdev *bd = bench_dev_blockdev(d);
    bench_backing *back = bench_dev_data(d);
    bench_rng g;
    bench_rng_seed(&g, 7);
    for (uint32_t i = 0; e == VD_OK && i < CHECK_BLOCKS; i++) {
        bench_rng_fill(&g, a, BENCH_BLOCK);
        e = bd->write(bd->ctx, i, 1, a);
    }
    if (e == VD_OK)
        e = bd->sync(bd->ctx);
    /* Round trip. */
    bench_rng_seed(&g, 7);
    bench_rng_fill(&g, a, BENCH_BLOCK);
    if (e == VD_OK)
        expect(&k, bd->read(bd->ctx, 0, 1, b) == VD_OK && memcmp(a, b, BENCH_BLOCK) == 0,
               "round trip");
    /* One flipped byte in block 1. */
    if (e == VD_OK)
        e = bench_backing_read(back, 1 * BENCH_BLOCK, raw, BENCH_BLOCK);
    if (e == VD_OK) {
        raw[100] ^= 0x01;
        e = bench_backing_write(back, 1 * BENCH_BLOCK, raw, BENCH_BLOCK);
    }
    if (e == VD_OK) {
        vd_err r = bd->read(bd->ctx, 1, 1, b);
        expect(&k, m == MODE_PLAIN ? r == VD_OK : r == VD_ERR_AUTH,
               m == MODE_PLAIN ? "flipped byte reads back silently" : "flipped byte detected");
    }
    /* Block 2's stored bytes moved to block 3. */
    if (e == VD_OK)
        e = bench_backing_read(back, 2 * BENCH_BLOCK, raw, BENCH_BLOCK);
    if (e == VD_OK)
        e = bench_backing_write(back, 3 * BENCH_BLOCK, raw, BENCH_BLOCK);
    if (e == VD_OK && m != MODE_PLAIN)
        expect(&k, bd->read(bd->ctx, 3, 1, b) == VD_ERR_AUTH, "moved block detected");
    /* Replay: block 4's old stored bytes and side-table entry, after a
     * newer write. */
    size_t elen = 0;
    uint8_t *ent = m == MODE_PLAIN ? NULL : bench_dev_entry(d, 4, &elen);
    if (e == VD_OK && ent && elen <= 64) {
        memcpy(old_ent, ent, elen);
        e = bench_backing_read(back, 4 * BENCH_BLOCK, old_raw, BENCH_BLOCK);
        bench_rng_seed(&g, 7);
        for (int i = 0; i <= 4; i++)
            bench_rng_fill(&g, a, BENCH_BLOCK); /* block 4's old content */
        memset(b, 0xEE, BENCH_BLOCK);
        if (e == VD_OK)
            e = bd->write(bd->ctx, 4, 1, b);
        if (e == VD_OK) {
            memcpy(ent, old_ent, elen);
            e = bench_backing_write(back, 4 * BENCH_BLOCK, old_raw, BENCH_BLOCK);
        }
        if (e == VD_OK)
            expect(&k, bd->read(bd->ctx, 4, 1, b) == VD_OK && memcmp(a, b, BENCH_BLOCK) == 0,
                   "replayed old block accepted (no rollback detection)");
    }
out:
    bench_dev_free(d);
    bench_backing_free(data);
    bench_backing_free(meta);
    free(a);
    free(b);
    free(raw);
    free(old_raw);
    free(old_ent);
    if (k.bad)
        *bad = 1;
    return e;
}

int bench_selftest(int aead_alg, FILE *log)
{
    int bad = 0;
    const bench_mode modes[] = {MODE_PLAIN, MODE_CHECKSUM, MODE_AEAD};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        vd_err e = check_mode(modes[i], aead_alg, log, &bad);
        if (e != VD_OK) {
            fprintf(stderr, "vhdbench: self-test %s: %s\n", bench_mode_name(modes[i]),
                    vd_strerror(e));
            return 1;
        }
    }
    return bad;
}
