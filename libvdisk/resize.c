/* Growing an image in place (vd_image_grow, vhdtool resize; docs/FORMAT.md
 * §4 "Resize").
 *
 * The data blocks stay where they are (data_start + lbn, so nothing is
 * re-encrypted); the tree of the new size is written whole after the end
 * of everything the old state uses (the nodes after the data), and one
 * COMMITTED record switches to it. The header names both geometries while
 * the switch is under way, and every record names, by the header digest
 * it carries (computed without the second geometry), the geometry it was
 * written under; the newest record decides. So:
 *
 *   1. header {in force: old, second: new}, flush — the old records still
 *      name the geometry in force;
 *   2. the file grows (truncate) and the new footer ends it, flush — until
 *      the footer is there the old one still ends the old geometry
 *      (read_container looks for it);
 *   3. the new tree, and the sealed new contents of the blocks the caller
 *      changed (the file system's size: its boot sector, FSInfo) into the
 *      journal area, flush;
 *   4. the COMMITTED record of the new geometry naming those blocks (redo,
 *      as a sync round's metadata), flush — the switch;
 *   5. those blocks in place, the header {in force: new, second: old},
 *      flush; the anchor advances to the record.
 *
 * A crash before 4 opens at the old size without the caller's changes,
 * after it at the new size with them (C1, C4). Only the blocks never
 * written before become new, so no older state of any block is accepted
 * (R3). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image_internal.h"

/* Dirty data blocks the grow commits: few (the file system's size). */
typedef struct grow_leaf {
    uint32_t ent;
    uint64_t idx;
    mt_version before, after;
} grow_leaf;

