/* vd_image_scrub and vd_fsck: images built through the library on the
 * memory host, damaged either as valid but inconsistent FAT32 (written
 * through the image) or as tampered ciphertext on the host; each test
 * checks what the check finds, that a repair makes a second check clean,
 * and (where fsck.fat is installed) that fsck.fat -n agrees on the exported
 * volume. The damage itself is shared with the tests/fsck/ cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "record.h"
#include "tests/fsck/damage.c"
#include "vdisk/check.h"

#define MAXP 32

typedef struct fx {
    vd_host *h;
    vd_image *img;
    uint8_t key[VD_KEY_BYTES];
} fx;

typedef struct seen {
    int n, total;
    vd_fsck_kind kind[MAXP];
    int fixed[MAXP];
    uint64_t lbn[MAXP], nblocks[MAXP];
    uint32_t level[MAXP];
    char path[MAXP][64];
} seen;

static void fx_open(fx *f, int ro)
{
    vd_open_opts o = {.read_only = ro};
    assert_int_equal(vd_image_open(f->h, f->key, &o, &f->img), VD_OK);
}

static void fx_close(fx *f)
{
    assert_int_equal(vd_image_close(f->img), VD_OK);
    f->img = NULL;
}

static void fx_new(fx *f)
{
    memset(f, 0, sizeof *f);
    for (unsigned i = 0; i < VD_KEY_BYTES; i++)
        f->key[i] = (uint8_t)(i * 13 + 7);
    assert_int_equal(vd_host_mem_new(&f->h), VD_OK);
    vd_create_opts co = {.nblocks = DMG_NBLOCKS, .fanout = DMG_FANOUT};
    assert_int_equal(vd_image_create(f->h, f->key, &co, NULL, &f->img), VD_OK);
    assert_int_equal(dmg_build(f->img), VD_OK);
}

static void fx_free(fx *f)
{
    if (f->img)
        (void)vd_image_close(f->img);
    vd_host_mem_free(f->h);
}

static void on_report(void *ctx, const vd_fsck_problem *p)
{
    seen *s = ctx;
    assert_non_null(p->what);
    s->total++;
    if (s->n >= MAXP)
        return;
    s->kind[s->n] = p->kind;
    s->fixed[s->n] = p->fixed;
    s->lbn[s->n] = p->have_block ? p->first_lbn : UINT64_MAX;
    s->nblocks[s->n] = p->nblocks;
    s->level[s->n] = p->level;
    snprintf(s->path[s->n], sizeof s->path[0], "%s", p->path ? p->path : "");
    s->n++;
}

/* Reopen (read-only for a check) and run vd_fsck. */
static vd_fsck_result run(fx *f, vd_fsck_mode mode, seen *s)
{
    seen dummy;
    if (!s)
        s = &dummy;
    memset(s, 0, sizeof *s);
    if (f->img)
        fx_close(f);
    fx_open(f, mode == VD_FSCK_CHECK);
    vd_fsck_opts o = {.mode = mode, .ctx = s, .report = on_report};
    vd_fsck_result r;
    assert_int_equal(vd_fsck(f->img, &o, &r), VD_OK);
    assert_int_equal((int)r.found, s->total);
    fx_close(f);
    return r;
}

static int has_kind(const seen *s, vd_fsck_kind k)
{
    for (int i = 0; i < s->n; i++)
        if (s->kind[i] == k)
            return 1;
    return 0;
}

static int sink(void *ctx, uint64_t off, const void *buf, size_t len)
{
    FILE *fp = ctx;
    return fseek(fp, (long)off, SEEK_SET) == 0 && fwrite(buf, 1, len, fp) == len ? 0 : -1;
}

/* fsck.fat -n on the exported volume: 0 = clean, 1 = errors, -1 = no fsck.fat. */
static int fsckfat(fx *f)
{
    if (system("command -v fsck.fat >/dev/null 2>&1") != 0)
        return -1;
    char path[] = "/tmp/vd-test-fsck-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    assert_non_null(fp);
    fx_open(f, 1);
    uint64_t bytes;
    assert_int_equal(vd_fs_export(f->img, sink, fp, 0, &bytes), VD_OK);
    fx_close(f);
    assert_int_equal(fclose(fp), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "fsck.fat -n %s >/dev/null 2>&1", path);
    int st = system(cmd);
    unlink(path);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st) == 0 ? 0 : 1;
}

