/* Tests of the host backends (file, memory) and of the test-support hosts
 * (recorder / crash simulator, fault injector). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "record.h"
#include "testkit.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define MEM_T0_NS ((int64_t)1700000000 * 1000000000)

/* ---- Helpers ---------------------------------------------------------- */

static void put(const vd_host *h, uint64_t off, const void *buf, size_t len)
{
    size_t done = (size_t)-1;
    assert_int_equal(h->write_at(h->ctx, off, buf, len, &done), 0);
    assert_int_equal(done, len);
}

static void put_byte(const vd_host *h, uint64_t off, uint8_t v, size_t len)
{
    uint8_t *b = malloc(len);
    assert_non_null(b);
    memset(b, v, len);
    put(h, off, b, len);
    free(b);
}

/* Read exactly len bytes (asserts the count). */
static void get(const vd_host *h, uint64_t off, void *buf, size_t len)
{
    size_t done = (size_t)-1;
    assert_int_equal(h->read_at(h->ctx, off, buf, len, &done), 0);
    assert_int_equal(done, len);
}

static uint64_t host_size(const vd_host *h)
{
    uint64_t s = UINT64_MAX;
    assert_int_equal(h->size(h->ctx, &s), 0);
    return s;
}

static int all_equal(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static uint8_t *pattern(size_t n, unsigned salt)
{
    uint8_t *p = malloc(n != 0 ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 31u + salt) ^ (i >> 8));
    return p;
}

/* ---- File backend ----------------------------------------------------- */

typedef struct tmpdir {
    char dir[64];
    char path[128];
    char path2[128];
} tmpdir;

static int tmp_setup(void **state)
{
    tmpdir *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    strcpy(t->dir, "/tmp/vd_test_host.XXXXXX");
    if (mkdtemp(t->dir) == NULL) {
        free(t);
        return -1;
    }
    if (snprintf(t->path, sizeof(t->path), "%s/image.vhd", t->dir) < 0 ||
        snprintf(t->path2, sizeof(t->path2), "%s/other.vhd", t->dir) < 0) {
        free(t);
        return -1;
    }
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    tmpdir *t = *state;
    int rc = 0;
    if (unlink(t->path) != 0 && errno != ENOENT)
        rc = -1;
    if (unlink(t->path2) != 0 && errno != ENOENT)
        rc = -1;
    if (rmdir(t->dir) != 0)
        rc = -1;
    free(t);
    return rc;
}

static vd_host *file_open_ok(const char *path, int flags)
{
    vd_host *h = NULL;
    int e = -1;
    assert_int_equal(vd_host_file_open(path, flags, &h, &e), VD_OK);
    assert_non_null(h);
    assert_int_equal(e, 0);
    return h;
}

static void test_file_create_rw(void **state)
{
    tmpdir *t = *state;
    vd_host *h = file_open_ok(t->path, VD_HOST_CREATE);
    struct stat st;
    uint8_t buf[256];
    size_t done = 0;
    int64_t ns = 0;

    assert_int_equal(stat(t->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0); /* mode 0600 (minus umask) */
    assert_int_equal(host_size(h), 0);

    /* Read of an empty file: short (zero) count, success. */
    assert_int_equal(h->read_at(h->ctx, 0, buf, sizeof(buf), &done), 0);
    assert_int_equal(done, 0);

    put(h, 0, "hello", 5);
    put(h, 8192, "tail", 4);
    assert_int_equal(host_size(h), 8196);
    get(h, 0, buf, 5);
    assert_memory_equal(buf, "hello", 5);
    get(h, 5, buf, 200); /* the hole reads as zeros */
    assert_true(all_equal(buf, 200, 0));

    /* Read across EOF: short count, rc 0. */
    memset(buf, 0xEE, sizeof(buf));
    assert_int_equal(h->read_at(h->ctx, 8190, buf, 100, &done), 0);
    assert_int_equal(done, 6);
    assert_memory_equal(buf + 2, "tail", 4);
    assert_int_equal(buf[6], 0xEE);
    /* Read entirely past EOF. */
    assert_int_equal(h->read_at(h->ctx, 100000, buf, 10, &done), 0);
    assert_int_equal(done, 0);

    assert_int_equal(h->flush(h->ctx), 0);

    assert_int_equal(h->truncate(h->ctx, 3), 0);
    assert_int_equal(host_size(h), 3);
    assert_int_equal(h->truncate(h->ctx, 20000), 0);
    assert_int_equal(host_size(h), 20000);
    get(h, 0, buf, 5);
    assert_memory_equal(buf, "hel\0\0", 5);

    assert_non_null(h->now);
    assert_int_equal(h->now(h->ctx, &ns), 0);
    assert_true(ns > (int64_t)1600000000 * 1000000000); /* after 2020 */
    assert_true(ns < (int64_t)4102444800 * 1000000000); /* before 2100 */

    /* Argument checks. */
    assert_int_equal(h->read_at(h->ctx, 0, NULL, 4, &done), -EINVAL);
    assert_int_equal(h->read_at(h->ctx, (uint64_t)INT64_MAX + 1, buf, 4,
                                &done),
                     -EINVAL);
    assert_int_equal(h->write_at(h->ctx, UINT64_MAX - 1, buf, 4, &done),
                     -EFBIG);
    assert_int_equal(done, 0);
    vd_host_file_close(h);

    /* The data persists across a reopen. */
    h = file_open_ok(t->path, 0);
    assert_int_equal(host_size(h), 20000);
    get(h, 0, buf, 3);
    assert_memory_equal(buf, "hel", 3);
    vd_host_file_close(h);
}

static void test_file_large_transfer(void **state)
{
    tmpdir *t = *state;
    const size_t n = 3u << 20;
    uint8_t *src = pattern(n, 7);
    uint8_t *dst = malloc(n);
    vd_host *h = file_open_ok(t->path, VD_HOST_CREATE);

    assert_non_null(dst);
    put(h, 12345, src, n);
    assert_int_equal(host_size(h), 12345 + n);
    get(h, 12345, dst, n);
    assert_memory_equal(src, dst, n);
    assert_int_equal(h->flush(h->ctx), 0);
    vd_host_file_close(h);
    free(src);
    free(dst);
}

static void test_file_create_exclusive(void **state)
{
    tmpdir *t = *state;
    vd_host *h = file_open_ok(t->path, VD_HOST_CREATE);
    vd_host *h2 = (vd_host *)&h2;
    int e = 0;

    put(h, 0, "x", 1);
    vd_host_file_close(h);

    assert_int_equal(vd_host_file_open(t->path, VD_HOST_CREATE, &h2, &e),
                     VD_ERR_INVAL);
    assert_null(h2);
    assert_int_equal(e, EEXIST);
    /* Without CREATE it opens, and the content was not clobbered. */
    h = file_open_ok(t->path, 0);
    assert_int_equal(host_size(h), 1);
    vd_host_file_close(h);
    /* sys_errno may be NULL. */
    assert_int_equal(vd_host_file_open(t->path, VD_HOST_CREATE, &h2, NULL),
                     VD_ERR_INVAL);
}

static void test_file_open_errors(void **state)
{
    tmpdir *t = *state;
    vd_host *h = NULL;
    int e = 0;

    assert_int_equal(vd_host_file_open(t->path, 0, &h, &e), VD_ERR_IO);
    assert_int_equal(e, ENOENT);
    assert_null(h);
    assert_int_equal(vd_host_file_open(t->path, VD_HOST_READONLY, &h, NULL),
                     VD_ERR_IO);

    /* A directory is not an image. */
    e = 0;
    assert_int_equal(vd_host_file_open(t->dir, VD_HOST_READONLY, &h, &e),
                     VD_ERR_IO);
    assert_int_equal(e, EISDIR);
    e = 0;
    assert_int_equal(vd_host_file_open(t->dir, 0, &h, &e), VD_ERR_IO);
    assert_int_equal(e, EISDIR);

    assert_int_equal(vd_host_file_open(NULL, 0, &h, &e), VD_ERR_INVAL);
    assert_int_equal(vd_host_file_open("", 0, &h, &e), VD_ERR_INVAL);
    assert_int_equal(vd_host_file_open(t->path, 0, NULL, &e), VD_ERR_INVAL);
    assert_int_equal(vd_host_file_open(t->path, 1 << 20, &h, &e),
                     VD_ERR_INVAL);
    assert_int_equal(
        vd_host_file_open(t->path, VD_HOST_CREATE | VD_HOST_READONLY, &h, &e),
        VD_ERR_INVAL);
    /* None of that created the file. */
    assert_int_equal(access(t->path, F_OK), -1);
    vd_host_file_close(NULL);
}

/* Resident memory of this process in KiB (VmRSS), or -1. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* VD_HOST_PREFAULT: mem_advise makes a fresh buffer resident; without it
 * the hint leaves the buffer untouched. */
static void test_file_prefault(void **state)
{
    tmpdir *t = *state;
    if (rss_kib() < 0)
        skip(); /* no /proc here */
    const size_t len = (size_t)32 << 20;
    for (int pre = 0; pre <= 1; pre++) {
        vd_host *h = file_open_ok(pre ? t->path2 : t->path,
                                  VD_HOST_CREATE | (pre ? VD_HOST_PREFAULT : 0));
        assert_non_null(h->mem_advise);
        uint8_t *buf = aligned_alloc((size_t)2 << 20, len);
        assert_non_null(buf);
        long before = rss_kib();
        h->mem_advise(h->ctx, buf, len);
        long grew = rss_kib() - before;
        if (pre)
            assert_true(grew >= (long)(len >> 10) * 15 / 16);
        else
            assert_true(grew < (long)(len >> 10) / 4);
        /* Resident or not, it is ordinary memory. */
        memset(buf, 0xa5, len);
        assert_int_equal(buf[len - 1], 0xa5);
        free(buf);
        vd_host_file_close(h);
    }
}

static void test_file_lock_busy(void **state)
{
    tmpdir *t = *state;
    vd_host *a = file_open_ok(t->path, VD_HOST_CREATE);
    vd_host *b = NULL;
    int e = 0;

    /* A second writer is refused while the first holds the lock. */
    assert_int_equal(vd_host_file_open(t->path, 0, &b, &e), VD_ERR_BUSY);
    assert_null(b);
    assert_int_equal(e, EWOULDBLOCK);
    /* So is a reader. */
    assert_int_equal(vd_host_file_open(t->path, VD_HOST_READONLY, &b, &e),
                     VD_ERR_BUSY);
    /* NOLOCK bypasses the lock on purpose. */
    b = file_open_ok(t->path, VD_HOST_NOLOCK);
    put(b, 0, "nolock", 6);
    vd_host_file_close(b);

    /* Closing the first releases the lock. */
    vd_host_file_close(a);
    b = file_open_ok(t->path, 0);
    /* ...and the new writer now holds it in turn. */
    assert_int_equal(vd_host_file_open(t->path, 0, &a, &e), VD_ERR_BUSY);
    vd_host_file_close(b);
}

static void test_file_shared_readonly(void **state)
{
    tmpdir *t = *state;
    vd_host *w = file_open_ok(t->path, VD_HOST_CREATE);
    vd_host *r1;
    vd_host *r2;
    vd_host *x = NULL;
    uint8_t buf[8];
    size_t done = 99;
    int e = 0;

    put(w, 0, "shared", 6);
    vd_host_file_close(w);

    r1 = file_open_ok(t->path, VD_HOST_READONLY);
    r2 = file_open_ok(t->path, VD_HOST_READONLY);
    get(r1, 0, buf, 6);
    assert_memory_equal(buf, "shared", 6);
    get(r2, 0, buf, 6);
    assert_memory_equal(buf, "shared", 6);

    /* A writer is refused while readers hold shared locks. */
    assert_int_equal(vd_host_file_open(t->path, 0, &x, &e), VD_ERR_BUSY);
    assert_int_equal(e, EWOULDBLOCK);

    /* A read-only host does not write or truncate. */
    assert_true(r1->write_at(r1->ctx, 0, "zz", 2, &done) < 0);
    assert_int_equal(done, 0);
    assert_true(r1->truncate(r1->ctx, 0) < 0);
    assert_int_equal(host_size(r1), 6);
    assert_int_equal(r1->flush(r1->ctx), 0);

    vd_host_file_close(r1);
    assert_int_equal(vd_host_file_open(t->path, 0, &x, &e), VD_ERR_BUSY);
    vd_host_file_close(r2);
    x = file_open_ok(t->path, 0);
    get(x, 0, buf, 6);
    assert_memory_equal(buf, "shared", 6);
    vd_host_file_close(x);
}

/* Number of open descriptors of this process. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *ent;
    int n = 0;
    assert_non_null(d);
    while ((ent = readdir(d)) != NULL)
        if (ent->d_name[0] != '.')
            n++;
    assert_int_equal(closedir(d), 0);
    return n;
}

/* The descriptor open on path, found through /proc/self/fd, or -1. */
static int fd_of(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *ent;
    int found = -1;
    assert_non_null(d);
    while ((ent = readdir(d)) != NULL) {
        char link[PATH_MAX];
        char target[PATH_MAX];
        ssize_t n;
        if (ent->d_name[0] == '.')
            continue;
        assert_true(snprintf(link, sizeof(link), "/proc/self/fd/%s",
                             ent->d_name) > 0);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) == 0)
            found = atoi(ent->d_name);
    }
    assert_int_equal(closedir(d), 0);
    return found;
}

