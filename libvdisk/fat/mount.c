/* Mounting, syncing, unmounting and statfs of a FAT32 volume. Every
 * public call of the layer ends with fat_op_end, which writes the metadata
 * cache back to the device, so the device always holds whole operations
 * (durable at its sync: vd_image_sync for an image). */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

vd_err fat_writable(vd_fs *fs)
{
    return fs->read_only ? VD_ERR_READONLY : VD_OK;
}

static vd_err write_fsinfo(vd_fs *fs);

/* Errors that can stop an operation anywhere, halfway through its
 * changes: the device failing a read (I/O, authentication) or memory
 * running out. The file-system answers (full, not found, exists...) come
 * before any change or after it is undone (fat_alloc on a full volume);
 * VD_ERR_CORRUPT means a volume that needed vhdfsck before this call. */
static int err_halfway(vd_err e)
{
    return e == VD_ERR_IO || e == VD_ERR_AUTH || e == VD_ERR_NOMEM;
}

vd_err fat_op_end(vd_fs *fs, vd_err e)
{
    if (err_halfway(e) && fs->img && fs->op_changed) {
        /* Stopped halfway (a FAT sector or directory cluster that did not
         * read, after the first FAT copy or a chain had changed): what it
         * changed must never be committed, so the image keeps its last
         * commit, as after a crash, and the handle fails (C4). */
        vd_image_op_abort(fs->img, e);
        return e;
    }
    /* On an image every operation's end may be a commit (C4), and a
     * committed volume must be one vd_fsck finds nothing in: FSInfo's free
     * count goes with the FAT changes that moved it. */
    vd_err g = VD_OK;
    if (fs->img && !fs->read_only && fs->fsinfo_sec && fs->marked_dirty &&
        fs->fsinfo_free != fs->free_count)
        g = write_fsinfo(fs);
    vd_err f = fat_dev_flush(fs);
    return e != VD_OK ? e : g != VD_OK ? g : f;
}

/* ---- mount ---- */

/* A failed read of the root directory (authentication, I/O) fails the
 * mount: it must be reported, not taken as "no label". */
static vd_err read_label(vd_fs *fs, const uint8_t bpb_label[11])
{
    uint8_t lab[11];
    memcpy(lab, bpb_label, 11);
    /* The root directory's volume entry wins (mtools and Windows update
     * it, not always the BPB). */
    fat_dirit it;
    fat_dirit_init(&it, fs->root_clus);
    vd_err e = VD_OK;
    for (uint32_t s = 0; s < 65536; s++) {
        uint64_t off;
        uint8_t b[DIRENT_SIZE];
        e = fat_dir_slot_off(fs, &it, s, &off);
        if (e == VD_OK)
            e = fat_dev_read(fs, off, b, sizeof b);
        if (e != VD_OK || b[0] == DIR_END_BYTE)
            break;
        if (b[0] != DIR_FREE_BYTE &&
            (b[DIR_ATTR] & ATTR_LONG_NAME_MASK) != ATTR_LONG_NAME &&
            (b[DIR_ATTR] & ATTR_VOLUME_ID)) {
            memcpy(lab, b, 11);
            break;
        }
    }
    /* The end of the root directory's chain, or a damaged chain (lookups
     * report that; vhdfsck repairs it, so it must still mount): no label. */
    if (e == VD_ERR_NOENT || e == VD_ERR_CORRUPT)
        e = VD_OK;
    int n = 11;
    while (n > 0 && lab[n - 1] == ' ')
        n--;
    for (int i = 0; i < n; i++)
        fs->label[i] = (lab[i] >= 0x20 && lab[i] < 0x7F) ? (char)lab[i] : '_';
    fs->label[n] = 0;
    return e;
}

static int dev_valid(const vd_blockdev *dev)
{
    return dev && dev->read && dev->write && dev->sync &&
           dev->nblocks <= UINT64_MAX / FAT_BLOCK;
}

/* Writers first: a stream of shared readers must not keep a write (or a
 * stat, an open) waiting for ever, as glibc's default preference would. */
static int fat_lock_init(vd_fs *fs)
{
    pthread_rwlockattr_t a;
    if (pthread_rwlockattr_init(&a) != 0)
        return -1;
#ifdef __GLIBC__
    (void)pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
    int r = pthread_rwlock_init(&fs->lock, &a);
    (void)pthread_rwlockattr_destroy(&a);
    return r;
}

