/* vhdbench — what integrity and rollback detection cost (first version:
 * the secure block device; the FAT32 and FUSE workloads come later).
 *
 *   vhdbench [--quick] [--mib N] [--reps N] [--json FILE] [--dir DIR]
 *
 * Measures in one run, each figure the median of --reps repetitions
 * (min and max shown):
 *   ceilings  single-core AES-256-GCM over 4 KiB blocks (OpenSSL EVP and
 *             libsodium), memcpy;
 *   memory    sequential block writes (+ sync) and reads through vd_image on
 *             the memory backend: the CPU cost of the full scheme;
 *   file      the same on the file backend in DIR (default: the current
 *             directory), beside plain pwrite+fdatasync / pread of a file of
 *             the same size. The page cache is not dropped (no root needed):
 *             file reads are warm-cache reads, said so in the output.
 * Never asserts timings; prints a table and optionally JSON. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vdisk/host.h>
#include <vdisk/vdisk.h>

#include "crypto/crypto.h"

#define MAX_REPS 15
#define MAX_ROWS 16

typedef struct row {
    const char *name;
    const char *unit;
    double v[MAX_REPS];
    int n;
    double extra; /* flushes per sync, where meaningful; else -1 */
} row;

typedef struct bench {
    uint64_t mib;
    int reps;
    const char *dir;
    row rows[MAX_ROWS];
    int nrows;
} bench;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(row *r)
{
    double s[MAX_REPS];
    memcpy(s, r->v, sizeof(double) * (size_t)r->n);
    qsort(s, (size_t)r->n, sizeof(double), cmp_d);
    return r->n % 2 ? s[r->n / 2] : (s[r->n / 2 - 1] + s[r->n / 2]) / 2;
}

static double minv(const row *r)
{
    double m = r->v[0];
    for (int i = 1; i < r->n; i++)
        m = r->v[i] < m ? r->v[i] : m;
    return m;
}

static double maxv(const row *r)
{
    double m = r->v[0];
    for (int i = 1; i < r->n; i++)
        m = r->v[i] > m ? r->v[i] : m;
    return m;
}

static row *row_get(bench *b, const char *name, const char *unit)
{
    for (int i = 0; i < b->nrows; i++)
        if (strcmp(b->rows[i].name, name) == 0)
            return &b->rows[i];
    if (b->nrows == MAX_ROWS) {
        fprintf(stderr, "vhdbench: too many rows\n");
        exit(1);
    }
    row *r = &b->rows[b->nrows++];
    memset(r, 0, sizeof *r);
    r->name = name;
    r->unit = unit;
    r->extra = -1;
    return r;
}

static void add(bench *b, const char *name, double mbs)
{
    row *r = row_get(b, name, "MB/s");
    if (r->n < MAX_REPS)
        r->v[r->n++] = mbs;
}

static void die(const char *what, vd_err e)
{
    fprintf(stderr, "vhdbench: %s: %s\n", what, vd_strerror(e));
    exit(1);
}

static void fill_random(uint8_t *p, size_t n)
{
    vdc_random(p, n);
}

/* ---- ceilings ------------------------------------------------------------ */

