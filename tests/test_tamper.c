/* tests/test_tamper.c — the tamper harness: a hostile host edits the image
 * at rest, and the library must either refuse it or return exactly the
 * authentic content, never other bytes, never crash, never write.
 *
 * Every case works on a fresh copy of a reference image built here on a
 * memory host (key KEY, 300 logical blocks: a tree of height 2 with three
 * level-1 nodes under the root), opens it READ-ONLY through a wrapper host
 * that counts mutating calls, reads every logical block one by one, and
 * classifies what happened:
 *   - open fails: only VD_ERR_CORRUPT, VD_ERR_AUTH, VD_ERR_UNSUPPORTED (or
 *     the code a case names: WRONG_KEY, ROLLBACK) are acceptable;
 *   - open succeeds: each read returns the reference content exactly, or
 *     fails with VD_ERR_AUTH (output wiped to zeros) or VD_ERR_FAILED (the
 *     sticky state after a node failed authentication; never before the
 *     first AUTH of that handle);
 *   - the host saw no write/flush/truncate and the bytes are unchanged.
 *
 * The single-bit-flip sweep (test_flip_*) also demands DETECTION: every
 * flip outside bytes that hold no state must make the open or some read
 * fail. Bytes holding no state in format 1 are: the key-slot block (block
 * 1, reserved), journal blocks not referenced by an IN_PROGRESS superblock,
 * and data/node blocks whose version in the tree is "never written"
 * (keyid 0: blocks of subtrees no write ever touched). They are computed
 * from the header fields (vd_header_decode, cross-checked with
 * vd_image_probe) and from which logical blocks the builder wrote.
 *
 * Cost: a flip that opens reads and verifies all 300 blocks: ~0.65 ms of
 * CPU in a Debug build (measured; mostly AES-GCM). Every byte of one image
 * is ~1.28 M flips, ~15 CPU-minutes per variant, far beyond a minute; so
 * by default the sweep flips EVERY byte of the metadata (header,
 * superblocks, node region, VHD footer, journal blocks in use) and a
 * SAMPLE of the data region and of the no-state blocks (see
 * flip_sampled: denser on the main variant, with six whole data blocks at
 * the subtree edges; lighter on the other four), ~1.5 CPU-minutes for the
 * five variants. Set VD_TAMPER_FULL=1 to flip every byte of every file
 * (VD_TAMPER_FILTER=test_flip_main to run one variant). The summary line
 * says which mode ran.
 *
 * The image is the same bytes for every flip: the flipped byte is restored
 * after each open, which is equivalent to a fresh copy per flip. Only the
 * counting wrapper reaches those bytes, so "no mutating call" proves the
 * read-only handle wrote nothing; the whole image is also compared with
 * the pristine copy every 1024 flips and after the sweep.
 *
 * Every read's buffer is pre-filled with a sentinel, so "a failed read
 * leaves all zeros" is a real check (VD_ERR_FAILED included). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image_format.h"
#include "merkle/merkle.h"
#include "passthru.h"
#include "record.h"
#include "testkit.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define BLK VD_BLOCK_SIZE
#define NBLOCKS 300u
#define SENTINEL 0x5Au

static const uint8_t KEY[VD_KEY_BYTES] = {
    0x6b, 0x65, 0x79, 0x2d, 0x74, 0x61, 0x6d, 0x70, 0x65, 0x72, 0x2d, 0x30,
    0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c,
    0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44};

/* ---- global tally (summary line) ------------------------------------------ */

static uint64_t g_cases, g_detected;            /* structural cases */
static uint64_t g_flips, g_flips_detected;      /* single-bit flips */
static uint64_t g_flips_nostate;                /* flips in no-state bytes */
static int g_full_sweep;
/* VD_TAMPER_LIGHT=1 (sanitizer builds, where each case costs ~20x): every
 * region still sampled, more thinly; the Debug run keeps full coverage. */
static int g_light_sweep;

static void tally(int detected)
{
    g_cases++;
    if (detected)
        g_detected++;
}

/* ---- small helpers -------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* p[0..n) all equal v (memcmp against itself shifted: fast at -O0 too). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    return n == 0 || (p[0] == v && memcmp(p, p + 1, n - 1) == 0);
}

static uint64_t xs_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* Recognisable content of logical block lbn written in generation gen:
 * "TAMPERBK", lbn, gen, then a stream seeded by both. Distinct for every
 * (lbn, gen), never all zeros. */
static void fill_block(uint8_t *b, uint64_t lbn, uint32_t gen)
{
    uint64_t s = (lbn + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)gen << 40) ^ 0x5eed;
    memcpy(b, "TAMPERBK", 8);
    memcpy(b + 8, &lbn, 8);
    memcpy(b + 16, &gen, 4);
    memset(b + 20, 0, 4);
    for (size_t i = 24; i < BLK; i += 8) {
        uint64_t v = xs_next(&s);
        memcpy(b + i, &v, 8);
    }
}

/* Short names for the codes this harness meets; anything else (the enum
 * grows with the library) falls back to vd_strerror. */
static const char *errname(vd_err e)
{
    switch ((int)e) {
    case VD_OK: return "OK";
    case VD_ERR_IO: return "IO";
    case VD_ERR_AUTH: return "AUTH";
    case VD_ERR_ROLLBACK: return "ROLLBACK";
    case VD_ERR_WRONG_KEY: return "WRONG_KEY";
    case VD_ERR_CORRUPT: return "CORRUPT";
    case VD_ERR_NOSPC: return "NOSPC";
    case VD_ERR_INVAL: return "INVAL";
    case VD_ERR_NOMEM: return "NOMEM";
    case VD_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case VD_ERR_BUSY: return "BUSY";
    case VD_ERR_FAILED: return "FAILED";
    case VD_ERR_READONLY: return "READONLY";
    case VD_ERR_RANGE: return "RANGE";
    default: return vd_strerror(e);
    }
}

/* ---- a host wrapper that counts mutating calls ----------------------------- */

/* The forwarding host (passthru.h) with its write_at, flush and truncate
 * counted; no run_jobs, so every seal and open runs on the test's thread. */
typedef struct wrap_host {
    vt_passthru pt;     /* first: the callbacks' ctx */
    uint64_t mutations; /* write_at, flush, truncate calls */
} wrap_host;

static int w_write(void *ctx, uint64_t off, const void *buf, size_t len,
                   size_t *done)
{
    wrap_host *w = ctx;
    w->mutations++;
    return w->pt.inner->write_at(w->pt.inner->ctx, off, buf, len, done);
}

static int w_flush(void *ctx)
{
    wrap_host *w = ctx;
    w->mutations++;
    return w->pt.inner->flush(w->pt.inner->ctx);
}

static int w_truncate(void *ctx, uint64_t size)
{
    wrap_host *w = ctx;
    w->mutations++;
    return w->pt.inner->truncate(w->pt.inner->ctx, size);
}

static void wrap_init(wrap_host *w, vd_host *inner)
{
    w->mutations = 0;
    vt_passthru_init(&w->pt, inner, 0);
    w->pt.host.write_at = w_write;
    w->pt.host.flush = w_flush;
    w->pt.host.truncate = w_truncate;
}

/* ---- a freshness anchor in memory ------------------------------------------ */

typedef struct mem_anchor {
    vd_anchor a;
    uint64_t value;
    uint64_t advances;
} mem_anchor;

static int an_read(void *ctx, uint64_t *v)
{
    *v = ((mem_anchor *)ctx)->value;
    return 0;
}

static int an_advance(void *ctx, uint64_t v)
{
    mem_anchor *m = ctx;
    m->advances++;
    if (v < m->value)
        return -EINVAL;
    m->value = v;
    return 0;
}

static void anchor_init(mem_anchor *m, uint64_t value)
{
    memset(m, 0, sizeof *m);
    m->a.ctx = m;
    m->a.read = an_read;
    m->a.advance = an_advance;
    m->value = value;
}

/* ---- reference images -------------------------------------------------------- */

enum { R_HEADER, R_KEYSLOT, R_SUPER, R_JOURNAL, R_LOG, R_NODE, R_DATA, R_FOOTER, R_COUNT };
static const char *const region_name[R_COUNT] = {
    "header", "keyslot", "super", "journal", "log", "node", "data", "footer"};

typedef struct timg {
    const char *name;
    uint8_t *bytes;
    uint64_t size;
    vd_header hdr;
    mt_geometry geo;
    uint8_t *expect;  /* nblocks * BLK: what a read must return */
    uint8_t *written; /* per lbn: ever written (version keyid != 0) */
    uint8_t *nostate; /* per physical block: 1 = holds no state */
    uint64_t epoch;   /* last committed epoch */
    int in_progress;  /* newest superblock is IN_PROGRESS */
    int dense;        /* sampled sweep: denser data sample (main variant) */
    uint64_t jused_first, jused_count; /* journal blocks it references */
    uint32_t log_len; /* log blocks the newest record names (format 6) */
} timg;

static void timg_free(timg *t)
{
    free(t->bytes);
    free(t->expect);
    free(t->written);
    free(t->nostate);
    memset(t, 0, sizeof *t);
}

static void timg_copy(timg *dst, const timg *src, const char *name)
{
    *dst = *src;
    dst->name = name;
    dst->bytes = malloc(src->size);
    dst->expect = malloc(src->hdr.nblocks * BLK);
    dst->written = malloc(src->hdr.nblocks);
    dst->nostate = NULL;
    assert_non_null(dst->bytes);
    assert_non_null(dst->expect);
    assert_non_null(dst->written);
    memcpy(dst->bytes, src->bytes, src->size);
    memcpy(dst->expect, src->expect, src->hdr.nblocks * BLK);
    memcpy(dst->written, src->written, src->hdr.nblocks);
}

static uint8_t *host_bytes_copy(vd_host *h, uint64_t *size)
{
    uint64_t n;
    uint8_t *d = vd_host_mem_data(h, &n);
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, d, n);
    *size = n;
    return c;
}

