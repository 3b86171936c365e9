/* tests/test_cache.c — libvdisk/cache.c: which entry the cache gives up.
 *
 * Eviction takes the least recently used entry that is clean and
 * unpinned; an entry that is dirty or pinned is never taken, and when no
 * entry can go the answer is VC_NONE. Since 2026-12-07 the walk moves the
 * entries it passes that cannot go to the head (a stream kept thousands
 * of them at the tail, walked again at every take): these tests pin down
 * that the order among clean entries is kept and that nothing is taken
 * that must stay, however often the walk has rotated past it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache.h"

#define N 16u

/* A cache of N entries holding phys 0..N-1, inserted in that order: phys
 * 0 is the least recently used. ent[p] is the entry holding phys p. */
static void fill(vd_cache *c, uint32_t ent[N])
{
    assert_int_equal(vc_init(c, N), 0);
    for (uint32_t p = 0; p < N; p++) {
        uint32_t i = vc_take(c);
        assert_int_not_equal(i, VC_NONE);
        c->e[i].phys = p;
        c->e[i].idx = p;
        c->e[i].level = 0;
        vc_insert(c, i);
        ent[p] = i;
    }
}

/* The phys an entry taken now held (the entry is gone from the cache). */
static uint64_t take_phys(vd_cache *c)
{
    uint32_t i = vc_take(c);
    assert_int_not_equal(i, VC_NONE);
    return c->e[i].phys;
}

static void clean_entries_go_oldest_first_behind_dirty_and_pinned_ones(void **state)
{
    (void)state;
    vd_cache c;
    uint32_t ent[N];
    fill(&c, ent);
    assert_int_equal(take_phys(&c), 0);
    for (uint32_t p = 1; p <= 6; p++)
        vc_set_dirty(&c, ent[p], 1);
    c.e[ent[7]].pins = 1;
    c.e[ent[9]].pins = 2;
    /* Used again: now the most recent. */
    assert_int_equal(vc_lookup(&c, 8), ent[8]);
    /* Oldest clean, unpinned first: 10..15, then 8. */
    for (uint64_t want = 10; want < N; want++)
        assert_int_equal(take_phys(&c), want);
    assert_int_equal(take_phys(&c), 8);
    /* Left: dirty 1..6, pinned 7 and 9. Nothing may go, however often
     * the walk has passed them. */
    for (int k = 0; k < 3; k++)
        assert_int_equal(vc_take(&c), VC_NONE);
    assert_int_equal(vc_available(&c, N), 0);
    /* Each comes free in turn, and is the one taken. */
    vc_set_dirty(&c, ent[4], 0);
    assert_int_equal(vc_available(&c, N), 1);
    assert_int_equal(take_phys(&c), 4);
    assert_int_equal(vc_take(&c), VC_NONE);
    c.e[ent[9]].pins = 0;
    assert_int_equal(take_phys(&c), 9);
    assert_int_equal(vc_take(&c), VC_NONE);
    /* Still in the cache, all of them, and found. */
    for (uint64_t p = 1; p <= 7; p++)
        if (p != 4)
            assert_int_equal(vc_lookup(&c, p), ent[p]);
    vc_destroy(&c);
}

static void clean_order_survives_the_walk_past_dirty_entries(void **state)
{
    (void)state;
    vd_cache c;
    uint32_t ent[N];
    fill(&c, ent);
    assert_int_equal(take_phys(&c), 0);
    /* The oldest half dirty: a take walks past all of them. */
    for (uint32_t p = 1; p < N / 2; p++)
        vc_set_dirty(&c, ent[p], 1);
    assert_int_equal(take_phys(&c), N / 2);
    /* Cleaned after the walk moved them: they are newer than the clean
     * entries that were behind them, which go first, oldest first. */
    for (uint32_t p = 1; p < N / 2; p++)
        vc_set_dirty(&c, ent[p], 0);
    for (uint64_t want = N / 2 + 1; want < N; want++)
        assert_int_equal(take_phys(&c), want);
    /* Then the cleaned ones, in the order they were used. */
    for (uint64_t want = 1; want < N / 2; want++)
        assert_int_equal(take_phys(&c), want);
    assert_int_equal(vc_take(&c), VC_NONE);
    vc_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_entries_go_oldest_first_behind_dirty_and_pinned_ones),
        cmocka_unit_test(clean_order_survives_the_walk_past_dirty_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