static void bench_aead(bench *b, vdc_aead_alg alg, const char *name, uint8_t *buf,
                       size_t nblk)
{
    if (!vdc_aead_available(alg))
        return;
    uint8_t key[32], nonce[12] = {0}, tag[16], ad[24] = {0};
    fill_random(key, sizeof key);
    vdc_aead *a = vdc_aead_new(alg, key);
    if (!a)
        die(name, VD_ERR_NOMEM);
    double t0 = now_s();
    for (size_t i = 0; i < nblk; i++) {
        memcpy(nonce, &i, sizeof i);
        if (vdc_aead_seal(a, nonce, ad, sizeof ad, buf + i * VD_BLOCK_SIZE,
                          VD_BLOCK_SIZE, buf + i * VD_BLOCK_SIZE, tag) != 0)
            die(name, VD_ERR_IO);
    }
    double t1 = now_s();
    vdc_aead_free(a);
    add(b, name, (double)nblk * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
}

static void bench_memcpy(bench *b, uint8_t *buf, size_t nblk)
{
    uint8_t *dst = malloc(nblk * VD_BLOCK_SIZE);
    if (!dst)
        die("memcpy", VD_ERR_NOMEM);
    memset(dst, 1, nblk * VD_BLOCK_SIZE); /* fault pages in first */
    double t0 = now_s();
    for (size_t i = 0; i < nblk; i++)
        memcpy(dst + i * VD_BLOCK_SIZE, buf + i * VD_BLOCK_SIZE, VD_BLOCK_SIZE);
    double t1 = now_s();
    if (dst[nblk * VD_BLOCK_SIZE / 2] == 7 && dst[0] == 3)
        fprintf(stderr, "."); /* keep the copy observable */
    free(dst);
    add(b, "memcpy 4 KiB", (double)nblk * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
}

/* ---- the secure block device ---------------------------------------------- */

#define CHUNK 256u

static void bench_image(bench *b, vd_host *host, const char *wname,
                        const char *rname, uint64_t nblocks, uint8_t *buf,
                        vd_aead_impl impl)
{
    uint8_t key[VD_KEY_BYTES];
    fill_random(key, sizeof key);
    vd_image *img;
    vd_create_opts c = {.nblocks = nblocks};
    vd_open_opts o = {.cache_bytes = 64u << 20, .aead_impl = impl};
    vd_err e = vd_image_create(host, key, &c, &o, &img);
    if (e != VD_OK)
        die("create", e);
    double t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += CHUNK) {
        uint32_t n = (uint32_t)(nblocks - l < CHUNK ? nblocks - l : CHUNK);
        if ((e = vd_image_write(img, l, n, buf + l % (4 * CHUNK) * VD_BLOCK_SIZE)) != VD_OK)
            die("write", e);
    }
    if ((e = vd_image_sync(img)) != VD_OK)
        die("sync", e);
    double t1 = now_s();
    vd_image_info info;
    vd_image_info_get(img, &info);
    row *w = row_get(b, wname, "MB/s");
    w->extra = info.syncs ? (double)info.flushes / (double)info.syncs : 0;
    add(b, wname, (double)nblocks * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
    if ((e = vd_image_close(img)) != VD_OK)
        die("close", e);

    vd_open_opts ro = {.read_only = 1, .cache_bytes = 64u << 20, .aead_impl = impl};
    if ((e = vd_image_open(host, key, &ro, &img)) != VD_OK)
        die("open", e);
    uint8_t *rb = malloc(CHUNK * VD_BLOCK_SIZE);
    if (!rb)
        die("read", VD_ERR_NOMEM);
    t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += CHUNK) {
        uint32_t n = (uint32_t)(nblocks - l < CHUNK ? nblocks - l : CHUNK);
        if ((e = vd_image_read(img, l, n, rb)) != VD_OK)
            die("read", e);
    }
    t1 = now_s();
    add(b, rname, (double)nblocks * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
    free(rb);
    vd_image_close(img);
}

static void bench_plain_file(bench *b, const char *path, uint64_t nblocks,
                             uint8_t *buf)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        fprintf(stderr, "vhdbench: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    double t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += CHUNK) {
        uint32_t n = (uint32_t)(nblocks - l < CHUNK ? nblocks - l : CHUNK);
        ssize_t w = pwrite(fd, buf + l % (4 * CHUNK) * VD_BLOCK_SIZE,
                           (size_t)n * VD_BLOCK_SIZE, (off_t)(l * VD_BLOCK_SIZE));
        if (w != (ssize_t)n * VD_BLOCK_SIZE)
            die("plain write", VD_ERR_IO);
    }
    if (fdatasync(fd) != 0)
        die("plain fdatasync", VD_ERR_IO);
    double t1 = now_s();
    add(b, "file: plain write+fdatasync", (double)nblocks * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
    uint8_t *rb = malloc(CHUNK * VD_BLOCK_SIZE);
    if (!rb)
        die("plain read", VD_ERR_NOMEM);
    t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += CHUNK) {
        uint32_t n = (uint32_t)(nblocks - l < CHUNK ? nblocks - l : CHUNK);
        if (pread(fd, rb, (size_t)n * VD_BLOCK_SIZE, (off_t)(l * VD_BLOCK_SIZE)) !=
            (ssize_t)n * VD_BLOCK_SIZE)
            die("plain read", VD_ERR_IO);
    }
    t1 = now_s();
    add(b, "file: plain read (warm cache)", (double)nblocks * VD_BLOCK_SIZE / 1e6 / (t1 - t0));
    free(rb);
    close(fd);
    unlink(path);
}

static void run_file(bench *b, uint64_t nblocks, uint8_t *buf)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vhdbench-%ld.vhd", b->dir, (long)getpid());
    vd_host *h;
    vd_err e = vd_host_file_open(path, VD_HOST_CREATE, &h, NULL);
    if (e != VD_OK)
        die(path, e);
    bench_image(b, h, "file: vdisk write+sync", "file: vdisk read (warm cache)",
                nblocks, buf, VD_AEAD_AUTO);
    vd_host_file_close(h);
    unlink(path);
    snprintf(path, sizeof path, "%s/vhdbench-%ld.raw", b->dir, (long)getpid());
    bench_plain_file(b, path, nblocks, buf);
}

