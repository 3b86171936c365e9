/* vdisk key slots (R6): the image master key is random, never stored in
 * the clear, and wrapped in up to VD_KEYSLOTS slots of the key-slot block:
 *
 *   PASSPHRASE  KEK = Argon2id(passphrase, salt, opslimit, memlimit);
 *               master wrapped with XChaCha20-Poly1305 under the KEK
 *   KEYFILE     KEK = keyed BLAKE2b(key file (32 bytes), salt || "vd-keyfile");
 *               wrapped the same way
 *   SEALED      crypto_box_seal(master) to an X25519 public key: the Haven
 *               provisioning flow, where whoever builds an image seals its
 *               key to the public key of a shield running in an attested
 *               enclave, and only that shield (its secret key) can open it
 *
 * Wrapped slots authenticate every byte of themselves, the image id and
 * their slot index; a sealed slot is confirmed by the image's key check
 * (anyone with the public key can make a box). A wrong secret is
 * VD_ERR_WRONG_KEY; see docs/FORMAT.md §5 and docs/SECURITY.md R6.
 *
 * Secrets: the library keeps the master key and every key-encryption key in
 * guarded memory (vd_secret_alloc) and wipes them on every path. The
 * caller's passphrase, key file and secret key are the caller's to protect;
 * vd_secret_alloc is there for them. */
#ifndef VDISK_KEYS_H
#define VDISK_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VD_KEYSLOTS 8
#define VD_KEYFILE_BYTES 32u   /* a key file holds exactly 32 random bytes */
#define VD_X25519_BYTES 32u    /* X25519 public and secret keys */

/* Argon2id parameter bounds (the slot records the parameters; a value
 * outside these bounds is refused when adding and makes the slot malformed
 * when read): each within MIN..MAX and opslimit * memlimit <= COST_MAX
 * (= libsodium's "sensitive" level, 4 passes over 1 GiB), which bounds
 * what a host that edits a slot can make one unlock attempt cost.
 * INTERACTIVE = libsodium's crypto_pwhash_*_INTERACTIVE, the default. */
#define VD_PWHASH_OPSLIMIT_MIN 1ull
#define VD_PWHASH_OPSLIMIT_INTERACTIVE 2ull
#define VD_PWHASH_OPSLIMIT_MAX 32ull
#define VD_PWHASH_MEMLIMIT_MIN 8192ull              /* bytes */
#define VD_PWHASH_MEMLIMIT_INTERACTIVE (64ull << 20) /* 64 MiB */
#define VD_PWHASH_MEMLIMIT_MAX (1ull << 30)          /* 1 GiB */
#define VD_PWHASH_COST_MAX (4ull << 30)              /* opslimit * memlimit */

typedef enum vd_slot_type {
    VD_SLOT_EMPTY = 0,
    VD_SLOT_PASSPHRASE = 1,
    VD_SLOT_KEYFILE = 2,
    VD_SLOT_SEALED = 3
} vd_slot_type;

/* A secret that unlocks (or, when adding, defines) a slot:
 *   PASSPHRASE  the passphrase bytes (len >= 1; no terminator needed)
 *   KEYFILE     the 32 bytes of the key file
 *   SEALED      opening: the 32-byte X25519 secret key;
 *               adding / creating: the recipient's 32-byte public key */
typedef struct vd_unlock {
    vd_slot_type type;
    const uint8_t *secret;
    size_t len;
} vd_unlock;

/* Argon2id cost for a new PASSPHRASE slot; a zero field takes the
 * interactive default. NULL = both defaults. */
typedef struct vd_pwhash_params {
    uint64_t opslimit; /* passes */
    uint64_t memlimit; /* bytes */
} vd_pwhash_params;

/* What vd_keyslot_list reports about one slot (no key needed). */
typedef struct vd_slot_info {
    vd_slot_type type;  /* as recorded; EMPTY when status is not VD_OK */
    vd_err status;      /* VD_OK, or VD_ERR_CORRUPT: the slot's bytes are
                           malformed (unknown type, bad parameters, nonzero
                           padding); it can never unlock */
    uint64_t opslimit;  /* PASSPHRASE: Argon2id parameters */
    uint64_t memlimit;
    uint8_t recipient[VD_X25519_BYTES]; /* SEALED: the recipient public key */
} vd_slot_info;

/* Create a new image like vd_image_create, with a random master key (in
 * guarded memory, never returned) wrapped in slot 0 for `first`, and open
 * it read-write. The slot block is written before the header, so an
 * interrupted create never leaves an image without its slot. pw: Argon2id
 * cost for a PASSPHRASE slot (NULL = interactive defaults). */
vd_err vd_image_create_unlock(const vd_host *host, const vd_unlock *first,
                              const vd_pwhash_params *pw,
                              const vd_create_opts *copts,
                              const vd_open_opts *oopts, vd_image **out);

