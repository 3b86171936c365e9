/* Symbolic links in the FAT32 layer (vd_fs_symlink, vd_fs_readlink,
 * vd_fs_lstat and link-following lookups; vdisk/fs.h, docs/FORMAT.md):
 * relative, absolute and directory links, dangling links, ELOOP on a
 * cycle and after 40 links, links that try to leave the volume (they stay
 * inside, as in a chroot), rename/unlink of a link, ordinary 1067-byte
 * files that are not links, the on-disk bytes checked against the
 * Minshall+French format built here by hand (checksums from md5sum), and
 * the exported volume read by vd_fsck, fsck.fat and mtools (a 1067-byte
 * file), and a link file written by mtools read as a link. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fat_util.h"
#include "vdisk/check.h"

#define NBLOCKS 10240u /* 40 MiB */
#define LINK_FILE 1067u

typedef struct env {
    fu_disk d;
    vd_fs *fs;
} env;

static void env_up(env *e, uint32_t cluster)
{
    fu_disk_new(&e->d, NBLOCKS);
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.label = "LINKS";
    mo.cluster_bytes = cluster;
    FU_OK(vd_fs_format(e->d.img, &mo));
    FU_OK(vd_fs_mount(e->d.img, NULL, &e->fs));
}

static void env_down(env *e)
{
    FU_OK(vd_fs_unmount(e->fs));
    fu_disk_free(&e->d);
}

static void put(vd_fs *fs, const char *path, const void *data, size_t len)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f), VD_OK,
              "%s", path);
    size_t done;
    FU_OK(vd_file_write(f, 0, data, len, &done));
    assert_int_equal(done, len);
    FU_OK(vd_file_close(f));
}

static void put_str(vd_fs *fs, const char *path, const char *s)
{
    put(fs, path, s, strlen(s));
}

/* The whole file at path (following links), NUL-terminated. */
static char *get(vd_fs *fs, const char *path)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, path, VD_O_RDONLY, &f), VD_OK, "%s", path);
    static char buf[8192];
    size_t done;
    FU_OK(vd_file_read(f, 0, buf, sizeof buf - 1, &done));
    buf[done] = 0;
    FU_OK(vd_file_close(f));
    return buf;
}

