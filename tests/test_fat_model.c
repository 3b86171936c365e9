/* Model-based random test of the FAT32 layer: a seeded sequence of
 * operations (create, write at random offsets, truncate, read, unlink,
 * mkdir, rmdir, rename) is applied to vdisk and to a plain in-memory model
 * of the tree; every result code, every read and the listing of the
 * touched directories must agree after each step, the whole tree is
 * compared periodically and after unmount + image reopen, and (when
 * dosfstools is installed) fsck.fat -n must find the exported volume
 * clean at the end of each seed. Names come from a small pool with random
 * case changes, so collisions, case-insensitive lookups and slot reuse are
 * frequent. Two more seeds use big files so the volume fills up and
 * VD_ERR_NOSPC must leave everything as it was. Seeds are printed;
 * VD_FAT_SEED=<n> [VD_FAT_TIGHT=1] reruns one. */
#include <ctype.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fat_util.h"

#define NBLOCKS 10240u
#define OPS 4000
#define MAX_FILE (96u * 1024)
#define MAX_FILE_TIGHT (6u << 20)

/* A run: "tight" runs use big files on the same 40 MiB volume, so it
 * fills up; then a full volume (VD_ERR_NOSPC) is a legal answer to any
 * operation that allocates, and that operation must have changed
 * nothing (checked against the unchanged model right after). */
typedef struct run {
    int tight;
    size_t max_file;
    unsigned nospc;
} run;

static int nospc_ok(run *rn, vd_err r, vd_err want)
{
    if (rn->tight && want == VD_OK && r == VD_ERR_NOSPC) {
        rn->nospc++;
        return 1;
    }
    return 0;
}
#define MAX_DEPTH 4

typedef struct mnode {
    char path[400]; /* "/a/b", as spelled at creation (or rename) */
    int is_dir;
    uint8_t *data;
    size_t len;
} mnode;

typedef struct model {
    mnode *v;
    size_t n, cap;
} model;

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    return n ? rng(s) % n : 0;
}

/* Case-insensitive on ASCII, which is all the pool varies in case. */
static int path_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (toupper((unsigned char)*a) != toupper((unsigned char)*b))
            return 0;
    return *a == *b;
}

static long m_find(const model *m, const char *path)
{
    for (size_t i = 0; i < m->n; i++)
        if (path_eq(m->v[i].path, path))
            return (long)i;
    return -1;
}

static void parent_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *sl = strrchr(out, '/');
    *sl = 0; /* "" is the root */
}

/* Is `path` equal to `anc` or below it? */
static int under(const char *path, const char *anc)
{
    size_t l = strlen(anc);
    if (strlen(path) < l)
        return 0;
    char head[400];
    memcpy(head, path, l);
    head[l] = 0;
    return path_eq(head, anc) && (path[l] == 0 || path[l] == '/');
}

static size_t depth(const char *p)
{
    size_t d = 0;
    for (; *p; p++)
        d += *p == '/';
    return d;
}

static int m_has_children(const model *m, const char *dir)
{
    for (size_t i = 0; i < m->n; i++) {
        char par[400];
        parent_of(m->v[i].path, par, sizeof par);
        if (path_eq(par, dir))
            return 1;
    }
    return 0;
}

static mnode *m_add(model *m, const char *path, int is_dir)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        assert_non_null(m->v);
    }
    mnode *x = &m->v[m->n++];
    memset(x, 0, sizeof *x);
    snprintf(x->path, sizeof x->path, "%s", path);
    x->is_dir = is_dir;
    return x;
}

static void m_del(model *m, size_t i)
{
    free(m->v[i].data);
    m->v[i] = m->v[--m->n];
}

static void m_resize(mnode *x, size_t len)
{
    if (len > x->len) {
        x->data = realloc(x->data, len);
        assert_non_null(x->data);
        memset(x->data + x->len, 0, len - x->len);
    }
    x->len = len;
}

static const char *pool[] = {
    "alpha",    "Beta",       "gamma delta", "x",
    "file.txt", "README.TXT", "a.b.c",       "A rather long name that spans entries",
    "ünïcødé",  "日本語",     "😀 smile",     "Mixed.Case"};

