/* Operations larger than one commit (issue 15, DESIGN C4; fat/step.c).
 *
 * An image with a small journal area (16 blocks: a commit takes about 15
 * metadata blocks) holds a FAT32 volume of 512-byte clusters, so one FAT
 * block covers 1,024 clusters (512 KiB) and a write of 8 MiB changes 16
 * blocks in each of the two FAT copies: more than one commit takes.
 * Through the recording host: one write of 8 MiB, a truncate up by 4 MiB
 * and down to 1 MiB, an unlink of a 4 MiB file while open (written to and
 * closed afterwards), a rename over a 4 MiB file and an unlink of one not
 * open. Each must have run in several commits (steps), and then:
 *   - the volume holds what the calls say (read back after each);
 *   - at every flush of the log, and at a stride of the other points,
 *     the crash state opens, vd_fsck finds nothing but the dirty flag (a
 *     note), and every file holds only its own bytes or zeros, at most as
 *     long as it ever was.
 * Before the steps, such an operation's metadata went out in several
 * rounds: crash states between them failed vd_fsck. */
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
#include "record.h"
#include "vdisk/check.h"

#define CLUSTER 512u
#define NBLOCKS ((65600ull * CLUSTER + (2u << 20)) / 4096)
#define JOURNAL 16u
#define MIB (1u << 20)
#define STATES 160u /* crash points besides the flushes */

static const uint8_t g_key[VD_KEY_BYTES] = {21, 22, 23, 24, 25};

typedef struct fileinfo {
    const char *path;
    uint64_t id;
    uint64_t max_len;
} fileinfo;

/* Files of the workload: id i's bytes are fu_fill(id) at their offset. */
static fileinfo g_files[] = {
    {"/big", 1, 12 * MIB},
    {"/victim", 2, 4 * MIB},
    {"/a", 3, 4 * MIB},
    {"/b", 4, 4 * MIB},
    {"/gone", 5, 4 * MIB},
};
#define NFILES (sizeof g_files / sizeof *g_files)

static vd_open_opts open_opts(void)
{
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)4 << 20;
    o.aead_impl = VD_AEAD_OPENSSL;
    return o;
}

static uint64_t syncs(vd_image *img)
{
    vd_image_info info;
    FU_OK(vd_image_info_get(img, &info));
    return info.syncs;
}

static void put(vd_fs *fs, vd_file *f, uint64_t id, uint64_t off, uint64_t len)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    fu_fill(buf, len, id, off);
    size_t done = 0;
    FU_OK(vd_file_write(f, off, buf, len, &done));
    assert_int_equal(done, len);
    free(buf);
    (void)fs;
}

/* f reads len bytes: id's bytes below zero_from, zeros from there. */
static void expect(vd_file *f, uint64_t id, uint64_t len, uint64_t zero_from, const char *what)
{
    uint8_t *got = malloc(len + 16), *want = malloc(len + 1);
    assert_non_null(got);
    assert_non_null(want);
    fu_fill(want, len, id, 0);
    if (zero_from < len)
        memset(want + zero_from, 0, len - zero_from);
    size_t done = 0;
    FU_OK(vd_file_read(f, 0, got, len + 16, &done));
    if (done != len)
        fail_msg("%s: %zu bytes, want %" PRIu64, what, done, len);
    if (memcmp(got, want, len) != 0)
        fail_msg("%s: contents differ", what);
    free(got);
    free(want);
}

/* Run op and check that it took more than one commit. */
#define STEPPED(img, what, op)                                                        \
    do {                                                                              \
        uint64_t s0_ = syncs(img);                                                    \
        op;                                                                           \
        uint64_t n_ = syncs(img) - s0_;                                               \
        if (n_ < 2)                                                                   \
            fail_msg("%s: %" PRIu64 " commits, want steps (several)", what, n_);    \
    } while (0)

static void workload(vd_rec *rec)
{
    vd_image *img;
    vd_create_opts c = {.nblocks = NBLOCKS, .journal_blocks = JOURNAL};
    vd_open_opts o = open_opts();
    FU_OK(vd_image_create(vd_rec_host(rec), g_key, &c, &o, &img));
    vd_mkfs_opts m = {.cluster_bytes = CLUSTER, .volume_id = 0x16};
    FU_OK(vd_fs_format(img, &m));
    vd_fs *fs;
    FU_OK(vd_fs_mount(img, NULL, &fs));
    vd_file *f;
    for (unsigned i = 1; i < NFILES; i++) { /* 4 MiB each, in small writes */
        FU_OK(vd_file_open(fs, g_files[i].path, VD_O_RDWR | VD_O_CREAT, &f));
        for (uint64_t off = 0; off < 4 * MIB; off += 256 * 1024)
            put(fs, f, g_files[i].id, off, 256 * 1024);
        FU_OK(vd_file_close(f));
    }
    FU_OK(vd_fs_sync(fs));
    FU_OK(vd_rec_reset_log(rec)); /* crash states from here */

    FU_OK(vd_file_open(fs, "/big", VD_O_RDWR | VD_O_CREAT, &f));
    STEPPED(img, "one 8 MiB write", put(fs, f, 1, 0, 8 * MIB));
    expect(f, 1, 8 * MIB, 8 * MIB, "after the write");
    STEPPED(img, "truncate up by 4 MiB", FU_OK(vd_file_truncate(f, 12 * MIB)));
    expect(f, 1, 12 * MIB, 8 * MIB, "after the truncate up");
    STEPPED(img, "truncate down to 1 MiB", FU_OK(vd_file_truncate(f, MIB)));
    expect(f, 1, MIB, MIB, "after the truncate down");
    FU_OK(vd_file_close(f));

    vd_file *v;
    FU_OK(vd_file_open(fs, "/victim", VD_O_RDWR, &v));
    STEPPED(img, "unlink of an open 4 MiB file", FU_OK(vd_fs_unlink(fs, "/victim")));
    expect(v, 2, 4 * MIB, 4 * MIB, "the unlinked file");
    put(fs, v, 2, 4 * MIB - 1000, 3 * MIB); /* grows the orphan */
    expect(v, 2, 7 * MIB - 1000, 7 * MIB, "the unlinked file, grown");
    FU_OK(vd_file_close(v));

    STEPPED(img, "rename over a 4 MiB file", FU_OK(vd_fs_rename(fs, "/a", "/b", 0)));
    FU_OK(vd_file_open(fs, "/b", VD_O_RDONLY, &f));
    expect(f, 3, 4 * MIB, 4 * MIB, "the renamed file");
    FU_OK(vd_file_close(f));
    STEPPED(img, "unlink of a 4 MiB file", FU_OK(vd_fs_unlink(fs, "/gone")));
    FU_OK(vd_fs_unmount(fs));
    FU_OK(vd_image_close(img));
}

