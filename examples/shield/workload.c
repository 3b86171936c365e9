/* The shield's workload (workload.h). */
#include "workload.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIG_PATH "/shield/big.bin"
#define NOTE_PATH "/shield/docs/note.txt"
#define NOTE_TMP "/shield/tmp-note.txt"
#define STATE_PATH "/shield/state"
#define BIG_FIRST (256u * 1024) /* written, synced ...              */
#define BIG_HEAD (64u * 1024)   /* ... head rewritten in place ...   */
#define BIG_FINAL (192u * 1024) /* ... and truncated to this         */
#define NOTE_BYTES 10000u
#define LINE 64u

static vd_err work_fail(sh_work *w, vd_err e, const char *what)
{
    if (w->what[0] == '\0')
        snprintf(w->what, sizeof w->what, "%s", what);
    return e;
}

static vd_err work_differs(sh_work *w, const char *path, uint64_t off)
{
    w->mismatch = 1;
    if (w->what[0] == '\0')
        snprintf(w->what, sizeof w->what,
                 "%s: differs from what was written at offset %" PRIu64, path, off);
    return VD_ERR_CORRUPT;
}

/* Text `name` of generation gen, bytes [off, off + len). */
static void text_fill(uint8_t *buf, uint32_t gen, const char *name, uint64_t off,
                      size_t len)
{
    char line[128];
    uint64_t cur = UINT64_MAX;
    for (size_t i = 0; i < len; i++) {
        uint64_t at = off + i;
        if (at / LINE != cur) {
            cur = at / LINE;
            int n = snprintf(line, sizeof line,
                             "%s gen=%06" PRIu32 " text=%-4.4s line=%09" PRIu64 " ",
                             SH_MARKER, gen, name, cur);
            size_t used = n < 0 ? 0 : (size_t)n < LINE - 1 ? (size_t)n : LINE - 1;
            memset(line + used, '.', LINE - 1 - used);
            line[LINE - 1] = '\n';
        }
        buf[i] = (uint8_t)line[at % LINE];
    }
}

