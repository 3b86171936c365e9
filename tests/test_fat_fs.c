/* API tests of the FAT32 layer (vd_fs_*, vd_file_*, vd_dir_*) on images
 * over the memory host: every error code, ENOSPC with the volume left
 * consistent, truncate, rename corner cases, hundreds of files in one
 * directory, deep trees, persistence across unmount + image reopen,
 * timestamps from good and wild clocks, the clean/dirty bit and FSInfo,
 * rejection of malformed boot sectors, fragmented files read at random
 * offsets, and a throughput line (file API beside raw block I/O). */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "endian.h"
#include "fat_util.h"
#include "fault.h"

#define NBLOCKS 10240u /* 40 MiB: ~80k clusters of 512 bytes */

typedef struct env {
    fu_disk d;
    vd_fs *fs;
} env;

static void env_up(env *e, uint64_t nblocks)
{
    fu_disk_new(&e->d, nblocks);
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.label = "TESTVOL";
    FU_OK(vd_fs_format(e->d.img, &mo));
    FU_OK(vd_fs_mount(e->d.img, NULL, &e->fs));
}

static void env_remount(env *e)
{
    FU_OK(vd_fs_unmount(e->fs));
    fu_disk_reopen(&e->d);
    FU_OK(vd_fs_mount(e->d.img, NULL, &e->fs));
}

static void env_down(env *e)
{
    if (e->fs)
        FU_OK(vd_fs_unmount(e->fs));
    fu_disk_free(&e->d);
}

static void check_file(vd_fs *fs, const char *path, uint64_t id, size_t len)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, path, VD_O_RDONLY, &f), VD_OK, "%s", path);
    uint8_t *buf = malloc(len + 16), *want = malloc(len + 1);
    assert_non_null(buf);
    assert_non_null(want);
    size_t done;
    FU_OK(vd_file_read(f, 0, buf, len + 16, &done));
    if (done != len)
        fail_msg("%s: read %zu bytes, want %zu", path, done, len);
    fu_fill(want, len, id, 0);
    if (memcmp(buf, want, len) != 0)
        fail_msg("%s: content differs", path);
    vd_stat st;
    FU_OK(vd_file_stat(f, &st));
    assert_int_equal(st.size, len);
    FU_OK(vd_file_close(f));
    free(buf);
    free(want);
}

static uint32_t free_clusters(vd_fs *fs)
{
    vd_statfs s;
    FU_OK(vd_fs_statfs(fs, &s));
    return s.free_clusters;
}

/* ---- tests ----------------------------------------------------------- */

static void test_format_geometry(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    vd_statfs s;
    FU_OK(vd_fs_statfs(e.fs, &s));
    assert_int_equal(s.cluster_bytes, 512); /* mkfs.fat's choice <= 260 MiB */
    assert_int_equal(s.sector_bytes, 512);
    assert_true(s.total_clusters >= 65525);
    assert_int_equal(s.free_clusters, s.total_clusters - 1); /* root */
    assert_string_equal(s.label, "TESTVOL");
    FU_OK(vd_fs_unmount(e.fs));
    e.fs = NULL;
    /* Raw layout: boot signature, backup at 6, FSInfo at 1, 4 KiB aligned
     * data region, media byte, two FATs, label entry in the root. */
    uint8_t *raw = fu_export(&e.d);
    assert_int_equal(raw[510], 0x55);
    assert_int_equal(raw[511], 0xAA);
    assert_memory_equal(raw, raw + 6 * 512, 512);
    assert_int_equal(vd_get_le32(raw + 512), 0x41615252);
    assert_int_equal(vd_get_le32(raw + 512 + 484), 0x61417272);
    assert_int_equal(vd_get_le32(raw + 512 + 488), s.free_clusters);
    assert_int_equal(raw[21], 0xF8);
    assert_int_equal(raw[16], 2);
    uint32_t rsvd = vd_get_le16(raw + 14), fatsz = vd_get_le32(raw + 36);
    uint64_t data = ((uint64_t)rsvd + 2ull * fatsz) * 512;
    assert_int_equal(data % 4096, 0);
    assert_memory_equal(raw + data, "TESTVOL    ", 11);
    assert_int_equal(raw[data + 11], 0x08);
    assert_memory_equal(raw + rsvd * 512, raw + (rsvd + fatsz) * 512, fatsz * 512);
    assert_int_equal(vd_get_le32(raw + rsvd * 512 + 4) & 0x08000000, 0x08000000);
    free(raw);
    fu_disk_free(&e.d);
}

static void test_format_limits(void **state)
{
    (void)state;
    fu_disk d;
    fu_disk_new(&d, 4096); /* 16 MiB: too few clusters for FAT32 */
    FU_EXPECT(vd_fs_format(d.img, NULL), VD_ERR_RANGE, "16 MiB");
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.cluster_bytes = 1000;
    FU_EXPECT(vd_fs_format(d.img, &mo), VD_ERR_INVAL, "cluster 1000");
    fu_disk_free(&d);
    fu_disk_new(&d, NBLOCKS);
    mo.cluster_bytes = 4096; /* 40 MiB / 4 KiB = 10k clusters */
    FU_EXPECT(vd_fs_format(d.img, &mo), VD_ERR_RANGE, "40 MiB, 4 KiB clusters");
    mo.cluster_bytes = 0;
    mo.label = "bad/label";
    FU_EXPECT(vd_fs_format(d.img, &mo), VD_ERR_NAME, "label");
    mo.label = "lower ok";
    FU_OK(vd_fs_format(d.img, &mo));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    vd_statfs s;
    FU_OK(vd_fs_statfs(fs, &s));
    assert_string_equal(s.label, "LOWER OK");
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&d);
}

static void test_basic_persist(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_mkdir(e.fs, "/docs"));
    fu_put_file(e.fs, "/docs/Hello World.txt", 1, 10000);
    fu_put_file(e.fs, "/empty", 2, 0);
    fu_put_file(e.fs, "/README.TXT", 3, 512);
    fu_put_file(e.fs, "/readme2.txt", 4, 513);
    env_remount(&e);
    check_file(e.fs, "/docs/Hello World.txt", 1, 10000);
    check_file(e.fs, "docs/hello world.TXT", 1, 10000); /* case-insensitive */
    check_file(e.fs, "/empty", 2, 0);
    check_file(e.fs, "/readme.txt", 3, 512);
    check_file(e.fs, "/README2.TXT", 4, 513);
    vd_stat st;
    FU_OK(vd_fs_stat(e.fs, "/docs", &st));
    assert_true(st.is_dir);
    FU_OK(vd_fs_stat(e.fs, "/", &st));
    assert_true(st.is_dir);
    /* Listing keeps the case given at creation. */
    vd_dir *dir;
    FU_OK(vd_dir_open(e.fs, "/", &dir));
    vd_dirent de;
    int seen = 0;
    vd_err r;
    while ((r = vd_dir_read(dir, &de)) == VD_OK) {
        if (strcmp(de.name, "docs") == 0 && de.is_dir)
            seen |= 1;
        if (strcmp(de.name, "empty") == 0 && de.size == 0)
            seen |= 2;
        if (strcmp(de.name, "README.TXT") == 0 && de.size == 512)
            seen |= 4;
        if (strcmp(de.name, "readme2.txt") == 0 && de.size == 513)
            seen |= 8;
    }
    FU_EXPECT(r, VD_ERR_NOENT, "end of listing");
    FU_OK(vd_dir_close(dir));
    assert_int_equal(seen, 15);
    env_down(&e);
}

