/* Key rotation (vd_image_rekey, SECURITY.md R8) under the crash harness:
 * a rotation runs on the recording backend; every prefix of its write log,
 * and in each flush epoch random subsets of the tail in random order, is
 * a crash state that must
 *   - open read-only with the old secret or the new one (never neither),
 *     and read every block exactly as before the rotation;
 *   - refuse writable opens while the rotation is in progress
 *     (VD_ERR_REKEY);
 *   - for a sample of states, finish when vd_image_rekey runs again (with
 *     whichever secret opens it), after which the new secret opens the
 *     same contents, and the old secret and the old master key are
 *     VD_ERR_WRONG_KEY.
 * The harness also runs on an image grown by vd_image_grow (its tree one
 * level higher, blocks written past the old end; refused as unsupported
 * before), and that image grows again after the rotation. Also: an image
 * that was never written, a rotation stopped by its progress callback and
 * resumed, a rotation of an image whose grow was interrupted at every
 * point (then grown again), and a pre-rotation copy refused by a file
 * anchor. Seeds: VD_CRASH_SEED. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

#include "record.h"
#include "replay.h"
#include "vdisk/anchor.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

typedef struct fixture {
    uint64_t nblocks;
    uint8_t master[VD_KEY_BYTES]; /* the old master key (raw API) */
    uint8_t k1[VD_KEYFILE_BYTES]; /* old key file (dropped by the rotation) */
    uint8_t k2[VD_KEYFILE_BYTES]; /* new key file */
    uint32_t *ids;                /* expected content per block (0: zeros) */
    uint32_t log_len;             /* log blocks named when made (format 6) */
} fixture;

static vd_unlock key_of(const uint8_t *k)
{
    return (vd_unlock){VD_SLOT_KEYFILE, k, VD_KEYFILE_BYTES};
}

/* An image with written blocks and gaps, a key-file slot for k1. */
static void make_image_c(fixture *f, vd_host *h, uint64_t nblocks, uint32_t fanout,
                         uint32_t journal, uint64_t seed, vd_cipher cipher)
{
    memset(f, 0, sizeof *f);
    f->nblocks = nblocks;
    f->ids = calloc(nblocks, sizeof *f->ids);
    assert_non_null(f->ids);
    uint64_t rng = seed;
    for (unsigned i = 0; i < VD_KEY_BYTES; i++) {
        f->master[i] = (uint8_t)vt_rand(&rng);
        f->k1[i] = (uint8_t)vt_rand(&rng);
        f->k2[i] = (uint8_t)vt_rand(&rng);
    }
    vd_create_opts c = {.nblocks = nblocks, .fanout = fanout, .journal_blocks = journal,
                        .cipher = cipher};
    vd_image *img;
    assert_int_equal(vd_image_create(h, f->master, &c, NULL, &img), VD_OK);
    vd_unlock u = key_of(f->k1);
    assert_int_equal(vd_keyslot_add(img, &u, NULL, NULL), VD_OK);
    uint8_t b[VD_BLOCK_SIZE];
    for (uint64_t lbn = 0; lbn < nblocks; lbn++) {
        if (vt_rand(&rng) % 4 == 0)
            continue; /* never written */
        f->ids[lbn] = (uint32_t)(lbn + 1);
        vt_block_fill(b, lbn, f->ids[lbn]);
        assert_int_equal(vd_image_write(img, lbn, 1, b), VD_OK);
        if (vt_rand(&rng) % 64 == 0)
            assert_int_equal(vd_image_sync(img), VD_OK);
    }
    assert_int_equal(vd_image_sync(img), VD_OK);
    /* Then single blocks rewritten, each synced: log commits where the
     * journal takes their drain, so the rotation starts over a log. */
    for (uint64_t k = 0; k < 3; k++) {
        uint64_t lbn = (k * 7919 + 11) % nblocks;
        f->ids[lbn] = (uint32_t)(lbn + 1 + (1u << 24));
        vt_block_fill(b, lbn, f->ids[lbn]);
        assert_int_equal(vd_image_write(img, lbn, 1, b), VD_OK);
        assert_int_equal(vd_image_sync(img), VD_OK);
    }
    vd_image_info ii;
    assert_int_equal(vd_image_info_get(img, &ii), VD_OK);
    f->log_len = ii.log_len;
    assert_int_equal(vd_image_close(img), VD_OK);
}

