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

/* The AEAD context for keyid under the master key (gen 0) or, during a
 * key rotation, the key being replaced (gen 1), deriving it if it is not
 * among the few cached ones. Subkeys live only inside the AEAD contexts. */
static vdc_aead *subkey_get(vd_image *img, uint64_t keyid, int gen)
{
    const uint8_t *master = gen ? img->old_master : img->master;
    if (!master)
        return NULL;
    vd_subkey *victim = &img->subkeys[0];
    for (unsigned i = 0; i < VD_SUBKEY_CACHE; i++) {
        vd_subkey *s = &img->subkeys[i];
        if (s->keyid == keyid && s->gen == gen && s->aead) {
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
    if (vdc_kdf(k, master, VD_KDF_BLOCK, keyid) == 0)
        a = vdc_aead_new(img->alg, k);
    vdc_secure_free(k);
    if (!a)
        return NULL;
    vdc_aead_free(victim->aead);
    victim->aead = a;
    victim->keyid = keyid;
    victim->gen = gen;
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
    vdc_aead *a = subkey_get(img, img->keyid, 0);
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
    uint8_t ad[VD_AD_BYTES], nonce[VDC_NONCE_BYTES];
    block_ad(img, phys, ad);
    block_nonce(v->counter, nonce);
    /* During a key rotation a block is under the new key or the old one
     * (both held here, the old one only through the link the new key
     * opens; SECURITY.md R8). Data blocks at or past the rotation's cursor
     * are most likely still under the old key: try that one first. */
    int ngen = img->old_master ? 2 : 1;
    int first = ngen == 2 && phys >= img->hdr.data_start &&
                phys - img->hdr.data_start >= img->rk.cursor;
    for (int k = 0; k < ngen; k++) {
        vdc_aead *a = subkey_get(img, v->keyid, k == 0 ? first : !first);
        if (!a) {
            vdc_memzero(pt, VDF_BLOCK);
            return VD_ERR_NOMEM;
        }
        if (vdc_aead_open(a, nonce, ad, sizeof ad, ct, VDF_BLOCK, v->tag, pt) == 0) {
            img->stat_verified++;
            return VD_OK;
        }
    }
    return VD_ERR_AUTH;
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
    vdc_secure_free(img->old_master);
    img->master = img->sb_key = img->old_master = NULL;
}

/* The bytes the superblock MAC covers (format 2): the fixed fields and
 * the inline journal entries in use, not the whole block, so a commit's
 * two superblocks cost a few hundred bytes of MAC instead of 8 KiB. The
 * length comes from fields inside the covered part, so changing the count
 * changes the MAC input; every byte after it up to the MAC must be zero,
 * so no bit of the block goes unchecked. A rekey record (SB_FLAG_REKEY)
 * also covers its extension, [SB_OFF_REKEY, SB_REKEY_END). */
static size_t super_mac_len(const uint8_t blk[VDF_BLOCK])
{
    uint32_t jinline = vd_get_le32(blk + SB_OFF_JINLINE);
    uint32_t jcount = vd_get_le32(blk + SB_OFF_JCOUNT);
    int rekey = (vd_get_le32(blk + SB_OFF_FLAGS) & SB_FLAG_REKEY) != 0;
    if (jinline == 1 && jcount <= (rekey ? SB_INLINE_MAX_REKEY : SB_INLINE_MAX))
        return SB_OFF_INLINE + (size_t)jcount * JE_BYTES;
    return SB_OFF_INLINE;
}

static int super_is_rekey(const uint8_t blk[VDF_BLOCK])
{
    return (vd_get_le32(blk + SB_OFF_FLAGS) & SB_FLAG_REKEY) != 0;
}

/* Zero every byte no field covers. */
static void super_zero_gaps(uint8_t blk[VDF_BLOCK], size_t len)
{
    if (super_is_rekey(blk)) {
        memset(blk + len, 0, SB_OFF_REKEY - len);
        memset(blk + SB_RK_USED_END, 0, SB_OFF_MAC - SB_RK_USED_END);
    } else {
        memset(blk + len, 0, SB_OFF_MAC - len);
    }
}

static int super_gaps_zero(const uint8_t blk[VDF_BLOCK], size_t len)
{
    unsigned char extra = 0;
    int rekey = super_is_rekey(blk);
    for (size_t i = len; i < (rekey ? SB_OFF_REKEY : SB_OFF_MAC); i++)
        extra |= blk[i];
    for (size_t i = SB_RK_USED_END; rekey && i < SB_OFF_MAC; i++)
        extra |= blk[i];
    return extra == 0;
}

/* MAC of a record under sb_key: image_id, [0, len) and, for a rekey
 * record, its extension up to `ext_end` (SB_REKEY_END for the standard
 * MAC, SB_RK_OFF_NEW_MAC for the new key's MAC of a BEGIN record). */
static int super_mac(uint8_t out[32], const uint8_t *sb_key, const uint8_t id[16],
                     const uint8_t blk[VDF_BLOCK], size_t len, size_t ext_end)
{
    int rekey = super_is_rekey(blk);
    return vdc_mac(out, sb_key, id, 16, blk, len, rekey ? blk + SB_OFF_REKEY : NULL,
                   rekey ? ext_end - SB_OFF_REKEY : 0);
}

vd_err vd_super_seal_with(const uint8_t *sb_key, const uint8_t *new_sb_key,
                          const uint8_t image_id[16], uint8_t blk[VDF_BLOCK])
{
    size_t len = super_mac_len(blk);
    super_zero_gaps(blk, len);
    if (super_is_rekey(blk)) {
        memset(blk + SB_RK_OFF_NEW_MAC, 0, 32);
        if (new_sb_key && super_mac(blk + SB_RK_OFF_NEW_MAC, new_sb_key, image_id, blk,
                                    len, SB_RK_OFF_NEW_MAC) != 0)
            return VD_ERR_NOMEM;
    }
    if (super_mac(blk + SB_OFF_MAC, sb_key, image_id, blk, len, SB_REKEY_END) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

vd_err vd_super_seal(vd_image *img, uint8_t blk[VDF_BLOCK])
{
    return vd_super_seal_with(img->sb_key, NULL, img->hdr.image_id, blk);
}

vd_err vd_super_verify_with(const uint8_t *sb_key, const uint8_t image_id[16],
                            const uint8_t blk[VDF_BLOCK], int new_mac)
{
    uint8_t mac[32];
    size_t len = super_mac_len(blk);
    if (new_mac && !super_is_rekey(blk))
        return VD_ERR_AUTH;
    if (super_mac(mac, sb_key, image_id, blk, len,
                  new_mac ? SB_RK_OFF_NEW_MAC : SB_REKEY_END) != 0)
        return VD_ERR_NOMEM;
    const uint8_t *want = blk + (new_mac ? SB_RK_OFF_NEW_MAC : SB_OFF_MAC);
    return vdc_memcmp(mac, want, 32) == 0 && super_gaps_zero(blk, len) ? VD_OK
                                                                      : VD_ERR_AUTH;
}

vd_err vd_super_verify(vd_image *img, const uint8_t blk[VDF_BLOCK])
{
    return vd_super_verify_with(img->sb_key, img->hdr.image_id, blk, 0);
}

/* ---- key rotation: the link (SECURITY.md R8) ------------------------------ */

static vd_err link_kek(const uint8_t *new_master, uint8_t **kek)
{
    *kek = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!*kek)
        return VD_ERR_NOMEM;
    if (vdc_kdf(*kek, new_master, VD_KDF_REKEY, 0) != 0) {
        vdc_secure_free(*kek);
        *kek = NULL;
        return VD_ERR_NOMEM;
    }
    return VD_OK;
}

static void link_ad(const uint8_t image_id[16], uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1])
{
    memcpy(ad, image_id, 16);
    memcpy(ad + 16, VD_REKEY_LINK_AD, sizeof VD_REKEY_LINK_AD - 1);
}

vd_err vd_rekey_link_make(const uint8_t *new_master, const uint8_t *old_master,
                          const uint8_t image_id[16], uint8_t nonce[24],
                          uint8_t link[32], uint8_t tag[16])
{
    uint8_t *kek;
    vd_err e = link_kek(new_master, &kek);
    if (e != VD_OK)
        return e;
    uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1];
    link_ad(image_id, ad);
    vdc_random(nonce, 24);
    if (vdc_wrap(kek, nonce, ad, sizeof ad, old_master, VD_KEY_BYTES, link, tag) != 0)
        e = VD_ERR_NOMEM;
    vdc_secure_free(kek);
    return e;
}

vd_err vd_rekey_link_open(const uint8_t *new_master, const uint8_t image_id[16],
                          const uint8_t nonce[24], const uint8_t link[32],
                          const uint8_t tag[16], uint8_t *old_master)
{
    uint8_t *kek;
    vd_err e = link_kek(new_master, &kek);
    if (e != VD_OK)
        return e;
    uint8_t ad[16 + sizeof VD_REKEY_LINK_AD - 1];
    link_ad(image_id, ad);
    if (vdc_unwrap(kek, nonce, ad, sizeof ad, link, VD_KEY_BYTES, tag, old_master) != 0)
        e = VD_ERR_AUTH;
    vdc_secure_free(kek);
    return e;
}