static void expect_clean(fx *f)
{
    seen s;
    vd_fsck_result r = run(f, VD_FSCK_CHECK, &s);
    if (r.found)
        print_error("left after repair: kind %d path '%s'\n", s.kind[0], s.path[0]);
    assert_int_equal(r.found, 0);
    assert_int_equal(r.scrub.bad_blocks + r.scrub.bad_nodes, 0);
    int ff = fsckfat(f);
    assert_true(ff != 1); /* fsck.fat agrees (or is not installed) */
}

static void damage(fx *f, const char *what)
{
    if (!f->img)
        fx_open(f, 0);
    assert_int_equal(dmg_volume(f->img, what), VD_OK);
    fx_close(f);
}

/* Flip a byte of BIG.BIN's block at off (data) or of its level-1 node. */
static uint64_t tamper(fx *f, uint64_t off, int node)
{
    uint64_t lbn, doff, noff;
    if (!f->img)
        fx_open(f, 1);
    assert_int_equal(dmg_file_block(f->img, "/BIG.BIN", off, &lbn), VD_OK);
    fx_close(f);
    assert_int_equal(dmg_phys(f->h, lbn, &doff, &noff), VD_OK);
    assert_int_equal(dmg_flip(f->h, node ? noff : doff), VD_OK);
    return lbn;
}

/* ---- tests ---- */

static void clean_image_is_clean(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    fx_close(&f);
    vd_fsck_result r = run(&f, VD_FSCK_CHECK, NULL);
    assert_int_equal(r.found, 0);
    assert_int_equal(r.scrub.blocks, DMG_NBLOCKS);
    assert_int_equal(r.scrub.blocks_ok, DMG_NBLOCKS);
    assert_int_equal(r.files, 6);
    assert_int_equal(r.dirs, 1);
    assert_true(r.fs_checked);
    assert_int_equal(fsckfat(&f) == 1, 0);
    /* Repair modes on a clean volume write nothing at all. */
    uint64_t size;
    uint8_t *copy = malloc(DMG_NBLOCKS * (size_t)VD_BLOCK_SIZE * 2);
    assert_non_null(copy);
    const uint8_t *now = vd_host_mem_data(f.h, &size);
    assert_true(size <= DMG_NBLOCKS * (size_t)VD_BLOCK_SIZE * 2);
    memcpy(copy, now, size);
    r = run(&f, VD_FSCK_ALL, NULL);
    assert_int_equal(r.found, 0);
    r = run(&f, VD_FSCK_SAFE, NULL);
    assert_int_equal(r.found, 0);
    assert_memory_equal(vd_host_mem_data(f.h, &size), copy, size);
    free(copy);
    fx_free(&f);
}

typedef struct bads {
    int n;
    vd_bad_range r[8];
} bads;

static vd_err collect(void *ctx, const vd_bad_range *r)
{
    bads *b = ctx;
    if (b->n < 8)
        b->r[b->n] = *r;
    b->n++;
    return VD_OK;
}

typedef struct prog {
    uint64_t calls, last, total;
    int backwards;
} prog;

static void on_prog(void *ctx, uint64_t done, uint64_t total)
{
    prog *p = ctx;
    if (done < p->last)
        p->backwards = 1;
    p->last = done;
    p->total = total;
    p->calls++;
}

static void scrub_progress_reaches_the_end(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    prog p = {0};
    vd_scrub_ops ops = {&p, NULL, on_prog};
    vd_scrub_stats st;
    assert_int_equal(vd_image_scrub(f.img, &ops, &st), VD_OK);
    assert_true(p.calls > 1);
    assert_false(p.backwards);
    assert_int_equal(p.last, DMG_NBLOCKS);
    assert_int_equal(p.total, DMG_NBLOCKS);
    /* Never-written blocks are vouched for without a read: far less than
     * the whole image came from the host. */
    assert_true(st.bytes_read < (uint64_t)DMG_NBLOCKS * VD_BLOCK_SIZE / 4);
    assert_true(st.bytes_read > (uint64_t)DMG_BIG_BYTES);
    fx_free(&f);
}

