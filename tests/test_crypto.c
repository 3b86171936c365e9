/* tests/test_crypto.c — the crypto layer (libvdisk/crypto/).
 *
 * Known answers come from published or independently computed values typed
 * in as hex: AES-256-GCM from McGrew & Viega, "The Galois/Counter Mode of
 * Operation (GCM)", test cases 13-16; BLAKE2b values from Python's hashlib
 * (the BLAKE2 reference implementation, not libsodium). libsodium is called
 * directly here only to build references for properties (one-shot keyed
 * BLAKE2b over a concatenation; the XChaCha nonce convention). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "crypto/crypto.h"

/* ---- helpers ------------------------------------------------------------ */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex (spaces ignored) into out; returns the byte count. */
static size_t unhex(uint8_t *out, size_t cap, const char *hex)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p != '\0'; p++) {
        if (*p == ' ')
            continue;
        int v = hexval(*p);
        assert_true(v >= 0);
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    assert_true(hi < 0); /* even number of digits */
    return n;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void skip_unless_available(vdc_aead_alg alg)
{
    if (!vdc_aead_available(alg)) {
        printf("[  SKIPPED ] %s not available on this CPU/build "
               "(libsodium AES-256-GCM needs AES-NI + PCLMUL)\n",
               vdc_aead_name(alg));
        skip();
    }
}

static int group_setup(void **state)
{
    (void)state;
    return vdc_init() == 0 ? 0 : -1;
}

/* ---- AES-256-GCM known answers ------------------------------------------ */

typedef struct gcm_kat {
    const char *name, *key, *iv, *pt, *aad, *ct, *tag;
} gcm_kat;

/* McGrew & Viega, GCM spec, Appendix B, 256-bit key, 96-bit IV. */
static const gcm_kat GCM_KATS[] = {
    {"Test Case 13",
     "00000000000000000000000000000000 00000000000000000000000000000000",
     "000000000000000000000000", "", "", "",
     "530f8afbc74536b9a963b4f1c4cb738b"},
    {"Test Case 14",
     "00000000000000000000000000000000 00000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    {"Test Case 15",
     "feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"Test Case 16",
     "feffe9928665731c6d6a8f9467308308 feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a 86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525 b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeef abaddad2",
     "522dc1f099567d07f47f37a32a84427d 643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838 c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void check_gcm_kats(vdc_aead_alg alg)
{
    for (size_t v = 0; v < sizeof GCM_KATS / sizeof GCM_KATS[0]; v++) {
        const gcm_kat *k = &GCM_KATS[v];
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16];
        uint8_t out[64], outtag[16], buf[64];
        assert_int_equal(unhex(key, sizeof key, k->key), 32);
        assert_int_equal(unhex(iv, sizeof iv, k->iv), 12);
        size_t ptlen = unhex(pt, sizeof pt, k->pt);
        size_t adlen = unhex(aad, sizeof aad, k->aad);
        assert_int_equal(unhex(ct, sizeof ct, k->ct), ptlen);
        assert_int_equal(unhex(tag, sizeof tag, k->tag), 16);
        const uint8_t *adp = adlen > 0 ? aad : NULL;

        vdc_aead *a = vdc_aead_new(alg, key);
        assert_non_null(a);

        /* Seal into a separate buffer. */
        memset(out, 0xEE, sizeof out);
        assert_int_equal(vdc_aead_seal(a, iv, adp, adlen, pt, ptlen, out,
                                       outtag),
                         0);
        if (memcmp(out, ct, ptlen) != 0 || memcmp(outtag, tag, 16) != 0)
            fail_msg("%s: %s ciphertext/tag mismatch", vdc_aead_name(alg),
                     k->name);

        /* Open into a separate buffer. */
        memset(out, 0xEE, sizeof out);
        assert_int_equal(vdc_aead_open(a, iv, adp, adlen, ct, ptlen, tag, out),
                         0);
        assert_memory_equal(out, pt, ptlen);

        /* In place, both directions, on the same context. */
        memcpy(buf, pt, ptlen);
        assert_int_equal(vdc_aead_seal(a, iv, adp, adlen, buf, ptlen, buf,
                                       outtag),
                         0);
        assert_memory_equal(buf, ct, ptlen);
        assert_memory_equal(outtag, tag, 16);
        assert_int_equal(vdc_aead_open(a, iv, adp, adlen, buf, ptlen, tag, buf),
                         0);
        assert_memory_equal(buf, pt, ptlen);

        /* The published tag with its last bit flipped is rejected. */
        tag[15] ^= 1;
        assert_int_equal(vdc_aead_open(a, iv, adp, adlen, ct, ptlen, tag, out),
                         -1);
        vdc_aead_free(a);
    }
}

static void test_aes256gcm_openssl_matches_gcm_spec_vectors_13_to_16(void **state)
{
    (void)state;
    check_gcm_kats(VDC_AES256GCM_OPENSSL);
}

static void test_aes256gcm_sodium_matches_gcm_spec_vectors_13_to_16(void **state)
{
    (void)state;
    skip_unless_available(VDC_AES256GCM_SODIUM);
    check_gcm_kats(VDC_AES256GCM_SODIUM);
}

/* ---- cross-implementation ----------------------------------------------- */

static void test_aes256gcm_openssl_and_sodium_interoperate_on_4k_block(void **state)
{
    (void)state;
    skip_unless_available(VDC_AES256GCM_SODIUM);
    enum { N = 4096, ADN = 24 };
    uint8_t key[32], nonce[12], ad[ADN];
    uint8_t *pt = malloc(N), *ct1 = malloc(N), *ct2 = malloc(N),
            *out = malloc(N);
    uint8_t tag1[16], tag2[16];
    assert_non_null(pt);
    assert_non_null(ct1);
    assert_non_null(ct2);
    assert_non_null(out);
    vdc_random(key, sizeof key);
    vdc_random(nonce, sizeof nonce);
    vdc_random(ad, sizeof ad);
    vdc_random(pt, N);

    vdc_aead *o = vdc_aead_new(VDC_AES256GCM_OPENSSL, key);
    vdc_aead *s = vdc_aead_new(VDC_AES256GCM_SODIUM, key);
    assert_non_null(o);
    assert_non_null(s);

    /* OpenSSL seals, libsodium opens. */
    assert_int_equal(vdc_aead_seal(o, nonce, ad, ADN, pt, N, ct1, tag1), 0);
    assert_memory_not_equal(ct1, pt, N);
    memset(out, 0x5A, N);
    assert_int_equal(vdc_aead_open(s, nonce, ad, ADN, ct1, N, tag1, out), 0);
    assert_memory_equal(out, pt, N);

    /* libsodium seals, OpenSSL opens. */
    assert_int_equal(vdc_aead_seal(s, nonce, ad, ADN, pt, N, ct2, tag2), 0);
    memset(out, 0x5A, N);
    assert_int_equal(vdc_aead_open(o, nonce, ad, ADN, ct2, N, tag2, out), 0);
    assert_memory_equal(out, pt, N);

    /* Same algorithm, same inputs: byte-identical output. */
    assert_memory_equal(ct1, ct2, N);
    assert_memory_equal(tag1, tag2, 16);

    vdc_aead_free(o);
    vdc_aead_free(s);
    free(pt);
    free(ct1);
    free(ct2);
    free(out);
}

/* ---- tamper rejection --------------------------------------------------- */

enum { TN = 4096, TAD = 24 };

typedef struct sealed {
    uint8_t key[32], nonce[12], ad[TAD], tag[16];
    uint8_t pt[TN], ct[TN];
} sealed;

/* Opens s (with at most one flipped bit already applied by the caller)
 * twice — into a pre-filled separate buffer and in place — and asserts
 * both fail and leave the output all zeros. */
static void expect_rejected(vdc_aead_alg alg, vdc_aead *a, const sealed *s,
                            const char *what, size_t bit, uint8_t *out,
                            uint8_t *inplace)
{
    memset(out, 0xA5, TN);
    if (vdc_aead_open(a, s->nonce, s->ad, TAD, s->ct, TN, s->tag, out) != -1)
        fail_msg("%s: flipped %s bit %zu accepted", vdc_aead_name(alg), what,
                 bit);
    if (!all_zero(out, TN))
        fail_msg("%s: flipped %s bit %zu: output not wiped",
                 vdc_aead_name(alg), what, bit);

    memcpy(inplace, s->ct, TN);
    if (vdc_aead_open(a, s->nonce, s->ad, TAD, inplace, TN, s->tag, inplace) !=
        -1)
        fail_msg("%s: flipped %s bit %zu accepted (in place)",
                 vdc_aead_name(alg), what, bit);
    if (!all_zero(inplace, TN))
        fail_msg("%s: flipped %s bit %zu: in-place output not wiped",
                 vdc_aead_name(alg), what, bit);
}

static void check_tamper(vdc_aead_alg alg)
{
    sealed *s = malloc(sizeof *s);
    uint8_t *out = malloc(TN), *inplace = malloc(TN);
    assert_non_null(s);
    assert_non_null(out);
    assert_non_null(inplace);
    vdc_random(s->key, sizeof s->key);
    vdc_random(s->nonce, sizeof s->nonce);
    vdc_random(s->ad, sizeof s->ad);
    vdc_random(s->pt, TN);

    vdc_aead *a = vdc_aead_new(alg, s->key);
    assert_non_null(a);
    assert_int_equal(vdc_aead_seal(a, s->nonce, s->ad, TAD, s->pt, TN, s->ct,
                                   s->tag),
                     0);

    /* Sanity: the untouched block opens. */
    assert_int_equal(
        vdc_aead_open(a, s->nonce, s->ad, TAD, s->ct, TN, s->tag, out), 0);
    assert_memory_equal(out, s->pt, TN);

    struct {
        const char *what;
        uint8_t *p;
        size_t n;
    } fields[] = {
        {"ciphertext", s->ct, TN},
        {"tag", s->tag, sizeof s->tag},
        {"nonce", s->nonce, sizeof s->nonce},
        {"ad", s->ad, sizeof s->ad},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
        for (size_t bit = 0; bit < fields[f].n * 8; bit++) {
            uint8_t mask = (uint8_t)(1u << (bit % 8));
            fields[f].p[bit / 8] ^= mask;
            expect_rejected(alg, a, s, fields[f].what, bit, out, inplace);
            fields[f].p[bit / 8] ^= mask;
        }
    }

    /* Empty AD instead of the real one is rejected too. */
    memset(out, 0xA5, TN);
    assert_int_equal(vdc_aead_open(a, s->nonce, NULL, 0, s->ct, TN, s->tag, out),
                     -1);
    assert_true(all_zero(out, TN));

    /* A different key is rejected. */
    uint8_t key2[32];
    memcpy(key2, s->key, 32);
    key2[0] ^= 0x80;
    vdc_aead *b = vdc_aead_new(alg, key2);
    assert_non_null(b);
    memset(out, 0xA5, TN);
    assert_int_equal(
        vdc_aead_open(b, s->nonce, s->ad, TAD, s->ct, TN, s->tag, out), -1);
    assert_true(all_zero(out, TN));
    vdc_aead_free(b);

    /* After all those failures the context still opens the real block. */
    memset(out, 0xA5, TN);
    assert_int_equal(
        vdc_aead_open(a, s->nonce, s->ad, TAD, s->ct, TN, s->tag, out), 0);
    assert_memory_equal(out, s->pt, TN);

    vdc_aead_free(a);
    free(s);
    free(out);
    free(inplace);
}

static void test_aes256gcm_openssl_rejects_any_flipped_bit_and_wipes_output(void **state)
{
    (void)state;
    check_tamper(VDC_AES256GCM_OPENSSL);
}

static void test_aes256gcm_sodium_rejects_any_flipped_bit_and_wipes_output(void **state)
{
    (void)state;
    skip_unless_available(VDC_AES256GCM_SODIUM);
    check_tamper(VDC_AES256GCM_SODIUM);
}

static void test_xchacha20poly1305_rejects_any_flipped_bit_and_wipes_output(void **state)
{
    (void)state;
    check_tamper(VDC_XCHACHA20POLY1305);
}

/* ---- XChaCha20-Poly1305 ------------------------------------------------- */

static void test_xchacha20poly1305_round_trips_all_lengths(void **state)
{
    (void)state;
    uint8_t key[32], nonce[12], ad[7] = {1, 2, 3, 4, 5, 6, 7};
    uint8_t pt[300], ct[300], out[300], tag[16];
    vdc_random(key, sizeof key);
    vdc_random(nonce, sizeof nonce);
    vdc_random(pt, sizeof pt);
    vdc_aead *a = vdc_aead_new(VDC_XCHACHA20POLY1305, key);
    assert_non_null(a);
    for (size_t len = 0; len <= sizeof pt; len += (len < 70 ? 1 : 23)) {
        assert_int_equal(vdc_aead_seal(a, nonce, ad, sizeof ad, pt, len, ct,
                                       tag),
                         0);
        if (len >= 16)
            assert_memory_not_equal(ct, pt, len);
        memset(out, 0xCC, sizeof out);
        assert_int_equal(vdc_aead_open(a, nonce, ad, sizeof ad, ct, len, tag,
                                       out),
                         0);
        assert_memory_equal(out, pt, len);
        /* Empty message: the tag alone authenticates the AD. */
        if (len == 0) {
            uint8_t ad2[7];
            memcpy(ad2, ad, sizeof ad);
            ad2[3] ^= 0x10;
            assert_int_equal(vdc_aead_open(a, nonce, ad2, sizeof ad2, ct, 0,
                                           tag, out),
                             -1);
        }
    }
    vdc_aead_free(a);
}

static void test_xchacha20poly1305_uses_nonce_followed_by_12_zero_bytes(void **state)
{
    (void)state;
    /* Pins the on-disk convention: 24-byte nonce = nonce12 || 0^12. */
    uint8_t key[32], nonce[12], n24[24] = {0}, ad[5] = {9, 8, 7, 6, 5};
    uint8_t pt[100], ct[100], tag[16], ref_ct[100], ref_tag[16];
    unsigned long long maclen = 0;
    vdc_random(key, sizeof key);
    vdc_random(nonce, sizeof nonce);
    vdc_random(pt, sizeof pt);
    memcpy(n24, nonce, 12);

    vdc_aead *a = vdc_aead_new(VDC_XCHACHA20POLY1305, key);
    assert_non_null(a);
    assert_int_equal(vdc_aead_seal(a, nonce, ad, sizeof ad, pt, sizeof pt, ct,
                                   tag),
                     0);
    assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
                         ref_ct, ref_tag, &maclen, pt, sizeof pt, ad,
                         sizeof ad, NULL, n24, key),
                     0);
    assert_memory_equal(ct, ref_ct, sizeof ct);
    assert_memory_equal(tag, ref_tag, sizeof tag);

    /* A different 12-byte nonce gives a different ciphertext. */
    nonce[11] ^= 1;
    assert_int_equal(vdc_aead_seal(a, nonce, ad, sizeof ad, pt, sizeof pt, ct,
                                   tag),
                     0);
    assert_memory_not_equal(ct, ref_ct, sizeof ct);
    vdc_aead_free(a);
}