/* Write generation gen of lbns first, first+stride, ... < end. */
static void write_gen(vd_image *img, timg *t, uint64_t first, uint64_t end,
                      uint64_t stride, uint32_t gen)
{
    uint8_t *b = malloc(BLK);
    assert_non_null(b);
    for (uint64_t l = first; l < end; l += stride) {
        fill_block(b, l, gen);
        assert_int_equal(vd_image_write(img, l, 1, b), VD_OK);
        memcpy(t->expect + l * BLK, b, BLK);
        t->written[l] = 1;
    }
    free(b);
}

static uint64_t committed_epoch(vd_image *img)
{
    vd_image_info info;
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    return info.epoch;
}

/* Layout from the image's own header: vd_header_decode on block 0, cross-
 * checked against vd_image_probe (the public, keyless view). */
static void timg_layout(timg *t)
{
    assert_true(t->size >= BLK);
    assert_int_equal(vd_header_decode(&t->hdr, t->bytes), 0);
    assert_int_equal(mt_geometry_init(&t->geo, t->hdr.nblocks, t->hdr.fanout), 0);

    vd_host *h;
    vd_image_info info;
    h = vt_host_mem_from(t->bytes, t->size);
    assert_int_equal(vd_image_probe(h, &info), VD_OK);
    vd_host_mem_free(h);
    assert_int_equal(info.nblocks, t->hdr.nblocks);
    assert_int_equal(info.total_blocks, t->hdr.total_blocks);
    assert_int_equal(info.node_blocks, t->hdr.node_blocks);
    assert_int_equal(info.journal_blocks, t->hdr.journal_blocks);
    assert_int_equal(info.height, t->geo.height);
    assert_int_equal(info.file_bytes, t->size);
    assert_int_equal(t->size, t->hdr.total_blocks * BLK + VHD_FOOTER_BYTES);
    assert_int_equal(t->hdr.node_blocks, t->geo.node_blocks);
    /* The log the newest record names (read here, not through the
     * library: its blocks are state, the rest of the region is not). */
    vd_super s[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(vd_super_decode(&s[k], t->bytes + (t->hdr.sb_start + k) * BLK), 0);
    const vd_super *nw = s[0].epoch > s[1].epoch ? &s[0] : &s[1];
    t->log_len = nw->flags & SB_FLAG_LOG ? nw->log_len : 0;
}

/* Which physical blocks hold no state (see the top of the file). */
static void timg_nostate(timg *t)
{
    const vd_header *h = &t->hdr;
    free(t->nostate);
    t->nostate = calloc(h->total_blocks, 1);
    assert_non_null(t->nostate);
    for (uint64_t b = 0; b < h->keyslot_blocks; b++)
        t->nostate[h->keyslot_start + b] = 1;
    for (uint64_t b = 0; b < 2ull * h->journal_blocks; b++) {
        uint64_t phys = h->journal_start + b;
        int used = t->in_progress && phys >= t->jused_first &&
                   phys < t->jused_first + t->jused_count;
        t->nostate[phys] = !used;
    }
    for (uint64_t b = 0; b < h->log_blocks; b++)
        t->nostate[vd_header_log_start(h) + b] = b >= t->log_len;
    /* Level by level: a block is "never written" when no logical block
     * below it was ever written. */
    uint64_t n = h->nblocks;
    uint8_t *used = malloc(n);
    assert_non_null(used);
    memcpy(used, t->written, n);
    for (uint64_t i = 0; i < n; i++)
        t->nostate[h->data_start + i] = !used[i];
    for (uint32_t l = 1; l <= t->geo.height; l++) {
        uint64_t cnt = t->geo.count[l];
        uint8_t *up = calloc(cnt, 1);
        assert_non_null(up);
        for (uint64_t i = 0; i < t->geo.count[l - 1]; i++)
            if (used[i])
                up[i / t->geo.fanout] = 1;
        for (uint64_t k = 0; k < cnt; k++)
            t->nostate[h->node_start + mt_node_index(&t->geo, l, k)] = !up[k];
        free(used);
        used = up;
    }
    free(used);
}

/* Build a committed reference image: nblocks, journal size jb (0 = auto);
 * generation 1 of lbns [0, nwrite), sync; generation 2 of every 5th of
 * them, sync (so nodes have history); close. */
static void build_image(timg *t, const char *name, uint64_t nblocks, uint32_t jb,
                        uint64_t nwrite, int logged)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->expect = calloc(nblocks, BLK);
    t->written = calloc(nblocks, 1);
    assert_non_null(t->expect);
    assert_non_null(t->written);

    vd_host *h;
    vd_image *img;
    vd_create_opts co = {.nblocks = nblocks, .journal_blocks = jb};
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    assert_int_equal(vd_image_create(h, KEY, &co, NULL, &img), VD_OK);
    write_gen(img, t, 0, nwrite, 1, 1);
    assert_int_equal(vd_image_sync(img), VD_OK);
    write_gen(img, t, 0, nwrite, 5, 2);
    assert_int_equal(vd_image_sync(img), VD_OK);
    if (logged) { /* and two log commits (format 6): their log is state */
        write_gen(img, t, 0, 3, 1, 3);
        assert_int_equal(vd_image_sync(img), VD_OK);
        write_gen(img, t, 100, 102, 1, 4);
        assert_int_equal(vd_image_sync(img), VD_OK);
    }
    t->epoch = committed_epoch(img);
    assert_int_equal(vd_image_close(img), VD_OK);
    t->bytes = host_bytes_copy(h, &t->size);
    vd_host_mem_free(h);
    timg_layout(t);
    assert_int_equal(t->log_len, logged ? 2 : 0);
    timg_nostate(t);
}

/* ---- read-only open + read everything ----------------------------------------- */

typedef struct outcome {
    vd_err open_err;
    uint64_t nblocks;
    vd_err *rd;           /* per lbn */
    unsigned *match;      /* per lbn: bit c set = equals candidate c */
    vd_err first_err;     /* first failing read */
    int64_t first_err_lbn;
    unsigned consistent;  /* AND of match over successful reads */
    uint64_t n_ok, n_auth, n_failed, n_other, n_mismatch;
    uint64_t n_auth_unwiped;  /* AUTH with a non-zero buffer */
    uint64_t n_failed_nonzero;/* FAILED with a buffer that is not all zeros */
    uint64_t n_failed_before_auth;
    vd_err close_err;
    uint64_t mutations;
    int bytes_changed;
    int recovered;
} outcome;

static void outcome_free(outcome *o)
{
    free(o->rd);
    free(o->match);
    memset(o, 0, sizeof *o);
}

static int outcome_detected(const outcome *o)
{
    return o->open_err != VD_OK || o->n_auth + o->n_failed + o->n_other > 0;
}

static void print_outcome(const char *what, const outcome *o)
{
    if (o->open_err != VD_OK) {
        printf("  %-58s open -> %s\n", what, errname(o->open_err));
    } else {
        printf("  %-58s open OK; reads: %llu ok, %llu AUTH, %llu FAILED, %llu other",
               what, (unsigned long long)o->n_ok, (unsigned long long)o->n_auth,
               (unsigned long long)o->n_failed, (unsigned long long)o->n_other);
        if (o->first_err != VD_OK)
            printf("; first error %s at lbn %lld", errname(o->first_err),
                   (long long)o->first_err_lbn);
        printf("\n");
    }
    fflush(stdout);
}

/* Open bytes read-only (anchor optional), read the lbns in order (NULL:
 * 0..nblocks-1), compare each successful read with the candidate states,
 * close, and check that nothing was written. nblocks is what the caller
 * believes the image holds (reads beyond the image return RANGE). */
static void run_ro(const uint8_t *bytes, uint64_t size, const uint8_t *key,
                   const vd_anchor *anchor, uint64_t nblocks, const uint64_t *order,
                   const uint8_t *const *cands, unsigned ncands, outcome *o)
{
    memset(o, 0, sizeof *o);
    o->nblocks = nblocks;
    o->rd = calloc(nblocks ? nblocks : 1, sizeof *o->rd);
    o->match = calloc(nblocks ? nblocks : 1, sizeof *o->match);
    o->first_err_lbn = -1;
    o->consistent = ncands ? (1u << ncands) - 1 : 0;
    assert_non_null(o->rd);
    assert_non_null(o->match);

    vd_host *h;
    wrap_host w;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    if (size)
        assert_int_equal(vd_host_mem_set(h, bytes, size), VD_OK);
    wrap_init(&w, h);
    vd_open_opts oo = {.read_only = 1, .anchor = anchor};
    vd_image *img = NULL;
    o->open_err = vd_image_open(&w.pt.host, key, &oo, &img);
    if (o->open_err == VD_OK) {
        vd_image_info info;
        assert_int_equal(vd_image_info_get(img, &info), VD_OK);
        o->recovered = info.recovered;
        uint8_t *buf = malloc(BLK);
        assert_non_null(buf);
        for (uint64_t k = 0; k < nblocks; k++) {
            uint64_t lbn = order ? order[k] : k;
            memset(buf, SENTINEL, BLK);
            vd_err e = vd_image_read(img, lbn, 1, buf);
            o->rd[lbn] = e;
            if (e == VD_OK) {
                o->n_ok++;
                unsigned m = 0;
                for (unsigned c = 0; c < ncands; c++)
                    if (memcmp(buf, cands[c] + lbn * BLK, BLK) == 0)
                        m |= 1u << c;
                o->match[lbn] = m;
                if (!m)
                    o->n_mismatch++;
                o->consistent &= m;
                continue;
            }
            if (o->first_err == VD_OK) {
                o->first_err = e;
                o->first_err_lbn = (int64_t)lbn;
            }
            if (e == VD_ERR_AUTH) {
                o->n_auth++;
                if (!all_bytes(buf, BLK, 0))
                    o->n_auth_unwiped++;
            } else if (e == VD_ERR_FAILED) {
                o->n_failed++;
                if (!all_bytes(buf, BLK, 0))
                    o->n_failed_nonzero++;
                if (o->first_err != VD_ERR_AUTH)
                    o->n_failed_before_auth++;
            } else {
                o->n_other++;
            }
        }
        free(buf);
        o->close_err = vd_image_close(img);
    }
    o->mutations = w.mutations;
    uint64_t n2;
    uint8_t *d = vd_host_mem_data(h, &n2);
    o->bytes_changed = n2 != size || (size && memcmp(d, bytes, size) != 0);
    vd_host_mem_free(h);
}