static void scrub_names_every_bad_block_and_goes_on(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    uint64_t a = tamper(&f, 8192, 0), b = tamper(&f, 200000, 0);
    fx_open(&f, 1);
    bads got = {0};
    vd_scrub_ops ops = {&got, collect, NULL};
    vd_scrub_stats st;
    assert_int_equal(vd_image_scrub(f.img, &ops, &st), VD_OK);
    assert_int_equal(got.n, 2);
    assert_int_equal(got.r[0].level, 0);
    assert_int_equal(got.r[0].first_lbn, a);
    assert_int_equal(got.r[0].nblocks, 1);
    assert_int_equal(got.r[1].first_lbn, b);
    assert_int_equal(st.bad_blocks, 2);
    assert_int_equal(st.blocks, DMG_NBLOCKS);
    assert_int_equal(st.blocks_ok, DMG_NBLOCKS - 2);
    /* A bad data block does not fail the handle. */
    uint8_t buf[VD_BLOCK_SIZE];
    assert_int_equal(vd_image_read(f.img, 0, 1, buf), VD_OK);
    fx_free(&f);
}

static void scrub_skips_a_bad_node_and_reports_its_range(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    uint64_t lbn = tamper(&f, 100000, 1);
    fx_open(&f, 1);
    bads got = {0};
    vd_scrub_ops ops = {&got, collect, NULL};
    vd_scrub_stats st;
    assert_int_equal(vd_image_scrub(f.img, &ops, &st), VD_OK);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.r[0].level, 1);
    assert_int_equal(got.r[0].first_lbn, lbn / DMG_FANOUT * DMG_FANOUT);
    assert_int_equal(got.r[0].nblocks, DMG_FANOUT);
    assert_int_equal(st.bad_nodes, 1);
    assert_int_equal(st.unverifiable, DMG_FANOUT);
    assert_int_equal(st.blocks_ok, DMG_NBLOCKS - DMG_FANOUT);
    /* Outside the range the handle still works; under it an ordinary
     * read fails and fails the handle, as before the scrub. */
    uint8_t buf[VD_BLOCK_SIZE];
    assert_int_equal(vd_image_read(f.img, 0, 1, buf), VD_OK);
    assert_int_equal(vd_image_read(f.img, lbn, 1, buf), VD_ERR_AUTH);
    assert_int_equal(vd_image_read(f.img, 0, 1, buf), VD_ERR_FAILED);
    assert_int_equal(vd_image_scrub(f.img, &ops, &st), VD_ERR_FAILED);
    fx_free(&f);
}

/* One safe problem: -p repairs it and a second check is clean. */
static void safe_case(const char *what, vd_fsck_kind kind)
{
    fx f;
    fx_new(&f);
    damage(&f, what);
    seen s;
    vd_fsck_result r = run(&f, VD_FSCK_CHECK, &s);
    assert_true(r.found >= 1);
    assert_true(has_kind(&s, kind));
    assert_int_equal(r.fixed, 0);
    r = run(&f, VD_FSCK_SAFE, &s);
    assert_true(has_kind(&s, kind));
    assert_int_equal(r.fixed, r.found);
    expect_clean(&f);
    fx_free(&f);
}

static void dirty_flag_is_cleared_by_p(void **state)
{
    (void)state;
    safe_case("dirty", VD_FSCK_P_DIRTY);
}

static void wrong_fsinfo_is_corrected_by_p(void **state)
{
    (void)state;
    safe_case("fsinfo", VD_FSCK_P_FSINFO);
}

static void differing_fat_copies_are_made_equal_by_p(void **state)
{
    (void)state;
    safe_case("fatcopy", VD_FSCK_P_FAT_COPIES);
}

static void lost_chain_is_freed_by_p(void **state)
{
    (void)state;
    safe_case("lost", VD_FSCK_P_LOST);
}

