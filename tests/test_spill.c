/* Spilled data (libvdisk/spill.c): never-written blocks that fill the cache
 * go in place without a commit, and the next commit names them.
 *   - a stream of new blocks larger than the cache commits nothing and
 *     flushes nothing until the sync, reads back before and after it, and
 *     after a reopen;
 *   - blocks spilled and then written again, or written again after the
 *     commit, read back their last content;
 *   - every crash state of a recorded workload (streams of new blocks,
 *     rewrites, syncs, a crash with spilled data not yet committed) opens,
 *     read-only and writable, and every block holds what it held at the
 *     last completed sync or something written after it (C1, C2), never a
 *     block that fails to authenticate; also when the new blocks come in
 *     long runs, which go straight from the caller's buffer to their
 *     places (direct writes) instead of through the cache;
 *   - direct writes read back at once, while their writes are still in
 *     flight, and mix with blocks the cache holds dirty; a disk that
 *     fills up under them fails the handle and keeps the last commit;
 *   - log commits (format 6: the versions of a few rewritten blocks in a
 *     log, their level-1 nodes held like spilled data's until a drain
 *     seals them): they read back, across reopens, read-only and
 *     writable, through drains of a full log; every crash state of a
 *     workload of small syncs opens and holds what C1/C2 allow; a log
 *     block the host changed or took from an older log is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blockhist.h"
#include "fault.h"
#include "passthru.h"
#include "record.h"
#include "replay.h"
#include "testkit.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define BS VD_BLOCK_SIZE

static const uint8_t KEY[VD_KEY_BYTES] = {7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5, 2};

static void put(vd_image *img, uint64_t lbn, uint32_t id)
{
    uint8_t b[BS];
    vt_block_fill(b, lbn, id);
    VT_EXPECT_ERR(vd_image_write(img, lbn, 1, b), VD_OK, "write %llu", (unsigned long long)lbn);
}

static void expect(vd_image *img, uint64_t lbn, uint32_t id, const char *when)
{
    uint8_t b[BS];
    VT_EXPECT_ERR(vd_image_read(img, lbn, 1, b), VD_OK, "read %llu %s",
                  (unsigned long long)lbn, when);
    int64_t got = vt_block_identify(b, lbn);
    if (got != (int64_t)id) {
        print_error("block %llu %s: holds %lld, wrote %u\n", (unsigned long long)lbn, when,
                    (long long)got, id);
        fail();
    }
}

static vd_image_info info_of(vd_image *img)
{
    vd_image_info i;
    assert_int_equal(vd_image_info_get(img, &i), VD_OK);
    return i;
}

#define STREAM 3000u /* blocks: 12 MiB through a 1 MiB cache */

static void spill_streams_new_blocks_without_a_commit(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = 8192};
    vd_open_opts o = {.cache_bytes = 1 << 20};
    vd_image *img;
    assert_int_equal(vd_image_create(h, KEY, &c, &o, &img), VD_OK);
    const vd_image_info before = info_of(img);
    for (uint32_t i = 0; i < STREAM; i++)
        put(img, i, i + 1);
    const vd_image_info during = info_of(img);
    /* Twelve cache-fulls of new data: no commit, one flush at most (the
     * record's clean flag, cleared once per session), and the data went
     * in place (more bytes written than the cache can hold). */
    assert_int_equal(during.syncs, before.syncs);
    assert_true(during.flushes - before.flushes <= 1);
    assert_int_equal(during.epoch, before.epoch);
    assert_true(during.bytes_written - before.bytes_written >= (uint64_t)(STREAM - 256) * BS);
    /* Written again after their spill: still new blocks to the last commit. */
    for (uint32_t i = 0; i < STREAM; i += 7)
        put(img, i, 100000 + i);
    for (uint32_t i = 0; i < STREAM; i++)
        expect(img, i, i % 7 ? i + 1 : 100000 + i, "before the sync");
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    const vd_image_info after = info_of(img);
    printf("spill: %u new blocks, %llu commit(s) and %llu flush(es) in all\n",
           STREAM, (unsigned long long)(after.syncs - before.syncs),
           (unsigned long long)(after.flushes - before.flushes));
    assert_true(after.syncs > before.syncs);
    assert_true(after.flushes - before.flushes <= 5);
    /* Written again after the commit: through the journal now. */
    for (uint32_t i = 3; i < STREAM; i += 11)
        put(img, i, 200000 + i);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(vd_image_open(h, KEY, &o, &img), VD_OK);
    for (uint32_t i = 0; i < STREAM; i++)
        expect(img, i, i % 11 == 3 ? 200000 + i : i % 7 ? i + 1 : 100000 + i, "reopened");
    expect(img, STREAM, 0, "reopened, never written");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

