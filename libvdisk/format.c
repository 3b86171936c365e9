/* Encoding and decoding of the on-disk structures in image_format.h. */
#include <string.h>
#include <xxhash.h>

#include "crypto/crypto.h"
#include "endian.h"
#include "image_format.h"

/* ---- VHD footer ---------------------------------------------------------- */

static uint32_t vhd_checksum(const uint8_t *b)
{
    uint32_t sum = 0;
    for (unsigned i = 0; i < VHD_FOOTER_BYTES; i++)
        if (i < VHD_OFF_CHECKSUM || i >= VHD_OFF_CHECKSUM + 4)
            sum += b[i];
    return ~sum;
}

void vhd_footer_init(vhd_footer *f, uint64_t size, uint32_t timestamp,
                     const uint8_t unique_id[16])
{
    memset(f, 0, sizeof *f);
    f->timestamp = timestamp;
    f->current_size = size;
    /* The maximal CHS geometry tells readers (qemu among them) to take the
     * size from current_size rather than from cylinders*heads*sectors,
     * which could not express our exact size. */
    f->cylinders = 65535;
    f->heads = 16;
    f->sectors = 255;
    memcpy(f->unique_id, unique_id, 16);
}

void vhd_footer_encode(const vhd_footer *f, uint8_t out[VHD_FOOTER_BYTES])
{
    memset(out, 0, VHD_FOOTER_BYTES);
    memcpy(out + VHD_OFF_COOKIE, "conectix", 8);
    vd_put_be32(out + VHD_OFF_FEATURES, 2);
    vd_put_be32(out + VHD_OFF_VERSION, 0x00010000u);
    vd_put_be64(out + VHD_OFF_DATA_OFFSET, UINT64_MAX);
    vd_put_be32(out + VHD_OFF_TIMESTAMP, f->timestamp);
    memcpy(out + VHD_OFF_CREATOR_APP, "vdsk", 4);
    vd_put_be32(out + VHD_OFF_CREATOR_VER, 0x00010000u);
    memcpy(out + VHD_OFF_CREATOR_OS, "Wi2k", 4);
    vd_put_be64(out + VHD_OFF_ORIG_SIZE, f->current_size);
    vd_put_be64(out + VHD_OFF_CUR_SIZE, f->current_size);
    vd_put_be16(out + VHD_OFF_GEOMETRY, f->cylinders);
    out[VHD_OFF_GEOMETRY + 2] = f->heads;
    out[VHD_OFF_GEOMETRY + 3] = f->sectors;
    vd_put_be32(out + VHD_OFF_DISK_TYPE, VHD_DISK_TYPE_FIXED);
    memcpy(out + VHD_OFF_UNIQUE_ID, f->unique_id, 16);
    vd_put_be32(out + VHD_OFF_CHECKSUM, vhd_checksum(out));
}

int vhd_footer_decode(vhd_footer *f, const uint8_t in[VHD_FOOTER_BYTES])
{
    memset(f, 0, sizeof *f);
    if (memcmp(in + VHD_OFF_COOKIE, "conectix", 8) != 0)
        return -1;
    if (vd_get_be32(in + VHD_OFF_CHECKSUM) != vhd_checksum(in))
        return -2;
    if (vd_get_be32(in + VHD_OFF_DISK_TYPE) != VHD_DISK_TYPE_FIXED ||
        vd_get_be64(in + VHD_OFF_DATA_OFFSET) != UINT64_MAX)
        return -2;
    f->timestamp = vd_get_be32(in + VHD_OFF_TIMESTAMP);
    f->current_size = vd_get_be64(in + VHD_OFF_CUR_SIZE);
    f->cylinders = vd_get_be16(in + VHD_OFF_GEOMETRY);
    f->heads = in[VHD_OFF_GEOMETRY + 2];
    f->sectors = in[VHD_OFF_GEOMETRY + 3];
    memcpy(f->unique_id, in + VHD_OFF_UNIQUE_ID, 16);
    return 0;
}

/* ---- header -------------------------------------------------------------- */

#define VD_FIRST_META_BLOCK 4u /* header, key slots, two superblocks */