static void make_image(fixture *f, vd_host *h, uint64_t nblocks, uint32_t fanout,
                       uint32_t journal, uint64_t seed)
{
    make_image_c(f, h, nblocks, fanout, journal, seed, VD_CIPHER_AES256GCM);
}

/* Grow the image to nblocks (vd_image_grow, opened with `key` or, NULL,
 * the raw master key) and write every third block past the old end. */
static void grow_image(fixture *f, vd_host *h, const uint8_t *key, uint64_t nblocks)
{
    vd_image *img;
    if (key) {
        vd_unlock u = key_of(key);
        assert_int_equal(vd_image_open_unlock(h, &u, NULL, &img), VD_OK);
    } else {
        assert_int_equal(vd_image_open(h, f->master, NULL, &img), VD_OK);
    }
    assert_int_equal(vd_image_grow(img, nblocks), VD_OK);
    f->ids = realloc(f->ids, nblocks * sizeof *f->ids);
    assert_non_null(f->ids);
    uint8_t b[VD_BLOCK_SIZE];
    for (uint64_t lbn = f->nblocks; lbn < nblocks; lbn++) {
        f->ids[lbn] = lbn % 3 == 0 ? (uint32_t)(lbn + 7) : 0;
        if (!f->ids[lbn])
            continue;
        vt_block_fill(b, lbn, f->ids[lbn]);
        assert_int_equal(vd_image_write(img, lbn, 1, b), VD_OK);
    }
    f->nblocks = nblocks;
    assert_int_equal(vd_image_close(img), VD_OK);
}

static void check_content(const fixture *f, vd_image *img, const char *what, size_t point)
{
    uint8_t *buf = malloc(64 * VD_BLOCK_SIZE);
    assert_non_null(buf);
    for (uint64_t x = 0; x < f->nblocks; x += 64) {
        uint32_t n = (uint32_t)(f->nblocks - x < 64 ? f->nblocks - x : 64);
        vd_err e = vd_image_read(img, x, n, buf);
        if (e != VD_OK) {
            vd_bad_range bad;
            if (vd_image_last_failure(img, &bad) == VD_OK)
                fprintf(stderr, "%s: point %zu: the failure is at level %u, block %llu\n",
                        what, point, bad.level, (unsigned long long)bad.first_lbn);
            fprintf(stderr, "%s: point %zu: read %llu+%u: %s\n", what, point,
                    (unsigned long long)x, n, vd_strerror(e));
            fail();
        }
        for (uint32_t k = 0; k < n; k++) {
            const uint8_t *p = buf + (size_t)k * VD_BLOCK_SIZE;
            int64_t id = f->ids[x + k] ? vt_block_identify(p, x + k) : 0;
            int ok = f->ids[x + k] ? id == (int64_t)f->ids[x + k] : p[0] == 0 && !memcmp(p, p + 1, VD_BLOCK_SIZE - 1);
            if (!ok) {
                fprintf(stderr, "%s: point %zu: block %llu holds %lld, want %u\n", what,
                        point, (unsigned long long)(x + k), (long long)id, f->ids[x + k]);
                fail();
            }
        }
    }
    free(buf);
}

static vd_err rekey_to_k2(const fixture *f, vd_host *h, const uint8_t *unlock_key,
                          vd_rekey_info *info)
{
    vd_unlock u = key_of(unlock_key);
    vd_rekey_slot slot = {key_of(f->k2), NULL};
    vd_rekey_opts o = {.slots = &slot, .nslots = 1};
    return vd_image_rekey(h, &u, &o, info);
}

/* After a finished rotation: k2 opens the same contents; k1 and the old
 * master key are wrong keys; the image is no longer in a rotation. */
static void check_done(const fixture *f, vd_host *h, const char *what, size_t point)
{
    vd_image *img;
    vd_unlock u2 = key_of(f->k2), u1 = key_of(f->k1);
    vd_open_opts ro = {.read_only = 1};
    vd_err e = vd_image_open_unlock(h, &u2, &ro, &img);
    if (e != VD_OK) {
        fprintf(stderr, "%s: point %zu: new key: %s\n", what, point, vd_strerror(e));
        fail();
    }
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(info.rekey, 0);
    check_content(f, img, what, point);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open_unlock(h, &u1, &ro, &img), VD_ERR_WRONG_KEY);
    assert_int_equal(vd_image_open(h, f->master, &ro, &img), VD_ERR_WRONG_KEY);
    /* Writable, and a write committed under the new key reads back. */
    assert_int_equal(vd_image_open_unlock(h, &u2, NULL, &img), VD_OK);
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, 0, 0xABCD);
    assert_int_equal(vd_image_write(img, 0, 1, b), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open_unlock(h, &u2, &ro, &img), VD_OK);
    assert_int_equal(vd_image_read(img, 0, 1, b), VD_OK);
    assert_int_equal(vt_block_identify(b, 0), 0xABCD);
    assert_int_equal(vd_image_close(img), VD_OK);
}