static void rand_name(uint64_t *s, char *out, size_t cap)
{
    const char *base = pool[below(s, sizeof pool / sizeof *pool)];
    if (below(s, 3) == 0)
        snprintf(out, cap, "%s%d", base, (int)below(s, 4));
    else
        snprintf(out, cap, "%s", base);
}

/* Flip the case of some ASCII letters: lookups must not care. */
static void scramble(uint64_t *s, const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s", in);
    if (below(s, 3) != 0)
        return;
    for (char *p = out; *p; p++)
        if (isalpha((unsigned char)*p) && below(s, 2))
            *p = (char)(islower((unsigned char)*p) ? toupper((unsigned char)*p)
                                                   : tolower((unsigned char)*p));
}

static const char *rand_dir(uint64_t *s, const model *m)
{
    size_t nd = 0;
    for (size_t i = 0; i < m->n; i++)
        nd += m->v[i].is_dir;
    uint64_t k = below(s, nd + 1);
    if (k == nd)
        return ""; /* root */
    for (size_t i = 0; i < m->n; i++)
        if (m->v[i].is_dir && k-- == 0)
            return m->v[i].path;
    return "";
}

static long rand_entry(uint64_t *s, const model *m, int want_file)
{
    if (!m->n)
        return -1;
    for (int tries = 0; tries < 20; tries++) {
        size_t i = (size_t)below(s, m->n);
        if (want_file < 0 || m->v[i].is_dir == !want_file)
            return (long)i;
    }
    return -1;
}

static void new_path(uint64_t *s, const model *m, char *out, size_t cap)
{
    char name[128];
    const char *dir = rand_dir(s, m);
    if (depth(dir) >= MAX_DEPTH)
        dir = "";
    rand_name(s, name, sizeof name);
    size_t ld = strlen(dir), ln = strlen(name);
    if (ld + 1 + ln + 1 > cap)
        fail_msg("path too long: %s/%s", dir, name);
    memcpy(out, dir, ld);
    out[ld] = '/';
    memcpy(out + ld + 1, name, ln + 1);
}

/* ---- comparing ---- */

static void check_dir(vd_fs *fs, const model *m, const char *dir)
{
    vd_dir *d;
    FU_EXPECT(vd_dir_open(fs, *dir ? dir : "/", &d), VD_OK, "opendir '%s'", dir);
    vd_dirent de;
    size_t got = 0;
    vd_err r;
    while ((r = vd_dir_read(d, &de)) == VD_OK) {
        char p[1500];
        snprintf(p, sizeof p, "%s/%s", dir, de.name);
        long i = m_find(m, p);
        if (i < 0)
            fail_msg("listing of '%s' has unexpected '%s'", dir, de.name);
        /* Names keep the case they were given. */
        if (strcmp(strrchr(m->v[i].path, '/') + 1, de.name) != 0)
            fail_msg("'%s' listed as '%s'", m->v[i].path, de.name);
        assert_int_equal(de.is_dir, m->v[i].is_dir);
        if (!de.is_dir)
            assert_int_equal(de.size, m->v[i].len);
        got++;
    }
    FU_EXPECT(r, VD_ERR_NOENT, "end of '%s'", dir);
    FU_OK(vd_dir_close(d));
    size_t want = 0;
    for (size_t i = 0; i < m->n; i++) {
        char par[400];
        parent_of(m->v[i].path, par, sizeof par);
        want += path_eq(par, dir);
    }
    if (got != want)
        fail_msg("'%s' lists %zu entries, model has %zu", dir, got, want);
}

static void check_file(vd_fs *fs, const mnode *x)
{
    vd_file *f;
    FU_EXPECT(vd_file_open(fs, x->path, VD_O_RDONLY, &f), VD_OK, "%s", x->path);
    uint8_t *buf = malloc(x->len + 100);
    assert_non_null(buf);
    size_t done;
    FU_OK(vd_file_read(f, 0, buf, x->len + 100, &done));
    assert_int_equal(done, x->len);
    if (x->len && memcmp(buf, x->data, x->len) != 0)
        fail_msg("%s: content differs from the model", x->path);
    FU_OK(vd_file_close(f));
    free(buf);
}