/* A crash after spills, before any commit names them: the image as the
 * host holds it opens at the last commit (the stream, never synced,
 * reads as zeros) and reports that the session did not end cleanly.
 * The host runs no thread here, so its bytes can be copied while the
 * handle is open. */
/* Blocks [lbn, lbn + n) with ids base + block number, in one write. */
static void put_run(vd_image *img, uint64_t lbn, uint32_t n, uint32_t base)
{
    uint8_t *b = malloc((size_t)n * BS);
    assert_non_null(b);
    for (uint32_t k = 0; k < n; k++)
        vt_block_fill(b + (size_t)k * BS, lbn + k, base + (uint32_t)(lbn + k));
    VT_EXPECT_ERR(vd_image_write(img, lbn, n, b), VD_OK, "write %u at %llu", n,
                  (unsigned long long)lbn);
    free(b);
}

/* run: blocks per write (1, or a run long enough to go direct). */
static void crash_reported(uint32_t run)
{
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_host serial = *h;
    serial.job_start = NULL;
    serial.job_wait = NULL;
    vd_create_opts c = {.nblocks = 8192};
    vd_open_opts o = {.cache_bytes = 1 << 20};
    vd_image *img;
    assert_int_equal(vd_image_create(&serial, KEY, &c, &o, &img), VD_OK);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(vd_image_open(&serial, KEY, &o, &img), VD_OK);
    assert_false(info_of(img).unclean);
    const uint64_t epoch = info_of(img).epoch;
    for (uint32_t i = 0; i < 1000; i += run)
        put_run(img, i, run, 1);
    assert_int_equal(info_of(img).epoch, epoch); /* spilled, not committed */
    if (run > 1)
        assert_int_equal(info_of(img).blocks_direct, 1000);
    uint64_t size;
    const uint8_t *live = vd_host_mem_data(h, &size);
    vd_host *hc = vt_host_mem_from(live, size);
    vd_image *ic;
    const vd_open_opts ro = {.read_only = 1};
    assert_int_equal(vd_image_open(hc, KEY, &ro, &ic), VD_OK);
    assert_true(info_of(ic).unclean);
    for (uint32_t i = 0; i < 1000; i++)
        expect(ic, i, 0, "after a crash before the sync");
    VT_EXPECT_ERR(vd_image_close(ic), VD_OK, "close");
    vd_host_mem_free(hc);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

static void spill_then_crash_is_reported_and_reads_as_the_last_commit(void **state)
{
    (void)state;
    crash_reported(1);
}

static void direct_then_crash_is_reported_and_reads_as_the_last_commit(void **state)
{
    (void)state;
    crash_reported(100);
}

/* ---- direct writes ---------------------------------------------------------- */

/* A host whose background jobs run only when the library waits for them:
 * the writes of a spill stay in flight until joined, so a read that did
 * not join them first would read what the disk held before (and fail). */
typedef struct lazy {
    vt_passthru pt; /* first: the callbacks' ctx */
    void (*fn)(void *arg);
    void *arg;
    unsigned started;
} lazy;

static uint64_t lazy_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    lazy *l = ctx;
    assert_null(l->fn); /* the library joins one before starting the next */
    l->fn = fn;
    l->arg = arg;
    l->started++;
    return 1;
}

static void lazy_wait(void *ctx, uint64_t ticket)
{
    lazy *l = ctx;
    (void)ticket;
    void (*fn)(void *arg) = l->fn;
    l->fn = NULL;
    if (fn)
        fn(l->arg);
}

#define DSTREAM 3000u
#define DRUN 100u