/* One crash state: some secret opens it read-only with the old contents;
 * deep: a second vd_image_rekey finishes it. */
static void check_state(const fixture *f, vd_host *h, size_t point, int deep,
                        unsigned *n_old, unsigned *n_new, unsigned *n_mid)
{
    vd_image *img;
    vd_open_opts ro = {.read_only = 1, .cache_bytes = 1 << 20};
    vd_unlock u1 = key_of(f->k1), u2 = key_of(f->k2);
    vd_err e1 = vd_image_open_unlock(h, &u1, &ro, &img);
    if (e1 == VD_OK) {
        check_content(f, img, "old key", point);
        assert_int_equal(vd_image_close(img), VD_OK);
    }
    vd_err e2 = vd_image_open_unlock(h, &u2, &ro, &img);
    int mid = 0;
    if (e2 == VD_OK) {
        vd_image_info info;
        assert_int_equal(vd_image_info_get(img, &info), VD_OK);
        mid = info.rekey;
        check_content(f, img, "new key", point);
        assert_int_equal(vd_image_close(img), VD_OK);
    }
    if (e1 != VD_OK && e2 != VD_OK) {
        fprintf(stderr, "point %zu: no secret opens the image: old %s, new %s\n", point,
                vd_strerror(e1), vd_strerror(e2));
        fail();
    }
    /* Either key's refusal is a wrong key, never "corrupt" or "tampered". */
    assert_true(e1 == VD_OK || e1 == VD_ERR_WRONG_KEY);
    assert_true(e2 == VD_OK || e2 == VD_ERR_WRONG_KEY);
    *n_old += e1 == VD_OK;
    *n_new += e2 == VD_OK;
    *n_mid += mid;
    if (mid) { /* only vd_image_rekey writes while a rotation runs */
        assert_int_equal(vd_image_open_unlock(h, &u2, NULL, &img), VD_ERR_REKEY);
    }
    if (!deep)
        return;
    vd_rekey_info info;
    vd_err e = rekey_to_k2(f, h, e2 == VD_OK ? f->k2 : f->k1, &info);
    if (e != VD_OK) {
        fprintf(stderr, "point %zu: rekey again: %s\n", point, vd_strerror(e));
        fail();
    }
    if (mid && !info.resumed) { /* a rotation in progress is continued */
        fprintf(stderr, "point %zu: rekey again started anew\n", point);
        fail();
    }
    check_done(f, h, "resumed", point);
}

/* The crash states a rotation's log holds, and what they showed. */
typedef struct rekey_walk {
    const fixture *f;
    unsigned deep_every; /* every deep_every-th prefix is finished (0: none) */
    unsigned n_old, n_new, n_mid, points, deep;
} rekey_walk;

static void rekey_prefix_state(void *ctx, vd_host *h, size_t p, unsigned subset)
{
    rekey_walk *r = ctx;
    (void)subset;
    int d = r->deep_every && p % r->deep_every == 0;
    check_state(r->f, h, p, d, &r->n_old, &r->n_new, &r->n_mid);
    r->deep += d;
    r->points++;
}

/* The first subset of each epoch is finished too. */
static void rekey_subset_state(void *ctx, vd_host *h, size_t end, unsigned m)
{
    rekey_walk *r = ctx;
    int d = m == 0 && r->deep_every;
    check_state(r->f, h, end, d, &r->n_old, &r->n_new, &r->n_mid);
    r->deep += d;
    r->points++;
}

/* grow_to: grow the image to that many blocks before the rotation (0: not
 * grown), and once more after it. */
