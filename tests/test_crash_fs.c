/* File-system-level crash harness (issue 15, rule C4 of DESIGN §9).
 *
 * Seeded FAT workloads run through vd_fs_* / vd_file_* on the recording
 * host (record.h) with the smallest image cache, so implicit commits
 * happen in the middle of operations: create, write, extend with holes,
 * truncate down and up, rename over an existing file, unlink of an open
 * file that is written and closed later, mkdir/rmdir, vd_file_sync and
 * vd_fs_sync, many small files, one large file overwritten in place.
 * Every write and flush is logged. The harness then rebuilds crash states
 * from the log: every prefix, and at the end of each flush epoch (the
 * writes after the last completed flush may land in any subset and
 * order, each 4 KiB block write atomic) every state missing one write
 * plus seeded random subsets in random order. For each state:
 *   - the image opens writable (recovery commit included);
 *   - vd_fsck in VD_FSCK_CHECK mode reports no problem at all (no lost
 *     cluster, no differing FAT copies...). The FAT dirty flag alone is a
 *     note, as vhdfsck(8) says: every committed state is consistent (C4),
 *     so the flag means "not unmounted" and nothing more;
 *   - the volume mounts, and every file in it holds only bytes written
 *     to one file that lived at that path (every write's bytes encode
 *     file id, write number and offset; zeros only where the file was
 *     extended by a hole or a truncate), every directory is one the
 *     workload made;
 *   - every file synced (vd_file_sync, or a vd_fs_sync) before the crash
 *     point and not modified since is there, byte-exact, and after a
 *     vd_fs_sync with no namespace change since, the volume holds
 *     exactly the synced set of paths.
 * Every 50th state that passes is also crashed again at every point of
 * its recovering writable open (recorded in turn), and each of those
 * states must pass the same checks.
 * A state that fails is counted (by cause) and the first few are printed
 * with the seed and the state, so any can be replayed.
 *
 * Modes (environment):
 *   default            a sample of about 1,000 states (every state kind,
 *                      spread over the whole log of each workload);
 *   VD_CRASH_FULL=1    every state described above (> 10,000);
 *   VD_CRASH_MUTATION=1  the sample with the metadata journal off
 *                      (vd_open_opts.test_no_meta_journal): the
 *                      harness must find failures (it checks itself);
 *   VD_CRASH_SEED=n    seed of the first workload (the others follow).
 * Summary line: "crash-fs: N workloads, M crash states checked, F failed". */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <xxhash.h>

#include "endian.h"
#include "record.h"
#include "replay.h"
#include "testkit.h"
#include "vdisk/check.h"
#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define PATHLEN 128
#define NONE SIZE_MAX
#define SAMPLE_STATES 1000u /* default mode, over all workloads */
#define EXAMPLES 8u         /* failing states printed in full */
#define RANDOM_SUBSETS 3u   /* per epoch with >= 2 writes */
#define FULL_SEEDS 4u       /* full run: seeds per workload kind */
/* Every n-th passing state is also crashed during its recovering open.
 * Since format 4 most recovering opens redo a one-flush commit, so each
 * nested state has several times more prefixes than before: every 100th
 * in the full run still checks more nested states (about 14,000) than
 * every 50th did before format 4 (4,777), in half the time. */
#define NESTED_EVERY_FULL 100u
#define NESTED_EVERY_SAMPLE 50u

/* ---- The model -------------------------------------------------------- */

typedef struct wrec {
    uint64_t off, len;
    uint32_t wseq;
} wrec;

typedef struct zrange {
    uint64_t off, len;
} zrange;

/* A file's content and path as of a completed sync, and the log position
 * where the first modification after it started (NONE: never). */
typedef struct snap {
    size_t end_op, next_mod;
    const uint8_t *data; /* owned by the workload's arena */
    uint64_t len;
    char path[PATHLEN];
} snap;

typedef struct mfile {
    uint32_t fid;
    char path[PATHLEN]; /* "" once unlinked */
    uint8_t *data;
    uint64_t len, cap;
    uint64_t version;   /* bumps on every content change */
    uint64_t snap_version;
    const uint8_t *snap_data;
    wrec *w;
    size_t nw, capw;
    zrange *z;
    size_t nz, capz;
    snap *s;
    size_t ns, caps;
    vd_file *held; /* a handle kept open across operations */
} mfile;

typedef struct pathinfo {
    char path[PATHLEN];
    int dir;        /* was a directory */
    uint32_t *fids; /* files that ever lived here */
    size_t nf, capf;
} pathinfo;

/* The paths present at a vd_fs_sync, and where the next namespace change
 * started. */
typedef struct nssnap {
    size_t end_op, next_mod;
    char (*paths)[PATHLEN];
    size_t n;
} nssnap;

typedef struct workload {
    const char *name;
    uint64_t seed, rng;
    int no_journal; /* the mutation check: metadata journal off */
    uint32_t cluster_bytes;
    unsigned nops;  /* file-system operations */
    unsigned pct_small, pct_big; /* mix: many small files / the big file */
    uint64_t direct; /* blocks the operations wrote straight to their places */
    vd_rec *rec;
    vd_image *img;
    vd_fs *fs;
    mfile *f;
    size_t nf, capf;
    pathinfo *p;
    size_t np, capp;
    char (*dirs)[PATHLEN]; /* live directories, root excluded */
    size_t nd, capd;
    nssnap *ns;
    size_t nns, capns;
    uint8_t **arena;
    size_t narena, caparena;
    uint32_t wseq;
    uint32_t next_name;
    uint32_t big; /* fid of the big file */
    uint64_t max_len; /* the longest any file ever was */
    unsigned fs_syncs, file_syncs, implicit;
} workload;

static uint8_t g_key[VD_KEY_BYTES];

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return p;
    *cap = *cap ? *cap * 2 : 16;
    p = realloc(p, *cap * elem);
    assert_non_null(p);
    return p;
}

static uint64_t below(workload *w, uint64_t n)
{
    return n ? vt_rand(&w->rng) % n : 0;
}

static size_t log_pos(workload *w)
{
    return vd_rec_op_count(w->rec);
}

/* Byte `off` of write wseq to file fid: every 8 bytes one mixed word, so
 * bytes of another file, another write or another offset differ. */
