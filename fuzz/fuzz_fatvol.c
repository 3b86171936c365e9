/* fuzz_fatvol: a plaintext FAT32 volume from fuzzed bytes, written through
 * vd_image_write into a valid encrypted image, then mounted and walked:
 * every directory listed, every file stat'ed and read, statfs, a few
 * writes, unmount. This reaches the FAT parsers through the real paths:
 * boot sector and FSInfo (bpb.c, mount.c), FAT chains (table.c, node.c:
 * loops, cross-links, out-of-range clusters, bad and free entries in a
 * chain), directories (dir.c), and allocation over a corrupted FAT.
 *
 * Input: patch records over the template volume (a real, populated 40 MiB
 * FAT32 volume), each
 *   u8 region | u16 offset (LE) | u8 length | length bytes
 * region % 5: 0 the reserved area (boot sector, FSInfo, backup) from byte
 * 0; 1 the first FAT; 2 the second FAT; 3 the data region (cluster 2 is
 * the root directory); 4 anywhere, at offset * 512. Bit 7 of the first
 * byte also remounts read-only and walks again after the writes. */
#include <string.h>

#include "fz_common.h"

#define MAX_RECORDS 64u

static fz_volume vol;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    if (fz_volume_setup(&vol) != VD_OK)
        fz_die(__FILE__, __LINE__, "cannot build the volume template");
    return 0;
}

static uint64_t region_base(uint8_t r, uint16_t off)
{
    switch (r % 5) {
    case 0:
        return off;
    case 1:
        return vol.fat_off[0] + off;
    case 2:
        return vol.fat_off[vol.nfats > 1 ? 1 : 0] + off;
    case 3:
        return vol.data_off + off;
    default:
        return (uint64_t)off * 512u;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    vd_err e = fz_volume_open(&vol, &img);
    FZ_CHECK(e == VD_OK);
    size_t i = 0;
    for (unsigned r = 0; r < MAX_RECORDS && i + 4 <= size && e == VD_OK; r++) {
        uint8_t region = data[i];
        uint16_t off = (uint16_t)(data[i + 1] | data[i + 2] << 8);
        size_t len = data[i + 3];
        i += 4;
        if (len > size - i)
            len = size - i;
        e = fz_patch(img, vol.vol_bytes, region_base(region, off), data + i, len);
        i += len;
    }
    FZ_CHECK(e == VD_OK);
    if (vd_fs_mount(img, NULL, &fs) == VD_OK) {
        fz_walk(fs);
        fz_mutate(fs);
        (void)vd_fs_sync(fs);
        (void)vd_fs_unmount(fs);
    }
    /* What the writes above left behind, read back by a fresh mount. */
    vd_fs_opts ro = {.read_only = 1};
    if (size > 0 && (data[0] & 0x80) && vd_fs_mount(img, &ro, &fs) == VD_OK) {
        fz_walk(fs);
        (void)vd_fs_unmount(fs);
    }
    (void)vd_image_close(img);
    return 0;
}