static void test_file_no_fd_leak_cloexec(void **state)
{
    tmpdir *t = *state;
    int before;
    vd_host *h = file_open_ok(t->path, VD_HOST_CREATE);
    int fd = fd_of(t->path);
    int fl;

    /* The descriptor is close-on-exec. */
    assert_true(fd >= 0);
    fl = fcntl(fd, F_GETFD);
    assert_true(fl >= 0);
    assert_true(fl & FD_CLOEXEC);
    vd_host_file_close(h);
    assert_int_equal(fd_of(t->path), -1);

    before = count_fds();
    for (int i = 0; i < 50; i++) {
        vd_host *a = file_open_ok(t->path, 0);
        vd_host *b = NULL;
        int e = 0;
        assert_int_equal(vd_host_file_open(t->path, 0, &b, &e), VD_ERR_BUSY);
        assert_int_equal(vd_host_file_open(t->path, VD_HOST_CREATE, &b, &e),
                         VD_ERR_INVAL);
        assert_int_equal(vd_host_file_open(t->path2, 0, &b, &e), VD_ERR_IO);
        vd_host_file_close(a);
    }
    assert_int_equal(count_fds(), before);
}

/* ---- Memory backend --------------------------------------------------- */

static void test_mem_basic(void **state)
{
    vd_host *h = NULL;
    uint8_t buf[64];
    size_t done = 99;
    uint64_t sz = 1;
    uint8_t *data;

    (void)state;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    assert_non_null(h);
    assert_int_equal(host_size(h), 0);
    assert_int_equal(h->read_at(h->ctx, 0, buf, 10, &done), 0);
    assert_int_equal(done, 0);

    /* A write beyond the end grows, zero-filling the gap. */
    put(h, 10, "abc", 3);
    assert_int_equal(host_size(h), 13);
    memset(buf, 0xEE, sizeof(buf));
    get(h, 0, buf, 13);
    assert_true(all_equal(buf, 10, 0));
    assert_memory_equal(buf + 10, "abc", 3);

    /* A read across the end is short. */
    memset(buf, 0xEE, sizeof(buf));
    assert_int_equal(h->read_at(h->ctx, 11, buf, 10, &done), 0);
    assert_int_equal(done, 2);
    assert_memory_equal(buf, "bc", 2);
    assert_int_equal(buf[2], 0xEE);
    assert_int_equal(h->read_at(h->ctx, 1000, buf, 10, &done), 0);
    assert_int_equal(done, 0);

    assert_int_equal(h->flush(h->ctx), 0);

    /* Shrink then grow: the regrown bytes are zeros, not stale data. */
    assert_int_equal(h->truncate(h->ctx, 11), 0);
    assert_int_equal(host_size(h), 11);
    assert_int_equal(h->truncate(h->ctx, 20), 0);
    assert_int_equal(host_size(h), 20);
    get(h, 0, buf, 20);
    assert_int_equal(buf[10], 'a');
    assert_true(all_equal(buf + 11, 9, 0));

    /* Direct access and tampering. */
    data = vd_host_mem_data(h, &sz);
    assert_non_null(data);
    assert_int_equal(sz, 20);
    data[10] = 'Z';
    get(h, 10, buf, 1);
    assert_int_equal(buf[0], 'Z');

    /* Replace the contents. */
    assert_int_equal(vd_host_mem_set(h, (const uint8_t *)"newdata", 7), VD_OK);
    assert_int_equal(host_size(h), 7);
    get(h, 0, buf, 7);
    assert_memory_equal(buf, "newdata", 7);
    /* Setting from its own buffer is allowed. */
    data = vd_host_mem_data(h, &sz);
    assert_int_equal(vd_host_mem_set(h, data + 3, 4), VD_OK);
    get(h, 0, buf, 4);
    assert_memory_equal(buf, "data", 4);
    assert_int_equal(vd_host_mem_set(h, NULL, 0), VD_OK);
    assert_int_equal(host_size(h), 0);

    /* Large sparse growth. */
    put(h, 1u << 20, "end", 3);
    assert_int_equal(host_size(h), (1u << 20) + 3);
    get(h, (1u << 20) - 8, buf, 11);
    assert_true(all_equal(buf, 8, 0));
    assert_memory_equal(buf + 8, "end", 3);

    vd_host_mem_free(h);
}

