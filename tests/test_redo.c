/* The metadata redo journal (DESIGN C4, docs/FORMAT.md §7): a workload of
 * "operations", each writing a group of metadata blocks (vd_image_write_meta,
 * inside vd_image_op_begin/end as the FAT layer does) and data blocks, runs
 * on the recording backend under a small cache, so implicit commits strike
 * in the middle of operations. Every prefix of the write log and random
 * reorderings within each flush epoch are reopened (read-only, and writable
 * with a write + sync after) and checked:
 *   - the metadata blocks show one operation boundary: there is a G such
 *     that every metadata block holds what the last operation <= G wrote to
 *     it (all of a commit's metadata or none of it; nothing of an
 *     uncommitted round);
 *   - G is at least the last operation before the last completed
 *     vd_image_sync (C2);
 *   - every block reads without an authentication error (C1).
 * Mutation check: the same run with vd_open_opts.test_no_meta_journal (the
 * metadata written in place like data) must show mixed states.
 * Also: a commit whose metadata is not in place yet is redone from the
 * journal on open, and a journal copy the host changed is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image_format.h"
#include "image_fs.h"
#include "record.h"
#include "replay.h"
#include "testkit.h"
#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define NBLOCKS 1200u
#define NMETA 64u     /* blocks [0, NMETA) are metadata */
#define MAX_OPS 400u

typedef struct wl {
    uint8_t key[VD_KEY_BYTES];
    uint32_t nops;
    /* per metadata block: the operations that wrote it, ascending */
    uint32_t mw[NMETA][MAX_OPS];
    uint32_t nmw[NMETA];
    /* data block ids written (any id <= max is acceptable here; the data
     * rules are test_crash's) */
    uint32_t next_id;
    /* log op count when each explicit sync returned, and the last
     * operation before it */
    size_t sync_end[MAX_OPS];
    uint32_t sync_op[MAX_OPS];
    uint32_t nsync;
    uint64_t rng;
    uint8_t *buf; /* NBLOCKS blocks: one image read, reused by every check */
    vt_block_memo *memo;
} wl;

typedef struct tally {
    uint64_t states, mixed, behind, recovered;
} tally;

static void run_ops(wl *w, vd_image *img, vd_rec *rec, uint32_t nops)
{
    uint8_t b[VD_BLOCK_SIZE];
    for (uint32_t op = 1; op <= nops; op++) {
        vd_image_op_begin(img);
        /* Data first, as the FAT layer does (allocate, write, then the
         * size in the directory entry), with metadata in between. */
        uint32_t nmeta = 2 + (uint32_t)(vt_rand(&w->rng) % 6);
        uint32_t ndata = (uint32_t)(vt_rand(&w->rng) % 40);
        while (nmeta + ndata > 0) {
            int meta = vt_rand(&w->rng) % (nmeta + ndata) < nmeta;
            if (meta) {
                uint64_t lbn = vt_rand(&w->rng) % NMETA;
                vt_block_fill(b, lbn, op);
                assert_int_equal(vd_image_write_meta(img, lbn, 1, b), VD_OK);
                if (!w->nmw[lbn] || w->mw[lbn][w->nmw[lbn] - 1] != op)
                    w->mw[lbn][w->nmw[lbn]++] = op;
                nmeta--;
            } else {
                uint64_t lbn = NMETA + vt_rand(&w->rng) % (NBLOCKS - NMETA);
                vt_block_fill(b, lbn, ++w->next_id);
                assert_int_equal(vd_image_write(img, lbn, 1, b), VD_OK);
                ndata--;
            }
        }
        vd_image_op_end(img);
        w->nops = op;
        if (vt_rand(&w->rng) % 16 == 0) {
            assert_int_equal(vd_image_sync(img), VD_OK);
            w->sync_end[w->nsync] = vd_rec_op_count(rec);
            w->sync_op[w->nsync++] = op;
        }
    }
}

/* The operation boundary G the metadata shows: the intersection over the
 * blocks of the G's each block's content allows. Returns 1 with [*lo, *hi]
 * when one exists. */
