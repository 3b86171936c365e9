/* vd_fsck, the tree: every directory from the root, breadth first, every
 * entry in it (long-name runs, "." and "..", first cluster, size), every
 * chain (valid clusters, proper end, no loops, no cluster in two chains),
 * and every cluster whose block failed authentication, named by its file.
 * Repairs are made to the working table and as directory-entry edits, the
 * way fsck.fat makes them: a chain that breaks ends where it broke, the
 * later of two cross-linked files is cut before the shared cluster, sizes
 * follow chains, chains longer than the size are cut, broken long names
 * are dropped (the 8.3 name stays). A file holding a bad block is cut
 * before its first bad cluster (quarantine) and the rest of its chain
 * freed; the bad block is then overwritten with zeros. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/check_internal.h"

#define NTRES_NO_83NAME 0x20u /* Linux: the short name is a dummy */
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

typedef struct walk {
    chk *c;
    uint8_t *buf; /* one directory cluster */
    /* The long-name run being collected. */
    uint64_t lfn_off[LFN_MAX_ENTRIES];
    uint8_t lfn_raw[LFN_MAX_ENTRIES][DIRENT_SIZE];
    unsigned nlfn, want, total;
    uint8_t sum;
    uint16_t units[LFN_MAX_ENTRIES * LFN_UNITS_PER_ENTRY];
    /* The run in front of the current short entry (to remove both). */
    uint64_t last_off[LFN_MAX_ENTRIES];
    uint8_t last_raw[LFN_MAX_ENTRIES][DIRENT_SIZE];
    unsigned nlfn_last;
    /* Short names met so far in the directory being walked. */
    uint8_t (*seen)[DIR_NAME_LEN];
    size_t nseen, capseen;
    uint32_t *slots; /* hash set over seen (index + 1), capslot a power of 2 */
    size_t capslot;
} walk;

static vd_err add_file(chk *c, uint32_t parent, const char *name, uint32_t *idx)
{
    if (c->nfiles == c->capfiles) {
        size_t cap = c->capfiles ? c->capfiles * 2 : 64;
        chk_file *p = realloc(c->files, cap * sizeof *p);
        if (!p)
            return VD_ERR_NOMEM;
        c->files = p;
        c->capfiles = cap;
    }
    chk_file *f = &c->files[c->nfiles];
    memset(f, 0, sizeof *f);
    f->parent = parent;
    size_t n = strlen(name) + 1;
    f->name = malloc(n);
    if (!f->name)
        return VD_ERR_NOMEM;
    memcpy(f->name, name, n);
    *idx = (uint32_t)c->nfiles++;
    return VD_OK;
}

static vd_err mark_deleted(chk *c, uint64_t off, const uint8_t raw[32])
{
    uint8_t e[32];
    memcpy(e, raw, 32);
    e[0] = DIR_FREE_BYTE;
    return chk_edit_add(c, off, e);
}

/* The short entry of file i with its repaired first cluster and size. */
static vd_err store_entry(chk *c, uint32_t i)
{
    chk_file *f = &c->files[i];
    if (f->parent == CHK_NONE)
        return VD_OK; /* the root has no entry */
    uint8_t e[32];
    memcpy(e, f->raw, 32);
    vd_put_le16(e + DIR_FST_CLUS_HI, (uint16_t)(f->first >> 16));
    vd_put_le16(e + DIR_FST_CLUS_LO, (uint16_t)f->first);
    vd_put_le32(e + DIR_FILE_SIZE, f->size);
    return chk_edit_add(c, f->ent_off, e);
}

/* Free the rest of a chain from clus on (clusters nobody else owns). */
static void free_tail(chk *c, uint32_t clus)
{
    for (uint32_t guard = 0; guard < c->nent; guard++) {
        if (clus < FAT_FIRST_CLUSTER || clus >= c->nent || c->owner[clus])
            return;
        uint32_t next = chk_fat_get(c, clus);
        if (next == FAT_FREE || next == FAT_BAD)
            return;
        chk_fat_set(c, clus, FAT_FREE);
        clus = next;
    }
}

/* End file i's chain after prev (prev 0: the file loses every cluster). */
static void cut_after(chk *c, uint32_t i, uint32_t prev)
{
    if (prev)
        chk_fat_set(c, prev, FAT_EOC);
    else
        c->files[i].first = 0;
}