/* What block b of the direct test holds after its writes. */
static uint32_t direct_id(uint32_t b)
{
    if (b >= 1200 && b < 1264)
        return 200000 + b;
    if (b % 300 >= 50 && b % 300 < 114 && b + 64 - b % 300 + 50 <= DSTREAM)
        return 100000 + b;
    return 1 + b;
}

static void expect_all(vd_image *img, const char *when)
{
    uint8_t *b = malloc((size_t)DSTREAM * BS);
    assert_non_null(b);
    VT_EXPECT_ERR(vd_image_read(img, 0, DSTREAM, b), VD_OK, "read all %s", when);
    for (uint32_t i = 0; i < DSTREAM; i++) {
        int64_t got = vt_block_identify(b + (size_t)i * BS, i);
        if (got != (int64_t)direct_id(i)) {
            print_error("block %u %s: holds %lld, wrote %u\n", i, when, (long long)got,
                        direct_id(i));
            fail();
        }
    }
    free(b);
}

static void direct_runs_read_back_in_flight_and_after_the_sync(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    lazy l;
    memset(&l, 0, sizeof l);
    vt_passthru_init(&l.pt, h, 1);
    l.pt.host.job_start = lazy_start;
    l.pt.host.job_wait = lazy_wait;
    vd_create_opts c = {.nblocks = 8192};
    vd_open_opts o = {.cache_bytes = 1 << 20}; /* 112 dirty blocks */
    vd_image *img;
    assert_int_equal(vd_image_create(&l.pt.host, KEY, &c, &o, &img), VD_OK);
    const vd_image_info before = info_of(img);
    for (uint32_t r = 0; r < DSTREAM / DRUN; r++) {
        put_run(img, r * DRUN, DRUN, 1);
        /* Its writes are still in flight: the read joins them. */
        expect(img, r * DRUN + DRUN - 1, r * DRUN + DRUN, "right after its write");
    }
    const vd_image_info during = info_of(img);
    assert_int_equal(during.syncs, before.syncs);
    assert_int_equal(during.blocks_direct - before.blocks_direct, DSTREAM);
    assert_true(l.started >= DSTREAM / DRUN);
    /* Written again before any commit (still new to it), in runs across
     * the earlier ones. */
    for (uint32_t b = 50; b + 64 <= DSTREAM; b += 300)
        put_run(img, b, 64, 100000);
    /* A block the cache holds dirty inside a direct run: the cache's copy
     * takes the run's content, the rest goes direct. */
    put(img, 1234, 7777);
    const uint64_t direct_before_mix = info_of(img).blocks_direct;
    put_run(img, 1200, 64, 200000);
    assert_int_equal(info_of(img).blocks_direct - direct_before_mix, 63);
    expect_all(img, "before the sync");
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    assert_true(info_of(img).syncs > before.syncs);
    expect_all(img, "after the sync");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(vd_image_open(&l.pt.host, KEY, &o, &img), VD_OK);
    expect_all(img, "reopened");
    expect(img, DSTREAM, 0, "reopened, never written");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

/* A disk that fills up under direct writes (the k-th write from there on
 * fails: the clean flag's record, or the data in flight): the call that
 * finds out reports VD_ERR_NOSPC, every later one VD_ERR_FAILED, and the
 * image still holds exactly its last commit. */
static void direct_enospc(uint64_t k)
{
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = 8192};
    vd_open_opts o = {.cache_bytes = 1 << 20};
    vd_image *img;
    assert_int_equal(vd_image_create(h, KEY, &c, &o, &img), VD_OK);
    put_run(img, 0, 100, 1);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_fault *f = vd_fault_new(h);
    assert_non_null(f);
    assert_int_equal(vd_image_open(vd_fault_host(f), KEY, &o, &img), VD_OK);
    assert_int_equal(vd_fault_fail(f, VD_FAULT_WRITE, vd_fault_calls(f, VD_FAULT_WRITE) + k,
                                   VD_FAULT_FOREVER, -ENOSPC),
                     VD_OK);
    uint8_t *b = malloc((size_t)100 * BS);
    assert_non_null(b);
    for (uint32_t i = 0; i < 100; i++)
        vt_block_fill(b + (size_t)i * BS, 200 + i, 9);
    vd_err e = vd_image_write(img, 200, 100, b);
    if (e == VD_OK)
        e = vd_image_sync(img);
    assert_int_equal(e, VD_ERR_NOSPC);
    assert_int_equal(vd_image_sync(img), VD_ERR_FAILED);
    assert_int_equal(vd_image_read(img, 0, 1, b), VD_ERR_FAILED);
    assert_int_equal(vd_image_close(img), VD_ERR_FAILED);
    free(b);
    vd_fault_free(f);
    const vd_open_opts ro = {.read_only = 1};
    assert_int_equal(vd_image_open(h, KEY, &ro, &img), VD_OK);
    for (uint32_t i = 0; i < 100; i++)
        expect(img, i, 1 + i, "after the failed session");
    for (uint32_t i = 200; i < 300; i++)
        expect(img, i, 0, "after the failed session, never committed");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

static void direct_enospc_at_the_clean_flag(void **state)
{
    (void)state;
    direct_enospc(1);
}

static void direct_enospc_in_flight(void **state)
{
    (void)state;
    direct_enospc(2);
}

/* ---- crash states ---------------------------------------------------------- */

#define NB 2048u
#define MAXSYNC 48u

typedef struct srun {
    vt_hist *hist;
    vt_block_memo *memo;
    uint32_t next_id;
    uint64_t rng;
    size_t sync_end[MAXSYNC];   /* log ops when each sync returned */
    uint64_t sync_start[MAXSYNC]; /* vt_hist_seq when it began */
    uint32_t nsync;
    uint8_t *buf;
    uint64_t states;
    uint32_t run; /* new blocks come in runs of up to this many (0: one by one) */
    int log;      /* small syncs of rewritten blocks: log commits */
} srun;

static const vd_open_opts *run_opts(int ro)
{
    /* 1 MiB of cache (112 dirty blocks) over a tree of fan-out 16: the
     * nodes held for spilled data reach their bound (32) every 512 new
     * blocks, so a stream also commits on its own. */
    static const vd_open_opts rw = {.cache_bytes = 1 << 20};
    static const vd_open_opts rdo = {.cache_bytes = 1 << 20, .read_only = 1};
    return ro ? &rdo : &rw;
}

static void s_put(srun *w, vd_image *img, uint64_t lbn)
{
    uint32_t id = w->next_id++;
    vt_hist_record(w->hist, lbn, id); /* before: the write may spill or commit */
    put(img, lbn, id);
}

static void s_sync(srun *w, vd_image *img, vd_rec *rec)
{
    assert_true(w->nsync < MAXSYNC);
    w->sync_start[w->nsync] = vt_hist_seq(w->hist);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync %u", w->nsync);
    w->sync_end[w->nsync++] = vd_rec_op_count(rec);
}

/* New blocks lbn..lbn+n-1 in one write. */
static void s_put_run(srun *w, vd_image *img, uint64_t lbn, uint32_t n)
{
    uint8_t *b = malloc((size_t)n * BS);
    assert_non_null(b);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t id = w->next_id++;
        vt_hist_record(w->hist, lbn + k, id);
        vt_block_fill(b + (size_t)k * BS, lbn + k, id);
    }
    VT_EXPECT_ERR(vd_image_write(img, lbn, n, b), VD_OK, "write %u at %llu", n,
                  (unsigned long long)lbn);
    free(b);
}