static void crash_rekey(uint64_t nblocks, uint32_t fanout, uint32_t journal,
                        uint64_t seed, unsigned deep_every, unsigned masks,
                        uint64_t grow_to)
{
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    fixture f;
    make_image(&f, vd_rec_host(rec), nblocks, fanout, journal, seed);
    printf("rekey crash harness: the image names %u log blocks\n", f.log_len);
    if (journal >= 8) /* room for the log's drain: the rotation seals it first */
        assert_true(f.log_len > 0);
    if (grow_to)
        grow_image(&f, vd_rec_host(rec), NULL, grow_to);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    vd_rekey_info info;
    assert_int_equal(rekey_to_k2(&f, vd_rec_host(rec), f.k1, &info), VD_OK);
    assert_int_equal(info.resumed, 0);
    size_t nops = vd_rec_op_count(rec);
    printf("rekey crash harness: %llu blocks, fan-out %u, journal %u, seed %llu: "
           "%llu blocks re-encrypted, %zu ops, %zu flushes, %zu rounds in flight\n",
           (unsigned long long)nblocks, fanout, journal, (unsigned long long)seed,
           (unsigned long long)info.blocks, nops, vd_rec_flush_count(rec),
           vd_rec_jobs_started(rec));
    /* The states below include those of rounds whose writes ran on the
     * host's thread while the next round was resealed (not for a grown
     * image, whose nodes lie after the data). */
    if (!grow_to)
        assert_true(vd_rec_jobs_started(rec) > 0);
    vd_host *fin;
    assert_int_equal(vd_rec_crash_host(rec, nops, NULL, 0, 0, &fin), VD_OK);
    check_done(&f, fin, "uninterrupted", nops); /* writes: on a copy */
    if (grow_to) {
        /* A grow after the rotation, under the new key. */
        fixture g = f;
        g.ids = malloc(f.nblocks * sizeof *g.ids);
        assert_non_null(g.ids);
        memcpy(g.ids, f.ids, f.nblocks * sizeof *g.ids);
        g.ids[0] = 0xABCD; /* check_done's write */
        grow_image(&g, fin, g.k2, grow_to + grow_to / 2);
        vd_image *img;
        vd_unlock u2 = key_of(g.k2);
        vd_open_opts ro = {.read_only = 1};
        assert_int_equal(vd_image_open_unlock(fin, &u2, &ro, &img), VD_OK);
        check_content(&g, img, "grown after the rotation", nops);
        assert_int_equal(vd_image_close(img), VD_OK);
        free(g.ids);
    }
    vd_host_mem_free(fin);

    rekey_walk r = {.f = &f, .deep_every = deep_every};
    vt_replay_prefixes(rec, rekey_prefix_state, &r);
    uint64_t mrng = seed ^ 0x5a5a;
    vt_replay_epoch_subsets(rec, masks, &mrng, rekey_subset_state, &r);
    printf("  %u crash states: %u open with the old key, %u with the new one, %u "
           "mid-rotation; %u finished by a second rekey\n",
           r.points, r.n_old, r.n_new, r.n_mid, r.deep);
    /* The harness reached both sides of the slot swap and the middle. */
    assert_true(r.n_old > 0 && r.n_new > 0 && r.n_mid > 0);
    free(f.ids);
    vd_rec_free(rec);
}

static void rekey_crash_points_deep_tree(void **state)
{
    (void)state;
    /* Fan-out 4 and a one-block journal: many rounds, long paths. */
    crash_rekey(300, 4, 1, vt_seed_from_env("VD_CRASH_SEED", 20261206), 3, 2, 0);
}

static void rekey_crash_points_default_fanout(void **state)
{
    (void)state;
    crash_rekey(2000, 128, 8, vt_seed_from_env("VD_CRASH_SEED", 1206), 4, 2, 0);
}

static void rekey_crash_points_grown_image(void **state)
{
    (void)state;
    /* 300 blocks at fan-out 4 (5 levels) grown to 1100 (6 levels). */
    crash_rekey(300, 4, 1, vt_seed_from_env("VD_CRASH_SEED", 18), 3, 2, 1100);
}

/* A grow interrupted at every point of its write log (the header naming
 * both geometries, the file longer, the new tree written or not, the
 * switch record written or not), then a rotation of what opens, then the
 * grow again under the new key: the contents stay, at the new size. */
