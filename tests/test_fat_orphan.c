/* Files unlinked (or renamed over) while open, across commits (issue 15,
 * DESIGN C4): no committed state may hold a chain that no entry names,
 * while the open file keeps working, and its clusters go to no other file
 * before its last close.
 *
 * Each check copies the image's host bytes as they are after a commit
 * (what a crash then leaves), opens the copy writable and runs vd_fsck:
 * it must find nothing but the dirty flag (a note, vhdfsck(8)). Before
 * the orphan's chain was freed with its entry, the first such check found
 * the orphan's clusters lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fat_util.h"
#include "vdisk/check.h"

typedef struct env {
    fu_disk d;
    vd_fs *fs;
} env;

#define CLUSTER 512u
/* The smallest FAT32 volume of 512-byte clusters (65,525 at least). */
#define NBLOCKS ((65600ull * CLUSTER + (2u << 20)) / 4096)

static void env_up(env *e)
{
    fu_disk_new(&e->d, NBLOCKS);
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.cluster_bytes = CLUSTER;
    FU_OK(vd_fs_format(e->d.img, &mo));
    FU_OK(vd_fs_mount(e->d.img, NULL, &e->fs));
}

static void env_down(env *e)
{
    FU_OK(vd_fs_unmount(e->fs));
    fu_disk_free(&e->d);
}

typedef struct findings {
    unsigned n;
    char first[256];
} findings;

static void on_problem(void *ctx, const vd_fsck_problem *p)
{
    findings *f = ctx;
    if (p->kind == VD_FSCK_P_DIRTY) /* "not unmounted": a note */
        return;
    if (f->n++ == 0)
        snprintf(f->first, sizeof f->first, "%s%s%s", p->what, p->path ? ": " : "",
                 p->path ? p->path : "");
}

/* Commit, then check what a crash right now would leave. */
static void commit_and_check(env *e, const char *when)
{
    FU_OK(vd_fs_sync(e->fs));
    fu_disk c;
    fu_disk_snapshot(&e->d, &c);
    findings f = {0};
    vd_fsck_opts fo = {.mode = VD_FSCK_CHECK, .ctx = &f, .report = on_problem};
    vd_fsck_result res;
    FU_OK(vd_fsck(c.img, &fo, &res));
    if (f.n)
        fail_msg("%s: vd_fsck found %u problems in the committed state, first: %s", when,
                 f.n, f.first);
    assert_true(res.fs_checked);
    fu_disk_free(&c);
}

/* The handle reads exactly want[0, len). */
static void expect_content(vd_file *f, const uint8_t *want, size_t len, const char *when)
{
    uint8_t *got = malloc(len + 64);
    assert_non_null(got);
    size_t done = 0;
    FU_OK(vd_file_read(f, 0, got, len + 64, &done));
    if (done != len)
        fail_msg("%s: read %zu bytes, want %zu", when, done, len);
    for (size_t i = 0; i < len; i++)
        if (got[i] != want[i])
            fail_msg("%s: byte %zu is %u, want %u", when, i, got[i], want[i]);
    free(got);
}

static uint32_t free_clusters(vd_fs *fs)
{
    vd_statfs s;
    FU_OK(vd_fs_statfs(fs, &s));
    return s.free_clusters;
}

/* Write through f at off: the model m (capacity cap) follows. */
static void write_at(vd_file *f, uint8_t *m, size_t *mlen, size_t off, size_t len,
                     uint64_t id)
{
    fu_fill(m + off, len, id, off);
    if (off > *mlen)
        memset(m + *mlen, 0, off - *mlen);
    size_t done;
    FU_OK(vd_file_write(f, off, m + off, len, &done));
    assert_int_equal(done, len);
    if (off + len > *mlen)
        *mlen = off + len;
}