/* img is the image behind dev, or NULL for another device. */
static vd_err mount_dev(const vd_blockdev *dev, vd_image *img, const vd_fs_opts *o,
                        vd_fs **out)
{
    if (!dev_valid(dev) || !out)
        return VD_ERR_INVAL;
    vd_fs *fs = calloc(1, sizeof *fs);
    if (!fs)
        return VD_ERR_NOMEM;
    if (fat_lock_init(fs) != 0) {
        free(fs);
        return VD_ERR_NOMEM;
    }
    fs->img = img;
    fs->dev = *dev;
    fs->img_bytes = dev->nblocks * FAT_BLOCK;
    if (o) {
        fs->read_only = o->read_only;
        fs->now = o->now;
        fs->now_ctx = o->now_ctx;
    }
    vd_err e = fat_dev_init(fs);
    uint8_t sec[512];
    fat_geom g;
    uint32_t fsinfo_free = FSI_UNKNOWN;
    if (e == VD_OK)
        e = fat_dev_read(fs, 0, sec, sizeof sec);
    if (e == VD_OK)
        e = fat_bpb_decode(sec, fs->img_bytes, &g, &fs->nclusters);
    if (e == VD_OK) {
        fs->bps = g.bps;
        fs->spc = g.spc;
        fs->cluster_bytes = g.bps * g.spc;
        while ((1u << fs->cluster_shift) < fs->cluster_bytes)
            fs->cluster_shift++;
        fs->rsvd = g.rsvd;
        fs->nfats = g.nfats;
        fs->fat_sectors = g.fat_sectors;
        fs->total_sectors = g.total_sectors;
        fs->root_clus = g.root_clus;
        fs->mirror = !(g.ext_flags & 0x80);
        fs->active_fat = g.ext_flags & 0x0F;
        fs->fat_off = (uint64_t)g.rsvd * g.bps;
        fs->data_off = fs->fat_off + (uint64_t)g.nfats * g.fat_sectors * g.bps;
        fs->volume_id = g.volume_id;
        fs->next_free = FAT_FIRST_CLUSTER;
        /* FSInfo is only a hint; use it when it is well formed. */
        if (g.fsinfo_sec >= 1 && g.fsinfo_sec < g.rsvd &&
            fat_dev_read(fs, (uint64_t)g.fsinfo_sec * g.bps, sec, 512) == VD_OK &&
            vd_get_le32(sec + FSI_LEAD_SIG) == FSI_LEAD_VALUE &&
            vd_get_le32(sec + FSI_STRUC_SIG) == FSI_STRUC_VALUE &&
            vd_get_le32(sec + FSI_TRAIL_SIG) == FSI_TRAIL_VALUE) {
            fs->fsinfo_sec = g.fsinfo_sec;
            uint32_t nf = vd_get_le32(sec + FSI_NXT_FREE);
            if (fat_valid_cluster(fs, nf))
                fs->next_free = nf;
            fsinfo_free = vd_get_le32(sec + FSI_FREE_COUNT);
            fs->fsinfo_free = fsinfo_free;
        }
    }
    /* After a clean unmount FSInfo's free count is taken as a hint, so
     * mounting does not read the whole FAT (as Linux does). Allocation
     * recounts before it reports a full volume or when the hint proves
     * too high, so a wrong hint never causes a wrong answer. After an
     * unclean unmount we count now. */
    uint32_t fat1 = 0;
    if (e == VD_OK)
        e = fat_get(fs, 1, &fat1);
    if (e == VD_OK) {
        fs->unclean_at_mount = !(fat1 & FAT1_CLEAN);
        if ((fat1 & FAT1_CLEAN) && fsinfo_free <= fs->nclusters)
            fs->free_count = fsinfo_free;
        else
            e = fat_count_free(fs);
    }
    uint32_t rv;
    if (e == VD_OK)
        e = fat_get(fs, fs->root_clus, &rv);
    if (e == VD_OK && rv == FAT_FREE)
        e = VD_ERR_CORRUPT;
    if (e == VD_OK)
        e = read_label(fs, g.label);
    if (e != VD_OK) {
        fat_dev_free(fs);
        (void)pthread_rwlock_destroy(&fs->lock);
        free(fs);
        return e;
    }
    *out = fs;
    return VD_OK;
}

