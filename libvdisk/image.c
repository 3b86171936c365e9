/* Image lifecycle: create, open (validate container, header, superblocks,
 * journal, anchor), read/write through the cache, close, info. */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "image_fs.h"
#include "image_internal.h"

#define VD_DEFAULT_CACHE (16u << 20)
#define VD_MIN_CACHE_ENTRIES 256u

static vd_err lock(vd_image *img)
{
    return pthread_mutex_lock(&img->lock) == 0 ? VD_OK : VD_ERR_BUSY;
}

static void unlock(vd_image *img)
{
    (void)pthread_mutex_unlock(&img->lock);
}

static int host_ok(const vd_host *h, int writable)
{
    return h && h->read_at && h->size &&
           (!writable || (h->write_at && h->flush));
}

static uint32_t auto_journal_blocks(uint64_t nblocks)
{
    uint64_t j = nblocks / 64;
    return (uint32_t)(j < 8 ? 8 : j > 256 ? 256 : j);
}

/* ---- container and header ------------------------------------------------ */

static vd_err read_container(const vd_host *host, vd_header *hdr,
                             uint8_t hblk[VDF_BLOCK], uint64_t *file_bytes)
{
    uint64_t size;
    uint8_t foot[VHD_FOOTER_BYTES];
    vhd_footer f;
    vd_err e = vd_host_size(host, &size);
    if (e != VD_OK)
        return e;
    if (size < 4ull * VDF_BLOCK + VHD_FOOTER_BYTES)
        return VD_ERR_CORRUPT; /* too small to be an image */
    e = vd_host_read(host, size - VHD_FOOTER_BYTES, foot, sizeof foot);
    if (e != VD_OK)
        return e;
    int foot_ok = vhd_footer_decode(&f, foot) == 0 && f.current_size == size - VHD_FOOTER_BYTES;
    if (!foot_ok && vd_host_read(host, 0, hblk, VDF_BLOCK) == VD_OK &&
        vd_header_decode(hdr, hblk) == 0 && hdr->alt_nblocks) {
        /* A resize extended the file and stopped before its new footer
         * (docs/FORMAT.md §4): the footer that ends the other geometry is
         * still in place, and that geometry's records are what open. */
        uint64_t ends[2] = {hdr->total_blocks, 0};
        vd_header alt;
        if (vd_header_swap_geometry(hdr, &alt) == 0)
            ends[1] = alt.total_blocks;
        for (int i = 0; i < 2 && !foot_ok; i++) {
            uint64_t at = ends[i] * VDF_BLOCK;
            if (at == 0 || at > size - VHD_FOOTER_BYTES)
                continue;
            e = vd_host_read(host, at, foot, sizeof foot);
            if (e != VD_OK)
                return e;
            foot_ok = vhd_footer_decode(&f, foot) == 0 && f.current_size == at;
        }
    }
    if (!foot_ok)
        return VD_ERR_CORRUPT; /* not a fixed VHD, or truncated/extended */
    e = vd_host_read(host, 0, hblk, VDF_BLOCK);
    if (e != VD_OK)
        return e;
    switch (vd_header_decode(hdr, hblk)) {
    case 0:
        break;
    case -3:
        return VD_ERR_UNSUPPORTED;
    default:
        return VD_ERR_CORRUPT;
    }
    /* The footer ends one of the header's geometries (two during a resize;
     * the records decide which is in force, image_load). */
    vd_header alt;
    if (hdr->total_blocks * VDF_BLOCK != f.current_size &&
        !(vd_header_swap_geometry(hdr, &alt) == 0 &&
          alt.total_blocks * VDF_BLOCK <= size - VHD_FOOTER_BYTES &&
          (alt.total_blocks * VDF_BLOCK == f.current_size ||
           hdr->total_blocks * VDF_BLOCK <= f.current_size)))
        return VD_ERR_CORRUPT;
    *file_bytes = size;
    return VD_OK;
}

/* BLAKE2b-256 of the header as superblocks name it: its geometry in force,
 * encoded without the second one (format.c). */
vd_err vd_header_digest(const vd_header *h, uint8_t out[32])
{
    vd_header c = *h;
    c.alt_nblocks = 0;
    c.alt_node_start = 0;
    uint8_t blk[VDF_BLOCK];
    vd_header_encode(&c, blk);
    if (vdc_hash_buf(out, blk, VDF_BLOCK) != 0)
        return VD_ERR_NOMEM;
    return VD_OK;
}

static void info_from_header(const vd_header *h, uint64_t file_bytes,
                             vd_image_info *info)
{
    memset(info, 0, sizeof *info);
    memcpy(info->image_id, h->image_id, 16);
    info->format_version = h->format_version;
    info->cipher = (vd_cipher)h->cipher;
    info->nblocks = h->nblocks;
    info->total_blocks = h->total_blocks;
    info->file_bytes = file_bytes;
    info->fanout = h->fanout;
    info->height = h->height;
    info->node_blocks = h->node_blocks;
    info->journal_blocks = h->journal_blocks;
    info->log_blocks = h->log_blocks;
    info->data_start = h->data_start;
}

vd_err vd_keyblock_read(const vd_host *host, vd_header *hdr,
                        uint8_t blk[VDF_BLOCK])
{
    if (!host_ok(host, 0) || !hdr || !blk)
        return VD_ERR_INVAL;
    uint64_t bytes;
    vd_err e = read_container(host, hdr, blk, &bytes);
    if (e == VD_OK)
        e = vd_host_read(host, hdr->keyslot_start * VDF_BLOCK, blk, VDF_BLOCK);
    return e;
}

vd_err vd_image_probe(const vd_host *host, vd_image_info *info)
{
    if (!host_ok(host, 0) || !info)
        return VD_ERR_INVAL;
    vd_header hdr;
    uint8_t hblk[VDF_BLOCK];
    uint64_t bytes;
    vd_err e = read_container(host, &hdr, hblk, &bytes);
    if (e == VD_OK)
        info_from_header(&hdr, bytes, info);
    return e;
}

/* ---- AEAD implementation choice ------------------------------------------ */

static double time_alg(vd_image *img, vdc_aead_alg alg)
{
    uint8_t key[VDC_KEY_BYTES] = {1}, nonce[VDC_NONCE_BYTES] = {0}, tag[16];
    vdc_aead *a = vdc_aead_new(alg, key);
    if (!a)
        return 1e300;
    int64_t t0 = vd_host_now(&img->host);
    for (int i = 0; i < 32; i++) {
        nonce[0] = (uint8_t)i;
        if (vdc_aead_seal(a, nonce, NULL, 0, img->runbuf, VDF_BLOCK,
                          img->runbuf + VDF_BLOCK, tag) != 0) {
            vdc_aead_free(a);
            return 1e300;
        }
    }
    int64_t t1 = vd_host_now(&img->host);
    vdc_aead_free(a);
    /* The host's clock is untrusted and may jump anywhere: subtract as
     * doubles (no signed overflow). A lying clock only picks the slower of
     * two implementations of the same format. */
    return (double)t1 - (double)t0;
}

static vd_err choose_alg(vd_image *img, vd_aead_impl impl)
{
    if (img->hdr.cipher == VD_CIPHER_XCHACHA20POLY1305) {
        img->alg = VDC_XCHACHA20POLY1305;
        return VD_OK;
    }
    int sodium = vdc_aead_available(VDC_AES256GCM_SODIUM);
    switch (impl) {
    case VD_AEAD_OPENSSL:
        img->alg = VDC_AES256GCM_OPENSSL;
        return VD_OK;
    case VD_AEAD_SODIUM:
        if (!sodium)
            return VD_ERR_UNSUPPORTED;
        img->alg = VDC_AES256GCM_SODIUM;
        return VD_OK;
    case VD_AEAD_AUTO:
        break;
    default:
        return VD_ERR_INVAL;
    }
    img->alg = VDC_AES256GCM_OPENSSL;
    if (sodium && img->host.now) {
        /* Same format either way; a lying clock only picks the slower one. */
        double o = 1e300, s = 1e300;
        for (int rep = 0; rep < 4; rep++) { /* interleaved; keep the best */
            double t = time_alg(img, VDC_AES256GCM_OPENSSL);
            o = t < o ? t : o;
            t = time_alg(img, VDC_AES256GCM_SODIUM);
            s = t < s ? t : s;
        }
        if (s < o)
            img->alg = VDC_AES256GCM_SODIUM;
    }
    return VD_OK;
}

/* ---- superblocks and journal ---------------------------------------------- */