/* ---- AEAD dispatch ------------------------------------------------------ */

static void test_aead_availability_and_names(void **state)
{
    (void)state;
    assert_true(vdc_aead_available(VDC_AES256GCM_OPENSSL));
    assert_true(vdc_aead_available(VDC_XCHACHA20POLY1305));
    assert_int_equal(!!vdc_aead_available(VDC_AES256GCM_SODIUM),
                     !!crypto_aead_aes256gcm_is_available());
    assert_false(vdc_aead_available((vdc_aead_alg)99));

    const char *n1 = vdc_aead_name(VDC_AES256GCM_OPENSSL);
    const char *n2 = vdc_aead_name(VDC_AES256GCM_SODIUM);
    const char *n3 = vdc_aead_name(VDC_XCHACHA20POLY1305);
    assert_non_null(n1);
    assert_non_null(n2);
    assert_non_null(n3);
    assert_string_not_equal(n1, n2);
    assert_string_not_equal(n1, n3);
    assert_string_not_equal(n2, n3);

    uint8_t key[32] = {0};
    assert_null(vdc_aead_new((vdc_aead_alg)99, key));
    vdc_aead_free(NULL); /* no-op */
}

static void test_aead_contexts_with_different_keys_are_independent(void **state)
{
    (void)state;
    /* Two live OpenSSL contexts must not share state: interleave them. */
    uint8_t k1[32], k2[32], nonce[12] = {0}, pt[64], c1[64], c2[64], out[64];
    uint8_t t1[16], t2[16];
    vdc_random(k1, 32);
    vdc_random(k2, 32);
    vdc_random(pt, sizeof pt);
    vdc_aead *a = vdc_aead_new(VDC_AES256GCM_OPENSSL, k1);
    vdc_aead *b = vdc_aead_new(VDC_AES256GCM_OPENSSL, k2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(vdc_aead_seal(a, nonce, NULL, 0, pt, 64, c1, t1), 0);
    assert_int_equal(vdc_aead_seal(b, nonce, NULL, 0, pt, 64, c2, t2), 0);
    assert_memory_not_equal(c1, c2, 64);
    assert_int_equal(vdc_aead_open(a, nonce, NULL, 0, c1, 64, t1, out), 0);
    assert_memory_equal(out, pt, 64);
    assert_int_equal(vdc_aead_open(b, nonce, NULL, 0, c1, 64, t1, out), -1);
    assert_int_equal(vdc_aead_open(b, nonce, NULL, 0, c2, 64, t2, out), 0);
    assert_memory_equal(out, pt, 64);
    vdc_aead_free(a);
    vdc_aead_free(b);
}

/* ---- KDF ---------------------------------------------------------------- */

static void test_kdf_is_deterministic_and_separates_ids_ctx_and_master(void **state)
{
    (void)state;
    uint8_t master[32], master2[32];
    uint8_t k0[32], k0b[32], k1[32], kmax[32], kctx[32], kmaster[32];
    vdc_random(master, sizeof master);
    memcpy(master2, master, 32);
    master2[31] ^= 1;

    assert_int_equal(vdc_kdf(k0, master, "vdisk-dk", 0), 0);
    assert_int_equal(vdc_kdf(k0b, master, "vdisk-dk", 0), 0);
    assert_memory_equal(k0, k0b, 32);
    assert_false(all_zero(k0, 32));

    assert_int_equal(vdc_kdf(k1, master, "vdisk-dk", 1), 0);
    assert_memory_not_equal(k0, k1, 32);
    assert_int_equal(vdc_kdf(kmax, master, "vdisk-dk", UINT64_MAX), 0);
    assert_memory_not_equal(k0, kmax, 32);
    assert_memory_not_equal(k1, kmax, 32);

    assert_int_equal(vdc_kdf(kctx, master, "vdisk-mk", 0), 0);
    assert_memory_not_equal(k0, kctx, 32);

    assert_int_equal(vdc_kdf(kmaster, master2, "vdisk-dk", 0), 0);
    assert_memory_not_equal(k0, kmaster, 32);

    /* The subkey is not the master key. */
    assert_memory_not_equal(k0, master, 32);
}

static void test_kdf_reads_exactly_8_context_chars(void **state)
{
    (void)state;
    /* ctx is 8 chars, not a C string: no NUL needed, bytes past 8 ignored. */
    uint8_t master[32], a[32], b[32];
    const char ctx8[8] = {'v', 'd', 'i', 's', 'k', '-', 'd', 'k'};
    vdc_random(master, sizeof master);
    assert_int_equal(vdc_kdf(a, master, ctx8, 42), 0);
    assert_int_equal(vdc_kdf(b, master, "vdisk-dkTRAILING", 42), 0);
    assert_memory_equal(a, b, 32);
}

static void test_kdf_matches_blake2b_salt_personal_definition(void **state)
{
    (void)state;
    /* BLAKE2b-256(key = master, msg = "", salt = LE64(id) || 0^8,
     * personal = ctx || 0^8), computed with Python's hashlib.blake2b. This
     * pins the derivation (and so every key of every existing image). */
    uint8_t master[32], out[32], want[32];
    for (size_t i = 0; i < 32; i++)
        master[i] = (uint8_t)i;

    assert_int_equal(vdc_kdf(out, master, "vdisk-dk", 0), 0);
    unhex(want, 32,
          "c2499330241285d3ab599accfaa87d11f37b35473e408c70bb06fa79d987d7ef");
    assert_memory_equal(out, want, 32);

    assert_int_equal(vdc_kdf(out, master, "vdisk-dk", 1), 0);
    unhex(want, 32,
          "671e7fb365a0f8bda0e09ae51f91c05dfa4c06403d8e33fbc7764154e92e652e");
    assert_memory_equal(out, want, 32);

    assert_int_equal(vdc_kdf(out, master, "vdisk-mk", 0x0123456789abcdefull),
                     0);
    unhex(want, 32,
          "07fd93bc9c3f2f81f29c874b9b253d0250498e73e20b981c5f07788af2f2a2d6");
    assert_memory_equal(out, want, 32);
}

/* ---- MAC ---------------------------------------------------------------- */

static void test_mac_equals_one_shot_keyed_blake2b_for_every_split(void **state)
{
    (void)state;
    uint8_t key[32], msg[41], ref[32], mac[32];
    vdc_random(key, sizeof key);
    vdc_random(msg, sizeof msg);
    const size_t n = sizeof msg;

    /* Reference: one direct one-shot call over the whole buffer. */
    assert_int_equal(crypto_generichash(ref, sizeof ref, msg, n, key,
                                        sizeof key),
                     0);

    for (size_t i = 0; i <= n; i++) {
        for (size_t j = i; j <= n; j++) {
            const uint8_t *p1 = i > 0 ? msg : NULL;
            const uint8_t *p2 = j > i ? msg + i : NULL;
            const uint8_t *p3 = n > j ? msg + j : NULL;
            memset(mac, 0, sizeof mac);
            assert_int_equal(vdc_mac(mac, key, p1, i, p2, j - i, p3, n - j), 0);
            if (memcmp(mac, ref, 32) != 0)
                fail_msg("MAC differs for split %zu/%zu/%zu", i, j - i, n - j);
        }
    }

    /* Non-NULL pointers with zero length are skipped too. */
    assert_int_equal(vdc_mac(mac, key, msg, n, msg, 0, msg, 0), 0);
    assert_memory_equal(mac, ref, 32);
}

static void test_mac_matches_blake2b_reference_and_depends_on_key(void **state)
{
    (void)state;
    static const char fox[] = "The quick brown fox jumps over the lazy dog";
    uint8_t key[32], mac[32], mac2[32], want[32];
    for (size_t i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x40 + i);
    /* hashlib.blake2b(fox, digest_size=32, key=bytes(range(0x40, 0x60))) */
    unhex(want, 32,
          "6ca6d05070f9aef853e0e824403cd987ed902165d83ae6dfc958a907b1621174");
    assert_int_equal(vdc_mac(mac, key, fox, 10, fox + 10, sizeof fox - 1 - 10,
                             NULL, 0),
                     0);
    assert_memory_equal(mac, want, 32);

    key[0] ^= 1;
    assert_int_equal(vdc_mac(mac2, key, fox, sizeof fox - 1, NULL, 0, NULL, 0),
                     0);
    assert_memory_not_equal(mac, mac2, 32);
}

/* ---- hash --------------------------------------------------------------- */

static void test_hash_known_answers(void **state)
{
    (void)state;
    vdc_hash h;
    uint8_t out[32], want[32];

    assert_int_equal(vdc_hash_init(&h), 0);
    assert_int_equal(vdc_hash_final(&h, out), 0);
    unhex(want, 32,
          "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
    assert_memory_equal(out, want, 32); /* BLAKE2b-256("") */

    assert_int_equal(vdc_hash_init(&h), 0);
    assert_int_equal(vdc_hash_update(&h, "a", 1), 0);
    assert_int_equal(vdc_hash_update(&h, NULL, 0), 0);
    assert_int_equal(vdc_hash_update(&h, "bc", 2), 0);
    assert_int_equal(vdc_hash_final(&h, out), 0);
    unhex(want, 32,
          "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    assert_memory_equal(out, want, 32); /* BLAKE2b-256("abc") */
    memset(out, 0, sizeof out);
    assert_int_equal(vdc_hash_buf(out, "abc", 3), 0);
    assert_memory_equal(out, want, 32); /* the one-buffer form */
}

static void test_hash_incremental_equals_one_shot(void **state)
{
    (void)state;
    enum { N = 1000 };
    uint8_t *msg = malloc(N);
    uint8_t ref[32], out[32];
    assert_non_null(msg);
    vdc_random(msg, N);
    assert_int_equal(crypto_generichash(ref, sizeof ref, msg, N, NULL, 0), 0);

    static const size_t steps[] = {1, 7, 64, 127, 128, 129, 333, N};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        vdc_hash h;
        assert_int_equal(vdc_hash_init(&h), 0);
        for (size_t off = 0; off < N; off += steps[s]) {
            size_t n = N - off < steps[s] ? N - off : steps[s];
            assert_int_equal(vdc_hash_update(&h, msg + off, n), 0);
        }
        assert_int_equal(vdc_hash_final(&h, out), 0);
        if (memcmp(out, ref, 32) != 0)
            fail_msg("hash differs with step %zu", steps[s]);
    }
    free(msg);
}

/* ---- compare, random, secure memory ------------------------------------- */

static void test_memcmp_is_zero_only_when_equal(void **state)
{
    (void)state;
    uint8_t a[33], b[33];
    vdc_random(a, sizeof a);
    memcpy(b, a, sizeof a);
    assert_int_equal(vdc_memcmp(a, b, sizeof a), 0);
    assert_int_equal(vdc_memcmp(a, b, 0), 0);
    b[0] ^= 1;
    assert_int_not_equal(vdc_memcmp(a, b, sizeof a), 0);
    b[0] ^= 1;
    b[32] ^= 0x80;
    assert_int_not_equal(vdc_memcmp(a, b, sizeof a), 0);
    assert_int_equal(vdc_memcmp(a, b, 32), 0); /* difference is past n */
}

static void test_random_draws_differ(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    vdc_random(a, sizeof a);
    vdc_random(b, sizeof b);
    assert_memory_not_equal(a, b, 32);
    assert_false(all_zero(a, 32));
    uint64_t x = vdc_random_u64(), y = vdc_random_u64();
    assert_true(x != y);
    vdc_random(a, 0); /* zero length is fine */
}

static void test_secure_alloc_is_writable_and_zeroing_works(void **state)
{
    (void)state;
    const size_t n = 1000;
    uint8_t *p = vdc_secure_alloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31 + 7);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(p[i], (uint8_t)(i * 31 + 7));
    vdc_memzero(p, n);
    assert_true(all_zero(p, n));
    vdc_secure_free(p);
    vdc_secure_free(NULL);

    uint8_t *q = vdc_secure_alloc(VDC_KEY_BYTES);
    assert_non_null(q);
    memset(q, 0xFF, VDC_KEY_BYTES);
    vdc_secure_free(q);
}

static void test_init_is_idempotent(void **state)
{
    (void)state;
    assert_int_equal(vdc_init(), 0);
    assert_int_equal(vdc_init(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_idempotent),
        cmocka_unit_test(test_aes256gcm_openssl_matches_gcm_spec_vectors_13_to_16),
        cmocka_unit_test(test_aes256gcm_sodium_matches_gcm_spec_vectors_13_to_16),
        cmocka_unit_test(test_aes256gcm_openssl_and_sodium_interoperate_on_4k_block),
        cmocka_unit_test(test_aes256gcm_openssl_rejects_any_flipped_bit_and_wipes_output),
        cmocka_unit_test(test_aes256gcm_sodium_rejects_any_flipped_bit_and_wipes_output),
        cmocka_unit_test(test_xchacha20poly1305_rejects_any_flipped_bit_and_wipes_output),
        cmocka_unit_test(test_xchacha20poly1305_round_trips_all_lengths),
        cmocka_unit_test(test_xchacha20poly1305_uses_nonce_followed_by_12_zero_bytes),
        cmocka_unit_test(test_aead_availability_and_names),
        cmocka_unit_test(test_aead_contexts_with_different_keys_are_independent),
        cmocka_unit_test(test_kdf_is_deterministic_and_separates_ids_ctx_and_master),
        cmocka_unit_test(test_kdf_reads_exactly_8_context_chars),
        cmocka_unit_test(test_kdf_matches_blake2b_salt_personal_definition),
        cmocka_unit_test(test_mac_equals_one_shot_keyed_blake2b_for_every_split),
        cmocka_unit_test(test_mac_matches_blake2b_reference_and_depends_on_key),
        cmocka_unit_test(test_hash_known_answers),
        cmocka_unit_test(test_hash_incremental_equals_one_shot),
        cmocka_unit_test(test_memcmp_is_zero_only_when_equal),
        cmocka_unit_test(test_random_draws_differ),
        cmocka_unit_test(test_secure_alloc_is_writable_and_zeroing_works),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
