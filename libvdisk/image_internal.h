/* The secure block device: state shared by image.c, blockio.c and sync.c. */
#ifndef VD_IMAGE_INTERNAL_H
#define VD_IMAGE_INTERNAL_H

#include <pthread.h>

#include "cache.h"
#include "crypto/crypto.h"
#include "image_format.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

#define VD_SUBKEY_CACHE 8u
/* A batch of blocks is sealed or opened in at most VD_LANES parallel jobs
 * (vd_host.run_jobs), each of at least VD_LANE_MIN blocks, each with its
 * own AEAD context where the implementation needs one per thread. Batches
 * under VD_BATCH_MIN blocks stay on the calling thread: handing them over
 * costs more than it saves, and a busy machine may not schedule a worker
 * that took a lane for milliseconds (a small sync, fsync after fsync). */
#define VD_LANES 8u
#define VD_LANE_MIN 16u
#define VD_BATCH_MIN 64u
#define VD_RUN_MAX 64u
/* A write of at least this many whole fresh blocks may bypass the cache
 * (spill.c, vd_spill_direct). */
#define VD_DIRECT_MIN 32u

/* vd_image.redo_pending */
#define VD_REDO_NONE 0
#define VD_REDO_ONEFLUSH 1
#define VD_REDO_META 2
/* Readers that may open blocks outside the image lock at once, per
 * subkey (vd_open_lease). */
#define VD_READERS 4u
/* Nonce counters stay below this per subkey; then a new random subkey id
 * is drawn (R5: no (key, nonce) pair is ever used twice). */
#define VD_COUNTER_LIMIT (1ull << 40)

typedef struct vd_subkey {
    uint64_t keyid; /* 0 = empty slot */
    int gen;        /* 0: under master, 1: under old_master (a rotation) */
    uint64_t last_use;
    /* aead[0] always; aead[1..] made for parallel batches when first
     * needed (the same context again where it is concurrent-safe). */
    vdc_aead *aead[VD_LANES];
    /* Reads open blocks outside the image lock with contexts leased to one
     * reader at a time (vd_open_lease): rd[r] belongs to the holder of
     * lease r while rd_busy[r]. A slot with leases out is never evicted. */
    vdc_aead *rd[VD_READERS][VD_LANES];
    uint8_t rd_busy[VD_READERS];
    uint32_t leases;
} vd_subkey;

/* Contexts of one subkey that one reader uses outside the image lock
 * (taken and given back under it): lanes contexts no other thread touches
 * meanwhile, and what an open needs of the image, copied. */
typedef struct vd_open_lease {
    vd_subkey *sk;
    unsigned slot, lanes;
    uint8_t image_id[16];
    vd_host host; /* for run_jobs */
} vd_open_lease;

/* One block of a batch (vd_block_seal_batch, vd_block_open_batch). */
typedef struct vd_crypt_job {
    uint64_t phys;
    const uint8_t *in;  /* plaintext to seal, or ciphertext to open */
    uint8_t *out;
    mt_version v;       /* seal: the new version; open: the expected one */
    vd_err err;         /* open: VD_OK or VD_ERR_AUTH for this block */
    vd_subkey *sk;      /* private to blockcrypt.c */
} vd_crypt_job;

/* A metadata block of a commit and where its sealed copy lies in the
 * journal area (docs/FORMAT.md §7). */
typedef struct vd_redo {
    uint64_t phys, src;
    mt_version version;
} vd_redo;

typedef struct vd_flight vd_flight;

