/* vdisk — encrypted, integrity-protected virtual disks.
 *
 * Public interface of the secure block device: an image of 4 KiB logical
 * blocks, each encrypted with an AEAD bound to the image and its block
 * number, authenticated by a Merkle tree of MACs whose root lives in an
 * authenticated A/B superblock, kept crash-consistent by a journal of
 * before/after versions (docs/FORMAT.md, docs/SECURITY.md).
 *
 * The library performs no I/O of its own: everything goes through the
 * vd_host callbacks below, so an enclave shield or a test can supply the
 * world. Every call returns a vd_err; VD_OK is 0. */
#ifndef VDISK_VDISK_H
#define VDISK_VDISK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VD_VERSION_MAJOR 0
#define VD_VERSION_MINOR 1
#define VD_VERSION_PATCH 0
#define VD_VERSION_STRING "0.1.0"

#define VD_BLOCK_SIZE 4096u
#define VD_KEY_BYTES 32u

/* One error enum for the whole library. Values are stable: tools map them
 * to exit statuses and the FUSE mount to errno. */
typedef enum vd_err {
    VD_OK = 0,
    VD_ERR_IO = -1,          /* the host failed a read/write/flush/size call */
    VD_ERR_AUTH = -2,        /* a block or structure failed authentication */
    VD_ERR_ROLLBACK = -3,    /* state older than the freshness anchor */
    VD_ERR_WRONG_KEY = -4,   /* the key does not open this image */
    VD_ERR_CORRUPT = -5,     /* malformed structure (not ours, truncated...) */
    VD_ERR_NOSPC = -6,       /* no space left (host disk or volume) */
    VD_ERR_INVAL = -7,       /* bad argument */
    VD_ERR_NOMEM = -8,       /* out of memory */
    VD_ERR_UNSUPPORTED = -9, /* format version, cipher or feature unsupported */
    VD_ERR_BUSY = -10,       /* resource in use (locked image, open handles,
                                the last key slot) */
    VD_ERR_FAILED = -11,     /* handle is in the sticky failed state */
    VD_ERR_READONLY = -12,   /* write through a read-only handle */
    VD_ERR_RANGE = -13,      /* block number or size out of range */
    /* File-system level (vd_fs_*, vd_file_*): */
    VD_ERR_NOENT = -14,      /* no such file or directory */
    VD_ERR_EXIST = -15,      /* file exists */
    VD_ERR_NOTDIR = -16,     /* a path component is not a directory */
    VD_ERR_ISDIR = -17,      /* is a directory */
    VD_ERR_NOTEMPTY = -18,   /* directory not empty */
    VD_ERR_NAME = -19,       /* name too long or not storable in FAT32 */
    VD_ERR_FBIG = -20,       /* file would exceed 4 GiB - 1 (FAT32 limit) */
    VD_ERR_MFILE = -21,      /* too many open files */
    VD_ERR_PERM = -22,       /* operation not permitted (e.g. rename a
                                directory into itself) */
    VD_ERR_LOOP = -23,       /* too many levels of symbolic links (ELOOP) */
    /* Freshness anchor (R7 and the anchor's own failures; never reported
     * as VD_ERR_ROLLBACK): */
    VD_ERR_ANCHOR_MISMATCH = -24,    /* the anchor belongs to another image */
    VD_ERR_ANCHOR_UNREACHABLE = -25, /* the anchor does not answer (TPM gone) */
    VD_ERR_ANCHOR_MISSING = -26,     /* no such anchor (NV index undefined) */
    VD_ERR_ANCHOR_DENIED = -27,      /* the anchor refused the authorization */
    /* A key rotation (vd_image_rekey) is in progress: only read-only opens
     * and vd_image_rekey itself, which finishes it, may open the image. */
    VD_ERR_REKEY = -28
} vd_err;

/* Stable, human-readable message for an error code. Never NULL. */
const char *vd_strerror(vd_err err);

/* Library version as a string, e.g. "0.1.0". */
const char *vd_version(void);

/* ---- Host interface ------------------------------------------------------
 * All persistence, time and randomness-free I/O of the core goes through
 * these callbacks (FatFs' diskio, SQLite's io_methods). Each returns 0 on
 * success or a negative errno. The core treats every answer as untrusted:
 * counts are checked against what was asked, sizes against the header. */
