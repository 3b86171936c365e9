/* Key slots (R6): the master key wrapped for a passphrase (Argon2id), a key
 * file (keyed BLAKE2b) or an X25519 public key (crypto_box_seal), in the
 * key-slot block (block 1). Format: image_format.h, docs/FORMAT.md §5.
 *
 * Wrapped slots (PASSPHRASE, KEYFILE) are XChaCha20-Poly1305 under a KEK
 * derived from the secret, with associated data image_id || slot index ||
 * every other field of the slot, so a change to any byte of the slot (or
 * moving it to another index or image) makes it fail to unwrap; the
 * padding must be zero. A sealed slot cannot be authenticated that way
 * (anyone with the public key can make one), so the key it yields is only
 * accepted if the image opens with it: the key check value and the
 * superblock MAC decide (vd_image_open reports a wrong key as
 * VD_ERR_WRONG_KEY and the next slot is tried).
 *
 * The key-slot block is not covered by the superblock MAC: a host can
 * delete or damage slots (denial of service), never make one unlock with a
 * secret it was not made for. Every secret (master key, KEK, unwrapped
 * key) lives in guarded memory and is wiped on every path. */
#include <pthread.h>
#include <string.h>

#include "endian.h"
#include "image_internal.h"
#include "vdisk/keys.h"

_Static_assert(VD_KEYSLOTS == KS_SLOTS, "public slot count");
_Static_assert(VD_PWHASH_OPSLIMIT_MIN == KS_OPSLIMIT_MIN &&
                   VD_PWHASH_OPSLIMIT_MAX == KS_OPSLIMIT_MAX &&
                   VD_PWHASH_MEMLIMIT_MIN == KS_MEMLIMIT_MIN &&
                   VD_PWHASH_MEMLIMIT_MAX == KS_MEMLIMIT_MAX &&
                   VD_PWHASH_COST_MAX == KS_COST_MAX,
               "public Argon2id bounds are the format's");
_Static_assert(KS_OPSLIMIT_MIN >= VDC_PWHASH_OPSLIMIT_MIN &&
                   KS_MEMLIMIT_MIN >= VDC_PWHASH_MEMLIMIT_MIN,
               "format bounds within libsodium's");
_Static_assert(VD_PWHASH_OPSLIMIT_INTERACTIVE == VDC_PWHASH_OPSLIMIT_INTERACTIVE &&
                   VD_PWHASH_MEMLIMIT_INTERACTIVE == VDC_PWHASH_MEMLIMIT_INTERACTIVE,
               "interactive defaults are libsodium's");
_Static_assert(VD_PWHASH_OPSLIMIT_INTERACTIVE >= KS_OPSLIMIT_MIN &&
                   VD_PWHASH_OPSLIMIT_INTERACTIVE <= KS_OPSLIMIT_MAX &&
                   VD_PWHASH_MEMLIMIT_INTERACTIVE >= KS_MEMLIMIT_MIN &&
                   VD_PWHASH_MEMLIMIT_INTERACTIVE <= KS_MEMLIMIT_MAX,
               "defaults within the bounds");
_Static_assert(KS_SALT_BYTES == VDC_PWHASH_SALT_BYTES &&
                   KS_NONCE_BYTES == VDC_WRAP_NONCE_BYTES &&
                   KS_BOX_BYTES == VD_KEY_BYTES + VDC_BOX_SEAL_OVERHEAD &&
                   VD_X25519_BYTES == VDC_BOX_PUBLIC_BYTES &&
                   VD_X25519_BYTES == VDC_BOX_SECRET_BYTES &&
                   VD_KEYFILE_BYTES == VDC_KEY_BYTES &&
                   VD_KEY_BYTES == VDC_KEY_BYTES,
               "slot field sizes match the primitives");
_Static_assert((int)VD_SLOT_PASSPHRASE == (int)KS_TYPE_PASSPHRASE &&
                   (int)VD_SLOT_KEYFILE == (int)KS_TYPE_KEYFILE &&
                   (int)VD_SLOT_SEALED == (int)KS_TYPE_SEALED &&
                   (int)VD_SLOT_EMPTY == (int)KS_TYPE_EMPTY,
               "public slot types are the on-disk ones");

/* A secret is well-formed for its type (for SEALED: 32 bytes, the public
 * key when adding, the secret key when opening). */