static void test_mem_args(void **state)
{
    vd_host *h = NULL;
    uint8_t buf[4];
    size_t done = 5;

    (void)state;
    assert_int_equal(vd_host_mem_new(NULL), VD_ERR_INVAL);
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    assert_int_equal(h->read_at(h->ctx, 0, buf, 4, NULL), -EINVAL);
    assert_int_equal(h->read_at(h->ctx, 0, NULL, 4, &done), -EINVAL);
    assert_int_equal(done, 0);
    assert_int_equal(h->write_at(h->ctx, 0, NULL, 4, &done), -EINVAL);
    assert_int_equal(h->write_at(h->ctx, UINT64_MAX - 1, buf, 4, &done),
                     -EFBIG);
    assert_int_equal(h->truncate(h->ctx, UINT64_MAX), -EFBIG);
    assert_int_equal(vd_host_mem_set(h, NULL, 5), VD_ERR_INVAL);
    assert_int_equal(vd_host_mem_set(NULL, buf, 1), VD_ERR_INVAL);
    assert_null(vd_host_mem_data(NULL, NULL));
    /* A zero-length write changes nothing. */
    put(h, 100, buf, 0);
    assert_int_equal(host_size(h), 0);
    vd_host_mem_free(h);
    vd_host_mem_free(NULL);
}