/* Which key verifies a record: normally the handle's (the standard MAC).
 * The new key of a rotation (old_master set) verifies a rekey record of
 * phase BEGIN through the extension's second MAC, and any other record
 * through the standard one (FORMAT.md §6, "Key rotation"). */
static vd_err super_check(vd_image *img, const uint8_t *blk)
{
    int begin = (vd_get_le32(blk + SB_OFF_FLAGS) & SB_FLAG_REKEY) &&
                vd_get_le32(blk + SB_RK_OFF_PHASE) == SB_RK_BEGIN;
    return vd_super_verify_with(img->sb_key, img->hdr.image_id, blk,
                                img->old_master && begin);
}

/* Check the two records rekey_detect read (blk0, blk1). */
static vd_err read_supers(vd_image *img, uint8_t *blk0, uint8_t *blk1,
                          vd_super s[2], int alt[2])
{
    uint8_t *blk[2] = {blk0, blk1};
    for (uint32_t i = 0; i < 2; i++) {
        vd_err e;
        /* Both slots always hold an authentic record (block writes are
         * atomic), so any failure here is tampering, not a crash. */
        e = super_check(img, blk[i]);
        /* A rekey record this key cannot verify: a rotation to another
         * key has passed this one by (SECURITY.md R8). */
        if (e == VD_ERR_AUTH && !img->old_master &&
            (vd_get_le32(blk[i] + SB_OFF_FLAGS) & SB_FLAG_REKEY))
            return VD_ERR_WRONG_KEY;
        if (e != VD_OK)
            return e;
        if (vd_super_decode(&s[i], blk[i]) != 0 || s[i].slot != i ||
            s[i].epoch % 2 != i || s[i].version > img->hdr.format_version)
            return VD_ERR_CORRUPT;
        /* A record written before a format-2 image was converted names the
         * header as it was then: the same header with version 2. One
         * written under the header's second geometry (a resize) names that
         * (alt[i]). A rekey record names the header with the old key's
         * check value. */
        const uint8_t *want = (s[i].flags & SB_FLAG_REKEY) && img->old_master
                                  ? img->rk.dig_old
                              : s[i].version == img->hdr.format_version
                                  ? img->header_digest
                              : s[i].version >= VDF_FORMAT_OLDEST
                                  ? img->legacy_digest[s[i].version - VDF_FORMAT_OLDEST]
                                  : NULL;
        if (!want)
            return VD_ERR_CORRUPT;
        alt[i] = 0;
        if (vdc_memcmp(s[i].header_digest, want, 32) != 0) {
            if (!img->have_alt || s[i].version != img->hdr.format_version ||
                vdc_memcmp(s[i].header_digest, img->alt_digest, 32) != 0)
                return VD_ERR_AUTH; /* the header was changed */
            alt[i] = 1;
        }
    }
    return VD_OK; /* parity = slot, so the two epochs differ */
}

/* The newest record was written under the header's second geometry: put
 * that one in force (the first becomes the second). */
static vd_err swap_geometry(vd_image *img)
{
    vd_header in_force;
    if (vd_header_swap_geometry(&img->hdr, &in_force) != 0)
        return VD_ERR_CORRUPT;
    in_force.alt_nblocks = img->hdr.nblocks;
    in_force.alt_node_start = img->hdr.node_start;
    if (in_force.total_blocks * VDF_BLOCK > img->file_bytes - VHD_FOOTER_BYTES ||
        mt_geometry_init(&img->geo, in_force.nblocks, in_force.fanout) != 0)
        return VD_ERR_CORRUPT;
    img->hdr = in_force;
    uint8_t d[32];
    memcpy(d, img->header_digest, 32);
    memcpy(img->header_digest, img->alt_digest, 32);
    memcpy(img->alt_digest, d, 32);
    return VD_OK;
}

/* Is key the new key of a rotation in progress? Some slot holds a rekey
 * record that key vouches for (RUNNING: its standard MAC; BEGIN: the
 * extension's MAC); its link then yields the old key, whose check value
 * the header carries until the rotation's end (or key's own, after it).
 * Otherwise, for a key that fails the header's check value: VD_ERR_AUTH if
 * it verifies a record that is no rekey record (the key is right and the
 * header was edited), else VD_ERR_WRONG_KEY. */
static vd_err rekey_detect(vd_image *img, int key_ok, uint8_t *b0, uint8_t *b1)
{
    /* Both records are read here, once: read_supers checks these bytes. */
    uint8_t *blk[2] = {b0, b1};
    vd_err e = VD_OK;
    for (uint32_t i = 0; e == VD_OK && i < 2; i++)
        e = vd_io_read(img, (img->hdr.sb_start + i) * VDF_BLOCK, blk[i], VDF_BLOCK);
    if (e != VD_OK)
        return e;
    for (uint32_t i = 0; i < 2 && !img->old_master; i++) {
        const uint8_t *b = blk[i];
        if (!(vd_get_le32(b + SB_OFF_FLAGS) & SB_FLAG_REKEY))
            continue;
        uint32_t phase = vd_get_le32(b + SB_RK_OFF_PHASE);
        int mine = (phase == SB_RK_RUNNING &&
                    vd_super_verify_with(img->sb_key, img->hdr.image_id, b, 0) == VD_OK) ||
                   (phase == SB_RK_BEGIN &&
                    vd_super_verify_with(img->sb_key, img->hdr.image_id, b, 1) == VD_OK);
        if (!mine)
            continue;
        uint8_t *old = vdc_secure_alloc(VD_KEY_BYTES);
        if (!old)
            return VD_ERR_NOMEM;
        e = vd_rekey_link_open(img->master, img->hdr.image_id, b + SB_RK_OFF_NONCE,
                               b + SB_RK_OFF_LINK, b + SB_RK_OFF_LINK_TAG, old);
        uint8_t kc[32];
        if (e == VD_OK)
            e = vd_keycheck_compute(img->key_scratch, old, img->hdr.image_id, kc);
        if (e == VD_OK && !key_ok && vdc_memcmp(kc, img->hdr.keycheck, 32) != 0)
            e = VD_ERR_AUTH; /* the header is neither key's */
        if (e == VD_OK) {
            /* What rekey records name: the header with the old key's check. */
            vd_header h = img->hdr;
            memcpy(h.keycheck, kc, 32);
            e = vd_header_digest(&h, img->rk.dig_old);
        }
        if (e != VD_OK) {
            vdc_secure_free(old);
            return e;
        }
        img->old_master = old;
    }
    if (img->old_master || key_ok)
        return VD_OK;
    /* The key check sits in the unauthenticated header. If this key does
     * verify a superblock, the key is right and the header was edited:
     * report tampering, not a wrong key. The old key of a finished (or
     * finishing) rotation still verifies its BEGIN records: a wrong key. */
    if (vd_super_verify(img, b0) == VD_OK &&
        !(vd_get_le32(b0 + SB_OFF_FLAGS) & SB_FLAG_REKEY))
        return VD_ERR_AUTH;
    return VD_ERR_WRONG_KEY;
}

/* A one-flush record's digest (vd_ofd): its entry blocks (eblk, eb of
 * them), then each entry's block in entry order, a redo copy from its
 * journal area (after the entry blocks), any other block (format 5: one
 * the tree had never written) from its place. */
static vd_err oneflush_check(vd_image *img, const vd_super *s, const vd_jentry *ent,
                             const uint8_t *eblk, uint64_t eb)
{
    enum { RUN = 64 };
    uint8_t *buf = malloc((size_t)RUN * VDF_BLOCK);
    vd_ofd d;
    int bad = vd_ofd_init(&d) != 0;
    if (!buf || bad) {
        free(buf);
        vd_ofd_free(&d);
        return VD_ERR_NOMEM;
    }
    vd_ofd_update(&d, eblk, (size_t)eb * VDF_BLOCK);
    uint64_t copy = vd_journal_area(img, s->epoch) + eb;
    vd_err e = VD_OK;
    for (uint32_t k = 0; e == VD_OK && k < s->jcount;) {
        /* A run of copies (consecutive in the journal) or of blocks in
         * place (consecutive on disk), at most RUN blocks. */
        uint32_t end = k + 1;
        while (end < s->jcount && end - k < RUN && ent[end].redo == ent[k].redo &&
               (ent[k].redo || ent[end].phys == ent[end - 1].phys + 1))
            end++;
        uint64_t at = ent[k].redo ? copy : ent[k].phys;
        e = vd_io_read(img, at * VDF_BLOCK, buf, (size_t)(end - k) * VDF_BLOCK);
        if (e == VD_OK)
            vd_ofd_update(&d, buf, (size_t)(end - k) * VDF_BLOCK);
        if (ent[k].redo)
            copy += end - k;
        k = end;
    }
    /* A log commit's digest ends with the log block it wrote. */
    if (e == VD_OK && (s->flags & SB_FLAG_LOG)) {
        if (s->log_len > img->hdr.log_blocks)
            e = VD_ERR_CORRUPT;
        else
            e = vd_io_read(img, (vd_header_log_start(&img->hdr) + s->log_len - 1) * VDF_BLOCK,
                           buf, VDF_BLOCK);
        if (e == VD_OK)
            vd_ofd_update(&d, buf, VDF_BLOCK);
    }
    free(buf);
    uint8_t got[32];
    vd_ofd_final(&d, got);
    if (e == VD_OK && vdc_memcmp(got, s->jdigest, 32) != 0)
        e = VD_ERR_AUTH;
    return e;
}

