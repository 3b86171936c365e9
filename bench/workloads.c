/* The workloads, each on a fresh volume and with a fixed seed, so every
 * mode sees the same offsets, sizes and order:
 *   A  seq-write (1 MiB writes + one fsync), seq-read after a reopen,
 *      fsck-verify (image modes: vd_image_scrub after another reopen),
 *      rand-read (4 KiB at random aligned offsets of that file, after
 *      another reopen), rand-write (4 KiB, vd_file_sync every 8 writes);
 *   B  oltp: a database file of 8 KiB pages; a transaction touches 4
 *      random pages, each read (70%) or written (30%), and ends with
 *      vd_file_sync when it wrote;
 *   C  web-create: small files (1-64 KiB) in directories of 100, one sync
 *      at the end; web-read: all of them read back in random order after
 *      a reopen.
 * Only the measured phase is timed; setup writes are not. The same code
 * runs on every subject through target.c. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define SEQ_CHUNK (1u << 20)
#define MIN_VOL ((uint64_t)288 << 20) /* FAT32 needs 65525 clusters of 4 KiB */
#define SLACK ((uint64_t)64 << 20)
#define OLTP_PAGE 8192u
#define OLTP_OPS 4u
#define WEB_PER_DIR 100u
#define WEB_MAX (64u << 10)

#define SEED_SEQ 0x5EB0001u
#define SEED_RAND 0x5EB0002u
#define SEED_OLTP 0x5EB0003u
#define SEED_WEB 0x5EB0004u

typedef struct run {
    const bench_cfg *c;
    bench_res *r;
    const bench_subject *s;
    uint8_t *buf; /* SEQ_CHUNK bytes of seeded data */
} run;

static uint64_t vol_bytes(uint64_t need)
{
    uint64_t v = need + need / 4 + SLACK;
    return v < MIN_VOL ? MIN_VOL : v;
}

static vd_err add(run *u, const char *wl, const char *unit, double bpu, double v)
{
    return bench_add(u->r, wl, u->s->name, (int)u->s->backend, unit, bpu, v);
}

/* Sequentially fill path with `bytes` of the seeded data, then sync. */
static vd_err fill_file(bench_tgt *t, const char *path, uint64_t bytes, uint8_t *buf)
{
    bench_fh *f = NULL;
    vd_err e = bench_tgt_open(t, path, VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f);
    for (uint64_t off = 0; e == VD_OK && off < bytes; off += SEQ_CHUNK) {
        size_t n = bytes - off < SEQ_CHUNK ? (size_t)(bytes - off) : SEQ_CHUNK;
        memcpy(buf, &off, sizeof off); /* no two chunks alike */
        e = bench_fh_write(f, off, buf, n);
    }
    if (e == VD_OK)
        e = bench_fh_sync(f);
    if (f) {
        vd_err e2 = bench_fh_close(f);
        e = e != VD_OK ? e : e2;
    }
    return e;
}

/* The image's counters since open (zeros for other subjects). */
typedef struct counters {
    uint64_t syncs, flushes, written;
} counters;

static vd_err image_counters(bench_tgt *v, counters *k)
{
    vd_image_info info;
    vd_err e = bench_tgt_info(v, &info);
    memset(k, 0, sizeof *k);
    if (e == VD_ERR_UNSUPPORTED)
        return VD_OK;
    if (e == VD_OK) {
        k->syncs = info.syncs;
        k->flushes = info.flushes;
        k->written = info.bytes_written;
    }
    return e;
}

/* Bytes the image wrote to its host per byte the workload wrote: data,
 * tree nodes, journal and superblocks. */
static vd_err add_amplification(run *u, const char *wl, const counters *a,
                                const counters *b, uint64_t bytes)
{
    if (b->written <= a->written || bytes == 0)
        return VD_OK;
    char name[48];
    snprintf(name, sizeof name, "write-amplification %s", wl);
    return bench_add(u->r, name, u->s->name, (int)u->s->backend, "x", 0,
                     (double)(b->written - a->written) / (double)bytes);
}

