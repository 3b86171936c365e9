/* Internal state and interfaces of the FAT32 layer (libvdisk/fat/).
 *   dev.c    byte-addressed access to the volume over its vd_blockdev
 *            (a vd_image, or any device given to vd_fs_mount_dev), with a
 *            small write-back cache of 4 KiB blocks for metadata
 *   names.c  UTF-8 <-> UTF-16, name validation, case folding, 8.3 aliases,
 *            LFN checksums
 *   time.c   FAT date/time <-> ns since the epoch, clamped
 *   table.c  FAT entries (both copies), allocation, free counting
 *   bpb.c    boot sector / FSInfo encode, decode, validate
 *   mkfs.c   vd_fs_format
 *   dir.c    directory slots: iterate, look up, insert, remove
 *   dirindex.c in-memory index of a few large directories for dir.c
 *   node.c   open-file nodes and their cluster-run (extent) cache
 *   file.c   vd_file_*
 *   mount.c  mount/unmount/sync/statfs
 *   path.c   path resolution, following symbolic links
 *   link.c   symbolic links as Minshall+French files; vd_fs_symlink,
 *            vd_fs_readlink
 *   ops.c    stat, lstat, mkdir, rmdir, unlink, utimes
 *   rename.c rename
 *   step.c   operations too large for one commit, in committed steps
 *   dirlist.c vd_dir_*
 *   rawcopy.c vd_fs_export / vd_fs_import
 * Nothing here includes crypto headers or makes a system call. */
#ifndef VD_FAT_INTERNAL_H
#define VD_FAT_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "image_fs.h"
#include "vdisk/fs.h"
#include "vdisk/vdisk.h"

#define FAT_BLOCK VD_BLOCK_SIZE
#define FAT_CACHE_SLOTS 64u /* 256 KiB of metadata blocks per volume */
#define FAT_MAX_OPEN 1024u  /* open files + directories per volume */

typedef struct fat_cslot {
    uint64_t lbn;
    uint8_t valid, dirty;
    uint8_t meta; /* dirtied by metadata (not by file data): written back
                     as metadata (image_fs.h) */
    uint8_t *data;
} fat_cslot;

/* A contiguous piece of a file: file clusters [fidx, fidx+len) live in
 * disk clusters [clus, clus+len). */
typedef struct fat_run {
    uint32_t fidx, clus, len;
} fat_run;

/* Where a directory entry lives: the directory's first cluster and the
 * index of the entry's 32-byte short slot within it. */
typedef struct fat_loc {
    uint32_t dir;
    uint32_t slot;
} fat_loc;

/* Shared state of an open file; several vd_file handles may point to one
 * node. Rename moves the node's location; unlink (or a rename over it)
 * makes it an orphan. */
typedef struct fat_node {
    struct fat_node *next;
    unsigned refs;
    fat_loc loc;
    uint32_t first; /* first cluster, 0 for an empty file */
    uint32_t size;
    uint8_t attr;
    fat_run *runs; /* the whole chain, once mapped */
    size_t nruns, cap;
    int mapped;
    uint32_t nclus; /* clusters in the chain when mapped */
    /* Unlinked (or replaced by a rename) while open, as POSIX allows: the
     * entry is gone (loc no longer names a slot). The same operation freed
     * the chain in the FAT, so no committed state holds clusters without
     * an entry; the runs, always mapped now, are the only map of the
     * file, whose clusters stay pinned (table.c) until the last handle
     * closes. What stat needs is kept here. */
    int orphan;
    uint8_t o_attr, o_ctenth;
    uint16_t o_mdate, o_mtime, o_adate, o_cdate, o_ctime;
} fat_node;