int vd_header_layout(vd_header *h, uint64_t nblocks, uint32_t fanout,
                     uint32_t journal_blocks)
{
    mt_geometry g;
    if (fanout > MT_FANOUT || mt_geometry_init(&g, nblocks, fanout) != 0)
        return -1;
    if (journal_blocks == 0 || journal_blocks > (1u << 20))
        return -1;
    h->format_version = VDF_FORMAT_VERSION;
    h->nblocks = nblocks;
    h->fanout = g.fanout;
    h->height = g.height;
    h->node_blocks = g.node_blocks;
    h->journal_blocks = journal_blocks;
    h->keyslot_blocks = 1;
    h->keyslot_start = 1;
    h->sb_start = 2;
    h->journal_start = VD_FIRST_META_BLOCK;
    h->log_blocks = 0;
    h->node_start = h->journal_start + 2ull * journal_blocks;
    h->data_start = h->node_start + g.node_blocks;
    if (nblocks > UINT64_MAX - h->data_start) /* a wrapped sum would "fit" */
        return -1;
    h->total_blocks = h->data_start + nblocks;
    /* The file size must stay representable in bytes with room to spare. */
    if (h->total_blocks > (UINT64_MAX / VDF_BLOCK) / 2)
        return -1;
    return 0;
}

int vd_header_set_log(vd_header *h, uint32_t log_blocks)
{
    if (log_blocks > HDR_LOG_BLOCKS_MAX || h->log_blocks != 0 ||
        h->node_start != vd_header_log_start(h) ||
        h->total_blocks + log_blocks > (UINT64_MAX / VDF_BLOCK) / 2)
        return -1;
    h->log_blocks = log_blocks;
    h->node_start += log_blocks;
    h->data_start += log_blocks;
    h->total_blocks += log_blocks;
    return 0;
}

int vd_header_set_geometry(vd_header *h, uint64_t nblocks, uint64_t node_start)
{
    mt_geometry g;
    if (mt_geometry_init(&g, nblocks, h->fanout) != 0 || g.height > MT_MAX_HEIGHT)
        return -1;
    uint64_t meta_end = vd_header_log_start(h) + h->log_blocks;
    uint64_t total;
    if (nblocks > UINT64_MAX - h->data_start) /* a wrapped sum would "fit" */
        return -1;
    if (node_start == meta_end && h->data_start == node_start + g.node_blocks) {
        total = h->data_start + nblocks; /* the layout rule's */
    } else {
        if (h->data_start < meta_end || node_start < h->data_start + nblocks || node_start > UINT64_MAX - g.node_blocks)
            return -1;
        total = node_start + g.node_blocks;
    }
    if (total > (UINT64_MAX / VDF_BLOCK) / 2)
        return -1;
    h->nblocks = nblocks;
    h->height = g.height;
    h->node_blocks = g.node_blocks;
    h->node_start = node_start;
    h->total_blocks = total;
    return 0;
}

int vd_header_swap_geometry(const vd_header *h, vd_header *out)
{
    if (h->alt_nblocks == 0)
        return -1;
    *out = *h;
    out->alt_nblocks = 0;
    out->alt_node_start = 0;
    return vd_header_set_geometry(out, h->alt_nblocks, h->alt_node_start);
}

void vd_header_encode(const vd_header *h, uint8_t out[VDF_BLOCK])
{
    memset(out, 0, VDF_BLOCK);
    memcpy(out + HDR_OFF_MAGIC, HDR_MAGIC, 8);
    vd_put_le32(out + HDR_OFF_VERSION, h->format_version);
    vd_put_le32(out + HDR_OFF_HEADER_BYTES, VDF_BLOCK);
    memcpy(out + HDR_OFF_IMAGE_ID, h->image_id, 16);
    vd_put_le32(out + HDR_OFF_CIPHER, h->cipher);
    vd_put_le32(out + HDR_OFF_BLOCK_SIZE, VDF_BLOCK);
    vd_put_le64(out + HDR_OFF_NBLOCKS, h->nblocks);
    vd_put_le32(out + HDR_OFF_FANOUT, h->fanout);
    vd_put_le32(out + HDR_OFF_HEIGHT, h->height);
    vd_put_le64(out + HDR_OFF_NODE_BLOCKS, h->node_blocks);
    vd_put_le32(out + HDR_OFF_JOURNAL_BLOCKS, h->journal_blocks);
    vd_put_le32(out + HDR_OFF_KEYSLOT_BLOCKS, h->keyslot_blocks);
    vd_put_le64(out + HDR_OFF_KEYSLOT_START, h->keyslot_start);
    vd_put_le64(out + HDR_OFF_SB_START, h->sb_start);
    vd_put_le64(out + HDR_OFF_JOURNAL_START, h->journal_start);
    vd_put_le64(out + HDR_OFF_NODE_START, h->node_start);
    vd_put_le64(out + HDR_OFF_DATA_START, h->data_start);
    vd_put_le64(out + HDR_OFF_TOTAL_BLOCKS, h->total_blocks);
    vd_put_le64(out + HDR_OFF_CREATED_NS, (uint64_t)h->created_ns);
    memcpy(out + HDR_OFF_KEYCHECK, h->keycheck, 32);
    vd_put_le64(out + HDR_OFF_ALT_NBLOCKS, h->alt_nblocks);
    vd_put_le64(out + HDR_OFF_ALT_NODE_START, h->alt_node_start);
    vd_put_le32(out + HDR_OFF_LOG_BLOCKS, h->log_blocks);
    vd_put_le64(out + HDR_OFF_CHECKSUM, XXH64(out, HDR_OFF_CHECKSUM, 0));
}

