/* An anchor belongs to one image (R7):
 *   - image A's anchor file used with image B is VD_ERR_ANCHOR_MISMATCH,
 *     read-only and writable, whether B's epoch is below or above the
 *     anchor's counter (never VD_ERR_ROLLBACK, never accepted), and the
 *     anchor is left untouched;
 *   - the binding sits in the MAC'd superblock: a host that edits it
 *     breaks the superblock (VD_ERR_AUTH), and cannot move it to B;
 *   - images and anchor files made before R7 keep working: a version-1
 *     anchor file (no id) opens its unbound image, its next advance makes
 *     it version 2, the next writable open binds the image, and from then
 *     on another anchor is refused;
 *   - vd_open_opts.anchor_bind rebinds (even to a counter far ahead of the
 *     image: its epoch jumps), after which the old anchor is refused;
 *   - an anchor callback's errno becomes the anchor's own error
 *     (unreachable, missing, denied), never a rollback. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "testkit.h"

#include "vdisk/anchor.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

static const uint8_t KEY[VD_KEY_BYTES] = {7, 7, 7, 1, 2, 3};
#define NBLK 64u
#define SB_TAG_OFF (2u * 4096u + 152u) /* superblock slot A, anchor tag */

/* A counter in memory with a settable identity and a settable failure. */
typedef struct manchor {
    vd_anchor a;
    uint64_t value;
    uint8_t id[8];
    size_t idlen;
    int fail; /* negative errno every callback returns, 0 = none */
    int authorized;
} manchor;

static int ma_read(void *ctx, uint64_t *v)
{
    manchor *m = ctx;
    if (m->fail)
        return m->fail;
    *v = m->value;
    return 0;
}

static int ma_advance(void *ctx, uint64_t v)
{
    manchor *m = ctx;
    if (m->fail)
        return m->fail;
    if (v < m->value)
        return -EINVAL;
    m->value = v;
    return 0;
}

static int ma_identity(void *ctx, uint8_t id[VD_ANCHOR_ID_MAX], size_t *len)
{
    manchor *m = ctx;
    memcpy(id, m->id, m->idlen);
    *len = m->idlen;
    return 0;
}

static int ma_authorize(void *ctx, const uint8_t s[VD_ANCHOR_SECRET_BYTES])
{
    manchor *m = ctx;
    (void)s;
    m->authorized++;
    return 0;
}

static void ma_init(manchor *m, uint64_t value, const char *id)
{
    memset(m, 0, sizeof *m);
    m->a = (vd_anchor){.ctx = m, .read = ma_read, .advance = ma_advance,
                       .identity = ma_identity, .authorize = ma_authorize};
    m->value = value;
    m->idlen = id ? strlen(id) : 0;
    if (id)
        memcpy(m->id, id, m->idlen);
}

static vd_host *mem_image(const vd_anchor *a, uint64_t writes)
{
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = NBLK};
    vd_open_opts o = {.anchor = a};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, &o, &img), VD_OK, "create");
    uint8_t b[VD_BLOCK_SIZE];
    for (uint64_t i = 0; i < writes; i++) {
        vt_block_fill(b, i % NBLK, (uint32_t)i);
        VT_EXPECT_ERR(vd_image_write(img, i % NBLK, 1, b), VD_OK, "write");
        VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync");
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    return h;
}

static vd_err try_open(vd_host *h, const vd_anchor *a, int ro, int bind, uint64_t *epoch)
{
    vd_open_opts o = {.read_only = ro, .anchor = a, .anchor_bind = bind};
    vd_image *img = NULL;
    vd_err e = vd_image_open(h, KEY, &o, &img);
    if (e == VD_OK) {
        vd_image_info info;
        assert_int_equal(vd_image_info_get(img, &info), VD_OK);
        if (epoch)
            *epoch = info.epoch;
        VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    }
    return e;
}

