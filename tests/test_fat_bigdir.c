/* One directory of 20,000 entries (the case the FAT layer's directory
 * index exists for): long names whose 8.3 aliases all collide
 * ("LONGFI~1.TXT" .. "LO~20000.TXT"), lookups in other case and by alias,
 * names that differ only in case refused, deletes whose slots re-creates
 * reuse, renames in, out, within and over, unmount + remount, and then
 * fsck.fat -n and mdir on the exported volume. Every entry is told apart
 * by its mtime, so a lookup that returns the wrong entry fails. Times are
 * printed, never asserted. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "endian.h"
#include "fat_util.h"

#ifndef BIGDIR_N
#define BIGDIR_N 20000
#endif
#define NBLOCKS 16384u  /* 64 MiB */
#define T0 1600000000ll /* base of the mtimes (s), even: FAT keeps 2 s */

enum { GONE, ORIG, RECREATED };

typedef struct entry {
    int state;
    int64_t mtime; /* seconds */
    char name[64]; /* current name in /big (ORIG or RECREATED) */
} entry;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void orig_name(char *out, size_t cap, int i)
{
    snprintf(out, cap, "Long file name %05d.txt", i);
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

static void create_empty(vd_fs *fs, const char *path, int64_t mtime)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f), VD_OK, "%s",
              path);
    FU_OK(vd_file_close(f));
    FU_EXPECT(vd_fs_utimes(fs, path, mtime * 1000000000ll, mtime * 1000000000ll), VD_OK,
              "%s", path);
}

/* Every entry found under its name (in upper case, so the lookup must
 * fold), with its own mtime; every removed one absent. */
static void check_all(vd_fs *fs, const entry *ent, int n)
{
    char p[128];
    for (int i = 0; i < n; i++) {
        vd_stat st;
        if (ent[i].state == GONE) {
            char o[64];
            orig_name(o, sizeof o, i);
            snprintf(p, sizeof p, "/big/%s", o);
            FU_EXPECT(vd_fs_stat(fs, p, &st), VD_ERR_NOENT, "%s", p);
            continue;
        }
        snprintf(p, sizeof p, "/BIG/%s", ent[i].name);
        upper(p);
        FU_EXPECT(vd_fs_stat(fs, p, &st), VD_OK, "%s", p);
        if (st.mtime_ns != ent[i].mtime * 1000000000ll)
            fail_msg("%s: mtime %" PRId64 ", want %" PRId64 " (another entry?)", p,
                     st.mtime_ns / 1000000000ll, ent[i].mtime);
        assert_false(st.is_dir);
    }
}

static int count_listing(vd_fs *fs, const char *path)
{
    vd_dir *d;
    FU_OK(vd_dir_open(fs, path, &d));
    vd_dirent de;
    int n = 0;
    vd_err e;
    while ((e = vd_dir_read(d, &de)) == VD_OK)
        n++;
    FU_EXPECT(e, VD_ERR_NOENT, "end of %s", path);
    FU_OK(vd_dir_close(d));
    return n;
}

static int tools_present(void)
{
    return system("command -v fsck.fat >/dev/null 2>&1 && command -v mdir "
                  ">/dev/null 2>&1") == 0;
}

/* The exported volume: fsck.fat -n clean, mdir lists `want` entries in
 * /big (want < 0: no /big to list). */
