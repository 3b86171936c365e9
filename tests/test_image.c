/* API, bad-input and hostile-host tests of the secure block device
 * (vd_image_*):
 *   - round trips on the memory and file backends (create, write, sync,
 *     close, reopen, read back exactly), never-written blocks, multi-block
 *     runs, last block, range and argument errors, read-only handles,
 *     close-without-sync;
 *   - both AES-256-GCM implementations share one format; XChaCha20-Poly1305;
 *   - a tiny cache under a random workload checked against a model;
 *   - wrong keys, probe, malformed containers (header, footer, size);
 *   - a hostile host (tests/support/fault.h): failing, short and over-long
 *     reads, failing or lying size(), failing writes/flushes during a sync
 *     at every position, dropped and torn writes, clocks that lie;
 *   - four threads on one handle.
 * Every failed open must leave the image byte-for-byte untouched. Random
 * workloads print their seed; rerun one with VD_IMAGE_SEED=<seed>. */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "passthru.h"
#include "testkit.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

/* Layout facts of docs/FORMAT.md (image_format.h): block 0 header, block 1
 * key slots, blocks 2 and 3 superblocks, journal from block 4, nodes, data,
 * then a 512-byte VHD footer. */
#define BS ((size_t)VD_BLOCK_SIZE)
#define FOOTER_BYTES 512u
#define SB_FIRST_BLOCK 2u
#define JOURNAL_FIRST_BLOCK 4u
#define TINY_CACHE ((size_t)1 << 20) /* 256 entries, the minimum */

/* ---- reporting -------------------------------------------------------------- */

static const char *ename(vd_err e)
{
    switch (e) {
    case VD_OK: return "VD_OK";
    case VD_ERR_IO: return "VD_ERR_IO";
    case VD_ERR_AUTH: return "VD_ERR_AUTH";
    case VD_ERR_ROLLBACK: return "VD_ERR_ROLLBACK";
    case VD_ERR_WRONG_KEY: return "VD_ERR_WRONG_KEY";
    case VD_ERR_CORRUPT: return "VD_ERR_CORRUPT";
    case VD_ERR_NOSPC: return "VD_ERR_NOSPC";
    case VD_ERR_INVAL: return "VD_ERR_INVAL";
    case VD_ERR_NOMEM: return "VD_ERR_NOMEM";
    case VD_ERR_UNSUPPORTED: return "VD_ERR_UNSUPPORTED";
    case VD_ERR_BUSY: return "VD_ERR_BUSY";
    case VD_ERR_FAILED: return "VD_ERR_FAILED";
    case VD_ERR_READONLY: return "VD_ERR_READONLY";
    case VD_ERR_RANGE: return "VD_ERR_RANGE";
    case VD_ERR_NOENT: return "VD_ERR_NOENT";
    case VD_ERR_EXIST: return "VD_ERR_EXIST";
    case VD_ERR_NOTDIR: return "VD_ERR_NOTDIR";
    case VD_ERR_ISDIR: return "VD_ERR_ISDIR";
    case VD_ERR_NOTEMPTY: return "VD_ERR_NOTEMPTY";
    case VD_ERR_NAME: return "VD_ERR_NAME";
    case VD_ERR_FBIG: return "VD_ERR_FBIG";
    case VD_ERR_MFILE: return "VD_ERR_MFILE";
    case VD_ERR_PERM: return "VD_ERR_PERM";
    case VD_ERR_LOOP: return "VD_ERR_LOOP";
    case VD_ERR_ANCHOR_MISMATCH: return "VD_ERR_ANCHOR_MISMATCH";
    case VD_ERR_ANCHOR_UNREACHABLE: return "VD_ERR_ANCHOR_UNREACHABLE";
    case VD_ERR_ANCHOR_MISSING: return "VD_ERR_ANCHOR_MISSING";
    case VD_ERR_ANCHOR_DENIED: return "VD_ERR_ANCHOR_DENIED";
    case VD_ERR_REKEY: return "VD_ERR_REKEY";
    }
    return "(unknown vd_err)";
}

#define CHECK(cond, ...)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            print_error("CHECK(%s) failed: ", #cond);                         \
            print_error(__VA_ARGS__);                                         \
            print_error("\n");                                                \
            fail();                                                           \
        }                                                                     \
    } while (0)

#define EXPECT_ERR(got, want, ...)                                            \
    do {                                                                      \
        vd_err got_ = (got), want_ = (want);                                  \
        if (got_ != want_) {                                                  \
            print_error("got %s (%d), want %s (%d): ", ename(got_),           \
                        (int)got_, ename(want_), (int)want_);                 \
            print_error(__VA_ARGS__);                                         \
            print_error("\n");                                                \
            fail();                                                           \
        }                                                                     \
    } while (0)

#define OK(expr) EXPECT_ERR((expr), VD_OK, "%s", #expr)

/* ---- seeds and content ------------------------------------------------------- */

static uint64_t g_seed;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *s, uint64_t n)
{
    return n ? splitmix(s) % n : 0;
}

static uint64_t str_hash(const char *p)
{
    uint64_t h = 1469598103934665603ull;
    while (*p) {
        h ^= (uint8_t)*p++;
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t test_seed(const char *name)
{
    uint64_t s = g_seed ^ str_hash(name);
    print_message("[   seed   ] %s: 0x%016" PRIx64
                  " (whole run: VD_IMAGE_SEED=0x%016" PRIx64 ")\n",
                  name, s, g_seed);
    return s;
}

static void make_key(uint8_t key[VD_KEY_BYTES], uint64_t id)
{
    uint64_t s = 0x6B65790000000000ull ^ id;
    for (unsigned i = 0; i < VD_KEY_BYTES; i += 8) {
        uint64_t v = splitmix(&s);
        memcpy(key + i, &v, 8);
    }
}

/* Content of logical block lbn at generation gen (0: never written, zeros).
 * Generations are unique per write, so old and new contents differ. */
static void fill_block(uint8_t *b, uint64_t lbn, uint64_t gen)
{
    if (gen == 0) {
        memset(b, 0, BS);
        return;
    }
    uint64_t s = lbn * 0xD6E8FEB86659FD93ull ^ gen * 0xC2B2AE3D27D4EB4Full;
    for (size_t i = 0; i < BS; i += 8) {
        uint64_t v = splitmix(&s);
        memcpy(b + i, &v, 8);
    }
}

static int block_is(const uint8_t *b, uint64_t lbn, uint64_t gen)
{
    uint8_t want[VD_BLOCK_SIZE];
    fill_block(want, lbn, gen);
    return memcmp(want, b, BS) == 0;
}

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* ---- the model: generation per block ---------------------------------------- */

typedef struct model {
    uint64_t n;
    uint64_t *gen;
    uint64_t next;
} model;

static void model_init(model *m, uint64_t n)
{
    m->n = n;
    m->gen = calloc(n, sizeof *m->gen);
    assert_non_null(m->gen);
    m->next = 1;
}

static void model_copy(model *dst, const model *src)
{
    model_init(dst, src->n);
    memcpy(dst->gen, src->gen, src->n * sizeof *src->gen);
    dst->next = src->next;
}

static void model_free(model *m)
{
    free(m->gen);
    memset(m, 0, sizeof *m);
}

/* Write count fresh blocks at lbn (one call) and record them. */
static void put_blocks(vd_image *img, model *m, uint64_t lbn, uint32_t count)
{
    uint8_t *buf = xmalloc((size_t)count * BS);
    uint64_t g0 = m->next;
    for (uint32_t i = 0; i < count; i++)
        fill_block(buf + (size_t)i * BS, lbn + i, g0 + i);
    vd_err e = vd_image_write(img, lbn, count, buf);
    free(buf);
    EXPECT_ERR(e, VD_OK, "write lbn %" PRIu64 " count %u", lbn, count);
    m->next += count;
    for (uint32_t i = 0; i < count; i++)
        m->gen[lbn + i] = g0 + i;
}

/* Read the whole image in calls of `chunk` blocks and compare. */
static void verify_all(vd_image *img, const model *m, uint32_t chunk,
                       const char *what)
{
    uint8_t *buf = xmalloc((size_t)chunk * BS);
    for (uint64_t lbn = 0; lbn < m->n; lbn += chunk) {
        uint32_t c = (uint32_t)(m->n - lbn < chunk ? m->n - lbn : chunk);
        vd_err e = vd_image_read(img, lbn, c, buf);
        if (e != VD_OK)
            free(buf);
        EXPECT_ERR(e, VD_OK, "%s: read lbn %" PRIu64 " count %u", what, lbn, c);
        for (uint32_t i = 0; i < c; i++) {
            int same = block_is(buf + (size_t)i * BS, lbn + i, m->gen[lbn + i]);
            if (!same)
                free(buf);
            CHECK(same, "%s: block %" PRIu64 " differs from generation %" PRIu64,
                  what, lbn + i, m->gen[lbn + i]);
        }
    }
    free(buf);
}

/* ---- hosts ---------------------------------------------------------------------- */

static vd_host *mem_new(void)
{
    vd_host *h = NULL;
    OK(vd_host_mem_new(&h));
    return h;
}

static uint8_t *snapshot(vd_host *h, uint64_t *n)
{
    uint64_t sz = 0;
    const uint8_t *d = vd_host_mem_data(h, &sz);
    uint8_t *c = xmalloc((size_t)sz);
    if (sz)
        memcpy(c, d, (size_t)sz);
    *n = sz;
    return c;
}

static int mem_equals(vd_host *h, const uint8_t *bytes, uint64_t n)
{
    uint64_t sz = 0;
    const uint8_t *d = vd_host_mem_data(h, &sz);
    return sz == n && (n == 0 || memcmp(d, bytes, (size_t)n) == 0);
}

static vd_fault *fault_new(vd_host *inner)
{
    vd_fault *f = vd_fault_new(inner);
    assert_non_null(f);
    return f;
}

static uint64_t mutations(vd_fault *f)
{
    return vd_fault_calls(f, VD_FAULT_WRITE) + vd_fault_calls(f, VD_FAULT_TRUNCATE);
}

static vd_image *open_img(const vd_host *h, const uint8_t *key, int ro,
                          size_t cache, vd_aead_impl impl)
{
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.read_only = ro;
    o.cache_bytes = cache;
    o.aead_impl = impl;
    vd_image *img = NULL;
    vd_err e = vd_image_open(h, key, &o, &img);
    EXPECT_ERR(e, VD_OK, "open (read_only %d, cache %zu, impl %d)", ro, cache,
               (int)impl);
    assert_non_null(img);
    return img;
}

/* Writable, every commit in place (three flushes, IN_PROGRESS first):
 * the sync fixtures below predict that protocol's writes. */
static vd_image *open_in_place(const vd_host *h, const uint8_t *key)
{
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .oneflush_blocks = VD_ONEFLUSH_NEVER};
    vd_image *img = NULL;
    EXPECT_ERR(vd_image_open(h, key, &o, &img), VD_OK, "open, commits in place");
    assert_non_null(img);
    return img;
}

static vd_image *create_img(const vd_host *h, const uint8_t *key,
                            uint64_t nblocks, vd_cipher cipher, size_t cache,
                            vd_aead_impl impl)
{
    vd_create_opts c;
    vd_open_opts o;
    memset(&c, 0, sizeof c);
    memset(&o, 0, sizeof o);
    c.nblocks = nblocks;
    c.cipher = cipher;
    o.cache_bytes = cache;
    o.aead_impl = impl;
    vd_image *img = NULL;
    vd_err e = vd_image_create(h, key, &c, &o, &img);
    EXPECT_ERR(e, VD_OK, "create %" PRIu64 " blocks, cipher %d", nblocks,
               (int)cipher);
    assert_non_null(img);
    return img;
}

static vd_image_info info_of(vd_image *img)
{
    vd_image_info i;
    memset(&i, 0, sizeof i);
    OK(vd_image_info_get(img, &i));
    return i;
}

/* A standard small image: 64 blocks, every even block written, synced and
 * closed. Returns its bytes; the model in *m. */
static uint8_t *golden_image(const uint8_t *key, uint64_t nblocks, model *m,
                             uint64_t *size)
{
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, nblocks, 0, 0, VD_AEAD_OPENSSL);
    model_init(m, nblocks);
    for (uint64_t l = 0; l < nblocks; l += 2)
        put_blocks(img, m, l, 1);
    OK(vd_image_close(img));
    uint8_t *b = snapshot(h, size);
    vd_host_mem_free(h);
    return b;
}

/* ---- a tracing host: which writes and flushes a sync issues --------------------- */

#define TR_MAX_W 8192u
#define TR_MAX_F 256u

typedef struct tracer {
    vd_host host;
    vd_host inner;
    int on, overflow;
    uint64_t nw, nf;
    uint64_t w_off[TR_MAX_W + 1], w_len[TR_MAX_W + 1];
    uint64_t f_after[TR_MAX_F + 1]; /* writes issued before flush k */
} tracer;

static int tr_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    tracer *t = ctx;
    return t->inner.read_at(t->inner.ctx, off, buf, len, done);
}

static int tr_write(void *ctx, uint64_t off, const void *buf, size_t len,
                    size_t *done)
{
    tracer *t = ctx;
    if (t->on) {
        if (t->nw < TR_MAX_W) {
            t->nw++;
            t->w_off[t->nw] = off;
            t->w_len[t->nw] = len;
        } else {
            t->overflow = 1;
        }
    }
    return t->inner.write_at(t->inner.ctx, off, buf, len, done);
}

static int tr_flush(void *ctx)
{
    tracer *t = ctx;
    if (t->on) {
        if (t->nf < TR_MAX_F)
            t->f_after[++t->nf] = t->nw;
        else
            t->overflow = 1;
    }
    return t->inner.flush(t->inner.ctx);
}

static int tr_size(void *ctx, uint64_t *size)
{
    tracer *t = ctx;
    return t->inner.size(t->inner.ctx, size);
}

static int tr_truncate(void *ctx, uint64_t size)
{
    tracer *t = ctx;
    return t->inner.truncate(t->inner.ctx, size);
}

static int tr_now(void *ctx, int64_t *ns)
{
    tracer *t = ctx;
    return t->inner.now(t->inner.ctx, ns);
}

static tracer *tracer_new(const vd_host *inner)
{
    tracer *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->inner = *inner;
    t->host.ctx = t;
    t->host.read_at = tr_read;
    t->host.write_at = tr_write;
    t->host.flush = tr_flush;
    t->host.size = tr_size;
    t->host.truncate = tr_truncate;
    t->host.now = tr_now;
    return t;
}

/* ==================================================================================
 * API basics
 * ================================================================================== */

static int g_dummy;

