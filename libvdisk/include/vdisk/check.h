/* vdisk — verifying and repairing an image (vhdfsck).
 *
 * Two layers, as in the rest of the library:
 *   vd_image_scrub  verifies every authenticated block of the image (every
 *                   tree node, every data block, written or not) and keeps
 *                   going past failures, reporting each bad block or bad
 *                   node's range instead of stopping at the first;
 *   vd_fsck         scrubs, then checks the FAT32 structure on top (FAT
 *                   copies, chains, cross-links, lost clusters, directory
 *                   entries, long names, sizes, FSInfo, dirty flag), maps
 *                   each bad block to the file that owns it, and repairs
 *                   what the mode allows.
 *
 * Integrity violations are never re-authenticated (R2): a file holding a
 * block that failed authentication is quarantined (truncated before the
 * first bad cluster) and the bad block is overwritten with fresh zeros
 * through the library. Blocks under a tree node that fails authentication
 * can be neither read nor rewritten through the tree: files holding them
 * are quarantined the same way and the node's range is reset to "never
 * written" (vd_image_discard_range); when even that is impossible, its
 * clusters are marked bad in the FAT so nothing allocates them. */
#ifndef VDISK_CHECK_H
#define VDISK_CHECK_H

#include <stdint.h>

#include "fs.h"
#include "vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vd_scrub_stats {
    uint64_t blocks;       /* logical blocks visited */
    uint64_t blocks_ok;    /* verified (or vouched never-written by the tree) */
    uint64_t bad_blocks;   /* data blocks that failed authentication */
    uint64_t bad_nodes;    /* tree nodes that failed authentication */
    uint64_t unverifiable; /* data blocks under a failed node */
    uint64_t bytes_read;   /* ciphertext bytes read from the host */
} vd_scrub_stats;

typedef struct vd_scrub_ops {
    void *ctx;
    /* Each failure, in block order: a data block (level 0, one block) or
     * a tree node (level > 0) and the data blocks it covers. Return VD_OK
     * to go on; any other value stops the scrub with that error. May be
     * NULL. Called with the image locked: do not call vd_image_* here. */
    vd_err (*bad)(void *ctx, const vd_bad_range *r);
    /* Blocks done so far out of total (may be NULL; same locking rule). */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
} vd_scrub_ops;

/* Verify every logical block of the image and every tree node on the way.
 * A failing tree node does not put the handle in the sticky failed state
 * here: its range is reported and skipped (a later ordinary read under it
 * fails, and fails the handle, as usual). Header, key check and both
 * superblocks were verified when the image was opened. Returns VD_OK when
 * the walk completed (failures are in *st and went to ops->bad), or the
 * error that stopped it (I/O, a failed handle, ops->bad's answer). */
vd_err vd_image_scrub(vd_image *img, const vd_scrub_ops *ops, vd_scrub_stats *st);

/* Reset every data block under a tree node that failed authentication to
 * "never written" (it reads as zeros), without reading the node: the entry
 * for it in its parent (or, if the parent covers nothing else, the lowest
 * ancestor that does) is set to "never written" and committed by an
 * ordinary journaled sync, whose only data block is a neighbour outside
 * the range, read and written back unchanged. A crash leaves either the
 * old state or the new one, both authentic (C1); the tampered node is
 * never accepted (R2) and is simply overwritten by the next write under
 * it. r is a range as vd_image_scrub or vd_image_last_failure report it
 * (level >= 1, the node's whole range); a node that verifies is refused
 * (VD_ERR_INVAL): this repairs, it does not drop data. Pending writes are
 * synced first. VD_ERR_UNSUPPORTED when no verifiable block outside the range shares an
 * ancestor with it (the root, or every neighbour bad too). */
vd_err vd_image_discard_range(vd_image *img, const vd_bad_range *r);

/* ---- File-system check --------------------------------------------------- */

typedef enum vd_fsck_mode {
    VD_FSCK_CHECK = 0, /* -n: change nothing */
    VD_FSCK_SAFE = 1,  /* -p: dirty flag, FSInfo, FAT copies, lost clusters,
                          and only while no other problem needs a decision */
    VD_FSCK_ALL = 2    /* -y: everything repairable */
} vd_fsck_mode;

typedef enum vd_fsck_kind {
    VD_FSCK_P_INTEGRITY = 1, /* block(s) failed authentication */
    VD_FSCK_P_FAT_COPIES,    /* the FAT copies differ */
    VD_FSCK_P_DIRTY,         /* volume not cleanly unmounted */
    VD_FSCK_P_FSINFO,        /* FSInfo free count or next-free wrong */
    VD_FSCK_P_LOST,          /* clusters in use but owned by no file */
    VD_FSCK_P_CROSSLINK,     /* a cluster in two chains */
    VD_FSCK_P_CHAIN,         /* chain points outside the volume, to a free
                                cluster, or loops */
    VD_FSCK_P_SIZE,          /* file size does not match its chain */
    VD_FSCK_P_LFN,           /* bad long-name entries */
    VD_FSCK_P_DOT,           /* bad "." or ".." entry */
    VD_FSCK_P_DIRENT,        /* bad directory entry (first cluster...) */
    VD_FSCK_P_VOLUME         /* the volume cannot be checked (boot sector,
                                FAT or root directory unreadable) */
} vd_fsck_kind;

typedef struct vd_fsck_problem {
    vd_fsck_kind kind;
    int safe;       /* repairable by VD_FSCK_SAFE */
    int repairable; /* repairable at all (VD_FSCK_ALL) */
    int fixed;      /* repaired in this run */
    int have_block; /* first_lbn/nblocks/level are meaningful */
    uint32_t level; /* 0: data block; > 0: tree node */
    uint64_t first_lbn, nblocks;
    const char *path;   /* owning file ("/dir/name", from the root) or a
                            region ("free space", "FAT copy 1", "tree
                            node", "boot sector", ...); NULL if none.
                            Valid during the report call only. */
    const char *what;   /* the problem, one line, no trailing newline */
    const char *action; /* what was (or would be) done, or NULL */
} vd_fsck_problem;

typedef struct vd_fsck_opts {
    vd_fsck_mode mode;
    void *ctx;
    /* Every problem found, once, after the decision to repair it was made
     * (fixed tells). May be NULL. */
    void (*report)(void *ctx, const vd_fsck_problem *p);
    /* Scrub progress (see vd_scrub_ops.progress); may be NULL. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
} vd_fsck_opts;

typedef struct vd_fsck_result {
    vd_scrub_stats scrub;
    uint32_t files, dirs; /* entries walked */
    uint32_t clusters_used, clusters_total;
    uint32_t found, fixed; /* problems */
    uint32_t integrity_found, integrity_fixed;
    int fs_checked; /* the FAT32 structure could be walked */
} vd_fsck_result;

/* Scrub the image, then check (and per o->mode repair) its FAT32 volume,
 * then sync. The image must be writable for any mode but VD_FSCK_CHECK,
 * and no vd_fs may be mounted on it. Repairs are all or nothing per run
 * (VD_FSCK_SAFE writes only when every problem is safe); with nothing
 * found, no mode writes a byte. Returns VD_OK when the check ran to the
 * end, whatever it found (see *res: found > fixed means problems remain);
 * an error when it could not (I/O, out of memory). Reports come from the
 * calling thread, after the scrub and the repairs. */
vd_err vd_fsck(vd_image *img, const vd_fsck_opts *o, vd_fsck_result *res);

#ifdef __cplusplus
}
#endif
#endif