/* The invariants every case shares: no write, no other error codes, every
 * failed read (AUTH or FAILED) leaves the output all zeros, FAILED only
 * after an AUTH, successful reads equal some candidate, and all of them the
 * SAME one (no mix of states). */
static void assert_safe(const outcome *o)
{
    assert_int_equal(o->mutations, 0);
    assert_false(o->bytes_changed);
    if (o->open_err != VD_OK)
        return;
    assert_int_equal(o->close_err, VD_OK);
    assert_int_equal(o->n_other, 0);
    assert_int_equal(o->n_mismatch, 0);
    assert_int_equal(o->n_auth_unwiped, 0);
    assert_int_equal(o->n_failed_nonzero, 0);
    assert_int_equal(o->n_failed_before_auth, 0);
    if (o->n_ok > 0)
        assert_true(o->consistent != 0);
}

/* Open-failure codes a tampered container may produce. */
static int open_err_acceptable(vd_err e)
{
    return e == VD_ERR_CORRUPT || e == VD_ERR_AUTH || e == VD_ERR_UNSUPPORTED;
}

/* ---- shared fixtures ------------------------------------------------------------ */

static timg g_main;    /* 300 blocks, journal 2 blocks/slot, all written */
static timg g_auto;    /* 300 blocks, automatic journal (8), all written */
static timg g_partial; /* 300 blocks, automatic journal, lbns 0..199 only */
static timg g_ip_pre;  /* interrupted sync: IN_PROGRESS, nothing in place */
static timg g_ip_post; /* interrupted sync: IN_PROGRESS, all in place */
static timg g_ip_sub;  /* interrupted sync over whole subtrees (pre) */
static timg g_other;   /* another image, same key, same geometry */
static timg g_log;     /* as g_auto, then two log commits (format 6) */

/* Replay fixtures: S1, then block 10 rewritten + sync (S15), then block
 * 200 rewritten + sync (S2). */
static timg g_s1, g_s15, g_s2;

/* Interrupted-sync images. From base, rewrite the lbn ranges [lo, hi) in
 * generation gen and sync on a recording host, then materialise the crash
 * state after the flush that made the IN_PROGRESS superblock durable (pre:
 * nothing in place yet) and after the flush that made the in-place writes
 * durable (post: COMMITTED record missing). Either output may be NULL.
 * The ranges must need more than the 54 journal entries that fit inline,
 * so the journal area is in use. */
typedef struct lrange {
    uint64_t lo, hi;
} lrange;

static void build_interrupted(const timg *base, const lrange *rg, size_t nrg,
                              uint32_t gen, timg *pre, const char *pre_name,
                              timg *post, const char *post_name)
{
    vd_rec *rec = vd_rec_new(base->bytes, base->size);
    assert_non_null(rec);
    timg next;
    timg_copy(&next, base, "next");
    vd_image *img;
    assert_int_equal(vd_image_open(vd_rec_host(rec), KEY, NULL, &img), VD_OK);
    for (size_t i = 0; i < nrg; i++)
        write_gen(img, &next, rg[i].lo, rg[i].hi, 1, gen);
    assert_int_equal(vd_image_sync(img), VD_OK);
    uint64_t new_epoch = committed_epoch(img);
    assert_int_equal(vd_image_close(img), VD_OK);
    assert_int_equal(new_epoch, base->epoch + 1); /* one round */

    /* Find: journal write, IN_PROGRESS superblock write, then flushes. */
    const vd_header *h = &base->hdr;
    size_t nops = vd_rec_op_count(rec), ip_sb = SIZE_MAX, f_pre = SIZE_MAX,
           f_post = SIZE_MAX;
    uint64_t jw_off = 0, jw_len = 0;
    for (size_t i = 0; i < nops; i++) {
        vd_rec_op_info op;
        assert_int_equal(vd_rec_op_get(rec, i, &op), VD_OK);
        if (op.kind == VD_REC_WRITE && op.offset >= h->journal_start * BLK &&
            op.offset < h->node_start * BLK && jw_len == 0) {
            jw_off = op.offset;
            jw_len = op.length;
        }
        if (op.kind == VD_REC_WRITE && op.offset >= h->sb_start * BLK &&
            op.offset < (h->sb_start + 2) * BLK && ip_sb == SIZE_MAX)
            ip_sb = i;
        if (op.kind == VD_REC_FLUSH && ip_sb != SIZE_MAX && i > ip_sb) {
            if (f_pre == SIZE_MAX)
                f_pre = i;
            else if (f_post == SIZE_MAX)
                f_post = i;
        }
    }
    assert_true(jw_len > 0 && jw_len % BLK == 0);
    assert_true(ip_sb != SIZE_MAX && f_pre != SIZE_MAX && f_post != SIZE_MAX);

    timg *dst[2] = {pre, post};
    size_t prefix[2] = {f_pre + 1, f_post + 1};
    const char *names[2] = {pre_name, post_name};
    for (int v = 0; v < 2; v++) {
        timg *t = dst[v];
        if (!t)
            continue;
        /* Content: pre = base's, post = the new generation's. The tree of
         * record (the IN_PROGRESS root is the old root) is base's. */
        timg_copy(t, v == 0 ? base : &next, names[v]);
        memcpy(t->written, base->written, base->hdr.nblocks);
        free(t->bytes);
        t->bytes = vd_rec_crash_image(rec, prefix[v], NULL, 0, 0, &t->size);
        assert_non_null(t->bytes);
        assert_int_equal(t->size, base->size);
        t->epoch = base->epoch;
        t->in_progress = 1;
        t->dense = 0;
        /* The IN_PROGRESS record names its journal: check it against the
         * recorded journal write. */
        vd_super s;
        const uint8_t *sb = t->bytes + (h->sb_start + new_epoch % 2) * BLK;
        assert_int_equal(vd_super_decode(&s, sb), 0);
        assert_int_equal(s.state, SB_STATE_IN_PROGRESS);
        assert_int_equal(s.epoch, new_epoch);
        assert_int_equal(s.jinline, 0);
        t->jused_first = h->journal_start + (new_epoch % 2) * h->journal_blocks;
        t->jused_count = (s.jcount + JE_PER_BLOCK - 1) / JE_PER_BLOCK;
        assert_int_equal(jw_off, t->jused_first * BLK);
        assert_int_equal(jw_len, t->jused_count * BLK);
        timg_layout(t);
        timg_nostate(t);
    }
    timg_free(&next);
    vd_rec_free(rec);
}

static void build_replay(void)
{
    memset(&g_s1, 0, sizeof g_s1);
    g_s1.name = "S1";
    g_s1.expect = calloc(NBLOCKS, BLK);
    g_s1.written = calloc(NBLOCKS, 1);
    assert_non_null(g_s1.expect);
    assert_non_null(g_s1.written);
    vd_host *h;
    vd_image *img;
    /* No log: each commit reseals its nodes, so S1's nodes differ from
     * S2's and the replays below replace something (the log's own
     * replays: test_spill.c, log_blocks_changed_or_replayed_are_refused). */
    vd_create_opts co = {.nblocks = NBLOCKS, .log_blocks = VD_LOG_NONE};
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    assert_int_equal(vd_image_create(h, KEY, &co, NULL, &img), VD_OK);
    write_gen(img, &g_s1, 0, NBLOCKS, 1, 1);
    assert_int_equal(vd_image_sync(img), VD_OK);
    write_gen(img, &g_s1, 0, NBLOCKS, 5, 2);
    assert_int_equal(vd_image_sync(img), VD_OK);
    g_s1.epoch = committed_epoch(img);
    assert_int_equal(vd_image_close(img), VD_OK);
    g_s1.bytes = host_bytes_copy(h, &g_s1.size);
    timg_layout(&g_s1);
    timg_nostate(&g_s1);

    timg_copy(&g_s15, &g_s1, "S1.5");
    assert_int_equal(vd_image_open(h, KEY, NULL, &img), VD_OK);
    write_gen(img, &g_s15, 10, 11, 1, 3);
    assert_int_equal(vd_image_sync(img), VD_OK);
    g_s15.epoch = committed_epoch(img);
    free(g_s15.bytes);
    g_s15.bytes = host_bytes_copy(h, &g_s15.size);

    timg_copy(&g_s2, &g_s15, "S2");
    write_gen(img, &g_s2, 200, 201, 1, 3);
    assert_int_equal(vd_image_sync(img), VD_OK);
    g_s2.epoch = committed_epoch(img);
    assert_int_equal(vd_image_close(img), VD_OK);
    free(g_s2.bytes);
    g_s2.bytes = host_bytes_copy(h, &g_s2.size);
    vd_host_mem_free(h);
    timg_layout(&g_s15);
    timg_layout(&g_s2);
    timg_nostate(&g_s15);
    timg_nostate(&g_s2);
    assert_int_equal(g_s15.epoch, g_s1.epoch + 1);
    assert_int_equal(g_s2.epoch, g_s1.epoch + 2);
}