static void test_mem_clock(void **state)
{
    vd_host *a = NULL;
    vd_host *b = NULL;
    int64_t t = 0;

    (void)state;
    assert_int_equal(vd_host_mem_new(&a), VD_OK);
    assert_int_equal(vd_host_mem_new(&b), VD_OK);
    assert_non_null(a->now);
    assert_int_equal(a->now(a->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS);
    assert_int_equal(a->now(a->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS + 1000000);
    assert_int_equal(a->now(a->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS + 2000000);
    /* Each host has its own clock (no global state). */
    assert_int_equal(b->now(b->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS);
    assert_int_equal(a->now(a->ctx, NULL), -EINVAL);
    vd_host_mem_free(a);
    vd_host_mem_free(b);
}

/* ---- Recording backend ------------------------------------------------ */

#define REC_INIT 4096u

/* The reference log used by several tests:
 *   0 W   0 x100 'A'      epoch 0
 *   1 W 200 x50  'B'
 *   2 FLUSH
 *   3 W   0 x10  'C'      epoch 1
 *   4 W 4096 x100 'D'     (grows to 4196)
 *   5 FLUSH
 *   6 W  50 x20  'E'      epoch 2 (open)
 *   7 W 1000 x30 'F'
 *   8 TRUNCATE 3000
 *   9 W 2000 x10 'G' */
static vd_rec *rec_reference(uint8_t **initial_out)
{
    uint8_t *init = pattern(REC_INIT, 3);
    vd_rec *rec = vd_rec_new(init, REC_INIT);
    const vd_host *h;

    assert_non_null(rec);
    h = vd_rec_host(rec);
    assert_non_null(h);
    put_byte(h, 0, 'A', 100);
    put_byte(h, 200, 'B', 50);
    assert_int_equal(h->flush(h->ctx), 0);
    put_byte(h, 0, 'C', 10);
    put_byte(h, 4096, 'D', 100);
    assert_int_equal(h->flush(h->ctx), 0);
    put_byte(h, 50, 'E', 20);
    put_byte(h, 1000, 'F', 30);
    assert_int_equal(h->truncate(h->ctx, 3000), 0);
    put_byte(h, 2000, 'G', 10);
    *initial_out = init;
    return rec;
}

/* Independent model of applying ops [from, to) of the log onto img. */
typedef struct model {
    uint8_t *p;
    uint64_t size;
} model;

static void model_init(model *m, const uint8_t *init, uint64_t size)
{
    m->p = calloc(1, 1u << 16);
    assert_non_null(m->p);
    memcpy(m->p, init, size);
    m->size = size;
}

static void model_apply(model *m, vd_rec *rec, size_t i)
{
    vd_rec_op_info op;
    assert_int_equal(vd_rec_op_get(rec, i, &op), VD_OK);
    if (op.kind == VD_REC_WRITE) {
        assert_true(op.offset + op.length <= (1u << 16));
        if (op.offset > m->size)
            memset(m->p + m->size, 0, op.offset - m->size);
        memcpy(m->p + op.offset, op.data, op.length);
        if (op.offset + op.length > m->size)
            m->size = op.offset + op.length;
    } else if (op.kind == VD_REC_TRUNCATE) {
        assert_true(op.new_size <= (1u << 16));
        if (op.new_size > m->size)
            memset(m->p + m->size, 0, op.new_size - m->size);
        m->size = op.new_size;
    }
}

static void assert_image(const uint8_t *img, uint64_t size, const model *m)
{
    assert_non_null(img);
    assert_int_equal(size, m->size);
    assert_memory_equal(img, m->p, size);
}

static void test_rec_counts_and_bounds(void **state)
{
    uint8_t *init;
    vd_rec *rec = rec_reference(&init);
    size_t a = 0;
    size_t b = 0;
    vd_rec_op_info op;
    const vd_host *h = vd_rec_host(rec);

    (void)state;
    assert_int_equal(vd_rec_op_count(rec), 10);
    assert_int_equal(vd_rec_flush_count(rec), 2);
    assert_int_equal(vd_rec_epoch_count(rec), 3);
    assert_int_equal(vd_rec_bytes_logged(rec), 100 + 50 + 10 + 100 + 20 + 30 + 10);

    assert_int_equal(vd_rec_epoch_bounds(rec, 0, &a, &b), VD_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 2);
    assert_int_equal(vd_rec_epoch_bounds(rec, 1, &a, &b), VD_OK);
    assert_int_equal(a, 3);
    assert_int_equal(b, 5);
    assert_int_equal(vd_rec_epoch_bounds(rec, 2, &a, &b), VD_OK);
    assert_int_equal(a, 6);
    assert_int_equal(b, 10);
    assert_int_equal(vd_rec_epoch_bounds(rec, 3, &a, &b), VD_ERR_RANGE);

    assert_int_equal(vd_rec_tail_first(rec, 0), 0);
    assert_int_equal(vd_rec_tail_first(rec, 2), 0);
    assert_int_equal(vd_rec_tail_first(rec, 3), 3);
    assert_int_equal(vd_rec_tail_first(rec, 5), 3);
    assert_int_equal(vd_rec_tail_first(rec, 6), 6);
    assert_int_equal(vd_rec_tail_first(rec, 10), 6);
    assert_int_equal(vd_rec_tail_first(rec, 99), 6);

    assert_int_equal(vd_rec_op_get(rec, 1, &op), VD_OK);
    assert_int_equal(op.kind, VD_REC_WRITE);
    assert_int_equal(op.offset, 200);
    assert_int_equal(op.length, 50);
    assert_true(all_equal(op.data, 50, 'B'));
    assert_int_equal(vd_rec_op_get(rec, 2, &op), VD_OK);
    assert_int_equal(op.kind, VD_REC_FLUSH);
    assert_int_equal(vd_rec_op_get(rec, 8, &op), VD_OK);
    assert_int_equal(op.kind, VD_REC_TRUNCATE);
    assert_int_equal(op.new_size, 3000);
    assert_int_equal(vd_rec_op_get(rec, 10, &op), VD_ERR_RANGE);

    /* Reads and size see the live image; zero-length writes are not
     * logged; the fake clock advances. */
    assert_int_equal(host_size(h), 3000);
    put(h, 5, "", 0);
    assert_int_equal(vd_rec_op_count(rec), 10);
    {
        int64_t t1 = 0;
        int64_t t2 = 0;
        assert_int_equal(h->now(h->ctx, &t1), 0);
        assert_int_equal(h->now(h->ctx, &t2), 0);
        assert_int_equal(t1, MEM_T0_NS);
        assert_int_equal(t2, MEM_T0_NS + 1000000);
    }
    vd_rec_free(rec);
    free(init);
}

static void test_rec_prefix_zero_and_full(void **state)
{
    uint8_t *init;
    vd_rec *rec = rec_reference(&init);
    const vd_host *h = vd_rec_host(rec);
    uint64_t sz = 0;
    uint64_t lsz = 0;
    uint8_t *img;
    const uint8_t *live;
    uint8_t *via_read;

    (void)state;
    /* Prefix 0 is the initial image, whatever the mask / reorder. */
    img = vd_rec_crash_image(rec, 0, NULL, 0, 0, &sz);
    assert_non_null(img);
    assert_int_equal(sz, REC_INIT);
    assert_memory_equal(img, init, REC_INIT);
    free(img);
    img = vd_rec_crash_image(rec, 0, NULL, 42, 1, &sz);
    assert_int_equal(sz, REC_INIT);
    assert_memory_equal(img, init, REC_INIT);
    free(img);

    /* The full prefix, in order, is the live image. */
    img = vd_rec_crash_image(rec, vd_rec_op_count(rec), NULL, 0, 0, &sz);
    live = vd_rec_live(rec, &lsz);
    assert_non_null(img);
    assert_int_equal(sz, 3000);
    assert_int_equal(lsz, sz);
    assert_memory_equal(img, live, sz);
    via_read = malloc(sz);
    assert_non_null(via_read);
    get(h, 0, via_read, sz);
    assert_memory_equal(img, via_read, sz);
    /* Spot checks of the content. */
    assert_true(all_equal(img, 10, 'C'));
    assert_true(all_equal(img + 10, 40, 'A'));
    assert_true(all_equal(img + 50, 20, 'E'));
    assert_true(all_equal(img + 1000, 30, 'F'));
    assert_true(all_equal(img + 2000, 10, 'G'));
    assert_memory_equal(img + 2010, init + 2010, 3000 - 2010);
    free(via_read);
    free(img);

    /* Beyond the log: NULL. */
    assert_null(vd_rec_crash_image(rec, 11, NULL, 0, 0, &sz));
    assert_int_equal(sz, 0);
    vd_rec_free(rec);
    free(init);
}

/* For every prefix and an empty mask, exactly the ops before the last
 * flush of the prefix are applied; with a full mask (NULL), all of them. */
static void test_rec_durable_prefix(void **state)
{
    uint8_t *init;
    vd_rec *rec = rec_reference(&init);
    const uint8_t none[1] = {0};
    size_t nops = vd_rec_op_count(rec);

    (void)state;
    /* Walk the prefixes backwards too, to exercise cache rebuilds. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k <= nops; k++) {
            size_t n = pass == 0 ? k : nops - k;
            size_t tf = vd_rec_tail_first(rec, n);
            model durable;
            model all;
            uint64_t sz = 0;
            uint8_t *img;

            model_init(&durable, init, REC_INIT);
            model_init(&all, init, REC_INIT);
            for (size_t i = 0; i < tf; i++)
                model_apply(&durable, rec, i);
            for (size_t i = 0; i < n; i++)
                model_apply(&all, rec, i);

            img = vd_rec_crash_image(rec, n, none, 1, 0, &sz);
            assert_image(img, sz, &durable);
            free(img);
            img = vd_rec_crash_image(rec, n, none, 1, 1, &sz);
            assert_image(img, sz, &durable);
            free(img);
            img = vd_rec_crash_image(rec, n, NULL, 0, 0, &sz);
            assert_image(img, sz, &all);
            free(img);
            free(durable.p);
            free(all.p);
        }
    }
    /* The first epoch's writes are in every image past the first flush. */
    for (size_t n = 3; n <= nops; n++) {
        uint64_t sz = 0;
        uint8_t *img = vd_rec_crash_image(rec, n, none, 9, 1, &sz);
        assert_non_null(img);
        assert_true(all_equal(img + 200, 50, 'B'));
        free(img);
    }
    vd_rec_free(rec);
    free(init);
}

static void test_rec_mask(void **state)
{
    uint8_t *init;
    vd_rec *rec = rec_reference(&init);
    uint64_t sz = 0;
    uint8_t *img;
    uint8_t mask[1];

    (void)state;
    /* Tail of the full prefix: ops 6 (E), 7 (F), 8 (TRUNC 3000), 9 (G). */
    mask[0] = 0x5; /* ops 6 and 8 */
    img = vd_rec_crash_image(rec, 10, mask, 0, 0, &sz);
    assert_non_null(img);
    assert_int_equal(sz, 3000);
    assert_true(all_equal(img, 10, 'C'));
    assert_true(all_equal(img + 50, 20, 'E'));
    assert_memory_equal(img + 1000, init + 1000, 30); /* F not applied */
    assert_memory_equal(img + 2000, init + 2000, 10); /* G not applied */
    free(img);

    mask[0] = 0x2; /* op 7 only: no truncate, so the size stays 4196 */
    img = vd_rec_crash_image(rec, 10, mask, 0, 0, &sz);
    assert_non_null(img);
    assert_int_equal(sz, 4196);
    assert_true(all_equal(img + 4096, 100, 'D'));
    assert_true(all_equal(img + 1000, 30, 'F'));
    assert_true(all_equal(img + 50, 20, 'A')); /* E not applied */
    assert_memory_equal(img + 2000, init + 2000, 10);
    free(img);

    mask[0] = 0x8; /* op 9 only */
    img = vd_rec_crash_image(rec, 10, mask, 0, 0, &sz);
    assert_int_equal(sz, 4196);
    assert_true(all_equal(img + 2000, 10, 'G'));
    assert_memory_equal(img + 1000, init + 1000, 30);
    free(img);

    /* A truncate is durable only after a flush: prefix 9 without op 8. */
    mask[0] = 0x3;
    img = vd_rec_crash_image(rec, 9, mask, 0, 0, &sz);
    assert_int_equal(sz, 4196);
    free(img);
    img = vd_rec_crash_image(rec, 9, NULL, 0, 0, &sz);
    assert_int_equal(sz, 3000);
    free(img);

    /* Mask bits beyond the tail are ignored (tail of prefix 8 is 2 ops). */
    mask[0] = 0xFC;
    img = vd_rec_crash_image(rec, 8, mask, 0, 0, &sz);
    assert_int_equal(sz, 4196);
    assert_true(all_equal(img + 50, 20, 'A'));
    assert_memory_equal(img + 1000, init + 1000, 30);
    free(img);

    /* The crash host carries the same image. */
    {
        vd_host *ch = NULL;
        uint64_t csz = 0;
        uint8_t *data;
        mask[0] = 0x5;
        img = vd_rec_crash_image(rec, 10, mask, 0, 0, &sz);
        assert_int_equal(vd_rec_crash_host(rec, 10, mask, 0, 0, &ch), VD_OK);
        assert_non_null(ch);
        data = vd_host_mem_data(ch, &csz);
        assert_int_equal(csz, sz);
        assert_memory_equal(data, img, sz);
        vd_host_mem_free(ch);
        free(img);
        assert_int_equal(vd_rec_crash_host(rec, 11, NULL, 0, 0, &ch),
                         VD_ERR_RANGE);
        assert_null(ch);
    }
    vd_rec_free(rec);
    free(init);
}

/* Eight overlapping single-write ops in the open epoch: the surviving value
 * tells which op was applied last. */
static vd_rec *rec_overlapping(void)
{
    uint8_t zero[64] = {0};
    vd_rec *rec = vd_rec_new(zero, sizeof(zero));
    const vd_host *h;

    assert_non_null(rec);
    h = vd_rec_host(rec);
    put_byte(h, 0, 0xAA, 64);
    assert_int_equal(h->flush(h->ctx), 0);
    for (int i = 0; i < 8; i++)
        put_byte(h, 0, (uint8_t)(i + 1), (size_t)(16 + 4 * i));
    return rec;
}

static void test_rec_reorder(void **state)
{
    vd_rec *rec = rec_overlapping();
    size_t n = vd_rec_op_count(rec);
    int seen[9] = {0};
    int distinct = 0;
    uint64_t sz = 0;
    uint8_t *img;

    (void)state;
    assert_int_equal(n, 10);
    assert_int_equal(vd_rec_tail_first(rec, n), 2);

    /* In order: the last write wins. */
    img = vd_rec_crash_image(rec, n, NULL, 0, 0, &sz);
    assert_int_equal(img[0], 8);
    free(img);

    for (uint64_t seed = 0; seed < 64; seed++) {
        uint64_t sz2 = 0;
        uint8_t *a = vd_rec_crash_image(rec, n, NULL, seed, 1, &sz);
        uint8_t *b = vd_rec_crash_image(rec, n, NULL, seed, 1, &sz2);
        assert_non_null(a);
        assert_non_null(b);
        /* Deterministic for a seed. */
        assert_int_equal(sz, sz2);
        assert_memory_equal(a, b, sz);
        assert_int_equal(sz, 64);
        assert_true(a[0] >= 1 && a[0] <= 8);
        seen[a[0]] = 1;
        /* Writes are atomic: each covered byte belongs to a whole write,
         * and every write was applied (the longest, op 8, covers 44). */
        for (size_t i = 0; i < 44; i++) {
            uint8_t v = a[i];
            assert_true(v >= 1 && v <= 8);
            assert_true(i < (size_t)(16 + 4 * (v - 1)));
        }
        assert_true(all_equal(a + 44, 20, 0xAA));
        /* Bytes [0,16) are covered by all writes: one value throughout. */
        assert_true(all_equal(a, 16, a[0]));
        free(a);
        free(b);
    }
    for (int v = 1; v <= 8; v++)
        distinct += seen[v];
    assert_true(distinct >= 4); /* the order really changes with the seed */

    /* Reorder with a mask: only chosen writes appear. */
    {
        const uint8_t mask[1] = {0x2A}; /* ops 3, 5, 7 of the tail: 2,4,6 */
        for (uint64_t seed = 1; seed < 32; seed++) {
            uint8_t *a = vd_rec_crash_image(rec, n, mask, seed, 1, &sz);
            assert_non_null(a);
            assert_true(a[0] == 2 || a[0] == 4 || a[0] == 6);
            /* The longest selected write (value 6, 36 bytes) is applied. */
            assert_int_equal(a[35], 6);
            assert_int_equal(a[36], 0xAA);
            free(a);
        }
    }
    vd_rec_free(rec);
}

/* Everything the view reads through its host. */
static uint8_t *view_bytes(const vd_host *h, uint64_t *size)
{
    assert_int_equal(h->size(h->ctx, size), 0);
    uint8_t *b = malloc(*size + 1);
    assert_non_null(b);
    get(h, 0, b, (size_t)*size);
    return b;
}

/* A crash view reads exactly what vd_rec_crash_image builds, for every
 * prefix, subset and order; writes and truncates through it behave as on a
 * copy, and never reach the recorder's own images. */
static void test_rec_view_matches_crash_image(void **state)
{
    (void)state;
    uint8_t init[9000];
    for (size_t i = 0; i < sizeof init; i++)
        init[i] = (uint8_t)(i * 7);
    vd_rec *rec = vd_rec_new(init, sizeof init);
    assert_non_null(rec);
    vd_host *h = vd_rec_host(rec);
    uint64_t r = 99;
    for (unsigned k = 0; k < 60; k++) {
        uint64_t x = vt_rand(&r);
        if (x % 11 == 0) {
            assert_int_equal(h->flush(h->ctx), 0);
        } else if (x % 13 == 0) {
            assert_int_equal(h->truncate(h->ctx, 2000 + (x >> 8) % 30000), 0);
        } else {
            /* Unaligned, often across a 4 KiB boundary, sometimes past the end. */
            put_byte(h, (x >> 8) % 30000, (uint8_t)k, 1 + (size_t)((x >> 24) % 9000));
        }
    }
    size_t n = vd_rec_op_count(rec);
    for (size_t p = 0; p <= n; p++) {
        for (unsigned variant = 0; variant < 3; variant++) {
            uint8_t mask[16];
            for (size_t i = 0; i < sizeof mask; i++)
                mask[i] = (uint8_t)vt_rand(&r);
            const uint8_t *m = variant ? mask : NULL;
            uint64_t seed = variant == 2 ? vt_rand(&r) : 0;
            uint64_t sz = 0, vsz = 0;
            uint8_t *img = vd_rec_crash_image(rec, p, m, seed, variant == 2, &sz);
            assert_non_null(img);
            vd_host *v;
            assert_int_equal(vd_rec_crash_view(rec, p, m, seed, variant == 2, &v), VD_OK);
            uint8_t *got = view_bytes(v, &vsz);
            assert_int_equal(vsz, sz);
            assert_memory_equal(got, img, sz);
            free(got);
            /* Writes through the view, a shrink and a regrowth: as on a copy. */
            model md;
            md.p = calloc(1, 1u << 16);
            assert_non_null(md.p);
            memcpy(md.p, img, sz);
            md.size = sz;
            for (unsigned k = 0; k < 4; k++) {
                uint64_t x = vt_rand(&r);
                uint64_t off = (x >> 8) % 40000, len = 1 + (x >> 24) % 6000;
                put_byte(v, off, 0xC0 + k, len);
                if (off > md.size)
                    memset(md.p + md.size, 0, off - md.size);
                memset(md.p + off, 0xC0 + k, len);
                if (off + len > md.size)
                    md.size = off + len;
            }
            uint64_t cut = md.size / 3;
            assert_int_equal(v->truncate(v->ctx, cut), 0);
            assert_int_equal(v->truncate(v->ctx, md.size), 0);
            memset(md.p + cut, 0, md.size - cut);
            got = view_bytes(v, &vsz);
            assert_int_equal(vsz, md.size);
            assert_memory_equal(got, md.p, md.size);
            free(got);
            free(md.p);
            vd_rec_view_free(v);
            /* The recorder's images are untouched by the view. */
            uint8_t *again = vd_rec_crash_image(rec, p, m, seed, variant == 2, &vsz);
            assert_non_null(again);
            assert_int_equal(vsz, sz);
            assert_memory_equal(again, img, sz);
            free(again);
            free(img);
        }
    }
    vd_rec_free(rec);
}

static void test_rec_reset_log(void **state)
{
    uint8_t *init;
    vd_rec *rec = rec_reference(&init);
    const vd_host *h = vd_rec_host(rec);
    uint64_t lsz = 0;
    uint64_t isz = 0;
    uint64_t sz = 0;
    const uint8_t *live = vd_rec_live(rec, &lsz);
    uint8_t *snapshot = malloc(lsz);
    uint8_t *img;

    (void)state;
    assert_non_null(snapshot);
    memcpy(snapshot, live, lsz);
    /* Warm the cache before the reset. */
    img = vd_rec_crash_image(rec, 7, NULL, 0, 0, &sz);
    free(img);

    assert_int_equal(vd_rec_reset_log(rec), VD_OK);
    assert_int_equal(vd_rec_op_count(rec), 0);
    assert_int_equal(vd_rec_flush_count(rec), 0);
    assert_int_equal(vd_rec_epoch_count(rec), 1);
    assert_int_equal(vd_rec_bytes_logged(rec), 0);
    {
        const uint8_t *ini = vd_rec_initial(rec, &isz);
        assert_int_equal(isz, lsz);
        assert_memory_equal(ini, snapshot, lsz);
    }
    img = vd_rec_crash_image(rec, 0, NULL, 0, 0, &sz);
    assert_int_equal(sz, lsz);
    assert_memory_equal(img, snapshot, sz);
    free(img);

    /* Recording resumes from the new base. */
    put_byte(h, 0, 'Z', 5);
    assert_int_equal(vd_rec_op_count(rec), 1);
    img = vd_rec_crash_image(rec, 1, NULL, 0, 0, &sz);
    assert_true(all_equal(img, 5, 'Z'));
    assert_memory_equal(img + 5, snapshot + 5, lsz - 5);
    free(img);
    {
        const uint8_t none[1] = {0};
        img = vd_rec_crash_image(rec, 1, none, 0, 0, &sz);
        assert_memory_equal(img, snapshot, lsz);
        free(img);
    }
    free(snapshot);
    vd_rec_free(rec);
    free(init);
}

static void test_rec_empty(void **state)
{
    vd_rec *rec = vd_rec_new(NULL, 0);
    const vd_host *h;
    uint64_t sz = 7;
    uint8_t *img;
    size_t a = 1;
    size_t b = 1;

    (void)state;
    assert_non_null(rec);
    assert_null(vd_rec_new(NULL, 5));
    h = vd_rec_host(rec);
    assert_int_equal(host_size(h), 0);
    img = vd_rec_crash_image(rec, 0, NULL, 0, 0, &sz);
    assert_non_null(img);
    assert_int_equal(sz, 0);
    free(img);
    assert_int_equal(vd_rec_epoch_count(rec), 1);
    assert_int_equal(vd_rec_epoch_bounds(rec, 0, &a, &b), VD_OK);
    assert_int_equal(a, 0);
    assert_int_equal(b, 0);
    /* A flush as the last op leaves an empty open epoch. */
    assert_int_equal(h->truncate(h->ctx, 100), 0);
    assert_int_equal(h->flush(h->ctx), 0);
    assert_int_equal(vd_rec_epoch_count(rec), 2);
    assert_int_equal(vd_rec_epoch_bounds(rec, 1, &a, &b), VD_OK);
    assert_int_equal(a, 2);
    assert_int_equal(b, 2);
    img = vd_rec_crash_image(rec, 2, (const uint8_t *)"", 0, 1, &sz);
    assert_int_equal(sz, 100);
    assert_true(all_equal(img, 100, 0));
    free(img);
    vd_rec_free(rec);
    vd_rec_free(NULL);
}

/* ---- Fault-injecting backend ------------------------------------------ */

typedef struct fault_fix {
    vd_host *mem;
    uint8_t *pat;
    vd_fault *f;
    vd_host *h;
} fault_fix;

#define FIX_SIZE 4096u

static int fault_setup(void **state)
{
    fault_fix *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return -1;
    x->pat = malloc(FIX_SIZE);
    if (x->pat == NULL)
        return -1;
    for (size_t i = 0; i < FIX_SIZE; i++)
        x->pat[i] = (uint8_t)(i * 7 + 1);
    if (vd_host_mem_new(&x->mem) != VD_OK)
        return -1;
    if (vd_host_mem_set(x->mem, x->pat, FIX_SIZE) != VD_OK)
        return -1;
    x->f = vd_fault_new(x->mem);
    if (x->f == NULL)
        return -1;
    x->h = vd_fault_host(x->f);
    *state = x;
    return 0;
}

static int fault_teardown(void **state)
{
    fault_fix *x = *state;
    vd_fault_free(x->f);
    vd_host_mem_free(x->mem);
    free(x->pat);
    free(x);
    return 0;
}

static void test_fault_passthrough(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[FIX_SIZE];
    int64_t t = 0;

    get(x->h, 0, buf, FIX_SIZE);
    assert_memory_equal(buf, x->pat, FIX_SIZE);
    put(x->h, 10, "hi", 2);
    get(x->mem, 10, buf, 2);
    assert_memory_equal(buf, "hi", 2);
    assert_int_equal(host_size(x->h), FIX_SIZE);
    assert_int_equal(x->h->flush(x->h->ctx), 0);
    assert_int_equal(x->h->truncate(x->h->ctx, FIX_SIZE), 0);
    assert_int_equal(x->h->now(x->h->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS);

    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_READ), 1);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_WRITE), 1);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_SIZE), 1);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_FLUSH), 1);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_TRUNCATE), 1);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_NOW), 1);
    for (int op = 0; op < VD_FAULT_NOPS; op++)
        assert_int_equal(vd_fault_injected(x->f, (vd_fault_op)op), 0);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_NOPS), 0);

    vd_fault_reset_counters(x->f);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_READ), 0);
}