static int meta_boundary(const wl *w, const uint32_t got[NMETA], uint32_t *lo,
                         uint32_t *hi)
{
    uint32_t a = 0, z = w->nops;
    for (uint32_t m = 0; m < NMETA; m++) {
        /* got[m] = op that wrote it (0: never written): G in [got, next). */
        uint32_t next = w->nops + 1, k;
        for (k = 0; k < w->nmw[m] && w->mw[m][k] <= got[m]; k++)
            ;
        if (got[m] && (k == 0 || w->mw[m][k - 1] != got[m]))
            return 0; /* an id this block never had */
        if (k < w->nmw[m])
            next = w->mw[m][k];
        if (got[m] > a)
            a = got[m];
        if (next - 1 < z)
            z = next - 1;
    }
    *lo = a;
    *hi = z;
    return a <= z;
}

static uint32_t synced_op(const wl *w, size_t prefix)
{
    uint32_t s = 0;
    for (uint32_t i = 0; i < w->nsync; i++)
        if (w->sync_end[i] <= prefix)
            s = w->sync_op[i];
    return s;
}

/* Read the whole image; 1 if the metadata shows one boundary. */
static int check_image(const wl *w, vd_image *img, size_t prefix, tally *t)
{
    uint8_t *buf = w->buf;
    vd_err e = vd_image_read(img, 0, NBLOCKS, buf);
    if (e != VD_OK) {
        fprintf(stderr, "prefix %zu: read: %s\n", prefix, vd_strerror(e));
        fail();
    }
    uint32_t got[NMETA];
    for (uint32_t m = 0; m < NMETA; m++) {
        int64_t id = vt_block_memo_identify(w->memo, buf + (size_t)m * VD_BLOCK_SIZE, m);
        assert_true(id >= 0);
        got[m] = (uint32_t)id;
    }
    for (uint32_t b = NMETA; b < NBLOCKS; b++) {
        int64_t id = vt_block_memo_identify(w->memo, buf + (size_t)b * VD_BLOCK_SIZE, b);
        if (id < 0 || id > w->next_id) {
            fprintf(stderr, "prefix %zu: data block %u holds %lld\n", prefix, b,
                    (long long)id);
            fail();
        }
    }
    uint32_t lo, hi;
    int ok = meta_boundary(w, got, &lo, &hi);
    if (!ok)
        t->mixed++;
    else if (hi < synced_op(w, prefix))
        t->behind++;
    return ok;
}

static void check_state(const wl *w, vd_host *h, size_t prefix, int deep, tally *t)
{
    vd_image *img;
    /* The crash state's clock is fake (1 ms a call): VD_AEAD_AUTO would
     * time both AES implementations on every open, see them equal and
     * keep OpenSSL. Named here, without the timing. */
    vd_open_opts ro = {
        .read_only = 1, .cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL};
    vd_err e = vd_image_open(h, w->key, &ro, &img);
    if (e != VD_OK) {
        fprintf(stderr, "prefix %zu: read-only open: %s\n", prefix, vd_strerror(e));
        fail();
    }
    (void)check_image(w, img, prefix, t);
    assert_int_equal(vd_image_close(img), VD_OK);
    t->states++;
    if (!deep)
        return;
    vd_open_opts rw = {.cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL};
    e = vd_image_open(h, w->key, &rw, &img);
    if (e != VD_OK) {
        fprintf(stderr, "prefix %zu: writable open: %s\n", prefix, vd_strerror(e));
        fail();
    }
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    t->recovered += info.recovered != 0;
    (void)check_image(w, img, prefix, t);
    /* A write and sync on top: the replayed or dropped metadata stays. */
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, NBLOCKS - 1, 0);
    assert_int_equal(vd_image_write(img, NBLOCKS - 1, 1, b), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open(h, w->key, &ro, &img), VD_OK);
    (void)check_image(w, img, prefix, t);
    assert_int_equal(vd_image_close(img), VD_OK);
    t->states++;
}

typedef struct redo_walk {
    const wl *w;
    tally *t;
} redo_walk;

/* Every fifth prefix is also opened writable (deep). */
static void redo_prefix_state(void *ctx, vd_host *h, size_t p, unsigned subset)
{
    redo_walk *r = ctx;
    (void)subset;
    check_state(r->w, h, p, p % 5 == 0, r->t);
}

static void redo_subset_state(void *ctx, vd_host *h, size_t end, unsigned m)
{
    redo_walk *r = ctx;
    check_state(r->w, h, end, m == 0, r->t);
}

