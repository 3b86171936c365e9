/* Key slots (R6, docs/FORMAT.md §5): every slot type is created, opens
 * with its secret and only with it, survives tampering with other slots,
 * fails cleanly (VD_ERR_WRONG_KEY or VD_ERR_CORRUPT) when its own bytes are
 * changed, can be removed except the last one; sealed slots open with the
 * matching X25519 secret key and nothing else, forged ones never open the
 * image; an interrupted create never leaves an image without its slot; a
 * slot change is one 4 KiB write plus a flush. Argon2id runs with the
 * minimum parameters except in the one test that times an unlock with the
 * interactive defaults (printed, not asserted). Data patterns come from a
 * printed seed (VD_KEYSLOT_SEED to replay). */
#include <errno.h>
#include <fcntl.h>
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

#include "testkit.h"

#include "record.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

#define BS ((size_t)VD_BLOCK_SIZE)
#define SLOT_BLOCK 1u     /* FORMAT.md §2: the key-slot block */
#define SLOT_BYTES 512u   /* FORMAT.md §5 */
#define SB_BLOCK 2u
#define NBLOCKS 64u

static const vd_pwhash_params FAST = {VD_PWHASH_OPSLIMIT_MIN, VD_PWHASH_MEMLIMIT_MIN};
static const uint8_t PASS[] = "correct horse battery staple";
static const uint8_t PASS2[] = "another passphrase";

static uint64_t g_seed;

static void pattern(uint8_t *b, size_t n, uint64_t seed)
{
    uint64_t s = seed ? seed : 1;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)vt_rand(&s);
}

static vd_unlock pass_unlock(const uint8_t *p)
{
    vd_unlock u = {VD_SLOT_PASSPHRASE, p, strlen((const char *)p)};
    return u;
}

static vd_unlock key_unlock(vd_slot_type t, const uint8_t *k)
{
    vd_unlock u = {t, k, 32};
    return u;
}

static const vd_open_opts *small_opts(int ro)
{
    static const vd_open_opts rw = {.cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL};
    static const vd_open_opts rdo = {.read_only = 1, .cache_bytes = 1 << 20,
                                     .aead_impl = VD_AEAD_OPENSSL};
    return ro ? &rdo : &rw;
}

static vd_image *create_unlock(vd_host *h, const vd_unlock *u)
{
    vd_create_opts c = {.nblocks = NBLOCKS};
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_create_unlock(h, u, &FAST, &c, small_opts(0), &img), VD_OK,
               "create with slot type %d", (int)u->type);
    assert_non_null(img);
    return img;
}

/* Open with u and expect want; close a handle that opened. */
static void expect_open(vd_host *h, const vd_unlock *u, vd_err want, const char *what)
{
    vd_image *img = NULL;
    vd_err e = vd_image_open_unlock(h, u, small_opts(1), &img);
    VT_EXPECT_ERR(e, want, "%s", what);
    if (e == VD_OK) {
        assert_non_null(img);
        VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close after %s", what);
    } else {
        assert_null(img);
    }
}

static void write_pattern(vd_image *img, uint64_t lbn, uint64_t seed)
{
    uint8_t b[VD_BLOCK_SIZE];
    pattern(b, sizeof b, seed);
    VT_EXPECT_ERR(vd_image_write(img, lbn, 1, b), VD_OK, "write %" PRIu64, lbn);
}

static void expect_pattern(vd_host *h, const vd_unlock *u, uint64_t lbn, uint64_t seed)
{
    uint8_t b[VD_BLOCK_SIZE], want[VD_BLOCK_SIZE];
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_open_unlock(h, u, small_opts(1), &img), VD_OK, "open to read");
    VT_EXPECT_ERR(vd_image_read(img, lbn, 1, b), VD_OK, "read %" PRIu64, lbn);
    pattern(want, sizeof want, seed);
    assert_memory_equal(b, want, sizeof b);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
}

static uint8_t *slot_bytes(vd_host *h, unsigned slot)
{
    uint64_t size;
    uint8_t *d = vd_host_mem_data(h, &size);
    assert_true(size > (SLOT_BLOCK + 1) * BS);
    return d + SLOT_BLOCK * BS + (size_t)slot * SLOT_BYTES;
}

/* ---- each slot type ---------------------------------------------------------- */

static void test_passphrase_slot_opens_with_its_passphrase_only(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_image *img = create_unlock(h, &u);
    write_pattern(img, 3, g_seed);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");

    expect_pattern(h, &u, 3, g_seed);
    vd_unlock wrong = pass_unlock(PASS2);
    expect_open(h, &wrong, VD_ERR_WRONG_KEY, "wrong passphrase");
    vd_unlock prefix = {VD_SLOT_PASSPHRASE, PASS, u.len - 1};
    expect_open(h, &prefix, VD_ERR_WRONG_KEY, "passphrase minus its last byte");
    vd_unlock asfile = key_unlock(VD_SLOT_KEYFILE, PASS);
    expect_open(h, &asfile, VD_ERR_WRONG_KEY, "its bytes as a key file (no key-file slot)");

    vd_slot_info info[VD_KEYSLOTS];
    VT_EXPECT_ERR(vd_keyslot_list(h, info), VD_OK, "list");
    assert_int_equal(info[0].type, VD_SLOT_PASSPHRASE);
    assert_int_equal(info[0].status, VD_OK);
    assert_int_equal(info[0].opslimit, FAST.opslimit);
    assert_int_equal(info[0].memlimit, FAST.memlimit);
    for (unsigned i = 1; i < VD_KEYSLOTS; i++)
        assert_int_equal(info[i].type, VD_SLOT_EMPTY);
    vd_host_mem_free(h);
}

