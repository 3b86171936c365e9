/* Growing an image and its FAT32 volume in place (vd_fs_grow /
 * vd_image_grow, vhdtool resize; issue 18 part 4):
 *   - a crash at every point of a grow (every prefix of the recorded write
 *     log, plus a random subset of each unflushed tail in a random order):
 *     the state opens, read-only and writable, at the old size or at the
 *     new one — image blocks and volume clusters together, never one
 *     without the other —, its files read back, and vd_fsck finds nothing
 *     either way; after the switch record, only the new size;
 *   - the grow crosses a tree height (2 to 3 levels at fan-out 128), then
 *     the new space is filled with a file and read back, and fsck is clean;
 *   - past the FAT's room: VD_ERR_RANGE, and vd_fs_grow_limit says where
 *     the room ends (vd_mkfs_opts.max_bytes reserves it); no room left
 *     without a reservation; shrinking is refused;
 *   - a host that cannot hold the bigger file: VD_ERR_NOSPC, the handle
 *     not failed, the volume as it was.
 * Seeds are printed; VD_RESIZE_SEED replays one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "testkit.h"

#include "record.h"
#include "replay.h"
#include "vdisk/check.h"
#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define MIB (1024ull * 1024)
#define OLD_BYTES (34 * MIB) /* FAT32's smallest is about 32 MiB */
#define NEW_BYTES (72 * MIB) /* past 64 MiB: the tree gets a third level */
#define MAX_BYTES (80 * MIB)
#define NFILES 6

static const uint8_t KEY[VD_KEY_BYTES] = {4, 2, 4, 2, 1, 7};
static uint64_t g_seed;

static void file_bytes(uint8_t *b, size_t n, uint32_t k)
{
    uint64_t s = 0x9E3779B97F4A7C15ull * (k + 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(vt_rand(&s) >> 24);
}

static size_t file_len(uint32_t k)
{
    return 1000 + (size_t)k * 37000;
}

static void put_file(vd_fs *fs, const char *path, uint32_t k, size_t n)
{
    uint8_t *b = malloc(n);
    assert_non_null(b);
    file_bytes(b, n, k);
    vd_file *f;
    VT_EXPECT_ERR(vd_file_open(fs, path, VD_O_WRONLY | VD_O_CREAT | VD_O_TRUNC, &f), VD_OK,
                  "create %s", path);
    size_t done = 0;
    VT_EXPECT_ERR(vd_file_write(f, 0, b, n, &done), VD_OK, "write %s", path);
    assert_int_equal(done, n);
    VT_EXPECT_ERR(vd_file_close(f), VD_OK, "close %s", path);
    free(b);
}

/* 0 when path holds file k's bytes (n of them). */
static int file_matches(vd_fs *fs, const char *path, uint32_t k, size_t n)
{
    uint8_t *want = malloc(n), *got = malloc(n);
    assert_true(want && got);
    file_bytes(want, n, k);
    vd_file *f;
    int bad = vd_file_open(fs, path, VD_O_RDONLY, &f) != VD_OK;
    size_t done = 0;
    if (!bad) {
        bad = vd_file_read(f, 0, got, n, &done) != VD_OK || done != n ||
              memcmp(want, got, n) != 0;
        bad |= vd_file_close(f) != VD_OK;
    }
    free(want);
    free(got);
    return bad;
}

static const vd_open_opts *opts(int ro)
{
    static vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.read_only = ro;
    o.aead_impl = VD_AEAD_OPENSSL;
    return &o;
}

/* A 34 MiB image whose FAT has room for 80 MiB, with NFILES files. */
static vd_rec *make_image(void)
{
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    vd_create_opts c = {.nblocks = OLD_BYTES / VD_BLOCK_SIZE};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_create(vd_rec_host(rec), KEY, &c, opts(0), &img), VD_OK, "create");
    vd_mkfs_opts mo = {.max_bytes = MAX_BYTES};
    VT_EXPECT_ERR(vd_fs_format(img, &mo), VD_OK, "format");
    vd_fs *fs;
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    for (uint32_t k = 0; k < NFILES; k++) {
        char p[32];
        snprintf(p, sizeof p, "/f%u", k);
        put_file(fs, p, k, file_len(k));
    }
    /* File 0 (under a block) written again, the same bytes, twice with an
     * fsync: log commits (format 6), so the resize starts over a log. */
    uint8_t b[1000];
    assert_int_equal(file_len(0), sizeof b);
    file_bytes(b, sizeof b, 0);
    vd_file *f;
    VT_EXPECT_ERR(vd_file_open(fs, "/f0", VD_O_RDWR, &f), VD_OK, "open /f0");
    for (int k = 0; k < 2; k++) {
        size_t done = 0;
        VT_EXPECT_ERR(vd_file_write(f, 0, b, sizeof b, &done), VD_OK, "rewrite /f0");
        VT_EXPECT_ERR(vd_file_sync(f), VD_OK, "fsync /f0");
    }
    VT_EXPECT_ERR(vd_file_close(f), VD_OK, "close /f0");
    vd_image_info ii;
    VT_EXPECT_ERR(vd_image_info_get(img, &ii), VD_OK, "info");
    assert_true(ii.log_len > 0);
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    return rec;
}