static vd_err quarantine(chk *c, uint32_t i, uint32_t prev, uint32_t clus, chk_bad *b)
{
    chk_file *f = &c->files[i];
    uint64_t keep = (uint64_t)f->nclus * c->fs->cluster_bytes;
    char what[160], action[200];
    if (b->r.level == 0)
        snprintf(what, sizeof what, "authentication failed");
    else
        snprintf(what, sizeof what, "tree node (level %u) failed authentication",
                 b->r.level);
    if (f->is_dir)
        snprintf(action, sizeof action, "%s (quarantine)",
                 prev ? "cut the directory before the bad cluster"
                      : "remove the directory entry");
    else
        snprintf(action, sizeof action, "truncate the file to %llu bytes (quarantine)%s",
                 (unsigned long long)(keep < f->size ? keep : f->size),
                 b->r.level == 0 && !b->reported ? " and overwrite the block with zeros"
                                                 : "");
    vd_err e =
        chk_problem(c, VD_FSCK_P_INTEGRITY, 0, chk_path(c, i), &b->r, what, action);
    if (e != VD_OK)
        return e;
    if (!b->reported && b->r.level == 0 && c->nzero < c->capzero)
        c->zero[c->nzero++] = b->r.first_lbn;
    b->reported = 1;
    free_tail(c, clus);
    cut_after(c, i, prev);
    if (!f->is_dir && keep < f->size)
        f->size = (uint32_t)keep;
    return VD_OK;
}

/* Follow file i's chain, claiming its clusters and repairing it. */
static vd_err walk_chain(chk *c, uint32_t i)
{
    chk_file *f = &c->files[i];
    char what[200], action[120];
    vd_err e = VD_OK;
    uint32_t prev = 0, clus = f->first;
    f->nclus = 0;
    if (clus == 0)
        return VD_OK;
    if (!fat_valid_cluster(c->fs, clus)) {
        snprintf(what, sizeof what, "first cluster %u is outside the volume", clus);
        f->first = 0;
        return chk_problem(c, VD_FSCK_P_DIRENT, 0, chk_path(c, i), NULL, what,
                           f->is_dir ? "remove the entry" : "make the file empty");
    }
    for (;;) {
        if (c->owner[clus]) {
            uint32_t other = c->owner[clus] - 1;
            if (other == i) {
                snprintf(what, sizeof what, "cluster chain loops at cluster %u", clus);
                snprintf(action, sizeof action, "end the chain at cluster %u", prev);
                e = chk_problem(c, VD_FSCK_P_CHAIN, 0, chk_path(c, i), NULL, what,
                                action);
            } else {
                char *op = malloc(CHK_PATH_MAX);
                if (!op)
                    return VD_ERR_NOMEM;
                snprintf(op, CHK_PATH_MAX, "%s", chk_path(c, other));
                snprintf(what, sizeof what, "cross-linked with %.120s at cluster %u", op,
                         clus);
                free(op);
                e = chk_problem(c, VD_FSCK_P_CROSSLINK, 0, chk_path(c, i), NULL, what,
                                "cut this file before the shared cluster");
            }
            cut_after(c, i, prev);
            return e;
        }
        chk_bad *b = chk_clus_bad(c, clus);
        if (b)
            return quarantine(c, i, prev, clus, b);
        c->owner[clus] = i + 1;
        f->nclus++;
        uint32_t next = chk_fat_get(c, clus);
        if (next >= FAT_EOC_MIN)
            return VD_OK;
        if (next == FAT_FREE || next == FAT_BAD || !fat_valid_cluster(c->fs, next)) {
            snprintf(what, sizeof what, "cluster %u of the chain points to %s (0x%07x)",
                     clus,
                     next == FAT_FREE  ? "a free entry"
                     : next == FAT_BAD ? "a bad cluster"
                                       : "no valid cluster",
                     next);
            chk_fat_set(c, clus, FAT_EOC);
            return chk_problem(c, VD_FSCK_P_CHAIN, 0, chk_path(c, i), NULL, what,
                               "end the chain there");
        }
        prev = clus;
        clus = next;
    }
}