static void redo_run(uint64_t seed, uint32_t nops, int no_journal, tally *t)
{
    wl *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->rng = seed;
    w->buf = malloc((size_t)NBLOCKS * VD_BLOCK_SIZE);
    assert_non_null(w->buf);
    w->memo = vt_block_memo_new(NBLOCKS);
    assert_non_null(w->memo);
    for (unsigned i = 0; i < VD_KEY_BYTES; i++)
        w->key[i] = (uint8_t)(i * 7 + 1);
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_image *img;
    vd_create_opts c = {.nblocks = NBLOCKS, .fanout = 16, .journal_blocks = 16};
    /* 1 MiB of cache: 256 entries, implicit commits every ~128 writes. */
    vd_open_opts o = {.cache_bytes = 1 << 20, .test_no_meta_journal = no_journal};
    assert_int_equal(vd_image_create(vd_rec_host(rec), w->key, &c, &o, &img), VD_OK);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    run_ops(w, img, rec, nops);
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    size_t n = vd_rec_op_count(rec);
    printf("redo harness%s: seed %llu, %u operations, %zu log ops, %zu flushes, "
           "%llu commits, %u explicit\n",
           no_journal ? " (metadata journal OFF)" : "", (unsigned long long)seed, nops, n,
           vd_rec_flush_count(rec), (unsigned long long)info.syncs, w->nsync);
    redo_walk r = {.w = w, .t = t};
    vt_replay_prefixes(rec, redo_prefix_state, &r);
    uint64_t mrng = seed ^ 0x9e37;
    vt_replay_epoch_subsets(rec, 4, &mrng, redo_subset_state, &r);
    printf("  crash states checked: %llu; mixed metadata: %llu; behind the last "
           "sync: %llu; writable opens that recovered: %llu\n",
           (unsigned long long)t->states, (unsigned long long)t->mixed,
           (unsigned long long)t->behind, (unsigned long long)t->recovered);
    vd_rec_free(rec);
    free(w->buf);
    vt_block_memo_free(w->memo);
    free(w);
}

static void redo_every_crash_state_shows_one_operation_boundary(void **state)
{
    (void)state;
    tally t = {0};
    redo_run(vt_seed_from_env("VD_CRASH_SEED", 15), 150, 0, &t);
    assert_int_equal(t.mixed, 0);
    assert_int_equal(t.behind, 0);
    assert_true(t.states > 1000);
}

static void redo_mutation_without_journal_mixes_operations(void **state)
{
    (void)state;
    tally t = {0};
    redo_run(vt_seed_from_env("VD_CRASH_SEED", 15), 150, 1, &t);
    /* The check above must be able to fail: without the journal some crash
     * states hold half of a commit's metadata. */
    assert_true(t.mixed > 0);
}

/* Metadata blocks [0, 5) with id meta and data block NMETA with id data,
 * in one operation, then an explicit sync. */
static void meta_and_data_sync(vd_image *img, uint32_t meta, uint32_t data)
{
    uint8_t b[VD_BLOCK_SIZE];
    vd_image_op_begin(img);
    for (uint32_t m = 0; m < 5; m++) {
        vt_block_fill(b, m, meta);
        assert_int_equal(vd_image_write_meta(img, m, 1, b), VD_OK);
    }
    vt_block_fill(b, NMETA, data);
    assert_int_equal(vd_image_write(img, NMETA, 1, b), VD_OK);
    vd_image_op_end(img);
    assert_int_equal(vd_image_sync(img), VD_OK);
}

/* One operation and an explicit sync; the crash state keeps everything up
 * to the commit record's flush and none of the in-place writes after it:
 * the metadata's (oneflush VD_ONEFLUSH_NEVER: a commit in place, format 3's
 * redo), or every block's (0: a one-flush commit, format 4). Returns that
 * image; *ct gets a copy of metadata block 0's ciphertext as the sync
 * wrote it in place. */
