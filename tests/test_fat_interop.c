/* Interoperability with Debian's dosfstools and mtools, the oracles of
 * DESIGN.md §6:
 *   (a) a vdisk-made volume with a varied tree (long, unicode and
 *       case-differing names, empty files, exactly one cluster and one
 *       cluster + 1 byte, a multi-MiB file, 300 files in one directory,
 *       10-level-deep directories) is exported block by block to a raw
 *       file; `fsck.fat -n` must find nothing and `mcopy -s` must give
 *       back the tree byte-exact;
 *   (b) volumes made by `mkfs.fat -F 32` (several sector and cluster sizes,
 *       one or two FATs) and filled by `mcopy` are imported into images
 *       and read back byte-exact through vd_fs;
 *   (c) after deletes, renames, truncates and new files on our side, both
 *       kinds are exported and checked by fsck.fat and mcopy again.
 * Skipped, with the reason printed, when the tools are missing. The
 * expected contents come from a generator (fu_fill), never from vdisk. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fat_util.h"

/* ---- the tree ---- */

typedef struct spec {
    char path[600]; /* relative to the volume root, no leading '/' */
    int is_dir;
    int mtools_ok; /* name survives mtools (non-BMP does not) */
    uint64_t id;
    size_t len, keep; /* bytes [0, keep) from the generator, then zeros */
} spec;

typedef struct tree {
    spec *v;
    size_t n, cap;
} tree;

/* dst = a + b, failing the test (not truncating) when it does not fit. */
static void join(char *dst, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > cap)
        fail_msg("path too long: %s%s", a, b);
    memmove(dst, a, la);
    memcpy(dst + la, b, lb);
    dst[la + lb] = 0;
}

static spec *add(tree *t, int is_dir, const char *path, uint64_t id, size_t len)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = realloc(t->v, t->cap * sizeof *t->v);
        assert_non_null(t->v);
    }
    spec *s = &t->v[t->n++];
    memset(s, 0, sizeof *s);
    join(s->path, sizeof s->path, path, "");
    s->is_dir = is_dir;
    s->mtools_ok = 1;
    s->id = id;
    s->len = s->keep = len;
    return s;
}

static spec *find(tree *t, const char *path)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i].path, path) == 0)
            return &t->v[i];
    fail_msg("no spec for %s", path);
    return NULL;
}

static void build_tree(tree *t, const char *top, uint32_t cluster, int many, int nonbmp)
{
    char p[600], q[700];
    uint64_t id = 100;
    add(t, 1, top, 0, 0);
    snprintf(p, sizeof p, "%s/empty.txt", top);
    add(t, 0, p, id++, 0);
    snprintf(p, sizeof p, "%s/one cluster.bin", top);
    add(t, 0, p, id++, cluster);
    snprintf(p, sizeof p, "%s/one cluster plus one.bin", top);
    add(t, 0, p, id++, cluster + 1);
    snprintf(p, sizeof p, "%s/big file.bin", top);
    add(t, 0, p, id++, (3u << 20) + 12345);
    const char *names[] = {"MixedCase.TXT",
                           "lower.txt",
                           "UPPER.TXT",
                           "Short.c",
                           "x",
                           "a.b.c.d",
                           "name with  spaces",
                           "ünïcødé façade.txt",
                           "日本語のファイル名.txt",
                           "Ελληνικά και кириллица",
                           "semi;colon+plus=eq[1]",
                           "A Very Long File Name That Needs Several LFN Entries "
                           "Because It Is Longer Than Thirteen Units.dat"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(p, sizeof p, "%s/%s", top, names[i]);
        add(t, 0, p, id++, 100 + i * 333);
    }
    /* The longest names: 255 units, and exact multiples of 13 units (no
     * terminator in the last LFN entry). */
    char lname[260];
    size_t lens[] = {255, 13, 26, 12, 14};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        for (size_t k = 0; k < lens[i]; k++)
            lname[k] = (char)('a' + (k + i) % 26);
        lname[lens[i]] = 0;
        snprintf(p, sizeof p, "%s/%s", top, lname);
        add(t, 0, p, id++, 10 + i);
    }
    if (nonbmp) { /* mtools 4.0.32 drops characters outside the BMP */
        snprintf(p, sizeof p, "%s/emoji 😀 𝄞.bin", top);
        add(t, 0, p, id++, 77)->mtools_ok = 0;
    }
    snprintf(p, sizeof p, "%s/Long Directory Name", top);
    add(t, 1, p, 0, 0);
    snprintf(q, sizeof q, "%s/inside.txt", p);
    add(t, 0, q, id++, 4321);
    /* 10 levels deep. */
    snprintf(p, sizeof p, "%s", top);
    for (int lvl = 0; lvl < 10; lvl++) {
        size_t l = strlen(p);
        snprintf(p + l, sizeof p - l, "/level%d", lvl);
        add(t, 1, p, 0, 0);
    }
    snprintf(q, sizeof q, "%s/deep file.txt", p);
    add(t, 0, q, id++, 999);
    if (many) {
        snprintf(p, sizeof p, "%s/many", top);
        add(t, 1, p, 0, 0);
        for (int i = 0; i < 300; i++) {
            if (i % 2)
                snprintf(q, sizeof q, "%s/file number %03d with a long name.txt", p, i);
            else
                snprintf(q, sizeof q, "%s/F%03d.TXT", p, i);
            add(t, 0, q, id++, (size_t)(i % 17) * 61);
        }
    }
}