int vd_header_decode(vd_header *h, const uint8_t in[VDF_BLOCK])
{
    memset(h, 0, sizeof *h);
    if (memcmp(in + HDR_OFF_MAGIC, HDR_MAGIC, 8) != 0)
        return -1;
    if (vd_get_le64(in + HDR_OFF_CHECKSUM) != XXH64(in, HDR_OFF_CHECKSUM, 0))
        return -2;
    h->format_version = vd_get_le32(in + HDR_OFF_VERSION);
    if (h->format_version < VDF_FORMAT_OLDEST || h->format_version > VDF_FORMAT_VERSION)
        return -3;
    h->cipher = vd_get_le32(in + HDR_OFF_CIPHER);
    if (h->cipher != 1 && h->cipher != 2)
        return -3;
    if (vd_get_le32(in + HDR_OFF_HEADER_BYTES) != VDF_BLOCK ||
        vd_get_le32(in + HDR_OFF_BLOCK_SIZE) != VDF_BLOCK)
        return -2;
    for (unsigned i = HDR_USED_END; i < HDR_OFF_CHECKSUM; i++)
        if (in[i] != 0)
            return -2;
    memcpy(h->image_id, in + HDR_OFF_IMAGE_ID, 16);
    h->created_ns = (int64_t)vd_get_le64(in + HDR_OFF_CREATED_NS);
    memcpy(h->keycheck, in + HDR_OFF_KEYCHECK, 32);

    /* Every layout field must be what the layout rule derives from nblocks
     * and the journal size, or (after a resize) what the nodes-after-data
     * layout derives from nblocks, data_start and node_start: a header
     * cannot point regions anywhere else (the superblock MAC covers its
     * digest too). */
    vd_header want;
    memset(&want, 0, sizeof want);
    if (vd_header_layout(&want, 1, vd_get_le32(in + HDR_OFF_FANOUT),
                         vd_get_le32(in + HDR_OFF_JOURNAL_BLOCKS)) != 0)
        return -2;
    uint32_t log_blocks = vd_get_le32(in + HDR_OFF_LOG_BLOCKS);
    if ((log_blocks && h->format_version < 6) || vd_get_le32(in + HDR_OFF_LOG_RESERVED) ||
        vd_header_set_log(&want, log_blocks) != 0)
        return -2;
    want.data_start = vd_get_le64(in + HDR_OFF_DATA_START);
    if (vd_header_set_geometry(&want, vd_get_le64(in + HDR_OFF_NBLOCKS),
                               vd_get_le64(in + HDR_OFF_NODE_START)) != 0)
        return -2;
    if (vd_get_le32(in + HDR_OFF_HEIGHT) != want.height ||
        vd_get_le64(in + HDR_OFF_NODE_BLOCKS) != want.node_blocks ||
        vd_get_le32(in + HDR_OFF_KEYSLOT_BLOCKS) != want.keyslot_blocks ||
        vd_get_le64(in + HDR_OFF_KEYSLOT_START) != want.keyslot_start ||
        vd_get_le64(in + HDR_OFF_SB_START) != want.sb_start ||
        vd_get_le64(in + HDR_OFF_JOURNAL_START) != want.journal_start ||
        vd_get_le64(in + HDR_OFF_TOTAL_BLOCKS) != want.total_blocks)
        return -2;
    want.alt_nblocks = vd_get_le64(in + HDR_OFF_ALT_NBLOCKS);
    want.alt_node_start = vd_get_le64(in + HDR_OFF_ALT_NODE_START);
    vd_header alt;
    if ((want.alt_nblocks || want.alt_node_start) &&
        (h->format_version < 3 || vd_header_swap_geometry(&want, &alt) != 0))
        return -2;
    h->nblocks = want.nblocks;
    h->fanout = want.fanout;
    h->height = want.height;
    h->node_blocks = want.node_blocks;
    h->journal_blocks = want.journal_blocks;
    h->keyslot_blocks = want.keyslot_blocks;
    h->keyslot_start = want.keyslot_start;
    h->sb_start = want.sb_start;
    h->journal_start = want.journal_start;
    h->node_start = want.node_start;
    h->data_start = want.data_start;
    h->total_blocks = want.total_blocks;
    h->alt_nblocks = want.alt_nblocks;
    h->alt_node_start = want.alt_node_start;
    h->log_blocks = want.log_blocks;
    return 0;
}

