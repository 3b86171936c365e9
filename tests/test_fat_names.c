/* File names on FAT32 (libvdisk/fat/names.c and the directory code):
 * UTF-8 <-> UTF-16 incl. non-BMP characters as surrogate pairs, invalid
 * UTF-8 and illegal characters refused, the 255-unit limit, case folding,
 * 8.3 fitting with the NT lower-case bits, basis names and ~N tails, LFN
 * checksums (checked against the specification's formula written out
 * here), and the on-disk result: long names split across entries in
 * descending order, 0x0000 + 0xFFFF padding, unique aliases under
 * collisions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "endian.h"
#include "fat/fat_internal.h"
#include "fat_util.h"

/* The specification's checksum (FAT spec §7.2), independent of ours. */
static uint8_t spec_checksum(const uint8_t *n)
{
    uint8_t sum = 0;
    for (int len = 11; len != 0; len--)
        sum = (uint8_t)(((sum & 1) ? 0x80 : 0) + (sum >> 1) + *n++);
    return sum;
}

static void test_checksum(void **state)
{
    (void)state;
    const char *names[] = {"FOO     BAR", "THEQUI~1FOX", "README  TXT", "A          ",
                           "~~~~~~~~~~~"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        assert_int_equal(fat_lfn_checksum((const uint8_t *)names[i]),
                         spec_checksum((const uint8_t *)names[i]));
    uint8_t n[11];
    uint64_t s = 7;
    for (int r = 0; r < 1000; r++) {
        for (int k = 0; k < 11; k++) {
            s = s * 6364136223846793005ull + 1;
            n[k] = (uint8_t)(s >> 56);
        }
        assert_int_equal(fat_lfn_checksum(n), spec_checksum(n));
    }
}

static size_t u16(const char *s, uint16_t *out)
{
    size_t n = 0;
    FU_EXPECT(fat_utf8_to_utf16(s, strlen(s), out, &n), VD_OK, "%s", s);
    return n;
}

static void test_utf(void **state)
{
    (void)state;
    uint16_t u[FAT_NAME_MAX + 8];
    char back[1100];
    assert_int_equal(u16("aé日", u), 3);
    assert_int_equal(u[0], 'a');
    assert_int_equal(u[1], 0xE9);
    assert_int_equal(u[2], 0x65E5);
    /* Non-BMP: surrogate pairs. */
    assert_int_equal(u16("😀𝄞", u), 4);
    assert_int_equal(u[0], 0xD83D);
    assert_int_equal(u[1], 0xDE00);
    assert_int_equal(u[2], 0xD834);
    assert_int_equal(u[3], 0xDD1E);
    FU_OK(fat_utf16_to_utf8(u, 4, back, sizeof back));
    assert_string_equal(back, "😀𝄞");
    /* Unpaired surrogates (foreign volumes) come out as U+FFFD. */
    uint16_t lone[2] = {0xD800, 'x'};
    FU_OK(fat_utf16_to_utf8(lone, 2, back, sizeof back));
    assert_string_equal(back, "\xEF\xBF\xBDx");
    FU_EXPECT(fat_utf16_to_utf8(u, 4, back, 8), VD_ERR_NAME, "small buffer");
    const char *bad[] = {
        "\x80",         "\xC3",         "\xC0\x80",         "\xC1\xBF",
        "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80",
        "\xFF",         "a\xE6\x97"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t n;
        FU_EXPECT(fat_utf8_to_utf16(bad[i], strlen(bad[i]), u, &n), VD_ERR_NAME,
                  "bad #%zu", i);
    }
    /* 255 UTF-16 units at most, surrogate pairs counting two. */
    char name[1100];
    memset(name, 'a', 255);
    name[255] = 0;
    assert_int_equal(u16(name, u), 255);
    size_t n;
    name[255] = 'a';
    name[256] = 0;
    FU_EXPECT(fat_utf8_to_utf16(name, 256, u, &n), VD_ERR_NAME, "256 units");
    name[0] = 0;
    for (int i = 0; i < 127; i++)
        strcat(name, "😀");
    assert_int_equal(u16(name, u), 254);
    strcat(name, "😀");
    FU_EXPECT(fat_utf8_to_utf16(name, strlen(name), u, &n), VD_ERR_NAME, "256 units");
}

static void test_check_and_case(void **state)
{
    (void)state;
    uint16_t u[FAT_NAME_MAX + 8];
    size_t n = u16("abc...", u);
    FU_OK(fat_name_check(u, &n));
    assert_int_equal(n, 3); /* trailing dots dropped, as Windows/Linux do */
    const char *bad[] = {".",  "..", "...", "   ", "a/b", "a\\b", "a:b",
                         "a*", "a?", "a\"", "a<",  "a>",  "a|",   "tab\t"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        n = u16(bad[i], u);
        FU_EXPECT(fat_name_check(u, &n), VD_ERR_NAME, "'%s'", bad[i]);
    }
    const char *good[] = {" lead",   "a b", "semi;colon", "plus+eq=[]",
                          ".hidden", "ünï", "😀"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        n = u16(good[i], u);
        FU_EXPECT(fat_name_check(u, &n), VD_OK, "'%s'", good[i]);
    }
    uint16_t a[64], b[64];
    const char *same[][2] = {{"readme.TXT", "README.txt"},
                             {"éàü", "ÉÀÜ"},
                             {"привет", "ПРИВЕТ"},
                             {"αβγ", "ΑΒΓ"},
                             {"ÿ", "Ÿ"},
                             {"ąčę", "ĄČĘ"}};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        size_t na = u16(same[i][0], a), nb = u16(same[i][1], b);
        assert_true(fat_name_equal(a, na, b, nb));
    }
    const char *diff[][2] = {{"a", "b"}, {"ab", "abc"}, {"😀", "😁"}, {"ß", "SS"}};
    for (size_t i = 0; i < sizeof diff / sizeof *diff; i++) {
        size_t na = u16(diff[i][0], a), nb = u16(diff[i][1], b);
        assert_false(fat_name_equal(a, na, b, nb));
    }
}

