/* crypto/wrap.c — primitives for key slots: Argon2id (crypto_pwhash_argon2id),
 * XChaCha20-Poly1305-IETF with 24-byte nonces for wrapping keys, and X25519
 * sealed boxes (crypto_box_seal). Intermediate secrets stay in libsodium's
 * own buffers or the caller's; nothing here keeps state. */
#include <sodium.h>

#include "crypto.h"

_Static_assert(crypto_pwhash_argon2id_SALTBYTES == VDC_PWHASH_SALT_BYTES,
               "Argon2id salt size");
_Static_assert(crypto_pwhash_argon2id_OPSLIMIT_MIN == VDC_PWHASH_OPSLIMIT_MIN &&
                   crypto_pwhash_argon2id_MEMLIMIT_MIN == VDC_PWHASH_MEMLIMIT_MIN,
               "Argon2id minimum parameters");
_Static_assert(crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE ==
                       VDC_PWHASH_OPSLIMIT_INTERACTIVE &&
                   crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE ==
                       VDC_PWHASH_MEMLIMIT_INTERACTIVE &&
                   crypto_pwhash_OPSLIMIT_INTERACTIVE ==
                       VDC_PWHASH_OPSLIMIT_INTERACTIVE &&
                   crypto_pwhash_MEMLIMIT_INTERACTIVE ==
                       VDC_PWHASH_MEMLIMIT_INTERACTIVE,
               "Argon2id interactive parameters");
_Static_assert(crypto_pwhash_argon2id_BYTES_MIN <= VDC_KEY_BYTES,
               "Argon2id output size");
_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == VDC_KEY_BYTES &&
                   crypto_aead_xchacha20poly1305_ietf_NPUBBYTES ==
                       VDC_WRAP_NONCE_BYTES &&
                   crypto_aead_xchacha20poly1305_ietf_ABYTES == VDC_TAG_BYTES,
               "XChaCha20-Poly1305 sizes");
_Static_assert(crypto_box_PUBLICKEYBYTES == VDC_BOX_PUBLIC_BYTES &&
                   crypto_box_SECRETKEYBYTES == VDC_BOX_SECRET_BYTES &&
                   crypto_box_SEALBYTES == VDC_BOX_SEAL_OVERHEAD &&
                   crypto_scalarmult_BYTES == VDC_BOX_PUBLIC_BYTES &&
                   crypto_scalarmult_SCALARBYTES == VDC_BOX_SECRET_BYTES,
               "X25519 sealed box sizes");

int vdc_pwhash(uint8_t out[VDC_KEY_BYTES], const uint8_t *pw, size_t pwlen,
               const uint8_t salt[VDC_PWHASH_SALT_BYTES], uint64_t opslimit,
               uint64_t memlimit)
{
    if (out == NULL || salt == NULL || (pw == NULL && pwlen != 0))
        return -1;
    if (opslimit < crypto_pwhash_argon2id_OPSLIMIT_MIN ||
        opslimit > crypto_pwhash_argon2id_OPSLIMIT_MAX ||
        memlimit < crypto_pwhash_argon2id_MEMLIMIT_MIN ||
        memlimit > crypto_pwhash_argon2id_MEMLIMIT_MAX ||
        (uint64_t)pwlen > crypto_pwhash_argon2id_PASSWD_MAX) {
        sodium_memzero(out, VDC_KEY_BYTES);
        return -1;
    }
    /* An empty password is passed as a valid pointer. */
    static const char empty[1] = {0};
    if (crypto_pwhash_argon2id(out, VDC_KEY_BYTES,
                               pw ? (const char *)pw : empty,
                               (unsigned long long)pwlen, salt,
                               (unsigned long long)opslimit, (size_t)memlimit,
                               crypto_pwhash_argon2id_ALG_ARGON2ID13) != 0) {
        sodium_memzero(out, VDC_KEY_BYTES);
        return -1;
    }
    return 0;
}

int vdc_wrap(const uint8_t kek[VDC_KEY_BYTES],
             const uint8_t nonce[VDC_WRAP_NONCE_BYTES], const uint8_t *ad,
             size_t adlen, const uint8_t *pt, size_t len, uint8_t *ct,
             uint8_t tag[VDC_TAG_BYTES])
{
    if (kek == NULL || nonce == NULL || tag == NULL || (ad == NULL && adlen) ||
        ((pt == NULL || ct == NULL) && len))
        return -1;
    unsigned long long taglen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
            ct, tag, &taglen, pt, (unsigned long long)len, ad,
            (unsigned long long)adlen, NULL, nonce, kek) != 0 ||
        taglen != VDC_TAG_BYTES) {
        if (ct != NULL && len)
            sodium_memzero(ct, len);
        return -1;
    }
    return 0;
}

int vdc_unwrap(const uint8_t kek[VDC_KEY_BYTES],
               const uint8_t nonce[VDC_WRAP_NONCE_BYTES], const uint8_t *ad,
               size_t adlen, const uint8_t *ct, size_t len,
               const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt)
{
    if (kek == NULL || nonce == NULL || tag == NULL || (ad == NULL && adlen) ||
        ((pt == NULL || ct == NULL) && len)) {
        if (pt != NULL && len)
            sodium_memzero(pt, len);
        return -1;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
            pt, NULL, ct, (unsigned long long)len, tag, ad,
            (unsigned long long)adlen, nonce, kek) != 0) {
        if (len)
            sodium_memzero(pt, len);
        return -1;
    }
    return 0;
}

int vdc_box_keypair(uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                    uint8_t sk[VDC_BOX_SECRET_BYTES])
{
    if (pk == NULL || sk == NULL)
        return -1;
    return crypto_box_keypair(pk, sk) == 0 ? 0 : -1;
}

int vdc_box_public(uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                   const uint8_t sk[VDC_BOX_SECRET_BYTES])
{
    if (pk == NULL || sk == NULL)
        return -1;
    return crypto_scalarmult_base(pk, sk) == 0 ? 0 : -1;
}

int vdc_box_seal(uint8_t *out, const uint8_t *m, size_t len,
                 const uint8_t pk[VDC_BOX_PUBLIC_BYTES])
{
    if (out == NULL || pk == NULL || (m == NULL && len))
        return -1;
    return crypto_box_seal(out, m, (unsigned long long)len, pk) == 0 ? 0 : -1;
}

int vdc_box_seal_open(uint8_t *m, const uint8_t *c, size_t clen,
                      const uint8_t pk[VDC_BOX_PUBLIC_BYTES],
                      const uint8_t sk[VDC_BOX_SECRET_BYTES])
{
    if (m == NULL || c == NULL || pk == NULL || sk == NULL ||
        clen < VDC_BOX_SEAL_OVERHEAD)
        return -1;
    if (crypto_box_seal_open(m, c, (unsigned long long)clen, pk, sk) != 0) {
        sodium_memzero(m, clen - VDC_BOX_SEAL_OVERHEAD);
        return -1;
    }
    return 0;
}