static vd_err unlock_check(const vd_unlock *u)
{
    if (!u || !u->secret)
        return VD_ERR_INVAL;
    switch (u->type) {
    case VD_SLOT_PASSPHRASE:
        return u->len >= 1 ? VD_OK : VD_ERR_INVAL;
    case VD_SLOT_KEYFILE:
    case VD_SLOT_SEALED:
        return u->len == VD_X25519_BYTES ? VD_OK : VD_ERR_INVAL;
    case VD_SLOT_EMPTY:
        break;
    }
    return VD_ERR_INVAL;
}

/* KEK of a wrapped slot, into guarded memory kek. */
static vd_err kek_derive(uint32_t type, const uint8_t *secret, size_t len,
                         const uint8_t salt[KS_SALT_BYTES], uint64_t ops,
                         uint64_t mem, uint8_t *kek)
{
    int rc;
    if (type == KS_TYPE_PASSPHRASE)
        rc = vdc_pwhash(kek, secret, len, salt, ops, mem);
    else
        rc = vdc_mac(kek, secret, salt, KS_SALT_BYTES, KS_KEYFILE_CTX,
                     sizeof KS_KEYFILE_CTX - 1, NULL, 0); /* len checked: 32 */
    return rc == 0 ? VD_OK : VD_ERR_NOMEM; /* parameters were checked */
}

static void slot_ad(const uint8_t image_id[16], uint32_t index,
                    const uint8_t raw[KS_SLOT_BYTES], uint8_t ad[KS_AD_BYTES])
{
    memcpy(ad, image_id, 16);
    vd_put_le32(ad + 16, index);
    memcpy(ad + 20, raw, KS_OFF_WRAPPED);
}

/* ---- making a slot ---------------------------------------------------------- */

/* A new slot whose expensive part (the KEK) is ready; the index-bound part
 * (wrapping, which needs the master key) comes later, under the lock. */
typedef struct ks_new {
    vd_keyslot s;
    uint8_t *kek; /* guarded; wrapped slots only */
} ks_new;

static void ks_new_free(ks_new *n)
{
    vdc_secure_free(n->kek);
    vdc_memzero(&n->s, sizeof n->s);
    n->kek = NULL;
}

static vd_err ks_new_prepare(ks_new *n, const vd_unlock *u,
                             const vd_pwhash_params *pw)
{
    memset(n, 0, sizeof *n);
    vd_err e = unlock_check(u);
    if (e != VD_OK)
        return e;
    n->s.type = (uint32_t)u->type;
    n->s.version = KS_VERSION;
    if (u->type == VD_SLOT_SEALED) {
        memcpy(n->s.recipient, u->secret, VD_X25519_BYTES);
        return VD_OK;
    }
    if (u->type == VD_SLOT_PASSPHRASE) {
        n->s.kdf = KS_KDF_ARGON2ID13;
        n->s.opslimit = pw && pw->opslimit ? pw->opslimit : VD_PWHASH_OPSLIMIT_INTERACTIVE;
        n->s.memlimit = pw && pw->memlimit ? pw->memlimit : VD_PWHASH_MEMLIMIT_INTERACTIVE;
        if (n->s.opslimit < KS_OPSLIMIT_MIN || n->s.opslimit > KS_OPSLIMIT_MAX ||
            n->s.memlimit < KS_MEMLIMIT_MIN || n->s.memlimit > KS_MEMLIMIT_MAX ||
            n->s.opslimit * n->s.memlimit > KS_COST_MAX)
            return VD_ERR_INVAL;
    } else {
        n->s.kdf = KS_KDF_BLAKE2B;
    }
    vdc_random(n->s.salt, KS_SALT_BYTES);
    n->kek = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!n->kek)
        return VD_ERR_NOMEM;
    e = kek_derive(n->s.type, u->secret, u->len, n->s.salt, n->s.opslimit,
                   n->s.memlimit, n->kek);
    if (e != VD_OK)
        ks_new_free(n);
    return e;
}

