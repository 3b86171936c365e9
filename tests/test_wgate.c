/* vhdmount's write gate (fusemount/wgate.c): WRITEs that extend a file
 * run in offset order, so that a WRITE which wins the race for the volume
 * lock past the file's end does not make the file system zero-fill a gap
 * the WRITE below it is about to fill. Threads stand in for the FUSE
 * loop's workers; "waiting in the gate" is observed through the gate's
 * own counter, never through a sleep. Run under ThreadSanitizer too. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vhdmount.h"

#define MIB ((uint64_t)1 << 20)
#define NWRITERS 8

typedef struct gate_fix {
    vmnt_nodes t;
    vmnt_node *n;
    pthread_mutex_t mu; /* guards order, count, entered */
    uint64_t order[NWRITERS];
    unsigned count;
    int entered;
} gate_fix;

typedef struct writer {
    gate_fix *fx;
    uint64_t off;
} writer;

static int fix_setup(void **state)
{
    gate_fix *fx = calloc(1, sizeof *fx);
    if (!fx || vmnt_nodes_init(&fx->t) != 0 || pthread_mutex_init(&fx->mu, NULL) != 0)
        return -1;
    fx->n = &fx->t.root; /* any node: the gate only uses the write fields */
    *state = fx;
    return 0;
}

static int fix_teardown(void **state)
{
    gate_fix *fx = *state;
    vmnt_nodes_fini(&fx->t);
    (void)pthread_mutex_destroy(&fx->mu);
    free(fx);
    return 0;
}

/* Enter at w->off, note the order it got through in, leave one MiB on. */
static void *writer_main(void *arg)
{
    writer *w = arg;
    gate_fix *fx = w->fx;
    int slot = vmnt_wgate_enter(&fx->t, fx->n, w->off);
    if (pthread_mutex_lock(&fx->mu) == 0) {
        if (fx->count < NWRITERS)
            fx->order[fx->count] = w->off;
        fx->count++;
        fx->entered = 1;
        (void)pthread_mutex_unlock(&fx->mu);
    }
    vmnt_wgate_leave(&fx->t, fx->n, slot, w->off + MIB);
    return NULL;
}

static unsigned entered_count(gate_fix *fx)
{
    assert_int_equal(pthread_mutex_lock(&fx->mu), 0);
    unsigned c = fx->count;
    assert_int_equal(pthread_mutex_unlock(&fx->mu), 0);
    return c;
}

/* Until `want` writers wait in the gate or `want` got through it (which a
 * gate that does not hold them lets happen). */
static void until_waiting_or_through(gate_fix *fx, unsigned want)
{
    while (vmnt_wgate_waiting(&fx->t, fx->n) < want && entered_count(fx) < want)
        sched_yield();
}

static void test_overwrites_inside_the_file_never_wait(void **state)
{
    gate_fix *fx = *state;
    int a = vmnt_wgate_enter(&fx->t, fx->n, 0);
    assert_true(a >= 0); /* at the end (0): tracked */
    assert_true(vmnt_wgate_would_wait(&fx->t, fx->n, 4 * MIB));
    assert_false(vmnt_wgate_would_wait(&fx->t, fx->n, 0));
    vmnt_wgate_leave(&fx->t, fx->n, a, 8 * MIB);
    /* The file now reaches 8 MiB: a write below that is an overwrite. */
    int b = vmnt_wgate_enter(&fx->t, fx->n, 8 * MIB);
    assert_true(b >= 0);
    assert_false(vmnt_wgate_would_wait(&fx->t, fx->n, 2 * MIB));
    assert_int_equal(vmnt_wgate_enter(&fx->t, fx->n, 2 * MIB), -1);
    assert_true(vmnt_wgate_would_wait(&fx->t, fx->n, 9 * MIB));
    vmnt_wgate_leave(&fx->t, fx->n, b, 9 * MIB);
    /* A truncation moves the end back: writes from there on are ordered. */
    vmnt_wgate_resized(&fx->t, fx->n, MIB);
    int c = vmnt_wgate_enter(&fx->t, fx->n, MIB);
    assert_true(c >= 0);
    assert_true(vmnt_wgate_would_wait(&fx->t, fx->n, 2 * MIB));
    vmnt_wgate_leave(&fx->t, fx->n, c, 2 * MIB);
    assert_false(vmnt_wgate_would_wait(&fx->t, fx->n, 2 * MIB));
}

static void test_a_write_past_the_end_waits_for_the_one_below(void **state)
{
    gate_fix *fx = *state;
    int a = vmnt_wgate_enter(&fx->t, fx->n, 0);
    assert_true(a >= 0);
    writer w = {fx, MIB};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    until_waiting_or_through(fx, 1);
    assert_int_equal(entered_count(fx), 0);
    assert_int_equal(vmnt_wgate_waiting(&fx->t, fx->n), 1);
    vmnt_wgate_leave(&fx->t, fx->n, a, MIB);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(entered_count(fx), 1);
    assert_int_equal(vmnt_wgate_waiting(&fx->t, fx->n), 0);
}

static void test_writers_past_the_end_go_in_offset_order(void **state)
{
    gate_fix *fx = *state;
    int a = vmnt_wgate_enter(&fx->t, fx->n, 0);
    assert_true(a >= 0);
    writer w[NWRITERS];
    pthread_t th[NWRITERS];
    /* Started highest offset first: the order a racing lock could give. */
    for (unsigned i = 0; i < NWRITERS; i++) {
        w[i].fx = fx;
        w[i].off = (uint64_t)(NWRITERS - i) * MIB;
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
    }
    until_waiting_or_through(fx, NWRITERS);
    assert_int_equal(entered_count(fx), 0);
    vmnt_wgate_leave(&fx->t, fx->n, a, MIB);
    for (unsigned i = 0; i < NWRITERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(entered_count(fx), NWRITERS);
    for (unsigned i = 0; i < NWRITERS; i++)
        assert_int_equal(fx->order[i], (uint64_t)(i + 1) * MIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_overwrites_inside_the_file_never_wait, fix_setup,
                                        fix_teardown),
        cmocka_unit_test_setup_teardown(test_a_write_past_the_end_waits_for_the_one_below,
                                        fix_setup, fix_teardown),
        cmocka_unit_test_setup_teardown(test_writers_past_the_end_go_in_offset_order, fix_setup,
                                        fix_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