/* Sizes against chains, after the chain walk (fsck.fat's rules). */
static vd_err check_size(chk *c, uint32_t i)
{
    chk_file *f = &c->files[i];
    char what[160], action[96];
    if (f->is_dir) {
        if (f->size == 0)
            return VD_OK;
        snprintf(what, sizeof what, "directory entry has size %u", f->size);
        f->size = 0;
        return chk_problem(c, VD_FSCK_P_DIRENT, 0, chk_path(c, i), NULL, what,
                           "set it to 0");
    }
    uint64_t cb = c->fs->cluster_bytes;
    uint64_t need = ((uint64_t)f->size + cb - 1) / cb;
    if (f->nclus < need) {
        uint64_t have = (uint64_t)f->nclus * cb;
        snprintf(what, sizeof what,
                 "size %u is larger than its %u-cluster chain (%llu bytes)", f->size,
                 f->nclus, (unsigned long long)have);
        snprintf(action, sizeof action, "set the size to %llu", (unsigned long long)have);
        f->size = (uint32_t)have;
        return chk_problem(c, VD_FSCK_P_SIZE, 0, chk_path(c, i), NULL, what, action);
    }
    if (f->nclus > need) {
        snprintf(what, sizeof what,
                 "chain of %u clusters is longer than size %u needs (%llu)", f->nclus,
                 f->size, (unsigned long long)need);
        /* Walk to the last cluster kept, release the rest. */
        uint32_t clus = f->first, prev = 0;
        for (uint64_t k = 0; k < need; k++) {
            prev = clus;
            clus = chk_fat_get(c, clus);
        }
        for (uint32_t k = (uint32_t)need; k < f->nclus; k++) {
            uint32_t next = chk_fat_get(c, clus);
            c->owner[clus] = 0;
            chk_fat_set(c, clus, FAT_FREE);
            clus = next;
        }
        cut_after(c, i, prev);
        f->nclus = (uint32_t)need;
        return chk_problem(c, VD_FSCK_P_SIZE, 0, chk_path(c, i), NULL, what,
                           "free the clusters past the end");
    }
    return VD_OK;
}

static int is_dot(const uint8_t *b, int two)
{
    static const char one[] = ".          ", dd[] = "..         ";
    return memcmp(b, two ? dd : one, 11) == 0;
}

/* Drop the long-name run collected so far. */
static vd_err drop_lfn(walk *w, uint32_t dir, const char *why)
{
    chk *c = w->c;
    vd_err e = VD_OK;
    if (w->nlfn) {
        char what[160];
        snprintf(what, sizeof what, "%u long-name entries %s", w->nlfn, why);
        e = chk_problem(c, VD_FSCK_P_LFN, 0, chk_path(c, dir), NULL, what,
                        "drop them (the 8.3 name stays)");
        for (unsigned k = 0; e == VD_OK && k < w->nlfn; k++)
            e = mark_deleted(c, w->lfn_off[k], w->lfn_raw[k]);
    }
    w->nlfn = 0;
    w->want = 0;
    return e;
}

static vd_err lfn_slot(walk *w, uint32_t dir, uint64_t off, const uint8_t *b)
{
    unsigned ord = b[LDIR_ORD] & LDIR_ORD_MASK;
    vd_err e = VD_OK;
    if (b[LDIR_ORD] & LDIR_LAST) {
        if (w->nlfn)
            e = drop_lfn(w, dir, "are not followed by their short entry");
        if (e != VD_OK)
            return e;
        w->total = ord;
        w->sum = b[LDIR_CHKSUM];
    } else if (!w->nlfn || ord != w->want || b[LDIR_CHKSUM] != w->sum) {
        /* Out of sequence: this one and the run so far are orphans. */
        if (w->nlfn < LFN_MAX_ENTRIES) {
            w->lfn_off[w->nlfn] = off;
            memcpy(w->lfn_raw[w->nlfn], b, DIRENT_SIZE);
            w->nlfn++;
        }
        return drop_lfn(w, dir, "are out of sequence or carry a wrong checksum");
    }
    if (ord < 1 || ord > LFN_MAX_ENTRIES || w->nlfn >= LFN_MAX_ENTRIES) {
        w->lfn_off[w->nlfn < LFN_MAX_ENTRIES ? w->nlfn : 0] = off;
        memcpy(w->lfn_raw[w->nlfn < LFN_MAX_ENTRIES ? w->nlfn : 0], b, DIRENT_SIZE);
        if (w->nlfn < LFN_MAX_ENTRIES)
            w->nlfn++;
        return drop_lfn(w, dir, "have a bad sequence number");
    }
    w->lfn_off[w->nlfn] = off;
    memcpy(w->lfn_raw[w->nlfn], b, DIRENT_SIZE);
    w->nlfn++;
    uint16_t *u = w->units + (ord - 1) * LFN_UNITS_PER_ENTRY;
    for (int k = 0; k < 5; k++)
        u[k] = vd_get_le16(b + LDIR_NAME1 + 2 * k);
    for (int k = 0; k < 6; k++)
        u[5 + k] = vd_get_le16(b + LDIR_NAME2 + 2 * k);
    for (int k = 0; k < 2; k++)
        u[11 + k] = vd_get_le16(b + LDIR_NAME3 + 2 * k);
    w->want = ord - 1;
    return VD_OK;
}

