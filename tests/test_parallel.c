/* The parallel paths of the block device (issue 16): batches of blocks
 * sealed at commit and opened on large reads through vd_host.run_jobs.
 *  - the core hands batches to run_jobs, and what it writes that way reads
 *    back the same with and without a run_jobs (both directions);
 *  - a tampered block inside a batch read still fails, and is the one
 *    vd_image_last_failure names;
 *  - a key rotation reads its blocks with large host reads and reseals
 *    them in parallel batches (failed before: one run of at most 64 blocks
 *    per read, opened one by one), its rounds written on the host's thread
 *    (failed before: serial), and a changed block stops it;
 *  - several threads write and read one image while another syncs it, with
 *    a cache small enough that implicit commits run all the time: every
 *    read returns a version some writer wrote to that block, never one
 *    older than what the reader's own region held, and everything matches
 *    the writers' models after joining and after a reopen.
 * Run under ThreadSanitizer by scripts/test.sh. Seeds are printed;
 * VD_PARALLEL_SEED=<n> reruns. */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "crew.h"
#include "image_format.h"
#include "passthru.h"
#include "record.h"
#include "testkit.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

#define OK(x) VT_EXPECT_ERR((x), VD_OK, "%s", #x)

static const uint8_t KEY[VD_KEY_BYTES] = "parallel-test-key-0123456789abc";

/* A memory host whose run_jobs counts the batches handed to it, and whose
 * job_start counts the commits left in flight. */
typedef struct counting {
    vt_passthru pt; /* first: the callbacks' ctx */
    pthread_mutex_t mu;
    unsigned calls;
    size_t most;
    unsigned started;
    size_t most_read; /* bytes of the largest read */
} counting;

static int c_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    counting *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (len > c->most_read)
        c->most_read = len;
    pthread_mutex_unlock(&c->mu);
    return c->pt.inner->read_at(c->pt.inner->ctx, off, buf, len, done);
}
static void c_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    counting *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->calls++;
    if (n > c->most)
        c->most = n;
    pthread_mutex_unlock(&c->mu);
    c->pt.inner->run_jobs(c->pt.inner->ctx, n, fn, arg);
}

static uint64_t c_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    counting *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->started++;
    pthread_mutex_unlock(&c->mu);
    return c->pt.inner->job_start(c->pt.inner->ctx, fn, arg);
}
static void c_job_wait(void *ctx, uint64_t ticket)
{
    counting *c = ctx;
    c->pt.inner->job_wait(c->pt.inner->ctx, ticket);
}

static void counting_init(counting *c, vd_host *inner, int jobs)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(pthread_mutex_init(&c->mu, NULL), 0);
    vt_passthru_init(&c->pt, inner, 0);
    c->pt.host.read_at = c_read;
    c->pt.host.run_jobs = jobs ? c_run_jobs : NULL;
    c->pt.host.job_start = jobs ? c_job_start : NULL;
    c->pt.host.job_wait = jobs ? c_job_wait : NULL;
}