static void test_null_and_invalid_arguments_are_inval(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    uint8_t buf[VD_BLOCK_SIZE];
    make_key(key, 1);
    vd_host *h = mem_new();
    vd_fault *f = fault_new(h);
    vd_host *fh = vd_fault_host(f);
    vd_create_opts c = {.nblocks = 16};
    vd_open_opts ro = {.read_only = 1};
    vd_image *img;

    /* vd_image_create */
    EXPECT_ERR(vd_image_create(fh, key, &c, NULL, NULL), VD_ERR_INVAL, "out NULL");
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_create(NULL, key, &c, NULL, &img), VD_ERR_INVAL, "host NULL");
    CHECK(img == NULL, "*out must be NULL after a failed create");
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_create(fh, NULL, &c, NULL, &img), VD_ERR_INVAL, "key NULL");
    CHECK(img == NULL, "*out must be NULL after a failed create");
    EXPECT_ERR(vd_image_create(fh, key, NULL, NULL, &img), VD_ERR_INVAL, "copts NULL");
    vd_create_opts c0 = {.nblocks = 0};
    EXPECT_ERR(vd_image_create(fh, key, &c0, NULL, &img), VD_ERR_INVAL, "nblocks 0");
    EXPECT_ERR(vd_image_create(fh, key, &c, &ro, &img), VD_ERR_INVAL,
               "create with read_only open options");
    vd_create_opts cbad = {.nblocks = 16, .cipher = (vd_cipher)3};
    EXPECT_ERR(vd_image_create(fh, key, &cbad, NULL, &img), VD_ERR_INVAL, "cipher 3");
    cbad.cipher = (vd_cipher)0x7fffffff;
    EXPECT_ERR(vd_image_create(fh, key, &cbad, NULL, &img), VD_ERR_INVAL,
               "cipher 0x7fffffff");
    vd_create_opts chuge = {.nblocks = UINT64_MAX};
    EXPECT_ERR(vd_image_create(fh, key, &chuge, NULL, &img), VD_ERR_RANGE,
               "nblocks UINT64_MAX");
    chuge.nblocks = 1ull << 52; /* 2^64 bytes of data: not representable */
    EXPECT_ERR(vd_image_create(fh, key, &chuge, NULL, &img), VD_ERR_RANGE,
               "nblocks 2^52");
    vd_create_opts cjb = {.nblocks = 16, .journal_blocks = (1u << 20) + 1};
    EXPECT_ERR(vd_image_create(fh, key, &cjb, NULL, &img), VD_ERR_RANGE,
               "journal_blocks 2^20+1");
    /* A host missing a callback the create needs. */
    const char *names[] = {"read_at", "write_at", "flush", "size", "truncate"};
    for (unsigned k = 0; k < 5; k++) {
        vd_host partial = *fh;
        switch (k) {
        case 0: partial.read_at = NULL; break;
        case 1: partial.write_at = NULL; break;
        case 2: partial.flush = NULL; break;
        case 3: partial.size = NULL; break;
        default: partial.truncate = NULL; break;
        }
        img = (vd_image *)&g_dummy;
        EXPECT_ERR(vd_image_create(&partial, key, &c, NULL, &img), VD_ERR_INVAL,
                   "create on a host without %s", names[k]);
        CHECK(img == NULL, "*out NULL after failure (%s)", names[k]);
    }
    CHECK(mutations(f) == 0, "a refused create wrote to the host (%" PRIu64 " calls)",
          mutations(f));
    uint64_t sz = 1;
    (void)vd_host_mem_data(h, &sz);
    CHECK(sz == 0, "a refused create changed the host size to %" PRIu64, sz);

    /* A valid image for the handle-level checks. */
    img = create_img(fh, key, 16, 0, 0, VD_AEAD_OPENSSL);
    memset(buf, 0, sizeof buf);
    EXPECT_ERR(vd_image_read(NULL, 0, 1, buf), VD_ERR_INVAL, "read img NULL");
    EXPECT_ERR(vd_image_read(img, 0, 1, NULL), VD_ERR_INVAL, "read buf NULL");
    EXPECT_ERR(vd_image_write(NULL, 0, 1, buf), VD_ERR_INVAL, "write img NULL");
    EXPECT_ERR(vd_image_write(img, 0, 1, NULL), VD_ERR_INVAL, "write buf NULL");
    EXPECT_ERR(vd_image_sync(NULL), VD_ERR_INVAL, "sync NULL");
    vd_image_info info;
    EXPECT_ERR(vd_image_info_get(NULL, &info), VD_ERR_INVAL, "info img NULL");
    EXPECT_ERR(vd_image_info_get(img, NULL), VD_ERR_INVAL, "info out NULL");
    EXPECT_ERR(vd_image_probe(NULL, &info), VD_ERR_INVAL, "probe host NULL");
    EXPECT_ERR(vd_image_probe(fh, NULL), VD_ERR_INVAL, "probe info NULL");
    EXPECT_ERR(vd_image_close(NULL), VD_OK, "close(NULL) is a no-op");
    /* The handle still works after all that. */
    model m;
    model_init(&m, 16);
    put_blocks(img, &m, 3, 2);
    verify_all(img, &m, 16, "after NULL-argument calls");
    OK(vd_image_close(img));

    /* vd_image_open */
    vd_fault_reset_counters(f);
    EXPECT_ERR(vd_image_open(fh, key, NULL, NULL), VD_ERR_INVAL, "open out NULL");
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_open(NULL, key, NULL, &img), VD_ERR_INVAL, "open host NULL");
    CHECK(img == NULL, "*out NULL after failed open");
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_open(fh, NULL, NULL, &img), VD_ERR_INVAL, "open key NULL");
    CHECK(img == NULL, "*out NULL after failed open");
    for (unsigned k = 0; k < 4; k++) {
        vd_host partial = *fh;
        switch (k) {
        case 0: partial.read_at = NULL; break;
        case 1: partial.write_at = NULL; break;
        case 2: partial.flush = NULL; break;
        default: partial.size = NULL; break;
        }
        EXPECT_ERR(vd_image_open(&partial, key, NULL, &img), VD_ERR_INVAL,
                   "writable open on a host without %s", names[k]);
    }
    vd_open_opts badimpl = {.aead_impl = (vd_aead_impl)77};
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_open(fh, key, &badimpl, &img), VD_ERR_INVAL, "aead_impl 77");
    CHECK(img == NULL, "*out NULL after failed open");
    vd_anchor half = {.ctx = NULL, .read = NULL, .advance = NULL};
    vd_open_opts badanchor = {.anchor = &half};
    EXPECT_ERR(vd_image_open(fh, key, &badanchor, &img), VD_ERR_INVAL,
               "anchor without callbacks");
    CHECK(mutations(f) == 0, "a refused open wrote to the host");

    /* Strings. */
    for (int e = 0; e >= -13; e--) {
        const char *s = vd_strerror((vd_err)e);
        CHECK(s != NULL && s[0] != '\0', "vd_strerror(%d) empty", e);
        for (int e2 = 0; e2 > e; e2--)
            CHECK(strcmp(s, vd_strerror((vd_err)e2)) != 0,
                  "vd_strerror(%d) == vd_strerror(%d)", e, e2);
    }
    CHECK(vd_strerror((vd_err)-999) != NULL, "vd_strerror(unknown) NULL");
    CHECK(vd_strerror((vd_err)42) != NULL, "vd_strerror(42) NULL");
    CHECK(strcmp(vd_version(), VD_VERSION_STRING) == 0, "version %s", vd_version());

    model_free(&m);
    vd_fault_free(f);
    vd_host_mem_free(h);
}

/* create -> write -> read (cache) -> sync -> close -> reopen -> read back. */
static void test_memory_round_trip_with_runs_last_block_and_zeros(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 2);
    const uint64_t n = 300; /* two tree levels: 3 level-1 nodes + root */
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_OPENSSL);
    vd_image_info i0 = info_of(img);
    CHECK(i0.nblocks == n && i0.fanout == 128 && i0.height == 2,
          "nblocks %" PRIu64 " fanout %u height %u", i0.nblocks, i0.fanout, i0.height);
    CHECK(i0.cipher == VD_CIPHER_AES256GCM, "cipher %d", (int)i0.cipher);
    CHECK(i0.read_only == 0 && i0.recovered == 0, "flags");
    CHECK(i0.format_version == 6, "format_version %u", i0.format_version);
    CHECK(strcmp(i0.aead_impl_name, "openssl") == 0, "impl %s", i0.aead_impl_name);
    uint64_t hsize = 0;
    (void)vd_host_mem_data(h, &hsize);
    CHECK(i0.file_bytes == hsize && i0.total_blocks * BS + FOOTER_BYTES == hsize,
          "file_bytes %" PRIu64 " total_blocks %" PRIu64 " host %" PRIu64,
          i0.file_bytes, i0.total_blocks, hsize);

    model m;
    model_init(&m, n);
    verify_all(img, &m, 300, "fresh image reads zeros");
    put_blocks(img, &m, 0, 1);
    put_blocks(img, &m, 5, 200);  /* > 64-block runs, crosses node 0/1 */
    put_blocks(img, &m, n - 1, 1); /* last block */
    put_blocks(img, &m, 250, 3);
    put_blocks(img, &m, 251, 1);  /* overwrite inside the cache */
    verify_all(img, &m, 7, "before sync (cache)");
    OK(vd_image_sync(img));
    vd_image_info i1 = info_of(img);
    CHECK(i1.syncs >= 1 && i1.epoch > i0.epoch, "syncs %" PRIu64 " epoch %" PRIu64
          " -> %" PRIu64, i1.syncs, i0.epoch, i1.epoch);
    OK(vd_image_sync(img)); /* nothing dirty: no new epoch */
    vd_image_info i2 = info_of(img);
    CHECK(i2.epoch == i1.epoch, "empty sync moved epoch %" PRIu64 " -> %" PRIu64,
          i1.epoch, i2.epoch);
    verify_all(img, &m, 300, "after sync");
    OK(vd_image_close(img));

    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    CHECK(info_of(img).epoch == i1.epoch, "reopened epoch");
    verify_all(img, &m, 300, "reopen, one 300-block read");
    OK(vd_image_close(img));
    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    uint8_t b[VD_BLOCK_SIZE];
    /* Some blocks cached, the rest not: runs split around cached ones. */
    for (uint64_t l = 3; l < n; l += 37)
        OK(vd_image_read(img, l, 1, b));
    verify_all(img, &m, 300, "reopen, mixed cached/uncached read");
    verify_all(img, &m, 1, "reopen, block by block");
    /* Second generation on top of the first. */
    put_blocks(img, &m, 120, 20);
    put_blocks(img, &m, n - 2, 2);
    OK(vd_image_close(img));
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 64, "second generation");
    OK(vd_image_close(img));
    model_free(&m);
    vd_host_mem_free(h);
}

/* Tree heights at the fanout boundaries: first, last and a middle block. */
static void test_round_trip_at_tree_geometry_boundaries(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 3);
    const uint64_t sizes[] = {1, 2, 127, 128, 129, 16384, 16385};
    const uint32_t heights[] = {1, 1, 1, 1, 2, 2, 3};
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint64_t n = sizes[k];
        vd_host *h = mem_new();
        vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_OPENSSL);
        model m;
        model_init(&m, n);
        put_blocks(img, &m, 0, 1);
        if (n > 1)
            put_blocks(img, &m, n - 1, 1);
        OK(vd_image_close(img));
        vd_image_info pi;
        OK(vd_image_probe(h, &pi));
        CHECK(pi.nblocks == n && pi.height == heights[k],
              "n %" PRIu64 ": probe nblocks %" PRIu64 " height %u (want %u)", n,
              pi.nblocks, pi.height, heights[k]);
        img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
        uint8_t b[VD_BLOCK_SIZE];
        uint64_t probe_lbns[3] = {0, n / 2, n - 1};
        for (unsigned j = 0; j < 3; j++) {
            uint64_t l = probe_lbns[j];
            OK(vd_image_read(img, l, 1, b));
            CHECK(block_is(b, l, m.gen[l]), "n %" PRIu64 " block %" PRIu64, n, l);
        }
        EXPECT_ERR(vd_image_read(img, n, 1, b), VD_ERR_RANGE, "n %" PRIu64, n);
        OK(vd_image_close(img));
        model_free(&m);
        vd_host_mem_free(h);
    }
}

/* ---- file backend --------------------------------------------------------------- */

static char g_dir[64];
static char g_path[128];

static int file_teardown(void **state)
{
    (void)state;
    if (g_path[0])
        (void)unlink(g_path);
    if (g_dir[0])
        (void)rmdir(g_dir);
    g_path[0] = g_dir[0] = '\0';
    return 0;
}

static void test_file_host_round_trip_close_syncs(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 4);
    snprintf(g_dir, sizeof g_dir, "/tmp/vd-test-image-XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(g_path, sizeof g_path, "%s/disk.vhd", g_dir);

    const uint64_t n = 500;
    vd_host *h = NULL;
    int err = 0;
    OK(vd_host_file_open(g_path, VD_HOST_CREATE, &h, &err));
    vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_AUTO);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, 0, 70);
    put_blocks(img, &m, 200, 1);
    put_blocks(img, &m, n - 1, 1);
    OK(vd_image_sync(img));
    put_blocks(img, &m, 60, 20); /* only close will sync these */
    OK(vd_image_close(img));
    vd_host_file_close(h);

    struct stat st;
    CHECK(stat(g_path, &st) == 0, "stat: %s", strerror(errno));
    h = NULL;
    OK(vd_host_file_open(g_path, VD_HOST_READONLY, &h, &err));
    vd_image_info pi;
    OK(vd_image_probe(h, &pi));
    CHECK((uint64_t)st.st_size == pi.file_bytes && pi.nblocks == n,
          "file size %lld, probe file_bytes %" PRIu64, (long long)st.st_size,
          pi.file_bytes);
    uint8_t foot[FOOTER_BYTES];
    size_t done = 0;
    CHECK(h->read_at(h->ctx, (uint64_t)st.st_size - FOOTER_BYTES, foot,
                     sizeof foot, &done) == 0 && done == sizeof foot, "footer read");
    CHECK(memcmp(foot, "conectix", 8) == 0, "VHD footer cookie missing");
    img = open_img(h, key, 1, 0, VD_AEAD_AUTO);
    verify_all(img, &m, 100, "file host, read-only reopen");
    OK(vd_image_close(img));
    vd_host_file_close(h);

    /* Writable reopen, more writes, create over it refused. */
    OK(vd_host_file_open(g_path, 0, &h, &err));
    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    put_blocks(img, &m, 100, 5);
    OK(vd_image_close(img));
    vd_create_opts c = {.nblocks = 8};
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_create(h, key, &c, NULL, &img), VD_ERR_INVAL,
               "create over an existing image file");
    CHECK(img == NULL, "*out NULL");
    vd_host_file_close(h);
    struct stat st2;
    CHECK(stat(g_path, &st2) == 0 && st2.st_size == st.st_size,
          "refused create changed the file size");
    OK(vd_host_file_open(g_path, VD_HOST_READONLY, &h, &err));
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 500, "file host after refused create");
    OK(vd_image_close(img));
    vd_host_file_close(h);
    model_free(&m);
}

/* ---- ranges, create over data, read-only, close ---------------------------------- */

static void test_range_errors_and_no_partial_write(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 5);
    const uint64_t n = 200;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, n - 1, 1);
    put_blocks(img, &m, 0, 1);
    OK(vd_image_sync(img));
    uint8_t *buf = xmalloc(4 * BS);
    memset(buf, 0x5A, 4 * BS);
    struct {
        uint64_t lbn;
        uint32_t count;
    } bad[] = {
        {n, 1},                   /* lbn == nblocks */
        {n - 1, 2},               /* last block + one past the end */
        {0, (uint32_t)n + 1},     /* count past the end */
        {1, UINT32_MAX},          /* huge count */
        {UINT64_MAX, 1},          /* absurd lbn */
        {UINT64_MAX - 1, 3},      /* lbn + count wraps to a small number */
        {n + 1, 1},
    };
    vd_image_info before = info_of(img);
    for (unsigned k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        /* The buffers handed in are only 4 blocks: a range check done after
         * touching the buffer would crash (or be seen by ASan). */
        uint32_t c = bad[k].count;
        EXPECT_ERR(vd_image_read(img, bad[k].lbn, c, buf), VD_ERR_RANGE,
                   "read lbn %" PRIu64 " count %u", bad[k].lbn, c);
        EXPECT_ERR(vd_image_write(img, bad[k].lbn, c, buf), VD_ERR_RANGE,
                   "write lbn %" PRIu64 " count %u", bad[k].lbn, c);
    }
    /* Nothing of the refused writes landed, in the cache or on sync. */
    OK(vd_image_sync(img));
    vd_image_info after = info_of(img);
    CHECK(after.epoch == before.epoch, "refused writes produced a commit");
    verify_all(img, &m, 50, "after refused writes");
    OK(vd_image_close(img));
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 200, "reopen after refused writes");
    EXPECT_ERR(vd_image_read(img, n, 1, buf), VD_ERR_RANGE, "read-only handle");
    OK(vd_image_close(img));
    free(buf);
    model_free(&m);
    vd_host_mem_free(h);
}

