/* vd_fsck: scrub the image, then check the FAT32 volume on it, then
 * repair what the mode allows.
 *
 * Repairs are decided for the whole run, not problem by problem: what is
 * lost or free depends on how cross-links, bad chains and quarantined files
 * are resolved, so VD_FSCK_SAFE writes its (safe) repairs only when every
 * problem found is safe; otherwise it writes nothing and the problems stay
 * (fsck(8) status 4: run with -y). VD_FSCK_ALL writes everything it can.
 * Integrity failures are never re-authenticated (R2): the owning file is
 * truncated before its first bad cluster and a bad data block is
 * overwritten with zeros; a bad tree node's blocks cannot be rewritten
 * through the tree, so they stay reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/check_internal.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

static char *dupstr(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

vd_err chk_problem(chk *c, vd_fsck_kind kind, int safe, const char *path,
                   const vd_bad_range *r, const char *what, const char *action)
{
    if (c->nprobs == c->capprobs) {
        size_t cap = c->capprobs ? c->capprobs * 2 : 16;
        chk_prob *p = realloc(c->probs, cap * sizeof *p);
        if (!p)
            return VD_ERR_NOMEM;
        c->probs = p;
        c->capprobs = cap;
    }
    chk_prob *p = &c->probs[c->nprobs];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->safe = safe;
    if (r) {
        p->have_block = 1;
        p->r = *r;
    }
    p->path = dupstr(path);
    p->what = dupstr(what);
    p->action = dupstr(action);
    if ((path && !p->path) || !p->what || (action && !p->action)) {
        free(p->path);
        free(p->what);
        free(p->action);
        return VD_ERR_NOMEM;
    }
    c->nprobs++;
    if (safe == 0)
        c->unsafe = 1;
    return VD_OK;
}

chk_bad *chk_bad_find(chk *c, uint64_t off, uint64_t len)
{
    if (len == 0)
        return NULL;
    uint64_t first = off / FAT_BLOCK, last = (off + len - 1) / FAT_BLOCK;
    /* Ranges arrive sorted and disjoint from the scrub. */
    size_t lo = 0, hi = c->nbad;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->bad[mid].r.first_lbn + c->bad[mid].r.nblocks <= first)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < c->nbad && c->bad[lo].r.first_lbn <= last)
        return &c->bad[lo];
    return NULL;
}

vd_err chk_read(chk *c, uint64_t off, void *buf, size_t len)
{
    if (chk_bad_find(c, off, len)) {
        memset(buf, 0, len);
        return VD_ERR_AUTH;
    }
    return fat_dev_read(c->fs, off, buf, len);
}

chk_bad *chk_clus_bad(chk *c, uint32_t clus)
{
    return chk_bad_find(c, fat_clus_off(c->fs, clus), c->fs->cluster_bytes);
}

const char *chk_path(chk *c, uint32_t i)
{
    /* Built backwards from the leaf, then moved to the front. */
    char *b = c->pathbuf;
    size_t pos = CHK_PATH_MAX - 1;
    b[pos] = 0;
    int truncated = 0;
    while (i != CHK_NONE && c->files[i].parent != CHK_NONE) {
        const char *n = c->files[i].name;
        size_t l = strlen(n);
        if (l + 1 > pos) {
            truncated = 1;
            break;
        }
        pos -= l;
        memcpy(b + pos, n, l);
        b[--pos] = '/';
        i = c->files[i].parent;
    }
    if (truncated && pos >= 3) {
        pos -= 3;
        memcpy(b + pos, "...", 3);
    }
    if (b[pos] == 0)
        b[--pos] = '/'; /* the root itself */
    memmove(b, b + pos, CHK_PATH_MAX - pos);
    return b;
}

/* Edits are indexed by offset (a slot edited twice keeps the last bytes)
 * through an open-addressing table of edit index + 1, so a directory full
 * of damage costs linear time. */
static size_t edit_home(const chk *c, uint64_t off)
{
    uint64_t h = (off / DIRENT_SIZE) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (c->capeslot - 1);
}