/* New blocks in runs, some of them written again, an occasional rewrite
 * of older blocks, syncs between; the last phase is never synced. */
static void s_workload(srun *w, vd_image *img, vd_rec *rec)
{
    uint64_t next = 0; /* the next never-written block */
    for (unsigned phase = 0; phase < 6; phase++) {
        uint32_t n = 300 + (uint32_t)(vt_rand(&w->rng) % 500);
        for (uint32_t k = 0; k < n && next < NB; k++) {
            if (w->run) { /* a run of new blocks, in one write */
                uint32_t r = 1 + (uint32_t)(vt_rand(&w->rng) % w->run);
                r = next + r > NB ? (uint32_t)(NB - next) : r;
                s_put_run(w, img, next, r);
                next += r;
                k += r - 1;
                continue;
            }
            s_put(w, img, next++);
            if (vt_rand(&w->rng) % 8 == 0) /* a recent block again */
                s_put(w, img, next - 1 - vt_rand(&w->rng) % (next < 64 ? next : 64));
            if (next > 200 && vt_rand(&w->rng) % 16 == 0) /* an old one */
                s_put(w, img, vt_rand(&w->rng) % (next - 100));
        }
        if (phase < 5)
            s_sync(w, img, rec);
    }
}

/* Syncs of a few rewritten blocks each (log commits, drains when the log
 * of 4 blocks or the nodes it may hold fill up), a run of new blocks in
 * the middle (spilled, so the next sync drains the log with it); the last
 * writes are never synced. */