static void check_with_tools(fu_disk *d, int want)
{
    if (!tools_present()) {
        print_message("[  skipped ] fsck.fat or mdir not installed\n");
        return;
    }
    char dir[] = "/tmp/vd-bigdir-XXXXXX", raw[128], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(raw, sizeof raw, "%s/vol.raw", dir);
    assert_int_equal(fu_export_file(d, raw), 0);
    snprintf(cmd, sizeof cmd, "fsck.fat -n '%s' >/dev/null 2>&1", raw);
    int fsck_rc = system(cmd);
    snprintf(cmd, sizeof cmd,
             "MTOOLS_SKIP_CHECK=1 mdir -b -i '%s' ::/big 2>/dev/null | wc -l", raw);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int got = -1;
    if (fscanf(p, "%d", &got) != 1)
        got = -1;
    int mdir_rc = pclose(p);
    if (want < 0) { /* mdir of a missing /big fails: not asked for */
        mdir_rc = 0;
        got = want;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    if (fsck_rc != 0)
        fail_msg("fsck.fat -n reported problems (status %d)", fsck_rc);
    assert_int_equal(mdir_rc, 0);
    if (got != want)
        fail_msg("mdir lists %d entries in /big, want %d", got, want);
}

/* A new volume on d, mounted, with the directory top made. */
static vd_fs *fresh_volume(fu_disk *d, const char *top)
{
    fu_disk_new(d, NBLOCKS);
    FU_OK(vd_fs_format(d->img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d->img, NULL, &fs));
    FU_OK(vd_fs_mkdir(fs, top));
    return fs;
}

static void test_big_directory(void **state)
{
    (void)state;
    fu_disk d;
    vd_fs *fs = fresh_volume(&d, "/big");
    entry *ent = calloc(BIGDIR_N, sizeof *ent);
    assert_non_null(ent);
    char p[128], q[128];

    double t = now_s();
    for (int i = 0; i < BIGDIR_N; i++) {
        ent[i].state = ORIG;
        ent[i].mtime = T0 + 2 * i;
        orig_name(ent[i].name, sizeof ent[i].name, i);
        snprintf(p, sizeof p, "/big/%s", ent[i].name);
        create_empty(fs, p, ent[i].mtime);
    }
    print_message("[  bigdir  ] %d creates: %.2f s\n", BIGDIR_N, now_s() - t);

    t = now_s();
    check_all(fs, ent, BIGDIR_N);
    print_message("[  bigdir  ] %d lookups: %.2f s\n", BIGDIR_N, now_s() - t);

    /* Aliases: the k-th name created took tail ~k. */
    static const struct {
        const char *alias;
        int idx;
    } al[] = {{"LONGFI~1.TXT", 0},  {"longfi~9.txt", 8},   {"LONGF~10.TXT", 9},
              {"LONG~100.TXT", 99}, {"LON~1000.TXT", 999}, {"LO~12345.TXT", 12344}};
    for (size_t k = 0; k < sizeof al / sizeof al[0]; k++) {
        if (al[k].idx >= BIGDIR_N)
            continue;
        vd_stat st;
        snprintf(p, sizeof p, "/big/%s", al[k].alias);
        FU_EXPECT(vd_fs_stat(fs, p, &st), VD_OK, "%s", p);
        assert_int_equal(st.mtime_ns, ent[al[k].idx].mtime * 1000000000ll);
    }
    /* Same name in other case: one entry, so refused. */
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, "/big/LONG FILE NAME 00007.TXT",
                           VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "case");
    FU_EXPECT(vd_fs_mkdir(fs, "/big/long FILE name 00123.txt"), VD_ERR_EXIST, "case");

    /* Delete every third, then re-create as many names of the same length
     * (3 slots each): they must fit in the freed slots, so the directory
     * takes no new cluster. */
    vd_statfs sf0, sf1;
    FU_OK(vd_fs_statfs(fs, &sf0));
    int removed = 0;
    for (int i = 0; i < BIGDIR_N; i += 3) {
        snprintf(p, sizeof p, "/big/%s", ent[i].name);
        FU_OK(vd_fs_unlink(fs, p));
        ent[i].state = GONE;
        removed++;
    }
    check_all(fs, ent, BIGDIR_N);
    for (int i = 0; i < BIGDIR_N; i += 3) {
        ent[i].state = RECREATED;
        ent[i].mtime = T0 + 2 * (BIGDIR_N + i);
        snprintf(ent[i].name, sizeof ent[i].name, "Re-created name %05d.dat", i);
        snprintf(p, sizeof p, "/big/%s", ent[i].name);
        create_empty(fs, p, ent[i].mtime);
    }
    FU_OK(vd_fs_statfs(fs, &sf1));
    assert_int_equal(sf1.free_clusters, sf0.free_clusters);
    print_message("[  bigdir  ] %d deleted and re-created in their slots\n", removed);

    /* Rename out, back in under a new name, within (case only), and over
     * an existing entry. */
    int live = BIGDIR_N;
    snprintf(p, sizeof p, "/big/%s", ent[1].name);
    FU_OK(vd_fs_rename(fs, p, "/out.txt", 0));
    FU_EXPECT(vd_fs_stat(fs, p, &(vd_stat){0}), VD_ERR_NOENT, "%s", p);
    FU_OK(vd_fs_rename(fs, "/out.txt", "/big/Moved back in, renamed.txt", 0));
    snprintf(ent[1].name, sizeof ent[1].name, "Moved back in, renamed.txt");
    snprintf(p, sizeof p, "/big/%s", ent[2].name);
    snprintf(q, sizeof q, "/big/LONG FILE NAME %05d.TXT", 2);
    FU_OK(vd_fs_rename(fs, p, q, 0));
    snprintf(ent[2].name, sizeof ent[2].name, "LONG FILE NAME %05d.TXT", 2);
    snprintf(p, sizeof p, "/big/%s", ent[4].name);
    snprintf(q, sizeof q, "/big/%s", ent[5].name);
    FU_OK(vd_fs_rename(fs, p, q, 0));
    ent[5].mtime = ent[4].mtime;
    ent[4].state = GONE;
    live--;
    snprintf(p, sizeof p, "/big/%s", ent[7].name);
    FU_OK(vd_fs_rename(fs, p, "/elsewhere.txt", 0));
    ent[7].state = GONE;
    live--;
    check_all(fs, ent, BIGDIR_N);
    assert_int_equal(count_listing(fs, "/big"), live);

    /* The case-only rename is listed in its new case. */
    vd_dir *dh;
    vd_dirent de;
    int seen_case = 0;
    FU_OK(vd_dir_open(fs, "/big", &dh));
    while (vd_dir_read(dh, &de) == VD_OK)
        if (strcmp(de.name, ent[2].name) == 0)
            seen_case++;
    FU_OK(vd_dir_close(dh));
    assert_int_equal(seen_case, 1);

    FU_OK(vd_fs_unmount(fs));
    fu_disk_reopen(&d);
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    t = now_s();
    check_all(fs, ent, BIGDIR_N);
    print_message("[  bigdir  ] %d lookups after remount: %.2f s\n", BIGDIR_N,
                  now_s() - t);
    assert_int_equal(count_listing(fs, "/big"), live);
    FU_OK(vd_fs_unmount(fs));

    check_with_tools(&d, live);
    free(ent);
    fu_disk_free(&d);
}

