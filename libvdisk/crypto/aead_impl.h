/* crypto/aead_impl.h — private to libvdisk/crypto/: the per-backend AEAD
 * implementations behind the vdc_aead dispatch in aead.c. Nothing outside
 * crypto/ includes this file.
 *
 * Every open function has the contract of vdc_aead_open: on failure it
 * returns -1 and leaves pt[0..len) all zeros (ct and pt may alias). Every
 * seal/open function accepts pt == ct (in place). */
#ifndef VD_CRYPTO_AEAD_IMPL_H
#define VD_CRYPTO_AEAD_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"

/* ---- AES-256-GCM, OpenSSL EVP (aead_openssl.c) -------------------------- */
/* One pre-keyed EVP_CIPHER_CTX; each call re-initialises only the IV. The
 * context is therefore NOT safe for concurrent use from several threads. */
typedef struct vdc_ossl_gcm vdc_ossl_gcm;

vdc_ossl_gcm *vdc_ossl_gcm_new(const uint8_t key[VDC_KEY_BYTES]);
void vdc_ossl_gcm_free(vdc_ossl_gcm *g);
int vdc_ossl_gcm_seal(vdc_ossl_gcm *g, const uint8_t nonce[VDC_NONCE_BYTES],
                      const uint8_t *ad, size_t adlen, const uint8_t *pt,
                      size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES]);
int vdc_ossl_gcm_open(vdc_ossl_gcm *g, const uint8_t nonce[VDC_NONCE_BYTES],
                      const uint8_t *ad, size_t adlen, const uint8_t *ct,
                      size_t len, const uint8_t tag[VDC_TAG_BYTES],
                      uint8_t *pt);

/* ---- AES-256-GCM, libsodium (aead_sodium.c) ----------------------------- */
/* Precomputed crypto_aead_aes256gcm_state in sodium_malloc'd memory.
 * Read-only after creation, so safe for concurrent use. */
typedef struct vdc_sodium_gcm vdc_sodium_gcm;

int vdc_sodium_gcm_available(void);
vdc_sodium_gcm *vdc_sodium_gcm_new(const uint8_t key[VDC_KEY_BYTES]);
void vdc_sodium_gcm_free(vdc_sodium_gcm *g);
int vdc_sodium_gcm_seal(const vdc_sodium_gcm *g,
                        const uint8_t nonce[VDC_NONCE_BYTES],
                        const uint8_t *ad, size_t adlen, const uint8_t *pt,
                        size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES]);
int vdc_sodium_gcm_open(const vdc_sodium_gcm *g,
                        const uint8_t nonce[VDC_NONCE_BYTES],
                        const uint8_t *ad, size_t adlen, const uint8_t *ct,
                        size_t len, const uint8_t tag[VDC_TAG_BYTES],
                        uint8_t *pt);

/* ---- XChaCha20-Poly1305, libsodium (aead_sodium.c) ---------------------- */
/* Key copy in sodium_malloc'd memory. Read-only after creation. */
typedef struct vdc_xchacha vdc_xchacha;

vdc_xchacha *vdc_xchacha_new(const uint8_t key[VDC_KEY_BYTES]);
void vdc_xchacha_free(vdc_xchacha *x);
int vdc_xchacha_seal(const vdc_xchacha *x,
                     const uint8_t nonce[VDC_NONCE_BYTES], const uint8_t *ad,
                     size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct,
                     uint8_t tag[VDC_TAG_BYTES]);
int vdc_xchacha_open(const vdc_xchacha *x,
                     const uint8_t nonce[VDC_NONCE_BYTES], const uint8_t *ad,
                     size_t adlen, const uint8_t *ct, size_t len,
                     const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt);

#endif