static int group_setup(void **state)
{
    (void)state;
    const char *full = getenv("VD_TAMPER_FULL");
    g_full_sweep = full && full[0] == '1';
    const char *light = getenv("VD_TAMPER_LIGHT");
    g_light_sweep = !g_full_sweep && light && light[0] == '1';
    double t0 = now_s();
    build_image(&g_main, "300 blocks, journal 2/slot", NBLOCKS, 2, NBLOCKS, 0);
    g_main.dense = 1;
    build_image(&g_auto, "300 blocks, journal auto", NBLOCKS, 0, NBLOCKS, 0);
    build_image(&g_log, "300 blocks, journal auto, 2 log commits", NBLOCKS, 0, NBLOCKS, 1);
    build_image(&g_partial, "300 blocks, lbn 0..199 written", NBLOCKS, 0, 200, 0);
    build_image(&g_other, "other image, same key", NBLOCKS, 0, NBLOCKS, 0);
    /* lbns 20..139: 120 leaves + level-1 nodes 0, 1 + root = 123 journal
     * entries; both level-1 nodes keep children outside the journal. */
    const lrange r1[] = {{20, 140}};
    build_interrupted(&g_auto, r1, 1, 3, &g_ip_pre,
                      "interrupted sync, before in-place writes", &g_ip_post,
                      "interrupted sync, after in-place writes");
    /* lbns 20..39 and 128..299: the subtrees of level-1 nodes 1 and 2 are
     * entirely in the journal (196 entries, 4 journal blocks). */
    const lrange r2[] = {{20, 40}, {128, NBLOCKS}};
    build_interrupted(&g_auto, r2, 2, 4, &g_ip_sub,
                      "interrupted sync over whole subtrees (pre)", NULL, NULL);
    build_replay();
    printf("tamper: fixtures built in %.2f s (image %llu bytes, data_start %llu, "
           "node_start %llu, journal %u+%u blocks at %llu)\n",
           now_s() - t0, (unsigned long long)g_main.size,
           (unsigned long long)g_main.hdr.data_start,
           (unsigned long long)g_main.hdr.node_start, g_main.hdr.journal_blocks,
           g_main.hdr.journal_blocks, (unsigned long long)g_main.hdr.journal_start);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    timg *all[] = {&g_main, &g_auto, &g_partial, &g_ip_pre, &g_ip_post,
                   &g_ip_sub, &g_other, &g_s1, &g_s15, &g_s2, &g_log};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        timg_free(all[i]);
    return 0;
}

/* ---- fixtures are what they claim ------------------------------------------------- */

static void test_fixtures_baseline(void **state)
{
    (void)state;
    const timg *all[] = {&g_main, &g_auto, &g_partial, &g_ip_pre, &g_ip_post,
                         &g_ip_sub, &g_other, &g_s1, &g_s15, &g_s2, &g_log};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const timg *t = all[i];
        const uint8_t *c[1] = {t->expect};
        outcome o;
        run_ro(t->bytes, t->size, KEY, NULL, t->hdr.nblocks, NULL, c, 1, &o);
        print_outcome(t->name, &o);
        assert_int_equal(o.open_err, VD_OK);
        assert_int_equal(o.n_ok, t->hdr.nblocks);
        assert_int_equal(o.n_mismatch, 0);
        assert_int_equal(o.mutations, 0);
        assert_false(o.bytes_changed);
        assert_int_equal(o.recovered, t->in_progress);
        outcome_free(&o);
        assert_int_equal(t->hdr.nblocks, NBLOCKS);
        assert_int_equal(t->geo.height, 2);
        assert_int_equal(t->geo.count[1], 3);
    }
    /* Distinct images: the other image has another id, same key. */
    assert_memory_not_equal(g_main.hdr.image_id, g_other.hdr.image_id, 16);
    /* The two interrupted states really differ from each other. */
    assert_memory_not_equal(g_ip_pre.expect + 20 * BLK, g_ip_post.expect + 20 * BLK,
                            BLK);
}

/* ---- the single-bit-flip sweep ------------------------------------------------------ */

enum {
    V_OPEN_ERR,      /* open failed with a code other than CORRUPT/AUTH/UNSUPPORTED */
    V_READ_ERR,      /* read failed with a code other than AUTH/FAILED */
    V_WRONG_DATA,    /* read succeeded with bytes other than the original */
    V_AUTH_UNWIPED,  /* AUTH with a non-zero output buffer */
    V_FAILED_UNWIPED,/* FAILED with a non-zero output buffer */
    V_FAILED_EARLY,  /* FAILED before any AUTH on that handle */
    V_CLOSE_ERR,     /* close of the read-only handle failed */
    V_WROTE,         /* a mutating host call, or the bytes changed */
    V_UNDETECTED,    /* a flip in a state-holding byte changed nothing visible */
    V_COUNT
};
static const char *const viol_name[V_COUNT] = {
    "open error not CORRUPT/AUTH/UNSUPPORTED", "read error not AUTH/FAILED",
    "read returned different bytes", "AUTH without wiped buffer",
    "FAILED without wiped buffer", "FAILED before any AUTH",
    "close error", "write on read-only open", "flip NOT detected"};

#define EXAMPLES 6

typedef struct flip_report {
    uint64_t flips, detected, nostate, nostate_detected, failed_reads;
    uint64_t reg_flips[R_COUNT], reg_detected[R_COUNT], reg_nostate[R_COUNT];
    uint64_t open_err[64]; /* by -err (63: anything beyond) */
    uint64_t read_detected;
    uint64_t viol[V_COUNT];
    unsigned nex[V_COUNT];
    uint64_t ex_off[V_COUNT][EXAMPLES];
    int ex_err[V_COUNT][EXAMPLES];
    int64_t ex_lbn[V_COUNT][EXAMPLES];
    double seconds, cpu_seconds;
} flip_report;

static int region_of(const timg *t, uint64_t off)
{
    const vd_header *h = &t->hdr;
    uint64_t b = off / BLK;
    if (b >= h->total_blocks)
        return R_FOOTER;
    if (b == 0)
        return R_HEADER;
    if (b >= h->keyslot_start && b < h->keyslot_start + h->keyslot_blocks)
        return R_KEYSLOT;
    if (b >= h->sb_start && b < h->sb_start + 2)
        return R_SUPER;
    if (b >= vd_header_log_start(h) && b < vd_header_log_start(h) + h->log_blocks)
        return R_LOG;
    if (b >= h->journal_start && b < h->node_start)
        return R_JOURNAL;
    if (b >= h->node_start && b < h->data_start)
        return R_NODE;
    return R_DATA;
}

/* Which bytes the default (sampled) sweep flips; VD_TAMPER_FULL=1: all.
 *   every byte of the header, superblocks, node region (used or not),
 *   footer, and of journal blocks an IN_PROGRESS superblock references;
 *   main variant (t->dense): every byte of the data blocks at the edges of
 *   the level-1 subtrees (lbn 0, 127, 128, 255, 256, 299), and in every
 *   other data block the first and last 32 bytes plus every 61st byte;
 *   other variants: the first and last 8 bytes plus every 251st byte;
 *   key-slot and unreferenced journal blocks: sampled like data.
 * The strided positions rotate with the block number, so across blocks
 * every position within a block is flipped somewhere. */
static int flip_sampled(const timg *t, uint64_t off)
{
    if (g_full_sweep)
        return 1;
    const uint64_t b = off / BLK, o = off % BLK;
    const int reg = region_of(t, off);
    if (g_light_sweep) /* data: one AEAD check like any other, sampled thinly */
        return reg == R_DATA ? o < 2 || o >= BLK - 2 || o % 1021 == b % 1021
                             : o < 4 || o >= BLK - 4 || o % 37 == b % 37;
    if (reg == R_HEADER || reg == R_SUPER || reg == R_NODE || reg == R_FOOTER)
        return 1;
    if ((reg == R_JOURNAL || reg == R_LOG) && !t->nostate[b])
        return 1;
    if (reg == R_DATA && t->dense) {
        uint64_t lbn = b - t->hdr.data_start, f = t->geo.fanout;
        if (lbn % f == 0 || lbn % f == f - 1 || lbn == t->hdr.nblocks - 1)
            return 1;
    }
    const uint64_t edge = t->dense ? 32 : 8, stride = t->dense ? 61 : 251;
    return o < edge || o >= BLK - edge || o % stride == b % stride;
}

/* Count a violation; keep up to EXAMPLES examples, one per physical block. */
static void viol(flip_report *r, int v, uint64_t off, int64_t lbn, vd_err e)
{
    unsigned k = r->nex[v];
    r->viol[v]++;
    if (k < EXAMPLES && (k == 0 || r->ex_off[v][k - 1] / BLK != off / BLK)) {
        r->ex_off[v][k] = off;
        r->ex_lbn[v][k] = lbn;
        r->ex_err[v][k] = e;
        r->nex[v] = k + 1;
    }
}

static void flip_sweep(const timg *t, flip_report *r)
{
    memset(r, 0, sizeof *r);
    vd_host *h;
    wrap_host w;
    h = vt_host_mem_from(t->bytes, t->size);
    wrap_init(&w, h);
    uint64_t sz;
    uint8_t *d = vd_host_mem_data(h, &sz);
    assert_int_equal(sz, t->size);
    uint8_t *buf = malloc(BLK);
    assert_non_null(buf);
    /* The smallest cache (the library's floor, 256 entries) and a fixed
     * AEAD implementation: a 16 MiB default cache would be allocated and
     * wiped at every one of the ~10^5 opens. The format is the same. */
    vd_open_opts oo = {.read_only = 1, .cache_bytes = BLK,
                       .aead_impl = VD_AEAD_OPENSSL};
    const uint64_t n = t->hdr.nblocks;
    double t0 = now_s(), c0 = cpu_s();

    for (uint64_t off = 0; off < t->size; off++) {
        if (!flip_sampled(t, off))
            continue;
        const uint8_t mask = (uint8_t)(1u << ((off + off / BLK) & 7));
        const int reg = region_of(t, off);
        const uint64_t pb = off / BLK;
        const int nostate = pb < t->hdr.total_blocks && t->nostate[pb];
        int detected = 0;

        d[off] ^= mask;
        w.mutations = 0;
        vd_image *img = NULL;
        vd_err oe = vd_image_open(&w.pt.host, KEY, &oo, &img);
        if (oe != VD_OK) {
            detected = 1;
            r->open_err[-(int)oe < 63 ? -(int)oe : 63]++;
            if (!open_err_acceptable(oe))
                viol(r, V_OPEN_ERR, off, -1, oe);
        } else {
            vd_err first = VD_OK;
            int read_err = 0;
            for (uint64_t lbn = 0; lbn < n; lbn++) {
                memset(buf, SENTINEL, BLK);
                vd_err e = vd_image_read(img, lbn, 1, buf);
                if (e == VD_OK) {
                    if (memcmp(buf, t->expect + lbn * BLK, BLK) != 0)
                        viol(r, V_WRONG_DATA, off, (int64_t)lbn, e);
                    continue;
                }
                read_err = 1;
                if (e == VD_ERR_AUTH) {
                    if (!all_bytes(buf, BLK, 0))
                        viol(r, V_AUTH_UNWIPED, off, (int64_t)lbn, e);
                } else if (e == VD_ERR_FAILED) {
                    r->failed_reads++;
                    if (!all_bytes(buf, BLK, 0))
                        viol(r, V_FAILED_UNWIPED, off, (int64_t)lbn, e);
                    if (first != VD_ERR_AUTH)
                        viol(r, V_FAILED_EARLY, off, (int64_t)lbn, e);
                } else {
                    viol(r, V_READ_ERR, off, (int64_t)lbn, e);
                }
                if (first == VD_OK)
                    first = e;
            }
            vd_err ce = vd_image_close(img);
            if (ce != VD_OK)
                viol(r, V_CLOSE_ERR, off, -1, ce);
            if (read_err) {
                detected = 1;
                r->read_detected++;
            }
        }
        d[off] ^= mask;
        /* Only the wrapper reaches the bytes, so a zero mutation count
         * proves nothing was written; the whole image is also compared
         * every 1024 flips (and after the sweep), and restored if needed. */
        if (w.mutations || (r->flips & 1023) == 0) {
            uint64_t sz2;
            uint8_t *d2 = vd_host_mem_data(h, &sz2);
            if (w.mutations || sz2 != t->size || d2 != d ||
                memcmp(d, t->bytes, t->size) != 0) {
                viol(r, V_WROTE, off, -1, VD_OK);
                assert_int_equal(vd_host_mem_set(h, t->bytes, t->size), VD_OK);
                d = vd_host_mem_data(h, &sz);
            }
        }

        r->flips++;
        r->reg_flips[reg]++;
        if (detected) {
            r->detected++;
            r->reg_detected[reg]++;
        }
        if (nostate) {
            r->nostate++;
            r->reg_nostate[reg]++;
            if (detected)
                r->nostate_detected++;
        } else if (!detected) {
            viol(r, V_UNDETECTED, off, -1, VD_OK);
        }
    }
    r->seconds = now_s() - t0;
    r->cpu_seconds = cpu_s() - c0;
    d = vd_host_mem_data(h, &sz);
    if (sz != t->size || memcmp(d, t->bytes, t->size) != 0)
        viol(r, V_WROTE, t->size, -1, VD_OK);
    free(buf);
    vd_host_mem_free(h);

    g_flips += r->flips;
    g_flips_detected += r->detected;
    g_flips_nostate += r->nostate;
}