static uint8_t *commit_without_inplace(const uint8_t key[VD_KEY_BYTES], uint64_t *size,
                                       uint8_t *ct, uint64_t *ct_off, uint32_t oneflush)
{
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_image *img;
    vd_create_opts c = {.nblocks = NBLOCKS, .fanout = 16, .journal_blocks = 16};
    vd_open_opts o = {.oneflush_blocks = oneflush};
    assert_int_equal(vd_image_create(vd_rec_host(rec), key, &c, &o, &img), VD_OK);
    /* Written once before: a block the tree never wrote goes in place
     * before the flush (format 5), and this is about the ones that wait. */
    meta_and_data_sync(img, 3, 3);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    meta_and_data_sync(img, 7, 9);
    size_t n = vd_rec_op_count(rec);
    size_t last_flush = 0;
    for (size_t i = 0; i < n; i++) {
        vd_rec_op_info oi;
        assert_int_equal(vd_rec_op_get(rec, i, &oi), VD_OK);
        if (oi.kind == VD_REC_FLUSH)
            last_flush = i;
    }
    /* After the last flush of the sync: writes in place, nothing else; one
     * of them starts at metadata block 0 (lbn 0). */
    uint64_t live_size;
    vd_header hd;
    assert_int_equal(vd_header_decode(&hd, vd_rec_live(rec, &live_size)), 0);
    *ct_off = UINT64_MAX;
    assert_true(last_flush + 1 < n);
    for (size_t i = last_flush + 1; i < n; i++) {
        vd_rec_op_info oi;
        assert_int_equal(vd_rec_op_get(rec, i, &oi), VD_OK);
        assert_int_equal(oi.kind, VD_REC_WRITE);
        if (oi.offset == hd.data_start * VDF_BLOCK) {
            memcpy(ct, oi.data, VD_BLOCK_SIZE);
            *ct_off = oi.offset;
        }
    }
    assert_true(*ct_off != UINT64_MAX);
    uint8_t *bytes = vd_rec_crash_image(rec, last_flush + 1, NULL, 0, 0, size);
    assert_non_null(bytes);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_rec_free(rec);
    return bytes;
}

static void read_meta_ids(vd_host *h, const uint8_t key[VD_KEY_BYTES], int ro,
                          vd_err want_open, uint32_t want_id)
{
    vd_image *img;
    vd_open_opts o = {.read_only = ro};
    VT_EXPECT_ERR(vd_image_open(h, key, &o, &img), want_open, "open ro=%d", ro);
    if (want_open != VD_OK)
        return;
    uint8_t b[VD_BLOCK_SIZE];
    for (uint32_t m = 0; m < 5; m++) {
        VT_EXPECT_ERR(vd_image_read(img, m, 1, b), VD_OK, "read %u", m);
        assert_int_equal(vt_block_identify(b, m), want_id);
    }
    assert_int_equal(vd_image_close(img), VD_OK);
}

static void replay_commit_not_in_place(uint32_t oneflush)
{
    uint8_t key[VD_KEY_BYTES] = {3, 1, 4, 1, 5};
    uint64_t size, ct_off;
    uint8_t ct[VD_BLOCK_SIZE];
    uint8_t *bytes = commit_without_inplace(key, &size, ct, &ct_off, oneflush);
    /* The metadata is not in place: its blocks still hold the contents
     * of the sync before. */
    assert_memory_not_equal(bytes + ct_off, ct, VD_BLOCK_SIZE);
    vd_host *h = vt_host_mem_from(bytes, size);
    read_meta_ids(h, key, 1, VD_OK, 7); /* read-only: from the journal */
    read_meta_ids(h, key, 0, VD_OK, 7); /* writable: replayed in place */
    uint64_t sz;
    const uint8_t *now = vd_host_mem_data(h, &sz);
    assert_memory_equal(now + ct_off, ct, VD_BLOCK_SIZE);
    read_meta_ids(h, key, 1, VD_OK, 7);
    vd_host_mem_free(h);
    free(bytes);
}

static void redo_replays_a_commit_whose_metadata_is_not_in_place(void **state)
{
    (void)state;
    replay_commit_not_in_place(VD_ONEFLUSH_NEVER);
}

/* A one-flush commit: every block of it (data, metadata, nodes, root) is
 * in the journal only; reads take them from there, a writable open puts
 * them in place. */
static void redo_replays_a_one_flush_commit_not_in_place(void **state)
{
    (void)state;
    replay_commit_not_in_place(0);
}

/* The host changes the sealed copy of ct in the journal area (the block
 * that holds the same ciphertext): one bit. Returns its block number. */
