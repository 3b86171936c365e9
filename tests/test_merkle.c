/* tests/test_merkle.c — merkle/: tree geometry and the version/node format.
 *
 * Geometry is checked against a reference computed here (a ceiling-division
 * loop written independently of geometry.c) and against hand-computed
 * heights and node counts (cross-checked with Python). The version record
 * layout is checked byte by byte against explicitly typed bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "merkle/merkle.h"

/* ---- independent reference ---------------------------------------------- */

#define REF_MAX_LEVELS 70u

typedef struct ref_geom {
    unsigned levels;                 /* node levels (>= 1) */
    uint64_t count[REF_MAX_LEVELS];  /* count[0] = nblocks */
    uint64_t start[REF_MAX_LEVELS];  /* root first, level 1 last */
    uint64_t total;                  /* node blocks */
} ref_geom;

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    /* a >= 1 here; written this way so that a near 2^64 cannot overflow. */
    return (a - 1) / b + 1;
}

/* Levels needed so that the top level has a single node; at least one
 * node level even for a single data block. */
static void ref_compute(ref_geom *r, uint64_t nblocks, uint32_t fanout)
{
    memset(r, 0, sizeof *r);
    r->count[0] = nblocks;
    unsigned l = 0;
    for (;;) {
        l++;
        assert_true(l < REF_MAX_LEVELS);
        r->count[l] = ceil_div(r->count[l - 1], fanout);
        if (r->count[l] == 1)
            break;
    }
    r->levels = l;
    uint64_t sum = 0;
    for (unsigned k = 1; k <= l; k++)
        sum += r->count[k];
    r->total = sum;
    /* level k starts after every level above it */
    for (unsigned k = 1; k <= l; k++) {
        uint64_t above = 0;
        for (unsigned j = k + 1; j <= l; j++)
            above += r->count[j];
        r->start[k] = above;
    }
}

/* ---- geometry checks ------------------------------------------------------ */

/* Enumerate every (level, idx) and check it maps one-to-one onto
 * [0, node_blocks). Only for sizes where that is cheap. */
static void check_bijection(const mt_geometry *g)
{
    uint8_t *seen = calloc(g->node_blocks, 1);
    assert_non_null(seen);
    for (uint32_t l = 1; l <= g->height; l++) {
        for (uint64_t i = 0; i < g->count[l]; i++) {
            uint64_t n = mt_node_index(g, l, i);
            assert_true(n < g->node_blocks);
            assert_int_equal(seen[n], 0);
            seen[n] = 1;
        }
    }
    for (uint64_t n = 0; n < g->node_blocks; n++)
        assert_int_equal(seen[n], 1);
    free(seen);
}

/* Every child at levels 0..height-1 maps to a parent that exists, via a
 * slot that fits in a node, and (parent, slot) gives back the child. */
static void check_parents_enum(const mt_geometry *g)
{
    for (uint32_t l = 0; l < g->height; l++) {
        uint64_t nparents = g->count[l + 1];
        uint64_t last_parent_children = 0;
        /* the last child lands in the last parent: no level has a spare node */
        assert_int_equal(mt_parent_idx(g, g->count[l] - 1), nparents - 1);
        for (uint64_t i = 0; i < g->count[l]; i++) {
            uint64_t p = mt_parent_idx(g, i);
            uint32_t s = mt_parent_slot(g, i);
            assert_int_equal(p, i / g->fanout);
            assert_int_equal(s, i % g->fanout);
            assert_true(s < g->fanout);
            assert_true(p < nparents);
            assert_int_equal(p * g->fanout + s, i);
            if (p == nparents - 1)
                last_parent_children++;
        }
        assert_true(last_parent_children >= 1);
        assert_true(last_parent_children <= g->fanout);
    }
}