typedef struct vd_host {
    void *ctx;
    /* Read up to len bytes at off; *done receives the count transferred.
     * Data reads run outside the handle's lock: when the application reads
     * from several threads, this may be called from several at once. */
    int (*read_at)(void *ctx, uint64_t off, void *buf, size_t len, size_t *done);
    /* Write len bytes at off; *done receives the count transferred. */
    int (*write_at)(void *ctx, uint64_t off, const void *buf, size_t len,
                    size_t *done);
    /* Make every completed write durable (fdatasync). A barrier: writes
     * issued after it returns are never ordered before writes before it. */
    int (*flush)(void *ctx);
    /* Current size of the image in bytes. */
    int (*size)(void *ctx, uint64_t *size);
    /* Set the size of the image (used only when creating it). */
    int (*truncate)(void *ctx, uint64_t size);
    /* Wall-clock time in nanoseconds since the Unix epoch. Untrusted: used
     * for timestamps only, clamped by the caller. May be NULL. */
    int (*now)(void *ctx, int64_t *ns);
    /* Optional hint (may be NULL): the core has allocated [addr, addr +
     * len), a large, long-lived buffer (the block cache or a commit
     * buffer, 2 MiB aligned from 2 MiB on), and has not written to it
     * yet. The host may back it with huge pages (madvise MADV_HUGEPAGE)
     * and fault it in (VD_HOST_PREFAULT in host.h). The core makes no
     * memory-mapping calls itself (an enclave host leaves this NULL). */
    void (*mem_advise)(void *ctx, void *addr, size_t len);
    /* Optional (may be NULL): run fn(arg, i) for every i in [0, n), on as
     * many threads as the host likes, and return once every one has
     * returned. The core hands it independent pure computation (sealing
     * and opening a batch of blocks): the jobs make no host calls and
     * touch nothing another job touches. NULL runs them one after another
     * on the calling thread: a host that cannot create threads (an enclave
     * shield) leaves it NULL, and the core itself never creates one. The
     * bundled hosts run them on a small persistent pool (vd_jobs_new in
     * host.h). It may be called from several threads at once. It runs
     * the core's own code on the threads it gives it, so it belongs to the
     * trusted side (inside a shield, the shield's own threads); the core
     * still runs any job it skipped. */
    void (*run_jobs)(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                     void *arg);
    /* Optional, both or neither (NULL: the core does the work inline):
     * job_start runs fn(arg) on a host thread and returns at once with a
     * nonzero ticket (0: it could not, and the core runs fn itself);
     * job_wait(ticket) returns once that job has returned. The core uses
     * them to let a commit forced by cache pressure write and flush while
     * the caller goes on: the job calls write_at and flush while the
     * caller may call read_at (never on the same bytes), so a host that
     * offers them accepts calls from two threads at once. */
    uint64_t (*job_start)(void *ctx, void (*fn)(void *arg), void *arg);
    void (*job_wait)(void *ctx, uint64_t ticket);
} vd_host;

/* ---- Freshness anchor (R4, R7) --------------------------------------------
 * A monotonic counter the host cannot roll back (TPM NV counter, enclave
 * monotonic counter, or a local file for tools). Optional.
 *
 * Callbacks return 0 or a negative errno; the library reports -ENOENT as
 * VD_ERR_ANCHOR_MISSING, -EACCES / -EPERM as VD_ERR_ANCHOR_DENIED,
 * -EHOSTDOWN (and the other "peer gone" errnos: ECONNREFUSED, ECONNRESET,
 * ENOTCONN, EPIPE, ETIMEDOUT, EHOSTUNREACH) as VD_ERR_ANCHOR_UNREACHABLE,
 * anything else as VD_ERR_IO. */
