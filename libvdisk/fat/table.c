/* The file allocation table: 28-bit entries, every copy kept identical
 * (or only the active one when the BPB turns mirroring off), allocation
 * from the next-free hint so no allocation rescans the whole table. */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

int fat_valid_cluster(const vd_fs *fs, uint32_t c)
{
    return c >= FAT_FIRST_CLUSTER && c - FAT_FIRST_CLUSTER < fs->nclusters;
}

uint64_t fat_clus_off(const vd_fs *fs, uint32_t c)
{
    return fs->data_off + ((uint64_t)(c - FAT_FIRST_CLUSTER) << fs->cluster_shift);
}

static uint64_t entry_off(const vd_fs *fs, uint32_t fat, uint32_t c)
{
    return fs->fat_off + (uint64_t)fat * fs->fat_sectors * fs->bps +
           (uint64_t)c * FAT_ENTRY_BYTES;
}

vd_err fat_get(vd_fs *fs, uint32_t c, uint32_t *val)
{
    uint8_t *p;
    uint32_t which = fs->mirror ? 0 : fs->active_fat;
    vd_err e = fat_dev_ptr(fs, entry_off(fs, which, c), FAT_ENTRY_BYTES, 0, &p);
    if (e == VD_OK)
        *val = vd_get_le32(p) & FAT_MASK;
    return e;
}

/* Write the low 28 bits, keeping the reserved top 4 as found. */
static vd_err set_raw(vd_fs *fs, uint32_t c, uint32_t val, uint32_t keep_mask)
{
    for (uint32_t f = 0; f < fs->nfats; f++) {
        if (!fs->mirror && f != fs->active_fat)
            continue;
        uint8_t *p;
        vd_err e = fat_dev_ptr(fs, entry_off(fs, f, c), FAT_ENTRY_BYTES, 1, &p);
        if (e != VD_OK)
            return e;
        vd_put_le32(p, (vd_get_le32(p) & keep_mask) | (val & ~keep_mask));
    }
    return VD_OK;
}

vd_err fat_set(vd_fs *fs, uint32_t c, uint32_t val)
{
    return set_raw(fs, c, val & FAT_MASK, ~FAT_MASK);
}

vd_err fat_set_clean(vd_fs *fs, int clean)
{
    uint32_t v;
    vd_err e = fat_get(fs, 1, &v);
    if (e != VD_OK)
        return e;
    v = clean ? (v | FAT1_CLEAN) : (v & ~FAT1_CLEAN);
    return set_raw(fs, 1, v, ~FAT_MASK);
}

vd_err fat_mark_dirty(vd_fs *fs)
{
    if (fs->marked_dirty)
        return VD_OK;
    vd_err e = fat_set_clean(fs, 0);
    if (e == VD_OK)
        fs->marked_dirty = 1;
    return e;
}

vd_err fat_count_free(vd_fs *fs)
{
    enum { CHUNK = 1024 }; /* entries per read: one 4 KiB block */
    uint8_t buf[CHUNK * FAT_ENTRY_BYTES];
    uint32_t which = fs->mirror ? 0 : fs->active_fat;
    uint32_t free_n = 0, first_free = 0;
    for (uint32_t i = 0; i < fs->nclusters;) {
        uint32_t k = fs->nclusters - i < CHUNK ? fs->nclusters - i : CHUNK;
        vd_err e = fat_dev_read(fs, entry_off(fs, which, i + FAT_FIRST_CLUSTER), buf,
                                (size_t)k * FAT_ENTRY_BYTES);
        if (e != VD_OK)
            return e;
        for (uint32_t j = 0; j < k; j++)
            if ((vd_get_le32(buf + j * FAT_ENTRY_BYTES) & FAT_MASK) == FAT_FREE) {
                if (!free_n)
                    first_free = i + j + FAT_FIRST_CLUSTER;
                free_n++;
            }
        i += k;
    }
    fs->free_count = free_n;
    fs->free_exact = 1;
    if (!fat_valid_cluster(fs, fs->next_free))
        fs->next_free = free_n ? first_free : FAT_FIRST_CLUSTER;
    return VD_OK;
}

