/* On-disk format of a vdisk image, in one place (docs/FORMAT.md explains
 * it in prose). Everything is little-endian except the VHD footer, which
 * the VHD specification makes big-endian. Structures are decoded field by
 * field into the native structs below; never cast a host buffer.
 *
 * Physical layout, in 4 KiB blocks, followed by the 512-byte VHD footer:
 *
 *   0                      header (public, xxh64-checked, digest MAC'd by
 *                          every superblock)
 *   1                      key-slot block: 8 key slots wrapping the master
 *                          key (not MAC'd; each slot authenticates itself)
 *   2, 3                   superblock slots A/B (MAC'd)
 *   4 .. 4+2J-1            journal slots A/B, J blocks each (digest in the
 *                          in-progress superblock)
 *   4+2J .. 4+2J+L-1       leaf-version log, L blocks (format 6; L may be 0)
 *   node_start ..          Merkle nodes, root first, level 1 last (AEAD)
 *   data_start ..          data blocks, logical block i at data_start + i (AEAD)
 *   total_blocks * 4096    VHD footer (512 bytes)
 */
#ifndef VD_IMAGE_FORMAT_H
#define VD_IMAGE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "merkle/merkle.h"

#define VDF_BLOCK 4096u
/* 3: metadata redo journal (COMMITTED records may name journal entries
 * whose blocks' sealed contents follow in the journal area) and the
 * clean-close flag. 4: one-flush commits (SB_FLAG_ONEFLUSH: every block
 * of a small round, nodes too, goes through the redo journal). 5: a
 * one-flush round writes the blocks the tree had never written straight
 * in place, outside the journal, so a round of fresh blocks of any size
 * commits with one flush. 6: a log of leaf versions (SB_FLAG_LOG): a
 * commit that changed only data blocks names the tree of an earlier one
 * plus the versions written since, and the nodes are sealed later, once
 * for many commits (docs/FORMAT.md §7b). Images of formats 2 to 5 open; a
 * writable open converts them, with no log region (docs/FORMAT.md §6). */
#define VDF_FORMAT_VERSION 6u
#define VDF_FORMAT_OLDEST 2u

/* ---- VHD footer (big-endian, Microsoft VHD spec) ------------------------ */
#define VHD_FOOTER_BYTES 512u
#define VHD_OFF_COOKIE 0u        /* "conectix" */
#define VHD_OFF_FEATURES 8u      /* u32 = 2 (reserved bit always set) */
#define VHD_OFF_VERSION 12u      /* u32 = 0x00010000 */
#define VHD_OFF_DATA_OFFSET 16u  /* u64 = ~0 for fixed disks */
#define VHD_OFF_TIMESTAMP 24u    /* u32 seconds since 2000-01-01 UTC */
#define VHD_OFF_CREATOR_APP 28u  /* "vdsk" */
#define VHD_OFF_CREATOR_VER 32u  /* u32 */
#define VHD_OFF_CREATOR_OS 36u   /* "Wi2k" */
#define VHD_OFF_ORIG_SIZE 40u    /* u64 bytes */
#define VHD_OFF_CUR_SIZE 48u     /* u64 bytes (the virtual size) */
#define VHD_OFF_GEOMETRY 56u     /* u16 cylinders, u8 heads, u8 sectors */
#define VHD_OFF_DISK_TYPE 60u    /* u32 = 2 (fixed) */
#define VHD_OFF_CHECKSUM 64u     /* u32 one's complement of byte sum */
#define VHD_OFF_UNIQUE_ID 68u    /* 16 bytes */
#define VHD_OFF_SAVED_STATE 84u  /* u8 = 0 */
#define VHD_OFF_RESERVED 85u     /* 427 zero bytes */
#define VHD_DISK_TYPE_FIXED 2u

typedef struct vhd_footer {
    uint32_t timestamp;
    uint64_t current_size;
    uint16_t cylinders;
    uint8_t heads, sectors;
    uint8_t unique_id[16];
} vhd_footer;

void vhd_footer_init(vhd_footer *f, uint64_t size, uint32_t timestamp,
                     const uint8_t unique_id[16]);
void vhd_footer_encode(const vhd_footer *f, uint8_t out[VHD_FOOTER_BYTES]);
/* 0 ok, -1 not a VHD footer (cookie), -2 malformed (checksum, type...). */
int vhd_footer_decode(vhd_footer *f, const uint8_t in[VHD_FOOTER_BYTES]);