struct vd_fs {
    /* The volume lock. Every public vd_fs_/vd_file_/vd_dir_ call holds it
     * exclusively (fat_lock), except vd_file_read of a file whose chain is
     * mapped, which holds it shared (file.c): such reads only look at the
     * node, the metadata cache (clean between calls: fat_op_end flushes
     * it) and the image, whose own lock they take inside. Lock order:
     * volume lock, then the image lock (vd_image.lock), then the host's. */
    pthread_rwlock_t lock;
    vd_image *img;   /* NULL when mounted over another vd_blockdev */
    vd_blockdev dev; /* every block access goes through it (fat_bdev_*) */
    uint64_t img_bytes;
    int read_only;
    vd_clock_fn now;
    void *now_ctx;
    /* geometry (validated at mount) */
    uint32_t bps, spc, cluster_bytes, cluster_shift;
    uint32_t rsvd, nfats, fat_sectors, total_sectors, root_clus, fsinfo_sec;
    uint32_t active_fat; /* when mirroring is off */
    int mirror;
    uint64_t fat_off, data_off; /* byte offsets in the volume */
    uint32_t nclusters;         /* valid cluster numbers: 2 .. nclusters + 1 */
    uint32_t free_count, next_free;
    int free_exact;   /* free_count counted by us, not FSInfo's hint */
    uint32_t fsinfo_free; /* the free count FSInfo holds now */
    int marked_dirty; /* FAT[1] clean bit cleared this mount */
    int unclean_at_mount; /* FAT[1] clean bit already clear when mounted */
    uint32_t volume_id;
    char label[12];
    unsigned nopen;
    fat_node *nodes;
    struct vd_dir *dirs; /* open directory handles */
    fat_cslot cache[FAT_CACHE_SLOTS];
    uint8_t *cache_mem;
    /* directory indexes (dirindex.c), NULL until used */
    struct fat_dixset *dix;
    /* Inside data_io: the bytes moved are file data, everything else the
     * layer writes is metadata (image_fs.h tags it for the image). */
    int in_data;
    /* The operation under way has changed metadata (fat_op_end: one that
     * then fails midway must not reach a commit). */
    int op_changed;
    /* Clusters freed since the last commit that took all the metadata
     * (vd_image_meta_commits = held_gen): not reused before it, so the
     * committed volume never shows new bytes in an old file's clusters
     * (table.c). Only on an image; NULL until the first free. */
    uint8_t *held;
    uint32_t nheld;
    uint64_t held_gen;
    /* Clusters of open orphans: free in the FAT, never allocated until
     * the orphan's last close (table.c). NULL until the first orphan. */
    uint8_t *pinned;
    uint32_t npinned;
};

struct vd_file {
    vd_fs *fs;
    fat_node *node;
    int flags;
};

/* Volume lock, exclusive. A lock call only fails on misuse (never here),
 * so the result carries no information worth a code path. */
static inline void fat_lock(vd_fs *fs)
{
    (void)pthread_rwlock_wrlock(&fs->lock);
    fs->op_changed = 0;
    if (fs->img) /* every public call is one file-system operation (C4) */
        vd_image_op_begin(fs->img);
}
static inline void fat_unlock(vd_fs *fs)
{
    if (fs->img) /* the operation's end: the image may commit here */
        vd_image_op_end(fs->img);
    (void)pthread_rwlock_unlock(&fs->lock);
}

/* ---- dev.c ---- */
vd_err fat_dev_init(vd_fs *fs);
void fat_dev_free(vd_fs *fs);
vd_err fat_dev_read(vd_fs *fs, uint64_t off, void *buf, size_t len);
/* The same under the shared volume lock: the cache is only looked at,
 * never filled (a block it does not hold comes from the device). */
vd_err fat_dev_read_shared(const vd_fs *fs, uint64_t off, void *buf, size_t len);
vd_err fat_dev_write(vd_fs *fs, uint64_t off, const void *buf, size_t len);
vd_err fat_dev_zero(vd_fs *fs, uint64_t off, uint64_t len);
/* The cached bytes [off, off+len) of one block, in place (for FAT entries:
 * no copies); `dirty` marks the block for write-back. Valid until the next
 * fat_dev_* call. */