/* The journal entries a superblock names (inline, or in its journal slot
 * under the digest it carries), into *out (jcount of them). A one-flush
 * record's digest covers its blocks too: VD_ERR_AUTH when they are not
 * what it was written with. */
static vd_err read_entries(vd_image *img, const vd_super *s, const uint8_t *sblk,
                           vd_jentry **out)
{
    const int one = (s->flags & SB_FLAG_ONEFLUSH) != 0;
    if (s->jcount == 0 || s->jcount > (uint64_t)img->hdr.journal_blocks * JE_PER_BLOCK ||
        (one && (s->version < 4 || s->state != SB_STATE_COMMITTED)))
        return VD_ERR_CORRUPT;
    uint64_t eb = s->jinline ? 0 : vd_journal_entry_blocks(s->jcount);
    if (eb > img->hdr.journal_blocks)
        return VD_ERR_CORRUPT;
    vd_jentry *ent = calloc(s->jcount, sizeof *ent);
    if (!ent)
        return VD_ERR_NOMEM;
    *out = ent;
    uint8_t *buf = NULL;
    const uint8_t *src = sblk + SB_OFF_INLINE;
    if (eb) {
        uint64_t start = vd_journal_area(img, s->epoch);
        buf = malloc((size_t)eb * VDF_BLOCK);
        if (!buf)
            return VD_ERR_NOMEM;
        vd_err e = vd_io_read(img, start * VDF_BLOCK, buf, (size_t)eb * VDF_BLOCK);
        uint8_t d[32];
        /* A one-flush record's digest is checked below, with its blocks. */
        if (e == VD_OK && !one && vdc_hash_buf(d, buf, (size_t)eb * VDF_BLOCK) != 0)
            e = VD_ERR_NOMEM;
        if (e == VD_OK && !one && vdc_memcmp(d, s->jdigest, 32) != 0)
            e = VD_ERR_AUTH;
        if (e != VD_OK) {
            free(buf);
            return e;
        }
        src = buf;
    }
    for (uint32_t k = 0; k < s->jcount; k++) {
        const uint8_t *p = s->jinline
                               ? src + (size_t)k * JE_BYTES
                               : src + (size_t)(k / JE_PER_BLOCK) * VDF_BLOCK +
                                     (size_t)(k % JE_PER_BLOCK) * JE_BYTES;
        vd_jentry_decode(&ent[k], p);
    }
    /* Written sorted and unique; anything else is not our journal. Only
     * data blocks have redo contents, from format 3 on; in a one-flush
     * record (format 4) every block has them, nodes too, but (format 5)
     * those the tree had never written, which went in place. A one-flush
     * record's entry blocks are checked by its digest, which needs them
     * decoded: entries that are not ours there mean a torn journal, the
     * same as a digest that does not match. */
    const vd_err bad = one && eb ? VD_ERR_AUTH : VD_ERR_CORRUPT;
    vd_err e = VD_OK;
    uint64_t ncopy = 0;
    for (uint32_t k = 0; e == VD_OK && k < s->jcount; k++) {
        uint64_t ph = ent[k].phys;
        const vd_header *h = &img->hdr;
        int in_nodes = ph >= h->node_start && ph - h->node_start < h->node_blocks;
        int in_data = ph >= h->data_start && ph - h->data_start < h->nblocks;
        int in_place = one && !ent[k].redo;
        if (!(in_nodes || in_data) || (k > 0 && ph <= ent[k - 1].phys) ||
            (in_place && (s->version < 5 || !mt_version_is_none(&ent[k].before))) ||
            (ent[k].redo && !one && (ph < img->hdr.data_start || s->version < 3)))
            e = bad;
        ncopy += ent[k].redo != 0;
    }
    if (e == VD_OK && one && eb + ncopy > img->hdr.journal_blocks)
        e = bad;
    if (e == VD_OK && one)
        e = oneflush_check(img, s, ent, buf, eb);
    free(buf);
    return e;
}

/* A one-flush record (SB_FLAG_ONEFLUSH) reached the disk in the same
 * flush as its journal: if its journal is not what it was written with,
 * the crash came before that flush, the round never completed and nothing
 * waited on it, so the record before it is in force: the other slot's
 * COMMITTED record of its base_epoch (made durable before the round's
 * writes, under the same geometry). Anything else is tampering. A
 * commit acknowledged to anyone was flushed with its journal: a host that
 * damages that journal rolls the image back by one commit, which the
 * freshness anchor then reports (R4, docs/SECURITY.md). */
static vd_err oneflush_settle(vd_image *img, const vd_super s[2], const uint8_t *nblk,
                              const int alt[2], int *ni, vd_jentry **kept)
{
    vd_jentry *ent = NULL;
    vd_err e = read_entries(img, &s[*ni], nblk, &ent);
    if (e == VD_OK) { /* in force, its digest checked: for load_redo */
        *kept = ent;
        return VD_OK;
    }
    free(ent);
    const vd_super *ot = &s[1 - *ni];
    if (e == VD_ERR_AUTH && ot->state == SB_STATE_COMMITTED &&
        ot->epoch == s[*ni].base_epoch && alt[0] == alt[1]) {
        *ni = 1 - *ni;
        img->recovered = 1;
        return VD_OK;
    }
    return e;
}

static vd_err load_journal(vd_image *img, const vd_super *s, const uint8_t *sblk)
{
    vd_err e = read_entries(img, s, sblk, &img->recov);
    if (e == VD_OK)
        img->nrecov = s->jcount;
    return e;
}

/* The blocks of the commit record s whose sealed contents lie after the
 * entry blocks in its journal slot (format 3: its metadata blocks; a
 * one-flush record: all its blocks), sorted by phys into img->redo.
 *
 * base: s is the record before a one-flush record, whose blocks went in
 * place unflushed before that record was written (sync.c): a crash may
 * have lost some of them, and the newer record does not name them. They
 * join the list where the newer record has no copy of its own. Once the
 * newer record's flush has made them durable, the round after it may
 * overwrite this journal: a journal that no longer matches is then
 * skipped. Skipping it is never unsafe: a copy only says where to read a
 * block from, and every block read is checked against the tree of the
 * newest record; a block it leaves stale fails that check.
 *
 * ent: s's entries as oneflush_settle read and checked them (this takes
 * them over), or NULL: read here. A one-flush round's digest covers its
 * fresh blocks in place, so reading it twice would read them twice. */
static vd_err load_redo(vd_image *img, const vd_super *s, const uint8_t *sblk, int base,
                        vd_jentry *ent)
{
    vd_err e = ent ? VD_OK : read_entries(img, s, sblk, &ent);
    if (base && e == VD_ERR_AUTH) {
        free(ent);
        return VD_OK;
    }
    uint32_t n = 0;
    for (uint32_t k = 0; e == VD_OK && k < s->jcount; k++)
        n += ent[k].redo != 0;
    uint64_t eb = s->jinline ? 0 : vd_journal_entry_blocks(s->jcount);
    if (e == VD_OK && eb + n > img->hdr.journal_blocks)
        e = VD_ERR_CORRUPT;
    vd_redo *list = NULL;
    if (e == VD_OK && (n || img->nredo)) {
        list = calloc((size_t)n + img->nredo, sizeof *list);
        if (!list)
            e = VD_ERR_NOMEM;
    }
    /* Merge by phys with what is loaded already (newer: it wins). */
    uint64_t src = vd_journal_area(img, s->slot) + eb;
    uint32_t m = 0, old = 0;
    for (uint32_t k = 0; e == VD_OK && k < s->jcount; k++) {
        if (!ent[k].redo)
            continue;
        while (old < img->nredo && img->redo[old].phys < ent[k].phys)
            list[m++] = img->redo[old++];
        if (old < img->nredo && img->redo[old].phys == ent[k].phys) {
            list[m++] = img->redo[old++];
        } else {
            list[m].phys = ent[k].phys;
            list[m].version = ent[k].after;
            list[m].src = src;
            m++;
        }
        src++;
    }
    while (e == VD_OK && old < img->nredo)
        list[m++] = img->redo[old++];
    if (e == VD_OK) {
        free(img->redo);
        img->redo = list;
        img->nredo = m;
        if (!base)
            img->redo_slot = s->slot;
    } else {
        free(list);
    }
    free(ent);
    return e;
}