static void test_keyfile_slot_opens_with_its_file_only(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    uint8_t kf[32], other[32];
    assert_int_equal(vd_key_generate(kf), VD_OK);
    assert_int_equal(vd_key_generate(other), VD_OK);
    vd_unlock u = key_unlock(VD_SLOT_KEYFILE, kf);
    vd_image *img = create_unlock(h, &u);
    write_pattern(img, 0, g_seed + 1);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");

    expect_pattern(h, &u, 0, g_seed + 1);
    vd_unlock wrong = key_unlock(VD_SLOT_KEYFILE, other);
    expect_open(h, &wrong, VD_ERR_WRONG_KEY, "another key file");
    kf[31] ^= 1;
    vd_unlock flipped = key_unlock(VD_SLOT_KEYFILE, kf);
    expect_open(h, &flipped, VD_ERR_WRONG_KEY, "key file with one bit flipped");
    kf[31] ^= 1;
    vd_unlock shortkf = {VD_SLOT_KEYFILE, kf, 31};
    expect_open(h, &shortkf, VD_ERR_INVAL, "31-byte key file");
    /* The raw-key API does not take the key file as the master key. */
    vd_image *raw = NULL;
    VT_EXPECT_ERR(vd_image_open(h, kf, small_opts(1), &raw), VD_ERR_WRONG_KEY,
               "key file as raw master key");
    vd_host_mem_free(h);
}

static void test_sealed_image_opens_with_matching_secret_key_and_nothing_else(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    uint8_t pk[32], pk2[32];
    uint8_t *sk = vd_secret_alloc(32), *sk2 = vd_secret_alloc(32);
    assert_non_null(sk);
    assert_non_null(sk2);
    assert_int_equal(vd_keypair_generate(pk, sk), VD_OK);
    assert_int_equal(vd_keypair_generate(pk2, sk2), VD_OK);

    /* The builder seals the new image to the shield's public key. */
    vd_unlock seal = key_unlock(VD_SLOT_SEALED, pk);
    vd_image *img = create_unlock(h, &seal);
    write_pattern(img, 5, g_seed + 2);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");

    vd_unlock shield = key_unlock(VD_SLOT_SEALED, sk);
    expect_pattern(h, &shield, 5, g_seed + 2);

    vd_unlock other = key_unlock(VD_SLOT_SEALED, sk2);
    expect_open(h, &other, VD_ERR_WRONG_KEY, "another shield's secret key");
    vd_unlock pub = key_unlock(VD_SLOT_SEALED, pk);
    expect_open(h, &pub, VD_ERR_WRONG_KEY, "the public key as a secret key");
    vd_unlock skfile = key_unlock(VD_SLOT_KEYFILE, sk);
    expect_open(h, &skfile, VD_ERR_WRONG_KEY, "the secret key as a key file");
    vd_unlock skpass = {VD_SLOT_PASSPHRASE, sk, 32};
    expect_open(h, &skpass, VD_ERR_WRONG_KEY, "the secret key as a passphrase");
    vd_image *raw = NULL;
    VT_EXPECT_ERR(vd_image_open(h, sk, small_opts(1), &raw), VD_ERR_WRONG_KEY,
               "secret key as raw master key");
    uint8_t zero[32] = {0};
    vd_unlock z = key_unlock(VD_SLOT_SEALED, zero);
    expect_open(h, &z, VD_ERR_WRONG_KEY, "all-zero secret key");

    vd_slot_info info[VD_KEYSLOTS];
    VT_EXPECT_ERR(vd_keyslot_list(h, info), VD_OK, "list");
    assert_int_equal(info[0].type, VD_SLOT_SEALED);
    assert_memory_equal(info[0].recipient, pk, 32);

    /* A sealed slot cannot be made for an unusable public key. */
    vd_host *h2;
    assert_int_equal(vd_host_mem_new(&h2), VD_OK);
    vd_create_opts c = {.nblocks = NBLOCKS};
    vd_unlock badpk = key_unlock(VD_SLOT_SEALED, zero);
    VT_EXPECT_ERR(vd_image_create_unlock(h2, &badpk, NULL, &c, small_opts(0), &img),
               VD_ERR_INVAL, "seal to the all-zero public key");
    uint64_t sz;
    (void)vd_host_mem_data(h2, &sz);
    assert_int_equal(sz, 0); /* nothing was written */
    vd_host_mem_free(h2);

    vd_secret_free(sk);
    vd_secret_free(sk2);
    vd_host_mem_free(h);
}