static uint64_t flip_journal_copy(uint8_t *bytes, const uint8_t *ct, vd_header *hd)
{
    assert_int_equal(vd_header_decode(hd, bytes), 0);
    uint64_t found = 0;
    for (uint64_t blk = hd->journal_start; blk < hd->node_start; blk++)
        if (memcmp(bytes + blk * VDF_BLOCK, ct, VD_BLOCK_SIZE) == 0)
            found = blk;
    assert_true(found != 0);
    bytes[found * VDF_BLOCK + 100] ^= 0x01;
    return found;
}

static void redo_journal_copy_changed_by_the_host_is_caught(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES] = {2, 7, 1, 8};
    uint64_t size, ct_off;
    uint8_t ct[VD_BLOCK_SIZE];
    uint8_t *bytes = commit_without_inplace(key, &size, ct, &ct_off, VD_ONEFLUSH_NEVER);
    vd_header hd;
    uint64_t found = flip_journal_copy(bytes, ct, &hd);
    vd_host *h = vt_host_mem_from(bytes, size);
    read_meta_ids(h, key, 0, VD_ERR_AUTH, 0);
    /* A read-only open reads the copy only when the block is read. */
    vd_image *img;
    vd_open_opts ro = {.read_only = 1};
    assert_int_equal(vd_image_open(h, key, &ro, &img), VD_OK);
    uint8_t b[VD_BLOCK_SIZE];
    uint32_t bad = (uint32_t)(ct_off / VDF_BLOCK - hd.data_start);
    assert_int_equal(vd_image_read(img, bad, 1, b), VD_ERR_AUTH);
    assert_int_equal(vd_image_close(img), VD_OK);
    /* Moving another image block into the copy's place fails too (bound to
     * its position): the data block's ciphertext instead of the copy. */
    bytes[found * VDF_BLOCK + 100] ^= 0x01;
    memcpy(bytes + found * VDF_BLOCK, bytes + (hd.data_start + NMETA) * VDF_BLOCK,
           VDF_BLOCK);
    assert_int_equal(vd_host_mem_set(h, bytes, size), VD_OK);
    read_meta_ids(h, key, 0, VD_ERR_AUTH, 0);
    vd_host_mem_free(h);
    free(bytes);
}

/* A one-flush commit's journal copy changed (or never written: the same
 * thing to the reader, a crash before the flush): the record is not in
 * force and the open falls back to the commit before, which had none of
 * these blocks. The changed bytes are never read; the freshness anchor is
 * what tells a dropped acknowledged commit from a crash (test_anchor). */
static void redo_one_flush_journal_changed_falls_back_to_the_commit_before(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES] = {2, 7, 1, 8, 2};
    uint64_t size, ct_off;
    uint8_t ct[VD_BLOCK_SIZE];
    uint8_t *bytes = commit_without_inplace(key, &size, ct, &ct_off, 0);
    vd_header hd;
    (void)flip_journal_copy(bytes, ct, &hd);
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    for (int ro = 1; ro >= 0; ro--) {
        assert_int_equal(vd_host_mem_set(h, bytes, size), VD_OK);
        vd_image *img;
        vd_open_opts o = {.read_only = ro};
        VT_EXPECT_ERR(vd_image_open(h, key, &o, &img), VD_OK, "open ro=%d", ro);
        vd_image_info info;
        assert_int_equal(vd_image_info_get(img, &info), VD_OK);
        assert_true(info.recovered);
        uint8_t b[VD_BLOCK_SIZE], zero[VD_BLOCK_SIZE] = {0};
        for (uint32_t m = 0; m <= NMETA; m++) {
            VT_EXPECT_ERR(vd_image_read(img, m, 1, b), VD_OK, "read %u ro=%d", m, ro);
            if (m < 5 || m == NMETA) /* as the sync before wrote them */
                assert_int_equal(vt_block_identify(b, m), 3);
            else
                assert_memory_equal(b, zero, VD_BLOCK_SIZE); /* never written */
        }
        assert_int_equal(vd_image_close(img), VD_OK);
    }
    vd_host_mem_free(h);
    free(bytes);
}