vd_err fat_dev_ptr(vd_fs *fs, uint64_t off, size_t len, int dirty, uint8_t **p);
vd_err fat_dev_flush(vd_fs *fs);
/* Image-level helpers shared with mkfs (no vd_fs yet). */
vd_err fat_img_bytes(vd_image *img, uint64_t *bytes);
/* A vd_blockdev whose calls go to vd_image_* on img. */
vd_err fat_img_dev(vd_image *img, vd_blockdev *dev);

/* The only way the layer touches blocks: through the volume's device. */
static inline vd_err fat_bdev_read(const vd_blockdev *d, uint64_t lbn, uint32_t count,
                                   void *buf)
{
    return d->read(d->ctx, lbn, count, buf);
}
static inline vd_err fat_bdev_write(const vd_blockdev *d, uint64_t lbn, uint32_t count,
                                    const void *buf)
{
    return d->write(d->ctx, lbn, count, buf);
}
/* A write of metadata blocks: tagged for the image (image_fs.h). */
static inline vd_err fat_bdev_write_meta(const vd_fs *fs, uint64_t lbn, uint32_t count,
                                         const void *buf)
{
    if (fs->img)
        return vd_image_write_meta(fs->img, lbn, count, buf);
    return fat_bdev_write(&fs->dev, lbn, count, buf);
}
static inline vd_err fat_bdev_sync(const vd_blockdev *d)
{
    return d->sync(d->ctx);
}

/* ---- names.c ---- */
#define FAT_NAME_MAX 255u
/* Decode UTF-8 into UTF-16 (surrogate pairs for non-BMP). VD_ERR_NAME on
 * malformed UTF-8 or more than FAT_NAME_MAX units. */
vd_err fat_utf8_to_utf16(const char *s, size_t len, uint16_t *out, size_t *nout);
/* Encode UTF-16 as UTF-8 into out (cap bytes incl. NUL). Unpaired
 * surrogates become U+FFFD. */
vd_err fat_utf16_to_utf8(const uint16_t *u, size_t n, char *out, size_t cap);
/* Check a long name for FAT (and strip trailing dots, as Windows and
 * Linux do); VD_ERR_NAME if not storable. "." and ".." are refused. */
vd_err fat_name_check(uint16_t *u, size_t *n);
uint16_t fat_upcase(uint16_t c);
int fat_name_equal(const uint16_t *a, size_t na, const uint16_t *b, size_t nb);
uint8_t fat_lfn_checksum(const uint8_t name[11]);
/* If the long name can be stored as a bare 8.3 entry (upper case, or
 * lower case per part, recorded in *ntres), fill sfn and return 1. */
int fat_name_fits_83(const uint16_t *u, size_t n, uint8_t sfn[11], uint8_t *ntres);
/* Basis name (Windows' algorithm): *lossy is set when characters were
 * replaced or dropped, or the name was truncated. */
void fat_name_basis(const uint16_t *u, size_t n, uint8_t sfn[11], int *lossy);
/* Put "~tail" into the basis base name (tail >= 1). */
void fat_name_tail(const uint8_t basis[11], uint32_t tail, uint8_t out[11]);
/* Short name (with NTRes case bits) as UTF-16 for display. */
size_t fat_sfn_to_utf16(const uint8_t sfn[11], uint8_t ntres, uint16_t *out);
/* Valid volume label (upper-cases it): 0 or VD_ERR_NAME. */
vd_err fat_label_make(const char *in, uint8_t out[11]);

/* ---- time.c ---- */
int64_t fat_now(const vd_fs *fs);
int64_t fat_clock(vd_clock_fn now, void *ctx);
void fat_time_encode(int64_t ns, uint16_t *date, uint16_t *time, uint8_t *tenth);
int64_t fat_time_decode(uint16_t date, uint16_t time, uint8_t tenth);

