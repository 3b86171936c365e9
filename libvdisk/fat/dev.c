/* Byte-addressed access to the FAT volume over the 4 KiB blocks of its
 * device (a vd_image, or any vd_blockdev). Metadata (boot sector, FAT,
 * directories) is touched a few bytes at a time, so small accesses go through a direct-mapped write-back cache
 * of blocks that is flushed at the end of every public operation; bulk
 * file data moves whole blocks straight to and from the device. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_internal.h"

vd_err fat_img_bytes(vd_image *img, uint64_t *bytes)
{
    vd_image_info info;
    vd_err e = vd_image_info_get(img, &info);
    if (e != VD_OK)
        return e;
    *bytes = info.nblocks * (uint64_t)FAT_BLOCK;
    return VD_OK;
}

static vd_err img_read(void *ctx, uint64_t lbn, uint32_t count, void *buf)
{
    return vd_image_read(ctx, lbn, count, buf);
}

static vd_err img_write(void *ctx, uint64_t lbn, uint32_t count, const void *buf)
{
    return vd_image_write(ctx, lbn, count, buf);
}

static vd_err img_sync(void *ctx)
{
    return vd_image_sync(ctx);
}

vd_err fat_img_dev(vd_image *img, vd_blockdev *dev)
{
    uint64_t bytes;
    vd_err e = fat_img_bytes(img, &bytes);
    if (e != VD_OK)
        return e;
    dev->ctx = img;
    dev->nblocks = bytes / FAT_BLOCK;
    dev->read = img_read;
    dev->write = img_write;
    dev->sync = img_sync;
    return VD_OK;
}

vd_err fat_dev_init(vd_fs *fs)
{
    fs->cache_mem = malloc((size_t)FAT_CACHE_SLOTS * FAT_BLOCK);
    if (!fs->cache_mem)
        return VD_ERR_NOMEM;
    for (unsigned i = 0; i < FAT_CACHE_SLOTS; i++) {
        fs->cache[i].valid = 0;
        fs->cache[i].dirty = 0;
        fs->cache[i].data = fs->cache_mem + (size_t)i * FAT_BLOCK;
    }
    return VD_OK;
}

void fat_dev_free(vd_fs *fs)
{
    free(fs->cache_mem);
    fs->cache_mem = NULL;
    free(fs->held);
    fs->held = NULL;
    free(fs->pinned);
    fs->pinned = NULL;
}

static vd_err slot_writeback(vd_fs *fs, fat_cslot *s)
{
    if (!s->valid || !s->dirty)
        return VD_OK;
    vd_err e = s->meta ? fat_bdev_write_meta(fs, s->lbn, 1, s->data)
                       : fat_bdev_write(&fs->dev, s->lbn, 1, s->data);
    if (e == VD_OK)
        s->dirty = s->meta = 0;
    return e;
}

/* The cached block lbn, loading it (after writing back its predecessor in
 * the slot). */
static vd_err slot_get(vd_fs *fs, uint64_t lbn, fat_cslot **out)
{
    fat_cslot *s = &fs->cache[lbn % FAT_CACHE_SLOTS];
    if (!s->valid || s->lbn != lbn) {
        vd_err e = slot_writeback(fs, s);
        if (e != VD_OK)
            return e;
        s->valid = 0;
        e = fat_bdev_read(&fs->dev, lbn, 1, s->data);
        if (e != VD_OK)
            return e;
        s->lbn = lbn;
        s->valid = 1;
        s->dirty = s->meta = 0;
    }
    *out = s;
    return VD_OK;
}

static fat_cslot *slot_peek(vd_fs *fs, uint64_t lbn)
{
    fat_cslot *s = &fs->cache[lbn % FAT_CACHE_SLOTS];
    return (s->valid && s->lbn == lbn) ? s : NULL;
}

static vd_err check_range(const vd_fs *fs, uint64_t off, uint64_t len)
{
    if (off > fs->img_bytes || len > fs->img_bytes - off)
        return VD_ERR_CORRUPT; /* a structure points outside the image */
    return VD_OK;
}

vd_err fat_dev_read(vd_fs *fs, uint64_t off, void *buf, size_t len)
{
    vd_err e = check_range(fs, off, len);
    uint8_t *out = buf;
    while (e == VD_OK && len > 0) {
        uint64_t lbn = off / FAT_BLOCK;
        size_t in = (size_t)(off % FAT_BLOCK);
        if (in == 0 && len >= FAT_BLOCK && !slot_peek(fs, lbn)) {
            /* A run of whole blocks none of which is cached. */
            uint32_t cnt = 0;
            while ((size_t)(cnt + 1) * FAT_BLOCK <= len && cnt < 1024 &&
                   !slot_peek(fs, lbn + cnt))
                cnt++;
            e = fat_bdev_read(&fs->dev, lbn, cnt, out);
            off += (uint64_t)cnt * FAT_BLOCK;
            out += (size_t)cnt * FAT_BLOCK;
            len -= (size_t)cnt * FAT_BLOCK;
            continue;
        }
        size_t n = FAT_BLOCK - in;
        if (n > len)
            n = len;
        fat_cslot *s;
        e = slot_get(fs, lbn, &s);
        if (e != VD_OK)
            break;
        memcpy(out, s->data + in, n);
        off += n;
        out += n;
        len -= n;
    }
    return e;
}