static void s_workload_log(srun *w, vd_image *img, vd_rec *rec)
{
    uint64_t next = 0;
    for (; next < 600; next++)
        s_put(w, img, next);
    s_sync(w, img, rec);
    for (unsigned k = 0; k < 36; k++) {
        uint32_t n = 1 + (uint32_t)(vt_rand(&w->rng) % 9);
        for (uint32_t i = 0; i < n; i++)
            s_put(w, img, vt_rand(&w->rng) % next);
        if (k == 20)
            for (uint32_t i = 0; i < 400; i++)
                s_put(w, img, next++);
        if (k < 35)
            s_sync(w, img, rec);
    }
}

static void s_check(srun *w, vd_host *h, size_t prefix, int writable)
{
    int s = -1; /* the last sync that completed before the crash */
    for (uint32_t k = 0; k < w->nsync; k++)
        if (w->sync_end[k] <= prefix)
            s = (int)k;
    vd_image *img = NULL;
    vd_err e = vd_image_open(h, KEY, run_opts(!writable), &img);
    if (e != VD_OK) {
        print_error("crash after op %zu (%s): open: %s\n", prefix,
                    writable ? "writable" : "read-only", vd_strerror(e));
        fail();
    }
    e = vd_image_read(img, 0, NB, w->buf);
    if (e != VD_OK) {
        print_error("crash after op %zu (%s): read: %s\n", prefix,
                    writable ? "writable" : "read-only", vd_strerror(e));
        fail();
    }
    for (uint32_t b = 0; b < NB; b++) {
        int64_t id = vt_block_memo_identify(w->memo, w->buf + (size_t)b * BS, b);
        uint64_t start = s < 0 ? 0 : w->sync_start[s];
        if (id < 0 || !vt_hist_allowed(w->hist, start, b, (uint32_t)id)) {
            print_error("crash after op %zu: block %u holds %lld, not allowed after "
                        "sync %d\n", prefix, b, (long long)id, s);
            fail();
        }
    }
    if (writable) { /* and it takes a write and a sync */
        uint8_t blk[BS];
        vt_block_fill(blk, 0, 0xfffffff0u);
        VT_EXPECT_ERR(vd_image_write(img, 0, 1, blk), VD_OK, "write after recovery");
        VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync after recovery");
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    w->states++;
}

static void s_prefix(void *ctx, vd_host *h, size_t p, unsigned subset)
{
    (void)subset;
    srun *w = ctx;
    s_check(w, h, p, 0);
}

static void s_subset(void *ctx, vd_host *h, size_t end, unsigned m)
{
    (void)m;
    s_check(ctx, h, end, 0);
}

static void crash_walk(uint32_t journal_blocks, uint32_t run, int log)
{
    srun *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->run = run;
    w->log = log;
    w->rng = vt_seed_from_env("VD_SPILL_SEED", 0x5eed5u);
    printf("%s crash states, journal of %u blocks, runs of up to %u: seed %llu "
           "(VD_SPILL_SEED reruns)\n", log ? "log" : "spill", journal_blocks, run,
           (unsigned long long)w->rng);
    w->next_id = 1;
    w->hist = vt_hist_new(NB);
    w->memo = vt_block_memo_new(NB);
    w->buf = malloc((size_t)NB * BS);
    assert_non_null(w->memo);
    assert_non_null(w->buf);
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_create_opts c = {.nblocks = NB, .fanout = 16, .journal_blocks = journal_blocks,
                        .log_blocks = log ? 4 : 0};
    vd_image *img;
    assert_int_equal(vd_image_create(vd_rec_host(rec), KEY, &c, run_opts(0), &img), VD_OK);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    if (log)
        s_workload_log(w, img, rec);
    else
        s_workload(w, img, rec);
    /* The crash: the handle is dropped without a close (its last phase
     * never synced), so nothing after the log's end reaches the host. */
    vd_image_info i = info_of(img);
    size_t nops = vd_rec_op_count(rec);
    printf("  %zu log ops, %zu flushes, %llu commits for %u syncs, %llu blocks direct, "
           "%llu log commits\n",
           nops, vd_rec_flush_count(rec), (unsigned long long)i.syncs, w->nsync,
           (unsigned long long)i.blocks_direct, (unsigned long long)i.log_commits);
    if (log) /* most syncs logged, and drains (rounds of their own) between */
        assert_true(i.log_commits >= w->nsync / 2 && i.syncs > i.log_commits + 3);
    if (run >= 64) /* most runs were long enough to bypass the cache */
        assert_true(i.blocks_direct > NB / 4);
    vt_replay_prefixes(rec, s_prefix, w);
    uint64_t mrng = w->rng ^ 0x9e37u;
    vt_replay_epoch_subsets(rec, 3, &mrng, s_subset, w);
    /* Writable opens (recovery of an interrupted commit) on a sample. */
    const size_t stride = nops / 97 + 1;
    for (size_t p = 0; p <= nops; p += stride) {
        vd_host *hv;
        assert_int_equal(vd_rec_crash_view(rec, p, NULL, 0, 0, &hv), VD_OK);
        s_check(w, hv, p, 1);
        vd_rec_view_free(hv);
    }
    printf("  %llu crash states checked\n", (unsigned long long)w->states);
    (void)vd_image_close(img); /* after the walk: it writes the last phase */
    vd_rec_free(rec);
    vt_hist_free(w->hist);
    vt_block_memo_free(w->memo);
    free(w->buf);
    free(w);
}

/* One test per walk, so each has its own name in the output. */
#define WALK(name, journal, run, log)                                                     \
    static void name(void **state)                                                      \
    {                                                                                   \
        (void)state;                                                                    \
        crash_walk(journal, run, log);                                                  \
    }

/* A small journal: the commits that take the spilled data's nodes go in
 * place (IN_PROGRESS record, recovery by a writable open). A journal that
 * holds them: one-flush commits, whose record must come after a flush of
 * the spilled data its nodes name (its digest does not cover that data). */
WALK(spill_crash_states_with_commits_in_place, 16, 0, 0)
WALK(spill_crash_states_with_one_flush_commits, 128, 0, 0)
/* The same with the new blocks in runs of up to 100 blocks, most of them
 * long enough to go straight to their places (direct writes). */
WALK(direct_crash_states_with_commits_in_place, 16, 100, 0)
WALK(direct_crash_states_with_one_flush_commits, 128, 100, 0)
/* Small syncs: log commits. A journal of 16 blocks holds the drain of 7
 * level-1 nodes, so drains come for the nodes as often as for the log's
 * 4 blocks; one of 128, for the log. */
WALK(log_crash_states_small_journal, 16, 0, 1)
WALK(log_crash_states_large_journal, 128, 0, 1)

/* ---- log commits ----------------------------------------------------------- */

#define LNB 2048u

typedef struct lmodel {
    uint32_t id[LNB];
    uint32_t next;
    uint64_t rng;
    uint32_t last[3]; /* the blocks of the last sync */
} lmodel;

static vd_image *log_image(vd_host *h, lmodel *m)
{
    vd_create_opts c = {.nblocks = LNB, .fanout = 16, .journal_blocks = 64, .log_blocks = 5};
    vd_image *img;
    assert_int_equal(vd_image_create(h, KEY, &c, NULL, &img), VD_OK);
    memset(m, 0, sizeof *m);
    m->next = 1;
    m->rng = 0x106;
    for (uint32_t b = 0; b < 600; b++)
        put(img, b, m->id[b] = m->next++);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    assert_int_equal(info_of(img).log_len, 0); /* 600 blocks: a round of nodes */
    return img;
}

/* n syncs of 3 rewritten blocks each. */
static void log_syncs(vd_image *img, lmodel *m, unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        for (int i = 0; i < 3; i++) {
            uint32_t b = m->last[i] = (uint32_t)(vt_rand(&m->rng) % 600);
            put(img, b, m->id[b] = m->next++);
        }
        VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync %u", k);
    }
}