uint64_t vd_redo_source(const vd_image *img, uint64_t phys)
{
    uint32_t lo = 0, hi = img->nredo;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (img->redo[mid].phys < phys)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < img->nredo && img->redo[lo].phys == phys ? img->redo[lo].src : phys;
}

/* A writable open over a commit whose metadata may not be in place: copy
 * each block's sealed contents from the journal to its place (idempotent),
 * checked first against the version the commit record names, so a
 * journal the host changed is caught (R2), then flush. */
static vd_err redo_replay(vd_image *img)
{
    /* When the list merges a one-flush record's copies with its base's
     * (load_redo), the base's go first, then a flush. The record's own
     * copies may overwrite blocks the base wrote fresh, which the base's
     * digest covers in place: from then on a crash makes the next open
     * skip the base's journal (load_redo, base), so whatever the base's
     * copies must put in place has to be durable before. (Found by the
     * file-system crash harness: a crash in this window left a metadata
     * block of the base stale, and the volume failed to mount.) */
    const uint64_t own = vd_journal_area(img, img->redo_slot);
    vd_err e = VD_OK;
    for (int pass = 0; pass < 2 && e == VD_OK; pass++) {
        int any = 0;
        for (uint32_t k = 0; e == VD_OK && k < img->nredo; k++) {
            const vd_redo *r = &img->redo[k];
            int mine = r->src >= own && r->src < own + img->hdr.journal_blocks;
            if (mine != pass)
                continue;
            any = 1;
            e = vd_io_read(img, r->src * VDF_BLOCK, img->runbuf, VDF_BLOCK);
            if (e == VD_OK)
                e = vd_block_open(img, r->phys, img->runbuf, &r->version,
                                  img->runbuf + VDF_BLOCK);
            if (e == VD_OK)
                e = vd_io_write(img, r->phys * VDF_BLOCK, img->runbuf, VDF_BLOCK);
        }
        if (e == VD_OK && pass == 0 && any)
            e = vd_io_flush(img);
    }
    vdc_memzero(img->runbuf + VDF_BLOCK, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    /* The metadata is in place now: the commit record stops naming its
     * journal, so a recovery round may reuse that journal area (it would
     * otherwise be the area of epoch + 2) without leaving a record that
     * names overwritten entries. */
    uint8_t *blk = img->scratch;
    uint64_t at = (img->hdr.sb_start + img->redo_slot) * VDF_BLOCK;
    vd_super rs;
    if (e == VD_OK)
        e = vd_io_read(img, at, blk, VDF_BLOCK);
    if (e == VD_OK && (vd_super_verify(img, blk) != VD_OK || vd_super_decode(&rs, blk) != 0))
        e = VD_ERR_AUTH; /* verified at open; changed since */
    if (e == VD_OK) {
        vd_super_drop_journal(&rs);
        vd_super_encode(&rs, blk);
        e = vd_super_seal(img, blk);
    }
    if (e == VD_OK)
        e = vd_io_write(img, at, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e == VD_OK && img->sb_last && rs.epoch == img->epoch)
        memcpy(img->sb_last, blk, VDF_BLOCK);
    if (e == VD_OK)
        img->slot_redo[img->redo_slot] = 0;
    if (e == VD_OK) {
        free(img->redo);
        img->redo = NULL;
        img->nredo = 0;
    }
    return e;
}

/* A writable open of a format-2 image makes it format 3: the header is
 * rewritten with the new version and flushed before any record of the new
 * format is written. Records written before name the old header, which
 * read_supers accepts through legacy_digest, so a crash at any point
 * leaves an image that opens. */
static vd_err convert_format(vd_image *img)
{
    uint8_t *blk = img->scratch;
    vd_header h = img->hdr;
    h.format_version = VDF_FORMAT_VERSION;
    vd_header_encode(&h, blk);
    uint8_t d[32];
    if (vdc_hash_buf(d, blk, VDF_BLOCK) != 0)
        return VD_ERR_NOMEM;
    vd_err e = vd_io_write(img, 0, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK)
        return e;
    memcpy(img->legacy_digest[img->hdr.format_version - VDF_FORMAT_OLDEST],
           img->header_digest, 32);
    memcpy(img->header_digest, d, 32);
    img->hdr.format_version = VDF_FORMAT_VERSION;
    return VD_OK;
}

/* The rotation the newest record describes (nw), if any. A BEGIN record
 * carries the anchor tag under the old key: the new key's handle carries
 * its own from now on. Only vd_image_rekey writes over a rotation. */
static vd_err rekey_state(vd_image *img, const vd_super *nw)
{
    img->rk.active = (nw->flags & SB_FLAG_REKEY) != 0;
    if (!img->rk.active) {
        /* Finished: every block is under this key. */
        vdc_secure_free(img->old_master);
        img->old_master = NULL;
        return VD_OK;
    }
    img->rk.phase = nw->rk_phase;
    img->rk.cursor = nw->rk_cursor;
    memcpy(img->rk.nonce, nw->rk_nonce, sizeof img->rk.nonce);
    memcpy(img->rk.link, nw->rk_link, sizeof img->rk.link);
    memcpy(img->rk.tag, nw->rk_link_tag, sizeof img->rk.tag);
    img->rk.old_holder = img->old_master == NULL;
    if (!img->read_only && !img->rk.writer)
        return VD_ERR_REKEY;
    if (img->old_master && nw->rk_phase == SB_RK_BEGIN) {
        uint8_t t[SB_ANCHOR_TAG_BYTES];
        vd_err e = vd_anchor_tag_of(img, img->old_master, t);
        if (e != VD_OK)
            return e;
        static const uint8_t zero[SB_ANCHOR_TAG_BYTES];
        if (memcmp(t, zero, sizeof t) != 0 && memcmp(t, img->anchor_tag, sizeof t) == 0)
            memcpy(img->anchor_tag, img->anchor_cur, sizeof t);
    }
    return VD_OK;
}

void vd_rekey_fill(const vd_image *img, vd_super *s, uint64_t upto)
{
    if (!img->rk.active || img->rk.old_holder)
        return;
    s->flags |= SB_FLAG_REKEY;
    s->rk_phase = SB_RK_RUNNING;
    s->rk_cursor = upto > img->rk.cursor ? upto : img->rk.cursor;
    memcpy(s->rk_nonce, img->rk.nonce, sizeof s->rk_nonce);
    memcpy(s->rk_link, img->rk.link, sizeof s->rk_link);
    memcpy(s->rk_link_tag, img->rk.tag, sizeof s->rk_link_tag);
    memcpy(s->header_digest, img->rk.dig_old, sizeof s->header_digest);
}

/* ---- the leaf-version log (format 6, docs/FORMAT.md §7b) ---------------- */

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return *x < *y ? -1 : *x > *y;
}

/* The blocks of the log the record in force names, each framed and
 * chained, the chain ending at the record's head (else the host changed
 * them: VD_ERR_AUTH), into img->logbuf; *nodes: the level-1 nodes its
 * entries fall under. */
