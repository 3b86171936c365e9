/* Directories: chains of 32-byte slots holding short (8.3) entries, each
 * optionally preceded by long-name (LFN) entries. Deleted slots (0xE5) are
 * reused; a directory grows by whole zeroed clusters. */
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

/* FAT limits a directory to 65536 slots (2 MiB). */
#define DIR_MAX_SLOTS 65536u

void fat_dirit_init(fat_dirit *it, uint32_t first)
{
    it->first = first;
    it->clus = first;
    it->cidx = 0;
    it->slot = 0;
}

vd_err fat_dir_slot_off(vd_fs *fs, fat_dirit *it, uint32_t slot, uint64_t *off)
{
    uint32_t per = fs->cluster_bytes / DIRENT_SIZE;
    uint32_t target = slot / per;
    if (slot >= DIR_MAX_SLOTS)
        return VD_ERR_NOENT;
    if (target < it->cidx) {
        it->clus = it->first;
        it->cidx = 0;
    }
    if (!fat_valid_cluster(fs, it->clus))
        return VD_ERR_CORRUPT;
    while (it->cidx < target) {
        uint32_t next;
        vd_err e = fat_get(fs, it->clus, &next);
        if (e != VD_OK)
            return e;
        if (next >= FAT_EOC_MIN)
            return VD_ERR_NOENT;
        if (!fat_valid_cluster(fs, next))
            return VD_ERR_CORRUPT;
        it->clus = next;
        it->cidx++;
    }
    *off = fat_clus_off(fs, it->clus) + (uint64_t)(slot % per) * DIRENT_SIZE;
    return VD_OK;
}

void fat_dent_decode(const uint8_t e[32], fat_dent *d)
{
    memcpy(d->sfn, e + DIR_NAME, 11);
    d->attr = e[DIR_ATTR];
    d->ntres = e[DIR_NTRES];
    d->ctenth = e[DIR_CRT_TENTH];
    d->ctime = vd_get_le16(e + DIR_CRT_TIME);
    d->cdate = vd_get_le16(e + DIR_CRT_DATE);
    d->adate = vd_get_le16(e + DIR_LST_ACC_DATE);
    d->mtime = vd_get_le16(e + DIR_WRT_TIME);
    d->mdate = vd_get_le16(e + DIR_WRT_DATE);
    d->first = ((uint32_t)vd_get_le16(e + DIR_FST_CLUS_HI) << 16) |
               vd_get_le16(e + DIR_FST_CLUS_LO);
    d->first &= FAT_MASK;
    d->size = vd_get_le32(e + DIR_FILE_SIZE);
}

void fat_dent_encode(const fat_dent *d, uint8_t e[32])
{
    memcpy(e + DIR_NAME, d->sfn, 11);
    e[DIR_ATTR] = d->attr;
    e[DIR_NTRES] = d->ntres;
    e[DIR_CRT_TENTH] = d->ctenth;
    vd_put_le16(e + DIR_CRT_TIME, d->ctime);
    vd_put_le16(e + DIR_CRT_DATE, d->cdate);
    vd_put_le16(e + DIR_LST_ACC_DATE, d->adate);
    vd_put_le16(e + DIR_FST_CLUS_HI, (uint16_t)(d->first >> 16));
    vd_put_le16(e + DIR_WRT_TIME, d->mtime);
    vd_put_le16(e + DIR_WRT_DATE, d->mdate);
    vd_put_le16(e + DIR_FST_CLUS_LO, (uint16_t)d->first);
    vd_put_le32(e + DIR_FILE_SIZE, d->size);
}

static void lfn_units(const uint8_t e[32], uint16_t u[13])
{
    for (int i = 0; i < 5; i++)
        u[i] = vd_get_le16(e + LDIR_NAME1 + 2 * i);
    for (int i = 0; i < 6; i++)
        u[5 + i] = vd_get_le16(e + LDIR_NAME2 + 2 * i);
    for (int i = 0; i < 2; i++)
        u[11 + i] = vd_get_le16(e + LDIR_NAME3 + 2 * i);
}

/* A name read from disk can be handed out only if a path can name it
 * again: not empty, not "." or "..", no '/' (FAT forbids all of these; a
 * hostile volume has them). */
