/* fuzz_bpb: the FAT32 boot sector decoder (fat/bpb.c), which every mount
 * runs first on bytes from the volume. What it accepts must describe a
 * volume that fits the image and a FAT that covers every cluster; the
 * mount trusts that geometry from then on.
 *
 * Input: volume size in bytes (u64 LE), then the boot sector (padded to
 * 4096 bytes; the decoder may look past 512 for larger sectors). */
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"
#include "fz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sec[4096];
    if (size < 8)
        return 0;
    uint64_t vol = fz_le64(data);
    memset(sec, 0, sizeof sec);
    memcpy(sec, data + 8, size - 8 < sizeof sec ? size - 8 : sizeof sec);

    fat_geom g;
    uint32_t nclus = 0;
    memset(&g, 0, sizeof g);
    if (fat_bpb_decode(sec, vol, &g, &nclus) != VD_OK)
        return 0;
    /* The invariants the rest of the layer relies on. */
    uint64_t meta = (uint64_t)g.rsvd + (uint64_t)g.nfats * g.fat_sectors;
    FZ_CHECK(g.bps >= 512 && g.bps <= 4096 && (g.bps & (g.bps - 1)) == 0);
    FZ_CHECK(g.spc >= 1 && (g.spc & (g.spc - 1)) == 0);
    FZ_CHECK(g.nfats == 1 || g.nfats == 2);
    FZ_CHECK((uint64_t)g.total_sectors * g.bps <= vol);
    FZ_CHECK(meta + (uint64_t)nclus * g.spc <= g.total_sectors);
    FZ_CHECK(nclus >= FAT32_MIN_CLUSTERS);
    FZ_CHECK((uint64_t)g.fat_sectors * g.bps / FAT_ENTRY_BYTES >= (uint64_t)nclus + 2);
    FZ_CHECK(g.root_clus >= 2 && g.root_clus - 2 < nclus);

    /* Encoding the decoded geometry gives a boot sector that decodes to
     * the same geometry. */
    uint8_t re[4096];
    fat_geom g2;
    uint32_t n2 = 0;
    memset(re, 0, sizeof re);
    memset(&g2, 0, sizeof g2);
    fat_bpb_encode(&g, re);
    FZ_CHECK(fat_bpb_decode(re, vol, &g2, &n2) == VD_OK);
    FZ_CHECK(n2 == nclus && g2.bps == g.bps && g2.spc == g.spc && g2.rsvd == g.rsvd &&
             g2.nfats == g.nfats && g2.fat_sectors == g.fat_sectors &&
             g2.total_sectors == g.total_sectors && g2.root_clus == g.root_clus);

    uint8_t fsi[512];
    fat_fsinfo_encode(fsi, nclus, 3);
    FZ_CHECK(fz_le32(fsi + FSI_LEAD_SIG) == FSI_LEAD_VALUE);
    return 0;
}