static void test_another_images_anchor_is_a_mismatch_never_a_rollback(void **state)
{
    (void)state;
    manchor a, b;
    ma_init(&a, 100, "anchor-A");
    ma_init(&b, 5, "anchor-B");
    vd_host *ha = mem_image(&a.a, 3);  /* A at epoch ~104 */
    vd_host *hb = mem_image(&b.a, 40); /* B at epoch ~46: below A's counter */
    assert_true(a.authorized > 0);
    uint64_t av = a.value, bv = b.value;
    assert_true(av > bv);
    for (int ro = 1; ro >= 0; ro--) {
        VT_EXPECT_ERR(try_open(hb, &a.a, ro, 0, NULL), VD_ERR_ANCHOR_MISMATCH,
                      "B with A's anchor (ahead of B), ro=%d", ro);
        VT_EXPECT_ERR(try_open(ha, &b.a, ro, 0, NULL), VD_ERR_ANCHOR_MISMATCH,
                      "A with B's anchor (behind A), ro=%d", ro);
    }
    assert_int_equal(a.value, av); /* untouched */
    assert_int_equal(b.value, bv);
    VT_EXPECT_ERR(try_open(ha, &a.a, 0, 0, NULL), VD_OK, "A with its own anchor");
    VT_EXPECT_ERR(try_open(hb, &b.a, 0, 0, NULL), VD_OK, "B with its own anchor");

    /* An anchor that cannot name itself is not A's either. */
    manchor anon;
    ma_init(&anon, 0, NULL);
    VT_EXPECT_ERR(try_open(ha, &anon.a, 1, 0, NULL), VD_ERR_ANCHOR_MISMATCH, "no identity");

    /* The tag is inside the superblock MAC: editing it breaks the record. */
    uint64_t size;
    uint8_t *d = vd_host_mem_data(ha, &size);
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, d, size);
    for (unsigned slot = 0; slot < 2; slot++)
        copy[SB_TAG_OFF + slot * 4096u] ^= 1;
    vd_host *hx = vt_host_mem_from(copy, size);
    VT_EXPECT_ERR(try_open(hx, &a.a, 1, 0, NULL), VD_ERR_AUTH, "edited tag");
    /* Nor can the host copy B's tag into A (the MAC is keyed by A's key
     * and the tag by A's key as well). */
    uint8_t *db = vd_host_mem_data(hb, &size);
    memcpy(copy, d, size);
    for (unsigned slot = 0; slot < 2; slot++)
        memcpy(copy + SB_TAG_OFF + slot * 4096u, db + SB_TAG_OFF + slot * 4096u, 8);
    assert_int_equal(vd_host_mem_set(hx, copy, size), VD_OK);
    VT_EXPECT_ERR(try_open(hx, &b.a, 1, 0, NULL), VD_ERR_AUTH, "B's tag pasted into A");
    free(copy);
    vd_host_mem_free(hx);
    vd_host_mem_free(ha);
    vd_host_mem_free(hb);
}

static void test_anchor_bind_rebinds_and_refuses_the_old_anchor(void **state)
{
    (void)state;
    manchor a, n;
    ma_init(&a, 10, "old");
    ma_init(&n, 5000, "new"); /* a counter that counted for others */
    vd_host *h = mem_image(&a.a, 2);
    VT_EXPECT_ERR(try_open(h, &n.a, 0, 0, NULL), VD_ERR_ANCHOR_MISMATCH, "without bind");
    VT_EXPECT_ERR(try_open(h, &n.a, 1, 1, NULL), VD_ERR_ANCHOR_MISMATCH,
                  "bind needs a writable open");
    uint64_t ep = 0;
    VT_EXPECT_ERR(try_open(h, &n.a, 0, 1, &ep), VD_OK, "bind");
    assert_true(ep >= 5000);
    assert_int_equal(n.value, ep);
    VT_EXPECT_ERR(try_open(h, &a.a, 1, 0, NULL), VD_ERR_ANCHOR_MISMATCH, "old anchor");
    VT_EXPECT_ERR(try_open(h, &n.a, 0, 0, NULL), VD_OK, "new anchor");
    /* Binding again to the same anchor is an ordinary open: the rollback
     * check applies. */
    n.value += 10;
    VT_EXPECT_ERR(try_open(h, &n.a, 0, 1, NULL), VD_ERR_ROLLBACK, "same anchor, ahead");
    vd_host_mem_free(h);
}

static void test_anchor_errors_are_their_own_never_rollback(void **state)
{
    (void)state;
    manchor a;
    ma_init(&a, 1, "a");
    vd_host *h = mem_image(&a.a, 1);
    static const struct {
        int err;
        vd_err want;
    } cases[] = {{-EHOSTDOWN, VD_ERR_ANCHOR_UNREACHABLE},
                 {-ECONNREFUSED, VD_ERR_ANCHOR_UNREACHABLE},
                 {-ENOENT, VD_ERR_ANCHOR_MISSING},
                 {-EACCES, VD_ERR_ANCHOR_DENIED},
                 {-EIO, VD_ERR_IO}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        a.fail = cases[i].err;
        VT_EXPECT_ERR(try_open(h, &a.a, 0, 0, NULL), cases[i].want, "errno %d at open",
                      -cases[i].err);
    }
    /* At a sync: not acknowledged, the anchor's error, and the next sync
     * (anchor back) catches up. */
    a.fail = 0;
    vd_open_opts o = {.anchor = &a.a};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "open");
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, 3, 33);
    VT_EXPECT_ERR(vd_image_write(img, 3, 1, b), VD_OK, "write");
    a.fail = -EHOSTDOWN;
    VT_EXPECT_ERR(vd_image_sync(img), VD_ERR_ANCHOR_UNREACHABLE, "sync, TPM gone");
    uint64_t stale = a.value;
    a.fail = 0;
    VT_EXPECT_ERR(vd_image_sync(img), VD_OK, "sync, TPM back");
    assert_true(a.value > stale);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