static vd_err edit_index(chk *c)
{
    size_t cap = c->capeslot ? c->capeslot * 2 : 256;
    uint32_t *t = calloc(cap, sizeof *t);
    if (!t)
        return VD_ERR_NOMEM;
    free(c->eslot);
    c->eslot = t;
    c->capeslot = cap;
    for (size_t k = 0; k < c->nedits; k++) {
        size_t i = edit_home(c, c->edits[k].off);
        while (c->eslot[i])
            i = (i + 1) & (cap - 1);
        c->eslot[i] = (uint32_t)k + 1;
    }
    return VD_OK;
}

vd_err chk_edit_add(chk *c, uint64_t off, const uint8_t e[32])
{
    if (2 * (c->nedits + 1) > c->capeslot) {
        vd_err r = edit_index(c);
        if (r != VD_OK)
            return r;
    }
    size_t i = edit_home(c, off);
    for (; c->eslot[i]; i = (i + 1) & (c->capeslot - 1))
        if (c->edits[c->eslot[i] - 1].off == off) {
            memcpy(c->edits[c->eslot[i] - 1].e, e, 32);
            return VD_OK;
        }
    if (c->nedits == c->capedits) {
        size_t cap = c->capedits ? c->capedits * 2 : 16;
        chk_edit *p = realloc(c->edits, cap * sizeof *p);
        if (!p)
            return VD_ERR_NOMEM;
        c->edits = p;
        c->capedits = cap;
    }
    c->edits[c->nedits].off = off;
    memcpy(c->edits[c->nedits].e, e, 32);
    c->eslot[i] = (uint32_t)++c->nedits;
    return VD_OK;
}

static vd_err on_bad(void *ctx, const vd_bad_range *r)
{
    chk *c = ctx;
    if (c->nbad == c->capbad) {
        size_t cap = c->capbad ? c->capbad * 2 : 16;
        chk_bad *p = realloc(c->bad, cap * sizeof *p);
        if (!p)
            return VD_ERR_NOMEM;
        c->bad = p;
        c->capbad = cap;
    }
    memset(&c->bad[c->nbad], 0, sizeof c->bad[c->nbad]);
    c->bad[c->nbad].r = *r;
    c->nbad++;
    return VD_OK;
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    chk *c = ctx;
    if (c->o && c->o->progress)
        c->o->progress(c->o->ctx, done, total);
}

/* Report every bad range nobody in the walk claimed: metadata, free or
 * lost space, or beyond the volume. */
static vd_err report_unclaimed(chk *c, int fs_ok)
{
    char what[160], region[64];
    for (size_t k = 0; k < c->nbad; k++) {
        chk_bad *b = &c->bad[k];
        /* A bad node stays bad whatever the walk did to its files. */
        if (b->reported && b->r.level == 0)
            continue;
        const vd_bad_range *r = &b->r;
        int safe = -1;
        const char *action = NULL;
        uint64_t off = r->first_lbn * FAT_BLOCK, end = off + r->nblocks * FAT_BLOCK;
        if (!fs_ok && b->fat1) {
            snprintf(region, sizeof region, "FAT copy 1");
            safe = 0;
            action = "rewrite the block from FAT copy 2";
        } else if (!fs_ok) {
            snprintf(region, sizeof region, "file system not checked");
        } else if (r->first_lbn == 0) {
            snprintf(region, sizeof region, "boot sector");
        } else if (end <= c->fs->fat_off) {
            snprintf(region, sizeof region, "reserved sectors");
            if (r->level == 0) {
                safe = 0;
                action = "overwrite the block with zeros";
            }
        } else if (end <= c->fs->data_off && off >= c->fs->fat_off) {
            uint64_t fatbytes = (uint64_t)c->fs->fat_sectors * c->fs->bps;
            uint32_t copy = (uint32_t)((off - c->fs->fat_off) / fatbytes);
            snprintf(region, sizeof region, "FAT copy %u", copy + 1);
            if (r->level == 0 && c->nent && c->fs->nfats > 1) {
                safe = 0;
                action = "rewrite the block from the other FAT copy";
            }
        } else if (r->level > 0 && b->reported) {
            snprintf(region, sizeof region, "tree node");
        } else if (off >= c->fs->data_off &&
                   end <= (uint64_t)c->fs->total_sectors * c->fs->bps) {
            uint64_t c0 =
                (off - c->fs->data_off) / c->fs->cluster_bytes + FAT_FIRST_CLUSTER;
            int marked = c0 < c->nent && chk_fat_get(c, (uint32_t)c0) == FAT_BAD;
            snprintf(region, sizeof region,
                     marked ? "clusters marked bad" : "free space");
            if (r->level == 0) {
                safe = 0;
                action = "overwrite the block with zeros";
            }
        } else if (off >= (uint64_t)c->fs->total_sectors * c->fs->bps) {
            snprintf(region, sizeof region, "beyond the volume");
            if (r->level == 0) {
                safe = 0;
                action = "overwrite the block with zeros";
            }
        } else {
            snprintf(region, sizeof region, "metadata");
        }
        if (fs_ok && r->level > 0 && r->first_lbn > 0) {
            /* Wherever it is: files under it were quarantined by the walk,
             * FAT blocks under it are rewritten with the table. */
            safe = 0;
            action = "reset its blocks to never written (zeros)";
        }
        if (r->level == 0)
            snprintf(what, sizeof what, "authentication failed");
        else
            snprintf(what, sizeof what, "tree node (level %u) failed authentication",
                     r->level);
        /* A FAT block is rewritten with the table, not zeroed. */
        if (action && action[0] == 'o' && c->nzero < c->capzero)
            c->zero[c->nzero++] = r->first_lbn;
        b->prob = c->nprobs;
        vd_err e = chk_problem(c, VD_FSCK_P_INTEGRITY, safe, region, r, what, action);
        if (e != VD_OK)
            return e;
        b->reported = 1;
    }
    return VD_OK;
}