static void expect_link(vd_fs *fs, const char *path, const char *target)
{
    char buf[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    FU_EXPECT(vd_fs_readlink(fs, path, buf, sizeof buf, &len), VD_OK, "%s", path);
    assert_int_equal(len, strlen(target));
    assert_string_equal(buf, target);
    vd_stat st;
    FU_OK(vd_fs_lstat(fs, path, &st));
    assert_int_equal(st.is_link, 1);
    assert_int_equal(st.is_dir, 0);
    assert_int_equal(st.size, strlen(target));
}

static void expect_file(vd_fs *fs, const char *path, const char *content)
{
    assert_string_equal(get(fs, path), content);
    vd_stat st;
    FU_EXPECT(vd_fs_stat(fs, path, &st), VD_OK, "%s", path);
    assert_int_equal(st.is_link, 0);
    assert_int_equal(st.is_dir, 0);
    assert_int_equal(st.size, strlen(content));
}

static void expect_dir(vd_fs *fs, const char *path)
{
    vd_stat st;
    FU_EXPECT(vd_fs_stat(fs, path, &st), VD_OK, "%s", path);
    assert_int_equal(st.is_dir, 1);
    assert_int_equal(st.is_link, 0);
}

/* Is `name` listed in dir, and as what? 0 absent, 1 file, 2 dir, 3 link. */
static int listed(vd_fs *fs, const char *dir, const char *name, uint64_t *size)
{
    vd_dir *d;
    FU_EXPECT(vd_dir_open(fs, dir, &d), VD_OK, "%s", dir);
    vd_dirent ent;
    int kind = 0;
    vd_err e;
    while ((e = vd_dir_read(d, &ent)) == VD_OK)
        if (strcmp(ent.name, name) == 0) {
            assert_false(ent.is_link && ent.is_dir);
            kind = ent.is_link ? 3 : ent.is_dir ? 2 : 1;
            if (size)
                *size = ent.size;
        }
    FU_EXPECT(e, VD_ERR_NOENT, "end of %s", dir);
    FU_OK(vd_dir_close(d));
    return kind;
}

static void make_tree(vd_fs *fs)
{
    FU_OK(vd_fs_mkdir(fs, "sub"));
    FU_OK(vd_fs_mkdir(fs, "sub/dir"));
    put_str(fs, "sub/dir/target.txt", "the target\n");
}

static void test_symlink_readlink_lstat(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    make_tree(e.fs);
    FU_OK(vd_fs_symlink(e.fs, "sub/dir/target.txt", "lnk"));
    expect_link(e.fs, "lnk", "sub/dir/target.txt");
    expect_link(e.fs, "LNK", "sub/dir/target.txt"); /* names ignore case */
    expect_file(e.fs, "lnk", "the target\n");
    uint64_t size = 0;
    assert_int_equal(listed(e.fs, "/", "lnk", &size), 3);
    assert_int_equal(size, strlen("sub/dir/target.txt"));
    assert_int_equal(listed(e.fs, "/", "sub", NULL), 2);
    assert_int_equal(listed(e.fs, "sub/dir", "target.txt", NULL), 1);
    /* readlink: exact fit needs room for the NUL; a file is EINVAL. */
    char small[19];
    size_t len = 0;
    FU_EXPECT(vd_fs_readlink(e.fs, "lnk", small, 18, &len), VD_ERR_RANGE, "18 bytes");
    assert_int_equal(len, 18);
    FU_OK(vd_fs_readlink(e.fs, "lnk", small, 19, &len));
    assert_string_equal(small, "sub/dir/target.txt");
    FU_EXPECT(vd_fs_readlink(e.fs, "sub/dir/target.txt", small, 19, &len), VD_ERR_INVAL,
              "a file");
    FU_EXPECT(vd_fs_readlink(e.fs, "sub", small, 19, &len), VD_ERR_INVAL, "a dir");
    FU_EXPECT(vd_fs_readlink(e.fs, "/", small, 19, &len), VD_ERR_INVAL, "the root");
    FU_EXPECT(vd_fs_readlink(e.fs, "nothing", small, 19, &len), VD_ERR_NOENT, "none");
    /* symlink: the name must be free; targets 1..1024 bytes. */
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "lnk"), VD_ERR_EXIST, "over a link");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "sub"), VD_ERR_EXIST, "over a dir");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "/"), VD_ERR_EXIST, "the root");
    FU_EXPECT(vd_fs_symlink(e.fs, "", "empty"), VD_ERR_NOENT, "empty target");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "no/such/dir/l"), VD_ERR_NOENT, "no parent");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "bad:name"), VD_ERR_NAME, "FAT name");
    char big[VD_FS_LINK_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    FU_EXPECT(vd_fs_symlink(e.fs, big, "big"), VD_ERR_NAME, "1025 bytes");
    big[VD_FS_LINK_MAX] = 0;
    FU_OK(vd_fs_symlink(e.fs, big, "big"));
    expect_link(e.fs, "big", big);
    /* Links survive unmount and image reopen. */
    FU_OK(vd_fs_unmount(e.fs));
    fu_disk_reopen(&e.d);
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    expect_link(e.fs, "lnk", "sub/dir/target.txt");
    expect_link(e.fs, "big", big);
    /* Writing through a link writes the target; open-file tracking sees
     * the target's node whichever name opened it. */
    vd_file *f;
    FU_OK(vd_file_open(e.fs, "lnk", VD_O_RDWR | VD_O_APPEND, &f));
    size_t done;
    FU_OK(vd_file_write(f, 0, "more\n", 5, &done));
    vd_stat st;
    FU_OK(vd_fs_stat(e.fs, "sub/dir/target.txt", &st));
    assert_int_equal(st.size, 16);
    FU_OK(vd_file_close(f));
    expect_file(e.fs, "sub/dir/target.txt", "the target\nmore\n");
    expect_link(e.fs, "lnk", "sub/dir/target.txt");
    /* A read-only volume reads links and refuses to make them. */
    FU_OK(vd_fs_unmount(e.fs));
    vd_fs_opts ro = {.read_only = 1, .now = NULL, .now_ctx = NULL};
    FU_OK(vd_fs_mount(e.d.img, &ro, &e.fs));
    expect_link(e.fs, "lnk", "sub/dir/target.txt");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "new"), VD_ERR_READONLY, "read-only");
    env_down(&e);
}