static vd_err file_put(sh_work *w, const char *path, int flags, uint64_t off,
                       const uint8_t *buf, size_t len)
{
    vd_file *f = NULL;
    size_t done = 0;
    vd_err e = vd_file_open(w->fs, path, flags, &f);
    if (e == VD_OK)
        e = vd_file_write(f, off, buf, len, &done);
    if (e == VD_OK && done != len)
        e = VD_ERR_IO;
    if (f) {
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    return e == VD_OK ? VD_OK : work_fail(w, e, path);
}

/* Compare [off, off + len) of the open file with text `name` of gen. */
static vd_err file_check_text(sh_work *w, vd_file *f, const char *path, uint32_t gen,
                              const char *name, uint64_t off, size_t len)
{
    uint8_t got[4096], want[4096];
    vd_err e = VD_OK;
    while (e == VD_OK && len > 0) {
        size_t n = len < sizeof got ? len : sizeof got, done = 0;
        e = vd_file_read(f, off, got, n, &done);
        if (e != VD_OK)
            return work_fail(w, e, path);
        if (done != n)
            return work_differs(w, path, off + done);
        text_fill(want, gen, name, off, n);
        if (memcmp(got, want, n) != 0)
            return work_differs(w, path, off);
        off += n;
        len -= n;
    }
    return e;
}

static void print_time(sh_work *w, const char *path, int64_t ns)
{
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    if (gmtime_r(&s, &tm))
        fprintf(w->out, "mtime %s %04d-%02d-%02dT%02d:%02d:%02dZ\n", path,
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
    else
        fprintf(w->out, "mtime %s unrepresentable (%" PRId64 " ns)\n", path, ns);
}

/* Open path, check its size and its text runs, print its mtime. */
static vd_err verify_file(sh_work *w, const char *path, uint64_t size, uint32_t gen,
                          const char *name1, uint64_t len1, const char *name2)
{
    vd_file *f = NULL;
    vd_stat st;
    vd_err e = vd_file_open(w->fs, path, VD_O_RDONLY, &f);
    if (e != VD_OK)
        return work_fail(w, e, path);
    e = vd_file_stat(f, &st);
    if (e != VD_OK)
        e = work_fail(w, e, path);
    else if (st.size != size)
        e = work_differs(w, path, st.size);
    if (e == VD_OK)
        e = file_check_text(w, f, path, gen, name1, 0, len1);
    if (e == VD_OK && size > len1)
        e = file_check_text(w, f, path, gen, name2, len1, size - len1);
    if (e == VD_OK)
        print_time(w, path, st.mtime_ns);
    vd_err c = vd_file_close(f);
    if (e == VD_OK && c != VD_OK)
        e = work_fail(w, c, path);
    return e;
}

vd_err sh_work_generation(sh_work *w, uint32_t *gen)
{
    vd_file *f = NULL;
    char buf[64];
    size_t done = 0;
    vd_stat st;
    vd_err e = vd_fs_stat(w->fs, "/shield", &st);
    if (e == VD_ERR_NOENT) {
        *gen = 0;
        return VD_OK;
    }
    if (e != VD_OK)
        return work_fail(w, e, "/shield");
    e = vd_file_open(w->fs, STATE_PATH, VD_O_RDONLY, &f);
    if (e == VD_OK)
        e = vd_file_read(f, 0, buf, sizeof buf - 1, &done);
    if (f) {
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    if (e != VD_OK)
        return work_fail(w, e, STATE_PATH);
    buf[done] = '\0';
    char *end = NULL;
    if (strncmp(buf, "generation ", 11) != 0)
        return work_differs(w, STATE_PATH, 0);
    unsigned long v = strtoul(buf + 11, &end, 10);
    if (end == buf + 11 || *end != '\n' || v == 0 || v > UINT32_MAX - 1)
        return work_differs(w, STATE_PATH, 0);
    *gen = (uint32_t)v;
    return VD_OK;
}

vd_err sh_work_verify(sh_work *w, uint32_t gen)
{
    char state[64], path[128];
    uint8_t buf[64];
    vd_file *f = NULL;
    size_t done = 0;
    vd_stat st;
    int n = snprintf(state, sizeof state, "generation %" PRIu32 "\n", gen);
    vd_err e = vd_file_open(w->fs, STATE_PATH, VD_O_RDONLY, &f);
    if (e == VD_OK)
        e = vd_file_read(f, 0, buf, sizeof buf, &done);
    if (f) {
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    if (e != VD_OK)
        return work_fail(w, e, STATE_PATH);
    if (done != (size_t)n || memcmp(buf, state, done) != 0)
        return work_differs(w, STATE_PATH, 0);
    e = verify_file(w, BIG_PATH, BIG_FINAL, gen, "b", BIG_HEAD, "a");
    if (e == VD_OK)
        e = verify_file(w, NOTE_PATH, NOTE_BYTES, gen, "n", NOTE_BYTES, "n");
    if (e != VD_OK)
        return e;
    e = vd_fs_stat(w->fs, NOTE_TMP, &st);
    if (e == VD_OK)
        return work_differs(w, NOTE_TMP, 0); /* the rename did not happen */
    if (e != VD_ERR_NOENT)
        return work_fail(w, e, NOTE_TMP);
    for (uint32_t g = 1; g <= gen; g++) {
        snprintf(path, sizeof path, "/shield/docs/gen-%" PRIu32, g);
        e = vd_fs_stat(w->fs, path, &st);
        if (e == VD_ERR_NOENT || (e == VD_OK && !st.is_dir))
            return work_differs(w, path, 0);
        if (e != VD_OK)
            return work_fail(w, e, path);
    }
    fprintf(w->out, "verified generation %" PRIu32 "\n", gen);
    return VD_OK;
}

static vd_err mkdir_once(sh_work *w, const char *path)
{
    vd_err e = vd_fs_mkdir(w->fs, path);
    return e == VD_OK || e == VD_ERR_EXIST ? VD_OK : work_fail(w, e, path);
}

vd_err sh_work_write(sh_work *w, uint32_t gen)
{
    char path[128], state[64];
    uint8_t *buf = malloc(BIG_FIRST);
    vd_file *f = NULL;
    vd_err e = buf ? VD_OK : VD_ERR_NOMEM;
    if (e == VD_OK)
        e = mkdir_once(w, "/shield");
    if (e == VD_OK)
        e = mkdir_once(w, "/shield/docs");
    snprintf(path, sizeof path, "/shield/docs/gen-%" PRIu32, gen);
    if (e == VD_OK && (e = vd_fs_mkdir(w->fs, path)) != VD_OK)
        e = work_fail(w, e, path);
    /* Round 1: the whole file as text "a", committed. */
    if (e == VD_OK) {
        text_fill(buf, gen, "a", 0, BIG_FIRST);
        e = file_put(w, BIG_PATH, VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, 0, buf, BIG_FIRST);
    }
    if (e == VD_OK) {
        text_fill(buf, gen, "n", 0, NOTE_BYTES);
        e = file_put(w, NOTE_TMP, VD_O_WRONLY | VD_O_CREAT | VD_O_TRUNC, 0, buf,
                     NOTE_BYTES);
    }
    if (e == VD_OK && (e = vd_fs_sync(w->fs)) != VD_OK)
        e = work_fail(w, e, "sync (round 1)");
    /* Round 2: rewrite the head in place, shrink, rename, commit. */
    if (e == VD_OK) {
        text_fill(buf, gen, "b", 0, BIG_HEAD);
        e = file_put(w, BIG_PATH, VD_O_RDWR, 0, buf, BIG_HEAD);
    }
    if (e == VD_OK && (e = vd_file_open(w->fs, BIG_PATH, VD_O_RDWR, &f)) == VD_OK) {
        e = vd_file_truncate(f, BIG_FINAL);
        if (e == VD_OK)
            e = vd_file_sync(f);
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
        if (e != VD_OK)
            e = work_fail(w, e, BIG_PATH);
    } else if (e != VD_OK) {
        e = work_fail(w, e, BIG_PATH);
    }
    if (e == VD_OK && (e = vd_fs_rename(w->fs, NOTE_TMP, NOTE_PATH, 0)) != VD_OK)
        e = work_fail(w, e, NOTE_TMP);
    if (e == VD_OK) {
        int n = snprintf(state, sizeof state, "generation %" PRIu32 "\n", gen);
        e = file_put(w, STATE_PATH, VD_O_WRONLY | VD_O_CREAT | VD_O_TRUNC, 0,
                     (const uint8_t *)state, (size_t)n);
    }
    if (e == VD_OK && (e = vd_fs_sync(w->fs)) != VD_OK)
        e = work_fail(w, e, "sync (round 2)");
    if (e == VD_OK)
        fprintf(w->out, "wrote generation %" PRIu32 "\n", gen);
    free(buf);
    return e;
}

vd_err sh_work_show(sh_work *w, const char *path)
{
    vd_file *f = NULL;
    char buf[256];
    size_t done = 0;
    vd_err e = vd_file_open(w->fs, path, VD_O_RDONLY, &f);
    if (e == VD_OK)
        e = vd_file_read(f, 0, buf, sizeof buf - 1, &done);
    if (f) {
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    if (e != VD_OK)
        return work_fail(w, e, path);
    buf[done] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    fprintf(w->out, "provisioned %s: %s\n", path, buf);
    return VD_OK;
}