/* ---- journal entries and superblock -------------------------------------- */

void vd_jentry_encode(const vd_jentry *e, uint8_t out[JE_BYTES])
{
    vd_put_le64(out, e->phys | (e->redo ? JE_REDO : 0));
    mt_version_encode(&e->before, out + 8);
    mt_version_encode(&e->after, out + 8 + MT_VERSION_BYTES);
}

int vd_ofd_init(vd_ofd *d)
{
    XXH3_state_t *st = XXH3_createState();
    d->st = st;
    return st && XXH3_128bits_reset(st) == XXH_OK ? 0 : -1;
}

void vd_ofd_update(vd_ofd *d, const uint8_t *p, size_t len)
{
    /* Fails only on a NULL state, which vd_ofd_init has ruled out. */
    (void)XXH3_128bits_update(d->st, p, len);
}

void vd_ofd_final(vd_ofd *d, uint8_t out[32])
{
    XXH128_hash_t h = XXH3_128bits_digest(d->st);
    memset(out, 0, 32);
    vd_put_le64(out, h.low64);
    vd_put_le64(out + 8, h.high64);
    vd_ofd_free(d);
}

void vd_ofd_free(vd_ofd *d)
{
    XXH3_freeState(d->st);
    d->st = NULL;
}

void vd_super_drop_journal(vd_super *s)
{
    s->jcount = 0;
    s->jinline = 0;
    memset(s->jdigest, 0, sizeof s->jdigest);
    s->flags &= ~SB_FLAG_ONEFLUSH;
}

void vd_jentry_decode(vd_jentry *e, const uint8_t in[JE_BYTES])
{
    uint64_t p = vd_get_le64(in);
    e->phys = p & ~JE_REDO;
    e->redo = (p & JE_REDO) != 0;
    mt_version_decode(&e->before, in + 8);
    mt_version_decode(&e->after, in + 8 + MT_VERSION_BYTES);
}

void vd_super_encode(const vd_super *s, uint8_t out[VDF_BLOCK])
{
    memset(out, 0, VDF_BLOCK);
    memcpy(out + SB_OFF_MAGIC, SB_MAGIC, 8);
    vd_put_le32(out + SB_OFF_VERSION, s->version);
    vd_put_le32(out + SB_OFF_SLOT, s->slot);
    vd_put_le64(out + SB_OFF_EPOCH, s->epoch);
    vd_put_le64(out + SB_OFF_BASE_EPOCH, s->base_epoch);
    vd_put_le32(out + SB_OFF_STATE, s->state);
    vd_put_le32(out + SB_OFF_FLAGS, s->flags);
    memcpy(out + SB_OFF_HEADER_DIGEST, s->header_digest, 32);
    mt_version_encode(&s->root, out + SB_OFF_ROOT);
    vd_put_le32(out + SB_OFF_JCOUNT, s->jcount);
    vd_put_le32(out + SB_OFF_JINLINE, s->jinline);
    memcpy(out + SB_OFF_JDIGEST, s->jdigest, 32);
    vd_put_le64(out + SB_OFF_TIME_NS, (uint64_t)s->time_ns);
    memcpy(out + SB_OFF_ANCHOR_TAG, s->anchor_tag, SB_ANCHOR_TAG_BYTES);
    if (s->flags & SB_FLAG_REKEY) {
        vd_put_le32(out + SB_RK_OFF_PHASE, s->rk_phase);
        vd_put_le64(out + SB_RK_OFF_CURSOR, s->rk_cursor);
        memcpy(out + SB_RK_OFF_NONCE, s->rk_nonce, 24);
        memcpy(out + SB_RK_OFF_LINK, s->rk_link, 32);
        memcpy(out + SB_RK_OFF_LINK_TAG, s->rk_link_tag, 16);
    }
    if (s->flags & SB_FLAG_LOG) {
        vd_put_le32(out + SB_LOG_OFF_LEN, s->log_len);
        memcpy(out + SB_LOG_OFF_HEAD, s->log_head, 32);
    }
}