static vd_err log_read(vd_image *img, uint32_t *nodes)
{
    if (img->log_len > img->hdr.log_blocks || img->geo.height == 0)
        return VD_ERR_CORRUPT;
    size_t bytes = (size_t)img->log_len * VDF_BLOCK;
    img->logbuf = malloc(bytes);
    uint64_t *parent = malloc((size_t)img->log_len * LB_MAX * sizeof *parent);
    vd_err e = img->logbuf && parent ? VD_OK : VD_ERR_NOMEM;
    if (e == VD_OK)
        e = vd_io_read(img, vd_header_log_start(&img->hdr) * VDF_BLOCK, img->logbuf, bytes);
    uint8_t h[32] = {0};
    size_t np = 0;
    for (uint32_t i = 0; e == VD_OK && i < img->log_len; i++) {
        const uint8_t *b = img->logbuf + (size_t)i * VDF_BLOCK;
        uint32_t n;
        if (vd_logblk_check(b, i, &n) != 0)
            e = VD_ERR_AUTH;
        else if (vd_logblk_chain(h, b, n, h) != 0)
            e = VD_ERR_NOMEM;
        for (uint32_t k = 0; e == VD_OK && k < n; k++) {
            uint64_t lbn = vd_get_le64(b + LB_OFF_ENTRIES + (size_t)k * LB_ENTRY_BYTES);
            parent[np++] = mt_parent_idx(&img->geo, lbn);
        }
    }
    if (e == VD_OK && vdc_memcmp(h, img->log_head, 32) != 0)
        e = VD_ERR_AUTH;
    if (e == VD_OK) {
        qsort(parent, np, sizeof *parent, cmp_u64);
        uint32_t d = 0;
        for (size_t k = 0; k < np; k++)
            d += k == 0 || parent[k] != parent[k - 1];
        *nodes = d;
    }
    free(parent);
    return e;
}

/* Every version the log gives into its level-1 node, held (spill.c);
 * later entries over earlier ones. */
static vd_err log_apply(vd_image *img)
{
    vd_err e = VD_OK;
    for (uint32_t i = 0; e == VD_OK && i < img->log_len; i++) {
        const uint8_t *b = img->logbuf + (size_t)i * VDF_BLOCK;
        uint32_t n = vd_get_le32(b + LB_OFF_COUNT);
        for (uint32_t k = 0; e == VD_OK && k < n; k++) {
            const uint8_t *ent = b + LB_OFF_ENTRIES + (size_t)k * LB_ENTRY_BYTES;
            uint64_t lbn = vd_get_le64(ent);
            if (lbn >= img->geo.nblocks) {
                e = VD_ERR_CORRUPT; /* a record's own log: written so */
                break;
            }
            mt_version v;
            mt_version_decode(&v, ent + 8);
            uint32_t t;
            e = vd_get_block(img, 1, mt_parent_idx(&img->geo, lbn), &t);
            if (e == VD_OK) {
                mt_node_set(img->cache.e[t].buf, mt_parent_slot(&img->geo, lbn), &v);
                vd_log_hold(img, t);
            }
        }
    }
    free(img->logbuf);
    img->logbuf = NULL;
    return e;
}

/* How many level-1 nodes the log may hold: as many as one round of them
 * and their ancestors, every block through the journal, can take (the
 * drain, sync.c), and no more than spilled data may. */
static uint32_t log_cap_of(const vd_image *img)
{
    const mt_geometry *g = &img->geo;
    if (img->hdr.log_blocks == 0 || g->height == 0)
        return 0;
    uint64_t cap = img->spill_cap;
    for (;; cap--) {
        uint64_t nj = cap + 1; /* its nodes, and the root */
        for (uint32_t l = 2; l < g->height; l++)
            nj += cap < g->count[l] ? cap : g->count[l];
        if (cap == 0 || vd_journal_need(nj, nj) <= img->hdr.journal_blocks)
            return (uint32_t)cap;
    }
}