static void rekey_after_interrupted_grow(void **state)
{
    (void)state;
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    fixture f;
    make_image(&f, vd_rec_host(rec), 300, 4, 1, vt_seed_from_env("VD_CRASH_SEED", 1818));
    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    vd_image *img;
    assert_int_equal(vd_image_open(vd_rec_host(rec), f.master, NULL, &img), VD_OK);
    assert_int_equal(vd_image_grow(img, 1100), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    size_t nops = vd_rec_op_count(rec);
    unsigned grown = 0;
    for (size_t p = 0; p <= nops; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_host(rec, p, NULL, 0, 0, &h), VD_OK);
        vd_rekey_info info;
        vd_err e = rekey_to_k2(&f, h, f.k1, &info);
        if (e != VD_OK) {
            fprintf(stderr, "grow point %zu: rekey: %s\n", p, vd_strerror(e));
            fail();
        }
        check_done(&f, h, "after an interrupted grow", p);
        vd_unlock u2 = key_of(f.k2);
        assert_int_equal(vd_image_open_unlock(h, &u2, NULL, &img), VD_OK);
        vd_image_info ii;
        assert_int_equal(vd_image_info_get(img, &ii), VD_OK);
        grown += ii.nblocks == 1100;
        if (ii.nblocks < 1100)
            assert_int_equal(vd_image_grow(img, 1100), VD_OK);
        assert_int_equal(vd_image_close(img), VD_OK);
        vd_open_opts ro = {.read_only = 1};
        assert_int_equal(vd_image_open_unlock(h, &u2, &ro, &img), VD_OK);
        assert_int_equal(vd_image_info_get(img, &ii), VD_OK);
        assert_int_equal(ii.nblocks, 1100);
        fixture g = f;
        g.ids = calloc(1100, sizeof *g.ids);
        assert_non_null(g.ids);
        memcpy(g.ids, f.ids, f.nblocks * sizeof *g.ids);
        g.ids[0] = 0xABCD; /* check_done's write */
        g.nblocks = 1100;
        check_content(&g, img, "grown again", p);
        free(g.ids);
        assert_int_equal(vd_image_close(img), VD_OK);
        vd_host_mem_free(h);
    }
    printf("rekey after an interrupted grow: %zu points, %u already at the new size\n",
           nops + 1, grown);
    assert_true(grown > 0 && grown <= nops);
    free(f.ids);
    vd_rec_free(rec);
}

