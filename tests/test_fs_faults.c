/* A file-system operation cut short by a host error never reaches a
 * commit half done (DESIGN C4, issue 15). A mixed workload runs on an
 * image behind the fault-injecting host, with the n-th read, write or
 * flush failing once, for every n the workload reaches; the calls after
 * the fault go on as a program would (the remaining operations, unmount,
 * close). Then the image, reopened without faults, must be a volume
 * vd_fsck finds nothing in: the FAT copies equal, no lost clusters, sizes
 * matching chains. Before the fix a read failing in the middle of an
 * operation (the second FAT copy's sector, a directory cluster) left the
 * first half in the cache and the next commit took it: "the FAT copies
 * differ in 1 entries", lost clusters (sh_nbd_faults under nbdkit's error
 * filter). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fat_util.h"
#include "fault.h"
#include "vdisk/check.h"

#define NBLOCKS 10240u /* 40 MiB: FAT32 needs 65,525 clusters */

static const uint8_t key[VD_KEY_BYTES] = {4, 2};

static vd_open_opts small_cache(void)
{
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)1 << 20; /* a cold cache: reads reach the host */
    return o;
}

static void put(vd_fs *fs, const char *path, uint64_t id, size_t len)
{
    vd_file *f;
    FU_OK(vd_file_open(fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f));
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    fu_fill(buf, len, id, 0);
    size_t done;
    FU_OK(vd_file_write(f, 0, buf, len, &done));
    FU_OK(vd_file_close(f));
    free(buf);
}

/* The base volume every trial starts from; its bytes in *base. */
static void make_base(vd_host *mem, uint8_t **base, uint64_t *size)
{
    vd_create_opts c;
    memset(&c, 0, sizeof c);
    c.nblocks = NBLOCKS;
    vd_open_opts o = small_cache();
    vd_image *img;
    FU_OK(vd_image_create(mem, key, &c, &o, &img));
    FU_OK(vd_fs_format(img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(img, NULL, &fs));
    FU_OK(vd_fs_mkdir(fs, "/d"));
    put(fs, "/d/a", 1, 100000);
    put(fs, "/d/b", 2, 50000);
    put(fs, "/big", 3, 300000);
    put(fs, "/spread", 4, (size_t)4 << 20); /* its chain spans 16 FAT blocks */
    for (int i = 0; i < 40; i++) { /* a directory of more than one cluster */
        char p[64];
        snprintf(p, sizeof p, "/d/file with a long name %02d", i);
        put(fs, p, 10 + (uint64_t)i, 700);
    }
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_image_close(img));
    uint8_t *d = vd_host_mem_data(mem, size);
    *base = malloc(*size);
    assert_non_null(*base);
    memcpy(*base, d, *size);
}

static int io_class(vd_err e)
{
    return e == VD_OK || e == VD_ERR_IO || e == VD_ERR_FAILED;
}