static void test_fault_fail_nth(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[16];
    size_t done = 99;

    assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_READ, 3, -EIO), VD_OK);
    get(x->h, 0, buf, 16);
    get(x->h, 0, buf, 16);
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 16, &done), -EIO);
    assert_int_equal(done, 0);
    get(x->h, 0, buf, 16);
    assert_memory_equal(buf, x->pat, 16);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_READ), 4);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_READ), 1);

    /* Other kinds, first call each. */
    {
        uint64_t s = 0;
        int64_t t = 0;
        assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_FLUSH, 1, -EIO),
                         VD_OK);
        assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_SIZE, 1, -EACCES),
                         VD_OK);
        assert_int_equal(
            vd_fault_fail_nth(x->f, VD_FAULT_TRUNCATE, 1, -ENOSPC), VD_OK);
        assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_NOW, 1, -EPERM),
                         VD_OK);
        assert_int_equal(x->h->flush(x->h->ctx), -EIO);
        assert_int_equal(x->h->flush(x->h->ctx), 0);
        assert_int_equal(x->h->size(x->h->ctx, &s), -EACCES);
        assert_int_equal(host_size(x->h), FIX_SIZE);
        assert_int_equal(x->h->truncate(x->h->ctx, 10), -ENOSPC);
        assert_int_equal(host_size(x->mem), FIX_SIZE); /* not forwarded */
        assert_int_equal(x->h->truncate(x->h->ctx, 10), 0);
        assert_int_equal(host_size(x->mem), 10);
        assert_int_equal(x->h->now(x->h->ctx, &t), -EPERM);
        assert_int_equal(x->h->now(x->h->ctx, &t), 0);
        assert_int_equal(t, MEM_T0_NS); /* the inner clock was not consumed */
        assert_int_equal(vd_fault_injected(x->f, VD_FAULT_FLUSH), 1);
        assert_int_equal(vd_fault_injected(x->f, VD_FAULT_SIZE), 1);
        assert_int_equal(vd_fault_injected(x->f, VD_FAULT_TRUNCATE), 1);
        assert_int_equal(vd_fault_injected(x->f, VD_FAULT_NOW), 1);
    }
}