/* ---- several slots on one image ------------------------------------------------ */

typedef struct three {
    vd_host *h;
    uint8_t kf[32], pk[32];
    uint8_t *sk;
    vd_unlock u[3]; /* passphrase, key file, secret key */
} three;

static void three_make(three *t)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(vd_host_mem_new(&t->h), VD_OK);
    t->sk = vd_secret_alloc(32);
    assert_non_null(t->sk);
    assert_int_equal(vd_key_generate(t->kf), VD_OK);
    assert_int_equal(vd_keypair_generate(t->pk, t->sk), VD_OK);
    t->u[0] = pass_unlock(PASS);
    t->u[1] = key_unlock(VD_SLOT_KEYFILE, t->kf);
    t->u[2] = key_unlock(VD_SLOT_SEALED, t->sk);
    vd_image *img = create_unlock(t->h, &t->u[0]);
    int idx = -1;
    vd_unlock add = key_unlock(VD_SLOT_KEYFILE, t->kf);
    VT_EXPECT_ERR(vd_keyslot_add(img, &add, NULL, &idx), VD_OK, "add key file");
    assert_int_equal(idx, 1);
    add = key_unlock(VD_SLOT_SEALED, t->pk);
    VT_EXPECT_ERR(vd_keyslot_add(img, &add, NULL, &idx), VD_OK, "add sealed");
    assert_int_equal(idx, 2);
    write_pattern(img, 7, g_seed + 3);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
}

static void three_free(three *t)
{
    vd_secret_free(t->sk);
    vd_host_mem_free(t->h);
}

static void test_every_slot_opens_the_same_image(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    for (unsigned k = 0; k < 3; k++)
        expect_pattern(t.h, &t.u[k], 7, g_seed + 3);
    /* A writable open through one slot, a write, then read through another. */
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_open_unlock(t.h, &t.u[2], small_opts(0), &img), VD_OK, "rw open");
    write_pattern(img, 8, g_seed + 4);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    expect_pattern(t.h, &t.u[1], 8, g_seed + 4);
    three_free(&t);
}

/* Flip every byte of each slot with several masks: that slot's secret
 * fails with WRONG_KEY or CORRUPT (never opens, never another error), and
 * the other two secrets still open the image. */
static void test_tampering_any_byte_of_a_slot_fails_that_slot_only(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    static const uint8_t masks[] = {0x01, 0x80, 0xFF};
    unsigned wrong = 0, corrupt = 0;
    for (unsigned s = 0; s < 3; s++) {
        uint8_t *p = slot_bytes(t.h, s);
        for (unsigned off = 0; off < SLOT_BYTES; off++)
            for (unsigned m = 0; m < sizeof masks; m++) {
                p[off] ^= masks[m];
                vd_image *img = NULL;
                vd_err e = vd_image_open_unlock(t.h, &t.u[s], small_opts(1), &img);
                if (e != VD_ERR_WRONG_KEY && e != VD_ERR_CORRUPT) {
                    print_error("slot %u byte %u ^ 0x%02x: own secret gave %d (%s)\n",
                                s, off, masks[m], (int)e, vd_strerror(e));
                    if (img)
                        (void)vd_image_close(img);
                    fail();
                }
                wrong += e == VD_ERR_WRONG_KEY;
                corrupt += e == VD_ERR_CORRUPT;
                for (unsigned o = 0; o < 3; o++) {
                    if (o == s)
                        continue;
                    e = vd_image_open_unlock(t.h, &t.u[o], small_opts(1), &img);
                    if (e != VD_OK) {
                        print_error("slot %u byte %u ^ 0x%02x: slot %u's secret "
                                    "gave %d (%s)\n",
                                    s, off, masks[m], o, (int)e, vd_strerror(e));
                        fail();
                    }
                    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
                }
                p[off] ^= masks[m];
            }
    }
    printf("  tampered slot bytes: %u -> VD_ERR_WRONG_KEY, %u -> VD_ERR_CORRUPT\n",
           wrong, corrupt);
    assert_true(wrong > 0 && corrupt > 0);
    /* Restored: everything opens again. */
    for (unsigned k = 0; k < 3; k++)
        expect_pattern(t.h, &t.u[k], 7, g_seed + 3);
    three_free(&t);
}