static void content(const spec *s, uint8_t *buf)
{
    fu_fill(buf, s->keep, s->id, 0);
    memset(buf + s->keep, 0, s->len - s->keep);
}

/* ---- vdisk side ---- */

static void write_vdisk(vd_fs *fs, const tree *t)
{
    char p[700];
    for (size_t i = 0; i < t->n; i++) {
        const spec *s = &t->v[i];
        snprintf(p, sizeof p, "/%s", s->path);
        if (s->is_dir) {
            FU_EXPECT(vd_fs_mkdir(fs, p), VD_OK, "%s", p);
            continue;
        }
        vd_file *f;
        FU_EXPECT(vd_file_open(fs, p, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f), VD_OK,
                  "%s", p);
        uint8_t *buf = malloc(s->len + 1);
        assert_non_null(buf);
        content(s, buf);
        size_t done;
        FU_OK(vd_file_write(f, 0, buf, s->len, &done));
        assert_int_equal(done, s->len);
        FU_OK(vd_file_close(f));
        free(buf);
    }
}

static void verify_vdisk(vd_fs *fs, const tree *t)
{
    char p[700];
    for (size_t i = 0; i < t->n; i++) {
        const spec *s = &t->v[i];
        snprintf(p, sizeof p, "/%s", s->path);
        vd_stat st;
        FU_EXPECT(vd_fs_stat(fs, p, &st), VD_OK, "%s", p);
        assert_int_equal(st.is_dir, s->is_dir);
        if (s->is_dir) {
            /* Exactly the children the spec names. */
            size_t want = 0, got = 0, plen = strlen(s->path);
            for (size_t k = 0; k < t->n; k++)
                if (strncmp(t->v[k].path, s->path, plen) == 0 &&
                    t->v[k].path[plen] == '/' && !strchr(t->v[k].path + plen + 1, '/'))
                    want++;
            vd_dir *d;
            vd_dirent de;
            FU_OK(vd_dir_open(fs, p, &d));
            vd_err r;
            while ((r = vd_dir_read(d, &de)) == VD_OK) {
                char c[1700];
                snprintf(c, sizeof c, "%s/%s", s->path, de.name);
                const spec *cs = find((tree *)t, c); /* exact name and case */
                assert_int_equal(cs->is_dir, de.is_dir);
                got++;
            }
            FU_EXPECT(r, VD_ERR_NOENT, "listing %s", p);
            FU_OK(vd_dir_close(d));
            if (got != want)
                fail_msg("%s: %zu entries, want %zu", p, got, want);
            continue;
        }
        assert_int_equal(st.size, s->len);
        vd_file *f;
        FU_OK(vd_file_open(fs, p, VD_O_RDONLY, &f));
        uint8_t *buf = malloc(s->len + 64), *want = malloc(s->len + 1);
        assert_non_null(buf);
        assert_non_null(want);
        size_t done;
        FU_OK(vd_file_read(f, 0, buf, s->len + 64, &done));
        content(s, want);
        if (done != s->len || memcmp(buf, want, s->len) != 0)
            fail_msg("%s: content differs (read %zu of %zu)", p, done, s->len);
        FU_OK(vd_file_close(f));
        free(buf);
        free(want);
    }
}