#define VD_ANCHOR_ID_MAX 64u     /* bytes of an anchor's identity */
#define VD_ANCHOR_SECRET_BYTES 32u
typedef struct vd_anchor {
    void *ctx;
    int (*read)(void *ctx, uint64_t *value);
    /* Advance to exactly value (never backwards). */
    int (*advance)(void *ctx, uint64_t value);
    /* Optional (R7): a byte string naming this counter and no other (the
     * file anchor's random id, a TPM NV index's name), *len <= 
     * VD_ANCHOR_ID_MAX. *len = 0 (or no callback): the anchor cannot name
     * itself. The image's superblocks record a keyed tag of it, and an
     * anchor whose identity differs is VD_ERR_ANCHOR_MISMATCH. */
    int (*identity)(void *ctx, uint8_t id[VD_ANCHOR_ID_MAX], size_t *len);
    /* Optional: called once at open/create, before any other callback,
     * with a secret derived from the image's master key (KDF context
     * "vd-anchr", id 1): the TPM anchor's NV authorization value. The
     * anchor must copy it if needed; the library wipes its copy. */
    int (*authorize)(void *ctx, const uint8_t secret[VD_ANCHOR_SECRET_BYTES]);
    /* 0 or 1: the anchor holds any value. Else it holds only multiples of
     * step: a counter that moves by one per increment, read as count x
     * step (the TPM anchor). The library then anchors only epochs that are
     * multiples of step, jumping the epoch to the next one when it must
     * (an extra superblock record), so one acknowledged sync costs one
     * increment however many commits came before it. */
    uint64_t step;
} vd_anchor;

/* ---- Ciphers ------------------------------------------------------------- */
typedef enum vd_cipher {
    VD_CIPHER_AES256GCM = 1,
    VD_CIPHER_XCHACHA20POLY1305 = 2
} vd_cipher;

/* Which implementation does bulk AES-256-GCM; same on-disk format. */
typedef enum vd_aead_impl {
    VD_AEAD_AUTO = 0, /* measure both at open, keep the faster */
    VD_AEAD_OPENSSL = 1,
    VD_AEAD_SODIUM = 2
} vd_aead_impl;

/* ---- The image ----------------------------------------------------------- */
typedef struct vd_image vd_image;

typedef struct vd_create_opts {
    uint64_t nblocks;     /* logical 4 KiB blocks; required, >= 1 */
    vd_cipher cipher;     /* 0 means AES-256-GCM */
    uint32_t journal_blocks; /* per superblock slot; 0 = automatic */
    uint32_t fanout;      /* tree fan-out 2..128; 0 = 128. Small values give
                             deep trees on small images (tests). */
    /* Blocks of the leaf-version log (docs/FORMAT.md §7b): how many
     * commits of a few data blocks may follow each other before one seals
     * the tree's nodes. 0 = automatic; VD_LOG_NONE = no log. */
    uint32_t log_blocks;
} vd_create_opts;

#define VD_LOG_NONE UINT32_MAX

/* When a writable handle advances its freshness anchor (R4; trade-off in
 * docs/SECURITY.md). */
typedef enum vd_anchor_mode {
    /* Every committed sync round advances it, implicit ones (cache pressure
     * inside vd_image_write/vd_image_read) included. */
    VD_ANCHOR_EVERY_COMMIT = 0,
    /* Only acknowledged syncs advance it (to the newest commit):
     * vd_image_sync and vd_image_close, not vd_image_commit, periodic or
     * cache-pressure commits. Fewer counter updates (hardware counters are
     * slow and wear out), but until the next acknowledged sync the host can
     * replay any state committed since the last one. */
    VD_ANCHOR_EXPLICIT_SYNC = 1
} vd_anchor_mode;