/* ---- header (block 0) ---------------------------------------------------- */
#define HDR_MAGIC "VDISKIMG"
#define HDR_OFF_MAGIC 0u
#define HDR_OFF_VERSION 8u
#define HDR_OFF_HEADER_BYTES 12u
#define HDR_OFF_IMAGE_ID 16u
#define HDR_OFF_CIPHER 32u
#define HDR_OFF_BLOCK_SIZE 36u
#define HDR_OFF_NBLOCKS 40u
#define HDR_OFF_FANOUT 48u
#define HDR_OFF_HEIGHT 52u
#define HDR_OFF_NODE_BLOCKS 56u
#define HDR_OFF_JOURNAL_BLOCKS 64u
#define HDR_OFF_KEYSLOT_BLOCKS 68u
#define HDR_OFF_KEYSLOT_START 72u
#define HDR_OFF_SB_START 80u
#define HDR_OFF_JOURNAL_START 88u
#define HDR_OFF_NODE_START 96u
#define HDR_OFF_DATA_START 104u
#define HDR_OFF_TOTAL_BLOCKS 112u
#define HDR_OFF_CREATED_NS 120u
#define HDR_OFF_KEYCHECK 128u /* 32 bytes */
/* A second geometry (vhdtool resize, docs/FORMAT.md §4): 0 = none. Not
 * part of the digest superblocks carry; each record names, by that
 * digest, the geometry it was written under. */
#define HDR_OFF_ALT_NBLOCKS 160u
#define HDR_OFF_ALT_NODE_START 168u
/* Format 6: blocks of the leaf-version log, right after the journal
 * slots (the nodes and data follow it); 0 = no log. Zero before 6. */
#define HDR_OFF_LOG_BLOCKS 176u /* u32 */
#define HDR_OFF_LOG_RESERVED 180u /* u32 = 0 */
#define HDR_LOG_BLOCKS_MAX 4096u
#define HDR_USED_END 184u     /* [184, 4088) reserved, must be zero */
#define HDR_OFF_CHECKSUM 4088u /* xxh64 of [0, 4088), seed 0 */

typedef struct vd_header {
    uint32_t format_version;
    uint8_t image_id[16];
    uint32_t cipher;
    uint64_t nblocks;
    uint32_t fanout, height;
    uint64_t node_blocks;
    uint32_t journal_blocks, keyslot_blocks;
    uint64_t keyslot_start, sb_start, journal_start, node_start, data_start;
    uint64_t total_blocks;
    int64_t created_ns;
    uint8_t keycheck[32];
    uint64_t alt_nblocks, alt_node_start; /* the second geometry; 0 = none */
    uint32_t log_blocks; /* format 6: the leaf-version log's size; 0 = none */
} vd_header;

/* First block of the leaf-version log (after both journal slots). */
static inline uint64_t vd_header_log_start(const vd_header *h)
{
    return h->journal_start + 2ull * h->journal_blocks;
}

_Static_assert(HDR_USED_END <= HDR_OFF_CHECKSUM, "header fields fit");
_Static_assert(HDR_OFF_CHECKSUM + 8 == VDF_BLOCK, "checksum ends the block");

/* Fill the layout fields from nblocks, fan-out (2..MT_FANOUT) and journal
 * size. 0 / -1. */
int vd_header_layout(vd_header *h, uint64_t nblocks, uint32_t fanout,
                     uint32_t journal_blocks);
/* Give a header fresh from vd_header_layout a log of log_blocks blocks
 * (0..HDR_LOG_BLOCKS_MAX): the nodes and data move up by that much.
 * 0 / -1. */
int vd_header_set_log(vd_header *h, uint32_t log_blocks);
/* The geometry fields (nblocks, height, node_blocks, node_start,
 * total_blocks) of h for nblocks data blocks with the nodes at node_start:
 * either the layout rule's (node_start = journal_start + 2J, data right
 * after the nodes) or, after a resize, the nodes after the data
 * (node_start >= data_start + nblocks; data_start stays). 0 / -1. */
int vd_header_set_geometry(vd_header *h, uint64_t nblocks, uint64_t node_start);
/* The header with its second geometry in force (and none second): what
 * the records written under that geometry name. 0 / -1 (none). */