/* Zero the bad data blocks the repairs freed (fresh data through the
 * library: zeros are authenticated, never the tampered bytes). */
static vd_err zero_blocks(chk *c)
{
    static const uint8_t zeros[FAT_BLOCK];
    for (size_t k = 0; k < c->nzero; k++) {
        vd_err e = fat_dev_write(c->fs, c->zero[k] * FAT_BLOCK, zeros, FAT_BLOCK);
        if (e != VD_OK)
            return e;
    }
    return VD_OK;
}

/* Free clusters of a range that stays unverifiable: marked bad, so no
 * allocation ever lands there (a write under the node could not sync). */
static void mark_bad_clusters(chk *c, const vd_bad_range *r)
{
    vd_fs *fs = c->fs;
    uint64_t off = r->first_lbn * FAT_BLOCK, end = off + r->nblocks * FAT_BLOCK;
    if (end <= fs->data_off)
        return;
    uint64_t lo = off > fs->data_off ? (off - fs->data_off) / fs->cluster_bytes : 0;
    uint64_t hi = (end - 1 - fs->data_off) / fs->cluster_bytes;
    for (uint64_t i = lo + FAT_FIRST_CLUSTER; i <= hi + FAT_FIRST_CLUSTER && i < c->nent;
         i++)
        if (chk_fat_get(c, (uint32_t)i) == FAT_FREE)
            chk_fat_set(c, (uint32_t)i, FAT_BAD);
}

/* Bad nodes first: once a range is reset, every block in it is writable
 * again, and the table and directory repairs may land there. */
static vd_err discard_nodes(chk *c)
{
    for (size_t k = 0; k < c->nbad; k++) {
        chk_bad *b = &c->bad[k];
        if (b->r.level == 0)
            continue;
        vd_err e = vd_image_discard_range(c->img, &b->r);
        if (e == VD_OK) {
            b->discarded = 1;
            continue;
        }
        /* Cannot be reset (the root, no verifiable neighbour, a range
         * the scrub had to cut short): keep allocations away instead. */
        if (e != VD_ERR_UNSUPPORTED && e != VD_ERR_INVAL && e != VD_ERR_AUTH)
            return e;
        mark_bad_clusters(c, &b->r);
        if (b->reported && b->prob < c->nprobs) {
            chk_prob *p = &c->probs[b->prob];
            p->safe = -1;
            free(p->action);
            p->action = NULL;
        }
    }
    return VD_OK;
}