static uint64_t pat_word(uint32_t fid, uint32_t wseq, uint64_t word)
{
    uint64_t z = ((uint64_t)fid << 40) ^ ((uint64_t)wseq << 20) ^ word * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint8_t pat_byte(uint32_t fid, uint32_t wseq, uint64_t off)
{
    return (uint8_t)(pat_word(fid, wseq, off / 8) >> (8 * (off % 8)));
}

static pathinfo *path_info(workload *w, const char *path, int create)
{
    for (size_t i = 0; i < w->np; i++)
        if (strcmp(w->p[i].path, path) == 0)
            return &w->p[i];
    if (!create)
        return NULL;
    w->p = grow(w->p, &w->capp, w->np, sizeof *w->p);
    pathinfo *pi = &w->p[w->np++];
    memset(pi, 0, sizeof *pi);
    snprintf(pi->path, sizeof pi->path, "%s", path);
    return pi;
}

static void path_add_fid(workload *w, const char *path, uint32_t fid)
{
    pathinfo *pi = path_info(w, path, 1);
    for (size_t i = 0; i < pi->nf; i++)
        if (pi->fids[i] == fid)
            return;
    pi->fids = grow(pi->fids, &pi->capf, pi->nf, sizeof *pi->fids);
    pi->fids[pi->nf++] = fid;
}

/* A modification of f starts at the current log position. */
static void file_mod(workload *w, mfile *f)
{
    if (f->ns && f->s[f->ns - 1].next_mod == NONE)
        f->s[f->ns - 1].next_mod = log_pos(w);
}

static void ns_mod(workload *w)
{
    if (w->nns && w->ns[w->nns - 1].next_mod == NONE)
        w->ns[w->nns - 1].next_mod = log_pos(w);
}

static void file_resize(mfile *f, uint64_t len)
{
    if (len > f->cap) {
        f->cap = len + len / 2 + 64;
        f->data = realloc(f->data, f->cap);
        assert_non_null(f->data);
    }
    if (len > f->len) {
        memset(f->data + f->len, 0, len - f->len);
        f->z = grow(f->z, &f->capz, f->nz, sizeof *f->z);
        f->z[f->nz++] = (zrange){f->len, len - f->len};
    }
    f->len = len;
    f->version++;
}

static void note_len(workload *w, const mfile *f)
{
    if (f->len > w->max_len)
        w->max_len = f->len;
}

static void snap_file(workload *w, mfile *f, size_t end)
{
    if (f->snap_data == NULL || f->snap_version != f->version) {
        uint8_t *copy = malloc(f->len ? f->len : 1);
        assert_non_null(copy);
        if (f->len)
            memcpy(copy, f->data, f->len);
        w->arena = grow(w->arena, &w->caparena, w->narena, sizeof *w->arena);
        w->arena[w->narena++] = copy;
        f->snap_data = copy;
        f->snap_version = f->version;
    }
    f->s = grow(f->s, &f->caps, f->ns, sizeof *f->s);
    snap *s = &f->s[f->ns++];
    s->end_op = end;
    s->next_mod = NONE;
    s->data = f->snap_data;
    s->len = f->len;
    snprintf(s->path, sizeof s->path, "%s", f->path);
}

static mfile *new_file(workload *w, const char *path)
{
    w->f = grow(w->f, &w->capf, w->nf, sizeof *w->f);
    mfile *f = &w->f[w->nf];
    memset(f, 0, sizeof *f);
    f->fid = (uint32_t)++w->nf;
    snprintf(f->path, sizeof f->path, "%s", path);
    path_add_fid(w, path, f->fid);
    return f;
}

/* ---- Workload operations ------------------------------------------------ */

#define WL_OK(expr)                                                                \
    do {                                                                           \
        vd_err e_ = (expr);                                                        \
        if (e_ != VD_OK) {                                                         \
            print_error("%s: %s:%d: %s: %s\n", w->name, __FILE__, __LINE__, #expr, \
                        vd_strerror(e_));                                          \
            fail();                                                                \
        }                                                                          \
    } while (0)

static vd_file *open_f(workload *w, mfile *f, int *opened)
{
    *opened = 0;
    if (f->held)
        return f->held;
    vd_file *h;
    WL_OK(vd_file_open(w->fs, f->path, VD_O_RDWR, &h));
    *opened = 1;
    return h;
}

static void write_f(workload *w, mfile *f, vd_file *h, uint64_t off, uint64_t len)
{
    uint32_t wseq = ++w->wseq;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    for (uint64_t i = 0; i < len; i++)
        buf[i] = pat_byte(f->fid, wseq, off + i);
    file_mod(w, f);
    size_t done = 0;
    WL_OK(vd_file_write(h, off, buf, len, &done));
    assert_int_equal(done, len);
    if (off > f->len)
        file_resize(f, off); /* the hole reads as zeros */
    if (off + len > f->len)
        file_resize(f, off + len);
    memcpy(f->data + off, buf, len);
    f->version++;
    f->w = grow(f->w, &f->capw, f->nw, sizeof *f->w);
    f->w[f->nw++] = (wrec){off, len, wseq};
    note_len(w, f);
    free(buf);
}

static void close_f(workload *w, vd_file *h, int opened)
{
    if (opened)
        WL_OK(vd_file_close(h));
}

static mfile *rand_live(workload *w, int allow_big)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nf; i++)
        n += w->f[i].path[0] && (allow_big || w->f[i].fid != w->big);
    if (n == 0)
        return NULL;
    uint64_t k = below(w, n);
    for (size_t i = 0; i < w->nf; i++)
        if (w->f[i].path[0] && (allow_big || w->f[i].fid != w->big) && k-- == 0)
            return &w->f[i];
    return NULL;
}

static const char *rand_dir(workload *w)
{
    uint64_t k = below(w, w->nd + 2);
    return k >= w->nd ? "" : w->dirs[k]; /* the root more often */
}

static void new_name(workload *w, const char *dir, char *out, size_t cap)
{
    uint32_t n = ++w->next_name;
    if (n % 4 == 0) /* a long name: LFN entries around the 8.3 one */
        snprintf(out, cap, "%s/a long file name %u.data", dir, n);
    else
        snprintf(out, cap, "%s/f%u.bin", dir, n);
}

