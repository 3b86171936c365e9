/* vdisk — the FAT32 file system that runs on the trusted side, on top of
 * the secure block device of vdisk.h.
 *
 * The volume occupies the image's logical blocks from block 0, so reading
 * every logical block in order yields a normal FAT32 volume (fsck.fat and
 * mtools read it), and a raw FAT32 volume written block by block into an
 * image mounts here.
 *
 * Paths are UTF-8, '/'-separated, relative to the volume root ("/" or ""
 * is the root). Names are matched case-insensitively and stored with the
 * case given. The FAT32 limits are reported as errors, never as
 * corruption: files up to 4 GiB - 1 (VD_ERR_FBIG), names up to 255 UTF-16
 * units without  " * / : < > ? \ |  or control characters (VD_ERR_NAME).
 *
 * Threads: every call on a volume (and on its files and directories)
 * takes the volume's lock, so handles may be shared between threads; calls
 * on one volume do not run in parallel. Files and directories must be
 * closed before vd_fs_unmount (VD_ERR_BUSY otherwise). An open file can be
 * unlinked or replaced by a rename, as POSIX says: its name goes at once,
 * its handles keep the old contents (reading, writing, growing and
 * shrinking it), and its clusters are reused only after the last handle
 * closes. FAT has no orphan list, so the same operation frees its chain in
 * the FAT: a crash while it is open leaves no lost clusters, and the file
 * is simply gone, as it would be after the close. A listed directory cannot be
 * removed (VD_ERR_BUSY). Lookups match the long name or, as on Windows
 * and Linux, the 8.3 alias ("LONGFI~1.TXT") of an entry.
 *
 * Errors: on a volume mounted from an image, a call that fails with
 * VD_ERR_IO, VD_ERR_AUTH or VD_ERR_NOMEM after it changed metadata may
 * have stopped halfway, so the image enters its sticky failed state (every
 * later call: VD_ERR_FAILED) rather than ever commit that half: the image
 * keeps its last commit, as after a crash (docs/SECURITY.md §4, C4).
 *
 * Symbolic links are stored as Minshall+French links (Linux cifs
 * "mfsymlinks", Samba, macOS): a regular 1067-byte file holding "XSym",
 * the target's length, its MD5 and the target (docs/FORMAT.md). Any other
 * FAT software sees that small file; a file is a link only if its size,
 * header and checksum all match, so an ordinary file never turns into one.
 * Paths given to the calls below never contain ".." (VD_ERR_INVAL); link
 * targets may. Lookups follow links as POSIX path resolution does:
 *   - every component but the last always follows a link;
 *   - vd_fs_stat, vd_fs_utimes, vd_fs_set_attr, vd_file_open and
 *     vd_dir_open follow a final link (vd_file_open with VD_O_CREAT on a dangling link creates
 *     its target; with VD_O_CREAT | VD_O_EXCL a link is VD_ERR_EXIST);
 *   - vd_fs_lstat, vd_fs_lutimes, vd_fs_readlink, vd_fs_unlink,
 *     vd_fs_rename and vd_fs_symlink act on a final link itself; vd_fs_mkdir on one is
 *     VD_ERR_EXIST and vd_fs_rmdir VD_ERR_NOTDIR, as POSIX says;
 *   - a final link followed by '/' is followed by vd_fs_lstat,
 *     vd_fs_lutimes and vd_fs_readlink; vd_fs_unlink and vd_fs_rename
 *     refuse it (VD_ERR_NOTDIR), as Linux does.
 * More than VD_FS_MAXSYMLINKS links in one lookup is VD_ERR_LOOP. A link
 * never leads out of the volume: an absolute target starts at the volume
 * root and ".." at the root stays there (as inside a chroot). */
#ifndef VDISK_FS_H
#define VDISK_FS_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vd_fs vd_fs;
typedef struct vd_file vd_file;
typedef struct vd_dir vd_dir;

/* Clock for timestamps: nanoseconds since the Unix epoch (UTC), 0 on
 * success. Untrusted: out-of-range answers are clamped to 1980..2107 and
 * a failing clock means 1980-01-01. */
typedef int (*vd_clock_fn)(void *ctx, int64_t *ns);

