/* vd_fs_format: a FAT32 volume over the whole image, laid out as mkfs.fat
 * would (32+ reserved sectors, boot sector backup at 6, FSInfo at 1 with
 * its copy at 7, two FATs), except that the reserved area is padded so the
 * data region starts on a 4 KiB (and cluster) boundary: then every cluster
 * of 4 KiB or more is exactly whole image blocks. */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

/* mkfs.fat's FAT32 choice (after Microsoft's format): <= 260 MiB 512 B,
 * <= 8 GiB 4 KiB, <= 16 GiB 8 KiB, <= 32 GiB 16 KiB, else 32 KiB. */
uint32_t vd_fs_default_cluster_bytes(uint64_t bytes)
{
    uint64_t mb = (bytes + (1u << 20) - 1) >> 20;
    if (mb > 32 * 1024)
        return 32768;
    if (mb > 16 * 1024)
        return 16384;
    if (mb > 8 * 1024)
        return 8192;
    if (mb > 260)
        return 4096;
    return 512;
}

/* FAT sectors that describe clusters 0 .. clusters + 1. */
static uint64_t fat_need(uint64_t clusters)
{
    return ((clusters + 2) * FAT_ENTRY_BYTES + FAT_SECTOR - 1) / FAT_SECTOR;
}

/* The reserved sectors (padded so the data area starts aligned) and the
 * clusters left for a FAT of fatsz sectors; -1 when nothing is left. */
static int fit(uint64_t tot, uint32_t spc, uint32_t align, uint64_t fatsz,
               uint64_t *rsvd, uint64_t *clusters)
{
    uint64_t meta = FAT_RSVD_MIN + FAT_NUM_FATS * fatsz;
    *rsvd = FAT_RSVD_MIN + (align - meta % align) % align;
    meta = *rsvd + FAT_NUM_FATS * fatsz;
    if (meta >= tot)
        return -1;
    *clusters = (tot - meta) / spc;
    return 0;
}

static vd_err layout(uint64_t bytes, uint64_t max_bytes, uint32_t cluster_bytes,
                     fat_geom *g, uint32_t *nclusters)
{
    uint64_t tot = bytes / FAT_SECTOR;
    if (tot > 0xFFFFFFFFu)
        tot = 0xFFFFFFFFu; /* FAT32 counts sectors in 32 bits (2 TiB) */
    uint32_t spc = cluster_bytes / FAT_SECTOR;
    uint32_t align = (cluster_bytes > FAT_BLOCK ? cluster_bytes : FAT_BLOCK) / FAT_SECTOR;
    uint64_t fatsz = fat_need(tot / spc);
    uint64_t rsvd = 0, clusters = 0;
    /* Shrink the FAT to what the clusters left after it need; a few
     * rounds reach the fixed point. */
    for (int round = 0; round < 16; round++) {
        if (fit(tot, spc, align, fatsz, &rsvd, &clusters) != 0)
            return VD_ERR_RANGE;
        uint64_t need = fat_need(clusters);
        if (need == fatsz)
            break;
        fatsz = need; /* shrunk, or grown after an overshoot: count again */
    }
    /* The rounds may end between two sizes (a smaller FAT leaves clusters
     * it cannot describe, the bigger one fewer than fill it), and with
     * clusters counted for the other size. Settle on the FAT that covers
     * its own clusters, counted again: the BPB's geometry then gives
     * exactly these clusters at mount (a 64 MiB image's FSInfo said two
     * clusters more than its FAT held). */
    for (;;) {
        if (fit(tot, spc, align, fatsz, &rsvd, &clusters) != 0)
            return VD_ERR_RANGE;
        uint64_t need = fat_need(clusters);
        if (need <= fatsz)
            break;
        fatsz = need; /* more FAT, fewer clusters: ends */
    }
    /* Room to grow (vd_mkfs_opts.max_bytes, vd_fs_grow): a FAT with
     * entries for the clusters of max_bytes, at this cluster size. */
    if (max_bytes > bytes) {
        uint64_t mtot = max_bytes / FAT_SECTOR > 0xFFFFFFFFu ? 0xFFFFFFFFu
                                                             : max_bytes / FAT_SECTOR;
        uint64_t mclus = mtot / spc;
        if (mclus > FAT32_MAX_CLUSTERS - FAT_FIRST_CLUSTER)
            mclus = FAT32_MAX_CLUSTERS - FAT_FIRST_CLUSTER;
        uint64_t want = fat_need(mclus);
        if (want > fatsz) {
            fatsz = want;
            if (fit(tot, spc, align, fatsz, &rsvd, &clusters) != 0)
                return VD_ERR_RANGE;
        }
    }
    if ((fatsz * FAT_SECTOR) / FAT_ENTRY_BYTES < clusters + 2)
        return VD_ERR_RANGE;
    /* Fewer than 65525 clusters would make this FAT16 by definition (the
     * cluster count alone decides the FAT type), and we only do FAT32: a
     * smaller image or a smaller cluster size is needed. */
    if (clusters < FAT32_MIN_CLUSTERS)
        return VD_ERR_RANGE;
    if (clusters > FAT32_MAX_CLUSTERS - FAT_FIRST_CLUSTER)
        return VD_ERR_RANGE;
    g->bps = FAT_SECTOR;
    g->spc = spc;
    g->rsvd = (uint32_t)rsvd;
    g->nfats = FAT_NUM_FATS;
    g->fat_sectors = (uint32_t)fatsz;
    g->total_sectors = (uint32_t)tot;
    g->root_clus = FAT_ROOT_CLUSTER;
    g->fsinfo_sec = FAT_FSINFO_SECTOR;
    g->backup_sec = FAT_BACKUP_BOOT_SECTOR;
    g->media = FAT_MEDIA;
    *nclusters = (uint32_t)clusters;
    return VD_OK;
}