/* A problem only -y may repair: -n and -p change no byte, -y repairs. */
static void unsafe_case(const char *what, vd_fsck_kind kind, const char *path)
{
    fx f;
    fx_new(&f);
    damage(&f, what);
    uint64_t size;
    uint8_t *before = vd_host_mem_data(f.h, &size);
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, before, size);
    seen s;
    vd_fsck_result r = run(&f, VD_FSCK_SAFE, &s);
    assert_true(has_kind(&s, kind));
    assert_int_equal(r.fixed, 0);
    uint64_t size2;
    uint8_t *after = vd_host_mem_data(f.h, &size2);
    assert_int_equal(size2, size);
    assert_memory_equal(after, copy, size);
    free(copy);
    r = run(&f, VD_FSCK_ALL, &s);
    int named = 0;
    for (int i = 0; i < s.n; i++)
        if (s.kind[i] == kind && strcmp(s.path[i], path) == 0)
            named = 1;
    assert_true(named);
    assert_int_equal(r.fixed, r.found);
    expect_clean(&f);
    fx_free(&f);
}

static void safe_mode_writes_nothing_beside_an_unsafe_problem(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    damage(&f, "lost");      /* safe alone */
    damage(&f, "crosslink"); /* needs -y */
    uint64_t size;
    uint8_t *copy = malloc(DMG_NBLOCKS * (size_t)VD_BLOCK_SIZE * 2);
    assert_non_null(copy);
    uint8_t *before = vd_host_mem_data(f.h, &size);
    assert_true(size <= DMG_NBLOCKS * (size_t)VD_BLOCK_SIZE * 2);
    memcpy(copy, before, size);
    seen s;
    vd_fsck_result r = run(&f, VD_FSCK_SAFE, &s);
    assert_true(has_kind(&s, VD_FSCK_P_LOST));
    assert_true(has_kind(&s, VD_FSCK_P_CROSSLINK));
    assert_int_equal(r.fixed, 0);
    assert_memory_equal(vd_host_mem_data(f.h, &size), copy, size);
    free(copy);
    r = run(&f, VD_FSCK_ALL, &s);
    assert_int_equal(r.fixed, r.found);
    expect_clean(&f);
    fx_free(&f);
}

static void cross_link_cuts_the_later_file(void **state)
{
    (void)state;
    unsafe_case("crosslink", VD_FSCK_P_CROSSLINK, "/B.BIN");
    /* And the earlier file keeps its whole chain. */
    fx f;
    fx_new(&f);
    damage(&f, "crosslink");
    (void)run(&f, VD_FSCK_ALL, NULL);
    fx_open(&f, 1);
    vd_fs *fs;
    vd_stat a, b;
    assert_int_equal(vd_fs_mount(f.img, &(vd_fs_opts){.read_only = 1}, &fs), VD_OK);
    assert_int_equal(vd_fs_stat(fs, "/A.BIN", &a), VD_OK);
    assert_int_equal(vd_fs_stat(fs, "/B.BIN", &b), VD_OK);
    assert_int_equal(a.size, 3000);
    assert_int_equal(b.size, 3000);
    assert_int_not_equal(a.first_cluster, b.first_cluster);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    fx_free(&f);
}

static void size_beyond_chain_is_cut(void **state)
{
    (void)state;
    unsafe_case("size", VD_FSCK_P_SIZE, "/DATA.BIN");
}

static void broken_long_name_falls_back_to_short_name(void **state)
{
    (void)state;
    unsafe_case("lfn", VD_FSCK_P_LFN, "/docs");
    fx f;
    fx_new(&f);
    damage(&f, "lfn");
    (void)run(&f, VD_FSCK_ALL, NULL);
    fx_open(&f, 1);
    vd_fs *fs;
    vd_stat st;
    assert_int_equal(vd_fs_mount(f.img, &(vd_fs_opts){.read_only = 1}, &fs), VD_OK);
    assert_int_equal(vd_fs_stat(fs, "/docs/Long File Name.txt", &st), VD_ERR_NOENT);
    assert_int_equal(vd_fs_stat(fs, "/docs/LONGFI~1.TXT", &st), VD_OK);
    assert_int_equal(st.size, 5000);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    fx_free(&f);
}

