/* crypto/aead_sodium.c — the libsodium AEADs.
 *
 * AES-256-GCM: crypto_aead_aes256gcm_*_detached_afternm on a state
 * precomputed once by crypto_aead_aes256gcm_beforenm. The state (expanded
 * key + GHASH powers) lives in sodium_malloc'd (guarded, mlocked) memory
 * and is wiped by sodium_free. libsodium's AES-GCM needs AES-NI + PCLMUL:
 * vdc_sodium_gcm_new refuses to create a context where it is unavailable.
 *
 * XChaCha20-Poly1305-IETF: crypto_aead_xchacha20poly1305_ietf_*_detached
 * with a key copy in sodium_malloc'd memory. */
#include <sodium.h>

#include "aead_impl.h"

/* sodium_malloc places the allocation at the end of a page, so it is only
 * aligned as strictly as its size allows; the AES-GCM state needs 16. */
_Static_assert(sizeof(crypto_aead_aes256gcm_state) % 16 == 0,
               "crypto_aead_aes256gcm_state size must keep 16-byte alignment");
_Static_assert(crypto_aead_aes256gcm_KEYBYTES == VDC_KEY_BYTES &&
                   crypto_aead_aes256gcm_NPUBBYTES == VDC_NONCE_BYTES &&
                   crypto_aead_aes256gcm_ABYTES == VDC_TAG_BYTES,
               "libsodium AES-256-GCM sizes");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == VDC_KEY_BYTES &&
                   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == 24 &&
                   crypto_aead_xchacha20poly1305_ietf_ABYTES == VDC_TAG_BYTES,
               "libsodium XChaCha20-Poly1305 sizes");

struct vdc_sodium_gcm {
    crypto_aead_aes256gcm_state *st; /* sodium_malloc, 16-byte aligned */
};

struct vdc_xchacha {
    unsigned char *key; /* sodium_malloc, VDC_KEY_BYTES */
};

/* ---- AES-256-GCM -------------------------------------------------------- */

int vdc_sodium_gcm_available(void)
{
    return crypto_aead_aes256gcm_is_available();
}

vdc_sodium_gcm *vdc_sodium_gcm_new(const uint8_t key[VDC_KEY_BYTES])
{
    if (!crypto_aead_aes256gcm_is_available())
        return NULL;
    vdc_sodium_gcm *g = sodium_malloc(sizeof *g);
    if (g == NULL)
        return NULL;
    g->st = sodium_malloc(sizeof *g->st);
    if (g->st == NULL || ((uintptr_t)g->st & 15u) != 0)
        goto fail;
    if (crypto_aead_aes256gcm_beforenm(g->st, key) != 0)
        goto fail;
    return g;
fail:
    vdc_sodium_gcm_free(g);
    return NULL;
}

void vdc_sodium_gcm_free(vdc_sodium_gcm *g)
{
    if (g == NULL)
        return;
    sodium_free(g->st); /* wipes; NULL is fine */
    sodium_free(g);
}

int vdc_sodium_gcm_seal(const vdc_sodium_gcm *g,
                        const uint8_t nonce[VDC_NONCE_BYTES],
                        const uint8_t *ad, size_t adlen, const uint8_t *pt,
                        size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES])
{
    unsigned long long maclen = 0;
    if ((unsigned long long)len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX ||
        crypto_aead_aes256gcm_encrypt_detached_afternm(
            ct, tag, &maclen, pt, (unsigned long long)len, ad,
            (unsigned long long)adlen, NULL, nonce, g->st) != 0 ||
        maclen != VDC_TAG_BYTES) {
        if (len > 0)
            sodium_memzero(ct, len);
        sodium_memzero(tag, VDC_TAG_BYTES);
        return -1;
    }
    return 0;
}

int vdc_sodium_gcm_open(const vdc_sodium_gcm *g,
                        const uint8_t nonce[VDC_NONCE_BYTES],
                        const uint8_t *ad, size_t adlen, const uint8_t *ct,
                        size_t len, const uint8_t tag[VDC_TAG_BYTES],
                        uint8_t *pt)
{
    if ((unsigned long long)len > crypto_aead_aes256gcm_MESSAGEBYTES_MAX ||
        crypto_aead_aes256gcm_decrypt_detached_afternm(
            pt, NULL, ct, (unsigned long long)len, tag, ad,
            (unsigned long long)adlen, nonce, g->st) != 0) {
        /* libsodium already clears m on a bad tag; be explicit anyway. */
        if (len > 0)
            sodium_memzero(pt, len);
        return -1;
    }
    return 0;
}

/* ---- XChaCha20-Poly1305 ------------------------------------------------- */

/* The 24-byte XChaCha20 nonce is our 12-byte nonce followed by 12 zero
 * bytes. This is safe because callers never repeat a 12-byte nonce under a
 * key, so the 24-byte nonces never repeat either; XChaCha's extended nonce
 * is simply not needed for uniqueness here (the zero tail is a constant
 * fed into HChaCha20 subkey derivation). */
static void xchacha_nonce(unsigned char out[24],
                          const uint8_t nonce[VDC_NONCE_BYTES])
{
    for (size_t i = 0; i < VDC_NONCE_BYTES; i++)
        out[i] = nonce[i];
    for (size_t i = VDC_NONCE_BYTES; i < 24; i++)
        out[i] = 0;
}

vdc_xchacha *vdc_xchacha_new(const uint8_t key[VDC_KEY_BYTES])
{
    vdc_xchacha *x = sodium_malloc(sizeof *x);
    if (x == NULL)
        return NULL;
    x->key = sodium_malloc(VDC_KEY_BYTES);
    if (x->key == NULL) {
        sodium_free(x);
        return NULL;
    }
    for (size_t i = 0; i < VDC_KEY_BYTES; i++)
        x->key[i] = key[i];
    return x;
}

void vdc_xchacha_free(vdc_xchacha *x)
{
    if (x == NULL)
        return;
    sodium_free(x->key); /* wipes */
    sodium_free(x);
}

int vdc_xchacha_seal(const vdc_xchacha *x,
                     const uint8_t nonce[VDC_NONCE_BYTES], const uint8_t *ad,
                     size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct,
                     uint8_t tag[VDC_TAG_BYTES])
{
    unsigned char n24[24];
    unsigned long long maclen = 0;
    xchacha_nonce(n24, nonce);
    if ((unsigned long long)len >
            crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
            ct, tag, &maclen, pt, (unsigned long long)len, ad,
            (unsigned long long)adlen, NULL, n24, x->key) != 0 ||
        maclen != VDC_TAG_BYTES) {
        if (len > 0)
            sodium_memzero(ct, len);
        sodium_memzero(tag, VDC_TAG_BYTES);
        return -1;
    }
    return 0;
}

int vdc_xchacha_open(const vdc_xchacha *x,
                     const uint8_t nonce[VDC_NONCE_BYTES], const uint8_t *ad,
                     size_t adlen, const uint8_t *ct, size_t len,
                     const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt)
{
    unsigned char n24[24];
    xchacha_nonce(n24, nonce);
    if ((unsigned long long)len >
            crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX ||
        crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            pt, NULL, ct, (unsigned long long)len, tag, ad,
            (unsigned long long)adlen, n24, x->key) != 0) {
        /* libsodium verifies before decrypting and leaves pt untouched on a
         * bad tag; the contract is a wiped output buffer. */
        if (len > 0)
            sodium_memzero(pt, len);
        return -1;
    }
    return 0;
}
