/* Per-directory in-memory index, so creating and looking up names in a
 * large directory does not scan it every time (which made filling one
 * directory quadratic). It is a cache of what dir.c would find by a scan:
 * built by one scan from authenticated blocks, kept in step by dir.c's
 * own inserts and removals, dropped whenever dir.c cannot say what
 * changed. It is never taken over the disk: positive lookups are read
 * back, slots offered as free are checked free before they are written,
 * and every use first checks that the directory's FAT chain is the one
 * indexed and that no open file shares its clusters (the only ways a
 * directory changes behind dir.c, and only on a cross-linked volume).
 * Up to DIX_DIRS directories are indexed at once, least recently used
 * going first, and together they hold at most DIX_SLOTS slots (as much as
 * 8 of the largest directories: about 80 bytes per entry, under 8 MiB for
 * one of 65536 slots), so memory stays bounded. The count must exceed
 * the depth of the paths in use: a walk from the root touches every
 * directory on its way, and with fewer places than that each walk evicted
 * the index the next one needed (building /usr/include, whose paths go 9
 * directories deep, rebuilt an index about 10,000 times). */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

#define DIX_DIRS 64u
#define DIX_SLOTS (8u * 65536u)
#define DIX_NIL UINT32_MAX
#define DIX_MAX_NEED (LFN_MAX_ENTRIES + 1u)

typedef struct dix_rec {
    uint32_t slot, first_slot;
    uint32_t nhash, ahash, shash;
    uint32_t next_n, next_a, next_s; /* hash chains; next_n links free records */
    uint8_t sfn[11];
    uint8_t named;   /* fat_dir_next returns this entry */
    uint8_t has_lfn; /* its alias also matches lookups */
} dix_rec;

/* Alias tails: a "NAME~#" pattern (digits as '#') -> every tail of that
 * many digits below `below` is in use. Open addressing, never removed. */
typedef struct dix_tail {
    uint8_t key[11];
    uint8_t used;
    uint32_t below;
} dix_tail;

struct fat_dix {
    uint32_t dir;
    uint64_t used_at;
    uint32_t nslots;  /* slots in the chain */
    uint32_t end;     /* the end marker's slot (nslots when none) */
    uint32_t cap;     /* slots the arrays below can hold */
    uint64_t *used;   /* bit per slot below end that is not deleted */
    uint32_t *rec_of; /* short-entry slot -> record, DIX_NIL */
    dix_rec *recs;
    uint32_t nrecs, caprecs, free_rec, live;
    uint32_t nb; /* buckets (power of two) */
    uint32_t *head_n, *head_a, *head_s;
    uint32_t hint[DIX_MAX_NEED + 1]; /* no run of k free slots starts below */
    uint32_t *chain, *sorted;        /* the clusters holding the slots, and sorted */
    uint32_t nclus, per;
    dix_tail *tails;
    uint32_t ntails, captails;
};

struct fat_dixset {
    fat_dix *d[DIX_DIRS];
    /* d[i]'s directory (0 when empty: no directory starts at cluster 0),
     * so a lookup scans one small array, and the slots it was counted
     * with in `slots`, the total kept within DIX_SLOTS. */
    uint32_t dir[DIX_DIRS];
    uint32_t counted[DIX_DIRS];
    uint64_t slots;
    uint64_t clock;
};

static uint32_t hash_units(const uint16_t *u, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        uint16_t c = fat_upcase(u[i]);
        h = (h ^ (c & 0xFFu)) * 16777619u;
        h = (h ^ (uint32_t)(c >> 8)) * 16777619u;
    }
    return h;
}

static uint32_t hash_sfn(const uint8_t sfn[11])
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 11; i++)
        h = (h ^ sfn[i]) * 16777619u;
    return h;
}