struct vd_image {
    /* The image lock: every vd_image_* call holds it, except while a read
     * reads and opens uncached data blocks (vd_read_data_unlocked; the
     * versions, the cache and the subkey leases are taken and given back
     * under it). Lock order: a file system's volume lock (vd_fs.lock)
     * before this one; the host's own locks (memory host, NBD, run_jobs
     * pool) after it. Nothing here is ever held while taking a volume
     * lock. */
    pthread_mutex_t lock;
    vd_host host;
    vd_anchor anchor;
    int have_anchor;
    vd_anchor_mode anchor_mode;
    int anchor_bind;   /* vd_open_opts.anchor_bind */
    /* R7: the binding every superblock written carries (zero: not bound),
     * and the tag of the anchor in use (zero: it has no identity). */
    uint8_t anchor_tag[SB_ANCHOR_TAG_BYTES];
    uint8_t anchor_cur[SB_ANCHOR_TAG_BYTES];
    int sync_explicit; /* inside vd_image_sync / _commit / _close */
    int sync_ack;      /* inside vd_image_sync / _close: acknowledged (R4) */
    int unflushed;     /* a commit record awaits the next flush (an
                          implicit commit defers its last flush);
                          vd_io_flush clears it */
    uint32_t oneflush_max; /* blocks; 0: never (vd_open_opts.oneflush_blocks) */
    /* Blocks written in place after the newest record, not flushed since,
     * which that record's redo journal covers (sync.c): any other record
     * written before a flush would stop covering them. ONEFLUSH: a
     * one-flush commit's (its journal is digest-checked, so a one-flush
     * record after it may leave them to a crash's redo); META: an in-place
     * commit's metadata (format 3's redo: the copies are not). */
    int redo_pending;
    int read_only;
    vd_err failed; /* sticky: once set, every call returns VD_ERR_FAILED */
    /* Inside vd_image_scrub / vd_fsck: a tree node that fails is reported
     * and skipped instead of failing the handle (scrub.c). */
    int tolerate_nodes;
    /* The most recent authentication failure (vd_image_last_failure). */
    int have_bad;
    uint32_t bad_level;
    uint64_t bad_idx;

    vd_header hdr;
    mt_geometry geo;
    uint8_t header_digest[32];
    /* The header as each older format [VDF_FORMAT_OLDEST, this image's):
     * records written before a conversion name it (convert_format). */
    uint8_t legacy_digest[VDF_FORMAT_VERSION - VDF_FORMAT_OLDEST][32];
    /* A resize (resize.c): the header's other geometry (hdr.alt_*) and the
     * digest records written under it carry. */
    int have_alt;
    uint8_t alt_digest[32];
    uint64_t file_bytes;

    /* One guarded allocation (vd_keys_derive) holds master, sb_key and
     * key_scratch: each guarded allocation costs an mmap, mprotects and
     * an munmap whose TLB shootdown interrupts every core, and an open
     * made three of them. */
    uint8_t *keymem;
    uint8_t *master;   /* VD_KEY_BYTES, in keymem */
    /* Key rotation (rekey.c, SECURITY.md R8). old_master: the key being
     * replaced, opened from the link of a rekey record by the new key
     * (the handle then seals under master, the new key, and opens blocks
     * under either). rk: the rotation the newest record describes. */
    uint8_t *old_master;
    struct {
        int active;      /* the newest record is a rekey record */
        int old_holder;  /* opened with the key being replaced (BEGIN) */
        int writer;      /* opened by vd_image_rekey: may write */
        int ending;      /* finished, but the other slot still holds a
                            rekey record (its last record is due) */
        uint32_t phase;  /* SB_RK_* of the newest record */
        uint64_t cursor; /* data blocks below are under the new key */
        uint64_t upto;   /* the committing round's claim (sync.c) */
        uint8_t nonce[24], link[32], tag[16];
        uint8_t dig_old[32]; /* the header with the old key's check value:
                                what rekey records name */
    } rk;
    uint8_t *sb_key;   /* VDC_KEY_BYTES, in keymem */
    uint8_t *key_scratch; /* VDC_KEY_BYTES, in keymem: derived keys pass here */
    vdc_aead_alg alg;
    vd_subkey subkeys[VD_SUBKEY_CACHE];
    uint64_t subkey_clock;
    uint64_t keyid;    /* subkey id for new encryptions */
    uint64_t counter;  /* next nonce counter under keyid */

    /* Trusted state (R3): the root and epoch held in memory decide. */
    mt_version root;
    uint64_t epoch;      /* newest superblock epoch (committed or not) */
    uint64_t committed;  /* last committed epoch */
    uint32_t sb_state;
    uint64_t anchor_due; /* committed epoch whose anchor advance failed */

    /* Recovery (read-only opens over an interrupted sync): blocks named in
     * the journal accept its before or after version; sorted by phys. */
    vd_jentry *recov;
    uint32_t nrecov;
    int recovered;

