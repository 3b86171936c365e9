/* fuzz_image: a whole image file from the fuzzer, as a hostile host would
 * serve it: probe, list the key slots, open with the (fixed) key and read
 * every block, then open read-write, write and sync. Almost every fuzzed
 * ciphertext fails authentication, which is the point: the result must be
 * an error, never a crash or a block accepted. fuzz_fatvol reaches the
 * file system behind a valid image.
 *
 * Input: flags (1 byte: bit 0 recompute the header checksum, bit 1 the
 * footer's, bit 2 skip the read-write open), then the image file (header
 * at 0, VHD footer in the last 512 bytes). */
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "image_format.h"

#define MAX_READ_BLOCKS 512u

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    return 0;
}

static void read_all(vd_image *img)
{
    vd_image_info info;
    uint8_t b[VD_BLOCK_SIZE];
    if (vd_image_info_get(img, &info) != VD_OK)
        return;
    uint64_t n = info.nblocks < MAX_READ_BLOCKS ? info.nblocks : MAX_READ_BLOCKS;
    for (uint64_t l = 0; l < n; l++) {
        vd_err e = vd_image_read(img, l, 1, b);
        if (e == VD_ERR_FAILED)
            break;
    }
    vd_bad_range bad;
    (void)vd_image_last_failure(img, &bad);
}

static void try_open(const vd_host *h, int writable)
{
    vd_open_opts o = {.read_only = !writable, .aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_image *img = NULL;
    if (vd_image_open(h, fz_key, &o, &img) != VD_OK) {
        FZ_CHECK(img == NULL);
        return;
    }
    read_all(img);
    if (writable) {
        uint8_t b[VD_BLOCK_SIZE];
        memset(b, 0x5A, sizeof b);
        if (vd_image_write(img, 0, 1, b) == VD_OK)
            (void)vd_image_sync(img);
    }
    (void)vd_image_close(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 + VDF_BLOCK + VHD_FOOTER_BYTES || size > (8u << 20))
        return 0;
    uint8_t flags = data[0];
    size_t n = size - 1;
    uint8_t *file = malloc(n);
    vd_host *h = NULL;
    if (!file)
        return 0;
    memcpy(file, data + 1, n);
    if (flags & 1)
        fz_fix_header(file);
    if (flags & 2)
        fz_fix_footer(file + n - VHD_FOOTER_BYTES);
    if (vd_host_mem_new(&h) != VD_OK || vd_host_mem_set(h, file, n) != VD_OK)
        goto out;

    vd_image_info info;
    if (vd_image_probe(h, &info) == VD_OK)
        FZ_CHECK(info.file_bytes == n);
    vd_slot_info slots[VD_KEYSLOTS];
    (void)vd_keyslot_list(h, slots);
    try_open(h, 0);
    if (!(flags & 4)) {
        if (vd_host_mem_set(h, file, n) == VD_OK)
            try_open(h, 1);
    }
out:
    vd_host_mem_free(h);
    free(file);
    return 0;
}