static void test_errors(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    vd_file *f, *g;
    vd_stat st;
    FU_EXPECT(vd_file_open(e.fs, "/nope", VD_O_RDONLY, &f), VD_ERR_NOENT, "open");
    FU_EXPECT(vd_fs_stat(e.fs, "/nope", &st), VD_ERR_NOENT, "stat");
    FU_EXPECT(vd_fs_stat(e.fs, "/nope/x", &st), VD_ERR_NOENT, "stat deep");
    FU_EXPECT(vd_fs_mkdir(e.fs, "/nope/x"), VD_ERR_NOENT, "mkdir deep");
    FU_OK(vd_fs_mkdir(e.fs, "/d"));
    FU_EXPECT(vd_fs_mkdir(e.fs, "/D"), VD_ERR_EXIST, "mkdir exists");
    fu_put_file(e.fs, "/d/f", 1, 100);
    FU_EXPECT(vd_file_open(e.fs, "/d/F", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "excl");
    FU_EXPECT(vd_file_open(e.fs, "/d", VD_O_RDONLY, &f), VD_ERR_ISDIR, "open dir");
    FU_EXPECT(vd_file_open(e.fs, "/", VD_O_RDONLY, &f), VD_ERR_ISDIR, "open root");
    FU_EXPECT(vd_fs_stat(e.fs, "/d/f/x", &st), VD_ERR_NOTDIR, "through file");
    FU_EXPECT(vd_file_open(e.fs, "/d/f/x", VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_NOTDIR,
              "create through file");
    FU_EXPECT(vd_fs_rmdir(e.fs, "/d"), VD_ERR_NOTEMPTY, "rmdir");
    FU_EXPECT(vd_fs_rmdir(e.fs, "/d/f"), VD_ERR_NOTDIR, "rmdir file");
    FU_EXPECT(vd_fs_rmdir(e.fs, "/nope"), VD_ERR_NOENT, "rmdir missing");
    FU_EXPECT(vd_fs_unlink(e.fs, "/d"), VD_ERR_ISDIR, "unlink dir");
    FU_EXPECT(vd_fs_unlink(e.fs, "/nope"), VD_ERR_NOENT, "unlink missing");
    FU_EXPECT(vd_dir_open(e.fs, "/d/f", (vd_dir **)&g), VD_ERR_NOTDIR, "opendir");
    const char *bad[] = {"/a:b",         "/a*",
                         "/q?",          "/x<y",
                         "/x>y",         "/p|q",
                         "/back\\slash", "/quo\"te",
                         "/ctl\x01",     "/..",
                         "/...",         "/   ",
                         "/\xff\xfe",    "/\xc0\xaf" /* overlong '/' */,
                         "/\xed\xa0\x80" /* UTF-8 surrogate */};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        vd_err r = vd_file_open(e.fs, bad[i], VD_O_RDWR | VD_O_CREAT, &f);
        if (r != VD_ERR_NAME && r != VD_ERR_INVAL)
            fail_msg("name #%zu: got %s", i, fu_ename(r));
    }
    char longname[300];
    memset(longname, 'n', sizeof longname);
    longname[0] = '/';
    longname[256] = 0; /* 255 units: fine */
    FU_OK(vd_file_open(e.fs, longname, VD_O_RDWR | VD_O_CREAT, &f));
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_stat(e.fs, longname, &st));
    longname[256] = 'n';
    longname[257] = 0; /* 256 units */
    FU_EXPECT(vd_file_open(e.fs, longname, VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_NAME,
              "256 units");
    /* 4 GiB - 1 limit. */
    FU_OK(vd_file_open(e.fs, "/big", VD_O_RDWR | VD_O_CREAT, &f));
    size_t done;
    FU_EXPECT(vd_file_write(f, 0xFFFFFFFFull, "x", 1, &done), VD_ERR_FBIG, "write");
    FU_EXPECT(vd_file_write(f, 0xFFFFFFF0ull, "0123456789abcdefg", 17, &done),
              VD_ERR_FBIG, "write across");
    FU_EXPECT(vd_file_truncate(f, 0x100000000ull), VD_ERR_FBIG, "truncate");
    /* Access modes. */
    FU_OK(vd_file_open(e.fs, "/d/f", VD_O_RDONLY, &g));
    FU_EXPECT(vd_file_write(g, 0, "x", 1, &done), VD_ERR_INVAL, "write rdonly");
    FU_EXPECT(vd_file_truncate(g, 0), VD_ERR_INVAL, "truncate rdonly");
    FU_EXPECT(vd_fs_unmount(e.fs), VD_ERR_BUSY, "unmount with open files");
    FU_OK(vd_file_close(g));
    FU_OK(vd_file_open(e.fs, "/d/f", VD_O_WRONLY, &g));
    char c;
    FU_EXPECT(vd_file_read(g, 0, &c, 1, &done), VD_ERR_INVAL, "read wronly");
    FU_OK(vd_file_close(g));
    FU_EXPECT(vd_file_open(e.fs, "/d/f", 3, &g), VD_ERR_INVAL, "bad mode");
    FU_OK(vd_file_close(f));
    /* Too many open files. */
    vd_file **many = calloc(2000, sizeof *many);
    assert_non_null(many);
    size_t n = 0;
    vd_err r;
    while ((r = vd_file_open(e.fs, "/d/f", VD_O_RDONLY, &many[n])) == VD_OK && n < 1999)
        n++;
    FU_EXPECT(r, VD_ERR_MFILE, "after %zu opens", n);
    while (n > 0)
        FU_OK(vd_file_close(many[--n]));
    free(many);
    /* Rename errors. */
    FU_OK(vd_fs_mkdir(e.fs, "/d/sub"));
    FU_OK(vd_fs_mkdir(e.fs, "/e"));
    FU_EXPECT(vd_fs_rename(e.fs, "/d", "/d/sub/x", 0), VD_ERR_PERM, "into itself");
    FU_EXPECT(vd_fs_rename(e.fs, "/d", "/d/x", 0), VD_ERR_PERM, "into itself");
    FU_EXPECT(vd_fs_rename(e.fs, "/nope", "/x", 0), VD_ERR_NOENT, "rename missing");
    FU_EXPECT(vd_fs_rename(e.fs, "/e", "/d", 0), VD_ERR_NOTEMPTY, "onto non-empty");
    FU_EXPECT(vd_fs_rename(e.fs, "/e", "/d/f", 0), VD_ERR_NOTDIR, "dir onto file");
    FU_EXPECT(vd_fs_rename(e.fs, "/d/f", "/e", 0), VD_ERR_ISDIR, "file onto dir");
    fu_put_file(e.fs, "/other", 9, 10);
    FU_EXPECT(vd_fs_rename(e.fs, "/other", "/d/f", VD_RENAME_NOREPLACE), VD_ERR_EXIST,
              "noreplace");
    FU_EXPECT(vd_fs_rename(e.fs, "/other", "/x", 7), VD_ERR_INVAL, "flags");
    FU_EXPECT(vd_fs_rmdir(e.fs, "/"), VD_ERR_BUSY, "rmdir root");
    vd_dir *od;
    FU_OK(vd_dir_open(e.fs, "/e", &od));
    FU_EXPECT(vd_fs_rmdir(e.fs, "/e"), VD_ERR_BUSY, "rmdir of a listed dir");
    FU_OK(vd_fs_mkdir(e.fs, "/e2"));
    FU_EXPECT(vd_fs_rename(e.fs, "/e2", "/e", 0), VD_ERR_BUSY, "replace listed dir");
    FU_OK(vd_dir_close(od));
    FU_OK(vd_fs_rename(e.fs, "/e2", "/e", 0));
    /* Read-only mount. */
    FU_OK(vd_fs_unmount(e.fs));
    vd_fs_opts ro;
    memset(&ro, 0, sizeof ro);
    ro.read_only = 1;
    FU_OK(vd_fs_mount(e.d.img, &ro, &e.fs));
    FU_EXPECT(vd_fs_mkdir(e.fs, "/z"), VD_ERR_READONLY, "ro mkdir");
    FU_EXPECT(vd_fs_unlink(e.fs, "/other"), VD_ERR_READONLY, "ro unlink");
    FU_EXPECT(vd_fs_rename(e.fs, "/other", "/z", 0), VD_ERR_READONLY, "ro rename");
    FU_EXPECT(vd_file_open(e.fs, "/other", VD_O_RDWR, &f), VD_ERR_READONLY, "ro open");
    FU_EXPECT(vd_file_open(e.fs, "/new", VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_READONLY,
              "ro create");
    check_file(e.fs, "/other", 9, 10);
    env_down(&e);
}

static void test_truncate(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    uint32_t free0 = free_clusters(e.fs);
    fu_put_file(e.fs, "/t", 5, 100000);
    assert_int_equal(free_clusters(e.fs), free0 - (100000 + 511) / 512);
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "/t", VD_O_RDWR, &f));
    FU_OK(vd_file_truncate(f, 1000));
    assert_int_equal(free_clusters(e.fs), free0 - 2);
    FU_OK(vd_file_truncate(f, 5000)); /* grow: zero fill */
    uint8_t buf[6000], want[1000];
    size_t done;
    FU_OK(vd_file_read(f, 0, buf, sizeof buf, &done));
    assert_int_equal(done, 5000);
    fu_fill(want, 1000, 5, 0);
    assert_memory_equal(buf, want, 1000);
    for (size_t i = 1000; i < 5000; i++)
        if (buf[i])
            fail_msg("byte %zu not zero after grow", i);
    /* Write past EOF: the gap reads as zeros even where old bytes were. */
    FU_OK(vd_file_truncate(f, 10));
    FU_OK(vd_file_write(f, 3000, "tail", 4, &done));
    FU_OK(vd_file_read(f, 0, buf, sizeof buf, &done));
    assert_int_equal(done, 3004);
    for (size_t i = 10; i < 3000; i++)
        if (buf[i])
            fail_msg("gap byte %zu not zero", i);
    assert_memory_equal(buf + 3000, "tail", 4);
    FU_OK(vd_file_truncate(f, 0));
    assert_int_equal(free_clusters(e.fs), free0);
    vd_stat st;
    FU_OK(vd_file_stat(f, &st));
    assert_int_equal(st.size, 0);
    assert_int_equal(st.first_cluster, 0);
    FU_OK(vd_file_close(f));
    /* O_TRUNC and O_APPEND. */
    fu_put_file(e.fs, "/a", 6, 700);
    FU_OK(vd_file_open(e.fs, "/a", VD_O_WRONLY | VD_O_APPEND, &f));
    FU_OK(vd_file_write(f, 0, "END", 3, &done));
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_stat(e.fs, "/a", &st));
    assert_int_equal(st.size, 703);
    FU_OK(vd_file_open(e.fs, "/a", VD_O_WRONLY | VD_O_TRUNC, &f));
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_stat(e.fs, "/a", &st));
    assert_int_equal(st.size, 0);
    env_remount(&e);
    assert_int_equal(free_clusters(e.fs), free0 - 1 + 1 - 1 + 1);
    env_down(&e);
}