/* ---- table.c ---- */
vd_err fat_get(vd_fs *fs, uint32_t clus, uint32_t *val);
vd_err fat_set(vd_fs *fs, uint32_t clus, uint32_t val);
int fat_valid_cluster(const vd_fs *fs, uint32_t c);
/* Allocate n clusters linked into a chain ending in EOC, appended after
 * `last` (0 = new chain). Prefers last+1 onwards for contiguity, else the
 * next-free hint. All or nothing: VD_ERR_NOSPC leaves the FAT unchanged.
 * `each` (may be NULL) is told every new cluster in chain order, so the
 * caller need not walk the chain again; after a failure it must forget
 * what it was told. */
typedef vd_err (*fat_each_fn)(void *ctx, uint32_t clus);
vd_err fat_alloc(vd_fs *fs, uint32_t last, uint32_t n, uint32_t *first, fat_each_fn each,
                 void *ctx);
/* The same, but stops (successfully, *got < n) before the chain would
 * change more than max_blocks blocks of each FAT copy: one step of an
 * operation too large for one commit. At least one cluster. */
vd_err fat_alloc_upto(vd_fs *fs, uint32_t last, uint32_t n, uint32_t max_blocks,
                      uint32_t *got, uint32_t *first, fat_each_fn each, void *ctx);
/* VD_OK if n clusters can be allocated now (held ones released by a
 * commit if need be), VD_ERR_NOSPC otherwise; changes nothing else. */
vd_err fat_reserve(vd_fs *fs, uint32_t n);
uint64_t fat_entry_block(const vd_fs *fs, uint32_t c);
/* Free the chain starting at c. */
vd_err fat_free_chain(vd_fs *fs, uint32_t c);
/* Orphans' clusters (see vd_fs.pinned). fat_orphan_free frees clusters
 * [c, c+len) of a chain in the FAT and pins them; fat_orphan_alloc pins n
 * free clusters, telling `each` (no FAT change; on failure the caller
 * releases what it was told); fat_orphan_release unpins [c, c+len) and
 * holds them until the next commit (fat_alloc may take them after it). */
vd_err fat_orphan_free(vd_fs *fs, uint32_t c, uint32_t len);
vd_err fat_orphan_alloc(vd_fs *fs, uint32_t n, fat_each_fn each, void *ctx);
void fat_orphan_release(vd_fs *fs, uint32_t c, uint32_t len);
/* Free clusters not pinned by an orphan (what statfs reports). */
uint32_t fat_free_unpinned(const vd_fs *fs);
/* Count free clusters by reading the whole FAT (sets free_exact). */
vd_err fat_count_free(vd_fs *fs);
/* Clear FAT[1]'s clean bit on the first modification of a mount. */
vd_err fat_mark_dirty(vd_fs *fs);
vd_err fat_set_clean(vd_fs *fs, int clean);
uint64_t fat_clus_off(const vd_fs *fs, uint32_t c);

/* ---- bpb.c ---- */
typedef struct fat_geom {
    uint32_t bps, spc, rsvd, nfats, fat_sectors, total_sectors, root_clus;
    uint32_t fsinfo_sec, backup_sec, ext_flags, volume_id, media;
    uint8_t label[11];
} fat_geom;
/* Decode and validate a boot sector against the volume size. */
vd_err fat_bpb_decode(const uint8_t *sec, uint64_t vol_bytes, fat_geom *g,
                      uint32_t *nclusters);
void fat_bpb_encode(const fat_geom *g, uint8_t sec[512]);
void fat_fsinfo_encode(uint8_t sec[512], uint32_t free_count, uint32_t next_free);

/* ---- dir.c ---- */
/* One decoded directory entry. */
typedef struct fat_dent {
    uint16_t name[FAT_NAME_MAX + 1];
    size_t nlen;
    uint8_t sfn[11];
    uint8_t attr, ntres;
    uint32_t first, size;
    uint16_t cdate, ctime, adate, mdate, mtime;
    uint8_t ctenth;
    uint32_t slot;       /* the short entry */
    uint32_t first_slot; /* first LFN slot (== slot without LFN) */
} fat_dent;