static void test_create_over_nonempty_host_is_inval_and_writes_nothing(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 6);
    vd_create_opts c = {.nblocks = 32};
    /* One stray byte, one zero byte, and a whole valid image. */
    uint8_t one = 0x42, zero = 0;
    model m;
    uint64_t gsize;
    uint8_t *golden = golden_image(key, 64, &m, &gsize);
    struct {
        const uint8_t *b;
        uint64_t n;
        const char *what;
    } cases[] = {{&one, 1, "1 byte"}, {&zero, 1, "1 zero byte"},
                 {golden, gsize, "an existing image"}};
    for (unsigned k = 0; k < 3; k++) {
        vd_host *h = vt_host_mem_from(cases[k].b, cases[k].n);
        vd_fault *f = fault_new(h);
        vd_image *img = (vd_image *)&g_dummy;
        EXPECT_ERR(vd_image_create(vd_fault_host(f), key, &c, NULL, &img),
                   VD_ERR_INVAL, "create over %s", cases[k].what);
        CHECK(img == NULL, "*out NULL (%s)", cases[k].what);
        CHECK(mutations(f) == 0 && vd_fault_calls(f, VD_FAULT_FLUSH) == 0,
              "create over %s touched the host", cases[k].what);
        CHECK(mem_equals(h, cases[k].b, cases[k].n), "bytes changed (%s)",
              cases[k].what);
        vd_fault_free(f);
        vd_host_mem_free(h);
    }
    /* The existing image is intact and opens. */
    vd_host *h = vt_host_mem_from(golden, gsize);
    vd_image *img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 64, "image after refused create");
    OK(vd_image_close(img));
    vd_host_mem_free(h);
    free(golden);
    model_free(&m);
}

static void test_read_only_handle_never_writes(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 7);
    model m;
    uint64_t gsize;
    uint8_t *golden = golden_image(key, 64, &m, &gsize);
    vd_host *h = vt_host_mem_from(golden, gsize);
    vd_fault *f = fault_new(h);
    vd_image *img = open_img(vd_fault_host(f), key, 1, 0, VD_AEAD_OPENSSL);
    CHECK(info_of(img).read_only == 1, "info.read_only");
    uint8_t b[VD_BLOCK_SIZE];
    fill_block(b, 1, 999);
    EXPECT_ERR(vd_image_write(img, 1, 1, b), VD_ERR_READONLY, "write");
    EXPECT_ERR(vd_image_write(img, 0, 1, b), VD_ERR_READONLY, "write");
    EXPECT_ERR(vd_image_write(img, 1000, 1, b), VD_ERR_READONLY,
               "write out of range on a read-only handle");
    OK(vd_image_sync(img));
    verify_all(img, &m, 64, "read-only handle");
    OK(vd_image_sync(img));
    OK(vd_image_close(img));
    CHECK(mutations(f) == 0, "read-only handle issued %" PRIu64 " writes/truncates",
          mutations(f));
    CHECK(vd_fault_calls(f, VD_FAULT_FLUSH) == 0, "read-only handle flushed");
    CHECK(mem_equals(h, golden, gsize), "read-only handle changed the image");

    /* A host with no write callbacks at all serves a read-only open. */
    vd_host now = *h;
    now.write_at = NULL;
    now.flush = NULL;
    now.truncate = NULL;
    img = open_img(&now, key, 1, 0, VD_AEAD_AUTO);
    verify_all(img, &m, 10, "host without write callbacks");
    EXPECT_ERR(vd_image_write(img, 2, 1, b), VD_ERR_READONLY, "write");
    OK(vd_image_close(img));
    vd_fault_free(f);
    vd_host_mem_free(h);
    free(golden);
    model_free(&m);
}

static void test_close_without_sync_persists(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 8);
    vd_host *h = mem_new();
    vd_fault *f = fault_new(h);
    vd_image *img = create_img(vd_fault_host(f), key, 1000, 0, 0, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, 1000);
    put_blocks(img, &m, 10, 100);
    put_blocks(img, &m, 999, 1);
    vd_fault_reset_counters(f);
    OK(vd_image_close(img));
    CHECK(vd_fault_calls(f, VD_FAULT_WRITE) > 0 && vd_fault_calls(f, VD_FAULT_FLUSH) > 0,
          "close wrote %" PRIu64 " times, flushed %" PRIu64 " times",
          vd_fault_calls(f, VD_FAULT_WRITE), vd_fault_calls(f, VD_FAULT_FLUSH));
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 128, "after close without sync");
    OK(vd_image_close(img));
    vd_fault_free(f);
    vd_host_mem_free(h);
    model_free(&m);
}

/* ---- ciphers and implementations --------------------------------------------------- */

static void test_openssl_and_sodium_aes_gcm_share_the_format(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 9);
    const uint64_t n = 400;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, 0, 150);
    put_blocks(img, &m, n - 1, 1);
    OK(vd_image_close(img));

    vd_open_opts so = {.aead_impl = VD_AEAD_SODIUM};
    img = NULL;
    vd_err e = vd_image_open(h, key, &so, &img);
    if (e == VD_ERR_UNSUPPORTED) {
        print_message("[   skip   ] libsodium AES-256-GCM unavailable on this CPU "
                      "(no AES-NI/PCLMUL): vd_image_open(VD_AEAD_SODIUM) = "
                      "VD_ERR_UNSUPPORTED\n");
        CHECK(img == NULL, "*out NULL");
        vd_host_mem_free(h);
        model_free(&m);
        skip();
    }
    EXPECT_ERR(e, VD_OK, "open with VD_AEAD_SODIUM");
    CHECK(strcmp(info_of(img).aead_impl_name, "libsodium") == 0, "impl %s",
          info_of(img).aead_impl_name);
    verify_all(img, &m, 100, "OpenSSL-written, libsodium-read");
    put_blocks(img, &m, 140, 100); /* written by libsodium, partly over */
    put_blocks(img, &m, 300, 1);
    OK(vd_image_close(img));

    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    CHECK(strcmp(info_of(img).aead_impl_name, "openssl") == 0, "impl");
    verify_all(img, &m, 100, "libsodium-written, OpenSSL-read");
    put_blocks(img, &m, 5, 3);
    OK(vd_image_close(img));
    img = open_img(h, key, 1, 0, VD_AEAD_SODIUM);
    verify_all(img, &m, 400, "mixed image, libsodium");
    OK(vd_image_close(img));
    img = open_img(h, key, 1, 0, VD_AEAD_AUTO);
    const char *auto_name = info_of(img).aead_impl_name;
    CHECK(strcmp(auto_name, "openssl") == 0 || strcmp(auto_name, "libsodium") == 0,
          "AUTO picked %s", auto_name);
    verify_all(img, &m, 400, "mixed image, AUTO");
    OK(vd_image_close(img));
    model_free(&m);
    vd_host_mem_free(h);
}

static void test_xchacha20poly1305_images_round_trip(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES], other[VD_KEY_BYTES];
    make_key(key, 10);
    make_key(other, 11);
    const uint64_t n = 300;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, VD_CIPHER_XCHACHA20POLY1305, 0, VD_AEAD_AUTO);
    vd_image_info i = info_of(img);
    CHECK(i.cipher == VD_CIPHER_XCHACHA20POLY1305, "cipher %d", (int)i.cipher);
    CHECK(strcmp(i.aead_impl_name, "xchacha20poly1305") == 0, "impl %s",
          i.aead_impl_name);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, 0, 130);
    put_blocks(img, &m, n - 1, 1);
    OK(vd_image_close(img));
    vd_image_info pi;
    OK(vd_image_probe(h, &pi));
    CHECK(pi.cipher == VD_CIPHER_XCHACHA20POLY1305 && pi.nblocks == n, "probe");
    /* The AES implementation choice does not apply to this cipher. */
    const vd_aead_impl impls[] = {VD_AEAD_AUTO, VD_AEAD_OPENSSL, VD_AEAD_SODIUM};
    for (unsigned k = 0; k < 3; k++) {
        img = open_img(h, key, 0, 0, impls[k]);
        CHECK(strcmp(info_of(img).aead_impl_name, "xchacha20poly1305") == 0,
              "impl %d -> %s", (int)impls[k], info_of(img).aead_impl_name);
        verify_all(img, &m, 100, "XChaCha reopen");
        put_blocks(img, &m, 100 + k * 50, 40);
        OK(vd_image_close(img));
    }
    img = (vd_image *)&g_dummy;
    EXPECT_ERR(vd_image_open(h, other, NULL, &img), VD_ERR_WRONG_KEY, "XChaCha wrong key");
    CHECK(img == NULL, "*out NULL");
    img = open_img(h, key, 1, 0, VD_AEAD_AUTO);
    verify_all(img, &m, 300, "XChaCha final");
    OK(vd_image_close(img));
    model_free(&m);
    vd_host_mem_free(h);
}

/* ---- cache pressure -------------------------------------------------------------------- */

static void test_tiny_cache_random_workload_matches_model(void **state)
{
    (void)state;
    uint64_t seed = test_seed("tiny_cache_random_workload");
    uint64_t rng = seed;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, seed);
    const uint64_t n = 20000;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, TINY_CACHE, VD_AEAD_OPENSSL);
    vd_image_info i0 = info_of(img);
    CHECK(i0.height == 3 && i0.fanout == 128, "height %u fanout %u", i0.height,
          i0.fanout);
    CHECK(i0.cache_bytes == 256 * BS, "cache_bytes %zu", i0.cache_bytes);

    model m;
    model_init(&m, n);
    uint8_t *rbuf = xmalloc(80 * BS);
    unsigned writes = 0, reads = 0;
    while (writes < 5000) {
        uint64_t lbn = rnd_below(&rng, n);
        uint32_t cnt = rnd_below(&rng, 8) == 0 ? 1 + (uint32_t)rnd_below(&rng, 4) : 1;
        if (lbn + cnt > n)
            cnt = (uint32_t)(n - lbn);
        put_blocks(img, &m, lbn, cnt);
        writes += cnt;
        uint64_t r = rnd_below(&rng, 4);
        if (r == 0 || r == 1) {
            /* Read one block: a recent write, or anywhere. */
            uint64_t l = r == 0 ? lbn : rnd_below(&rng, n);
            OK(vd_image_read(img, l, 1, rbuf));
            CHECK(block_is(rbuf, l, m.gen[l]),
                  "seed 0x%016" PRIx64 ": after %u writes block %" PRIu64
                  " != gen %" PRIu64, seed, writes, l, m.gen[l]);
            reads++;
        } else if (r == 2 && rnd_below(&rng, 8) == 0) {
            /* A multi-block read (runs longer than 64 blocks). */
            uint32_t c = 1 + (uint32_t)rnd_below(&rng, 80);
            uint64_t l = rnd_below(&rng, n - c);
            OK(vd_image_read(img, l, c, rbuf));
            for (uint32_t j = 0; j < c; j++)
                CHECK(block_is(rbuf + (size_t)j * BS, l + j, m.gen[l + j]),
                      "seed 0x%016" PRIx64 ": run read block %" PRIu64, seed, l + j);
            reads++;
        }
    }
    /* One write call four times the cache: implicit commits inside it. */
    put_blocks(img, &m, 15000, 1000);
    vd_image_info i1 = info_of(img);
    CHECK(i1.syncs > 0, "5000 writes in a 256-entry cache committed nothing "
          "(syncs %" PRIu64 ")", i1.syncs);
    OK(vd_image_sync(img));
    vd_image_info i2 = info_of(img);
    CHECK(i2.syncs > i1.syncs, "explicit sync of dirty blocks committed nothing");
    CHECK(i2.flushes > 0 && i2.bytes_written > 0, "flushes %" PRIu64 " bytes_written %"
          PRIu64, i2.flushes, i2.bytes_written);
    verify_all(img, &m, 100, "after sync, same handle");
    /* One read far larger than the cache. */
    uint8_t *big = xmalloc(1000 * BS);
    OK(vd_image_read(img, 9000, 1000, big));
    for (uint32_t j = 0; j < 1000; j++)
        CHECK(block_is(big + (size_t)j * BS, 9000 + j, m.gen[9000 + j]),
              "1000-block read, block %u", 9000 + j);
    OK(vd_image_close(img));
    print_message("[   info   ] %u writes, %u interleaved reads, %" PRIu64
                  " commits, %" PRIu64 " flushes\n", writes, reads, i2.syncs,
                  i2.flushes);

    img = open_img(h, key, 0, TINY_CACHE, VD_AEAD_OPENSSL);
    vd_image_info r0 = info_of(img);
    verify_all(img, &m, 100, "reopen with tiny cache");
    vd_image_info r1 = info_of(img);
    CHECK(r1.blocks_verified > r0.blocks_verified, "blocks_verified %" PRIu64
          " -> %" PRIu64, r0.blocks_verified, r1.blocks_verified);
    uint64_t written = 0;
    for (uint64_t l = 0; l < n; l++)
        written += m.gen[l] != 0;
    /* Every written data block was authenticated once at least (read
     * cold), plus tree nodes. */
    CHECK(r1.blocks_verified - r0.blocks_verified >= written,
          "verified %" PRIu64 " < %" PRIu64 " written blocks",
          r1.blocks_verified - r0.blocks_verified, written);
    CHECK(r1.bytes_read > r0.bytes_read, "bytes_read");
    OK(vd_image_read(img, 0, 1, rbuf));
    CHECK(info_of(img).blocks_verified >= r1.blocks_verified, "counter went back");
    OK(vd_image_close(img));
    img = open_img(h, key, 1, 0, VD_AEAD_AUTO);
    verify_all(img, &m, 1000, "read-only reopen, default cache");
    OK(vd_image_close(img));
    free(big);
    free(rbuf);
    model_free(&m);
    vd_host_mem_free(h);
}

/* ---- keys and probe ----------------------------------------------------------------- */