typedef struct vd_mkfs_opts {
    /* Up to 11 characters of A-Z 0-9 !#$%&'()-@^_`{}~ and space (lower
     * case is folded to upper); NULL = "NO NAME". */
    const char *label;
    /* 512..65536, a power of two; 0 = what mkfs.fat would choose for the
     * size (512 B up to 260 MiB, 4 KiB up to 8 GiB, then 8/16/32 KiB). */
    uint32_t cluster_bytes;
    uint32_t volume_id; /* 0 = derived from the clock */
    vd_clock_fn now;    /* may be NULL */
    void *now_ctx;
    /* Room to grow (vd_fs_grow): a FAT long enough for a volume of up to
     * max_bytes at this volume's cluster size; 0 (or not more than the
     * volume) = as long as this volume needs, as mkfs.fat makes it. */
    uint64_t max_bytes;
} vd_mkfs_opts;

typedef struct vd_fs_opts {
    int read_only;
    vd_clock_fn now; /* may be NULL: timestamps are 1980-01-01 */
    void *now_ctx;
} vd_fs_opts;

typedef struct vd_statfs {
    uint32_t cluster_bytes;
    uint32_t sector_bytes;
    uint32_t total_clusters;
    uint32_t free_clusters;
    uint32_t volume_id;
    char label[12]; /* NUL-terminated, trailing spaces removed */
    int unclean; /* the volume was not cleanly unmounted when this mount
                    began (FAT[1]'s clean bit was clear): the session that
                    last wrote it ended without vd_fs_unmount */
} vd_statfs;

/* FAT attribute bits, as stored. */
enum {
    VD_ATTR_READONLY = 0x01,
    VD_ATTR_HIDDEN = 0x02,
    VD_ATTR_SYSTEM = 0x04,
    VD_ATTR_VOLUME = 0x08,
    VD_ATTR_DIR = 0x10,
    VD_ATTR_ARCHIVE = 0x20
};

/* Longest link target (bytes, without a NUL) and most links one lookup
 * follows (Linux's limits for the format and for ELOOP). */
#define VD_FS_LINK_MAX 1024u
#define VD_FS_MAXSYMLINKS 40u

typedef struct vd_stat {
    uint64_t size;  /* a link's: its target's length (as lstat(2)) */
    int64_t mtime_ns, atime_ns, ctime_ns; /* ns since the Unix epoch (UTC) */
    uint8_t attr;
    int is_dir;
    int is_link; /* 1 for a symbolic link (only from vd_fs_lstat); is_dir = 0 */
    uint32_t first_cluster; /* 0 while a file is empty: not an identity */
    /* Where the file's directory entry is: (directory's first cluster << 32)
     * | slot of its short entry. Every spelling of a name (any case, the
     * 8.3 alias) gives the same value, and no two entries share one at a
     * time, so a mount can key its inodes on it. It changes when a rename
     * moves the entry; a freed slot can be reused by a later entry. 0 for
     * the root; VD_ENTRY_NONE for an open file whose entry was unlinked. */
    uint64_t entry_id;
} vd_stat;

#define VD_ENTRY_NONE UINT64_MAX

typedef struct vd_dirent {
    char name[1024]; /* UTF-8, at most 255 UTF-16 units */
    int is_dir;
    int is_link; /* 1 for a symbolic link; then is_dir = 0 */
    uint64_t size; /* a link's: its target's length */
    uint8_t attr;
} vd_dirent;

/* Open flags (combine one access mode with the others). */
enum {
    VD_O_RDONLY = 0,
    VD_O_WRONLY = 1,
    VD_O_RDWR = 2,
    VD_O_ACCMODE = 3,
    VD_O_CREAT = 1 << 4,
    VD_O_EXCL = 1 << 5,
    VD_O_TRUNC = 1 << 6,
    VD_O_APPEND = 1 << 7
};

enum { VD_RENAME_NOREPLACE = 1 };