/* Format 5: a one-flush commit of blocks the tree had never written puts
 * them straight in place before its one flush, and nothing after it: each
 * block written once. Its digest covers them where they lie, so a crash
 * that kept the record and lost one of them leaves the record not in force
 * (the commit before is, which reads the block as zeros); kept, it is. */
static void redo_one_flush_fresh_blocks_go_in_place_before_the_flush(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES] = {5, 0, 5};
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_image *img;
    vd_create_opts c = {.nblocks = NBLOCKS, .fanout = 16, .journal_blocks = 16};
    assert_int_equal(vd_image_create(vd_rec_host(rec), key, &c, NULL, &img), VD_OK);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    uint8_t b[VD_BLOCK_SIZE];
    vd_image_op_begin(img);
    for (uint32_t m = 0; m < 3; m++) {
        vt_block_fill(b, m, 5);
        assert_int_equal(vd_image_write_meta(img, m, 1, b), VD_OK);
    }
    for (uint32_t m = NMETA; m < NMETA + 4; m++) {
        vt_block_fill(b, m, 5);
        assert_int_equal(vd_image_write(img, m, 1, b), VD_OK);
    }
    vd_image_op_end(img);
    assert_int_equal(vd_image_sync(img), VD_OK);
    uint64_t live_size;
    vd_header hd;
    assert_int_equal(vd_header_decode(&hd, vd_rec_live(rec, &live_size)), 0);
    size_t n = vd_rec_op_count(rec), last_flush = SIZE_MAX, nflush = 0, data_op = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        vd_rec_op_info oi;
        assert_int_equal(vd_rec_op_get(rec, i, &oi), VD_OK);
        if (oi.kind == VD_REC_FLUSH) {
            last_flush = i;
            nflush++;
        } else if (oi.kind == VD_REC_WRITE && oi.offset <= (hd.data_start + NMETA + 1) * VDF_BLOCK &&
                   oi.offset + oi.length > (hd.data_start + NMETA + 1) * VDF_BLOCK) {
            data_op = i; /* the write that holds data block NMETA + 1 */
        }
    }
    assert_int_equal(nflush, 1);
    assert_int_equal(last_flush, n - 1); /* nothing in place after it */
    assert_true(data_op < last_flush);
    assert_int_equal(vd_image_close(img), VD_OK);

    size_t tail = vd_rec_tail_first(rec, last_flush);
    assert_true(tail <= data_op);
    uint8_t mask[64];
    assert_true(last_flush - tail <= sizeof mask * 8);
    for (int lose = 0; lose <= 1; lose++) {
        memset(mask, 0xff, sizeof mask);
        if (lose)
            mask[(data_op - tail) / 8] &= (uint8_t) ~(1u << ((data_op - tail) % 8));
        uint64_t size;
        uint8_t *bytes = vd_rec_crash_image(rec, last_flush, mask, 0, 0, &size);
        assert_non_null(bytes);
        vd_host *h;
        assert_int_equal(vd_host_mem_new(&h), VD_OK);
        for (int ro = 1; ro >= 0; ro--) {
            assert_int_equal(vd_host_mem_set(h, bytes, size), VD_OK);
            vd_open_opts o = {.read_only = ro};
            VT_EXPECT_ERR(vd_image_open(h, key, &o, &img), VD_OK, "open lose=%d ro=%d", lose, ro);
            vd_image_info info;
            assert_int_equal(vd_image_info_get(img, &info), VD_OK);
            assert_int_equal(info.recovered, lose);
            static const uint8_t zero[VD_BLOCK_SIZE];
            for (uint32_t m = NMETA; m < NMETA + 4; m++) {
                VT_EXPECT_ERR(vd_image_read(img, m, 1, b), VD_OK, "read %u", m);
                if (lose)
                    assert_memory_equal(b, zero, VD_BLOCK_SIZE);
                else
                    assert_int_equal(vt_block_identify(b, m), 5);
            }
            assert_int_equal(vd_image_close(img), VD_OK);
        }
        vd_host_mem_free(h);
        free(bytes);
    }
    vd_rec_free(rec);
}

/* Periodic commits (vd_open_opts.commit_interval_ns) and the clean flag:
 * a volume written through the file system and never synced, then
 * "killed" (the host's bytes taken as they are, no close). */
