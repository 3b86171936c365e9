/* Concurrency stress of the file API (issue 9): several threads run seeded
 * random file operations on one mounted volume at once — each in its own
 * directory, against its own in-memory model — while all of them also
 * read one shared file and call statfs and sync. Every result and every
 * read must match the models during the run, after joining, and after an
 * unmount, image close and reopen; the exported volume must then pass
 * fsck.fat -n (when dosfstools is installed). Run under ThreadSanitizer by
 * scripts/test.sh --tsan. Seeds are printed; VD_THREADS_SEED=<n> reruns. */
#include <inttypes.h>
#include <pthread.h>
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
#include "testkit.h"

#define NTHREADS 4
#define NFILES 6
#define MAXF (48u * 1024)
#define OPS 2500
#define SHARED_BYTES (200u * 1024)

typedef struct mfile {
    int exists;
    uint32_t size;
    uint8_t *data; /* MAXF bytes */
} mfile;

typedef struct worker {
    vd_fs *fs;
    unsigned id;
    uint64_t seed;
    mfile files[NFILES];
    char err[256]; /* first mismatch, empty when all agreed */
    unsigned ops_done;
} worker;

static void path_of(char *buf, size_t len, unsigned id, unsigned k)
{
    snprintf(buf, len, "/t%u/File number %u.dat", id, k);
}

