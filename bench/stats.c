/* Figures: every repetition kept, summarised as median (min, max). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bench_fig *find(bench_res *r, const char *workload, const char *subject,
                       int backend)
{
    for (int i = 0; i < r->nfigs; i++) {
        bench_fig *f = &r->figs[i];
        if (f->backend == backend && strcmp(f->workload, workload) == 0 &&
            strcmp(f->subject, subject) == 0)
            return f;
    }
    return NULL;
}

const bench_fig *bench_find(const bench_res *r, const char *workload,
                            const char *subject, int backend)
{
    /* find() does not write through the pointer; the cast keeps one
     * lookup routine for both uses. */
    return find((bench_res *)r, workload, subject, backend);
}

vd_err bench_add(bench_res *r, const char *workload, const char *subject, int backend,
                 const char *unit, double bytes_per_unit, double value)
{
    bench_fig *f = find(r, workload, subject, backend);
    if (!f) {
        if (r->nfigs == BENCH_MAX_FIGS)
            return VD_ERR_RANGE;
        f = &r->figs[r->nfigs++];
        memset(f, 0, sizeof *f);
        snprintf(f->workload, sizeof f->workload, "%s", workload);
        snprintf(f->subject, sizeof f->subject, "%s", subject);
        f->backend = backend;
        f->unit = unit;
        f->bytes_per_unit = bytes_per_unit;
    }
    if (f->n == BENCH_MAX_REPS)
        return VD_ERR_RANGE;
    f->v[f->n++] = value;
    return VD_OK;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(const bench_fig *f)
{
    double s[BENCH_MAX_REPS];
    if (f->n == 0)
        return 0;
    memcpy(s, f->v, sizeof(double) * (size_t)f->n);
    qsort(s, (size_t)f->n, sizeof(double), cmp_d);
    return f->n % 2 ? s[f->n / 2] : (s[f->n / 2 - 1] + s[f->n / 2]) / 2;
}

double bench_min(const bench_fig *f)
{
    double m = f->n ? f->v[0] : 0;
    for (int i = 1; i < f->n; i++)
        m = f->v[i] < m ? f->v[i] : m;
    return m;
}

double bench_max(const bench_fig *f)
{
    double m = f->n ? f->v[0] : 0;
    for (int i = 1; i < f->n; i++)
        m = f->v[i] > m ? f->v[i] : m;
    return m;
}

double bench_overhead(const bench_res *r, const char *workload, const char *fast,
                      const char *slow, int backend)
{
    const bench_fig *a = bench_find(r, workload, fast, backend);
    const bench_fig *b = bench_find(r, workload, slow, backend);
    if (!a || !b || bench_median(a) <= 0)
        return BENCH_NA;
    return 100.0 * (1.0 - bench_median(b) / bench_median(a));
}