/* ---- files made before R7 ---------------------------------------------------- */

static void write_v1(const char *path, uint64_t v)
{
    uint8_t b[32] = {0};
    memcpy(b, "VDANCHOR", 8);
    b[8] = 1; /* version 1, little-endian */
    for (int i = 0; i < 8; i++)
        b[16 + i] = (uint8_t)(v >> (8 * i));
    uint64_t x = XXH64(b, 24, 0);
    for (int i = 0; i < 8; i++)
        b[24 + i] = (uint8_t)(x >> (8 * i));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, sizeof b), (ssize_t)sizeof b);
    assert_int_equal(close(fd), 0);
}

static off_t file_size(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    off_t n = ftell(f);
    fclose(f);
    return n;
}

static void test_version1_anchor_file_and_unbound_image_are_upgraded(void **state)
{
    (void)state;
    char dir[] = "/tmp/vd-bind-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p1[64], p2[64];
    snprintf(p1, sizeof p1, "%s/v1.anchor", dir);
    snprintf(p2, sizeof p2, "%s/other.anchor", dir);

    /* An image made before R7: its superblocks carry no tag (an anchor
     * without identity binds nothing). */
    manchor old;
    ma_init(&old, 0, NULL);
    old.a.identity = NULL;
    vd_host *h = mem_image(&old.a, 2);
    write_v1(p1, old.value);

    vd_anchor *f1;
    VT_EXPECT_ERR(vd_anchor_file_open(p1, 0, &f1, NULL), VD_OK, "open v1 file");
    uint64_t ep;
    VT_EXPECT_ERR(try_open(h, f1, 1, 0, &ep), VD_OK, "v1 file, unbound image, ro");
    assert_int_equal(file_size(p1), 32); /* read-only: not rewritten */
    /* Still a freshness anchor: an older copy is refused. */
    uint64_t size;
    const uint8_t *live = vd_host_mem_data(h, &size);
    uint8_t *snap = malloc(size);
    assert_non_null(snap);
    memcpy(snap, live, size);
    vd_open_opts o = {.anchor = f1};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_open(h, KEY, &o, &img), VD_OK, "v1 file, writable");
    uint8_t b[VD_BLOCK_SIZE];
    vt_block_fill(b, 1, 77);
    VT_EXPECT_ERR(vd_image_write(img, 1, 1, b), VD_OK, "write");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close (advance upgrades the file)");
    assert_int_equal(file_size(p1), 48);
    vd_host *old_copy = vt_host_mem_from(snap, size);
    VT_EXPECT_ERR(try_open(old_copy, f1, 1, 0, NULL), VD_ERR_ROLLBACK, "older copy");
    vd_anchor_file_close(f1);

    /* The next writable open binds the image to the (now named) file. */
    VT_EXPECT_ERR(vd_anchor_file_open(p1, 0, &f1, NULL), VD_OK, "reopen v2 file");
    VT_EXPECT_ERR(try_open(h, f1, 0, 0, NULL), VD_OK, "writable open binds");
    vd_anchor *f2;
    VT_EXPECT_ERR(vd_anchor_file_open(p2, 1, &f2, NULL), VD_OK, "another file");
    VT_EXPECT_ERR(try_open(h, f2, 1, 0, NULL), VD_ERR_ANCHOR_MISMATCH, "another file, ro");
    VT_EXPECT_ERR(try_open(h, f2, 0, 0, NULL), VD_ERR_ANCHOR_MISMATCH, "another file, rw");
    VT_EXPECT_ERR(try_open(h, f1, 0, 0, NULL), VD_OK, "its own file");
    /* The older copy (unbound) with the file: still a rollback, not a
     * mismatch and not accepted. */
    VT_EXPECT_ERR(try_open(old_copy, f1, 1, 0, NULL), VD_ERR_ROLLBACK, "older copy again");
    vd_anchor_file_close(f1);
    vd_anchor_file_close(f2);
    free(snap);
    vd_host_mem_free(old_copy);
    vd_host_mem_free(h);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_another_images_anchor_is_a_mismatch_never_a_rollback),
        cmocka_unit_test(test_anchor_bind_rebinds_and_refuses_the_old_anchor),
        cmocka_unit_test(test_anchor_errors_are_their_own_never_rollback),
        cmocka_unit_test(test_version1_anchor_file_and_unbound_image_are_upgraded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
