/* crypto/aead.c — vdc_aead: an algorithm tag plus the backend state
 * (aead_openssl.c / aead_sodium.c). Key material lives only in the backend
 * state, which every backend wipes on free. */
#include <stdlib.h>

#include "aead_impl.h"
#include "crypto.h"

struct vdc_aead {
    vdc_aead_alg alg;
    union {
        vdc_ossl_gcm *ossl;
        vdc_sodium_gcm *sgcm;
        vdc_xchacha *xc;
    } u;
};

int vdc_aead_available(vdc_aead_alg alg)
{
    switch (alg) {
    case VDC_AES256GCM_OPENSSL:
        return 1;
    case VDC_AES256GCM_SODIUM:
        return vdc_sodium_gcm_available();
    case VDC_XCHACHA20POLY1305:
        return 1;
    }
    return 0;
}

int vdc_aead_concurrent(vdc_aead_alg alg)
{
    return alg == VDC_AES256GCM_SODIUM || alg == VDC_XCHACHA20POLY1305;
}

const char *vdc_aead_name(vdc_aead_alg alg)
{
    /* The two AES-256-GCM names match vd_stats.aead_impl_name. */
    switch (alg) {
    case VDC_AES256GCM_OPENSSL:
        return "openssl";
    case VDC_AES256GCM_SODIUM:
        return "libsodium";
    case VDC_XCHACHA20POLY1305:
        return "xchacha20poly1305";
    }
    return "unknown";
}

vdc_aead *vdc_aead_new(vdc_aead_alg alg, const uint8_t key[VDC_KEY_BYTES])
{
    if (key == NULL)
        return NULL;
    vdc_aead *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->alg = alg;
    switch (alg) {
    case VDC_AES256GCM_OPENSSL:
        a->u.ossl = vdc_ossl_gcm_new(key);
        if (a->u.ossl != NULL)
            return a;
        break;
    case VDC_AES256GCM_SODIUM:
        a->u.sgcm = vdc_sodium_gcm_new(key);
        if (a->u.sgcm != NULL)
            return a;
        break;
    case VDC_XCHACHA20POLY1305:
        a->u.xc = vdc_xchacha_new(key);
        if (a->u.xc != NULL)
            return a;
        break;
    }
    free(a);
    return NULL;
}

void vdc_aead_free(vdc_aead *a)
{
    if (a == NULL)
        return;
    switch (a->alg) {
    case VDC_AES256GCM_OPENSSL:
        vdc_ossl_gcm_free(a->u.ossl);
        break;
    case VDC_AES256GCM_SODIUM:
        vdc_sodium_gcm_free(a->u.sgcm);
        break;
    case VDC_XCHACHA20POLY1305:
        vdc_xchacha_free(a->u.xc);
        break;
    }
    free(a);
}

int vdc_aead_seal(vdc_aead *a, const uint8_t nonce[VDC_NONCE_BYTES],
                  const uint8_t *ad, size_t adlen, const uint8_t *pt,
                  size_t len, uint8_t *ct, uint8_t tag[VDC_TAG_BYTES])
{
    if (a == NULL || nonce == NULL || tag == NULL ||
        (adlen > 0 && ad == NULL) || (len > 0 && (pt == NULL || ct == NULL)))
        return -1;
    switch (a->alg) {
    case VDC_AES256GCM_OPENSSL:
        return vdc_ossl_gcm_seal(a->u.ossl, nonce, ad, adlen, pt, len, ct,
                                 tag);
    case VDC_AES256GCM_SODIUM:
        return vdc_sodium_gcm_seal(a->u.sgcm, nonce, ad, adlen, pt, len, ct,
                                   tag);
    case VDC_XCHACHA20POLY1305:
        return vdc_xchacha_seal(a->u.xc, nonce, ad, adlen, pt, len, ct, tag);
    }
    return -1;
}

int vdc_aead_open(vdc_aead *a, const uint8_t nonce[VDC_NONCE_BYTES],
                  const uint8_t *ad, size_t adlen, const uint8_t *ct,
                  size_t len, const uint8_t tag[VDC_TAG_BYTES], uint8_t *pt)
{
    int rc = -1;
    if (a == NULL || nonce == NULL || tag == NULL ||
        (adlen > 0 && ad == NULL) || (len > 0 && (pt == NULL || ct == NULL)))
        goto out;
    switch (a->alg) {
    case VDC_AES256GCM_OPENSSL:
        rc = vdc_ossl_gcm_open(a->u.ossl, nonce, ad, adlen, ct, len, tag, pt);
        break;
    case VDC_AES256GCM_SODIUM:
        rc = vdc_sodium_gcm_open(a->u.sgcm, nonce, ad, adlen, ct, len, tag,
                                 pt);
        break;
    case VDC_XCHACHA20POLY1305:
        rc = vdc_xchacha_open(a->u.xc, nonce, ad, adlen, ct, len, tag, pt);
        break;
    }
out:
    /* Backends wipe pt themselves; this covers argument errors. */
    if (rc != 0 && pt != NULL && len > 0)
        vdc_memzero(pt, len);
    return rc;
}