static void test_slot_moved_or_taken_from_another_image_does_not_unlock(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    uint8_t saved[SLOT_BYTES];
    /* Move the passphrase slot (0) to slot 5: the index is in its AD. */
    memcpy(saved, slot_bytes(t.h, 0), SLOT_BYTES);
    memcpy(slot_bytes(t.h, 5), saved, SLOT_BYTES);
    memset(slot_bytes(t.h, 0), 0, SLOT_BYTES);
    expect_open(t.h, &t.u[0], VD_ERR_WRONG_KEY, "passphrase slot moved to index 5");
    memcpy(slot_bytes(t.h, 0), saved, SLOT_BYTES);
    memset(slot_bytes(t.h, 5), 0, SLOT_BYTES);
    expect_open(t.h, &t.u[0], VD_OK, "moved back");

    /* Same passphrase on another image: its slot 0 transplanted here. */
    vd_host *h2;
    assert_int_equal(vd_host_mem_new(&h2), VD_OK);
    vd_image *img = create_unlock(h2, &t.u[0]);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    memcpy(slot_bytes(t.h, 0), slot_bytes(h2, 0), SLOT_BYTES);
    expect_open(t.h, &t.u[0], VD_ERR_WRONG_KEY, "slot from another image");
    /* ... and the whole slot block of the other image. */
    uint8_t block[VD_BLOCK_SIZE];
    memcpy(block, slot_bytes(t.h, 0), BS);
    memcpy(slot_bytes(t.h, 0), slot_bytes(h2, 0), BS);
    expect_open(t.h, &t.u[0], VD_ERR_WRONG_KEY, "slot block from another image");
    memcpy(slot_bytes(t.h, 0), block, BS);
    memcpy(slot_bytes(t.h, 0), saved, SLOT_BYTES);
    expect_open(t.h, &t.u[0], VD_OK, "restored");
    vd_host_mem_free(h2);
    three_free(&t);
}

/* Anyone with the shield's public key can make a sealed box. A box of some
 * other key put in a slot must never open the image. */
static void test_forged_sealed_slot_never_opens_the_image(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    /* A forged slot: a genuine-looking sealed slot of another image sealed
     * to the same public key (so it unwraps fine, to the wrong key). */
    vd_host *h2;
    assert_int_equal(vd_host_mem_new(&h2), VD_OK);
    vd_unlock seal = key_unlock(VD_SLOT_SEALED, t.pk);
    vd_image *img = create_unlock(h2, &seal);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    uint8_t genuine[SLOT_BYTES];
    memcpy(genuine, slot_bytes(t.h, 2), SLOT_BYTES);

    memcpy(slot_bytes(t.h, 2), slot_bytes(h2, 0), SLOT_BYTES);
    expect_open(t.h, &t.u[2], VD_ERR_WRONG_KEY, "only a forged sealed slot");
    /* Forged first, genuine later: opens through the genuine one. */
    memcpy(slot_bytes(t.h, 6), genuine, SLOT_BYTES);
    expect_pattern(t.h, &t.u[2], 7, g_seed + 3);
    /* Forged everywhere else: still WRONG_KEY, never a wrong open. */
    memset(slot_bytes(t.h, 6), 0, SLOT_BYTES);
    for (unsigned i = 3; i < VD_KEYSLOTS; i++)
        memcpy(slot_bytes(t.h, i), slot_bytes(h2, 0), SLOT_BYTES);
    expect_open(t.h, &t.u[2], VD_ERR_WRONG_KEY, "six forged sealed slots");
    vd_host_mem_free(h2);
    three_free(&t);
}

/* ---- add, remove, list ------------------------------------------------------------ */

static void test_removed_slot_no_longer_opens_and_last_slot_is_kept(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_open_unlock(t.h, &t.u[1], small_opts(0), &img), VD_OK, "open");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 0), VD_OK, "remove passphrase slot");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 0), VD_ERR_INVAL, "remove it again (empty)");
    VT_EXPECT_ERR(vd_keyslot_remove(img, -1), VD_ERR_INVAL, "slot -1");
    VT_EXPECT_ERR(vd_keyslot_remove(img, VD_KEYSLOTS), VD_ERR_INVAL, "slot 8");
    expect_open(t.h, &t.u[0], VD_ERR_WRONG_KEY, "removed passphrase");
    uint8_t zero[SLOT_BYTES] = {0};
    assert_memory_equal(slot_bytes(t.h, 0), zero, SLOT_BYTES);
    VT_EXPECT_ERR(vd_keyslot_remove(img, 2), VD_OK, "remove sealed slot");
    expect_open(t.h, &t.u[2], VD_ERR_WRONG_KEY, "removed sealed");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 1), VD_ERR_BUSY, "remove the last slot");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    expect_pattern(t.h, &t.u[1], 7, g_seed + 3);

    /* A malformed slot may always be removed; it never counts as a way in. */
    slot_bytes(t.h, 4)[0] = 0x77;
    VT_EXPECT_ERR(vd_image_open_unlock(t.h, &t.u[1], small_opts(0), &img), VD_OK, "open");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 1), VD_ERR_BUSY, "last well-formed slot");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 4), VD_OK, "remove the malformed slot");
    /* The freed slots are reused, lowest first. */
    int idx = -1;
    vd_unlock p2 = pass_unlock(PASS2);
    VT_EXPECT_ERR(vd_keyslot_add(img, &p2, &FAST, &idx), VD_OK, "add");
    assert_int_equal(idx, 0);
    VT_EXPECT_ERR(vd_keyslot_remove(img, 1), VD_OK, "now the key-file slot can go");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 0), VD_ERR_BUSY, "but not the new last one");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    expect_open(t.h, &t.u[1], VD_ERR_WRONG_KEY, "removed key file");
    expect_pattern(t.h, &p2, 7, g_seed + 3);
    three_free(&t);
}

