/* mkvhd's build host (mkvhd/buildhost.c, compiled in): writes queued for
 * a writer thread through a 32 MiB ring, reads that wait for them, a
 * deferred flush, and a failed write reported later. Sizes are chosen to
 * meet the ring's edges: a write ending exactly at its end, then more
 * (the next copy went past the ring), and a write of more than half the
 * ring while the ring's position is in the middle (it waited forever for
 * room it could never get). Every byte is read back through the host and
 * from the file after the final flush. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mkvhd.h"

#define MIB ((size_t)1 << 20)

typedef struct wr {
    uint64_t off;
    size_t len;
} wr;

static void fill(uint8_t *p, size_t len, uint64_t off)
{
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = (off + i) * 0x9E3779B97F4A7C15ull;
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static void check_range(const uint8_t *got, size_t len, uint64_t off)
{
    uint8_t *want = malloc(len);
    assert_non_null(want);
    fill(want, len, off);
    if (memcmp(got, want, len) != 0)
        fail_msg("bytes at %llu (+%zu) differ", (unsigned long long)off, len);
    free(want);
}

/* An empty file in a new temporary directory. */
typedef struct tmpimg {
    char dir[32], path[64];
} tmpimg;

/* The build host on a new tmpimg. */
static mkvhd_buildhost *tmp_open(tmpimg *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/vd-buildhost-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof t->path, "%s/img", t->dir);
    int fd = open(t->path, O_CREAT | O_EXCL | O_RDWR, 0600);
    assert_true(fd >= 0);
    close(fd);
    mkvhd_buildhost *b;
    int sys = 0;
    assert_int_equal(mkvhd_buildhost_open(t->path, &b, &sys), 0);
    return b;
}

static void tmp_remove(const tmpimg *t)
{
    unlink(t->path);
    rmdir(t->dir);
}

static void test_ring_edges(void **state)
{
    (void)state;
    tmpimg t;
    mkvhd_buildhost *b = tmp_open(&t);
    vd_host *h = mkvhd_buildhost_host(b);
    assert_int_equal(h->truncate(h->ctx, 200 * MIB), 0);
    /* 4 x 8 MiB end exactly at the ring's end; 4 KiB more; then 16 MiB
     * puts the position mid-ring and 20 MiB must still find room; last a
     * write larger than the ring (straight through). */
    static const wr w[] = {{0, 8 * MIB},          {8 * MIB, 8 * MIB},   {16 * MIB, 8 * MIB},
                           {24 * MIB, 8 * MIB},   {32 * MIB, 4096},     {40 * MIB, 16 * MIB},
                           {60 * MIB, 20 * MIB},  {81 * MIB, 12345},    {90 * MIB, 40 * MIB}};
    size_t n = sizeof w / sizeof w[0];
    uint8_t *buf = malloc(40 * MIB);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++) {
        fill(buf, w[i].len, w[i].off);
        size_t done = 0;
        assert_int_equal(h->write_at(h->ctx, w[i].off, buf, w[i].len, &done), 0);
        assert_int_equal(done, w[i].len);
        /* the caller's buffer is its own again at once */
        memset(buf, 0xA5, w[i].len);
        assert_int_equal(h->flush(h->ctx), 0);
    }
    for (size_t i = 0; i < n; i++) {
        size_t done = 0;
        assert_int_equal(h->read_at(h->ctx, w[i].off, buf, w[i].len, &done), 0);
        assert_int_equal(done, w[i].len);
        check_range(buf, w[i].len, w[i].off);
    }
    uint64_t size = 0;
    assert_int_equal(h->size(h->ctx, &size), 0);
    assert_int_equal(size, 200 * MIB);
    assert_int_equal(mkvhd_buildhost_finish(b), 0);
    mkvhd_buildhost_close(b);
    int fd = open(t.path, O_RDONLY);
    assert_true(fd >= 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pread(fd, buf, w[i].len, (off_t)w[i].off), (ssize_t)w[i].len);
        check_range(buf, w[i].len, w[i].off);
    }
    close(fd);
    free(buf);
    tmp_remove(&t);
}

/* Aligned writes go past the page cache (O_DIRECT), unaligned ones
 * through it, and file-contiguous queued writes are joined into one:
 * overlapping writes of both kinds, queued back to back without a read
 * between them, must still land in order. The result is compared with a
 * model of the file, through the host and from the file. */
