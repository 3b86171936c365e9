/* crypto/ — the only code in vdisk that includes sodium.h or OpenSSL headers.
 *
 * Everything above this layer sees opaque contexts and plain byte arrays:
 * an AEAD (AES-256-GCM via OpenSSL EVP or libsodium, or XChaCha20-Poly1305
 * via libsodium) with 12-byte nonces, a KDF (BLAKE2b, libsodium's
 * crypto_kdf), a keyed MAC (BLAKE2b-256), an unkeyed hash, randomness and
 * guarded memory for secrets. */
#ifndef VD_CRYPTO_H
#define VD_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define VDC_KEY_BYTES 32u
#define VDC_NONCE_BYTES 12u
#define VDC_TAG_BYTES 16u
#define VDC_MAC_BYTES 32u
#define VDC_HASH_BYTES 32u

/* Must be called before any other vdc_ function; idempotent and
 * thread-safe (sodium_init). Returns 0 or -1. */
int vdc_init(void);

/* ---- AEAD ---------------------------------------------------------------- */
typedef enum vdc_aead_alg {
    VDC_AES256GCM_OPENSSL = 1,
    VDC_AES256GCM_SODIUM = 2,
    VDC_XCHACHA20POLY1305 = 3
} vdc_aead_alg;

typedef struct vdc_aead vdc_aead; /* key schedule; wiped on free */

/* Is this algorithm usable on this CPU/build? (libsodium's AES-GCM needs
 * AES-NI + PCLMUL.) */
int vdc_aead_available(vdc_aead_alg alg);
const char *vdc_aead_name(vdc_aead_alg alg);
/* 1 when one context of alg may seal and open from several threads at
 * once (libsodium's: read-only after creation); 0 for OpenSSL's, whose
 * EVP context carries per-call state. */
int vdc_aead_concurrent(vdc_aead_alg alg);

/* New context keyed with key (32 bytes). Returns NULL on failure. */
vdc_aead *vdc_aead_new(vdc_aead_alg alg, const uint8_t key[VDC_KEY_BYTES]);
void vdc_aead_free(vdc_aead *a);

/* Encrypt len bytes (pt and ct may be the same buffer). 0 or -1. */
int vdc_aead_seal(vdc_aead *a, const uint8_t nonce[VDC_NONCE_BYTES],
                  const uint8_t *ad, size_t adlen, const uint8_t *pt,
                  size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES]);
/* Decrypt and verify. On failure returns -1 and wipes pt (never expose
 * plaintext of a block whose tag did not verify). ct and pt may alias. */
int vdc_aead_open(vdc_aead *a, const uint8_t nonce[VDC_NONCE_BYTES],
                  const uint8_t *ad, size_t adlen, const uint8_t *ct,
                  size_t len, const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt);

/* ---- KDF / MAC / hash ---------------------------------------------------- */
/* Derive a 32-byte subkey: BLAKE2b(master, ctx8, id) (crypto_kdf). ctx is
 * exactly 8 characters. 0 or -1. */
int vdc_kdf(uint8_t out[VDC_KEY_BYTES], const uint8_t master[VDC_KEY_BYTES],
            const char ctx[8], uint64_t id);

/* Keyed BLAKE2b-256 over the concatenation of up to 3 parts (NULL/0 parts
 * are skipped). */
int vdc_mac(uint8_t out[VDC_MAC_BYTES], const uint8_t key[VDC_KEY_BYTES],
            const void *p1, size_t n1, const void *p2, size_t n2,
            const void *p3, size_t n3);

/* Incremental unkeyed BLAKE2b-256. */
typedef struct vdc_hash {
    /* Opaque, large enough for crypto_generichash_state (384 bytes, 64-aligned). */
    _Alignas(64) unsigned char opaque[512];
} vdc_hash;
int vdc_hash_init(vdc_hash *h);
int vdc_hash_update(vdc_hash *h, const void *p, size_t n);
int vdc_hash_final(vdc_hash *h, uint8_t out[VDC_HASH_BYTES]);
/* BLAKE2b-256 of one buffer: init, update, final. 0 or -1. */
int vdc_hash_buf(uint8_t out[VDC_HASH_BYTES], const void *p, size_t n);

