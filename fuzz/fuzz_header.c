/* fuzz_header: the VHD footer and our header block (format.c), the first
 * bytes any tool reads from an untrusted image, then vd_image_probe and
 * vd_keyslot_list over a file made of them.
 *
 * Input: flags (1 byte: bit 0 recompute the header checksum, bit 1 the
 * footer's), header block (4096), footer (512); short inputs are padded
 * with zeros. */
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "image_format.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    return 0;
}

static void check_header(const uint8_t *blk)
{
    vd_header h, h2;
    uint8_t re[VDF_BLOCK];
    memset(&h, 0, sizeof h);
    int r = vd_header_decode(&h, blk);
    FZ_CHECK(r == 0 || r == -1 || r == -2 || r == -3);
    if (r != 0)
        return;
    /* Whatever decodes is a header we would write: encoding it again gives
     * the same bytes (no field ignored, reserved bytes zero) and a layout
     * that fits in the container. */
    vd_header_encode(&h, re);
    FZ_CHECK(memcmp(re, blk, VDF_BLOCK) == 0);
    memset(&h2, 0, sizeof h2);
    FZ_CHECK(vd_header_decode(&h2, re) == 0);
    FZ_CHECK(h.data_start + h.nblocks <= h.total_blocks);
    FZ_CHECK(h.node_start + h.node_blocks <= h.data_start);
    FZ_CHECK(h.journal_start + 2ull * h.journal_blocks <= h.node_start);
}

static void check_footer(const uint8_t *foot)
{
    vhd_footer f;
    uint8_t re[VHD_FOOTER_BYTES];
    memset(&f, 0, sizeof f);
    int r = vhd_footer_decode(&f, foot);
    FZ_CHECK(r == 0 || r == -1 || r == -2);
    if (r != 0)
        return;
    vhd_footer_encode(&f, re);
    vhd_footer g;
    memset(&g, 0, sizeof g);
    FZ_CHECK(vhd_footer_decode(&g, re) == 0);
    FZ_CHECK(g.current_size == f.current_size);
}

/* Header at 0, footer at the end of a file as long as the header claims
 * (bounded), so probe and slot listing get past the size checks. */
static void probe(const uint8_t *blk, const uint8_t *foot)
{
    uint64_t total = fz_le64(blk + HDR_OFF_TOTAL_BLOCKS);
    if (total == 0 || total > 64)
        total = 4;
    size_t size = (size_t)total * VDF_BLOCK + VHD_FOOTER_BYTES;
    uint8_t *file = calloc(1, size);
    vd_host *h = NULL;
    if (!file || vd_host_mem_new(&h) != VD_OK)
        goto out;
    memcpy(file, blk, VDF_BLOCK);
    memcpy(file + size - VHD_FOOTER_BYTES, foot, VHD_FOOTER_BYTES);
    if (vd_host_mem_set(h, file, size) != VD_OK)
        goto out;
    vd_image_info info;
    if (vd_image_probe(h, &info) == VD_OK) {
        FZ_CHECK(info.file_bytes == size);
        FZ_CHECK(info.nblocks <= info.total_blocks);
    }
    vd_slot_info slots[VD_KEYSLOTS];
    (void)vd_keyslot_list(h, slots);
out:
    vd_host_mem_free(h);
    free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t blk[VDF_BLOCK], foot[VHD_FOOTER_BYTES];
    uint8_t flags = size ? data[0] : 0;
    size_t n = size ? size - 1 : 0;
    const uint8_t *p = data + (size ? 1 : 0);
    memset(blk, 0, sizeof blk);
    memset(foot, 0, sizeof foot);
    memcpy(blk, p, n < VDF_BLOCK ? n : VDF_BLOCK);
    if (n > VDF_BLOCK)
        memcpy(foot, p + VDF_BLOCK, n - VDF_BLOCK < VHD_FOOTER_BYTES ? n - VDF_BLOCK
                                                                    : VHD_FOOTER_BYTES);
    if (flags & 1)
        fz_fix_header(blk);
    if (flags & 2)
        fz_fix_footer(foot);
    check_header(blk);
    check_footer(foot);
    probe(blk, foot);
    return 0;
}
