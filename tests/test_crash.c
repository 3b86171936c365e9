/* Crash harness (DESIGN §8): a scripted workload of block writes and syncs
 * runs on the recording backend; every prefix of its write log, and within
 * each flush epoch a sample of subsets in random order, is materialised as
 * a crash state, reopened and checked:
 *   C1  the image opens and every block reads without an authentication
 *       error, holding its last synced content or a newer one written;
 *   C2  a block not written since the last completed sync reads exactly;
 *   C3  no block reads content older than the last completed sync, and
 *       after the recovery commit a further write + sync + reopen reads
 *       exactly what was there (no ambiguous entry survives a commit).
 * A sample of crash states is crashed again during its recovery commit.
 * Seeds are printed so any failure can be replayed (VD_CRASH_SEED). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testkit.h"

#include "record.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define MAX_SYNCS 512
#define MAX_WRITES 4096

typedef struct hist {
    uint64_t seq;
    uint32_t id;
} hist;

typedef struct workload {
    uint64_t nblocks;
    hist **h;      /* per block: writes in order */
    uint32_t *nh;
    uint32_t *caph;
    uint64_t seq;  /* next write sequence number */
    uint32_t next_id;
    uint64_t sync_start_seq[MAX_SYNCS];
    size_t sync_end_op[MAX_SYNCS];
    uint32_t nsync;
    uint64_t rng;
    int rare_sync; /* one sync where the others have ten: commits forced
                      by cache pressure, left in flight (sync.c) */
    uint8_t key[VD_KEY_BYTES];
} workload;

typedef struct stats {
    uint64_t points, reads, recovered, nested, reopened;
} stats;

static void record_write(workload *w, uint64_t lbn, uint32_t id)
{
    if (w->nh[lbn] == w->caph[lbn]) {
        w->caph[lbn] = w->caph[lbn] ? 2 * w->caph[lbn] : 4;
        w->h[lbn] = realloc(w->h[lbn], w->caph[lbn] * sizeof(hist));
        assert_non_null(w->h[lbn]);
    }
    w->h[lbn][w->nh[lbn]++] = (hist){w->seq++, id};
}

/* Is id an acceptable content of lbn after a crash whose last completed
 * sync is s (-1: none since the log started)? */
static int allowed(const workload *w, int s, uint64_t lbn, uint32_t id)
{
    uint64_t start = s < 0 ? 0 : w->sync_start_seq[s];
    uint32_t synced = 0;
    for (uint32_t k = 0; k < w->nh[lbn]; k++) {
        const hist *x = &w->h[lbn][k];
        if (x->seq < start)
            synced = x->id;
        else if (x->id == id)
            return 1; /* written after that sync started: newer content */
    }
    return id == synced;
}

static int last_sync_before(const workload *w, size_t prefix)
{
    int s = -1;
    for (uint32_t k = 0; k < w->nsync; k++)
        if (w->sync_end_op[k] <= prefix)
            s = (int)k;
    return s;
}

static void wl_init(workload *w, uint64_t nblocks, uint64_t seed)
{
    memset(w, 0, sizeof *w);
    w->nblocks = nblocks;
    w->h = calloc(nblocks, sizeof *w->h);
    w->nh = calloc(nblocks, sizeof *w->nh);
    w->caph = calloc(nblocks, sizeof *w->caph);
    assert_true(w->h && w->nh && w->caph);
    w->rng = seed ? seed : 1;
    w->next_id = 1;
    for (unsigned i = 0; i < VD_KEY_BYTES; i++)
        w->key[i] = (uint8_t)(i * 7 + 3);
}

static void wl_free(workload *w)
{
    for (uint64_t b = 0; b < w->nblocks; b++)
        free(w->h[b]);
    free(w->h);
    free(w->nh);
    free(w->caph);
}

static void do_write(workload *w, vd_image *img, uint64_t lbn)
{
    uint8_t b[VD_BLOCK_SIZE];
    uint32_t id = w->next_id++;
    vt_block_fill(b, lbn, id);
    /* Record before the call: an implicit sync inside it may persist it. */
    record_write(w, lbn, id);
    assert_int_equal(vd_image_write(img, lbn, 1, b), VD_OK);
}