static unsigned counting_take(counting *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = c->calls;
    c->calls = 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

#define NBLK 2048u
#define RUN 512u

static uint8_t *blocks_fill(uint64_t first, uint32_t count, uint32_t id)
{
    uint8_t *b = malloc((size_t)count * VD_BLOCK_SIZE);
    assert_non_null(b);
    for (uint32_t i = 0; i < count; i++)
        vt_block_fill(b + (size_t)i * VD_BLOCK_SIZE, first + i, id);
    return b;
}

/* What the parallel path writes, the serial one reads, and back. */
static void test_batches_go_to_run_jobs_and_read_back_alike(void **state)
{
    (void)state;
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    assert_non_null(mem->run_jobs);
    counting par, ser;
    counting_init(&par, mem, 1);
    counting_init(&ser, mem, 0);
    vd_create_opts co = {.nblocks = NBLK};
    vd_image *img = NULL;
    OK(vd_image_create(&par.pt.host, KEY, &co, NULL, &img));
    uint8_t *a = blocks_fill(0, RUN, 1), *b = blocks_fill(RUN, RUN, 2);
    uint8_t *got = malloc((size_t)RUN * VD_BLOCK_SIZE);
    assert_non_null(got);
    (void)counting_take(&par);
    OK(vd_image_write(img, 0, RUN, a));
    OK(vd_image_sync(img));
    /* Sealed in parallel: at the write (new blocks go straight to their
     * places, spill.c) or by the commit. */
    assert_true(counting_take(&par) > 0);
    assert_true(par.most >= 2);
    OK(vd_image_close(img));

    /* Written in parallel, read serially, then written serially. */
    OK(vd_image_open(&ser.pt.host, KEY, NULL, &img));
    OK(vd_image_read(img, 0, RUN, got));
    assert_memory_equal(got, a, (size_t)RUN * VD_BLOCK_SIZE);
    OK(vd_image_write(img, RUN, RUN, b));
    OK(vd_image_close(img));

    /* Read in parallel: one large read opens its runs as batches. */
    OK(vd_image_open(&par.pt.host, KEY, NULL, &img));
    (void)counting_take(&par);
    OK(vd_image_read(img, RUN, RUN, got));
    assert_true(counting_take(&par) > 0);
    assert_memory_equal(got, b, (size_t)RUN * VD_BLOCK_SIZE);
    OK(vd_image_read(img, 0, RUN, got));
    assert_memory_equal(got, a, (size_t)RUN * VD_BLOCK_SIZE);
    vd_image_info info;
    OK(vd_image_info_get(img, &info));
    assert_true(info.blocks_verified >= 2 * RUN); /* batches count too */
    OK(vd_image_close(img));
    free(a);
    free(b);
    free(got);
    pthread_mutex_destroy(&par.mu);
    pthread_mutex_destroy(&ser.mu);
    vd_host_mem_free(mem);
}

/* A changed block inside a batch read fails the read, and the failure
 * names that block; its neighbours in other reads still verify. */
static void test_batch_read_catches_one_changed_block(void **state)
{
    (void)state;
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    vd_create_opts co = {.nblocks = NBLK};
    vd_image *img = NULL;
    OK(vd_image_create(mem, KEY, &co, NULL, &img));
    uint8_t *a = blocks_fill(0, 256, 7);
    OK(vd_image_write(img, 0, 256, a));
    OK(vd_image_close(img));

    uint64_t size = 0;
    uint8_t *bytes = vd_host_mem_data(mem, &size);
    vd_header h;
    assert_int_equal(vd_header_decode(&h, bytes), 0);
    bytes[(h.data_start + 100) * VDF_BLOCK + 1234] ^= 0x10;

    OK(vd_image_open(mem, KEY, NULL, &img));
    uint8_t *got = malloc((size_t)64 * VD_BLOCK_SIZE);
    assert_non_null(got);
    VT_EXPECT_ERR(vd_image_read(img, 64, 64, got), VD_ERR_AUTH, "batch over lbn 100");
    for (size_t i = 0; i < (size_t)64 * VD_BLOCK_SIZE; i++)
        assert_int_equal(got[i], 0); /* nothing of a failed read is kept */
    vd_bad_range bad;
    OK(vd_image_last_failure(img, &bad));
    assert_int_equal(bad.level, 0);
    assert_int_equal(bad.first_lbn, 100);
    OK(vd_image_read(img, 0, 64, got));
    assert_memory_equal(got, a, (size_t)64 * VD_BLOCK_SIZE);
    OK(vd_image_read(img, 128, 64, got));
    assert_memory_equal(got, a + (size_t)128 * VD_BLOCK_SIZE, (size_t)64 * VD_BLOCK_SIZE);
    OK(vd_image_close(img));
    free(a);
    free(got);
    vd_host_mem_free(mem);
}

/* ---- a key rotation's reads ----------------------------------------------- */

static vd_unlock keyfile_unlock(const uint8_t *k)
{
    return (vd_unlock){VD_SLOT_KEYFILE, k, VD_KEYFILE_BYTES};
}

static const uint8_t K1[VD_KEYFILE_BYTES] = "parallel-rekey-old-key-file-0001";
static const uint8_t K2[VD_KEYFILE_BYTES] = "parallel-rekey-new-key-file-0002";

/* NBLK blocks written with id, and a key-file slot for K1. */
static void rotation_image(vd_host *h, uint32_t id, uint8_t **content)
{
    vd_create_opts co = {.nblocks = NBLK};
    vd_image *img = NULL;
    OK(vd_image_create(h, KEY, &co, NULL, &img));
    vd_unlock u = keyfile_unlock(K1);
    OK(vd_keyslot_add(img, &u, NULL, NULL));
    *content = blocks_fill(0, NBLK, id);
    OK(vd_image_write(img, 0, NBLK, *content));
    OK(vd_image_close(img));
}

/* Rotate to a K2 slot, unlocking with k (K1; K2 resumes a rotation). */
static vd_err rotate(vd_host *h, const uint8_t *k, vd_rekey_info *info)
{
    vd_unlock u = keyfile_unlock(k);
    vd_rekey_slot slot = {keyfile_unlock(K2), NULL};
    vd_rekey_opts o = {.slots = &slot, .nslots = 1};
    return vd_image_rekey(h, &u, &o, info);
}

static void test_rotation_reads_in_parallel_batches(void **state)
{
    (void)state;
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    counting par;
    counting_init(&par, mem, 1);
    uint8_t *a;
    rotation_image(&par.pt.host, 3, &a);
    par.most_read = 0;
    par.started = 0;
    (void)counting_take(&par);
    vd_rekey_info info;
    OK(rotate(&par.pt.host, K1, &info));
    assert_int_equal(info.blocks, NBLK);
    /* Its rounds were written on the host's thread while the next blocks
     * were resealed (failed before: a rotation's rounds stayed serial). */
    assert_true(par.started > 0);
    /* Every chunk of 256 blocks is read with large reads and resealed
     * (opened under the old key and sealed under the new one in the same
     * job) as one parallel batch; the round writes that ciphertext, so
     * there is no separate sealing batch. */
    unsigned calls = counting_take(&par);
    if (calls < NBLK / 256 || par.most_read < (size_t)256 * VD_BLOCK_SIZE) {
        fprintf(stderr, "rotation: %u run_jobs calls, largest read %zu bytes\n", calls,
                par.most_read);
        fail();
    }
    vd_image *img = NULL;
    vd_unlock u2 = keyfile_unlock(K2);
    OK(vd_image_open_unlock(&par.pt.host, &u2, NULL, &img));
    uint8_t *got = malloc((size_t)NBLK * VD_BLOCK_SIZE);
    assert_non_null(got);
    OK(vd_image_read(img, 0, NBLK, got));
    assert_memory_equal(got, a, (size_t)NBLK * VD_BLOCK_SIZE);
    OK(vd_image_close(img));
    free(got);
    free(a);
    pthread_mutex_destroy(&par.mu);
    vd_host_mem_free(mem);
}

/* A block changed on the host fails the rotation with AUTH (the batch
 * open fails it, and so does the other key), and the image keeps its
 * content: the rotation resumes once the block is restored. */
static void test_rotation_stops_at_a_changed_block(void **state)
{
    (void)state;
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    uint8_t *a;
    rotation_image(mem, 4, &a);
    uint64_t size = 0;
    uint8_t *bytes = vd_host_mem_data(mem, &size);
    vd_header h;
    assert_int_equal(vd_header_decode(&h, bytes), 0);
    bytes[(h.data_start + 1500) * VDF_BLOCK + 77] ^= 0x01;
    vd_rekey_info info;
    VT_EXPECT_ERR(rotate(mem, K1, &info), VD_ERR_AUTH, "rotation over a changed block");
    assert_int_equal(info.slots_written, 1);
    bytes = vd_host_mem_data(mem, &size);
    bytes[(h.data_start + 1500) * VDF_BLOCK + 77] ^= 0x01;
    OK(rotate(mem, K2, &info));
    assert_int_equal(info.resumed, 1);
    vd_image *img = NULL;
    vd_unlock u2 = keyfile_unlock(K2);
    OK(vd_image_open_unlock(mem, &u2, NULL, &img));
    uint8_t *got = malloc((size_t)NBLK * VD_BLOCK_SIZE);
    assert_non_null(got);
    OK(vd_image_read(img, 0, NBLK, got));
    assert_memory_equal(got, a, (size_t)NBLK * VD_BLOCK_SIZE);
    OK(vd_image_close(img));
    free(got);
    free(a);
    vd_host_mem_free(mem);
}

/* ---- threads writing, reading and syncing one image ---------------------- */

#define NWRITERS 2u
#define NREADERS 2u
#define REGION 768u   /* blocks per writer */
#define STABLE 512u   /* blocks written once before the threads start */
#define WOPS 150u
#define MAXRUN 96u

typedef struct shared {
    vt_crew crew; /* the first failure; the writers at work */
    vd_image *img;
} shared;

typedef struct wstate {
    shared *sh;
    unsigned id;
    uint64_t seed;
    uint32_t gen[REGION]; /* the id each block of the region holds */
} wstate;

static uint64_t region_start(unsigned id)
{
    return STABLE + (uint64_t)id * REGION;
}

static void *writer_main(void *p)
{
    wstate *w = p;
    uint64_t rng = w->seed;
    uint8_t *buf = malloc((size_t)MAXRUN * VD_BLOCK_SIZE);
    uint8_t *chk = malloc((size_t)MAXRUN * VD_BLOCK_SIZE);
    for (unsigned op = 0; buf && chk && op < WOPS && !vt_crew_failed(&w->sh->crew);
         op++) {
        uint32_t len = 1 + (uint32_t)(vt_rand(&rng) % MAXRUN);
        uint32_t at = (uint32_t)(vt_rand(&rng) % (REGION - len + 1));
        uint64_t lbn = region_start(w->id) + at;
        if (vt_rand(&rng) % 4 == 0) {
            /* Read back its own region: exactly what it last wrote. */
            vd_err e = vd_image_read(w->sh->img, lbn, len, chk);
            if (e != VD_OK) {
                vt_crew_fail(&w->sh->crew, "writer %u: read %" PRIu64 "+%u: %s", w->id,
                             lbn, len, vd_strerror(e));
                break;
            }
            for (uint32_t i = 0; i < len; i++)
                if (vt_block_identify(chk + (size_t)i * VD_BLOCK_SIZE, lbn + i) !=
                    (int64_t)w->gen[at + i]) {
                    vt_crew_fail(&w->sh->crew,
                                 "writer %u: lbn %" PRIu64 " is not version %u", w->id,
                                 lbn + i, w->gen[at + i]);
                    break;
                }
            continue;
        }
        uint32_t id = 1000u * (w->id + 1) + op + 1;
        for (uint32_t i = 0; i < len; i++)
            vt_block_fill(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i, id);
        vd_err e = vd_image_write(w->sh->img, lbn, len, buf);
        if (e != VD_OK) {
            vt_crew_fail(&w->sh->crew, "writer %u: write %" PRIu64 "+%u: %s", w->id, lbn,
                         len, vd_strerror(e));
            break;
        }
        for (uint32_t i = 0; i < len; i++)
            w->gen[at + i] = id;
    }
    free(buf);
    free(chk);
    vt_crew_writer_done(&w->sh->crew);
    return NULL;
}

typedef struct rstate {
    shared *sh;
    uint64_t seed;
    unsigned reads;
} rstate;

/* Large reads anywhere: the stable part holds exactly its one version;
 * a writer's region holds, block by block, some version of that block
 * (never bytes of another block or a mix). */
static void *reader_main(void *p)
{
    rstate *r = p;
    uint64_t rng = r->seed;
    const uint64_t total = STABLE + (uint64_t)NWRITERS * REGION;
    uint8_t *buf = malloc((size_t)MAXRUN * VD_BLOCK_SIZE);
    while (buf && vt_crew_running(&r->sh->crew)) {
        uint32_t len = 1 + (uint32_t)(vt_rand(&rng) % MAXRUN);
        uint64_t lbn = vt_rand(&rng) % (total - len + 1);
        vd_err e = vd_image_read(r->sh->img, lbn, len, buf);
        if (e != VD_OK) {
            vt_crew_fail(&r->sh->crew, "reader: read %" PRIu64 "+%u: %s", lbn, len,
                         vd_strerror(e));
            break;
        }
        for (uint32_t i = 0; i < len; i++) {
            int64_t id = vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i);
            int ok = lbn + i < STABLE ? id == 1 : id >= 0;
            if (!ok) {
                vt_crew_fail(&r->sh->crew,
                             "reader: lbn %" PRIu64 " holds no version of it (%" PRId64
                             ")",
                             lbn + i, id);
                break;
            }
        }
        r->reads++;
    }
    free(buf);
    return NULL;
}