/* Spot checks on the parent functions for levels too large to enumerate. */
static void check_parents_spot(const mt_geometry *g)
{
    for (uint32_t l = 0; l < g->height; l++) {
        uint64_t c = g->count[l];
        uint64_t probes[] = {0, 1, c / 2, c - 2, c - 1};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            uint64_t i = probes[k];
            if (i >= c)
                continue;
            uint64_t p = mt_parent_idx(g, i);
            uint32_t s = mt_parent_slot(g, i);
            assert_true(s < g->fanout);
            assert_true(p < g->count[l + 1]);
            assert_int_equal(p * g->fanout + s, i);
        }
        /* the last child lands in the last parent */
        assert_int_equal(mt_parent_idx(g, c - 1), g->count[l + 1] - 1);
    }
}

static void check_geometry(uint64_t nblocks, uint32_t fanout,
                           uint32_t want_height, uint64_t want_nodes)
{
    ref_geom r;
    ref_compute(&r, nblocks, fanout);
    /* the reference agrees with the hand-computed values */
    assert_int_equal(r.levels, want_height);
    assert_int_equal(r.total, want_nodes);

    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, nblocks, fanout), 0);
    assert_int_equal(g.nblocks, nblocks);
    assert_int_equal(g.fanout, fanout);
    assert_int_equal(g.height, want_height);
    assert_int_equal(g.node_blocks, want_nodes);
    assert_true(g.height >= 1 && g.height <= MT_MAX_HEIGHT);

    assert_int_equal(g.count[0], nblocks);
    for (uint32_t l = 1; l <= g.height; l++) {
        assert_int_equal(g.count[l], r.count[l]);
        assert_int_equal(g.level_start[l], r.start[l]);
        /* count[l] == ceil(count[l-1] / fanout), checked by multiplication */
        assert_true(g.count[l] >= 1);
        assert_true((g.count[l] - 1) * (uint64_t)fanout < g.count[l - 1]);
        if (g.count[l] <= UINT64_MAX / fanout)
            assert_true(g.count[l] * (uint64_t)fanout >= g.count[l - 1]);
    }
    assert_int_equal(g.count[g.height], 1);
    /* levels below the root are not single nodes (height is minimal) */
    if (g.height >= 2)
        assert_true(g.count[g.height - 1] > 1);
    /* root first, level 1 last, levels contiguous */
    assert_int_equal(g.level_start[g.height], 0);
    assert_int_equal(g.level_start[1] + g.count[1], g.node_blocks);
    for (uint32_t l = 1; l < g.height; l++)
        assert_int_equal(g.level_start[l], g.level_start[l + 1] + g.count[l + 1]);
    /* root index */
    assert_int_equal(mt_node_index(&g, g.height, 0), 0);
    assert_int_equal(mt_node_index(&g, 1, g.count[1] - 1), g.node_blocks - 1);

    if (g.node_blocks <= (1u << 24))
        check_bijection(&g);
    if (nblocks <= (1u << 22))
        check_parents_enum(&g);
    else
        check_parents_spot(&g);
}

/* ---- geometry tests -------------------------------------------------------- */

static void test_geom_one_block(void **state)
{
    (void)state;
    check_geometry(1, MT_FANOUT, 1, 1);
    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, 1, MT_FANOUT), 0);
    assert_int_equal(g.count[1], 1);
    assert_int_equal(mt_node_index(&g, 1, 0), 0);
    assert_int_equal(mt_parent_idx(&g, 0), 0);
    assert_int_equal(mt_parent_slot(&g, 0), 0);
}

static void test_geom_single_level(void **state)
{
    (void)state;
    check_geometry(2, MT_FANOUT, 1, 1);
    check_geometry(127, MT_FANOUT, 1, 1);
    check_geometry(128, MT_FANOUT, 1, 1); /* exactly fanout: one root */
    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, 128, MT_FANOUT), 0);
    assert_int_equal(mt_parent_idx(&g, 127), 0);
    assert_int_equal(mt_parent_slot(&g, 127), 127);
}

static void test_geom_two_levels(void **state)
{
    (void)state;
    check_geometry(129, MT_FANOUT, 2, 3);
    check_geometry(128u * 128u - 1, MT_FANOUT, 2, 129);
    check_geometry(128u * 128u, MT_FANOUT, 2, 129);
    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, 129, MT_FANOUT), 0);
    assert_int_equal(g.count[1], 2);
    assert_int_equal(g.level_start[2], 0);
    assert_int_equal(g.level_start[1], 1);
    assert_int_equal(mt_parent_idx(&g, 128), 1);
    assert_int_equal(mt_parent_slot(&g, 128), 0);
}