    vd_cache cache;
    int in_sync;         /* no implicit sync while one runs */
    uint8_t *scratch;    /* one block of ciphertext */
    uint8_t *runbuf;     /* VD_RUN_MAX blocks for batched reads */
    uint32_t dirty_limit;
    uint8_t *ctbuf[2];   /* dirty_limit blocks of ciphertext, for syncs */
    vd_flight *flight;   /* a commit whose writes run on a host thread */
    /* Fresh data put in place before any commit names it (spill.c): the
     * level-1 nodes holding its versions (cache entries, pinned), and how
     * many there may be. */
    uint32_t *spill_nodes;
    uint32_t nspill_nodes, spill_cap;
    /* Of those, the nodes with spilled slots (the others are held for the
     * log alone). */
    uint32_t nspilled;
    /* The leaf-version log (format 6, sync.c): blocks the newest record
     * names, the chain's head, and how many level-1 nodes it may hold
     * (a round that takes them all still commits with one flush). */
    uint32_t log_len;
    uint8_t log_head[32];
    uint32_t log_cap;
    uint8_t *logbuf;     /* at open, between reading the log and applying it */
    uint32_t jcap;       /* journal entries per sync round */

    /* Volume-consistent commits (DESIGN C4, image_fs.h). */
    uint32_t op_depth;       /* file-system operations under way */
    uint32_t meta_dirty;     /* dirty entries holding metadata */
    uint32_t meta_limit;     /* commit at an operation's end beyond this */
    uint64_t meta_commits;   /* syncs that took every metadata block */
    int no_meta_journal;     /* vd_open_opts.test_no_meta_journal */
    int fresh_early_always;  /* vd_open_opts.test_fresh_early */
    int64_t commit_interval_ns;
    int64_t last_commit_ns;  /* host clock at the last commit (or open) */
    /* Clean-close flag (SB_FLAG_CLEAN): what the newest superblock said at
     * open, and whether it says so now. sb_last is that record's block,
     * rewritten with only the flag changed. */
    int unclean;
    int sb_clean;
    uint8_t *sb_last;
    /* Redo of the newest commit whose metadata may not be in place yet
     * (read-only opens): reads of these blocks go to the journal copy. */
    vd_redo *redo;
    uint32_t nredo;
    uint32_t redo_slot; /* the superblock slot of the record naming them */
    int slot_redo[2];   /* that slot's record is a commit naming its journal */

    uint64_t stat_syncs, stat_flushes, stat_bytes_written, stat_bytes_read;
    uint64_t stat_verified, stat_direct, stat_log_commits;
};

/* ---- host I/O with every answer checked (io.c) --------------------------- */
vd_err vd_io_read(vd_image *img, uint64_t off, void *buf, size_t len);
vd_err vd_io_write(vd_image *img, uint64_t off, const void *buf, size_t len);
/* Without adding to stat_bytes_written: for a thread other than the one
 * that keeps the statistics (sync.c, fresh_early). */
vd_err vd_io_write_untallied(vd_image *img, uint64_t off, const void *buf, size_t len);
vd_err vd_io_flush(vd_image *img);
vd_err vd_host_read(const vd_host *h, uint64_t off, void *buf, size_t len);
vd_err vd_host_write(const vd_host *h, uint64_t off, const void *buf, size_t len);
vd_err vd_host_size(const vd_host *h, uint64_t *size);
int64_t vd_host_now(const vd_host *h);
vd_err vd_errno_to_err(int neg_errno);

/* ---- block crypto (blockcrypt.c) ----------------------------------------- */
/* Encrypt one block at phys under a fresh (keyid, counter); out version. */
vd_err vd_block_seal(vd_image *img, uint64_t phys, const uint8_t *pt,
                     uint8_t *ct, mt_version *v);
/* Decrypt ct at phys if it verifies under v; pt wiped on failure.
 * Returns VD_OK or VD_ERR_AUTH. */
vd_err vd_block_open(vd_image *img, uint64_t phys, const uint8_t *ct,
                     const mt_version *v, uint8_t *pt);
/* The same for n blocks at once, in parallel through the host's run_jobs
 * when it has one. Sealing assigns the versions in job order. Opening
 * sets each job's err (a failed block's out is wiped) and returns VD_OK
 * unless something other than authentication failed. */
vd_err vd_block_seal_batch(vd_image *img, vd_crypt_job *jobs, size_t n);
vd_err vd_block_open_batch(vd_image *img, vd_crypt_job *jobs, size_t n);
/* A key rotation's blocks (rekey.c), in parallel where the host runs
 * jobs: each job's ciphertext (in) is opened under the key being replaced
 * with the version v, and the plaintext (never leaving the job's stack)
 * sealed under the current key into out (may be in), v becoming its new
 * version. A block that does not open keeps its v and in and gets
 * err VD_ERR_AUTH (the caller tries it under the other key). */