/* Open with a passphrase, a key file or an X25519 secret key: each
 * well-formed slot of that type is tried (sealed slots only when their
 * recipient is the public key of the secret key) until one yields the
 * master key and the image opens with it. Errors:
 *   VD_ERR_WRONG_KEY  no slot of that type, or none opens with this secret
 *   VD_ERR_CORRUPT    none opens, and some slot is malformed (the secret may
 *                     have belonged to it); also a malformed image
 *   VD_ERR_INVAL      bad arguments (NULL, EMPTY type, a key file or secret
 *                     key that is not 32 bytes, an empty passphrase)
 * and every error of vd_image_open (VD_ERR_ROLLBACK, VD_ERR_AUTH, ...). */
vd_err vd_image_open_unlock(const vd_host *host, const vd_unlock *unlock,
                            const vd_open_opts *opts, vd_image **out);

/* Add a slot for `secret` to a writable, open image (it holds the master
 * key) in the first EMPTY slot; its index goes to *slot_out (may be NULL).
 * Rewrites the key-slot block (one 4 KiB write) and flushes. Takes the
 * handle's lock; the Argon2id work of a PASSPHRASE slot runs before the
 * lock is taken. Errors: VD_ERR_NOSPC (no EMPTY slot), VD_ERR_READONLY,
 * VD_ERR_FAILED, VD_ERR_INVAL (bad secret or parameters), VD_ERR_IO. */
vd_err vd_keyslot_add(vd_image *img, const vd_unlock *secret,
                      const vd_pwhash_params *pw, int *slot_out);

/* Empty slot `slot` (0..VD_KEYSLOTS-1) of a writable, open image: the
 * whole slot becomes zero (one 4 KiB write, flushed). Removing the last
 * well-formed non-empty slot is refused with VD_ERR_BUSY (the image would
 * become unopenable); an out-of-range or EMPTY slot is VD_ERR_INVAL. A
 * malformed slot can always be removed. */
vd_err vd_keyslot_remove(vd_image *img, int slot);

/* ---- Key rotation (vhdtool rekey; docs/SECURITY.md R8) ------------------
 * A new random master key: every written block is re-encrypted, the tree
 * and superblocks rebuilt under it, and the key-slot block replaced by
 * slots wrapping it for the secrets given. Afterwards neither the old
 * master key nor a dropped slot's secret opens anything written since.
 * In place and crash-safe: an interrupted rotation leaves an image that
 * opens read-only with the old secrets (before the key slots were
 * replaced) or the new ones (after), and vd_image_rekey run again with a
 * secret that opens it finishes it (docs/FORMAT.md §6). */
typedef struct vd_rekey_slot {
    vd_unlock secret;           /* PASSPHRASE, KEYFILE: the secret; SEALED:
                                   the recipient's public key */
    const vd_pwhash_params *pw; /* PASSPHRASE cost; NULL = defaults */
} vd_rekey_slot;

typedef struct vd_rekey_opts {
    /* The new key-slot block: slot i for slots[i] (1..VD_KEYSLOTS).
     * Ignored when an interrupted rotation is resumed (its slots are in
     * place already). */
    const vd_rekey_slot *slots;
    unsigned nslots;
    const vd_open_opts *open; /* anchor, anchor_mode, cache_bytes, aead_impl;
                                 NULL = defaults */
    /* Called after each committed round with the data blocks covered so
     * far and in all; a non-zero return stops after that round
     * (VD_ERR_REKEY: the rotation is left in progress, resumable). */
    int (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} vd_rekey_opts;

typedef struct vd_rekey_info {
    int resumed;        /* an interrupted rotation was continued */
    int slots_written;  /* this call wrote the new key-slot block: from then
                           on only its secrets open the image */
    uint64_t blocks;    /* data blocks re-encrypted by this call */
    uint64_t epoch;     /* the image's epoch afterwards */
} vd_rekey_info;

/* Rotate the master key of the image on host, unlocked with `unlock` (a
 * secret of the image, or, to resume, of the rotation's new slots).
 * Errors: those of vd_image_open_unlock; VD_ERR_INVAL (no slots for a new
 * rotation, more than VD_KEYSLOTS, a bad secret); VD_ERR_UNSUPPORTED with
 * an anchor whose authorization derives from the key (the TPM anchor:
 * bind a new index with vd_open_opts.anchor_bind afterwards);
 * VD_ERR_ANCHOR_MISMATCH when the image is bound to an anchor and that
 * anchor was not given; VD_ERR_REKEY when progress stopped it. info may
 * be NULL. */
vd_err vd_image_rekey(const vd_host *host, const vd_unlock *unlock,
                      const vd_rekey_opts *opts, vd_rekey_info *info);

/* Describe the slots of an image, without a key. Reads the header and the
 * key-slot block only. */
vd_err vd_keyslot_list(const vd_host *host, vd_slot_info out[VD_KEYSLOTS]);

/* A new X25519 key pair for SEALED slots: pk (public, give it to the image
 * builder) and sk (32 bytes; use vd_secret_alloc memory). */
vd_err vd_keypair_generate(uint8_t pk[VD_X25519_BYTES], uint8_t *sk);

/* 32 random bytes (a key file's contents, or a raw master key). */
vd_err vd_key_generate(uint8_t *key);

/* Guarded memory for secrets (sodium_malloc: guard pages, mlock'ed; NULL
 * on failure). vd_secret_free wipes and frees; NULL is fine. */
void *vd_secret_alloc(size_t n);
void vd_secret_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