static vd_err apply(chk *c)
{
    vd_err e = discard_nodes(c);
    for (size_t k = 0; e == VD_OK && k < c->nedits; k++)
        e = fat_dev_write(c->fs, c->edits[k].off, c->edits[k].e, 32);
    if (e == VD_OK)
        e = chk_table_write(c);
    if (e == VD_OK)
        e = zero_blocks(c);
    if (e == VD_OK)
        e = fat_dev_flush(c->fs);
    return e;
}

static void report_all(chk *c)
{
    for (size_t k = 0; k < c->nprobs; k++) {
        chk_prob *p = &c->probs[k];
        int fixed = c->persist && p->safe >= 0;
        c->res->found++;
        if (fixed)
            c->res->fixed++;
        if (p->kind == VD_FSCK_P_INTEGRITY) {
            c->res->integrity_found++;
            if (fixed)
                c->res->integrity_fixed++;
        }
        if (!c->o || !c->o->report)
            continue;
        vd_fsck_problem q;
        memset(&q, 0, sizeof q);
        q.kind = p->kind;
        q.safe = p->safe > 0;
        q.repairable = p->safe >= 0;
        q.fixed = fixed;
        q.have_block = p->have_block;
        q.level = p->r.level;
        q.first_lbn = p->r.first_lbn;
        q.nblocks = p->r.nblocks;
        q.path = p->path;
        q.what = p->what;
        q.action = p->action;
        c->o->report(c->o->ctx, &q);
    }
}

static void chk_free(chk *c)
{
    for (size_t k = 0; k < c->nfiles; k++)
        free(c->files[k].name);
    for (size_t k = 0; k < c->nprobs; k++) {
        free(c->probs[k].path);
        free(c->probs[k].what);
        free(c->probs[k].action);
    }
    free(c->probs);
    free(c->files);
    free(c->edits);
    free(c->eslot);
    free(c->zero);
    free(c->bad);
    free(c->fat);
    free(c->disk[0]);
    free(c->disk[1]);
    free(c->copy_bad[0]);
    free(c->copy_bad[1]);
    free(c->owner);
    free(c->pathbuf);
}

/* Mounting reads FAT copy 1 (FAT[1], the root's entry, and the whole copy
 * after an unclean unmount), so with -y a bad block there is rewritten from
 * copy 2 first, as the table check would do later anyway. No vd_fs exists
 * yet: this goes to the image directly. */
static vd_err premount_fat(chk *c, int write)
{
    uint8_t *blk = malloc(FAT_BLOCK);
    if (!blk)
        return VD_ERR_NOMEM;
    vd_image_info info;
    fat_geom g;
    uint32_t ncl;
    vd_err e = vd_image_info_get(c->img, &info);
    if (e == VD_OK)
        e = vd_image_read(c->img, 0, 1, blk);
    if (e == VD_OK && fat_bpb_decode(blk, info.nblocks * FAT_BLOCK, &g, &ncl) != VD_OK)
        goto out; /* reported by the mount */
    uint64_t fat_off = (uint64_t)g.rsvd * g.bps,
             fatbytes = (uint64_t)g.fat_sectors * g.bps;
    if (e != VD_OK || g.nfats < 2 || (g.ext_flags & 0x80) || fat_off % FAT_BLOCK ||
        fatbytes % FAT_BLOCK)
        goto out;
    for (uint64_t b = 0; e == VD_OK && b < fatbytes / FAT_BLOCK; b++) {
        uint64_t lbn0 = fat_off / FAT_BLOCK + b, lbn1 = lbn0 + fatbytes / FAT_BLOCK;
        chk_bad *x = chk_bad_find(c, lbn0 * FAT_BLOCK, FAT_BLOCK);
        if (!x || x->r.level != 0 || chk_bad_find(c, lbn1 * FAT_BLOCK, FAT_BLOCK))
            continue;
        x->fat1 = 1;
        c->fat1_bad++;
        if (write)
            e = vd_image_read(c->img, lbn1, 1, blk);
        if (write && e == VD_OK)
            e = vd_image_write(c->img, lbn0, 1, blk);
    }
out:
    free(blk);
    return e;
}