static int name_usable(const uint16_t *u, size_t n)
{
    if (n == 0 || (n <= 2 && u[0] == '.' && u[n - 1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] == '/' || u[i] == 0)
            return 0;
    return 1;
}

vd_err fat_dir_next(vd_fs *fs, fat_dirit *it, fat_dent *d)
{
    uint16_t lfn[LFN_MAX_ENTRIES * LFN_UNITS_PER_ENTRY];
    unsigned want = 0, total = 0; /* next LFN ordinal expected, count */
    uint8_t chk = 0;
    uint32_t lfn_first = 0;
    for (;;) {
        uint64_t off;
        vd_err e = fat_dir_slot_off(fs, it, it->slot, &off);
        if (e != VD_OK)
            return e;
        uint8_t b[DIRENT_SIZE];
        e = fat_dev_read(fs, off, b, sizeof b);
        if (e != VD_OK)
            return e;
        uint32_t slot = it->slot++;
        if (b[0] == DIR_END_BYTE) {
            it->slot--; /* stay at the end marker */
            return VD_ERR_NOENT;
        }
        if (b[0] == DIR_FREE_BYTE) {
            want = 0;
            continue;
        }
        if ((b[DIR_ATTR] & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME) {
            unsigned ord = b[LDIR_ORD] & LDIR_ORD_MASK;
            if (ord < 1 || ord > LFN_MAX_ENTRIES) {
                want = 0;
                continue;
            }
            if (b[LDIR_ORD] & LDIR_LAST) {
                total = ord;
                chk = b[LDIR_CHKSUM];
                lfn_first = slot;
            } else if (!want || ord != want || b[LDIR_CHKSUM] != chk) {
                want = 0; /* orphaned piece: ignore, as fsck would */
                continue;
            }
            lfn_units(b, lfn + (ord - 1) * LFN_UNITS_PER_ENTRY);
            want = ord - 1;
            if (want == 0)
                want = 0x100; /* complete: the short entry must follow */
            continue;
        }
        int have_lfn = want == 0x100;
        want = 0;
        if (b[DIR_ATTR] & ATTR_VOLUME_ID)
            continue;
        if (b[0] == '.' && (b[1] == ' ' || (b[1] == '.' && b[2] == ' ')))
            continue;
        fat_dent_decode(b, d);
        d->slot = slot;
        d->first_slot = slot;
        if (have_lfn && fat_lfn_checksum(b) == chk) {
            size_t n = 0, max = (size_t)total * LFN_UNITS_PER_ENTRY;
            while (n < max && lfn[n] != 0)
                n++;
            if (n > 0 && n <= FAT_NAME_MAX && name_usable(lfn, n)) {
                memcpy(d->name, lfn, n * sizeof(uint16_t));
                d->nlen = n;
                d->first_slot = lfn_first;
                return VD_OK;
            }
        }
        d->nlen = fat_sfn_to_utf16(b, d->ntres, d->name);
        if (!name_usable(d->name, d->nlen))
            continue; /* e.g. an all-blank short name: not addressable */
        return VD_OK;
    }
}

/* Names match case-insensitively. As on Windows and Linux, the 8.3 alias
 * of a long name also matches ("LONGFI~1.TXT"), but a long name that
 * matches wins over an alias met earlier in the directory. */
/* The entry whose slots begin at first_slot, decoded as a scan would. */
static vd_err dent_at(vd_fs *fs, const fat_dix *x, uint32_t dir, uint32_t first_slot,
                      fat_dent *d)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dix_place(x, first_slot, &it);
    it.slot = first_slot;
    return fat_dir_next(fs, &it, d);
}

#define LOOKUP_MAX_CAND 16u

/* The scan's answer, from the directory's index: candidates by hash, in
 * slot order, each read back from the disk. 1: answered in *res; 0: the
 * caller scans (no index, too many candidates, or the index disagrees
 * with the disk, in which case it is dropped). */
static int lookup_indexed(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                          fat_dent *d, vd_err *res)
{
    fat_dix *x = fat_dix_get(fs, dir);
    if (!x)
        return 0;
    uint32_t cand[LOOKUP_MAX_CAND];
    for (int alias = 0; alias < 2 && (!alias || n <= 12); alias++) {
        size_t k = fat_dix_candidates(x, name, n, alias, cand, LOOKUP_MAX_CAND);
        if (k > LOOKUP_MAX_CAND)
            return 0;
        for (size_t i = 0; i < k; i++) {
            vd_err e = dent_at(fs, x, dir, cand[i], d);
            if (e != VD_OK || d->first_slot != cand[i] ||
                !fat_dix_matches(x, d->first_slot, d->slot)) {
                fat_dix_drop(fs, dir);
                return 0;
            }
            if (!alias && fat_name_equal(d->name, d->nlen, name, n)) {
                *res = VD_OK;
                return 1;
            }
            if (alias && d->first_slot != d->slot) {
                uint16_t sn[16];
                size_t sl = fat_sfn_to_utf16(d->sfn, 0, sn);
                if (fat_name_equal(sn, sl, name, n)) {
                    *res = VD_OK;
                    return 1;
                }
            }
        }
    }
    *res = VD_ERR_NOENT;
    return 1;
}

vd_err fat_dir_lookup(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                      fat_dent *d)
{
    vd_err res;
    if (lookup_indexed(fs, dir, name, n, d, &res))
        return res;
    fat_dirit it;
    fat_dirit_init(&it, dir);
    int have_alias = 0;
    fat_dent *alias = malloc(sizeof *alias);
    if (!alias)
        return VD_ERR_NOMEM;
    vd_err e;
    for (;;) {
        e = fat_dir_next(fs, &it, d);
        if (e != VD_OK)
            break;
        if (fat_name_equal(d->name, d->nlen, name, n))
            break;
        if (!have_alias && d->first_slot != d->slot && n <= 12) {
            uint16_t sn[16];
            size_t sl = fat_sfn_to_utf16(d->sfn, 0, sn);
            if (fat_name_equal(sn, sl, name, n)) {
                *alias = *d;
                have_alias = 1;
            }
        }
    }
    if (e == VD_ERR_NOENT && have_alias) {
        *d = *alias;
        e = VD_OK;
    }
    free(alias);
    return e;
}

vd_err fat_dir_read_slot(vd_fs *fs, uint32_t dir, uint32_t slot, fat_dent *d)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    uint64_t off;
    vd_err e = fat_dir_slot_off(fs, &it, slot, &off);
    uint8_t b[DIRENT_SIZE];
    if (e == VD_OK)
        e = fat_dev_read(fs, off, b, sizeof b);
    if (e == VD_OK)
        fat_dent_decode(b, d);
    return e == VD_ERR_NOENT ? VD_ERR_CORRUPT : e;
}

