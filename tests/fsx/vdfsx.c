/* vdfsx — a seeded random-operation checker for a mounted file system (in
 * the spirit of fsx-linux): open/pread/pwrite/ftruncate/fsync/close and
 * reopen (also with O_TRUNC, and O_APPEND writes) at random offsets on
 * several files in DIR, every read and every size compared against an
 * in-memory model, and every file read back whole
 * at the end. Prints its seed first; the same seed replays the same run.
 *
 *   vdfsx [--ops N] [--seed S] [--files K] [--max-size BYTES] [-v] DIR
 *
 * Exit 0 = every check held, 1 = a mismatch or an unexpected error (the
 * operation, the file, the offset and the last operations are printed),
 * 2 = usage. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FSX_HISTORY 32
#define FSX_MAX_IO (256u * 1024u)

typedef struct fsx_file {
    char path[4096];
    uint8_t *model; /* max_size bytes; the first len are the content */
    uint64_t len;
    int fd;
} fsx_file;

typedef struct fsx_op {
    uint64_t no;
    const char *what;
    unsigned file;
    uint64_t off, len;
} fsx_op;

typedef struct fsx {
    uint64_t rng;
    uint64_t max_size;
    unsigned nfiles;
    int verbose;
    fsx_file *files;
    uint8_t *buf;
    fsx_op hist[FSX_HISTORY];
    uint64_t op_no;
    uint64_t seed;
    uint64_t counts[8];
} fsx;