/* What "." (slot 0) or ".." (slot 1) of directory d must point to. */
static uint32_t dot_target(const chk *c, uint32_t d, uint32_t slot)
{
    const chk_file *f = &c->files[d];
    if (slot == 0)
        return f->first;
    return (f->parent == CHK_NONE || f->parent == 0) ? 0 : c->files[f->parent].first;
}

/* Write a "." or ".." entry where none is (times from the directory's own
 * entry, as mkfs and the library write them). */
static vd_err make_dot(walk *w, uint32_t d, uint32_t slot, uint64_t off)
{
    chk *c = w->c;
    uint8_t e[32];
    memcpy(e, c->files[d].raw, 32);
    memcpy(e, slot == 0 ? ".          " : "..         ", 11);
    e[DIR_ATTR] = ATTR_DIRECTORY;
    e[DIR_NTRES] = 0;
    uint32_t want = dot_target(c, d, slot);
    vd_put_le16(e + DIR_FST_CLUS_HI, (uint16_t)(want >> 16));
    vd_put_le16(e + DIR_FST_CLUS_LO, (uint16_t)want);
    vd_put_le32(e + DIR_FILE_SIZE, 0);
    w->nlfn = 0;
    w->want = 0;
    vd_err r = chk_edit_add(c, off, e);
    if (r == VD_OK)
        r = chk_problem(c, VD_FSCK_P_DOT, 0, chk_path(c, d), NULL,
                        slot == 0 ? "the '.' entry is missing or damaged"
                                  : "the '..' entry is missing or damaged",
                        "write it");
    return r;
}

/* "." and ".." of directory d (slots 0 and 1). */
static vd_err dot_slot(walk *w, uint32_t d, uint32_t slot, uint64_t off, const uint8_t *b)
{
    chk *c = w->c;
    uint32_t want = dot_target(c, d, slot);
    uint32_t have = ((uint32_t)vd_get_le16(b + DIR_FST_CLUS_HI) << 16) |
                    vd_get_le16(b + DIR_FST_CLUS_LO);
    int attr_ok = (b[DIR_ATTR] & (ATTR_DIRECTORY | ATTR_VOLUME_ID)) == ATTR_DIRECTORY;
    int rest_ok =
        !(b[DIR_NTRES] & NTRES_NO_83NAME) && vd_get_le32(b + DIR_FILE_SIZE) == 0;
    if (have == want && attr_ok && rest_ok)
        return VD_OK;
    char what[128];
    if (have != want)
        snprintf(what, sizeof what, "'%s' entry points to cluster %u, not %u",
                 slot == 0 ? "." : "..", have, want);
    else
        snprintf(what, sizeof what, "'%s' entry has wrong attributes, flags or size",
                 slot == 0 ? "." : "..");
    uint8_t e[32];
    memcpy(e, b, 32);
    e[DIR_ATTR] = (uint8_t)((e[DIR_ATTR] | ATTR_DIRECTORY) & ~ATTR_VOLUME_ID);
    e[DIR_NTRES] &= (uint8_t)~NTRES_NO_83NAME;
    vd_put_le16(e + DIR_FST_CLUS_HI, (uint16_t)(want >> 16));
    vd_put_le16(e + DIR_FST_CLUS_LO, (uint16_t)want);
    vd_put_le32(e + DIR_FILE_SIZE, 0);
    vd_err r = chk_edit_add(c, off, e);
    if (r == VD_OK)
        r = chk_problem(c, VD_FSCK_P_DOT, 0, chk_path(c, d), NULL, what, "correct it");
    return r;
}

/* fsck.fat's rules for a short name: no control characters (0x05 stands
 * for a leading 0xE5), no DEL, none of *?<>|"\/:. and no leading space. */
static int sfn_bad(const uint8_t *n)
{
    static const char bad[] = "*?<>|\"\\/:.";
    for (unsigned i = 0; i < DIR_NAME_LEN; i++) {
        if ((n[i] < 0x20 && !(i == 0 && n[i] == DIR_KANJI_E5)) || n[i] == 0x7F)
            return 1;
        if (n[i] && strchr(bad, n[i]))
            return 1;
    }
    return n[0] == ' ';
}

/* A volume label takes fewer characters than a file name: fsck.fat also
 * refuses bytes above 0x7F and a leading space. */