int vd_header_swap_geometry(const vd_header *h, vd_header *out);
void vd_header_encode(const vd_header *h, uint8_t out[VDF_BLOCK]);
/* 0 ok; -1 not ours (magic); -2 corrupt (checksum, inconsistent layout,
 * nonzero reserved bytes); -3 unsupported version or cipher. */
int vd_header_decode(vd_header *h, const uint8_t in[VDF_BLOCK]);

/* ---- superblock (blocks 2 and 3) ----------------------------------------- */
#define SB_MAGIC "VDSUPER1"
#define SB_OFF_MAGIC 0u
#define SB_OFF_VERSION 8u
#define SB_OFF_SLOT 12u
#define SB_OFF_EPOCH 16u
#define SB_OFF_BASE_EPOCH 24u   /* last committed epoch before this record */
#define SB_OFF_STATE 32u
#define SB_OFF_FLAGS 36u
#define SB_OFF_HEADER_DIGEST 40u /* BLAKE2b-256 of the header block */
#define SB_OFF_ROOT 72u          /* mt_version, 32 bytes */
#define SB_OFF_JCOUNT 104u
#define SB_OFF_JINLINE 108u
#define SB_OFF_JDIGEST 112u      /* BLAKE2b-256 of the journal blocks used */
#define SB_OFF_TIME_NS 144u      /* untrusted wall clock of the write */
#define SB_OFF_ANCHOR_TAG 152u   /* 8 bytes: keyed tag of the anchor's identity
                                    (R7); zero = not bound (made before R7) */
#define SB_ANCHOR_TAG_BYTES 8u
#define SB_OFF_INLINE 160u       /* inline journal entries */
#define SB_OFF_MAC 4064u         /* keyed BLAKE2b-256 of image_id || [0, SB_OFF_INLINE
                                    + inline entries used); zeros up to here */

#define SB_STATE_COMMITTED 1u
#define SB_STATE_IN_PROGRESS 2u

/* flags (format 3): the image was closed cleanly after this record; the
 * first write of the next writable session clears it again. */
#define SB_FLAG_CLEAN 1u
/* flags bit 1 (format 3): a key rotation (vhdtool rekey) is under way; the
 * record carries the rekey extension below and holds at most
 * SB_INLINE_MAX_REKEY inline journal entries (docs/FORMAT.md §6a). */
#define SB_FLAG_REKEY 2u
/* flags bit 2 (format 4): a one-flush commit. Every entry is JE_REDO,
 * nodes included, except (format 5) the blocks whose before version is
 * "never written", which go straight in place; jdigest covers the entry
 * blocks (none when inline) and then every entry's block (vd_ofd). The record went to disk in the same flush as its
 * journal, so a journal that does not match it means the round never
 * completed: the other slot's record (COMMITTED, base_epoch) is in force
 * (docs/FORMAT.md §7a). */
#define SB_FLAG_ONEFLUSH 4u
/* flags bit 3 (format 6): the record names a leaf-version log of log_len
 * blocks (docs/FORMAT.md §7b): the versions its entries give override the
 * level-1 slots of the tree under root, later entries over earlier ones.
 * Only COMMITTED records, never with SB_FLAG_REKEY; the fields share the
 * rekey extension's place (so at most SB_INLINE_MAX_REKEY inline entries).
 * A one-flush record with it is a log commit: its digest covers, after
 * its blocks, log block log_len - 1, which it wrote. */
#define SB_FLAG_LOG 8u

/* ---- rekey extension [SB_OFF_REKEY, SB_REKEY_END) -------------------------
 * Present when flags has SB_FLAG_REKEY; zero otherwise. "old" is the
 * master key being replaced, "new" the one replacing it. */
#define SB_OFF_REKEY 3904u
#define SB_RK_OFF_PHASE 3904u   /* u32: SB_RK_BEGIN / SB_RK_RUNNING */
#define SB_RK_OFF_RESERVED 3908u /* u32 = 0 */
#define SB_RK_OFF_CURSOR 3912u  /* u64: data blocks [0, cursor) are sealed
                                   under the new key */
#define SB_RK_OFF_NONCE 3920u   /* 24 bytes: the link's nonce */
#define SB_RK_OFF_LINK 3944u    /* 32 bytes: old master, wrapped under
                                   KDF(new, "vd-rekey", 0) */