static void rekey_of_an_empty_image(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    fixture f;
    memset(&f, 0, sizeof f);
    f.nblocks = 100;
    f.ids = calloc(f.nblocks, sizeof *f.ids);
    for (unsigned i = 0; i < VD_KEY_BYTES; i++) {
        f.master[i] = (uint8_t)(i + 1);
        f.k1[i] = (uint8_t)(i + 2);
        f.k2[i] = (uint8_t)(i + 3);
    }
    vd_create_opts c = {.nblocks = f.nblocks};
    vd_image *img;
    assert_int_equal(vd_image_create(h, f.master, &c, NULL, &img), VD_OK);
    vd_unlock u = key_of(f.k1);
    assert_int_equal(vd_keyslot_add(img, &u, NULL, NULL), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_rekey_info info;
    assert_int_equal(rekey_to_k2(&f, h, f.k1, &info), VD_OK);
    assert_int_equal(info.blocks, 0);
    check_done(&f, h, "empty", 0);
    free(f.ids);
    vd_host_mem_free(h);
}

static void rekey_xchacha_image(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    fixture f;
    make_image_c(&f, h, 500, 8, 2, 5, VD_CIPHER_XCHACHA20POLY1305);
    vd_rekey_info info;
    assert_int_equal(rekey_to_k2(&f, h, f.k1, &info), VD_OK);
    assert_true(info.blocks > 300);
    check_done(&f, h, "xchacha", 0);
    free(f.ids);
    vd_host_mem_free(h);
}

static int stop_after_two(void *ctx, uint64_t done, uint64_t total)
{
    (void)done;
    (void)total;
    int *n = ctx;
    return ++*n >= 2;
}

static void rekey_stopped_and_resumed(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    fixture f;
    make_image(&f, h, 600, 4, 1, 99);
    vd_unlock u1 = key_of(f.k1), u2 = key_of(f.k2);
    vd_rekey_slot slot = {u2, NULL};
    int calls = 0;
    vd_rekey_opts o = {.slots = &slot, .nslots = 1, .progress = stop_after_two,
                       .progress_ctx = &calls};
    vd_rekey_info info;
    assert_int_equal(vd_image_rekey(h, &u1, &o, &info), VD_ERR_REKEY);
    assert_true(info.blocks > 0);
    /* Mid-rotation: the old secret's slot is gone, the new one reads. */
    vd_image *img;
    vd_open_opts ro = {.read_only = 1};
    assert_int_equal(vd_image_open_unlock(h, &u1, &ro, &img), VD_ERR_WRONG_KEY);
    assert_int_equal(vd_image_open(h, f.master, &ro, &img), VD_ERR_WRONG_KEY);
    assert_int_equal(vd_image_open_unlock(h, &u2, &ro, &img), VD_OK);
    vd_image_info ii;
    assert_int_equal(vd_image_info_get(img, &ii), VD_OK);
    assert_int_equal(ii.rekey, 1);
    check_content(&f, img, "stopped", 0);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(vd_image_open_unlock(h, &u2, NULL, &img), VD_ERR_REKEY);
    /* The old secret cannot resume it; the new one does. */
    o.progress = NULL;
    assert_int_equal(vd_image_rekey(h, &u1, &o, &info), VD_ERR_WRONG_KEY);
    assert_int_equal(vd_image_rekey(h, &u2, &o, &info), VD_OK);
    assert_int_equal(info.resumed, 1);
    check_done(&f, h, "resumed", 0);
    free(f.ids);
    vd_host_mem_free(h);
}

/* With a file anchor, a copy of the image taken before the rotation opens
 * (with the old secret it still has a slot for) as a rollback. */
static void rekey_with_anchor_refuses_old_copy(void **state)
{
    (void)state;
    char dir[] = "/tmp/vd-rekey-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char apath[64];
    snprintf(apath, sizeof apath, "%s/anchor", dir);
    vd_anchor *a;
    assert_int_equal(vd_anchor_file_open(apath, 1, &a, NULL), VD_OK);
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    fixture f;
    memset(&f, 0, sizeof f);
    for (unsigned i = 0; i < VD_KEY_BYTES; i++) {
        f.k1[i] = (uint8_t)(i + 7);
        f.k2[i] = (uint8_t)(i + 9);
    }
    vd_unlock u1 = key_of(f.k1), u2 = key_of(f.k2);
    vd_create_opts c = {.nblocks = 64};
    vd_open_opts oo = {.anchor = a};
    vd_image *img;
    assert_int_equal(vd_image_create_unlock(h, &u1, NULL, &c, &oo, &img), VD_OK);
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, 3, 33);
    assert_int_equal(vd_image_write(img, 3, 1, b), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    uint64_t size;
    uint8_t *copy = vt_host_mem_copy(h, &size);

    vd_rekey_slot slot = {u2, NULL};
    vd_rekey_opts ro = {.slots = &slot, .nslots = 1};
    vd_rekey_info info;
    /* A bound image needs its anchor: its binding moves to the new key. */
    assert_int_equal(vd_image_rekey(h, &u1, &ro, &info), VD_ERR_ANCHOR_MISMATCH);
    ro.open = &oo;
    assert_int_equal(vd_image_rekey(h, &u1, &ro, &info), VD_OK);

    assert_int_equal(vd_image_open_unlock(h, &u2, &oo, &img), VD_OK);
    assert_int_equal(vd_image_read(img, 3, 1, b), VD_OK);
    assert_int_equal(vt_block_identify(b, 3), 33);
    assert_int_equal(vd_image_close(img), VD_OK);

    vd_host *old = vt_host_mem_from(copy, size);
    vd_open_opts oro = {.anchor = a, .read_only = 1};
    assert_int_equal(vd_image_open_unlock(old, &u1, &oro, &img), VD_ERR_ROLLBACK);
    assert_int_equal(vd_image_open_unlock(old, &u1, &oo, &img), VD_ERR_ROLLBACK);
    assert_int_equal(vd_image_open_unlock(old, &u2, &oro, &img), VD_ERR_WRONG_KEY);
    /* and the current image still opens with the anchor afterwards */
    assert_int_equal(vd_image_open_unlock(h, &u2, &oro, &img), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_host_mem_free(old);
    vd_host_mem_free(h);
    free(copy);
    vd_anchor_file_close(a);
    unlink(apath);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rekey_of_an_empty_image),
        cmocka_unit_test(rekey_xchacha_image),
        cmocka_unit_test(rekey_stopped_and_resumed),
        cmocka_unit_test(rekey_with_anchor_refuses_old_copy),
        cmocka_unit_test(rekey_crash_points_deep_tree),
        cmocka_unit_test(rekey_crash_points_default_fanout),
        cmocka_unit_test(rekey_crash_points_grown_image),
        cmocka_unit_test(rekey_after_interrupted_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