/* A cross-linked volume: a file's chain starts at a directory's cluster,
 * so writing the file writes the directory behind the index's back. The
 * entry it writes must be found, as a scan finds it: while the file is
 * open, and after it is closed. */
static void test_crosslinked_write(void **state)
{
    (void)state;
    fu_disk d;
    fu_disk_new(&d, NBLOCKS);
    FU_OK(vd_fs_format(d.img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    FU_OK(vd_fs_mkdir(fs, "/d"));
    vd_file *f;
    size_t done;
    FU_OK(vd_file_open(fs, "/d/a.txt", VD_O_RDWR | VD_O_CREAT, &f));
    FU_OK(vd_file_close(f));
    FU_OK(vd_file_open(fs, "/f.bin", VD_O_RDWR | VD_O_CREAT, &f));
    FU_OK(vd_file_write(f, 0, "x", 1, &done));
    FU_OK(vd_file_close(f));
    vd_stat st;
    FU_OK(vd_fs_stat(fs, "/d", &st));
    uint32_t dclus = (uint32_t)st.first_cluster;
    FU_OK(vd_fs_unmount(fs));

    /* Point /f.bin's entry in the root directory at /d's cluster, size
     * one cluster. */
    uint8_t *raw = fu_export(&d);
    uint32_t bps = vd_get_le16(raw + 11), spc = raw[13], rsvd = vd_get_le16(raw + 14);
    uint32_t nfats = raw[16], fatsz = vd_get_le32(raw + 36), root = vd_get_le32(raw + 44);
    uint64_t data = ((uint64_t)rsvd + (uint64_t)nfats * fatsz) * bps;
    uint8_t *rootdir = raw + data + (uint64_t)(root - 2) * spc * bps;
    int found = 0;
    for (uint32_t s = 0; s < spc * bps / 32 && !found; s++) {
        uint8_t *e = rootdir + 32 * s;
        if (memcmp(e, "F       BIN", 11) == 0) {
            vd_put_le16(e + 20, (uint16_t)(dclus >> 16));
            vd_put_le16(e + 26, (uint16_t)dclus);
            vd_put_le32(e + 28, spc * bps); /* no gap to zero before a write */
            found = 1;
        }
    }
    assert_true(found);
    fu_import(&d, raw, (size_t)NBLOCKS * 4096);
    free(raw);

    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    FU_EXPECT(vd_fs_stat(fs, "/d/evil.txt", &st), VD_ERR_NOENT, "before");
    FU_OK(vd_fs_stat(fs, "/d/a.txt", &st)); /* /d is indexed now */
    /* Slot 3 of /d ("." "..", A.TXT, then the end marker). */
    uint8_t ent[32];
    memset(ent, 0, sizeof ent);
    memcpy(ent, "EVIL    TXT", 11);
    ent[11] = 0x20;
    FU_OK(vd_file_open(fs, "/f.bin", VD_O_RDWR, &f));
    FU_OK(vd_file_write(f, 96, ent, sizeof ent, &done));
    FU_EXPECT(vd_fs_stat(fs, "/d/evil.txt", &st), VD_OK, "file open");
    FU_OK(vd_file_close(f));
    FU_EXPECT(vd_fs_stat(fs, "/d/evil.txt", &st), VD_OK, "file closed");
    /* Again, closing before the next lookup of /d. */
    memcpy(ent, "EVIL2   TXT", 11);
    FU_EXPECT(vd_fs_stat(fs, "/d/evil2.txt", &st), VD_ERR_NOENT, "before");
    FU_OK(vd_file_open(fs, "/f.bin", VD_O_RDWR, &f));
    FU_OK(vd_file_write(f, 128, ent, sizeof ent, &done));
    FU_OK(vd_file_close(f));
    FU_EXPECT(vd_fs_stat(fs, "/d/evil2.txt", &st), VD_OK, "after close");
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&d);
}

/* Paths deeper than the number of directories the index keeps at once
 * (dirindex.c: a walk from the root touches every directory on its way,
 * and the least recently used index goes first): 100 nested directories,
 * each holding files and 3 siblings, created, looked up from both ends and
 * changed in rounds, every entry told apart by its mtime, then again after
 * a remount, and fsck.fat -n. Checks the indexes stay right while they are
 * evicted and rebuilt all the time. */
#define DEEP_N 100

static void deep_path(char *out, size_t cap, int level)
{
    size_t k = (size_t)snprintf(out, cap, "/deep");
    for (int i = 0; i < level; i++)
        k += (size_t)snprintf(out + k, cap - k, "/d%02d", i);
}

static void deep_check(vd_fs *fs, int files)
{
    char p[512], q[600];
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < DEEP_N; j++) {
            int lvl = pass ? DEEP_N - 1 - j : j;
            deep_path(p, sizeof p, lvl + 1);
            for (int f = 0; f < files; f++) {
                vd_stat st;
                snprintf(q, sizeof q, "%s/File with a long name %d.txt", p, f);
                FU_EXPECT(vd_fs_stat(fs, q, &st), VD_OK, "%s", q);
                int64_t want = T0 + 2 * (lvl * 16 + f);
                if (st.mtime_ns != want * 1000000000ll)
                    fail_msg("%s: mtime %" PRId64 ", want %" PRId64, q,
                             st.mtime_ns / 1000000000ll, want);
            }
            for (int s = 0; s < 3; s++) {
                vd_stat st;
                snprintf(q, sizeof q, "%s/Sibling %d", p, s);
                FU_EXPECT(vd_fs_stat(fs, q, &st), VD_OK, "%s", q);
                assert_true(st.is_dir);
            }
        }
    }
}