static void tampered_block_names_its_file_and_is_quarantined(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    uint64_t lbn = tamper(&f, 100000, 0);
    seen s;
    vd_fsck_result r = run(&f, VD_FSCK_CHECK, &s);
    assert_int_equal(r.found, 1);
    assert_int_equal(r.integrity_found, 1);
    assert_int_equal(s.kind[0], VD_FSCK_P_INTEGRITY);
    assert_string_equal(s.path[0], "/BIG.BIN");
    assert_int_equal(s.lbn[0], lbn);
    assert_int_equal(s.level[0], 0);
    r = run(&f, VD_FSCK_SAFE, &s); /* quarantine is not "safe" */
    assert_int_equal(r.fixed, 0);
    r = run(&f, VD_FSCK_ALL, &s);
    assert_int_equal(r.integrity_fixed, 1);
    assert_int_equal(r.fixed, r.found);
    expect_clean(&f);
    /* What is left of the file is the original bytes up to the cluster
     * before the bad block; the bad block now reads as zeros. */
    fx_open(&f, 1);
    vd_fs *fs;
    vd_stat st;
    vd_file *fl;
    assert_int_equal(vd_fs_mount(f.img, &(vd_fs_opts){.read_only = 1}, &fs), VD_OK);
    assert_int_equal(vd_fs_stat(fs, "/BIG.BIN", &st), VD_OK);
    assert_true(st.size < 100000 && st.size > 100000 - VD_BLOCK_SIZE - 512);
    uint8_t *buf = malloc(st.size), *want = malloc(st.size);
    assert_non_null(buf);
    assert_non_null(want);
    size_t done;
    assert_int_equal(vd_file_open(fs, "/BIG.BIN", VD_O_RDONLY, &fl), VD_OK);
    assert_int_equal(vd_file_read(fl, 0, buf, st.size, &done), VD_OK);
    assert_int_equal(done, st.size);
    for (uint32_t i = 0; i < st.size; i++)
        want[i] = (uint8_t)(5 + i * 7 + (i >> 9));
    assert_memory_equal(buf, want, st.size);
    assert_int_equal(vd_file_close(fl), VD_OK);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    uint8_t blk[VD_BLOCK_SIZE], zero[VD_BLOCK_SIZE] = {0};
    assert_int_equal(vd_image_read(f.img, lbn, 1, blk), VD_OK);
    assert_memory_equal(blk, zero, sizeof blk);
    free(buf);
    free(want);
    fx_free(&f);
}

static void tampered_node_is_reset_and_its_file_quarantined(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    uint64_t lbn = tamper(&f, 100000, 1);
    seen s;
    vd_fsck_result r = run(&f, VD_FSCK_SAFE, &s); /* not a safe repair */
    assert_int_equal(r.scrub.bad_nodes, 1);
    assert_int_equal(r.fixed, 0);
    r = run(&f, VD_FSCK_ALL, &s);
    assert_int_equal(r.fixed, r.found);
    int file_cut = 0, reset = 0;
    for (int i = 0; i < s.n; i++) {
        if (s.level[i] != 1 || !s.fixed[i])
            continue;
        file_cut |= strcmp(s.path[i], "/BIG.BIN") == 0;
        reset |= strcmp(s.path[i], "tree node") == 0;
    }
    assert_true(file_cut);
    assert_true(reset);
    expect_clean(&f);
    /* The range now reads as never written, and every free cluster,
     * those under the old node included, takes writes that sync. */
    fx_open(&f, 0);
    uint8_t blk[VD_BLOCK_SIZE], zero[VD_BLOCK_SIZE] = {0};
    assert_int_equal(vd_image_read(f.img, lbn, 1, blk), VD_OK);
    assert_memory_equal(blk, zero, sizeof blk);
    vd_fs *fs;
    vd_statfs sf;
    assert_int_equal(vd_fs_mount(f.img, NULL, &fs), VD_OK);
    assert_int_equal(vd_fs_statfs(fs, &sf), VD_OK);
    size_t len = (size_t)sf.free_clusters * sf.cluster_bytes, done;
    uint8_t *fill = malloc(len);
    assert_non_null(fill);
    memset(fill, 0xA5, len);
    vd_file *fl;
    assert_int_equal(vd_file_open(fs, "/FILL.BIN", VD_O_WRONLY | VD_O_CREAT, &fl), VD_OK);
    assert_int_equal(vd_file_write(fl, 0, fill, len, &done), VD_OK);
    assert_int_equal(vd_file_close(fl), VD_OK);
    assert_int_equal(vd_fs_unmount(fs), VD_OK);
    fx_close(&f);
    free(fill);
    expect_clean(&f);
    fx_free(&f);
}