static void do_sync(workload *w, vd_image *img, vd_rec *rec)
{
    assert_true(w->nsync < MAX_SYNCS);
    w->sync_start_seq[w->nsync] = w->seq;
    assert_int_equal(vd_image_sync(img), VD_OK);
    w->sync_end_op[w->nsync] = vd_rec_op_count(rec);
    w->nsync++;
}

/* The scripted workload: hot and cold blocks, single writes, runs, bursts
 * large enough to push the journal out of the superblock, rewrites of the
 * same block within one sync, and syncs with nothing dirty. */
static void run_workload(workload *w, vd_image *img, vd_rec *rec, unsigned nwrites)
{
    unsigned written = 0;
    while (written < nwrites) {
        uint64_t r = vt_rand(&w->rng) % 100;
        if (r < 55) {
            uint64_t lbn = vt_rand(&w->rng) % 100 < 50 ? vt_rand(&w->rng) % 16
                                                  : vt_rand(&w->rng) % w->nblocks;
            do_write(w, img, lbn);
            written++;
        } else if (r < 75) {
            uint64_t lbn = vt_rand(&w->rng) % w->nblocks;
            unsigned n = 2 + (unsigned)(vt_rand(&w->rng) % 12);
            for (unsigned k = 0; k < n && lbn + k < w->nblocks; k++, written++)
                do_write(w, img, lbn + k);
        } else if (r < 80 || (w->rare_sync && vt_rand(&w->rng) % 10 != 0)) {
            for (unsigned k = 0; k < 70; k++, written++)
                do_write(w, img, vt_rand(&w->rng) % w->nblocks);
        } else {
            do_sync(w, img, rec);
        }
    }
    do_sync(w, img, rec);
    do_sync(w, img, rec); /* nothing dirty: must be a no-op */
}

/* Read every block of an opened crash state and check it. ids[] receives
 * what was read. Returns the number of blocks read. */
static void check_state(const workload *w, vd_image *img, int s, uint32_t *ids,
                        const char *what, size_t point)
{
    uint8_t *buf = malloc(64 * VD_BLOCK_SIZE);
    assert_non_null(buf);
    for (uint64_t b = 0; b < w->nblocks; b += 64) {
        uint32_t n = (uint32_t)(w->nblocks - b < 64 ? w->nblocks - b : 64);
        vd_err e = vd_image_read(img, b, n, buf);
        if (e != VD_OK) {
            fprintf(stderr, "%s: crash point %zu: read of blocks %llu+%u: %s\n",
                    what, point, (unsigned long long)b, n, vd_strerror(e));
            fail();
        }
        for (uint32_t k = 0; k < n; k++) {
            int64_t id = vt_block_identify(buf + (size_t)k * VD_BLOCK_SIZE, b + k);
            if (id < 0 || !allowed(w, s, b + k, (uint32_t)id)) {
                fprintf(stderr,
                        "%s: crash point %zu: block %llu holds %lld, not allowed "
                        "after sync %d\n",
                        what, point, (unsigned long long)(b + k), (long long)id, s);
                fail();
            }
            if (ids)
                ids[b + k] = (uint32_t)id;
        }
    }
    free(buf);
}

/* Open a crash state read-only (journal in memory) and writable (recovery
 * commit), check both; then write, sync, reopen and check stability. */