static vd_err image_load(vd_image *img, const uint8_t key[VD_KEY_BYTES],
                         const vd_open_opts *opts)
{
    uint8_t *hblk = malloc(3 * VDF_BLOCK);
    if (!hblk)
        return VD_ERR_NOMEM;
    uint8_t *sblk0 = hblk + VDF_BLOCK, *sblk1 = hblk + 2 * VDF_BLOCK;
    vd_super s[2];
    uint8_t kc[32];
    vd_err e = read_container(&img->host, &img->hdr, hblk, &img->file_bytes);
    if (e == VD_OK && mt_geometry_init(&img->geo, img->hdr.nblocks, img->hdr.fanout) != 0)
        e = VD_ERR_CORRUPT;
    if (e == VD_OK)
        e = vd_keys_derive(img, key);
    if (e == VD_OK)
        e = vd_keycheck_compute(img->key_scratch, key, img->hdr.image_id, kc);
    int key_ok = e == VD_OK && vdc_memcmp(kc, img->hdr.keycheck, 32) == 0;
    vdc_memzero(kc, sizeof kc);
    if (e == VD_OK) {
        img->scratch = aligned_alloc(VDF_BLOCK, VDF_BLOCK);
        e = img->scratch ? rekey_detect(img, key_ok, sblk0, sblk1) : VD_ERR_NOMEM;
    }
    if (e == VD_OK)
        e = vd_anchor_attach(img);
    if (e == VD_OK)
        e = vd_header_digest(&img->hdr, img->header_digest);
    if (e == VD_OK && img->hdr.alt_nblocks) {
        vd_header alt;
        img->have_alt = vd_header_swap_geometry(&img->hdr, &alt) == 0;
        if (img->have_alt)
            e = vd_header_digest(&alt, img->alt_digest);
    }
    /* What the header was before each conversion it may have had. */
    for (uint32_t v = VDF_FORMAT_OLDEST; e == VD_OK && v < img->hdr.format_version; v++) {
        vd_header old = img->hdr;
        old.format_version = v;
        e = vd_header_digest(&old, img->legacy_digest[v - VDF_FORMAT_OLDEST]);
    }
    int alt[2] = {0, 0};
    if (e == VD_OK)
        e = read_supers(img, sblk0, sblk1, s, alt);
    int ni = s[0].epoch > s[1].epoch ? 0 : 1; /* the newest record */
    if (e == VD_OK && alt[ni])
        e = swap_geometry(img);
    if (e == VD_OK && img->hdr.total_blocks * VDF_BLOCK > img->file_bytes - VHD_FOOTER_BYTES)
        e = VD_ERR_CORRUPT;
    vd_jentry *settled = NULL; /* the newest record's entries, if checked */
    if (e == VD_OK && (s[ni].flags & SB_FLAG_ONEFLUSH))
        e = oneflush_settle(img, s, ni ? sblk1 : sblk0, alt, &ni, &settled);
    if (e == VD_OK) {
        const vd_super *nw = &s[ni];
        const vd_super *ot = &s[1 - ni];
        const uint8_t *nblk = ni ? sblk1 : sblk0;
        const uint8_t *oblk = ni ? sblk0 : sblk1;
        img->epoch = nw->epoch;
        img->sb_state = nw->state;
        img->root = nw->root;
        if (nw->flags & SB_FLAG_LOG) {
            img->log_len = nw->log_len;
            memcpy(img->log_head, nw->log_head, sizeof img->log_head);
        }
        img->committed = nw->state == SB_STATE_COMMITTED ? nw->epoch : nw->base_epoch;
        memcpy(img->anchor_tag, nw->anchor_tag, sizeof img->anchor_tag);
        e = rekey_state(img, nw);
        /* A rotation whose last record was not written yet (rekey.c). */
        img->rk.ending = !img->rk.active && (ot->flags & SB_FLAG_REKEY);
        img->unclean = nw->version >= 3 && !(nw->state == SB_STATE_COMMITTED &&
                                             (nw->flags & SB_FLAG_CLEAN));
        img->sb_clean = nw->state == SB_STATE_COMMITTED && (nw->flags & SB_FLAG_CLEAN);
        img->last_commit_ns = nw->state == SB_STATE_COMMITTED ? nw->time_ns : ot->time_ns;
        for (uint32_t i = 0; i < 2; i++)
            img->slot_redo[i] = s[i].state == SB_STATE_COMMITTED && s[i].jcount;
        img->sb_last = e == VD_OK ? malloc(VDF_BLOCK) : NULL;
        if (e == VD_OK && !img->sb_last)
            e = VD_ERR_NOMEM;
        else if (e == VD_OK)
            memcpy(img->sb_last, nblk, VDF_BLOCK);
        /* The newest commit's metadata may not be in place yet: its record
         * names its redo contents. Over an interrupted round that record is
         * the other slot's, the round's base (docs/FORMAT.md §7); under a
         * one-flush record, the base's contents may be needed as well. */
        int base_redo = ot->state == SB_STATE_COMMITTED && ot->epoch == nw->base_epoch &&
                        ot->jcount;
        if (e == VD_OK && nw->state == SB_STATE_COMMITTED && nw->jcount) {
            /* In force because the one-flush record after it was torn
             * (oneflush_settle: recovered): that record was written only
             * once this one's flush was done, so this one is whole. Its
             * digest can still fail where the host changed blocks it
             * covers in place; a copy is only where to read a block from
             * (load_redo), so the copies are then left unused. */
            e = load_redo(img, nw, nblk, img->recovered, settled);
            settled = NULL;
            if (e == VD_OK && img->recovered && img->nredo)
                img->redo_slot = nw->slot;
            if (e == VD_OK && (nw->flags & SB_FLAG_ONEFLUSH) && base_redo &&
                (ot->flags & SB_FLAG_ONEFLUSH))
                e = load_redo(img, ot, oblk, 1, NULL);
        } else if (e == VD_OK && nw->state == SB_STATE_IN_PROGRESS && base_redo) {
            /* A one-flush base's digest covers its fresh blocks in place,
             * which this round may overwrite once its first flush has
             * made the base's own writes durable: a base that no longer
             * matches is then not needed (load_redo, base). */
            e = load_redo(img, ot, oblk, (ot->flags & SB_FLAG_ONEFLUSH) != 0, NULL);
            if (e == VD_OK && img->nredo)
                img->redo_slot = ot->slot; /* the record redo_replay settles */
        }
        if (e == VD_OK && nw->state == SB_STATE_IN_PROGRESS)
            e = load_journal(img, nw, nblk);
    }
    free(hblk);
    free(settled); /* not taken over: an error came first */
    int bind = 0;
    if (e == VD_OK)
        e = vd_anchor_check(img, &bind);
    if (e != VD_OK)
        return e;

    uint32_t lognodes = 0;
    if (img->log_len)
        e = log_read(img, &lognodes);
    if (e != VD_OK)
        return e;
    size_t bytes = opts && opts->cache_bytes ? opts->cache_bytes : VD_DEFAULT_CACHE;
    uint64_t entries = bytes / VDF_BLOCK;
    if (entries < VD_MIN_CACHE_ENTRIES)
        entries = VD_MIN_CACHE_ENTRIES;
    /* The nodes the log holds stay pinned: room for them. */
    if (entries < (uint64_t)lognodes * 2 + 64)
        entries = (uint64_t)lognodes * 2 + 64;
    /* The recovery commit must fit in one round: room for its nodes. */
    if (img->nrecov && entries < (uint64_t)img->nrecov + 64)
        entries = (uint64_t)img->nrecov + 64;
    if (entries > UINT32_MAX / 4)
        return VD_ERR_INVAL;
    if (vc_init(&img->cache, (uint32_t)entries) != 0)
        return VD_ERR_NOMEM;
    if (img->host.mem_advise)
        img->host.mem_advise(img->host.ctx, img->cache.mem, (size_t)entries * VDF_BLOCK);
    /* 7/16, not half: a round in flight keeps its blocks pinned while the
     * next one fills, and both, with the nodes their commits pin and the
     * file system's metadata, must fit. At half, the next round's last
     * blocks found no free entry, waited for the flight (vd_cache_take),
     * and were sealed with the disk idle: 694 against 778 MB/s (16 MiB
     * cache, 64 MiB written), 737 against 990 (64 MiB cache, 256 MiB;
     * docs/PERFORMANCE.md). */
    img->dirty_limit = (uint32_t)(entries * 7 / 16);
    /* Both commit buffers now, with the cache: a host that faults them in
     * (VD_HOST_PREFAULT) does it here rather than in the first commits. */
    if (!img->read_only)
        for (unsigned k = 0; k < 2; k++)
            (void)vd_ctbuf_get(img, k);
    img->jcap = img->hdr.journal_blocks * JE_PER_BLOCK;
    /* Nodes held for spilled data (spill.c): an eighth of the cache, and
     * what a round can journal with room to spare (sync.c, spill_entries). */
    if (!img->read_only && img->geo.height > 0) {
        uint64_t cap = entries / 8, byj = img->jcap / (2 * (uint64_t)img->geo.height);
        img->spill_cap = (uint32_t)(cap < byj ? cap : byj);
        img->log_cap = log_cap_of(img);
    }
    if (img->geo.height > 0 && (img->spill_cap || lognodes)) {
        uint32_t slots = img->spill_cap > lognodes ? img->spill_cap : lognodes;
        img->spill_nodes = malloc((size_t)slots * sizeof *img->spill_nodes);
        if (!img->spill_nodes)
            return VD_ERR_NOMEM;
    }
    img->runbuf = aligned_alloc(VDF_BLOCK, (size_t)VD_RUN_MAX * VDF_BLOCK);
    if (!img->scratch || !img->runbuf)
        return VD_ERR_NOMEM;
    memset(img->runbuf, 0, (size_t)VD_RUN_MAX * VDF_BLOCK);
    e = choose_alg(img, opts ? opts->aead_impl : VD_AEAD_AUTO);
    if (e != VD_OK)
        return e;
    vd_new_keyid(img);
    img->meta_limit = img->hdr.journal_blocks / 2 > 4 ? img->hdr.journal_blocks / 2 : 4;
    if (img->nredo && !img->read_only)
        e = redo_replay(img);
    if (e == VD_OK && !img->read_only && img->hdr.format_version < VDF_FORMAT_VERSION)
        e = convert_format(img);
    if (e == VD_OK && img->logbuf)
        e = log_apply(img);
    if (e != VD_OK)
        return e;
    if (img->nrecov && !img->read_only)
        e = vd_recover_commit(img);
    else if (img->nrecov)
        img->recovered = 1;
    if (e == VD_OK && bind)
        e = vd_anchor_bind(img);
    return e;
}

static void image_free(vd_image *img)
{
    if (!img)
        return;
    (void)vd_flight_join(img); /* its writes use the buffers freed here */
    vd_keys_wipe(img);
    vc_destroy(&img->cache);
    free(img->recov);
    free(img->redo);
    free(img->sb_last);
    free(img->scratch);
    free(img->ctbuf[0]);
    free(img->ctbuf[1]);
    free(img->spill_nodes);
    free(img->logbuf);
    if (img->runbuf)
        vdc_memzero(img->runbuf, (size_t)VD_RUN_MAX * VDF_BLOCK);
    free(img->runbuf);
    (void)pthread_mutex_destroy(&img->lock);
    free(img);
}

static vd_err image_new(const vd_host *host, const vd_open_opts *opts,
                        vd_image **out)
{
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    vd_image *img = calloc(1, sizeof *img);
    if (!img)
        return VD_ERR_NOMEM;
    if (pthread_mutex_init(&img->lock, NULL) != 0) {
        free(img);
        return VD_ERR_NOMEM;
    }
    img->host = *host;
    img->read_only = opts && opts->read_only;
    if (opts && opts->anchor) {
        if (!opts->anchor->read || !opts->anchor->advance) {
            image_free(img);
            return VD_ERR_INVAL;
        }
        img->anchor = *opts->anchor;
        img->have_anchor = 1;
        img->anchor_bind = opts->anchor_bind != 0;
    }
    img->anchor_mode = opts ? opts->anchor_mode : VD_ANCHOR_EVERY_COMMIT;
    img->oneflush_max = VD_ONEFLUSH_DEFAULT;
    if (opts) {
        img->commit_interval_ns = opts->commit_interval_ns;
        img->no_meta_journal = opts->test_no_meta_journal != 0;
        img->fresh_early_always = opts->test_fresh_early != 0;
        if (opts->oneflush_blocks)
            img->oneflush_max = opts->oneflush_blocks == VD_ONEFLUSH_NEVER
                                    ? 0 : opts->oneflush_blocks;
    }
    /* The mutation check's unsafe order is the in-place commit's. */
    if (img->no_meta_journal)
        img->oneflush_max = 0;
    if (img->commit_interval_ns < 0 || (img->commit_interval_ns > 0 && !host->now)) {
        image_free(img);
        return VD_ERR_INVAL;
    }
    if (img->anchor_mode != VD_ANCHOR_EVERY_COMMIT &&
        img->anchor_mode != VD_ANCHOR_EXPLICIT_SYNC) {
        image_free(img);
        return VD_ERR_INVAL;
    }
    *out = img;
    return VD_OK;
}

vd_err vd_image_open(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                     const vd_open_opts *opts, vd_image **out)
{
    return vd_image_open_ex(host, key, opts, 0, out);
}