vd_err fat_dir_update(vd_fs *fs, uint32_t dir, uint32_t slot, const fat_dent *d)
{
    /* An open file stores its entry after writing: the last moment to
     * see that it wrote into an indexed directory's clusters. */
    fat_dix_note_node(fs, fat_node_find(fs, dir, slot));
    fat_dirit it;
    fat_dirit_init(&it, dir);
    uint64_t off;
    vd_err e = fat_dir_slot_off(fs, &it, slot, &off);
    uint8_t b[DIRENT_SIZE];
    if (e == VD_OK)
        e = fat_dev_read(fs, off, b, sizeof b);
    if (e != VD_OK)
        return e == VD_ERR_NOENT ? VD_ERR_CORRUPT : e;
    fat_dent upd = *d;
    memcpy(upd.sfn, b + DIR_NAME, 11); /* the name stays as stored */
    upd.ntres = b[DIR_NTRES];
    fat_dent_encode(&upd, b);
    return fat_dev_write(fs, off, b, sizeof b);
}

vd_err fat_dir_remove(vd_fs *fs, uint32_t dir, const fat_dent *d)
{
    fat_dix *x = fat_dix_find(fs, dir);
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dix_place(x, d->first_slot, &it);
    vd_err e = VD_OK;
    for (uint32_t s = d->first_slot; e == VD_OK && s <= d->slot; s++) {
        uint64_t off;
        e = fat_dir_slot_off(fs, &it, s, &off);
        uint8_t mark = DIR_FREE_BYTE;
        if (e == VD_OK)
            e = fat_dev_write(fs, off, &mark, 1);
    }
    if (x && (e != VD_OK || fat_dix_note_remove(x, d->first_slot, d->slot) != VD_OK))
        fat_dix_drop(fs, dir);
    return e;
}

/* ---- inserting ---- */

typedef struct sfn_set {
    uint8_t (*v)[11];
    size_t n, cap;
} sfn_set;

static int sfn_has(const void *ctx, const uint8_t name[11])
{
    const sfn_set *s = ctx;
    for (size_t i = 0; i < s->n; i++)
        if (memcmp(s->v[i], name, 11) == 0)
            return 1;
    return 0;
}