static void test_geom_three_levels(void **state)
{
    (void)state;
    check_geometry(128u * 128u + 1, MT_FANOUT, 3, 132);
    check_geometry(128ull * 128 * 128 - 1, MT_FANOUT, 3, 16513);
    /* 128^3 = 2^21 blocks = 8 GiB: byte size beyond 2^32 */
    check_geometry(128ull * 128 * 128, MT_FANOUT, 3, 16513);
    check_geometry(128ull * 128 * 128 + 1, MT_FANOUT, 4, 16517);
    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, 128u * 128u + 1, MT_FANOUT), 0);
    assert_int_equal(g.count[1], 129);
    assert_int_equal(g.count[2], 2);
    assert_int_equal(g.count[3], 1);
    assert_int_equal(g.level_start[3], 0);
    assert_int_equal(g.level_start[2], 1);
    assert_int_equal(g.level_start[1], 3);
}

static void test_geom_large(void **state)
{
    (void)state;
    /* 2^30 blocks = 4 TiB: 2^23 + 2^16 + 2^9 + 4 + 1 nodes */
    check_geometry(1ull << 30, MT_FANOUT, 5, 8454661ull);
    /* 2^40 blocks: 2^33 + 2^26 + 2^19 + 2^12 + 2^5 + 1 */
    check_geometry(1ull << 40, MT_FANOUT, 6, 8657571873ull);
    /* the largest u64: 2^57 + 2^50 + ... + 2^8 + 2 + 1 */
    check_geometry(UINT64_MAX, MT_FANOUT, 10, 145249953336295683ull);
}

static void test_geom_other_fanouts(void **state)
{
    (void)state;
    /* small fanouts, enumerated exhaustively against the reference */
    for (uint32_t f = 2; f <= 9; f++) {
        for (uint64_t n = 1; n <= 200; n++) {
            ref_geom r;
            ref_compute(&r, n, f);
            if (r.levels > MT_MAX_HEIGHT)
                continue;
            check_geometry(n, f, r.levels, r.total);
        }
    }
    /* fanout 2: 5 blocks -> 3, 2, 1 */
    check_geometry(5, 2, 3, 6);
    /* a huge fanout: (2^32-1)(2^32+1) = 2^64-1 -> 2^32+1, 2, 1 */
    check_geometry(UINT64_MAX, UINT32_MAX, 3, (1ull << 32) + 1 + 2 + 1);
}

static void test_geom_rejects(void **state)
{
    (void)state;
    mt_geometry g;
    assert_int_equal(mt_geometry_init(&g, 0, MT_FANOUT), -1);
    assert_int_equal(mt_geometry_init(&g, 0, 2), -1);
    assert_int_equal(mt_geometry_init(&g, 10, 1), -1);
    assert_int_equal(mt_geometry_init(&g, 10, 0), -1);
    assert_int_equal(mt_geometry_init(&g, 1, 1), -1);
    assert_int_equal(mt_geometry_init(&g, 1, 0), -1);

    /* fanout 2: 2^12 blocks need exactly 12 levels (the maximum); one more
     * block needs 13. */
    ref_geom r;
    ref_compute(&r, 1u << 12, 2);
    assert_int_equal(r.levels, 12);
    check_geometry(1u << 12, 2, 12, (1u << 12) - 1);
    assert_int_equal(mt_geometry_init(&g, 1u << 12, 2), 0);
    assert_int_equal(g.height, MT_MAX_HEIGHT);

    ref_compute(&r, (1u << 12) + 1, 2);
    assert_int_equal(r.levels, 13);
    assert_int_equal(mt_geometry_init(&g, (1u << 12) + 1, 2), -1);
    ref_compute(&r, 1u << 13, 2);
    assert_int_equal(r.levels, 13);
    assert_int_equal(mt_geometry_init(&g, 1u << 13, 2), -1);
    assert_int_equal(mt_geometry_init(&g, UINT64_MAX, 2), -1);

    /* fanout 3: 3^12 = 531441 fits, 3^12 + 1 does not */
    assert_int_equal(mt_geometry_init(&g, 531441, 3), 0);
    assert_int_equal(g.height, 12);
    assert_int_equal(mt_geometry_init(&g, 531442, 3), -1);

    /* sweep: accept exactly when the reference needs <= 12 levels */
    for (uint32_t f = 2; f <= 6; f++) {
        uint64_t probes[] = {1, 2, 3, 4095, 4096, 4097, 8191, 8192, 8193,
                             531440, 531441, 531442, 16777216, 244140625,
                             244140626, 2176782336ull, 2176782337ull,
                             UINT64_MAX / 2, UINT64_MAX};
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            ref_compute(&r, probes[k], f);
            int want = r.levels <= MT_MAX_HEIGHT ? 0 : -1;
            assert_int_equal(mt_geometry_init(&g, probes[k], f), want);
            if (want == 0) {
                assert_int_equal(g.height, r.levels);
                assert_int_equal(g.node_blocks, r.total);
            }
        }
    }
}