static void test_enospc(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    fu_put_file(e.fs, "/keep1", 11, 123457);
    FU_OK(vd_fs_mkdir(e.fs, "/dir"));
    fu_put_file(e.fs, "/dir/keep2", 12, 4096);
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "/filler", VD_O_RDWR | VD_O_CREAT, &f));
    size_t chunk = 1 << 20;
    uint8_t *buf = malloc(chunk);
    assert_non_null(buf);
    memset(buf, 0xAB, chunk);
    uint64_t off = 0;
    size_t done;
    vd_err r;
    while ((r = vd_file_write(f, off, buf, chunk, &done)) == VD_OK)
        off += done;
    FU_EXPECT(r, VD_ERR_NOSPC, "fill");
    assert_int_equal(done, 0);
    vd_stat st;
    FU_OK(vd_file_stat(f, &st));
    assert_int_equal(st.size, off); /* the failed write changed nothing */
    /* Top up byte-wise granularity: the remaining clusters still work. */
    uint32_t left = free_clusters(e.fs);
    FU_OK(vd_file_write(f, off, buf, (size_t)left * 512, &done));
    off += done;
    assert_int_equal(free_clusters(e.fs), 0);
    FU_EXPECT(vd_file_write(f, off, buf, 1, &done), VD_ERR_NOSPC, "full");
    FU_EXPECT(vd_file_truncate(f, off + 1), VD_ERR_NOSPC, "truncate grow full");
    FU_EXPECT(vd_fs_mkdir(e.fs, "/newdir"), VD_ERR_NOSPC, "mkdir full");
    FU_EXPECT(vd_fs_stat(e.fs, "/newdir", &st), VD_ERR_NOENT, "no half mkdir");
    FU_OK(vd_file_close(f));
    /* Fill /dir's only cluster (16 slots: ".", "..", KEEP2 + 13), so the
     * next entry needs a new cluster the volume does not have. */
    char nm[32];
    for (int i = 0; i < 13; i++) {
        snprintf(nm, sizeof nm, "/dir/E%02d", i);
        FU_OK(vd_file_open(e.fs, nm, VD_O_RDWR | VD_O_CREAT, &f));
        FU_OK(vd_file_close(f));
    }
    FU_EXPECT(vd_file_open(e.fs, "/dir/E13", VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_NOSPC,
              "directory cannot grow");
    FU_EXPECT(vd_fs_stat(e.fs, "/dir/E13", &st), VD_ERR_NOENT, "no half create");
    /* A rename that needs the directory to grow fails and keeps the
     * old name. */
    FU_EXPECT(vd_fs_rename(e.fs, "/keep1", "/dir/keep1 with a long name", 0),
              VD_ERR_NOSPC, "rename into a full directory");
    check_file(e.fs, "/keep1", 11, 123457);
    /* Replacing an existing file needs no space. */
    fu_put_file(e.fs, "/dir/E00", 0, 0);
    FU_OK(vd_fs_rename(e.fs, "/dir/keep2", "/dir/E00", 0));
    check_file(e.fs, "/dir/E00", 12, 4096);
    FU_OK(vd_fs_rename(e.fs, "/dir/E00", "/dir/KEEP2", 0));
    /* A new empty file only needs a directory slot. */
    FU_OK(vd_file_open(e.fs, "/emptyok", VD_O_RDWR | VD_O_CREAT, &f));
    FU_OK(vd_file_close(f));
    FU_OK(vd_file_open(e.fs, "/filler", VD_O_RDWR, &f));
    FU_OK(vd_file_stat(f, &st));
    assert_int_equal(st.size, off);
    FU_OK(vd_file_close(f));
    check_file(e.fs, "/keep1", 11, 123457);
    check_file(e.fs, "/dir/keep2", 12, 4096);
    env_remount(&e);
    assert_int_equal(free_clusters(e.fs), 0);
    check_file(e.fs, "/keep1", 11, 123457);
    FU_OK(vd_fs_unlink(e.fs, "/filler"));
    assert_true(free_clusters(e.fs) > 60000);
    fu_put_file(e.fs, "/after", 13, 1 << 20);
    check_file(e.fs, "/after", 13, 1 << 20);
    uint32_t fc = free_clusters(e.fs);
    env_remount(&e);
    assert_int_equal(free_clusters(e.fs), fc);
    FU_EXPECT(vd_file_open(e.fs, "/filler", VD_O_RDONLY, &f), VD_ERR_NOENT, "gone");
    free(buf);
    env_down(&e);
}