/* Check one opened image: its size is one of the two, the volume's the
 * same one, the files are there, fsck finds nothing. Returns 1 for new. */
static int check_state(vd_image *img, int ro, const char *what, uint32_t old_clusters,
                       uint32_t new_clusters)
{
    vd_image_info info;
    VT_EXPECT_ERR(vd_image_info_get(img, &info), VD_OK, "%s: info", what);
    int is_new = info.nblocks == NEW_BYTES / VD_BLOCK_SIZE;
    if (!is_new && info.nblocks != OLD_BYTES / VD_BLOCK_SIZE) {
        print_error("%s: %llu blocks, neither size\n", what, (unsigned long long)info.nblocks);
        fail();
    }
    vd_fs *fs;
    vd_fs_opts fo = {.read_only = ro};
    VT_EXPECT_ERR(vd_fs_mount(img, &fo, &fs), VD_OK, "%s: mount", what);
    vd_statfs st;
    VT_EXPECT_ERR(vd_fs_statfs(fs, &st), VD_OK, "%s: statfs", what);
    if (st.total_clusters != (is_new ? new_clusters : old_clusters)) {
        print_error("%s: image %s, volume of %u clusters\n", what, is_new ? "new" : "old",
                    st.total_clusters);
        fail();
    }
    for (uint32_t k = 0; k < NFILES; k++) {
        char p[32];
        snprintf(p, sizeof p, "/f%u", k);
        if (file_matches(fs, p, k, file_len(k))) {
            print_error("%s: %s differs\n", what, p);
            fail();
        }
    }
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "%s: unmount", what);
    vd_fsck_opts fo2 = {.mode = VD_FSCK_CHECK};
    vd_fsck_result r;
    VT_EXPECT_ERR(vd_fsck(img, &fo2, &r), VD_OK, "%s: fsck", what);
    if (r.found != 0 || r.integrity_found != 0) {
        print_error("%s: fsck found %u problems (%u integrity)\n", what, r.found,
                    r.integrity_found);
        fail();
    }
    return is_new;
}