typedef struct state_check {
    unsigned problems;
    char first[200];
} state_check;

static void on_problem(void *ctx, const vd_fsck_problem *p)
{
    state_check *s = ctx;
    if (p->kind == VD_FSCK_P_DIRTY)
        return;
    if (s->problems++ == 0)
        snprintf(s->first, sizeof s->first, "%s%s%s", p->what, p->path ? ": " : "",
                 p->path ? p->path : "");
}

/* Every byte of path is its file's own or zero; empty string if so. */
static void check_files(vd_image *img, char *why, size_t cap)
{
    vd_fs *fs;
    vd_fs_opts fo = {.read_only = 1};
    vd_err e = vd_fs_mount(img, &fo, &fs);
    if (e != VD_OK) {
        snprintf(why, cap, "mount: %s", vd_strerror(e));
        return;
    }
    uint8_t *got = malloc(13 * MIB), *want = malloc(13 * MIB);
    assert_non_null(got);
    assert_non_null(want);
    for (unsigned i = 0; i < NFILES && !why[0]; i++) {
        vd_file *f;
        if (vd_file_open(fs, g_files[i].path, VD_O_RDONLY, &f) != VD_OK)
            continue; /* not made yet, or gone */
        size_t done = 0;
        e = vd_file_read(f, 0, got, 13 * MIB, &done);
        if (e != VD_OK || done > g_files[i].max_len)
            snprintf(why, cap, "%s: read %s, %zu bytes", g_files[i].path, vd_strerror(e),
                     done);
        /* /b may hold a's bytes (renamed over) or its own. */
        uint64_t id = g_files[i].id, alt = i == 3 ? 3 : id;
        fu_fill(want, done, id, 0);
        for (size_t k = 0; k < done && !why[0]; k++)
            if (got[k] != want[k] && got[k] != 0) {
                uint8_t b;
                fu_fill(&b, 1, alt, k);
                if (got[k] != b)
                    snprintf(why, cap, "%s: byte %zu is no byte of its file", g_files[i].path,
                             k);
            }
        vd_file_close(f);
    }
    free(got);
    free(want);
    vd_fs_unmount(fs);
}

static int check_state(vd_rec *rec, size_t point, char *why, size_t cap)
{
    why[0] = 0;
    vd_host *h;
    FU_OK(vd_rec_crash_view(rec, point, NULL, 0, 0, &h));
    vd_image *img;
    vd_open_opts o = open_opts();
    vd_err e = vd_image_open(h, g_key, &o, &img);
    if (e != VD_OK) {
        snprintf(why, cap, "open: %s", vd_strerror(e));
    } else {
        state_check s = {0};
        vd_fsck_opts fo = {.mode = VD_FSCK_CHECK, .ctx = &s, .report = on_problem};
        vd_fsck_result res;
        e = vd_fsck(img, &fo, &res);
        if (e != VD_OK)
            snprintf(why, cap, "vd_fsck: %s", vd_strerror(e));
        else if (s.problems)
            snprintf(why, cap, "vd_fsck: %u problems, first: %s", s.problems, s.first);
        else
            check_files(img, why, cap);
        vd_image_close(img);
    }
    vd_rec_view_free(h);
    return why[0] == 0;
}

static void large_operations_commit_in_consistent_steps(void **state)
{
    (void)state;
    vd_rec *rec = vd_rec_new(NULL, 0);
    assert_non_null(rec);
    workload(rec);
    size_t nops = vd_rec_op_count(rec), checked = 0, failed = 0;
    char why[256], first[512] = "";
    for (size_t p = 0; p <= nops; p++) {
        vd_rec_op_info info = {0};
        int flush = p > 0 && vd_rec_op_get(rec, p - 1, &info) == VD_OK &&
                    info.kind == VD_REC_FLUSH;
        if (!flush && p % (nops / STATES + 1) != 0 && p != nops)
            continue;
        checked++;
        if (!check_state(rec, p, why, sizeof why) && failed++ == 0)
            snprintf(first, sizeof first, "crash after op %zu of %zu: %s", p, nops, why);
    }
    printf("fat-steps: %zu writes/flushes logged (%zu flushes), %zu crash states checked, "
           "%zu failed\n", nops, vd_rec_flush_count(rec), checked, failed);
    if (failed)
        fail_msg("%zu of %zu crash states failed; first: %s", failed, checked, first);
    vd_rec_free(rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(large_operations_commit_in_consistent_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
