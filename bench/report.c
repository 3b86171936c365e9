/* The stdout report: one table per workload (every mode on both
 * backends, ratios to plain and to the AES ceiling, the rollback-detection
 * overhead), then the ceilings and the scale figures. */
#include <string.h>

#include "bench.h"

const bench_wl bench_workloads[] = {
    {"seq-write", "sequential write, 1 MiB writes + one fsync"},
    {"seq-read", "sequential read, 1 MiB reads, after a remount"},
    {"fsck-verify", "vd_image_scrub after a remount, every written block "
                    "verified (vhdfsck's first pass); image modes only"},
    {"rand-read", "random 4 KiB reads, after a remount"},
    {"rand-write", "random 4 KiB writes, fsync every 8"},
    {"oltp", "OLTP-like: 4 random 8 KiB pages 70% read / 30% write, fsync per transaction"},
    {"web-create", "web-like: create small files (1-64 KiB), one sync"},
    {"web-read", "web-like: read every file in random order, after a remount"},
    {"sqlite", "sqlite3 CLI in each peer: inserts in txns of 100, updates, selects, "
               "scans; journal DELETE, synchronous FULL"},
};
const size_t bench_nworkloads = sizeof bench_workloads / sizeof bench_workloads[0];

static void pct(FILE *out, double v)
{
    if (v <= BENCH_NA / 2)
        fprintf(out, "%8s", "n/a");
    else
        fprintf(out, "%7.1f%%", v);
}

static void workload_table(FILE *out, const bench_res *r, const bench_wl *w, double aes)
{
    const char *unit = NULL;
    for (int i = 0; i < r->nfigs && !unit; i++)
        if (strcmp(r->figs[i].workload, w->name) == 0)
            unit = r->figs[i].unit;
    if (!unit)
        return;
    fprintf(out, "\n== %s: %s [%s]\n", w->name, w->title, unit);
    fprintf(out, "%-12s %-7s %11s %11s %11s %9s %8s\n", "mode", "backend", "median", "min",
            "max", "vs plain", "vs AES");
    for (int b = 0; b < BACK_COUNT; b++) {
        /* Peers are compared with the plain directory, modes with plain. */
        const bench_fig *plain = bench_find(r, w->name, b == BACK_PEER ? "dir" : "plain", b);
        for (int i = 0; i < r->nfigs; i++) {
            const bench_fig *f = &r->figs[i];
            if (f->backend != b || strcmp(f->workload, w->name) != 0)
                continue;
            double med = bench_median(f);
            fprintf(out, "%-12s %-7s %11.1f %11.1f %11.1f ", f->subject,
                    bench_backend_name(b), med, bench_min(f), bench_max(f));
            if (plain && bench_median(plain) > 0)
                fprintf(out, "%8.0f%% ", 100.0 * med / bench_median(plain));
            else
                fprintf(out, "%9s ", "n/a");
            if (aes > 0 && f->bytes_per_unit > 0)
                fprintf(out, "%7.0f%%\n", 100.0 * med * f->bytes_per_unit / 1e6 / aes);
            else
                fprintf(out, "%8s\n", "n/a");
        }
    }
    int modes = 0; /* sqlite runs in peers only: no overhead to show */
    for (int b = 0; b < BACK_PEER; b++)
        modes |= bench_find(r, w->name, "aead", b) != NULL;
    if (!modes)
        return;
    fprintf(out, "rollback-detection overhead vs aead:");
    for (int b = 0; b < BACK_PEER; b++) {
        fprintf(out, "  %s full", bench_backend_name(b));
        pct(out, bench_overhead(r, w->name, "aead", "full", b));
        fprintf(out, ", full+anchor");
        pct(out, bench_overhead(r, w->name, "aead", "full+anchor", b));
    }
    fprintf(out, "\n");
}

static void misc_table(FILE *out, const bench_res *r, const char *workload,
                       const char *title)
{
    int any = 0;
    for (int i = 0; i < r->nfigs; i++) {
        const bench_fig *f = &r->figs[i];
        if (strcmp(f->workload, workload) != 0)
            continue;
        if (!any)
            fprintf(out, "\n== %s\n%-30s %-7s %11s %11s %11s %-8s\n", title, "what", "backend",
                    "median", "min", "max", "unit");
        any = 1;
        fprintf(out, "%-30s %-7s %11.2f %11.2f %11.2f %-8s\n", f->subject,
                f->backend < 0 ? "-" : bench_backend_name(f->backend), bench_median(f),
                bench_min(f), bench_max(f), f->unit);
    }
}

void bench_report(FILE *out, const bench_cfg *c, const bench_res *r,
                  const bench_machine *m)
{
    double aes = bench_aes_ceiling(r);
    fprintf(out, "vhdbench %s  %s\n", vd_version(), m->date);
    fprintf(out, "machine: %s, AES-NI %s, %d cores, %s; load %.2f at start, %.2f at end\n",
            m->cpu, m->aes_ni ? "yes" : "no", m->cores, m->kernel, m->load_start,
            m->load_end);
    fprintf(out,
            "sizes: sequential %llu MiB, %u random ops, OLTP file %llu MiB x %u txns, "
            "%u web files; %d repetitions, median (min, max)\n",
            (unsigned long long)(c->seq_bytes >> 20), c->rand_ops,
            (unsigned long long)(c->oltp_bytes >> 20), c->oltp_txns, c->web_files, c->reps);
    if (c->sqlite3[0])
        fprintf(out, "sqlite: %s, %u rows, %u updates, %u selects + %u scans per peer\n",
                c->sqlite3, c->sqlite_rows, c->sqlite_updates, c->sqlite_selects,
                c->sqlite_selects / 10);
    else
        fprintf(out, "sqlite: not run (%s)\n", c->npeers ? "no sqlite3" : "no peers");
    if (c->cache_bytes)
        fprintf(out, "image cache budget: %zu MiB\n", c->cache_bytes >> 20);
    else
        fprintf(out, "image cache budget: library default\n");
    fprintf(out, "memory touched and freed before each timed phase: %zu MiB\n",
            c->warm_bytes >> 20);
    fprintf(out, "page cache: %s; AES ceiling (faster single-core seal) %.0f MB/s\n",
            c->drop_caches ? "dropped before every read phase (fadvise + drop_caches)"
                           : "warm (file reads may come from the page cache)",
            aes);
    for (size_t i = 0; i < bench_nworkloads; i++)
        workload_table(out, r, &bench_workloads[i], aes);
    for (int p = 0; p < c->npeers; p++)
        if (r->sqlite_failed & (1u << p))
            fprintf(out, "sqlite: sqlite3 failed in %s (%s), no figure: see stderr\n",
                    c->peers[p].name, c->peers[p].dir);
    misc_table(out, r, "flushes-per-sync", "image flushes per sync during rand-write");
    misc_table(out, r, "write-amplification seq-write",
               "bytes the image wrote per byte written: seq-write");
    misc_table(out, r, "write-amplification rand-write",
               "bytes the image wrote per byte written: rand-write");
    misc_table(out, r, "ceiling", "ceilings");
    misc_table(out, r, "scale", "scale (file backend, fresh process per repetition)");
}