static void test_links_in_paths(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    make_tree(e.fs);
    /* A link to a directory, traversed in the middle of a path. */
    FU_OK(vd_fs_symlink(e.fs, "sub/dir", "d"));
    expect_dir(e.fs, "d");
    expect_file(e.fs, "d/target.txt", "the target\n");
    assert_int_equal(listed(e.fs, "d", "target.txt", NULL), 1);
    put_str(e.fs, "d/created.txt", "via link\n");
    expect_file(e.fs, "sub/dir/created.txt", "via link\n");
    FU_OK(vd_fs_mkdir(e.fs, "d/newdir"));
    expect_dir(e.fs, "sub/dir/newdir");
    /* Absolute targets start at the volume's root. */
    FU_OK(vd_fs_symlink(e.fs, "/sub/dir", "sub/abs"));
    expect_file(e.fs, "sub/abs/target.txt", "the target\n");
    FU_OK(vd_fs_symlink(e.fs, "/sub/dir/target.txt", "sub/dir/newdir/abs-file"));
    expect_file(e.fs, "d/newdir/abs-file", "the target\n");
    /* Relative targets are relative to the link's directory, with "..". */
    FU_OK(vd_fs_symlink(e.fs, "../target.txt", "sub/dir/newdir/up"));
    expect_file(e.fs, "sub/dir/newdir/up", "the target\n");
    expect_file(e.fs, "d/newdir/up", "the target\n");
    FU_OK(vd_fs_symlink(e.fs, "./dir/../dir/./target.txt", "sub/dots"));
    expect_file(e.fs, "sub/dots", "the target\n");
    /* ".." after a link to a directory is that directory's parent (the
     * physical parent, as on Linux), not the link's. */
    FU_OK(vd_fs_symlink(e.fs, "d/..", "dparent"));
    expect_dir(e.fs, "dparent");
    assert_int_equal(listed(e.fs, "dparent", "dir", NULL), 2);
    assert_int_equal(listed(e.fs, "dparent", "abs", NULL), 3);
    /* A chain of links. */
    FU_OK(vd_fs_symlink(e.fs, "lnk2", "lnk1"));
    FU_OK(vd_fs_symlink(e.fs, "d/target.txt", "lnk2"));
    expect_file(e.fs, "lnk1", "the target\n");
    /* A trailing '/' follows even where a final link is not followed. */
    vd_stat st;
    FU_OK(vd_fs_lstat(e.fs, "d/", &st));
    assert_int_equal(st.is_dir, 1);
    assert_int_equal(st.is_link, 0);
    FU_OK(vd_fs_lstat(e.fs, "d", &st));
    assert_int_equal(st.is_link, 1);
    char tb[32];
    size_t tl;
    FU_EXPECT(vd_fs_readlink(e.fs, "d/", tb, sizeof tb, &tl), VD_ERR_INVAL, "a dir");
    /* Calls that act on the link itself refuse "link/" (Linux: ENOTDIR)
     * and never reach the directory it names. */
    FU_EXPECT(vd_fs_unlink(e.fs, "d/"), VD_ERR_NOTDIR, "unlink link/");
    FU_EXPECT(vd_fs_rmdir(e.fs, "d/"), VD_ERR_NOTDIR, "rmdir link/");
    FU_EXPECT(vd_fs_rename(e.fs, "d/", "d2", 0), VD_ERR_NOTDIR, "rename link/");
    FU_EXPECT(vd_fs_mkdir(e.fs, "d/"), VD_ERR_EXIST, "mkdir link/");
    FU_OK(vd_fs_lstat(e.fs, "d", &st));
    assert_int_equal(st.is_link, 1);
    expect_dir(e.fs, "sub/dir");
    /* POSIX answers for calls that do not follow a final link. */
    FU_EXPECT(vd_fs_mkdir(e.fs, "d"), VD_ERR_EXIST, "mkdir on a link");
    FU_EXPECT(vd_fs_rmdir(e.fs, "d"), VD_ERR_NOTDIR, "rmdir on a link");
    FU_EXPECT(vd_fs_symlink(e.fs, "x", "d"), VD_ERR_EXIST, "symlink on a link");
    FU_EXPECT(vd_file_open(e.fs, "d", VD_O_RDONLY, &(vd_file *){NULL}), VD_ERR_ISDIR,
              "open a link to a dir");
    FU_EXPECT(vd_fs_stat(e.fs, "lnk1/x", &st), VD_ERR_NOTDIR, "a link to a file as dir");
    /* utimes follows. */
    FU_OK(vd_fs_utimes(e.fs, "lnk1", 1600000000000000000LL, 1600000000000000000LL));
    FU_OK(vd_fs_stat(e.fs, "sub/dir/target.txt", &st));
    assert_true(st.mtime_ns >= 1599999990000000000LL && st.mtime_ns <= 1600000000000000000LL);
    /* Paths themselves stay canonical: ".." only inside link targets. */
    FU_EXPECT(vd_fs_stat(e.fs, "d/..", &st), VD_ERR_INVAL, "'..' in a path");
    /* Unlinking a link to a directory removes the link only. */
    FU_OK(vd_fs_unlink(e.fs, "d"));
    FU_EXPECT(vd_fs_lstat(e.fs, "d", &st), VD_ERR_NOENT, "gone");
    expect_dir(e.fs, "sub/dir");
    expect_file(e.fs, "sub/dir/target.txt", "the target\n");
    FU_EXPECT(vd_fs_stat(e.fs, "lnk1", &st), VD_ERR_NOENT, "its chain now dangles");
    env_down(&e);
}