static vd_err check_fs(chk *c)
{
    vd_err e = chk_table_load(c);
    if (e == VD_OK)
        e = chk_tree_walk(c);
    if (e == VD_OK)
        e = chk_table_lost(c);
    if (e == VD_OK)
        e = report_unclaimed(c, 1);
    if (e == VD_OK)
        e = chk_table_summary(c);
    return e;
}

vd_err vd_fsck(vd_image *img, const vd_fsck_opts *o, vd_fsck_result *res)
{
    if (!img || !res)
        return VD_ERR_INVAL;
    memset(res, 0, sizeof *res);
    vd_fsck_mode mode = o ? o->mode : VD_FSCK_CHECK;
    vd_image_info info;
    vd_err e = vd_image_info_get(img, &info);
    if (e != VD_OK)
        return e;
    if (mode != VD_FSCK_CHECK && info.read_only)
        return VD_ERR_READONLY;
    chk c;
    memset(&c, 0, sizeof c);
    c.img = img;
    c.o = o;
    c.res = res;
    c.pathbuf = malloc(CHK_PATH_MAX);
    if (!c.pathbuf)
        return VD_ERR_NOMEM;
    e = vd_image_tolerate_nodes(img, 1);
    if (e != VD_OK)
        goto out;
    vd_scrub_ops ops = {&c, on_bad, on_progress};
    e = vd_image_scrub(img, &ops, &res->scrub);
    if (e != VD_OK)
        goto out;
    /* Each bad range is zeroed at most once. */
    c.capzero = c.nbad;
    c.zero = malloc((c.capzero ? c.capzero : 1) * sizeof *c.zero);
    if (!c.zero) {
        e = VD_ERR_NOMEM;
        goto out;
    }

    vd_fs_opts fo = {.read_only = mode == VD_FSCK_CHECK};
    vd_err m = VD_ERR_AUTH;
    if (!chk_bad_find(&c, 0, FAT_BLOCK)) {
        m = premount_fat(&c, mode == VD_FSCK_ALL);
        if (m == VD_OK)
            m = vd_fs_mount(img, &fo, &c.fs);
    }
    if (m != VD_OK) {
        c.fs = NULL;
        if (m != VD_ERR_AUTH && m != VD_ERR_CORRUPT && m != VD_ERR_UNSUPPORTED &&
            m != VD_ERR_FAILED) {
            e = m;
            goto out;
        }
        if (m == VD_ERR_AUTH && c.fat1_bad)
            e = chk_problem(
                &c, VD_FSCK_P_VOLUME, 0, NULL, NULL,
                "FAT copy 1 failed authentication: the FAT32 structure can be "
                "checked once it is rewritten from copy 2",
                "rewrite it from FAT copy 2, then check");
        else
            e = chk_problem(&c, VD_FSCK_P_VOLUME, -1, NULL, NULL,
                            m == VD_ERR_AUTH
                                ? "file system metadata failed authentication: "
                                  "the FAT32 structure cannot be checked"
                                : "no valid FAT32 volume inside",
                            NULL);
        if (e == VD_OK)
            e = report_unclaimed(&c, 0);
    } else {
        res->fs_checked = 1;
        e = check_fs(&c);
        if (e == VD_ERR_AUTH) {
            /* A structure the mount needed after all (rare: the walk asks
             * the bad list first). */
            res->fs_checked = 0;
            e = chk_problem(&c, VD_FSCK_P_VOLUME, -1, NULL, NULL,
                            "file system metadata failed authentication: the FAT32 "
                            "structure cannot be checked",
                            NULL);
        }
    }
    if (e != VD_OK)
        goto out;
    /* Nothing found, nothing written: -y on a clean volume changes no byte. */
    c.persist = c.fs && res->fs_checked && !c.fatal && c.nprobs > 0 &&
                (mode == VD_FSCK_ALL || (mode == VD_FSCK_SAFE && !c.unsafe));
    if (c.persist)
        e = apply(&c);
    if (e == VD_OK)
        report_all(&c);
out:
    if (c.fs) {
        vd_err u = vd_fs_unmount(c.fs);
        if (e == VD_OK)
            e = u;
    }
    if (e == VD_OK && mode != VD_FSCK_CHECK)
        e = vd_image_sync(img);
    (void)vd_image_tolerate_nodes(img, 0);
    chk_free(&c);
    return e;
}
