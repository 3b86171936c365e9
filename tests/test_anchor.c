/* Freshness across restarts (R4):
 *   - the file anchor (vdisk_host, anchor.h): created at 0, moves only
 *     forward, survives reopening, is replaced atomically (no temporary
 *     files left), a damaged or missing file is an error, never 0;
 *   - whole-image rollback of an image file: with the file anchor the
 *     old copy is VD_ERR_ROLLBACK, without one it opens (documented limit);
 *   - anchor modes: VD_ANCHOR_EVERY_COMMIT advances on implicit commits,
 *     VD_ANCHOR_EXPLICIT_SYNC only in vd_image_sync / vd_image_close, and
 *     the replay window that trade-off leaves;
 *   - crashes between the superblock write and the anchor advance, at every
 *     point of the sync protocol (every prefix of the recorded write log,
 *     with the anchor before and after each advance, plus a random subset
 *     of each unflushed tail), in both modes: the image opens, no false
 *     rollback alarm, every block holds its last synced content or a newer
 *     one, and no state older than an acknowledged sync is accepted
 *     afterwards. Then the same with a test anchor whose n-th advance
 *     "crashes" (does not happen) inside the running library.
 * Seeds are printed; VD_ANCHOR_SEED replays one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

#include "testkit.h"

#include "blockhist.h"
#include "record.h"
#include "replay.h"
#include "swtpm.h"
#include "vdisk/anchor.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

#define BS ((size_t)VD_BLOCK_SIZE)
/* docs/FORMAT.md §15: version 2 (with the anchor id) is 48 bytes. */
#define AF_FILE_BYTES 48u

static uint64_t g_seed;
static const uint8_t KEY[VD_KEY_BYTES] = {9, 8, 7, 6, 5, 4, 3, 2, 1};

/* ---- a test anchor ------------------------------------------------------------ */

#define MAXADV 1024

typedef struct tanchor {
    vd_anchor a;
    uint64_t value;
    vd_rec *rec;     /* when set, each advance logs the op count */
    size_t nlog;
    size_t log_op[MAXADV];
    uint64_t log_val[MAXADV];
    long crash_at;   /* this advance call (1-based) "crashes"; 0 = never */
    long calls;
    int dead;        /* crashed: nothing changes any more, calls fail */
    uint64_t advances;
    /* When set, the counter is this one (the TPM anchor against swtpm),
     * stepped one increment at a time as a hardware counter moves: each
     * step is logged and is a crash point of its own. */
    vd_anchor *real;
} tanchor;

static int ta_read(void *ctx, uint64_t *v)
{
    tanchor *t = ctx;
    if (t->dead)
        return -EIO;
    if (t->real) {
        int rc = t->real->read(t->real->ctx, &t->value);
        if (rc != 0)
            return rc;
    }
    *v = t->value;
    return 0;
}

static void ta_log(tanchor *t, uint64_t v)
{
    if (t->rec) {
        assert_true(t->nlog < MAXADV);
        t->log_op[t->nlog] = vd_rec_op_count(t->rec);
        t->log_val[t->nlog] = v;
        t->nlog++;
    }
}

/* The real counter: one TPM2_NV_Increment per step, so a crash can come
 * between two steps of one advance (the counter then sits in between). */
static int ta_advance_real(tanchor *t, uint64_t v)
{
    uint64_t c;
    int rc = t->real->read(t->real->ctx, &c);
    if (rc != 0)
        return rc;
    if (v < c)
        return -EINVAL;
    const uint64_t step = t->real->step > 1 ? t->real->step : 1;
    while (c < v) {
        if (++t->calls == t->crash_at) {
            t->dead = 1;
            return -EIO;
        }
        rc = t->real->advance(t->real->ctx, c + step);
        if (rc != 0)
            return rc;
        c += step;
        t->value = c;
        t->advances++;
        ta_log(t, c);
    }
    return 0;
}

static int ta_authorize(void *ctx, const uint8_t secret[VD_ANCHOR_SECRET_BYTES])
{
    tanchor *t = ctx;
    return t->real && t->real->authorize ? t->real->authorize(t->real->ctx, secret) : 0;
}

static int ta_advance(void *ctx, uint64_t v)
{
    tanchor *t = ctx;
    if (t->dead)
        return -EIO;
    if (t->real)
        return ta_advance_real(t, v);
    if (++t->calls == t->crash_at) {
        t->dead = 1; /* the process dies before the counter moves */
        return -EIO;
    }
    if (v < t->value || (t->a.step > 1 && v % t->a.step != 0))
        return -EINVAL;
    if (v > t->value)
        t->advances++;
    t->value = v;
    ta_log(t, v);
    return 0;
}

static void ta_init(tanchor *t, uint64_t value)
{
    memset(t, 0, sizeof *t);
    t->a.ctx = t;
    t->a.read = ta_read;
    t->a.advance = ta_advance;
    t->value = value;
}

/* ---- the file anchor ------------------------------------------------------------ */

typedef struct tmpdir {
    char dir[64];
    char anchor[96];
    char image[96];
    char copy[96];
} tmpdir;

static void td_make(tmpdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/vd-anchor-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->anchor, sizeof t->anchor, "%s/disk.anchor", t->dir);
    snprintf(t->image, sizeof t->image, "%s/disk.vhd", t->dir);
    snprintf(t->copy, sizeof t->copy, "%s/old.vhd", t->dir);
}

static unsigned td_entries(const tmpdir *t)
{
    DIR *d = opendir(t->dir);
    assert_non_null(d);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    assert_int_equal(closedir(d), 0);
    return n;
}

static void td_free(tmpdir *t)
{
    (void)unlink(t->anchor);
    (void)unlink(t->image);
    (void)unlink(t->copy);
    assert_int_equal(rmdir(t->dir), 0);
}

static void read_file(const char *path, uint8_t **data, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long sz = ftell(f);
    assert_true(sz >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    *data = malloc((size_t)sz + 1);
    assert_non_null(*data);
    assert_int_equal(fread(*data, 1, (size_t)sz, f), (size_t)sz);
    assert_int_equal(fclose(f), 0);
    *n = (size_t)sz;
}

static void write_file(const char *path, const uint8_t *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void test_file_anchor_starts_at_zero_and_only_moves_forward(void **state)
{
    (void)state;
    tmpdir t;
    td_make(&t);
    vd_anchor *a = NULL;
    int err = -1;
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_OK, "create");
    assert_int_equal(err, 0);
    uint64_t v = 99;
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, 0);
    struct stat st;
    assert_int_equal(stat(t.anchor, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, AF_FILE_BYTES);
    assert_int_equal(a->advance(a->ctx, 5), 0);
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(a->advance(a->ctx, 4), -EINVAL); /* never backwards */
    assert_int_equal(a->advance(a->ctx, 5), 0);       /* same value: fine */
    assert_int_equal(a->advance(a->ctx, UINT64_MAX - 1), 0);
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, UINT64_MAX - 1);
    assert_int_equal(td_entries(&t), 1); /* no temporary file left behind */
    vd_anchor_file_close(a);

    /* Reopening, with or without create, keeps the value. */
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_OK, "reopen, create=1");
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, UINT64_MAX - 1);
    vd_anchor_file_close(a);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 0, &a, &err), VD_OK, "reopen, create=0");
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, UINT64_MAX - 1);
    vd_anchor_file_close(a);

    VT_EXPECT_ERR(vd_anchor_file_open(NULL, 0, &a, &err), VD_ERR_INVAL, "NULL path");
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 0, NULL, &err), VD_ERR_INVAL, "NULL out");
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 2, &a, &err), VD_ERR_INVAL, "create=2");
    vd_anchor_file_close(NULL);
    td_free(&t);
}