vd_err vd_block_reseal_batch(vd_image *img, vd_crypt_job *jobs, size_t n);
/* Opening outside the image lock (reads, image.c). Take (under the lock)
 * a lease on the subkey of keyid for a batch of n blocks: VD_ERR_BUSY when
 * none can be had now (open under the lock instead). Open (without the
 * lock) jobs under that keyid with the lease's contexts: sets each job's
 * err and touches nothing of the image. Give it back under the lock. */
vd_err vd_open_lease_take(vd_image *img, uint64_t keyid, size_t n,
                          vd_open_lease *l);
void vd_block_open_leased(const vd_open_lease *l, vd_crypt_job *jobs, size_t n);
void vd_open_lease_give(vd_image *img, vd_open_lease *l);
/* Run fn(arg, i) for i in [0, n) through the host's run_jobs, or on this
 * thread when it has none. */
void vd_jobs_do(const vd_image *img, size_t n, void (*fn)(void *arg, size_t i),
                void *arg);
vd_err vd_keys_derive(vd_image *img, const uint8_t key[VD_KEY_BYTES]);
/* The anchor inside the trusted side (anchor.c): errno mapping (vdisk.h,
 * vd_anchor), authorization and identity tag, the check at open, the
 * binding commit. */
vd_err vd_anchor_err(int rc);
vd_err vd_anchor_attach(vd_image *img);
vd_err vd_anchor_check(vd_image *img, int *bind);
vd_err vd_anchor_bind(vd_image *img);
vd_err vd_anchor_advance_due(vd_image *img);
/* The epochs of a sync round the anchor advances to right after its
 * commit record (ack: an acknowledged sync's; or every commit in that
 * mode) when
 * the anchor holds only multiples of its step (anchor.c): rather than a
 * record of the same state at the next multiple E after the round (two
 * more flushes), the round itself commits there. *x: the epoch of its
 * in-progress record (its slot, x % 2, and journal area); *commit: that of
 * its commit record; *to: where the anchor then moves.
 *   - E's slot is not the newest record's: x = commit = E;
 *   - it is, and the round has no metadata to redo (meta = 0): x is the
 *     next epoch, commit = E, in the other slot: over the newest record,
 *     older than the in-progress one, which is durable by then, and the
 *     commit record names no journal area;
 *   - else (metadata, whose redo copies lie in the in-progress record's
 *     journal area, which a commit record in the other slot cannot name)
 *     not folded: the round commits at the next epoch and a record of the
 *     same state at E follows it (vd_anchor_advance_due).
 * Returns 0 (nothing set) when the round commits at the next epoch as
 * usual. */
int vd_anchor_fold(const vd_image *img, int ack, int meta, uint64_t *x, uint64_t *commit,
                   uint64_t *to);
/* A COMMITTED record of the state in memory at epoch (same root, no
 * journal), after a flush and made durable (anchor.c). */
vd_err vd_super_write_plain(vd_image *img, uint64_t epoch);
/* BLAKE2b-256 of the header as superblocks name it (image.c). */
vd_err vd_header_digest(const vd_header *h, uint8_t out[32]);
void vd_keys_wipe(vd_image *img);
/* Free a subkey slot's AEAD contexts (every lane) and empty it. */
void vd_subkey_clear(vd_subkey *s);
/* The header's key check for key, its key derived through scratch (the
 * handle's key_scratch: guarded, VDC_KEY_BYTES; wiped after). */
vd_err vd_keycheck_compute(uint8_t *scratch, const uint8_t key[VD_KEY_BYTES],
                           const uint8_t image_id[16], uint8_t out[32]);
vd_err vd_super_seal(vd_image *img, uint8_t blk[VDF_BLOCK]);
vd_err vd_super_verify(vd_image *img, const uint8_t blk[VDF_BLOCK]);
/* The same with explicit keys: new_sb_key (may be NULL) also fills the new
 * key's MAC of a BEGIN rekey record; new_mac = 1 verifies that MAC. */
vd_err vd_super_seal_with(const uint8_t *sb_key, const uint8_t *new_sb_key,
                          const uint8_t image_id[16], uint8_t blk[VDF_BLOCK]);