static void test_rename(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_mkdir(e.fs, "/a"));
    FU_OK(vd_fs_mkdir(e.fs, "/b"));
    FU_OK(vd_fs_mkdir(e.fs, "/a/inner"));
    fu_put_file(e.fs, "/a/inner/file.bin", 21, 3000);
    fu_put_file(e.fs, "/a/x", 22, 10);
    fu_put_file(e.fs, "/b/y", 23, 20);
    uint32_t fc = free_clusters(e.fs);
    /* File across directories, replacing an existing file. */
    FU_OK(vd_fs_rename(e.fs, "/a/x", "/b/y", 0));
    check_file(e.fs, "/b/y", 22, 10);
    vd_stat st;
    FU_EXPECT(vd_fs_stat(e.fs, "/a/x", &st), VD_ERR_NOENT, "old name gone");
    assert_int_equal(free_clusters(e.fs), fc + 1); /* y's cluster freed */
    /* Case-only rename keeps one entry with the new spelling. */
    FU_OK(vd_fs_rename(e.fs, "/b/y", "/b/Y", 0));
    vd_dir *d;
    vd_dirent de;
    FU_OK(vd_dir_open(e.fs, "/b", &d));
    FU_OK(vd_dir_read(d, &de));
    assert_string_equal(de.name, "Y");
    FU_EXPECT(vd_dir_read(d, &de), VD_ERR_NOENT, "one entry");
    FU_OK(vd_dir_close(d));
    /* Rename to itself is a no-op. */
    FU_OK(vd_fs_rename(e.fs, "/b/Y", "/b/Y", 0));
    check_file(e.fs, "/b/y", 22, 10);
    /* A directory across directories: its ".." follows. */
    FU_OK(vd_fs_rename(e.fs, "/a/inner", "/b/moved dir with long name", 0));
    check_file(e.fs, "/b/moved dir with long name/file.bin", 21, 3000);
    FU_OK(vd_fs_mkdir(e.fs, "/b/moved dir with long name/deeper"));
    FU_OK(vd_fs_rename(e.fs, "/b/moved dir with long name", "/top", 0));
    /* Moving /b into /top/deeper is fine; moving /top into its child not. */
    FU_OK(vd_fs_rename(e.fs, "/b", "/top/deeper/b", 0));
    FU_EXPECT(vd_fs_rename(e.fs, "/top", "/top/deeper/b/t", 0), VD_ERR_PERM, "cycle");
    check_file(e.fs, "/top/deeper/b/Y", 22, 10);
    /* Replacing an empty directory. */
    FU_OK(vd_fs_mkdir(e.fs, "/emptydir"));
    FU_OK(vd_fs_rename(e.fs, "/a", "/emptydir", 0));
    FU_EXPECT(vd_fs_stat(e.fs, "/a", &st), VD_ERR_NOENT, "a moved");
    FU_OK(vd_fs_stat(e.fs, "/emptydir", &st));
    assert_true(st.is_dir);
    /* An open file follows its rename. */
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "/top/file.bin", VD_O_RDWR, &f));
    FU_OK(vd_fs_rename(e.fs, "/top/file.bin", "/renamed-while-open.bin", 0));
    size_t done;
    FU_OK(vd_file_write(f, 3000, "more", 4, &done));
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_stat(e.fs, "/renamed-while-open.bin", &st));
    assert_int_equal(st.size, 3004);
    env_remount(&e);
    FU_OK(vd_fs_stat(e.fs, "/renamed-while-open.bin", &st));
    assert_int_equal(st.size, 3004);
    check_file(e.fs, "/top/deeper/b/y", 22, 10);
    /* Rename a directory into a deeper directory and back: ".." works
     * (rmdir of the emptied tree succeeds). */
    FU_OK(vd_fs_unlink(e.fs, "/top/deeper/b/Y"));
    FU_OK(vd_fs_rmdir(e.fs, "/top/deeper/b"));
    FU_OK(vd_fs_rmdir(e.fs, "/top/deeper"));
    FU_OK(vd_fs_rmdir(e.fs, "/top"));
    env_down(&e);
}

static void test_many_files(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_mkdir(e.fs, "/many"));
    char path[128];
    enum { N = 400 };
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "/many/a rather long file name number %03d.data", i);
        fu_put_file(e.fs, path, 1000 + (uint64_t)i, (size_t)(i * 7));
    }
    /* Delete every third and recreate with shorter names (slot reuse). */
    for (int i = 0; i < N; i += 3) {
        snprintf(path, sizeof path, "/many/a rather long file name number %03d.data", i);
        FU_OK(vd_fs_unlink(e.fs, path));
        snprintf(path, sizeof path, "/many/S%03d", i);
        fu_put_file(e.fs, path, 5000 + (uint64_t)i, 1);
    }
    env_remount(&e);
    int *seen = calloc(N, sizeof *seen);
    assert_non_null(seen);
    vd_dir *d;
    vd_dirent de;
    FU_OK(vd_dir_open(e.fs, "/many", &d));
    int count = 0;
    vd_err r;
    while ((r = vd_dir_read(d, &de)) == VD_OK) {
        int i;
        if (sscanf(de.name, "a rather long file name number %d.data", &i) == 1) {
            assert_true(i % 3 != 0);
            assert_int_equal(de.size, i * 7);
        } else {
            assert_int_equal(sscanf(de.name, "S%d", &i), 1);
            assert_true(i % 3 == 0);
        }
        assert_true(i >= 0 && i < N);
        seen[i]++;
        count++;
    }
    FU_EXPECT(r, VD_ERR_NOENT, "end");
    FU_OK(vd_dir_close(d));
    assert_int_equal(count, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    for (int i = 1; i < N; i += 37) {
        snprintf(path, sizeof path, "/MANY/A RATHER LONG FILE NAME NUMBER %03d.DATA", i);
        if (i % 3)
            check_file(e.fs, path, 1000 + (uint64_t)i, (size_t)(i * 7));
    }
    env_down(&e);
}

static void test_deep(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    char path[512] = "";
    for (int lvl = 0; lvl < 12; lvl++) {
        size_t l = strlen(path);
        snprintf(path + l, sizeof path - l, "/level %d ünïcødé", lvl);
        FU_OK(vd_fs_mkdir(e.fs, path));
    }
    char file[600];
    snprintf(file, sizeof file, "%s/bottom.txt", path);
    fu_put_file(e.fs, file, 77, 5555);
    env_remount(&e);
    check_file(e.fs, file, 77, 5555);
    FU_EXPECT(vd_fs_rmdir(e.fs, path), VD_ERR_NOTEMPTY, "bottom dir");
    FU_OK(vd_fs_unlink(e.fs, file));
    for (int lvl = 11; lvl >= 0; lvl--) {
        FU_OK(vd_fs_rmdir(e.fs, path));
        char *slash = strrchr(path, '/');
        *slash = 0;
    }
    vd_dir *d;
    vd_dirent de;
    FU_OK(vd_dir_open(e.fs, "/", &d));
    FU_EXPECT(vd_dir_read(d, &de), VD_ERR_NOENT, "root empty again");
    FU_OK(vd_dir_close(d));
    vd_statfs s;
    FU_OK(vd_fs_statfs(e.fs, &s));
    assert_int_equal(s.free_clusters, s.total_clusters - 1);
    env_down(&e);
}

/* ---- clocks ---- */

static int clock_fixed(void *ctx, int64_t *ns)
{
    *ns = *(int64_t *)ctx;
    return 0;
}

static int clock_fail(void *ctx, int64_t *ns)
{
    (void)ctx;
    (void)ns;
    return -5;
}

static void test_timestamps(void **state)
{
    (void)state;
    fu_disk d;
    fu_disk_new(&d, NBLOCKS);
    FU_OK(vd_fs_format(d.img, NULL));
    int64_t t = 1600000001LL * 1000000000LL + 250000000; /* 2020-09-13 */
    vd_fs_opts o;
    memset(&o, 0, sizeof o);
    o.now = clock_fixed;
    o.now_ctx = &t;
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, &o, &fs));
    fu_put_file(fs, "/f", 1, 1);
    vd_stat st;
    FU_OK(vd_fs_stat(fs, "/f", &st));
    assert_int_equal(st.mtime_ns, 1600000000LL * 1000000000LL); /* 2 s units */
    assert_int_equal(st.ctime_ns, 1600000001LL * 1000000000LL + 250000000);
    assert_int_equal(st.atime_ns, 1599955200LL * 1000000000LL); /* the day */
    FU_OK(
        vd_fs_utimes(fs, "/f", 1000000000LL * 1000000000LL, 1234567890LL * 1000000000LL));
    FU_OK(vd_fs_stat(fs, "/f", &st));
    assert_int_equal(st.mtime_ns, 1234567890LL * 1000000000LL);
    /* Wild clocks are clamped to the FAT range; no crash. */
    int64_t wild[] = {INT64_MIN, -1, 0, INT64_MAX, 5000000000LL * 1000000000LL};
    int64_t lo = 315532800LL * 1000000000LL, hi = 4354819198LL * 1000000000LL;
    for (size_t i = 0; i < sizeof wild / sizeof *wild; i++) {
        t = wild[i];
        char name[32];
        snprintf(name, sizeof name, "/w%zu", i);
        fu_put_file(fs, name, 2, 3);
        FU_OK(vd_fs_stat(fs, name, &st));
        assert_int_equal(st.mtime_ns, wild[i] > 0 && wild[i] > hi ? hi : lo);
    }
    FU_OK(vd_fs_unmount(fs));
    o.now = clock_fail;
    FU_OK(vd_fs_mount(d.img, &o, &fs));
    fu_put_file(fs, "/nf", 1, 1);
    FU_OK(vd_fs_stat(fs, "/nf", &st));
    assert_int_equal(st.mtime_ns, lo);
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    fu_put_file(fs, "/null", 1, 1);
    FU_OK(vd_fs_stat(fs, "/null", &st));
    assert_int_equal(st.mtime_ns, lo);
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&d);
}