#define STEP(expr)                                                                   \
    do {                                                                             \
        vd_err r_ = (expr);                                                          \
        if (!io_class(r_))                                                           \
            fail_msg("%s:%d: %s: %s", __FILE__, __LINE__, #expr, fu_ename(r_));       \
    } while (0)

/* Create and write, rename over a file, unlink, mkdir, truncate: each may
 * fail with the fault; the next ones still run. */
static void workload(vd_fs *fs)
{
    uint8_t *buf = malloc(200000);
    assert_non_null(buf);
    fu_fill(buf, 200000, 7, 0);
    vd_file *f;
    size_t done;
    vd_err e = vd_file_open(fs, "/d/new", VD_O_RDWR | VD_O_CREAT, &f);
    STEP(e);
    if (e == VD_OK) {
        STEP(vd_file_write(f, 0, buf, 200000, &done));
        STEP(vd_file_close(f));
    }
    STEP(vd_fs_rename(fs, "/d/a", "/big", 0));
    STEP(vd_fs_sync(fs));
    STEP(vd_fs_unlink(fs, "/d/b"));
    STEP(vd_fs_unlink(fs, "/spread"));
    STEP(vd_fs_unlink(fs, "/d/file with a long name 07"));
    STEP(vd_fs_mkdir(fs, "/e"));
    e = vd_file_open(fs, "/e/x", VD_O_RDWR | VD_O_CREAT, &f);
    if (e != VD_ERR_NOENT) /* the mkdir may have failed */
        STEP(e);
    if (e == VD_OK) {
        STEP(vd_file_write(f, 0, buf, 9000, &done));
        STEP(vd_file_sync(f));
        STEP(vd_file_close(f));
    }
    e = vd_file_open(fs, "/d/new", VD_O_RDWR, &f);
    if (e != VD_ERR_NOENT) /* its create may have failed */
        STEP(e);
    if (e == VD_OK) {
        STEP(vd_file_truncate(f, 5000));
        STEP(vd_file_close(f));
    }
    free(buf);
}

typedef struct found {
    unsigned n;
    char first[256];
} found;

static void on_problem(void *ctx, const vd_fsck_problem *p)
{
    found *fd = ctx;
    if (p->kind == VD_FSCK_P_DIRTY) /* a note (vhdfsck(8)) */
        return;
    if (!fd->n++)
        snprintf(fd->first, sizeof fd->first, "%s%s%s", p->what, p->path ? ": " : "",
                 p->path ? p->path : "");
}

/* One trial: the nth call of kind op fails once. Returns whether the fault
 * was reached; fails the test if the volume left behind is not clean. */
static int trial(vd_host *mem, const uint8_t *base, uint64_t size, vd_fault_op op,
                 uint64_t nth)
{
    FU_OK(vd_host_mem_set(mem, base, size));
    vd_fault *f = vd_fault_new(mem);
    assert_non_null(f);
    vd_open_opts o = small_cache();
    vd_image *img;
    FU_OK(vd_image_open(vd_fault_host(f), key, &o, &img));
    vd_fs *fs;
    FU_OK(vd_fs_mount(img, NULL, &fs));
    FU_OK(vd_fault_fail(f, op, vd_fault_calls(f, op) + nth, 1, -5));
    workload(fs);
    STEP(vd_fs_unmount(fs));
    STEP(vd_image_close(img));
    int reached = vd_fault_injected(f, op) > 0;
    vd_fault_free(f);

    /* As vhdfsck -n would see it. */
    o.read_only = 1;
    FU_OK(vd_image_open(mem, key, &o, &img));
    found fd = {0};
    vd_fsck_opts fo = {.mode = VD_FSCK_CHECK, .ctx = &fd, .report = on_problem};
    vd_fsck_result res;
    FU_OK(vd_fsck(img, &fo, &res));
    FU_OK(vd_image_close(img));
    static const char *const names[] = {"read", "write", "flush"};
    if (fd.n)
        fail_msg("%s %" PRIu64 " failed: the volume reopens with %u problem(s), first: %s",
                 names[op], nth, fd.n, fd.first);
    if (!res.fs_checked)
        fail_msg("%s %" PRIu64 " failed: the volume could not be checked", names[op], nth);
    return reached;
}

static void run_op(vd_fault_op op, unsigned min_trials)
{
    vd_host *mem;
    FU_OK(vd_host_mem_new(&mem));
    uint8_t *base;
    uint64_t size;
    make_base(mem, &base, &size);
    unsigned n = 0;
    for (uint64_t nth = 1; trial(mem, base, size, op, nth); nth++)
        n++;
    if (n < min_trials) /* the workload must reach the host that often */
        fail_msg("only %u trials", n);
    print_message("[  faults  ] %u trials, one failing call each: every volume clean\n", n);
    free(base);
    vd_host_mem_free(mem);
}

static void test_read_faults(void **state)
{
    (void)state;
    run_op(VD_FAULT_READ, 20);
}

static void test_write_faults(void **state)
{
    (void)state;
    run_op(VD_FAULT_WRITE, 10);
}

static void test_flush_faults(void **state)
{
    (void)state;
    run_op(VD_FAULT_FLUSH, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_faults),
        cmocka_unit_test(test_write_faults),
        cmocka_unit_test(test_flush_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