static void log_expect(vd_image *img, const lmodel *m, const char *when)
{
    for (uint32_t b = 0; b < LNB; b++)
        expect(img, b, m->id[b], when);
}

static void log_commits_read_back_across_reopens_and_drains(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    lmodel *m = malloc(sizeof *m);
    assert_non_null(m);
    vd_image *img = log_image(h, m);
    const vd_image_info i0 = info_of(img);
    log_syncs(img, m, 30);
    vd_image_info i = info_of(img);
    /* 30 syncs: log commits, the log of 5 blocks drained at least 5 times
     * (a round each), never more than 5 blocks named. */
    assert_true(i.log_commits >= 25);
    assert_true(i.syncs - i0.syncs >= i.log_commits + 5);
    assert_true(i.log_len >= 1 && i.log_len <= 5);
    log_expect(img, m, "in the session");

    /* A read-only open of the image as it is: the same log, the same
     * contents (the log's versions over the nodes on disk). */
    uint64_t size;
    uint8_t *bytes = vt_host_mem_copy(h, &size);
    vd_host *hc = vt_host_mem_from(bytes, size);
    const vd_open_opts ro = {.read_only = 1};
    vd_image *ic;
    assert_int_equal(vd_image_open(hc, KEY, &ro, &ic), VD_OK);
    assert_int_equal(info_of(ic).log_len, i.log_len);
    log_expect(ic, m, "read-only, over the log");
    VT_EXPECT_ERR(vd_image_close(ic), VD_OK, "close");
    vd_host_mem_free(hc);
    free(bytes);

    /* Closed and opened writable: the log goes on where it was. */
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(vd_image_open(h, KEY, NULL, &img), VD_OK);
    assert_int_equal(info_of(img).log_len, i.log_len);
    log_expect(img, m, "reopened");
    log_syncs(img, m, 7);
    assert_true(info_of(img).log_commits >= 5);
    log_expect(img, m, "after more syncs");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(vd_image_open(h, KEY, &ro, &img), VD_OK);
    log_expect(img, m, "reopened read-only");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
    free(m);
}