#define SB_RK_OFF_LINK_TAG 3976u /* 16 bytes */
#define SB_RK_OFF_NEW_MAC 3992u /* 32 bytes: BEGIN records, MAC of the
                                   record under the new key; else zero */
#define SB_RK_USED_END 4024u    /* [4024, SB_REKEY_END) zero */
#define SB_REKEY_END 4048u
/* The log extension (flags has SB_FLAG_LOG) in the same place. */
#define SB_LOG_OFF_LEN 3904u      /* u32: log blocks named, >= 1 */
#define SB_LOG_OFF_RESERVED 3908u /* u32 = 0 */
#define SB_LOG_OFF_HEAD 3912u     /* 32 bytes: the chain's last hash */
#define SB_LOG_USED_END 3944u     /* [3944, SB_OFF_MAC) zero */
#define SB_RK_BEGIN 1u   /* no block sealed under the new key yet: the
                            standard MAC is the old key's */
#define SB_RK_RUNNING 2u /* blocks may be under either key: the standard
                            MAC is the new key's */

/* ---- journal entries ----------------------------------------------------- */
/*   0 u64 phys block, 8 before version (32), 40 after version (32)
 * Format 3: bit 63 of phys (JE_REDO) marks a metadata block whose sealed
 * new contents follow the entry blocks in the journal area, in entry
 * order (redo journal, docs/FORMAT.md §7). */
#define JE_REDO (1ull << 63)
#define JE_BYTES 72u
#define JE_PER_BLOCK (VDF_BLOCK / JE_BYTES)                  /* 56 */
#define SB_INLINE_MAX ((SB_OFF_MAC - SB_OFF_INLINE) / JE_BYTES) /* 54 */

_Static_assert(SB_OFF_ANCHOR_TAG == SB_OFF_TIME_NS + 8 &&
                   SB_OFF_ANCHOR_TAG + SB_ANCHOR_TAG_BYTES == SB_OFF_INLINE,
               "anchor tag sits between the clock and the inline journal");
_Static_assert(SB_OFF_INLINE + SB_INLINE_MAX * JE_BYTES <= SB_OFF_MAC,
               "inline journal fits before the MAC");
#define SB_INLINE_MAX_REKEY ((SB_OFF_REKEY - SB_OFF_INLINE) / JE_BYTES) /* 52 */
_Static_assert(SB_INLINE_MAX_REKEY == 52 &&
                   SB_OFF_INLINE + SB_INLINE_MAX_REKEY * JE_BYTES <= SB_OFF_REKEY,
               "inline journal of a rekey record ends before the extension");
_Static_assert(SB_RK_OFF_RESERVED == SB_RK_OFF_PHASE + 4 &&
                   SB_RK_OFF_CURSOR == SB_RK_OFF_RESERVED + 4 &&
                   SB_RK_OFF_NONCE == SB_RK_OFF_CURSOR + 8 &&
                   SB_RK_OFF_LINK == SB_RK_OFF_NONCE + 24 &&
                   SB_RK_OFF_LINK_TAG == SB_RK_OFF_LINK + 32 &&
                   SB_RK_OFF_NEW_MAC == SB_RK_OFF_LINK_TAG + 16 &&
                   SB_RK_USED_END == SB_RK_OFF_NEW_MAC + 32 &&
                   SB_RK_USED_END <= SB_REKEY_END && SB_REKEY_END <= SB_OFF_MAC &&
                   SB_OFF_REKEY == SB_RK_OFF_PHASE,
               "rekey extension fields are contiguous and end before the MAC");
_Static_assert(SB_LOG_OFF_LEN == SB_OFF_REKEY && SB_LOG_OFF_RESERVED == SB_LOG_OFF_LEN + 4 &&
                   SB_LOG_OFF_HEAD == SB_LOG_OFF_RESERVED + 4 &&
                   SB_LOG_USED_END == SB_LOG_OFF_HEAD + 32 && SB_LOG_USED_END <= SB_REKEY_END,
               "log extension fields are contiguous, inside the extension's place");
_Static_assert(SB_OFF_MAC + 32 == VDF_BLOCK, "MAC ends the superblock");
_Static_assert(JE_PER_BLOCK == 56, "journal block geometry");