typedef struct fat_dirit {
    uint32_t first;      /* directory's first cluster */
    uint32_t clus, cidx; /* cursor: cluster number and its chain index */
    uint32_t slot;       /* next slot to read */
} fat_dirit;

void fat_dirit_init(fat_dirit *it, uint32_t first);
/* Next live entry (skips deleted, volume labels, "." and ".."); NOENT at
 * the end of the directory. */
vd_err fat_dir_next(vd_fs *fs, fat_dirit *it, fat_dent *d);
/* Byte offset of slot within the directory; NOENT past the chain. */
vd_err fat_dir_slot_off(vd_fs *fs, fat_dirit *it, uint32_t slot, uint64_t *off);
vd_err fat_dir_lookup(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                      fat_dent *d);
/* Add an entry for name (an alias is generated), return its location. */
vd_err fat_dir_add(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                   const fat_dent *proto, uint32_t *slot);
vd_err fat_dir_remove(vd_fs *fs, uint32_t dir, const fat_dent *d);
/* Rewrite first cluster, size, attr, times of the short entry. */
vd_err fat_dir_update(vd_fs *fs, uint32_t dir, uint32_t slot, const fat_dent *d);
vd_err fat_dir_read_slot(vd_fs *fs, uint32_t dir, uint32_t slot, fat_dent *d);
vd_err fat_dir_is_empty(vd_fs *fs, uint32_t dir, int *empty);
/* A new directory cluster with "." and ".." (parent 0 = root). */
vd_err fat_dir_create(vd_fs *fs, uint32_t parent, const fat_dent *proto, uint32_t *clus);
vd_err fat_dir_set_parent(vd_fs *fs, uint32_t dir, uint32_t parent);
vd_err fat_dir_get_parent(vd_fs *fs, uint32_t dir, uint32_t *parent);
void fat_dent_encode(const fat_dent *d, uint8_t e[32]);
void fat_dent_decode(const uint8_t e[32], fat_dent *d);

/* ---- dirindex.c ---- */
/* What a scan of one directory would find, kept so that dir.c need not
 * scan it again. Only dir.c's own writes keep it in step: anything else
 * that changes or frees a directory's clusters must call fat_dix_drop. */
typedef struct fat_dix fat_dix;
/* The index of dir, built by a scan if it has none; NULL when it cannot
 * be built (a read failure, no memory): the caller scans instead. */
fat_dix *fat_dix_get(vd_fs *fs, uint32_t dir);
/* The index of dir if it has one (never builds). */
fat_dix *fat_dix_find(vd_fs *fs, uint32_t dir);
void fat_dix_drop(vd_fs *fs, uint32_t dir);
void fat_dix_free_all(vd_fs *fs);
int fat_dix_sfn_has(const fat_dix *x, const uint8_t sfn[11]);
/* First slots of the entries whose name (alias=0) or, for entries with a
 * long name, 8.3 alias (alias=1) may equal name, ascending; max + 1 when
 * more than max. */
size_t fat_dix_candidates(const fat_dix *x, const uint16_t *name, size_t n, int alias,
                          uint32_t *first_slots, size_t max);
/* Does the index hold a named entry spanning [first_slot, slot]? */
int fat_dix_matches(const fat_dix *x, uint32_t first_slot, uint32_t slot);
/* First run of k free slots within the chain, UINT32_MAX if none. */
uint32_t fat_dix_find_run(fat_dix *x, uint32_t k);
/* Move an iterator of the directory (it->first must be its first
 * cluster) to the cluster holding slot, from the chain as last checked,
 * so it need not walk the FAT from the start (x may be NULL). */