static void op_create(workload *w, unsigned maxchunks, uint64_t maxlen)
{
    char path[PATHLEN];
    new_name(w, rand_dir(w), path, sizeof path);
    ns_mod(w);
    vd_file *h;
    WL_OK(vd_file_open(w->fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &h));
    mfile *f = new_file(w, path);
    unsigned chunks = (unsigned)below(w, maxchunks + 1);
    for (unsigned c = 0; c < chunks; c++)
        write_f(w, f, h, f->len, 1 + below(w, maxlen));
    WL_OK(vd_file_close(h));
}

static void op_write(workload *w)
{
    mfile *f = rand_live(w, 0);
    if (!f)
        return;
    int opened;
    vd_file *h = open_f(w, f, &opened);
    uint64_t off = below(w, f->len + 3000); /* past the end: a hole */
    write_f(w, f, h, off, 1 + below(w, 9000));
    close_f(w, h, opened);
}

static void op_truncate(workload *w)
{
    mfile *f = rand_live(w, 0);
    if (!f)
        return;
    uint64_t nl = below(w, 2) && f->len ? below(w, f->len) : f->len + 1 + below(w, 6000);
    int opened;
    vd_file *h = open_f(w, f, &opened);
    file_mod(w, f);
    WL_OK(vd_file_truncate(h, nl));
    file_resize(f, nl);
    note_len(w, f);
    close_f(w, h, opened);
}

/* Rename a file over another one (replace) or to a fresh name. */
static void op_rename(workload *w, int over)
{
    mfile *a = rand_live(w, 0);
    if (!a)
        return;
    char to[PATHLEN];
    mfile *b = over ? rand_live(w, 0) : NULL;
    if (over && (!b || b == a))
        return;
    if (b)
        snprintf(to, sizeof to, "%s", b->path);
    else
        new_name(w, rand_dir(w), to, sizeof to);
    ns_mod(w);
    file_mod(w, a);
    if (b)
        file_mod(w, b);
    WL_OK(vd_fs_rename(w->fs, a->path, to, 0));
    if (b)
        b->path[0] = 0; /* replaced: its handle, if held, keeps the old data */
    snprintf(a->path, sizeof a->path, "%s", to);
    path_add_fid(w, to, a->fid);
}

static void op_unlink(workload *w)
{
    mfile *f = rand_live(w, 0);
    if (!f)
        return;
    ns_mod(w);
    file_mod(w, f);
    WL_OK(vd_fs_unlink(w->fs, f->path));
    f->path[0] = 0;
}

/* Open a file and keep the handle: later writes go through it, and the
 * file may be unlinked or replaced while open. */
static void op_hold(workload *w)
{
    mfile *f = rand_live(w, 0);
    if (!f || f->held)
        return;
    WL_OK(vd_file_open(w->fs, f->path, VD_O_RDWR, &f->held));
}

/* Write through, then close, a held handle (maybe of an unlinked file:
 * its clusters are freed now). */
static void op_release(workload *w)
{
    for (size_t i = 0; i < w->nf; i++) {
        mfile *f = &w->f[(i + below(w, w->nf)) % w->nf];
        if (!f->held)
            continue;
        if (below(w, 2))
            write_f(w, f, f->held, below(w, f->len + 100), 1 + below(w, 5000));
        if (!f->path[0])
            ns_mod(w); /* freeing an orphan changes what fsck sees */
        WL_OK(vd_file_close(f->held));
        f->held = NULL;
        return;
    }
}

static void op_mkdir(workload *w)
{
    if (w->nd >= 12)
        return;
    char path[PATHLEN];
    const char *parent = rand_dir(w);
    if (strchr(parent, '/') != strrchr(parent, '/'))
        parent = ""; /* two levels at most */
    snprintf(path, sizeof path, "%s/d%u", parent, ++w->next_name);
    ns_mod(w);
    WL_OK(vd_fs_mkdir(w->fs, path));
    w->dirs = grow(w->dirs, &w->capd, w->nd, sizeof *w->dirs);
    snprintf(w->dirs[w->nd++], PATHLEN, "%s", path);
    path_info(w, path, 1)->dir = 1;
}

static int dir_empty(workload *w, const char *d)
{
    size_t l = strlen(d);
    for (size_t i = 0; i < w->nf; i++)
        if (strncmp(w->f[i].path, d, l) == 0 && w->f[i].path[l] == '/')
            return 0;
    for (size_t i = 0; i < w->nd; i++)
        if (strncmp(w->dirs[i], d, l) == 0 && w->dirs[i][l] == '/')
            return 0;
    return 1;
}

static void op_rmdir(workload *w)
{
    for (size_t i = 0; i < w->nd; i++) {
        if (!dir_empty(w, w->dirs[i]))
            continue;
        ns_mod(w);
        WL_OK(vd_fs_rmdir(w->fs, w->dirs[i]));
        memmove(w->dirs[i], w->dirs[w->nd - 1], PATHLEN);
        w->nd--;
        return;
    }
}

static void snap_namespace(workload *w, size_t end)
{
    w->ns = grow(w->ns, &w->capns, w->nns, sizeof *w->ns);
    nssnap *s = &w->ns[w->nns++];
    s->end_op = end;
    s->next_mod = NONE;
    s->n = 0;
    s->paths = malloc((w->nf + w->nd + 1) * PATHLEN);
    assert_non_null(s->paths);
    for (size_t i = 0; i < w->nf; i++)
        if (w->f[i].path[0])
            snprintf(s->paths[s->n++], PATHLEN, "%s", w->f[i].path);
    for (size_t i = 0; i < w->nd; i++)
        snprintf(s->paths[s->n++], PATHLEN, "%s", w->dirs[i]);
}

static void op_fs_sync(workload *w)
{
    WL_OK(vd_fs_sync(w->fs));
    size_t end = log_pos(w);
    for (size_t i = 0; i < w->nf; i++)
        if (w->f[i].path[0])
            snap_file(w, &w->f[i], end);
    snap_namespace(w, end);
    w->fs_syncs++;
}

/* Write to a file (sometimes), then vd_file_sync it: that file, as it is
 * now, must survive every later crash until it is changed again. */
static void op_file_sync(workload *w)
{
    mfile *f = rand_live(w, 1);
    if (!f)
        return;
    int opened;
    vd_file *h = open_f(w, f, &opened);
    if (below(w, 2))
        write_f(w, f, h, below(w, f->len + 1), 1 + below(w, 4000));
    WL_OK(vd_file_sync(h));
    snap_file(w, f, log_pos(w));
    w->file_syncs++;
    close_f(w, h, opened);
}