static void check_point(workload *w, vd_host *h, int s, size_t point, stats *st,
                        int deep)
{
    vd_image *img;
    vd_open_opts ro = {.read_only = 1, .cache_bytes = 1 << 20};
    vd_err e = vd_image_open(h, w->key, &ro, &img);
    if (e != VD_OK) {
        fprintf(stderr, "crash point %zu: read-only open: %s\n", point, vd_strerror(e));
        fail();
    }
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    st->recovered += info.recovered != 0;
    check_state(w, img, s, NULL, "read-only", point);
    assert_int_equal(vd_image_close(img), VD_OK);
    st->points++;
    st->reads += w->nblocks;
    if (!deep)
        return;

    uint32_t *ids = calloc(w->nblocks, sizeof *ids);
    assert_non_null(ids);
    vd_open_opts rw = {.cache_bytes = 1 << 20};
    e = vd_image_open(h, w->key, &rw, &img);
    if (e != VD_OK) {
        fprintf(stderr, "crash point %zu: writable open: %s\n", point, vd_strerror(e));
        fail();
    }
    check_state(w, img, s, ids, "writable", point);
    /* Touch a few blocks and commit: entries left ambiguous by the crash
     * must not turn into authentication failures now (DESIGN §4). */
    uint8_t b[VD_BLOCK_SIZE];
    uint64_t touch[3] = {0, w->nblocks / 2, w->nblocks - 1};
    for (unsigned k = 0; k < 3; k++) {
        vt_block_fill(b, touch[k], 0xFFFF0000u + k);
        assert_int_equal(vd_image_write(img, touch[k], 1, b), VD_OK);
        ids[touch[k]] = 0xFFFF0000u + k;
    }
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open(h, w->key, &ro, &img), VD_OK);
    uint8_t *buf = malloc(64 * VD_BLOCK_SIZE);
    assert_non_null(buf);
    for (uint64_t x = 0; x < w->nblocks; x += 64) {
        uint32_t n = (uint32_t)(w->nblocks - x < 64 ? w->nblocks - x : 64);
        e = vd_image_read(img, x, n, buf);
        if (e != VD_OK) {
            fprintf(stderr, "crash point %zu: after recovery + sync: read %llu: %s\n",
                    point, (unsigned long long)x, vd_strerror(e));
            fail();
        }
        for (uint32_t k = 0; k < n; k++) {
            int64_t id = vt_block_identify(buf + (size_t)k * VD_BLOCK_SIZE, x + k);
            if (id != (int64_t)ids[x + k]) {
                fprintf(stderr,
                        "crash point %zu: block %llu changed across recovery + "
                        "sync: %lld, was %u\n",
                        point, (unsigned long long)(x + k), (long long)id, ids[x + k]);
                fail();
            }
        }
    }
    free(buf);
    assert_int_equal(vd_image_close(img), VD_OK);
    free(ids);
    st->reopened++;
}

/* Crash again while the recovery commit of this state runs. */
static void check_nested(workload *w, const uint8_t *img_bytes, uint64_t size,
                         int s, size_t point, stats *st)
{
    vd_rec *rec2 = vd_rec_new(img_bytes, size);
    assert_non_null(rec2);
    vd_image *img;
    vd_open_opts rw = {.cache_bytes = 1 << 20};
    assert_int_equal(vd_image_open(vd_rec_host(rec2), w->key, &rw, &img), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    size_t nops = vd_rec_op_count(rec2);
    for (size_t p = 0; p <= nops; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_host(rec2, p, NULL, 0, 0, &h), VD_OK);
        check_point(w, h, s, point * 1000 + p, st, 0);
        vd_host_mem_free(h);
        st->nested++;
    }
    vd_rec_free(rec2);
}