static vd_err sfn_add(sfn_set *s, const uint8_t name[11])
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint8_t(*v)[11] = realloc(s->v, cap * sizeof *v);
        if (!v)
            return VD_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    memcpy(s->v[s->n++], name, 11);
    return VD_OK;
}

/* One pass over the directory: every short name in use, the first free
 * slot and the first run of `need` free slots (UINT32_MAX: none), and
 * where the trailing free slots begin. */
static vd_err scan_dir(vd_fs *fs, uint32_t dir, uint32_t need, sfn_set *set,
                       uint32_t *run1, uint32_t *run, uint32_t *tail, uint32_t *nslots)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    uint32_t free_start = 0, free_len = 0, slot = 0;
    int ended = 0;
    *run = *run1 = UINT32_MAX;
    for (;; slot++) {
        uint64_t off;
        vd_err e = fat_dir_slot_off(fs, &it, slot, &off);
        if (e == VD_ERR_NOENT)
            break;
        if (e != VD_OK)
            return e;
        uint8_t b[DIRENT_SIZE];
        if (!ended) {
            e = fat_dev_read(fs, off, b, sizeof b);
            if (e != VD_OK)
                return e;
            if (b[0] == DIR_END_BYTE)
                ended = 1;
        }
        if (ended || b[0] == DIR_FREE_BYTE) {
            if (free_len == 0)
                free_start = slot;
            free_len++;
            if (*run1 == UINT32_MAX)
                *run1 = slot;
            if (free_len >= need && *run == UINT32_MAX)
                *run = free_start;
            continue;
        }
        free_len = 0;
        if ((b[DIR_ATTR] & ATTR_LONG_NAME_MASK) != ATTR_LONG_NAME &&
            !(b[DIR_ATTR] & ATTR_VOLUME_ID)) {
            e = sfn_add(set, b);
            if (e != VD_OK)
                return e;
        }
    }
    *tail = free_len ? free_start : slot;
    *nslots = slot;
    return VD_OK;
}

/* Append zeroed clusters to a directory so it has at least `slots`. */
static vd_err grow_dir(vd_fs *fs, uint32_t dir, uint32_t have, uint32_t slots,
                       uint32_t *now)
{
    uint32_t per = fs->cluster_bytes / DIRENT_SIZE;
    uint32_t add = (slots - have + per - 1) / per;
    *now = have + add * per;
    uint32_t last = dir, guard = 0, next;
    for (;;) { /* find the chain's end */
        vd_err e = fat_get(fs, last, &next);
        if (e != VD_OK)
            return e;
        if (next >= FAT_EOC_MIN)
            break;
        if (!fat_valid_cluster(fs, next) || ++guard > fs->nclusters)
            return VD_ERR_CORRUPT;
        last = next;
    }
    uint32_t first;
    vd_err e = fat_alloc(fs, last, add, &first, NULL, NULL);
    for (uint32_t c = first, i = 0; e == VD_OK && i < add; i++) {
        e = fat_dev_zero(fs, fat_clus_off(fs, c), fs->cluster_bytes);
        if (e == VD_OK && i + 1 < add)
            e = fat_get(fs, c, &c);
    }
    return e;
}

/* Is this short name in use in the directory? */
typedef int (*sfn_used_fn)(const void *ctx, const uint8_t sfn[11]);

static int dix_has(const void *ctx, const uint8_t sfn[11])
{
    return fat_dix_sfn_has(ctx, sfn);
}

static vd_err pick_alias(const uint16_t *name, size_t n, sfn_used_fn used,
                         const void *set, fat_dix *x, uint8_t sfn[11], uint8_t *ntres,
                         int *need_lfn)
{
    *ntres = 0;
    if (fat_name_fits_83(name, n, sfn, ntres) && !used(set, sfn)) {
        *need_lfn = 0;
        return VD_OK;
    }
    *ntres = 0;
    *need_lfn = 1;
    uint8_t basis[11];
    int lossy;
    fat_name_basis(name, n, basis, &lossy);
    if (!lossy && !used(set, basis)) {
        memcpy(sfn, basis, 11);
        return VD_OK;
    }
    /* The lowest free tail, as a scan finds it. With an index, tails of
     * one length known to be taken are skipped: filling a directory with
     * similar long names would otherwise try every earlier tail. */
    for (uint32_t lo = 1; lo < 1000000; lo *= 10) {
        uint32_t hi = lo * 10, t = lo, below;
        uint8_t key[11];
        int keyed = 0;
        if (x) {
            fat_name_tail(basis, lo, sfn);
            keyed = fat_dix_tail_key(sfn, key, &below);
            below = keyed ? fat_dix_tail_below(x, key) : 0;
            if (below > t)
                t = below;
        }
        for (; t < hi; t++) {
            fat_name_tail(basis, t, sfn);
            if (!used(set, sfn))
                break;
        }
        /* A hint not recorded (no memory) only costs the next search. */
        if (keyed)
            (void)fat_dix_tail_set(x, key, t);
        if (t < hi)
            return VD_OK;
    }
    return VD_ERR_NOSPC;
}