static uint32_t raw_fat1(fu_disk *d)
{
    uint8_t *raw = fu_export(d);
    uint32_t rsvd = vd_get_le16(raw + 14);
    uint32_t v = vd_get_le32(raw + rsvd * 512 + 4);
    free(raw);
    return v;
}

static void test_dirty_and_fsinfo(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_sync(e.fs));
    assert_int_equal(raw_fat1(&e.d) & 0x08000000, 0x08000000); /* untouched */
    fu_put_file(e.fs, "/x", 1, 5000);
    FU_OK(vd_fs_sync(e.fs));
    assert_int_equal(raw_fat1(&e.d) & 0x08000000, 0); /* dirty while mounted */
    uint32_t fc = free_clusters(e.fs);
    FU_OK(vd_fs_unmount(e.fs));
    e.fs = NULL;
    assert_int_equal(raw_fat1(&e.d) & 0x0C000000, 0x0C000000);
    uint8_t *raw = fu_export(&e.d);
    assert_int_equal(vd_get_le32(raw + 512 + 488), fc);
    free(raw);
    env_down(&e);
}

/* vd_statfs.unclean tells a mount whether the session before it ended
 * without vd_fs_unmount (vhdmount's "not unmounted cleanly" note), and a
 * sync with nothing changed since the last one commits nothing (an idle
 * vhdmount's periodic commits: no write, no epoch, no anchor advance). */
static void test_unclean_and_idle_sync(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    vd_statfs sf;
    FU_OK(vd_fs_statfs(e.fs, &sf));
    assert_int_equal(sf.unclean, 0);
    fu_put_file(e.fs, "/x", 1, 5000);
    FU_OK(vd_fs_sync(e.fs));
    vd_image_info a, b;
    FU_OK(vd_image_info_get(e.d.img, &a));
    FU_OK(vd_fs_sync(e.fs));
    FU_OK(vd_fs_sync(e.fs));
    FU_OK(vd_image_info_get(e.d.img, &b));
    assert_int_equal(b.epoch, a.epoch);
    assert_int_equal(b.bytes_written, a.bytes_written);
    /* The committed volume of a session that never unmounted. */
    vd_fs *other;
    vd_fs_opts ro = {.read_only = 1};
    FU_OK(vd_fs_mount(e.d.img, &ro, &other));
    FU_OK(vd_fs_statfs(other, &sf));
    assert_int_equal(sf.unclean, 1);
    FU_OK(vd_fs_unmount(other));
    env_remount(&e);
    FU_OK(vd_fs_statfs(e.fs, &sf));
    assert_int_equal(sf.unclean, 0);
    env_down(&e);
}

static void patch_fsinfo_free(fu_disk *d, uint32_t v)
{
    uint8_t b[4096];
    FU_OK(vd_image_read(d->img, 0, 1, b));
    vd_put_le32(b + 512 + 488, v);
    FU_OK(vd_image_write(d->img, 0, 1, b));
}

/* FSInfo's free count is a hint taken after a clean unmount: a wrong one
 * must never give a wrong answer (NOSPC with room left, CORRUPT or an
 * overcommitted FAT when full). */
static void test_fsinfo_hint(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    fu_put_file(e.fs, "/a", 1, 100000);
    uint32_t exact = free_clusters(e.fs);
    FU_OK(vd_fs_unmount(e.fs));
    patch_fsinfo_free(&e.d, 5); /* too low */
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    assert_int_equal(free_clusters(e.fs), 5); /* the hint, as Linux shows */
    fu_put_file(e.fs, "/b", 2, 1 << 20);         /* recounts: room enough */
    assert_int_equal(free_clusters(e.fs), exact - 2048);
    /* Fill the volume, then claim lots of room. */
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "/fill", VD_O_RDWR | VD_O_CREAT, &f));
    uint32_t left = free_clusters(e.fs);
    FU_OK(vd_file_truncate(f, (uint64_t)left * 512));
    FU_OK(vd_file_close(f));
    assert_int_equal(free_clusters(e.fs), 0);
    FU_OK(vd_fs_unmount(e.fs));
    patch_fsinfo_free(&e.d, 50000); /* too high */
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    FU_OK(vd_file_open(e.fs, "/c", VD_O_RDWR | VD_O_CREAT, &f));
    size_t done;
    uint8_t *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    FU_EXPECT(vd_file_write(f, 0, buf, 1 << 20, &done), VD_ERR_NOSPC, "hint too high");
    FU_OK(vd_file_close(f));
    assert_int_equal(free_clusters(e.fs), 0);
    check_file(e.fs, "/a", 1, 100000);
    check_file(e.fs, "/b", 2, 1 << 20);
    FU_OK(vd_fs_unlink(e.fs, "/fill"));
    uint32_t after = free_clusters(e.fs);
    FU_OK(vd_fs_unmount(e.fs));
    /* Unknown hint, or an unclean volume: counted at mount. */
    patch_fsinfo_free(&e.d, 0xFFFFFFFF);
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    assert_int_equal(free_clusters(e.fs), after);
    FU_OK(vd_fs_unmount(e.fs));
    patch_fsinfo_free(&e.d, 7);
    uint8_t b[4096];
    uint32_t rsvd;
    FU_OK(vd_image_read(e.d.img, 0, 1, b));
    rsvd = vd_get_le16(b + 14);
    FU_OK(vd_image_read(e.d.img, rsvd / 8, 1, b));
    vd_put_le32(b + (rsvd % 8) * 512 + 4, 0x07FFFFFF); /* clean bit off */
    FU_OK(vd_image_write(e.d.img, rsvd / 8, 1, b));
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    assert_int_equal(free_clusters(e.fs), after);
    free(buf);
    env_down(&e);
}

static void test_bad_bpb(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_unmount(e.fs));
    e.fs = NULL;
    uint8_t good[4096], b[4096];
    FU_OK(vd_image_read(e.d.img, 0, 1, good));
    struct {
        size_t off;
        int width;
        uint32_t val;
    } cases[] = {
        {0, 1, 0x00},        {510, 1, 0x00},      {11, 2, 1000}, {11, 2, 256},
        {11, 2, 8192},       {13, 1, 3},          {13, 1, 0},    {14, 2, 0},
        {16, 1, 0},          {16, 1, 3},          {17, 2, 512},  {22, 2, 100},
        {32, 4, 0},          {32, 4, 0xFFFFFFFF}, {36, 4, 0},    {36, 4, 10},
        {36, 4, 0x7FFFFFFF}, {44, 4, 0},          {44, 4, 1},    {44, 4, 0x0FFFFFF0},
        {42, 2, 1},          {40, 2, 0x0083},     {21, 1, 0x12}, {14, 2, 0xFFFF},
    };
    vd_fs *fs;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(b, good, sizeof b);
        if (cases[i].width == 1)
            b[cases[i].off] = (uint8_t)cases[i].val;
        else if (cases[i].width == 2)
            vd_put_le16(b + cases[i].off, (uint16_t)cases[i].val);
        else
            vd_put_le32(b + cases[i].off, cases[i].val);
        FU_OK(vd_image_write(e.d.img, 0, 1, b));
        vd_err r = vd_fs_mount(e.d.img, NULL, &fs);
        if (r != VD_ERR_CORRUPT && r != VD_ERR_UNSUPPORTED)
            fail_msg("case %zu (offset %zu = 0x%x): mount gave %s", i, cases[i].off,
                     cases[i].val, fu_ename(r));
    }
    /* Random garbage: never a crash, never a mount. */
    uint64_t s = 12345;
    for (int round = 0; round < 200; round++) {
        memcpy(b, good, sizeof b);
        for (int k = 0; k < 8; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t pos = (size_t)(s >> 33) % 90;
            b[pos] = (uint8_t)(s >> 20);
        }
        FU_OK(vd_image_write(e.d.img, 0, 1, b));
        if (vd_fs_mount(e.d.img, NULL, &fs) == VD_OK)
            FU_OK(vd_fs_unmount(fs)); /* harmless changes (OEM name...) */
    }
    FU_OK(vd_image_write(e.d.img, 0, 1, good));
    FU_OK(vd_fs_mount(e.d.img, NULL, &fs));
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&e.d);
}