/* xorshift64*: small, and the same sequence on every platform. */
static uint64_t fsx_rand(fsx *x)
{
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return x->rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t fsx_below(fsx *x, uint64_t n)
{
    return n ? fsx_rand(x) % n : 0;
}

static void fsx_note(fsx *x, const char *what, unsigned file, uint64_t off, uint64_t len)
{
    fsx_op *o = &x->hist[x->op_no % FSX_HISTORY];
    o->no = x->op_no;
    o->what = what;
    o->file = file;
    o->off = off;
    o->len = len;
    if (x->verbose)
        printf("%" PRIu64 " %s f%u off %" PRIu64 " len %" PRIu64 "\n", x->op_no, what,
               file, off, len);
}

static int fsx_fail(fsx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fsx_fail(fsx *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vdfsx: FAIL at op %" PRIu64 " (seed %" PRIu64 "): ", x->op_no,
            x->seed);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fprintf(stderr, "vdfsx: last operations:\n");
    uint64_t first = x->op_no >= FSX_HISTORY ? x->op_no - FSX_HISTORY + 1 : 0;
    for (uint64_t i = first; i <= x->op_no; i++) {
        const fsx_op *o = &x->hist[i % FSX_HISTORY];
        if (o->what && o->no == i)
            fprintf(stderr, "  %" PRIu64 " %s f%u off %" PRIu64 " len %" PRIu64 "\n",
                    o->no, o->what, o->file, o->off, o->len);
    }
    return -1;
}

static int fsx_open(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    if (f->fd >= 0)
        return 0;
    f->fd = open(f->path, O_RDWR | O_CREAT, 0644);
    if (f->fd < 0)
        return fsx_fail(x, "open %s: %s", f->path, strerror(errno));
    return 0;
}

static int fsx_close(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    if (f->fd < 0)
        return 0;
    int r = close(f->fd);
    f->fd = -1;
    if (r != 0)
        return fsx_fail(x, "close %s: %s", f->path, strerror(errno));
    return 0;
}

static int fsx_check_size(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    struct stat st;
    if (fstat(f->fd, &st) != 0)
        return fsx_fail(x, "fstat %s: %s", f->path, strerror(errno));
    if ((uint64_t)st.st_size != f->len)
        return fsx_fail(x, "%s: size %jd, model %" PRIu64, f->path, (intmax_t)st.st_size,
                        f->len);
    return 0;
}

static int fsx_compare(fsx *x, unsigned i, uint64_t off, uint64_t len, ssize_t got)
{
    fsx_file *f = &x->files[i];
    uint64_t want = off >= f->len ? 0 : (f->len - off < len ? f->len - off : len);
    if ((uint64_t)got != want)
        return fsx_fail(x,
                        "%s: read %" PRIu64 "@%" PRIu64 " returned %zd, model %" PRIu64,
                        f->path, len, off, got, want);
    for (uint64_t k = 0; k < want; k++)
        if (x->buf[k] != f->model[off + k])
            return fsx_fail(x,
                            "%s: byte %" PRIu64 " is 0x%02x, model 0x%02x (read %" PRIu64
                            "@%" PRIu64 ")",
                            f->path, off + k, x->buf[k], f->model[off + k], len, off);
    return 0;
}

static ssize_t fsx_pread_all(int fd, uint8_t *buf, uint64_t len, uint64_t off)
{
    uint64_t total = 0;
    while (total < len) {
        ssize_t n = pread(fd, buf + total, len - total, (off_t)(off + total));
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        total += (uint64_t)n;
    }
    return (ssize_t)total;
}

static int fsx_op_read(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    /* Mostly inside the file, sometimes across or beyond its end. */
    uint64_t off = fsx_below(x, f->len + f->len / 8 + 1);
    uint64_t len = 1 + fsx_below(x, FSX_MAX_IO);
    fsx_note(x, "read", i, off, len);
    ssize_t n = fsx_pread_all(f->fd, x->buf, len, off);
    if (n < 0)
        return fsx_fail(x, "pread %s: %s", f->path, strerror(errno));
    return fsx_compare(x, i, off, len, n);
}

static int fsx_op_write(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    uint64_t off = fsx_below(x, x->max_size);
    uint64_t len = 1 + fsx_below(x, FSX_MAX_IO);
    if (fsx_below(x, 4) == 0)
        len = 1 + fsx_below(x, 64); /* small, unaligned writes too */
    if (off + len > x->max_size)
        len = x->max_size - off;
    fsx_note(x, "write", i, off, len);
    for (uint64_t k = 0; k < len; k++)
        x->buf[k] = (uint8_t)(fsx_rand(x) >> 56);
    uint64_t total = 0;
    while (total < len) {
        ssize_t n = pwrite(f->fd, x->buf + total, len - total, (off_t)(off + total));
        if (n <= 0)
            return fsx_fail(x, "pwrite %s %" PRIu64 "@%" PRIu64 ": %s", f->path, len, off,
                            n < 0 ? strerror(errno) : "wrote nothing");
        total += (uint64_t)n;
    }
    if (off > f->len)
        memset(f->model + f->len, 0, off - f->len); /* the hole reads as zeros */
    memcpy(f->model + off, x->buf, len);
    if (off + len > f->len)
        f->len = off + len;
    return 0;
}

static int fsx_op_truncate(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    uint64_t size = fsx_below(x, x->max_size + 1);
    if (fsx_below(x, 8) == 0)
        size = 0;
    fsx_note(x, "truncate", i, size, 0);
    if (ftruncate(f->fd, (off_t)size) != 0)
        return fsx_fail(x, "ftruncate %s to %" PRIu64 ": %s", f->path, size,
                        strerror(errno));
    if (size > f->len)
        memset(f->model + f->len, 0, size - f->len);
    f->len = size;
    return fsx_check_size(x, i);
}

/* Reopen with O_TRUNC: the open itself empties the file. */
static int fsx_op_open_trunc(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    fsx_note(x, "open-trunc", i, 0, 0);
    if (fsx_close(x, i) != 0)
        return -1;
    f->fd = open(f->path, O_RDWR | O_TRUNC);
    if (f->fd < 0)
        return fsx_fail(x, "open O_TRUNC %s: %s", f->path, strerror(errno));
    f->len = 0;
    return fsx_check_size(x, i);
}

/* A write through a second, O_APPEND descriptor lands at the end
 * whatever the offset of that descriptor. */
static int fsx_op_append(fsx *x, unsigned i)
{
    fsx_file *f = &x->files[i];
    uint64_t len = 1 + fsx_below(x, 8192);
    if (f->len + len > x->max_size)
        return fsx_op_truncate(x, i);
    fsx_note(x, "append", i, f->len, len);
    for (uint64_t k = 0; k < len; k++)
        x->buf[k] = (uint8_t)(fsx_rand(x) >> 56);
    int fd = open(f->path, O_WRONLY | O_APPEND);
    if (fd < 0)
        return fsx_fail(x, "open O_APPEND %s: %s", f->path, strerror(errno));
    ssize_t n = write(fd, x->buf, len);
    int err = errno;
    if (close(fd) != 0 && n >= 0) {
        n = -1;
        err = errno;
    }
    if (n < 0 || (uint64_t)n != len)
        return fsx_fail(x, "append %" PRIu64 " to %s: %s", len, f->path,
                        n < 0 ? strerror(err) : "short write");
    memcpy(f->model + f->len, x->buf, len);
    f->len += len;
    return fsx_check_size(x, i);
}

static int fsx_step(fsx *x)
{
    unsigned i = (unsigned)fsx_below(x, x->nfiles);
    if (fsx_open(x, i) != 0)
        return -1;
    uint64_t r = fsx_below(x, 100);
    if (r < 35) {
        x->counts[0]++;
        return fsx_op_read(x, i);
    }
    if (r < 75) {
        x->counts[1]++;
        return fsx_op_write(x, i);
    }
    if (r < 87) {
        x->counts[2]++;
        return fsx_op_truncate(x, i);
    }
    if (r < 90) {
        x->counts[3]++;
        fsx_note(x, "fsync", i, 0, 0);
        if (fsync(x->files[i].fd) != 0)
            return fsx_fail(x, "fsync %s: %s", x->files[i].path, strerror(errno));
        return 0;
    }
    if (r < 95) {
        x->counts[4]++;
        fsx_note(x, "reopen", i, 0, 0);
        if (fsx_close(x, i) != 0 || fsx_open(x, i) != 0)
            return -1;
        return fsx_check_size(x, i);
    }
    if (r < 96) {
        x->counts[6]++;
        return fsx_op_open_trunc(x, i);
    }
    if (r < 98) {
        x->counts[7]++;
        return fsx_op_append(x, i);
    }
    x->counts[5]++;
    fsx_note(x, "stat", i, 0, 0);
    return fsx_check_size(x, i);
}

/* Everything closed, then each file read back whole through a new
 * descriptor. */
static int fsx_final(fsx *x)
{
    x->op_no++;
    for (unsigned i = 0; i < x->nfiles; i++)
        if (fsx_close(x, i) != 0)
            return -1;
    for (unsigned i = 0; i < x->nfiles; i++) {
        fsx_file *f = &x->files[i];
        fsx_note(x, "final", i, 0, f->len);
        f->fd = open(f->path, O_RDONLY);
        if (f->fd < 0)
            return fsx_fail(x, "open %s: %s", f->path, strerror(errno));
        if (fsx_check_size(x, i) != 0)
            return -1;
        for (uint64_t off = 0; off < f->len + 1; off += FSX_MAX_IO) {
            ssize_t n = fsx_pread_all(f->fd, x->buf, FSX_MAX_IO, off);
            if (n < 0)
                return fsx_fail(x, "pread %s: %s", f->path, strerror(errno));
            if (fsx_compare(x, i, off, FSX_MAX_IO, n) != 0)
                return -1;
        }
        if (fsx_close(x, i) != 0)
            return -1;
    }
    return 0;
}

static void fsx_usage(FILE *to)
{
    fprintf(
        to,
        "Usage: vdfsx [--ops N] [--seed S] [--files K] [--max-size BYTES] [-v] DIR\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"ops", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"files", required_argument, NULL, 'k'},
        {"max-size", required_argument, NULL, 'm'},
        {"verbose", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    fsx x;
    memset(&x, 0, sizeof x);
    uint64_t ops = 2000;
    x.nfiles = 4;
    x.max_size = 2u << 20;
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return 1;
    x.seed = (uint64_t)now.tv_sec * 1000003u ^ (uint64_t)now.tv_nsec;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
        char *end = NULL;
        unsigned long long v = 0;
        if (c != 'v') {
            errno = 0;
            v = strtoull(optarg, &end, 0);
            if (errno || !end || *end || end == optarg) {
                fsx_usage(stderr);
                return 2;
            }
        }
        switch (c) {
        case 'n':
            ops = v;
            break;
        case 's':
            x.seed = v;
            break;
        case 'k':
            x.nfiles = (unsigned)v;
            break;
        case 'm':
            x.max_size = v;
            break;
        case 'v':
            x.verbose = 1;
            break;
        default:
            fsx_usage(stderr);
            return 2;
        }
    }
    if (argc - optind != 1 || x.nfiles == 0 || x.nfiles > 64 || x.max_size == 0 ||
        x.max_size > (1ull << 32)) {
        fsx_usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    x.rng = x.seed ? x.seed : 0x9E3779B97F4A7C15ULL;
    printf("vdfsx: seed %" PRIu64 ", %" PRIu64 " ops on %u files of up to %" PRIu64
           " bytes in %s\n",
           x.seed, ops, x.nfiles, x.max_size, dir);
    fflush(stdout);

    x.files = calloc(x.nfiles, sizeof *x.files);
    x.buf = malloc(FSX_MAX_IO);
    if (!x.files || !x.buf)
        goto out;
    for (unsigned i = 0; i < x.nfiles; i++) {
        x.files[i].fd = -1;
        x.files[i].model = malloc(x.max_size);
        if (!x.files[i].model)
            goto out;
        int n =
            snprintf(x.files[i].path, sizeof x.files[i].path, "%s/fsx%02u.bin", dir, i);
        if (n < 0 || (size_t)n >= sizeof x.files[i].path)
            goto out;
        /* Start from empty files whatever a previous run left. */
        x.files[i].fd = open(x.files[i].path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (x.files[i].fd < 0) {
            fsx_fail(&x, "create %s: %s", x.files[i].path, strerror(errno));
            goto out;
        }
    }
    for (x.op_no = 0; x.op_no < ops; x.op_no++)
        if (fsx_step(&x) != 0)
            goto out;
    if (fsx_final(&x) != 0)
        goto out;
    printf("vdfsx: ok: %" PRIu64 " reads, %" PRIu64 " writes, %" PRIu64
           " truncates, %" PRIu64 " fsyncs, %" PRIu64 " reopens, %" PRIu64
           " O_TRUNC opens, %" PRIu64 " appends, %" PRIu64 " stats\n",
           x.counts[0], x.counts[1], x.counts[2], x.counts[3], x.counts[4], x.counts[6],
           x.counts[7], x.counts[5]);
    rc = 0;
out:
    if (x.files) {
        for (unsigned i = 0; i < x.nfiles; i++) {
            if (x.files[i].fd >= 0)
                (void)close(x.files[i].fd);
            free(x.files[i].model);
        }
    }
    free(x.files);
    free(x.buf);
    return rc;
}