static void test_mixed_writes(void **state)
{
    (void)state;
    tmpimg t;
    mkvhd_buildhost *b = tmp_open(&t);
    vd_host *h = mkvhd_buildhost_host(b);
    const size_t size = 4 * MIB;
    assert_int_equal(h->truncate(h->ctx, size), 0);
    uint8_t *model = calloc(1, size), *buf = malloc(MIB), *got = malloc(size);
    assert_non_null(model);
    assert_non_null(buf);
    assert_non_null(got);
    /* aligned, unaligned inside it, aligned over both, contiguous runs
     * (joined), an unaligned one across a run's seam, a run again */
    static const wr w[] = {{0, 8192},       {100, 333},      {0, 4096},      {4096, 4096},
                           {8192, 65536},   {73728, 4096},   {77824, 12288}, {73000, 9000},
                           {65536, 16384},  {MIB, MIB},      {2 * MIB, 4096}, {MIB + 5, 7},
                           {MIB, 4096},     {3 * MIB + 1, 4095}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        memset(buf, (int)(i + 1), w[i].len);
        memcpy(model + w[i].off, buf, w[i].len);
        size_t done = 0;
        assert_int_equal(h->write_at(h->ctx, w[i].off, buf, w[i].len, &done), 0);
        assert_int_equal(done, w[i].len);
    }
    size_t done = 0;
    assert_int_equal(h->read_at(h->ctx, 0, got, size, &done), 0);
    assert_int_equal(done, size);
    if (memcmp(got, model, size) != 0)
        fail_msg("read back through the host differs");
    assert_int_equal(mkvhd_buildhost_finish(b), 0);
    mkvhd_buildhost_close(b);
    int fd = open(t.path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, got, size, 0), (ssize_t)size);
    close(fd);
    if (memcmp(got, model, size) != 0)
        fail_msg("the file differs");
    free(model);
    free(buf);
    free(got);
    tmp_remove(&t);
}

/* A write the writer thread cannot do (beyond what a file offset can
 * hold): the next calls and the final flush report it. */
static void test_failed_write(void **state)
{
    (void)state;
    tmpimg t;
    mkvhd_buildhost *b = tmp_open(&t);
    vd_host *h = mkvhd_buildhost_host(b);
    uint8_t blk[4096] = {1};
    size_t done = 0;
    assert_int_equal(h->write_at(h->ctx, (uint64_t)INT64_MAX - 100, blk, sizeof blk, &done),
                     0); /* queued: the failure comes later */
    uint64_t size;
    assert_int_equal(h->size(h->ctx, &size), -EFBIG);
    assert_int_equal(h->flush(h->ctx), -EFBIG);
    assert_int_equal(h->write_at(h->ctx, 0, blk, sizeof blk, &done), -EFBIG);
    errno = 0;
    assert_int_equal(mkvhd_buildhost_finish(b), -1);
    assert_int_equal(errno, EFBIG);
    mkvhd_buildhost_close(b);
    tmp_remove(&t);
}

static void count_job(void *arg, size_t i)
{
    unsigned *ran = arg;
    __atomic_fetch_add(&ran[i], 1u, __ATOMIC_RELAXED);
}

/* The file host's job pool reaches the library through the build host:
 * without it a commit sealed its blocks on the build thread alone (NULL
 * here before). Every job runs exactly once. */
static void test_run_jobs(void **state)
{
    (void)state;
    tmpimg t;
    mkvhd_buildhost *b = tmp_open(&t);
    vd_host *h = mkvhd_buildhost_host(b);
    assert_non_null(h->run_jobs);
    unsigned ran[1000] = {0};
    for (int round = 0; round < 3; round++)
        h->run_jobs(h->ctx, sizeof ran / sizeof ran[0], count_job, ran);
    for (size_t i = 0; i < sizeof ran / sizeof ran[0]; i++)
        if (ran[i] != 3)
            fail_msg("job %zu ran %u times in 3 runs", i, ran[i]);
    assert_int_equal(mkvhd_buildhost_finish(b), 0);
    mkvhd_buildhost_close(b);
    tmp_remove(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_edges),
        cmocka_unit_test(test_mixed_writes),
        cmocka_unit_test(test_failed_write),
        cmocka_unit_test(test_run_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