static void test_grow_crash_at_every_point(void **state)
{
    (void)state;
    vd_rec *rec = make_image();
    uint32_t old_clusters, new_clusters;
    vd_image *img;
    vd_fs *fs;
    VT_EXPECT_ERR(vd_image_open(vd_rec_host(rec), KEY, opts(0), &img), VD_OK, "open");
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    vd_statfs st;
    VT_EXPECT_ERR(vd_fs_statfs(fs, &st), VD_OK, "statfs");
    old_clusters = st.total_clusters;
    vd_image_info info;
    VT_EXPECT_ERR(vd_image_info_get(img, &info), VD_OK, "info");
    assert_int_equal(info.height, 2);
    assert_int_equal(vd_rec_reset_log(rec), VD_OK); /* crashes start at the grow */
    VT_EXPECT_ERR(vd_fs_grow(fs, NEW_BYTES), VD_OK, "grow");
    size_t switched = vd_rec_op_count(rec); /* every state from here is new */
    VT_EXPECT_ERR(vd_fs_statfs(fs, &st), VD_OK, "statfs");
    new_clusters = st.total_clusters;
    assert_true(new_clusters > 2 * old_clusters);
    VT_EXPECT_ERR(vd_image_info_get(img, &info), VD_OK, "info");
    assert_int_equal(info.nblocks, NEW_BYTES / VD_BLOCK_SIZE);
    assert_int_equal(info.height, 3); /* the tree grew a level */
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    size_t nops = vd_rec_op_count(rec);
    printf("  grow: %zu ops, %zu flushes; %u -> %u clusters\n", nops,
           vd_rec_flush_count(rec), old_clusters, new_clusters);

    uint64_t rng = g_seed;
    unsigned states = 0, olds = 0, news = 0;
    int seen_new = 0;
    for (size_t p = 0; p <= nops; p++) {
        for (int variant = 0; variant < 2; variant++) {
            uint8_t mask[16];
            const uint8_t *mp;
            if (!vt_replay_tail_variant(rec, p, variant, &rng, mask, sizeof mask, &mp))
                continue;
            char what[96];
            snprintf(what, sizeof what, "crash after op %zu of %zu%s (seed %llu)", p, nops,
                     variant ? ", tail subset" : "", (unsigned long long)g_seed);
            for (int ro = 1; ro >= 0; ro--) {
                vd_host *h;
                VT_EXPECT_ERR(vd_rec_crash_view(rec, p, mp, vt_rand(&rng), variant, &h),
                              VD_OK, "%s: view", what);
                vd_err e = vd_image_open(h, KEY, opts(ro), &img);
                if (e != VD_OK) {
                    print_error("%s: %s open: %s\n", what, ro ? "read-only" : "writable",
                                vd_strerror(e));
                    fail();
                }
                int is_new = check_state(img, ro, what, old_clusters, new_clusters);
                VT_EXPECT_ERR(vd_image_close(img), VD_OK, "%s: close", what);
                vd_rec_view_free(h);
                if (variant == 0 && p >= switched && !is_new) {
                    print_error("%s: old size after the grow returned\n", what);
                    fail();
                }
                /* Old, then new: once a prefix shows the new size, every
                 * longer one does (the switch is one record). */
                if (variant == 0 && seen_new && !is_new) {
                    print_error("%s: back to the old size\n", what);
                    fail();
                }
                if (variant == 0 && is_new)
                    seen_new = 1;
                states++;
                olds += !is_new;
                news += is_new;
            }
        }
    }
    printf("  %u crash states (read-only and writable): %u at the old size, %u at the "
           "new one, fsck clean in all\n",
           states, olds, news);
    assert_true(olds > 0 && news > 0);

    /* The new space: a file filling most of it, read back after reopening. */
    VT_EXPECT_ERR(vd_image_open(vd_rec_host(rec), KEY, opts(0), &img), VD_OK, "reopen");
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    VT_EXPECT_ERR(vd_fs_statfs(fs, &st), VD_OK, "statfs");
    size_t big = (size_t)st.free_clusters * st.cluster_bytes - 64 * 1024;
    assert_true(big > OLD_BYTES); /* more than the old volume could hold */
    put_file(fs, "/big", 99, big);
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    VT_EXPECT_ERR(vd_image_open(vd_rec_host(rec), KEY, opts(1), &img), VD_OK, "reopen ro");
    assert_int_equal(check_state(img, 1, "after filling", old_clusters, new_clusters), 1);
    VT_EXPECT_ERR(vd_fs_mount(img, &(vd_fs_opts){.read_only = 1}, &fs), VD_OK, "mount");
    assert_int_equal(file_matches(fs, "/big", 99, big), 0);
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_rec_free(rec);
}