static int cmp_leaf(const void *a, const void *b)
{
    const grow_leaf *x = a, *y = b;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The other slot's record must name the geometry in force: it is the one
 * the header keeps naming while the new record is written. Right after an
 * earlier resize it names the geometry before that: replace it by a record
 * of the current state (anchor.c's plain record). */
static vd_err other_slot_current(vd_image *img)
{
    uint8_t *blk = img->scratch;
    uint32_t slot = (uint32_t)((img->epoch + 1) % 2);
    vd_err e = vd_io_read(img, (img->hdr.sb_start + slot) * VDF_BLOCK, blk, VDF_BLOCK);
    vd_super s;
    if (e == VD_OK && (vd_super_verify(img, blk) != VD_OK || vd_super_decode(&s, blk) != 0))
        e = VD_ERR_AUTH;
    if (e != VD_OK || vdc_memcmp(s.header_digest, img->header_digest, 32) == 0)
        return e;
    return vd_super_write_plain(img, img->epoch + 1);
}

static vd_err write_header(vd_image *img, const vd_header *h)
{
    vd_header_encode(h, img->scratch);
    vd_err e = vd_io_write(img, 0, img->scratch, VDF_BLOCK);
    return e == VD_OK ? vd_io_flush(img) : e;
}

/* Seal and write the whole tree of geometry g at node_start (steps 3), the
 * level-1 entries taken from the tree in force and from leaves. */
static vd_err write_tree(vd_image *img, const mt_geometry *g, uint64_t node_start,
                         const grow_leaf *leaf, uint32_t nleaf, mt_version *root)
{
    const mt_geometry *old = &img->geo;
    mt_version *prev = NULL, *cur = NULL;
    uint8_t *buf = malloc(VDF_BLOCK);
    uint8_t *ct = malloc((size_t)VD_RUN_MAX * VDF_BLOCK);
    vd_err e = buf && ct ? VD_OK : VD_ERR_NOMEM;
    uint32_t li = 0;
    for (uint32_t l = 1; e == VD_OK && l <= g->height; l++) {
        cur = calloc((size_t)g->count[l], sizeof *cur);
        if (!cur) {
            e = VD_ERR_NOMEM;
            break;
        }
        uint64_t run0 = 0;
        uint32_t nrun = 0;
        for (uint64_t k = 0; e == VD_OK && k < g->count[l]; k++) {
            memset(buf, 0, VDF_BLOCK);
            if (l == 1 && k < old->count[1]) {
                uint32_t t;
                e = vd_get_block(img, 1, k, &t);
                if (e != VD_OK)
                    break;
                memcpy(buf, img->cache.e[t].buf, VDF_BLOCK);
                vd_unpin(img, t);
            }
            if (l == 1)
                for (; li < nleaf && leaf[li].idx / g->fanout == k; li++)
                    mt_node_set(buf, (uint32_t)(leaf[li].idx % g->fanout), &leaf[li].after);
            else
                for (uint32_t j = 0; j < g->fanout && k * g->fanout + j < g->count[l - 1]; j++)
                    mt_node_set(buf, j, &prev[k * g->fanout + j]);
            uint64_t phys = node_start + mt_node_index(g, l, k);
            if (nrun == 0)
                run0 = phys;
            e = vd_block_seal(img, phys, buf, ct + (size_t)nrun * VDF_BLOCK, &cur[k]);
            if (e == VD_OK && ++nrun == VD_RUN_MAX) {
                e = vd_io_write(img, run0 * VDF_BLOCK, ct, (size_t)nrun * VDF_BLOCK);
                nrun = 0;
            }
        }
        if (e == VD_OK && nrun)
            e = vd_io_write(img, run0 * VDF_BLOCK, ct, (size_t)nrun * VDF_BLOCK);
        free(prev);
        prev = cur;
        cur = NULL;
    }
    if (e == VD_OK)
        *root = prev[0];
    free(prev);
    free(cur);
    free(ct);
    if (buf)
        vdc_memzero(buf, VDF_BLOCK);
    free(buf);
    return e;
}

/* The dirty data blocks, sealed at their place (after), with the version
 * their parent names now (before); sorted. */
static vd_err seal_leaves(vd_image *img, grow_leaf **out, uint32_t *nout, uint8_t **ct)
{
    uint32_t n = 0;
    for (uint32_t d = 0; d < img->cache.ndirty; d++) {
        const vc_entry *ce = &img->cache.e[img->cache.dirty[d]];
        if (!ce->valid || ce->level != 0)
            return VD_ERR_INVAL; /* only data is ever dirty between syncs */
        n++;
    }
    if (n > SB_INLINE_MAX || n > img->hdr.journal_blocks)
        return VD_ERR_RANGE; /* the caller syncs first; its change is small */
    *nout = n;
    *out = calloc(n ? n : 1, sizeof **out);
    *ct = malloc((size_t)(n ? n : 1) * VDF_BLOCK);
    if (!*out || !*ct)
        return VD_ERR_NOMEM;
    for (uint32_t d = 0; d < n; d++) {
        (*out)[d].ent = img->cache.dirty[d];
        (*out)[d].idx = img->cache.e[img->cache.dirty[d]].idx;
    }
    qsort(*out, n, sizeof **out, cmp_leaf);
    vd_err e = VD_OK;
    for (uint32_t i = 0; e == VD_OK && i < n; i++) {
        grow_leaf *g = &(*out)[i];
        uint32_t t;
        e = vd_get_block(img, 1, mt_parent_idx(&img->geo, g->idx), &t);
        if (e != VD_OK)
            break;
        mt_node_get(img->cache.e[t].buf, mt_parent_slot(&img->geo, g->idx), &g->before);
        vd_unpin(img, t);
        e = vd_block_seal(img, vd_phys_of(img, 0, g->idx), img->cache.e[g->ent].buf,
                          *ct + (size_t)i * VDF_BLOCK, &g->after);
    }
    return e;
}

/* The switch (step 4): a COMMITTED record of the new geometry whose inline
 * journal names the leaves, their sealed contents at the start of the
 * slot's journal area. */
static vd_err write_switch(vd_image *img, uint64_t epoch, const uint8_t digest[32],
                           const mt_version *root, const grow_leaf *leaf, uint32_t n)
{
    uint8_t *blk = img->scratch;
    vd_super s;
    memset(&s, 0, sizeof s);
    s.version = img->hdr.format_version;
    s.slot = (uint32_t)(epoch % 2);
    s.epoch = epoch;
    s.base_epoch = img->committed;
    s.state = SB_STATE_COMMITTED;
    memcpy(s.header_digest, digest, 32);
    s.root = *root;
    s.time_ns = vd_host_now(&img->host);
    memcpy(s.anchor_tag, img->anchor_tag, sizeof s.anchor_tag);
    s.jcount = n;
    s.jinline = n > 0;
    vd_super_encode(&s, blk);
    for (uint32_t k = 0; k < n; k++) {
        vd_jentry je = {.phys = img->hdr.data_start + leaf[k].idx,
                        .before = leaf[k].before,
                        .after = leaf[k].after,
                        .redo = 1};
        vd_jentry_encode(&je, blk + SB_OFF_INLINE + (size_t)k * JE_BYTES);
    }
    vd_err e = vd_super_seal(img, blk);
    if (e == VD_OK)
        e = vd_io_write(img, (img->hdr.sb_start + s.slot) * VDF_BLOCK, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e == VD_OK && img->sb_last)
        memcpy(img->sb_last, blk, VDF_BLOCK);
    if (e == VD_OK)
        img->last_commit_ns = s.time_ns;
    return e;
}

static vd_err grow_locked(vd_image *img, uint64_t nblocks)
{
    if (img->read_only)
        return VD_ERR_READONLY;
    if (img->failed)
        return VD_ERR_FAILED;
    if (img->hdr.format_version < 3 || !img->host.truncate)
        return VD_ERR_UNSUPPORTED;
    if (nblocks <= img->hdr.nblocks)
        return VD_ERR_INVAL;
    /* A commit in flight first: the switch follows its record, and the
     * nodes it holds pinned are dropped below. Spilled data's nodes too
     * (spill.c): committed, so none stays pinned under the old geometry. */
    vd_err je = img->nspilled ? vd_sync_locked(img) : vd_flight_join(img);
    if (je == VD_OK) /* and the log's: its records name the tree alone */
        je = vd_log_drain(img);
    if (je != VD_OK)
        return je;
    vd_header nh = img->hdr;
    nh.alt_nblocks = nh.alt_node_start = 0;
    uint64_t node_start = nh.data_start + nblocks;
    /* The new nodes after the new data and after all the old state uses. */
    if (node_start < img->hdr.total_blocks)
        node_start = img->hdr.total_blocks;
    if (nblocks > UINT64_MAX - nh.data_start || vd_header_set_geometry(&nh, nblocks, node_start) != 0)
        return VD_ERR_RANGE;
    mt_geometry g;
    if (mt_geometry_init(&g, nblocks, nh.fanout) != 0)
        return VD_ERR_RANGE;
    uint8_t digest[32];
    vd_err e = vd_header_digest(&nh, digest);
    if (e != VD_OK)
        return e;
    if (img->unflushed || img->redo_pending)
        e = vd_io_flush(img);
    grow_leaf *leaf = NULL;
    uint8_t *ct = NULL;
    uint32_t n = 0;
    uint64_t epoch = img->epoch + 1;
    if (e == VD_OK)
        e = other_slot_current(img); /* may write a record: epoch moves */
    epoch = img->epoch + 1;
    if (e == VD_OK)
        e = seal_leaves(img, &leaf, &n, &ct);
    /* 1. Both geometries in the header, the one in force first. */
    vd_header both = img->hdr;
    both.alt_nblocks = nh.nblocks;
    both.alt_node_start = nh.node_start;
    if (e == VD_OK)
        e = write_header(img, &both);
    /* 2. The bigger file, ended by its footer. */
    uint64_t bytes = nh.total_blocks * VDF_BLOCK + VHD_FOOTER_BYTES;
    if (e == VD_OK) {
        int rc = img->host.truncate(img->host.ctx, bytes);
        e = rc == 0 ? VD_OK : rc == -ENOSPC || rc == -EFBIG ? VD_ERR_NOSPC
                                                             : vd_errno_to_err(rc);
        if (e != VD_OK) {
            /* The file keeps its size: take the second geometry out again. */
            (void)write_header(img, &img->hdr);
            free(leaf);
            free(ct);
            return e;
        }
    }
    if (e == VD_OK) {
        img->file_bytes = bytes;
        vhd_footer f;
        uint8_t foot[VHD_FOOTER_BYTES];
        int64_t secs = vd_host_now(&img->host) / 1000000000 - 946684800; /* since 2000 */
        vhd_footer_init(&f, nh.total_blocks * VDF_BLOCK,
                        (uint32_t)(secs < 0 ? 0 : secs > UINT32_MAX ? UINT32_MAX : secs),
                        img->hdr.image_id);
        vhd_footer_encode(&f, foot);
        e = vd_io_write(img, bytes - VHD_FOOTER_BYTES, foot, sizeof foot);
        if (e == VD_OK)
            e = vd_io_flush(img);
    }
    /* 3. The new tree and the leaves' sealed contents. */
    mt_version root;
    if (e == VD_OK)
        e = write_tree(img, &g, nh.node_start, leaf, n, &root);
    uint64_t jstart = vd_journal_area(img, epoch);
    if (e == VD_OK && n > 0)
        e = vd_io_write(img, jstart * VDF_BLOCK, ct, (size_t)n * VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    /* 4. The switch. */
    if (e == VD_OK)
        e = write_switch(img, epoch, digest, &root, leaf, n);
    if (e == VD_OK) {
        /* The new geometry is in force: nodes cached under the old one
         * are gone (their block numbers may now be data blocks). */
        for (uint32_t i = 0; i < img->cache.n; i++) {
            vc_entry *ce = &img->cache.e[i];
            if (ce->valid && ce->level > 0 && ce->pins == 0)
                vc_drop(&img->cache, i);
        }
        for (uint32_t k = 0; k < n; k++) {
            vc_entry *ce = &img->cache.e[leaf[k].ent];
            ce->version = leaf[k].after;
            if (ce->meta) {
                ce->meta = 0;
                img->meta_dirty--;
            }
            vc_set_dirty(&img->cache, leaf[k].ent, 0);
        }
        nh.alt_nblocks = img->hdr.nblocks;
        nh.alt_node_start = img->hdr.node_start;
        memcpy(img->alt_digest, img->header_digest, 32);
        memcpy(img->header_digest, digest, 32);
        img->have_alt = 1;
        img->hdr = nh;
        img->geo = g;
        img->root = root;
        img->epoch = img->committed = epoch;
        img->sb_state = SB_STATE_COMMITTED;
        img->slot_redo[epoch % 2] = n > 0;
        img->sb_clean = 0;
        img->stat_syncs++;
        /* 5. The leaves in place, the header with the new geometry first
         * (what readers without a key show), flush. */
        for (uint32_t k = 0; e == VD_OK && k < n; k++)
            e = vd_io_write(img, vd_phys_of(img, 0, leaf[k].idx) * VDF_BLOCK,
                            ct + (size_t)k * VDF_BLOCK, VDF_BLOCK);
        if (e == VD_OK)
            e = write_header(img, &img->hdr);
    }
    free(leaf);
    free(ct);
    if (e != VD_OK) {
        img->failed = e;
        return e;
    }
    if (img->have_anchor) {
        img->anchor_due = epoch; /* an acknowledged change, in either mode */
        e = vd_anchor_advance_due(img);
    }
    return e;
}

vd_err vd_image_grow(vd_image *img, uint64_t nblocks)
{
    if (!img)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    vd_err e = img->in_sync ? VD_ERR_BUSY : grow_locked(img, nblocks);
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}

vd_err vd_image_grow_bytes(vd_image *img, uint64_t nblocks, uint64_t *bytes)
{
    if (!img || !bytes)
        return VD_ERR_INVAL;
    if (pthread_mutex_lock(&img->lock) != 0)
        return VD_ERR_BUSY;
    vd_header nh = img->hdr;
    uint64_t node_start = nh.data_start + nblocks;
    if (node_start < img->hdr.total_blocks)
        node_start = img->hdr.total_blocks;
    vd_err e = VD_OK;
    if (nblocks <= nh.nblocks)
        e = VD_ERR_INVAL;
    else if (nblocks > UINT64_MAX - nh.data_start ||
             vd_header_set_geometry(&nh, nblocks, node_start) != 0)
        e = VD_ERR_RANGE;
    else
        *bytes = nh.total_blocks * VDF_BLOCK + VHD_FOOTER_BYTES;
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}