static void test_missing_anchor_file_is_an_io_error_not_zero(void **state)
{
    (void)state;
    tmpdir t;
    td_make(&t);
    vd_anchor *a = (vd_anchor *)1;
    int err = 0;
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 0, &a, &err), VD_ERR_IO, "missing");
    assert_int_equal(err, ENOENT);
    assert_null(a);
    assert_int_equal(td_entries(&t), 0); /* create=0 creates nothing */
    char nodir[128];
    snprintf(nodir, sizeof nodir, "%s/no/such.anchor", t.dir);
    VT_EXPECT_ERR(vd_anchor_file_open(nodir, 1, &a, &err), VD_ERR_IO, "missing directory");
    assert_int_equal(err, ENOENT);
    td_free(&t);
}

static void test_damaged_anchor_file_is_reported_never_taken_as_zero(void **state)
{
    (void)state;
    tmpdir t;
    td_make(&t);
    vd_anchor *a = NULL;
    int err;
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_OK, "create");
    assert_int_equal(a->advance(a->ctx, 77), 0);
    uint8_t *good;
    size_t n;
    read_file(t.anchor, &good, &n);
    assert_int_equal(n, AF_FILE_BYTES);

    /* Under an open handle: read() fails, and an image open with it too. */
    uint8_t bad[AF_FILE_BYTES + 1];
    memcpy(bad, good, AF_FILE_BYTES);
    bad[16] ^= 1; /* the counter */
    write_file(t.anchor, bad, AF_FILE_BYTES);
    uint64_t v = 0;
    assert_int_equal(a->read(a->ctx, &v), -EBADMSG);
    assert_int_equal(a->advance(a->ctx, 78), -EBADMSG);
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = 8};
    vd_open_opts o = {.anchor = a};
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, &o, &img), VD_ERR_IO, "create on a damaged anchor");
    vd_anchor_file_close(a);

    /* At open: every byte flipped, truncated, extended: VD_ERR_CORRUPT. */
    for (unsigned i = 0; i < AF_FILE_BYTES; i++) {
        memcpy(bad, good, AF_FILE_BYTES);
        bad[i] ^= 0x40;
        write_file(t.anchor, bad, AF_FILE_BYTES);
        VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_ERR_CORRUPT,
                   "byte %u flipped", i);
    }
    write_file(t.anchor, good, AF_FILE_BYTES - 1);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_ERR_CORRUPT, "47 bytes");
    write_file(t.anchor, good, 32);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_ERR_CORRUPT,
                  "a version-2 file cut to version 1's length");
    memcpy(bad, good, AF_FILE_BYTES);
    bad[AF_FILE_BYTES] = 0;
    write_file(t.anchor, bad, AF_FILE_BYTES + 1);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_ERR_CORRUPT, "49 bytes");
    write_file(t.anchor, good, 0);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_ERR_CORRUPT,
               "empty file (create=1 does not reset it)");
    write_file(t.anchor, good, AF_FILE_BYTES);
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 0, &a, &err), VD_OK, "restored");
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, 77);
    vd_anchor_file_close(a);
    free(good);
    vd_host_mem_free(h);
    td_free(&t);
}

static void test_anchor_file_rolled_back_under_a_handle_is_refused(void **state)
{
    (void)state;
    tmpdir t;
    td_make(&t);
    vd_anchor *a = NULL;
    int err;
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_OK, "create");
    assert_int_equal(a->advance(a->ctx, 5), 0);
    uint8_t *old;
    size_t n;
    read_file(t.anchor, &old, &n);
    assert_int_equal(a->advance(a->ctx, 9), 0);
    write_file(t.anchor, old, n); /* someone puts the old file back */
    uint64_t v;
    assert_int_equal(a->read(a->ctx, &v), -ESTALE);
    assert_int_equal(a->advance(a->ctx, 10), -ESTALE);
    vd_anchor_file_close(a);
    free(old);
    td_free(&t);
}

/* ---- whole-image rollback (file backend + file anchor) ---------------------------- */

static vd_image_info info_of(vd_image *img)
{
    vd_image_info info;
    VT_EXPECT_ERR(vd_image_info_get(img, &info), VD_OK, "info");
    return info;
}

static uint64_t epoch_of(vd_image *img)
{
    return info_of(img).epoch;
}

static uint64_t flushes_of(vd_image *img)
{
    return info_of(img).flushes;
}

static void put_block(vd_image *img, uint64_t lbn, uint32_t id)
{
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, lbn, id);
    VT_EXPECT_ERR(vd_image_write(img, lbn, 1, b), VD_OK, "write %" PRIu64, lbn);
}

static int64_t get_block(vd_image *img, uint64_t lbn)
{
    uint8_t b[VD_BLOCK_SIZE];
    VT_EXPECT_ERR(vd_image_read(img, lbn, 1, b), VD_OK, "read %" PRIu64, lbn);
    return vt_block_identify(b, lbn);
}

static vd_err open_file_image(const char *path, const vd_unlock *u, vd_anchor *a,
                              int ro, vd_host **h, vd_image **img)
{
    VT_EXPECT_ERR(vd_host_file_open(path, ro ? VD_HOST_READONLY : 0, h, NULL), VD_OK,
               "host open");
    vd_open_opts o = {.read_only = ro, .cache_bytes = 1 << 20, .anchor = a};
    vd_err e = vd_image_open_unlock(*h, u, &o, img);
    if (e != VD_OK) {
        vd_host_file_close(*h);
        *h = NULL;
    }
    return e;
}