static vd_err write_volume(vd_fs *fs, const fat_geom *g, uint32_t nclusters, int64_t now)
{
    uint64_t fat_off = (uint64_t)g->rsvd * g->bps;
    uint64_t data_off = fat_off + (uint64_t)g->nfats * g->fat_sectors * g->bps;
    uint64_t clus = (uint64_t)g->spc * g->bps;
    /* Reserved area, FATs and the root cluster start out zero. */
    vd_err e = fat_dev_zero(fs, 0, data_off + clus);
    uint8_t sec[512];
    fat_bpb_encode(g, sec);
    if (e == VD_OK)
        e = fat_dev_write(fs, 0, sec, 512);
    if (e == VD_OK)
        e = fat_dev_write(fs, (uint64_t)g->backup_sec * g->bps, sec, 512);
    fat_fsinfo_encode(sec, nclusters - 1, FAT_ROOT_CLUSTER + 1);
    if (e == VD_OK)
        e = fat_dev_write(fs, (uint64_t)g->fsinfo_sec * g->bps, sec, 512);
    if (e == VD_OK)
        e = fat_dev_write(fs, (uint64_t)(g->backup_sec + 1) * g->bps, sec, 512);
    for (uint32_t f = 0; e == VD_OK && f < g->nfats; f++) {
        uint8_t ent[12];
        vd_put_le32(ent, 0x0FFFFF00u | g->media);
        vd_put_le32(ent + 4, FAT_EOC); /* clean, no error */
        vd_put_le32(ent + 8, FAT_EOC); /* the root directory */
        e = fat_dev_write(fs, fat_off + (uint64_t)f * g->fat_sectors * g->bps, ent,
                          sizeof ent);
    }
    /* The label also lives in the root directory, where Windows and
     * mtools look for it. */
    uint8_t de[DIRENT_SIZE];
    memset(de, 0, sizeof de);
    memcpy(de + DIR_NAME, g->label, 11);
    de[DIR_ATTR] = ATTR_VOLUME_ID;
    uint16_t d, t;
    fat_time_encode(now, &d, &t, NULL);
    vd_put_le16(de + DIR_WRT_TIME, t);
    vd_put_le16(de + DIR_WRT_DATE, d);
    if (e == VD_OK && memcmp(g->label, "NO NAME    ", 11) != 0)
        e = fat_dev_write(fs, data_off, de, sizeof de);
    if (e == VD_OK)
        e = fat_dev_flush(fs);
    if (e == VD_OK)
        e = fat_bdev_sync(&fs->dev);
    if (e == VD_OK && fs->img)
        e = vd_image_settle(fs->img);
    return e;
}

/* img is the image behind dev, or NULL for another device. */
static vd_err format_dev(const vd_blockdev *dev, vd_image *img, const vd_mkfs_opts *o)
{
    if (!dev || !dev->read || !dev->write || !dev->sync ||
        dev->nblocks > UINT64_MAX / FAT_BLOCK)
        return VD_ERR_INVAL;
    vd_mkfs_opts def;
    if (!o) {
        memset(&def, 0, sizeof def);
        o = &def;
    }
    uint64_t bytes = dev->nblocks * FAT_BLOCK;
    uint32_t cb = o->cluster_bytes ? o->cluster_bytes : vd_fs_default_cluster_bytes(bytes);
    if (cb < FAT_SECTOR || cb > 65536 || (cb & (cb - 1)))
        return VD_ERR_INVAL;
    fat_geom g;
    memset(&g, 0, sizeof g);
    vd_err e = fat_label_make(o->label, g.label);
    if (e != VD_OK)
        return e;
    uint32_t nclusters;
    e = layout(bytes, o->max_bytes, cb, &g, &nclusters);
    if (e != VD_OK)
        return e;
    int64_t now = fat_clock(o->now, o->now_ctx);
    g.volume_id = o->volume_id;
    if (!g.volume_id) { /* as mkfs.fat: derived from the time */
        uint64_t x = (uint64_t)now * 0x9E3779B97F4A7C15ull;
        g.volume_id = (uint32_t)(x >> 32) ^ (uint32_t)x;
    }
    vd_fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        return VD_ERR_NOMEM;
    fs->img = img;
    fs->dev = *dev;
    fs->img_bytes = bytes;
    e = fat_dev_init(fs);
    if (e == VD_OK)
        e = write_volume(fs, &g, nclusters, now);
    fat_dev_free(fs);
    free(fs);
    return e;
}

vd_err vd_fs_format(vd_image *img, const vd_mkfs_opts *o)
{
    if (!img)
        return VD_ERR_INVAL;
    vd_blockdev dev;
    vd_err e = fat_img_dev(img, &dev);
    if (e != VD_OK)
        return e;
    return format_dev(&dev, img, o);
}

vd_err vd_fs_format_dev(const vd_blockdev *dev, const vd_mkfs_opts *o)
{
    return format_dev(dev, NULL, o);
}