/* ---- clusters held until the commit that frees them (C4) ----
 * A cluster freed by an operation is free in the FAT at once, but the
 * committed volume still gives it to its old file until the next commit
 * that takes all the metadata. Reusing it before then would let an
 * uncommitted write reach it in place, and a crash would show those bytes
 * under the old name. So it is held: counted free, never allocated. */

static int held_has(const vd_fs *fs, uint32_t c)
{
    uint32_t i = c - FAT_FIRST_CLUSTER;
    return fs->nheld && (fs->held[i / 8] >> (i % 8)) & 1;
}

/* Forget the held clusters once a commit has taken their frees. */
static void held_refresh(vd_fs *fs)
{
    if (!fs->img || !fs->nheld)
        return;
    uint64_t gen = vd_image_meta_commits(fs->img);
    if (gen != fs->held_gen) {
        memset(fs->held, 0, ((size_t)fs->nclusters + 7) / 8);
        fs->nheld = 0;
    }
}

static vd_err held_add(vd_fs *fs, uint32_t c)
{
    if (!fs->img)
        return VD_OK;
    if (!fs->held) {
        fs->held = calloc(((size_t)fs->nclusters + 7) / 8, 1);
        if (!fs->held)
            return VD_ERR_NOMEM;
    }
    held_refresh(fs);
    if (!fs->nheld)
        fs->held_gen = vd_image_meta_commits(fs->img);
    uint32_t i = c - FAT_FIRST_CLUSTER;
    if (!((fs->held[i / 8] >> (i % 8)) & 1)) {
        fs->held[i / 8] |= (uint8_t)(1u << (i % 8));
        fs->nheld++;
    }
    return VD_OK;
}

/* Only held clusters stand between an allocation and success: commit
 * (metadata written back first) so they are free in the committed volume
 * too. The operation under way has made no change yet, except (mkdir
 * growing its parent) one allocation that this commit then holds. */
static vd_err held_release(vd_fs *fs)
{
    vd_err e = fat_dev_flush(fs);
    if (e == VD_OK)
        e = vd_image_commit_all(fs->img);
    if (e == VD_OK)
        held_refresh(fs);
    return e;
}

/* ---- clusters of files unlinked while open ----
 * Such a file (an orphan, fat_node.orphan) has no entry, so no committed
 * state may give it clusters: a crash would leave them lost. Its chain is
 * freed in the FAT by the operation that removes its entry, and what it
 * grows by is never written to the FAT at all. The clusters are pinned
 * instead: free in the FAT (and in free_count, which is the FAT's count),
 * never allocated, until the last handle closes; then they are held like
 * any other freed cluster. The node's runs are the only map of them. */

static int pinned_has(const vd_fs *fs, uint32_t c)
{
    uint32_t i = c - FAT_FIRST_CLUSTER;
    return fs->npinned && (fs->pinned[i / 8] >> (i % 8)) & 1;
}

static vd_err pin(vd_fs *fs, uint32_t c)
{
    if (!fs->pinned) {
        fs->pinned = calloc(((size_t)fs->nclusters + 7) / 8, 1);
        if (!fs->pinned)
            return VD_ERR_NOMEM;
    }
    uint32_t i = c - FAT_FIRST_CLUSTER;
    if (!((fs->pinned[i / 8] >> (i % 8)) & 1)) {
        fs->pinned[i / 8] |= (uint8_t)(1u << (i % 8));
        fs->npinned++;
    }
    return VD_OK;
}

static void unpin(vd_fs *fs, uint32_t c)
{
    uint32_t i = c - FAT_FIRST_CLUSTER;
    if (pinned_has(fs, c)) {
        fs->pinned[i / 8] &= (uint8_t)~(1u << (i % 8));
        fs->npinned--;
    }
}

/* Free clusters an allocation may take now. */
static uint32_t fat_avail(const vd_fs *fs)
{
    uint64_t busy = (uint64_t)fs->nheld + fs->npinned;
    return fs->free_count > busy ? fs->free_count - (uint32_t)busy : 0;
}

uint32_t fat_free_unpinned(const vd_fs *fs)
{
    return fs->free_count > fs->npinned ? fs->free_count - fs->npinned : 0;
}