static void test_whole_image_rollback_is_refused_with_file_anchor_only(void **state)
{
    (void)state;
    tmpdir t;
    td_make(&t);
    static const vd_pwhash_params fast = {VD_PWHASH_OPSLIMIT_MIN, VD_PWHASH_MEMLIMIT_MIN};
    vd_unlock u = {VD_SLOT_PASSPHRASE, (const uint8_t *)"pw", 2};
    vd_anchor *a = NULL;
    int err;
    VT_EXPECT_ERR(vd_anchor_file_open(t.anchor, 1, &a, &err), VD_OK, "anchor");
    vd_host *h;
    VT_EXPECT_ERR(vd_host_file_open(t.image, VD_HOST_CREATE, &h, NULL), VD_OK, "host");
    vd_create_opts c = {.nblocks = 256};
    vd_open_opts o = {.cache_bytes = 1 << 20, .anchor = a};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_create_unlock(h, &u, &fast, &c, &o, &img), VD_OK, "create");
    put_block(img, 10, 1);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync 1");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_file_close(h);

    uint8_t *old;
    size_t n;
    read_file(t.image, &old, &n);
    uint64_t a_old;
    assert_int_equal(a->read(a->ctx, &a_old), 0);

    VT_EXPECT_ERR(open_file_image(t.image, &u, a, 0, &h, &img), VD_OK, "reopen");
    put_block(img, 10, 2);
    put_block(img, 11, 3);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync 2");
    uint64_t epoch = epoch_of(img);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_file_close(h);
    uint64_t a_new;
    assert_int_equal(a->read(a->ctx, &a_new), 0);
    assert_true(a_new > a_old);
    assert_int_equal(a_new, epoch);

    write_file(t.image, old, n); /* the host puts the old copy back */
    VT_EXPECT_ERR(open_file_image(t.image, &u, a, 0, &h, &img), VD_ERR_ROLLBACK,
               "old copy, writable, with the anchor");
    VT_EXPECT_ERR(open_file_image(t.image, &u, a, 1, &h, &img), VD_ERR_ROLLBACK,
               "old copy, read-only, with the anchor");
    uint64_t v;
    assert_int_equal(a->read(a->ctx, &v), 0);
    assert_int_equal(v, a_new); /* a refused open changes nothing */
    /* Without an anchor the old copy opens: freshness across restarts is
     * not guaranteed (docs/SECURITY.md, R4). */
    VT_EXPECT_ERR(open_file_image(t.image, &u, NULL, 1, &h, &img), VD_OK,
               "old copy without an anchor (documented limit)");
    assert_int_equal(get_block(img, 10), 1);
    assert_int_equal(get_block(img, 11), 0);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_file_close(h);
    free(old);
    vd_anchor_file_close(a);
    td_free(&t);
}

/* ---- anchor modes ------------------------------------------------------------------ */

static vd_image *mode_image(vd_host *h, tanchor *ta, vd_anchor_mode mode)
{
    vd_create_opts c = {.nblocks = 1024};
    vd_open_opts o = {.cache_bytes = 1 << 20, .anchor = &ta->a, .anchor_mode = mode};
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, &o, &img), VD_OK, "create, mode %d", (int)mode);
    return img;
}

/* A new memory host *h and an image on it in anchor mode `mode`, its
 * anchor starting at `start` and counting `step` per advance (0: any
 * value, vd_anchor.step). */
static vd_image *anchored_image(vd_host **h, tanchor *ta, vd_anchor_mode mode, uint64_t step,
                                uint64_t start)
{
    assert_int_equal(vd_host_mem_new(h), VD_OK);
    ta_init(ta, start);
    ta->a.step = step;
    return mode_image(*h, ta, mode);
}

/* Blocks [0, n) written once and synced: rewriting them is what forces
 * commits when the cache fills (never-written blocks are put in place
 * without one, spill.c). */
static void written_once(vd_image *img, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        put_block(img, i, 100000 + i);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
}

static void test_every_commit_mode_advances_on_implicit_commits(void **state)
{
    (void)state;
    vd_host *h;
    tanchor ta;
    vd_image *img = anchored_image(&h, &ta, VD_ANCHOR_EVERY_COMMIT, 0, 50);
    assert_int_equal(epoch_of(img), 51); /* epochs start at the anchor */
    assert_int_equal(ta.value, 51);
    written_once(img, 600);
    assert_int_equal(ta.value, epoch_of(img));
    const uint64_t start = epoch_of(img);
    for (uint32_t i = 0; i < 600; i++) {
        put_block(img, i, i + 1);
        assert_int_equal(ta.value, epoch_of(img)); /* after every call */
    }
    assert_true(epoch_of(img) > start); /* the cache (1 MiB) forced commits */
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

static void test_explicit_sync_mode_advances_only_on_sync_and_close(void **state)
{
    (void)state;
    vd_host *h;
    tanchor ta;
    vd_image *img = anchored_image(&h, &ta, VD_ANCHOR_EXPLICIT_SYNC, 0, 0);
    written_once(img, 600);
    uint64_t base = ta.value;
    assert_int_equal(base, epoch_of(img));
    for (uint32_t i = 0; i < 600; i++)
        put_block(img, i, i + 1);
    assert_true(epoch_of(img) > base); /* implicit commits happened... */
    assert_int_equal(ta.value, base);  /* ...and left the anchor alone */
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    assert_int_equal(ta.value, epoch_of(img));
    /* Implicit commits again, then close: close advances it. */
    for (uint32_t i = 0; i < 300; i++)
        put_block(img, i, 1000 + i);
    uint64_t before = ta.value;
    assert_true(epoch_of(img) > before);
    uint64_t at_close = epoch_of(img);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_true(ta.value >= at_close); /* close advanced it to the last commit */
    uint64_t adv = ta.advances;

    /* The trade-off: a state committed implicitly but not yet anchored can
     * be replayed. Snapshot after a sync; implicit commits; "crash". */
    vd_open_opts o = {.cache_bytes = 1 << 20, .anchor = &ta.a,
                      .anchor_mode = VD_ANCHOR_EXPLICIT_SYNC};
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "reopen");
    uint64_t size;
    uint8_t *snap = vt_host_mem_copy(h, &size);
    for (uint32_t i = 0; i < 300; i++)
        put_block(img, i, 5000 + i);
    assert_true(epoch_of(img) > ta.value); /* committed, not anchored */
    vd_host *replay = vt_host_mem_from(snap, size);
    vd_open_opts ro = {.read_only = 1, .cache_bytes = 1 << 20, .anchor = &ta.a};
    vd_image *r;
    VT_EXPECT_ERR(vd_image_open(replay, KEY, &ro, &r), VD_OK,
               "replay inside the explicit-sync window (documented trade-off)");
    VT_EXPECT_ERR(vd_image_close(r), VD_OK, "close");
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "explicit sync closes the window");
    VT_EXPECT_ERR(vd_image_open(replay, KEY, &ro, &r), VD_ERR_ROLLBACK, "replay after sync");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_true(ta.advances > adv);
    vd_host_mem_free(replay);

    /* The same replay in VD_ANCHOR_EVERY_COMMIT mode is refused at once. */
    o.anchor_mode = VD_ANCHOR_EVERY_COMMIT;
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "reopen, every commit");
    free(snap);
    snap = vt_host_mem_copy(h, &size);
    for (uint32_t i = 0; i < 300; i++)
        put_block(img, i, 9000 + i);
    /* The epoch first: asking joins a commit in flight, which advances
     * the anchor (sync.c, overlapped commits). */
    uint64_t ep = epoch_of(img);
    assert_int_equal(ep, ta.value);
    replay = vt_host_mem_from(snap, size);
    VT_EXPECT_ERR(vd_image_open(replay, KEY, &ro, &r), VD_ERR_ROLLBACK,
               "replay of an implicitly committed state, every-commit mode");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(replay);
    free(snap);

    vd_open_opts bad = {.anchor_mode = (vd_anchor_mode)7};
    VT_EXPECT_ERR(vd_image_open(h, KEY, &bad, &img), VD_ERR_INVAL, "anchor_mode 7");
    vd_host_mem_free(h);
}

