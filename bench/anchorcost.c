/* vhdbench --anchor-cost N: what one freshness-anchor advance costs (one
 * step of the counter: the file anchor's atomic replace, or the TPM
 * anchor's TPM2_NV_Read + TPM2_NV_Increment), N times; min, median and
 * 90th percentile, as docs/PERFORMANCE.md reports them. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <vdisk/anchor.h>

#include "bench.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int measure(const char *name, vd_anchor *a, int n)
{
    double *t = malloc((size_t)n * sizeof *t);
    uint64_t v;
    if (!t || a->read(a->ctx, &v) != 0) {
        free(t);
        fprintf(stderr, "vhdbench: %s: cannot read the anchor\n", name);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        uint64_t step = a->step > 1 ? a->step : 1; /* one increment */
        if (a->advance(a->ctx, v + (1 + (uint64_t)i) * step) != 0) {
            fprintf(stderr, "vhdbench: %s: advance failed %s\n", name,
                    vd_anchor_tpm_why(a));
            free(t);
            return 1;
        }
        t[i] = bench_now() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    printf("%-14s advance by one: min %.3f ms, median %.3f ms, p90 %.3f ms (n=%d)\n", name,
           t[0] * 1e3, t[n / 2] * 1e3, t[n * 9 / 10] * 1e3, n);
    free(t);
    return 0;
}

int bench_anchor_cost(const bench_cfg *c, int n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/vhdbench-%ld.anchor", c->dir, (long)getpid());
    (void)unlink(path);
    vd_anchor *a;
    if (vd_anchor_file_open(path, 1, &a, NULL) != VD_OK) {
        fprintf(stderr, "vhdbench: %s: cannot create an anchor file\n", path);
        return 1;
    }
    int rc = measure("file anchor", a, n);
    vd_anchor_file_close(a);
    (void)unlink(path);
    if (rc != 0 || !c->tpm_index)
        return rc;
    char why[256];
    if (vd_anchor_tpm_open(c->tpm_tcti, c->tpm_index, VD_ANCHOR_TPM_DEFINE, &a, why,
                           sizeof why) != VD_OK) {
        fprintf(stderr, "vhdbench: tpm:0x%08x: %s\n", c->tpm_index, why);
        return 1;
    }
    /* The authorization a real image would derive from its key: any fixed
     * value will do for a counter that only this run uses. */
    static const uint8_t auth[VD_ANCHOR_SECRET_BYTES] = {0x76, 0x64, 0x62};
    rc = a->authorize(a->ctx, auth);
    if (rc != 0)
        fprintf(stderr, "vhdbench: tpm:0x%08x: %s\n", c->tpm_index, vd_anchor_tpm_why(a));
    else
        rc = measure("TPM anchor", a, n);
    vd_anchor_tpm_close(a);
    return rc != 0;
}