static void test_wrong_key_and_keyless_probe(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES], wrong[VD_KEY_BYTES];
    make_key(key, 12);
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, 20000, 0, 0, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, 20000);
    put_blocks(img, &m, 19999, 1);
    vd_image_info ii = info_of(img);
    OK(vd_image_close(img));
    uint64_t size;
    uint8_t *bytes = snapshot(h, &size);
    vd_fault *f = fault_new(h);
    for (unsigned k = 0; k < 3; k++) {
        memcpy(wrong, key, sizeof wrong);
        if (k == 0)
            wrong[VD_KEY_BYTES - 1] ^= 1; /* one bit */
        else if (k == 1)
            wrong[0] ^= 0x80;
        else
            memset(wrong, 0, sizeof wrong);
        for (int ro = 0; ro <= 1; ro++) {
            vd_open_opts o = {.read_only = ro};
            img = (vd_image *)&g_dummy;
            EXPECT_ERR(vd_image_open(vd_fault_host(f), wrong, &o, &img),
                       VD_ERR_WRONG_KEY, "wrong key variant %u, read_only %d", k, ro);
            CHECK(img == NULL, "*out NULL");
        }
    }
    CHECK(mutations(f) == 0 && vd_fault_calls(f, VD_FAULT_FLUSH) == 0,
          "wrong-key opens touched the host");
    CHECK(mem_equals(h, bytes, size), "wrong-key opens changed the image");

    vd_image_info pi;
    memset(&pi, 0xEE, sizeof pi);
    OK(vd_image_probe(vd_fault_host(f), &pi));
    CHECK(pi.nblocks == 20000 && pi.height == 3 && pi.fanout == 128,
          "probe nblocks %" PRIu64 " height %u fanout %u", pi.nblocks, pi.height,
          pi.fanout);
    CHECK(pi.cipher == VD_CIPHER_AES256GCM && pi.format_version == 6, "probe cipher");
    CHECK(pi.file_bytes == size && pi.total_blocks == ii.total_blocks &&
          pi.node_blocks == ii.node_blocks && pi.journal_blocks == ii.journal_blocks,
          "probe layout");
    CHECK(memcmp(pi.image_id, ii.image_id, 16) == 0, "probe image_id");
    /* Key-dependent fields are zero. */
    CHECK(pi.epoch == 0 && pi.syncs == 0 && pi.blocks_verified == 0 &&
          pi.aead_impl_name == NULL, "probe filled key-dependent fields");
    CHECK(mutations(f) == 0, "probe wrote");
    /* The right key still opens it. */
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 1000, "right key after wrong keys");
    OK(vd_image_close(img));
    vd_fault_free(f);
    free(bytes);
    model_free(&m);
    vd_host_mem_free(h);
}


/* vd_image_last_failure names what failed: the data block itself, or the
 * whole range of logical blocks under a tree node that failed (tools print
 * it and fsck maps it to files). */
static void test_last_failure_names_the_block_or_node_range(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 31);
    vd_host *h = mem_new();
    vd_create_opts c = {.nblocks = 64, .fanout = 4};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL};
    vd_image *img = NULL;
    OK(vd_image_create(h, key, &c, &o, &img));
    model m;
    model_init(&m, 64);
    put_blocks(img, &m, 0, 64);
    vd_bad_range r;
    EXPECT_ERR(vd_image_last_failure(img, &r), VD_ERR_NOENT, "no failure yet");
    vd_image_info ii = info_of(img);
    OK(vd_image_close(img));
    /* Layout (FORMAT.md): data is the last nblocks blocks of the container;
     * nodes are root-first, so level 1 of a 64-block fan-out-4 tree (16
     * nodes) is its last 16 node blocks. */
    uint64_t data_start = ii.total_blocks - 64;
    uint64_t level1_start = data_start - 16;
    uint64_t size;
    uint8_t *orig = snapshot(h, &size);
    uint8_t *bytes = vd_host_mem_data(h, &size);
    uint8_t buf[BS];

    bytes[(data_start + 37) * BS + 100] ^= 0x01;
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    EXPECT_ERR(vd_image_read(img, 36, 1, buf), VD_OK, "neighbour reads");
    EXPECT_ERR(vd_image_read(img, 37, 1, buf), VD_ERR_AUTH, "flipped data block");
    OK(vd_image_last_failure(img, &r));
    CHECK(r.level == 0 && r.first_lbn == 37 && r.nblocks == 1,
          "data failure reported as level %u lbn %" PRIu64 " n %" PRIu64, r.level,
          r.first_lbn, r.nblocks);
    OK(vd_image_close(img));
    OK(vd_host_mem_set(h, orig, size));

    /* Node 2 of level 1 covers blocks 8..11. */
    bytes = vd_host_mem_data(h, &size);
    bytes[(level1_start + 2) * BS + 7] ^= 0x80;
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    EXPECT_ERR(vd_image_read(img, 9, 1, buf), VD_ERR_AUTH, "flipped level-1 node");
    OK(vd_image_last_failure(img, &r));
    CHECK(r.level == 1 && r.first_lbn == 8 && r.nblocks == 4,
          "node failure reported as level %u lbn %" PRIu64 " n %" PRIu64, r.level,
          r.first_lbn, r.nblocks);
    /* The handle is now sticky-failed, and still answers. */
    EXPECT_ERR(vd_image_read(img, 40, 1, buf), VD_ERR_FAILED, "sticky");
    OK(vd_image_last_failure(img, &r));
    CHECK(r.level == 1 && r.first_lbn == 8, "still the node");
    (void)vd_image_close(img);
    free(orig);
    model_free(&m);
    vd_host_mem_free(h);
}


/* Bulk reads (runs of uncached blocks) verify straight into the caller's
 * buffer, not through the cache: every flipped or replayed data block in
 * such a run must still fail (wiping the buffer and naming the block),
 * every flipped node too, and dirty cached blocks inside a run must win
 * over the host's older copies. */
static int zero_bytes(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_bulk_reads_catch_every_flipped_or_replayed_block(void **state)
{
    (void)state;
    enum { N = 300 };
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 41);
    vd_host *h = mem_new();
    vd_create_opts c = {.nblocks = N, .fanout = 4};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL};
    vd_image *img = NULL;
    OK(vd_image_create(h, key, &c, &o, &img));
    model m;
    model_init(&m, N);
    put_blocks(img, &m, 0, N);
    OK(vd_image_sync(img));
    uint64_t size;
    uint8_t *old = snapshot(h, &size); /* generation 1 of every block */
    put_blocks(img, &m, 0, N);          /* generation 2 */
    vd_image_info ii = info_of(img);
    OK(vd_image_close(img));
    uint8_t *cur = snapshot(h, &size);
    const uint64_t data_start = ii.total_blocks - N;
    const uint64_t node_start = data_start - ii.node_blocks;
    uint8_t *buf = malloc((size_t)N * BS);
    assert_non_null(buf);

    /* Untouched: one bulk read returns the model. */
    img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, N, "bulk read of the clean image");
    OK(vd_image_close(img));

    unsigned cases = 0;
    for (uint64_t k = 0; k < N; k++) {
        for (int replay = 0; replay <= 1; replay++) {
            OK(vd_host_mem_set(h, cur, size));
            uint8_t *d = vd_host_mem_data(h, &size);
            uint64_t phys = data_start + k;
            if (replay)
                memcpy(d + phys * BS, old + phys * BS, BS);
            else
                d[phys * BS + (k * 37) % BS] ^= (uint8_t)(1u << (k % 8));
            img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
            uint64_t first = k >= 10 ? k - 10 : 0;
            memset(buf, 0xAA, 30 * BS);
            if (first + 30 > N)
                first = N - 30;
            EXPECT_ERR(vd_image_read(img, first, 30, buf),
                       VD_ERR_AUTH, "block %" PRIu64 " %s in a bulk read", k,
                       replay ? "replayed" : "flipped");
            CHECK(zero_bytes(buf, 30 * BS), "bulk read not wiped");
            vd_bad_range r;
            OK(vd_image_last_failure(img, &r));
            CHECK(r.level == 0 && r.first_lbn == k, "failure at %" PRIu64 ", want %" PRIu64,
                  r.first_lbn, k);
            OK(vd_image_close(img));
            cases++;
        }
    }
    for (uint64_t nb = 0; nb < ii.node_blocks; nb++) {
        OK(vd_host_mem_set(h, cur, size));
        uint8_t *d = vd_host_mem_data(h, &size);
        d[(node_start + nb) * BS + 11] ^= 0x10;
        img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
        vd_err e = vd_image_read(img, 0, N, buf);
        CHECK(e == VD_ERR_AUTH, "flipped node %" PRIu64 " gave %s in a bulk read", nb,
              ename(e));
        CHECK(zero_bytes(buf, (size_t)N * BS), "bulk read after a node failure not wiped");
        (void)vd_image_close(img);
        cases++;
    }
    /* Dirty blocks inside a bulk read come from the cache. */
    OK(vd_host_mem_set(h, cur, size));
    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    put_blocks(img, &m, 100, 1);
    put_blocks(img, &m, 150, 3);
    verify_all(img, &m, 100, "dirty blocks inside bulk reads");
    OK(vd_image_close(img));
    printf("bulk reads: %u tamper cases, each caught\n", cases);
    free(buf);
    free(old);
    free(cur);
    model_free(&m);
    vd_host_mem_free(h);
}

/* ==================================================================================
 * Malformed containers: each a clear error, nothing written
 * ================================================================================== */

typedef struct hostile {
    int kind;        /* see apply_hostile */
    uint64_t a, b;   /* parameters */
    int64_t delta;
} hostile;

enum {
    H_NONE,
    H_FLIP,        /* a: offset, b: mask */
    H_READ_FAIL,   /* a: nth read fails -EIO */
    H_READ_SHORT,  /* a: nth read, shortfall b */
    H_READ_LONG,   /* a: nth read claims len + 1 */
    H_SIZE_FAIL,
    H_SIZE_LIE,    /* delta */
};

static void apply_hostile(vd_fault *f, const hostile *x)
{
    switch (x->kind) {
    case H_FLIP:
        OK(vd_fault_bitflip(f, x->a, (uint8_t)x->b));
        break;
    case H_READ_FAIL:
        OK(vd_fault_fail_nth(f, VD_FAULT_READ, x->a, -EIO));
        break;
    case H_READ_SHORT:
        OK(vd_fault_short_read(f, x->a, 1, (size_t)x->b));
        break;
    case H_READ_LONG:
        OK(vd_fault_long_read(f, x->a, 1));
        break;
    case H_SIZE_FAIL:
        OK(vd_fault_fail(f, VD_FAULT_SIZE, 1, VD_FAULT_FOREVER, -EIO));
        break;
    case H_SIZE_LIE:
        OK(vd_fault_size_lie(f, 1, VD_FAULT_FOREVER, x->delta));
        break;
    default:
        break;
    }
}

/* Open (read-only or writable) the given bytes through a hostile host;
 * returns the error after checking that the open wrote nothing, left the
 * bytes alone and reported the failure properly. */
static vd_err open_hostile(const uint8_t *bytes, uint64_t size, const uint8_t *key,
                           const hostile *x, int ro, const char *what)
{
    vd_host *h = vt_host_mem_from(bytes, size);
    vd_fault *f = fault_new(h);
    apply_hostile(f, x);
    vd_open_opts o = {.read_only = ro, .cache_bytes = TINY_CACHE,
                      .aead_impl = VD_AEAD_OPENSSL};
    vd_image *img = (vd_image *)&g_dummy;
    vd_err e = vd_image_open(vd_fault_host(f), key, &o, &img);
    if (e == VD_OK) {
        CHECK(img != NULL && img != (vd_image *)&g_dummy, "%s: OK without handle", what);
        OK(vd_image_close(img));
    } else {
        CHECK(img == NULL, "%s: *out not NULL after %s", what, ename(e));
    }
    CHECK(mutations(f) == 0, "%s (read_only %d): open -> %s issued %" PRIu64
          " writes/truncates", what, ro, ename(e), mutations(f));
    CHECK(mem_equals(h, bytes, size), "%s (read_only %d): image bytes changed", what, ro);
    vd_fault_free(f);
    vd_host_mem_free(h);
    return e;
}

static vd_err probe_hostile(const uint8_t *bytes, uint64_t size, const hostile *x)
{
    vd_host *h = vt_host_mem_from(bytes, size);
    vd_fault *f = fault_new(h);
    apply_hostile(f, x);
    vd_image_info pi;
    vd_err e = vd_image_probe(vd_fault_host(f), &pi);
    CHECK(mutations(f) == 0, "probe wrote");
    vd_fault_free(f);
    vd_host_mem_free(h);
    return e;
}

static void expect_open_both(const uint8_t *bytes, uint64_t size, const uint8_t *key,
                             const hostile *x, vd_err want, const char *what)
{
    for (int ro = 1; ro >= 0; ro--) {
        vd_err e = open_hostile(bytes, size, key, x, ro, what);
        EXPECT_ERR(e, want, "%s, read_only %d", what, ro);
    }
}

static void test_damaged_header_byte_is_corrupt(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 13);
    model m;
    uint64_t size;
    uint8_t *img = golden_image(key, 64, &m, &size);
    char what[96];
    /* Every byte of the header, through the host (bit flips on the way). */
    for (uint64_t off = 0; off < BS; off++) {
        hostile x = {.kind = H_FLIP, .a = off, .b = (uint8_t)(1u << (off % 8))};
        snprintf(what, sizeof what, "header byte %" PRIu64 " ^ 0x%02x", off,
                 (unsigned)x.b);
        vd_err e = open_hostile(img, size, key, &x, (int)(off & 1), what);
        EXPECT_ERR(e, VD_ERR_CORRUPT, "%s", what);
    }
    /* A few stored in the image itself, with whole-byte changes. */
    const uint64_t offs[] = {0, 7, 8, 12, 16, 32, 40, 48, 52, 56, 64, 104, 112, 120,
                             128, 159, 160, 2048, 4087, 4088, 4095};
    for (unsigned k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        uint8_t *copy = xmalloc((size_t)size);
        memcpy(copy, img, (size_t)size);
        copy[offs[k]] ^= 0xFF;
        snprintf(what, sizeof what, "stored header byte %" PRIu64 " ^ 0xff", offs[k]);
        hostile none = {.kind = H_NONE};
        expect_open_both(copy, size, key, &none, VD_ERR_CORRUPT, what);
        EXPECT_ERR(probe_hostile(copy, size, &none), VD_ERR_CORRUPT, "probe, %s", what);
        free(copy);
    }
    /* The untouched image still opens. */
    hostile none = {.kind = H_NONE};
    expect_open_both(img, size, key, &none, VD_OK, "golden image");
    free(img);
    model_free(&m);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void vhd_fix_checksum(uint8_t *foot)
{
    uint32_t sum = 0;
    for (unsigned i = 0; i < FOOTER_BYTES; i++)
        if (i < 64 || i >= 68)
            sum += foot[i];
    sum = ~sum;
    foot[64] = (uint8_t)(sum >> 24);
    foot[65] = (uint8_t)(sum >> 16);
    foot[66] = (uint8_t)(sum >> 8);
    foot[67] = (uint8_t)sum;
}