/* ---- host side ---- */

static void mkdirs(const char *path)
{
    char p[1200];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST)
                fail_msg("mkdir %s: %s", p, strerror(errno));
            *s = '/';
        }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        fail_msg("mkdir %s: %s", p, strerror(errno));
}

static void write_local(const char *root, const tree *t)
{
    char p[1200];
    for (size_t i = 0; i < t->n; i++) {
        const spec *s = &t->v[i];
        snprintf(p, sizeof p, "%s/%s", root, s->path);
        if (s->is_dir) {
            mkdirs(p);
            continue;
        }
        FILE *f = fopen(p, "wb");
        if (!f)
            fail_msg("create %s: %s", p, strerror(errno));
        uint8_t *buf = malloc(s->len + 1);
        assert_non_null(buf);
        content(s, buf);
        assert_int_equal(fwrite(buf, 1, s->len, f), s->len);
        assert_int_equal(fclose(f), 0);
        free(buf);
    }
}

static size_t count_local(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        assert_int_equal(lstat(p, &st), 0);
        n++;
        if (S_ISDIR(st.st_mode))
            n += count_local(p);
    }
    closedir(d);
    return n;
}

/* mcopy's copy of the tree must hold exactly the spec, byte for byte. */
static void verify_local(const char *root, const tree *t)
{
    char p[1200];
    size_t expect = 0;
    for (size_t i = 0; i < t->n; i++) {
        const spec *s = &t->v[i];
        expect++;
        if (!s->mtools_ok)
            continue;
        snprintf(p, sizeof p, "%s/%s", root, s->path);
        struct stat st;
        if (lstat(p, &st) != 0)
            fail_msg("mcopy output lacks %s", s->path);
        assert_int_equal(S_ISDIR(st.st_mode) ? 1 : 0, s->is_dir);
        if (s->is_dir)
            continue;
        assert_int_equal((size_t)st.st_size, s->len);
        FILE *f = fopen(p, "rb");
        assert_non_null(f);
        uint8_t *buf = malloc(s->len + 1), *want = malloc(s->len + 1);
        assert_non_null(buf);
        assert_non_null(want);
        assert_int_equal(fread(buf, 1, s->len, f), s->len);
        fclose(f);
        content(s, want);
        if (memcmp(buf, want, s->len) != 0)
            fail_msg("%s: mcopy copy differs", s->path);
        free(buf);
        free(want);
    }
    size_t got = count_local(root);
    if (got != expect)
        fail_msg("mcopy gave %zu entries, the tree has %zu", got, expect);
}

static int tools_present(void)
{
    return system("command -v fsck.fat >/dev/null 2>&1 && command -v mcopy "
                  ">/dev/null 2>&1 && command -v mkfs.fat >/dev/null 2>&1") == 0;
}

static char g_tmp[256];

