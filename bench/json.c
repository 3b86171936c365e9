/* --json FILE: every figure with all its repetitions, the ratios the
 * table shows, and the machine. */
#include <errno.h>
#include <string.h>

#include "bench.h"

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void jnum(FILE *f, double v)
{
    if (v <= BENCH_NA / 2 || v != v)
        fprintf(f, "null");
    else
        fprintf(f, "%.6g", v);
}

static void fig(FILE *f, const bench_res *r, const bench_fig *g, double aes)
{
    fprintf(f, "    {\"workload\": ");
    jstr(f, g->workload);
    fprintf(f, ", \"subject\": ");
    jstr(f, g->subject);
    fprintf(f, ", \"backend\": ");
    if (g->backend < 0)
        fprintf(f, "null");
    else
        jstr(f, bench_backend_name(g->backend));
    fprintf(f, ", \"unit\": ");
    jstr(f, g->unit);
    fprintf(f, ", \"median\": ");
    jnum(f, bench_median(g));
    fprintf(f, ", \"min\": ");
    jnum(f, bench_min(g));
    fprintf(f, ", \"max\": ");
    jnum(f, bench_max(g));
    fprintf(f, ", \"values\": [");
    for (int i = 0; i < g->n; i++) {
        fprintf(f, i ? ", " : "");
        jnum(f, g->v[i]);
    }
    fprintf(f, "]");
    if (g->bytes_per_unit > 0) {
        fprintf(f, ", \"mb_per_s\": ");
        jnum(f, bench_median(g) * g->bytes_per_unit / 1e6);
        fprintf(f, ", \"ratio_aes\": ");
        jnum(f, aes > 0 ? bench_median(g) * g->bytes_per_unit / 1e6 / aes : BENCH_NA);
    }
    if (g->backend >= 0 && strcmp(g->workload, "ceiling") != 0 &&
        strcmp(g->workload, "scale") != 0) {
        const bench_fig *p = bench_find(r, g->workload,
                                        g->backend == BACK_PEER ? "dir" : "plain", g->backend);
        fprintf(f, ", \"ratio_plain\": ");
        jnum(f, p && bench_median(p) > 0 ? bench_median(g) / bench_median(p) : BENCH_NA);
    }
    fprintf(f, "}");
}

vd_err bench_json(const char *path, const bench_cfg *c, const bench_res *r,
                  const bench_machine *m)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "vhdbench: %s: %s\n", path, strerror(errno));
        return VD_ERR_IO;
    }
    double aes = bench_aes_ceiling(r);
    fprintf(f, "{\n  \"tool\": \"vhdbench\",\n  \"version\": ");
    jstr(f, vd_version());
    fprintf(f, ",\n  \"date\": ");
    jstr(f, m->date);
    fprintf(f, ",\n  \"machine\": {\"cpu\": ");
    jstr(f, m->cpu);
    fprintf(f, ", \"aes_ni\": %s, \"cores\": %d, \"kernel\": ", m->aes_ni ? "true" : "false",
            m->cores);
    jstr(f, m->kernel);
    fprintf(f, ", \"load_start\": ");
    jnum(f, m->load_start);
    fprintf(f, ", \"load_end\": ");
    jnum(f, m->load_end);
    fprintf(f, "},\n  \"config\": {\"reps\": %d, \"quick\": %s, \"tiny\": %s, "
               "\"seq_bytes\": %llu, \"rand_ops\": %u, \"oltp_bytes\": %llu, "
               "\"oltp_txns\": %u, \"web_files\": %u, \"page_cache\": ",
            c->reps, c->quick ? "true" : "false", c->tiny ? "true" : "false",
            (unsigned long long)c->seq_bytes, c->rand_ops,
            (unsigned long long)c->oltp_bytes, c->oltp_txns, c->web_files);
    jstr(f, c->drop_caches ? "dropped" : "warm");
    fprintf(f, ", \"aead_impl\": ");
    jstr(f, c->impl == VD_AEAD_SODIUM ? "libsodium" : "openssl");
    fprintf(f, ", \"image_cache_bytes\": %zu, \"warm_bytes\": %zu, \"sqlite\": ",
            c->cache_bytes, c->warm_bytes);
    if (c->sqlite3[0])
        fprintf(f, "{\"rows\": %u, \"updates\": %u, \"selects\": %u, \"scans\": %u}",
                c->sqlite_rows, c->sqlite_updates, c->sqlite_selects, c->sqlite_selects / 10);
    else
        fprintf(f, "null");
    fprintf(f, "},\n  \"aes_ceiling_mb_s\": ");
    jnum(f, aes);
    fprintf(f, ",\n  \"sqlite_failed\": [");
    for (int p = 0, n = 0; p < c->npeers; p++)
        if (r->sqlite_failed & (1u << p)) {
            fprintf(f, n++ ? ", " : "");
            jstr(f, c->peers[p].name);
        }
    fprintf(f, "],\n  \"figures\": [\n");
    for (int i = 0; i < r->nfigs; i++) {
        fig(f, r, &r->figs[i], aes);
        fprintf(f, "%s\n", i + 1 < r->nfigs ? "," : "");
    }
    fprintf(f, "  ],\n  \"rollback_overhead_pct\": [\n");
    int first = 1;
    for (size_t w = 0; w < bench_nworkloads; w++)
        for (int b = 0; b < BACK_PEER; b++) {
            double full = bench_overhead(r, bench_workloads[w].name, "aead", "full", b);
            double anch = bench_overhead(r, bench_workloads[w].name, "aead", "full+anchor", b);
            if (full <= BENCH_NA / 2 && anch <= BENCH_NA / 2)
                continue;
            fprintf(f, "%s    {\"workload\": ", first ? "" : ",\n");
            jstr(f, bench_workloads[w].name);
            fprintf(f, ", \"backend\": ");
            jstr(f, bench_backend_name(b));
            fprintf(f, ", \"full_vs_aead\": ");
            jnum(f, full);
            fprintf(f, ", \"full_anchor_vs_aead\": ");
            jnum(f, anch);
            fprintf(f, "}");
            first = 0;
        }
    fprintf(f, "\n  ]\n}\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "vhdbench: %s: write failed\n", path);
        return VD_ERR_IO;
    }
    return VD_OK;
}