static void discard_refuses_what_it_cannot_do(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    vd_image_info info;
    assert_int_equal(vd_image_info_get(f.img, &info), VD_OK);
    vd_bad_range root = {info.height, 0, DMG_NBLOCKS};
    vd_bad_range data = {0, 5, 1}, unaligned = {1, 3, DMG_FANOUT},
                 short_range = {1, 0, DMG_FANOUT - 1};
    assert_int_equal(vd_image_discard_range(f.img, &root), VD_ERR_INVAL); /* verifies */
    assert_int_equal(vd_image_discard_range(f.img, &data), VD_ERR_INVAL);
    assert_int_equal(vd_image_discard_range(f.img, &unaligned), VD_ERR_INVAL);
    assert_int_equal(vd_image_discard_range(f.img, &short_range), VD_ERR_INVAL);
    assert_int_equal(vd_image_discard_range(NULL, &data), VD_ERR_INVAL);
    vd_bad_range good = {1, 0, DMG_FANOUT}; /* verifies: nothing to repair */
    assert_int_equal(vd_image_discard_range(f.img, &good), VD_ERR_INVAL);
    uint8_t blk[VD_BLOCK_SIZE], zero[VD_BLOCK_SIZE] = {0};
    assert_int_equal(vd_image_read(f.img, 0, 1, blk), VD_OK);
    assert_memory_not_equal(blk, zero, sizeof blk); /* the boot sector is still there */
    fx_close(&f);
    fx_open(&f, 1);
    vd_bad_range ok = {1, 0, DMG_FANOUT};
    assert_int_equal(vd_image_discard_range(f.img, &ok), VD_ERR_READONLY);
    fx_close(&f);
    /* A failing root covers the whole disk: nothing to keep it in. */
    uint64_t size;
    vd_header h;
    mt_geometry g;
    assert_int_equal(vd_header_decode(&h, vd_host_mem_data(f.h, &size)), 0);
    assert_int_equal(mt_geometry_init(&g, h.nblocks, h.fanout), 0);
    assert_int_equal(
        dmg_flip(f.h, (h.node_start + mt_node_index(&g, g.height, 0)) * VDF_BLOCK),
        VD_OK);
    fx_open(&f, 0);
    assert_int_equal(vd_image_discard_range(f.img, &root), VD_ERR_UNSUPPORTED);
    fx_free(&f);
}

/* After a crash anywhere in vd_image_discard_range, writes in any subset
 * of the unflushed tail, the image opens writable (recovery included), the
 * neighbour the sync rewrote reads as before, and the range is either
 * still failing (old state) or all zeros (new state): never anything else,
 * never a false failure outside it (C1, R2). */
static void discard_is_crash_consistent(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    uint64_t lbn = tamper(&f, 100000, 1);
    uint64_t first = lbn / DMG_FANOUT * DMG_FANOUT;
    uint64_t nb = first >= DMG_FANOUT ? first - 1 : first + DMG_FANOUT; /* a neighbour */
    uint8_t want[VD_BLOCK_SIZE], got[VD_BLOCK_SIZE], zero[VD_BLOCK_SIZE] = {0};
    fx_open(&f, 1);
    assert_int_equal(vd_image_read(f.img, nb, 1, want), VD_OK);
    fx_close(&f);
    uint64_t size;
    const uint8_t *bytes = vd_host_mem_data(f.h, &size);
    vd_rec *rec = vd_rec_new(bytes, size);
    assert_non_null(rec);
    vd_image *img;
    assert_int_equal(vd_image_open(vd_rec_host(rec), f.key, NULL, &img), VD_OK);
    vd_bad_range r = {1, first, DMG_FANOUT};
    assert_int_equal(vd_image_discard_range(img, &r), VD_OK);
    assert_int_equal(vd_image_read(img, lbn, 1, got), VD_OK);
    assert_memory_equal(got, zero, sizeof got);
    assert_int_equal(vd_image_close(img), VD_OK);
    size_t nops = vd_rec_op_count(rec), states = 0, olds = 0, news = 0;
    for (size_t n = 0; n <= nops; n++) {
        size_t tail = n - vd_rec_tail_first(rec, n);
        if (tail > 10)
            tail = 10; /* (never reached: a sync flushes every few writes) */
        for (uint32_t m = 0; m < (1u << tail); m++) {
            uint8_t mask[2] = {(uint8_t)m, (uint8_t)(m >> 8)};
            vd_host *h;
            assert_int_equal(vd_rec_crash_host(rec, n, mask, 0, 0, &h), VD_OK);
            assert_int_equal(vd_image_open(h, f.key, NULL, &img), VD_OK);
            assert_int_equal(vd_image_read(img, nb, 1, got), VD_OK);
            assert_memory_equal(got, want, sizeof got);
            vd_err e = vd_image_read(img, lbn, 1, got);
            if (e == VD_OK) {
                assert_memory_equal(got, zero, sizeof got);
                news++;
            } else {
                assert_int_equal(e, VD_ERR_AUTH);
                olds++;
            }
            (void)vd_image_close(img);
            vd_host_mem_free(h);
            states++;
        }
    }
    assert_true(olds > 0 && news > 0);
    print_message("discard: %zu ops, %zu crash states (%zu old, %zu new)\n", nops, states,
                  olds, news);
    vd_rec_free(rec);
    fx_free(&f);
}