vd_err vd_fs_mount(vd_image *img, const vd_fs_opts *o, vd_fs **out)
{
    if (!img || !out)
        return VD_ERR_INVAL;
    vd_blockdev dev;
    vd_err e = fat_img_dev(img, &dev);
    if (e != VD_OK)
        return e;
    return mount_dev(&dev, img, o, out);
}

vd_err vd_fs_mount_dev(const vd_blockdev *dev, const vd_fs_opts *o, vd_fs **out)
{
    return mount_dev(dev, NULL, o, out);
}

static vd_err write_fsinfo(vd_fs *fs)
{
    if (!fs->fsinfo_sec)
        return VD_OK;
    uint8_t sec[512];
    uint64_t off = (uint64_t)fs->fsinfo_sec * fs->bps;
    vd_err e = fat_dev_read(fs, off, sec, sizeof sec);
    if (e != VD_OK)
        return e;
    /* Unchanged, it is not rewritten: a sync with nothing else to commit
     * (vhdmount's periodic commits of an idle volume) then writes nothing. */
    if (vd_get_le32(sec + FSI_FREE_COUNT) == fs->free_count &&
        vd_get_le32(sec + FSI_NXT_FREE) == fs->next_free)
        return VD_OK;
    vd_put_le32(sec + FSI_FREE_COUNT, fs->free_count);
    vd_put_le32(sec + FSI_NXT_FREE, fs->next_free);
    e = fat_dev_write(fs, off, sec, sizeof sec);
    if (e == VD_OK)
        fs->fsinfo_free = fs->free_count;
    return e;
}

/* ack: an acknowledged sync (vd_fs_sync); else a commit (vd_fs_commit),
 * which an anchor in VD_ANCHOR_EXPLICIT_SYNC mode does not count. */
static vd_err locked_fs_sync(vd_fs *fs, int ack)
{
    if (!fs)
        return VD_ERR_INVAL;
    if (fs->read_only)
        return VD_OK;
    vd_err e = VD_OK;
    if (fs->marked_dirty)
        e = write_fsinfo(fs);
    e = fat_op_end(fs, e);
    if (e == VD_OK)
        e = ack || !fs->img ? fat_bdev_sync(&fs->dev) : vd_image_commit(fs->img);
    return e;
}

vd_err vd_fs_unmount(vd_fs *fs)
{
    if (!fs)
        return VD_ERR_INVAL;
    fat_lock(fs);
    if (fs->nopen) {
        fat_unlock(fs);
        return VD_ERR_BUSY;
    }
    vd_err e = VD_OK;
    if (!fs->read_only && fs->marked_dirty) {
        e = write_fsinfo(fs);
        if (e == VD_OK)
            e = fat_set_clean(fs, 1);
    }
    e = fat_op_end(fs, e);
    if (e == VD_OK && !fs->read_only)
        e = fat_bdev_sync(&fs->dev);
    while (fs->nodes) {
        fat_node *n = fs->nodes;
        fs->nodes = n->next;
        free(n->runs);
        free(n);
    }
    fat_dix_free_all(fs);
    fat_dev_free(fs);
    fat_unlock(fs);
    (void)pthread_rwlock_destroy(&fs->lock);
    free(fs);
    return e;
}

static vd_err locked_fs_statfs(vd_fs *fs, vd_statfs *st)
{
    if (!fs || !st)
        return VD_ERR_INVAL;
    memset(st, 0, sizeof *st);
    st->cluster_bytes = fs->cluster_bytes;
    st->sector_bytes = fs->bps;
    st->total_clusters = fs->nclusters;
    st->free_clusters = fat_free_unpinned(fs); /* open orphans use theirs */
    st->volume_id = fs->volume_id;
    st->unclean = fs->unclean_at_mount;
    memcpy(st->label, fs->label, sizeof st->label);
    return VD_OK;
}

/* ---- public entry points (volume lock) ---- */

vd_err vd_fs_sync(vd_fs *fs)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_sync(fs, 1);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_commit(vd_fs *fs)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_sync(fs, 0);
    fat_unlock(lk);
    return e;
}

vd_err vd_fs_statfs(vd_fs *fs, vd_statfs *st)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_fs_statfs(fs, st);
    fat_unlock(lk);
    return e;
}