void fat_dix_place(const fat_dix *x, uint32_t slot, fat_dirit *it);
/* Where the trailing free slots begin. */
uint32_t fat_dix_tail(const fat_dix *x);
uint32_t fat_dix_nslots(const fat_dix *x);
uint32_t fat_dix_end(const fat_dix *x);
/* dir.c wrote an entry in [first_slot, slot]; the chain now has nslots
 * slots and its end marker is at end. An error means: drop the index. */
vd_err fat_dix_note_add(vd_fs *fs, fat_dix *x, uint32_t first_slot, uint32_t slot,
                        const uint8_t sfn[11], const uint16_t *name, size_t n,
                        uint32_t nslots, uint32_t end);
/* Alias tails ("NAME~123"): the pattern key of a short name with its
 * digits as '#' and the tail's value (0: no tail); how far up the tails
 * of one pattern are known to be in use, and learning it. */
int fat_dix_tail_key(const uint8_t sfn[11], uint8_t key[11], uint32_t *tail);
uint32_t fat_dix_tail_below(const fat_dix *x, const uint8_t key[11]);
vd_err fat_dix_tail_set(fat_dix *x, const uint8_t key[11], uint32_t below);
/* Drop every index of a directory whose clusters the open file n shares
 * (only on a cross-linked volume): its writes may have changed them. */
void fat_dix_note_node(vd_fs *fs, const fat_node *n);
/* dir.c deleted the entry [first_slot, slot]. Error: drop the index. */
vd_err fat_dix_note_remove(fat_dix *x, uint32_t first_slot, uint32_t slot);

/* ---- node.c ---- */
vd_err fat_node_get(vd_fs *fs, const fat_dent *d, uint32_t dir, fat_node **out);
/* Drop a reference; the last one of an orphan frees its clusters. */
vd_err fat_node_put(vd_fs *fs, fat_node *n);
/* Map n's whole chain (a node about to become an orphan: done before its
 * entry changes, so a failure changes nothing). */
vd_err fat_node_map_all(vd_fs *fs, fat_node *n);
/* The entry d of open node n was removed from its directory, in the
 * operation under way: free its chain (its first in_fat clusters: the
 * rest were freed by fat_node_cut_steps) in the FAT, keep the clusters
 * for the open handles (see fat_node.orphan). fat_node_map_all first. */
vd_err fat_node_orphan(vd_fs *fs, fat_node *n, const struct fat_dent *d, uint32_t in_fat);
/* Grow n's chain towards `clusters`: all of it, or (too many FAT blocks
 * for the commit under way) one step's worth; the caller stores the size
 * the new clusters allow and calls fat_op_step before the next. */
vd_err fat_node_grow(vd_fs *fs, fat_node *n, uint32_t clusters);
fat_node *fat_node_find(vd_fs *fs, uint32_t dir, uint32_t slot);
/* The run of a mapped chain (n->nruns > 0) that holds file cluster fidx
 * (< n->nclus). */
const fat_run *fat_run_find(const fat_node *n, uint32_t fidx);
/* Disk cluster of file cluster fidx and how many follow contiguously. */
vd_err fat_node_map(vd_fs *fs, fat_node *n, uint32_t fidx, uint32_t *clus,
                    uint32_t *contig);
/* Shrink the chain to `clusters` clusters (in committed steps when it
 * is cut by more than one commit takes: step.c). */
vd_err fat_node_resize(vd_fs *fs, fat_node *n, uint32_t clusters);
vd_err fat_node_store(vd_fs *fs, fat_node *n, int touch_mtime);

/* ---- step.c ---- */
/* FAT blocks (per copy) a change may touch without any step logic: the
 * image commits at an operation's end once half the journal area is used
 * (commit.c), so every operation starts with at least that much room. */
#define FAT_STEP_SMALL 3u
/* FAT blocks (per copy) one step may change: a commit's capacity
 * (vd_image_meta_cap) less the step's other metadata. UINT32_MAX when
 * not on an image. */