static int label_bad(const uint8_t *n)
{
    static const char bad[] = "*?.,;:/\\|+=<>[]\"";
    for (unsigned i = 0; i < DIR_NAME_LEN; i++)
        if (n[i] < 0x20 || n[i] >= 0x7F || (n[i] && strchr(bad, n[i])))
            return 1;
    return n[0] == ' ';
}

/* The short names met in a directory: an open-addressing hash set (a
 * directory may hold 65536 entries; comparing each with all before it
 * would be quadratic). Slots hold an index + 1 into w->seen, 0 = empty. */
static uint32_t name_hash(const uint8_t *n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (unsigned i = 0; i < DIR_NAME_LEN; i++)
        h = (h ^ n[i]) * 16777619u;
    return h;
}

static int seen_has(const walk *w, const uint8_t *n)
{
    if (!w->capslot)
        return 0;
    for (size_t i = name_hash(n) & (w->capslot - 1);; i = (i + 1) & (w->capslot - 1)) {
        uint32_t k = w->slots[i];
        if (!k)
            return 0;
        if (memcmp(w->seen[k - 1], n, DIR_NAME_LEN) == 0)
            return 1;
    }
}

static void slot_put(walk *w, uint32_t k)
{
    size_t i = name_hash(w->seen[k]) & (w->capslot - 1);
    while (w->slots[i])
        i = (i + 1) & (w->capslot - 1);
    w->slots[i] = k + 1;
}

static vd_err seen_add(walk *w, const uint8_t *n)
{
    if (w->nseen == w->capseen) {
        size_t cap = w->capseen ? w->capseen * 2 : 64;
        uint8_t(*p)[DIR_NAME_LEN] = realloc(w->seen, cap * sizeof *p);
        if (!p)
            return VD_ERR_NOMEM;
        w->seen = p;
        w->capseen = cap;
    }
    if (2 * (w->nseen + 1) > w->capslot) {
        size_t cap = w->capslot ? w->capslot * 2 : 128;
        uint32_t *t = calloc(cap, sizeof *t);
        if (!t)
            return VD_ERR_NOMEM;
        free(w->slots);
        w->slots = t;
        w->capslot = cap;
        for (size_t k = 0; k < w->nseen; k++)
            slot_put(w, (uint32_t)k);
    }
    memcpy(w->seen[w->nseen], n, DIR_NAME_LEN);
    slot_put(w, (uint32_t)w->nseen++);
    return VD_OK;
}

/* Is n the short name of a live entry anywhere in directory d? */
static vd_err dir_has(walk *w, uint32_t d, const uint8_t *n, int *has)
{
    chk *c = w->c;
    vd_fs *fs = c->fs;
    uint8_t *buf = malloc(fs->cluster_bytes);
    if (!buf)
        return VD_ERR_NOMEM;
    vd_err e = VD_OK;
    uint32_t clus = c->files[d].first;
    *has = 0;
    for (uint32_t k = 0; k < c->files[d].nclus && !*has; k++) {
        e = chk_read(c, fat_clus_off(fs, clus), buf, fs->cluster_bytes);
        if (e != VD_OK)
            break;
        for (uint32_t s = 0; s < fs->cluster_bytes && !*has; s += DIRENT_SIZE)
            *has = buf[s] != DIR_FREE_BYTE && buf[s] != DIR_END_BYTE &&
                   memcmp(buf + s, n, DIR_NAME_LEN) == 0;
        clus = chk_fat_get(c, clus);
    }
    free(buf);
    return e;
}

/* A free FSCKnnnn.nnn name for directory d, as fsck.fat renames. */
static vd_err pick_name(walk *w, uint32_t d, uint8_t out[DIR_NAME_LEN])
{
    for (;;) {
        uint32_t n = w->c->renames++;
        if (n >= 10000000u)
            return VD_ERR_NOSPC;
        char tmp[16];
        snprintf(tmp, sizeof tmp, "FSCK%04u%03u", n / 1000 % 10000, n % 1000);
        memcpy(out, tmp, DIR_NAME_LEN);
        int has = seen_has(w, out);
        vd_err e = has ? VD_OK : dir_has(w, d, out, &has);
        if (e != VD_OK)
            return e;
        if (!has)
            return VD_OK;
    }
}

/* Rename the short entry at off (copy b, updated in place) when its name
 * is invalid or taken; a long name in front keeps working: its checksum
 * bytes follow the new alias. */