/* Random damage to the FAT, the directories, FSInfo and the backup boot
 * sector (authenticated, so only the structure is wrong): whatever fsck.fat
 * finds, the check finds something; -y must leave a volume a second check
 * finds clean, and fsck.fat agrees; nothing may crash or loop. (Sweeps of
 * a few hundred seeds at 12 and 40 damaged bytes passed while writing
 * this; 24 stay here to keep the suite fast.) */
static void random_structure_damage_is_repaired(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        fx f;
        fx_new(&f);
        dmg_geo g;
        assert_int_equal(geo_read(f.img, &g), VD_OK);
        vd_fs *fs;
        vd_stat docs;
        assert_int_equal(vd_fs_mount(f.img, NULL, &fs), VD_OK);
        assert_int_equal(vd_fs_stat(fs, "/docs", &docs), VD_OK);
        assert_int_equal(vd_fs_unmount(fs), VD_OK);
        uint64_t x = seed * 0x9E3779B97F4A7C15ull;
        for (int k = 0; k < 12; k++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            uint64_t r = x * 0x2545F4914F6CDD1Dull, off;
            switch (r % 5) {
            case 4: /* FSInfo, the backup boot sector and its FSInfo */
                off = (r >> 8) % 2 ? 512 + (r >> 9) % 512 : 3072 + (r >> 9) % 1024;
                break;
            case 0: /* FAT copy 1, entries of the clusters in use */
                off = g.fat_off + (r >> 8) % 2600;
                break;
            case 1: /* both copies at once */
                off = g.fat_off + ((r >> 8) % 650) * 4;
                break;
            case 2:
                off = clus_off(&g, g.root) + (r >> 8) % 256;
                break;
            default:
                off = clus_off(&g, docs.first_cluster) + (r >> 8) % 256;
                break;
            }
            uint8_t b = (uint8_t)(r >> 40);
            assert_int_equal(vol_rw(f.img, off, &b, 1, 1), VD_OK);
            if (r % 5 == 1) {
                off += (uint64_t)g.fatsz * g.bps;
                assert_int_equal(vol_rw(f.img, off, &b, 1, 1), VD_OK);
            }
        }
        fx_close(&f);
        seen s;
        /* Whatever fsck.fat finds wrong, the check finds something too. */
        vd_fsck_result r0 = run(&f, VD_FSCK_CHECK, &s);
        int ff0 = fsckfat(&f);
        if (ff0 == 1 && r0.found == 0)
            print_error("seed %llu: fsck.fat finds errors, vd_fsck none\n",
                        (unsigned long long)seed);
        assert_false(ff0 == 1 && r0.found == 0);
        vd_fsck_result r = run(&f, VD_FSCK_ALL, &s);
        vd_fsck_result r2 = run(&f, VD_FSCK_CHECK, &s);
        int ff = fsckfat(&f);
        if (r2.found != r2.fixed + 0 || r2.found > 0 || ff == 1)
            print_error("seed %llu: first run %u found %u fixed; second %u found "
                        "(kind %d at '%s'); fsck.fat %d\n",
                        (unsigned long long)seed, r.found, r.fixed, r2.found,
                        s.n ? (int)s.kind[0] : 0, s.n ? s.path[0] : "", ff);
        /* Only what cannot be repaired may remain (the root itself). */
        for (int i = 0; i < s.n; i++)
            assert_int_equal(s.kind[i], VD_FSCK_P_VOLUME);
        if (r2.found == 0)
            assert_int_not_equal(ff, 1);
        fx_free(&f);
    }
}

