/* See blockhist.h. */
#include <stdlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "blockhist.h"

typedef struct hist_write {
    uint64_t seq;
    uint32_t id;
} hist_write;

struct vt_hist {
    uint64_t nblocks;
    hist_write **w; /* per block: its writes in order */
    uint32_t *n, *cap;
    uint64_t seq; /* next write's sequence number */
};

vt_hist *vt_hist_new(uint64_t nblocks)
{
    vt_hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->nblocks = nblocks;
    h->w = calloc(nblocks, sizeof *h->w);
    h->n = calloc(nblocks, sizeof *h->n);
    h->cap = calloc(nblocks, sizeof *h->cap);
    assert_true(h->w && h->n && h->cap);
    return h;
}

void vt_hist_free(vt_hist *h)
{
    if (!h)
        return;
    for (uint64_t b = 0; b < h->nblocks; b++)
        free(h->w[b]);
    free(h->w);
    free(h->n);
    free(h->cap);
    free(h);
}

void vt_hist_record(vt_hist *h, uint64_t lbn, uint32_t id)
{
    assert_true(lbn < h->nblocks);
    if (h->n[lbn] == h->cap[lbn]) {
        h->cap[lbn] = h->cap[lbn] ? 2 * h->cap[lbn] : 4;
        h->w[lbn] = realloc(h->w[lbn], h->cap[lbn] * sizeof(hist_write));
        assert_non_null(h->w[lbn]);
    }
    h->w[lbn][h->n[lbn]++] = (hist_write){h->seq++, id};
}

uint64_t vt_hist_seq(const vt_hist *h)
{
    return h->seq;
}

int vt_hist_allowed(const vt_hist *h, uint64_t start, uint64_t lbn, uint32_t id)
{
    uint32_t synced = 0;
    for (uint32_t k = 0; k < h->n[lbn]; k++) {
        const hist_write *x = &h->w[lbn][k];
        if (x->seq < start)
            synced = x->id;
        else if (x->id == id)
            return 1; /* written after that sync started: newer content */
    }
    return id == synced;
}