static vd_err check_name(walk *w, uint32_t d, uint64_t off, uint8_t *b)
{
    chk *c = w->c;
    int lfn_ok =
        w->nlfn && w->want == 0 && w->nlfn == w->total && fat_lfn_checksum(b) == w->sum;
    /* NTRes bit 5 (Linux's "no 8.3 name"): the 11 bytes are a dummy, fine
     * behind a long name, meaningless without one (fsck.fat's rule). */
    int bad = (b[DIR_NTRES] & NTRES_NO_83NAME) ? !lfn_ok : sfn_bad(b);
    int dup = !bad && seen_has(w, b);
    if (!bad && !dup)
        return seen_add(w, b);
    uint8_t nn[DIR_NAME_LEN];
    vd_err e = pick_name(w, d, nn);
    if (e != VD_OK)
        return e;
    char what[96], action[64], shown[DIR_NAME_LEN + 1];
    for (unsigned i = 0; i < DIR_NAME_LEN; i++)
        shown[i] = b[i] >= 0x20 && b[i] < 0x7F ? (char)b[i] : '?';
    shown[DIR_NAME_LEN] = 0;
    snprintf(what, sizeof what, "%s short name '%s'", bad ? "invalid" : "duplicate",
             shown);
    snprintf(action, sizeof action, "rename it %.8s.%.3s", nn, nn + 8);
    memcpy(b, nn, DIR_NAME_LEN);
    b[DIR_NTRES] &= (uint8_t) ~(NTRES_LOWER_BASE | NTRES_LOWER_EXT | NTRES_NO_83NAME);
    e = chk_edit_add(c, off, b);
    if (e == VD_OK && lfn_ok) {
        w->sum = fat_lfn_checksum(b);
        for (unsigned k = 0; e == VD_OK && k < w->nlfn; k++) {
            w->lfn_raw[k][LDIR_CHKSUM] = w->sum;
            e = chk_edit_add(c, w->lfn_off[k], w->lfn_raw[k]);
        }
    }
    if (e == VD_OK)
        e = chk_problem(c, VD_FSCK_P_DIRENT, 0, chk_path(c, d), NULL, what, action);
    if (e == VD_OK)
        e = seen_add(w, b);
    return e;
}

/* A short entry of directory d (not "." or ".."). */
static vd_err short_slot(walk *w, uint32_t d, uint64_t off, const uint8_t *b)
{
    chk *c = w->c;
    vd_err e = VD_OK;
    char name[FAT_NAME_MAX * 3 + 1];
    uint16_t u[FAT_NAME_MAX + 1];
    size_t n = 0;
    if (w->nlfn) {
        if (w->want == 0 && w->nlfn == w->total && fat_lfn_checksum(b) == w->sum) {
            size_t max = (size_t)w->total * LFN_UNITS_PER_ENTRY;
            while (n < max && w->units[n] != 0)
                n++;
            if (n > FAT_NAME_MAX || n == 0)
                n = 0;
            else
                memcpy(u, w->units, n * sizeof *u);
            w->nlfn = 0;
        } else {
            e = drop_lfn(w, d,
                         w->want ? "are incomplete" : "do not match their short entry");
        }
        if (e != VD_OK)
            return e;
    }
    if (n == 0)
        n = fat_sfn_to_utf16(b, b[DIR_NTRES], u);
    if (fat_utf16_to_utf8(u, n, name, sizeof name) != VD_OK)
        snprintf(name, sizeof name, "?");
    uint32_t i;
    e = add_file(c, d, name, &i);
    if (e != VD_OK)
        return e;
    chk_file *f = &c->files[i];
    memcpy(f->raw, b, 32);
    f->ent_off = off;
    f->is_dir = (b[DIR_ATTR] & ATTR_DIRECTORY) != 0;
    /* The library ignores the top 4 bits of the start cluster, fsck.fat
     * does not: they are cleared (the entry is stored again below). */
    uint32_t first0 = ((uint32_t)vd_get_le16(b + DIR_FST_CLUS_HI) << 16) |
                      vd_get_le16(b + DIR_FST_CLUS_LO);
    f->first = first0 & FAT_MASK;
    f->size = vd_get_le32(b + DIR_FILE_SIZE);
    uint32_t size0 = f->size;
    if (first0 != f->first) {
        e = chk_problem(c, VD_FSCK_P_DIRENT, 1, chk_path(c, i), NULL,
                        "start cluster has its reserved top bits set", "clear them");
        if (e != VD_OK)
            return e;
        f = &c->files[i];
    }
    if (f->is_dir)
        c->res->dirs++;
    else
        c->res->files++;
    e = walk_chain(c, i);
    if (e == VD_OK)
        e = check_size(c, i);
    if (e != VD_OK)
        return e;
    f = &c->files[i]; /* add_file may have moved the array */
    if (f->is_dir && f->first == 0) {
        if (first0 == 0) {
            e = chk_problem(c, VD_FSCK_P_DIRENT, 0, chk_path(c, i), NULL,
                            "directory has no cluster", "remove the entry");
        }
        for (unsigned k = 0; e == VD_OK && k < w->nlfn_last; k++)
            e = mark_deleted(c, w->last_off[k], w->last_raw[k]);
        if (e == VD_OK)
            e = mark_deleted(c, off, b);
        f->is_dir = 0; /* nothing to walk */
        return e;
    }
    if (f->first != first0 || f->size != size0)
        e = store_entry(c, i);
    return e;
}