/* Next free cluster at or after `from`, wrapping once. */
static vd_err find_free(vd_fs *fs, uint32_t from, uint32_t *out)
{
    if (!fat_valid_cluster(fs, from))
        from = FAT_FIRST_CLUSTER;
    uint32_t c = from;
    for (uint32_t i = 0; i < fs->nclusters; i++) {
        uint32_t v;
        vd_err e = fat_get(fs, c, &v);
        if (e != VD_OK)
            return e;
        if (v == FAT_FREE && !held_has(fs, c) && !pinned_has(fs, c)) {
            *out = c;
            return VD_OK;
        }
        c++;
        if (c - FAT_FIRST_CLUSTER >= fs->nclusters)
            c = FAT_FIRST_CLUSTER;
    }
    return VD_ERR_NOSPC;
}

/* Can n clusters be allocated now? Releases held clusters if only they
 * stand in the way. */
static vd_err make_room(vd_fs *fs, uint32_t n)
{
    held_refresh(fs);
    if (n > fat_avail(fs) && n <= fat_free_unpinned(fs)) {
        vd_err e = held_release(fs);
        if (e != VD_OK)
            return e;
    }
    return n > fat_avail(fs) ? VD_ERR_NOSPC : VD_OK;
}

vd_err fat_reserve(vd_fs *fs, uint32_t n)
{
    vd_err e = VD_OK;
    if (n > fs->free_count && !fs->free_exact)
        e = fat_count_free(fs);
    return e == VD_OK ? make_room(fs, n) : e;
}

/* The block holding c's entry in the first FAT (another copy may be
 * aligned otherwise: one block more per copy at most). */
uint64_t fat_entry_block(const vd_fs *fs, uint32_t c)
{
    return entry_off(fs, 0, c) / FAT_BLOCK;
}

vd_err fat_alloc(vd_fs *fs, uint32_t last, uint32_t n, uint32_t *first, fat_each_fn each,
                 void *ctx)
{
    uint32_t got = 0;
    vd_err e = fat_alloc_upto(fs, last, n, UINT32_MAX, &got, first, each, ctx);
    return e == VD_OK && got != n ? VD_ERR_CORRUPT : e;
}

vd_err fat_alloc_upto(vd_fs *fs, uint32_t last, uint32_t n, uint32_t max_blocks,
                      uint32_t *got, uint32_t *first, fat_each_fn each, void *ctx)
{
    *got = 0;
    if (n == 0 || max_blocks == 0)
        return VD_ERR_INVAL;
    /* The free count was computed at mount and kept since, so a request
     * that cannot be met fails before touching the table. */
    vd_err e;
    if (n > fs->free_count && !fs->free_exact) {
        /* FSInfo's count is only a hint: count before saying no. */
        e = fat_count_free(fs);
        if (e != VD_OK)
            return e;
    }
    e = make_room(fs, n);
    if (e != VD_OK)
        return e;
    e = fat_mark_dirty(fs);
    if (e != VD_OK)
        return e;
    uint32_t prev = last, head = 0, from = last ? last + 1 : fs->next_free;
    /* FAT blocks (per copy) changed so far: revisits count again. */
    uint32_t blocks = last ? 1 : 0, i;
    uint64_t cur = last ? fat_entry_block(fs, last) : UINT64_MAX;
    for (i = 0; i < n; i++) {
        uint32_t c = 0;
        e = find_free(fs, from, &c);
        if (e == VD_OK && fat_entry_block(fs, c) != cur) {
            if (blocks + 1 > max_blocks && i > 0)
                break; /* enough for one step: the caller commits */
            blocks++;
            cur = fat_entry_block(fs, c);
        }
        if (e == VD_OK)
            e = fat_set(fs, c, FAT_EOC);
        if (e == VD_OK && prev)
            e = fat_set(fs, prev, c);
        if (e == VD_OK && each)
            e = each(ctx, c);
        if (e != VD_OK) {
            /* Undo: cut the chain where it was and free what we took. */
            if (last)
                (void)fat_set(fs, last, FAT_EOC);
            if (head)
                (void)fat_free_chain(fs, head);
            if (e == VD_ERR_NOSPC && !fs->free_exact) {
                /* The hint was too high: recount, and the answer is no. */
                e = fat_count_free(fs);
                return e != VD_OK ? e : VD_ERR_NOSPC;
            }
            /* Our own count said there was room: the FAT changed under
             * us or a chain is damaged. */
            return e == VD_ERR_NOSPC ? VD_ERR_CORRUPT : e;
        }
        if (!head)
            head = c;
        prev = c;
        fs->free_count--;
        from = c + 1;
    }
    fs->next_free = from;
    if (!fat_valid_cluster(fs, fs->next_free))
        fs->next_free = FAT_FIRST_CLUSTER;
    *first = head;
    *got = i;
    return VD_OK;
}

