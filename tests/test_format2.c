/* An image of an older on-disk format keeps working (issue 15: never
 * strand a user's image). tests/data/format2/ holds a format-2 image made
 * by mkvhd before format 3 existed, tests/data/format3/ a format-3 image
 * made before format 4, tests/data/format4/ one made before format 5, each with its key file and listings of the
 * source tree made by find and sha256sum (not by this library). The test
 * opens it with today's code, reads every file byte-exact, writes, syncs,
 * reopens, reads everything again and runs vd_fsck, which must find
 * nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image_format.h"
#include "testkit.h"
#include "vdisk/check.h"
#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"

#ifndef VD_TEST_DATA
#error "VD_TEST_DATA must name tests/data"
#endif

#define MAXE 64

typedef struct listing {
    int n;
    char path[MAXE][512];
    char hex[MAXE][65]; /* files only */
} listing;

static uint8_t *gunzip(const char *path, uint64_t *len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "gzip -dc '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1u << 20, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n, p);
        if (k == 0)
            break;
        n += k;
    }
    assert_int_equal(pclose(p), 0);
    *len = n;
    return buf;
}

/* files.sha256 lines: "<64 hex>  ./path"; dirs.txt lines: "./path". */
static void read_listing(const char *path, int files, listing *l)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[700];
    memset(l, 0, sizeof *l);
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        const char *p = line;
        assert_true(l->n < MAXE);
        if (files) {
            assert_true(strlen(line) > 67 && line[64] == ' ');
            memcpy(l->hex[l->n], line, 64);
            p = line + 66;
        }
        assert_true(p[0] == '.' && p[1] == '/');
        snprintf(l->path[l->n], sizeof l->path[0], "%s", p + 1);
        l->n++;
    }
    fclose(f);
}

static int listing_find(const listing *l, const char *path)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->path[i], path) == 0)
            return i;
    return -1;
}

static void file_sha256_hex(vd_fs *fs, const char *path, char hex[65])
{
    vd_file *f;
    VT_EXPECT_ERR(vd_file_open(fs, path, VD_O_RDONLY, &f), VD_OK, "%s", path);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    uint8_t buf[8192];
    uint64_t off = 0;
    for (;;) {
        size_t done;
        VT_EXPECT_ERR(vd_file_read(f, off, buf, sizeof buf, &done), VD_OK, "%s", path);
        if (done == 0)
            break;
        crypto_hash_sha256_update(&st, buf, done);
        off += done;
    }
    assert_int_equal(vd_file_close(f), VD_OK);
    uint8_t d[32];
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(hex, 65, d, 32);
}

/* Walk the volume: every directory must be in dirs (plus `extra_dirs`),
 * every file in files with its digest (plus extra files, not hashed). */
static void walk(vd_fs *fs, const char *dir, const listing *dirs,
                 const listing *files, int *ndirs, int *nfiles,
                 const char *extra)
{
    vd_dir *d;
    VT_EXPECT_ERR(vd_dir_open(fs, dir, &d), VD_OK, "%s", dir);
    vd_dirent ent;
    char path[1100];
    for (;;) {
        vd_err e = vd_dir_read(d, &ent);
        if (e == VD_ERR_NOENT)
            break;
        VT_EXPECT_ERR(e, VD_OK, "readdir %s", dir);
        snprintf(path, sizeof path, "%s/%s", strcmp(dir, "/") ? dir : "", ent.name);
        if (extra && strncmp(path, extra, strlen(extra)) == 0)
            continue;
        if (ent.is_dir) {
            if (listing_find(dirs, path) < 0)
                fail_msg("unexpected directory %s", path);
            (*ndirs)++;
            walk(fs, path, dirs, files, ndirs, nfiles, extra);
        } else {
            int i = listing_find(files, path);
            if (i < 0)
                fail_msg("unexpected file %s", path);
            char hex[65];
            file_sha256_hex(fs, path, hex);
            if (strcmp(hex, files->hex[i]) != 0)
                fail_msg("%s: sha256 %s, want %s", path, hex, files->hex[i]);
            (*nfiles)++;
        }
    }
    assert_int_equal(vd_dir_close(d), VD_OK);
}

static void check_tree(vd_fs *fs, const listing *dirs, const listing *files,
                       const char *extra)
{
    int nd = 0, nf = 0;
    walk(fs, "/", dirs, files, &nd, &nf, extra);
    assert_int_equal(nd, dirs->n);
    assert_int_equal(nf, files->n);
}

static vd_err open_image(vd_host *h, const uint8_t key[32], int ro, vd_image **img)
{
    vd_unlock u = {.type = VD_SLOT_KEYFILE, .secret = key, .len = 32};
    vd_open_opts o = {.read_only = ro};
    return vd_image_open_unlock(h, &u, &o, img);
}

static void fsck_clean(vd_image *img)
{
    vd_fsck_opts o = {.mode = VD_FSCK_CHECK};
    vd_fsck_result r;
    assert_int_equal(vd_fsck(img, &o, &r), VD_OK);
    assert_true(r.fs_checked);
    assert_int_equal(r.found, 0);
}