static void test_dangling_link(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    FU_OK(vd_fs_symlink(e.fs, "nowhere/x", "dang"));
    vd_stat st;
    FU_EXPECT(vd_fs_stat(e.fs, "dang", &st), VD_ERR_NOENT, "stat a dangling link");
    FU_OK(vd_fs_lstat(e.fs, "dang", &st));
    assert_int_equal(st.is_link, 1);
    expect_link(e.fs, "dang", "nowhere/x");
    assert_int_equal(listed(e.fs, "/", "dang", NULL), 3);
    vd_dir *d;
    FU_EXPECT(vd_dir_open(e.fs, "dang", &d), VD_ERR_NOENT, "list a dangling link");
    /* open(O_CREAT) through a dangling link creates its target (POSIX);
     * with O_EXCL the link itself exists. */
    FU_OK(vd_fs_symlink(e.fs, "made.txt", "maker"));
    vd_file *f;
    FU_EXPECT(vd_file_open(e.fs, "maker", VD_O_RDWR | VD_O_CREAT | VD_O_EXCL, &f),
              VD_ERR_EXIST, "O_EXCL on a link");
    FU_EXPECT(vd_file_open(e.fs, "maker", VD_O_RDONLY, &f), VD_ERR_NOENT, "no O_CREAT");
    put_str(e.fs, "maker", "made\n");
    expect_file(e.fs, "made.txt", "made\n");
    expect_link(e.fs, "maker", "made.txt");
    /* The parent must exist for that. */
    FU_EXPECT(vd_file_open(e.fs, "dang", VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_NOENT,
              "missing parent");
    env_down(&e);
}

static void test_loops(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    vd_stat st;
    vd_file *f;
    vd_dir *d;
    FU_OK(vd_fs_symlink(e.fs, "self", "self"));
    FU_EXPECT(vd_fs_stat(e.fs, "self", &st), VD_ERR_LOOP, "self");
    FU_OK(vd_fs_lstat(e.fs, "self", &st));
    assert_int_equal(st.is_link, 1);
    FU_OK(vd_fs_symlink(e.fs, "b", "a"));
    FU_OK(vd_fs_symlink(e.fs, "a", "b"));
    FU_EXPECT(vd_fs_stat(e.fs, "a", &st), VD_ERR_LOOP, "a <-> b");
    FU_EXPECT(vd_file_open(e.fs, "a", VD_O_RDONLY, &f), VD_ERR_LOOP, "open");
    FU_EXPECT(vd_file_open(e.fs, "a", VD_O_RDWR | VD_O_CREAT, &f), VD_ERR_LOOP, "create");
    FU_EXPECT(vd_dir_open(e.fs, "a", &d), VD_ERR_LOOP, "opendir");
    FU_EXPECT(vd_fs_stat(e.fs, "a/x/y", &st), VD_ERR_LOOP, "in the middle");
    FU_EXPECT(vd_fs_mkdir(e.fs, "a/x"), VD_ERR_LOOP, "mkdir under a loop");
    /* A directory link into itself loops only when followed forever. */
    FU_OK(vd_fs_mkdir(e.fs, "dir"));
    FU_OK(vd_fs_symlink(e.fs, "..", "dir/up"));
    expect_dir(e.fs, "dir/up/dir/up/dir/up/dir");
    /* 40 links in one lookup are fine, the 41st is ELOOP: c0 -> c1 -> ...
     * -> c40 -> end. */
    put_str(e.fs, "end", "end of chain\n");
    char name[16], next[16];
    for (int i = 0; i <= 40; i++) {
        snprintf(name, sizeof name, "c%d", i);
        if (i == 40)
            snprintf(next, sizeof next, "end");
        else
            snprintf(next, sizeof next, "c%d", i + 1);
        FU_OK(vd_fs_symlink(e.fs, next, name));
    }
    expect_file(e.fs, "c1", "end of chain\n"); /* 40 links */
    FU_EXPECT(vd_fs_stat(e.fs, "c0", &st), VD_ERR_LOOP, "41 links");
    FU_EXPECT(vd_file_open(e.fs, "c0", VD_O_RDONLY, &f), VD_ERR_LOOP, "41 links, open");
    FU_OK(vd_fs_lstat(e.fs, "c0", &st));
    /* The count is per lookup: c1 (40) in the middle, then more links. */
    FU_OK(vd_fs_mkdir(e.fs, "dd"));
    FU_OK(vd_fs_symlink(e.fs, "../c1", "dd/l"));
    FU_EXPECT(vd_fs_stat(e.fs, "dd/l", &st), VD_ERR_LOOP, "41 via dd/l");
    assert_string_equal(vd_strerror(VD_ERR_LOOP), "too many levels of symbolic links");
    env_down(&e);
}

static uint64_t raw_cluster_off(const uint8_t *raw, uint32_t c);

static void test_escape_stays_inside(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    FU_OK(vd_fs_mkdir(e.fs, "etc"));
    put_str(e.fs, "etc/passwd", "the volume's own passwd\n");
    FU_OK(vd_fs_mkdir(e.fs, "a"));
    FU_OK(vd_fs_mkdir(e.fs, "a/b"));
    FU_OK(vd_fs_mkdir(e.fs, "a/b/c"));
    /* From deep down, more ".." than levels: the extra ones stay at the
     * root, so "etc" is the volume's. */
    FU_OK(vd_fs_symlink(e.fs, "../../../../../../etc", "a/b/c/esc"));
    expect_dir(e.fs, "a/b/c/esc");
    expect_file(e.fs, "a/b/c/esc/passwd", "the volume's own passwd\n");
    FU_OK(vd_fs_symlink(e.fs, "../../../../../../etc/passwd", "a/b/c/escf"));
    expect_file(e.fs, "a/b/c/escf", "the volume's own passwd\n");
    /* Absolute targets are the volume's paths. */
    FU_OK(vd_fs_symlink(e.fs, "/etc/passwd", "a/b/abs"));
    expect_file(e.fs, "a/b/abs", "the volume's own passwd\n");
    FU_OK(vd_fs_symlink(e.fs, "/../../etc/shadow", "a/shadow"));
    vd_stat st;
    FU_EXPECT(vd_fs_stat(e.fs, "a/shadow", &st), VD_ERR_NOENT, "no /etc/shadow inside");
    /* "/.." and ".." at the root are the root. */
    FU_OK(vd_fs_symlink(e.fs, "/..", "rootup"));
    FU_OK(vd_fs_symlink(e.fs, "..", "dotdot"));
    FU_OK(vd_fs_symlink(e.fs, "/", "slash"));
    const char *roots[] = {"rootup", "dotdot", "slash"};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        FU_EXPECT(vd_fs_stat(e.fs, roots[i], &st), VD_OK, "%s", roots[i]);
        assert_int_equal(st.is_dir, 1);
        assert_int_equal(listed(e.fs, roots[i], "etc", NULL), 2);
        assert_int_equal(listed(e.fs, roots[i], "a", NULL), 2);
        char p[64];
        snprintf(p, sizeof p, "%s/a/b/c/esc/passwd", roots[i]);
        expect_file(e.fs, p, "the volume's own passwd\n");
    }
    /* The walk never trusts ".." entries on disk: point a/b/c's ".." at
     * the root, and ".." through a link still goes back to a/b. */
    put_str(e.fs, "x", "x in the root\n");
    put_str(e.fs, "a/b/x", "x in a/b\n");
    FU_OK(vd_fs_symlink(e.fs, "../x", "a/b/c/upx"));
    expect_file(e.fs, "a/b/c/upx", "x in a/b\n");
    FU_OK(vd_fs_lstat(e.fs, "a/b/c", &st));
    uint32_t c_clus = st.first_cluster;
    FU_OK(vd_fs_unmount(e.fs));
    uint8_t *raw = fu_export(&e.d);
    uint8_t *dotdot = raw + raw_cluster_off(raw, c_clus) + 32;
    assert_memory_equal(dotdot, "..         ", 11);
    memset(dotdot + 20, 0, 2); /* high and low cluster words: 0 = root */
    memset(dotdot + 26, 0, 2);
    fu_import(&e.d, raw, (size_t)NBLOCKS * 4096);
    free(raw);
    FU_OK(vd_fs_mount(e.d.img, NULL, &e.fs));
    expect_file(e.fs, "a/b/c/upx", "x in a/b\n");
    env_down(&e);
}