static void test_83(void **state)
{
    (void)state;
    uint16_t u[64];
    uint8_t sfn[11], ntres;
    struct {
        const char *name;
        int fits;
        const char *sfn;
        uint8_t ntres;
    } c[] = {
        {"README.TXT", 1, "README  TXT", 0},
        {"readme.txt", 1, "README  TXT", 0x18},
        {"README.txt", 1, "README  TXT", 0x10},
        {"readme.TXT", 1, "README  TXT", 0x08},
        {"ReadMe.txt", 0, NULL, 0},
        {"A", 1, "A          ", 0},
        {"12345678.123", 1, "12345678123", 0},
        {"123456789", 0, NULL, 0},
        {"a.b.c", 0, NULL, 0},
        {"a.tool", 0, NULL, 0},
        {"a b", 0, NULL, 0},
        {"a+b", 0, NULL, 0},
        {"é", 0, NULL, 0},
        {".x", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        size_t n = u16(c[i].name, u);
        int fits = fat_name_fits_83(u, n, sfn, &ntres);
        if (fits != c[i].fits)
            fail_msg("%s: fits %d", c[i].name, fits);
        if (fits) {
            assert_memory_equal(sfn, c[i].sfn, 11);
            assert_int_equal(ntres, c[i].ntres);
            uint16_t back[16];
            size_t bn = fat_sfn_to_utf16(sfn, ntres, back);
            assert_true(bn == n && memcmp(back, u, n * 2) == 0);
        }
    }
    struct {
        const char *name;
        const char *basis;
        int lossy;
    } b[] = {
        {"The quick brown.fox", "THEQUICKFOX", 1},
        {"Foo.txt", "FOO     TXT", 0},
        {".bashrc", "BASHRC     ", 1},
        {"a+b=c.text", "A_B_C   TEX", 1},
        {"x.tar.gz", "XTAR    GZ ", 1},
        {"ünï.txt", "_N_     TXT", 1},
        {"...", "_          ", 1},
    };
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
        size_t n = u16(b[i].name, u);
        int lossy;
        fat_name_basis(u, n, sfn, &lossy);
        if (memcmp(sfn, b[i].basis, 11) != 0)
            fail_msg("%s: basis '%.11s', want '%s'", b[i].name, (char *)sfn, b[i].basis);
        assert_int_equal(lossy, b[i].lossy);
    }
    uint8_t out[11];
    fat_name_tail((const uint8_t *)"THEQUICKFOX", 1, out);
    assert_memory_equal(out, "THEQUI~1FOX", 11);
    fat_name_tail((const uint8_t *)"THEQUICKFOX", 10, out);
    assert_memory_equal(out, "THEQU~10FOX", 11);
    fat_name_tail((const uint8_t *)"THEQUICKFOX", 123456, out);
    assert_memory_equal(out, "T~123456FOX", 11);
    fat_name_tail((const uint8_t *)"AB      C  ", 3, out);
    assert_memory_equal(out, "AB~3    C  ", 11);
    uint16_t back[16];
    size_t bn = fat_sfn_to_utf16((const uint8_t *)"\x05"
                                                  "BC     TXT",
                                 0, back);
    assert_int_equal(bn, 7);
    assert_int_equal(back[0], 0xE5);
}