/* Overwrite part of the big file in place: enough dirty blocks for an
 * implicit commit in the middle of the write. */
static void op_big(workload *w)
{
    mfile *f = &w->f[w->big - 1];
    int opened;
    vd_file *h = open_f(w, f, &opened);
    uint64_t len = 16384 + below(w, 900000);
    /* A quarter of the time past its end: new clusters, which long runs
     * write straight to their places where no file used them before
     * (direct writes, libvdisk/spill.c). */
    uint64_t off = below(w, 4) == 0 ? f->len : below(w, f->len > len ? f->len - len : 1);
    write_f(w, f, h, off, len);
    close_f(w, h, opened);
}

static uint64_t commits(workload *w)
{
    vd_image_info info;
    WL_OK(vd_image_info_get(w->img, &info));
    return info.syncs;
}

static void run_ops(workload *w)
{
    for (unsigned i = 0; i < w->nops; i++) {
        /* Commits inside an operation that asked for none are implicit. */
        uint64_t before = commits(w);
        unsigned explicit = w->fs_syncs + w->file_syncs;
        unsigned r = (unsigned)below(w, 100);
        if (r < w->pct_small)
            op_create(w, 2, 3000);
        else if ((r -= w->pct_small) < w->pct_big)
            op_big(w);
        else {
            switch (below(w, 16)) {
            case 0: case 1: case 2: op_write(w); break;
            case 3: case 4: op_truncate(w); break;
            case 5: op_rename(w, 1); break;
            case 6: op_rename(w, 0); break;
            case 7: op_unlink(w); break;
            case 8: op_hold(w); break;
            case 9: op_release(w); break;
            case 10: op_mkdir(w); break;
            case 11: op_rmdir(w); break;
            case 12: case 13: op_file_sync(w); break;
            case 14: op_fs_sync(w); break;
            default: op_create(w, 3, 9000); break;
            }
        }
        if (w->fs_syncs + w->file_syncs == explicit)
            w->implicit += (unsigned)(commits(w) - before);
    }
    for (;;) { /* close every held handle */
        size_t held = 0;
        for (size_t i = 0; i < w->nf; i++)
            held += w->f[i].held != NULL;
        if (!held)
            break;
        op_release(w);
    }
}

/* Image, volume and the files the log starts from (all synced), then the
 * recorded part: mount, the operations, unmount, close. */
static void wl_run(workload *w)
{
    w->rng = w->seed ? w->seed : 1;
    w->rec = vd_rec_new(NULL, 0);
    assert_non_null(w->rec);
    /* The smallest FAT32 volume for the cluster size, the smallest cache:
     * implicit commits every 128 dirty blocks. */
    uint64_t nblocks = (65600ull * w->cluster_bytes + (2u << 20)) / VD_BLOCK_SIZE;
    vd_create_opts c = {.nblocks = nblocks};
    vd_open_opts o = {.cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL,
                      .test_no_meta_journal = w->no_journal};
    WL_OK(vd_image_create(vd_rec_host(w->rec), g_key, &c, &o, &w->img));
    vd_mkfs_opts m = {.cluster_bytes = w->cluster_bytes, .volume_id = 0x15};
    WL_OK(vd_fs_format(w->img, &m));
    WL_OK(vd_fs_mount(w->img, NULL, &w->fs));
    WL_OK(vd_fs_mkdir(w->fs, "/sub"));
    w->dirs = grow(w->dirs, &w->capd, w->nd, sizeof *w->dirs);
    snprintf(w->dirs[w->nd++], PATHLEN, "/sub");
    path_info(w, "/sub", 1)->dir = 1;
    vd_file *h;
    WL_OK(vd_file_open(w->fs, "/big.dat", VD_O_RDWR | VD_O_CREAT, &h));
    mfile *big = new_file(w, "/big.dat");
    w->big = big->fid;
    write_f(w, big, h, 0, 3u << 19);
    WL_OK(vd_file_close(h));
    for (unsigned i = 0; i < 20; i++)
        op_create(w, 2, 3000);
    WL_OK(vd_fs_unmount(w->fs));
    WL_OK(vd_image_sync(w->img));
    WL_OK(vd_rec_reset_log(w->rec)); /* crash states start here */
    for (size_t i = 0; i < w->nf; i++)
        snap_file(w, &w->f[i], 0);
    snap_namespace(w, 0);

    vd_image_info info;
    WL_OK(vd_image_info_get(w->img, &info));
    w->direct = info.blocks_direct;
    WL_OK(vd_fs_mount(w->img, NULL, &w->fs));
    run_ops(w);
    WL_OK(vd_fs_unmount(w->fs));
    WL_OK(vd_image_info_get(w->img, &info));
    w->direct = info.blocks_direct - w->direct;
    WL_OK(vd_image_close(w->img));
    w->img = NULL;
}

static void wl_free(workload *w)
{
    for (size_t i = 0; i < w->nf; i++) {
        free(w->f[i].data);
        free(w->f[i].w);
        free(w->f[i].z);
        free(w->f[i].s);
    }
    free(w->f);
    for (size_t i = 0; i < w->np; i++)
        free(w->p[i].fids);
    free(w->p);
    free(w->dirs);
    for (size_t i = 0; i < w->nns; i++)
        free(w->ns[i].paths);
    free(w->ns);
    for (size_t i = 0; i < w->narena; i++)
        free(w->arena[i]);
    free(w->arena);
    vd_rec_free(w->rec);
}

/* ---- Checking one crash state --------------------------------------------- */

enum {
    F_OPEN,
    F_FSCK_RUN,
    F_MOUNT,
    F_WALK,
    F_FOREIGN,
    F_UNKNOWN,
    F_SYNCED,
    F_NAMESPACE,
    F_KINDS /* then one per vd_fsck_kind */
};
#define NCAUSES (F_KINDS + 16)