static void test_rename_unlink_link(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    make_tree(e.fs);
    FU_OK(vd_fs_symlink(e.fs, "dir/target.txt", "sub/rel"));
    expect_file(e.fs, "sub/rel", "the target\n");
    /* Rename moves the link, not its target; the stored text is kept, so
     * a relative link now resolves from its new directory. */
    FU_OK(vd_fs_rename(e.fs, "sub/rel", "sub/dir/moved", 0));
    expect_link(e.fs, "sub/dir/moved", "dir/target.txt");
    vd_stat st;
    FU_EXPECT(vd_fs_stat(e.fs, "sub/dir/moved", &st), VD_ERR_NOENT, "now dangling");
    FU_OK(vd_fs_rename(e.fs, "sub/dir/moved", "sub/back", 0));
    expect_file(e.fs, "sub/back", "the target\n");
    /* A rename over a link replaces the link, not the target. */
    put_str(e.fs, "other.txt", "other\n");
    FU_OK(vd_fs_rename(e.fs, "other.txt", "sub/back", 0));
    expect_file(e.fs, "sub/back", "other\n");
    expect_file(e.fs, "sub/dir/target.txt", "the target\n");
    /* A link renamed over a file. */
    FU_OK(vd_fs_symlink(e.fs, "sub/dir/target.txt", "l2"));
    FU_OK(vd_fs_rename(e.fs, "l2", "sub/back", 0));
    expect_link(e.fs, "sub/back", "sub/dir/target.txt");
    FU_EXPECT(vd_fs_stat(e.fs, "sub/back", &st), VD_ERR_NOENT, "relative to sub now");
    /* Renaming through a link in the middle of the path. */
    FU_OK(vd_fs_symlink(e.fs, "sub/dir", "d"));
    FU_OK(vd_fs_rename(e.fs, "d/target.txt", "d/renamed.txt", 0));
    expect_file(e.fs, "sub/dir/renamed.txt", "the target\n");
    /* Unlink removes the link only; its clusters are freed. */
    vd_statfs before, after;
    FU_OK(vd_fs_statfs(e.fs, &before));
    FU_OK(vd_fs_unlink(e.fs, "sub/back"));
    FU_OK(vd_fs_statfs(e.fs, &after));
    assert_true(after.free_clusters > before.free_clusters);
    FU_EXPECT(vd_fs_lstat(e.fs, "sub/back", &st), VD_ERR_NOENT, "gone");
    expect_file(e.fs, "sub/dir/renamed.txt", "the target\n");
    env_down(&e);
}