/* Write the entry: nl LFN slots from start, then the short entry. */
static vd_err write_entry(vd_fs *fs, const fat_dix *x, uint32_t dir, uint32_t start,
                          uint32_t nl, const uint16_t *name, size_t n,
                          const uint8_t sfn[11], uint8_t ntres, const fat_dent *proto)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dix_place(x, start, &it);
    uint8_t chk = fat_lfn_checksum(sfn);
    for (uint32_t i = 0; i < nl; i++) {
        uint32_t ord = nl - i; /* highest ordinal first on disk */
        uint8_t b[DIRENT_SIZE];
        memset(b, 0, sizeof b);
        b[LDIR_ORD] = (uint8_t)(ord | (i == 0 ? LDIR_LAST : 0));
        b[LDIR_ATTR] = ATTR_LONG_NAME;
        b[LDIR_CHKSUM] = chk;
        for (uint32_t k = 0; k < LFN_UNITS_PER_ENTRY; k++) {
            size_t idx = (size_t)(ord - 1) * LFN_UNITS_PER_ENTRY + k;
            /* One NUL after the name, then 0xFFFF padding. */
            uint16_t u = idx < n ? name[idx] : idx == n ? 0 : 0xFFFF;
            size_t at = k < 5    ? LDIR_NAME1 + 2 * k
                        : k < 11 ? LDIR_NAME2 + 2 * (k - 5)
                                 : LDIR_NAME3 + 2 * (k - 11);
            vd_put_le16(b + at, u);
        }
        uint64_t off;
        vd_err e = fat_dir_slot_off(fs, &it, start + i, &off);
        if (e == VD_OK)
            e = fat_dev_write(fs, off, b, sizeof b);
        if (e != VD_OK)
            return e == VD_ERR_NOENT ? VD_ERR_CORRUPT : e;
    }
    fat_dent d = *proto;
    memcpy(d.sfn, sfn, 11);
    d.ntres = ntres;
    uint8_t b[DIRENT_SIZE];
    memset(b, 0, sizeof b);
    fat_dent_encode(&d, b);
    uint64_t off;
    vd_err e = fat_dir_slot_off(fs, &it, start + nl, &off);
    if (e == VD_OK)
        e = fat_dev_write(fs, off, b, sizeof b);
    return e == VD_ERR_NOENT ? VD_ERR_CORRUPT : e;
}

/* First byte of a slot; *past when the chain ends before it. */
static vd_err slot_byte(vd_fs *fs, const fat_dix *x, fat_dirit *it, uint32_t slot,
                        uint8_t b[DIRENT_SIZE], int *past)
{
    uint64_t off;
    if (slot < it->cidx * (fs->cluster_bytes / DIRENT_SIZE))
        fat_dix_place(x, slot, it); /* backwards: from the chain, not the start */
    *past = 0;
    vd_err e = fat_dir_slot_off(fs, it, slot, &off);
    if (e == VD_ERR_NOENT) {
        *past = 1;
        return VD_OK;
    }
    return e == VD_OK ? fat_dev_read(fs, off, b, DIRENT_SIZE) : e;
}

/* The index offers [start, start+need) as free: nothing live may be
 * overwritten on its word, so the disk must agree (deleted slots before
 * the end marker, the marker itself, anything after it). */
static vd_err check_free(vd_fs *fs, const fat_dix *x, uint32_t dir, uint32_t start,
                         uint32_t need, int *ok)
{
    uint32_t end = fat_dix_end(x);
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dix_place(x, start, &it);
    *ok = 1;
    for (uint32_t s = start; *ok && s < start + need && s <= end; s++) {
        uint8_t b[DIRENT_SIZE];
        int past;
        vd_err e = slot_byte(fs, x, &it, s, b, &past);
        if (e != VD_OK)
            return e;
        if (past)
            break;
        *ok = b[0] == (s < end ? DIR_FREE_BYTE : DIR_END_BYTE);
    }
    return VD_OK;
}