static const char NEW_TEXT[] = "written by the new code\n";

static void old_format_roundtrip(const char *dir, uint32_t version)
{
    char path[512];
    listing dirs, files;
    snprintf(path, sizeof path, "%s/dirs.txt", dir);
    read_listing(path, 0, &dirs);
    snprintf(path, sizeof path, "%s/files.sha256", dir);
    read_listing(path, 1, &files);
    assert_int_equal(files.n, 7);
    uint8_t key[32];
    int se;
    snprintf(path, sizeof path, "%s/key", dir);
    VT_EXPECT_ERR(vd_keyfile_read(path, key, &se), VD_OK, "key file");
    uint64_t len;
    snprintf(path, sizeof path, "%s/image.vhd.gz", dir);
    uint8_t *bytes = gunzip(path, &len);
    vd_host *h = vt_host_mem_from(bytes, len);
    free(bytes);

    /* Read-only first: nothing may be converted by a reader. */
    vd_image *img;
    vd_image_info info;
    VT_EXPECT_ERR(open_image(h, key, 1, &img), VD_OK, "read-only open");
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(info.format_version, version);
    vd_fs *fs;
    vd_fs_opts ro = {.read_only = 1};
    assert_int_equal(vd_fs_mount(img, &ro, &fs), VD_OK);
    check_tree(fs, &dirs, &files, NULL);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    fsck_clean(img);
    assert_int_equal(vd_image_close(img), VD_OK);

    /* A writable open converts the image to today's format; closed at
     * once, the other superblock slot still holds a record written before
     * the conversion, which must keep opening (read-only and writable). */
    VT_EXPECT_ERR(open_image(h, key, 0, &img), VD_OK, "converting open");
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(info.format_version, VDF_FORMAT_VERSION);
    assert_int_equal(vd_image_close(img), VD_OK);
    VT_EXPECT_ERR(open_image(h, key, 1, &img), VD_OK, "read-only open after conversion");
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(info.format_version, VDF_FORMAT_VERSION);
    assert_int_equal(info.unclean, 0);
    assert_int_equal(vd_fs_mount(img, &ro, &fs), VD_OK);
    check_tree(fs, &dirs, &files, NULL);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);

    /* Writable: read everything, then write and sync. */
    VT_EXPECT_ERR(open_image(h, key, 0, &img), VD_OK, "writable open");
    assert_int_equal(vd_fs_mount(img, NULL, &fs), VD_OK);
    check_tree(fs, &dirs, &files, NULL);
    assert_int_equal(vd_fs_mkdir(fs, "/new dir"), VD_OK);
    vd_file *f;
    size_t done;
    assert_int_equal(vd_file_open(fs, "/new dir/new.txt", VD_O_WRONLY | VD_O_CREAT, &f),
                     VD_OK);
    assert_int_equal(vd_file_write(f, 0, NEW_TEXT, strlen(NEW_TEXT), &done), VD_OK);
    assert_int_equal(vd_file_close(f), VD_OK);
    assert_int_equal(vd_fs_sync(fs), VD_OK);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    assert_int_equal(vd_image_close(img), VD_OK);

    /* Reopen: old and new contents, and a clean check. */
    VT_EXPECT_ERR(open_image(h, key, 0, &img), VD_OK, "reopen");
    assert_int_equal(vd_image_info_get(img, &info), VD_OK);
    assert_int_equal(info.format_version, VDF_FORMAT_VERSION);
    assert_int_equal(info.unclean, 0);
    assert_int_equal(vd_fs_mount(img, NULL, &fs), VD_OK);
    check_tree(fs, &dirs, &files, "/new dir");
    char buf[64] = {0};
    assert_int_equal(vd_file_open(fs, "/new dir/new.txt", VD_O_RDONLY, &f), VD_OK);
    assert_int_equal(vd_file_read(f, 0, buf, sizeof buf, &done), VD_OK);
    assert_int_equal(done, strlen(NEW_TEXT));
    assert_memory_equal(buf, NEW_TEXT, done);
    assert_int_equal(vd_file_close(f), VD_OK);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    fsck_clean(img);
    assert_int_equal(vd_image_close(img), VD_OK);
    vd_host_mem_free(h);
    sodium_memzero(key, sizeof key);
}

static void test_format2_roundtrip(void **state)
{
    (void)state;
    old_format_roundtrip(VD_TEST_DATA "/format2", 2);
}

static void test_format3_roundtrip(void **state)
{
    (void)state;
    old_format_roundtrip(VD_TEST_DATA "/format3", 3);
}

static void test_format4_roundtrip(void **state)
{
    (void)state;
    old_format_roundtrip(VD_TEST_DATA "/format4", 4);
}

int main(void)
{
    if (system("gzip --version >/dev/null 2>&1") != 0) {
        printf("skip: gzip not found (needed to unpack tests/data/format2 to format4)\n");
        return 77;
    }
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format2_roundtrip),
        cmocka_unit_test(test_format3_roundtrip),
        cmocka_unit_test(test_format4_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
