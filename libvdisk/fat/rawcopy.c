/* vd_fs_export / vd_fs_import: the raw FAT32 volume in and out of an
 * image, block by block, through caller-supplied callbacks (the library
 * itself does no I/O). Both check the boot sector so that a wrong file or
 * image fails early and clearly. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_internal.h"

#define COPY_BLOCKS 256u /* 1 MiB per transfer */

static vd_err volume_bytes(const uint8_t *sec, uint64_t limit, uint64_t *bytes)
{
    fat_geom g;
    uint32_t nclusters;
    vd_err e = fat_bpb_decode(sec, limit, &g, &nclusters);
    if (e == VD_OK)
        *bytes = (uint64_t)g.total_sectors * g.bps;
    return e;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

vd_err vd_fs_export(vd_image *img, vd_fs_sink_fn sink, void *ctx, int sparse,
                    uint64_t *vol_bytes)
{
    if (!img || !sink)
        return VD_ERR_INVAL;
    vd_blockdev dev;
    vd_err e = fat_img_dev(img, &dev);
    if (e != VD_OK)
        return e;
    uint64_t img_bytes = dev.nblocks * FAT_BLOCK, bytes;
    uint8_t *buf = malloc((size_t)COPY_BLOCKS * FAT_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    e = fat_bdev_read(&dev, 0, 1, buf);
    if (e == VD_OK)
        e = volume_bytes(buf, img_bytes, &bytes);
    for (uint64_t off = 0; e == VD_OK && off < bytes;) {
        uint64_t left = bytes - off;
        size_t n = left < (uint64_t)COPY_BLOCKS * FAT_BLOCK
                       ? (size_t)left
                       : (size_t)COPY_BLOCKS * FAT_BLOCK;
        uint32_t blocks = (uint32_t)((n + FAT_BLOCK - 1) / FAT_BLOCK);
        e = fat_bdev_read(&dev, off / FAT_BLOCK, blocks, buf);
        if (e != VD_OK)
            break;
        if (!sparse) {
            if (sink(ctx, off, buf, n) != 0)
                e = VD_ERR_IO;
        } else {
            /* Pass runs of non-zero blocks only. */
            size_t i = 0;
            while (e == VD_OK && i < n) {
                size_t bl = n - i < FAT_BLOCK ? n - i : FAT_BLOCK;
                if (all_zero(buf + i, bl)) {
                    i += bl;
                    continue;
                }
                size_t j = i + bl;
                while (j < n) {
                    size_t bl2 = n - j < FAT_BLOCK ? n - j : FAT_BLOCK;
                    if (all_zero(buf + j, bl2))
                        break;
                    j += bl2;
                }
                if (sink(ctx, off + i, buf + i, j - i) != 0)
                    e = VD_ERR_IO;
                i = j;
            }
        }
        off += n;
    }
    free(buf);
    if (e == VD_OK && vol_bytes)
        *vol_bytes = bytes;
    return e;
}

vd_err vd_fs_import(vd_image *img, vd_fs_source_fn source, void *ctx, uint64_t bytes)
{
    if (!img || !source || bytes < 512)
        return VD_ERR_INVAL;
    vd_blockdev dev;
    vd_err e = fat_img_dev(img, &dev);
    if (e != VD_OK)
        return e;
    if (bytes > dev.nblocks * FAT_BLOCK)
        return VD_ERR_RANGE;
    uint8_t *buf = malloc((size_t)COPY_BLOCKS * FAT_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    /* Check the boot sector before writing anything. */
    uint64_t vb;
    if (source(ctx, 0, buf, 512) != 0)
        e = VD_ERR_IO;
    if (e == VD_OK)
        e = volume_bytes(buf, bytes, &vb);
    for (uint64_t off = 0; e == VD_OK && off < bytes;) {
        uint64_t left = bytes - off;
        size_t n = left < (uint64_t)COPY_BLOCKS * FAT_BLOCK
                       ? (size_t)left
                       : (size_t)COPY_BLOCKS * FAT_BLOCK;
        uint32_t blocks = (uint32_t)((n + FAT_BLOCK - 1) / FAT_BLOCK);
        memset(buf + n, 0, (size_t)blocks * FAT_BLOCK - n);
        if (source(ctx, off, buf, n) != 0) {
            e = VD_ERR_IO;
            break;
        }
        e = fat_bdev_write(&dev, off / FAT_BLOCK, blocks, buf);
        off += n;
    }
    free(buf);
    if (e == VD_OK)
        e = fat_bdev_sync(&dev);
    return e;
}