static void *syncer_main(void *p)
{
    shared *sh = p;
    unsigned n = 0;
    while (vt_crew_running(&sh->crew)) {
        vd_err e = vd_image_sync(sh->img);
        if (e != VD_OK) {
            vt_crew_fail(&sh->crew, "sync %u: %s", n, vd_strerror(e));
            break;
        }
        n++;
    }
    return NULL;
}

static void check_models(vd_image *img, const wstate *ws, const char *when)
{
    uint8_t *buf = malloc((size_t)REGION * VD_BLOCK_SIZE);
    assert_non_null(buf);
    OK(vd_image_read(img, 0, STABLE, buf));
    for (uint32_t i = 0; i < STABLE; i++)
        if (vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, i) != 1)
            fail_msg("%s: stable lbn %u changed", when, i);
    for (unsigned w = 0; w < NWRITERS; w++) {
        OK(vd_image_read(img, region_start(w), REGION, buf));
        for (uint32_t i = 0; i < REGION; i++)
            if (vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, region_start(w) + i) !=
                (int64_t)ws[w].gen[i])
                fail_msg("%s: writer %u lbn %" PRIu64 " is not version %u", when, w,
                         region_start(w) + i, ws[w].gen[i]);
    }
    free(buf);
}

static void test_reads_and_writes_during_syncs(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("VD_PARALLEL_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    printf("test_parallel: seed %" PRIu64 " (VD_PARALLEL_SEED=%" PRIu64 " reruns)\n", seed,
           seed);
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    vd_create_opts co = {.nblocks = STABLE + NWRITERS * REGION + 64, .fanout = 16};
    /* 256 entries: a commit every 128 dirty blocks, nodes evicted often. */
    vd_open_opts oo = {.cache_bytes = (size_t)1 << 20};
    shared sh;
    vt_crew_init(&sh.crew, NWRITERS);
    OK(vd_image_create(mem, KEY, &co, &oo, &sh.img));
    uint8_t *stable = blocks_fill(0, STABLE, 1);
    OK(vd_image_write(sh.img, 0, STABLE, stable));
    free(stable);
    OK(vd_image_sync(sh.img));

    wstate ws[NWRITERS];
    rstate rs[NREADERS];
    pthread_t wt[NWRITERS], rt[NREADERS], st;
    memset(ws, 0, sizeof ws);
    memset(rs, 0, sizeof rs);
    for (unsigned i = 0; i < NWRITERS; i++) {
        ws[i].sh = &sh;
        ws[i].id = i;
        ws[i].seed = seed * 7 + i + 1;
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &ws[i]), 0);
    }
    for (unsigned i = 0; i < NREADERS; i++) {
        rs[i].sh = &sh;
        rs[i].seed = seed * 13 + i + 1;
        assert_int_equal(pthread_create(&rt[i], NULL, reader_main, &rs[i]), 0);
    }
    assert_int_equal(pthread_create(&st, NULL, syncer_main, &sh), 0);
    for (unsigned i = 0; i < NWRITERS; i++)
        assert_int_equal(pthread_join(wt[i], NULL), 0);
    for (unsigned i = 0; i < NREADERS; i++)
        assert_int_equal(pthread_join(rt[i], NULL), 0);
    assert_int_equal(pthread_join(st, NULL), 0);
    if (vt_crew_failed(&sh.crew))
        fail_msg("seed %" PRIu64 ": %s", seed, sh.crew.err);
    vd_image_info info;
    OK(vd_image_info_get(sh.img, &info));
    printf("test_parallel: %" PRIu64 " commits, %u + %u large reads\n", info.syncs,
           rs[0].reads, rs[1].reads);
    check_models(sh.img, ws, "after join");
    OK(vd_image_close(sh.img));
    OK(vd_image_open(mem, KEY, &oo, &sh.img));
    check_models(sh.img, ws, "after reopen");
    OK(vd_image_close(sh.img));
    vt_crew_destroy(&sh.crew);
    vd_host_mem_free(mem);
}

