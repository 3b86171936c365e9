/* Block encryption bound to image and position, and the MACs of the
 * superblock and key check. Keys: every block is sealed under
 * KDF(master, "vd-block", keyid) with nonce = counter; keyid is a fresh
 * random 64-bit id per session (and per 2^40 blocks), so even a host that
 * replays old images or crashes us repeatedly never sees one (key, nonce)
 * pair twice (R5). */
#include <string.h>

#include "endian.h"
#include "image_internal.h"

static void block_ad(const vd_image *img, uint64_t phys, uint8_t ad[VD_AD_BYTES])
{
    memcpy(ad, img->hdr.image_id, 16);
    vd_put_le64(ad + 16, phys);
}

static void block_nonce(uint64_t counter, uint8_t nonce[VDC_NONCE_BYTES])
{
    vd_put_le64(nonce, counter);
    vd_put_le32(nonce + 8, 0);
}

/* The AEAD context for keyid, deriving it if it is not among the few
 * cached ones. Subkeys live only inside the AEAD contexts. */
static vdc_aead *subkey_get(vd_image *img, uint64_t keyid)
{
    vd_subkey *victim = &img->subkeys[0];
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++) {
        vd_subkey *s = &img->subkeys[i];
        if (s->keyid == keyid && s->aead) {
            s->last_use = ++img->subkey_clock;
            return s->aead;
        }
        if (s->last_use < victim->last_use)
            victim = s;
    }
    uint8_t *k = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!k)
        return NULL;
    vdc_aead *a = NULL;
    if (vdc_kdf(k, img->master, VD_KDF_BLOCK, keyid) == 0)
        a = vdc_aead_new(img->alg, k);
    vdc_secure_free(k);
    if (!a)
        return NULL;
    vdc_aead_free(victim->aead);
    victim->aead = a;
    victim->keyid = keyid;
    victim->last_use = ++img->subkey_clock;
    return a;
}

vd_err vd_new_keyid(vd_image *img)
{
    uint64_t id;
    do
        id = vdc_random_u64();
    while (id == 0);
    img->keyid = id;
    img->counter = 1;
    return VD_OK;
}

vd_err vd_block_seal(vd_image *img, uint64_t phys, const uint8_t *pt,
                     uint8_t *ct, mt_version *v)
{
    if (img->counter >= VD_COUNTER_LIMIT)
        vd_new_keyid(img);
    vdc_aead *a = subkey_get(img, img->keyid);
    if (!a)
        return VD_ERR_NOMEM;
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    block_ad(img, phys, ad);
    v->keyid = img->keyid;
    v->counter = img->counter++;
    block_nonce(v->counter, nonce);
    if (vdc_aead_seal(a, nonce, ad, sizeof ad, pt, VDF_BLOCK, ct, v->tag) != 0)
        return VD_ERR_IO;
    return VD_OK;
}

vd_err vd_block_open(vd_image *img, uint64_t phys, const uint8_t *ct,
                     const mt_version *v, uint8_t *pt)
{
    vdc_aead *a = subkey_get(img, v->keyid);
    if (!a) {
        vdc_memzero(pt, VDF_BLOCK);
        return VD_ERR_NOMEM;
    }
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    block_ad(img, phys, ad);
    block_nonce(v->counter, nonce);
    if (vdc_aead_open(a, nonce, ad, sizeof ad, ct, VDF_BLOCK, v->tag, pt) != 0)
        return VD_ERR_AUTH;
    img->stat_verified++;
    return VD_OK;
}

vd_err vd_keycheck_compute(const uint8_t key[VD_KEY_BYTES],
                           const uint8_t image_id[16], uint8_t out[32])
{
    uint8_t *k = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!k)
        return VD_ERR_NOMEM;
    vd_err e = VD_OK;
    if (vdc_kdf(k, key, VD_KDF_KEYCHECK, 0) != 0 ||
        vdc_mac(out, k, image_id, 16, NULL, 0, NULL, 0) != 0)
        e = VD_ERR_NOMEM;
    vdc_secure_free(k);
    return e;
}

vd_err vd_keys_derive(vd_image *img, const uint8_t key[VD_KEY_BYTES])
{
    img->master = vdc_secure_alloc(VD_KEY_BYTES);
    img->sb_key = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!img->master || !img->sb_key)
        return VD_ERR_NOMEM;
    memcpy(img->master, key, VD_KEY_BYTES);
    if (vdc_kdf(img->sb_key, img->master, VD_KDF_SUPER, 0) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

void vd_keys_wipe(vd_image *img)
{
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++) {
        vdc_aead_free(img->subkeys[i].aead);
        img->subkeys[i].aead = NULL;
        img->subkeys[i].keyid = 0;
    }
    vdc_secure_free(img->master);
    vdc_secure_free(img->sb_key);
    img->master = img->sb_key = NULL;
}

/* The bytes the superblock MAC covers (format 2): the fixed fields and
 * the inline journal entries in use, not the whole block, so a commit's
 * two superblocks cost a few hundred bytes of MAC instead of 8 KiB. The
 * length comes from fields inside the covered part, so changing the count
 * changes the MAC input; every byte after it up to the MAC must be zero,
 * so no bit of the block goes unchecked. */
static size_t super_mac_len(const uint8_t blk[VDF_BLOCK])
{
    uint32_t jinline = vd_get_le32(blk + SB_OFF_JINLINE);
    uint32_t jcount = vd_get_le32(blk + SB_OFF_JCOUNT);
    if (jinline == 1 && jcount <= SB_INLINE_MAX)
        return SB_OFF_INLINE + (size_t)jcount * JE_BYTES;
    return SB_OFF_INLINE;
}

vd_err vd_super_seal(vd_image *img, uint8_t blk[VDF_BLOCK])
{
    size_t len = super_mac_len(blk);
    memset(blk + len, 0, SB_OFF_MAC - len);
    if (vdc_mac(blk + SB_OFF_MAC, img->sb_key, img->hdr.image_id, 16, blk, len,
                NULL, 0) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

vd_err vd_super_verify(vd_image *img, const uint8_t blk[VDF_BLOCK])
{
    uint8_t mac[32];
    size_t len = super_mac_len(blk);
    if (vdc_mac(mac, img->sb_key, img->hdr.image_id, 16, blk, len, NULL, 0) != 0)
        return VD_ERR_NOMEM;
    unsigned char extra = 0;
    for (size_t i = len; i < SB_OFF_MAC; i++)
        extra |= blk[i];
    return vdc_memcmp(mac, blk + SB_OFF_MAC, 32) == 0 && extra == 0 ? VD_OK
                                                                     : VD_ERR_AUTH;
}