vd_err vd_super_verify_with(const uint8_t *sb_key, const uint8_t image_id[16],
                            const uint8_t blk[VDF_BLOCK], int new_mac);
/* The link of a rotation: the old master wrapped under
 * KDF(new, "vd-rekey", 0), bound to the image (docs/FORMAT.md §6). */
vd_err vd_rekey_link_make(const uint8_t *new_master, const uint8_t *old_master,
                          const uint8_t image_id[16], uint8_t nonce[24],
                          uint8_t link[32], uint8_t tag[16]);
vd_err vd_rekey_link_open(const uint8_t *new_master, const uint8_t image_id[16],
                          const uint8_t nonce[24], const uint8_t link[32],
                          const uint8_t tag[16], uint8_t *old_master);
/* Fill the rekey extension of a record the handle writes (sync.c,
 * commit.c, anchor.c); a no-op outside a rotation. upto: data blocks
 * [0, upto) of a committing round are sealed under the new key. */
void vd_rekey_fill(const vd_image *img, vd_super *s, uint64_t upto);
/* vd_image_open, and (rekey = 1) for vd_image_rekey: writable over a
 * rotation in progress. */
vd_err vd_image_open_ex(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                        const vd_open_opts *opts, int rekey, vd_image **out);
/* The anchor tag (R7) of the anchor in use under key (zero: none). */
vd_err vd_anchor_tag_of(vd_image *img, const uint8_t *key,
                        uint8_t out[SB_ANCHOR_TAG_BYTES]);
vd_err vd_new_keyid(vd_image *img);

/* ---- tree access (blockio.c) --------------------------------------------- */
static inline uint64_t vd_phys_of(const vd_image *img, uint32_t level,
                                  uint64_t idx)
{
    return level == 0 ? img->hdr.data_start + idx
                      : img->hdr.node_start + mt_node_index(&img->geo, level, idx);
}
/* Load (verify if needed) block (level, idx) into the cache and pin it. */
vd_err vd_get_block(vd_image *img, uint32_t level, uint64_t idx, uint32_t *out);
static inline void vd_unpin(vd_image *img, uint32_t i)
{
    img->cache.e[i].pins--;
}
/* Read up to VD_RUN_MAX consecutive uncached data blocks with one host
 * read and verify them into out (count blocks) without the cache: a bulk
 * read neither pays for cache entries nor evicts the tree nodes and
 * metadata that the next small access needs. The blocks must not be in the
 * cache (a dirty one would be newer than the host's). */
vd_err vd_read_data_run(vd_image *img, uint64_t lbn, uint32_t count,
                        uint8_t *out);
/* Reads outside the lock (blockio.c): may this handle read that way now?
 * Then read and verify up to VD_RUN_MAX consecutive uncached data blocks
 * into out, dropping the lock for the host read and the opens (held on
 * entry and on return); *done: how many blocks it read (at least one on
 * success). A block read alone enters the cache. */
int vd_read_unlocked_ok(const vd_image *img);
vd_err vd_read_data_unlocked(vd_image *img, uint64_t lbn, uint32_t count,
                             uint8_t *out, uint32_t *done);
/* Entry for a new data block, without reading it (full overwrite). */
vd_err vd_get_block_for_write(vd_image *img, uint64_t lbn, uint32_t *out);
/* Free a cache entry, committing first if every entry is dirty. */
vd_err vd_cache_take(vd_image *img, uint32_t *out);
vd_jentry *vd_recov_find(const vd_image *img, uint64_t phys);

/* ---- create / key slots (image.c, keyslot.c) ----------------------------- */
/* Fills the key-slot block of an image being created, once its image id is
 * drawn and before anything is written to the host. */
typedef vd_err (*vd_keyblock_fill)(void *ctx, const uint8_t image_id[16],
                                   uint8_t blk[VDF_BLOCK]);
/* vd_image_create, with the key-slot block from fill (NULL: left zero),
 * written before the header. */
vd_err vd_image_create_with(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                            const vd_create_opts *copts,
                            const vd_open_opts *oopts, vd_keyblock_fill fill,
                            void *fill_ctx, vd_image **out);
/* Validate the container and header of the image on host (as an open
 * does) and read its key-slot block. */
vd_err vd_keyblock_read(const vd_host *host, vd_header *hdr,
                        uint8_t blk[VDF_BLOCK]);