static void test_deep_paths(void **state)
{
    (void)state;
    fu_disk d;
    vd_fs *fs = fresh_volume(&d, "/deep");
    char p[512], q[600];
    for (int lvl = 0; lvl < DEEP_N; lvl++) {
        deep_path(p, sizeof p, lvl + 1);
        FU_EXPECT(vd_fs_mkdir(fs, p), VD_OK, "%s", p);
        for (int s = 0; s < 3; s++) {
            snprintf(q, sizeof q, "%s/Sibling %d", p, s);
            FU_EXPECT(vd_fs_mkdir(fs, q), VD_OK, "%s", q);
        }
    }
    /* Round f adds file f at every level, deepest first then shallowest
     * first, and checks everything so far each time. */
    for (int f = 0; f < 4; f++) {
        for (int j = 0; j < DEEP_N; j++) {
            int lvl = f % 2 ? j : DEEP_N - 1 - j;
            deep_path(p, sizeof p, lvl + 1);
            snprintf(q, sizeof q, "%s/File with a long name %d.txt", p, f);
            create_empty(fs, q, T0 + 2 * (lvl * 16 + f));
        }
        deep_check(fs, f + 1);
    }
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    deep_check(fs, 4);
    FU_OK(vd_fs_unmount(fs));
    if (tools_present())
        check_with_tools(&d, -1);
    fu_disk_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_paths),
        cmocka_unit_test(test_crosslinked_write),
        cmocka_unit_test(test_big_directory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