static void test_wrong_size_truncated_empty_and_bad_footer_are_corrupt(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 14);
    model m;
    uint64_t size;
    uint8_t *img = golden_image(key, 64, &m, &size);
    hostile none = {.kind = H_NONE};
    char what[96];
    uint8_t *buf = xmalloc((size_t)size + 2 * BS);

    /* Extra bytes appended: 4096 zeros; 4096 bytes then a copy of the
     * footer (a second, well-formed footer at the new end); one byte. */
    memcpy(buf, img, (size_t)size);
    memset(buf + size, 0, BS);
    expect_open_both(buf, size + BS, key, &none, VD_ERR_CORRUPT, "4096 zero bytes appended");
    EXPECT_ERR(probe_hostile(buf, size + BS, &none), VD_ERR_CORRUPT, "probe");
    memcpy(buf + size - FOOTER_BYTES, img + size - FOOTER_BYTES, FOOTER_BYTES);
    memset(buf + size, 0, BS - FOOTER_BYTES);
    memcpy(buf + size + BS - FOOTER_BYTES, img + size - FOOTER_BYTES, FOOTER_BYTES);
    expect_open_both(buf, size + BS, key, &none, VD_ERR_CORRUPT,
                     "4096 bytes appended ending in the footer");
    memcpy(buf, img, (size_t)size);
    buf[size] = 0;
    expect_open_both(buf, size + 1, key, &none, VD_ERR_CORRUPT, "one byte appended");

    /* Inserted block before the footer, footer rewritten to match the new
     * size with a valid checksum: the header's total_blocks disagrees. */
    memcpy(buf, img, (size_t)(size - FOOTER_BYTES));
    memset(buf + size - FOOTER_BYTES, 0, BS);
    memcpy(buf + size - FOOTER_BYTES + BS, img + size - FOOTER_BYTES, FOOTER_BYTES);
    put_be64(buf + size + BS - FOOTER_BYTES + 40, size - FOOTER_BYTES + BS);
    put_be64(buf + size + BS - FOOTER_BYTES + 48, size - FOOTER_BYTES + BS);
    vhd_fix_checksum(buf + size + BS - FOOTER_BYTES);
    expect_open_both(buf, size + BS, key, &none, VD_ERR_CORRUPT,
                     "block inserted, forged consistent footer");
    EXPECT_ERR(probe_hostile(buf, size + BS, &none), VD_ERR_CORRUPT, "probe forged footer");

    /* Truncations, and a last data block cut out with the footer kept. */
    const uint64_t cuts[] = {1, 511, 512, 513, BS, BS + FOOTER_BYTES, size / 2,
                             size - (4 * BS + FOOTER_BYTES) + 1,
                             size - (4 * BS + FOOTER_BYTES), size - 1, size};
    for (unsigned k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        uint64_t nsize = size - cuts[k];
        snprintf(what, sizeof what, "truncated to %" PRIu64 " of %" PRIu64 " bytes",
                 nsize, size);
        expect_open_both(img, nsize, key, &none, VD_ERR_CORRUPT, what);
        EXPECT_ERR(probe_hostile(img, nsize, &none), VD_ERR_CORRUPT, "probe %s", what);
    }
    memcpy(buf, img, (size_t)(size - FOOTER_BYTES - BS));
    memcpy(buf + size - FOOTER_BYTES - BS, img + size - FOOTER_BYTES, FOOTER_BYTES);
    expect_open_both(buf, size - BS, key, &none, VD_ERR_CORRUPT,
                     "last data block cut out, footer kept");

    /* Every byte of the footer. */
    for (uint64_t k = 0; k < FOOTER_BYTES; k++) {
        hostile x = {.kind = H_FLIP, .a = size - FOOTER_BYTES + k, .b = 0x10};
        snprintf(what, sizeof what, "footer byte %" PRIu64 " ^ 0x10", k);
        EXPECT_ERR(open_hostile(img, size, key, &x, (int)(k & 1), what),
                   VD_ERR_CORRUPT, "%s", what);
    }
    free(buf);
    free(img);
    model_free(&m);
}

static void test_damaged_superblock_is_auth(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 15);
    model m;
    uint64_t size;
    uint8_t *img = golden_image(key, 64, &m, &size);
    char what[96];
    /* Both slots, magic, epoch, root, journal count and inline flag (they
     * set how much the MAC covers), MAC, and the unused middle (outside
     * the MAC since format 2, so it must read as zeros). */
    const uint64_t rel[] = {0, 8, 12, 16, 40, 72, 100, 104, 108, 144, 160, 2000, 4063, 4064, 4095};
    for (unsigned s = 0; s < 2; s++)
        for (unsigned k = 0; k < sizeof rel / sizeof rel[0]; k++) {
            hostile x = {.kind = H_FLIP,
                         .a = (SB_FIRST_BLOCK + s) * BS + rel[k], .b = 0x01};
            snprintf(what, sizeof what, "superblock %u byte %" PRIu64, s, rel[k]);
            expect_open_both(img, size, key, &x, VD_ERR_AUTH, what);
            /* The keyless probe does not look at superblocks. */
            EXPECT_ERR(probe_hostile(img, size, &x), VD_OK, "probe, %s", what);
        }
    free(img);
    model_free(&m);
}

static void test_empty_host_is_corrupt(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 16);
    hostile none = {.kind = H_NONE};
    uint8_t z = 0;
    expect_open_both(&z, 0, key, &none, VD_ERR_CORRUPT, "empty host");
    EXPECT_ERR(probe_hostile(&z, 0, &none), VD_ERR_CORRUPT, "probe of empty host");
    /* All zeros of a plausible size: not ours. */
    uint8_t *zeros = calloc(1, 100 * BS);
    assert_non_null(zeros);
    expect_open_both(zeros, 100 * BS, key, &none, VD_ERR_CORRUPT, "100 zero blocks");
    free(zeros);
}

/* ---- the host failing or lying while an image opens ------------------------------------ */

/* Number of host reads a clean open of these bytes issues. */
static uint64_t reads_of_open(const uint8_t *bytes, uint64_t size, const uint8_t *key,
                              int ro)
{
    vd_host *h = vt_host_mem_from(bytes, size);
    vd_fault *f = fault_new(h);
    vd_image *img = open_img(vd_fault_host(f), key, ro, TINY_CACHE, VD_AEAD_OPENSSL);
    uint64_t n = vd_fault_calls(f, VD_FAULT_READ);
    uint64_t w = mutations(f);
    OK(vd_image_close(img));
    vd_fault_free(f);
    vd_host_mem_free(h);
    CHECK(n >= 4, "open issued only %" PRIu64 " reads", n);
    CHECK(w == 0 || !ro, "read-only open wrote");
    return n;
}

static void read_faults_at_every_open_read(const uint8_t *bytes, uint64_t size,
                                           const uint8_t *key, int ro,
                                           const char *label)
{
    uint64_t nreads = reads_of_open(bytes, size, key, ro);
    char what[128];
    for (uint64_t k = 1; k <= nreads; k++) {
        hostile x = {.kind = H_READ_FAIL, .a = k};
        snprintf(what, sizeof what, "%s: read %" PRIu64 "/%" PRIu64 " -EIO", label, k,
                 nreads);
        EXPECT_ERR(open_hostile(bytes, size, key, &x, ro, what), VD_ERR_IO, "%s", what);
        x.kind = H_READ_SHORT;
        x.b = 1;
        snprintf(what, sizeof what, "%s: read %" PRIu64 " one byte short", label, k);
        EXPECT_ERR(open_hostile(bytes, size, key, &x, ro, what), VD_ERR_IO, "%s", what);
        x.b = 1u << 20; /* nothing at all, rc 0 */
        snprintf(what, sizeof what, "%s: read %" PRIu64 " returns 0 bytes", label, k);
        EXPECT_ERR(open_hostile(bytes, size, key, &x, ro, what), VD_ERR_IO, "%s", what);
        x.kind = H_READ_LONG;
        snprintf(what, sizeof what, "%s: read %" PRIu64 " claims len+1", label, k);
        EXPECT_ERR(open_hostile(bytes, size, key, &x, ro, what), VD_ERR_IO, "%s", what);
    }
    print_message("[   info   ] %s: %" PRIu64 " host reads per open, each failed "
                  "4 ways\n", label, nreads);
}

/* ---- sync fixture: a committed image and one sync's worth of changes ----------------- */

typedef struct sync_fx {
    uint8_t key[VD_KEY_BYTES];
    uint64_t nblocks, node_start, data_start;
    uint8_t *base;
    uint64_t base_n;
    model old, neu;
    uint64_t *run_lbn;
    uint32_t *run_cnt;
    uint32_t nruns;
    /* The sync's host calls (fault-free dry run). */
    uint64_t nw, nf;
    uint64_t *w_off, *w_len; /* 1..nw */
    uint64_t *f_after;       /* 1..nf */
    uint64_t pos_ip, pos_commit; /* first and last superblock write */
    unsigned rounds;
} sync_fx;

static void fx_apply(vd_image *img, const sync_fx *fx)
{
    for (uint32_t r = 0; r < fx->nruns; r++) {
        uint64_t l0 = fx->run_lbn[r];
        uint32_t c = fx->run_cnt[r];
        uint8_t *buf = xmalloc((size_t)c * BS);
        for (uint32_t i = 0; i < c; i++)
            fill_block(buf + (size_t)i * BS, l0 + i, fx->neu.gen[l0 + i]);
        /* A block at a time: a long run of new blocks would go to its
         * place at once (direct writes, spill.c), and the sync under test
         * must carry every change. */
        vd_err e = VD_OK;
        for (uint32_t i = 0; e == VD_OK && i < c; i++)
            e = vd_image_write(img, l0 + i, 1, buf + (size_t)i * BS);
        free(buf);
        EXPECT_ERR(e, VD_OK, "fixture write lbn %" PRIu64 " count %u", l0, c);
    }
}

static int fx_is_super(const sync_fx *fx, uint64_t w)
{
    return fx->w_len[w] == BS && (fx->w_off[w] == SB_FIRST_BLOCK * BS ||
                                  fx->w_off[w] == (SB_FIRST_BLOCK + 1) * BS);
}

static int fx_is_node(const sync_fx *fx, uint64_t w)
{
    return fx->w_off[w] >= fx->node_start * BS && fx->w_off[w] < fx->data_start * BS;
}

static int fx_is_data(const sync_fx *fx, uint64_t w)
{
    return fx->w_off[w] >= fx->data_start * BS;
}

/* nchg >= 100: a 70-block run over a level-1 node boundary, random singles
 * and the last block (journal in its own blocks); small nchg: that many
 * random singles (journal inline in the superblock). jblocks: journal
 * blocks per slot (0 automatic; 1 forces a sync of 100 blocks into several
 * rounds, i.e. several commits). */
static void fx_build(sync_fx *fx, uint64_t seed, uint32_t nchg, uint32_t jblocks)
{
    memset(fx, 0, sizeof *fx);
    uint64_t rng = seed;
    make_key(fx->key, seed);
    fx->nblocks = 1000;
    const uint64_t n = fx->nblocks;
    vd_host *h = mem_new();
    /* No log: the predictions below are of the in-place and one-flush
     * protocols (log commits: test_spill.c). */
    vd_create_opts co = {.nblocks = n, .journal_blocks = jblocks, .log_blocks = VD_LOG_NONE};
    vd_open_opts oo = {.aead_impl = VD_AEAD_OPENSSL};
    vd_image *img = NULL;
    OK(vd_image_create(h, fx->key, &co, &oo, &img));
    vd_image_info ii = info_of(img);
    fx->node_start = JOURNAL_FIRST_BLOCK + 2ull * ii.journal_blocks + ii.log_blocks;
    fx->data_start = fx->node_start + ii.node_blocks;
    CHECK(fx->data_start + n == ii.total_blocks, "layout: data_start %" PRIu64
          " + %" PRIu64 " != total %" PRIu64, fx->data_start, n, ii.total_blocks);
    model_init(&fx->old, n);
    for (unsigned k = 0; k < 300; k++)
        put_blocks(img, &fx->old, rnd_below(&rng, n), 1);
    put_blocks(img, &fx->old, 100, 10);
    OK(vd_image_sync(img));
    put_blocks(img, &fx->old, 500, 3);
    OK(vd_image_close(img));
    fx->base = snapshot(h, &fx->base_n);
    vd_host_mem_free(h);

    model_copy(&fx->neu, &fx->old);
    uint8_t *touch = calloc(n, 1);
    assert_non_null(touch);
    uint32_t count = 0;
    if (nchg >= 100) {
        for (uint64_t l = 100; l < 170; l++)
            touch[l] = 1;
        touch[n - 1] = 1;
        count = 71;
    }
    while (count < nchg) {
        uint64_t l = rnd_below(&rng, n);
        if (!touch[l]) {
            touch[l] = 1;
            count++;
        }
    }
    fx->run_lbn = calloc(n, sizeof *fx->run_lbn);
    fx->run_cnt = calloc(n, sizeof *fx->run_cnt);
    assert_non_null(fx->run_lbn);
    assert_non_null(fx->run_cnt);
    for (uint64_t l = 0; l < n; l++) {
        if (!touch[l])
            continue;
        fx->neu.gen[l] = fx->neu.next++;
        if (l > 0 && touch[l - 1]) {
            fx->run_cnt[fx->nruns - 1]++;
        } else {
            fx->run_lbn[fx->nruns] = l;
            fx->run_cnt[fx->nruns] = 1;
            fx->nruns++;
        }
    }
    free(touch);

    /* Dry run: which writes and flushes does this sync issue? */
    h = vt_host_mem_from(fx->base, fx->base_n);
    tracer *t = tracer_new(h);
    img = open_in_place(&t->host, fx->key);
    fx_apply(img, fx);
    t->on = 1;
    OK(vd_image_sync(img));
    t->on = 0;
    OK(vd_image_close(img));
    CHECK(!t->overflow, "tracer overflow");
    fx->nw = t->nw;
    fx->nf = t->nf;
    fx->w_off = xmalloc((size_t)(t->nw + 1) * sizeof *fx->w_off);
    fx->w_len = xmalloc((size_t)(t->nw + 1) * sizeof *fx->w_len);
    fx->f_after = xmalloc((size_t)(t->nf + 1) * sizeof *fx->f_after);
    memcpy(fx->w_off, t->w_off, (size_t)(t->nw + 1) * sizeof *fx->w_off);
    memcpy(fx->w_len, t->w_len, (size_t)(t->nw + 1) * sizeof *fx->w_len);
    memcpy(fx->f_after, t->f_after, (size_t)(t->nf + 1) * sizeof *fx->f_after);
    free(t);
    /* The dry-run image holds exactly the new state. */
    img = open_img(h, fx->key, 1, 0, VD_AEAD_OPENSSL);
    verify_all(img, &fx->neu, 100, "fixture dry run");
    OK(vd_image_close(img));
    vd_host_mem_free(h);

    /* The in-place protocol of sync.c, per round: journal (if not
     * inline), IN_PROGRESS superblock, nodes and data in place, COMMITTED
     * superblock. Predictions below rely on exactly this shape (one-flush
     * commits: test_one_flush_sync_fails_cleanly_at_every_write_and_flush). */
    unsigned nsuper = 0;
    for (uint64_t w = 1; w <= fx->nw; w++) {
        if (fx_is_super(fx, w)) {
            nsuper++;
            if (!fx->pos_ip)
                fx->pos_ip = w;
            fx->pos_commit = w;
            continue;
        }
        int in_place = fx_is_node(fx, w) || fx_is_data(fx, w);
        CHECK(in_place == (nsuper % 2 == 1),
              "write %" PRIu64 " at block %" PRIu64 " out of protocol order", w,
              fx->w_off[w] / BS);
    }
    CHECK(nsuper >= 2 && nsuper % 2 == 0 && fx->pos_commit == fx->nw,
          "sync shape: %u superblock writes, last at %" PRIu64 " of %" PRIu64,
          nsuper, fx->pos_commit, fx->nw);
    fx->rounds = nsuper / 2;
    CHECK(jblocks != 1 || nchg < 100 || fx->rounds > 1,
          "a 1-block journal took %u blocks in one round", nchg);
    print_message("[   info   ] sync of %u blocks: %u round(s), %" PRIu64
                  " writes (first IN_PROGRESS at %" PRIu64 "), %" PRIu64 " flushes\n",
                  nchg, fx->rounds, fx->nw, fx->pos_ip, fx->nf);
}

/* Did writes 1..landed leave an IN_PROGRESS superblock newest? */
static int fx_in_progress(const sync_fx *fx, uint64_t landed)
{
    unsigned n = 0;
    for (uint64_t w = 1; w <= landed; w++)
        n += (unsigned)fx_is_super(fx, w);
    return n % 2;
}

static void fx_free(sync_fx *fx)
{
    free(fx->base);
    free(fx->run_lbn);
    free(fx->run_cnt);
    free(fx->w_off);
    free(fx->w_len);
    free(fx->f_after);
    model_free(&fx->old);
    model_free(&fx->neu);
}