static void test_list_reports_types_parameters_recipient_and_damage(void **state)
{
    (void)state;
    three t;
    three_make(&t);
    slot_bytes(t.h, 7)[300] = 1; /* an EMPTY slot that is not all zero */
    vd_slot_info info[VD_KEYSLOTS];
    VT_EXPECT_ERR(vd_keyslot_list(t.h, info), VD_OK, "list");
    assert_int_equal(info[0].type, VD_SLOT_PASSPHRASE);
    assert_int_equal(info[0].opslimit, FAST.opslimit);
    assert_int_equal(info[0].memlimit, FAST.memlimit);
    assert_int_equal(info[1].type, VD_SLOT_KEYFILE);
    assert_int_equal(info[1].opslimit, 0);
    assert_int_equal(info[2].type, VD_SLOT_SEALED);
    assert_memory_equal(info[2].recipient, t.pk, 32);
    for (unsigned i = 0; i < 7; i++)
        assert_int_equal(info[i].status, VD_OK);
    for (unsigned i = 3; i < 7; i++)
        assert_int_equal(info[i].type, VD_SLOT_EMPTY);
    assert_int_equal(info[7].status, VD_ERR_CORRUPT);
    /* A malformed slot makes a failed unlock say CORRUPT, not WRONG_KEY:
     * the secret may have belonged to it. A good slot still opens. */
    vd_unlock wrong = pass_unlock(PASS2);
    expect_open(t.h, &wrong, VD_ERR_CORRUPT, "wrong passphrase, damaged slot 7");
    expect_open(t.h, &t.u[0], VD_OK, "right passphrase, damaged slot 7");
    /* Parameters beyond the cost bound are malformed: refused before any
     * Argon2id run (which would take about a minute at 32 x 1 GiB). */
    uint8_t *p0 = slot_bytes(t.h, 0), saved[SLOT_BYTES];
    memcpy(saved, p0, SLOT_BYTES);
    uint64_t ops = VD_PWHASH_OPSLIMIT_MAX, mem = VD_PWHASH_MEMLIMIT_MAX;
    for (unsigned i = 0; i < 8; i++) {
        p0[16 + i] = (uint8_t)(ops >> (8 * i)); /* FORMAT.md §5: opslimit */
        p0[24 + i] = (uint8_t)(mem >> (8 * i)); /* memlimit */
    }
    VT_EXPECT_ERR(vd_keyslot_list(t.h, info), VD_OK, "list");
    assert_int_equal(info[0].status, VD_ERR_CORRUPT);
    expect_open(t.h, &t.u[0], VD_ERR_CORRUPT, "passphrase slot with 32 x 1 GiB");
    memcpy(p0, saved, SLOT_BYTES);
    VT_EXPECT_ERR(vd_keyslot_list(NULL, info), VD_ERR_INVAL, "NULL host");
    VT_EXPECT_ERR(vd_keyslot_list(t.h, NULL), VD_ERR_INVAL, "NULL out");
    three_free(&t);
}

static void test_add_refuses_read_only_full_and_bad_input(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_image *img = create_unlock(h, &u);
    uint8_t kf[32], zero[32] = {0};
    assert_int_equal(vd_key_generate(kf), VD_OK);
    int idx = 99;
    vd_unlock k = key_unlock(VD_SLOT_KEYFILE, kf);
    vd_pwhash_params big = {VD_PWHASH_OPSLIMIT_MAX + 1, 0};
    vd_pwhash_params huge = {0, VD_PWHASH_MEMLIMIT_MAX + 1};
    vd_pwhash_params tiny = {0, VD_PWHASH_MEMLIMIT_MIN - 1};
    vd_pwhash_params costly = {VD_PWHASH_OPSLIMIT_MAX, VD_PWHASH_MEMLIMIT_MAX};
    VT_EXPECT_ERR(vd_keyslot_add(img, &u, &big, &idx), VD_ERR_INVAL, "opslimit > max");
    assert_int_equal(idx, -1);
    VT_EXPECT_ERR(vd_keyslot_add(img, &u, &huge, NULL), VD_ERR_INVAL, "memlimit > max");
    VT_EXPECT_ERR(vd_keyslot_add(img, &u, &tiny, NULL), VD_ERR_INVAL, "memlimit < min");
    VT_EXPECT_ERR(vd_keyslot_add(img, &u, &costly, NULL), VD_ERR_INVAL,
               "opslimit * memlimit > VD_PWHASH_COST_MAX");
    vd_unlock empty = {VD_SLOT_PASSPHRASE, PASS, 0};
    VT_EXPECT_ERR(vd_keyslot_add(img, &empty, &FAST, NULL), VD_ERR_INVAL, "empty passphrase");
    vd_unlock none = {VD_SLOT_EMPTY, kf, 32};
    VT_EXPECT_ERR(vd_keyslot_add(img, &none, NULL, NULL), VD_ERR_INVAL, "EMPTY type");
    vd_unlock bogus = {(vd_slot_type)9, kf, 32};
    VT_EXPECT_ERR(vd_keyslot_add(img, &bogus, NULL, NULL), VD_ERR_INVAL, "type 9");
    vd_unlock nul = {VD_SLOT_KEYFILE, NULL, 32};
    VT_EXPECT_ERR(vd_keyslot_add(img, &nul, NULL, NULL), VD_ERR_INVAL, "NULL secret");
    vd_unlock badpk = key_unlock(VD_SLOT_SEALED, zero);
    VT_EXPECT_ERR(vd_keyslot_add(img, &badpk, NULL, NULL), VD_ERR_INVAL, "zero public key");
    VT_EXPECT_ERR(vd_keyslot_add(NULL, &k, NULL, NULL), VD_ERR_INVAL, "NULL image");
    /* Fill slots 1..7, then no room. */
    for (int i = 1; i < VD_KEYSLOTS; i++) {
        VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, &idx), VD_OK, "add %d", i);
        assert_int_equal(idx, i);
    }
    VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, &idx), VD_ERR_NOSPC, "ninth slot");
    assert_int_equal(idx, -1);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    /* Any of the seven identical key-file slots opens it. */
    for (unsigned i = 1; i < 7; i++)
        memset(slot_bytes(h, i), 0, SLOT_BYTES);
    expect_open(h, &k, VD_OK, "key file through slot 7");

    VT_EXPECT_ERR(vd_image_open_unlock(h, &u, small_opts(1), &img), VD_OK, "ro open");
    VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, NULL), VD_ERR_READONLY, "add on read-only");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 7), VD_ERR_READONLY, "remove on read-only");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