typedef struct vd_open_opts {
    int read_only;            /* never write to the host */
    size_t cache_bytes;       /* cache budget; 0 = default (16 MiB) */
    vd_aead_impl aead_impl;   /* implementation choice */
    const vd_anchor *anchor;  /* optional freshness anchor (R4) */
    vd_anchor_mode anchor_mode; /* 0 = VD_ANCHOR_EVERY_COMMIT */
    /* Writable opens only (vhdtool anchor init): bind the image to this
     * anchor, replacing the one it was bound to. The image is taken as it
     * is (no rollback check against a new anchor: its counter may be ahead
     * of the image) and its epoch jumps to the counter's value. Without
     * it, an anchor whose identity differs from the image's binding is
     * VD_ERR_ANCHOR_MISMATCH; an image never bound (made before R7) is
     * bound to the first anchor with an identity that opens it writable. */
    int anchor_bind;
    /* Periodic commits (DESIGN C5): when > 0, the end of a file-system
     * operation commits if at least this long (by the host's clock,
     * vd_host.now) has passed since the last commit. A crash then loses at
     * most this interval of work that was never synced, plus the operation
     * under way. 0 = commit only at vd_image_sync, vd_image_close and under
     * cache pressure. Needs vd_host.now (VD_ERR_INVAL without it). */
    int64_t commit_interval_ns;
    /* TESTING ONLY (crash-harness mutation check): 1 writes metadata
     * blocks in place before the commit record like data blocks, without
     * the metadata redo journal, so a crash can leave a volume mixing two
     * commits (what C4 forbids). Never set it outside tests. */
    int test_no_meta_journal;
    /* Commits of at most this many blocks (data blocks and tree nodes)
     * are written with one flush instead of three (format 4,
     * docs/FORMAT.md §7a): each block goes to the journal with the commit
     * record, and to its place after the flush. Blocks never written
     * before go straight in place and are not counted (format 5), so a
     * commit of new space takes one flush whatever its size. 0 = the
     * default (256); VD_ONEFLUSH_NEVER = every commit in place with three
     * flushes. */
    uint32_t oneflush_blocks;
    /* TESTING ONLY (crash harnesses): 1 puts a round's fresh blocks in
     * place while the round before is in flight even when that round's
     * writes are done already, as they are on a host whose flush costs
     * nothing, so that the harness sees those writes (format 5). */
    int test_fresh_early;
} vd_open_opts;

#define VD_ONEFLUSH_DEFAULT 256u
#define VD_ONEFLUSH_NEVER UINT32_MAX

/* The raw-key API: the caller supplies the 32-byte master key itself and
 * nothing is stored in the key-slot block. Meant for tests and benchmarks;
 * applications should use the key-slot API of <vdisk/keys.h>
 * (vd_image_create_unlock / vd_image_open_unlock), which draws a random
 * master key and stores it only wrapped. */

/* Create a new image on an empty host object and open it read-write.
 * key: the 32-byte master key. */
vd_err vd_image_create(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                       const vd_create_opts *copts, const vd_open_opts *oopts,
                       vd_image **out);

/* The size in bytes of the image vd_image_create would make with copts
 * (container and VHD footer), without a host: tools fit an image to a
 * fixed-size place (an NBD export). VD_ERR_RANGE where create would fail
 * on the layout. */
vd_err vd_image_bytes_for(const vd_create_opts *copts, uint64_t *bytes);

/* Open an existing image. A wrong key yields VD_ERR_WRONG_KEY; an image
 * state older than the anchor VD_ERR_ROLLBACK. A writable open of an image
 * whose last sync was interrupted resolves it and commits before returning
 * (cost proportional to that sync's size, not the disk's). */
vd_err vd_image_open(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                     const vd_open_opts *opts, vd_image **out);

/* Read/write count consecutive logical blocks starting at lbn. Writes go
 * to the write-back cache; they become durable at vd_image_sync. A block
 * that was never written reads as zeros (the tree says so, R2). On an
 * authentication failure the output is wiped. */
vd_err vd_image_read(vd_image *img, uint64_t lbn, uint32_t count, void *buf);
vd_err vd_image_write(vd_image *img, uint64_t lbn, uint32_t count,
                      const void *buf);

/* Commit every write so far: journal + in-progress superblock, flush,
 * blocks in place (file-system metadata: into the journal), flush,
 * committed superblock, flush, metadata in place (C1-C4). */
vd_err vd_image_sync(vd_image *img);

/* Grow the image in place to nblocks logical blocks (vhdtool resize;
 * docs/FORMAT.md §4). The writes not synced yet commit with the growth,
 * in one commit: after a crash the image opens at the old size without
 * them or at the new size with them. They must be few (a file system's
 * change of its own size; VD_ERR_RANGE past 54 blocks): sync before
 * writing them. The new blocks read as zeros; no data block moves. A
 * freshness anchor advances to the new commit (an acknowledged change).
 * VD_ERR_INVAL: nblocks not larger; VD_ERR_RANGE: too large for the
 * format; VD_ERR_NOSPC: the host cannot hold the bigger image (an NBD
 * export keeps its size); VD_ERR_UNSUPPORTED: a format-2 image opened
 * read-only, or a host without truncate. Any other failure after the
 * first write fails the handle. */