/* Wrap master into slot index of image image_id; out: the 512 slot bytes. */
static vd_err ks_new_seal(ks_new *n, const uint8_t *master,
                          const uint8_t image_id[16], uint32_t index,
                          uint8_t out[KS_SLOT_BYTES])
{
    vd_keyslot *s = &n->s;
    if (s->type == KS_TYPE_SEALED) {
        /* Fails for a public key that is not a usable X25519 point. */
        if (vdc_box_seal(s->box, master, VD_KEY_BYTES, s->recipient) != 0)
            return VD_ERR_INVAL;
        vd_keyslot_encode(s, out);
        return VD_OK;
    }
    uint8_t ad[KS_AD_BYTES];
    vdc_random(s->nonce, KS_NONCE_BYTES);
    memset(s->wrapped, 0, sizeof s->wrapped);
    memset(s->tag, 0, sizeof s->tag);
    vd_keyslot_encode(s, out);
    slot_ad(image_id, index, out, ad);
    if (vdc_wrap(n->kek, s->nonce, ad, sizeof ad, master, VD_KEY_BYTES,
                 s->wrapped, s->tag) != 0) {
        memset(out, 0, KS_SLOT_BYTES);
        return VD_ERR_NOMEM;
    }
    vd_keyslot_encode(s, out);
    return VD_OK;
}

/* ---- using a slot ------------------------------------------------------------ */

/* Try one well-formed slot of u's type: VD_OK with the candidate master
 * key in master, VD_ERR_WRONG_KEY, or VD_ERR_NOMEM. */
static vd_err slot_unwrap(const vd_keyslot *s, uint32_t index,
                          const uint8_t image_id[16],
                          const uint8_t raw[KS_SLOT_BYTES], const vd_unlock *u,
                          const uint8_t my_pk[VD_X25519_BYTES], uint8_t *kek,
                          uint8_t *master)
{
    if (s->type == KS_TYPE_SEALED) {
        if (vdc_memcmp(s->recipient, my_pk, VD_X25519_BYTES) != 0)
            return VD_ERR_WRONG_KEY; /* sealed to someone else */
        return vdc_box_seal_open(master, s->box, KS_BOX_BYTES, my_pk, u->secret) == 0
                   ? VD_OK
                   : VD_ERR_WRONG_KEY;
    }
    vd_err e = kek_derive(s->type, u->secret, u->len, s->salt, s->opslimit,
                          s->memlimit, kek);
    if (e != VD_OK)
        return e;
    uint8_t ad[KS_AD_BYTES];
    slot_ad(image_id, index, raw, ad);
    return vdc_unwrap(kek, s->nonce, ad, sizeof ad, s->wrapped, VD_KEY_BYTES,
                      s->tag, master) == 0
               ? VD_OK
               : VD_ERR_WRONG_KEY;
}

vd_err vd_image_open_unlock(const vd_host *host, const vd_unlock *u,
                            const vd_open_opts *opts, vd_image **out)
{
    return vd_image_open_unlock_ex(host, u, opts, 0, out);
}

vd_err vd_image_open_unlock_ex(const vd_host *host, const vd_unlock *u,
                               const vd_open_opts *opts, int rekey, vd_image **out)
{
    if (!out)
        return VD_ERR_INVAL;
    *out = NULL;
    vd_err e = unlock_check(u);
    if (e != VD_OK)
        return e;
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    vd_header hdr;
    uint8_t blk[VDF_BLOCK];
    e = vd_keyblock_read(host, &hdr, blk);
    if (e != VD_OK)
        return e;
    uint8_t my_pk[VD_X25519_BYTES] = {0};
    if (u->type == VD_SLOT_SEALED && vdc_box_public(my_pk, u->secret) != 0)
        return VD_ERR_INVAL;

    uint8_t *master = vdc_secure_alloc(VD_KEY_BYTES);
    uint8_t *kek = vdc_secure_alloc(VDC_KEY_BYTES);
    int malformed = 0;
    vd_err slot_err = VD_OK; /* a slot that could not be tried (memory) */
    e = master && kek ? VD_ERR_WRONG_KEY : VD_ERR_NOMEM;
    for (uint32_t i = 0; e == VD_ERR_WRONG_KEY && i < KS_SLOTS; i++) {
        const uint8_t *raw = blk + (size_t)i * KS_SLOT_BYTES;
        vd_keyslot s;
        if (vd_keyslot_decode(&s, raw) != 0) {
            malformed = 1;
            continue;
        }
        if (s.type != (uint32_t)u->type)
            continue;
        vd_err r = slot_unwrap(&s, i, hdr.image_id, raw, u, my_pk, kek, master);
        vdc_memzero(&s, sizeof s);
        if (r == VD_OK) {
            /* The image decides: a forged sealed slot's key fails the key
             * check and the superblock MAC (VD_ERR_WRONG_KEY). */
            r = vd_image_open_ex(host, master, opts, rekey, out);
            vdc_memzero(master, VD_KEY_BYTES);
            if (r != VD_ERR_WRONG_KEY)
                e = r; /* opened, or an error of the image itself */
        } else if (r != VD_ERR_WRONG_KEY) {
            slot_err = r;
        }
    }
    vdc_secure_free(master);
    vdc_secure_free(kek);
    if (e == VD_ERR_WRONG_KEY && slot_err != VD_OK)
        e = slot_err;
    else if (e == VD_ERR_WRONG_KEY && malformed)
        e = VD_ERR_CORRUPT;
    return e;
}