static void test_lutimes_and_attributes(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    make_tree(e.fs);
    FU_OK(vd_fs_symlink(e.fs, "sub/dir/target.txt", "l"));
    const int64_t t1 = 1500000000LL * 1000000000LL, t2 = 1600000000LL * 1000000000LL;
    vd_stat st, lst;
    /* lutimes sets the link's times, utimes the target's. */
    FU_OK(vd_fs_utimes(e.fs, "sub/dir/target.txt", t2, t2));
    FU_OK(vd_fs_lutimes(e.fs, "l", t1, t1));
    FU_OK(vd_fs_lstat(e.fs, "l", &lst));
    FU_OK(vd_fs_stat(e.fs, "l", &st));
    assert_true(lst.mtime_ns <= t1 && lst.mtime_ns > t1 - 3000000000LL);
    assert_true(st.mtime_ns <= t2 && st.mtime_ns > t2 - 3000000000LL);
    FU_OK(vd_fs_utimes(e.fs, "l", t1, t1));
    FU_OK(vd_fs_stat(e.fs, "sub/dir/target.txt", &st));
    assert_true(st.mtime_ns <= t1 && st.mtime_ns > t1 - 3000000000LL);
    FU_OK(vd_fs_lutimes(e.fs, "sub/dir/target.txt", t2, t2)); /* not a link: itself */
    FU_OK(vd_fs_stat(e.fs, "sub/dir/target.txt", &st));
    assert_true(st.mtime_ns <= t2 && st.mtime_ns > t2 - 3000000000LL);
    /* set_attr follows the link; the read-only bit refuses writes. */
    FU_OK(vd_fs_set_attr(e.fs, "l", VD_ATTR_READONLY, VD_ATTR_READONLY));
    FU_OK(vd_fs_stat(e.fs, "sub/dir/target.txt", &st));
    assert_true(st.attr & VD_ATTR_READONLY);
    FU_OK(vd_fs_lstat(e.fs, "l", &lst));
    assert_false(lst.attr & VD_ATTR_READONLY);
    expect_link(e.fs, "l", "sub/dir/target.txt");
    vd_file *f;
    FU_EXPECT(vd_file_open(e.fs, "l", VD_O_RDWR, &f), VD_ERR_PERM, "read-only file");
    FU_OK(vd_fs_set_attr(e.fs, "sub/dir/target.txt", VD_ATTR_HIDDEN,
                         VD_ATTR_READONLY | VD_ATTR_HIDDEN));
    FU_OK(vd_fs_stat(e.fs, "l", &st));
    assert_int_equal(st.attr & (VD_ATTR_READONLY | VD_ATTR_HIDDEN), VD_ATTR_HIDDEN);
    FU_OK(vd_file_open(e.fs, "l", VD_O_RDWR, &f));
    /* An open file's entry keeps its size and chain across the change. */
    size_t done;
    FU_OK(vd_file_write(f, 0, "changed!!!!!\n", 13, &done));
    FU_OK(vd_fs_set_attr(e.fs, "l", VD_ATTR_READONLY, VD_ATTR_READONLY));
    FU_OK(vd_file_close(f));
    expect_file(e.fs, "l", "changed!!!!!\n");
    FU_OK(vd_fs_set_attr(e.fs, "sub", VD_ATTR_READONLY, VD_ATTR_READONLY));
    FU_OK(vd_fs_stat(e.fs, "sub", &st));
    assert_int_equal(st.attr & (VD_ATTR_READONLY | VD_ATTR_DIR),
                     VD_ATTR_READONLY | VD_ATTR_DIR);
    FU_EXPECT(vd_fs_set_attr(e.fs, "l", 0, VD_ATTR_DIR), VD_ERR_INVAL, "dir bit");
    FU_EXPECT(vd_fs_set_attr(e.fs, "l", 0, VD_ATTR_VOLUME), VD_ERR_INVAL, "volume bit");
    FU_EXPECT(vd_fs_set_attr(e.fs, "/", 0, VD_ATTR_HIDDEN), VD_ERR_PERM, "the root");
    FU_EXPECT(vd_fs_set_attr(e.fs, "none", 0, VD_ATTR_HIDDEN), VD_ERR_NOENT, "missing");
    env_down(&e);
}

/* The bytes of a link to target, built from the format's description
 * with the MD5 given as hex (from md5sum, not from the code under test). */
static void mf_bytes(uint8_t out[LINK_FILE], const char *target, const char *md5hex)
{
    size_t n = strlen(target);
    memset(out, ' ', LINK_FILE);
    char head[64];
    int h = snprintf(head, sizeof head, "XSym\n%04zu\n%s\n", n, md5hex);
    assert_int_equal(h, 5 + 5 + 33);
    memcpy(out, head, (size_t)h);
    memcpy(out + h, target, n);
    if ((size_t)h + n < LINK_FILE)
        out[(size_t)h + n] = '\n';
}