static const char *cause_name(int c)
{
    static const char *base[] = {"image does not open",
                                 "vd_fsck could not run",
                                 "volume does not mount",
                                 "volume walk failed",
                                 "file holds bytes never written to it",
                                 "unknown file or directory",
                                 "synced file missing or changed",
                                 "synced namespace changed"};
    static const char *kinds[] = {"?",
                                  "fsck: integrity",
                                  "fsck: FAT copies differ",
                                  "fsck: dirty flag",
                                  "fsck: FSInfo",
                                  "fsck: lost clusters",
                                  "fsck: cross-linked clusters",
                                  "fsck: bad chain",
                                  "fsck: size/chain mismatch",
                                  "fsck: long names",
                                  "fsck: . or .. entry",
                                  "fsck: directory entry",
                                  "fsck: volume unreadable"};
    if (c < F_KINDS)
        return base[c];
    c -= F_KINDS;
    return c < (int)(sizeof kinds / sizeof *kinds) ? kinds[c] : "fsck: other";
}

typedef struct found {
    char path[PATHLEN];
    int dir;
    uint8_t *data;
    uint64_t len;
} found;

typedef struct checker {
    workload *w;
    size_t point;      /* the crash prefix: ops issued before the crash */
    const char *what;  /* how the state was made */
    char why[400];     /* first failure of this state */
    unsigned causes;   /* bit per cause seen in this state */
    unsigned notes;    /* fsck findings of this state that are notes */
    found *fd;
    size_t nfd, capfd;
    uint64_t *memo;    /* xxh64 of (path, content) already verified */
    size_t nmemo, capmemo;
    /* totals */
    uint64_t states, failed, failed_not_dirty, by_cause[NCAUSES];
    char example[NCAUSES][480]; /* first state failing for each cause */
    unsigned printed, workloads;
    uint64_t nested_every; /* crash inside the recovery of every n-th state */
    size_t stride;         /* VD_CRASH_STRIDE: one sampled state in stride */
    uint64_t nested;       /* states checked that way */
    uint64_t passed;       /* states of the log that passed */
} checker;

static void bad(checker *c, int cause, const char *fmt, ...)
{
    char msg[sizeof c->why];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->why[0] == 0)
        memcpy(c->why, msg, sizeof msg);
    if (c->example[cause][0] == 0)
        snprintf(c->example[cause], sizeof c->example[cause], "%s, op %zu: %s", c->w->name,
                 c->point, msg);
    c->causes |= 1u << cause;
}

static void on_problem(void *ctx, const vd_fsck_problem *p)
{
    checker *c = ctx;
    int k = (int)p->kind;
    if (p->kind == VD_FSCK_P_DIRTY) { /* a note (vhdfsck(8)), not a problem */
        c->notes++;
        return;
    }
    if (k < 0 || k >= 16)
        k = 0;
    bad(c, F_KINDS + k, "fsck: %s%s%s", p->what, p->path ? ": " : "", p->path ? p->path : "");
}

/* Every byte written to fid at that offset by some write, or a zero where
 * the file was once extended without data. */
static int content_ok(const mfile *f, const uint8_t *buf, uint64_t len, uint64_t *bad_off)
{
    size_t cur = NONE;
    for (uint64_t o = 0; o < len; o++) {
        /* A whole pattern word inside the write that matched last: the
         * byte test below would accept each of its 8 bytes (one pattern
         * word computed, not eight). */
        if (cur != NONE && o % 8 == 0 && o + 8 <= len && o >= f->w[cur].off &&
            o + 8 <= f->w[cur].off + f->w[cur].len &&
            vd_get_le64(buf + o) == pat_word(f->fid, f->w[cur].wseq, o / 8)) {
            o += 7;
            continue;
        }
        uint8_t b = buf[o];
        if (cur != NONE && o >= f->w[cur].off && o < f->w[cur].off + f->w[cur].len &&
            pat_byte(f->fid, f->w[cur].wseq, o) == b)
            continue;
        cur = NONE;
        for (size_t k = f->nw; k-- > 0;) {
            const wrec *x = &f->w[k];
            if (o >= x->off && o < x->off + x->len && pat_byte(f->fid, x->wseq, o) == b) {
                cur = k;
                break;
            }
        }
        if (cur != NONE)
            continue;
        int zero_ok = 0;
        for (size_t k = 0; b == 0 && !zero_ok && k < f->nz; k++)
            zero_ok = o >= f->z[k].off && o < f->z[k].off + f->z[k].len;
        if (!zero_ok) {
            *bad_off = o;
            return 0;
        }
    }
    return 1;
}

/* A set of 64-bit hashes (open addressing, 0 = empty). */
static size_t memo_slot(const checker *c, uint64_t h)
{
    size_t i = (size_t)(h * 0x9E3779B97F4A7C15ull >> 17) & (c->capmemo - 1);
    while (c->memo[i] && c->memo[i] != h)
        i = (i + 1) & (c->capmemo - 1);
    return i;
}

static int memo_has(const checker *c, uint64_t h)
{
    return c->capmemo && c->memo[memo_slot(c, h | 1)] != 0;
}

static void memo_add(checker *c, uint64_t h)
{
    if ((c->nmemo + 1) * 2 > c->capmemo) {
        uint64_t *old = c->memo;
        size_t oldcap = c->capmemo;
        c->capmemo = oldcap ? oldcap * 2 : 1024;
        c->memo = calloc(c->capmemo, sizeof *c->memo);
        assert_non_null(c->memo);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                c->memo[memo_slot(c, old[i])] = old[i];
        free(old);
    }
    size_t i = memo_slot(c, h | 1);
    if (!c->memo[i]) {
        c->memo[i] = h | 1;
        c->nmemo++;
    }
}

static void memo_clear(checker *c)
{
    if (c->capmemo)
        memset(c->memo, 0, c->capmemo * sizeof *c->memo);
    c->nmemo = 0;
}

static void check_file(checker *c, const found *x)
{
    workload *w = c->w;
    pathinfo *pi = path_info(w, x->path, 0);
    if (!pi || pi->nf == 0) {
        bad(c, F_UNKNOWN, "file %s (%" PRIu64 " bytes) was never created", x->path, x->len);
        return;
    }
    uint64_t h = XXH3_64bits_withSeed(x->data, x->len, XXH3_64bits(x->path, strlen(x->path)));
    if (memo_has(c, h))
        return;
    uint64_t off = 0, first_bad = 0;
    for (size_t i = 0; i < pi->nf; i++) {
        if (content_ok(&w->f[pi->fids[i] - 1], x->data, x->len, &off)) {
            memo_add(c, h);
            return;
        }
        if (i == 0)
            first_bad = off;
    }
    bad(c, F_FOREIGN,
        "%s (%" PRIu64 " bytes): byte %" PRIu64 " = 0x%02x was never written there "
        "by any file that lived at this path",
        x->path, x->len, first_bad, x->data[first_bad]);
}

