/* crypto/kdf.c — libsodium glue: init, KDF, keyed MAC, hash, constant-time
 * compare, randomness and guarded memory. */
#include <sodium.h>

#include "crypto.h"

_Static_assert(sizeof(crypto_generichash_state) <= sizeof(((vdc_hash *)0)->opaque),
               "vdc_hash.opaque too small for crypto_generichash_state");
_Static_assert(_Alignof(crypto_generichash_state) <= _Alignof(vdc_hash),
               "vdc_hash under-aligned for crypto_generichash_state");
_Static_assert(crypto_kdf_KEYBYTES == VDC_KEY_BYTES &&
                   crypto_kdf_CONTEXTBYTES == 8 &&
                   crypto_kdf_BYTES_MIN <= VDC_KEY_BYTES &&
                   VDC_KEY_BYTES <= crypto_kdf_BYTES_MAX,
               "crypto_kdf sizes");
_Static_assert(crypto_generichash_KEYBYTES_MIN <= VDC_KEY_BYTES &&
                   VDC_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX &&
                   crypto_generichash_BYTES_MIN <= VDC_MAC_BYTES &&
                   VDC_MAC_BYTES <= crypto_generichash_BYTES_MAX &&
                   VDC_HASH_BYTES <= crypto_generichash_BYTES_MAX,
               "crypto_generichash sizes");

int vdc_init(void)
{
    /* 0 = initialised now, 1 = already initialised, -1 = failure. */
    return sodium_init() == -1 ? -1 : 0;
}

int vdc_kdf(uint8_t out[VDC_KEY_BYTES], const uint8_t master[VDC_KEY_BYTES],
            const char ctx[8], uint64_t id)
{
    if (out == NULL || master == NULL || ctx == NULL)
        return -1;
    /* crypto_kdf reads exactly crypto_kdf_CONTEXTBYTES (8) bytes of ctx; it
     * need not be NUL-terminated. */
    if (crypto_kdf_derive_from_key(out, VDC_KEY_BYTES, id, ctx, master) != 0) {
        sodium_memzero(out, VDC_KEY_BYTES);
        return -1;
    }
    return 0;
}

int vdc_mac(uint8_t out[VDC_MAC_BYTES], const uint8_t key[VDC_KEY_BYTES],
            const void *p1, size_t n1, const void *p2, size_t n2,
            const void *p3, size_t n3)
{
    crypto_generichash_state st;
    const void *parts[3] = {p1, p2, p3};
    const size_t lens[3] = {n1, n2, n3};
    int rc = -1;

    if (out == NULL || key == NULL)
        return -1;
    if (crypto_generichash_init(&st, key, VDC_KEY_BYTES, VDC_MAC_BYTES) != 0)
        goto out;
    for (size_t i = 0; i < 3; i++) {
        if (parts[i] == NULL || lens[i] == 0)
            continue;
        if (crypto_generichash_update(&st, parts[i],
                                      (unsigned long long)lens[i]) != 0)
            goto out;
    }
    if (crypto_generichash_final(&st, out, VDC_MAC_BYTES) != 0)
        goto out;
    rc = 0;
out:
    sodium_memzero(&st, sizeof st); /* the state holds the keyed prefix */
    if (rc != 0)
        sodium_memzero(out, VDC_MAC_BYTES);
    return rc;
}

int vdc_hash_init(vdc_hash *h)
{
    if (h == NULL)
        return -1;
    return crypto_generichash_init((crypto_generichash_state *)(void *)h->opaque,
                                   NULL, 0, VDC_HASH_BYTES) == 0
               ? 0
               : -1;
}

int vdc_hash_update(vdc_hash *h, const void *p, size_t n)
{
    if (h == NULL || (n > 0 && p == NULL))
        return -1;
    if (n == 0)
        return 0;
    return crypto_generichash_update(
               (crypto_generichash_state *)(void *)h->opaque, p,
               (unsigned long long)n) == 0
               ? 0
               : -1;
}

int vdc_hash_final(vdc_hash *h, uint8_t out[VDC_HASH_BYTES])
{
    if (h == NULL || out == NULL)
        return -1;
    return crypto_generichash_final(
               (crypto_generichash_state *)(void *)h->opaque, out,
               VDC_HASH_BYTES) == 0
               ? 0
               : -1;
}

int vdc_hash_buf(uint8_t out[VDC_HASH_BYTES], const void *p, size_t n)
{
    vdc_hash h;
    if (vdc_hash_init(&h) != 0 || vdc_hash_update(&h, p, n) != 0)
        return -1;
    return vdc_hash_final(&h, out);
}

int vdc_memcmp(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0 ? 0 : -1;
}

void vdc_random(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

uint64_t vdc_random_u64(void)
{
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}

void *vdc_secure_alloc(size_t n)
{
    return sodium_malloc(n);
}

void vdc_secure_free(void *p)
{
    sodium_free(p); /* wipes, unlocks, frees; NULL is a no-op */
}

void vdc_memzero(void *p, size_t n)
{
    sodium_memzero(p, n);
}