/* ---- overlapped commits ---------------------------------------------------- */

/* The workload of the next two tests: writes several times the cache, so
 * commits forced by cache pressure run all the time, reads in between,
 * one explicit sync in the middle and the close. */
/* oneflush: vd_open_opts.oneflush_blocks (0: the default). Fresh blocks
 * go in place early at every chance (test_fresh_early): the rounds in
 * flight of a host whose flush costs nothing are often done already. */
static void overlap_workload(const vd_host *h, uint64_t seed, int check, uint32_t oneflush,
                             vd_rec *rec, size_t *created)
{
    vd_create_opts co = {.nblocks = NBLK, .fanout = 16};
    vd_open_opts oo = {.cache_bytes = (size_t)1 << 20, /* 256 entries */
                       .oneflush_blocks = oneflush,
                       .test_fresh_early = 1};
    vd_image *img = NULL;
    OK(vd_image_create(h, KEY, &co, &oo, &img));
    if (rec)
        *created = vd_rec_op_count(rec); /* the recorder's ops up to here */
    static uint32_t gen[NBLK];
    memset(gen, 0, sizeof gen);
    uint8_t *buf = malloc((size_t)64 * VD_BLOCK_SIZE);
    assert_non_null(buf);
    uint64_t rng = seed;
    for (uint32_t op = 1; op <= 400; op++) {
        uint32_t len = 1 + (uint32_t)(vt_rand(&rng) % 64);
        uint64_t lbn = vt_rand(&rng) % (NBLK - len);
        for (uint32_t i = 0; i < len; i++) {
            vt_block_fill(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i, op);
            gen[lbn + i] = op;
        }
        OK(vd_image_write(img, lbn, len, buf));
        lbn = vt_rand(&rng) % (NBLK - 64);
        OK(vd_image_read(img, lbn, 64, buf));
        for (uint32_t i = 0; check && i < 64; i++)
            assert_int_equal(vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i),
                             gen[lbn + i]);
        if (op == 200)
            OK(vd_image_sync(img));
    }
    OK(vd_image_close(img));
    OK(vd_image_open(h, KEY, &oo, &img));
    for (uint64_t lbn = 0; check && lbn < NBLK; lbn += 64) {
        OK(vd_image_read(img, lbn, 64, buf));
        for (uint32_t i = 0; i < 64; i++)
            assert_int_equal(vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i),
                             gen[lbn + i]);
    }
    OK(vd_image_close(img));
    free(buf);
}