static int walk(checker *c, vd_fs *fs, const char *dir)
{
    vd_dir *d;
    vd_err e = vd_dir_open(fs, dir[0] ? dir : "/", &d);
    if (e != VD_OK) {
        bad(c, F_WALK, "opendir %s: %s", dir[0] ? dir : "/", vd_strerror(e));
        return -1;
    }
    vd_dirent ent;
    int rc = 0;
    while (rc == 0 && (e = vd_dir_read(d, &ent)) == VD_OK) {
        c->fd = grow(c->fd, &c->capfd, c->nfd, sizeof *c->fd);
        found *x = &c->fd[c->nfd++];
        memset(x, 0, sizeof *x);
        if (strlen(dir) + 1 + strlen(ent.name) >= sizeof x->path) {
            bad(c, F_UNKNOWN, "%s/%.40s...: a name longer than any made", dir, ent.name);
            x->dir = 1; /* not read, not descended into */
            continue;
        }
        memcpy(x->path, dir, strlen(dir));
        x->path[strlen(dir)] = '/';
        memcpy(x->path + strlen(dir) + 1, ent.name, strlen(ent.name) + 1);
        x->dir = ent.is_dir;
        if (ent.is_dir)
            continue;
        vd_file *f;
        e = vd_file_open(fs, x->path, VD_O_RDONLY, &f);
        if (e != VD_OK) {
            bad(c, F_WALK, "open %s: %s", x->path, vd_strerror(e));
            rc = -1;
            break;
        }
        x->len = ent.size;
        if (x->len > c->w->max_len) {
            bad(c, F_FOREIGN, "%s holds %" PRIu64 " bytes, more than any file ever had",
                x->path, x->len);
            x->len = 0;
            vd_file_close(f);
            continue;
        }
        x->data = malloc(x->len ? x->len : 1);
        assert_non_null(x->data);
        size_t done = 0;
        e = vd_file_read(f, 0, x->data, x->len, &done);
        if (e != VD_OK || done != x->len) {
            bad(c, F_WALK, "read %s: %s (%zu of %" PRIu64 " bytes)", x->path,
                vd_strerror(e), done, x->len);
            rc = -1;
        }
        vd_file_close(f);
    }
    if (rc == 0 && e != VD_ERR_NOENT) {
        bad(c, F_WALK, "readdir %s: %s", dir[0] ? dir : "/", vd_strerror(e));
        rc = -1;
    }
    vd_dir_close(d);
    /* Recurse after closing: subdirectories of this one. */
    size_t n = c->nfd;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *p = c->fd[i].path;
        size_t l = strlen(dir);
        if (c->fd[i].dir && strncmp(p, dir, l) == 0 && p[l] == '/' && !strchr(p + l + 1, '/')) {
            char sub[PATHLEN];
            snprintf(sub, sizeof sub, "%s", p);
            rc = walk(c, fs, sub);
        }
    }
    return rc;
}

static const found *find_path(const checker *c, const char *path)
{
    for (size_t i = 0; i < c->nfd; i++)
        if (strcmp(c->fd[i].path, path) == 0)
            return &c->fd[i];
    return NULL;
}

static void check_synced(checker *c)
{
    workload *w = c->w;
    for (size_t i = 0; i < w->nf; i++) {
        const mfile *f = &w->f[i];
        const snap *s = NULL;
        for (size_t k = 0; k < f->ns && f->s[k].end_op <= c->point; k++)
            s = &f->s[k];
        if (!s || s->next_mod < c->point || !s->path[0])
            continue; /* not synced, or changed since (the crash may show either) */
        const found *x = find_path(c, s->path);
        if (!x || x->dir) {
            bad(c, F_SYNCED, "%s, synced at op %zu, is missing", s->path, s->end_op);
        } else if (x->len != s->len || (s->len && memcmp(x->data, s->data, s->len) != 0)) {
            bad(c, F_SYNCED, "%s, synced at op %zu with %" PRIu64 " bytes, holds %" PRIu64
                " bytes%s", s->path, s->end_op, s->len, x->len,
                x->len == s->len ? " that differ" : "");
        }
    }
    const nssnap *ns = NULL;
    for (size_t k = 0; k < w->nns && w->ns[k].end_op <= c->point; k++)
        ns = &w->ns[k];
    if (!ns || ns->next_mod < c->point)
        return;
    for (size_t k = 0; k < ns->n; k++)
        if (!find_path(c, ns->paths[k]))
            bad(c, F_NAMESPACE, "%s, present at the sync at op %zu, is gone", ns->paths[k],
                ns->end_op);
    if (c->nfd != ns->n)
        bad(c, F_NAMESPACE, "%zu paths, %zu at the sync at op %zu", c->nfd, ns->n, ns->end_op);
}

static void check_volume(checker *c, vd_image *img)
{
    vd_fs *fs;
    vd_fs_opts fo = {.read_only = 1};
    vd_err e = vd_fs_mount(img, &fo, &fs);
    if (e != VD_OK) {
        bad(c, F_MOUNT, "mount: %s", vd_strerror(e));
        return;
    }
    c->nfd = 0;
    if (walk(c, fs, "") == 0) {
        for (size_t i = 0; i < c->nfd; i++) {
            const found *x = &c->fd[i];
            pathinfo *pi = path_info(c->w, x->path, 0);
            if (x->dir && (!pi || !pi->dir))
                bad(c, F_UNKNOWN, "directory %s was never made", x->path);
            else if (!x->dir)
                check_file(c, x);
        }
        check_synced(c);
    }
    for (size_t i = 0; i < c->nfd; i++)
        free(c->fd[i].data);
    c->nfd = 0;
    vd_fs_unmount(fs);
}