static void periodic_run(int64_t interval, int *found, int *unclean)
{
    uint8_t key[VD_KEY_BYTES] = {9, 9, 9};
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_image *img;
    vd_create_opts c = {.nblocks = 16384};
    assert_int_equal(vd_image_create(vd_rec_host(rec), key, &c, NULL, &img), VD_OK);
    assert_int_equal(vd_fs_format(img, NULL), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_open_opts o = {.commit_interval_ns = interval};
    assert_int_equal(vd_image_open(vd_rec_host(rec), key, &o, &img), VD_OK);
    vd_fs *fs;
    assert_int_equal(vd_fs_mount(img, NULL, &fs), VD_OK);
    vd_file *f;
    size_t done;
    /* The recorder's clock moves 1 ms per call: the interval passes. */
    assert_int_equal(vd_file_open(fs, "/a.txt", VD_O_WRONLY | VD_O_CREAT, &f), VD_OK);
    assert_int_equal(vd_file_write(f, 0, "periodic", 8, &done), VD_OK);
    assert_int_equal(vd_file_close(f), VD_OK);
    assert_int_equal(vd_fs_mkdir(fs, "/d"), VD_OK);
    /* Killed: whatever reached the host, no unmount, no close. */
    vd_host *h;
    assert_int_equal(vd_rec_crash_host(rec, vd_rec_op_count(rec), NULL, 0, 0, &h), VD_OK);
    vd_image *img2;
    vd_open_opts ro = {.read_only = 1};
    assert_int_equal(vd_image_open(h, key, &ro, &img2), VD_OK);
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img2, &info), VD_OK);
    *unclean = info.unclean;
    vd_fs *fs2;
    vd_fs_opts fro = {.read_only = 1};
    assert_int_equal(vd_fs_mount(img2, &fro, &fs2), VD_OK);
    vd_stat st;
    *found = vd_fs_stat(fs2, "/a.txt", &st) == VD_OK && st.size == 8 &&
             vd_fs_stat(fs2, "/d", &st) == VD_OK;
    assert_int_equal(vd_fs_unmount(fs2), VD_OK);
    assert_int_equal(vd_image_close(img2), VD_OK);
    vd_host_mem_free(h);
    /* Now close cleanly: the next open says so. */
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open(vd_rec_host(rec), key, &ro, &img2), VD_OK);
    assert_int_equal(vd_image_info_get(img2, &info), VD_OK);
    assert_int_equal(info.unclean, 0);
    assert_int_equal(vd_image_close(img2), VD_OK);
    vd_rec_free(rec);
}

static void periodic_commits_bound_the_loss_and_unclean_is_reported(void **state)
{
    (void)state;
    int found, unclean;
    periodic_run(1000000, &found, &unclean); /* 1 ms */
    assert_true(found);
    assert_true(unclean);
    periodic_run(0, &found, &unclean); /* only sync and close commit */
    assert_false(found);
    assert_false(unclean);
}

static void periodic_needs_a_clock(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    uint8_t key[VD_KEY_BYTES] = {1};
    vd_create_opts c = {.nblocks = 64};
    vd_image *img;
    assert_int_equal(vd_image_create(h, key, &c, NULL, &img), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_host noclock = *h;
    noclock.now = NULL;
    vd_open_opts o = {.commit_interval_ns = 5000000000};
    assert_int_equal(vd_image_open(&noclock, key, &o, &img), VD_ERR_INVAL);
    o.commit_interval_ns = -1;
    assert_int_equal(vd_image_open(h, key, &o, &img), VD_ERR_INVAL);
    vd_host_mem_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redo_every_crash_state_shows_one_operation_boundary),
        cmocka_unit_test(redo_mutation_without_journal_mixes_operations),
        cmocka_unit_test(redo_replays_a_commit_whose_metadata_is_not_in_place),
        cmocka_unit_test(redo_replays_a_one_flush_commit_not_in_place),
        cmocka_unit_test(redo_journal_copy_changed_by_the_host_is_caught),
        cmocka_unit_test(redo_one_flush_journal_changed_falls_back_to_the_commit_before),
        cmocka_unit_test(redo_one_flush_fresh_blocks_go_in_place_before_the_flush),
        cmocka_unit_test(periodic_commits_bound_the_loss_and_unclean_is_reported),
        cmocka_unit_test(periodic_needs_a_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