/* ---- create ------------------------------------------------------------------ */

typedef struct create_ctx {
    ks_new *slot;
    const uint8_t *master;
} create_ctx;

static vd_err create_fill(void *ctx, const uint8_t image_id[16],
                          uint8_t blk[VDF_BLOCK])
{
    create_ctx *c = ctx;
    memset(blk, 0, VDF_BLOCK);
    return ks_new_seal(c->slot, c->master, image_id, 0, blk);
}

vd_err vd_image_create_unlock(const vd_host *host, const vd_unlock *first,
                              const vd_pwhash_params *pw,
                              const vd_create_opts *copts,
                              const vd_open_opts *oopts, vd_image **out)
{
    if (!out)
        return VD_ERR_INVAL;
    *out = NULL;
    vd_err e = unlock_check(first);
    if (e != VD_OK)
        return e;
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    uint8_t *master = vdc_secure_alloc(VD_KEY_BYTES);
    if (!master)
        return VD_ERR_NOMEM;
    vdc_random(master, VD_KEY_BYTES);
    ks_new n;
    e = ks_new_prepare(&n, first, pw);
    if (e == VD_OK) {
        create_ctx c = {&n, master};
        e = vd_image_create_with(host, master, copts, oopts, create_fill, &c, out);
    }
    ks_new_free(&n);
    vdc_secure_free(master);
    return e;
}

/* ---- a whole key-slot block (rekey.c) ----------------------------------------- */

vd_err vd_keyblock_build(const vd_rekey_slot *slots, unsigned n,
                         const uint8_t *master, const uint8_t image_id[16],
                         uint8_t blk[VDF_BLOCK])
{
    if (!slots || n == 0 || n > KS_SLOTS)
        return VD_ERR_INVAL;
    memset(blk, 0, VDF_BLOCK);
    vd_err e = VD_OK;
    for (unsigned i = 0; e == VD_OK && i < n; i++) {
        ks_new k;
        e = ks_new_prepare(&k, &slots[i].secret, slots[i].pw);
        if (e == VD_OK)
            e = ks_new_seal(&k, master, image_id, i, blk + (size_t)i * KS_SLOT_BYTES);
        ks_new_free(&k);
    }
    if (e != VD_OK)
        vdc_memzero(blk, VDF_BLOCK);
    return e;
}

vd_err vd_keyblock_write(vd_image *img, const uint8_t blk[VDF_BLOCK])
{
    vd_err e = vd_flight_join(img); /* the host's writes stay in order */
    if (e == VD_OK)
        e = vd_io_write(img, img->hdr.keyslot_start * VDF_BLOCK, blk, VDF_BLOCK);
    return e == VD_OK ? vd_io_flush(img) : e;
}

/* ---- add, remove, list ---------------------------------------------------------- */

static vd_err writable_locked(vd_image *img)
{
    if (img->failed)
        return VD_ERR_FAILED;
    if (img->read_only)
        return VD_ERR_READONLY;
    return VD_OK;
}