static void check_host(checker *c, vd_host *h)
{
    c->why[0] = 0;
    c->causes = 0;
    c->notes = 0;
    vd_image *img;
    vd_open_opts o = {.cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL};
    vd_err e = vd_image_open(h, g_key, &o, &img);
    if (e != VD_OK) {
        bad(c, F_OPEN, "writable open: %s", vd_strerror(e));
    } else {
        vd_fsck_opts fo = {.mode = VD_FSCK_CHECK, .ctx = c, .report = on_problem};
        vd_fsck_result res;
        e = vd_fsck(img, &fo, &res);
        if (e != VD_OK)
            bad(c, F_FSCK_RUN, "vd_fsck: %s", vd_strerror(e));
        else if (res.found > c->notes && !c->causes)
            bad(c, F_FSCK_RUN, "vd_fsck found %u problems but reported none", res.found);
        check_volume(c, img);
        vd_image_close(img);
    }
    c->states++;
    if (!c->causes)
        return;
    c->failed++;
    if (c->causes != (1u << (F_KINDS + VD_FSCK_P_DIRTY)))
        c->failed_not_dirty++;
    for (int k = 0; k < NCAUSES; k++)
        if (c->causes & (1u << k))
            c->by_cause[k]++;
    if (c->printed < EXAMPLES) {
        c->printed++;
        printf("  FAIL %s seed %" PRIu64 ", crash after op %zu of %zu (%s): %s\n", c->w->name,
               c->w->seed, c->point, vd_rec_op_count(c->w->rec), c->what, c->why);
    }
}

/* ---- Enumerating crash states ---------------------------------------------- */

typedef enum skind { S_PREFIX, S_DROP_ONE, S_RANDOM } skind;

typedef struct sdesc {
    size_t point; /* prefix length */
    skind kind;
    size_t arg;   /* S_DROP_ONE: the tail op dropped; S_RANDOM: subset number */
} sdesc;

static size_t describe(workload *w, sdesc **out)
{
    vd_rec *rec = w->rec;
    size_t nops = vd_rec_op_count(rec), n = 0, cap = 0;
    sdesc *d = NULL;
    size_t nep = vd_rec_epoch_count(rec);
    size_t ep = 0, first = 0, end = 0;
    assert_int_equal(vd_rec_epoch_bounds(rec, 0, &first, &end), VD_OK);
    for (size_t p = 0; p <= nops; p++) {
        d = grow(d, &cap, n, sizeof *d);
        d[n++] = (sdesc){p, S_PREFIX, 0};
        /* At the end of each epoch: its reorderings and subsets. */
        while (ep < nep && p == end) {
            size_t len = end - first;
            for (size_t j = 0; len >= 2 && j < len; j++) {
                d = grow(d, &cap, n, sizeof *d);
                d[n++] = (sdesc){end, S_DROP_ONE, j};
            }
            for (size_t r = 0; len >= 2 && r < RANDOM_SUBSETS; r++) {
                d = grow(d, &cap, n, sizeof *d);
                d[n++] = (sdesc){end, S_RANDOM, r};
            }
            if (++ep < nep)
                assert_int_equal(vd_rec_epoch_bounds(rec, ep, &first, &end), VD_OK);
        }
    }
    *out = d;
    return n;
}

static int env_on(const char *name);

/* Crash again while the writable open of a (passing) state recovers: the
 * open is recorded, and every prefix of what it wrote must pass the same
 * checks against the same crash point (recovery changes no file). */
static void check_nested(checker *c, workload *w, const sdesc *s, const uint8_t *mask,
                         uint64_t seed, int reorder, const char *what)
{
    uint64_t sz = 0;
    uint8_t *bytes = vd_rec_crash_image(w->rec, s->point, mask, seed, reorder, &sz);
    assert_non_null(bytes);
    vd_rec *r2 = vd_rec_new(bytes, sz);
    free(bytes);
    assert_non_null(r2);
    vd_image *img;
    vd_open_opts o = {.cache_bytes = 1 << 20, .aead_impl = VD_AEAD_OPENSSL};
    assert_int_equal(vd_image_open(vd_rec_host(r2), g_key, &o, &img), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);
    size_t n2 = vd_rec_op_count(r2);
    if (env_on("VD_CRASH_DUMP"))
        for (size_t p = 0; p < n2; p++) {
            vd_rec_op_info oi;
            assert_int_equal(vd_rec_op_get(r2, p, &oi), VD_OK);
            printf("    recovering open op %zu: %s %" PRIu64 " +%" PRIu64 "\n", p,
                   oi.kind == VD_REC_WRITE ? "write block" : "flush", oi.offset / 4096,
                   oi.length / 4096);
        }
    char nwhat[200];
    for (size_t p = 0; p < n2; p++) {
        vd_host *h;
        assert_int_equal(vd_rec_crash_view(r2, p, NULL, 0, 0, &h), VD_OK);
        snprintf(nwhat, sizeof nwhat, "%s, then a crash after op %zu of %zu of its "
                 "recovering open", what, p, n2);
        c->what = nwhat;
        check_host(c, h);
        vd_rec_view_free(h);
        c->nested++;
    }
    c->what = what;
    vd_rec_free(r2);
}

static void check_desc(checker *c, workload *w, const sdesc *s, uint64_t rng_seed)
{
    vd_rec *rec = w->rec;
    size_t tf = vd_rec_tail_first(rec, s->point);
    size_t len = s->point - tf;
    uint8_t *mask = NULL;
    uint64_t seed = 0;
    int reorder = 0;
    char what[96];
    if (s->kind == S_PREFIX) {
        snprintf(what, sizeof what, "prefix, tail of %zu writes in order", len);
    } else {
        mask = calloc(len / 8 + 1, 1);
        assert_non_null(mask);
        uint64_t r = rng_seed ^ (s->point * 0x9E3779B97F4A7C15ull) ^ s->arg;
        for (size_t j = 0; j < len; j++) {
            int on = s->kind == S_DROP_ONE ? j != s->arg : (int)(vt_rand(&r) & 1);
            if (on)
                mask[j / 8] |= (uint8_t)(1u << (j % 8));
        }
        seed = vt_rand(&r);
        reorder = 1;
        if (s->kind == S_DROP_ONE)
            snprintf(what, sizeof what, "tail of %zu writes without op %zu, reordered "
                     "(seed %" PRIu64 ")", len, tf + s->arg, seed);
        else
            snprintf(what, sizeof what, "random subset %zu of a tail of %zu writes, "
                     "reordered (seed %" PRIu64 ")", s->arg, len, seed);
    }
    vd_host *h;
    assert_int_equal(vd_rec_crash_view(rec, s->point, mask, seed, reorder, &h), VD_OK);
    c->point = s->point;
    c->what = what;
    check_host(c, h);
    vd_rec_view_free(h);
    if (!c->causes && c->nested_every && ++c->passed % c->nested_every == 0)
        check_nested(c, w, s, mask, seed, reorder, what);
    free(mask);
}