/* Log block k of the image in bytes. */
static uint8_t *log_block(uint8_t *bytes, const vd_image_info *i, uint32_t k)
{
    /* docs/FORMAT.md §4: the log follows the two journal slots. */
    return bytes + (4 + 2 * (uint64_t)i->journal_blocks + k) * BS;
}

static vd_err open_bytes(const uint8_t *bytes, uint64_t size, vd_image_info *info)
{
    vd_host *h = vt_host_mem_from(bytes, size);
    const vd_open_opts ro = {.read_only = 1};
    vd_image *img = NULL;
    vd_err e = vd_image_open(h, KEY, &ro, &img);
    if (e == VD_OK) {
        *info = info_of(img);
        uint8_t *buf = malloc((size_t)LNB * BS);
        assert_non_null(buf);
        e = vd_image_read(img, 0, LNB, buf);
        free(buf);
        VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    }
    vd_host_mem_free(h);
    return e;
}

static void log_blocks_changed_or_replayed_are_refused(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    lmodel *m = malloc(sizeof *m);
    assert_non_null(m);
    vd_image *img = log_image(h, m);
    log_syncs(img, m, 2);
    const vd_image_info ia = info_of(img);
    assert_int_equal(ia.log_len, 2);
    uint64_t size;
    uint8_t *a = vt_host_mem_copy(h, &size);
    /* Four more fill the log (5 blocks); the next drains it and logs
     * anew: a log of 2 again, other blocks, other versions. */
    log_syncs(img, m, 5);
    const vd_image_info ib = info_of(img);
    assert_int_equal(ib.log_len, 2);
    uint8_t *b = vt_host_mem_copy(h, &size); /* the session still open */
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    uint8_t *c = vt_host_mem_copy(h, &size); /* closed: its record settled */
    vd_host_mem_free(h);
    vd_image_info got;
    assert_int_equal(open_bytes(b, size, &got), VD_OK);
    assert_int_equal(got.epoch, ib.epoch);
    assert_int_equal(open_bytes(c, size, &got), VD_OK);
    uint8_t *x = malloc(size);
    assert_non_null(x);
    for (uint32_t k = 0; k < 2; k++) {
        /* Block k of the older log: the chain no longer ends at the head
         * the record names. */
        memcpy(x, c, size);
        assert_memory_not_equal(log_block(a, &ia, k), log_block(c, &ib, k), BS);
        memcpy(log_block(x, &ib, k), log_block(a, &ia, k), BS);
        VT_EXPECT_ERR(open_bytes(x, size, &got), VD_ERR_AUTH, "log block %u replayed", k);
        /* One bit of an entry, after the close. */
        memcpy(x, c, size);
        log_block(x, &ib, k)[40] ^= 1;
        VT_EXPECT_ERR(open_bytes(x, size, &got), VD_ERR_AUTH, "log block %u flipped", k);
        /* The same before the close: the newest record is the log commit
         * of block 1, whose digest covers it. That block changed is a torn
         * log commit, and the record before it is in force (one commit
         * back, which a freshness anchor would report); block 0 is older,
         * and named by both records. */
        memcpy(x, b, size);
        log_block(x, &ib, k)[40] ^= 1;
        if (k == 0) {
            VT_EXPECT_ERR(open_bytes(x, size, &got), VD_ERR_AUTH, "log block 0 flipped");
            continue;
        }
        /* A real torn commit never put its blocks in place (that comes
         * after its flush); these are: the host changed them too, and
         * their reads fail. */
        vd_host *hx = vt_host_mem_from(x, size);
        const vd_open_opts ro = {.read_only = 1};
        vd_image *ix;
        VT_EXPECT_ERR(vd_image_open(hx, KEY, &ro, &ix), VD_OK, "log block 1 flipped");
        assert_int_equal(info_of(ix).epoch, ib.epoch - 1);
        assert_int_equal(info_of(ix).log_len, 1);
        uint8_t blk[BS];
        for (uint32_t l = 0; l < LNB; l++) {
            int last = l == m->last[0] || l == m->last[1] || l == m->last[2];
            VT_EXPECT_ERR(vd_image_read(ix, l, 1, blk), last ? VD_ERR_AUTH : VD_OK,
                          "block %u, one commit back", l);
            if (!last)
                assert_int_equal(vt_block_identify(blk, l), (int64_t)m->id[l]);
        }
        VT_EXPECT_ERR(vd_image_close(ix), VD_OK, "close");
        vd_host_mem_free(hx);
    }
    free(c);
    free(x);
    free(a);
    free(b);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spill_streams_new_blocks_without_a_commit),
        cmocka_unit_test(spill_then_crash_is_reported_and_reads_as_the_last_commit),
        cmocka_unit_test(spill_crash_states_with_commits_in_place),
        cmocka_unit_test(spill_crash_states_with_one_flush_commits),
        cmocka_unit_test(direct_runs_read_back_in_flight_and_after_the_sync),
        cmocka_unit_test(direct_then_crash_is_reported_and_reads_as_the_last_commit),
        cmocka_unit_test(direct_enospc_at_the_clean_flag),
        cmocka_unit_test(direct_enospc_in_flight),
        cmocka_unit_test(direct_crash_states_with_commits_in_place),
        cmocka_unit_test(direct_crash_states_with_one_flush_commits),
        cmocka_unit_test(log_commits_read_back_across_reopens_and_drains),
        cmocka_unit_test(log_blocks_changed_or_replayed_are_refused),
        cmocka_unit_test(log_crash_states_small_journal),
        cmocka_unit_test(log_crash_states_large_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