/* ---- on disk ---- */

typedef struct rawvol {
    uint8_t *raw;
    uint32_t bps, spc, rsvd, fatsz, nfats, root;
} rawvol;

static void raw_open(fu_disk *d, rawvol *v)
{
    v->raw = fu_export(d);
    v->bps = vd_get_le16(v->raw + 11);
    v->spc = v->raw[13];
    v->rsvd = vd_get_le16(v->raw + 14);
    v->nfats = v->raw[16];
    v->fatsz = vd_get_le32(v->raw + 36);
    v->root = vd_get_le32(v->raw + 44);
}

/* Every 32-byte slot of the root directory up to the end marker. */
static size_t raw_root(const rawvol *v, uint8_t (**slots)[32])
{
    size_t n = 0, cap = 0;
    uint32_t c = v->root, cb = v->bps * v->spc;
    uint64_t data = ((uint64_t)v->rsvd + (uint64_t)v->nfats * v->fatsz) * v->bps;
    *slots = NULL;
    while (c >= 2 && c < 0x0FFFFFF8) {
        const uint8_t *cl = v->raw + data + (uint64_t)(c - 2) * cb;
        for (uint32_t i = 0; i < cb; i += 32) {
            if (cl[i] == 0)
                return n;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                *slots = realloc(*slots, cap * 32);
                assert_non_null(*slots);
            }
            memcpy((*slots)[n++], cl + i, 32);
        }
        c = vd_get_le32(v->raw + (uint64_t)v->rsvd * v->bps + 4ull * c) & 0x0FFFFFFF;
    }
    return n;
}

static void mk(vd_fs *fs, const char *path, const char *data)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f), VD_OK, "%s",
              path);
    size_t done;
    FU_OK(vd_file_write(f, 0, data, strlen(data), &done));
    FU_OK(vd_file_close(f));
}

