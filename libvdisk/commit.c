/* When the image commits on its own, and what it tells about the last
 * session: the file-system operation brackets (image_fs.h; DESIGN C4),
 * periodic commits (vd_open_opts.commit_interval_ns; C5) and the
 * clean-close flag of the newest superblock. */
#include <string.h>

#include "image_fs.h"
#include "image_internal.h"

void vd_image_op_begin(vd_image *img)
{
    (void)pthread_mutex_lock(&img->lock);
    img->op_depth++;
    (void)pthread_mutex_unlock(&img->lock);
}

/* Is a commit due at an operation boundary? */
static int commit_due(vd_image *img)
{
    if (img->failed || img->read_only || (img->cache.ndirty == 0 && img->nspilled == 0))
        return 0;
    if (img->meta_dirty >= img->meta_limit)
        return 1;
    if (img->commit_interval_ns <= 0)
        return 0;
    int64_t now = vd_host_now(&img->host);
    /* An untrusted clock that runs backwards commits early, never late.
     * In integers: near 2^60 ns a double is 256 ns coarse, and the
     * difference of two rounded times could fall short of the interval. */
    return now < img->last_commit_ns ||
           (uint64_t)now - (uint64_t)img->last_commit_ns >=
               (uint64_t)img->commit_interval_ns;
}

void vd_image_op_end(vd_image *img)
{
    (void)pthread_mutex_lock(&img->lock);
    if (img->op_depth > 0)
        img->op_depth--;
    if (img->op_depth == 0 && commit_due(img)) {
        vd_err e = vd_sync_locked(img);
        if (e != VD_OK && !img->failed)
            img->failed = e; /* the next call reports it */
    }
    (void)pthread_mutex_unlock(&img->lock);
}

void vd_image_op_abort(vd_image *img, vd_err e)
{
    (void)pthread_mutex_lock(&img->lock);
    if (!img->failed && !img->read_only)
        img->failed = e;
    (void)pthread_mutex_unlock(&img->lock);
}

uint64_t vd_image_meta_commits(vd_image *img)
{
    (void)pthread_mutex_lock(&img->lock);
    uint64_t n = img->meta_commits;
    (void)pthread_mutex_unlock(&img->lock);
    return n;
}

vd_err vd_image_commit_all(vd_image *img)
{
    (void)pthread_mutex_lock(&img->lock);
    uint32_t depth = img->op_depth;
    img->op_depth = 0; /* commit as at a boundary: metadata too */
    vd_err e = img->failed ? VD_ERR_FAILED : vd_sync_locked(img);
    img->op_depth = depth;
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}

uint32_t vd_image_meta_cap(vd_image *img, uint32_t *room)
{
    (void)pthread_mutex_lock(&img->lock);
    uint64_t h = img->geo.height, j = img->hdr.journal_blocks;
    /* Entries: each block, a node per level above it, the root; nothing
     * else in the round (data goes in rounds of its own first). */
    uint64_t cap = j;
    while (cap > 0) {
        if (vd_journal_need(cap * (h + 1) + 1, cap) <= j)
            break;
        cap--;
    }
    /* Below the implicit-commit threshold, nodes included. */
    uint64_t by_cache = img->cache.n / (h + 2);
    if (by_cache > img->dirty_limit / 2)
        by_cache = img->dirty_limit / 2;
    if (cap > by_cache)
        cap = by_cache;
    *room = cap > img->meta_dirty ? (uint32_t)cap - img->meta_dirty : 0;
    (void)pthread_mutex_unlock(&img->lock);
    return (uint32_t)cap;
}

/* Rewrite the newest record with SB_FLAG_CLEAN set or cleared (clean < 0:
 * as it is); settle: a commit's metadata is made durable in place first
 * and the record stops naming the journal. */
static vd_err super_rewrite(vd_image *img, int clean, int settle)
{
    if (img->read_only || !img->sb_last || img->hdr.format_version < 3)
        return VD_OK;
    vd_err e = vd_flight_join(img); /* it writes the newest record */
    if (e != VD_OK)
        return e;
    uint8_t *blk = img->scratch;
    vd_super s;
    if (vd_super_decode(&s, img->sb_last) != 0)
        return VD_ERR_CORRUPT;
    /* A rotation's BEGIN record carries the old key's MAC, which this
     * handle cannot make: leave it as it is (rekey.c writes over it). */
    if ((s.flags & SB_FLAG_REKEY) && s.rk_phase == SB_RK_BEGIN)
        return VD_OK;
    /* Same record, but in this image's format (a record written before a
     * format-2 image was converted names the old header) and the flag. */
    s.version = img->hdr.format_version;
    if (!(s.flags & SB_FLAG_REKEY)) /* a rekey record names the old header */
        memcpy(s.header_digest, img->header_digest, 32);
    if (clean >= 0)
        s.flags = clean ? (s.flags | SB_FLAG_CLEAN) : (s.flags & ~SB_FLAG_CLEAN);
    if (settle && s.state == SB_STATE_COMMITTED && s.jcount) {
        /* The last commit's metadata went in place after its record:
         * durable first, then the record stops naming the journal, so the
         * next open does not redo (and so cover up) blocks changed at rest. */
        e = vd_io_flush(img);
        vd_super_drop_journal(&s);
    }
    vd_super_encode(&s, blk);
    if (s.jinline)
        memcpy(blk + SB_OFF_INLINE, img->sb_last + SB_OFF_INLINE,
               SB_OFF_MAC - SB_OFF_INLINE);
    if (e == VD_OK)
        e = vd_super_seal(img, blk);
    if (e == VD_OK)
        e = vd_io_write(img, (img->hdr.sb_start + s.slot) * VDF_BLOCK, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK) {
        img->failed = e;
        return e;
    }
    memcpy(img->sb_last, blk, VDF_BLOCK);
    if (clean >= 0)
        img->sb_clean = clean;
    img->slot_redo[s.slot] = s.state == SB_STATE_COMMITTED && s.jcount;
    return VD_OK;
}

vd_err vd_super_set_clean(vd_image *img, int clean)
{
    return super_rewrite(img, clean, clean);
}

vd_err vd_image_settle(vd_image *img)
{
    (void)pthread_mutex_lock(&img->lock);
    vd_err e = img->failed ? VD_ERR_FAILED : vd_flight_join(img);
    vd_super s;
    if (e == VD_OK && !img->read_only && img->sb_last &&
        vd_super_decode(&s, img->sb_last) == 0 && s.state == SB_STATE_COMMITTED &&
        s.jcount)
        e = super_rewrite(img, -1, 1);
    (void)pthread_mutex_unlock(&img->lock);
    return e;
}