vd_err fat_dev_read_shared(const vd_fs *fs, uint64_t off, void *buf, size_t len)
{
    vd_err e = check_range(fs, off, len);
    uint8_t *out = buf;
    while (e == VD_OK && len > 0) {
        uint64_t lbn = off / FAT_BLOCK;
        size_t in = (size_t)(off % FAT_BLOCK);
        const fat_cslot *s = &fs->cache[lbn % FAT_CACHE_SLOTS];
        int cached = s->valid && s->lbn == lbn;
        if (in == 0 && len >= FAT_BLOCK && !cached) {
            uint32_t cnt = 0;
            while ((size_t)(cnt + 1) * FAT_BLOCK <= len && cnt < 1024) {
                const fat_cslot *c = &fs->cache[(lbn + cnt) % FAT_CACHE_SLOTS];
                if (c->valid && c->lbn == lbn + cnt)
                    break;
                cnt++;
            }
            e = fat_bdev_read(&fs->dev, lbn, cnt, out);
            off += (uint64_t)cnt * FAT_BLOCK;
            out += (size_t)cnt * FAT_BLOCK;
            len -= (size_t)cnt * FAT_BLOCK;
            continue;
        }
        size_t n = FAT_BLOCK - in;
        if (n > len)
            n = len;
        if (cached) {
            memcpy(out, s->data + in, n);
        } else { /* part of a block: read it whole, keep the part */
            uint8_t blk[FAT_BLOCK];
            e = fat_bdev_read(&fs->dev, lbn, 1, blk);
            if (e == VD_OK)
                memcpy(out, blk + in, n);
        }
        off += n;
        out += n;
        len -= n;
    }
    return e;
}

vd_err fat_dev_write(vd_fs *fs, uint64_t off, const void *buf, size_t len)
{
    vd_err e = check_range(fs, off, len);
    const uint8_t *in_p = buf;
    while (e == VD_OK && len > 0) {
        uint64_t lbn = off / FAT_BLOCK;
        size_t in = (size_t)(off % FAT_BLOCK);
        if (in == 0 && len >= FAT_BLOCK) {
            /* Whole blocks go straight to the image; a cached copy is
             * refreshed so the cache never holds stale bytes. */
            uint32_t cnt = (uint32_t)((len / FAT_BLOCK) > 1024 ? 1024 : len / FAT_BLOCK);
            fs->op_changed |= !fs->in_data;
            e = fs->in_data ? fat_bdev_write(&fs->dev, lbn, cnt, in_p)
                            : fat_bdev_write_meta(fs, lbn, cnt, in_p);
            if (e != VD_OK)
                break;
            for (uint32_t i = 0; i < cnt; i++) {
                fat_cslot *s = slot_peek(fs, lbn + i);
                if (s) {
                    memcpy(s->data, in_p + (size_t)i * FAT_BLOCK, FAT_BLOCK);
                    s->dirty = s->meta = 0;
                }
            }
            off += (uint64_t)cnt * FAT_BLOCK;
            in_p += (size_t)cnt * FAT_BLOCK;
            len -= (size_t)cnt * FAT_BLOCK;
            continue;
        }
        size_t n = FAT_BLOCK - in;
        if (n > len)
            n = len;
        fat_cslot *s;
        e = slot_get(fs, lbn, &s);
        if (e != VD_OK)
            break;
        memcpy(s->data + in, in_p, n);
        s->dirty = 1;
        s->meta |= !fs->in_data;
        fs->op_changed |= !fs->in_data;
        off += n;
        in_p += n;
        len -= n;
    }
    return e;
}

vd_err fat_dev_ptr(vd_fs *fs, uint64_t off, size_t len, int dirty, uint8_t **p)
{
    vd_err e = check_range(fs, off, len);
    if (e != VD_OK)
        return e;
    if (off % FAT_BLOCK + len > FAT_BLOCK)
        return VD_ERR_INVAL; /* callers keep small fields inside a block */
    fat_cslot *s;
    e = slot_get(fs, off / FAT_BLOCK, &s);
    if (e != VD_OK)
        return e;
    if (dirty) {
        s->dirty = 1;
        s->meta |= !fs->in_data;
        fs->op_changed |= !fs->in_data;
    }
    *p = s->data + off % FAT_BLOCK;
    return VD_OK;
}

vd_err fat_dev_zero(vd_fs *fs, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[FAT_BLOCK];
    vd_err e = VD_OK;
    while (e == VD_OK && len > 0) {
        size_t n = FAT_BLOCK - (size_t)(off % FAT_BLOCK);
        if (n > len)
            n = (size_t)len;
        e = fat_dev_write(fs, off, zeros, n);
        off += n;
        len -= n;
    }
    return e;
}

vd_err fat_dev_flush(vd_fs *fs)
{
    vd_err first = VD_OK;
    for (unsigned i = 0; i < FAT_CACHE_SLOTS; i++) {
        vd_err e = slot_writeback(fs, &fs->cache[i]);
        if (e != VD_OK && first == VD_OK)
            first = e;
    }
    return first;
}