static void test_fragmented_random_access(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    /* Interleaved appends make two fragmented chains. */
    vd_file *a, *b;
    FU_OK(vd_file_open(e.fs, "/frag-a", VD_O_RDWR | VD_O_CREAT, &a));
    FU_OK(vd_file_open(e.fs, "/frag-b", VD_O_RDWR | VD_O_CREAT, &b));
    enum { PIECE = 1536, PIECES = 400 };
    uint8_t buf[PIECE], got[PIECE];
    size_t done;
    for (int i = 0; i < PIECES; i++) {
        fu_fill(buf, PIECE, 31, (uint64_t)i * PIECE);
        FU_OK(vd_file_write(a, (uint64_t)i * PIECE, buf, PIECE, &done));
        fu_fill(buf, PIECE, 32, (uint64_t)i * PIECE);
        FU_OK(vd_file_write(b, (uint64_t)i * PIECE, buf, PIECE, &done));
    }
    FU_OK(vd_file_close(b));
    FU_OK(vd_file_close(a));
    env_remount(&e);
    FU_OK(vd_file_open(e.fs, "/frag-a", VD_O_RDONLY, &a));
    uint64_t s = 99;
    for (int i = 0; i < 2000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (s >> 20) % ((uint64_t)PIECES * PIECE);
        size_t len = (size_t)((s >> 8) % PIECE) + 1;
        FU_OK(vd_file_read(a, off, got, len, &done));
        size_t expect = off + len > (uint64_t)PIECES * PIECE
                            ? (size_t)((uint64_t)PIECES * PIECE - off)
                            : len;
        assert_int_equal(done, expect);
        fu_fill(buf, expect, 31, off);
        if (memcmp(buf, got, expect) != 0)
            fail_msg("random read at %" PRIu64 "+%zu differs", off, expect);
    }
    FU_OK(vd_file_close(a));
    env_down(&e);
}

/* Walk everything reachable, bounded; errors are fine, crashes are not. */
static void walk(vd_fs *fs, const char *dir, int depth, size_t *visited)
{
    vd_dir *d;
    if (depth > 12 || *visited > 3000 || vd_dir_open(fs, dir, &d) != VD_OK)
        return;
    vd_dirent de;
    char names[32][300];
    int dirs[32], n = 0;
    while (n < 32 && vd_dir_read(d, &de) == VD_OK) {
        (*visited)++;
        snprintf(names[n], sizeof names[n], "%.200s/%.90s", dir, de.name);
        dirs[n++] = de.is_dir;
    }
    FU_OK(vd_dir_close(d));
    for (int i = 0; i < n; i++) {
        vd_stat st;
        (void)vd_fs_stat(fs, names[i], &st);
        if (dirs[i]) {
            walk(fs, names[i], depth + 1, visited);
            (void)vd_fs_rmdir(fs, names[i]);
            continue;
        }
        vd_file *f;
        if (vd_file_open(fs, names[i], VD_O_RDWR, &f) != VD_OK)
            continue;
        uint8_t buf[8192];
        size_t done;
        (void)vd_file_read(f, 0, buf, sizeof buf, &done);
        (void)vd_file_read(f, 100000, buf, sizeof buf, &done);
        (void)vd_file_write(f, 3000, buf, 5000, &done);
        (void)vd_file_truncate(f, 700);
        FU_OK(vd_file_close(f));
        (void)vd_fs_rename(fs, names[i], "/renamed by walk", 0);
        (void)vd_fs_unlink(fs, "/renamed by walk");
    }
    char p[400];
    snprintf(p, sizeof p, "%.200s/new file from walk", dir);
    vd_file *f;
    if (vd_file_open(fs, p, VD_O_RDWR | VD_O_CREAT, &f) == VD_OK) {
        size_t done;
        (void)vd_file_write(f, 0, "data", 4, &done);
        FU_OK(vd_file_close(f));
    }
}

/* vd_stat.entry_id: one value per file whatever the spelling (case, the
 * 8.3 alias), distinct between files, the same through an open handle,
 * moved by a rename, none once an open file is unlinked (vhdmount keys
 * its inode numbers on it). */
static void test_entry_id(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    vd_stat a, b, c;
    FU_OK(vd_fs_stat(e.fs, "/", &a));
    assert_int_equal(a.entry_id, 0);
    FU_OK(vd_fs_mkdir(e.fs, "/Dir"));
    fu_put_file(e.fs, "/Dir/README.TXT", 1, 10);
    fu_put_file(e.fs, "/Dir/A long file name.txt", 2, 20);
    fu_put_file(e.fs, "/Dir/empty", 3, 0);
    FU_OK(vd_fs_stat(e.fs, "/Dir/README.TXT", &a));
    FU_OK(vd_fs_stat(e.fs, "/dir/readme.txt", &b));
    assert_int_not_equal(a.entry_id, 0);
    assert_int_equal(a.entry_id, b.entry_id);
    FU_OK(vd_fs_lstat(e.fs, "/Dir/A long file name.txt", &a));
    FU_OK(vd_fs_lstat(e.fs, "/DIR/ALONGF~1.TXT", &b));
    assert_int_equal(a.entry_id, b.entry_id);
    FU_OK(vd_fs_stat(e.fs, "/Dir/README.TXT", &c));
    assert_int_not_equal(a.entry_id, c.entry_id);
    /* An empty file has no first cluster, yet an identity. */
    FU_OK(vd_fs_stat(e.fs, "/Dir/empty", &a));
    assert_int_equal(a.first_cluster, 0);
    assert_int_not_equal(a.entry_id, c.entry_id);
    assert_int_not_equal(a.entry_id, b.entry_id);
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "/dir/EMPTY", VD_O_RDWR, &f));
    size_t done;
    FU_OK(vd_file_write(f, 0, "grown", 5, &done));
    FU_OK(vd_file_stat(f, &b));
    assert_int_equal(b.entry_id, a.entry_id); /* a first cluster came; the id stays */
    /* A rename moves the entry; the open handle follows it. */
    FU_OK(vd_fs_rename(e.fs, "/Dir/empty", "/moved", 0));
    FU_OK(vd_fs_stat(e.fs, "/MOVED", &a));
    FU_OK(vd_file_stat(f, &b));
    assert_int_equal(a.entry_id, b.entry_id);
    assert_int_not_equal(a.entry_id, c.entry_id);
    FU_OK(vd_fs_unlink(e.fs, "/moved"));
    FU_OK(vd_file_stat(f, &b));
    assert_true(b.entry_id == VD_ENTRY_NONE);
    FU_OK(vd_file_close(f));
    env_down(&e);
}

/* POSIX: unlinking an open file, or renaming over one, removes the name at
 * once; the open handles keep reading and writing the old contents, and
 * the clusters come back only when the last handle closes (what a crash
 * meanwhile leaves: test_fat_orphan). */
static void test_unlink_and_replace_while_open(void **state)
{
    (void)state;
    env e;
    env_up(&e, 12000);
    vd_statfs st0, st1;
    FU_OK(vd_fs_statfs(e.fs, &st0));
    const size_t len = 300000;
    fu_put_file(e.fs, "/victim.bin", 7, len);
    uint8_t *want = malloc(len), *got = malloc(len);
    assert_non_null(want);
    assert_non_null(got);
    fu_fill(want, len, 7, 0);
    vd_file *f, *g;
    FU_OK(vd_file_open(e.fs, "/victim.bin", VD_O_RDWR, &f));
    FU_OK(vd_file_open(e.fs, "/VICTIM.BIN", VD_O_RDONLY, &g)); /* same node */
    FU_OK(vd_fs_unlink(e.fs, "/victim.bin"));
    vd_stat s;
    FU_EXPECT(vd_fs_stat(e.fs, "/victim.bin", &s), VD_ERR_NOENT, "name gone");
    FU_EXPECT(vd_fs_unlink(e.fs, "/victim.bin"), VD_ERR_NOENT, "second unlink");
    /* A new file of that name is another file. */
    fu_put_file(e.fs, "/victim.bin", 8, 1000);
    size_t done;
    FU_OK(vd_file_read(g, 0, got, len, &done));
    assert_int_equal(done, len);
    assert_memory_equal(got, want, len);
    /* The orphan still grows and shrinks. */
    FU_OK(vd_file_write(f, len, "tail", 4, &done));
    FU_OK(vd_file_stat(g, &s));
    assert_int_equal(s.size, len + 4);
    FU_OK(vd_file_truncate(f, 100));
    FU_OK(vd_file_read(g, 0, got, len, &done));
    assert_int_equal(done, 100);
    assert_memory_equal(got, want, 100);
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_statfs(e.fs, &st1));
    assert_true(st1.free_clusters < st0.free_clusters); /* g still holds it */
    uint32_t held = st1.free_clusters;
    FU_OK(vd_file_close(g));
    FU_OK(vd_fs_statfs(e.fs, &st1));
    assert_true(st1.free_clusters > held); /* freed at the last close */

    /* rename over an open file */
    fu_put_file(e.fs, "/a", 11, 5000);
    fu_put_file(e.fs, "/b", 12, 7000);
    FU_OK(vd_file_open(e.fs, "/b", VD_O_RDONLY, &g));
    FU_OK(vd_fs_rename(e.fs, "/a", "/b", 0));
    FU_OK(vd_file_read(g, 0, got, 7000, &done));
    assert_int_equal(done, 7000);
    fu_fill(want, 7000, 12, 0);
    assert_memory_equal(got, want, 7000);
    FU_OK(vd_file_open(e.fs, "/b", VD_O_RDONLY, &f));
    FU_OK(vd_file_read(f, 0, got, 7000, &done));
    assert_int_equal(done, 5000);
    fu_fill(want, 5000, 11, 0);
    assert_memory_equal(got, want, 5000);
    FU_OK(vd_file_close(f));
    FU_OK(vd_file_close(g));
    FU_OK(vd_fs_unlink(e.fs, "/b"));
    FU_OK(vd_fs_unlink(e.fs, "/victim.bin"));
    FU_OK(vd_fs_statfs(e.fs, &st1));
    assert_int_equal(st1.free_clusters, st0.free_clusters); /* nothing leaked */

    free(want);
    free(got);
    env_down(&e);
}