vd_err fat_free_chain(vd_fs *fs, uint32_t c)
{
    vd_err e = fat_mark_dirty(fs);
    /* Bounded by the cluster count so a looping chain cannot hang us. */
    for (uint32_t guard = 0; e == VD_OK && fat_valid_cluster(fs, c); guard++) {
        if (guard > fs->nclusters)
            return VD_ERR_CORRUPT;
        uint32_t next;
        e = fat_get(fs, c, &next);
        if (e != VD_OK)
            break;
        if (next == FAT_FREE)
            return VD_ERR_CORRUPT; /* chain runs into a free cluster */
        e = fat_set(fs, c, FAT_FREE);
        if (e == VD_OK)
            e = held_add(fs, c);
        if (e != VD_OK)
            break;
        if (fs->free_count < fs->nclusters)
            fs->free_count++;
        if (next >= FAT_EOC_MIN)
            break;
        if (!fat_valid_cluster(fs, next))
            return VD_ERR_CORRUPT;
        c = next;
    }
    return e;
}

vd_err fat_orphan_alloc(vd_fs *fs, uint32_t n, fat_each_fn each, void *ctx)
{
    if (n == 0)
        return VD_ERR_INVAL;
    vd_err e = VD_OK;
    if (n > fs->free_count && !fs->free_exact)
        e = fat_count_free(fs); /* FSInfo's count is only a hint */
    if (e == VD_OK)
        e = make_room(fs, n);
    uint32_t from = fs->next_free;
    for (uint32_t i = 0; e == VD_OK && i < n; i++) {
        uint32_t c = 0;
        e = find_free(fs, from, &c);
        if (e != VD_OK)
            break;
        e = pin(fs, c);
        if (e == VD_OK && each)
            e = each(ctx, c);
        if (e != VD_OK)
            unpin(fs, c);
        from = c + 1;
    }
    /* On failure the caller releases what `each` was told (all or
     * nothing, as fat_alloc). */
    if (e == VD_ERR_NOSPC && fs->free_exact)
        return VD_ERR_CORRUPT; /* our own count said there was room */
    if (e == VD_ERR_NOSPC) {
        e = fat_count_free(fs);
        return e != VD_OK ? e : VD_ERR_NOSPC;
    }
    return e;
}

void fat_orphan_release(vd_fs *fs, uint32_t c, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++) {
        unpin(fs, c + i);
        /* Free in the FAT already; held until a commit takes the free
         * (the unlink's commit may not have happened yet). */
        if (held_add(fs, c + i) != VD_OK) {
            /* Without the held map the cluster stays pinned: unusable
             * until unmount, but never handed out too early. */
            (void)pin(fs, c + i);
        }
    }
}

vd_err fat_orphan_free(vd_fs *fs, uint32_t c, uint32_t len)
{
    vd_err e = fat_mark_dirty(fs);
    for (uint32_t i = 0; e == VD_OK && i < len; i++) {
        uint32_t v;
        e = fat_get(fs, c + i, &v);
        if (e == VD_OK && v == FAT_FREE)
            e = VD_ERR_CORRUPT; /* the chain ran into free clusters */
        if (e == VD_OK)
            e = pin(fs, c + i);
        if (e == VD_OK)
            e = fat_set(fs, c + i, FAT_FREE);
        if (e == VD_OK && fs->free_count < fs->nclusters)
            fs->free_count++;
    }
    return e;
}