/* ---- The runs ------------------------------------------------------------ */

static int env_on(const char *name)
{
    const char *s = getenv(name);
    return s && *s && strcmp(s, "0") != 0;
}

typedef struct wspec {
    const char *name;
    uint32_t cluster_bytes;
    unsigned nops, pct_small, pct_big;
} wspec;

static const wspec specs[] = {
    {"mixed", 512, 260, 20, 6},        /* every operation kind */
    {"small-files", 512, 260, 55, 2},  /* many small files, namespace churn */
    {"big-file", 1024, 140, 10, 25},   /* large in-place overwrites, 1 KiB clusters */
};
#define NSPECS (sizeof specs / sizeof *specs)

/* The last state (everything written, volume unmounted, image closed)
 * must pass whatever the library does about crashes: if it fails, the
 * model is wrong, not the library. */
static void self_check(checker *c, workload *w)
{
    uint64_t failed = c->failed;
    sdesc last = {vd_rec_op_count(w->rec), S_PREFIX, 0};
    check_desc(c, w, &last, w->seed);
    c->states--;
    if (c->failed != failed)
        fail_msg("harness self-check: the final state of %s seed %" PRIu64
                 " fails: %s", w->name, w->seed, c->why);
}

static void run_one(checker *c, const wspec *sp, uint64_t seed, int full, int mutation)
{
    workload w;
    memset(&w, 0, sizeof w);
    w.no_journal = mutation;
    w.name = sp->name;
    w.seed = seed;
    w.cluster_bytes = sp->cluster_bytes;
    w.nops = sp->nops;
    w.pct_small = sp->pct_small;
    w.pct_big = sp->pct_big;
    wl_run(&w);
    sdesc *d;
    size_t nd = describe(&w, &d);
    printf("crash-fs: workload %s seed %" PRIu64 ": %u ops, %zu files, %u fs syncs, "
           "%u file syncs, %u implicit commits (%zu rounds in flight), %" PRIu64
           " blocks direct; log %zu writes/flushes (%zu flushes); %zu crash states\n",
           w.name, w.seed, w.nops, w.nf, w.fs_syncs, w.file_syncs, w.implicit,
           vd_rec_jobs_started(w.rec), w.direct, vd_rec_op_count(w.rec),
           vd_rec_flush_count(w.rec), nd);
    assert_true(w.implicit > 0); /* commits did happen mid-workload */
    c->w = &w;
    memo_clear(c);
    self_check(c, &w);
    /* The sample: an even stride through the workload's states, so every
     * part of the log and every kind of state is visited. */
    size_t want = full || nd <= SAMPLE_STATES / NSPECS ? nd : SAMPLE_STATES / NSPECS;
    want = (want + c->stride - 1) / c->stride;
    /* VD_CRASH_STATE=NAME,POINT,KIND,ARG (KIND 0 prefix, 1 one write
     * dropped, 2 random subset): only that state of workload NAME, and
     * every crash of its recovering open (a failure's reproduction). */
    const char *only = getenv("VD_CRASH_STATE");
    if (only) {
        char name[32];
        size_t point, kind, arg;
        if (sscanf(only, "%31[^,],%zu,%zu,%zu", name, &point, &kind, &arg) == 4 &&
            strcmp(name, w.name) == 0) {
            sdesc one = {point, (skind)kind, arg};
            c->nested_every = 1;
            c->passed = 0;
            check_desc(c, &w, &one, seed);
        }
        want = 0;
    }
    for (size_t j = 0; j < want; j++)
        check_desc(c, &w, &d[j * nd / want], seed);
    free(d);
    wl_free(&w);
    c->workloads++;
}

static void run_all(checker *c, int full, int mutation, uint64_t seed0)
{
    unsigned seeds = full ? FULL_SEEDS : 1;
    for (unsigned k = 0; k < seeds; k++)
        for (size_t i = 0; i < NSPECS; i++)
            run_one(c, &specs[i], seed0 + k * NSPECS + i, full, mutation);
}

static void print_summary(const checker *c, int full, double secs)
{
    printf("crash-fs: %u workloads, %" PRIu64 " crash states checked (%s; %" PRIu64
           " of them crashed again while an open recovered), %" PRIu64
           " failed (%" PRIu64 " for more than the dirty flag), %.1f s\n",
           c->workloads, c->states, full ? "full run" : "sample", c->nested, c->failed,
           c->failed_not_dirty, secs);
    for (int k = 0; k < NCAUSES; k++)
        if (c->by_cause[k])
            printf("  %" PRIu64 " states: %s (e.g. %s)\n", c->by_cause[k], cause_name(k),
                   c->example[k]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void crash_states_need_no_fsck(void **state)
{
    (void)state;
    int full = env_on("VD_CRASH_FULL");
    int mutation = env_on("VD_CRASH_MUTATION");
    const char *s = getenv("VD_CRASH_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 1500;
    for (unsigned i = 0; i < VD_KEY_BYTES; i++)
        g_key[i] = (uint8_t)(i * 13 + 5);
    checker c;
    memset(&c, 0, sizeof c);
    c.nested_every = full ? NESTED_EVERY_FULL : NESTED_EVERY_SAMPLE;
    c.stride = vt_crash_stride();
    if (c.stride > 1)
        printf("crash-fs: sampled: one state in %zu of the %s (VD_CRASH_STRIDE)\n",
               c.stride, full ? "full run" : "sample");
    double t0 = now_s();
    run_all(&c, full, mutation, seed);
    print_summary(&c, full, now_s() - t0);
    free(c.fd);
    free(c.memo);
    if (mutation) {
        /* The harness must be able to fail: without the metadata journal
         * some crash state needs repair. */
        if (c.failed_not_dirty == 0)
            fail_msg("mutation: %" PRIu64 " states checked with the metadata journal off "
                     "and none failed: the harness detects nothing", c.states);
        return;
    }
    if (!getenv("VD_CRASH_STATE")) /* one state only: no count to reach */
        assert_true(c.states >= (full ? 10000 : SAMPLE_STATES - NSPECS) / c.stride);
    if (c.failed)
        fail_msg("%" PRIu64 " of %" PRIu64 " crash states failed", c.failed, c.states);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_states_need_no_fsck),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
