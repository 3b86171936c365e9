/* Reads that proceed at once (issue 16 part 3, finer locking). A gate host
 * holds each read of data blocks until a second one has arrived, or until
 * a timeout that fails the test: readers serialized by a lock never meet
 * there (the first waits out its timeout), readers that overlap inside the
 * library do. No timing is measured; the timeout only turns a hang into a
 * failure.
 *  - two readers of different uncached blocks meet in the host;
 *  - a read of a cached block returns while another reader is held in
 *    the host;
 *  - through the file system: readers of two different files meet in the
 *    host, and a read of a third file returns while one is held;
 *  - every read is content-checked, and a host that answers one read of a
 *    block wrongly fails that read even if it answers right the next time.
 * Run under ThreadSanitizer by scripts/test.sh. */
#include <errno.h>
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
#include "endian.h"
#include "fat_util.h"
#include "image_format.h"
#include "passthru.h"
#include "testkit.h"
#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define OK(x) VT_EXPECT_ERR((x), VD_OK, "%s", #x)
/* Long enough for a loaded machine under ThreadSanitizer; a reader that
 * waits this long was serialized. */
#define GATE_TIMEOUT_S 30

static const uint8_t KEY[VD_KEY_BYTES] = "overlap-test-key-0123456789abcd";

/* A memory host whose reads at or past `from` (the data area) wait at a
 * gate while it is armed: each waits until `need` reads have arrived. */
typedef struct gate {
    vt_passthru pt; /* first: the callbacks' ctx */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t from;
    int armed;
    unsigned need, arrived;
    unsigned timed_out; /* reads that gave up waiting */
    int flip_once;      /* the next data read answers one bit flipped */
} gate;

static int g_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    gate *g = ctx;
    pthread_mutex_lock(&g->mu);
    if (g->armed && off >= g->from) {
        g->arrived++;
        pthread_cond_broadcast(&g->cv);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += GATE_TIMEOUT_S;
        while (g->armed && g->arrived < g->need) {
            if (pthread_cond_timedwait(&g->cv, &g->mu, &until) == ETIMEDOUT) {
                g->timed_out++;
                break;
            }
        }
    }
    int flip = g->flip_once && off >= g->from;
    if (flip)
        g->flip_once = 0;
    pthread_mutex_unlock(&g->mu);
    int rc = g->pt.inner->read_at(g->pt.inner->ctx, off, buf, len, done);
    if (flip && rc == 0 && *done > 100)
        ((uint8_t *)buf)[100] ^= 0x10;
    return rc;
}
static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    assert_int_equal(pthread_mutex_init(&g->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&g->cv, NULL), 0);
    vd_host *mem;
    OK(vd_host_mem_new(&mem));
    vt_passthru_init(&g->pt, mem, 0);
    g->pt.host.read_at = g_read;
}