static void test_fault_fail_after_and_window(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[8];
    size_t done = 99;

    assert_int_equal(vd_fault_fail_after(x->f, VD_FAULT_WRITE, 2, -ENOSPC),
                     VD_OK);
    put(x->h, 0, "11", 2);
    put(x->h, 2, "22", 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x->h->write_at(x->h->ctx, 4, "33", 2, &done),
                         -ENOSPC);
        assert_int_equal(done, 0);
    }
    get(x->mem, 0, buf, 6);
    assert_memory_equal(buf, "1122", 4);
    assert_memory_equal(buf + 4, x->pat + 4, 2); /* never reached inner */
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_WRITE), 5);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_WRITE), 3);

    /* fail_after(0): everything fails. */
    assert_int_equal(vd_fault_fail_after(x->f, VD_FAULT_FLUSH, 0, -EROFS),
                     VD_OK);
    assert_int_equal(x->h->flush(x->h->ctx), -EROFS);
    assert_int_equal(x->h->flush(x->h->ctx), -EROFS);

    /* An explicit window: calls 2 and 3 of the reads. */
    assert_int_equal(vd_fault_fail(x->f, VD_FAULT_READ, 2, 2, -EIO), VD_OK);
    get(x->h, 0, buf, 4);
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 4, &done), -EIO);
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 4, &done), -EIO);
    get(x->h, 0, buf, 4);

    /* Clearing removes the faults; counters stay. */
    vd_fault_clear(x->f);
    put(x->h, 4, "33", 2);
    assert_int_equal(x->h->flush(x->h->ctx), 0);
    assert_int_equal(vd_fault_calls(x->f, VD_FAULT_WRITE), 6);

    /* Numbering restarts with the counters. */
    vd_fault_reset_counters(x->f);
    assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_READ, 1, -EIO), VD_OK);
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 4, &done), -EIO);
    get(x->h, 0, buf, 4);
}

static void test_fault_short_and_long_read(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[600];
    size_t done = 0;

    assert_int_equal(vd_fault_short_read(x->f, 1, 2, 100), VD_OK);
    memset(buf, 0xEE, sizeof(buf));
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 512, &done), 0);
    assert_int_equal(done, 412);
    assert_memory_equal(buf, x->pat, 412);
    assert_true(all_equal(buf + 412, 100, 0xEE)); /* untouched */
    /* shortfall >= len: nothing at all, rc 0 */
    assert_int_equal(x->h->read_at(x->h->ctx, 0, buf, 50, &done), 0);
    assert_int_equal(done, 0);
    /* window over: full reads again */
    get(x->h, 0, buf, 512);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_READ), 2);

    /* Over-long count: one more byte than asked. */
    assert_int_equal(vd_fault_long_read(x->f, 4, 1), VD_OK);
    memset(buf, 0xEE, sizeof(buf));
    assert_int_equal(x->h->read_at(x->h->ctx, 100, buf, 256, &done), 0);
    assert_int_equal(done, 257);
    assert_memory_equal(buf, x->pat + 100, 256);
    assert_int_equal(buf[256], 0xEE); /* no byte written past the buffer */
    get(x->h, 0, buf, 16);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_READ), 3);
}

static void test_fault_short_write(void **state)
{
    fault_fix *x = *state;
    uint8_t src[100];
    uint8_t buf[100];
    size_t done = 0;

    memset(src, 0x5A, sizeof(src));
    assert_int_equal(vd_fault_short_write(x->f, 1, VD_FAULT_FOREVER, 40),
                     VD_OK);
    assert_int_equal(x->h->write_at(x->h->ctx, 0, src, 100, &done), 0);
    assert_int_equal(done, 60);
    get(x->mem, 0, buf, 100);
    assert_true(all_equal(buf, 60, 0x5A));
    assert_memory_equal(buf + 60, x->pat + 60, 40);
    /* shortfall >= len: zero bytes "written", rc 0 */
    assert_int_equal(x->h->write_at(x->h->ctx, 200, src, 30, &done), 0);
    assert_int_equal(done, 0);
    get(x->mem, 200, buf, 30);
    assert_memory_equal(buf, x->pat + 200, 30);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_WRITE), 2);
}

static void test_fault_drop(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[8];
    size_t done = 0;
    vd_rec *rec;
    vd_fault *rf;
    vd_host *rh;

    assert_int_equal(vd_fault_drop_writes(x->f, 1, VD_FAULT_FOREVER), VD_OK);
    assert_int_equal(x->h->write_at(x->h->ctx, 0, "lost!", 5, &done), 0);
    assert_int_equal(done, 5);
    get(x->mem, 0, buf, 5);
    assert_memory_equal(buf, x->pat, 5);
    /* Reads through the wrapper reveal the lie too. */
    get(x->h, 0, buf, 5);
    assert_memory_equal(buf, x->pat, 5);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_WRITE), 1);

    /* Dropped truncate: success, size unchanged. */
    assert_int_equal(vd_fault_drop(x->f, VD_FAULT_TRUNCATE, 1, 1), VD_OK);
    assert_int_equal(x->h->truncate(x->h->ctx, 1), 0);
    assert_int_equal(host_size(x->mem), FIX_SIZE);
    assert_int_equal(vd_fault_drop(x->f, VD_FAULT_READ, 1, 1), VD_ERR_INVAL);

    /* A dropped flush never reaches the disk: seen through a recorder. */
    rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    rf = vd_fault_new(vd_rec_host(rec));
    assert_non_null(rf);
    rh = vd_fault_host(rf);
    assert_int_equal(vd_fault_drop(rf, VD_FAULT_FLUSH, 1, 2), VD_OK);
    put(rh, 0, "a", 1);
    assert_int_equal(rh->flush(rh->ctx), 0);
    assert_int_equal(rh->flush(rh->ctx), 0);
    assert_int_equal(vd_rec_flush_count(rec), 0);
    assert_int_equal(rh->flush(rh->ctx), 0);
    assert_int_equal(vd_rec_flush_count(rec), 1);
    assert_int_equal(vd_rec_op_count(rec), 2);
    assert_int_equal(vd_fault_injected(rf, VD_FAULT_FLUSH), 2);
    vd_fault_free(rf);
    vd_rec_free(rec);
}