vd_err vd_image_open_ex(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                        const vd_open_opts *opts, int rekey, vd_image **out)
{
    if (!out)
        return VD_ERR_INVAL;
    *out = NULL;
    if (!key || !host_ok(host, !(opts && opts->read_only)))
        return VD_ERR_INVAL;
    vd_image *img;
    vd_err e = image_new(host, opts, &img);
    if (e != VD_OK)
        return e;
    img->rk.writer = rekey;
    e = image_load(img, key, opts);
    if (e != VD_OK) {
        image_free(img);
        return e;
    }
    *out = img;
    return VD_OK;
}

/* ---- create ---------------------------------------------------------------- */

static vd_err write_initial_super(vd_image *img, uint32_t slot, uint64_t epoch,
                                  uint64_t base, uint8_t *blk)
{
    vd_super s;
    memset(&s, 0, sizeof s);
    s.version = img->hdr.format_version;
    s.slot = slot;
    s.epoch = epoch;
    s.base_epoch = base;
    s.state = SB_STATE_COMMITTED;
    s.flags = SB_FLAG_CLEAN;
    memcpy(s.header_digest, img->header_digest, 32);
    s.time_ns = vd_host_now(&img->host);
    memcpy(s.anchor_tag, img->anchor_cur, sizeof s.anchor_tag); /* bound from the start */
    vd_super_encode(&s, blk);
    vd_err e = vd_super_seal(img, blk);
    if (e == VD_OK)
        e = vd_host_write(&img->host, (img->hdr.sb_start + slot) * VDF_BLOCK, blk,
                          VDF_BLOCK);
    return e;
}

/* The log's automatic size: a commit of a few blocks a block, so that
 * many of them share one sealing of the nodes (docs/FORMAT.md §7b); 1,024
 * (4 MiB) from 1 GiB up. Random 4 KiB writes with fsync every 8 on a
 * memory host: 1,024 log blocks up to 10 % faster than 256 (drains four
 * times rarer; docs/PERFORMANCE.md). */
static uint32_t auto_log_blocks(uint64_t nblocks)
{
    uint64_t l = nblocks / 256;
    return (uint32_t)(l < 8 ? 8 : l > 1024 ? 1024 : l);
}

/* The layout of a new image as c asks (0 / VD_ERR_RANGE). */
static vd_err create_layout(vd_header *h, const vd_create_opts *c)
{
    uint32_t jb = c->journal_blocks ? c->journal_blocks : auto_journal_blocks(c->nblocks);
    uint32_t lb = c->log_blocks == VD_LOG_NONE ? 0
                  : c->log_blocks             ? c->log_blocks
                                              : auto_log_blocks(c->nblocks);
    if (vd_header_layout(h, c->nblocks, c->fanout ? c->fanout : MT_FANOUT, jb) != 0 ||
        vd_header_set_log(h, lb) != 0)
        return VD_ERR_RANGE;
    return VD_OK;
}

vd_err vd_image_bytes_for(const vd_create_opts *c, uint64_t *bytes)
{
    if (c == NULL || bytes == NULL || c->nblocks == 0)
        return VD_ERR_INVAL;
    vd_header h;
    memset(&h, 0, sizeof h);
    if (create_layout(&h, c) != VD_OK)
        return VD_ERR_RANGE;
    *bytes = h.total_blocks * VDF_BLOCK + VHD_FOOTER_BYTES;
    return VD_OK;
}

static vd_err image_format(vd_image *img, const uint8_t key[VD_KEY_BYTES],
                           const vd_create_opts *c, vd_keyblock_fill fill,
                           void *fill_ctx)
{
    uint64_t size;
    vd_err e = vd_host_size(&img->host, &size);
    if (e != VD_OK)
        return e;
    if (size != 0 || !img->host.truncate)
        return VD_ERR_INVAL; /* never format over existing bytes */
    vd_header *h = &img->hdr;
    if (create_layout(h, c) != VD_OK)
        return VD_ERR_RANGE;
    h->cipher = c->cipher ? (uint32_t)c->cipher : VD_CIPHER_AES256GCM;
    if (h->cipher != VD_CIPHER_AES256GCM && h->cipher != VD_CIPHER_XCHACHA20POLY1305)
        return VD_ERR_INVAL;
    vdc_random(h->image_id, sizeof h->image_id);
    h->created_ns = vd_host_now(&img->host);
    e = vd_keys_derive(img, key);
    if (e == VD_OK)
        e = vd_keycheck_compute(img->key_scratch, key, h->image_id, h->keycheck);
    if (e == VD_OK)
        e = vd_anchor_attach(img);
    if (e != VD_OK)
        return e;

    uint64_t first_epoch = 0;
    if (img->have_anchor) {
        int rc = img->anchor.read(img->anchor.ctx, &first_epoch);
        if (rc != 0)
            return vd_anchor_err(rc);
    }

    /* header, superblock scratch, key-slot block */
    uint8_t *blk = calloc(3, VDF_BLOCK);
    if (!blk)
        return VD_ERR_NOMEM;
    uint8_t *kblk = blk + 2 * VDF_BLOCK;
    if (fill) {
        e = fill(fill_ctx, h->image_id, kblk); /* before any host write */
        if (e != VD_OK) {
            free(blk);
            return e;
        }
    }
    vd_header_encode(h, blk);
    if (vdc_hash_buf(img->header_digest, blk, VDF_BLOCK) != 0)
        e = VD_ERR_NOMEM;
    uint64_t bytes = h->total_blocks * VDF_BLOCK + VHD_FOOTER_BYTES;
    if (e == VD_OK) {
        int rc = img->host.truncate(img->host.ctx, bytes);
        e = rc < 0 ? vd_errno_to_err(rc) : rc > 0 ? VD_ERR_IO : VD_OK;
    }
    if (e == VD_OK) {
        vhd_footer f;
        uint8_t foot[VHD_FOOTER_BYTES];
        int64_t secs = h->created_ns / 1000000000 - 946684800; /* since 2000 */
        vhd_footer_init(&f, h->total_blocks * VDF_BLOCK,
                        (uint32_t)(secs < 0 ? 0 : secs > UINT32_MAX ? UINT32_MAX : secs),
                        h->image_id);
        vhd_footer_encode(&f, foot);
        e = vd_host_write(&img->host, bytes - VHD_FOOTER_BYTES, foot, sizeof foot);
    }
    if (e == VD_OK && fill)
        e = vd_host_write(&img->host, h->keyslot_start * VDF_BLOCK, kblk, VDF_BLOCK);
    /* e1, which the anchor moves to, is one it can hold (vd_anchor.step). */
    uint64_t step = img->have_anchor && img->anchor.step > 1 ? img->anchor.step : 1;
    if (e == VD_OK && first_epoch > UINT64_MAX - step)
        e = VD_ERR_RANGE;
    uint64_t e1 = e == VD_OK ? first_epoch + step : 1, e0 = e1 - 1;
    /* Two authentic committed records with an empty tree (root "never
     * written"), so both slots verify from the start. The header goes
     * last, after a barrier: an interrupted create leaves a file without
     * our magic ("not a vdisk image"), never one that looks tampered. */
    uint8_t *sblk = blk + VDF_BLOCK;
    if (e == VD_OK)
        e = write_initial_super(img, (uint32_t)(e0 % 2), e0, e0 ? e0 - 1 : 0, sblk);
    if (e == VD_OK)
        e = write_initial_super(img, (uint32_t)(e1 % 2), e1, e0, sblk);
    if (e == VD_OK && img->host.flush(img->host.ctx) != 0)
        e = VD_ERR_IO;
    if (e == VD_OK)
        e = vd_host_write(&img->host, 0, blk, VDF_BLOCK);
    if (e == VD_OK && img->host.flush(img->host.ctx) != 0)
        e = VD_ERR_IO;
    if (e == VD_OK && img->have_anchor) {
        int rc = img->anchor.advance(img->anchor.ctx, e1);
        if (rc != 0)
            e = vd_anchor_err(rc);
    }
    vdc_memzero(kblk, VDF_BLOCK);
    free(blk);
    return e;
}

vd_err vd_image_create(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                       const vd_create_opts *copts, const vd_open_opts *oopts,
                       vd_image **out)
{
    return vd_image_create_with(host, key, copts, oopts, NULL, NULL, out);
}

vd_err vd_image_create_with(const vd_host *host, const uint8_t key[VD_KEY_BYTES],
                            const vd_create_opts *copts,
                            const vd_open_opts *oopts, vd_keyblock_fill fill,
                            void *fill_ctx, vd_image **out)
{
    if (!out)
        return VD_ERR_INVAL;
    *out = NULL;
    if (!key || !copts || copts->nblocks == 0 || !host_ok(host, 1) ||
        (oopts && oopts->read_only))
        return VD_ERR_INVAL;
    vd_image *img;
    vd_err e = image_new(host, oopts, &img);
    if (e != VD_OK)
        return e;
    e = image_format(img, key, copts, fill, fill_ctx);
    image_free(img);
    if (e != VD_OK)
        return e;
    return vd_image_open(host, key, oopts, out);
}