/* Open a copy of h's bytes read-only with the anchor at a: the result. */
static vd_err open_copy(const uint8_t *bytes, uint64_t size, uint64_t a, uint64_t lbn,
                        int64_t want)
{
    vd_host *c = vt_host_mem_from(bytes, size);
    tanchor t;
    ta_init(&t, a);
    vd_open_opts o = {.read_only = 1, .anchor = &t.a};
    vd_image *img;
    vd_err e = vd_image_open(c, KEY, &o, &img);
    if (e == VD_OK) {
        assert_int_equal(get_block(img, lbn), want);
        VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    }
    vd_host_mem_free(c);
    return e;
}

/* Issue 18 (NV wear): vd_image_commit (a mount's periodic commit) is
 * durable but, in explicit-sync mode, not an acknowledged sync: the anchor
 * stays where it is. A counter that moves one step per increment
 * (vd_anchor.step, as the TPM anchor) then moves one step per acknowledged
 * sync however many commits came between (before: one per commit), two
 * only past a step's worth of commits; a copy from before the sync is
 * refused all the same. In every-commit mode each commit is one step. */
static void test_commits_cost_a_stepped_anchor_nothing_until_a_sync(void **state)
{
    (void)state;
    const uint64_t step = 64;
    vd_host *h;
    tanchor ta;
    vd_image *img = anchored_image(&h, &ta, VD_ANCHOR_EXPLICIT_SYNC, step, 3 * step);
    const uint64_t v0 = ta.value, adv0 = ta.advances;
    assert_int_equal(v0 % step, 0);
    assert_int_equal(epoch_of(img), v0);
    for (uint32_t i = 0; i < 10; i++) {
        put_block(img, i, 100 + i);
        VT_EXPECT_ERR(vd_image_commit(img), VD_OK, "commit %u", i);
    }
    assert_true(epoch_of(img) >= v0 + 10);
    assert_int_equal(ta.value, v0); /* ten commits, no advance */
    uint64_t size;
    uint8_t *before = vt_host_mem_copy(h, &size);
    /* Durable: the state the commits left opens and holds the last one. */
    VT_EXPECT_ERR(open_copy(before, size, v0, 9, 109), VD_OK, "state after commits");

    put_block(img, 50, 7);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    assert_int_equal(ta.value, v0 + step); /* one step for the sync */
    assert_int_equal(epoch_of(img), ta.value);
    assert_int_equal(ta.advances, adv0 + 1);
    VT_EXPECT_ERR(open_copy(before, size, ta.value, 9, 109), VD_ERR_ROLLBACK,
                  "the copy from before the sync");
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "idle sync");
    assert_int_equal(ta.advances, adv0 + 1); /* nothing new: no step */

    /* More commits than a step between two syncs: two steps, not more. */
    for (uint32_t i = 0; i < step + 6; i++) {
        put_block(img, i % 20, 1000 + i);
        VT_EXPECT_ERR(vd_image_commit(img), VD_OK, "commit %u", i);
    }
    assert_int_equal(ta.value, v0 + step);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(ta.value, v0 + 3 * step);
    assert_int_equal(ta.advances, adv0 + 2);

    /* Reopened writable: no false alarm; every-commit mode steps once per
     * commit, each at an epoch the anchor holds. */
    vd_open_opts o = {.cache_bytes = 1 << 20, .anchor = &ta.a,
                      .anchor_mode = VD_ANCHOR_EVERY_COMMIT};
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "reopen");
    assert_int_equal(get_block(img, 50), 7);
    uint64_t v1 = ta.value;
    for (uint32_t i = 0; i < 5; i++) {
        put_block(img, i, 2000 + i);
        VT_EXPECT_ERR(vd_image_commit(img), VD_OK, "commit %u", i);
        assert_int_equal(ta.value, v1 + (i + 1) * step);
        assert_int_equal(epoch_of(img), ta.value);
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    free(before);
    vd_host_mem_free(h);
}

/* Format 4: an acknowledged one-flush commit whose journal copy the host
 * damages afterwards looks to the reader like a crash before that commit:
 * the record before it is in force. The anchor, advanced only once the
 * commit's flush was done, reports the rollback; without it the older
 * state opens, as any older copy of the image would (SECURITY.md), less
 * the blocks the lost commit rewrote in place that the older state had
 * written fresh (format 5). */
static void test_a_damaged_one_flush_journal_is_a_rollback(void **state)
{
    (void)state;
    vd_host *h;
    tanchor ta;
    vd_image *img = anchored_image(&h, &ta, VD_ANCHOR_EVERY_COMMIT, 0, 50);
    /* Written before: a block the tree never wrote goes in place before
     * the flush (format 5), with no copy in the journal. */
    put_block(img, 3, 76);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    put_block(img, 3, 77);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    const uint64_t acked = ta.value;
    assert_int_equal(epoch_of(img), acked);
    uint64_t size;
    uint8_t *bytes = vt_host_mem_copy(h, &size);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
    /* Every block of the commit went in place after the flush: its copy in
     * the journal (which lies before the tree and the data) is the first
     * of two equal blocks that are not zeros. */
    static const uint8_t zero[VD_BLOCK_SIZE];
    size_t nblk = (size_t)(size / BS), copy = 0, place = 0;
    for (size_t k = 0; k < nblk && !place; k++) {
        if (memcmp(bytes + k * BS, zero, BS) == 0)
            continue;
        for (size_t j = k + 1; j < nblk && !place; j++)
            if (memcmp(bytes + k * BS, bytes + j * BS, BS) == 0) {
                copy = k;
                place = j;
            }
    }
    assert_true(place != 0);
    assert_int_equal(open_copy(bytes, size, acked, 3, 77), VD_OK);
    bytes[copy * BS + 100] ^= 0x01;
    VT_EXPECT_ERR(open_copy(bytes, size, acked, 3, 77), VD_ERR_ROLLBACK,
                  "the damaged journal of the acknowledged commit");
    /* The state before it opens, as any older copy would; but the lost
     * commit rewrote block 3 in place once its flush was done, and block
     * 3 had no copy of the older state left (format 5: it went in place,
     * fresh): reading it is an authentication failure, never old bytes
     * taken for new. */
    vd_host *c = vt_host_mem_from(bytes, size);
    tanchor t;
    ta_init(&t, acked - 1);
    vd_open_opts o = {.read_only = 1, .anchor = &t.a};
    VT_EXPECT_ERR(vd_image_open(c, KEY, &o, &img), VD_OK, "the state before");
    uint8_t b[VD_BLOCK_SIZE];
    VT_EXPECT_ERR(vd_image_read(img, 3, 1, b), VD_ERR_AUTH, "block 3 of the state before");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(c);
    free(bytes);
}