static void unlinked_file_lives_until_last_close(void **state)
{
    (void)state;
    env e;
    env_up(&e);
    fu_put_file(e.fs, "/keep", 3, 20000);
    commit_and_check(&e, "before");
    const uint32_t free0 = free_clusters(e.fs);
    const size_t cap = 4u << 20;
    uint8_t *m = calloc(cap, 1);
    assert_non_null(m);
    size_t mlen = 300000;
    fu_fill(m, mlen, 7, 0);
    fu_put_file(e.fs, "/victim", 7, mlen);
    vd_file *f, *g;
    FU_OK(vd_file_open(e.fs, "/victim", VD_O_RDWR, &f));
    FU_OK(vd_file_open(e.fs, "/victim", VD_O_RDONLY, &g));
    const uint32_t used = (uint32_t)((mlen + CLUSTER - 1) / CLUSTER);
    assert_int_equal(free_clusters(e.fs), free0 - used);

    FU_OK(vd_fs_unlink(e.fs, "/victim"));
    vd_stat st;
    FU_EXPECT(vd_fs_stat(e.fs, "/victim", &st), VD_ERR_NOENT, "the name is gone");
    commit_and_check(&e, "unlinked, open");
    expect_content(g, m, mlen, "after the unlink");
    /* Its clusters are still in use: statfs does not count them free. */
    assert_int_equal(free_clusters(e.fs), free0 - used);

    /* Overwrite, extend (clusters the FAT never shows), with a hole. */
    write_at(f, m, &mlen, 1000, 5000, 8);
    write_at(f, m, &mlen, mlen + 10000, 200000, 9);
    commit_and_check(&e, "orphan extended");
    expect_content(g, m, mlen, "after the extension");
    /* Shrink, then grow by a hole. */
    FU_OK(vd_file_truncate(f, 3000));
    mlen = 3000;
    FU_OK(vd_file_truncate(f, 50000));
    memset(m + 3000, 0, 47000);
    mlen = 50000;
    commit_and_check(&e, "orphan truncated down and up");
    expect_content(g, m, mlen, "after the truncates");
    FU_OK(vd_file_stat(g, &st));
    assert_int_equal(st.size, mlen);
    const uint32_t orphan_clusters = (uint32_t)((mlen + CLUSTER - 1) / CLUSTER);
    assert_int_equal(free_clusters(e.fs), free0 - orphan_clusters);

    /* Fill the volume: nothing may land in the orphan's clusters. */
    vd_file *fill;
    FU_OK(vd_file_open(e.fs, "/fill", VD_O_RDWR | VD_O_CREAT, &fill));
    uint8_t *chunk = malloc(65536);
    assert_non_null(chunk);
    size_t filled = 0;
    for (;;) {
        size_t done = 0;
        fu_fill(chunk, 65536, 20, filled);
        vd_err r = vd_file_write(fill, filled, chunk, 65536, &done);
        if (r == VD_ERR_NOSPC)
            break;
        FU_OK(r);
        filled += done;
    }
    FU_OK(vd_file_close(fill));
    assert_true(filled >= (size_t)(free0 - orphan_clusters - 256) * CLUSTER);
    commit_and_check(&e, "volume full, orphan open");
    expect_content(g, m, mlen, "after filling the volume");
    /* The orphan cannot grow now: all or nothing, its bytes unchanged. */
    size_t done = 0;
    FU_EXPECT(vd_file_write(f, mlen, chunk, 65536, &done), VD_ERR_NOSPC, "full");
    expect_content(g, m, mlen, "after a refused extension");

    FU_OK(vd_file_close(f));
    expect_content(g, m, mlen, "one handle left");
    FU_OK(vd_file_close(g));
    /* Back, and usable by others (after the commit that frees them). */
    assert_true(free_clusters(e.fs) >= orphan_clusters);
    commit_and_check(&e, "orphan closed");
    FU_OK(vd_fs_unlink(e.fs, "/fill"));
    commit_and_check(&e, "fill removed");
    assert_int_equal(free_clusters(e.fs), free0);
    free(chunk);
    free(m);
    env_down(&e);
}

static void replaced_file_lives_until_last_close(void **state)
{
    (void)state;
    env e;
    env_up(&e);
    fu_put_file(e.fs, "/a", 11, 5000);
    fu_put_file(e.fs, "/b", 12, 70000);
    const uint32_t free0 = free_clusters(e.fs);
    size_t mlen = 70000;
    uint8_t *m = calloc(1u << 20, 1);
    assert_non_null(m);
    fu_fill(m, mlen, 12, 0);
    vd_file *g;
    FU_OK(vd_file_open(e.fs, "/b", VD_O_RDWR, &g));
    FU_OK(vd_fs_rename(e.fs, "/a", "/b", 0));
    commit_and_check(&e, "renamed over an open file");
    write_at(g, m, &mlen, mlen, 300000, 13);
    commit_and_check(&e, "replaced file extended");
    expect_content(g, m, mlen, "the replaced file");
    vd_stat st;
    FU_OK(vd_fs_stat(e.fs, "/b", &st));
    assert_int_equal(st.size, 5000); /* the name is a's now */
    FU_OK(vd_file_close(g));
    commit_and_check(&e, "replaced file closed");
    FU_OK(vd_fs_sync(e.fs));
    /* b's 70000 bytes are free again; a's 5000 still in use. */
    assert_int_equal(free_clusters(e.fs), free0 + (70000 + CLUSTER - 1) / CLUSTER);
    free(m);
    env_down(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unlinked_file_lives_until_last_close),
        cmocka_unit_test(replaced_file_lives_until_last_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