static void flip_print(const timg *t, const flip_report *r)
{
    printf("flip sweep [%s] (%s): %llu flips in %.1f s wall, %.1f s CPU (%.0f us CPU/flip): "
           "%llu detected, %llu in no-state bytes (%llu of those detected)\n",
           t->name,
           g_full_sweep ? "every byte"
                        : t->dense ? "every metadata byte + dense data sample"
                                   : "every metadata byte + light data sample",
           (unsigned long long)r->flips, r->seconds, r->cpu_seconds,
           r->flips ? r->cpu_seconds * 1e6 / (double)r->flips : 0.0,
           (unsigned long long)r->detected, (unsigned long long)r->nostate,
           (unsigned long long)r->nostate_detected);
    for (int g = 0; g < R_COUNT; g++)
        printf("    %-8s %8llu flips, %8llu detected, %8llu no-state\n", region_name[g],
               (unsigned long long)r->reg_flips[g],
               (unsigned long long)r->reg_detected[g],
               (unsigned long long)r->reg_nostate[g]);
    printf("    open failures:");
    for (unsigned k = 0; k < 64; k++)
        if (r->open_err[k])
            printf(" %s=%llu", errname(-(int)k), (unsigned long long)r->open_err[k]);
    printf("; detected by a read: %llu; FAILED reads (all checked wiped): %llu\n",
           (unsigned long long)r->read_detected, (unsigned long long)r->failed_reads);
    for (int v = 0; v < V_COUNT; v++) {
        if (!r->viol[v])
            continue;
        printf("    VIOLATION %s: %llu flips; e.g.", viol_name[v],
               (unsigned long long)r->viol[v]);
        for (unsigned k = 0; k < r->nex[v]; k++)
            printf(" [off %llu blk %llu %s lbn %lld %s]",
                   (unsigned long long)r->ex_off[v][k],
                   (unsigned long long)(r->ex_off[v][k] / BLK),
                   region_name[region_of(t, r->ex_off[v][k])],
                   (long long)r->ex_lbn[v][k], errname(r->ex_err[v][k]));
        printf("\n");
    }
    fflush(stdout);
}

static void flip_check(const timg *t)
{
    flip_report *r = calloc(1, sizeof *r);
    assert_non_null(r);
    flip_sweep(t, r);
    flip_print(t, r);
    for (int v = 0; v < V_COUNT; v++)
        assert_int_equal(r->viol[v], 0);
    assert_int_equal(r->flips, r->detected + (r->nostate - r->nostate_detected));
    free(r);
}

static void test_flip_main(void **state)
{
    (void)state;
    flip_check(&g_main);
}

static void test_flip_auto_journal(void **state)
{
    (void)state;
    flip_check(&g_auto);
}

static void test_flip_partial(void **state)
{
    (void)state;
    flip_check(&g_partial);
}

/* Every bit of the two log blocks a record names is checked (the chain),
 * and so is every bit of the nodes that log commits left as they were. */
static void test_flip_log(void **state)
{
    (void)state;
    flip_check(&g_log);
}

static void test_flip_interrupted_pre(void **state)
{
    (void)state;
    flip_check(&g_ip_pre);
}

static void test_flip_interrupted_post(void **state)
{
    (void)state;
    flip_check(&g_ip_post);
}

static void test_flip_interrupted_subtrees(void **state)
{
    (void)state;
    flip_check(&g_ip_sub);
}

/* ---- structural cases ---------------------------------------------------------------- */

static uint8_t *dup_bytes(const timg *t)
{
    uint8_t *c = malloc(t->size);
    assert_non_null(c);
    memcpy(c, t->bytes, t->size);
    return c;
}

static void copy_block(uint8_t *dst, const uint8_t *src, uint64_t phys)
{
    memcpy(dst + phys * BLK, src + phys * BLK, BLK);
}

static uint64_t node_phys(const timg *t, uint32_t level, uint64_t idx)
{
    return t->hdr.node_start + mt_node_index(&t->geo, level, idx);
}

/* Run one case against one expected state and tally it. */
static void ro_case(const char *what, const uint8_t *bytes, uint64_t size,
                    const timg *ref, const vd_anchor *anchor, const uint64_t *order,
                    outcome *o)
{
    const uint8_t *c[1] = {ref->expect};
    run_ro(bytes, size, KEY, anchor, ref->hdr.nblocks, order, c, 1, o);
    print_outcome(what, o);
    assert_safe(o);
    tally(outcome_detected(o));
}

/* Reads of exactly the lbns in bad[] fail with AUTH, the others succeed. */
static void assert_only_auth(const outcome *o, const uint64_t *bad, size_t nbad)
{
    assert_int_equal(o->open_err, VD_OK);
    for (uint64_t l = 0; l < o->nblocks; l++) {
        int is_bad = 0;
        for (size_t k = 0; k < nbad; k++)
            is_bad |= bad[k] == l;
        assert_int_equal(o->rd[l], is_bad ? VD_ERR_AUTH : VD_OK);
    }
    assert_int_equal(o->n_auth, nbad);
    assert_int_equal(o->n_failed, 0);
}

/* A node failed: its first read error is AUTH, every later one AUTH or
 * FAILED, and no read succeeds after it (the handle is poisoned). */
static void assert_node_poison(const outcome *o, const uint64_t *order,
                               uint64_t first_bad_lbn)
{
    assert_int_equal(o->open_err, VD_OK);
    assert_int_equal(o->first_err, VD_ERR_AUTH);
    assert_int_equal(o->first_err_lbn, (int64_t)first_bad_lbn);
    int after = 0;
    for (uint64_t k = 0; k < o->nblocks; k++) {
        uint64_t l = order ? order[k] : k;
        if (l == first_bad_lbn)
            after = 1;
        if (after)
            assert_true(o->rd[l] == VD_ERR_AUTH || o->rd[l] == VD_ERR_FAILED);
        else
            assert_int_equal(o->rd[l], VD_OK);
    }
}

static void test_swap_data_blocks(void **state)
{
    (void)state;
    const timg *t = &g_main;
    uint8_t *b = dup_bytes(t);
    uint64_t p3 = t->hdr.data_start + 3, p5 = t->hdr.data_start + 5;
    memcpy(b + p3 * BLK, t->bytes + p5 * BLK, BLK);
    memcpy(b + p5 * BLK, t->bytes + p3 * BLK, BLK);
    outcome o;
    ro_case("swap data blocks 3 <-> 5", b, t->size, t, NULL, NULL, &o);
    const uint64_t bad[] = {3, 5};
    assert_only_auth(&o, bad, 2);
    outcome_free(&o);

    /* Swap two level-1 nodes: the first read under either fails. */
    memcpy(b, t->bytes, t->size);
    uint64_t n0 = node_phys(t, 1, 0), n1 = node_phys(t, 1, 1);
    memcpy(b + n0 * BLK, t->bytes + n1 * BLK, BLK);
    memcpy(b + n1 * BLK, t->bytes + n0 * BLK, BLK);
    ro_case("swap level-1 nodes 0 <-> 1", b, t->size, t, NULL, NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);

    /* Swap the two superblock slots. */
    memcpy(b, t->bytes, t->size);
    memcpy(b + t->hdr.sb_start * BLK, t->bytes + (t->hdr.sb_start + 1) * BLK, BLK);
    memcpy(b + (t->hdr.sb_start + 1) * BLK, t->bytes + t->hdr.sb_start * BLK, BLK);
    ro_case("swap superblock slots A <-> B", b, t->size, t, NULL, NULL, &o);
    assert_true(o.open_err == VD_ERR_CORRUPT || o.open_err == VD_ERR_AUTH);
    outcome_free(&o);
    free(b);
}