static void print_table(bench *b, FILE *out)
{
    double aes = 0;
    for (int i = 0; i < b->nrows; i++)
        if (strcmp(b->rows[i].name, "AES-256-GCM 4 KiB (OpenSSL)") == 0)
            aes = median(&b->rows[i]);
    fprintf(out, "%-34s %10s %10s %10s %8s %8s\n", "measure", "median", "min", "max",
            "vs AES", "flush/sync");
    for (int i = 0; i < b->nrows; i++) {
        row *r = &b->rows[i];
        double m = median(r);
        char fl[16] = "";
        if (r->extra >= 0)
            snprintf(fl, sizeof fl, "%.1f", r->extra);
        fprintf(out, "%-34s %10.0f %10.0f %10.0f %7.0f%% %8s\n", r->name, m, minv(r),
                maxv(r), aes > 0 ? 100.0 * m / aes : 0.0, fl);
    }
}

static void write_json(bench *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "vhdbench: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fprintf(f, "{\n  \"version\": \"%s\",\n  \"mib\": %llu,\n  \"reps\": %d,\n  \"rows\": [\n",
            vd_version(), (unsigned long long)b->mib, b->reps);
    for (int i = 0; i < b->nrows; i++) {
        row *r = &b->rows[i];
        fprintf(f,
                "    {\"name\": \"%s\", \"unit\": \"%s\", \"median\": %.1f, \"min\": %.1f, "
                "\"max\": %.1f%s",
                r->name, r->unit, median(r), minv(r), maxv(r), r->extra >= 0 ? ", " : "");
        if (r->extra >= 0)
            fprintf(f, "\"flushes_per_sync\": %.2f", r->extra);
        fprintf(f, "}%s\n", i + 1 < b->nrows ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "vhdbench: %s: write failed\n", path);
        exit(1);
    }
}

static void usage(FILE *f)
{
    fprintf(f, "usage: vhdbench [--quick] [--mib N] [--reps N] [--json FILE] [--dir DIR]\n");
}

int main(int argc, char **argv)
{
    bench b;
    memset(&b, 0, sizeof b);
    b.mib = 256;
    b.reps = 3;
    b.dir = ".";
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            b.mib = 16;
        } else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc) {
            b.mib = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            b.reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            b.dir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("vhdbench %s\n", vd_version());
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (b.mib == 0 || b.mib > (1u << 20) || b.reps < 1 || b.reps > MAX_REPS) {
        usage(stderr);
        return 2;
    }
    if (vdc_init() != 0)
        die("init", VD_ERR_UNSUPPORTED);
    uint64_t nblocks = b.mib * 256;
    size_t cblk = 8192; /* 32 MiB for the ceilings */
    uint8_t *buf = malloc(cblk * VD_BLOCK_SIZE);
    if (!buf)
        die("alloc", VD_ERR_NOMEM);
    fill_random(buf, cblk * VD_BLOCK_SIZE);
    for (int rep = 0; rep < b.reps; rep++) {
        bench_aead(&b, VDC_AES256GCM_OPENSSL, "AES-256-GCM 4 KiB (OpenSSL)", buf, cblk);
        bench_aead(&b, VDC_AES256GCM_SODIUM, "AES-256-GCM 4 KiB (libsodium)", buf, cblk);
        bench_memcpy(&b, buf, cblk);
        fill_random(buf, 4 * CHUNK * VD_BLOCK_SIZE);
        vd_host *mh;
        if (vd_host_mem_new(&mh) != VD_OK)
            die("memory host", VD_ERR_NOMEM);
        bench_image(&b, mh, "memory: vdisk write+sync", "memory: vdisk read", nblocks,
                    buf, VD_AEAD_AUTO);
        vd_host_mem_free(mh);
        run_file(&b, nblocks, buf);
    }
    printf("vhdbench %s: %llu MiB per run, %d repetitions, median (min, max)\n",
           vd_version(), (unsigned long long)b.mib, b.reps);
    print_table(&b, stdout);
    if (json)
        write_json(&b, json);
    free(buf);
    return 0;
}
