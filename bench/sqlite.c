/* The sqlite workload: Debian's sqlite3 CLI on DIR/bench.db inside each
 * peer, fed a generated script with a fixed seed, so the database sees
 * the same statements on every peer:
 *   create a table with an index on its value column;
 *   N inserts (keys in shuffled order) in transactions of 100;
 *   M updates of a random key, each its own transaction;
 *   K selects of a random key, then K/10 range scans of 100 keys;
 *   a row count, checked, so a broken database is an error, not a figure.
 * journal_mode=DELETE and synchronous=FULL make every commit fsync the
 * journal, the database and the directory, as a careful application's
 * would. The whole sqlite3 process is timed (its start-up is a few ms);
 * the figure is transactions per second, a select or scan counting as one
 * (autocommit). sqlite3 is run by fork/exec with an argument vector, so
 * no path ever passes through a shell. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define SEED_SQLITE 0x5EB0005u
#define SQL_BATCH 100u
#define SQL_PAD 100u
#define SQL_SCAN 100u
#define PATH_CAP 4096

int bench_sqlite_find(char *out, size_t cap)
{
    return bench_which("sqlite3", out, cap);
}

static uint32_t sql_txns(const bench_cfg *c)
{
    return (c->sqlite_rows + SQL_BATCH - 1) / SQL_BATCH + c->sqlite_updates +
           c->sqlite_selects + c->sqlite_selects / 10;
}

static void pad_text(bench_rng *g, char *pad)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < SQL_PAD; i++)
        pad[i] = hex[bench_rng_below(g, 16)];
    pad[SQL_PAD] = 0;
}

static vd_err write_script(const bench_cfg *c, const char *path)
{
    uint32_t n = c->sqlite_rows;
    uint32_t *key = malloc(sizeof *key * (n ? n : 1));
    FILE *f = NULL;
    vd_err e = key ? VD_OK : VD_ERR_NOMEM;
    char pad[SQL_PAD + 1];
    bench_rng g;
    bench_rng_seed(&g, SEED_SQLITE);
    if (e == VD_OK) {
        f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "vhdbench: %s: %s\n", path, strerror(errno));
            e = VD_ERR_IO;
        }
    }
    if (e != VD_OK)
        goto out;
    for (uint32_t i = 0; i < n; i++)
        key[i] = i + 1;
    for (uint32_t i = n; i > 1; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)bench_rng_below(&g, i);
        uint32_t t = key[i - 1];
        key[i - 1] = key[j];
        key[j] = t;
    }
    fprintf(f, "PRAGMA journal_mode=DELETE;\nPRAGMA synchronous=FULL;\n"
               "CREATE TABLE t(k INTEGER PRIMARY KEY, v INTEGER NOT NULL, pad TEXT NOT NULL);\n"
               "CREATE INDEX t_v ON t(v);\n");
    for (uint32_t i = 0; i < n; i++) {
        if (i % SQL_BATCH == 0)
            fprintf(f, "BEGIN;\n");
        pad_text(&g, pad);
        fprintf(f, "INSERT INTO t VALUES(%u, %llu, '%s');\n", key[i],
                (unsigned long long)bench_rng_below(&g, 1000000), pad);
        if (i % SQL_BATCH == SQL_BATCH - 1 || i + 1 == n)
            fprintf(f, "COMMIT;\n");
    }
    for (uint32_t i = 0; i < c->sqlite_updates; i++) {
        pad_text(&g, pad);
        fprintf(f, "UPDATE t SET v = %llu, pad = '%s' WHERE k = %llu;\n",
                (unsigned long long)bench_rng_below(&g, 1000000), pad,
                (unsigned long long)(1 + bench_rng_below(&g, n)));
    }
    for (uint32_t i = 0; i < c->sqlite_selects; i++)
        fprintf(f, "SELECT v, length(pad) FROM t WHERE k = %llu;\n",
                (unsigned long long)(1 + bench_rng_below(&g, n)));
    for (uint32_t i = 0; i < c->sqlite_selects / 10; i++) {
        unsigned long long a = 1 + bench_rng_below(&g, n);
        fprintf(f, "SELECT count(*), sum(v) FROM t WHERE k BETWEEN %llu AND %llu;\n", a,
                a + SQL_SCAN - 1);
    }
    fprintf(f, "SELECT 'rows', count(*) FROM t;\n");
out:
    if (f) {
        int bad = ferror(f);
        bad |= fclose(f) != 0;
        if (bad && e == VD_OK) {
            fprintf(stderr, "vhdbench: %s: write failed\n", path);
            e = VD_ERR_IO;
        }
    }
    free(key);
    return e;
}

/* Removes db and its journal; a missing one is fine. */
static vd_err remove_db(const char *db)
{
    char journal[PATH_CAP + 16];
    snprintf(journal, sizeof journal, "%s-journal", db);
    vd_err e = VD_OK;
    if (unlink(db) != 0 && errno != ENOENT) {
        fprintf(stderr, "vhdbench: %s: %s\n", db, strerror(errno));
        e = VD_ERR_IO;
    }
    if (unlink(journal) != 0 && errno != ENOENT) {
        fprintf(stderr, "vhdbench: %s: %s\n", journal, strerror(errno));
        e = VD_ERR_IO;
    }
    return e;
}

