/* See replay.h. */
#include <stdio.h>
#include <stdlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "replay.h"
#include "testkit.h"

size_t vt_crash_stride(void)
{
    /* The sanitizer runs of scripts/test.sh, where a state costs ~5x; the
     * Debug run of the same CI walks every state. */
    uint64_t stride = vt_seed_from_env("VD_CRASH_STRIDE", 1);
    return stride < 1 ? 1 : (size_t)stride;
}

void vt_replay_prefixes(vd_rec *rec, vt_replay_fn fn, void *ctx)
{
    size_t nops = vd_rec_op_count(rec);
    size_t stride = vt_crash_stride();
    if (stride > 1)
        printf("  sampled: one prefix in %zu of %zu, and the last (VD_CRASH_STRIDE)\n",
               stride, nops + 1);
    for (size_t p = 0; p <= nops; p++) {
        if (p % stride != 0 && p != nops)
            continue;
        vd_host *h;
        assert_int_equal(vd_rec_crash_view(rec, p, NULL, 0, 0, &h), VD_OK);
        fn(ctx, h, p, 0);
        vd_rec_view_free(h);
    }
}

void vt_replay_epoch_subsets(vd_rec *rec, unsigned subsets, uint64_t *rng,
                             vt_replay_fn fn, void *ctx)
{
    size_t nepochs = vd_rec_epoch_count(rec);
    for (size_t ep = 0; ep < nepochs; ep++) {
        size_t first, end;
        assert_int_equal(vd_rec_epoch_bounds(rec, ep, &first, &end), VD_OK);
        size_t len = end - first;
        if (len < 2)
            continue;
        uint8_t *mask = calloc((len + 7) / 8, 1);
        assert_non_null(mask);
        for (unsigned m = 0; m < subsets; m++) {
            for (size_t j = 0; j < len; j++)
                if (vt_rand(rng) & 1)
                    mask[j / 8] |= (uint8_t)(1u << (j % 8));
                else
                    mask[j / 8] &= (uint8_t) ~(1u << (j % 8));
            vd_host *h;
            assert_int_equal(vd_rec_crash_view(rec, end, mask, vt_rand(rng), 1, &h),
                             VD_OK);
            fn(ctx, h, end, m);
            vd_rec_view_free(h);
        }
        free(mask);
    }
}

int vt_replay_tail_variant(vd_rec *rec, size_t p, int variant, uint64_t *rng,
                           uint8_t *buf, size_t buf_bytes, const uint8_t **mask)
{
    *mask = NULL;
    if (variant == 0)
        return 1;
    size_t tail = p - vd_rec_tail_first(rec, p);
    if (tail < 2 || tail > 8 * buf_bytes)
        return 0;
    for (size_t j = 0; j < buf_bytes; j++)
        buf[j] = (uint8_t)vt_rand(rng);
    *mask = buf;
    return 1;
}