static void gate_free(gate *g)
{
    vd_host_mem_free(g->pt.inner);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

/* The data area starts where the image's header says. */
static void gate_learn(gate *g)
{
    uint8_t hdr[VDF_BLOCK];
    size_t done = 0;
    assert_int_equal(g->pt.inner->read_at(g->pt.inner->ctx, 0, hdr, sizeof hdr, &done), 0);
    assert_int_equal(done, sizeof hdr);
    g->from = vd_get_le64(hdr + HDR_OFF_DATA_START) * VDF_BLOCK;
    assert_true(g->from > 0);
}

static void gate_arm(gate *g, unsigned need)
{
    pthread_mutex_lock(&g->mu);
    g->armed = 1;
    g->need = need;
    g->arrived = 0;
    g->timed_out = 0;
    pthread_mutex_unlock(&g->mu);
}

/* Disarm; how many reads gave up waiting. */
static unsigned gate_disarm(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->armed = 0;
    pthread_cond_broadcast(&g->cv);
    unsigned t = g->timed_out;
    pthread_mutex_unlock(&g->mu);
    return t;
}

static unsigned gate_arrived(gate *g)
{
    pthread_mutex_lock(&g->mu);
    unsigned a = g->arrived;
    pthread_mutex_unlock(&g->mu);
    return a;
}

/* Wait (bounded) until `n` reads are at the gate: 0 on time-out. */
static int gate_wait_arrived(gate *g, unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += GATE_TIMEOUT_S;
    int ok = 1;
    pthread_mutex_lock(&g->mu);
    while (ok && g->arrived < n)
        ok = pthread_cond_timedwait(&g->cv, &g->mu, &until) != ETIMEDOUT;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

/* Let a held read go: count one more arrival. */
static void gate_pass(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* Two readers on their own threads, the gate armed for both: each is held
 * in the host until the other arrives. How many gave up waiting. */
static unsigned gate_meet(gate *g, void *(*fn)(void *), void *a, void *b)
{
    void *arg[2] = {a, b};
    pthread_t t[2];
    gate_arm(g, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fn, arg[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    return gate_disarm(g);
}

/* A reader on its own thread, held in the host (the gate armed for two):
 * returns once it is there. */
static void gate_hold(gate *g, pthread_t *t, void *(*fn)(void *), void *arg)
{
    gate_arm(g, 2);
    assert_int_equal(pthread_create(t, NULL, fn, arg), 0);
    if (!gate_wait_arrived(g, 1)) {
        gate_disarm(g);
        pthread_join(*t, NULL);
        fail_msg("the reader never reached the host");
    }
}

/* Let the held reader go and join it. *before: the reads that had come to
 * the gate until then (1: the held one only). How many gave up waiting. */
static unsigned gate_release(gate *g, pthread_t t, unsigned *before)
{
    *before = gate_arrived(g);
    gate_pass(g);
    assert_int_equal(pthread_join(t, NULL), 0);
    return gate_disarm(g);
}

/* ---- the block device ---------------------------------------------------- */

#define NBLK 256u

typedef struct iread {
    vd_image *img;
    uint64_t lbn;
    uint32_t count;
    vd_err err;
    int content_ok;
} iread;

static void *iread_main(void *p)
{
    iread *r = p;
    uint8_t *buf = malloc((size_t)r->count * VDF_BLOCK);
    r->err = buf ? vd_image_read(r->img, r->lbn, r->count, buf) : VD_ERR_NOMEM;
    r->content_ok = r->err == VD_OK;
    for (uint32_t i = 0; r->content_ok && i < r->count; i++)
        r->content_ok = vt_block_identify(buf + (size_t)i * VDF_BLOCK, r->lbn + i) == 7;
    free(buf);
    return NULL;
}

/* An image of NBLK blocks of version 7, reopened with an empty cache, its
 * tree path warmed by a read of block 0 (so the gated reads are data
 * blocks only). */
static vd_image *image_ready(gate *g)
{
    vd_create_opts co = {.nblocks = NBLK, .fanout = 16};
    vd_image *img;
    OK(vd_image_create(&g->pt.host, KEY, &co, NULL, &img));
    uint8_t *all = malloc((size_t)NBLK * VDF_BLOCK);
    assert_non_null(all);
    for (uint32_t i = 0; i < NBLK; i++)
        vt_block_fill(all + (size_t)i * VDF_BLOCK, i, 7);
    OK(vd_image_write(img, 0, NBLK, all));
    OK(vd_image_close(img));
    OK(vd_image_open(&g->pt.host, KEY, NULL, &img));
    /* Every leaf of the tree: one block under each. */
    for (uint32_t i = 0; i < NBLK; i += 16)
        OK(vd_image_read(img, i, 1, all));
    assert_int_equal(vt_block_identify(all, NBLK - 16), 7);
    free(all);
    gate_learn(g);
    return img;
}

static void test_two_block_readers_meet_in_the_host(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    vd_image *img = image_ready(&g);
    /* A single block (cached once read) and a run of several (read in
     * one host call, opened as a batch). */
    iread r[2] = {{.img = img, .lbn = 33, .count = 1}, {.img = img, .lbn = 130, .count = 5}};
    unsigned timed_out = gate_meet(&g, iread_main, &r[0], &r[1]);
    for (int i = 0; i < 2; i++) {
        OK(r[i].err);
        assert_true(r[i].content_ok);
    }
    if (timed_out)
        fail_msg("%u of 2 readers waited %d s in the host for the other: the image "
                 "serializes reads of different blocks",
                 timed_out, GATE_TIMEOUT_S);
    OK(vd_image_close(img));
    gate_free(&g);
}

static void test_cached_read_passes_a_reader_held_in_the_host(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    vd_image *img = image_ready(&g);
    iread held = {.img = img, .lbn = 70, .count = 1};
    pthread_t t;
    gate_hold(&g, &t, iread_main, &held);
    /* Block 64 was read by image_ready: cached. */
    uint8_t buf[VDF_BLOCK];
    vd_err e = vd_image_read(img, 64, 1, buf);
    unsigned before;
    unsigned timed_out = gate_release(&g, t, &before);
    OK(e);
    assert_int_equal(vt_block_identify(buf, 64), 7);
    OK(held.err);
    assert_true(held.content_ok);
    if (timed_out || before != 1)
        fail_msg("the cached read returned only after the held reader gave up "
                 "(%u timed out, %u at the gate): it waited for the image lock",
                 timed_out, before);
    OK(vd_image_close(img));
    gate_free(&g);
}

/* A host that answers one read of a block wrongly and the next one right
 * is still caught: the read fails and names the block (the block opened
 * outside the lock is not simply read again). */
static void test_one_wrong_answer_fails_the_read(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    vd_image *img = image_ready(&g);
    pthread_mutex_lock(&g.mu);
    g.flip_once = 1;
    pthread_mutex_unlock(&g.mu);
    uint8_t buf[4 * VDF_BLOCK];
    VT_EXPECT_ERR(vd_image_read(img, 40, 1, buf), VD_ERR_AUTH, "one flipped answer");
    vd_bad_range bad;
    OK(vd_image_last_failure(img, &bad));
    assert_int_equal(bad.level, 0);
    assert_int_equal(bad.first_lbn, 40);
    /* In a run too, and the rest of the handle goes on (a data block only
     * fails its own reads). */
    pthread_mutex_lock(&g.mu);
    g.flip_once = 1;
    pthread_mutex_unlock(&g.mu);
    VT_EXPECT_ERR(vd_image_read(img, 100, 4, buf), VD_ERR_AUTH, "one flipped run");
    OK(vd_image_last_failure(img, &bad));
    assert_int_equal(bad.first_lbn, 100);
    OK(vd_image_read(img, 100, 4, buf));
    for (uint32_t i = 0; i < 4; i++)
        assert_int_equal(vt_block_identify(buf + (size_t)i * VDF_BLOCK, 100 + i), 7);
    OK(vd_image_close(img));
    gate_free(&g);
}

/* ---- through the file system ------------------------------------------- */

#define FBYTES (96u * 1024)

typedef struct fread_ {
    vd_file *f;
    uint64_t id, off;
    size_t len;
    vd_err err;
    int content_ok;
} fread_;

static void *fread_main(void *p)
{
    fread_ *r = p;
    uint8_t *buf = malloc(r->len), *want = malloc(r->len);
    size_t done = 0;
    r->err = buf && want ? vd_file_read(r->f, r->off, buf, r->len, &done) : VD_ERR_NOMEM;
    if (want)
        fu_fill(want, r->len, r->id, r->off);
    r->content_ok = r->err == VD_OK && done == r->len && memcmp(buf, want, r->len) == 0;
    free(buf);
    free(want);
    return NULL;
}

/* Three files on a volume, reopened with empty caches; each opened and
 * its first bytes read (the chain is mapped, the tree warmed). */
static vd_fs *volume_ready(gate *g, vd_image **imgp, vd_file *f[3])
{
    vd_image *img;
    vd_create_opts co = {.nblocks = 16384}; /* FAT32 needs 64 MiB */
    OK(vd_image_create(&g->pt.host, KEY, &co, NULL, &img));
    vd_mkfs_opts mo = {.label = "OVERLAP"};
    OK(vd_fs_format(img, &mo));
    vd_fs *fs;
    OK(vd_fs_mount(img, NULL, &fs));
    fu_put_file(fs, "/a.bin", 101, FBYTES);
    fu_put_file(fs, "/b.bin", 102, FBYTES);
    fu_put_file(fs, "/c.bin", 103, FBYTES);
    OK(vd_fs_unmount(fs));
    OK(vd_image_close(img));
    OK(vd_image_open(&g->pt.host, KEY, NULL, &img));
    OK(vd_fs_mount(img, NULL, &fs));
    const char *names[3] = {"/a.bin", "/b.bin", "/c.bin"};
    uint8_t *buf = malloc(FBYTES), *want = malloc(FBYTES);
    assert_non_null(buf);
    assert_non_null(want);
    for (int i = 0; i < 3; i++) {
        OK(vd_file_open(fs, names[i], VD_O_RDONLY, &f[i]));
        /* Every block but the last few of each: the tree nodes over all
         * of them come in; the last blocks stay uncached (a whole-run
         * read does not cache). */
        size_t done = 0;
        OK(vd_file_read(f[i], 0, buf, FBYTES - 4 * VDF_BLOCK, &done));
        fu_fill(want, FBYTES - 4 * VDF_BLOCK, (uint64_t)(101 + i), 0);
        assert_int_equal(done, FBYTES - 4 * VDF_BLOCK);
        assert_memory_equal(buf, want, done);
    }
    /* c.bin's first blocks once more, one at a time: single-block reads
     * leave them in the image's cache. */
    for (uint64_t off = 0; off < 4 * VDF_BLOCK; off += VDF_BLOCK) {
        size_t done = 0;
        OK(vd_file_read(f[2], off, buf, VDF_BLOCK, &done));
        fu_fill(want, VDF_BLOCK, 103, off);
        assert_int_equal(done, VDF_BLOCK);
        assert_memory_equal(buf, want, VDF_BLOCK);
    }
    free(buf);
    free(want);
    gate_learn(g);
    *imgp = img;
    return fs;
}

static void volume_done(gate *g, vd_image *img, vd_fs *fs, vd_file *f[3])
{
    for (int i = 0; i < 3; i++)
        OK(vd_file_close(f[i]));
    OK(vd_fs_unmount(fs));
    OK(vd_image_close(img));
    gate_free(g);
}

static void test_readers_of_two_files_meet_in_the_host(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    vd_image *img;
    vd_file *f[3];
    vd_fs *fs = volume_ready(&g, &img, f);
    fread_ r[2] = {
        {.f = f[0], .id = 101, .off = FBYTES - 4 * VDF_BLOCK, .len = 4 * VDF_BLOCK},
        {.f = f[1], .id = 102, .off = FBYTES - 2 * VDF_BLOCK - 100, .len = 700},
    };
    unsigned timed_out = gate_meet(&g, fread_main, &r[0], &r[1]);
    for (int i = 0; i < 2; i++) {
        OK(r[i].err);
        assert_true(r[i].content_ok);
    }
    if (timed_out)
        fail_msg("%u of 2 file readers waited %d s in the host for the other: the "
                 "volume serializes reads of different files",
                 timed_out, GATE_TIMEOUT_S);
    volume_done(&g, img, fs, f);
}

static void test_file_read_passes_a_reader_held_in_the_host(void **state)
{
    (void)state;
    gate g;
    gate_init(&g);
    vd_image *img;
    vd_file *f[3];
    vd_fs *fs = volume_ready(&g, &img, f);
    fread_ held = {.f = f[0], .id = 101, .off = FBYTES - VDF_BLOCK, .len = VDF_BLOCK};
    pthread_t t;
    gate_hold(&g, &t, fread_main, &held);
    /* c.bin's first blocks are in the image's cache (volume_ready). */
    fread_ other = {.f = f[2], .id = 103, .off = 5000, .len = 3000};
    fread_main(&other);
    unsigned before;
    unsigned timed_out = gate_release(&g, t, &before);
    OK(held.err);
    assert_true(held.content_ok);
    OK(other.err);
    assert_true(other.content_ok);
    if (timed_out || before != 1)
        fail_msg("the read of another file returned only after the held reader gave "
                 "up (%u timed out, %u at the gate): it waited for a lock",
                 timed_out, before);
    volume_done(&g, img, fs, f);
}

/* ---- stress: readers of files while others write and a syncer syncs ---- */

#define SW 2        /* writers, each on its own file */
#define SR 3        /* readers */
#define SBLK 48u    /* blocks per file */
#define SOPS 400    /* operations per writer */

/* Block `idx` of a writer's file at generation gen: every 8-byte word
 * says (idx, gen), so a reader can tell a whole version from a mix. */
static void wblock_fill(uint8_t *b, uint32_t idx, uint32_t gen)
{
    uint64_t w = ((uint64_t)idx << 32) | gen;
    for (size_t i = 0; i < VDF_BLOCK; i += 8)
        memcpy(b + i, &w, 8);
}

/* The generation block b holds for idx, or -1 for a mix or another block. */
static int64_t wblock_gen(const uint8_t *b, uint32_t idx)
{
    uint64_t w;
    memcpy(&w, b, 8);
    for (size_t i = 8; i < VDF_BLOCK; i += 8)
        if (memcmp(b + i, &w, 8) != 0)
            return -1;
    return (uint32_t)(w >> 32) == idx ? (int64_t)(uint32_t)w : -1;
}

typedef struct sshared {
    vt_crew crew; /* the first failure, the writers at work; its mutex guards wmax */
    vd_fs *fs;
    vd_file *wf[SW];
    uint32_t wmax[SW]; /* the newest generation any block of wf[i] got */
} sshared;

typedef struct sworker {
    sshared *sh;
    unsigned id;
    uint64_t seed;
    uint32_t gen[SBLK];
    unsigned ops;
} sworker;

static void *swriter_main(void *p)
{
    sworker *w = p;
    sshared *sh = w->sh;
    uint64_t rng = w->seed;
    uint8_t *buf = malloc(8 * VDF_BLOCK);
    for (unsigned op = 0; buf && op < SOPS && !vt_crew_failed(&sh->crew); op++) {
        uint32_t n = 1 + (uint32_t)(vt_rand(&rng) % 8);
        uint32_t at = (uint32_t)(vt_rand(&rng) % (SBLK - n + 1));
        size_t done = 0;
        vd_err e;
        if (vt_rand(&rng) % 3 == 0) { /* its own file: exactly its model */
            e = vd_file_read(sh->wf[w->id], (uint64_t)at * VDF_BLOCK, buf,
                             (size_t)n * VDF_BLOCK, &done);
            for (uint32_t i = 0; e == VD_OK && i < n; i++)
                if (wblock_gen(buf + (size_t)i * VDF_BLOCK, at + i) != w->gen[at + i]) {
                    vt_crew_fail(&sh->crew, "writer %u: block %u is not generation %u",
                                 w->id, at + i, w->gen[at + i]);
                    break;
                }
        } else {
            uint32_t gen = op + 1;
            for (uint32_t i = 0; i < n; i++)
                wblock_fill(buf + (size_t)i * VDF_BLOCK, at + i, gen);
            /* The newest generation first: a reader may see it as soon as
             * the write has begun. */
            pthread_mutex_lock(&sh->crew.mu);
            sh->wmax[w->id] = gen;
            pthread_mutex_unlock(&sh->crew.mu);
            e = vd_file_write(sh->wf[w->id], (uint64_t)at * VDF_BLOCK, buf,
                              (size_t)n * VDF_BLOCK, &done);
            for (uint32_t i = 0; e == VD_OK && i < n; i++)
                w->gen[at + i] = gen;
        }
        if (e != VD_OK || done != (size_t)n * VDF_BLOCK) {
            vt_crew_fail(&sh->crew, "writer %u: op %u: %s (%zu bytes)", w->id, op,
                         vd_strerror(e), done);
            break;
        }
        w->ops++;
    }
    free(buf);
    vt_crew_writer_done(&sh->crew);
    return NULL;
}

typedef struct sreader {
    sshared *sh;
    vd_file *stable[2]; /* its own stable file, and the hot one all share */
    uint64_t sid[2];
    uint64_t seed;
    unsigned reads;
} sreader;

/* Random reads of its stable file (any offset and length), of the hot
 * file every reader reads (small: cached), and of the writers' files
 * (whole blocks, each some generation not newer than written). */
static void *sreader_main(void *p)
{
    sreader *r = p;
    sshared *sh = r->sh;
    uint64_t rng = r->seed;
    uint8_t *buf = malloc(FBYTES), *want = malloc(FBYTES);
    while (buf && want && vt_crew_running(&sh->crew)) {
        unsigned k = (unsigned)(vt_rand(&rng) % 3);
        size_t done = 0;
        vd_err e;
        if (k < 2) {
            uint64_t size = k == 0 ? FBYTES : 3 * VDF_BLOCK;
            uint64_t off = vt_rand(&rng) % size;
            size_t len = 1 + (size_t)(vt_rand(&rng) % (size - off));
            e = vd_file_read(r->stable[k], off, buf, len, &done);
            fu_fill(want, len, r->sid[k], off);
            if (e == VD_OK && (done != len || memcmp(buf, want, len) != 0)) {
                vt_crew_fail(&sh->crew,
                             "reader: file %" PRIu64 " [%" PRIu64 ", +%zu) differs",
                             r->sid[k], off, len);
                break;
            }
        } else {
            unsigned wi = (unsigned)(vt_rand(&rng) % SW);
            uint32_t n = 1 + (uint32_t)(vt_rand(&rng) % 8);
            uint32_t at = (uint32_t)(vt_rand(&rng) % (SBLK - n + 1));
            e = vd_file_read(sh->wf[wi], (uint64_t)at * VDF_BLOCK, buf, (size_t)n * VDF_BLOCK,
                             &done);
            pthread_mutex_lock(&sh->crew.mu);
            uint32_t max = sh->wmax[wi];
            pthread_mutex_unlock(&sh->crew.mu);
            for (uint32_t i = 0; e == VD_OK && i < n; i++) {
                int64_t g = wblock_gen(buf + (size_t)i * VDF_BLOCK, at + i);
                if (g < 0 || g > max) {
                    vt_crew_fail(
                        &sh->crew,
                        "reader: writer %u's block %u holds no version of it (%" PRId64
                        ", newest %u)",
                        wi, at + i, g, max);
                    break;
                }
            }
        }
        if (e != VD_OK) {
            vt_crew_fail(&sh->crew, "reader: %s", vd_strerror(e));
            break;
        }
        r->reads++;
    }
    free(buf);
    free(want);
    return NULL;
}

static void *ssyncer_main(void *p)
{
    sshared *sh = p;
    while (vt_crew_running(&sh->crew)) {
        vd_err e = vd_fs_sync(sh->fs);
        if (e != VD_OK) {
            vt_crew_fail(&sh->crew, "sync: %s", vd_strerror(e));
            break;
        }
    }
    return NULL;
}

static void test_file_readers_during_writes_and_syncs(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("VD_OVERLAP_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    printf("test_read_overlap: seed %" PRIu64 " (VD_OVERLAP_SEED=%" PRIu64 " reruns)\n", seed,
           seed);
    vd_host *mem;
    OK(vd_host_mem_new(&mem));
    vd_create_opts co = {.nblocks = 16384};
    /* 256 entries: evictions and implicit commits all the time. */
    vd_open_opts oo = {.cache_bytes = (size_t)1 << 20};
    vd_image *img;
    OK(vd_image_create(mem, KEY, &co, &oo, &img));
    vd_mkfs_opts mo = {.label = "STRESS"};
    OK(vd_fs_format(img, &mo));
    sshared sh;
    memset(&sh, 0, sizeof sh);
    vt_crew_init(&sh.crew, SW);
    OK(vd_fs_mount(img, NULL, &sh.fs));
    char path[32];
    for (unsigned i = 0; i < SR; i++) {
        snprintf(path, sizeof path, "/s%u.bin", i);
        fu_put_file(sh.fs, path, 200 + i, FBYTES);
    }
    fu_put_file(sh.fs, "/hot.bin", 300, 3 * VDF_BLOCK);
    sworker ws[SW];
    memset(ws, 0, sizeof ws);
    uint8_t *blk = malloc(VDF_BLOCK);
    assert_non_null(blk);
    for (unsigned i = 0; i < SW; i++) {
        snprintf(path, sizeof path, "/w%u.bin", i);
        OK(vd_file_open(sh.fs, path, VD_O_RDWR | VD_O_CREAT, &sh.wf[i]));
        for (uint32_t b = 0; b < SBLK; b++) {
            size_t done;
            wblock_fill(blk, b, 0);
            OK(vd_file_write(sh.wf[i], (uint64_t)b * VDF_BLOCK, blk, VDF_BLOCK, &done));
        }
        ws[i].sh = &sh;
        ws[i].id = i;
        ws[i].seed = seed * 5 + i + 1;
    }
    free(blk);
    OK(vd_fs_sync(sh.fs));
    sreader rs[SR];
    memset(rs, 0, sizeof rs);
    for (unsigned i = 0; i < SR; i++) {
        rs[i].sh = &sh;
        rs[i].seed = seed * 11 + i + 1;
        snprintf(path, sizeof path, "/s%u.bin", i);
        OK(vd_file_open(sh.fs, path, VD_O_RDONLY, &rs[i].stable[0]));
        OK(vd_file_open(sh.fs, "/hot.bin", VD_O_RDONLY, &rs[i].stable[1]));
        rs[i].sid[0] = 200 + i;
        rs[i].sid[1] = 300;
    }
    pthread_t wt[SW], rt[SR], st;
    for (unsigned i = 0; i < SW; i++)
        assert_int_equal(pthread_create(&wt[i], NULL, swriter_main, &ws[i]), 0);
    for (unsigned i = 0; i < SR; i++)
        assert_int_equal(pthread_create(&rt[i], NULL, sreader_main, &rs[i]), 0);
    assert_int_equal(pthread_create(&st, NULL, ssyncer_main, &sh), 0);
    for (unsigned i = 0; i < SW; i++)
        assert_int_equal(pthread_join(wt[i], NULL), 0);
    for (unsigned i = 0; i < SR; i++)
        assert_int_equal(pthread_join(rt[i], NULL), 0);
    assert_int_equal(pthread_join(st, NULL), 0);
    if (vt_crew_failed(&sh.crew))
        fail_msg("seed %" PRIu64 ": %s", seed, sh.crew.err);
    printf("test_read_overlap: %u + %u writes/reads, %u + %u + %u reads\n", ws[0].ops,
           ws[1].ops, rs[0].reads, rs[1].reads, rs[2].reads);
    for (unsigned i = 0; i < SR; i++) {
        OK(vd_file_close(rs[i].stable[0]));
        OK(vd_file_close(rs[i].stable[1]));
    }
    for (unsigned i = 0; i < SW; i++)
        OK(vd_file_close(sh.wf[i]));
    OK(vd_fs_unmount(sh.fs));
    OK(vd_image_close(img));
    /* After a reopen: the writers' files hold exactly their models. */
    OK(vd_image_open(mem, KEY, &oo, &img));
    OK(vd_fs_mount(img, NULL, &sh.fs));
    uint8_t *buf = malloc((size_t)SBLK * VDF_BLOCK);
    assert_non_null(buf);
    for (unsigned i = 0; i < SW; i++) {
        snprintf(path, sizeof path, "/w%u.bin", i);
        vd_file *f;
        size_t done;
        OK(vd_file_open(sh.fs, path, VD_O_RDONLY, &f));
        OK(vd_file_read(f, 0, buf, (size_t)SBLK * VDF_BLOCK, &done));
        assert_int_equal(done, (size_t)SBLK * VDF_BLOCK);
        for (uint32_t b = 0; b < SBLK; b++)
            if (wblock_gen(buf + (size_t)b * VDF_BLOCK, b) != ws[i].gen[b])
                fail_msg("seed %" PRIu64 ": after reopen, writer %u's block %u is not "
                         "generation %u",
                         seed, i, b, ws[i].gen[b]);
        OK(vd_file_close(f));
    }
    free(buf);
    OK(vd_fs_unmount(sh.fs));
    OK(vd_image_close(img));
    vt_crew_destroy(&sh.crew);
    vd_host_mem_free(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_block_readers_meet_in_the_host),
        cmocka_unit_test(test_cached_read_passes_a_reader_held_in_the_host),
        cmocka_unit_test(test_one_wrong_answer_fails_the_read),
        cmocka_unit_test(test_readers_of_two_files_meet_in_the_host),
        cmocka_unit_test(test_file_read_passes_a_reader_held_in_the_host),
        cmocka_unit_test(test_file_readers_during_writes_and_syncs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