static int setup(void **state)
{
    (void)state;
    setenv("MTOOLS_SKIP_CHECK", "1", 1);
    setenv("LC_ALL", "C.UTF-8", 1); /* mtools writes UTF-8 names */
    snprintf(g_tmp, sizeof g_tmp, "/tmp/vd-fat-interop-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* fsck.fat -n and mcopy -s of the whole volume into outdir. */
static void check_with_tools(fu_disk *d, const tree *t, const char *tag)
{
    char raw[512], out[512], cmd[2048];
    snprintf(raw, sizeof raw, "%s/%s.raw", g_tmp, tag);
    snprintf(out, sizeof out, "%s/%s.out", g_tmp, tag);
    assert_int_equal(fu_export_file(d, raw), 0);
    snprintf(cmd, sizeof cmd, "fsck.fat -n '%s'", raw);
    if (fu_run(cmd) != 0)
        fail_msg("fsck.fat -n reported problems on %s", tag);
    /* -v lists every file fsck sees; a clean run prints no "Fix" hint. */
    snprintf(
        cmd, sizeof cmd,
        "fsck.fat -n -v '%s' | grep -qiE 'fix|wrong|invalid|bad' && exit 1 || exit 0",
        raw);
    if (fu_run(cmd) != 0)
        fail_msg("fsck.fat -v flagged something on %s", tag);
    mkdirs(out);
    snprintf(cmd, sizeof cmd, "mcopy -s -n -m -i '%s' ::/ '%s'", raw, out);
    if (fu_run(cmd) != 0)
        fail_msg("mcopy failed on %s", tag);
    verify_local(out, t);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", raw, out);
    assert_int_equal(fu_run(cmd), 0);
}

/* (c): changes on our side, mirrored in the spec. */
static void mutate(vd_fs *fs, tree *t, const char *top, uint32_t cluster)
{
    char a[700], b[700];
    /* delete */
    snprintf(a, sizeof a, "/%s/lower.txt", top);
    spec *s = find(t, a + 1);
    FU_OK(vd_fs_unlink(fs, a));
    *s = t->v[--t->n];
    /* rename a file across directories, onto a new long name */
    snprintf(a, sizeof a, "/%s/one cluster.bin", top);
    snprintf(b, sizeof b, "/%s/Long Directory Name/renamed one cluster file.bin", top);
    FU_OK(vd_fs_rename(fs, a, b, 0));
    s = find(t, a + 1);
    join(s->path, sizeof s->path, b + 1, "");
    /* rename a directory (with contents) */
    snprintf(a, sizeof a, "/%s/level0", top);
    snprintf(b, sizeof b, "/%s/Long Directory Name/moved level0", top);
    FU_OK(vd_fs_rename(fs, a, b, 0));
    size_t la = strlen(a + 1);
    for (size_t i = 0; i < t->n; i++)
        if (strncmp(t->v[i].path, a + 1, la) == 0 &&
            (t->v[i].path[la] == 0 || t->v[i].path[la] == '/')) {
            char rest[600];
            snprintf(rest, sizeof rest, "%s", t->v[i].path + la);
            join(t->v[i].path, sizeof t->v[i].path, b + 1, rest);
        }
    /* truncate: shrink the big file to an odd size, grow a small one */
    snprintf(a, sizeof a, "/%s/big file.bin", top);
    vd_file *f;
    FU_OK(vd_file_open(fs, a, VD_O_RDWR, &f));
    FU_OK(vd_file_truncate(f, (uint64_t)cluster * 3 + 7));
    FU_OK(vd_file_close(f));
    s = find(t, a + 1);
    s->len = s->keep = (size_t)cluster * 3 + 7;
    snprintf(a, sizeof a, "/%s/x", top);
    FU_OK(vd_file_open(fs, a, VD_O_RDWR, &f));
    FU_OK(vd_file_truncate(f, 70000));
    FU_OK(vd_file_close(f));
    s = find(t, a + 1);
    s->len = 70000;
    /* replace a file by rename */
    snprintf(a, sizeof a, "/%s/UPPER.TXT", top);
    snprintf(b, sizeof b, "/%s/Short.c", top);
    FU_OK(vd_fs_rename(fs, a, b, 0));
    spec *from = find(t, a + 1), *to = find(t, b + 1);
    to->id = from->id;
    to->len = from->len;
    to->keep = from->keep;
    *from = t->v[--t->n];
    /* new files in reused slots and a new directory */
    snprintf(a, sizeof a, "/%s/a brand new file after deletes.txt", top);
    s = add(t, 0, a + 1, 9001, 5000);
    vd_file *g;
    FU_OK(vd_file_open(fs, a, VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &g));
    uint8_t buf[5000];
    fu_fill(buf, sizeof buf, 9001, 0);
    size_t done;
    FU_OK(vd_file_write(g, 0, buf, sizeof buf, &done));
    FU_OK(vd_file_close(g));
    snprintf(a, sizeof a, "/%s/new dir", top);
    FU_OK(vd_fs_mkdir(fs, a));
    add(t, 1, a + 1, 0, 0);
}

static void test_vdisk_to_tools(void **state)
{
    (void)state;
    if (!tools_present())
        skip(); /* prints as SKIPPED: dosfstools/mtools not installed */
    fu_disk d;
    fu_disk_new(&d, 10240);
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.label = "INTEROP";
    FU_OK(vd_fs_format(d.img, &mo));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    vd_statfs sf;
    FU_OK(vd_fs_statfs(fs, &sf));
    tree t = {0};
    build_tree(&t, "tree", sf.cluster_bytes, 1, 1);
    write_vdisk(fs, &t);
    /* Names differing only in case are one file on FAT. */
    vd_file *f;
    FU_EXPECT(
        vd_file_open(fs, "/tree/mixedcase.txt", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
        VD_ERR_EXIST, "case-insensitive names");
    FU_EXPECT(vd_fs_mkdir(fs, "/TREE/LONG DIRECTORY NAME"), VD_ERR_EXIST, "dir");
    verify_vdisk(fs, &t);
    FU_OK(vd_fs_unmount(fs));
    check_with_tools(&d, &t, "a");
    /* (c) */
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    mutate(fs, &t, "tree", sf.cluster_bytes);
    verify_vdisk(fs, &t);
    FU_OK(vd_fs_unmount(fs));
    check_with_tools(&d, &t, "c");
    free(t.v);
    fu_disk_free(&d);
}

static void import_variant(const char *args, uint32_t kib)
{
    char raw[512], src[512], cmd[2048];
    snprintf(raw, sizeof raw, "%s/mkfs.raw", g_tmp);
    snprintf(src, sizeof src, "%s/src", g_tmp);
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s' '%s' && mkfs.fat -F 32 %s -n MKFS -C '%s' %u >/dev/null", raw,
             src, args, raw, kib);
    if (fu_run(cmd) != 0)
        fail_msg("mkfs.fat %s failed", args);
    /* The cluster size mkfs.fat chose, from its boot sector. */
    FILE *rf = fopen(raw, "rb");
    assert_non_null(rf);
    uint8_t bs[64];
    assert_int_equal(fread(bs, 1, sizeof bs, rf), sizeof bs);
    fclose(rf);
    uint32_t cluster = (uint32_t)(bs[11] | bs[12] << 8) * bs[13];
    print_message("[ variant  ] mkfs.fat -F 32 %s, %u KiB: %u-byte sectors, "
                  "%u-byte clusters, %u FAT(s)\n",
                  args, kib, bs[11] | bs[12] << 8, cluster, bs[16]);
    tree t = {0};
    build_tree(&t, "tree", cluster, 1, 0);
    write_local(src, &t);
    snprintf(cmd, sizeof cmd, "mcopy -s -i '%s' '%s/tree' ::/", raw, src);
    if (fu_run(cmd) != 0)
        fail_msg("mcopy into the mkfs.fat volume failed");
    fu_disk d;
    fu_disk_new(&d, kib / 4);
    assert_int_equal(fu_import_file(&d, raw), 0);
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    vd_statfs sf;
    FU_OK(vd_fs_statfs(fs, &sf));
    assert_int_equal(sf.cluster_bytes, cluster);
    assert_string_equal(sf.label, "MKFS");
    verify_vdisk(fs, &t);
    mutate(fs, &t, "tree", cluster);
    verify_vdisk(fs, &t);
    FU_OK(vd_fs_unmount(fs));
    check_with_tools(&d, &t, "b");
    fu_disk_free(&d);
    free(t.v);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", raw, src);
    assert_int_equal(fu_run(cmd), 0);
}

static void test_tools_to_vdisk(void **state)
{
    (void)state;
    if (!tools_present())
        skip();
    import_variant("-s 1", 40960);      /* 512-byte clusters */
    import_variant("-f 1 -s 2", 71680); /* one FAT, 1 KiB clusters */
    import_variant("-S 2048", 139264);  /* 2 KiB sectors */
    import_variant("-S 4096", 278528);  /* 4 KiB sectors */
    import_variant("", 307200);         /* mkfs.fat's own choice: 4 KiB */
}

/* ---- vd_fs_export / vd_fs_import (library calls) ---- */

static int file_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
    FILE *f = ctx;
    return fseeko(f, (off_t)off, SEEK_SET) == 0 && fwrite(buf, 1, len, f) == len ? 0 : -1;
}

static int file_source(void *ctx, uint64_t off, void *buf, size_t len)
{
    FILE *f = ctx;
    return fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(buf, 1, len, f) == len ? 0 : -1;
}

static int fail_sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    return off > 0 ? -1 : 0;
}