static void test_fault_size_lie(void **state)
{
    fault_fix *x = *state;
    uint64_t s = 0;

    assert_int_equal(vd_fault_size_lie(x->f, 1, 1, 4096), VD_OK);
    assert_int_equal(host_size(x->h), 2 * FIX_SIZE);
    assert_int_equal(host_size(x->h), FIX_SIZE); /* window over */
    assert_int_equal(vd_fault_size_lie(x->f, 1, VD_FAULT_FOREVER, -1000),
                     VD_OK);
    assert_int_equal(host_size(x->h), FIX_SIZE - 1000);
    assert_int_equal(vd_fault_size_lie(x->f, 1, VD_FAULT_FOREVER, INT64_MIN),
                     VD_OK);
    assert_int_equal(x->h->size(x->h->ctx, &s), 0);
    assert_int_equal(s, 0); /* saturates */
    assert_int_equal(vd_fault_size_lie(x->f, 1, VD_FAULT_FOREVER, INT64_MAX),
                     VD_OK);
    assert_int_equal(host_size(x->h), (uint64_t)INT64_MAX + FIX_SIZE);
    assert_int_equal(host_size(x->mem), FIX_SIZE);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_SIZE), 4);
}

static void test_fault_time(void **state)
{
    fault_fix *x = *state;
    int64_t t = 0;
    int64_t prev;

    /* Backwards for calls 2..6. */
    assert_int_equal(vd_fault_time_backwards(x->f, 2, 5, 1000000000), VD_OK);
    assert_int_equal(x->h->now(x->h->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS);
    prev = t;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(x->h->now(x->h->ctx, &t), 0);
        assert_true(t < prev);
        assert_int_equal(t, prev - 1000000000);
        prev = t;
    }
    /* Back to the inner clock (which advanced once). */
    assert_int_equal(x->h->now(x->h->ctx, &t), 0);
    assert_int_equal(t, MEM_T0_NS + 1000000);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_NOW), 5);

    /* A wildly wrong constant. */
    assert_int_equal(vd_fault_time_constant(x->f, 1, VD_FAULT_FOREVER, -42),
                     VD_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(x->h->now(x->h->ctx, &t), 0);
        assert_int_equal(t, -42);
    }
    assert_int_equal(vd_fault_time_backwards(x->f, 1, 1, 0), VD_ERR_INVAL);

    /* Backwards from the first call ever. */
    vd_fault_clear(x->f);
    vd_fault_reset_counters(x->f);
    {
        vd_host *m2 = NULL;
        vd_fault *f2;
        int64_t t0;
        assert_int_equal(vd_host_mem_new(&m2), VD_OK);
        f2 = vd_fault_new(m2);
        assert_non_null(f2);
        assert_int_equal(vd_fault_time_backwards(f2, 1, 0, 5), VD_OK);
        assert_int_equal(vd_fault_host(f2)->now(vd_fault_host(f2)->ctx, &t0), 0);
        assert_int_equal(t0, MEM_T0_NS - 5);
        assert_int_equal(vd_fault_host(f2)->now(vd_fault_host(f2)->ctx, &t), 0);
        assert_int_equal(t, MEM_T0_NS - 10);
        vd_fault_free(f2);
        vd_host_mem_free(m2);
    }
}

static void test_fault_bitflip(void **state)
{
    fault_fix *x = *state;
    uint8_t buf[FIX_SIZE];

    assert_int_equal(vd_fault_bitflip(x->f, 1000, 0x04), VD_OK);
    assert_int_equal(vd_fault_bitflip(x->f, 3000, 0x80), VD_OK);
    get(x->h, 0, buf, FIX_SIZE);
    assert_int_equal(buf[1000], x->pat[1000] ^ 0x04);
    assert_int_equal(buf[3000], x->pat[3000] ^ 0x80);
    buf[1000] ^= 0x04;
    buf[3000] ^= 0x80;
    assert_memory_equal(buf, x->pat, FIX_SIZE); /* nothing else changed */

    /* Offsets are file offsets, whatever the read's start. */
    get(x->h, 990, buf, 20);
    assert_int_equal(buf[10], x->pat[1000] ^ 0x04);
    get(x->h, 1001, buf, 100);
    assert_memory_equal(buf, x->pat + 1001, 100);
    get(x->h, 1000, buf, 1);
    assert_int_equal(buf[0], x->pat[1000] ^ 0x04);
    /* The inner image is intact. */
    get(x->mem, 1000, buf, 1);
    assert_int_equal(buf[0], x->pat[1000]);
    assert_int_equal(vd_fault_injected(x->f, VD_FAULT_READ), 3);

    /* Replacing a mask; the table is bounded. */
    assert_int_equal(vd_fault_bitflip(x->f, 1000, 0x01), VD_OK);
    get(x->h, 1000, buf, 1);
    assert_int_equal(buf[0], x->pat[1000] ^ 0x01);
    for (uint64_t i = 2; i < VD_FAULT_MAX_FLIPS; i++)
        assert_int_equal(vd_fault_bitflip(x->f, i, 1), VD_OK);
    assert_int_equal(vd_fault_bitflip(x->f, 9999, 1), VD_ERR_RANGE);
    assert_int_equal(vd_fault_bitflip(x->f, 5, 0), VD_ERR_INVAL);

    vd_fault_clear(x->f);
    get(x->h, 0, buf, FIX_SIZE);
    assert_memory_equal(buf, x->pat, FIX_SIZE);
}

static void test_fault_args(void **state)
{
    fault_fix *x = *state;
    vd_host nonow;
    vd_fault *f2;
    int64_t t = 0;

    assert_null(vd_fault_new(NULL));
    assert_null(vd_fault_host(NULL));
    vd_fault_free(NULL);
    assert_int_equal(vd_fault_fail(x->f, VD_FAULT_READ, 1, 1, 0),
                     VD_ERR_INVAL);
    assert_int_equal(vd_fault_fail(x->f, VD_FAULT_READ, 1, 1, EIO),
                     VD_ERR_INVAL);
    assert_int_equal(vd_fault_fail(x->f, VD_FAULT_NOPS, 1, 1, -EIO),
                     VD_ERR_INVAL);
    assert_int_equal(vd_fault_fail_nth(x->f, VD_FAULT_READ, 0, -EIO),
                     VD_ERR_INVAL);
    assert_int_equal(vd_fault_fail(NULL, VD_FAULT_READ, 1, 1, -EIO),
                     VD_ERR_INVAL);
    assert_int_equal(vd_fault_short_read(x->f, 1, 1, 0), VD_ERR_INVAL);
    assert_int_equal(vd_fault_short_write(x->f, 1, 1, 0), VD_ERR_INVAL);
    /* first = 0 disables a fault. */
    assert_int_equal(vd_fault_fail(x->f, VD_FAULT_SIZE, 0, 0, -EIO), VD_OK);
    assert_int_equal(host_size(x->h), FIX_SIZE);

    /* An inner host without a clock. */
    nonow = *x->mem;
    nonow.now = NULL;
    f2 = vd_fault_new(&nonow);
    assert_non_null(f2);
    assert_int_equal(vd_fault_host(f2)->now(vd_fault_host(f2)->ctx, &t), -ENOSYS);
    assert_int_equal(vd_fault_time_constant(f2, 1, 0, 123), VD_OK);
    assert_int_equal(vd_fault_host(f2)->now(vd_fault_host(f2)->ctx, &t), 0);
    assert_int_equal(t, 123);
    vd_fault_free(f2);
}