int vd_super_decode(vd_super *s, const uint8_t in[VDF_BLOCK])
{
    memset(s, 0, sizeof *s);
    s->version = vd_get_le32(in + SB_OFF_VERSION);
    if (memcmp(in + SB_OFF_MAGIC, SB_MAGIC, 8) != 0 ||
        s->version < VDF_FORMAT_OLDEST || s->version > VDF_FORMAT_VERSION)
        return -2;
    s->slot = vd_get_le32(in + SB_OFF_SLOT);
    s->epoch = vd_get_le64(in + SB_OFF_EPOCH);
    s->base_epoch = vd_get_le64(in + SB_OFF_BASE_EPOCH);
    s->state = vd_get_le32(in + SB_OFF_STATE);
    s->flags = vd_get_le32(in + SB_OFF_FLAGS);
    memcpy(s->header_digest, in + SB_OFF_HEADER_DIGEST, 32);
    mt_version_decode(&s->root, in + SB_OFF_ROOT);
    s->jcount = vd_get_le32(in + SB_OFF_JCOUNT);
    s->jinline = vd_get_le32(in + SB_OFF_JINLINE);
    memcpy(s->jdigest, in + SB_OFF_JDIGEST, 32);
    s->time_ns = (int64_t)vd_get_le64(in + SB_OFF_TIME_NS);
    memcpy(s->anchor_tag, in + SB_OFF_ANCHOR_TAG, SB_ANCHOR_TAG_BYTES);
    int rekey = (s->flags & SB_FLAG_REKEY) != 0;
    if (rekey) {
        s->rk_phase = vd_get_le32(in + SB_RK_OFF_PHASE);
        s->rk_cursor = vd_get_le64(in + SB_RK_OFF_CURSOR);
        memcpy(s->rk_nonce, in + SB_RK_OFF_NONCE, 24);
        memcpy(s->rk_link, in + SB_RK_OFF_LINK, 32);
        memcpy(s->rk_link_tag, in + SB_RK_OFF_LINK_TAG, 16);
        if ((s->rk_phase != SB_RK_BEGIN && s->rk_phase != SB_RK_RUNNING) ||
            vd_get_le32(in + SB_RK_OFF_RESERVED) != 0 ||
            (s->jinline && s->jcount > SB_INLINE_MAX_REKEY))
            return -2;
    }
    if (s->flags & SB_FLAG_LOG) {
        s->log_len = vd_get_le32(in + SB_LOG_OFF_LEN);
        memcpy(s->log_head, in + SB_LOG_OFF_HEAD, 32);
        if (rekey || s->version < 6 || s->state != SB_STATE_COMMITTED || s->log_len == 0 ||
            vd_get_le32(in + SB_LOG_OFF_RESERVED) != 0 ||
            (s->jinline && s->jcount > SB_INLINE_MAX_REKEY))
            return -2;
    }
    if (s->slot > 1 || s->base_epoch >= s->epoch + (s->epoch == 0) ||
        (s->state != SB_STATE_COMMITTED && s->state != SB_STATE_IN_PROGRESS) ||
        s->jinline > 1 || (s->jinline && s->jcount > SB_INLINE_MAX) ||
        (s->state == SB_STATE_COMMITTED && s->jcount != 0 && s->version < 3) ||
        (s->version < 3 && s->flags != 0) ||
        ((s->flags & SB_FLAG_ONEFLUSH) &&
         (s->version < 4 || s->state != SB_STATE_COMMITTED || s->jcount == 0)))
        return -2;
    return 0;
}

/* ---- leaf-version log blocks ------------------------------------------------ */

int vd_logblk_chain(const uint8_t prev[32], const uint8_t blk[VDF_BLOCK], uint32_t count,
                    uint8_t out[32])
{
    vdc_hash h;
    if (count > LB_MAX || vdc_hash_init(&h) != 0)
        return -1;
    int rc = vdc_hash_update(&h, prev, 32);
    if (rc == 0)
        rc = vdc_hash_update(&h, blk, LB_OFF_ENTRIES + (size_t)count * LB_ENTRY_BYTES);
    if (rc == 0)
        rc = vdc_hash_final(&h, out);
    return rc == 0 ? 0 : -1;
}