/* Issue 18: an acknowledged sync with a stepped anchor costs one commit's
 * flushes, as with any other anchor: the round commits at an epoch the
 * anchor holds instead of being followed by a record of the same state at
 * one (5 flushes before). When the last commit was acknowledged (its epoch
 * a multiple of the step, in the slot the next multiple takes), the round
 * runs in place (IN_PROGRESS in the other slot): three flushes. When it was
 * implicit (one past a multiple), the next multiple falls in the other
 * slot and the small round commits there with one flush (format 4). Each
 * sync is still one step, and the copy from before it is refused. */
static void test_a_sync_with_a_stepped_anchor_costs_one_commit(void **state)
{
    (void)state;
    const uint64_t step = 64;
    vd_host *h;
    tanchor ta;
    vd_image *img = anchored_image(&h, &ta, VD_ANCHOR_EXPLICIT_SYNC, step, 2 * step);
    for (uint32_t i = 0; i < 6; i++) {
        put_block(img, i, 300 + i);
        if (i % 2) /* an implicit commit first: the sync starts one past a step */
            VT_EXPECT_ERR(vd_image_commit(img), VD_OK, "commit %u", i);
        put_block(img, 100 + i, 400 + i);
        uint64_t size;
        uint8_t *before = vt_host_mem_copy(h, &size);
        const uint64_t f0 = flushes_of(img), a0 = ta.advances, v0 = ta.value;
        VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync %u", i);
        const uint64_t want = i % 2 ? 1 : 3;
        if (flushes_of(img) - f0 != want) {
            print_error("sync %u: %llu flushes, want %llu\n", i,
                        (unsigned long long)(flushes_of(img) - f0),
                        (unsigned long long)want);
            fail();
        }
        assert_int_equal(ta.advances, a0 + 1);
        assert_int_equal(ta.value, v0 + step);
        assert_int_equal(epoch_of(img), ta.value);
        VT_EXPECT_ERR(open_copy(before, size, ta.value, i, 300 + i), VD_ERR_ROLLBACK,
                      "the copy from before sync %u", i);
        free(before);
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_open_opts o = {.cache_bytes = 1 << 20, .anchor = &ta.a};
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "reopen");
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(get_block(img, i), 300 + i);
        assert_int_equal(get_block(img, 100 + i), 400 + i);
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

/* ---- crashes between the superblock write and the anchor advance ------------------ */

#define CR_BLOCKS 300u
#define CR_SYNCS 8u

typedef struct crun {
    vd_anchor_mode mode;
    uint64_t seed, rng;
    vt_hist *hist; /* per block: writes in order */
    uint32_t next_id;
    uint64_t sync_start_seq[CR_SYNCS];
    size_t sync_end_op[CR_SYNCS]; /* op count when vd_image_sync returned */
    size_t sync_rec_op[CR_SYNCS]; /* its last superblock write (the final
                                     commit record): a crash state of this
                                     many ops predates it */
    uint64_t ack_value[CR_SYNCS]; /* anchor value then */
    uint32_t nsync;
    uint64_t anchor_start;
    vt_block_memo *memo; /* cr_check_blocks' block identification */
} crun;

static void cr_free(crun *w)
{
    vt_hist_free(w->hist);
    vt_block_memo_free(w->memo);
}

/* Is id acceptable for lbn after a crash whose last completed sync is s? */
static int cr_allowed(const crun *w, int s, uint64_t lbn, uint32_t id)
{
    return vt_hist_allowed(w->hist, s < 0 ? 0 : w->sync_start_seq[s], lbn, id);
}

/* The options of every open of a run (by value: the library copies what
 * it keeps, and each caller holds its own). */
static vd_open_opts cr_opts(const crun *w, vd_anchor *a, int ro)
{
    vd_open_opts o = {.read_only = ro,
                      .cache_bytes = 1 << 20, /* 128 dirty blocks force implicit commits */
                      .aead_impl = VD_AEAD_OPENSSL,
                      .anchor = a,
                      .anchor_mode = w->mode};
    return o;
}

/* The workload: bursts of writes (some beyond the dirty limit, so implicit
 * commits happen), each burst ending with a write and an explicit sync.
 * Returns 0 when it ran to the end, 1 when the anchor "crashed". */
/* The last superblock write among the first end ops: a sync's final
 * commit record (a one-flush commit writes its blocks in place after it,
 * an in-place commit only its flush). */
static size_t last_super_write(vd_rec *rec, size_t end)
{
    for (size_t k = end; k-- > 0;) {
        vd_rec_op_info oi;
        assert_int_equal(vd_rec_op_get(rec, k, &oi), VD_OK);
        if (oi.kind == VD_REC_WRITE && oi.offset >= 2 * BS && oi.offset < 4 * BS)
            return k;
    }
    fail_msg("no superblock write before op %zu", end);
    return 0;
}

static int cr_workload(crun *w, vd_image *img, vd_rec *rec, tanchor *ta)
{
    uint8_t b[VD_BLOCK_SIZE];
    w->rng = w->seed ? w->seed : 1;
    for (uint32_t s = 0; s < CR_SYNCS; s++) {
        /* Every third burst spreads over the whole image, past the dirty
         * limit (128 blocks): implicit commits. */
        int big = s % 3 == 1;
        unsigned n = big ? 180 + (unsigned)(vt_rand(&w->rng) % 120)
                         : 1 + (unsigned)(vt_rand(&w->rng) % 40);
        for (unsigned k = 0; k <= n; k++) { /* the last write precedes the sync */
            uint64_t lbn = big || vt_rand(&w->rng) % 4 == 0 ? vt_rand(&w->rng) % CR_BLOCKS
                                                        : vt_rand(&w->rng) % 24;
            uint32_t id = w->next_id++;
            vt_block_fill(b, lbn, id);
            /* an implicit commit inside the write may persist it */
            vt_hist_record(w->hist, lbn, id);
            vd_err e = vd_image_write(img, lbn, 1, b);
            if (ta->dead)
                return 1;
            VT_EXPECT_ERR(e, VD_OK, "workload write");
        }
        w->sync_start_seq[s] = vt_hist_seq(w->hist);
        vd_err e = vd_image_sync(img);
        if (ta->dead)
            return 1;
        VT_EXPECT_ERR(e, VD_OK, "workload sync %u", s);
        w->sync_end_op[s] = vd_rec_op_count(rec);
        w->sync_rec_op[s] = last_super_write(rec, w->sync_end_op[s]);
        w->ack_value[s] = ta->value;
        w->nsync = s + 1;
    }
    return 0;
}

static void cr_start(crun *w, vd_anchor_mode mode, uint64_t seed, vd_rec **rec,
                     tanchor *ta, vd_image **img, vd_anchor *real)
{
    memset(w, 0, sizeof *w);
    w->mode = mode;
    w->seed = seed;
    w->next_id = 1;
    w->anchor_start = 1000;
    w->hist = vt_hist_new(CR_BLOCKS);
    w->memo = vt_block_memo_new(CR_BLOCKS);
    assert_non_null(w->memo);
    ta_init(ta, w->anchor_start);
    if (real) {
        ta->real = real;
        ta->a.authorize = ta_authorize;
        ta->a.step = real->step; /* the library sees the real counter's */
    }
    *rec = vd_rec_new(NULL, 0);
    assert_non_null(*rec);
    vd_create_opts c = {.nblocks = CR_BLOCKS, .fanout = 8};
    const vd_open_opts o = cr_opts(w, &ta->a, 0);
    VT_EXPECT_ERR(vd_image_create(vd_rec_host(*rec), KEY, &c, &o, img), VD_OK, "create");
    if (real) /* the TPM counter starts where it is */
        assert_int_equal(ta_read(ta, &w->anchor_start), 0);
    assert_int_equal(vd_rec_reset_log(*rec), VD_OK); /* crashes start now */
    ta->rec = *rec;
    ta->nlog = 0;
    ta->calls = 0; /* crash_at counts the workload's advances only */
}

/* Check an opened crash state: every block reads, with an allowed id. */
static void cr_check_blocks(const crun *w, vd_image *img, int s, const char *what)
{
    uint8_t *buf = malloc(CR_BLOCKS * BS);
    assert_non_null(buf);
    vd_err e = vd_image_read(img, 0, CR_BLOCKS, buf);
    if (e != VD_OK) {
        print_error("%s: read: %d (%s)\n", what, (int)e, vd_strerror(e));
        fail();
    }
    for (uint32_t b = 0; b < CR_BLOCKS; b++) {
        int64_t id = vt_block_memo_identify(w->memo, buf + (size_t)b * BS, b);
        if (id < 0 || !cr_allowed(w, s, b, (uint32_t)id)) {
            print_error("%s: block %u holds %lld, not allowed after sync %d\n", what, b,
                        (long long)id, s);
            fail();
        }
    }
    free(buf);
}

/* Open host h (a crash state) with the anchor at a: it must open (no false
 * alarm), hold allowed content, and leave the anchor at its epoch.
 * Returns the anchor value after close. */
static uint64_t cr_recover(const crun *w, vd_host *h, uint64_t a, int s, const char *what)
{
    tanchor t;
    ta_init(&t, a);
    vd_image *img = NULL;
    const vd_open_opts ro = cr_opts(w, &t.a, 1), rw = cr_opts(w, &t.a, 0);
    vd_err e = vd_image_open(h, KEY, &ro, &img);
    if (e != VD_OK) {
        print_error("%s: read-only open with anchor %llu: %d (%s)\n", what,
                    (unsigned long long)a, (int)e, vd_strerror(e));
        fail();
    }
    cr_check_blocks(w, img, s, what);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    assert_int_equal(t.value, a); /* read-only: untouched */
    e = vd_image_open(h, KEY, &rw, &img);
    if (e != VD_OK) {
        print_error("%s: writable open with anchor %llu: %d (%s)\n", what,
                    (unsigned long long)a, (int)e, vd_strerror(e));
        fail();
    }
    cr_check_blocks(w, img, s, what);
    uint64_t ep = epoch_of(img);
    assert_true(ep >= a);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    if (t.value != ep) {
        print_error("%s: anchor %llu after close, image epoch %llu\n", what,
                    (unsigned long long)t.value, (unsigned long long)ep);
        fail();
    }
    return t.value;
}

/* Host h holds the state after op m: with the anchor at a it must be
 * refused, read-only and writable. */
static void cr_expect_rollback_host(const crun *w, vd_host *h, uint64_t a,
                                    const char *what, size_t m)
{
    tanchor t;
    ta_init(&t, a);
    for (int ro = 1; ro >= 0; ro--) {
        vd_image *img = NULL;
        const vd_open_opts o = cr_opts(w, &t.a, ro);
        vd_err e = vd_image_open(h, KEY, &o, &img);
        if (e != VD_ERR_ROLLBACK) {
            print_error("%s: state at op %zu opened %s with anchor %llu: %d (%s)\n", what,
                        m, ro ? "read-only" : "writable", (unsigned long long)a, (int)e,
                        vd_strerror(e));
            fail();
        }
    }
    assert_int_equal(t.value, a);
}

static void cr_expect_rollback(const crun *w, const uint8_t *bytes, uint64_t size,
                               uint64_t a, const char *what, size_t m)
{
    vd_host *h = vt_host_mem_from(bytes, size);
    cr_expect_rollback_host(w, h, a, what, m);
    vd_host_mem_free(h);
}

/* Newest acknowledged sync of a crash after p ops with the anchor at a. */
static int cr_acked(const crun *w, size_t p, uint64_t a)
{
    int s = -1;
    for (uint32_t k = 0; k < w->nsync; k++)
        if (w->sync_end_op[k] <= p && a >= w->ack_value[k])
            s = (int)k;
    return s;
}

static int cr_durable(const crun *w, size_t p)
{
    int s = -1;
    for (uint32_t k = 0; k < w->nsync; k++)
        if (w->sync_end_op[k] <= p)
            s = (int)k;
    return s;
}

static void crash_every_point(vd_anchor_mode mode, uint64_t seed, vd_anchor *real)
{
    crun w;
    vd_rec *rec;
    tanchor ta;
    vd_image *img;
    cr_start(&w, mode, seed, &rec, &ta, &img, real);
    assert_int_equal(cr_workload(&w, img, rec, &ta), 0);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    size_t nops = vd_rec_op_count(rec);
    printf("  mode %s, seed %llu: %zu ops, %zu flushes, %u syncs, %zu anchor "
           "advances\n",
           mode == VD_ANCHOR_EVERY_COMMIT ? "every-commit" : "explicit-sync",
           (unsigned long long)seed, nops, vd_rec_flush_count(rec), w.nsync, ta.nlog);
    assert_true(w.nsync == CR_SYNCS && ta.nlog >= CR_SYNCS);
    /* The workload did commit implicitly, between explicit syncs. */
    uint64_t final_epoch = w.ack_value[w.nsync - 1];
    assert_true(final_epoch - (w.anchor_start + 1) > CR_SYNCS);
    if (mode == VD_ANCHOR_EVERY_COMMIT)
        assert_true(ta.nlog > CR_SYNCS);
    else if (real && real->step > 1) /* one increment per acknowledged sync */
        assert_int_equal(ta.nlog, w.nsync);

    /* 1. Every acknowledged sync s: every state before its final commit
     *    (op sync_rec_op[s] is that superblock write) is refused with
     *    the anchor value s was acknowledged at. */
    unsigned refused = 0;
    const size_t stride = vt_crash_stride();
    if (stride > 1)
        printf("  sampled: one crash point in %zu, and every sync's and anchor "
               "advance's (VD_CRASH_STRIDE)\n", stride);
    for (size_t m = 0; m <= w.sync_rec_op[w.nsync - 1]; m++)
        for (uint32_t s = 0; s < w.nsync; s++)
            if (m <= w.sync_rec_op[s] && (m % stride == 0 || m == w.sync_rec_op[s])) {
                vd_host *h; /* a fresh copy of state m for each check */
                assert_int_equal(vd_rec_crash_view(rec, m, NULL, 0, 0, &h), VD_OK);
                cr_expect_rollback_host(&w, h, w.ack_value[s], "older than a sync", m);
                vd_rec_view_free(h);
                refused++;
            }

    /* The state before each sync's final commit, made once: asking the
     * recorder for it inside the walk below would rebuild its cache from
     * the start of the log at every crash point. */
    uint8_t *older[CR_SYNCS];
    uint64_t older_size[CR_SYNCS];
    for (uint32_t s = 0; s < w.nsync; s++) {
        older[s] = vd_rec_crash_image(rec, w.sync_rec_op[s], NULL, 0, 0, &older_size[s]);
        assert_non_null(older[s]);
    }

    /* 2. Every crash point, with the anchor before and after each advance
     *    that happened there; plus a random subset of its unflushed tail. */
    uint64_t rng = seed ^ 0xA5A5A5A5ull;
    unsigned points = 0, late = 0;
    size_t li = 0;
    uint64_t before = w.anchor_start;
    for (size_t p = 0; p <= nops; p++) {
        uint64_t vals[MAXADV + 1];
        size_t nv = 0;
        while (li < ta.nlog && ta.log_op[li] < p)
            before = ta.log_val[li++];
        vals[nv++] = before;
        for (size_t j = li; j < ta.nlog && ta.log_op[j] == p; j++)
            vals[nv++] = ta.log_val[j];
        if (nv == 1 && p % stride != 0 && p != nops)
            continue;
        for (int variant = 0; variant < 2; variant++) {
            uint8_t mask[64];
            const uint8_t *mp;
            if (!vt_replay_tail_variant(rec, p, variant, &rng, mask, sizeof mask, &mp))
                continue;
            uint64_t order = vt_rand(&rng);
            for (size_t k = 0; k < nv; k++) {
                vd_host *h; /* the same state afresh for each anchor value */
                assert_int_equal(vd_rec_crash_view(rec, p, mp, order, variant, &h),
                                 VD_OK);
                char what[96];
                snprintf(what, sizeof what, "crash after op %zu%s, anchor %llu", p,
                         variant ? " (tail subset)" : "", (unsigned long long)vals[k]);
                uint64_t after = cr_recover(&w, h, vals[k], cr_durable(&w, p), what);
                points++;
                late += k > 0;
                /* 3. After that recovery, the newest state older than the
                 *    newest acknowledged sync is still refused. */
                int s = cr_acked(&w, p, vals[k]);
                if (s >= 0 && variant == 0) {
                    cr_expect_rollback(&w, older[s], older_size[s], after, "after recovery",
                                       w.sync_rec_op[s]);
                    refused++;
                }
                vd_rec_view_free(h);
            }
        }
    }
    for (uint32_t s = 0; s < w.nsync; s++)
        free(older[s]);
    printf("  %u crash states opened without a false alarm (%u with the anchor "
           "already advanced), %u older states refused\n",
           points, late, refused);
    vd_rec_free(rec);
    cr_free(&w);
}

static uint64_t seed_from_env(uint64_t dflt)
{
    return vt_seed_from_env("VD_ANCHOR_SEED", dflt);
}

static void test_crash_at_every_point_of_the_anchor_protocol_every_commit(void **state)
{
    (void)state;
    crash_every_point(VD_ANCHOR_EVERY_COMMIT, seed_from_env(g_seed), NULL);
}

static void test_crash_at_every_point_of_the_anchor_protocol_explicit_sync(void **state)
{
    (void)state;
    crash_every_point(VD_ANCHOR_EXPLICIT_SYNC, seed_from_env(g_seed + 1), NULL);
}

/* The library runs with an anchor whose n-th advance "crashes" (the
 * process dies before the counter moves): for every n, the image as the
 * host holds it then opens with the anchor as it is, without a false
 * alarm, and every state before the last acknowledged sync is refused. */
static void crash_in_advance(vd_anchor_mode mode, uint64_t seed, vd_anchor *real)
{
    crun w;
    vd_rec *rec;
    tanchor ta;
    vd_image *img;
    cr_start(&w, mode, seed, &rec, &ta, &img, real);
    assert_int_equal(cr_workload(&w, img, rec, &ta), 0);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    long calls = ta.calls;
    vd_rec_free(rec);
    cr_free(&w);
    unsigned checked = 0;
    for (long n = 1; n <= calls; n++) {
        cr_start(&w, mode, seed, &rec, &ta, &img, real);
        ta.crash_at = n;
        int crashed = cr_workload(&w, img, rec, &ta);
        assert_int_equal(crashed, 1);
        (void)vd_image_close(img); /* the dead anchor fails it; frees it */
        uint64_t size;
        const uint8_t *live = vd_rec_live(rec, &size);
        vd_host *h = vt_host_mem_from(live, size);
        char what[64];
        snprintf(what, sizeof what, "advance %ld of %ld crashed", n, calls);
        size_t p = vd_rec_op_count(rec);
        uint64_t after = cr_recover(&w, h, ta.value, cr_durable(&w, p), what);
        assert_true(after > ta.value); /* the lost advance is made up for */
        int s = cr_acked(&w, p, ta.value);
        if (s >= 0) {
            uint64_t msz;
            uint8_t *older = vd_rec_crash_image(rec, w.sync_rec_op[s], NULL, 0, 0, &msz);
            assert_non_null(older);
            cr_expect_rollback(&w, older, msz, after, what, w.sync_rec_op[s]);
            free(older);
        }
        vd_host_mem_free(h);
        vd_rec_free(rec);
        cr_free(&w);
        checked++;
    }
    printf("  mode %s, seed %llu: crashed each of %u anchor advances\n",
           mode == VD_ANCHOR_EVERY_COMMIT ? "every-commit" : "explicit-sync",
           (unsigned long long)seed, checked);
    assert_true(checked >= CR_SYNCS);
}

static void test_anchor_advance_that_crashes_never_causes_a_false_alarm(void **state)
{
    (void)state;
    crash_in_advance(VD_ANCHOR_EVERY_COMMIT, seed_from_env(g_seed + 2), NULL);
    crash_in_advance(VD_ANCHOR_EXPLICIT_SYNC, seed_from_env(g_seed + 3), NULL);
}

/* ---- the TPM 2.0 anchor against swtpm ------------------------------------------ */

#define TPM_INDEX 0x01500100u

/* Start swtpm and open the TPM anchor on a fresh index; 0, or skip (with
 * the reason printed) when swtpm or TPM support is absent. */
static int tpm_setup(vt_swtpm *s, uint32_t index, vd_anchor **a)
{
    char why[256];
    if (vt_swtpm_start(s, why, sizeof why) != 0) {
        printf("  SKIP: %s\n", why);
        vt_swtpm_free(s);
        return -1;
    }
    vd_err e = vd_anchor_tpm_open(s->tcti, index, VD_ANCHOR_TPM_DEFINE, a, why, sizeof why);
    if (e != VD_OK)
        print_error("tpm open: %s\n", why);
    VT_EXPECT_ERR(e, VD_OK, "TPM anchor open");
    return 0;
}

/* The crash harness above with the anchor a TPM NV counter (swtpm): the
 * protocol runs against the real counter, stepped one TPM2_NV_Increment
 * at a time, so the crash points include every step inside a multi-epoch
 * advance (explicit-sync mode). The states are then opened with counters
 * in memory at each logged value (a TPM counter cannot be set back). */
static void test_crash_at_every_point_with_the_tpm_counter(void **state)
{
    (void)state;
    vt_swtpm s;
    vd_anchor *tpm;
    if (tpm_setup(&s, TPM_INDEX, &tpm) != 0) {
        skip();
        return;
    }
    crash_every_point(VD_ANCHOR_EXPLICIT_SYNC, seed_from_env(g_seed + 4), tpm);
    crash_every_point(VD_ANCHOR_EVERY_COMMIT, seed_from_env(g_seed + 5), tpm);
    crash_in_advance(VD_ANCHOR_EXPLICIT_SYNC, seed_from_env(g_seed + 6), tpm);
    vd_anchor_tpm_close(tpm);
    vt_swtpm_free(&s);
}

/* swtpm dies mid-session: the sync that needed it fails with the anchor's
 * own error (not acknowledged), the counter has not reached the commit;
 * after a restart (same NV state) the image opens without a false alarm,
 * the counter catches up, and the copy from before the failed sync is
 * then refused. */
static void test_tpm_gone_mid_session_acknowledges_nothing(void **state)
{
    (void)state;
    vt_swtpm s;
    vd_anchor *tpm;
    if (tpm_setup(&s, TPM_INDEX + 1, &tpm) != 0) {
        skip();
        return;
    }
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = 64};
    vd_open_opts o = {.anchor = tpm, .anchor_mode = VD_ANCHOR_EXPLICIT_SYNC};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, &o, &img), VD_OK, "create");
    put_block(img, 1, 11);
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync with the TPM up");
    uint64_t size;
    uint8_t *before = vt_host_mem_copy(h, &size);
    uint64_t acked;
    assert_int_equal(tpm->read(tpm->ctx, &acked), 0);

    put_block(img, 2, 22);
    vt_swtpm_stop(&s);
    VT_EXPECT_ERR(vd_image_sync(img), VD_ERR_ANCHOR_UNREACHABLE, "sync with the TPM gone");
    uint64_t unanchored = epoch_of(img); /* committed on disk, not anchored */
    assert_true(unanchored > acked);
    VT_EXPECT_ERR(vd_image_close(img), VD_ERR_ANCHOR_UNREACHABLE, "close with the TPM gone");
    vd_anchor_tpm_close(tpm);

    assert_int_equal(vt_swtpm_restart(&s), 0);
    char why[256];
    VT_EXPECT_ERR(vd_anchor_tpm_open(s.tcti, TPM_INDEX + 1, 0, &tpm, why, sizeof why), VD_OK,
                  "reopen: %s", why);
    o.anchor = tpm;
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "open after the restart");
    assert_int_equal(tpm->read(tpm->ctx, &acked), 0);
    assert_int_equal(acked, unanchored); /* caught up at open */
    assert_int_equal(get_block(img, 2), 22);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host *old = vt_host_mem_from(before, size);
    o.read_only = 1;
    VT_EXPECT_ERR(vd_image_open(old, KEY, &o, &img), VD_ERR_ROLLBACK, "the copy before");
    /* Another image bound to another index (same key, so the
     * authorization would open either index): each index is refused with
     * the other image, as belonging to another image. */
    vd_host *other;
    assert_int_equal(vd_host_mem_new(&other), VD_OK);
    vd_anchor *tpm2;
    VT_EXPECT_ERR(vd_anchor_tpm_open(s.tcti, TPM_INDEX + 2, VD_ANCHOR_TPM_DEFINE, &tpm2, why,
                                     sizeof why),
                  VD_OK, "second index: %s", why);
    vd_open_opts o2 = {.anchor = tpm2, .anchor_mode = VD_ANCHOR_EXPLICIT_SYNC};
    VT_EXPECT_ERR(vd_image_create(other, KEY, &c, &o2, &img), VD_OK, "other image");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    o.read_only = 0;
    o2.read_only = 0;
    VT_EXPECT_ERR(vd_image_open(other, KEY, &o, &img), VD_ERR_ANCHOR_MISMATCH,
                  "the other image with this image's index");
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o2, &img), VD_ERR_ANCHOR_MISMATCH,
                  "this image with the other image's index");
    vd_anchor_tpm_close(tpm2);
    vd_host_mem_free(other);
    free(before);
    vd_host_mem_free(old);
    vd_host_mem_free(h);
    vd_anchor_tpm_close(tpm);
    vt_swtpm_free(&s);
}