/* Random damage to the FAT, directories and data of a populated volume:
 * mounting, listing, reading, writing, renaming and deleting may fail
 * (VD_ERR_CORRUPT...) but must never crash or loop (run under ASan). */
static void test_corrupt_structures(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    FU_OK(vd_fs_mkdir(e.fs, "/d1"));
    FU_OK(vd_fs_mkdir(e.fs, "/d1/d2"));
    char p[64];
    for (int i = 0; i < 40; i++) {
        snprintf(p, sizeof p, "/d1/%s file %d", i % 2 ? "long" : "F", i);
        fu_put_file(e.fs, p, (uint64_t)i, (size_t)i * 300);
    }
    fu_put_file(e.fs, "/d1/d2/big", 99, 50000);
    FU_OK(vd_fs_unmount(e.fs));
    e.fs = NULL;
    uint8_t *good = fu_export(&e.d), *bad = malloc(NBLOCKS * 4096ull);
    assert_non_null(bad);
    uint32_t rsvd = vd_get_le16(good + 14), fatsz = vd_get_le32(good + 36);
    uint64_t fat = (uint64_t)rsvd * 512, data = fat + 2ull * fatsz * 512;
    uint64_t s = 4242;
    int mounted = 0;
    for (int round = 0; round < 60; round++) {
        memcpy(bad, good, NBLOCKS * 4096ull);
        for (int k = 0; k < 24; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = s >> 16;
            uint64_t pos;
            switch (k % 3) {
            case 0: /* FAT entries of the used clusters, both copies */
                pos = fat + (r % 400) * 4;
                vd_put_le32(bad + pos, (uint32_t)(s >> 8) % 500);
                vd_put_le32(bad + pos + fatsz * 512, vd_get_le32(bad + pos));
                break;
            case 1: /* directory and data clusters */
                pos = data + r % (400 * 512);
                bad[pos] = (uint8_t)(s >> 40);
                break;
            default: /* a directory entry's first cluster or size */
                pos = data + (r % 400) * 512 + ((r >> 20) % 16) * 32;
                vd_put_le32(bad + pos + 28, (uint32_t)(s >> 3));
                vd_put_le16(bad + pos + 26, (uint16_t)(s >> 30));
                break;
            }
        }
        fu_import(&e.d, bad, NBLOCKS * 4096ull);
        vd_fs *fs;
        if (vd_fs_mount(e.d.img, NULL, &fs) != VD_OK)
            continue;
        mounted++;
        size_t visited = 0;
        walk(fs, "", 0, &visited);
        (void)vd_fs_unmount(fs);
    }
    print_message("[  corrupt ] %d of 60 damaged volumes mounted and walked\n", mounted);
    assert_true(mounted > 0);
    free(good);
    free(bad);
    fu_disk_free(&e.d);
}

/* A hostile host under the file system: host reads fail (one call, or
 * every call from some point on) while a volume is mounted, listed, read
 * and written. Every call must fail cleanly with VD_ERR_IO (or the image's
 * sticky VD_ERR_FAILED), and every read that succeeds must return exactly
 * the bytes written: never other bytes, never a crash (run under ASan). */
static void test_hostile_host(void **state)
{
    (void)state;
    static const uint8_t key[VD_KEY_BYTES] = {7, 7, 7};
    vd_host *mem;
    FU_OK(vd_host_mem_new(&mem));
    vd_create_opts c;
    memset(&c, 0, sizeof c);
    c.nblocks = NBLOCKS;
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)1 << 20; /* small: reads reach the host */
    vd_image *img;
    FU_OK(vd_image_create(mem, key, &c, &o, &img));
    FU_OK(vd_fs_format(img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(img, NULL, &fs));
    FU_OK(vd_fs_mkdir(fs, "/dir"));
    char p[64];
    for (int i = 0; i < 8; i++) {
        snprintf(p, sizeof p, "/dir/file %d", i);
        fu_put_file(fs, p, 500 + (uint64_t)i, (size_t)(i + 1) * 300000);
    }
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_image_close(img));
    unsigned io_errors = 0, good_reads = 0;
    for (int trial = 0; trial < 40; trial++) {
        vd_fault *f = vd_fault_new(mem);
        assert_non_null(f);
        FU_OK(vd_image_open(vd_fault_host(f), key, &o, &img));
        uint64_t first = vd_fault_calls(f, VD_FAULT_READ) + 1 + (uint64_t)trial * 13;
        FU_OK(
            vd_fault_fail(f, VD_FAULT_READ, first, trial % 2 ? 1 : VD_FAULT_FOREVER, -5));
        vd_err r = vd_fs_mount(img, NULL, &fs);
        if (r != VD_OK) {
            assert_true(r == VD_ERR_IO || r == VD_ERR_FAILED);
            io_errors++;
        } else {
            for (int i = 0; i < 8; i++) {
                snprintf(p, sizeof p, "/dir/file %d", i);
                size_t len = (size_t)(i + 1) * 300000, done;
                vd_file *fh;
                r = vd_file_open(fs, p, VD_O_RDWR, &fh);
                if (r != VD_OK) {
                    assert_true(r == VD_ERR_IO || r == VD_ERR_FAILED);
                    io_errors++;
                    continue;
                }
                uint8_t *buf = malloc(len), *want = malloc(len);
                assert_non_null(buf);
                assert_non_null(want);
                r = vd_file_read(fh, 0, buf, len, &done);
                if (r == VD_OK) {
                    assert_int_equal(done, len);
                    fu_fill(want, len, 500 + (uint64_t)i, 0);
                    if (memcmp(buf, want, len) != 0)
                        fail_msg("trial %d: %s read back wrong bytes", trial, p);
                    good_reads++;
                } else {
                    assert_true(r == VD_ERR_IO || r == VD_ERR_FAILED);
                    io_errors++;
                }
                free(buf);
                free(want);
                r = vd_file_write(fh, len, "x", 1, &done);
                assert_true(r == VD_OK || r == VD_ERR_IO || r == VD_ERR_FAILED);
                /* A write whose read failed after it had allocated fails
                 * the image (C4: its half never commits); the close that
                 * would write the new size then says so. */
                r = vd_file_close(fh);
                assert_true(r == VD_OK || r == VD_ERR_IO || r == VD_ERR_FAILED);
            }
            r = vd_fs_unmount(fs);
            assert_true(r == VD_OK || r == VD_ERR_IO || r == VD_ERR_FAILED);
        }
        (void)vd_image_close(img); /* may report the failure; always frees */
        vd_fault_free(f);
        /* Start every trial from the clean image. */
        FU_OK(vd_image_open(mem, key, &o, &img));
        FU_OK(vd_fs_mount(img, NULL, &fs));
        for (int i = 0; i < 8; i++) {
            vd_file *fh;
            snprintf(p, sizeof p, "/dir/file %d", i);
            FU_OK(vd_file_open(fs, p, VD_O_RDWR, &fh));
            FU_OK(vd_file_truncate(fh, (uint64_t)(i + 1) * 300000));
            FU_OK(vd_file_close(fh));
        }
        FU_OK(vd_fs_unmount(fs));
        FU_OK(vd_image_close(img));
    }
    print_message(
        "[  hostile ] 40 trials: %u calls failed with I/O errors, %u whole-file "
        "reads exact\n",
        io_errors, good_reads);
    assert_true(io_errors > 0 && good_reads > 0);
    vd_host_mem_free(mem);
}