static void crash_run(uint64_t nblocks, uint32_t fanout, unsigned nwrites,
                      uint64_t seed, unsigned deep_every, unsigned masks_per_epoch,
                      int rare_sync)
{
    workload w;
    wl_init(&w, nblocks, seed);
    w.rare_sync = rare_sync;
    printf("crash harness: %llu blocks, fan-out %u, %u writes, seed %llu\n",
           (unsigned long long)nblocks, fanout, nwrites, (unsigned long long)seed);

    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_image *img;
    vd_create_opts c = {.nblocks = nblocks, .fanout = fanout};
    vd_open_opts o = {.cache_bytes = 1 << 20}; /* small: implicit syncs too */
    assert_int_equal(vd_image_create(vd_rec_host(rec), w.key, &c, &o, &img), VD_OK);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK); /* crashes start now */
    run_workload(&w, img, rec, nwrites);
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);

    size_t nops = vd_rec_op_count(rec);
    printf("  log: %zu ops, %zu flushes, %llu bytes; %llu syncs committed, %u "
           "explicit, %zu commits written in flight\n",
           nops, vd_rec_flush_count(rec), (unsigned long long)vd_rec_bytes_logged(rec),
           (unsigned long long)info.syncs, w.nsync, vd_rec_jobs_started(rec));
    if (rare_sync) /* the recorder offers job_start: pressure commits use it */
        assert_true(vd_rec_jobs_started(rec) > 0);

    stats st;
    memset(&st, 0, sizeof st);
    /* Every prefix of the log. */
    for (size_t p = 0; p <= nops; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_host(rec, p, NULL, 0, 0, &h), VD_OK);
        int s = last_sync_before(&w, p);
        check_point(&w, h, s, p, &st, deep_every && p % deep_every == 0);
        if (deep_every && p % (deep_every * 8) == 0 && st.recovered) {
            uint64_t sz;
            uint8_t *bytes = vd_rec_crash_image(rec, p, NULL, 0, 0, &sz);
            assert_non_null(bytes);
            check_nested(&w, bytes, sz, s, p, &st);
            free(bytes);
        }
        vd_host_mem_free(h);
    }
    /* Within each flush epoch: random subsets of its writes, reordered. */
    size_t nepochs = vd_rec_epoch_count(rec);
    uint64_t mrng = seed ^ 0x5555;
    for (size_t ep = 0; ep < nepochs; ep++) {
        size_t first, end;
        assert_int_equal(vd_rec_epoch_bounds(rec, ep, &first, &end), VD_OK);
        size_t len = end - first;
        if (len < 2)
            continue;
        uint8_t *mask = calloc((len + 7) / 8, 1);
        assert_non_null(mask);
        for (unsigned m = 0; m < masks_per_epoch; m++) {
            for (size_t j = 0; j < len; j++)
                if (vt_rand(&mrng) & 1)
                    mask[j / 8] |= (uint8_t)(1u << (j % 8));
                else
                    mask[j / 8] &= (uint8_t)~(1u << (j % 8));
            vd_host *h;
            uint64_t pseed = vt_rand(&mrng);
            assert_int_equal(vd_rec_crash_host(rec, end, mask, pseed, 1, &h), VD_OK);
            int s = last_sync_before(&w, end);
            check_point(&w, h, s, end, &st, m == 0);
            vd_host_mem_free(h);
        }
        free(mask);
    }
    printf("  crash points checked: %llu (%llu in recovery state, %llu reopened "
           "after recovery commit + write + sync, %llu nested crashes during "
           "recovery); %llu block reads verified\n",
           (unsigned long long)st.points, (unsigned long long)st.recovered,
           (unsigned long long)st.reopened, (unsigned long long)st.nested,
           (unsigned long long)st.reads);
    assert_true(st.recovered > 0); /* the harness did reach mid-sync states */
    vd_rec_free(rec);
    wl_free(&w);
}

static uint64_t seed_from_env(uint64_t dflt)
{
    const char *s = getenv("VD_CRASH_SEED");
    return s ? strtoull(s, NULL, 0) : dflt;
}

static void crash_points_two_level_tree_hold_c1_c2_c3(void **state)
{
    (void)state;
    crash_run(2000, 128, 600, seed_from_env(20261123), 3, 4, 0);
}

static void crash_points_five_level_tree_hold_c1_c2_c3(void **state)
{
    (void)state;
    /* Fan-out 4 over 300 blocks: five node levels, so a sync rewrites long
     * paths and the journal spills out of the superblock often. */
    crash_run(300, 4, 500, seed_from_env(777), 2, 4, 0);
}

static void crash_points_full_fanout_three_levels_hold_c1_c2_c3(void **state)
{
    (void)state;
    /* 128^2 + 1 blocks: the smallest default-fan-out image of height 3. */
    crash_run(16385, 128, 120, seed_from_env(4242), 25, 1, 0);
}

static void crash_points_with_commits_in_flight_hold_c1_c2_c3(void **state)
{
    (void)state;
    /* Few syncs: the 1 MiB cache fills and commits, and those commits
     * write and flush on the recorder's thread while the next batch is
     * sealed (overlapped commits). Fan-out 16: three node levels. */
    crash_run(2000, 16, 1500, seed_from_env(16016), 5, 2, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_points_two_level_tree_hold_c1_c2_c3),
        cmocka_unit_test(crash_points_five_level_tree_hold_c1_c2_c3),
        cmocka_unit_test(crash_points_full_fanout_three_levels_hold_c1_c2_c3),
        cmocka_unit_test(crash_points_with_commits_in_flight_hold_c1_c2_c3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