static void dix_destroy(fat_dix *x)
{
    if (!x)
        return;
    free(x->used);
    free(x->rec_of);
    free(x->recs);
    free(x->head_n);
    free(x->head_a);
    free(x->head_s);
    free(x->chain);
    free(x->sorted);
    free(x->tails);
    free(x);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Record the clusters that hold the directory's nslots slots. */
static vd_err chain_load(vd_fs *fs, fat_dix *x)
{
    uint32_t per = fs->cluster_bytes / DIRENT_SIZE;
    x->per = per;
    uint32_t n = (x->nslots + per - 1) / per;
    uint32_t *c = malloc(((size_t)n + 1) * sizeof *c);
    uint32_t *so = malloc(((size_t)n + 1) * sizeof *so);
    vd_err e = c && so ? VD_OK : VD_ERR_NOMEM;
    uint32_t cur = x->dir;
    for (uint32_t i = 0; e == VD_OK && i < n; i++) {
        c[i] = cur;
        if (i + 1 < n)
            e = fat_get(fs, cur, &cur);
    }
    if (e != VD_OK) {
        free(c);
        free(so);
        return e;
    }
    memcpy(so, c, (size_t)n * sizeof *so);
    qsort(so, n, sizeof *so, cmp_u32);
    free(x->chain);
    free(x->sorted);
    x->chain = c;
    x->sorted = so;
    x->nclus = n;
    return VD_OK;
}

/* Has the FAT chain changed since (cut, extended, relinked)? Only the
 * clusters a scan can reach count: 65536 slots at most. This runs on
 * every use, so instead of one fat_get per cluster it reads the entries
 * of consecutive clusters (most of a chain) a block at a time, from the
 * copy fat_get reads. */
static int chain_same(vd_fs *fs, const fat_dix *x)
{
    if (x->nclus == 0 || x->chain[0] != x->dir)
        return 0;
    uint32_t which = fs->mirror ? 0 : fs->active_fat;
    uint64_t base = fs->fat_off + (uint64_t)which * fs->fat_sectors * fs->bps;
    for (uint32_t i = 0; i < x->nclus;) {
        uint32_t c = x->chain[i];
        uint64_t off = base + (uint64_t)c * FAT_ENTRY_BYTES;
        uint32_t room = (uint32_t)((FAT_BLOCK - off % FAT_BLOCK) / FAT_ENTRY_BYTES);
        uint32_t k = 1;
        while (k < room && i + k < x->nclus && x->chain[i + k] == c + k)
            k++;
        uint8_t *p;
        if (fat_dev_ptr(fs, off, (size_t)k * FAT_ENTRY_BYTES, 0, &p) != VD_OK)
            return 0;
        for (uint32_t j = 0; j < k; j++, i++) {
            uint32_t v = vd_get_le32(p + (size_t)j * FAT_ENTRY_BYTES) & FAT_MASK;
            if (i + 1 < x->nclus ? v != x->chain[i + 1]
                                 : x->nslots < 65536u && v < FAT_EOC_MIN)
                return 0;
        }
    }
    return 1;
}

/* Do any of the clusters [c, c+len) hold this directory's slots? */
static int chain_overlaps(const fat_dix *x, uint32_t c, uint32_t len)
{
    uint32_t lo = 0, hi = x->nclus;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (x->sorted[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < x->nclus && (uint64_t)x->sorted[lo] < (uint64_t)c + len;
}

/* Only a cross-linked volume lets a file share a directory's clusters;
 * then the file's writes change the directory behind the index. */
static int node_overlaps(const fat_dix *x, const fat_node *n)
{
    if (n->first && chain_overlaps(x, n->first, 1))
        return 1;
    for (size_t r = 0; r < n->nruns; r++)
        if (chain_overlaps(x, n->runs[r].clus, n->runs[r].len))
            return 1;
    return 0;
}

/* May the index still be used: same chain, no open file on its clusters. */
static int dix_valid(vd_fs *fs, const fat_dix *x)
{
    if (!chain_same(fs, x))
        return 0;
    for (const fat_node *n = fs->nodes; n; n = n->next)
        if (node_overlaps(x, n))
            return 0;
    return 1;
}

static int bit_get(const fat_dix *x, uint32_t s)
{
    return (int)((x->used[s / 64] >> (s % 64)) & 1u);
}

static void bit_set(fat_dix *x, uint32_t s, int v)
{
    if (v)
        x->used[s / 64] |= (uint64_t)1 << (s % 64);
    else
        x->used[s / 64] &= ~((uint64_t)1 << (s % 64));
}

/* Room for `slots` slots in the per-slot arrays. */
static vd_err reserve_slots(fat_dix *x, uint32_t slots)
{
    if (slots <= x->cap)
        return VD_OK;
    uint32_t cap = x->cap ? x->cap : 256;
    while (cap < slots)
        cap *= 2;
    uint64_t *u = realloc(x->used, (size_t)cap / 64 * sizeof *u);
    if (!u)
        return VD_ERR_NOMEM;
    x->used = u;
    memset(u + x->cap / 64, 0, (size_t)(cap - x->cap) / 64 * sizeof *u);
    uint32_t *r = realloc(x->rec_of, (size_t)cap * sizeof *r);
    if (!r)
        return VD_ERR_NOMEM;
    x->rec_of = r;
    for (uint32_t i = x->cap; i < cap; i++)
        r[i] = DIX_NIL;
    x->cap = cap;
    return VD_OK;
}

static void chain_link(fat_dix *x, uint32_t i)
{
    dix_rec *r = &x->recs[i];
    uint32_t m = x->nb - 1;
    r->next_s = x->head_s[r->shash & m];
    x->head_s[r->shash & m] = i;
    r->next_n = r->next_a = DIX_NIL;
    if (r->named) {
        r->next_n = x->head_n[r->nhash & m];
        x->head_n[r->nhash & m] = i;
    }
    if (r->named && r->has_lfn) {
        r->next_a = x->head_a[r->ahash & m];
        x->head_a[r->ahash & m] = i;
    }
}

static void chain_unlink(uint32_t *head, dix_rec *recs, uint32_t i, size_t link_off)
{
    uint32_t *pp = head;
    while (*pp != DIX_NIL) {
        uint32_t *next = (uint32_t *)((uint8_t *)&recs[*pp] + link_off);
        if (*pp == i) {
            *pp = *next;
            return;
        }
        pp = next;
    }
}

/* Buckets for at least `want` records; rehashes every live record. */
static vd_err rehash(fat_dix *x, uint32_t want)
{
    uint32_t nb = x->nb ? x->nb : 64;
    while (nb < want)
        nb *= 2;
    if (nb == x->nb)
        return VD_OK;
    uint32_t *hn = malloc((size_t)nb * sizeof *hn);
    uint32_t *ha = malloc((size_t)nb * sizeof *ha);
    uint32_t *hs = malloc((size_t)nb * sizeof *hs);
    if (!hn || !ha || !hs) {
        free(hn);
        free(ha);
        free(hs);
        return VD_ERR_NOMEM;
    }
    memset(hn, 0xFF, (size_t)nb * sizeof *hn);
    memset(ha, 0xFF, (size_t)nb * sizeof *ha);
    memset(hs, 0xFF, (size_t)nb * sizeof *hs);
    free(x->head_n);
    free(x->head_a);
    free(x->head_s);
    x->head_n = hn;
    x->head_a = ha;
    x->head_s = hs;
    x->nb = nb;
    for (uint32_t s = 0; s < x->nslots && s < x->cap; s++)
        if (x->rec_of[s] != DIX_NIL)
            chain_link(x, x->rec_of[s]);
    return VD_OK;
}

/* A record for the short entry at slot (not yet in the hash chains). */
static vd_err rec_new(fat_dix *x, uint32_t slot, const uint8_t sfn[11], uint32_t *out)
{
    uint32_t i;
    if (x->free_rec != DIX_NIL) {
        i = x->free_rec;
        x->free_rec = x->recs[i].next_n;
    } else {
        if (x->nrecs == x->caprecs) {
            uint32_t c = x->caprecs ? x->caprecs * 2 : 64;
            dix_rec *r = realloc(x->recs, (size_t)c * sizeof *r);
            if (!r)
                return VD_ERR_NOMEM;
            x->recs = r;
            x->caprecs = c;
        }
        i = x->nrecs++;
    }
    dix_rec *r = &x->recs[i];
    memset(r, 0, sizeof *r);
    r->slot = slot;
    r->first_slot = slot;
    memcpy(r->sfn, sfn, 11);
    r->shash = hash_sfn(sfn);
    x->rec_of[slot] = i;
    x->live++;
    *out = i;
    return VD_OK;
}

static void set_names(dix_rec *r, const uint16_t *name, size_t n, uint32_t first_slot)
{
    r->named = 1;
    r->first_slot = first_slot;
    r->has_lfn = first_slot != r->slot;
    r->nhash = hash_units(name, n);
    if (r->has_lfn) {
        uint16_t sn[16];
        size_t sl = fat_sfn_to_utf16(r->sfn, 0, sn);
        r->ahash = hash_units(sn, sl);
    }
}

/* Pass 1 reads every slot as fat_dir_add's scan did (used slots, short
 * names, the end marker); pass 2 takes the names fat_dir_next gives. */
static vd_err build(vd_fs *fs, fat_dix *x)
{
    fat_dirit it;
    fat_dirit_init(&it, x->dir);
    int ended = 0;
    uint32_t slot = 0;
    vd_err e = VD_OK;
    x->end = UINT32_MAX;
    for (;; slot++) {
        uint64_t off;
        e = fat_dir_slot_off(fs, &it, slot, &off);
        if (e == VD_ERR_NOENT)
            break;
        if (e == VD_OK)
            e = reserve_slots(x, slot + 1);
        if (e != VD_OK)
            return e;
        if (ended)
            continue;
        uint8_t b[DIRENT_SIZE];
        e = fat_dev_read(fs, off, b, sizeof b);
        if (e != VD_OK)
            return e;
        if (b[0] == DIR_END_BYTE) {
            ended = 1;
            x->end = slot;
            continue;
        }
        if (b[0] == DIR_FREE_BYTE)
            continue;
        bit_set(x, slot, 1);
        if ((b[DIR_ATTR] & ATTR_LONG_NAME_MASK) != ATTR_LONG_NAME &&
            !(b[DIR_ATTR] & ATTR_VOLUME_ID)) {
            uint32_t i;
            e = rec_new(x, slot, b, &i);
            if (e != VD_OK)
                return e;
        }
    }
    x->nslots = slot;
    if (x->end == UINT32_MAX)
        x->end = slot;
    e = chain_load(fs, x);
    if (e == VD_OK)
        e = rehash(x, x->live * 2);
    if (e != VD_OK)
        return e;
    /* rehash linked the records unnamed; relink as names are learnt */
    memset(x->head_s, 0xFF, (size_t)x->nb * sizeof *x->head_s);
    fat_dent *d = malloc(sizeof *d);
    if (!d)
        return VD_ERR_NOMEM;
    fat_dirit_init(&it, x->dir);
    while ((e = fat_dir_next(fs, &it, d)) == VD_OK) {
        if (d->slot >= x->cap || x->rec_of[d->slot] == DIX_NIL) {
            e = VD_ERR_CORRUPT; /* the two passes disagree: do not index */
            break;
        }
        set_names(&x->recs[x->rec_of[d->slot]], d->name, d->nlen, d->first_slot);
    }
    free(d);
    if (e != VD_ERR_NOENT)
        return e;
    for (uint32_t s = 0; s < x->nslots; s++)
        if (x->rec_of[s] != DIX_NIL)
            chain_link(x, x->rec_of[s]);
    return dix_valid(fs, x) ? VD_OK : VD_ERR_CORRUPT;
}

static struct fat_dixset *set_of(vd_fs *fs, int create)
{
    if (!fs->dix && create)
        fs->dix = calloc(1, sizeof *fs->dix);
    return fs->dix;
}

static void set_remove(struct fat_dixset *set, unsigned i)
{
    dix_destroy(set->d[i]);
    set->d[i] = NULL;
    set->dir[i] = 0;
    set->slots -= set->counted[i];
    set->counted[i] = 0;
}

/* A directory grows while indexed: count its slots as they are now. */
static void set_recount(struct fat_dixset *set, unsigned i)
{
    set->slots = set->slots - set->counted[i] + set->d[i]->nslots;
    set->counted[i] = set->d[i]->nslots;
}

fat_dix *fat_dix_find(vd_fs *fs, uint32_t dir)
{
    struct fat_dixset *set = set_of(fs, 0);
    if (!set)
        return NULL;
    for (unsigned i = 0; i < DIX_DIRS; i++)
        if (set->dir[i] == dir && set->d[i]) {
            if (!dix_valid(fs, set->d[i])) {
                set_remove(set, i);
                return NULL;
            }
            set->d[i]->used_at = ++set->clock;
            set_recount(set, i);
            return set->d[i];
        }
    return NULL;
}

void fat_dix_note_node(vd_fs *fs, const fat_node *n)
{
    struct fat_dixset *set = set_of(fs, 0);
    if (!set || !n)
        return;
    for (unsigned i = 0; i < DIX_DIRS; i++)
        if (set->d[i] && node_overlaps(set->d[i], n))
            set_remove(set, i);
}

/* Evict the least recently used indexes other than keep until extra more
 * slots fit DIX_SLOTS and, with need_place, a place is free; returns that
 * place (DIX_DIRS when none is needed). keep alone always fits: a
 * directory has at most 65536 slots. */
static unsigned make_room(struct fat_dixset *set, const fat_dix *keep, uint64_t extra,
                          int need_place)
{
    for (;;) {
        unsigned victim = DIX_DIRS, free_at = DIX_DIRS;
        for (unsigned i = 0; i < DIX_DIRS; i++) {
            const fat_dix *d = set->d[i];
            if (!d)
                free_at = i;
            else if (d != keep &&
                     (victim == DIX_DIRS || d->used_at < set->d[victim]->used_at))
                victim = i;
        }
        int fits = set->slots + extra <= DIX_SLOTS;
        if ((fits && (free_at < DIX_DIRS || !need_place)) || victim == DIX_DIRS)
            return need_place ? free_at : DIX_DIRS;
        set_remove(set, victim);
    }
}

fat_dix *fat_dix_get(vd_fs *fs, uint32_t dir)
{
    fat_dix *x = fat_dix_find(fs, dir);
    if (x) {
        if (fs->dix->slots > DIX_SLOTS)
            (void)make_room(fs->dix, x, 0, 0);
        return x;
    }
    struct fat_dixset *set = set_of(fs, 1);
    if (!set)
        return NULL;
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->dir = dir;
    x->free_rec = DIX_NIL;
    if (build(fs, x) != VD_OK) {
        /* the caller's scan meets the same failure and reports it */
        dix_destroy(x);
        return NULL;
    }
    unsigned at = make_room(set, NULL, x->nslots, 1);
    x->used_at = ++set->clock;
    set->d[at] = x;
    set->dir[at] = dir;
    set_recount(set, at);
    return x;
}

void fat_dix_drop(vd_fs *fs, uint32_t dir)
{
    struct fat_dixset *set = set_of(fs, 0);
    if (!set)
        return;
    for (unsigned i = 0; i < DIX_DIRS; i++)
        if (set->d[i] && set->dir[i] == dir)
            set_remove(set, i);
}

void fat_dix_free_all(vd_fs *fs)
{
    struct fat_dixset *set = set_of(fs, 0);
    if (!set)
        return;
    for (unsigned i = 0; i < DIX_DIRS; i++)
        dix_destroy(set->d[i]);
    free(set);
    fs->dix = NULL;
}

int fat_dix_sfn_has(const fat_dix *x, const uint8_t sfn[11])
{
    uint32_t h = hash_sfn(sfn);
    for (uint32_t i = x->head_s[h & (x->nb - 1)]; i != DIX_NIL; i = x->recs[i].next_s)
        if (x->recs[i].shash == h && memcmp(x->recs[i].sfn, sfn, 11) == 0)
            return 1;
    return 0;
}

size_t fat_dix_candidates(const fat_dix *x, const uint16_t *name, size_t n, int alias,
                          uint32_t *first_slots, size_t max)
{
    uint32_t h = hash_units(name, n);
    size_t k = 0;
    uint32_t i = (alias ? x->head_a : x->head_n)[h & (x->nb - 1)];
    while (i != DIX_NIL) {
        const dix_rec *r = &x->recs[i];
        if ((alias ? r->ahash : r->nhash) == h) {
            if (k == max)
                return max + 1;
            first_slots[k++] = r->first_slot;
        }
        i = alias ? r->next_a : r->next_n;
    }
    qsort(first_slots, k, sizeof *first_slots, cmp_u32);
    return k;
}

int fat_dix_matches(const fat_dix *x, uint32_t first_slot, uint32_t slot)
{
    return slot < x->nslots && x->rec_of[slot] != DIX_NIL &&
           x->recs[x->rec_of[slot]].named &&
           x->recs[x->rec_of[slot]].first_slot == first_slot;
}

uint32_t fat_dix_find_run(fat_dix *x, uint32_t k)
{
    if (k == 0 || k > DIX_MAX_NEED)
        return UINT32_MAX;
    uint32_t s = x->hint[k], len = 0;
    for (uint32_t i = s; i < x->nslots;) {
        if (i % 64 == 0 && i + 64 <= x->nslots && x->used[i / 64] == UINT64_MAX) {
            len = 0;
            i += 64;
            s = i;
            continue;
        }
        if (bit_get(x, i)) {
            len = 0;
            s = ++i;
            continue;
        }
        i++;
        if (++len == k) {
            x->hint[k] = s;
            return s;
        }
    }
    x->hint[k] = x->nslots - len;
    return UINT32_MAX;
}

uint32_t fat_dix_tail(const fat_dix *x)
{
    uint32_t s = x->nslots;
    while (s > 0 && !bit_get(x, s - 1))
        s--;
    return s;
}

void fat_dix_place(const fat_dix *x, uint32_t slot, fat_dirit *it)
{
    if (x && x->per && slot / x->per < x->nclus) {
        it->cidx = slot / x->per;
        it->clus = x->chain[it->cidx];
    }
}

uint32_t fat_dix_nslots(const fat_dix *x)
{
    return x->nslots;
}

uint32_t fat_dix_end(const fat_dix *x)
{
    return x->end;
}

vd_err fat_dix_note_add(vd_fs *fs, fat_dix *x, uint32_t first_slot, uint32_t slot,
                        const uint8_t sfn[11], const uint16_t *name, size_t n,
                        uint32_t nslots, uint32_t end)
{
    vd_err e = reserve_slots(x, nslots);
    if (e != VD_OK)
        return e;
    uint32_t was = x->nslots;
    x->nslots = nslots;
    if (nslots != was) {
        e = chain_load(fs, x);
        if (e != VD_OK)
            return e;
    }
    x->end = end;
    for (uint32_t s = first_slot; s <= slot; s++)
        bit_set(x, s, 1);
    if (x->rec_of[slot] != DIX_NIL)
        return VD_ERR_CORRUPT; /* a record in a slot thought free */
    if (x->live + 1 > x->nb) {
        e = rehash(x, (x->live + 1) * 2);
        if (e != VD_OK)
            return e;
    }
    uint32_t i;
    e = rec_new(x, slot, sfn, &i);
    if (e != VD_OK)
        return e;
    set_names(&x->recs[i], name, n, first_slot);
    chain_link(x, i);
    return VD_OK;
}

/* ---- alias tails ---- */

static dix_tail *tail_slot(const fat_dix *x, const uint8_t key[11])
{
    if (!x->captails)
        return NULL;
    uint32_t m = x->captails - 1;
    for (uint32_t i = hash_sfn(key) & m;; i = (i + 1) & m) {
        dix_tail *t = &x->tails[i];
        if (!t->used || memcmp(t->key, key, 11) == 0)
            return t;
    }
}

uint32_t fat_dix_tail_below(const fat_dix *x, const uint8_t key[11])
{
    const dix_tail *t = tail_slot(x, key);
    return t && t->used ? t->below : 0;
}

vd_err fat_dix_tail_set(fat_dix *x, const uint8_t key[11], uint32_t below)
{
    if ((x->ntails + 1) * 2 > x->captails) {
        uint32_t cap = x->captails ? x->captails * 2 : 64;
        dix_tail *old = x->tails;
        uint32_t oldcap = x->captails;
        x->tails = calloc(cap, sizeof *x->tails);
        if (!x->tails) {
            x->tails = old;
            return VD_ERR_NOMEM;
        }
        x->captails = cap;
        for (uint32_t i = 0; i < oldcap; i++)
            if (old[i].used)
                *tail_slot(x, old[i].key) = old[i];
        free(old);
    }
    dix_tail *t = tail_slot(x, key);
    if (!t->used) {
        memcpy(t->key, key, 11);
        t->used = 1;
        x->ntails++;
    }
    t->below = below;
    return VD_OK;
}

/* Split a short name "PREFIX~123" into its pattern key and tail value;
 * 0 when it has no "~digits" tail. */
int fat_dix_tail_key(const uint8_t sfn[11], uint8_t key[11], uint32_t *tail)
{
    int len = 8;
    while (len > 0 && sfn[len - 1] == ' ')
        len--;
    int nd = 0;
    while (nd < len && sfn[len - 1 - nd] >= '0' && sfn[len - 1 - nd] <= '9')
        nd++;
    if (nd == 0 || nd > 7 || nd >= len || sfn[len - 1 - nd] != '~')
        return 0;
    memcpy(key, sfn, 11);
    uint32_t v = 0;
    for (int i = len - nd; i < len; i++) {
        v = v * 10 + (uint32_t)(sfn[i] - '0');
        key[i] = '#';
    }
    *tail = v;
    return 1;
}

vd_err fat_dix_note_remove(fat_dix *x, uint32_t first_slot, uint32_t slot)
{
    if (!fat_dix_matches(x, first_slot, slot))
        return VD_ERR_CORRUPT;
    uint32_t i = x->rec_of[slot];
    dix_rec *r = &x->recs[i];
    uint32_t m = x->nb - 1;
    chain_unlink(&x->head_s[r->shash & m], x->recs, i, offsetof(dix_rec, next_s));
    chain_unlink(&x->head_n[r->nhash & m], x->recs, i, offsetof(dix_rec, next_n));
    if (r->has_lfn)
        chain_unlink(&x->head_a[r->ahash & m], x->recs, i, offsetof(dix_rec, next_a));
    uint8_t key[11];
    uint32_t tail;
    if (fat_dix_tail_key(r->sfn, key, &tail)) {
        dix_tail *t = tail_slot(x, key);
        if (t && t->used && t->below > tail)
            t->below = tail; /* that tail is free again */
    }
    x->rec_of[slot] = DIX_NIL;
    r->next_n = x->free_rec;
    x->free_rec = i;
    x->live--;
    for (uint32_t s = first_slot; s <= slot; s++)
        bit_set(x, s, 0);
    for (uint32_t k = 1; k <= DIX_MAX_NEED; k++) {
        uint32_t lo = first_slot >= k - 1 ? first_slot - (k - 1) : 0;
        if (x->hint[k] > lo)
            x->hint[k] = lo;
    }
    return VD_OK;
}