/* Which write of the sync carries data block lbn (0: none). */
static uint64_t fx_write_of(const sync_fx *fx, uint64_t lbn)
{
    uint64_t off = (fx->data_start + lbn) * BS;
    for (uint64_t w = 1; w <= fx->nw; w++)
        if (off >= fx->w_off[w] && off - fx->w_off[w] < fx->w_len[w])
            return w;
    return 0;
}

enum { ST_OLD, ST_NEW, ST_TORN, ST_LOST };

/* What lbn must hold when writes 1..landed reached the disk, write `torn`
 * reached it minus its last half block (so its last block is torn), and
 * write `dropped` never did. */
static int fx_predict(const sync_fx *fx, uint64_t lbn, uint64_t landed, uint64_t torn,
                      uint64_t dropped)
{
    if (fx->old.gen[lbn] == fx->neu.gen[lbn])
        return ST_OLD;
    uint64_t w = fx_write_of(fx, lbn);
    CHECK(w != 0, "changed block %" PRIu64 " not written by the sync", lbn);
    if (w == dropped)
        return ST_LOST;
    if (w == torn)
        return (fx->data_start + lbn + 1) * BS == fx->w_off[w] + fx->w_len[w]
                   ? ST_TORN
                   : ST_NEW;
    return w <= landed ? ST_NEW : ST_OLD;
}

typedef struct tally {
    unsigned cases, old_exact, new_exact, mixed, recovered, open_auth, read_auth;
} tally;

/* After a sync that failed with writes 1..landed on disk: the image opens
 * (read-only and writable) and every block reads exactly its predicted
 * content; then a further write + sync + reopen reads exactly. */
static void fx_check_strict(const sync_fx *fx, vd_host *h, uint64_t landed,
                            const char *label, tally *t)
{
    int want_rec = fx_in_progress(fx, landed);
    model want;
    model_copy(&want, &fx->old);
    unsigned nnew = 0, nold = 0;
    for (uint64_t l = 0; l < fx->nblocks; l++) {
        if (fx->old.gen[l] == fx->neu.gen[l])
            continue;
        int st = fx_predict(fx, l, landed, 0, 0);
        want.gen[l] = st == ST_NEW ? fx->neu.gen[l] : fx->old.gen[l];
        if (st == ST_NEW)
            nnew++;
        else
            nold++;
    }
    char what[160];
    for (int ro = 1; ro >= 0; ro--) {
        vd_open_opts o = {.read_only = ro, .cache_bytes = TINY_CACHE,
                          .aead_impl = VD_AEAD_OPENSSL};
        vd_image *img = NULL;
        vd_err e = vd_image_open(h, fx->key, &o, &img);
        EXPECT_ERR(e, VD_OK, "%s: reopen (read_only %d) on the underlying host",
                   label, ro);
        vd_image_info ii = info_of(img);
        CHECK(ii.recovered == want_rec, "%s: read_only %d: recovered %d, want %d",
              label, ro, ii.recovered, want_rec);
        snprintf(what, sizeof what, "%s, reopened read_only %d (%u new, %u old)",
                 label, ro, nnew, nold);
        verify_all(img, &want, 50, what);
        OK(vd_image_close(img));
    }
    /* Recovered and committed: a further commit reads back exactly. */
    vd_image *img = open_img(h, fx->key, 0, TINY_CACHE, VD_AEAD_OPENSSL);
    CHECK(info_of(img).recovered == 0, "%s: second writable open recovered again",
          label);
    put_blocks(img, &want, 0, 1);
    put_blocks(img, &want, 150, 2);
    OK(vd_image_close(img));
    img = open_img(h, fx->key, 1, TINY_CACHE, VD_AEAD_OPENSSL);
    snprintf(what, sizeof what, "%s, after a further commit", label);
    verify_all(img, &want, 100, what);
    OK(vd_image_close(img));
    model_free(&want);
    t->cases++;
    t->recovered += (unsigned)want_rec;
    if (nnew == 0)
        t->old_exact++;
    else if (nold == 0)
        t->new_exact++;
    else
        t->mixed++;
}

/* After a failed sync the handle refuses everything and writes nothing. */
static void fx_check_failed_handle(vd_image *img, vd_fault *f, const char *label)
{
    uint64_t w0 = vd_fault_calls(f, VD_FAULT_WRITE);
    uint64_t fl0 = vd_fault_calls(f, VD_FAULT_FLUSH);
    uint8_t b[VD_BLOCK_SIZE];
    fill_block(b, 7, 424242);
    EXPECT_ERR(vd_image_write(img, 7, 1, b), VD_ERR_FAILED, "%s: write after failure",
               label);
    EXPECT_ERR(vd_image_read(img, 7, 1, b), VD_ERR_FAILED, "%s: read after failure",
               label);
    EXPECT_ERR(vd_image_sync(img), VD_ERR_FAILED, "%s: sync after failure", label);
    /* Unsynced writes were lost: close says so (image.c, SECURITY.md §5). */
    EXPECT_ERR(vd_image_close(img), VD_ERR_FAILED, "%s: close of a failed handle",
               label);
    CHECK(vd_fault_calls(f, VD_FAULT_WRITE) == w0 &&
          vd_fault_calls(f, VD_FAULT_FLUSH) == fl0,
          "%s: the failed handle wrote %" PRIu64 " / flushed %" PRIu64 " more times",
          label, vd_fault_calls(f, VD_FAULT_WRITE) - w0,
          vd_fault_calls(f, VD_FAULT_FLUSH) - fl0);
}

/* Open fx's base through a fault host, apply the changes, nothing written. */
static vd_image *fx_open_dirty(const sync_fx *fx, vd_host **h, vd_fault **f)
{
    *h = vt_host_mem_from(fx->base, fx->base_n);
    *f = fault_new(*h);
    vd_image *img = open_in_place(vd_fault_host(*f), fx->key);
    fx_apply(img, fx);
    CHECK(mutations(*f) == 0, "writes reached the host before the sync");
    vd_fault_reset_counters(*f);
    return img;
}

static void sync_write_enospc_everywhere(uint32_t nchg, uint32_t jblocks,
                                         const char *name)
{
    sync_fx fx;
    fx_build(&fx, test_seed(name), nchg, jblocks);
    tally t;
    memset(&t, 0, sizeof t);
    char label[96];
    for (uint64_t k = 1; k <= fx.nw; k++) {
        snprintf(label, sizeof label, "%s: write %" PRIu64 "/%" PRIu64 " -ENOSPC", name,
                 k, fx.nw);
        vd_host *h;
        vd_fault *f;
        vd_image *img = fx_open_dirty(&fx, &h, &f);
        OK(vd_fault_fail_nth(f, VD_FAULT_WRITE, k, -ENOSPC));
        EXPECT_ERR(vd_image_sync(img), VD_ERR_NOSPC, "%s", label);
        CHECK(vd_fault_calls(f, VD_FAULT_WRITE) == k,
              "%s: %" PRIu64 " writes issued, the sync went on after the failure",
              label, vd_fault_calls(f, VD_FAULT_WRITE));
        fx_check_failed_handle(img, f, label);
        vd_fault_free(f);
        fx_check_strict(&fx, h, k - 1, label, &t);
        vd_host_mem_free(h);
    }
    print_message("[   info   ] %s: %u failure points: %u reopen as the last commit, "
                  "%u as the new state, %u per-block mixes (C1); %u recovered\n",
                  name, t.cases, t.old_exact, t.new_exact, t.mixed, t.recovered);
    CHECK(t.old_exact >= 1, "no failure point left the last commit");
    fx_free(&fx);
}

static void test_sync_write_enospc_at_every_write_journal_in_blocks(void **state)
{
    (void)state;
    sync_write_enospc_everywhere(100, 0, "sync_enospc_100");
}

static void test_sync_write_enospc_at_every_write_inline_journal(void **state)
{
    (void)state;
    sync_write_enospc_everywhere(3, 0, "sync_enospc_3");
}

/* A 1-block journal (56 entries) splits the sync into several commits: a
 * failure in a later round keeps the earlier rounds' blocks. */
static void test_sync_write_enospc_at_every_write_multi_round(void **state)
{
    (void)state;
    sync_write_enospc_everywhere(100, 1, "sync_enospc_multi_round");
}

static void test_sync_first_write_enospc_keeps_last_commit_exactly(void **state)
{
    (void)state;
    sync_fx fx;
    fx_build(&fx, test_seed("sync_first_write_enospc"), 100, 0);
    vd_host *h;
    vd_fault *f;
    vd_image *img = fx_open_dirty(&fx, &h, &f);
    OK(vd_fault_fail(f, VD_FAULT_WRITE, 1, VD_FAULT_FOREVER, -ENOSPC));
    EXPECT_ERR(vd_image_sync(img), VD_ERR_NOSPC, "disk full from the first write");
    fx_check_failed_handle(img, f, "disk full");
    vd_fault_free(f);
    CHECK(mem_equals(h, fx.base, fx.base_n), "a sync that wrote nothing changed bytes");
    img = open_img(h, fx.key, 0, 0, VD_AEAD_OPENSSL);
    CHECK(info_of(img).recovered == 0, "recovered");
    verify_all(img, &fx.old, 1000, "last commit after ENOSPC");
    OK(vd_image_close(img));
    vd_host_mem_free(h);
    fx_free(&fx);
}

static void test_sync_flush_eio_at_every_flush(void **state)
{
    (void)state;
    const char *names[] = {"sync_flush_eio_100", "sync_flush_eio_3",
                           "sync_flush_eio_multi_round"};
    const uint32_t nchg[] = {100, 3, 100}, jblocks[] = {0, 0, 1};
    for (int v = 0; v < 3; v++) {
        const char *name = names[v];
        sync_fx fx;
        fx_build(&fx, test_seed(name), nchg[v], jblocks[v]);
        tally t;
        memset(&t, 0, sizeof t);
        char label[96];
        for (uint64_t k = 1; k <= fx.nf; k++) {
            snprintf(label, sizeof label, "%s: flush %" PRIu64 "/%" PRIu64 " -EIO", name,
                     k, fx.nf);
            vd_host *h;
            vd_fault *f;
            vd_image *img = fx_open_dirty(&fx, &h, &f);
            OK(vd_fault_fail_nth(f, VD_FAULT_FLUSH, k, -EIO));
            EXPECT_ERR(vd_image_sync(img), VD_ERR_IO, "%s", label);
            CHECK(vd_fault_calls(f, VD_FAULT_FLUSH) == k &&
                  vd_fault_calls(f, VD_FAULT_WRITE) == fx.f_after[k],
                  "%s: sync went on after the failed flush (%" PRIu64 " flushes, %"
                  PRIu64 " writes)", label, vd_fault_calls(f, VD_FAULT_FLUSH),
                  vd_fault_calls(f, VD_FAULT_WRITE));
            fx_check_failed_handle(img, f, label);
            vd_fault_free(f);
            fx_check_strict(&fx, h, fx.f_after[k], label, &t);
            vd_host_mem_free(h);
        }
        print_message("[   info   ] %s: %u failure points: %u last commit, %u new "
                      "state, %u mixed; %u recovered\n", name, t.cases, t.old_exact,
                      t.new_exact, t.mixed, t.recovered);
        fx_free(&fx);
    }
}

/* One-flush commits (format 4): a small sync writes its journal and its
 * record, flushes once, then every block in place. A write that fails
 * before the flush leaves exactly the last commit; one that fails after
 * it, exactly the new state (the journal redoes the rest at the next
 * open). A failed flush (the memory host keeps what was written) leaves
 * the new state. Never a mix of the two, and the handle fails. */
static void test_one_flush_sync_fails_cleanly_at_every_write_and_flush(void **state)
{
    (void)state;
    sync_fx fx;
    fx_build(&fx, test_seed("one_flush_faults"), 3, 0);
    unsigned cases[2] = {0, 0}, news = 0;
    char label[96];
    for (int flush = 0; flush < 2; flush++) {
        for (uint64_t k = 1;; k++) {
            snprintf(label, sizeof label, "one-flush sync: %s %" PRIu64 " fails",
                     flush ? "flush" : "write", k);
            vd_host *h = vt_host_mem_from(fx.base, fx.base_n);
            vd_fault *f = fault_new(h);
            vd_image *img = open_img(vd_fault_host(f), fx.key, 0, 0, VD_AEAD_OPENSSL);
            fx_apply(img, &fx);
            vd_fault_reset_counters(f);
            OK(vd_fault_fail_nth(f, flush ? VD_FAULT_FLUSH : VD_FAULT_WRITE, k,
                                 flush ? -EIO : -ENOSPC));
            vd_err e = vd_image_sync(img);
            if (e == VD_OK) { /* past the sync's last write or flush */
                CHECK(vd_fault_calls(f, VD_FAULT_FLUSH) == 1,
                      "a sync of 3 blocks flushed %" PRIu64 " times",
                      vd_fault_calls(f, VD_FAULT_FLUSH));
                vd_fault_clear(f);
                OK(vd_image_close(img));
                vd_fault_free(f);
                vd_host_mem_free(h);
                break;
            }
            EXPECT_ERR(e, flush ? VD_ERR_IO : VD_ERR_NOSPC, "%s", label);
            int after_flush = flush || vd_fault_calls(f, VD_FAULT_FLUSH) > 0;
            fx_check_failed_handle(img, f, label);
            vd_fault_free(f);
            const model *want = after_flush ? &fx.neu : &fx.old;
            for (int ro = 1; ro >= 0; ro--) {
                img = open_img(h, fx.key, ro, TINY_CACHE, VD_AEAD_OPENSSL);
                char what[192];
                snprintf(what, sizeof what, "%s: reopened read_only %d (%s state)", label,
                         ro, after_flush ? "new" : "old");
                verify_all(img, want, 50, what);
                OK(vd_image_close(img));
            }
            news += after_flush;
            cases[flush]++;
            vd_host_mem_free(h);
        }
    }
    print_message("[   info   ] one-flush sync: %u write and %u flush failure points, "
                  "%u reopen as the new state\n", cases[0], cases[1], news);
    CHECK(cases[0] >= 3 && cases[1] == 1 && news > 0 && news < cases[0] + cases[1],
          "failure points: %u writes, %u flushes, %u new", cases[0], cases[1], news);
    fx_free(&fx);
}

/* A host that acknowledges write k but drops it (or tears it): the sync
 * may even succeed; on reopen blocks either fail authentication or hold
 * old or new content, never other bytes. */
