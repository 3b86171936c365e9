/* fuzz_keyslot: the key-slot block (keyslot.c), which is not MAC'd and is
 * parsed before anything can be authenticated: every slot decoded on its
 * own, then the whole block put into a real image (key file + sealed
 * slots) and listed, and opened with the key file and the X25519 secret
 * key. Passphrase slots are listed but never tried: Argon2id at the
 * parameters a hostile slot may carry is meant to be slow.
 *
 * Input: the 4096-byte key-slot block (padded with zeros). */
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "image_format.h"

static uint8_t *tmpl;
static uint64_t tmpl_size;
static fz_cow *cow;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    if (fz_slot_image(&tmpl, &tmpl_size) != VD_OK || fz_cow_new(tmpl, tmpl_size, &cow) != VD_OK)
        fz_die(__FILE__, __LINE__, "cannot build the key-slot template");
    return 0;
}

static void decode_slots(const uint8_t *blk)
{
    for (unsigned i = 0; i < KS_SLOTS; i++) {
        const uint8_t *in = blk + i * KS_SLOT_BYTES;
        vd_keyslot s;
        uint8_t re[KS_SLOT_BYTES];
        memset(&s, 0, sizeof s);
        int r = vd_keyslot_decode(&s, in);
        FZ_CHECK(r == 0 || r == -2);
        if (r != 0)
            continue;
        /* A slot that decodes is one we would write, byte for byte. */
        vd_keyslot_encode(&s, re);
        FZ_CHECK(memcmp(re, in, KS_SLOT_BYTES) == 0);
        if (s.type == KS_TYPE_PASSPHRASE) {
            FZ_CHECK(s.opslimit >= KS_OPSLIMIT_MIN && s.opslimit <= KS_OPSLIMIT_MAX);
            FZ_CHECK(s.memlimit >= KS_MEMLIMIT_MIN && s.memlimit <= KS_MEMLIMIT_MAX);
            FZ_CHECK(s.opslimit * s.memlimit <= KS_COST_MAX);
        }
    }
}

static void try_open(const vd_host *h, vd_slot_type type, const uint8_t *secret)
{
    vd_unlock u = {.type = type, .secret = secret, .len = 32};
    vd_open_opts o = {.read_only = 1, .aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_image *img = NULL;
    vd_err e = vd_image_open_unlock(h, &u, &o, &img);
    if (e == VD_OK) {
        uint8_t b[VD_BLOCK_SIZE];
        (void)vd_image_read(img, 0, 1, b);
        (void)vd_image_close(img);
    } else {
        FZ_CHECK(img == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t blk[VDF_BLOCK];
    size_t done = 0;
    memset(blk, 0, sizeof blk);
    memcpy(blk, data, size < sizeof blk ? size : sizeof blk);
    decode_slots(blk);

    fz_cow_reset(cow);
    const vd_host *h = fz_cow_host(cow);
    /* Block 1 is the key-slot block (image_format.h). */
    FZ_CHECK(h->write_at(h->ctx, VDF_BLOCK, blk, sizeof blk, &done) == 0);
    vd_slot_info info[VD_KEYSLOTS];
    if (vd_keyslot_list(h, info) == VD_OK) {
        for (unsigned i = 0; i < VD_KEYSLOTS; i++)
            FZ_CHECK(info[i].status == VD_OK || info[i].status == VD_ERR_CORRUPT);
    }
    try_open(h, VD_SLOT_KEYFILE, fz_keyfile);
    try_open(h, VD_SLOT_SEALED, fz_x25519_sk);
    return 0;
}