/* ---- Block-device interface (benchmarks and tests) ------------------------
 * The FAT32 layer reaches its volume only through these three calls on
 * 4 KiB blocks (FatFs diskio style), so the same layer can run over
 * devices other than a vd_image: vhdbench uses it to compare plain,
 * checksummed and AEAD-only devices against the full image with the same
 * file-system code. It is for benchmarks and tests: every security
 * property (encryption, authentication, rollback detection, crash
 * consistency) comes from vd_image, not from this interface, and a volume
 * mounted over another device has none of them. Blocks are FAT_BLOCK =
 * VD_BLOCK_SIZE bytes; lbn + count never exceeds nblocks; sync makes every
 * write so far durable. Each call returns VD_OK or a vd_err. */
typedef struct vd_blockdev {
    void *ctx;
    uint64_t nblocks;
    vd_err (*read)(void *ctx, uint64_t lbn, uint32_t count, void *buf);
    vd_err (*write)(void *ctx, uint64_t lbn, uint32_t count, const void *buf);
    vd_err (*sync)(void *ctx);
} vd_blockdev;

/* The cluster size vd_fs_format chooses for a volume of `bytes` when
 * vd_mkfs_opts.cluster_bytes is 0 (mkfs.fat's FAT32 choice), so a tool
 * can size a volume for a tree before formatting it. */
uint32_t vd_fs_default_cluster_bytes(uint64_t bytes);

/* Lay a fresh FAT32 volume over the whole image (512-byte sectors, two
 * FATs, data region aligned to 4 KiB). A size that gives fewer than 65525
 * clusters cannot be FAT32: VD_ERR_RANGE. */
vd_err vd_fs_format(vd_image *img, const vd_mkfs_opts *o);
/* The same over any block device (dev is copied; dev->ctx must outlive
 * the call). */
vd_err vd_fs_format_dev(const vd_blockdev *dev, const vd_mkfs_opts *o);

/* Mount the FAT32 volume at logical block 0 (o may be NULL). Every BPB
 * field is checked; a malformed volume is VD_ERR_CORRUPT. */
vd_err vd_fs_mount(vd_image *img, const vd_fs_opts *o, vd_fs **out);
/* The same over any block device: the volume keeps a copy of *dev, and
 * dev->ctx must stay valid until vd_fs_unmount. */
vd_err vd_fs_mount_dev(const vd_blockdev *dev, const vd_fs_opts *o, vd_fs **out);
/* Sync, mark the volume cleanly unmounted, free the handle (always
 * freed; returns the first error). The image (or device) stays open. */
vd_err vd_fs_unmount(vd_fs *fs);
/* Write FSInfo and every cached metadata block, then vd_image_sync (the
 * device's sync). */
vd_err vd_fs_sync(vd_fs *fs);
/* vd_fs_sync ending in vd_image_commit instead: durable, but not an
 * acknowledged sync for an anchor in VD_ANCHOR_EXPLICIT_SYNC mode (a
 * mount's periodic commits). Over another vd_blockdev it is vd_fs_sync. */
vd_err vd_fs_commit(vd_fs *fs);
/* Grow the volume and its image to bytes (rounded down to 4 KiB; what
 * mkvhd --size means) in place, in one commit with vd_image_grow: after a
 * crash the old volume on the old image, or the new one on the new. The
 * FAT's length was fixed when the volume was made: past its room
 * (vd_fs_grow_limit) VD_ERR_RANGE; the remedy is a new image (mkvhd
 * --size, or --max-size to reserve room) and a copy. VD_ERR_INVAL: not
 * larger than the image. Errors of vd_image_grow otherwise. */
vd_err vd_fs_grow(vd_fs *fs, uint64_t bytes);
/* The largest volume (bytes, a multiple of 4 KiB) the FAT has room for. */
vd_err vd_fs_grow_limit(vd_fs *fs, uint64_t *bytes);
vd_err vd_fs_statfs(vd_fs *fs, vd_statfs *st);

vd_err vd_fs_stat(vd_fs *fs, const char *path, vd_stat *st);
/* As vd_fs_stat, but a final link is described itself (is_link = 1). */
vd_err vd_fs_lstat(vd_fs *fs, const char *path, vd_stat *st);
/* Create linkpath as a symbolic link to target (stored as given, not
 * resolved: it may dangle). An empty target is VD_ERR_NOENT, one longer
 * than VD_FS_LINK_MAX bytes VD_ERR_NAME; linkpath existing (a link
 * included) VD_ERR_EXIST. */