static void check_all(vd_fs *fs, const model *m)
{
    check_dir(fs, m, "");
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].is_dir)
            check_dir(fs, m, m->v[i].path);
        else
            check_file(fs, &m->v[i]);
    }
}

/* ---- one run ---- */

static void step(run *rn, vd_fs *fs, model *m, uint64_t *s, int op_no)
{
    char path[400], path2[400], scr[400], scr2[400];
    uint64_t op = below(s, 100);
    vd_err r, want;
    size_t done;
    vd_file *f;
    if (op < 20) { /* create or truncate-open */
        new_path(s, m, path, sizeof path);
        scramble(s, path, scr, sizeof scr);
        int excl = (int)below(s, 2);
        int flags = VD_O_RDWR | VD_O_CREAT | (excl ? VD_O_EXCL : VD_O_TRUNC);
        long i = m_find(m, path);
        want = VD_OK;
        if (i >= 0 && excl)
            want = VD_ERR_EXIST;
        else if (i >= 0 && m->v[i].is_dir)
            want = VD_ERR_ISDIR;
        r = vd_file_open(fs, scr, flags, &f);
        if (!nospc_ok(rn, r, want))
            FU_EXPECT(r, want, "op %d: create '%s'", op_no, scr);
        if (r == VD_OK) {
            FU_OK(vd_file_close(f));
            if (i < 0)
                m_add(m, scr, 0);
            else
                m_resize(&m->v[i], 0);
        }
        char par[400];
        parent_of(path, par, sizeof par);
        check_dir(fs, m, par);
    } else if (op < 45) { /* write */
        long i = rand_entry(s, m, 1);
        if (i < 0)
            return;
        mnode *x = &m->v[i];
        uint64_t off = below(s, x->len + 4000);
        size_t big = rn->tight ? (size_t)3 << 20 : 60000;
        size_t len = (size_t)below(s, below(s, 8) == 0 ? big : 3000) + 1;
        if (off + len > rn->max_file)
            return;
        uint8_t *buf = malloc(len);
        assert_non_null(buf);
        fu_fill(buf, len, rng(s), off);
        scramble(s, x->path, scr, sizeof scr);
        FU_OK(vd_file_open(fs, scr, VD_O_RDWR, &f));
        r = vd_file_write(f, off, buf, len, &done);
        FU_OK(vd_file_close(f));
        if (nospc_ok(rn, r, VD_OK)) {
            assert_int_equal(done, 0);
            free(buf);
            check_file(fs, x); /* nothing written, size unchanged */
            return;
        }
        FU_EXPECT(r, VD_OK, "op %d: write %s", op_no, scr);
        assert_int_equal(done, len);
        if (off + len > x->len)
            m_resize(x, (size_t)(off + len));
        memcpy(x->data + off, buf, len);
        free(buf);
        check_file(fs, x);
    } else if (op < 55) { /* truncate */
        long i = rand_entry(s, m, 1);
        if (i < 0)
            return;
        mnode *x = &m->v[i];
        size_t len = (size_t)below(s, rn->max_file / 2);
        FU_OK(vd_file_open(fs, x->path, VD_O_WRONLY, &f));
        r = vd_file_truncate(f, len);
        FU_OK(vd_file_close(f));
        if (!nospc_ok(rn, r, VD_OK)) {
            FU_EXPECT(r, VD_OK, "op %d: truncate", op_no);
            m_resize(x, len);
        }
        check_file(fs, x);
    } else if (op < 65) { /* read a random range */
        long i = rand_entry(s, m, 1);
        if (i < 0)
            return;
        mnode *x = &m->v[i];
        uint64_t off = below(s, x->len + 100);
        size_t len = (size_t)below(s, 5000);
        uint8_t *buf = malloc(len + 1);
        assert_non_null(buf);
        FU_OK(vd_file_open(fs, x->path, VD_O_RDONLY, &f));
        FU_OK(vd_file_read(f, off, buf, len, &done));
        size_t expect = off >= x->len ? 0 : (x->len - off < len ? x->len - off : len);
        assert_int_equal(done, expect);
        if (expect && memcmp(buf, x->data + off, expect) != 0)
            fail_msg("op %d: read %s at %" PRIu64 " differs", op_no, x->path, off);
        FU_OK(vd_file_close(f));
        free(buf);
    } else if (op < 73) { /* unlink */
        long i = rand_entry(s, m, -1);
        if (i < 0)
            return;
        scramble(s, m->v[i].path, scr, sizeof scr);
        want = m->v[i].is_dir ? VD_ERR_ISDIR : VD_OK;
        FU_EXPECT(vd_fs_unlink(fs, scr), want, "op %d: unlink %s", op_no, scr);
        char par[400];
        parent_of(m->v[i].path, par, sizeof par);
        if (want == VD_OK)
            m_del(m, (size_t)i);
        check_dir(fs, m, par);
    } else if (op < 81) { /* mkdir */
        new_path(s, m, path, sizeof path);
        scramble(s, path, scr, sizeof scr);
        want = m_find(m, path) >= 0 ? VD_ERR_EXIST : VD_OK;
        r = vd_fs_mkdir(fs, scr);
        if (nospc_ok(rn, r, want)) {
            char par[400];
            parent_of(path, par, sizeof par);
            check_dir(fs, m, par);
            return;
        }
        FU_EXPECT(r, want, "op %d: mkdir %s", op_no, scr);
        if (want == VD_OK)
            m_add(m, scr, 1);
    } else if (op < 86) { /* rmdir */
        long i = rand_entry(s, m, 0);
        if (i < 0)
            return;
        want = !m->v[i].is_dir                   ? VD_ERR_NOTDIR
               : m_has_children(m, m->v[i].path) ? VD_ERR_NOTEMPTY
                                                 : VD_OK;
        FU_EXPECT(vd_fs_rmdir(fs, m->v[i].path), want, "op %d: rmdir %s", op_no,
                  m->v[i].path);
        if (want == VD_OK)
            m_del(m, (size_t)i);
    } else { /* rename */
        long i = rand_entry(s, m, -1);
        if (i < 0)
            return;
        snprintf(path, sizeof path, "%s", m->v[i].path);
        if (below(s, 5) == 0) { /* onto another existing entry */
            long j = rand_entry(s, m, -1);
            if (j < 0)
                return;
            snprintf(path2, sizeof path2, "%s", m->v[j].path);
        } else if (below(s, 6) == 0) { /* case change only */
            scramble(s, path, path2, sizeof path2);
            for (char *p = strrchr(path2, '/'); *p; p++)
                if (isalpha((unsigned char)*p))
                    *p = (char)(islower((unsigned char)*p) ? toupper((unsigned char)*p)
                                                           : tolower((unsigned char)*p));
        } else {
            new_path(s, m, path2, sizeof path2);
        }
        int noreplace = below(s, 8) == 0;
        mnode *a = &m->v[i];
        long j = m_find(m, path2);
        int same = j == i;
        char par2[400];
        parent_of(path2, par2, sizeof par2);
        want = VD_OK;
        if (a->is_dir && under(par2, a->path))
            want = VD_ERR_PERM;
        else if (j >= 0 && !same) {
            mnode *b = &m->v[j];
            if (noreplace)
                want = VD_ERR_EXIST;
            else if (a->is_dir && !b->is_dir)
                want = VD_ERR_NOTDIR;
            else if (!a->is_dir && b->is_dir)
                want = VD_ERR_ISDIR;
            else if (b->is_dir && m_has_children(m, b->path))
                want = VD_ERR_NOTEMPTY;
        }
        if (depth(path2) > MAX_DEPTH + 1 && want == VD_OK)
            return; /* keep paths short; do not rename */
        scramble(s, path, scr, sizeof scr);
        snprintf(scr2, sizeof scr2, "%s", path2);
        r = vd_fs_rename(fs, scr, scr2, noreplace ? VD_RENAME_NOREPLACE : 0);
        if (nospc_ok(rn, r, want)) {
            char par[400];
            parent_of(path, par, sizeof par);
            check_dir(fs, m, par);
            check_dir(fs, m, par2);
            return;
        }
        FU_EXPECT(r, want, "op %d: rename %s -> %s", op_no, scr, scr2);
        if (want != VD_OK)
            return;
        /* The resulting spelling: a replaced entry keeps its own name. */
        char final[400];
        if (j >= 0 && !same)
            snprintf(final, sizeof final, "%s", m->v[j].path);
        else
            snprintf(final, sizeof final, "%s", path2);
        if (j >= 0 && !same) {
            m_del(m, (size_t)j);
            i = m_find(m, path);
        }
        /* Move the entry and everything below it. */
        size_t l = strlen(path);
        for (size_t k = 0; k < m->n; k++)
            if (under(m->v[k].path, path)) {
                char rest[400];
                snprintf(rest, sizeof rest, "%s", m->v[k].path + l);
                int w = snprintf(m->v[k].path, sizeof m->v[k].path, "%s%s", final, rest);
                assert_true(w > 0 && (size_t)w < sizeof m->v[k].path);
            }
        char par[400];
        parent_of(path, par, sizeof par);
        check_dir(fs, m, par);
        check_dir(fs, m, par2);
    }
}