vd_err vd_keyslot_add(vd_image *img, const vd_unlock *secret,
                      const vd_pwhash_params *pw, int *slot_out)
{
    if (slot_out)
        *slot_out = -1;
    if (!img)
        return VD_ERR_INVAL;
    ks_new n;
    vd_err e = ks_new_prepare(&n, secret, pw); /* Argon2id outside the lock */
    if (e != VD_OK) {
        ks_new_free(&n);
        return e;
    }
    if (pthread_mutex_lock(&img->lock) != 0) {
        ks_new_free(&n);
        return VD_ERR_BUSY;
    }
    uint8_t blk[VDF_BLOCK];
    uint32_t idx = KS_SLOTS;
    e = writable_locked(img);
    if (e == VD_OK)
        e = vd_io_read(img, img->hdr.keyslot_start * VDF_BLOCK, blk, VDF_BLOCK);
    for (uint32_t i = 0; e == VD_OK && i < KS_SLOTS && idx == KS_SLOTS; i++) {
        vd_keyslot s;
        /* Only a well-formed EMPTY slot is reused; a damaged one is left
         * for the user to inspect and remove. */
        if (vd_keyslot_decode(&s, blk + (size_t)i * KS_SLOT_BYTES) == 0 &&
            s.type == KS_TYPE_EMPTY)
            idx = i;
    }
    if (e == VD_OK && idx == KS_SLOTS)
        e = VD_ERR_NOSPC;
    if (e == VD_OK)
        e = ks_new_seal(&n, img->master, img->hdr.image_id, idx,
                        blk + (size_t)idx * KS_SLOT_BYTES);
    if (e == VD_OK)
        e = vd_keyblock_write(img, blk);
    (void)pthread_mutex_unlock(&img->lock);
    ks_new_free(&n);
    if (e == VD_OK && slot_out)
        *slot_out = (int)idx;
    return e;
}

vd_err vd_keyslot_remove(vd_image *img, int slot)
{
    if (!img || slot < 0 || slot >= (int)KS_SLOTS)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    uint8_t blk[VDF_BLOCK];
    vd_err e = writable_locked(img);
    if (e == VD_OK)
        e = vd_io_read(img, img->hdr.keyslot_start * VDF_BLOCK, blk, VDF_BLOCK);
    if (e == VD_OK) {
        vd_keyslot s;
        int target_ok = vd_keyslot_decode(&s, blk + (size_t)slot * KS_SLOT_BYTES) == 0;
        uint32_t others = 0;
        for (uint32_t i = 0; i < KS_SLOTS; i++) {
            vd_keyslot o;
            if ((int)i != slot && vd_keyslot_decode(&o, blk + (size_t)i * KS_SLOT_BYTES) == 0 &&
                o.type != KS_TYPE_EMPTY)
                others++;
        }
        if (target_ok && s.type == KS_TYPE_EMPTY)
            e = VD_ERR_INVAL; /* nothing to remove */
        else if (target_ok && others == 0)
            e = VD_ERR_BUSY; /* the last way in */
    }
    if (e == VD_OK) {
        memset(blk + (size_t)slot * KS_SLOT_BYTES, 0, KS_SLOT_BYTES);
        e = vd_keyblock_write(img, blk);
    }
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}

vd_err vd_keyslot_list(const vd_host *host, vd_slot_info out[VD_KEYSLOTS])
{
    if (!out)
        return VD_ERR_INVAL;
    memset(out, 0, sizeof(vd_slot_info) * KS_SLOTS);
    vd_header hdr;
    uint8_t blk[VDF_BLOCK];
    vd_err e = vd_keyblock_read(host, &hdr, blk);
    if (e != VD_OK)
        return e;
    for (uint32_t i = 0; i < KS_SLOTS; i++) {
        vd_keyslot s;
        if (vd_keyslot_decode(&s, blk + (size_t)i * KS_SLOT_BYTES) != 0) {
            out[i].type = VD_SLOT_EMPTY;
            out[i].status = VD_ERR_CORRUPT;
            continue;
        }
        out[i].type = (vd_slot_type)s.type;
        out[i].status = VD_OK;
        if (s.type == KS_TYPE_PASSPHRASE) {
            out[i].opslimit = s.opslimit;
            out[i].memlimit = s.memlimit;
        } else if (s.type == KS_TYPE_SEALED) {
            memcpy(out[i].recipient, s.recipient, VD_X25519_BYTES);
        }
    }
    return VD_OK;
}

/* ---- keys and guarded memory for callers ----------------------------------------- */

vd_err vd_keypair_generate(uint8_t pk[VD_X25519_BYTES], uint8_t *sk)
{
    if (!pk || !sk)
        return VD_ERR_INVAL;
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    return vdc_box_keypair(pk, sk) == 0 ? VD_OK : VD_ERR_NOMEM;
}

vd_err vd_key_generate(uint8_t *key)
{
    if (!key)
        return VD_ERR_INVAL;
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    vdc_random(key, VD_KEY_BYTES);
    return VD_OK;
}

void *vd_secret_alloc(size_t n)
{
    if (vdc_init() != 0)
        return NULL;
    return vdc_secure_alloc(n);
}

void vd_secret_free(void *p)
{
    vdc_secure_free(p);
}