/* Every slot of directory d, whose chain was walked already. */
static vd_err walk_dir(walk *w, uint32_t d)
{
    chk *c = w->c;
    vd_fs *fs = c->fs;
    uint32_t per = fs->cluster_bytes / DIRENT_SIZE;
    uint32_t clus = c->files[d].first, n = c->files[d].nclus;
    int root = c->files[d].parent == CHK_NONE;
    vd_err e = VD_OK;
    int ended = 0;
    uint32_t after_end = 0;
    w->nlfn = 0;
    w->want = 0;
    w->nseen = 0;
    if (w->capslot)
        memset(w->slots, 0, w->capslot * sizeof *w->slots);
    for (uint32_t k = 0; k < n && e == VD_OK; k++) {
        uint64_t base = fat_clus_off(fs, clus);
        e = chk_read(c, base, w->buf, fs->cluster_bytes);
        if (e != VD_OK)
            return e;
        for (uint32_t s = 0; s < per && e == VD_OK; s++) {
            const uint8_t *b = w->buf + (size_t)s * DIRENT_SIZE;
            uint64_t off = base + (uint64_t)s * DIRENT_SIZE;
            uint32_t slot = k * per + s;
            if (!root && slot < 2) {
                /* The first two slots of a subdirectory are "." and ".."
                 * and nothing else (as fsck.fat has it): whatever else is
                 * there is replaced, its chain left to the lost-cluster
                 * pass. */
                int lfn = (b[DIR_ATTR] & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME;
                if (b[0] != DIR_END_BYTE && b[0] != DIR_FREE_BYTE && !lfn &&
                    is_dot(b, (int)slot))
                    e = dot_slot(w, d, slot, off, b);
                else
                    e = make_dot(w, d, slot, off);
                continue;
            }
            if (ended || b[0] == DIR_END_BYTE) {
                /* Free by definition from the end mark on; fsck.fat reads
                 * on and would turn leftovers into files: clear them. */
                if (!ended && w->nlfn)
                    e = drop_lfn(w, d, "are not followed by their short entry");
                ended = 1;
                static const uint8_t zero[DIRENT_SIZE];
                if (e == VD_OK && memcmp(b, zero, DIRENT_SIZE) != 0) {
                    e = chk_edit_add(c, off, zero);
                    after_end++;
                }
                continue;
            }
            if (b[0] == DIR_FREE_BYTE) {
                if (w->nlfn)
                    e = drop_lfn(w, d, "are not followed by their short entry");
                continue;
            }
            if ((b[DIR_ATTR] & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME) {
                uint8_t ent[DIRENT_SIZE];
                memcpy(ent, b, DIRENT_SIZE);
                if (ent[DIR_ATTR] != ATTR_LONG_NAME) {
                    /* The spec masks the top two attribute bits; fsck.fat
                     * does not, and would read a file here. */
                    ent[DIR_ATTR] = ATTR_LONG_NAME;
                    e = chk_edit_add(c, off, ent);
                    if (e == VD_OK)
                        e = chk_problem(
                            c, VD_FSCK_P_LFN, 1, chk_path(c, d), NULL,
                            "a long-name entry has reserved attribute bits set",
                            "clear them");
                }
                if (e == VD_OK &&
                    (vd_get_le16(ent + LDIR_FST_CLUS_LO) != 0 || ent[LDIR_TYPE] != 0)) {
                    vd_put_le16(ent + LDIR_FST_CLUS_LO, 0);
                    ent[LDIR_TYPE] = 0;
                    e = chk_edit_add(c, off, ent);
                    if (e == VD_OK)
                        e = chk_problem(c, VD_FSCK_P_LFN, 1, chk_path(c, d), NULL,
                                        "a long-name entry has a start cluster or type",
                                        "set them to 0");
                }
                if (e == VD_OK)
                    e = lfn_slot(w, d, off, ent);
                continue;
            }
            /* Remember the run for a possible removal of the entry. */
            w->nlfn_last = w->nlfn;
            memcpy(w->last_off, w->lfn_off, sizeof w->lfn_off);
            memcpy(w->last_raw, w->lfn_raw, sizeof w->lfn_raw);
            if (b[DIR_ATTR] & ATTR_VOLUME_ID) {
                if (w->nlfn)
                    e = drop_lfn(w, d, "precede a volume label");
                if (e == VD_OK && (!root || label_bad(b) || c->root_label)) {
                    /* Only the root holds a label, and only one. */
                    e = chk_problem(c, VD_FSCK_P_DIRENT, 0, chk_path(c, d), NULL,
                                    !root ? "a volume label entry outside the root"
                                    : c->root_label ? "a second volume label"
                                                    : "the volume label is not valid",
                                    "remove it");
                    if (e == VD_OK)
                        e = mark_deleted(c, off, b);
                } else if (root) {
                    c->root_label = 1;
                    memcpy(c->label, b, sizeof c->label);
                    /* A label owns no cluster and is no directory: fsck.fat
                     * would follow the one or delete the other. */
                    if (vd_get_le16(b + DIR_FST_CLUS_HI) ||
                        vd_get_le16(b + DIR_FST_CLUS_LO) ||
                        vd_get_le32(b + DIR_FILE_SIZE) ||
                        (b[DIR_ATTR] & ATTR_DIRECTORY)) {
                        uint8_t ent[DIRENT_SIZE];
                        memcpy(ent, b, DIRENT_SIZE);
                        vd_put_le16(ent + DIR_FST_CLUS_HI, 0);
                        vd_put_le16(ent + DIR_FST_CLUS_LO, 0);
                        vd_put_le32(ent + DIR_FILE_SIZE, 0);
                        ent[DIR_ATTR] &= (uint8_t)~ATTR_DIRECTORY;
                        e = chk_edit_add(c, off, ent);
                        if (e == VD_OK)
                            e = chk_problem(
                                c, VD_FSCK_P_DIRENT, 1, "/", NULL,
                                "the volume label entry has a cluster, a size "
                                "or the directory bit",
                                "clear them");
                    }
                }
                continue;
            }
            if (is_dot(b, 0) || is_dot(b, 1)) {
                e = chk_problem(c, VD_FSCK_P_DOT, 0, chk_path(c, d), NULL,
                                "stray '.' or '..' entry", "remove it");
                if (e == VD_OK)
                    e = mark_deleted(c, off, b);
                continue;
            }
            uint8_t ent[DIRENT_SIZE];
            memcpy(ent, b, DIRENT_SIZE);
            e = check_name(w, d, off, ent);
            if (e == VD_OK)
                e = short_slot(w, d, off, ent);
        }
        clus = chk_fat_get(c, clus);
    }
    if (e == VD_OK && w->nlfn)
        e = drop_lfn(w, d, "are not followed by their short entry");
    if (e == VD_OK && after_end) {
        char what[96];
        snprintf(what, sizeof what, "%u entries after the end-of-directory mark",
                 after_end);
        e = chk_problem(c, VD_FSCK_P_DIRENT, 1, chk_path(c, d), NULL, what, "clear them");
    }
    return e;
}

vd_err chk_tree_walk(chk *c)
{
    vd_fs *fs = c->fs;
    walk *w = calloc(1, sizeof *w);
    if (!w)
        return VD_ERR_NOMEM;
    w->c = c;
    w->buf = malloc(fs->cluster_bytes);
    uint32_t root;
    vd_err e = w->buf ? add_file(c, CHK_NONE, "", &root) : VD_ERR_NOMEM;
    if (e == VD_OK) {
        c->files[root].is_dir = 1;
        c->files[root].first = fs->root_clus;
        e = walk_chain(c, root);
        if (e == VD_OK && c->files[root].first == 0) {
            /* Nothing is reachable: what looks lost is every file. */
            c->fatal = 1;
            e = chk_problem(c, VD_FSCK_P_VOLUME, -1, "/", NULL,
                            "the root directory's first cluster is unusable", NULL);
        }
    }
    for (uint32_t d = 0; e == VD_OK && d < c->nfiles; d++)
        if (c->files[d].is_dir && c->files[d].first)
            e = walk_dir(w, d);
    free(w->buf);
    free(w->seen);
    free(w->slots);
    free(w);
    return e;
}