static void test_not_links(void **state)
{
    (void)state;
    env e;
    env_up(&e, 0);
    uint8_t buf[LINK_FILE + 1];
    vd_stat st;
    char t[64];
    size_t len;
    /* Ordinary 1067-byte files: random bytes; a header with a wrong
     * checksum; a wrong length; upper-case hex; one byte more or less. */
    fu_fill(buf, LINK_FILE, 7, 0);
    put(e.fs, "random.bin", buf, LINK_FILE);
    mf_bytes(buf, "sub/dir/target.txt", "91aa0165369420cc906635cc26608d7c");
    put(e.fs, "badsum.txt", buf, LINK_FILE);
    mf_bytes(buf, "sub/dir/target.txt", "91aa0165369420cc906635cc26608d7b");
    buf[8] = '9'; /* length 0019 */
    put(e.fs, "badlen.txt", buf, LINK_FILE);
    mf_bytes(buf, "sub/dir/target.txt", "91AA0165369420CC906635CC26608D7B");
    put(e.fs, "upper.txt", buf, LINK_FILE);
    mf_bytes(buf, "sub/dir/target.txt", "91aa0165369420cc906635cc26608d7b");
    buf[LINK_FILE] = ' ';
    put(e.fs, "longer.txt", buf, LINK_FILE + 1);
    put(e.fs, "shorter.txt", buf, LINK_FILE - 1);
    const char *names[] = {"random.bin", "badsum.txt", "badlen.txt",
                           "upper.txt",  "longer.txt", "shorter.txt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        FU_OK(vd_fs_lstat(e.fs, names[i], &st));
        if (st.is_link)
            fail_msg("%s taken for a link", names[i]);
        assert_true(st.size == LINK_FILE - 1 || st.size == LINK_FILE ||
                    st.size == LINK_FILE + 1);
        FU_EXPECT(vd_fs_readlink(e.fs, names[i], t, sizeof t, &len), VD_ERR_INVAL, "%s",
                  names[i]);
        assert_int_equal(listed(e.fs, "/", names[i], NULL), 1);
    }
    /* The format is the contract: the right bytes written as a file are
     * a link, as for any other reader of the format. */
    mf_bytes(buf, "sub/dir/target.txt", "91aa0165369420cc906635cc26608d7b");
    put(e.fs, "written.txt", buf, LINK_FILE);
    expect_link(e.fs, "written.txt", "sub/dir/target.txt");
    env_down(&e);
}

/* Raw volume helpers: the data of cluster c in an exported volume. */
static uint64_t raw_cluster_off(const uint8_t *raw, uint32_t c)
{
    uint32_t bps = (uint32_t)raw[11] | (uint32_t)raw[12] << 8;
    uint32_t spc = raw[13];
    uint32_t rsvd = (uint32_t)raw[14] | (uint32_t)raw[15] << 8;
    uint32_t nfats = raw[16];
    uint32_t fatsz = (uint32_t)raw[36] | (uint32_t)raw[37] << 8 |
                     (uint32_t)raw[38] << 16 | (uint32_t)raw[39] << 24;
    return ((uint64_t)rsvd + (uint64_t)nfats * fatsz) * bps + (uint64_t)(c - 2) * spc * bps;
}

static uint32_t raw_fat_next(const uint8_t *raw, uint32_t c)
{
    uint32_t bps = (uint32_t)raw[11] | (uint32_t)raw[12] << 8;
    uint32_t rsvd = (uint32_t)raw[14] | (uint32_t)raw[15] << 8;
    const uint8_t *p = raw + (uint64_t)rsvd * bps + (uint64_t)c * 4;
    return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
            (uint32_t)p[3] << 24) & 0x0FFFFFFF;
}

/* The file starting at cluster first, len bytes, read from raw. */
static void raw_file(const uint8_t *raw, uint32_t cluster, uint32_t first, uint8_t *out,
                     size_t len)
{
    uint32_t c = first;
    for (size_t got = 0; got < len;) {
        size_t k = len - got < cluster ? len - got : cluster;
        memcpy(out + got, raw + raw_cluster_off(raw, c), k);
        got += k;
        if (got < len)
            c = raw_fat_next(raw, c);
    }
}

static int tools_present(void)
{
    return system("command -v fsck.fat >/dev/null 2>&1 && command -v mdir >/dev/null "
                  "2>&1 && command -v mtype >/dev/null 2>&1 && command -v mcopy "
                  ">/dev/null 2>&1 && command -v mkfs.fat >/dev/null 2>&1") == 0;
}

static void check_bytes(const uint8_t *raw, uint32_t cluster, vd_fs *fs, const char *path,
                        const char *target, const char *md5hex)
{
    vd_stat st;
    FU_OK(vd_fs_lstat(fs, path, &st));
    assert_int_equal(st.is_link, 1);
    uint8_t want[LINK_FILE], got[LINK_FILE];
    mf_bytes(want, target, md5hex);
    raw_file(raw, cluster, st.first_cluster, got, LINK_FILE);
    if (memcmp(want, got, LINK_FILE) != 0)
        fail_msg("%s: on-disk bytes differ from the Minshall+French format", path);
}

static void test_on_disk_format(void **state)
{
    (void)state;
    static const uint32_t clusters[] = {512};
    char big[VD_FS_LINK_MAX + 1];
    memset(big, 'a', VD_FS_LINK_MAX);
    big[VD_FS_LINK_MAX] = 0;
    for (size_t i = 0; i < sizeof clusters / sizeof clusters[0]; i++) {
        env e;
        env_up(&e, clusters[i]); /* a link spans three clusters */
        make_tree(e.fs);
        FU_OK(vd_fs_symlink(e.fs, "sub/dir/target.txt", "lnk"));
        FU_OK(vd_fs_symlink(e.fs, "/abs/path", "sub/abs"));
        FU_OK(vd_fs_symlink(e.fs, "x", "sub/dir/x"));
        FU_OK(vd_fs_symlink(e.fs, big, "big")); /* fills the file: no '\n' */
        FU_OK(vd_fs_sync(e.fs));
        uint8_t *raw = fu_export(&e.d);
        check_bytes(raw, clusters[i], e.fs, "lnk", "sub/dir/target.txt",
                    "91aa0165369420cc906635cc26608d7b");
        check_bytes(raw, clusters[i], e.fs, "sub/abs", "/abs/path",
                    "e10ebce30f3754fb8663e952771d9c98");
        check_bytes(raw, clusters[i], e.fs, "sub/dir/x", "x",
                    "9dd4e461268c8034f5c8564e155c67a6");
        check_bytes(raw, clusters[i], e.fs, "big", big, "c9a34cfc85d982698c6ac89f76071abd");
        free(raw);
        env_down(&e);
    }
}