/* MD5 (RFC 1321) of p: a format checksum (symbolic-link files, see
 * fat/link.c), never a security measure. 0 or -1. */
#define VDC_MD5_BYTES 16u
int vdc_md5(uint8_t out[VDC_MD5_BYTES], const void *p, size_t n);

/* Constant-time compare: 0 when equal. */
int vdc_memcmp(const void *a, const void *b, size_t n);

/* ---- randomness and guarded memory -------------------------------------- */
void vdc_random(void *buf, size_t n);
uint64_t vdc_random_u64(void);

/* Guarded, mlocked allocation for secrets (sodium_malloc). NULL on failure. */
void *vdc_secure_alloc(size_t n);
/* Wipes and frees; NULL is fine. */
void vdc_secure_free(void *p);
void vdc_memzero(void *p, size_t n);

/* ---- key wrapping (wrap.c) ------------------------------------------------
 * Primitives for key slots: Argon2id password hashing, XChaCha20-Poly1305
 * with a 24-byte (random) nonce for wrapping keys, and X25519 sealed boxes
 * (crypto_box_seal). */
#define VDC_PWHASH_SALT_BYTES 16u
#define VDC_PWHASH_OPSLIMIT_MIN 1u             /* libsodium's Argon2id minimum */
#define VDC_PWHASH_MEMLIMIT_MIN 8192u          /* bytes */
#define VDC_PWHASH_OPSLIMIT_INTERACTIVE 2u     /* crypto_pwhash_OPSLIMIT_INTERACTIVE */
#define VDC_PWHASH_MEMLIMIT_INTERACTIVE 67108864u /* 64 MiB */
#define VDC_WRAP_NONCE_BYTES 24u
#define VDC_BOX_PUBLIC_BYTES 32u
#define VDC_BOX_SECRET_BYTES 32u
#define VDC_BOX_SEAL_OVERHEAD 48u              /* ephemeral pk + MAC */

/* out = Argon2id v1.3(pw, salt, opslimit, memlimit), 32 bytes. Parameters
 * outside libsodium's range or an allocation failure: -1, out wiped. */
int vdc_pwhash(uint8_t out[VDC_KEY_BYTES], const uint8_t *pw, size_t pwlen,
               const uint8_t salt[VDC_PWHASH_SALT_BYTES], uint64_t opslimit,
               uint64_t memlimit);

/* XChaCha20-Poly1305-IETF under kek with a 24-byte nonce; detached tag.
 * pt and ct may alias. 0 or -1. */
int vdc_wrap(const uint8_t kek[VDC_KEY_BYTES],
             const uint8_t nonce[VDC_WRAP_NONCE_BYTES], const uint8_t *ad,
             size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct,
             uint8_t tag[VDC_TAG_BYTES]);
/* Verify and decrypt; on failure -1 and pt wiped. ct and pt may alias. */
int vdc_unwrap(const uint8_t kek[VDC_KEY_BYTES],
               const uint8_t nonce[VDC_WRAP_NONCE_BYTES], const uint8_t *ad,
               size_t adlen, const uint8_t *ct, size_t len,
               const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt);

/* New X25519 key pair (crypto_box_keypair). sk should be guarded memory. */
int vdc_box_keypair(uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                    uint8_t sk[VDC_BOX_SECRET_BYTES]);
/* The public key of sk (X25519 base-point multiplication). 0 or -1. */
int vdc_box_public(uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                   const uint8_t sk[VDC_BOX_SECRET_BYTES]);
/* out (len + VDC_BOX_SEAL_OVERHEAD bytes) = crypto_box_seal(m, pk). */
int vdc_box_seal(uint8_t *out, const uint8_t *m, size_t len,
                 const uint8_t pk[VDC_BOX_PUBLIC_BYTES]);
/* m (clen - VDC_BOX_SEAL_OVERHEAD bytes) = crypto_box_seal_open. On
 * failure -1 and m wiped. */
int vdc_box_seal_open(uint8_t *m, const uint8_t *c, size_t clen,
                      const uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                      const uint8_t sk[VDC_BOX_SECRET_BYTES]);

#endif