static void test_cross_image(void **state)
{
    (void)state;
    const timg *t = &g_auto, *x = &g_other;
    assert_int_equal(t->size, x->size); /* same geometry, different id */
    uint8_t *b = dup_bytes(t);
    outcome o;

    copy_block(b, x->bytes, t->hdr.data_start + 7);
    ro_case("data block 7 from another image (same key)", b, t->size, t, NULL, NULL,
            &o);
    const uint64_t bad[] = {7};
    assert_only_auth(&o, bad, 1);
    outcome_free(&o);

    memcpy(b, t->bytes, t->size);
    copy_block(b, x->bytes, node_phys(t, 1, 1));
    ro_case("level-1 node 1 from another image", b, t->size, t, NULL, NULL, &o);
    assert_node_poison(&o, NULL, 128);
    outcome_free(&o);

    memcpy(b, t->bytes, t->size);
    copy_block(b, x->bytes, node_phys(t, 2, 0));
    ro_case("root node from another image", b, t->size, t, NULL, NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);

    for (uint32_t s = 0; s < 2; s++) {
        memcpy(b, t->bytes, t->size);
        copy_block(b, x->bytes, t->hdr.sb_start + s);
        ro_case(s ? "superblock B from another image" : "superblock A from another image",
                b, t->size, t, NULL, NULL, &o);
        assert_int_equal(o.open_err, VD_ERR_AUTH);
        outcome_free(&o);
    }

    memcpy(b, t->bytes, t->size);
    copy_block(b, x->bytes, 0);
    ro_case("header from another image", b, t->size, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_AUTH);
    outcome_free(&o);

    /* Header + both superblocks of the other image: a self-consistent
     * foreign root over our nodes. */
    memcpy(b, t->bytes, t->size);
    for (uint64_t p = 0; p < t->hdr.journal_start; p++)
        copy_block(b, x->bytes, p);
    ro_case("header+key slots+superblocks from another image", b, t->size, t, NULL,
            NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);

    /* All metadata of the other image over our data blocks. */
    memcpy(b, t->bytes, t->size);
    memcpy(b, x->bytes, t->hdr.data_start * BLK);
    memcpy(b + t->size - VHD_FOOTER_BYTES, x->bytes + t->size - VHD_FOOTER_BYTES,
           VHD_FOOTER_BYTES);
    {
        const uint8_t *c[2] = {t->expect, x->expect};
        run_ro(b, t->size, KEY, NULL, NBLOCKS, NULL, c, 2, &o);
        print_outcome("all metadata from another image over our data", &o);
        assert_safe(&o);
        tally(outcome_detected(&o));
        assert_int_equal(o.open_err, VD_OK);
        assert_int_equal(o.n_auth, NBLOCKS); /* every block written, none ours */
        outcome_free(&o);
    }

    /* The key-slot block holds no state (reserved): copying it is harmless. */
    memcpy(b, t->bytes, t->size);
    copy_block(b, x->bytes, t->hdr.keyslot_start);
    ro_case("key-slot block from another image (no state)", b, t->size, t, NULL, NULL,
            &o);
    assert_int_equal(o.open_err, VD_OK);
    assert_int_equal(o.n_ok, NBLOCKS);
    outcome_free(&o);

    /* The VHD footer carries the other image's unique id and timestamp but
     * describes the same size; vdisk reads only the size from it. Record
     * what happens; it must be safe either way. */
    memcpy(b, t->bytes, t->size);
    memcpy(b + t->size - VHD_FOOTER_BYTES, x->bytes + t->size - VHD_FOOTER_BYTES,
           VHD_FOOTER_BYTES);
    ro_case("VHD footer from another image (same size)", b, t->size, t, NULL, NULL, &o);
    assert_true(o.open_err == VD_OK || open_err_acceptable(o.open_err));
    if (o.open_err == VD_OK)
        assert_int_equal(o.n_ok, NBLOCKS);
    outcome_free(&o);
    free(b);
}

static void test_replay_data_block(void **state)
{
    (void)state;
    const timg *s1 = &g_s1, *s2 = &g_s2;
    uint8_t *b = dup_bytes(s2);
    outcome o;
    assert_memory_not_equal(s1->bytes + (s1->hdr.data_start + 10) * BLK,
                            s2->bytes + (s2->hdr.data_start + 10) * BLK, BLK);
    copy_block(b, s1->bytes, s2->hdr.data_start + 10);
    ro_case("replay S1 data block 10 into S2", b, s2->size, s2, NULL, NULL, &o);
    const uint64_t bad[] = {10};
    assert_only_auth(&o, bad, 1);
    outcome_free(&o);
    free(b);
}

static void test_replay_node(void **state)
{
    (void)state;
    const timg *s1 = &g_s1, *s2 = &g_s2;
    uint8_t *b = dup_bytes(s2);
    outcome o;
    /* The level-1 node covering lbn 10: node region is root first, then
     * level 1 (mt_geometry). */
    uint64_t phys = s2->hdr.node_start + s2->geo.level_start[1] + 10 / s2->geo.fanout;
    assert_int_equal(phys, node_phys(s2, 1, 0));
    assert_memory_not_equal(s1->bytes + phys * BLK, s2->bytes + phys * BLK, BLK);
    copy_block(b, s1->bytes, phys);

    ro_case("replay S1 level-1 node 0 into S2, reads 0..299", b, s2->size, s2, NULL,
            NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);

    /* Read the other subtrees first: they are unaffected; then the
     * replayed node's subtree fails, first with AUTH. */
    uint64_t *order = malloc(NBLOCKS * sizeof *order);
    assert_non_null(order);
    for (uint64_t k = 0; k < NBLOCKS; k++)
        order[k] = (k + 128) % NBLOCKS;
    ro_case("replay S1 level-1 node 0 into S2, reads 128..299,0..127", b, s2->size,
            s2, NULL, order, &o);
    assert_node_poison(&o, order, 0);
    for (uint64_t l = 128; l < NBLOCKS; l++)
        assert_int_equal(o.rd[l], VD_OK);
    outcome_free(&o);

    /* The old root node. */
    memcpy(b, s2->bytes, s2->size);
    copy_block(b, s1->bytes, node_phys(s2, 2, 0));
    ro_case("replay S1 root node into S2", b, s2->size, s2, NULL, NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);

    /* The old data block AND its old parent: the root still names the new
     * parent. */
    memcpy(b, s2->bytes, s2->size);
    copy_block(b, s1->bytes, phys);
    copy_block(b, s1->bytes, s2->hdr.data_start + 10);
    ro_case("replay S1 data block 10 + its level-1 node into S2", b, s2->size, s2,
            NULL, order, &o);
    assert_node_poison(&o, order, 0);
    outcome_free(&o);

    /* The whole old path (data, level-1, root) under the new superblocks. */
    copy_block(b, s1->bytes, node_phys(s2, 2, 0));
    ro_case("replay S1 path of block 10 (data, node, root) into S2", b, s2->size, s2,
            NULL, NULL, &o);
    assert_node_poison(&o, NULL, 0);
    outcome_free(&o);
    free(order);
    free(b);
}

/* Superblock replays. S1 = epochs (e, e-1) in its slots, S2 = (e+2, e+1).
 *   one slot, the older: S2 keeps its newest record -> exactly S2;
 *   one slot, the newer: the newest record is S1.5's, a one-flush commit
 *     (format 4) whose journal S2 did not overwrite (S2's commit used the
 *     other area): its blocks, the root among them, read from their
 *     journal copies, so what reads is exactly S1.5 until the first block
 *     S2 rewrote in place that S1.5's journal does not hold: AUTH, and the
 *     handle is poisoned from there on;
 *   both: S1's root over S2's root node -> AUTH on the first read.
 * With an anchor at S2's epoch, any record set older than S2 is refused at
 * open with VD_ERR_ROLLBACK. */
static void test_replay_superblocks(void **state)
{
    (void)state;
    const timg *s1 = &g_s1, *s2 = &g_s2;
    const uint64_t e2 = s2->epoch;
    const uint32_t newer_slot = (uint32_t)(e2 % 2), older_slot = 1 - newer_slot;
    const uint8_t *c[3] = {s1->expect, g_s15.expect, s2->expect};
    uint8_t *b = dup_bytes(s2);
    mem_anchor an;
    outcome o;

    struct {
        const char *what;
        int slots; /* bit s: replay S1's slot s */
    } cases[] = {
        {"replay S1 superblock of S2's older slot", 1 << older_slot},
        {"replay S1 superblock of S2's newer slot", 1 << newer_slot},
        {"replay both S1 superblocks into S2", 3},
    };
    for (size_t i = 0; i < 3; i++) {
        memcpy(b, s2->bytes, s2->size);
        for (uint32_t s = 0; s < 2; s++)
            if (cases[i].slots >> s & 1)
                copy_block(b, s1->bytes, s2->hdr.sb_start + s);
        run_ro(b, s2->size, KEY, NULL, NBLOCKS, NULL, c, 3, &o);
        print_outcome(cases[i].what, &o);
        assert_safe(&o);
        tally(outcome_detected(&o));
        if (cases[i].slots == 1 << older_slot) {
            /* The replayed record is older than the one kept: S2 intact. */
            assert_int_equal(o.open_err, VD_OK);
            assert_int_equal(o.n_ok, NBLOCKS);
            assert_true(o.consistent & 4u);
        } else if (cases[i].slots == 1 << newer_slot) {
            assert_true(o.first_err_lbn >= 0);
            assert_node_poison(&o, NULL, (uint64_t)o.first_err_lbn);
            assert_true(o.n_ok < NBLOCKS && (o.n_ok == 0 || (o.consistent & 2u)));
        } else {
            assert_node_poison(&o, NULL, 0);
            assert_int_equal(o.n_ok, 0);
        }
        outcome_free(&o);

        anchor_init(&an, e2);
        run_ro(b, s2->size, KEY, &an.a, NBLOCKS, NULL, c, 3, &o);
        print_outcome("  ... with anchor at S2's epoch", &o);
        assert_safe(&o);
        tally(outcome_detected(&o));
        if (cases[i].slots == 1 << older_slot) {
            assert_int_equal(o.open_err, VD_OK);
            assert_int_equal(o.n_ok, NBLOCKS);
            assert_true(o.consistent & 4u);
        } else {
            assert_int_equal(o.open_err, VD_ERR_ROLLBACK);
        }
        assert_int_equal(an.advances, 0);
        assert_int_equal(an.value, e2);
        outcome_free(&o);
    }
    free(b);
}