typedef struct vd_jentry {
    uint64_t phys;
    mt_version before, after;
    int redo; /* JE_REDO */
} vd_jentry;

void vd_jentry_encode(const vd_jentry *e, uint8_t out[JE_BYTES]);
void vd_jentry_decode(vd_jentry *e, const uint8_t in[JE_BYTES]);
/* A one-flush record's jdigest (SB_FLAG_ONEFLUSH): XXH3-128, little-endian,
 * then 16 zero bytes, over its entry blocks (when not inline) followed by
 * the contents of every entry's block in entry order: a JE_REDO entry's
 * copy in the journal area, any other entry's block in place (format 5:
 * a block the tree had never written, docs/FORMAT.md §7). It tells a
 * round torn by a crash from a whole one; it needs no strength against
 * the host, since every block is opened against its version in the tree
 * before anything trusts it. Computed in pieces: init, update..., final
 * (which frees; vd_ofd_free on a path that stops early). */
typedef struct vd_ofd {
    void *st;
} vd_ofd;
int vd_ofd_init(vd_ofd *d); /* 0, or -1: out of memory (free it anyway) */
void vd_ofd_update(vd_ofd *d, const uint8_t *p, size_t len);
void vd_ofd_final(vd_ofd *d, uint8_t out[32]);
void vd_ofd_free(vd_ofd *d);

typedef struct vd_super {
    uint32_t version; /* the image's format version when written */
    uint32_t slot;
    uint64_t epoch, base_epoch;
    uint32_t state, flags;
    uint8_t header_digest[32];
    mt_version root;
    uint32_t jcount, jinline;
    uint8_t jdigest[32];
    int64_t time_ns;
    uint8_t anchor_tag[SB_ANCHOR_TAG_BYTES];
    /* Rekey extension (flags & SB_FLAG_REKEY). new_mac is computed by the
     * seal, not encoded from here. */
    uint32_t rk_phase;
    uint64_t rk_cursor;
    uint8_t rk_nonce[24], rk_link[32], rk_link_tag[16];
    /* Log extension (flags & SB_FLAG_LOG). */
    uint32_t log_len;
    uint8_t log_head[32];
} vd_super;

/* The same record without its journal: its blocks are in place and
 * durable, so it stops naming them (nor is it a one-flush record). */
void vd_super_drop_journal(vd_super *s);
/* Encode everything but the inline entries and the MAC. */
void vd_super_encode(const vd_super *s, uint8_t out[VDF_BLOCK]);
/* Decode fields (after the MAC has been verified by the caller).
 * 0 ok, -2 malformed. */
int vd_super_decode(vd_super *s, const uint8_t in[VDF_BLOCK]);

/* ---- leaf-version log blocks (format 6, docs/FORMAT.md §7b) ---------------
 * Block i of the log lies at vd_header_log_start + i. It holds the data
 * block versions of one log commit: u64 logical block, then its version.
 * Not encrypted (the versions are nonces and tags, which AES-GCM does not
 * need kept secret); its integrity is the hash chain head_i =
 * BLAKE2b-256(head_{i-1} || block bytes [0, LB_OFF_ENTRIES + 40 * count)),
 * head_{-1} = 32 zero bytes, whose head the MAC'd record carries. Bytes
 * past the entries are zero. */
#define LB_MAGIC "VDLOGBK1"
#define LB_OFF_MAGIC 0u
#define LB_OFF_INDEX 8u     /* u32: i */
#define LB_OFF_COUNT 12u    /* u32: entries, 1..LB_MAX */
#define LB_OFF_EPOCH 16u    /* u64: the log commit's epoch */
#define LB_OFF_RESERVED 24u /* u64 = 0 */
#define LB_OFF_ENTRIES 32u
#define LB_ENTRY_BYTES (8u + MT_VERSION_BYTES)
#define LB_MAX ((VDF_BLOCK - LB_OFF_ENTRIES) / LB_ENTRY_BYTES) /* 101 */
_Static_assert(LB_ENTRY_BYTES == 40 && LB_MAX == 101, "log block geometry");
_Static_assert(sizeof(LB_MAGIC) - 1 == 8, "log block magic");

/* The chain's next head over log block blk (count entries): 0 / -1. */
int vd_logblk_chain(const uint8_t prev[32], const uint8_t blk[VDF_BLOCK], uint32_t count,
                    uint8_t out[32]);