static void fx_check_lenient(const sync_fx *fx, vd_host *h, uint64_t torn,
                             uint64_t dropped, const char *label, tally *t)
{
    uint64_t bad = torn ? torn : dropped;
    int bad_super = fx_is_super(fx, bad), bad_node = fx_is_node(fx, bad);
    int bad_data = fx_is_data(fx, bad);
    uint64_t landed = torn ? torn - 1 : fx->nw;
    uint8_t b[VD_BLOCK_SIZE];
    for (int ro = 1; ro >= 0; ro--) {
        vd_open_opts o = {.read_only = ro, .cache_bytes = TINY_CACHE,
                          .aead_impl = VD_AEAD_OPENSSL};
        vd_image *img = NULL;
        vd_err e = vd_image_open(h, fx->key, &o, &img);
        if (e == VD_ERR_AUTH) {
            /* A torn superblock; a writable open also resolves (reads)
             * torn nodes and data. A dropped write can only be noticed
             * this early if recovery has to read it. */
            CHECK(bad_super || (!ro && (bad_node || bad_data)),
                  "%s: open (read_only %d) -> VD_ERR_AUTH, but the damaged write "
                  "%" PRIu64 " (block %" PRIu64 ") is not read by an open", label, ro,
                  bad, fx->w_off[bad] / BS);
            t->open_auth++;
            continue;
        }
        EXPECT_ERR(e, VD_OK, "%s: reopen read_only %d", label, ro);
        CHECK(!(torn && bad_super), "%s: a torn superblock opened (read_only %d)",
              label, ro);
        unsigned n_old = 0, n_new = 0, n_fail = 0;
        for (uint64_t l = 0; l < fx->nblocks; l++) {
            memset(b, 0xA5, sizeof b);
            e = vd_image_read(img, l, 1, b);
            int st = fx_predict(fx, l, landed, torn, dropped);
            int changed = fx->old.gen[l] != fx->neu.gen[l];
            if (e == VD_OK) {
                int is_old = block_is(b, l, fx->old.gen[l]);
                int is_new = changed && block_is(b, l, fx->neu.gen[l]);
                CHECK(is_old || is_new, "%s: read_only %d: block %" PRIu64
                      " holds bytes that are neither its old nor its new content",
                      label, ro, l);
                if (torn) {
                    /* Prediction is exact, except that a torn block whose
                     * old version is "never written" reads as zeros. */
                    int want_new = st == ST_NEW;
                    CHECK(st != ST_TORN || fx->old.gen[l] == 0,
                          "%s: torn block %" PRIu64 " authenticated", label, l);
                    CHECK(is_new == want_new, "%s: read_only %d: block %" PRIu64
                          " reads %s content, predicted %s", label, ro, l,
                          is_new ? "new" : "old", want_new ? "new" : "old");
                }
                if (changed) {
                    n_old += (unsigned)is_old;
                    n_new += (unsigned)is_new;
                } else {
                    CHECK(is_old, "%s: untouched block %" PRIu64 " changed", label, l);
                }
            } else {
                CHECK(e == VD_ERR_AUTH || e == VD_ERR_FAILED,
                      "%s: read_only %d: block %" PRIu64 " -> %s", label, ro, l,
                      ename(e));
                if (e == VD_ERR_AUTH)
                    CHECK(all_zero(b, sizeof b), "%s: output not wiped on AUTH", label);
                /* Which damage can make a read fail. */
                CHECK(bad_node || bad_super || (bad_data && (st == ST_TORN ||
                      st == ST_LOST)),
                      "%s: read_only %d: block %" PRIu64 " -> %s, but write %" PRIu64
                      " (block %" PRIu64 ") damaged nothing it depends on", label, ro,
                      l, ename(e), bad, fx->w_off[bad] / BS);
                n_fail++;
            }
        }
        /* Never a mix of acknowledged-new and stale-old blocks. */
        if (dropped)
            CHECK(n_old == 0 || n_new == 0, "%s: read_only %d: %u blocks new and %u "
                  "blocks old after an acknowledged sync", label, ro, n_new, n_old);
        if (n_fail)
            t->read_auth++;
        /* A node that failed authentication left the handle failed; a
         * failed writable handle reports VD_ERR_FAILED on close. */
        vd_err se = vd_image_sync(img);
        CHECK(se == VD_OK || (se == VD_ERR_FAILED && n_fail > 0),
              "%s: read_only %d: sync with nothing dirty -> %s", label, ro, ename(se));
        EXPECT_ERR(vd_image_close(img), se == VD_ERR_FAILED && !ro ? VD_ERR_FAILED : VD_OK,
                   "%s: close (read_only %d) after reading every block (%u "
                   "unreadable)", label, ro, n_fail);
    }
    t->cases++;
}

static void test_sync_dropped_write_never_yields_wrong_bytes(void **state)
{
    (void)state;
    const char *name = "sync_dropped_writes";
    sync_fx fx;
    fx_build(&fx, test_seed(name), 100, 0);
    tally t;
    memset(&t, 0, sizeof t);
    char label[96];
    for (uint64_t k = 1; k <= fx.nw; k++) {
        snprintf(label, sizeof label, "%s: write %" PRIu64 "/%" PRIu64 " dropped "
                 "(block %" PRIu64 ")", name, k, fx.nw, fx.w_off[k] / BS);
        vd_host *h;
        vd_fault *f;
        vd_image *img = fx_open_dirty(&fx, &h, &f);
        OK(vd_fault_drop_writes(f, k, 1));
        EXPECT_ERR(vd_image_sync(img), VD_OK, "%s: the host lied, the sync cannot "
                   "know", label);
        OK(vd_image_close(img));
        vd_fault_free(f);
        fx_check_lenient(&fx, h, 0, k, label, &t);
        vd_host_mem_free(h);
    }
    /* Every write of the sync dropped: the previous state, exactly. */
    vd_host *h;
    vd_fault *f;
    vd_image *img = fx_open_dirty(&fx, &h, &f);
    OK(vd_fault_drop_writes(f, 1, VD_FAULT_FOREVER));
    OK(vd_image_sync(img));
    OK(vd_image_close(img));
    vd_fault_free(f);
    img = open_img(h, fx.key, 0, 0, VD_AEAD_OPENSSL);
    verify_all(img, &fx.old, 100, "all writes dropped");
    OK(vd_image_close(img));
    vd_host_mem_free(h);
    print_message("[   info   ] %s: %u cases, %u opens refused (AUTH), %u opens with "
                  "unreadable blocks\n", name, t.cases, t.open_auth, t.read_auth);
    fx_free(&fx);
}

static void test_sync_short_write_at_every_write(void **state)
{
    (void)state;
    const char *name = "sync_short_writes";
    sync_fx fx;
    fx_build(&fx, test_seed(name), 100, 0);
    tally t;
    memset(&t, 0, sizeof t);
    char label[96];
    for (uint64_t k = 1; k <= fx.nw; k++) {
        snprintf(label, sizeof label, "%s: write %" PRIu64 "/%" PRIu64 " 2048 bytes "
                 "short (block %" PRIu64 ")", name, k, fx.nw, fx.w_off[k] / BS);
        vd_host *h;
        vd_fault *f;
        vd_image *img = fx_open_dirty(&fx, &h, &f);
        /* Half a block short: a torn block that cannot happen to equal its
         * old bytes (a 1-byte tear does, 1 time in 256). */
        OK(vd_fault_short_write(f, k, 1, BS / 2));
        EXPECT_ERR(vd_image_sync(img), VD_ERR_IO, "%s", label);
        CHECK(vd_fault_calls(f, VD_FAULT_WRITE) == k, "%s: sync went on", label);
        fx_check_failed_handle(img, f, label);
        vd_fault_free(f);
        fx_check_lenient(&fx, h, k, 0, label, &t);
        vd_host_mem_free(h);
    }
    print_message("[   info   ] %s: %u cases, %u opens refused (AUTH), %u opens with "
                  "unreadable blocks\n", name, t.cases, t.open_auth, t.read_auth);
    fx_free(&fx);
}

/* Disk full inside the implicit commit a full cache forces. */
static void test_implicit_sync_enospc_fails_the_write_and_keeps_last_commit(void **state)
{
    (void)state;
    uint64_t seed = test_seed("implicit_sync_enospc");
    uint64_t rng = seed;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, seed);
    const uint64_t n = 4000;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, TINY_CACHE, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, n);
    for (int k = 0; k < 50; k++)
        put_blocks(img, &m, rnd_below(&rng, n), 1);
    OK(vd_image_close(img));
    vd_fault *f = fault_new(h);
    img = open_img(vd_fault_host(f), key, 0, TINY_CACHE, VD_AEAD_OPENSSL);
    OK(vd_fault_fail(f, VD_FAULT_WRITE, 1, VD_FAULT_FOREVER, -ENOSPC));
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = VD_OK;
    unsigned k;
    for (k = 0; k < 1000 && e == VD_OK; k++) {
        uint64_t l = rnd_below(&rng, n);
        fill_block(b, l, 1000000 + k);
        e = vd_image_write(img, l, 1, b);
    }
    EXPECT_ERR(e, VD_ERR_NOSPC, "write %u forced a commit into a full disk", k);
    CHECK(k > 1 && k <= 257, "the cache (256 entries) took %u writes", k);
    EXPECT_ERR(vd_image_write(img, 0, 1, b), VD_ERR_FAILED, "after NOSPC");
    EXPECT_ERR(vd_image_read(img, 0, 1, b), VD_ERR_FAILED, "after NOSPC");
    EXPECT_ERR(vd_image_close(img), VD_ERR_FAILED, "close after NOSPC");
    vd_fault_free(f);
    img = open_img(h, key, 0, 0, VD_AEAD_OPENSSL);
    verify_all(img, &m, 500, "last commit after implicit-sync ENOSPC");
    OK(vd_image_close(img));
    model_free(&m);
    vd_host_mem_free(h);
}

/* ---- read errors and damage after a successful open ------------------------------------ */

static void test_open_read_faults_are_io_and_write_nothing(void **state)
{
    (void)state;
    sync_fx fx;
    fx_build(&fx, test_seed("open_read_faults"), 100, 0);
    read_faults_at_every_open_read(fx.base, fx.base_n, fx.key, 1, "clean image, read-only");
    read_faults_at_every_open_read(fx.base, fx.base_n, fx.key, 0, "clean image, writable");

    /* An image whose last sync was interrupted after its blocks went in
     * place (the flush before the COMMITTED superblock failed): opens read
     * its journal, a writable one resolves every journaled block. */
    uint64_t kflush = 0;
    for (uint64_t k = 1; k <= fx.nf; k++)
        if (fx.f_after[k] == fx.pos_commit - 1)
            kflush = k;
    CHECK(kflush != 0, "no flush between the in-place writes and the commit");
    vd_host *h;
    vd_fault *f;
    vd_image *img = fx_open_dirty(&fx, &h, &f);
    OK(vd_fault_fail_nth(f, VD_FAULT_FLUSH, kflush, -EIO));
    EXPECT_ERR(vd_image_sync(img), VD_ERR_IO, "interrupting the sync");
    (void)vd_image_close(img);
    vd_fault_free(f);
    uint64_t isize;
    uint8_t *ibytes = snapshot(h, &isize);
    vd_host_mem_free(h);
    h = vt_host_mem_from(ibytes, isize);
    img = open_img(h, fx.key, 1, 0, VD_AEAD_OPENSSL);
    CHECK(info_of(img).recovered == 1, "the interrupted image is not interrupted");
    OK(vd_image_close(img));
    vd_host_mem_free(h);
    read_faults_at_every_open_read(ibytes, isize, fx.key, 1,
                                   "interrupted sync, read-only");
    read_faults_at_every_open_read(ibytes, isize, fx.key, 0,
                                   "interrupted sync, writable (recovery)");
    free(ibytes);
    fx_free(&fx);
}

static void test_size_failure_and_size_lies(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 17);
    model m;
    uint64_t size;
    uint8_t *img = golden_image(key, 64, &m, &size);
    hostile x = {.kind = H_SIZE_FAIL};
    expect_open_both(img, size, key, &x, VD_ERR_IO, "size() fails -EIO");
    EXPECT_ERR(probe_hostile(img, size, &x), VD_ERR_IO, "probe, size() fails");
    /* Claims a smaller image: the footer is looked for inside the data. */
    const int64_t smaller[] = {-4096, -1, -512, -(int64_t)size, INT64_MIN};
    for (unsigned k = 0; k < sizeof smaller / sizeof smaller[0]; k++) {
        hostile y = {.kind = H_SIZE_LIE, .delta = smaller[k]};
        char what[64];
        snprintf(what, sizeof what, "size lie %" PRId64, smaller[k]);
        expect_open_both(img, size, key, &y, VD_ERR_CORRUPT, what);
        EXPECT_ERR(probe_hostile(img, size, &y), VD_ERR_CORRUPT, "probe, %s", what);
    }
    /* Claims a larger image: the footer would lie past the real end, and
     * the host cannot produce those bytes -- its read comes back short,
     * which is the host failing a read (VD_ERR_IO, like every short read),
     * not a malformed structure. */
    const int64_t larger[] = {4096, 1, INT64_MAX};
    for (unsigned k = 0; k < sizeof larger / sizeof larger[0]; k++) {
        hostile y = {.kind = H_SIZE_LIE, .delta = larger[k]};
        char what[64];
        snprintf(what, sizeof what, "size lie +%" PRId64, larger[k]);
        expect_open_both(img, size, key, &y, VD_ERR_IO, what);
    }
    free(img);
    model_free(&m);
}

static void test_read_faults_and_damage_after_open(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 18);
    const uint64_t n = 300;
    vd_host *h = mem_new();
    vd_image *img = create_img(h, key, n, 0, 0, VD_AEAD_OPENSSL);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, 0, (uint32_t)n);
    vd_image_info ii = info_of(img);
    OK(vd_image_close(img));
    uint64_t node_start = JOURNAL_FIRST_BLOCK + 2ull * ii.journal_blocks + ii.log_blocks;
    uint64_t data_start = node_start + ii.node_blocks;
    uint64_t size;
    uint8_t *bytes = snapshot(h, &size);
    vd_fault *f = fault_new(h);
    uint8_t *buf = xmalloc(100 * BS);

    /* Host errors on data reads: IO, output wiped, handle still usable. */
    img = open_img(vd_fault_host(f), key, 1, 0, VD_AEAD_OPENSSL);
    for (int kind = 0; kind < 3; kind++) {
        uint64_t next = vd_fault_calls(f, VD_FAULT_READ) + 1;
        if (kind == 0)
            OK(vd_fault_fail_nth(f, VD_FAULT_READ, next, -EIO));
        else if (kind == 1)
            OK(vd_fault_short_read(f, next, 1, 100));
        else
            OK(vd_fault_long_read(f, next, 1));
        uint64_t l = 10 + (uint64_t)kind * 80;
        memset(buf, 0xA5, 70 * BS);
        EXPECT_ERR(vd_image_read(img, l, 70, buf), VD_ERR_IO, "read fault kind %d", kind);
        CHECK(all_zero(buf, 70 * BS), "output not wiped after a failed read");
        vd_fault_clear(f);
        OK(vd_image_read(img, l, 70, buf));
        for (uint32_t j = 0; j < 70; j++)
            CHECK(block_is(buf + (size_t)j * BS, l + j, m.gen[l + j]),
                  "after fault kind %d, block %" PRIu64, kind, l + j);
    }
    OK(vd_image_close(img));

    /* A flipped bit in one data block: that block fails, its neighbours
     * do not, and a run containing it fails wiped. */
    img = open_img(vd_fault_host(f), key, 1, 0, VD_AEAD_OPENSSL);
    OK(vd_fault_bitflip(f, (data_start + 150) * BS + 1234, 0x04));
    memset(buf, 0xA5, 100 * BS);
    EXPECT_ERR(vd_image_read(img, 100, 100, buf), VD_ERR_AUTH, "run over a bad block");
    CHECK(all_zero(buf, 100 * BS), "output not wiped after AUTH");
    EXPECT_ERR(vd_image_read(img, 150, 1, buf), VD_ERR_AUTH, "the bad block");
    OK(vd_image_read(img, 151, 1, buf));
    CHECK(block_is(buf, 151, m.gen[151]), "neighbour");
    OK(vd_image_read(img, 149, 1, buf));
    CHECK(block_is(buf, 149, m.gen[149]), "neighbour");
    vd_fault_clear(f);
    OK(vd_image_read(img, 150, 1, buf));
    CHECK(block_is(buf, 150, m.gen[150]), "block once the host stops flipping");
    OK(vd_image_close(img));

    /* A flipped bit in a level-1 node: AUTH, then the handle is failed. The
     * last node block is level 1's last node (root first, level 1 last). */
    img = open_img(vd_fault_host(f), key, 1, 0, VD_AEAD_OPENSSL);
    OK(vd_fault_bitflip(f, (data_start - 1) * BS + 77, 0x80));
    EXPECT_ERR(vd_image_read(img, n - 1, 1, buf), VD_ERR_AUTH, "block under a bad node");
    EXPECT_ERR(vd_image_read(img, 0, 1, buf), VD_ERR_FAILED,
               "a node failure poisons the handle");
    vd_fault_clear(f);
    EXPECT_ERR(vd_image_read(img, 0, 1, buf), VD_ERR_FAILED, "sticky");
    OK(vd_image_close(img));
    CHECK(mutations(f) == 0, "read-only handles wrote");
    CHECK(mem_equals(h, bytes, size), "image changed");

    /* The same damage stored in the image, seen through a writable handle:
     * reading fails, nothing is written back, the rest stays readable. */
    uint8_t *dam = xmalloc((size_t)size);
    memcpy(dam, bytes, (size_t)size);
    dam[(data_start + 42) * BS + 9] ^= 0x20;
    vd_host *h2 = vt_host_mem_from(dam, size);
    vd_fault *f2 = fault_new(h2);
    img = open_img(vd_fault_host(f2), key, 0, 0, VD_AEAD_OPENSSL);
    EXPECT_ERR(vd_image_read(img, 42, 1, buf), VD_ERR_AUTH, "stored damage");
    OK(vd_image_read(img, 43, 1, buf));
    OK(vd_image_close(img));
    CHECK(mutations(f2) == 0, "a writable handle with nothing dirty wrote");
    CHECK(mem_equals(h2, dam, size), "image changed");
    vd_fault_free(f2);
    vd_host_mem_free(h2);

    free(dam);
    free(buf);
    free(bytes);
    vd_fault_free(f);
    model_free(&m);
    vd_host_mem_free(h);
}