int vd_logblk_check(const uint8_t blk[VDF_BLOCK], uint32_t i, uint32_t *count)
{
    uint32_t n = vd_get_le32(blk + LB_OFF_COUNT);
    if (memcmp(blk + LB_OFF_MAGIC, LB_MAGIC, 8) != 0 || vd_get_le32(blk + LB_OFF_INDEX) != i ||
        n == 0 || n > LB_MAX || vd_get_le64(blk + LB_OFF_RESERVED) != 0)
        return -2;
    unsigned char extra = 0;
    for (size_t k = LB_OFF_ENTRIES + (size_t)n * LB_ENTRY_BYTES; k < VDF_BLOCK; k++)
        extra |= blk[k];
    if (extra)
        return -2;
    *count = n;
    return 0;
}

/* ---- key slots ------------------------------------------------------------ */

void vd_keyslot_encode(const vd_keyslot *s, uint8_t out[KS_SLOT_BYTES])
{
    memset(out, 0, KS_SLOT_BYTES);
    if (s->type == KS_TYPE_EMPTY)
        return;
    vd_put_le32(out + KS_OFF_TYPE, s->type);
    vd_put_le32(out + KS_OFF_VERSION, s->version);
    if (s->type == KS_TYPE_SEALED) {
        memcpy(out + KS_OFF_RECIPIENT, s->recipient, 32);
        memcpy(out + KS_OFF_BOX, s->box, KS_BOX_BYTES);
        return;
    }
    vd_put_le32(out + KS_OFF_KDF, s->kdf);
    vd_put_le64(out + KS_OFF_OPSLIMIT, s->opslimit);
    vd_put_le64(out + KS_OFF_MEMLIMIT, s->memlimit);
    memcpy(out + KS_OFF_SALT, s->salt, KS_SALT_BYTES);
    memcpy(out + KS_OFF_NONCE, s->nonce, KS_NONCE_BYTES);
    memcpy(out + KS_OFF_WRAPPED, s->wrapped, 32);
    memcpy(out + KS_OFF_TAG, s->tag, 16);
}

int vd_keyslot_decode(vd_keyslot *s, const uint8_t in[KS_SLOT_BYTES])
{
    memset(s, 0, sizeof *s);
    s->type = vd_get_le32(in + KS_OFF_TYPE);
    unsigned used = s->type == KS_TYPE_EMPTY ? 0 : KS_USED_END;
    for (unsigned i = used; i < KS_SLOT_BYTES; i++)
        if (in[i] != 0)
            return -2; /* padding, or an EMPTY slot that is not all zero */
    if (s->type == KS_TYPE_EMPTY)
        return 0;
    if (s->type != KS_TYPE_PASSPHRASE && s->type != KS_TYPE_KEYFILE &&
        s->type != KS_TYPE_SEALED)
        return -2;
    s->version = vd_get_le32(in + KS_OFF_VERSION);
    if (s->version != KS_VERSION)
        return -2;
    if (s->type == KS_TYPE_SEALED) {
        memcpy(s->recipient, in + KS_OFF_RECIPIENT, 32);
        memcpy(s->box, in + KS_OFF_BOX, KS_BOX_BYTES);
        return 0;
    }
    s->kdf = vd_get_le32(in + KS_OFF_KDF);
    s->opslimit = vd_get_le64(in + KS_OFF_OPSLIMIT);
    s->memlimit = vd_get_le64(in + KS_OFF_MEMLIMIT);
    memcpy(s->salt, in + KS_OFF_SALT, KS_SALT_BYTES);
    memcpy(s->nonce, in + KS_OFF_NONCE, KS_NONCE_BYTES);
    memcpy(s->wrapped, in + KS_OFF_WRAPPED, 32);
    memcpy(s->tag, in + KS_OFF_TAG, 16);
    if (vd_get_le32(in + KS_OFF_RESERVED) != 0)
        return -2;
    if (s->type == KS_TYPE_PASSPHRASE)
        return s->kdf == KS_KDF_ARGON2ID13 && s->opslimit >= KS_OPSLIMIT_MIN &&
                       s->opslimit <= KS_OPSLIMIT_MAX &&
                       s->memlimit >= KS_MEMLIMIT_MIN &&
                       s->memlimit <= KS_MEMLIMIT_MAX &&
                       s->opslimit * s->memlimit <= KS_COST_MAX
                   ? 0
                   : -2;
    return s->kdf == KS_KDF_BLAKE2B && s->opslimit == 0 && s->memlimit == 0 ? 0 : -2;
}