/* After writing [start, last) the index learns the entry, and where the
 * scan now stops: if the end marker was overwritten, the slot after the
 * entry must be a new one (or the chain's end), else older slots would
 * become visible and the index is dropped. So is it when the slot before
 * a bare short entry holds a long-name piece, which the scan could now
 * join to it. */
static void note_added(vd_fs *fs, uint32_t dir, fat_dix *x, uint32_t start, uint32_t nl,
                       const uint16_t *name, size_t n, const uint8_t sfn[11],
                       uint8_t ntres, uint32_t nslots)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dix_place(x, start, &it);
    uint32_t end = fat_dix_end(x), last = start + nl + 1;
    uint8_t b[DIRENT_SIZE];
    int past, ok = start <= end;
    vd_err e = VD_OK;
    if (ok && end < last) {
        e = slot_byte(fs, x, &it, last, b, &past);
        if (e == VD_OK && past)
            end = nslots;
        else if (e == VD_OK && b[0] == DIR_END_BYTE)
            end = last;
        else
            ok = 0;
    }
    if (ok && e == VD_OK && nl == 0 && start > 0) {
        e = slot_byte(fs, x, &it, start - 1, b, &past);
        if (e == VD_OK && !past && b[0] != DIR_FREE_BYTE &&
            (b[DIR_ATTR] & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME)
            ok = 0;
    }
    uint16_t shown[16];
    if (nl == 0) { /* a bare short entry is listed under its short name */
        n = fat_sfn_to_utf16(sfn, ntres, shown);
        name = shown;
    }
    if (!ok || e != VD_OK ||
        fat_dix_note_add(fs, x, start, start + nl, sfn, name, n, nslots, end) != VD_OK)
        fat_dix_drop(fs, dir);
}

/* fat_dir_add through the directory's index. 1: done, result in *res;
 * 0: the caller scans (no index, or it disagreed with the disk and was
 * dropped). */
static int add_indexed(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                       const fat_dent *proto, uint32_t *slot_out, vd_err *res)
{
    fat_dix *x = fat_dix_get(fs, dir);
    if (!x)
        return 0;
    uint32_t lfn_max = (uint32_t)((n + LFN_UNITS_PER_ENTRY - 1) / LFN_UNITS_PER_ENTRY);
    uint8_t sfn[11], ntres = 0;
    int need_lfn = 0, ok;
    *res = pick_alias(name, n, dix_has, x, x, sfn, &ntres, &need_lfn);
    if (*res != VD_OK)
        return 1;
    uint32_t nl = need_lfn ? lfn_max : 0, need = nl + 1;
    uint32_t nslots = fat_dix_nslots(x), start = fat_dix_find_run(x, need);
    int grow = start == UINT32_MAX;
    if (grow) {
        start = fat_dix_tail(x);
        if ((uint64_t)start + need > DIR_MAX_SLOTS) {
            *res = VD_ERR_NOSPC;
            return 1;
        }
    }
    vd_err e = check_free(fs, x, dir, start, need, &ok);
    if (e != VD_OK || !ok) {
        fat_dix_drop(fs, dir);
        return 0;
    }
    if (grow)
        e = grow_dir(fs, dir, nslots, start + need, &nslots);
    if (e == VD_OK)
        e = write_entry(fs, x, dir, start, nl, name, n, sfn, ntres, proto);
    if (e != VD_OK) {
        fat_dix_drop(fs, dir);
        *res = e;
        return 1;
    }
    note_added(fs, dir, x, start, nl, name, n, sfn, ntres, nslots);
    *slot_out = start + nl;
    *res = VD_OK;
    return 1;
}