/* ---- clocks that lie --------------------------------------------------------------------- */

static void time_case(const char *what, int kind, int64_t v)
{
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 19);
    vd_host *h = mem_new();
    vd_host noclock = *h;
    noclock.now = NULL;
    vd_fault *f = fault_new(kind == 4 ? &noclock : h);
    switch (kind) {
    case 0:
        OK(vd_fault_time_backwards(f, 1, VD_FAULT_FOREVER, v));
        break;
    case 1:
        OK(vd_fault_time_constant(f, 1, VD_FAULT_FOREVER, v));
        break;
    case 2:
        OK(vd_fault_fail(f, VD_FAULT_NOW, 1, VD_FAULT_FOREVER, -EIO));
        break;
    case 3: /* alternate: backwards, constant, real */
        OK(vd_fault_time_backwards(f, 1, 5, v));
        OK(vd_fault_time_constant(f, 6, 5, INT64_MAX));
        break;
    default:
        break;
    }
    const vd_host *use = kind == 5 ? &noclock : vd_fault_host(f);
    const uint64_t n = 500;
    vd_image *img = create_img(use, key, n, 0, 0, VD_AEAD_AUTO);
    model m;
    model_init(&m, n);
    put_blocks(img, &m, 0, 100);
    OK(vd_image_sync(img));
    put_blocks(img, &m, 90, 20);
    put_blocks(img, &m, n - 1, 1);
    OK(vd_image_sync(img));
    put_blocks(img, &m, 300, 5);
    EXPECT_ERR(vd_image_close(img), VD_OK, "%s: close", what);
    vd_image_info pi;
    EXPECT_ERR(vd_image_probe(use, &pi), VD_OK, "%s: probe", what);
    for (int pass = 0; pass < 2; pass++) {
        img = open_img(use, key, 0, 0, pass ? VD_AEAD_OPENSSL : VD_AEAD_AUTO);
        verify_all(img, &m, 100, what);
        put_blocks(img, &m, 200 + (uint64_t)pass, 1);
        EXPECT_ERR(vd_image_sync(img), VD_OK, "%s: sync pass %d", what, pass);
        OK(vd_image_close(img));
    }
    /* And with an honest clock afterwards. */
    img = open_img(h, key, 1, 0, VD_AEAD_AUTO);
    verify_all(img, &m, 500, what);
    OK(vd_image_close(img));
    vd_fault_free(f);
    model_free(&m);
    vd_host_mem_free(h);
}

static void test_lying_clocks_change_nothing(void **state)
{
    (void)state;
    time_case("time backwards 1 s per call", 0, 1000000000);
    time_case("time backwards 1 ns per call", 0, 1);
    time_case("time backwards by INT64_MAX", 0, INT64_MAX);
    time_case("time constant 0", 1, 0);
    time_case("time constant -1", 1, -1);
    time_case("time constant INT64_MIN", 1, INT64_MIN);
    time_case("time constant INT64_MAX", 1, INT64_MAX);
    time_case("now() fails -EIO", 2, 0);
    time_case("time backwards then INT64_MAX", 3, 3000000000ll);
    time_case("inner host without now() (wrapper -ENOSYS)", 4, 0);
    time_case("host without now()", 5, 0);
}

/* ---- threads ----------------------------------------------------------------------------- */

#define NTHREADS 4
#define THREAD_OPS 1000
#define THREAD_SPAN 500

typedef struct worker {
    vd_image *img;
    int id;
    uint64_t base;
    uint64_t seed;
    uint64_t gen[THREAD_SPAN];
    uint64_t next;
    unsigned errors, syncs, writes, reads;
    char msg[200];
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t rng = w->seed;
    uint8_t *buf = malloc(4 * BS);
    if (!buf) {
        w->errors++;
        snprintf(w->msg, sizeof w->msg, "out of memory");
        return NULL;
    }
    for (unsigned op = 0; op < THREAD_OPS && w->errors == 0; op++) {
        uint32_t c = 1 + (uint32_t)rnd_below(&rng, 4);
        uint64_t rel = rnd_below(&rng, THREAD_SPAN - c + 1);
        if (rnd_below(&rng, 2) == 0) {
            for (uint32_t i = 0; i < c; i++)
                fill_block(buf + (size_t)i * BS, w->base + rel + i, w->next + i);
            vd_err e = vd_image_write(w->img, w->base + rel, c, buf);
            if (e != VD_OK) {
                w->errors++;
                snprintf(w->msg, sizeof w->msg, "op %u: write %" PRIu64 "+%u -> %s", op,
                         w->base + rel, c, ename(e));
                break;
            }
            for (uint32_t i = 0; i < c; i++)
                w->gen[rel + i] = w->next + i;
            w->next += c;
            w->writes++;
        } else {
            vd_err e = vd_image_read(w->img, w->base + rel, c, buf);
            if (e != VD_OK) {
                w->errors++;
                snprintf(w->msg, sizeof w->msg, "op %u: read %" PRIu64 "+%u -> %s", op,
                         w->base + rel, c, ename(e));
                break;
            }
            for (uint32_t i = 0; i < c; i++)
                if (!block_is(buf + (size_t)i * BS, w->base + rel + i, w->gen[rel + i])) {
                    w->errors++;
                    snprintf(w->msg, sizeof w->msg, "op %u: block %" PRIu64
                             " != gen %" PRIu64, op, w->base + rel + i, w->gen[rel + i]);
                    break;
                }
            w->reads++;
        }
        if (w->id == 0 && op % 50 == 49) {
            vd_err e = vd_image_sync(w->img);
            if (e != VD_OK) {
                w->errors++;
                snprintf(w->msg, sizeof w->msg, "op %u: sync -> %s", op, ename(e));
            }
            w->syncs++;
        }
    }
    free(buf);
    return NULL;
}

static void test_four_threads_on_one_handle(void **state)
{
    (void)state;
    uint64_t seed = test_seed("four_threads");
    uint8_t key[VD_KEY_BYTES];
    make_key(key, seed);
    const uint64_t n = NTHREADS * THREAD_SPAN + 100;
    for (int pass = 0; pass < 2; pass++) {
        size_t cache = pass == 0 ? TINY_CACHE : 0;
        vd_host *h = mem_new();
        vd_image *img = create_img(h, key, n, 0, cache, VD_AEAD_OPENSSL);
        worker *w = calloc(NTHREADS, sizeof *w);
        assert_non_null(w);
        pthread_t th[NTHREADS];
        for (int i = 0; i < NTHREADS; i++) {
            w[i].img = img;
            w[i].id = i;
            w[i].base = 50 + (uint64_t)i * THREAD_SPAN;
            w[i].seed = seed + (uint64_t)i * 0x1000 + (uint64_t)pass;
            w[i].next = ((uint64_t)(i + 1) << 40) + 1;
            CHECK(pthread_create(&th[i], NULL, worker_main, &w[i]) == 0,
                  "pthread_create");
        }
        for (int i = 0; i < NTHREADS; i++)
            CHECK(pthread_join(th[i], NULL) == 0, "pthread_join");
        unsigned errors = 0;
        for (int i = 0; i < NTHREADS; i++) {
            if (w[i].errors)
                print_error("thread %d (cache %zu): %s\n", i, cache, w[i].msg);
            errors += w[i].errors;
        }
        CHECK(errors == 0, "%u thread errors (seed 0x%016" PRIx64 ")", errors, seed);
        CHECK(w[0].syncs >= THREAD_OPS / 50 - 1, "thread 0 synced %u times", w[0].syncs);
        model m;
        model_init(&m, n);
        for (int i = 0; i < NTHREADS; i++)
            for (uint64_t r = 0; r < THREAD_SPAN; r++)
                m.gen[w[i].base + r] = w[i].gen[r];
        verify_all(img, &m, 100, "after the threads, same handle");
        vd_image_info ii = info_of(img);
        CHECK(ii.syncs > 0, "syncs");
        OK(vd_image_close(img));
        img = open_img(h, key, 1, 0, VD_AEAD_OPENSSL);
        verify_all(img, &m, 100, "after the threads, reopened");
        OK(vd_image_close(img));
        print_message("[   info   ] cache %s: %u/%u/%u/%u writes, thread 0 synced %u "
                      "times, %" PRIu64 " commits\n", cache ? "1 MiB" : "default",
                      w[0].writes, w[1].writes, w[2].writes, w[3].writes, w[0].syncs,
                      ii.syncs);
        model_free(&m);
        free(w);
        vd_host_mem_free(h);
    }
}

/* What the core offers the host through mem_advise at open: the cache,
 * and for a writable open both commit buffers (VD_HOST_PREFAULT faults
 * them in there, not in the first commits). */
typedef struct advise_count {
    vt_passthru pt; /* first: the host's ctx */
    unsigned calls;
    size_t bytes;
} advise_count;

static void count_advise(void *ctx, void *addr, size_t len)
{
    advise_count *a = ctx;
    assert_non_null(addr);
    assert_int_equal((uintptr_t)addr % ((size_t)2 << 20), 0); /* huge-page aligned */
    a->calls++;
    a->bytes += len;
}

static void test_open_offers_cache_and_commit_buffers(void **state)
{
    (void)state;
    uint8_t key[VD_KEY_BYTES];
    make_key(key, 0x41);
    vd_host *mem = NULL;
    OK(vd_host_mem_new(&mem));
    OK(vd_image_close(create_img(mem, key, 4096, VD_CIPHER_AES256GCM, 0, VD_AEAD_OPENSSL)));
    const size_t cache = (size_t)8 << 20;
    for (int ro = 0; ro <= 1; ro++) {
        advise_count a;
        memset(&a, 0, sizeof a);
        vt_passthru_init(&a.pt, mem, 1);
        a.pt.host.mem_advise = count_advise;
        vd_image *img = open_img(&a.pt.host, key, ro, cache, VD_AEAD_OPENSSL);
        /* The cache, then dirty_limit (7/16 of it) twice when writable. */
        assert_int_equal(a.calls, ro ? 1u : 3u);
        assert_int_equal(a.bytes, ro ? cache : cache + 2 * (cache * 7 / 16));
        if (!ro) { /* and the buffers serve the commits: nothing more offered */
            uint8_t blk[VD_BLOCK_SIZE];
            memset(blk, 0x5a, sizeof blk);
            for (uint64_t b = 0; b < 1024; b++)
                OK(vd_image_write(img, b, 1, blk));
            OK(vd_image_sync(img));
            assert_int_equal(a.calls, 3u);
        }
        OK(vd_image_close(img));
    }
    vd_host_mem_free(mem);
}

/* ----------------------------------------------------------------------------------------- */

int main(void)
{
    const char *env = getenv("VD_IMAGE_SEED");
    if (env && *env)
        g_seed = strtoull(env, NULL, 0);
    else
        g_seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    print_message("[   seed   ] VD_IMAGE_SEED=0x%016" PRIx64 "\n", g_seed);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_and_invalid_arguments_are_inval),
        cmocka_unit_test(test_open_offers_cache_and_commit_buffers),
        cmocka_unit_test(test_memory_round_trip_with_runs_last_block_and_zeros),
        cmocka_unit_test(test_round_trip_at_tree_geometry_boundaries),
        cmocka_unit_test_teardown(test_file_host_round_trip_close_syncs, file_teardown),
        cmocka_unit_test(test_range_errors_and_no_partial_write),
        cmocka_unit_test(test_create_over_nonempty_host_is_inval_and_writes_nothing),
        cmocka_unit_test(test_read_only_handle_never_writes),
        cmocka_unit_test(test_close_without_sync_persists),
        cmocka_unit_test(test_openssl_and_sodium_aes_gcm_share_the_format),
        cmocka_unit_test(test_xchacha20poly1305_images_round_trip),
        cmocka_unit_test(test_tiny_cache_random_workload_matches_model),
        cmocka_unit_test(test_wrong_key_and_keyless_probe),
        cmocka_unit_test(test_damaged_header_byte_is_corrupt),
        cmocka_unit_test(test_wrong_size_truncated_empty_and_bad_footer_are_corrupt),
        cmocka_unit_test(test_damaged_superblock_is_auth),
        cmocka_unit_test(test_empty_host_is_corrupt),
        cmocka_unit_test(test_open_read_faults_are_io_and_write_nothing),
        cmocka_unit_test(test_size_failure_and_size_lies),
        cmocka_unit_test(test_read_faults_and_damage_after_open),
        cmocka_unit_test(test_sync_first_write_enospc_keeps_last_commit_exactly),
        cmocka_unit_test(test_sync_write_enospc_at_every_write_journal_in_blocks),
        cmocka_unit_test(test_sync_write_enospc_at_every_write_inline_journal),
        cmocka_unit_test(test_sync_write_enospc_at_every_write_multi_round),
        cmocka_unit_test(test_sync_flush_eio_at_every_flush),
        cmocka_unit_test(test_one_flush_sync_fails_cleanly_at_every_write_and_flush),
        cmocka_unit_test(test_sync_dropped_write_never_yields_wrong_bytes),
        cmocka_unit_test(test_sync_short_write_at_every_write),
        cmocka_unit_test(test_implicit_sync_enospc_fails_the_write_and_keeps_last_commit),
        cmocka_unit_test(test_lying_clocks_change_nothing),
        cmocka_unit_test(test_four_threads_on_one_handle),
        cmocka_unit_test(test_last_failure_names_the_block_or_node_range),
        cmocka_unit_test(test_bulk_reads_catch_every_flipped_or_replayed_block),
    };
    /* VD_IMAGE_FILTER=pattern runs only the matching tests (cmocka glob):
     * the ThreadSanitizer run takes the threaded ones (scripts/test.sh). */
    const char *filter = getenv("VD_IMAGE_FILTER");
    if (filter && filter[0])
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