/* The fault wrapper composes with the file backend too. */
static void test_fault_over_file(void **state)
{
    tmpdir *t = *state;
    vd_host *fh = file_open_ok(t->path, VD_HOST_CREATE);
    vd_fault *f = vd_fault_new(fh);
    vd_host *h;
    uint8_t buf[4];

    assert_non_null(f);
    h = vd_fault_host(f);
    assert_int_equal(vd_fault_fail_nth(f, VD_FAULT_FLUSH, 1, -EIO), VD_OK);
    assert_int_equal(vd_fault_bitflip(f, 1, 0xFF), VD_OK);
    put(h, 0, "abcd", 4);
    assert_int_equal(h->flush(h->ctx), -EIO);
    assert_int_equal(h->flush(h->ctx), 0);
    get(h, 0, buf, 4);
    assert_int_equal(buf[1], (uint8_t)('b' ^ 0xFF));
    get(fh, 0, buf, 4);
    assert_memory_equal(buf, "abcd", 4);
    vd_fault_free(f);
    vd_host_file_close(fh);
}

/* ---- vd_jobs: the pool behind vd_host.run_jobs ----------------------------- */

#define JOBS_N 1000u

typedef struct jobs_count {
    pthread_mutex_t mu;
    unsigned seen[JOBS_N];
} jobs_count;

static void jobs_mark(void *arg, size_t i)
{
    jobs_count *c = arg;
    pthread_mutex_lock(&c->mu);
    c->seen[i]++;
    pthread_mutex_unlock(&c->mu);
}

static void jobs_expect_once(jobs_count *c, size_t n)
{
    for (size_t i = 0; i < JOBS_N; i++)
        assert_int_equal(c->seen[i], i < n ? 1u : 0u);
    memset(c->seen, 0, sizeof c->seen);
}

/* Every index runs exactly once, whatever the pool's size, and the calls
 * return only when all have run (the counts are read right after). */
static void test_jobs_every_index_once(void **state)
{
    (void)state;
    jobs_count c;
    memset(&c, 0, sizeof c);
    assert_int_equal(pthread_mutex_init(&c.mu, NULL), 0);
    const unsigned sizes[] = {0, 1, 2, 4};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        vd_jobs *j = NULL;
        assert_int_equal(vd_jobs_new(sizes[s], &j), VD_OK);
        const size_t ns[] = {0, 1, 2, 3, 17, JOBS_N};
        for (int rep = 0; rep < 3; rep++)
            for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
                vd_jobs_run(j, ns[k], jobs_mark, &c);
                jobs_expect_once(&c, ns[k]);
            }
        vd_jobs_free(j);
    }
    vd_jobs_run(NULL, 5, jobs_mark, &c); /* no pool: on this thread */
    jobs_expect_once(&c, 5);
    vd_jobs_free(NULL);
    assert_int_equal(vd_jobs_new(2, NULL), VD_ERR_INVAL);
    pthread_mutex_destroy(&c.mu);
}

/* Two jobs that each wait for the other to have started can only finish
 * on two threads at once: the pool really runs jobs in parallel. The wait
 * is bounded so a serial pool fails instead of hanging. */
typedef struct jobs_meet {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned started;
    int met[2];
} jobs_meet;

static void jobs_meet_fn(void *arg, size_t i)
{
    jobs_meet *m = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&m->mu);
    m->started++;
    pthread_cond_broadcast(&m->cv);
    int rc = 0;
    while (m->started < 2 && rc == 0)
        rc = pthread_cond_timedwait(&m->cv, &m->mu, &until);
    m->met[i] = m->started >= 2;
    pthread_mutex_unlock(&m->mu);
}

static void test_jobs_run_in_parallel(void **state)
{
    (void)state;
    vd_jobs *j = NULL;
    assert_int_equal(vd_jobs_new(2, &j), VD_OK);
    for (int rep = 0; rep < 3; rep++) {
        jobs_meet m;
        memset(&m, 0, sizeof m);
        assert_int_equal(pthread_mutex_init(&m.mu, NULL), 0);
        assert_int_equal(pthread_cond_init(&m.cv, NULL), 0);
        vd_jobs_run(j, 2, jobs_meet_fn, &m);
        assert_true(m.met[0] && m.met[1]);
        pthread_cond_destroy(&m.cv);
        pthread_mutex_destroy(&m.mu);
    }
    vd_jobs_free(j);
}

/* Several threads running batches on one pool at once (the core may run
 * jobs from several callers): each batch completes, exactly once. */
typedef struct jobs_caller {
    vd_jobs *j;
    jobs_count c;
    int ok;
} jobs_caller;

static void *jobs_caller_main(void *p)
{
    jobs_caller *k = p;
    k->ok = 1;
    for (int rep = 0; rep < 50 && k->ok; rep++) {
        vd_jobs_run(k->j, JOBS_N, jobs_mark, &k->c);
        for (size_t i = 0; i < JOBS_N; i++) {
            k->ok &= k->c.seen[i] == 1u;
            k->c.seen[i] = 0;
        }
    }
    return NULL;
}

static void test_jobs_concurrent_callers(void **state)
{
    (void)state;
    vd_jobs *j = NULL;
    assert_int_equal(vd_jobs_new(3, &j), VD_OK);
    jobs_caller k[3];
    pthread_t th[3];
    memset(k, 0, sizeof k);
    for (int t = 0; t < 3; t++) {
        k[t].j = j;
        assert_int_equal(pthread_mutex_init(&k[t].c.mu, NULL), 0);
        assert_int_equal(pthread_create(&th[t], NULL, jobs_caller_main, &k[t]), 0);
    }
    for (int t = 0; t < 3; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_true(k[t].ok);
        pthread_mutex_destroy(&k[t].c.mu);
    }
    vd_jobs_free(j);
}

/* A background task runs on another thread, and the wait returns only
 * once it has run; tasks follow one another. */
typedef struct bg_task {
    pthread_t caller, ran_on;
    int runs;
} bg_task;

static void bg_fn(void *arg)
{
    bg_task *t = arg;
    t->ran_on = pthread_self();
    t->runs++;
}

static void test_jobs_background_task(void **state)
{
    (void)state;
    vd_jobs *j = NULL;
    assert_int_equal(vd_jobs_new(1, &j), VD_OK);
    bg_task t[3];
    memset(t, 0, sizeof t);
    uint64_t last = 0;
    for (int k = 0; k < 3; k++) {
        t[k].caller = pthread_self();
        uint64_t ticket = vd_jobs_start(j, bg_fn, &t[k]);
        assert_true(ticket > last);
        last = ticket;
        vd_jobs_wait(j, ticket);
        assert_int_equal(t[k].runs, 1);
        assert_false(pthread_equal(t[k].ran_on, t[k].caller));
    }
    vd_jobs_wait(j, 0); /* nothing to wait for */
    assert_int_equal(vd_jobs_start(NULL, bg_fn, &t[0]), 0);
    vd_jobs_free(j);
}

/* The bundled hosts offer run_jobs, and it runs every job. */
static void test_jobs_bundled_hosts(void **state)
{
    tmpdir *t = *state;
    vd_host *fh = file_open_ok(t->path, VD_HOST_CREATE), *mh = NULL;
    assert_int_equal(vd_host_mem_new(&mh), VD_OK);
    jobs_count c;
    memset(&c, 0, sizeof c);
    assert_int_equal(pthread_mutex_init(&c.mu, NULL), 0);
    vd_host *hs[2] = {fh, mh};
    for (int h = 0; h < 2; h++) {
        assert_non_null(hs[h]->run_jobs);
        assert_non_null(hs[h]->job_start);
        assert_non_null(hs[h]->job_wait);
        hs[h]->run_jobs(hs[h]->ctx, JOBS_N, jobs_mark, &c);
        jobs_expect_once(&c, JOBS_N);
    }
    pthread_mutex_destroy(&c.mu);
    vd_host_mem_free(mh);
    vd_host_file_close(fh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_create_rw, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_large_transfer, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_create_exclusive, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_prefault, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_open_errors, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_lock_busy, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_shared_readonly, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_file_no_fd_leak_cloexec,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test(test_jobs_every_index_once),
        cmocka_unit_test(test_jobs_run_in_parallel),
        cmocka_unit_test(test_jobs_concurrent_callers),
        cmocka_unit_test(test_jobs_background_task),
        cmocka_unit_test_setup_teardown(test_jobs_bundled_hosts, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_mem_basic),
        cmocka_unit_test(test_mem_args),
        cmocka_unit_test(test_mem_clock),
        cmocka_unit_test(test_rec_counts_and_bounds),
        cmocka_unit_test(test_rec_prefix_zero_and_full),
        cmocka_unit_test(test_rec_durable_prefix),
        cmocka_unit_test(test_rec_mask),
        cmocka_unit_test(test_rec_reorder),
        cmocka_unit_test(test_rec_view_matches_crash_image),
        cmocka_unit_test(test_rec_reset_log),
        cmocka_unit_test(test_rec_empty),
        cmocka_unit_test_setup_teardown(test_fault_passthrough, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_fail_nth, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_fail_after_and_window,
                                        fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_short_and_long_read,
                                        fault_setup, fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_short_write, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_drop, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_size_lie, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_time, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_bitflip, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_args, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_over_file, tmp_setup,
                                        tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