/* The FAT's room, shrinking, a second grow, and a host that keeps its size. */
static void test_grow_limits(void **state)
{
    (void)state;
    vd_host *h;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    vd_create_opts c = {.nblocks = OLD_BYTES / VD_BLOCK_SIZE};
    vd_image *img;
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, opts(0), &img), VD_OK, "create");
    VT_EXPECT_ERR(vd_fs_format(img, NULL), VD_OK, "format without room");
    vd_fs *fs;
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    uint64_t limit;
    VT_EXPECT_ERR(vd_fs_grow_limit(fs, &limit), VD_OK, "limit");
    /* mkfs.fat's FAT: the rounding of its last sector, under 64 KiB. */
    assert_true(limit >= OLD_BYTES && limit < OLD_BYTES + 64 * 1024);
    VT_EXPECT_ERR(vd_fs_grow(fs, limit + VD_BLOCK_SIZE), VD_ERR_RANGE, "past the room");
    VT_EXPECT_ERR(vd_fs_grow(fs, OLD_BYTES - MIB), VD_ERR_INVAL, "shrink");
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);

    /* With room: two grows in a row (the second after the header names
     * two geometries), then the limit. */
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    VT_EXPECT_ERR(vd_image_create(h, KEY, &c, opts(0), &img), VD_OK, "create");
    vd_mkfs_opts mo = {.max_bytes = MAX_BYTES};
    VT_EXPECT_ERR(vd_fs_format(img, &mo), VD_OK, "format with room");
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    VT_EXPECT_ERR(vd_fs_grow_limit(fs, &limit), VD_OK, "limit");
    /* Entries for max_bytes' worth of clusters: a little more than
     * max_bytes of volume (its reserved sectors and FATs come on top). */
    assert_true(limit >= MAX_BYTES && limit < MAX_BYTES + 2 * MIB);
    put_file(fs, "/a", 1, 5000);
    VT_EXPECT_ERR(vd_fs_grow(fs, 40 * MIB), VD_OK, "grow 1");
    put_file(fs, "/b", 2, 70000);
    VT_EXPECT_ERR(vd_fs_grow(fs, 50 * MIB), VD_OK, "grow 2 (no commit in between)");
    VT_EXPECT_ERR(vd_fs_grow(fs, 60 * MIB), VD_OK, "grow 3");
    VT_EXPECT_ERR(vd_fs_grow(fs, limit + VD_BLOCK_SIZE), VD_ERR_RANGE, "past the room");
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    VT_EXPECT_ERR(vd_image_open(h, KEY, opts(0), &img), VD_OK, "reopen");
    VT_EXPECT_ERR(vd_fs_mount(img, NULL, &fs), VD_OK, "mount");
    assert_int_equal(file_matches(fs, "/a", 1, 5000), 0);
    assert_int_equal(file_matches(fs, "/b", 2, 70000), 0);
    vd_statfs st;
    VT_EXPECT_ERR(vd_fs_statfs(fs, &st), VD_OK, "statfs");
    assert_true((uint64_t)st.total_clusters * st.cluster_bytes > 58 * MIB); /* 60 MiB less the FATs */
    VT_EXPECT_ERR(vd_fs_unmount(fs), VD_OK, "unmount");
    vd_fsck_opts fo = {.mode = VD_FSCK_CHECK};
    vd_fsck_result r;
    VT_EXPECT_ERR(vd_fsck(img, &fo, &r), VD_OK, "fsck");
    assert_int_equal(r.found, 0);
    VT_EXPECT_ERR(vd_image_close(img), VD_OK, "close");
    vd_host_mem_free(h);
}

int main(void)
{
    g_seed = vt_seed_from_env("VD_RESIZE_SEED", (uint64_t)time(NULL));
    printf("test_resize: seed %llu (VD_RESIZE_SEED to replay)\n", (unsigned long long)g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_crash_at_every_point),
        cmocka_unit_test(test_grow_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