static int failf(worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int failf(worker *w, const char *fmt, ...)
{
    if (w->err[0])
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    return -1;
}

static int check_file(worker *w, unsigned k, uint8_t *buf)
{
    char p[128];
    path_of(p, sizeof p, w->id, k);
    mfile *m = &w->files[k];
    vd_file *f = NULL;
    vd_err e = vd_file_open(w->fs, p, VD_O_RDONLY, &f);
    if (!m->exists)
        return e == VD_ERR_NOENT ? 0 : failf(w, "%s: open gave %s, want NOENT", p, fu_ename(e));
    if (e != VD_OK)
        return failf(w, "%s: open gave %s", p, fu_ename(e));
    size_t done = 0;
    e = vd_file_read(f, 0, buf, MAXF + 1, &done);
    vd_err ce = vd_file_close(f);
    if (e != VD_OK || ce != VD_OK)
        return failf(w, "%s: read %s close %s", p, fu_ename(e), fu_ename(ce));
    if (done != m->size || memcmp(buf, m->data, m->size) != 0)
        return failf(w, "%s: content differs (read %zu bytes, model %u)", p, done, m->size);
    return 0;
}

static int check_shared(worker *w, uint64_t *rng, uint8_t *buf)
{
    vd_file *f = NULL;
    vd_err e = vd_file_open(w->fs, "/shared.bin", VD_O_RDONLY, &f);
    if (e != VD_OK)
        return failf(w, "shared: open %s", fu_ename(e));
    uint64_t off = vt_rand(rng) % SHARED_BYTES;
    size_t len = 1 + (size_t)(vt_rand(rng) % 20000), done = 0;
    e = vd_file_read(f, off, buf, len, &done);
    vd_err ce = vd_file_close(f);
    if (e != VD_OK || ce != VD_OK)
        return failf(w, "shared: read %s close %s", fu_ename(e), fu_ename(ce));
    size_t want = off + len > SHARED_BYTES ? SHARED_BYTES - (size_t)off : len;
    if (done != want)
        return failf(w, "shared: read %zu bytes at %" PRIu64 ", want %zu", done, off, want);
    uint8_t *exp = malloc(want ? want : 1);
    if (!exp)
        return failf(w, "out of memory");
    fu_fill(exp, want, 999, off);
    int bad = memcmp(exp, buf, want) != 0;
    free(exp);
    return bad ? failf(w, "shared: content differs at %" PRIu64, off) : 0;
}

/* One random operation on file k; the model follows only on success. */
static int step(worker *w, uint64_t *rng, uint8_t *buf)
{
    unsigned k = (unsigned)(vt_rand(rng) % NFILES);
    mfile *m = &w->files[k];
    char p[128];
    path_of(p, sizeof p, w->id, k);
    unsigned op = (unsigned)(vt_rand(rng) % 100);
    vd_err e;
    if (op < 40) { /* write at a random offset, creating if needed */
        uint32_t off = (uint32_t)(vt_rand(rng) % (MAXF - 1));
        uint32_t len = 1 + (uint32_t)(vt_rand(rng) % (MAXF - off));
        for (uint32_t i = 0; i < len; i++)
            buf[i] = (uint8_t)vt_rand(rng);
        vd_file *f = NULL;
        e = vd_file_open(w->fs, p, VD_O_RDWR | VD_O_CREAT, &f);
        if (e != VD_OK)
            return failf(w, "%s: open for write %s", p, fu_ename(e));
        size_t done = 0;
        e = vd_file_write(f, off, buf, len, &done);
        vd_err ce = vd_file_close(f);
        if (e != VD_OK || ce != VD_OK || done != len)
            return failf(w, "%s: write %s close %s", p, fu_ename(e), fu_ename(ce));
        if (!m->exists) {
            m->exists = 1;
            m->size = 0;
        }
        if (off > m->size)
            memset(m->data + m->size, 0, off - m->size);
        memcpy(m->data + off, buf, len);
        if (off + len > m->size)
            m->size = off + len;
    } else if (op < 55) { /* truncate */
        if (!m->exists)
            return 0;
        uint32_t size = (uint32_t)(vt_rand(rng) % MAXF);
        vd_file *f = NULL;
        e = vd_file_open(w->fs, p, VD_O_RDWR, &f);
        if (e != VD_OK)
            return failf(w, "%s: open for truncate %s", p, fu_ename(e));
        e = vd_file_truncate(f, size);
        vd_err ce = vd_file_close(f);
        if (e != VD_OK || ce != VD_OK)
            return failf(w, "%s: truncate %s close %s", p, fu_ename(e), fu_ename(ce));
        if (size > m->size)
            memset(m->data + m->size, 0, size - m->size);
        m->size = size;
    } else if (op < 63) { /* unlink */
        e = vd_fs_unlink(w->fs, p);
        if (e != (m->exists ? VD_OK : VD_ERR_NOENT))
            return failf(w, "%s: unlink %s (exists %d)", p, fu_ename(e), m->exists);
        m->exists = 0;
    } else if (op < 71) { /* rename onto another file of ours */
        unsigned j = (unsigned)(vt_rand(rng) % NFILES);
        if (j == k || !m->exists)
            return 0;
        char q[128];
        path_of(q, sizeof q, w->id, j);
        e = vd_fs_rename(w->fs, p, q, 0);
        if (e != VD_OK)
            return failf(w, "rename %s -> %s: %s", p, q, fu_ename(e));
        mfile t = w->files[j];
        w->files[j] = *m;
        *m = t;
        m->exists = 0;
    } else if (op < 90) {
        return check_file(w, k, buf);
    } else if (op < 96) {
        return check_shared(w, rng, buf);
    } else if (op < 98) {
        vd_statfs st;
        e = vd_fs_statfs(w->fs, &st);
        if (e != VD_OK || st.free_clusters > st.total_clusters)
            return failf(w, "statfs %s", fu_ename(e));
    } else {
        e = vd_fs_sync(w->fs);
        if (e != VD_OK)
            return failf(w, "sync %s", fu_ename(e));
    }
    return 0;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t rng = w->seed | 1;
    uint8_t *buf = malloc(MAXF + 1);
    if (!buf) {
        failf(w, "out of memory");
        return NULL;
    }
    for (unsigned i = 0; i < OPS && !w->err[0]; i++) {
        if (step(w, &rng, buf) == 0)
            w->ops_done++;
    }
    free(buf);
    return NULL;
}

static void check_all(worker *ws, vd_fs *fs, const char *when)
{
    uint8_t *buf = malloc(MAXF + 1);
    assert_non_null(buf);
    for (unsigned t = 0; t < NTHREADS; t++) {
        ws[t].fs = fs;
        for (unsigned k = 0; k < NFILES; k++)
            if (check_file(&ws[t], k, buf) != 0)
                fail_msg("%s: thread %u: %s", when, t, ws[t].err);
    }
    free(buf);
}

static void test_threads_on_one_volume_agree_with_their_models(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL);
    const char *env = getenv("VD_THREADS_SEED");
    if (env)
        seed = strtoull(env, NULL, 10);
    printf("test_fs_threads: seed %" PRIu64 " (VD_THREADS_SEED=%" PRIu64 " reruns)\n", seed,
           seed);

    fu_disk d;
    fu_disk_new(&d, 16384); /* 64 MiB */
    vd_mkfs_opts mo = {.label = "THREADS"};
    FU_OK(vd_fs_format(d.img, &mo));
    vd_fs *fs = NULL;
    FU_OK(vd_fs_mount(d.img, NULL, &fs));

    /* The shared file, read by every thread while they write. */
    uint8_t *shared = malloc(SHARED_BYTES);
    assert_non_null(shared);
    fu_fill(shared, SHARED_BYTES, 999, 0);
    vd_file *f = NULL;
    FU_OK(vd_file_open(fs, "/shared.bin", VD_O_WRONLY | VD_O_CREAT, &f));
    size_t done;
    FU_OK(vd_file_write(f, 0, shared, SHARED_BYTES, &done));
    FU_OK(vd_file_close(f));
    free(shared);

    worker *ws = calloc(NTHREADS, sizeof *ws);
    assert_non_null(ws);
    pthread_t th[NTHREADS];
    for (unsigned t = 0; t < NTHREADS; t++) {
        char dir[32];
        snprintf(dir, sizeof dir, "/t%u", t);
        FU_OK(vd_fs_mkdir(fs, dir));
        ws[t].fs = fs;
        ws[t].id = t;
        ws[t].seed = seed * 31 + t;
        for (unsigned k = 0; k < NFILES; k++) {
            ws[t].files[k].data = malloc(MAXF);
            assert_non_null(ws[t].files[k].data);
        }
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &ws[t]), 0);
    unsigned total = 0;
    for (unsigned t = 0; t < NTHREADS; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        if (ws[t].err[0])
            fail_msg("seed %" PRIu64 ": thread %u: %s", seed, t, ws[t].err);
        total += ws[t].ops_done;
    }
    printf("test_fs_threads: %u operations on %d threads agreed with their models\n", total,
           NTHREADS);
    check_all(ws, fs, "after join");

    FU_OK(vd_fs_unmount(fs));
    fu_disk_reopen(&d);
    FU_OK(vd_fs_mount(d.img, NULL, &fs));
    check_all(ws, fs, "after reopen");
    FU_OK(vd_fs_unmount(fs));

    if (system("command -v fsck.fat >/dev/null 2>&1") == 0) {
        char raw[] = "/tmp/vd-threads-XXXXXX";
        int fd = mkstemp(raw);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(fu_export_file(&d, raw), 0);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "fsck.fat -n %s >/dev/null 2>&1", raw);
        int rc = system(cmd);
        unlink(raw);
        if (rc != 0)
            fail_msg("seed %" PRIu64 ": fsck.fat -n finds the volume unclean", seed);
    } else {
        printf("test_fs_threads: fsck.fat not installed; oracle skipped\n");
    }
    for (unsigned t = 0; t < NTHREADS; t++)
        for (unsigned k = 0; k < NFILES; k++)
            free(ws[t].files[k].data);
    free(ws);
    fu_disk_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_on_one_volume_agree_with_their_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