vd_err vd_fs_symlink(vd_fs *fs, const char *target, const char *linkpath);
/* Copies the stored target, NUL-terminated, into buf; *len = its length
 * without the NUL (also set on VD_ERR_RANGE). VD_ERR_RANGE if bufsz <=
 * length; VD_ERR_INVAL if path is not a link. */
vd_err vd_fs_readlink(vd_fs *fs, const char *path, char *buf, size_t bufsz, size_t *len);
vd_err vd_fs_mkdir(vd_fs *fs, const char *path);
vd_err vd_fs_rmdir(vd_fs *fs, const char *path);
vd_err vd_fs_unlink(vd_fs *fs, const char *path);
vd_err vd_fs_rename(vd_fs *fs, const char *from, const char *to, int flags);
/* Set access and modification times (ns since the epoch, clamped). */
vd_err vd_fs_utimes(vd_fs *fs, const char *path, int64_t atime_ns, int64_t mtime_ns);
/* The same on a final link itself (lutimes(3)). */
vd_err vd_fs_lutimes(vd_fs *fs, const char *path, int64_t atime_ns, int64_t mtime_ns);
/* Set the attribute bits in mask to their values in attr: only
 * VD_ATTR_READONLY, _HIDDEN, _SYSTEM and _ARCHIVE can change (others in
 * mask: VD_ERR_INVAL). The root has no entry: VD_ERR_PERM. */
vd_err vd_fs_set_attr(vd_fs *fs, const char *path, uint8_t attr, uint8_t mask);

vd_err vd_file_open(vd_fs *fs, const char *path, int flags, vd_file **out);
vd_err vd_file_read(vd_file *f, uint64_t off, void *buf, size_t len, size_t *done);
/* All or nothing: on VD_ERR_NOSPC / VD_ERR_FBIG nothing was written. With
 * VD_O_APPEND, off is ignored and the data goes to the end. */
vd_err vd_file_write(vd_file *f, uint64_t off, const void *buf, size_t len, size_t *done);
vd_err vd_file_truncate(vd_file *f, uint64_t size);
vd_err vd_file_sync(vd_file *f);
vd_err vd_file_stat(vd_file *f, vd_stat *st);
vd_err vd_file_close(vd_file *f);

vd_err vd_dir_open(vd_fs *fs, const char *path, vd_dir **out);
/* Next entry ("." and ".." are not returned); VD_ERR_NOENT at the end. */
vd_err vd_dir_read(vd_dir *d, vd_dirent *ent);
vd_err vd_dir_close(vd_dir *d);

/* ---- Raw volume copies (mkvhd --from-raw, vhdtool export) ----------------
 * The volume is the image's logical blocks from 0; these copy it out of or
 * into an image, checking that it is FAT32 and that it fits. */

/* Receives the volume in ascending offsets, up to 1 MiB per call; 0 on
 * success. */
typedef int (*vd_fs_sink_fn)(void *ctx, uint64_t off, const void *buf, size_t len);
/* Fills buf with exactly len bytes at off; 0 on success. */
typedef int (*vd_fs_source_fn)(void *ctx, uint64_t off, void *buf, size_t len);

/* Copy the volume (total sectors x sector size, from its boot sector) to
 * sink. With sparse set, all-zero 4 KiB blocks are not passed (the caller
 * makes holes; *vol_bytes tells the final size). A sink failure is
 * VD_ERR_IO; a boot sector that is not FAT32 VD_ERR_CORRUPT. The volume
 * should be unmounted (or synced) so the copy is consistent. */
vd_err vd_fs_export(vd_image *img, vd_fs_sink_fn sink, void *ctx, int sparse,
                    uint64_t *vol_bytes);
/* Write a raw FAT32 volume of `bytes` bytes into the image from block 0
 * (the last block is padded with zeros) and sync. The boot sector is
 * checked first: not FAT32 is VD_ERR_CORRUPT (nothing written), larger
 * than the image VD_ERR_RANGE. */
vd_err vd_fs_import(vd_image *img, vd_fs_source_fn source, void *ctx, uint64_t bytes);

#ifdef __cplusplus
}
#endif
#endif