static void test_on_disk(void **state)
{
    (void)state;
    fu_disk d;
    fu_disk_new(&d, 10240);
    FU_OK(vd_fs_format(d.img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    const char *longname = "A long name of thirty units!!"; /* 29 units */
    mk(fs, "/A long name of thirty units!!", "L");
    mk(fs, "/readme.txt", "r");
    mk(fs, "/Foo.txt", "F");
    mk(fs, "/😀.txt", "E");
    for (int i = 1; i <= 12; i++) {
        char p[64];
        snprintf(p, sizeof p, "/Long File Name %d.txt", i);
        mk(fs, p, p);
    }
    /* An existing alias names its file, as on Windows and Linux. */
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, "/LONGFI~1.TXT", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "alias");
    /* A long name may still look like an alias ("X~1" with its own
     * alias): its short name must not duplicate another. */
    mk(fs, "/Longfi~9 with a longer tail.TXT", "alias-like");
    FU_EXPECT(vd_file_open(fs, "/README.TXT", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "case");
    FU_EXPECT(vd_file_open(fs, "/foo.TXT", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "case");
    FU_OK(vd_fs_unmount(fs));
    rawvol v;
    raw_open(&d, &v);
    uint8_t(*s)[32];
    size_t n = raw_root(&v, &s);
    /* Slot 0: the long name, three LFN entries, highest ordinal first. */
    assert_int_equal(s[0][0], 0x43);
    assert_int_equal(s[1][0], 0x02);
    assert_int_equal(s[2][0], 0x01);
    uint8_t chk = spec_checksum(s[3]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s[i][11], 0x0F);
        assert_int_equal(s[i][12], 0);
        assert_int_equal(vd_get_le16(s[i] + 26), 0);
        assert_int_equal(s[i][13], chk);
    }
    uint16_t units[39];
    for (int e = 0; e < 3; e++) {
        const uint8_t *x = s[2 - e];
        for (int k = 0; k < 13; k++) {
            size_t at = k < 5 ? 1 + 2 * k : k < 11 ? 14 + 2 * (k - 5) : 28 + 2 * (k - 11);
            units[e * 13 + k] = vd_get_le16(x + at);
        }
    }
    for (size_t i = 0; i < strlen(longname); i++)
        assert_int_equal(units[i], (uint8_t)longname[i]);
    assert_int_equal(units[29], 0x0000);
    for (int i = 30; i < 39; i++)
        assert_int_equal(units[i], 0xFFFF);
    assert_memory_equal(s[3], "ALONGN~1   ", 11);
    /* readme.txt: one short entry with the NT lower-case bits. */
    assert_memory_equal(s[4], "README  TXT", 11);
    assert_int_equal(s[4][12], 0x18);
    /* Foo.txt: LFN + tail-less alias. */
    assert_int_equal(s[5][0], 0x41);
    assert_memory_equal(s[6], "FOO     TXT", 11);
    assert_int_equal(s[5][13], spec_checksum(s[6]));
    /* 😀.txt: a surrogate pair in the LFN. */
    assert_int_equal(s[7][0], 0x41);
    assert_int_equal(vd_get_le16(s[7] + 1), 0xD83D);
    assert_int_equal(vd_get_le16(s[7] + 3), 0xDE00);
    assert_int_equal(vd_get_le16(s[7] + 5), '.');
    /* Collisions: LONGFI~1..~9, then LONGF~10.., all short names unique. */
    size_t shorts = 0;
    uint8_t seen[64][11];
    for (size_t i = 0; i < n; i++) {
        if (s[i][0] == 0xE5 || s[i][11] == 0x0F || (s[i][11] & 0x08))
            continue;
        for (size_t k = 0; k < shorts; k++)
            if (memcmp(seen[k], s[i], 11) == 0)
                fail_msg("duplicate short name %.11s", (char *)s[i]);
        memcpy(seen[shorts++], s[i], 11);
    }
    assert_int_equal(shorts, 4 + 12 + 1);
    int found1 = 0, found10 = 0;
    for (size_t k = 0; k < shorts; k++) {
        found1 |= memcmp(seen[k], "LONGFI~1TXT", 11) == 0;
        found10 |= memcmp(seen[k], "LONGF~10TXT", 11) == 0;
    }
    assert_true(found1 && found10);
    free(s);
    free(v.raw);
    /* Names read back exactly. */
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    vd_dir *dir;
    vd_dirent de;
    FU_OK(vd_dir_open(fs, "/", &dir));
    int got = 0;
    while (vd_dir_read(dir, &de) == VD_OK) {
        got += !strcmp(de.name, longname) + !strcmp(de.name, "readme.txt") +
               !strcmp(de.name, "Foo.txt") + !strcmp(de.name, "😀.txt") +
               !strcmp(de.name, "Longfi~9 with a longer tail.TXT");
    }
    FU_OK(vd_dir_close(dir));
    assert_int_equal(got, 5);
    char buf[64];
    size_t done;
    /* The alias opens the long-named file (case-insensitively). */
    FU_OK(vd_file_open(fs, "/longfi~1.txt", VD_O_RDONLY, &f));
    FU_OK(vd_file_read(f, 0, buf, sizeof buf, &done));
    assert_int_equal(done, strlen("/Long File Name 1.txt"));
    assert_memory_equal(buf, "/Long File Name 1.txt", done);
    FU_OK(vd_file_close(f));
    FU_OK(vd_file_open(fs, "/LONGF~10.TXT", VD_O_RDONLY, &f));
    FU_OK(vd_file_read(f, 0, buf, sizeof buf, &done));
    assert_memory_equal(buf, "/Long File Name 10.txt", done);
    FU_OK(vd_file_close(f));
    vd_stat st;
    FU_OK(vd_fs_stat(fs, "/ALONGN~1", &st));
    assert_int_equal(st.size, 1);
    FU_OK(vd_file_open(fs, "/long file name 1.TXT", VD_O_RDONLY, &f));
    FU_OK(vd_file_read(f, 0, buf, sizeof buf, &done));
    assert_int_equal(done, strlen("/Long File Name 1.txt"));
    FU_OK(vd_file_close(f));
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum),       cmocka_unit_test(test_utf),
        cmocka_unit_test(test_check_and_case), cmocka_unit_test(test_83),
        cmocka_unit_test(test_on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