/* Runs sqlite3 on db with stdin from script and stdout to output; *secs
 * is the wall time of the process. */
static vd_err run_sqlite3(const bench_cfg *c, const char *db, const char *script,
                          const char *output, double *secs)
{
    int in = open(script, O_RDONLY | O_CLOEXEC);
    int outfd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    vd_err e = VD_OK;
    if (in < 0 || outfd < 0) {
        fprintf(stderr, "vhdbench: %s: %s\n", in < 0 ? script : output, strerror(errno));
        e = VD_ERR_IO;
        goto out;
    }
    char *const argv[] = {(char *)"sqlite3", (char *)"-batch", (char *)"-bail",
                          (char *)db, NULL};
    double t0 = bench_start(c);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "vhdbench: fork: %s\n", strerror(errno));
        e = VD_ERR_IO;
        goto out;
    }
    if (pid == 0) {
        if (dup2(in, 0) < 0 || dup2(outfd, 1) < 0)
            _exit(126);
        execv(c->sqlite3, argv);
        _exit(127);
    }
    int st = 0;
    pid_t w;
    do
        w = waitpid(pid, &st, 0);
    while (w < 0 && errno == EINTR);
    *secs = bench_now() - t0;
    if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "vhdbench: %s: sqlite3 failed (status %d)\n", db,
                w == pid && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        e = VD_ERR_IO;
    }
out:
    if (in >= 0)
        close(in);
    if (outfd >= 0)
        close(outfd);
    return e;
}

/* The script's last line of output must be the row count it inserted. */
static vd_err check_output(const bench_cfg *c, const char *output, const char *db)
{
    FILE *f = fopen(output, "r");
    char line[256], last[256] = "";
    if (!f) {
        fprintf(stderr, "vhdbench: %s: %s\n", output, strerror(errno));
        return VD_ERR_IO;
    }
    while (fgets(line, sizeof line, f))
        memcpy(last, line, sizeof last);
    int bad = ferror(f);
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "rows|%u\n", c->sqlite_rows);
    if (bad || strcmp(last, want) != 0) {
        fprintf(stderr, "vhdbench: %s: sqlite3 counted %s rows, not %u\n", db,
                bad ? "an unreadable number of" : last, c->sqlite_rows);
        return VD_ERR_CORRUPT;
    }
    return VD_OK;
}

vd_err bench_run_sqlite(const bench_cfg *c, bench_res *r, const bench_subject *s)
{
    char db[PATH_CAP], script[PATH_CAP], output[PATH_CAP];
    /* A relative path starting with '-' would read as an option. */
    snprintf(db, sizeof db, "%s%s/bench.db", s->peer_dir[0] == '/' ? "" : "./", s->peer_dir);
    snprintf(script, sizeof script, "%s/vhdbench-sqlite-%ld.sql", c->dir, (long)getpid());
    snprintf(output, sizeof output, "%s/vhdbench-sqlite-%ld.out", c->dir, (long)getpid());
    double secs = 0;
    vd_err e = write_script(c, script);
    if (e == VD_OK)
        e = remove_db(db);
    if (e == VD_OK)
        e = run_sqlite3(c, db, script, output, &secs);
    if (e == VD_OK)
        e = check_output(c, output, db);
    if (e == VD_OK && secs > 0)
        e = bench_add(r, "sqlite", s->name, (int)s->backend, "txn/s", 0, sql_txns(c) / secs);
    vd_err e2 = remove_db(db);
    e = e != VD_OK ? e : e2;
    if (unlink(script) != 0 && errno != ENOENT)
        e = e != VD_OK ? e : VD_ERR_IO;
    if (unlink(output) != 0 && errno != ENOENT)
        e = e != VD_OK ? e : VD_ERR_IO;
    return e;
}