/* Check the framing of log block index i: its count (1..LB_MAX) into
 * *count. 0 ok, -2 malformed. */
int vd_logblk_check(const uint8_t blk[VDF_BLOCK], uint32_t i, uint32_t *count);

/* ---- key-slot block (block 1) --------------------------------------------
 * 8 slots of 512 bytes; slot i at byte 512*i of the block. Every slot that
 * is not EMPTY wraps the image master key (keyslot.c, docs/FORMAT.md §5).
 * The block is not covered by the superblock MAC: wrapped slots are
 * authenticated by their own AEAD, sealed slots by the key check value. */
#define KS_SLOTS 8u
#define KS_SLOT_BYTES 512u
_Static_assert(KS_SLOTS * KS_SLOT_BYTES == VDF_BLOCK, "slots fill one block");

#define KS_TYPE_EMPTY 0u      /* all 512 bytes zero */
#define KS_TYPE_PASSPHRASE 1u /* KEK = Argon2id(passphrase, salt, ops, mem) */
#define KS_TYPE_KEYFILE 2u    /* KEK = BLAKE2b(key = file, salt || "vd-keyfile") */
#define KS_TYPE_SEALED 3u     /* crypto_box_seal(master, recipient) */
#define KS_VERSION 1u

#define KS_OFF_TYPE 0u     /* u32 */
#define KS_OFF_VERSION 4u  /* u32 = KS_VERSION */
/* PASSPHRASE and KEYFILE ("wrapped" slots): */
#define KS_OFF_KDF 8u      /* u32: KS_KDF_ARGON2ID13 / KS_KDF_BLAKE2B */
#define KS_OFF_RESERVED 12u /* u32 = 0 */
#define KS_OFF_OPSLIMIT 16u /* u64 (0 for KEYFILE) */
#define KS_OFF_MEMLIMIT 24u /* u64 bytes (0 for KEYFILE) */
#define KS_OFF_SALT 32u    /* 16 bytes */
#define KS_OFF_NONCE 48u   /* 24 bytes, random */
#define KS_OFF_WRAPPED 72u /* 32 bytes: XChaCha20-Poly1305(KEK, master) */
#define KS_OFF_TAG 104u    /* 16 bytes */
#define KS_WRAPPED_END 120u
/* SEALED: */
#define KS_OFF_RECIPIENT 8u /* X25519 public key, 32 bytes */
#define KS_OFF_BOX 40u      /* crypto_box_seal(master): 32 + 48 = 80 bytes */
#define KS_BOX_BYTES 80u
#define KS_SEALED_END 120u
#define KS_USED_END 120u    /* [120, 512) must be zero in every slot */

#define KS_KDF_ARGON2ID13 1u
#define KS_KDF_BLAKE2B 2u
#define KS_SALT_BYTES 16u
#define KS_NONCE_BYTES 24u
#define KS_KEYFILE_CTX "vd-keyfile" /* 10 bytes, after the salt */
/* Associated data of a wrapped slot: image_id (16) || u32 LE slot index ||
 * slot bytes [0, KS_OFF_WRAPPED) (type, version, kdf, params, salt, nonce). */
#define KS_AD_BYTES (16u + 4u + KS_OFF_WRAPPED)

/* Argon2id parameters a slot may carry. They are read before anything in
 * the slot can be authenticated, so they are bounded: a host that edits
 * them can make an unlock fail, and make it cost at most KS_COST_MAX
 * (opslimit * memlimit: 4 passes over 1 GiB, libsodium's "sensitive"). */
#define KS_OPSLIMIT_MIN 1ull
#define KS_OPSLIMIT_MAX 32ull
#define KS_MEMLIMIT_MIN 8192ull
#define KS_MEMLIMIT_MAX (1ull << 30)
#define KS_COST_MAX (4ull << 30)
_Static_assert(KS_OPSLIMIT_MAX * KS_MEMLIMIT_MAX / KS_MEMLIMIT_MAX == KS_OPSLIMIT_MAX,
               "cost product cannot overflow");

_Static_assert(KS_OFF_SALT + KS_SALT_BYTES == KS_OFF_NONCE &&
                   KS_OFF_NONCE + KS_NONCE_BYTES == KS_OFF_WRAPPED &&
                   KS_OFF_WRAPPED + 32 == KS_OFF_TAG &&
                   KS_OFF_TAG + 16 == KS_WRAPPED_END,
               "wrapped slot fields are contiguous");