static void test_unlock_api_rejects_bad_arguments_and_keyless_images(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_image *img = (vd_image *)1;
    vd_unlock u = pass_unlock(PASS);
    vd_create_opts c = {.nblocks = NBLOCKS};
    VT_EXPECT_ERR(vd_image_create_unlock(h, NULL, NULL, &c, NULL, &img), VD_ERR_INVAL,
               "NULL unlock");
    assert_null(img);
    VT_EXPECT_ERR(vd_image_create_unlock(h, &u, &FAST, &c, NULL, NULL), VD_ERR_INVAL,
               "NULL out");
    VT_EXPECT_ERR(vd_image_open_unlock(h, &u, NULL, NULL), VD_ERR_INVAL, "NULL out");
    VT_EXPECT_ERR(vd_image_open_unlock(h, NULL, NULL, &img), VD_ERR_INVAL, "NULL unlock");
    VT_EXPECT_ERR(vd_image_open_unlock(NULL, &u, NULL, &img), VD_ERR_INVAL, "NULL host");
    VT_EXPECT_ERR(vd_image_open_unlock(h, &u, NULL, &img), VD_ERR_CORRUPT, "empty host");
    uint64_t sz;
    (void)vd_host_mem_data(h, &sz);
    assert_int_equal(sz, 0);

    /* An image made with the raw-key API has no slots: nothing unlocks. */
    uint8_t key[32];
    assert_int_equal(vd_key_generate(key), VD_OK);
    VT_EXPECT_ERR(vd_image_create(h, key, &c, small_opts(0), &img), VD_OK, "raw create");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    expect_open(h, &u, VD_ERR_WRONG_KEY, "no passphrase slot");
    vd_unlock k = key_unlock(VD_SLOT_KEYFILE, key);
    expect_open(h, &k, VD_ERR_WRONG_KEY, "raw key as key file");
    vd_host_mem_free(h);
}

/* WRONG_KEY stays distinct from a damaged image. */
static void test_damaged_image_is_not_reported_as_wrong_key(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_image *img = create_unlock(h, &u);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    uint64_t size;
    uint8_t *d = vd_host_mem_data(h, &size);
    d[0] ^= 1; /* header magic */
    expect_open(h, &u, VD_ERR_CORRUPT, "header magic");
    d[0] ^= 1;
    d[SB_BLOCK * BS + 100] ^= 1; /* superblock A, under its MAC */
    expect_open(h, &u, VD_ERR_AUTH, "superblock A");
    d[SB_BLOCK * BS + 100] ^= 1;
    expect_open(h, &u, VD_OK, "restored");
    vd_host_mem_free(h);
}

/* ---- crash and I/O behaviour ----------------------------------------------------- */

/* Every prefix of create's writes: the image either is not an image yet
 * (CORRUPT: no header) or opens with its passphrase; never WRONG_KEY. */
static void test_interrupted_create_never_leaves_an_image_without_its_slot(void **state)
{
    (void)state;
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_unlock u = pass_unlock(PASS);
    vd_create_opts c = {.nblocks = NBLOCKS};
    vd_image *img = NULL;
    VT_EXPECT_ERR(vd_image_create_unlock(vd_rec_host(rec), &u, &FAST, &c, small_opts(0), &img),
               VD_OK, "create");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    size_t nops = vd_rec_op_count(rec);
    unsigned opened = 0;
    for (size_t p = 0; p <= nops; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_host(rec, p, NULL, 0, 0, &h), VD_OK);
        vd_err e = vd_image_open_unlock(h, &u, small_opts(1), &img);
        if (e != VD_OK && e != VD_ERR_CORRUPT) {
            print_error("create crashed after %zu of %zu ops: %d (%s)\n", p, nops,
                        (int)e, vd_strerror(e));
            fail();
        }
        if (e == VD_OK) {
            opened++;
            VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
        }
        vd_host_mem_free(h);
    }
    printf("  create: %zu ops; %u crash prefixes open, the others are not an image yet\n",
           nops, opened);
    assert_true(opened >= 1);
    vd_rec_free(rec);
}