/* Random tampering of ciphertext (data blocks and tree nodes, written or
 * not): -y quarantines and resets what failed; a second check is clean
 * unless the damage hit what no repair can replace (boot sector, root
 * directory), and fsck.fat agrees whenever it is. */
static void random_tampering_is_quarantined(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 12; seed++) {
        fx f;
        fx_new(&f);
        fx_close(&f);
        uint64_t size;
        vd_header h;
        mt_geometry g;
        assert_int_equal(vd_header_decode(&h, vd_host_mem_data(f.h, &size)), 0);
        assert_int_equal(mt_geometry_init(&g, h.nblocks, h.fanout), 0);
        uint64_t x = seed * 0xD1B54A32D192ED03ull;
        for (int k = 0; k < 4; k++) {
            x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
            uint64_t r = x * 0x2545F4914F6CDD1Dull, phys;
            if (r % 3 == 0) /* a level-1 node */
                phys = h.node_start + g.level_start[1] + (r >> 8) % g.count[1];
            else /* a data block among the first ones (where the files are) */
                phys = h.data_start + (r >> 8) % 1200;
            assert_int_equal(dmg_flip(f.h, phys * VDF_BLOCK), VD_OK);
        }
        seen s;
        vd_fsck_result r = run(&f, VD_FSCK_ALL, &s);
        vd_fsck_result r2 = run(&f, VD_FSCK_CHECK, &s);
        int fatal = 0;
        for (int i = 0; i < s.n; i++)
            fatal |= s.kind[i] == VD_FSCK_P_VOLUME;
        int ff = r2.found == 0 ? fsckfat(&f) : -1;
        if ((r2.found && !fatal) || ff == 1)
            print_error("seed %llu: first run %u found %u fixed; second %u found "
                        "(kind %d at '%s'); fsck.fat %d\n",
                        (unsigned long long)seed, r.found, r.fixed, r2.found,
                        s.n ? (int)s.kind[0] : 0, s.n ? s.path[0] : "", ff);
        assert_true(r2.found == 0 || fatal);
        assert_int_not_equal(ff, 1);
        fx_free(&f);
    }
}

static void repair_needs_a_writable_handle(void **state)
{
    (void)state;
    fx f;
    fx_new(&f);
    fx_close(&f);
    fx_open(&f, 1);
    vd_fsck_opts o = {.mode = VD_FSCK_ALL};
    vd_fsck_result r;
    assert_int_equal(vd_fsck(f.img, &o, &r), VD_ERR_READONLY);
    assert_int_equal(vd_fsck(NULL, &o, &r), VD_ERR_INVAL);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clean_image_is_clean),
        cmocka_unit_test(scrub_progress_reaches_the_end),
        cmocka_unit_test(scrub_names_every_bad_block_and_goes_on),
        cmocka_unit_test(safe_mode_writes_nothing_beside_an_unsafe_problem),
        cmocka_unit_test(scrub_skips_a_bad_node_and_reports_its_range),
        cmocka_unit_test(dirty_flag_is_cleared_by_p),
        cmocka_unit_test(wrong_fsinfo_is_corrected_by_p),
        cmocka_unit_test(differing_fat_copies_are_made_equal_by_p),
        cmocka_unit_test(lost_chain_is_freed_by_p),
        cmocka_unit_test(cross_link_cuts_the_later_file),
        cmocka_unit_test(size_beyond_chain_is_cut),
        cmocka_unit_test(broken_long_name_falls_back_to_short_name),
        cmocka_unit_test(tampered_block_names_its_file_and_is_quarantined),
        cmocka_unit_test(tampered_node_is_reset_and_its_file_quarantined),
        cmocka_unit_test(discard_refuses_what_it_cannot_do),
        cmocka_unit_test(discard_is_crash_consistent),
        cmocka_unit_test(random_structure_damage_is_repaired),
        cmocka_unit_test(random_tampering_is_quarantined),
        cmocka_unit_test(repair_needs_a_writable_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
