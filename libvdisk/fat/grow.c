/* vd_fs_grow: a bigger FAT32 volume over a bigger image, in one commit
 * (vhdtool resize; docs/FORMAT.md §4).
 *
 * The FAT's length is fixed when the volume is made: it has room for
 * (FAT sectors x 128) - 2 clusters, usually a few more than the volume
 * uses (sector rounding), and as many as mkvhd --max-size reserved. The
 * volume grows within that room: the boot sector and its backup get the
 * new sector count, FSInfo and its backup the new free count; the FAT
 * entries of the new clusters are already zero (free). Those blocks are
 * the writes vd_image_grow commits together with the bigger image, so a
 * crash leaves the old volume on the old image or the new one on the new. */
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

/* Clusters the FAT has entries for (entries 0 and 1 are not clusters). */
static uint32_t fat_room(const vd_fs *fs)
{
    uint64_t n = (uint64_t)fs->fat_sectors * fs->bps / FAT_ENTRY_BYTES - FAT_FIRST_CLUSTER;
    uint64_t most = FAT32_MAX_CLUSTERS - FAT_FIRST_CLUSTER;
    return (uint32_t)(n < most ? n : most);
}

/* The volume bytes of nclusters clusters, rounded down to image blocks
 * (and within FAT32's 32-bit sector count). */
static uint64_t volume_bytes(const vd_fs *fs, uint32_t nclusters)
{
    uint64_t b = fs->data_off + (uint64_t)nclusters * fs->cluster_bytes;
    uint64_t most = (uint64_t)0xFFFFFFFFu * fs->bps;
    if (b > most)
        b = most;
    return b / FAT_BLOCK * FAT_BLOCK;
}

static vd_err locked_grow_limit(vd_fs *fs, uint64_t *bytes)
{
    if (!fs || !bytes)
        return VD_ERR_INVAL;
    *bytes = volume_bytes(fs, fat_room(fs));
    return VD_OK;
}

/* Sector sec of the volume with its 32-bit field at off set to v. */
static vd_err set_field(vd_fs *fs, uint32_t sec, uint32_t off, uint32_t v)
{
    uint8_t b[512];
    uint64_t at = (uint64_t)sec * fs->bps;
    vd_err e = fat_dev_read(fs, at, b, sizeof b);
    if (e != VD_OK)
        return e;
    vd_put_le32(b + off, v);
    return fat_dev_write(fs, at, b, sizeof b);
}

/* The boot sectors' sector count and the FSInfo free counts (primary and
 * backup of each, as mkfs.fat and fsck.fat keep them). */
static vd_err write_size(vd_fs *fs, uint32_t total_sectors, uint32_t free_count)
{
    uint8_t b[512];
    vd_err e = fat_dev_read(fs, 0, b, sizeof b);
    if (e != VD_OK)
        return e;
    uint32_t backup = vd_get_le16(b + BPB_BK_BOOT_SEC);
    e = set_field(fs, 0, BPB_TOT_SEC32, total_sectors);
    if (e == VD_OK && backup && backup < fs->rsvd)
        e = set_field(fs, backup, BPB_TOT_SEC32, total_sectors);
    if (e == VD_OK && fs->fsinfo_sec)
        e = set_field(fs, fs->fsinfo_sec, FSI_FREE_COUNT, free_count);
    if (e == VD_OK && fs->fsinfo_sec && backup && backup + 1 < fs->rsvd) {
        /* The backup FSInfo, when it is one (mkfs.fat puts it after the
         * backup boot sector). */
        e = fat_dev_read(fs, (uint64_t)(backup + 1) * fs->bps, b, sizeof b);
        if (e == VD_OK && vd_get_le32(b + FSI_LEAD_SIG) == FSI_LEAD_VALUE)
            e = set_field(fs, backup + 1, FSI_FREE_COUNT, free_count);
    }
    return e == VD_OK ? fat_dev_flush(fs) : e;
}

static vd_err locked_grow(vd_fs *fs, uint64_t bytes)
{
    if (!fs->img)
        return VD_ERR_UNSUPPORTED; /* grows through vd_image_grow */
    if (fs->read_only)
        return VD_ERR_READONLY;
    bytes = bytes / FAT_BLOCK * FAT_BLOCK;
    if (bytes <= fs->img_bytes)
        return VD_ERR_INVAL;
    uint64_t limit;
    vd_err e = locked_grow_limit(fs, &limit);
    if (e == VD_OK && bytes > limit)
        e = VD_ERR_RANGE; /* vd_fs_grow_limit says how far it can go */
    /* Everything so far committed on its own: the grow's commit holds the
     * size change alone. */
    if (e == VD_OK)
        e = fat_op_end(fs, VD_OK);
    if (e == VD_OK)
        e = vd_image_sync(fs->img);
    if (e == VD_OK)
        e = fat_count_free(fs);
    if (e != VD_OK)
        return e;
    uint64_t sectors = bytes / fs->bps;
    uint32_t nclusters = (uint32_t)((sectors - fs->data_off / fs->bps) / fs->spc);
    /* The new clusters' entries must be free already (mkfs zeroes the
     * whole FAT): the commit below does not touch the FAT. */
    for (uint32_t c = fs->nclusters + FAT_FIRST_CLUSTER;
         e == VD_OK && c < nclusters + FAT_FIRST_CLUSTER; c++) {
        uint32_t v = 0;
        uint32_t keep = fs->nclusters;
        fs->nclusters = nclusters; /* fat_get checks the range */
        e = fat_get(fs, c, &v);
        fs->nclusters = keep;
        if (e == VD_OK && v != FAT_FREE)
            e = VD_ERR_CORRUPT;
    }
    uint32_t added = nclusters - fs->nclusters;
    if (e == VD_OK)
        e = write_size(fs, (uint32_t)sectors, fs->free_count + added);
    if (e == VD_OK)
        e = vd_image_grow(fs->img, bytes / FAT_BLOCK);
    vd_image_info info;
    int grown = vd_image_info_get(fs->img, &info) == VD_OK &&
                info.nblocks * FAT_BLOCK >= bytes;
    if (e != VD_OK && !grown) {
        /* Not grown: the sectors go back to what the volume says, so
         * nothing commits them later. */
        if (!info.failed)
            (void)write_size(fs, fs->total_sectors, fs->free_count);
        return e;
    }
    /* Grown (e: the anchor's failure after the commit, reported too). */
    fs->total_sectors = (uint32_t)sectors;
    fs->nclusters = nclusters;
    fs->free_count += added;
    fs->fsinfo_free = fs->free_count;
    fs->img_bytes = bytes;
    fs->dev.nblocks = bytes / FAT_BLOCK;
    return e;
}

vd_err vd_fs_grow(vd_fs *fs, uint64_t bytes)
{
    if (!fs)
        return VD_ERR_INVAL;
    fat_lock(fs);
    vd_err e = locked_grow(fs, bytes);
    fat_unlock(fs);
    return e;
}

vd_err vd_fs_grow_limit(vd_fs *fs, uint64_t *bytes)
{
    if (!fs)
        return VD_ERR_INVAL;
    fat_lock(fs);
    vd_err e = locked_grow_limit(fs, bytes);
    fat_unlock(fs);
    return e;
}