/* ---- version record ---------------------------------------------------------- */

static void fill_version(mt_version *v, uint64_t keyid, uint64_t counter,
                         uint8_t tag0)
{
    memset(v, 0, sizeof *v);
    v->keyid = keyid;
    v->counter = counter;
    for (unsigned i = 0; i < 16; i++)
        v->tag[i] = (uint8_t)(tag0 + i);
}

static void test_version_encode_bytes(void **state)
{
    (void)state;
    mt_version v;
    fill_version(&v, 0x0102030405060708ull, 0x1112131415161718ull, 0xa0);
    static const uint8_t want[MT_VERSION_BYTES] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* keyid LE */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* counter LE */
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, /* tag */
        0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
    };
    uint8_t buf[MT_VERSION_BYTES + 16];
    memset(buf, 0xcc, sizeof buf);
    mt_version_encode(&v, buf);
    assert_memory_equal(buf, want, MT_VERSION_BYTES);
    for (size_t i = MT_VERSION_BYTES; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xcc); /* no overrun */

    mt_version d;
    memset(&d, 0x55, sizeof d);
    mt_version_decode(&d, want);
    assert_int_equal(d.keyid, 0x0102030405060708ull);
    assert_int_equal(d.counter, 0x1112131415161718ull);
    assert_memory_equal(d.tag, want + 16, 16);
    assert_int_equal(mt_version_equal(&d, &v), 1);

    /* high bits survive */
    fill_version(&v, UINT64_MAX, 0x8000000000000001ull, 0xf0);
    mt_version_encode(&v, buf);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(buf[i], 0xff);
    assert_int_equal(buf[8], 0x01);
    for (unsigned i = 9; i < 15; i++)
        assert_int_equal(buf[i], 0x00);
    assert_int_equal(buf[15], 0x80);
    mt_version_decode(&d, buf);
    assert_int_equal(d.keyid, UINT64_MAX);
    assert_int_equal(d.counter, 0x8000000000000001ull);
    assert_int_equal(mt_version_equal(&d, &v), 1);
}

static void test_version_none(void **state)
{
    (void)state;
    mt_version v;
    memset(&v, 0, sizeof v);
    assert_true(mt_version_is_none(&v));
    /* an all-zero record decodes to "none" */
    uint8_t zero[MT_VERSION_BYTES] = {0};
    mt_version d;
    memset(&d, 0x77, sizeof d);
    mt_version_decode(&d, zero);
    assert_true(mt_version_is_none(&d));
    /* keyid is what counts */
    fill_version(&v, 0, 99, 0x10);
    assert_true(mt_version_is_none(&v));
    fill_version(&v, 1, 0, 0x00);
    memset(v.tag, 0, sizeof v.tag);
    assert_false(mt_version_is_none(&v));
    fill_version(&v, 1ull << 63, 0, 0x00);
    assert_false(mt_version_is_none(&v));
}