uint32_t fat_step_blocks(vd_fs *fs);
/* FAT blocks (per copy) the commit under way can still take. */
uint32_t fat_step_room(vd_fs *fs);
/* End a step: the volume is consistent (the layer's cache written back,
 * FSInfo too), commit it. */
vd_err fat_op_step(vd_fs *fs);
/* Cut the chain of n's entry (n mapped, *len clusters long in the FAT)
 * from the end towards `target`, in committed steps, until what is left
 * above target fits in the commit under way; each step writes the entry's
 * size down to match. The freed clusters are pinned for n (pin: n becomes
 * an orphan next) or freed. n's runs and size stay; *len is the chain's
 * length now. */
vd_err fat_node_cut_steps(vd_fs *fs, fat_node *n, uint32_t target, int pin, uint32_t *len);
/* Before the file entry d in dir goes (unlink, rename over it): if its
 * chain is too large for the commit under way, cut it in steps (pinned
 * for `open`, its node if open: *in_fat, open->nclus on entry, is what is
 * left in the FAT). */
vd_err fat_entry_cut_steps(vd_fs *fs, uint32_t dir, const struct fat_dent *d, fat_node *open,
                           uint32_t *in_fat);

/* ---- link.c ---- */
#define FAT_LINK_FILE 1067u /* a link file's size */
#define FAT_LINK_MAX VD_FS_LINK_MAX
/* Could entry d be a link (a file of the link size)? Cheap: no I/O. */
int fat_link_candidate(const fat_dent *d);
/* If the file d is a link, its target's length in *len and (target not
 * NULL, FAT_LINK_MAX + 1 bytes) the target, NUL-terminated; *len = 0 when
 * it is an ordinary file. Only failed reads are errors. */
vd_err fat_link_read(vd_fs *fs, const fat_dent *d, char *target, size_t *len);
/* The file contents for a link to target (len bytes): VD_ERR_NOENT when
 * empty, VD_ERR_NAME when longer than FAT_LINK_MAX. */
vd_err fat_link_format(const char *target, size_t len, uint8_t buf[FAT_LINK_FILE]);
/* Write buf as a new file `name` in dir (contents before the entry). */
vd_err fat_link_create(vd_fs *fs, const uint8_t buf[FAT_LINK_FILE], uint32_t dir,
                       const uint16_t *name, size_t n);

/* ---- path.c, mount.c, dirlist.c ---- */
typedef struct fat_path {
    uint32_t parent; /* directory holding the last component */
    uint16_t name[FAT_NAME_MAX + 1];
    size_t nlen;
    int exists;
    fat_dent d; /* valid when exists */
    int is_root;
    size_t link_len; /* exists and a link not followed: its target's length */
    int slashed;     /* the path ended in '/' after that link */
} fat_path;
/* How fat_path_walk treats a final link (links in the middle are always
 * followed). With a trailing '/', POSIX follows it for lookups (lstat),
 * while unlink, rmdir and rename refuse it (ENOTDIR): they check
 * fat_path.slashed. */
enum {
    FAT_WALK_NOFOLLOW = 0, /* the link itself, even with a trailing '/' */
    FAT_WALK_FOLLOW = 1,   /* its target */
    FAT_WALK_LOOKUP = 2    /* the link itself, its target with a '/' */
};
/* Resolve path (see vdisk/fs.h); follow is a FAT_WALK_ value. */
vd_err fat_path_walk(vd_fs *fs, const char *path, int follow, fat_path *p);
/* fat_path_walk(FAT_WALK_NOFOLLOW). */
vd_err fat_path_resolve(vd_fs *fs, const char *path, fat_path *p);
vd_err fat_writable(vd_fs *fs);
vd_err fat_op_end(vd_fs *fs, vd_err e);
/* Is a vd_dir listing the directory starting at clus? */
int fat_dir_is_open(const vd_fs *fs, uint32_t clus);

#endif