/* vd_image_open_unlock, and (rekey = 1) for vd_image_rekey. */
vd_err vd_image_open_unlock_ex(const vd_host *host, const vd_unlock *u,
                               const vd_open_opts *opts, int rekey, vd_image **out);
/* A key-slot block with slot i for slots[i], wrapping master (Argon2id
 * runs here), and writing it (one block, flushed). */
vd_err vd_keyblock_build(const vd_rekey_slot *slots, unsigned n,
                         const uint8_t *master, const uint8_t image_id[16],
                         uint8_t blk[VDF_BLOCK]);
vd_err vd_keyblock_write(vd_image *img, const uint8_t blk[VDF_BLOCK]);

/* ---- scrub (scrub.c) ---------------------------------------------------- */
/* Data blocks under one node of level (all of them for the root). */
uint64_t vd_node_span(const vd_image *img, uint32_t level);
/* While on, a tree node that fails is reported, not made sticky: vd_fsck
 * keeps away from the ranges its scrub found (fat/check_internal.h). */
vd_err vd_image_tolerate_nodes(vd_image *img, int on);

/* ---- sync (sync.c) ------------------------------------------------------- */
/* Seal in blk and write (no flush) the superblock record of epoch in slot
 * epoch % 2: state and root, base img->committed, this image's format and
 * header, the host's time, anchor tag `tag`; naming nj journal entries
 * (inline: j in the record; else the entry blocks' digest) or, with
 * nj = 0, no journal. The one place records of a running image are made
 * (rounds; anchor.c: binding, stepped epochs): sb_last, slot_redo and
 * sb_clean follow it, and a COMMITTED record's time goes to *commit_ns, or
 * to last_commit_ns when commit_ns is NULL. A round passes its own blk and
 * commit_ns: it may be written on a host thread (a commit in flight), and
 * the trusted state moves only when it is joined. */
vd_err vd_super_write(vd_image *img, uint8_t blk[VDF_BLOCK], uint64_t epoch,
                      uint32_t state, const mt_version *root,
                      const uint8_t tag[SB_ANCHOR_TAG_BYTES], const vd_jentry *j,
                      uint32_t nj, int jinline, const uint8_t jdigest[32],
                      int64_t *commit_ns);
/* Commit the dirty blocks. Inside a file-system operation an implicit
 * commit (not vd_image_sync / close) takes data blocks only (image_fs.h). */
vd_err vd_sync_locked(vd_image *img);
/* The same for a commit forced by cache pressure: its last round may be
 * left in flight (vd_host.job_start), its writes and flushes running on a
 * host thread while the caller goes on with the cache. */
vd_err vd_sync_implicit(vd_image *img);
/* One write of a spill (spill.c). */
typedef struct vd_wrun {
    uint64_t off;
    const uint8_t *buf;
    size_t len;
} vd_wrun;
/* After the round or writes in flight, put runs[0, nruns) in place on the
 * host's thread (or now, without one), taking runs and pins (malloc'd):
 * the cache entries pins[0, npins) stay pinned, and commit buffer ctbuf
 * (vd_ctbuf_get) unused by others, until vd_flight_join. */
vd_err vd_flight_writes(vd_image *img, vd_wrun *runs, uint32_t nruns, uint32_t *pins,
                        uint32_t npins, unsigned ctbuf);
/* Before reading [off, off + len) from the host: a spill's writes in
 * flight that overlap it are joined (direct writes hold no cache entry
 * to read instead). */
vd_err vd_flight_read_guard(vd_image *img, uint64_t off, size_t len);
/* Is what is in flight a spill's writes (not a round)? */
int vd_flight_writing(const vd_image *img);
/* The commit buffer a round or spill may seal into now: not the one the
 * writes in flight use (sync.c). */
unsigned vd_ctbuf_free(const vd_image *img);
/* Put fresh dirty data in place without a commit (spill.c): *done set
 * when enough of the cache came free that no commit is needed now. */
vd_err vd_spill(vd_image *img, int *done);
/* Write the whole fresh blocks of [lbn, lbn + count) from buf straight
 * to their places as spilled data, without the cache (spill.c); taken[k]
 * (count bytes) tells which it wrote: the caller writes the others. */
vd_err vd_spill_direct(vd_image *img, uint64_t lbn, uint32_t count, const uint8_t *buf,
                       uint8_t *taken);