int main(void)
{
    g_seed = seed_from_env((uint64_t)time(NULL));
    printf("test_anchor: seed %llu (VD_ANCHOR_SEED to replay)\n",
           (unsigned long long)g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_anchor_starts_at_zero_and_only_moves_forward),
        cmocka_unit_test(test_missing_anchor_file_is_an_io_error_not_zero),
        cmocka_unit_test(test_damaged_anchor_file_is_reported_never_taken_as_zero),
        cmocka_unit_test(test_anchor_file_rolled_back_under_a_handle_is_refused),
        cmocka_unit_test(test_whole_image_rollback_is_refused_with_file_anchor_only),
        cmocka_unit_test(test_every_commit_mode_advances_on_implicit_commits),
        cmocka_unit_test(test_explicit_sync_mode_advances_only_on_sync_and_close),
        cmocka_unit_test(test_commits_cost_a_stepped_anchor_nothing_until_a_sync),
        cmocka_unit_test(test_a_sync_with_a_stepped_anchor_costs_one_commit),
        cmocka_unit_test(test_a_damaged_one_flush_journal_is_a_rollback),
        cmocka_unit_test(test_crash_at_every_point_of_the_anchor_protocol_every_commit),
        cmocka_unit_test(test_crash_at_every_point_of_the_anchor_protocol_explicit_sync),
        cmocka_unit_test(test_anchor_advance_that_crashes_never_causes_a_false_alarm),
        cmocka_unit_test(test_crash_at_every_point_with_the_tpm_counter),
        cmocka_unit_test(test_tpm_gone_mid_session_acknowledges_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