/* Whole-image rollback: S1's bytes in place of S2. Without an anchor this
 * is the documented limit: it opens and reads exactly S1. With an anchor at
 * S2's epoch it is VD_ERR_ROLLBACK. */
static void test_replay_whole_image(void **state)
{
    (void)state;
    const timg *s1 = &g_s1, *s2 = &g_s2;
    mem_anchor an;
    outcome o;
    const uint8_t *c[2] = {s1->expect, s2->expect};

    run_ro(s1->bytes, s1->size, KEY, NULL, NBLOCKS, NULL, c, 2, &o);
    print_outcome("whole-image rollback to S1, no anchor (documented limit)", &o);
    assert_safe(&o);
    tally(outcome_detected(&o));
    assert_int_equal(o.open_err, VD_OK);
    assert_int_equal(o.n_ok, NBLOCKS);
    assert_true(o.consistent & 1u); /* exactly S1 */
    assert_int_equal(o.rd[10], VD_OK);
    assert_int_equal(o.match[10], 1u); /* block 10 is S1's, not S2's */
    assert_int_equal(o.match[200], 1u);
    outcome_free(&o);

    anchor_init(&an, s2->epoch);
    run_ro(s1->bytes, s1->size, KEY, &an.a, NBLOCKS, NULL, c, 2, &o);
    print_outcome("whole-image rollback to S1, anchor at S2's epoch", &o);
    assert_safe(&o);
    tally(outcome_detected(&o));
    assert_int_equal(o.open_err, VD_ERR_ROLLBACK);
    assert_int_equal(an.advances, 0);
    outcome_free(&o);

    anchor_init(&an, g_s15.epoch);
    run_ro(s1->bytes, s1->size, KEY, &an.a, NBLOCKS, NULL, c, 2, &o);
    print_outcome("whole-image rollback to S1, anchor at S1.5's epoch", &o);
    assert_safe(&o);
    tally(outcome_detected(&o));
    assert_int_equal(o.open_err, VD_ERR_ROLLBACK);
    outcome_free(&o);

    /* Sanity: the anchor at S2's epoch accepts S2, and at S1's accepts S1. */
    anchor_init(&an, s2->epoch);
    run_ro(s2->bytes, s2->size, KEY, &an.a, NBLOCKS, NULL, c, 2, &o);
    assert_int_equal(o.open_err, VD_OK);
    assert_int_equal(o.n_ok, NBLOCKS);
    assert_true(o.consistent & 2u);
    outcome_free(&o);
    anchor_init(&an, s1->epoch);
    run_ro(s1->bytes, s1->size, KEY, &an.a, NBLOCKS, NULL, c, 2, &o);
    assert_int_equal(o.open_err, VD_OK);
    assert_true(o.consistent & 1u);
    outcome_free(&o);

    /* Metadata rollback only (header..nodes from S1, data from S2): S1's
     * tree over S2's data. Blocks changed since S1 fail; the rest is S1
     * (identical to S2 there). Never a mix. */
    uint8_t *b = dup_bytes(s2);
    memcpy(b, s1->bytes, s1->hdr.data_start * BLK);
    run_ro(b, s2->size, KEY, NULL, NBLOCKS, NULL, c, 2, &o);
    print_outcome("metadata rollback to S1 over S2's data", &o);
    assert_safe(&o);
    tally(outcome_detected(&o));
    const uint64_t bad[] = {10, 200};
    assert_only_auth(&o, bad, 2);
    assert_true(o.consistent & 1u);
    outcome_free(&o);

    /* Data rollback only (S1's data under S2's metadata). */
    memcpy(b, s2->bytes, s2->size);
    memcpy(b + s2->hdr.data_start * BLK, s1->bytes + s1->hdr.data_start * BLK,
           NBLOCKS * BLK);
    run_ro(b, s2->size, KEY, NULL, NBLOCKS, NULL, c, 2, &o);
    print_outcome("data rollback to S1 under S2's metadata", &o);
    assert_safe(&o);
    tally(outcome_detected(&o));
    assert_only_auth(&o, bad, 2);
    assert_true(o.consistent & 2u);
    outcome_free(&o);
    free(b);
}

/* Truncation and extension: the VHD footer must end the file and name its
 * size, which the header's layout must match. */
static void test_truncate_extend(void **state)
{
    (void)state;
    const timg *t = &g_main;
    uint8_t *b = calloc(1, t->size + 2 * BLK);
    assert_non_null(b);
    outcome o;
    struct {
        const char *what;
        int64_t delta;
        int move_footer; /* rewrite the original footer at the new end */
    } cases[] = {
        {"truncate by 1 byte", -1, 0},
        {"truncate by 512 bytes (the footer)", -512, 0},
        {"truncate by 4096 bytes", -4096, 0},
        {"truncate by 4096 bytes, footer moved to the new end", -4096, 1},
        {"truncate by 1 block + footer (container cut at a block)", -4096 - 512, 0},
        {"extend by 1 byte", 1, 0},
        {"extend by 4096 bytes", 4096, 0},
        {"extend by 4096 bytes, footer moved to the new end", 4096, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t nsize = (uint64_t)((int64_t)t->size + cases[i].delta);
        memset(b, 0, t->size + 2 * BLK);
        memcpy(b, t->bytes, nsize < t->size ? nsize : t->size);
        if (cases[i].move_footer)
            memcpy(b + nsize - VHD_FOOTER_BYTES, t->bytes + t->size - VHD_FOOTER_BYTES,
                   VHD_FOOTER_BYTES);
        ro_case(cases[i].what, b, nsize, t, NULL, NULL, &o);
        assert_int_equal(o.open_err, VD_ERR_CORRUPT);
        outcome_free(&o);
    }

    /* A footer re-encoded for the new size (checksum valid): the header's
     * layout no longer matches the container. */
    for (int dir = -1; dir <= 1; dir += 2) {
        uint64_t nsize = t->size + (uint64_t)(dir * (int64_t)BLK);
        memset(b, 0, t->size + 2 * BLK);
        memcpy(b, t->bytes, nsize < t->size ? nsize - VHD_FOOTER_BYTES
                                            : t->size - VHD_FOOTER_BYTES);
        vhd_footer f;
        assert_int_equal(vhd_footer_decode(&f, t->bytes + t->size - VHD_FOOTER_BYTES), 0);
        f.current_size = nsize - VHD_FOOTER_BYTES;
        vhd_footer_encode(&f, b + nsize - VHD_FOOTER_BYTES);
        ro_case(dir < 0 ? "truncate by 4096 bytes, valid footer for the new size"
                        : "extend by 4096 bytes, valid footer for the new size",
                b, nsize, t, NULL, NULL, &o);
        assert_int_equal(o.open_err, VD_ERR_CORRUPT);
        outcome_free(&o);
    }
    free(b);
}

static void test_garbage_files(void **state)
{
    (void)state;
    const timg *t = &g_main;
    outcome o;
    ro_case("zero-length file", NULL, 0, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);

    uint8_t *b = malloc(t->size);
    assert_non_null(b);
    uint64_t s = 0x72616e646f6dull;
    for (uint64_t i = 0; i < t->size; i++)
        b[i] = (uint8_t)(xs_next(&s) >> 56);
    ro_case("random bytes, image size", b, t->size, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);

    ro_case("random bytes, 1000 bytes", b, 1000, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);

    ro_case("random bytes, exactly 4 blocks + 512", b, 4 * BLK + 512, t, NULL, NULL,
            &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);

    /* Random bytes behind our own, valid VHD footer. */
    memcpy(b + t->size - VHD_FOOTER_BYTES, t->bytes + t->size - VHD_FOOTER_BYTES,
           VHD_FOOTER_BYTES);
    ro_case("random bytes with a valid VHD footer", b, t->size, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);

    /* All zeros, image size. */
    memset(b, 0, t->size);
    ro_case("all zeros, image size", b, t->size, t, NULL, NULL, &o);
    assert_int_equal(o.open_err, VD_ERR_CORRUPT);
    outcome_free(&o);
    free(b);
}

static void test_wrong_key(void **state)
{
    (void)state;
    const timg *all[] = {&g_main, &g_partial, &g_ip_pre};
    uint8_t wrong[VD_KEY_BYTES];
    for (size_t i = 0; i < 3; i++) {
        for (unsigned k = 0; k < 2; k++) {
            memcpy(wrong, KEY, sizeof wrong);
            wrong[k ? 31 : 0] ^= 0x01; /* one bit away from the right key */
            const uint8_t *c[1] = {all[i]->expect};
            outcome o;
            run_ro(all[i]->bytes, all[i]->size, wrong, NULL, NBLOCKS, NULL, c, 1, &o);
            print_outcome(all[i]->name, &o);
            assert_safe(&o);
            tally(outcome_detected(&o));
            assert_int_equal(o.open_err, VD_ERR_WRONG_KEY);
            outcome_free(&o);
        }
    }
    /* A writable open with the wrong key must not touch the image either. */
    vd_host *h;
    wrap_host w;
    vd_image *img = NULL;
    h = vt_host_mem_from(g_ip_pre.bytes, g_ip_pre.size);
    wrap_init(&w, h);
    wrong[0] ^= 0x80;
    assert_int_equal(vd_image_open(&w.pt.host, wrong, NULL, &img), VD_ERR_WRONG_KEY);
    assert_null(img);
    assert_int_equal(w.mutations, 0);
    uint64_t n;
    uint8_t *d = vd_host_mem_data(h, &n);
    assert_int_equal(n, g_ip_pre.size);
    assert_memory_equal(d, g_ip_pre.bytes, n);
    vd_host_mem_free(h);
    tally(1);
}

/* The literal requirement "on a failed read the output buffer is all
 * zeros", for VD_ERR_FAILED too: once a node failed authentication, later
 * reads return VD_ERR_FAILED. The buffer is filled with a sentinel first. */
static void test_failed_read_wipes_output(void **state)
{
    (void)state;
    const timg *t = &g_main;
    uint8_t *b = dup_bytes(t);
    b[node_phys(t, 2, 0) * BLK + 100] ^= 0x10; /* the root node */
    outcome o;
    const uint8_t *c[1] = {t->expect};
    run_ro(b, t->size, KEY, NULL, NBLOCKS, NULL, c, 1, &o);
    print_outcome("root node bit flip: do FAILED reads wipe the buffer?", &o);
    printf("    FAILED reads: %llu, of which the buffer was not all zeros: %llu\n",
           (unsigned long long)o.n_failed, (unsigned long long)o.n_failed_nonzero);
    assert_safe(&o);
    assert_int_equal(o.first_err, VD_ERR_AUTH);
    assert_int_equal(o.n_failed, NBLOCKS - 1);
    assert_int_equal(o.n_failed_nonzero, 0);
    outcome_free(&o);

    /* Multi-block reads: a failure anywhere wipes the whole buffer. */
    vd_host *h;
    vd_image *img;
    uint8_t *buf = malloc((size_t)NBLOCKS * BLK);
    assert_non_null(buf);
    vd_open_opts oo = {.read_only = 1};
    h = vt_host_mem_from(b, t->size);
    assert_int_equal(vd_image_open(h, KEY, &oo, &img), VD_OK);
    memset(buf, SENTINEL, (size_t)NBLOCKS * BLK);
    assert_int_equal(vd_image_read(img, 0, NBLOCKS, buf), VD_ERR_AUTH);
    assert_true(all_bytes(buf, (size_t)NBLOCKS * BLK, 0));
    memset(buf, SENTINEL, (size_t)NBLOCKS * BLK);
    assert_int_equal(vd_image_read(img, 0, NBLOCKS, buf), VD_ERR_FAILED);
    assert_true(all_bytes(buf, (size_t)NBLOCKS * BLK, 0));
    assert_int_equal(vd_image_close(img), VD_OK);

    /* A bad data block in the middle of a run: AUTH, all wiped, and the
     * blocks around it still read on their own. */
    memcpy(b, t->bytes, t->size);
    b[(t->hdr.data_start + 70) * BLK + 5] ^= 0x01;
    assert_int_equal(vd_host_mem_set(h, b, t->size), VD_OK);
    assert_int_equal(vd_image_open(h, KEY, &oo, &img), VD_OK);
    memset(buf, SENTINEL, (size_t)NBLOCKS * BLK);
    assert_int_equal(vd_image_read(img, 60, 20, buf), VD_ERR_AUTH);
    assert_true(all_bytes(buf, 20 * BLK, 0));
    assert_int_equal(vd_image_read(img, 60, 10, buf), VD_OK);
    assert_memory_equal(buf, t->expect + 60 * BLK, 10 * BLK);
    assert_int_equal(vd_image_read(img, 71, 9, buf), VD_OK);
    assert_memory_equal(buf, t->expect + 71 * BLK, 9 * BLK);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_host_mem_free(h);
    free(buf);
    free(b);
    tally(1);
}

/* Interrupted sync whose journal covers whole subtrees (g_ip_sub: lbns
 * 20..39 and 128..299 rewritten, crash after the IN_PROGRESS record).
 * While the sync is unresolved a journaled block takes its candidate
 * versions from the authenticated journal, not from its parent; so a node
 * whose children are ALL journaled (level-1 nodes 1 and 2) and the root
 * (all three level-1 nodes are journaled) are never loaded by a read-only
 * open, however many blocks it reads. A writable open resolves the sync
 * and loads them. Each node gets one bit flipped:
 *   - writable open (on a copy): must refuse it (the recovery commit
 *     verifies every journaled node);
 *   - read-only open + every block read: must be safe (it is: no node's
 *     content is needed) AND, since the bytes hold state (the journal
 *     names the node's versions), must detect the flip. */
static void test_interrupted_unverified_nodes(void **state)
{
    (void)state;
    const timg *t = &g_ip_sub;
    uint8_t *b = dup_bytes(t);
    const struct {
        const char *what;
        uint64_t phys;
    } nodes[] = {
        {"root", node_phys(t, 2, 0)},
        {"level-1 node 0 (lbn 0..127; 20..39 journaled)", node_phys(t, 1, 0)},
        {"level-1 node 1 (lbn 128..255, all journaled)", node_phys(t, 1, 1)},
        {"level-1 node 2 (lbn 256..299, all journaled)", node_phys(t, 1, 2)},
    };
    unsigned undetected = 0;
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        memcpy(b, t->bytes, t->size);
        b[nodes[i].phys * BLK + 1234] ^= 0x04;

        vd_host *h;
        wrap_host w;
        vd_image *img = NULL;
        h = vt_host_mem_from(b, t->size);
        wrap_init(&w, h);
        vd_err e = vd_image_open(&w.pt.host, KEY, NULL, &img);
        printf("  %-58s writable open -> %s (%llu mutating calls)\n", nodes[i].what,
               errname(e), (unsigned long long)w.mutations);
        if (img)
            (void)vd_image_close(img);
        vd_host_mem_free(h);
        assert_int_equal(e, VD_ERR_AUTH);

        outcome o;
        char what[96];
        snprintf(what, sizeof what, "  read-only: %s", nodes[i].what);
        ro_case(what, b, t->size, t, NULL, NULL, &o);
        if (!outcome_detected(&o)) {
            undetected++;
            printf("    NOT DETECTED: %llu of %llu reads returned the exact content, "
                   "no error\n",
                   (unsigned long long)o.n_ok, (unsigned long long)o.nblocks);
        }
        outcome_free(&o);
    }
    free(b);
    assert_int_equal(undetected, 0);
}