/* After a commit round took level-1 node ent (sealed with every slot it
 * holds): its spilled or logged versions are committed, the node no
 * longer held. */
void vd_spill_committed(vd_image *img, uint32_t ent);
/* Hold level-1 node ent (pinned by the caller, the pin taken over when it
 * was not held yet) for a logged version (spill.c). */
void vd_log_hold(vd_image *img, uint32_t ent);
/* The bound on held nodes now: the log's while it names blocks. */
uint32_t vd_held_cap(const vd_image *img);
/* Seal the nodes the log names into the tree: a round of the held nodes
 * alone, with one flush, whose record names no log (sync.c). A no-op
 * without a log. Whatever commits rounds of its own (rotation, resize,
 * recovery, discard) calls it first. */
vd_err vd_log_drain(vd_image *img);

/* Wait for the round in flight, if any, and take its result (a failure
 * fails the handle). Every sync starts with it; anything else that writes
 * to the host, or reads the superblock state a round writes (epoch,
 * unflushed, slot_redo, sb_last, the I/O counters), calls it first. */
vd_err vd_flight_join(vd_image *img);
/* A large, long-lived buffer, allocated as the cache is and offered to
 * the host the same way (vd_host.mem_advise: huge pages with the bundled
 * hosts); sync.c. Freed with free(). */
uint8_t *vd_buf_new(const vd_image *img, size_t bytes);
/* Commit buffer k (0 or 1), allocated if it is not yet (sync.c); NULL
 * when it cannot be. */
uint8_t *vd_ctbuf_get(vd_image *img, unsigned k);
/* Rewrite the newest superblock with SB_FLAG_CLEAN set or cleared, and
 * flush (commit.c). */
vd_err vd_super_set_clean(vd_image *img, int clean);
/* Where to read phys from: its place, or its redo copy (read-only opens
 * over a commit whose metadata may not be in place). */
uint64_t vd_redo_source(const vd_image *img, uint64_t phys);
/* Commit rounds that seal the nodes over data blocks lbn[0..n) (sorted,
 * each under a different level-1 node) anew under the current key, the
 * blocks themselves unchanged: a key rotation's nodes that no written
 * block leads to (a grown image's tree is written whole, resize.c). */
vd_err vd_sync_paths(vd_image *img, const uint64_t *lbn, uint32_t n);
/* Commit rounds over data blocks lbn[0..n) (sorted; no cache entry holds
 * them) that the caller sealed: new versions v, ciphertext of block k at
 * ct + k blocks, left untouched until the rounds are joined. A key
 * rotation streams its blocks this way instead of through the cache
 * (rekey.c). fly: the last round's writes may run on the host's thread
 * (vd_flight_join), so the caller can seal the next blocks meanwhile; it
 * then must not read the rotation's cursor until the join. then (may be
 * NULL): called with then_arg after the last round's writes succeeded, on
 * the thread that made them (host calls only: it must touch nothing of
 * the image). */
vd_err vd_sync_sealed(vd_image *img, const uint64_t *lbn, const mt_version *v,
                      uint32_t n, uint8_t *ct, int fly, void (*then)(void *arg),
                      void *then_arg);
/* Writable open over an interrupted sync: resolve and commit (O(journal)). */
vd_err vd_recover_commit(vd_image *img);

/* ---- the journal areas (docs/FORMAT.md §7): one per superblock slot ---- */

/* Entry blocks of a journal of nj entries kept in its area (not inline). */
static inline uint64_t vd_journal_entry_blocks(uint64_t nj)
{
    return (nj + JE_PER_BLOCK - 1) / JE_PER_BLOCK;
}

/* Journal blocks a round of nj entries and nredo blocks of sealed contents
 * needs: entry blocks (none when the entries fit in the superblock), then
 * one block per sealed copy. */
static inline uint64_t vd_journal_need(uint64_t nj, uint64_t nredo)
{
    return (nj <= SB_INLINE_MAX ? 0 : vd_journal_entry_blocks(nj)) + nredo;
}

/* First block of the journal area of the record of epoch (its slot is
 * epoch % 2; a slot number gives the same). */
static inline uint64_t vd_journal_area(const vd_image *img, uint64_t epoch)
{
    return img->hdr.journal_start + (epoch % 2) * img->hdr.journal_blocks;
}

#endif