static void test_export_import_calls(void **state)
{
    (void)state;
    if (!tools_present())
        skip();
    char raw[512], out[512], src[512], cmd[2048];
    snprintf(raw, sizeof raw, "%s/lib.raw", g_tmp);
    snprintf(out, sizeof out, "%s/lib-export.raw", g_tmp);
    snprintf(src, sizeof src, "%s/libsrc", g_tmp);
    snprintf(cmd, sizeof cmd, "mkfs.fat -F 32 -s 1 -C '%s' 40960 >/dev/null", raw);
    assert_int_equal(fu_run(cmd), 0);
    tree t = {0};
    build_tree(&t, "tree", 512, 0, 0);
    write_local(src, &t);
    snprintf(cmd, sizeof cmd, "mcopy -s -i '%s' '%s/tree' ::/", raw, src);
    assert_int_equal(fu_run(cmd), 0);
    fu_disk d;
    fu_disk_new(&d, 10240);
    /* Not FAT32: refused before anything is written. */
    FILE *f = fopen(raw, "rb");
    assert_non_null(f);
    FU_EXPECT(vd_fs_import(d.img, file_source, f, (uint64_t)40960 * 1024 - 4096),
              VD_ERR_CORRUPT, "size below the BPB's");
    FU_EXPECT(vd_fs_import(d.img, file_source, f, (uint64_t)40960 * 1024 + 4096 * 10240),
              VD_ERR_RANGE, "larger than the image");
    FU_OK(vd_fs_import(d.img, file_source, f, (uint64_t)40960 * 1024));
    fclose(f);
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    verify_vdisk(fs, &t);
    FU_OK(vd_fs_unmount(fs)); /* nothing changed: nothing written */
    /* Export (sparse) and compare with mkfs.fat + mcopy's bytes. */
    f = fopen(out, "wb");
    assert_non_null(f);
    uint64_t vb = 0;
    FU_OK(vd_fs_export(d.img, file_sink, f, 1, &vb));
    assert_int_equal(vb, (uint64_t)40960 * 1024);
    assert_int_equal(ftruncate(fileno(f), (off_t)vb), 0);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "cmp '%s' '%s'", raw, out);
    if (fu_run(cmd) != 0)
        fail_msg("export differs from the imported volume");
    /* Dense export gives the same bytes; a failing sink is VD_ERR_IO. */
    f = fopen(out, "wb");
    assert_non_null(f);
    FU_OK(vd_fs_export(d.img, file_sink, f, 0, &vb));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(fu_run(cmd), 0);
    FU_EXPECT(vd_fs_export(d.img, fail_sink, NULL, 0, &vb), VD_ERR_IO, "sink");
    /* An image without FAT32 cannot be exported. */
    uint8_t zero[4096] = {0};
    FU_OK(vd_image_write(d.img, 0, 1, zero));
    FU_EXPECT(vd_fs_export(d.img, file_sink, NULL, 0, &vb), VD_ERR_CORRUPT, "no BPB");
    fu_disk_free(&d);
    free(t.v);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", raw, out, src);
    assert_int_equal(fu_run(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vdisk_to_tools),
        cmocka_unit_test(test_tools_to_vdisk),
        cmocka_unit_test(test_export_import_calls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
