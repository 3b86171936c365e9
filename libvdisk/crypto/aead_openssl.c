/* crypto/aead_openssl.c — AES-256-GCM through OpenSSL EVP.
 *
 * One EVP_CIPHER_CTX per context, created with the cipher, the IV length
 * (12) and the key already set; each seal/open only re-initialises the IV
 * (EVP_{En,De}cryptInit_ex(ctx, NULL, NULL, NULL, iv)), which skips the key
 * schedule. The key lives only inside the EVP context, which
 * EVP_CIPHER_CTX_free cleanses. Because the EVP context carries per-call
 * state, one vdc_ossl_gcm must not be used by two threads at once. */
#include <limits.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "aead_impl.h"

struct vdc_ossl_gcm {
    EVP_CIPHER_CTX *ctx;
};

/* EVP_*Update take an int length: feed large buffers in chunks. A multiple
 * of the AES block size, so chunking never splits a block. */
#define OSSL_CHUNK ((size_t)1 << 30)

vdc_ossl_gcm *vdc_ossl_gcm_new(const uint8_t key[VDC_KEY_BYTES])
{
    vdc_ossl_gcm *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->ctx = EVP_CIPHER_CTX_new();
    if (g->ctx == NULL)
        goto fail;
    if (EVP_EncryptInit_ex(g->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1)
        goto fail;
    if (EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_IVLEN, (int)VDC_NONCE_BYTES,
                            NULL) != 1)
        goto fail;
    if (EVP_EncryptInit_ex(g->ctx, NULL, NULL, key, NULL) != 1)
        goto fail;
    return g;
fail:
    vdc_ossl_gcm_free(g);
    return NULL;
}

void vdc_ossl_gcm_free(vdc_ossl_gcm *g)
{
    if (g == NULL)
        return;
    EVP_CIPHER_CTX_free(g->ctx); /* cleanses the key schedule; NULL is fine */
    free(g);
}

int vdc_ossl_gcm_seal(vdc_ossl_gcm *g, const uint8_t nonce[VDC_NONCE_BYTES],
                      const uint8_t *ad, size_t adlen, const uint8_t *pt,
                      size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES])
{
    EVP_CIPHER_CTX *ctx = g->ctx;
    int outl = 0;
    uint8_t fin[16];

    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        goto fail;
    while (adlen > 0) {
        size_t n = adlen < OSSL_CHUNK ? adlen : OSSL_CHUNK;
        if (EVP_EncryptUpdate(ctx, NULL, &outl, ad, (int)n) != 1)
            goto fail;
        ad += n;
        adlen -= n;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < OSSL_CHUNK ? len - off : OSSL_CHUNK;
        if (EVP_EncryptUpdate(ctx, ct + off, &outl, pt + off, (int)n) != 1 ||
            (size_t)outl != n)
            goto fail;
        off += n;
    }
    /* GCM is a stream mode: Final outputs nothing. */
    if (EVP_EncryptFinal_ex(ctx, fin, &outl) != 1 || outl != 0)
        goto fail;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)VDC_TAG_BYTES,
                            tag) != 1)
        goto fail;
    return 0;
fail:
    if (len > 0)
        OPENSSL_cleanse(ct, len);
    OPENSSL_cleanse(tag, VDC_TAG_BYTES);
    return -1;
}

int vdc_ossl_gcm_open(vdc_ossl_gcm *g, const uint8_t nonce[VDC_NONCE_BYTES],
                      const uint8_t *ad, size_t adlen, const uint8_t *ct,
                      size_t len, const uint8_t tag[VDC_TAG_BYTES],
                      uint8_t *pt)
{
    EVP_CIPHER_CTX *ctx = g->ctx;
    int outl = 0;
    uint8_t fin[16];
    uint8_t tagcopy[VDC_TAG_BYTES];

    /* SET_TAG takes a non-const pointer; copy rather than cast const away. */
    for (size_t i = 0; i < VDC_TAG_BYTES; i++)
        tagcopy[i] = tag[i];

    /* The key schedule is shared: GCM uses the forward AES direction for
     * both sealing and opening. */
    if (EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1)
        goto fail;
    while (adlen > 0) {
        size_t n = adlen < OSSL_CHUNK ? adlen : OSSL_CHUNK;
        if (EVP_DecryptUpdate(ctx, NULL, &outl, ad, (int)n) != 1)
            goto fail;
        ad += n;
        adlen -= n;
    }
    for (size_t off = 0; off < len;) {
        size_t n = len - off < OSSL_CHUNK ? len - off : OSSL_CHUNK;
        if (EVP_DecryptUpdate(ctx, pt + off, &outl, ct + off, (int)n) != 1 ||
            (size_t)outl != n)
            goto fail;
        off += n;
    }
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)VDC_TAG_BYTES,
                            tagcopy) != 1)
        goto fail;
    /* Verifies the tag (constant time inside OpenSSL). */
    if (EVP_DecryptFinal_ex(ctx, fin, &outl) != 1 || outl != 0)
        goto fail;
    return 0;
fail:
    /* Never expose the plaintext of a block whose tag did not verify. */
    if (len > 0)
        OPENSSL_cleanse(pt, len);
    return -1;
}
