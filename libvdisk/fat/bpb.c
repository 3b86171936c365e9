/* The FAT32 boot sector (BPB) and FSInfo sector. Decoding checks every
 * field a foreign or hostile volume could get wrong, so later code can
 * trust the geometry: a bad volume is VD_ERR_CORRUPT here, never a crash
 * or an out-of-range access later. */
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

static int pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

vd_err fat_bpb_decode(const uint8_t *s, uint64_t vol_bytes, fat_geom *g,
                      uint32_t *nclusters)
{
    memset(g, 0, sizeof *g);
    if (!(s[BPB_JMP] == 0xEB && s[BPB_JMP + 2] == 0x90) && s[BPB_JMP] != 0xE9)
        return VD_ERR_CORRUPT;
    if (s[BS_SIGNATURE] != 0x55 || s[BS_SIGNATURE + 1] != 0xAA)
        return VD_ERR_CORRUPT;
    g->bps = vd_get_le16(s + BPB_BYTES_PER_SEC);
    g->spc = s[BPB_SEC_PER_CLUS];
    g->rsvd = vd_get_le16(s + BPB_RSVD_SEC);
    g->nfats = s[BPB_NUM_FATS];
    g->media = s[BPB_MEDIA];
    g->total_sectors = vd_get_le32(s + BPB_TOT_SEC32);
    g->fat_sectors = vd_get_le32(s + BPB_FAT_SZ32);
    g->ext_flags = vd_get_le16(s + BPB_EXT_FLAGS);
    g->root_clus = vd_get_le32(s + BPB_ROOT_CLUS);
    g->fsinfo_sec = vd_get_le16(s + BPB_FS_INFO);
    g->backup_sec = vd_get_le16(s + BPB_BK_BOOT_SEC);
    if (s[BS_BOOT_SIG] == 0x29) {
        g->volume_id = vd_get_le32(s + BS_VOL_ID);
        memcpy(g->label, s + BS_VOL_LAB, 11);
    } else {
        memset(g->label, ' ', 11);
    }
    if (!pow2(g->bps) || g->bps < 512 || g->bps > 4096)
        return VD_ERR_CORRUPT;
    if (!pow2(g->spc) || (uint64_t)g->spc * g->bps > 256u * 1024)
        return VD_ERR_CORRUPT;
    if (g->rsvd == 0 || g->nfats < 1 || g->nfats > 2)
        return VD_ERR_CORRUPT;
    /* FAT12/16 fields must be zero on FAT32. */
    if (vd_get_le16(s + BPB_ROOT_ENT) != 0 || vd_get_le16(s + BPB_FAT_SZ16) != 0)
        return VD_ERR_CORRUPT;
    uint32_t tot16 = vd_get_le16(s + BPB_TOT_SEC16);
    if (tot16 != 0 && g->total_sectors == 0)
        g->total_sectors = tot16;
    if (g->media != 0xF0 && g->media < 0xF8)
        return VD_ERR_CORRUPT;
    if (vd_get_le16(s + BPB_FS_VER) != 0)
        return VD_ERR_UNSUPPORTED;
    if (g->total_sectors == 0 || g->fat_sectors == 0)
        return VD_ERR_CORRUPT;
    if ((uint64_t)g->total_sectors * g->bps > vol_bytes)
        return VD_ERR_CORRUPT; /* the volume claims more than the image */
    uint64_t meta = (uint64_t)g->rsvd + (uint64_t)g->nfats * g->fat_sectors;
    if (meta >= g->total_sectors)
        return VD_ERR_CORRUPT;
    uint64_t clusters = (g->total_sectors - meta) / g->spc;
    if (clusters < FAT32_MIN_CLUSTERS)
        return VD_ERR_CORRUPT; /* FAT12/16 or nonsense: not FAT32 */
    if (clusters > FAT32_MAX_CLUSTERS - FAT_FIRST_CLUSTER)
        return VD_ERR_CORRUPT;
    if ((uint64_t)g->fat_sectors * g->bps / FAT_ENTRY_BYTES <
        clusters + FAT_FIRST_CLUSTER)
        return VD_ERR_CORRUPT; /* the FAT cannot describe every cluster */
    if (g->root_clus < FAT_FIRST_CLUSTER || g->root_clus - FAT_FIRST_CLUSTER >= clusters)
        return VD_ERR_CORRUPT;
    if ((g->ext_flags & 0x80) && (g->ext_flags & 0x0F) >= g->nfats)
        return VD_ERR_CORRUPT;
    *nclusters = (uint32_t)clusters;
    return VD_OK;
}

void fat_bpb_encode(const fat_geom *g, uint8_t s[512])
{
    memset(s, 0, 512);
    s[BPB_JMP] = 0xEB;
    s[BPB_JMP + 1] = 0x58;
    s[BPB_JMP + 2] = 0x90;
    memcpy(s + BPB_OEM, "mkfs.fat", 8); /* what tools expect to see */
    vd_put_le16(s + BPB_BYTES_PER_SEC, (uint16_t)g->bps);
    s[BPB_SEC_PER_CLUS] = (uint8_t)g->spc;
    vd_put_le16(s + BPB_RSVD_SEC, (uint16_t)g->rsvd);
    s[BPB_NUM_FATS] = (uint8_t)g->nfats;
    s[BPB_MEDIA] = (uint8_t)g->media;
    vd_put_le16(s + BPB_SEC_PER_TRK, 32);
    vd_put_le16(s + BPB_NUM_HEADS, 64);
    vd_put_le32(s + BPB_TOT_SEC32, g->total_sectors);
    vd_put_le32(s + BPB_FAT_SZ32, g->fat_sectors);
    vd_put_le32(s + BPB_ROOT_CLUS, g->root_clus);
    vd_put_le16(s + BPB_FS_INFO, (uint16_t)g->fsinfo_sec);
    vd_put_le16(s + BPB_BK_BOOT_SEC, (uint16_t)g->backup_sec);
    s[BS_DRV_NUM] = 0x80;
    s[BS_BOOT_SIG] = 0x29;
    vd_put_le32(s + BS_VOL_ID, g->volume_id);
    memcpy(s + BS_VOL_LAB, g->label, 11);
    memcpy(s + BS_FS_TYPE, "FAT32   ", 8);
    /* Not bootable: a tiny loop in place of boot code, as mkfs.fat's
     * message stub would need a real BIOS anyway. */
    s[BS_BOOT_CODE] = 0xF4; /* hlt */
    s[BS_BOOT_CODE + 1] = 0xEB;
    s[BS_BOOT_CODE + 2] = 0xFD; /* jmp $-1 */
    s[BS_SIGNATURE] = 0x55;
    s[BS_SIGNATURE + 1] = 0xAA;
}

void fat_fsinfo_encode(uint8_t s[512], uint32_t free_count, uint32_t next_free)
{
    memset(s, 0, 512);
    vd_put_le32(s + FSI_LEAD_SIG, FSI_LEAD_VALUE);
    vd_put_le32(s + FSI_STRUC_SIG, FSI_STRUC_VALUE);
    vd_put_le32(s + FSI_FREE_COUNT, free_count);
    vd_put_le32(s + FSI_NXT_FREE, next_free);
    vd_put_le32(s + FSI_TRAIL_SIG, FSI_TRAIL_VALUE);
}
