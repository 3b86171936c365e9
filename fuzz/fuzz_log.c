/* fuzz_log: the leaf-version log (format 6, docs/FORMAT.md §7b) as an open
 * reads it: each block's framing (vd_logblk_check), the hash chain against
 * the record, the versions applied over the level-1 nodes (image.c), then
 * every block read through them; and a writable session on top, whose
 * sync appends to the log or drains it.
 *
 * The log is covered by a hash chain whose head the MAC'd record carries,
 * so from a host without the key a changed block only breaks the chain.
 * As fuzz_superblock does for records, the harness holds the template's
 * key: with flags bit 0 it puts the chain head of the fuzzed blocks into
 * the newest record and seals it, which tests how the library copes with
 * authentic logs it did not write (entries past the image, repeated
 * blocks, versions of blocks never written, counts at the limits). The
 * record's one-flush digest covers the last log block, which stays the
 * template's; the blocks before it come from the input.
 *
 * Input: flags (1 byte: bit 0 fix the chain head, bit 1 also open
 * read-write), then up to FZ_LOG_COMMITS - 1 log blocks (log blocks 0, 1,
 * ...; a short last one is laid over the template's). */
#include <string.h>

#include "fz_common.h"
#include "image_internal.h"

static uint8_t *tmpl;
static uint64_t tmpl_size;
static fz_cow *cow;
static vd_host *sealer_host;
static vd_image *sealer; /* the template's keys, to seal records */
static uint32_t newest;  /* the slot of the record that names the log */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    vd_open_opts o = {.read_only = 1, .aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    if (fz_log_image(&tmpl, &tmpl_size) != VD_OK || fz_cow_new(tmpl, tmpl_size, &cow) != VD_OK ||
        vd_host_mem_new(&sealer_host) != VD_OK ||
        vd_host_mem_set(sealer_host, tmpl, tmpl_size) != VD_OK ||
        vd_image_open(sealer_host, fz_key, &o, &sealer) != VD_OK)
        fz_die(__FILE__, __LINE__, "cannot build the log template");
    const vd_header *hd = &sealer->hdr;
    const uint8_t *a = tmpl + hd->sb_start * VDF_BLOCK, *b = a + VDF_BLOCK;
    newest = fz_le64(b + SB_OFF_EPOCH) > fz_le64(a + SB_OFF_EPOCH);
    const uint8_t *sb = newest ? b : a;
    if (!(fz_le32(sb + SB_OFF_FLAGS) & SB_FLAG_LOG) ||
        fz_le32(sb + SB_LOG_OFF_LEN) != FZ_LOG_COMMITS)
        fz_die(__FILE__, __LINE__, "the template's newest record names no log");
    return 0;
}

/* The template with the input's log blocks in; with fix, the newest record
 * names their chain's head. */
static void lay_out(const vd_host *h, const uint8_t *in, size_t n, int fix)
{
    const vd_header *hd = &sealer->hdr;
    const uint64_t log0 = vd_header_log_start(hd);
    uint8_t blk[VDF_BLOCK], head[32] = {0};
    size_t done = 0;
    fz_cow_reset(cow);
    for (uint32_t i = 0; i < FZ_LOG_COMMITS; i++) {
        FZ_CHECK(h->read_at(h->ctx, (log0 + i) * VDF_BLOCK, blk, VDF_BLOCK, &done) == 0);
        if (i + 1 < FZ_LOG_COMMITS && (size_t)i * VDF_BLOCK < n) {
            size_t k = n - (size_t)i * VDF_BLOCK;
            memcpy(blk, in + (size_t)i * VDF_BLOCK, k < VDF_BLOCK ? k : VDF_BLOCK);
            FZ_CHECK(h->write_at(h->ctx, (log0 + i) * VDF_BLOCK, blk, VDF_BLOCK, &done) == 0);
        }
        uint32_t count = fz_le32(blk + LB_OFF_COUNT);
        FZ_CHECK(vd_logblk_chain(head, blk, count > LB_MAX ? LB_MAX : count, head) == 0);
    }
    if (!fix)
        return;
    uint8_t sb[VDF_BLOCK];
    memcpy(sb, tmpl + (hd->sb_start + newest) * VDF_BLOCK, VDF_BLOCK);
    memcpy(sb + SB_LOG_OFF_HEAD, head, 32);
    FZ_CHECK(vd_super_seal(sealer, sb) == VD_OK);
    FZ_CHECK(h->write_at(h->ctx, (hd->sb_start + newest) * VDF_BLOCK, sb, VDF_BLOCK, &done) ==
             0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t flags = data[0];
    const vd_host *h = fz_cow_host(cow);

    /* The decoder on the raw bytes. */
    for (size_t off = 1; off + VDF_BLOCK <= size; off += VDF_BLOCK) {
        uint32_t count = 0;
        if (vd_logblk_check(data + off, (uint32_t)((off - 1) / VDF_BLOCK), &count) == 0)
            FZ_CHECK(count >= 1 && count <= LB_MAX);
    }

    lay_out(h, data + 1, size - 1, flags & 1);
    fz_open_and_read(h, 0, 16, 5);
    if (flags & 2) {
        lay_out(h, data + 1, size - 1, flags & 1);
        fz_open_and_read(h, 1, 16, 5);
    }
    return 0;
}