static void test_slot_change_is_one_block_write_and_a_flush(void **state)
{
    (void)state;
    vd_host *mh;
    assert_int_equal(vd_host_mem_new(&mh), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_image *img = create_unlock(mh, &u);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    uint64_t size;
    const uint8_t *d = vd_host_mem_data(mh, &size);
    vd_rec *rec = vd_rec_new(d, size);
    assert_non_null(rec);
    VT_EXPECT_ERR(vd_image_open_unlock(vd_rec_host(rec), &u, small_opts(0), &img), VD_OK,
               "open");
    assert_int_equal(vd_rec_op_count(rec), 0);
    uint8_t kf[32];
    assert_int_equal(vd_key_generate(kf), VD_OK);
    vd_unlock k = key_unlock(VD_SLOT_KEYFILE, kf);
    VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, NULL), VD_OK, "add");
    VT_EXPECT_ERR(vd_keyslot_remove(img, 0), VD_OK, "remove");
    assert_int_equal(vd_rec_op_count(rec), 4);
    for (size_t i = 0; i < 4; i++) {
        vd_rec_op_info op;
        assert_int_equal(vd_rec_op_get(rec, i, &op), VD_OK);
        if (i % 2 == 0) {
            assert_int_equal(op.kind, VD_REC_WRITE);
            assert_int_equal(op.offset, SLOT_BLOCK * BS);
            assert_int_equal(op.length, BS);
        } else {
            assert_int_equal(op.kind, VD_REC_FLUSH);
        }
    }
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    /* Crash anywhere: the slot block is the old or the new one, whole. */
    for (size_t p = 0; p <= 4; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_host(rec, p, NULL, 0, 0, &h), VD_OK);
        expect_open(h, &k, p >= 1 ? VD_OK : VD_ERR_WRONG_KEY, "key file, crash prefix");
        expect_open(h, &u, p <= 2 ? VD_OK : VD_ERR_WRONG_KEY, "passphrase, crash prefix");
        vd_host_mem_free(h);
    }
    vd_rec_free(rec);
    vd_host_mem_free(mh);
}

/* Slot changes and block I/O from two threads on one handle. */
typedef struct writer_arg {
    vd_image *img;
    uint64_t seed;
    vd_err err;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    uint8_t b[VD_BLOCK_SIZE];
    a->err = VD_OK;
    for (unsigned i = 0; i < 400 && a->err == VD_OK; i++) {
        uint64_t lbn = i % NBLOCKS;
        pattern(b, sizeof b, a->seed + i);
        a->err = vd_image_write(a->img, lbn, 1, b);
        if (a->err == VD_OK && i % 50 == 49)
            a->err = vd_image_sync(a->img);
    }
    return NULL;
}

static void test_slot_changes_and_writes_from_two_threads(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_image *img = create_unlock(h, &u);
    writer_arg wa = {img, g_seed + 9, VD_OK};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer, &wa), 0);
    uint8_t kf[32];
    assert_int_equal(vd_key_generate(kf), VD_OK);
    vd_unlock k = key_unlock(VD_SLOT_KEYFILE, kf);
    for (unsigned i = 0; i < 100; i++) {
        int idx = -1;
        VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, &idx), VD_OK, "add %u", i);
        assert_int_equal(idx, 1);
        VT_EXPECT_ERR(vd_keyslot_remove(img, idx), VD_OK, "remove %u", i);
    }
    VT_EXPECT_ERR(vd_keyslot_add(img, &k, NULL, NULL), VD_OK, "final add");
    assert_int_equal(pthread_join(th, NULL), 0);
    VT_EXPECT_ERR(wa.err, VD_OK, "writer thread");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    for (unsigned i = 400 - NBLOCKS; i < 400; i++)
        expect_pattern(h, i % 2 ? &u : &k, i % NBLOCKS, g_seed + 9 + i);
    vd_host_mem_free(h);
}

/* ---- key files ------------------------------------------------------------------- */