static vd_err session_seq_rand(run *u)
{
    const bench_cfg *c = u->c;
    uint64_t bytes = c->seq_bytes;
    bench_tgt *v = NULL;
    bench_fh *f = NULL;
    uint8_t blk[BENCH_BLOCK];
    counters k0, k1;
    vd_err e = bench_tgt_new(c, u->s, vol_bytes(bytes), &v);
    if (e == VD_OK)
        e = image_counters(v, &k0);
    double t0 = bench_start(c);
    if (e == VD_OK)
        e = fill_file(v, "/big.dat", bytes, u->buf);
    double t1 = bench_now();
    if (e == VD_OK)
        e = add(u, "seq-write", "MB/s", 1e6, (double)bytes / 1e6 / (t1 - t0));
    if (e == VD_OK)
        e = image_counters(v, &k1);
    if (e == VD_OK)
        e = add_amplification(u, "seq-write", &k0, &k1, bytes);

    if (e == VD_OK)
        e = bench_tgt_reopen(v);
    if (e == VD_OK)
        e = bench_tgt_open(v, "/big.dat", VD_O_RDONLY, &f);
    t0 = bench_start(c);
    for (uint64_t off = 0; e == VD_OK && off < bytes; off += SEQ_CHUNK) {
        size_t n = bytes - off < SEQ_CHUNK ? (size_t)(bytes - off) : SEQ_CHUNK;
        e = bench_fh_read(f, off, u->buf, n);
    }
    t1 = bench_now();
    if (f) {
        vd_err e2 = bench_fh_close(f);
        e = e != VD_OK ? e : e2;
        f = NULL;
    }
    if (e == VD_OK)
        e = add(u, "seq-read", "MB/s", 1e6, (double)bytes / 1e6 / (t1 - t0));

    /* The image modes only: what vhdfsck's verification pass costs over
     * the volume now holding the file. */
    double scrub_s = 0;
    uint64_t scrub_bytes = 0;
    if (e == VD_OK) {
        e = bench_tgt_scrub(v, &scrub_s, &scrub_bytes);
        if (e == VD_OK && scrub_s > 0)
            e = add(u, "fsck-verify", "MB/s", 1e6, (double)scrub_bytes / 1e6 / scrub_s);
        else if (e == VD_ERR_UNSUPPORTED)
            e = VD_OK;
    }

    uint64_t nblk = bytes / BENCH_BLOCK;
    bench_rng g;
    if (e == VD_OK)
        e = bench_tgt_reopen(v);
    if (e == VD_OK)
        e = bench_tgt_open(v, "/big.dat", VD_O_RDWR, &f);
    bench_rng_seed(&g, SEED_RAND);
    t0 = bench_start(c);
    for (uint32_t i = 0; e == VD_OK && i < c->rand_ops; i++)
        e = bench_fh_read(f, bench_rng_below(&g, nblk) * BENCH_BLOCK, blk, sizeof blk);
    t1 = bench_now();
    if (e == VD_OK)
        e = add(u, "rand-read", "ops/s", BENCH_BLOCK, c->rand_ops / (t1 - t0));

    if (e == VD_OK)
        e = image_counters(v, &k0);
    bench_rng_fill(&g, blk, sizeof blk);
    t0 = bench_start(c);
    for (uint32_t i = 0; e == VD_OK && i < c->rand_ops; i++) {
        memcpy(blk, &i, sizeof i);
        e = bench_fh_write(f, bench_rng_below(&g, nblk) * BENCH_BLOCK, blk, sizeof blk);
        if (e == VD_OK && (i % 8 == 7 || i + 1 == c->rand_ops))
            e = bench_fh_sync(f);
    }
    t1 = bench_now();
    if (e == VD_OK)
        e = add(u, "rand-write", "ops/s", BENCH_BLOCK, c->rand_ops / (t1 - t0));
    if (e == VD_OK)
        e = image_counters(v, &k1);
    if (e == VD_OK && k1.syncs > k0.syncs)
        e = add(u, "flushes-per-sync", "flushes", 0,
                (double)(k1.flushes - k0.flushes) / (double)(k1.syncs - k0.syncs));
    if (e == VD_OK)
        e = add_amplification(u, "rand-write", &k0, &k1,
                              (uint64_t)c->rand_ops * BENCH_BLOCK);
    if (f) {
        vd_err e2 = bench_fh_close(f);
        e = e != VD_OK ? e : e2;
    }
    vd_err e3 = bench_tgt_free(v);
    return e != VD_OK ? e : e3;
}