/* ---- block I/O --------------------------------------------------------------- */

static vd_err check_range(const vd_image *img, uint64_t lbn, uint32_t count)
{
    if (lbn >= img->hdr.nblocks || count > img->hdr.nblocks - lbn)
        return VD_ERR_RANGE;
    return VD_OK;
}

vd_err vd_image_read(vd_image *img, uint64_t lbn, uint32_t count, void *buf)
{
    if (!img || (!buf && count))
        return VD_ERR_INVAL;
    vd_err e = lock(img);
    if (e != VD_OK)
        return e;
    e = check_range(img, lbn, count);
    int in_range = e == VD_OK; /* else buf may be shorter than count blocks */
    if (e == VD_OK && img->failed)
        e = VD_ERR_FAILED;
    uint8_t *out = buf;
    for (uint32_t i = 0; e == VD_OK && i < count; i++) {
        uint32_t t = vc_lookup(&img->cache, vd_phys_of(img, 0, lbn + i));
        if (t == VC_NONE) {
            uint32_t run = 1;
            while (i + run < count && run < VD_RUN_MAX &&
                   vc_lookup(&img->cache, vd_phys_of(img, 0, lbn + i + run)) == VC_NONE)
                run++;
            if (vd_read_unlocked_ok(img)) {
                /* The host read and the opens without the lock: readers
                 * of other blocks, cached or not, go on meanwhile. */
                uint32_t done = 0;
                e = vd_read_data_unlocked(img, lbn + i, run, out + (size_t)i * VDF_BLOCK,
                                          &done);
                if (e == VD_OK)
                    i += done - 1;
                continue;
            }
            if (run > 1) {
                /* A bulk read: straight into the caller's buffer. */
                e = vd_read_data_run(img, lbn + i, run, out + (size_t)i * VDF_BLOCK);
                i += run - 1;
                continue;
            }
            e = vd_get_block(img, 0, lbn + i, &t);
            if (e != VD_OK)
                break;
            vd_unpin(img, t);
        }
        memcpy(out + (size_t)i * VDF_BLOCK, img->cache.e[t].buf, VDF_BLOCK);
    }
    /* Whatever went wrong, the caller never keeps bytes of this call. After
     * an argument or range error nothing was copied, and the buffer may be
     * shorter than count blocks: leave it alone. */
    if (e != VD_OK && in_range && buf && count)
        vdc_memzero(buf, (size_t)count * VDF_BLOCK);
    unlock(img);
    return e;
}

static vd_err write_blocks(vd_image *img, uint64_t lbn, uint32_t count,
                           const void *buf, int meta)
{
    if (!img || (!buf && count))
        return VD_ERR_INVAL;
    vd_err e = lock(img);
    if (e != VD_OK)
        return e;
    if (img->failed)
        e = VD_ERR_FAILED;
    else if (img->read_only)
        e = VD_ERR_READONLY;
    else
        e = check_range(img, lbn, count);
    const uint8_t *in = buf;
    /* Long runs of data: what is fresh goes straight to its place
     * (spill.c), the rest through the cache. */
    uint8_t *taken = NULL;
    uint32_t chunk = img->dirty_limit < count ? img->dirty_limit : count;
    if (e == VD_OK && !meta && chunk >= VD_DIRECT_MIN) /* chunk <= count */
        taken = calloc(chunk, 1);
    for (uint32_t i = 0; e == VD_OK && i < count; i++) {
        if (taken && i % chunk == 0) {
            uint32_t m = count - i < chunk ? count - i : chunk;
            e = vd_spill_direct(img, lbn + i, m, in + (size_t)i * VDF_BLOCK, taken);
            if (e != VD_OK)
                break;
        }
        if (taken && taken[i % chunk])
            continue;
        if (img->cache.ndirty >= img->dirty_limit) {
            e = vd_sync_implicit(img);
            if (e != VD_OK)
                break;
        }
        uint32_t t;
        e = vd_get_block_for_write(img, lbn + i, &t);
        if (e != VD_OK)
            break;
        vc_entry *ce = &img->cache.e[t];
        memcpy(ce->buf, in + (size_t)i * VDF_BLOCK, VDF_BLOCK);
        if (meta && !(ce->dirty && ce->meta)) {
            ce->meta = 1;
            img->meta_dirty++;
        }
        vc_set_dirty(&img->cache, t, 1);
        vd_unpin(img, t);
    }
    free(taken);
    unlock(img);
    return e;
}

vd_err vd_image_write(vd_image *img, uint64_t lbn, uint32_t count,
                      const void *buf)
{
    return write_blocks(img, lbn, count, buf, 0);
}

vd_err vd_image_write_meta(vd_image *img, uint64_t lbn, uint32_t count,
                           const void *buf)
{
    return write_blocks(img, lbn, count, buf, 1);
}

static vd_err sync_or_commit(vd_image *img, int ack)
{
    if (!img)
        return VD_ERR_INVAL;
    vd_err e = lock(img);
    if (e != VD_OK)
        return e;
    img->sync_explicit = 1; /* durable at return */
    img->sync_ack = ack;    /* advances the anchor in either mode */
    e = img->read_only ? (img->failed ? VD_ERR_FAILED : VD_OK) : vd_sync_locked(img);
    img->sync_explicit = 0;
    img->sync_ack = 0;
    unlock(img);
    return e;
}

vd_err vd_image_sync(vd_image *img)
{
    return sync_or_commit(img, 1);
}

vd_err vd_image_commit(vd_image *img)
{
    return sync_or_commit(img, 0);
}

vd_err vd_image_close(vd_image *img)
{
    if (!img)
        return VD_OK;
    vd_err e = lock(img);
    if (e == VD_OK) {
        /* A failed writable handle may have dropped unsynced writes: say
         * so rather than report a clean close. */
        img->sync_explicit = 1;
        img->sync_ack = 1;
        if (!img->read_only)
            e = img->failed ? VD_ERR_FAILED : vd_sync_locked(img);
        /* Closed cleanly: the next open need not report a crash. */
        if (e == VD_OK && !img->read_only && !img->sb_clean)
            e = vd_super_set_clean(img, 1);
        unlock(img);
    }
    image_free(img);
    return e;
}

vd_err vd_image_info_get(vd_image *img, vd_image_info *info)
{
    if (!img || !info)
        return VD_ERR_INVAL;
    vd_err e = lock(img);
    if (e != VD_OK)
        return e;
    (void)vd_flight_join(img); /* its counters and epoch */
    info_from_header(&img->hdr, img->file_bytes, info);
    info->aead_impl_name = vdc_aead_name(img->alg);
    info->epoch = img->committed;
    info->recovered = img->recovered;
    info->rekey = img->rk.active;
    info->unclean = img->unclean;
    info->last_commit_ns = img->last_commit_ns;
    info->read_only = img->read_only;
    info->failed = img->failed;
    info->cache_bytes = (size_t)img->cache.n * VDF_BLOCK;
    info->syncs = img->stat_syncs;
    info->flushes = img->stat_flushes;
    info->bytes_written = img->stat_bytes_written;
    info->bytes_read = img->stat_bytes_read;
    info->blocks_verified = img->stat_verified;
    info->blocks_direct = img->stat_direct;
    info->log_len = img->log_len;
    info->log_commits = img->stat_log_commits;
    unlock(img);
    return VD_OK;
}

/* Not behind lock(): a tool asks right after a call failed, and a failed
 * handle must still answer; the fields are written only under the lock by
 * the failing call, which has returned. */
vd_err vd_image_last_failure(vd_image *img, vd_bad_range *out)
{
    if (!img || !out)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    vd_err e = VD_ERR_NOENT;
    if (img->have_bad) {
        const uint64_t n = img->geo.nblocks;
        uint64_t span = 1; /* data blocks under one node of bad_level */
        for (uint32_t l = 0; l < img->bad_level && span < n; l++)
            span *= img->geo.fanout;
        uint64_t first = span >= n ? 0 : img->bad_idx * span;
        if (first >= n)
            first = n - 1;
        out->level = img->bad_level;
        out->first_lbn = first;
        out->nblocks = span < n - first ? span : n - first;
        e = VD_OK;
    }
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}