static int have_fsck(void)
{
    return system("command -v fsck.fat >/dev/null 2>&1") == 0;
}

static void run_seed(uint64_t seed, int tight)
{
    print_message("[   seed   ] VD_FAT_SEED=%" PRIu64 "%s\n", seed,
                  tight ? " VD_FAT_TIGHT=1 (volume fills up)" : "");
    run rn = {tight, tight ? MAX_FILE_TIGHT : MAX_FILE, 0};
    uint64_t s = seed;
    fu_disk d;
    fu_disk_new(&d, NBLOCKS);
    FU_OK(vd_fs_format(d.img, NULL));
    vd_fs *fs;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    model m = {0};
    for (int op = 0; op < OPS; op++) {
        step(&rn, fs, &m, &s, op);
        if (op % 250 == 249)
            check_all(fs, &m);
        if (op % 1000 == 999) {
            vd_statfs a, b;
            FU_OK(vd_fs_statfs(fs, &a));
            FU_OK(vd_fs_unmount(fs));
            fu_disk_reopen(&d);
            FU_OK(vd_fs_mount(d.img, NULL, &fs));
            FU_OK(vd_fs_statfs(fs, &b));
            assert_int_equal(a.free_clusters, b.free_clusters);
            check_all(fs, &m);
        }
    }
    check_all(fs, &m);
    size_t nd = 0, bytes = 0;
    for (size_t i = 0; i < m.n; i++) {
        nd += m.v[i].is_dir;
        bytes += m.v[i].len;
    }
    vd_statfs sf;
    FU_OK(vd_fs_statfs(fs, &sf));
    print_message("[   seed   ] %d ops: %zu files, %zu dirs, %zu bytes at the end, "
                  "%u/%u clusters free, %u operations refused for lack of space\n",
                  OPS, m.n - nd, nd, bytes, sf.free_clusters, sf.total_clusters,
                  rn.nospc);
    if (tight && rn.nospc == 0)
        fail_msg("a tight run never filled the volume: the NOSPC paths went untested");
    FU_OK(vd_fs_unmount(fs));
    if (have_fsck()) {
        char raw[64], cmd[160];
        snprintf(raw, sizeof raw, "/tmp/vd-fat-model-%d.raw", (int)getpid());
        assert_int_equal(fu_export_file(&d, raw), 0);
        snprintf(cmd, sizeof cmd, "fsck.fat -n '%s' >/dev/null 2>&1", raw);
        int st = system(cmd);
        unlink(raw);
        if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fail_msg("fsck.fat -n found errors after seed %" PRIu64, seed);
    } else {
        print_message("[   note   ] fsck.fat not installed: volume check skipped\n");
    }
    for (size_t i = 0; i < m.n; i++)
        free(m.v[i].data);
    free(m.v);
    fu_disk_free(&d);
}

static void test_model(void **state)
{
    (void)state;
    const char *env = getenv("VD_FAT_SEED");
    if (env) {
        const char *t = getenv("VD_FAT_TIGHT");
        run_seed(strtoull(env, NULL, 0), t && *t == '1');
        return;
    }
    const uint64_t seeds[] = {1, 2, 3, 4, 20261123};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++)
        run_seed(seeds[i], 0);
    /* Seeds that fill the volume. */
    run_seed(5, 1);
    run_seed(6, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