static vd_err session_oltp(run *u)
{
    const bench_cfg *c = u->c;
    uint64_t bytes = c->oltp_bytes;
    uint64_t pages = bytes / OLTP_PAGE;
    bench_tgt *v = NULL;
    bench_fh *f = NULL;
    uint8_t page[OLTP_PAGE];
    bench_rng g;
    vd_err e = bench_tgt_new(c, u->s, vol_bytes(bytes), &v);
    if (e == VD_OK)
        e = fill_file(v, "/oltp.db", bytes, u->buf);
    if (e == VD_OK)
        e = bench_tgt_reopen(v);
    if (e == VD_OK)
        e = bench_tgt_open(v, "/oltp.db", VD_O_RDWR, &f);
    bench_rng_seed(&g, SEED_OLTP);
    bench_rng_fill(&g, page, sizeof page);
    double t0 = bench_start(c);
    for (uint32_t t = 0; e == VD_OK && t < c->oltp_txns; t++) {
        int wrote = 0;
        for (unsigned k = 0; e == VD_OK && k < OLTP_OPS; k++) {
            uint64_t off = bench_rng_below(&g, pages) * OLTP_PAGE;
            if (bench_rng_below(&g, 10) < 7) {
                e = bench_fh_read(f, off, page, sizeof page);
            } else {
                memcpy(page, &t, sizeof t);
                e = bench_fh_write(f, off, page, sizeof page);
                wrote = 1;
            }
        }
        if (e == VD_OK && wrote)
            e = bench_fh_sync(f);
    }
    double t1 = bench_now();
    if (e == VD_OK)
        e = add(u, "oltp", "txn/s", OLTP_OPS * OLTP_PAGE, c->oltp_txns / (t1 - t0));
    if (f) {
        vd_err e2 = bench_fh_close(f);
        e = e != VD_OK ? e : e2;
    }
    vd_err e3 = bench_tgt_free(v);
    return e != VD_OK ? e : e3;
}

static void web_name(char *out, size_t cap, uint32_t i)
{
    snprintf(out, cap, "/site%03u/page-%05u.html", i / WEB_PER_DIR, i);
}

static vd_err session_web(run *u)
{
    const bench_cfg *c = u->c;
    uint32_t n = c->web_files;
    uint32_t *size = malloc(sizeof *size * n);
    uint32_t *order = malloc(sizeof *order * n);
    uint8_t *data = malloc(WEB_MAX);
    bench_tgt *v = NULL;
    vd_err e = size && order && data ? VD_OK : VD_ERR_NOMEM;
    bench_rng g;
    bench_rng_seed(&g, SEED_WEB);
    uint64_t total = 0;
    for (uint32_t i = 0; e == VD_OK && i < n; i++) {
        size[i] = (uint32_t)(1 + bench_rng_below(&g, 64)) << 10;
        total += size[i];
        order[i] = i;
    }
    for (uint32_t i = n; e == VD_OK && i > 1; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)bench_rng_below(&g, i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    if (e == VD_OK) {
        bench_rng_fill(&g, data, WEB_MAX);
        e = bench_tgt_new(c, u->s, vol_bytes(total), &v);
    }
    char name[64];
    double t0 = bench_start(c);
    for (uint32_t i = 0; e == VD_OK && i < n; i++) {
        if (i % WEB_PER_DIR == 0) {
            snprintf(name, sizeof name, "/site%03u", i / WEB_PER_DIR);
            e = bench_tgt_mkdir(v, name);
        }
        bench_fh *f = NULL;
        web_name(name, sizeof name, i);
        if (e == VD_OK)
            e = bench_tgt_open(v, name, VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL, &f);
        if (e == VD_OK)
            e = bench_fh_write(f, 0, data, size[i]);
        if (f) {
            vd_err e2 = bench_fh_close(f);
            e = e != VD_OK ? e : e2;
        }
    }
    if (e == VD_OK)
        e = bench_tgt_sync(v);
    double t1 = bench_now();
    double mean = n ? (double)total / n : 0;
    if (e == VD_OK)
        e = add(u, "web-create", "files/s", mean, n / (t1 - t0));
    if (e == VD_OK)
        e = bench_tgt_reopen(v);
    t0 = bench_start(c);
    for (uint32_t k = 0; e == VD_OK && k < n; k++) {
        uint32_t i = order[k];
        bench_fh *f = NULL;
        web_name(name, sizeof name, i);
        e = bench_tgt_open(v, name, VD_O_RDONLY, &f);
        if (e == VD_OK)
            e = bench_fh_read(f, 0, data, size[i]);
        if (f) {
            vd_err e2 = bench_fh_close(f);
            e = e != VD_OK ? e : e2;
        }
    }
    t1 = bench_now();
    if (e == VD_OK)
        e = add(u, "web-read", "files/s", mean, n / (t1 - t0));
    vd_err e3 = bench_tgt_free(v);
    free(size);
    free(order);
    free(data);
    return e != VD_OK ? e : e3;
}

vd_err bench_run_workloads(const bench_cfg *c, bench_res *r, const bench_subject *s)
{
    /* Same seeds every repetition: the spread is the machine's. */
    run u;
    u.c = c;
    u.r = r;
    u.s = s;
    u.buf = malloc(SEQ_CHUNK);
    if (!u.buf)
        return VD_ERR_NOMEM;
    bench_rng g;
    bench_rng_seed(&g, SEED_SEQ);
    bench_rng_fill(&g, u.buf, SEQ_CHUNK);
    vd_err e = session_seq_rand(&u);
    if (e == VD_OK)
        e = session_oltp(&u);
    if (e == VD_OK)
        e = session_web(&u);
    free(u.buf);
    return e;
}