/* A journaled block whose "before" is never written (SECURITY.md R2: while
 * an interrupted sync is unresolved a journaled block may read as either
 * version, and either may be "never written"). From g_partial (lbns
 * 0..199 written), an interrupted sync writes 190..249; crash after the
 * in-place writes. The new ciphertext of lbn 210 is spoiled (one bit).
 * Safe outcomes: VD_ERR_AUTH, or lbn 210 reads as its before version
 * (zeros) - the crash semantics allow any subset of the round's writes to
 * have landed. Every other block must read its post-crash content. The
 * tree of record (the IN_PROGRESS root is the old root) says "never
 * written", so these bytes count as holding no state; the outcome is
 * printed. */
static void test_interrupted_never_written_block(void **state)
{
    (void)state;
    timg post;
    const lrange r[] = {{190, 250}};
    build_interrupted(&g_partial, r, 1, 5, NULL, NULL, &post,
                      "interrupted sync over never-written blocks (post)");
    assert_int_equal(post.nostate[post.hdr.data_start + 210], 1);
    uint8_t *b = dup_bytes(&post);
    b[(post.hdr.data_start + 210) * BLK + 77] ^= 0x20;
    const uint8_t *c[2] = {post.expect, g_partial.expect};
    outcome o;
    run_ro(b, post.size, KEY, NULL, NBLOCKS, NULL, c, 2, &o);
    print_outcome("interrupted sync, spoiled new block 210 (before: never written)", &o);
    printf("    lbn 210: %s, %s\n", errname(o.rd[210]),
           o.rd[210] != VD_OK ? "-"
           : o.match[210] == 2u ? "reads as its before version (zeros)"
           : o.match[210] == 1u ? "reads as its after version"
                                : "other content");
    assert_int_equal(o.mutations, 0);
    assert_false(o.bytes_changed);
    assert_int_equal(o.open_err, VD_OK);
    assert_int_equal(o.n_auth_unwiped, 0);
    assert_int_equal(o.n_failed_nonzero, 0);
    for (uint64_t l = 0; l < NBLOCKS; l++) {
        if (l == 210)
            continue;
        assert_int_equal(o.rd[l], VD_OK);
        assert_true(o.match[l] & 1u); /* the post-crash content */
    }
    /* 210: its after version is gone; its before version or an error. */
    assert_true(o.rd[210] == VD_ERR_AUTH || (o.rd[210] == VD_OK && o.match[210] == 2u));
    tally(outcome_detected(&o));
    outcome_free(&o);
    free(b);
    timg_free(&post);
}

static void test_summary(void **state)
{
    (void)state;
    printf("tamper: %llu cases checked, %llu detected (structural: %llu cases, %llu "
           "detected; single-bit flips: %llu, %llu detected, %llu in no-state bytes; "
           "sweep mode: %s)\n",
           (unsigned long long)(g_cases + g_flips),
           (unsigned long long)(g_detected + g_flips_detected),
           (unsigned long long)g_cases, (unsigned long long)g_detected,
           (unsigned long long)g_flips, (unsigned long long)g_flips_detected,
           (unsigned long long)g_flips_nostate,
           g_full_sweep    ? "every byte of every image"
           : g_light_sweep ? "LIGHT (VD_TAMPER_LIGHT=1): a thin sample of every region"
                           : "SAMPLED: every metadata byte + a sample of data/no-state "
                          "bytes; VD_TAMPER_FULL=1 flips every byte");
    fflush(stdout);
    assert_true(g_cases > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_baseline),
        cmocka_unit_test(test_swap_data_blocks),
        cmocka_unit_test(test_cross_image),
        cmocka_unit_test(test_replay_data_block),
        cmocka_unit_test(test_replay_node),
        cmocka_unit_test(test_replay_superblocks),
        cmocka_unit_test(test_replay_whole_image),
        cmocka_unit_test(test_truncate_extend),
        cmocka_unit_test(test_garbage_files),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_failed_read_wipes_output),
        cmocka_unit_test(test_interrupted_never_written_block),
        cmocka_unit_test(test_interrupted_unverified_nodes),
        cmocka_unit_test(test_flip_main),
        cmocka_unit_test(test_flip_auto_journal),
        cmocka_unit_test(test_flip_partial),
        cmocka_unit_test(test_flip_log),
        cmocka_unit_test(test_flip_interrupted_pre),
        cmocka_unit_test(test_flip_interrupted_post),
        cmocka_unit_test(test_flip_interrupted_subtrees),
        cmocka_unit_test(test_summary),
    };
    /* VD_TAMPER_FILTER=pattern runs only the matching tests (cmocka glob). */
    const char *filter = getenv("VD_TAMPER_FILTER");
    if (filter && filter[0])
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
