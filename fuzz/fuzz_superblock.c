/* fuzz_superblock: superblock and journal decoding (format.c) and what an
 * open does with them (image.c: slot choice, journal loading, recovery of
 * an interrupted sync, sync.c: the recovery commit), reading every block
 * through the tree (blockio.c) afterwards.
 *
 * Superblocks are MAC'd, so from a host without the key a fuzzed one only
 * fails authentication. To reach the code behind the MAC, the harness
 * holds the template image's key and seals the fuzzed record itself: this
 * tests how the library copes with authentic records it did not write
 * (a bug in an older writer, a key shared with a buggy tool).
 *
 * Input: flags (1 byte), the superblock block (4096), journal bytes (up to
 * the journal size). Flags: bit 0 put the right header digest in, bit 1
 * make slot and epoch parity agree with the slot written, bit 2 compute
 * the journal digest, bit 3 write slot B instead of A, bit 4 also open
 * read-write (runs the recovery commit). */
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "image_internal.h"

#define SMALL_BLOCKS 16u

static uint8_t *tmpl;
static uint64_t tmpl_size;
static fz_cow *cow;
static vd_host *sealer_host;
static vd_image *sealer; /* keys and header digest of the template */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    vd_open_opts o = {.read_only = 1, .aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    if (fz_small_image(SMALL_BLOCKS, &tmpl, &tmpl_size) != VD_OK ||
        fz_cow_new(tmpl, tmpl_size, &cow) != VD_OK || vd_host_mem_new(&sealer_host) != VD_OK ||
        vd_host_mem_set(sealer_host, tmpl, tmpl_size) != VD_OK ||
        vd_image_open(sealer_host, fz_key, &o, &sealer) != VD_OK)
        fz_die(__FILE__, __LINE__, "cannot build the superblock template");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const vd_header *hd = &sealer->hdr;
    size_t jbytes = (size_t)hd->journal_blocks * VDF_BLOCK, done = 0;
    uint8_t *blk = calloc(1, VDF_BLOCK + jbytes);
    if (!blk || size == 0) {
        free(blk);
        return 0;
    }
    uint8_t *jrn = blk + VDF_BLOCK;
    uint8_t flags = data[0];
    memcpy(blk, data + 1, size - 1 < VDF_BLOCK + jbytes ? size - 1 : VDF_BLOCK + jbytes);

    /* The decoders on the raw bytes. */
    vd_super s;
    if (vd_super_decode(&s, blk) == 0) {
        FZ_CHECK(s.slot <= 1);
        FZ_CHECK(s.state == SB_STATE_COMMITTED || s.state == SB_STATE_IN_PROGRESS);
        FZ_CHECK(!s.jinline || s.jcount <= SB_INLINE_MAX);
    }
    for (size_t off = 0; off + JE_BYTES <= jbytes; off += JE_BYTES) {
        vd_jentry je;
        vd_jentry_decode(&je, jrn + off);
    }

    uint32_t slot = (flags >> 3) & 1;
    uint64_t epoch = fz_le64(blk + SB_OFF_EPOCH);
    if (flags & 1)
        memcpy(blk + SB_OFF_HEADER_DIGEST, sealer->header_digest, 32);
    if (flags & 2) {
        blk[SB_OFF_SLOT] = (uint8_t)slot;
        memset(blk + SB_OFF_SLOT + 1, 0, 3);
        epoch = (epoch & ~1ull) | slot;
        fz_put_le64(blk + SB_OFF_EPOCH, epoch);
    }
    if (flags & 4) {
        uint32_t jcount = fz_le32(blk + SB_OFF_JCOUNT);
        uint64_t nblk = ((uint64_t)jcount + JE_PER_BLOCK - 1) / JE_PER_BLOCK;
        if (nblk <= hd->journal_blocks)
            (void)vdc_hash_buf(blk + SB_OFF_JDIGEST, jrn, (size_t)nblk * VDF_BLOCK);
    }
    FZ_CHECK(vd_super_seal(sealer, blk) == VD_OK);

    fz_cow_reset(cow);
    const vd_host *h = fz_cow_host(cow);
    FZ_CHECK(h->write_at(h->ctx, (hd->sb_start + slot) * VDF_BLOCK, blk, VDF_BLOCK, &done) == 0);
    uint64_t jstart = hd->journal_start + (epoch % 2) * hd->journal_blocks;
    FZ_CHECK(h->write_at(h->ctx, jstart * VDF_BLOCK, jrn, jbytes, &done) == 0);

    fz_open_and_read(h, 0, SMALL_BLOCKS, 3);
    if (flags & 16) {
        fz_cow_reset(cow);
        FZ_CHECK(h->write_at(h->ctx, (hd->sb_start + slot) * VDF_BLOCK, blk, VDF_BLOCK, &done) ==
                 0);
        FZ_CHECK(h->write_at(h->ctx, jstart * VDF_BLOCK, jrn, jbytes, &done) == 0);
        fz_open_and_read(h, 1, SMALL_BLOCKS, 3);
    }
    free(blk);
    return 0;
}