/* Commits forced by cache pressure go to job_start, and what they wrote
 * reads back, during the run and after a reopen. */
static void test_pressure_commits_run_in_flight(void **state)
{
    (void)state;
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    assert_non_null(mem->job_start);
    counting c;
    counting_init(&c, mem, 1);
    overlap_workload(&c.pt.host, 0x0FF1u, 1, 0, NULL, NULL);
    printf("test_parallel: %u commits left in flight\n", c.started);
    assert_true(c.started > 10);
    pthread_mutex_destroy(&c.mu);
    vd_host_mem_free(mem);
}

/* Crashes while commits are in flight: the workload recorded with them on
 * (as the crash harnesses record theirs), then a sample of crash states,
 * each a prefix of the log with its last epoch's writes in a random subset
 * and order: the image opens (writable: recovery runs), and every block
 * reads as some version of itself, never an authentication failure (C1). */
static void crashes_in_flight(uint64_t seed, uint32_t oneflush)
{
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    assert_non_null(vd_rec_host(rec)->job_start);
    size_t created = 0;
    overlap_workload(vd_rec_host(rec), seed, 0, oneflush, rec, &created);
    size_t n = vd_rec_op_count(rec), states = 0;
    vd_open_opts oo = {.cache_bytes = (size_t)1 << 20};
    uint8_t *buf = malloc((size_t)64 * VD_BLOCK_SIZE);
    assert_non_null(buf);
    /* From the image's creation on: prefixes before it opens are no image. */
    for (size_t p = n / 40; p <= n; p += 1 + n / 300) {
        vd_host *h = NULL;
        OK(vd_rec_crash_view(rec, p, NULL, 0xC0FFEEu + p, 1, &h));
        vd_image *img = NULL;
        vd_err e = vd_image_open(h, KEY, &oo, &img);
        if (e == VD_ERR_CORRUPT && p < created) { /* still being created */
            vd_rec_view_free(h);
            continue;
        }
        VT_EXPECT_ERR(e, VD_OK, "open after %zu of %zu ops", p, n);
        for (uint64_t lbn = 0; lbn < NBLK; lbn += 64) {
            VT_EXPECT_ERR(vd_image_read(img, lbn, 64, buf), VD_OK,
                          "read %" PRIu64 " after %zu of %zu ops", lbn, p, n);
            for (uint32_t i = 0; i < 64; i++) {
                int64_t id = vt_block_identify(buf + (size_t)i * VD_BLOCK_SIZE, lbn + i);
                if (id < 0 || id > 400)
                    fail_msg("lbn %" PRIu64 " after %zu of %zu ops: no version of it",
                             lbn + i, p, n);
            }
        }
        OK(vd_image_close(img));
        vd_rec_view_free(h);
        states++;
    }
    printf("test_parallel: %zu crash states of %zu recorded ops checked\n", states, n);
    assert_true(states > 100);
    free(buf);
    vd_rec_free(rec);
}

static void test_crashes_with_commits_in_flight(void **state)
{
    (void)state;
    crashes_in_flight(0x0FF2u, 0);
}

/* The same with every commit in place (three flushes): a round whose
 * fresh blocks went in place while the round before was in flight then
 * commits through an IN_PROGRESS record, whose entries must be those of
 * an in-place round (JE_REDO on metadata only). */
static void test_crashes_in_flight_in_place(void **state)
{
    (void)state;
    crashes_in_flight(0x0FF3u, VD_ONEFLUSH_NEVER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_go_to_run_jobs_and_read_back_alike),
        cmocka_unit_test(test_batch_read_catches_one_changed_block),
        cmocka_unit_test(test_rotation_reads_in_parallel_batches),
        cmocka_unit_test(test_rotation_stops_at_a_changed_block),
        cmocka_unit_test(test_reads_and_writes_during_syncs),
        cmocka_unit_test(test_pressure_commits_run_in_flight),
        cmocka_unit_test(test_crashes_with_commits_in_flight),
        cmocka_unit_test(test_crashes_in_flight_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