_Static_assert(KS_OFF_RECIPIENT + 32 == KS_OFF_BOX &&
                   KS_OFF_BOX + KS_BOX_BYTES == KS_SEALED_END,
               "sealed slot fields are contiguous");
_Static_assert(KS_WRAPPED_END <= KS_USED_END && KS_SEALED_END <= KS_USED_END &&
                   KS_USED_END <= KS_SLOT_BYTES,
               "slot fields fit in a slot");
_Static_assert(sizeof(KS_KEYFILE_CTX) - 1 == 10, "key file KDF context");

typedef struct vd_keyslot {
    uint32_t type, version, kdf;
    uint64_t opslimit, memlimit;
    uint8_t salt[KS_SALT_BYTES], nonce[KS_NONCE_BYTES];
    uint8_t wrapped[32], tag[16];
    uint8_t recipient[32], box[KS_BOX_BYTES];
} vd_keyslot;

/* Encode one slot into 512 bytes (zero padding included). */
void vd_keyslot_encode(const vd_keyslot *s, uint8_t out[KS_SLOT_BYTES]);
/* 0 ok; -2 malformed: unknown type or version or KDF, nonzero reserved or
 * padding bytes, an EMPTY slot that is not all zero, Argon2id parameters
 * outside [KS_*_MIN, KS_*_MAX], KEYFILE parameters not zero. */
int vd_keyslot_decode(vd_keyslot *s, const uint8_t in[KS_SLOT_BYTES]);

/* ---- anchor file (vdisk_host: host/anchor_file.c) -------------------------
 * A freshness counter in a small file (docs/FORMAT.md §15). Version 2 (48
 * bytes) adds a random anchor id, the file's identity for R7; version 1
 * (32 bytes, before R7) is still read, and rewritten as version 2 (with a
 * new id) by its next advance. */
#define AF_MAGIC "VDANCHOR"
#define AF_OFF_MAGIC 0u
#define AF_OFF_VERSION 8u   /* u32 = AF_VERSION (or 1) */
#define AF_OFF_RESERVED 12u /* u32 = 0 */
#define AF_OFF_COUNTER 16u  /* u64 */
#define AF_V1_OFF_CHECKSUM 24u /* version 1: u64 XXH64 of [0, 24), seed 0 */
#define AF_V1_BYTES 32u
#define AF_OFF_ID 24u       /* version 2: 16 random bytes */
#define AF_ID_BYTES 16u
#define AF_OFF_CHECKSUM 40u /* version 2: u64 XXH64 of [0, 40), seed 0 */
#define AF_BYTES 48u
#define AF_VERSION 2u
_Static_assert(AF_V1_OFF_CHECKSUM + 8 == AF_V1_BYTES, "checksum ends a v1 anchor file");
_Static_assert(AF_OFF_ID + AF_ID_BYTES == AF_OFF_CHECKSUM &&
                   AF_OFF_CHECKSUM + 8 == AF_BYTES,
               "checksum ends the anchor file");
_Static_assert(sizeof(AF_MAGIC) - 1 == 8, "anchor magic");

/* ---- block AEAD binding -------------------------------------------------- */
/* Associated data: image_id (16) || phys block number (u64 LE). Binds every
 * block to its image and position (R2). Nonce: counter (u64 LE) || 0u32,
 * under the subkey KDF(master, "vd-block", keyid). */
#define VD_AD_BYTES 24u
#define VD_KDF_BLOCK "vd-block"
#define VD_KDF_SUPER "vd-super"
#define VD_KDF_KEYCHECK "vd-kchck"
/* Anchor binding (R7): subkey id 0 keys the superblock's anchor tag
 * (BLAKE2b-256(key, "vd-anchor-id" || identity), first 8 bytes), id 1 is
 * the secret handed to vd_anchor.authorize (the TPM NV authValue). */
#define VD_KDF_ANCHOR "vd-anchr"
/* Key rotation: id 0 keys the link (the old master wrapped under the new). */
#define VD_KDF_REKEY "vd-rekey"
#define VD_REKEY_LINK_AD "vd-rekey-link"
#define VD_ANCHOR_TAG_CTX "vd-anchor-id"

#endif