static void test_version_equal(void **state)
{
    (void)state;
    mt_version a, b;
    fill_version(&a, 7, 42, 0x30);
    fill_version(&b, 7, 42, 0x30);
    assert_int_equal(mt_version_equal(&a, &b), 1);
    assert_int_equal(mt_version_equal(&b, &a), 1);
    assert_int_equal(mt_version_equal(&a, &a), 1);

    b.keyid = 8;
    assert_int_equal(mt_version_equal(&a, &b), 0);
    b.keyid = 7 | (1ull << 63);
    assert_int_equal(mt_version_equal(&a, &b), 0);
    b.keyid = 7;
    b.counter = 43;
    assert_int_equal(mt_version_equal(&a, &b), 0);
    b.counter = 42 | (1ull << 40);
    assert_int_equal(mt_version_equal(&a, &b), 0);
    b.counter = 42;
    assert_int_equal(mt_version_equal(&a, &b), 1);
    /* any single-bit difference in any tag byte */
    for (unsigned i = 0; i < 16; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            b.tag[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(mt_version_equal(&a, &b), 0);
            b.tag[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_int_equal(mt_version_equal(&a, &b), 1);
}

/* ---- node slots ---------------------------------------------------------------- */

#define GUARD 64u

static void check_node_slot(uint32_t slot)
{
    uint8_t buf[GUARD + MT_NODE_BYTES + GUARD];
    memset(buf, 0x5a, sizeof buf);
    uint8_t *node = buf + GUARD;

    mt_version v;
    fill_version(&v, 0x1122334455667788ull, 0x99aabbccddeeff00ull, 0xc0);
    mt_node_set(node, slot, &v);

    uint8_t want[MT_VERSION_BYTES] = {
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
        0x00, 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99,
        0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf,
    };
    size_t lo = GUARD + (size_t)slot * 32u, hi = lo + 32u;
    for (size_t i = 0; i < sizeof buf; i++) {
        if (i >= lo && i < hi)
            assert_int_equal(buf[i], want[i - lo]);
        else
            assert_int_equal(buf[i], 0x5a);
    }

    mt_version got;
    memset(&got, 0, sizeof got);
    mt_node_get(node, slot, &got);
    assert_int_equal(mt_version_equal(&got, &v), 1);

    /* a neighbouring slot reads the untouched filler */
    uint32_t other = slot == 0 ? 1 : slot - 1;
    mt_node_get(node, other, &got);
    assert_int_equal(got.keyid, 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(got.counter, 0x5a5a5a5a5a5a5a5aull);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(got.tag[i], 0x5a);
}

static void test_node_slots(void **state)
{
    (void)state;
    check_node_slot(0);
    check_node_slot(1);
    check_node_slot(64);
    check_node_slot(MT_FANOUT - 1); /* 127: last 32 bytes of the node */

    /* fill every slot, then read them all back */
    uint8_t node[MT_NODE_BYTES];
    memset(node, 0, sizeof node);
    for (uint32_t s = 0; s < MT_FANOUT; s++) {
        mt_version v;
        fill_version(&v, s + 1, 1000 + s, (uint8_t)s);
        mt_node_set(node, s, &v);
    }
    for (uint32_t s = 0; s < MT_FANOUT; s++) {
        mt_version v, got;
        fill_version(&v, s + 1, 1000 + s, (uint8_t)s);
        mt_node_get(node, s, &got);
        assert_int_equal(mt_version_equal(&got, &v), 1);
        /* keyid LE at the slot's first byte */
        assert_int_equal(node[s * 32u], (uint8_t)(s + 1));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geom_one_block),
        cmocka_unit_test(test_geom_single_level),
        cmocka_unit_test(test_geom_two_levels),
        cmocka_unit_test(test_geom_three_levels),
        cmocka_unit_test(test_geom_large),
        cmocka_unit_test(test_geom_other_fanouts),
        cmocka_unit_test(test_geom_rejects),
        cmocka_unit_test(test_version_encode_bytes),
        cmocka_unit_test(test_version_none),
        cmocka_unit_test(test_version_equal),
        cmocka_unit_test(test_node_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