static char g_tmp[256];

static void test_tools_see_a_small_file(void **state)
{
    (void)state;
    if (!tools_present()) {
        print_message("skipped: dosfstools/mtools not installed\n");
        skip();
    }
    env e;
    env_up(&e, 0);
    make_tree(e.fs);
    FU_OK(vd_fs_symlink(e.fs, "sub/dir/target.txt", "lnk"));
    FU_OK(vd_fs_symlink(e.fs, "../../nowhere", "sub/dir/dangling"));
    FU_OK(vd_fs_symlink(e.fs, "dir", "sub/A Long Link Name"));
    FU_OK(vd_fs_unmount(e.fs));
    /* vd_fsck sees links as the files they are: nothing to report. */
    vd_fsck_opts fo;
    memset(&fo, 0, sizeof fo);
    vd_fsck_result fr;
    FU_OK(vd_fsck(e.d.img, &fo, &fr));
    assert_int_equal(fr.found, 0);
    assert_true(fr.fs_checked);
    assert_int_equal(fr.files, 4); /* target.txt and the three links */
    char raw[512], out[512], cmd[2048];
    snprintf(raw, sizeof raw, "%s/links.raw", g_tmp);
    snprintf(out, sizeof out, "%s/lnk.out", g_tmp);
    assert_int_equal(fu_export_file(&e.d, raw), 0);
    snprintf(cmd, sizeof cmd, "fsck.fat -n '%s'", raw);
    if (fu_run(cmd) != 0)
        fail_msg("fsck.fat -n reported problems");
    snprintf(cmd, sizeof cmd,
             "fsck.fat -n -v '%s' | grep -qiE 'fix|wrong|invalid|bad' && exit 1 || exit 0",
             raw);
    if (fu_run(cmd) != 0)
        fail_msg("fsck.fat -v flagged something");
    /* mdir lists each link as a regular 1067-byte file (not <DIR>). */
    snprintf(cmd, sizeof cmd,
             "mdir -i '%s' ::/ | grep -iE '^lnk +1067 ' && "
             "mdir -i '%s' ::/sub | grep -E ' 1067 .*A Long Link Name$' && "
             "mdir -i '%s' ::/sub/dir | grep -iE '^dangling +1067 '",
             raw, raw, raw);
    if (fu_run(cmd) != 0)
        fail_msg("mdir does not show the links as 1067-byte files");
    /* mtype gives exactly the format's bytes. */
    snprintf(cmd, sizeof cmd, "mtype -i '%s' ::/lnk > '%s'", raw, out);
    assert_int_equal(fu_run(cmd), 0);
    uint8_t want[LINK_FILE], got[LINK_FILE + 16];
    mf_bytes(want, "sub/dir/target.txt", "91aa0165369420cc906635cc26608d7b");
    FILE *f = fopen(out, "rb");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got, f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(n, LINK_FILE);
    assert_memory_equal(got, want, LINK_FILE);
    fu_disk_free(&e.d);
    /* And the other way: a link file put there by mtools (as cifs or Samba
     * would write it) is a link here. */
    snprintf(raw, sizeof raw, "%s/other.raw", g_tmp);
    snprintf(cmd, sizeof cmd, "mkfs.fat -F 32 -C '%s' 40960 >/dev/null", raw);
    assert_int_equal(fu_run(cmd), 0);
    mf_bytes(want, "/abs/path", "e10ebce30f3754fb8663e952771d9c98");
    f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(want, 1, LINK_FILE, f), LINK_FILE);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "mcopy -i '%s' '%s' ::/fromcifs", raw, out);
    assert_int_equal(fu_run(cmd), 0);
    fu_disk d;
    fu_disk_new(&d, NBLOCKS);
    assert_int_equal(fu_import_file(&d, raw), 0);
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    expect_link(fs, "fromcifs", "/abs/path");
    FU_OK(vd_fs_unmount(fs));
    fu_disk_free(&d);
}

static int setup(void **state)
{
    (void)state;
    setenv("MTOOLS_SKIP_CHECK", "1", 1);
    setenv("LC_ALL", "C.UTF-8", 1);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/vd-fat-links-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symlink_readlink_lstat),
        cmocka_unit_test(test_links_in_paths),
        cmocka_unit_test(test_dangling_link),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_escape_stays_inside),
        cmocka_unit_test(test_rename_unlink_link),
        cmocka_unit_test(test_lutimes_and_attributes),
        cmocka_unit_test(test_not_links),
        cmocka_unit_test(test_on_disk_format),
        cmocka_unit_test(test_tools_see_a_small_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