/* Four threads on one volume: each writes, reads back and renames its own
 * files while listing the shared root; the volume lock serialises calls. */
typedef struct thr {
    vd_fs *fs;
    int id;
    int failures;
} thr;

static void *thread_main(void *arg)
{
    thr *t = arg;
    char p[64], q[64];
    uint8_t buf[3000], got[3000];
    for (int i = 0; i < 60; i++) {
        snprintf(p, sizeof p, "/thread %d file %d", t->id, i);
        snprintf(q, sizeof q, "/t%d-%d", t->id, i);
        vd_file *f;
        size_t done;
        fu_fill(buf, sizeof buf, (uint64_t)(t->id * 1000 + i), 0);
        if (vd_file_open(t->fs, p, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f) != VD_OK) {
            t->failures++;
            continue;
        }
        if (vd_file_write(f, 0, buf, sizeof buf, &done) != VD_OK ||
            vd_file_read(f, 0, got, sizeof got, &done) != VD_OK || done != sizeof got ||
            memcmp(buf, got, sizeof buf) != 0)
            t->failures++;
        if (vd_file_close(f) != VD_OK || vd_fs_rename(t->fs, p, q, 0) != VD_OK)
            t->failures++;
        vd_dir *d;
        vd_dirent de;
        if (vd_dir_open(t->fs, "/", &d) == VD_OK) {
            while (vd_dir_read(d, &de) == VD_OK)
                ;
            if (vd_dir_close(d) != VD_OK)
                t->failures++;
        } else {
            t->failures++;
        }
        if (i % 3 == 0 && vd_fs_unlink(t->fs, q) != VD_OK)
            t->failures++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    env e;
    env_up(&e, NBLOCKS);
    pthread_t th[4];
    thr t[4];
    for (int i = 0; i < 4; i++) {
        t[i].fs = e.fs;
        t[i].id = i;
        t[i].failures = 0;
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, &t[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(t[i].failures, 0);
    }
    env_remount(&e);
    char q[64];
    for (int id = 0; id < 4; id++)
        for (int i = 0; i < 60; i++) {
            snprintf(q, sizeof q, "/t%d-%d", id, i);
            vd_stat st;
            FU_EXPECT(vd_fs_stat(e.fs, q, &st), i % 3 ? VD_OK : VD_ERR_NOENT, "%s", q);
            if (i % 3)
                check_file(e.fs, q, (uint64_t)(id * 1000 + i), 3000);
        }
    env_down(&e);
}

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define TP_TOTAL ((size_t)64 << 20)
#define TP_CHUNK ((size_t)1 << 20)
#define TP_ROUNDS 3 /* best of: the machine is shared */

/* Best sequential write (incl. the final sync) and read rates, MiB/s, of a
 * 64 MiB file through vd_file_* on a fresh volume of nblocks. */
static void tp_file(uint64_t nblocks, double *wr, double *rd, uint32_t *cluster)
{
    env e;
    env_up(&e, nblocks);
    vd_statfs sf;
    FU_OK(vd_fs_statfs(e.fs, &sf));
    *cluster = sf.cluster_bytes;
    uint8_t *buf = malloc(TP_CHUNK), *got = malloc(TP_CHUNK);
    assert_non_null(buf);
    assert_non_null(got);
    fu_fill(buf, TP_CHUNK, 41, 0);
    *wr = *rd = 0;
    for (int round = 0; round < TP_ROUNDS; round++) {
        vd_file *f;
        size_t done;
        FU_OK(vd_file_open(e.fs, "/big", VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f));
        FU_OK(vd_fs_sync(e.fs));
        double t0 = secs();
        for (size_t off = 0; off < TP_TOTAL; off += TP_CHUNK)
            FU_OK(vd_file_write(f, off, buf, TP_CHUNK, &done));
        FU_OK(vd_fs_sync(e.fs));
        double t1 = secs();
        for (size_t off = 0; off < TP_TOTAL; off += TP_CHUNK) {
            FU_OK(vd_file_read(f, off, got, TP_CHUNK, &done));
            assert_int_equal(done, TP_CHUNK);
        }
        double t2 = secs();
        assert_memory_equal(buf, got, TP_CHUNK);
        FU_OK(vd_file_close(f));
        double mib = (double)TP_TOTAL / (1 << 20);
        if (mib / (t1 - t0) > *wr)
            *wr = mib / (t1 - t0);
        if (mib / (t2 - t1) > *rd)
            *rd = mib / (t2 - t1);
    }
    free(buf);
    free(got);
    env_down(&e);
}

/* The same amount through vd_image_* on an image of the same size. */
static void tp_image(uint64_t nblocks, double *wr, double *rd)
{
    fu_disk d;
    fu_disk_new(&d, nblocks);
    uint8_t *buf = malloc(TP_CHUNK), *got = malloc(TP_CHUNK);
    assert_non_null(buf);
    assert_non_null(got);
    fu_fill(buf, TP_CHUNK, 41, 0);
    uint32_t per = (uint32_t)(TP_CHUNK / VD_BLOCK_SIZE);
    *wr = *rd = 0;
    for (int round = 0; round < TP_ROUNDS; round++) {
        double t0 = secs();
        for (size_t off = 0; off < TP_TOTAL; off += TP_CHUNK)
            FU_OK(vd_image_write(d.img, 1024 + off / VD_BLOCK_SIZE, per, buf));
        FU_OK(vd_image_sync(d.img));
        double t1 = secs();
        for (size_t off = 0; off < TP_TOTAL; off += TP_CHUNK)
            FU_OK(vd_image_read(d.img, 1024 + off / VD_BLOCK_SIZE, per, got));
        double t2 = secs();
        assert_memory_equal(buf, got, TP_CHUNK);
        double mib = (double)TP_TOTAL / (1 << 20);
        if (mib / (t1 - t0) > *wr)
            *wr = mib / (t1 - t0);
        if (mib / (t2 - t1) > *rd)
            *rd = mib / (t2 - t1);
    }
    free(buf);
    free(got);
    fu_disk_free(&d);
}

static void test_throughput(void **state)
{
    (void)state;
    /* 96 MiB volume: 512-byte clusters; 280 MiB: 4 KiB clusters (what
     * mkfs.fat chooses for these sizes). */
    const uint64_t sizes[] = {24576, 71680};
    for (size_t i = 0; i < 2; i++) {
        double fw, fr, iw, ir;
        uint32_t cl;
        tp_file(sizes[i], &fw, &fr, &cl);
        tp_image(sizes[i], &iw, &ir);
        print_message("[throughput] 64 MiB sequential, memory host, %" PRIu64
                      " MiB volume, %u-byte clusters, best of %d: vd_file write "
                      "%.0f MiB/s read %.0f MiB/s | vd_image write %.0f MiB/s "
                      "read %.0f MiB/s\n",
                      sizes[i] * 4096 >> 20, cl, TP_ROUNDS, fw, fr, iw, ir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_geometry),
        cmocka_unit_test(test_unlink_and_replace_while_open),
        cmocka_unit_test(test_entry_id),
        cmocka_unit_test(test_format_limits),
        cmocka_unit_test(test_basic_persist),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_enospc),
        cmocka_unit_test(test_rename),
        cmocka_unit_test(test_many_files),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_dirty_and_fsinfo),
        cmocka_unit_test(test_unclean_and_idle_sync),
        cmocka_unit_test(test_fsinfo_hint),
        cmocka_unit_test(test_bad_bpb),
        cmocka_unit_test(test_fragmented_random_access),
        cmocka_unit_test(test_corrupt_structures),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_hostile_host),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