vd_err fat_dir_add(vd_fs *fs, uint32_t dir, const uint16_t *name, size_t n,
                   const fat_dent *proto, uint32_t *slot_out)
{
    vd_err res;
    if (add_indexed(fs, dir, name, n, proto, slot_out, &res))
        return res;
    sfn_set set = {0};
    uint32_t run1, run, tail, nslots;
    uint32_t lfn_max = (uint32_t)((n + LFN_UNITS_PER_ENTRY - 1) / LFN_UNITS_PER_ENTRY);
    /* One pass serves both cases: a long name needs lfn_max + 1 slots, a
     * bare 8.3 name any single free slot. */
    vd_err e = scan_dir(fs, dir, lfn_max + 1, &set, &run1, &run, &tail, &nslots);
    uint8_t sfn[11], ntres = 0;
    int need_lfn = 0;
    if (e == VD_OK)
        e = pick_alias(name, n, sfn_has, &set, NULL, sfn, &ntres, &need_lfn);
    free(set.v);
    if (e != VD_OK)
        return e;
    uint32_t nl = need_lfn ? lfn_max : 0;
    uint32_t need = nl + 1;
    uint32_t start = need_lfn ? run : run1;
    if (start == UINT32_MAX) {
        start = tail;
        if ((uint64_t)start + need > DIR_MAX_SLOTS)
            return VD_ERR_NOSPC;
        e = grow_dir(fs, dir, nslots, start + need, &nslots);
        if (e != VD_OK)
            return e;
    }
    e = write_entry(fs, NULL, dir, start, nl, name, n, sfn, ntres, proto);
    if (e != VD_OK)
        return e;
    *slot_out = start + nl;
    return VD_OK;
}

vd_err fat_dir_is_empty(vd_fs *fs, uint32_t dir, int *empty)
{
    fat_dirit it;
    fat_dirit_init(&it, dir);
    fat_dent d;
    vd_err e = fat_dir_next(fs, &it, &d);
    if (e == VD_ERR_NOENT) {
        *empty = 1;
        return VD_OK;
    }
    *empty = 0;
    return e;
}

static void dot_entry(const fat_dent *proto, const char *nm, uint32_t clus, uint8_t b[32])
{
    fat_dent d = *proto;
    memset(d.sfn, ' ', 11);
    memcpy(d.sfn, nm, strlen(nm));
    d.attr = ATTR_DIRECTORY;
    d.ntres = 0;
    d.first = clus;
    d.size = 0;
    memset(b, 0, 32);
    fat_dent_encode(&d, b);
}

vd_err fat_dir_create(vd_fs *fs, uint32_t parent, const fat_dent *proto, uint32_t *clus)
{
    uint32_t c;
    vd_err e = fat_alloc(fs, 0, 1, &c, NULL, NULL);
    if (e != VD_OK)
        return e;
    fat_dix_drop(fs, c); /* a freed directory's index, if one escaped */
    uint64_t off = fat_clus_off(fs, c);
    e = fat_dev_zero(fs, off, fs->cluster_bytes);
    uint8_t b[64];
    dot_entry(proto, ".", c, b);
    /* ".." of a directory in the root names cluster 0, by convention. */
    dot_entry(proto, "..", parent == fs->root_clus ? 0 : parent, b + 32);
    if (e == VD_OK)
        e = fat_dev_write(fs, off, b, sizeof b);
    if (e != VD_OK) {
        (void)fat_free_chain(fs, c);
        return e;
    }
    *clus = c;
    return VD_OK;
}

vd_err fat_dir_get_parent(vd_fs *fs, uint32_t dir, uint32_t *parent)
{
    uint8_t b[DIRENT_SIZE];
    vd_err e = fat_dev_read(fs, fat_clus_off(fs, dir) + DIRENT_SIZE, b, sizeof b);
    if (e != VD_OK)
        return e;
    if (memcmp(b, "..         ", 11) != 0)
        return VD_ERR_CORRUPT;
    fat_dent d;
    fat_dent_decode(b, &d);
    *parent = d.first ? d.first : fs->root_clus;
    return VD_OK;
}

vd_err fat_dir_set_parent(vd_fs *fs, uint32_t dir, uint32_t parent)
{
    uint64_t off = fat_clus_off(fs, dir) + DIRENT_SIZE;
    uint8_t b[DIRENT_SIZE];
    vd_err e = fat_dev_read(fs, off, b, sizeof b);
    if (e != VD_OK)
        return e;
    if (memcmp(b, "..         ", 11) != 0)
        return VD_ERR_CORRUPT;
    uint32_t v = parent == fs->root_clus ? 0 : parent;
    vd_put_le16(b + DIR_FST_CLUS_HI, (uint16_t)(v >> 16));
    vd_put_le16(b + DIR_FST_CLUS_LO, (uint16_t)v);
    return fat_dev_write(fs, off, b, sizeof b);
}