vd_err vd_image_grow(vd_image *img, uint64_t nblocks);
/* The image file's size (bytes, VHD footer included) after growing to
 * nblocks. */
vd_err vd_image_grow_bytes(vd_image *img, uint64_t nblocks, uint64_t *bytes);

/* The same durable commit, but not an acknowledgement: with
 * VD_ANCHOR_EXPLICIT_SYNC the anchor does not advance (it stays owed to
 * the next vd_image_sync or vd_image_close). For periodic commits (a
 * mount's commit=), which bound what a crash loses (C5) without wearing a
 * hardware counter. With VD_ANCHOR_EVERY_COMMIT it is vd_image_sync. */
vd_err vd_image_commit(vd_image *img);

/* Sync (if writable and healthy), wipe every secret and free the handle.
 * Returns the sync's error, if any; the handle is freed in every case. */
vd_err vd_image_close(vd_image *img);

typedef struct vd_image_info {
    uint8_t image_id[16];
    uint32_t format_version;
    vd_cipher cipher;
    const char *aead_impl_name; /* "openssl" / "libsodium" (static string) */
    uint64_t nblocks;        /* logical blocks */
    uint64_t total_blocks;   /* physical 4 KiB blocks in the container */
    uint64_t file_bytes;     /* container + VHD footer */
    uint32_t fanout;
    uint32_t height;         /* tree levels above the data blocks */
    uint64_t node_blocks;
    uint32_t journal_blocks; /* per slot */
    uint32_t log_blocks;     /* the leaf-version log's size (format 6) */
    uint32_t log_len;        /* log blocks the newest commit names (an open
                                handle: vd_image_info_get) */
    uint64_t data_start;     /* physical block of logical block 0 */
    uint64_t epoch;          /* last committed epoch */
    int recovered;           /* opened over an interrupted sync */
    int rekey;               /* a key rotation is in progress (read-only
                                open; vd_image_rekey finishes it) */
    /* The image was not closed cleanly: the last writable session that
     * wrote to it ended without vd_image_close (a crash, a kill). With
     * atomic volume commits (DESIGN C4) nothing needs repair; what was
     * lost is the work after last_commit_ns / epoch. Read at open, before
     * this handle changes anything. */
    int unclean;
    int64_t last_commit_ns;  /* host clock of the last commit (untrusted) */
    int read_only;
    vd_err failed;           /* VD_OK, or the error that put the handle in
                                the sticky failed state (a sync that could
                                not write: VD_ERR_NOSPC when the host's disk
                                is full, VD_ERR_IO, VD_ERR_AUTH...) */
    size_t cache_bytes;
    /* Counters since open, for benchmarks and tests. */
    uint64_t syncs, flushes, bytes_written, bytes_read, blocks_verified;
    /* Blocks of long writes of new data that went from the caller's
     * buffer straight to their places, bypassing the cache (spilled
     * data, docs/FORMAT.md §7). */
    uint64_t blocks_direct;
    /* Commits that sealed only data blocks and named them in the log,
     * leaving the tree's nodes to a later commit (docs/FORMAT.md §7b). */
    uint64_t log_commits;
} vd_image_info;

vd_err vd_image_info_get(vd_image *img, vd_image_info *info);

/* Where the most recent authentication failure on this handle was, so a
 * tool can name the block (and, through the file system, the file):
 * level 0 is one data block (first_lbn, nblocks = 1); level > 0 a tree
 * node, whose failure makes every logical block it covers,
 * [first_lbn, first_lbn + nblocks), unverifiable (and the handle sticky
 * failed). VD_ERR_NOENT when the handle has seen none. Works on a failed
 * handle. */
typedef struct vd_bad_range {
    uint32_t level;
    uint64_t first_lbn;
    uint64_t nblocks;
} vd_bad_range;
vd_err vd_image_last_failure(vd_image *img, vd_bad_range *out);

/* Read the public header of an image without a key (for `vhdtool info`).
 * Fields that need the key are zero. */
vd_err vd_image_probe(const vd_host *host, vd_image_info *info);

#ifdef __cplusplus
}
#endif
#endif