static void test_keyfile_helper_creates_a_new_0600_file_and_never_overwrites(void **state)
{
    (void)state;
    char dir[] = "/tmp/vd-keyslot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[sizeof dir + 16];
    snprintf(path, sizeof path, "%s/disk.key", dir);
    uint8_t *k1 = vd_secret_alloc(32), *k2 = vd_secret_alloc(32);
    assert_non_null(k1);
    assert_non_null(k2);
    int err = -1;
    VT_EXPECT_ERR(vd_keyfile_create(path, k1, &err), VD_OK, "create key file");
    assert_int_equal(err, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(st.st_size, 32);
    VT_EXPECT_ERR(vd_keyfile_read(path, k2, &err), VD_OK, "read it");
    assert_memory_equal(k1, k2, 32);
    VT_EXPECT_ERR(vd_keyfile_create(path, k2, &err), VD_ERR_INVAL, "create again");
    assert_int_equal(err, EEXIST);
    VT_EXPECT_ERR(vd_keyfile_read(path, k2, &err), VD_OK, "read again");
    assert_memory_equal(k1, k2, 32); /* not overwritten */

    /* It opens an image through a KEYFILE slot. */
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = key_unlock(VD_SLOT_KEYFILE, k2);
    vd_image *img = create_unlock(h, &u);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    expect_open(h, &u, VD_OK, "key file from disk");
    vd_host_mem_free(h);

    char bad[sizeof dir + 16];
    snprintf(bad, sizeof bad, "%s/short.key", dir);
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(k1, 1, 31, f), 31);
    assert_int_equal(fclose(f), 0);
    VT_EXPECT_ERR(vd_keyfile_read(bad, k2, &err), VD_ERR_INVAL, "31-byte file");
    char missing[sizeof dir + 16];
    snprintf(missing, sizeof missing, "%s/none.key", dir);
    VT_EXPECT_ERR(vd_keyfile_read(missing, k2, &err), VD_ERR_IO, "missing file");
    assert_int_equal(err, ENOENT);
    assert_int_equal(unlink(bad), 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    vd_secret_free(k1);
    vd_secret_free(k2);
}

/* ---- the cost of a passphrase ------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_interactive_argon2id_unlock_time_is_reported(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_unlock u = pass_unlock(PASS);
    vd_create_opts c = {.nblocks = NBLOCKS};
    vd_image *img = NULL;
    double t0 = now_s();
    VT_EXPECT_ERR(vd_image_create_unlock(h, &u, NULL, &c, small_opts(0), &img), VD_OK,
               "create with default parameters");
    double t1 = now_s();
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_slot_info info[VD_KEYSLOTS];
    VT_EXPECT_ERR(vd_keyslot_list(h, info), VD_OK, "list");
    assert_int_equal(info[0].opslimit, VD_PWHASH_OPSLIMIT_INTERACTIVE);
    assert_int_equal(info[0].memlimit, VD_PWHASH_MEMLIMIT_INTERACTIVE);
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        double a = now_s();
        VT_EXPECT_ERR(vd_image_open_unlock(h, &u, small_opts(1), &img), VD_OK, "open");
        double b = now_s();
        VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
        best = b - a < best ? b - a : best;
    }
    vd_unlock wrong = pass_unlock(PASS2);
    double a = now_s();
    expect_open(h, &wrong, VD_ERR_WRONG_KEY, "wrong passphrase");
    double b = now_s();
    printf("  Argon2id interactive (opslimit %llu, memlimit %llu MiB): create %.0f ms, "
           "unlock %.0f ms (best of 3), wrong passphrase %.0f ms\n",
           (unsigned long long)VD_PWHASH_OPSLIMIT_INTERACTIVE,
           (unsigned long long)(VD_PWHASH_MEMLIMIT_INTERACTIVE >> 20), (t1 - t0) * 1e3,
           best * 1e3, (b - a) * 1e3);
    vd_host_mem_free(h);
}

int main(void)
{
    const char *s = getenv("VD_KEYSLOT_SEED");
    g_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL);
    printf("test_keyslot: seed %llu (VD_KEYSLOT_SEED to replay)\n",
           (unsigned long long)g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passphrase_slot_opens_with_its_passphrase_only),
        cmocka_unit_test(test_keyfile_slot_opens_with_its_file_only),
        cmocka_unit_test(test_sealed_image_opens_with_matching_secret_key_and_nothing_else),
        cmocka_unit_test(test_every_slot_opens_the_same_image),
        cmocka_unit_test(test_tampering_any_byte_of_a_slot_fails_that_slot_only),
        cmocka_unit_test(test_slot_moved_or_taken_from_another_image_does_not_unlock),
        cmocka_unit_test(test_forged_sealed_slot_never_opens_the_image),
        cmocka_unit_test(test_removed_slot_no_longer_opens_and_last_slot_is_kept),
        cmocka_unit_test(test_list_reports_types_parameters_recipient_and_damage),
        cmocka_unit_test(test_add_refuses_read_only_full_and_bad_input),
        cmocka_unit_test(test_unlock_api_rejects_bad_arguments_and_keyless_images),
        cmocka_unit_test(test_damaged_image_is_not_reported_as_wrong_key),
        cmocka_unit_test(test_interrupted_create_never_leaves_an_image_without_its_slot),
        cmocka_unit_test(test_slot_change_is_one_block_write_and_a_flush),
        cmocka_unit_test(test_slot_changes_and_writes_from_two_threads),
        cmocka_unit_test(test_keyfile_helper_creates_a_new_0600_file_and_never_overwrites),
        cmocka_unit_test(test_interactive_argon2id_unlock_time_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
