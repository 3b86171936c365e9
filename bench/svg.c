/* --svg FILE: a bar chart of the rollback-detection overhead (full and
 * full+anchor against aead, in % of aead's throughput) per workload and
 * backend, as plain SVG rect/text elements. */
#include <errno.h>
#include <string.h>

#include "bench.h"

#define W 960
#define H 460
#define LEFT 70
#define RIGHT 20
#define TOP 60
#define BOTTOM 90

typedef struct series {
    const char *label, *mode, *color;
    int backend;
} series;

static const series SERIES[] = {
    {"full, memory", "full", "#4e79a7", BACK_MEM},
    {"full+anchor, memory", "full+anchor", "#a0cbe8", BACK_MEM},
    {"full, file", "full", "#e15759", BACK_FILE},
    {"full+anchor, file", "full+anchor", "#ff9d9a", BACK_FILE},
};
#define NSERIES (sizeof SERIES / sizeof SERIES[0])

vd_err bench_svg(const char *path, const bench_cfg *c, const bench_res *r,
                 const bench_machine *m)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "vhdbench: %s: %s\n", path, strerror(errno));
        return VD_ERR_IO;
    }
    double lo = 0, hi = 10;
    for (size_t w = 0; w < bench_nworkloads; w++)
        for (size_t s = 0; s < NSERIES; s++) {
            double v = bench_overhead(r, bench_workloads[w].name, "aead", SERIES[s].mode,
                                      SERIES[s].backend);
            if (v <= BENCH_NA / 2)
                continue;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
    hi = ((int)(hi / 10) + 1) * 10.0;
    lo = lo < 0 ? -((int)(-lo / 10) + 1) * 10.0 : 0;
    double ph = H - TOP - BOTTOM, pw = W - LEFT - RIGHT;
    double y0 = TOP + ph * hi / (hi - lo); /* the 0% line */
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"22\" font-size=\"16\">Rollback-detection overhead: "
            "throughput lost against aead (%%)</text>\n"
            "<text x=\"%d\" y=\"40\" fill=\"#555\">vhdbench %s, %s; %s, %d cores; "
            "%d reps, medians; page cache %s</text>\n",
            W, H, LEFT, LEFT, vd_version(), m->date, m->cpu, m->cores, c->reps,
            c->drop_caches ? "dropped" : "warm");
    /* Ticks from 0 outwards, so the 0% line is always drawn. */
    double step = (hi - lo) > 100 ? 20 : 10;
    for (int k = (int)(lo / step); k <= (int)(hi / step); k++) {
        double t = k * step;
        double y = TOP + ph * (hi - t) / (hi - lo);
        fprintf(f,
                "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f%%</text>\n",
                LEFT, W - RIGHT, y, y, k == 0 ? "#000" : "#ddd", LEFT - 6, y + 4, t);
    }
    double gw = pw / (double)bench_nworkloads, bw = (gw - 16) / (double)NSERIES;
    for (size_t w = 0; w < bench_nworkloads; w++) {
        double gx = LEFT + gw * (double)w + 8;
        for (size_t s = 0; s < NSERIES; s++) {
            double v = bench_overhead(r, bench_workloads[w].name, "aead", SERIES[s].mode,
                                      SERIES[s].backend);
            if (v <= BENCH_NA / 2)
                continue;
            double y = TOP + ph * (hi - v) / (hi - lo);
            double top = v >= 0 ? y : y0, hgt = v >= 0 ? y0 - y : y - y0;
            double x = gx + bw * (double)s;
            fprintf(f,
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"%s\"/>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" "
                    "text-anchor=\"middle\">%.0f</text>\n",
                    x, top, bw - 2, hgt, SERIES[s].color, x + (bw - 2) / 2,
                    v >= 0 ? top - 3 : top + hgt + 10, v);
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
                gx + (gw - 16) / 2, (double)(H - BOTTOM + 18), bench_workloads[w].name);
    }
    for (size_t s = 0; s < NSERIES; s++) {
        double x = LEFT + 200.0 * (double)s;
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>\n"
                "<text x=\"%.1f\" y=\"%d\">%s</text>\n",
                x, H - 40, SERIES[s].color, x + 16, H - 30, SERIES[s].label);
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (bad) {
        fprintf(stderr, "vhdbench: %s: write failed\n", path);
        return VD_ERR_IO;
    }
    return VD_OK;
}
