/* Recording, crash-simulating vd_host (see record.h). */
#include "record.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vdisk/host.h"

#define REC_CLOCK_START_NS ((int64_t)1700000000 * 1000000000)
#define REC_CLOCK_STEP_NS ((int64_t)1000000)

/* A growable image. [size, cap) is not kept zeroed. */
typedef struct rbuf {
    uint8_t *p;
    uint64_t size;
    uint64_t cap;
} rbuf;

typedef struct rec_op {
    vd_rec_kind kind;
    uint64_t off;  /* WRITE: offset; TRUNCATE: new size */
    uint64_t len;  /* WRITE: length */
    uint8_t *data; /* WRITE: copy of the bytes */
} rec_op;

struct vd_rec {
    vd_host host;
    pthread_mutex_t lock;
    rbuf initial;
    rbuf live;
    rec_op *ops;
    size_t nops;
    size_t ops_cap;
    size_t nflush;
    uint64_t bytes;
    int64_t clock_ns;
    vd_jobs *jobs; /* run_jobs: the core's parallel paths run here too */
    size_t started; /* job_start calls that ran on the pool's thread */
    /* Cache for crash images: the initial image with ops [0, cache_upto)
     * applied. Valid when cache_valid; dropped by reset. */
    rbuf cache;
    size_t cache_upto;
    int cache_valid;
};

/* ---- Growable image ----------------------------------------------------- */

static int rbuf_reserve(rbuf *b, uint64_t need)
{
    uint64_t ncap;
    uint8_t *p;

    if (need <= b->cap)
        return 0;
    if (need > (uint64_t)SIZE_MAX || need > (uint64_t)INT64_MAX)
        return -EFBIG;
    ncap = b->cap < 4096 ? 4096 : b->cap;
    while (ncap < need)
        ncap = ncap > UINT64_MAX / 2 ? need : ncap * 2;
    if (ncap > (uint64_t)SIZE_MAX)
        ncap = need;
    p = realloc(b->p, (size_t)ncap);
    if (p == NULL && ncap > need) {
        ncap = need;
        p = realloc(b->p, (size_t)ncap);
    }
    if (p == NULL)
        return -ENOMEM;
    b->p = p;
    b->cap = ncap;
    return 0;
}

static int rbuf_resize(rbuf *b, uint64_t nsize)
{
    if (nsize > b->size) {
        int r = rbuf_reserve(b, nsize);
        if (r != 0)
            return r;
        memset(b->p + b->size, 0, (size_t)(nsize - b->size));
    }
    b->size = nsize;
    return 0;
}

static int rbuf_write(rbuf *b, uint64_t off, const uint8_t *src, uint64_t len)
{
    if (len == 0)
        return 0;
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    if (off + len > b->size) {
        int r = rbuf_resize(b, off + len);
        if (r != 0)
            return r;
    }
    memcpy(b->p + off, src, (size_t)len);
    return 0;
}

static int rbuf_copy(rbuf *dst, const rbuf *src)
{
    int r = rbuf_reserve(dst, src->size);
    if (r != 0)
        return r;
    if (src->size != 0 && dst->p != NULL)
        memcpy(dst->p, src->p, (size_t)src->size);
    dst->size = src->size;
    return 0;
}

static void rbuf_free(rbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->size = 0;
    b->cap = 0;
}

static int op_apply(rbuf *b, const rec_op *op)
{
    switch (op->kind) {
    case VD_REC_WRITE:
        return rbuf_write(b, op->off, op->data, op->len);
    case VD_REC_TRUNCATE:
        return rbuf_resize(b, op->off);
    case VD_REC_FLUSH:
        return 0;
    }
    return -EINVAL;
}

/* ---- Log ------------------------------------------------------------------ */

static int log_reserve(vd_rec *rec)
{
    size_t ncap;
    rec_op *p;

    if (rec->nops < rec->ops_cap)
        return 0;
    ncap = rec->ops_cap < 64 ? 64 : rec->ops_cap;
    if (ncap > SIZE_MAX / 2 / sizeof(rec_op))
        return -ENOMEM;
    ncap *= 2;
    p = realloc(rec->ops, ncap * sizeof(rec_op));
    if (p == NULL)
        return -ENOMEM;
    rec->ops = p;
    rec->ops_cap = ncap;
    return 0;
}

static void log_clear(vd_rec *rec)
{
    for (size_t i = 0; i < rec->nops; i++)
        free(rec->ops[i].data);
    rec->nops = 0;
    rec->nflush = 0;
    rec->bytes = 0;
}

static int rec_lock(vd_rec *rec)
{
    int r = pthread_mutex_lock(&rec->lock);
    return r == 0 ? 0 : -r;
}

static void rec_unlock(vd_rec *rec)
{
    (void)pthread_mutex_unlock(&rec->lock);
}

/* ---- Host callbacks ------------------------------------------------------- */

static int rec_read_at(void *ctx, uint64_t off, void *buf, size_t len,
                       size_t *done)
{
    vd_rec *rec = ctx;
    size_t n = 0;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (rec == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    r = rec_lock(rec);
    if (r != 0)
        return r;
    if (off < rec->live.size) {
        uint64_t avail = rec->live.size - off;
        n = (uint64_t)len < avail ? len : (size_t)avail;
        memcpy(buf, rec->live.p + off, n);
    }
    rec_unlock(rec);
    *done = n;
    return 0;
}

static int rec_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                        size_t *done)
{
    vd_rec *rec = ctx;
    rec_op op;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (rec == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (off > (uint64_t)INT64_MAX || (uint64_t)len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    op.kind = VD_REC_WRITE;
    op.off = off;
    op.len = len;
    op.data = malloc(len);
    if (op.data == NULL)
        return -ENOMEM;
    memcpy(op.data, buf, len);
    r = rec_lock(rec);
    if (r != 0) {
        free(op.data);
        return r;
    }
    r = log_reserve(rec);
    if (r == 0)
        r = op_apply(&rec->live, &op);
    if (r != 0) {
        rec_unlock(rec);
        free(op.data);
        return r;
    }
    rec->ops[rec->nops++] = op;
    rec->bytes += len;
    rec_unlock(rec);
    *done = len;
    return 0;
}

static int rec_flush(void *ctx)
{
    vd_rec *rec = ctx;
    int r;

    if (rec == NULL)
        return -EINVAL;
    r = rec_lock(rec);
    if (r != 0)
        return r;
    r = log_reserve(rec);
    if (r == 0) {
        rec_op op = {VD_REC_FLUSH, 0, 0, NULL};
        rec->ops[rec->nops++] = op;
        rec->nflush++;
    }
    rec_unlock(rec);
    return r;
}

static int rec_size(void *ctx, uint64_t *size)
{
    vd_rec *rec = ctx;
    int r;

    if (rec == NULL || size == NULL)
        return -EINVAL;
    r = rec_lock(rec);
    if (r != 0)
        return r;
    *size = rec->live.size;
    rec_unlock(rec);
    return 0;
}

static int rec_truncate(void *ctx, uint64_t size)
{
    vd_rec *rec = ctx;
    rec_op op = {VD_REC_TRUNCATE, size, 0, NULL};
    int r;

    if (rec == NULL)
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    r = rec_lock(rec);
    if (r != 0)
        return r;
    r = log_reserve(rec);
    if (r == 0)
        r = op_apply(&rec->live, &op);
    if (r == 0)
        rec->ops[rec->nops++] = op;
    rec_unlock(rec);
    return r;
}

static int rec_now(void *ctx, int64_t *ns)
{
    vd_rec *rec = ctx;
    int r;

    if (rec == NULL || ns == NULL)
        return -EINVAL;
    r = rec_lock(rec);
    if (r != 0)
        return r;
    *ns = rec->clock_ns;
    if (rec->clock_ns <= INT64_MAX - REC_CLOCK_STEP_NS)
        rec->clock_ns += REC_CLOCK_STEP_NS;
    rec_unlock(rec);
    return 0;
}

/* ---- Lifetime ------------------------------------------------------------- */

static void rec_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                         void *arg)
{
    vd_jobs_run(((vd_rec *)ctx)->jobs, n, fn, arg);
}

static uint64_t rec_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    vd_rec *rec = ctx;
    uint64_t ticket = vd_jobs_start(rec->jobs, fn, arg);
    if (ticket && rec_lock(rec) == 0) {
        rec->started++;
        (void)pthread_mutex_unlock(&rec->lock);
    }
    return ticket;
}

static void rec_job_wait(void *ctx, uint64_t ticket)
{
    vd_jobs_wait(((vd_rec *)ctx)->jobs, ticket);
}

vd_rec *vd_rec_new(const uint8_t *initial, uint64_t size)
{
    vd_rec *rec;

    if (initial == NULL && size != 0)
        return NULL;
    rec = calloc(1, sizeof(*rec));
    if (rec == NULL)
        return NULL;
    if (pthread_mutex_init(&rec->lock, NULL) != 0) {
        free(rec);
        return NULL;
    }
    if (rbuf_write(&rec->initial, 0, initial, size) != 0 ||
        rbuf_write(&rec->live, 0, initial, size) != 0) {
        rbuf_free(&rec->initial);
        rbuf_free(&rec->live);
        (void)pthread_mutex_destroy(&rec->lock);
        free(rec);
        return NULL;
    }
    rec->clock_ns = REC_CLOCK_START_NS;
    rec->host.ctx = rec;
    rec->host.read_at = rec_read_at;
    rec->host.write_at = rec_write_at;
    rec->host.flush = rec_flush;
    rec->host.size = rec_size;
    rec->host.truncate = rec_truncate;
    rec->host.now = rec_now;
    if (vd_jobs_new(0, &rec->jobs) == VD_OK) {
        rec->host.run_jobs = rec_run_jobs;
        rec->host.job_start = rec_job_start;
        rec->host.job_wait = rec_job_wait;
    }
    return rec;
}

void vd_rec_free(vd_rec *rec)
{
    if (rec == NULL)
        return;
    log_clear(rec);
    free(rec->ops);
    rbuf_free(&rec->initial);
    rbuf_free(&rec->live);
    rbuf_free(&rec->cache);
    (void)pthread_mutex_destroy(&rec->lock);
    vd_jobs_free(rec->jobs);
    free(rec);
}

vd_host *vd_rec_host(vd_rec *rec)
{
    return rec == NULL ? NULL : &rec->host;
}

/* ---- Queries -------------------------------------------------------------- */

size_t vd_rec_op_count(vd_rec *rec)
{
    return rec == NULL ? 0 : rec->nops;
}

size_t vd_rec_flush_count(vd_rec *rec)
{
    return rec == NULL ? 0 : rec->nflush;
}

size_t vd_rec_jobs_started(vd_rec *rec)
{
    if (rec == NULL || rec_lock(rec) != 0)
        return 0;
    size_t n = rec->started;
    (void)pthread_mutex_unlock(&rec->lock);
    return n;
}

size_t vd_rec_epoch_count(vd_rec *rec)
{
    return rec == NULL ? 0 : rec->nflush + 1;
}

uint64_t vd_rec_bytes_logged(vd_rec *rec)
{
    return rec == NULL ? 0 : rec->bytes;
}

vd_err vd_rec_op_get(vd_rec *rec, size_t index, vd_rec_op_info *info)
{
    const rec_op *op;

    if (rec == NULL || info == NULL)
        return VD_ERR_INVAL;
    if (index >= rec->nops)
        return VD_ERR_RANGE;
    op = &rec->ops[index];
    memset(info, 0, sizeof(*info));
    info->kind = op->kind;
    if (op->kind == VD_REC_WRITE) {
        info->offset = op->off;
        info->length = op->len;
        info->data = op->data;
    } else if (op->kind == VD_REC_TRUNCATE) {
        info->new_size = op->off;
    }
    return VD_OK;
}

vd_err vd_rec_epoch_bounds(vd_rec *rec, size_t epoch_index, size_t *first_op,
                           size_t *end_op)
{
    size_t seen = 0;
    size_t first = 0;

    if (rec == NULL || first_op == NULL || end_op == NULL)
        return VD_ERR_INVAL;
    if (epoch_index > rec->nflush)
        return VD_ERR_RANGE;
    for (size_t i = 0; i < rec->nops; i++) {
        if (rec->ops[i].kind != VD_REC_FLUSH)
            continue;
        if (seen == epoch_index) {
            *first_op = first;
            *end_op = i;
            return VD_OK;
        }
        seen++;
        first = i + 1;
    }
    /* The open epoch. */
    *first_op = first;
    *end_op = rec->nops;
    return VD_OK;
}

size_t vd_rec_tail_first(vd_rec *rec, size_t n_ops_prefix)
{
    if (rec == NULL)
        return 0;
    if (n_ops_prefix > rec->nops)
        n_ops_prefix = rec->nops;
    for (size_t i = n_ops_prefix; i > 0; i--) {
        if (rec->ops[i - 1].kind == VD_REC_FLUSH)
            return i;
    }
    return 0;
}

const uint8_t *vd_rec_live(vd_rec *rec, uint64_t *size)
{
    if (size != NULL)
        *size = rec == NULL ? 0 : rec->live.size;
    return rec == NULL ? NULL : rec->live.p;
}

const uint8_t *vd_rec_initial(vd_rec *rec, uint64_t *size)
{
    if (size != NULL)
        *size = rec == NULL ? 0 : rec->initial.size;
    return rec == NULL ? NULL : rec->initial.p;
}

/* ---- Crash states --------------------------------------------------------- */

/* xorshift64* (Vigna): the state lives in the caller's frame. */
static uint64_t xorshift64s(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

/* Bring the cache to "initial + ops [0, upto)". Caller holds the lock. */
static int cache_advance(vd_rec *rec, size_t upto)
{
    int r;

    if (!rec->cache_valid || rec->cache_upto > upto) {
        r = rbuf_copy(&rec->cache, &rec->initial);
        if (r != 0) {
            rec->cache_valid = 0;
            return r;
        }
        rec->cache_upto = 0;
        rec->cache_valid = 1;
    }
    for (size_t i = rec->cache_upto; i < upto; i++) {
        r = op_apply(&rec->cache, &rec->ops[i]);
        if (r != 0) {
            rec->cache_valid = 0;
            return r;
        }
        rec->cache_upto = i + 1;
    }
    return 0;
}

/* The tail ops of the prefix of n ops that reach the disk, in the order
 * they land (steps 3 and 4 of vd_rec_crash_image): a malloc'd array of op
 * indexes in *sel (NULL when empty) and its length in *nsel. */
static int tail_select(vd_rec *rec, size_t n, const uint8_t *mask,
                       uint64_t seed, int reorder, size_t **sel_out,
                       size_t *nsel_out)
{
    size_t tf = vd_rec_tail_first(rec, n);
    size_t ntail = n - tf;
    size_t nsel = 0;
    size_t *sel;

    *sel_out = NULL;
    *nsel_out = 0;
    if (ntail == 0)
        return 0;
    sel = malloc(ntail * sizeof(*sel));
    if (sel == NULL)
        return -ENOMEM;
    for (size_t j = 0; j < ntail; j++) {
        if (mask == NULL || ((mask[j / 8] >> (j % 8)) & 1u))
            sel[nsel++] = tf + j;
    }
    if (reorder && nsel > 1) {
        uint64_t state = seed != 0 ? seed : UINT64_C(0x9E3779B97F4A7C15);
        for (size_t i = nsel - 1; i > 0; i--) {
            size_t k = (size_t)(xorshift64s(&state) % (uint64_t)(i + 1));
            size_t t = sel[i];
            sel[i] = sel[k];
            sel[k] = t;
        }
    }
    *sel_out = sel;
    *nsel_out = nsel;
    return 0;
}

/* Build the crash image into out (an empty rbuf). Caller holds the lock. */
static int crash_build(vd_rec *rec, size_t n, const uint8_t *mask,
                       uint64_t seed, int reorder, rbuf *out)
{
    size_t nsel = 0;
    size_t *sel = NULL;
    int r;

    if (n > rec->nops)
        return -ERANGE;
    r = cache_advance(rec, vd_rec_tail_first(rec, n));
    if (r != 0)
        return r;
    r = rbuf_copy(out, &rec->cache);
    if (r != 0)
        return r;
    r = tail_select(rec, n, mask, seed, reorder, &sel, &nsel);
    for (size_t i = 0; r == 0 && i < nsel; i++)
        r = op_apply(out, &rec->ops[sel[i]]);
    free(sel);
    return r;
}

uint8_t *vd_rec_crash_image(vd_rec *rec, size_t n_ops_prefix,
                            const uint8_t *subset_mask, uint64_t seed,
                            int reorder, uint64_t *size_out)
{
    rbuf out = {NULL, 0, 0};
    int r;

    if (size_out != NULL)
        *size_out = 0;
    if (rec == NULL)
        return NULL;
    if (rec_lock(rec) != 0)
        return NULL;
    r = crash_build(rec, n_ops_prefix, subset_mask, seed, reorder, &out);
    rec_unlock(rec);
    if (r == 0 && out.p == NULL) {
        /* Empty image: still hand back an allocation. */
        out.p = malloc(1);
        if (out.p == NULL)
            r = -ENOMEM;
    }
    if (r != 0) {
        rbuf_free(&out);
        return NULL;
    }
    if (size_out != NULL)
        *size_out = out.size;
    return out.p;
}

vd_err vd_rec_crash_host(vd_rec *rec, size_t n_ops_prefix,
                         const uint8_t *subset_mask, uint64_t seed,
                         int reorder, vd_host **out)
{
    uint8_t *img;
    uint64_t size = 0;
    vd_host *h = NULL;
    vd_err err;

    if (out == NULL)
        return VD_ERR_INVAL;
    *out = NULL;
    if (rec == NULL)
        return VD_ERR_INVAL;
    if (n_ops_prefix > rec->nops)
        return VD_ERR_RANGE;
    img = vd_rec_crash_image(rec, n_ops_prefix, subset_mask, seed, reorder,
                             &size);
    if (img == NULL)
        return VD_ERR_NOMEM;
    err = vd_host_mem_new(&h);
    if (err == VD_OK)
        err = vd_host_mem_set(h, img, size);
    free(img);
    if (err != VD_OK) {
        vd_host_mem_free(h);
        return err;
    }
    *out = h;
    return VD_OK;
}

vd_err vd_rec_reset_log(vd_rec *rec)
{
    rbuf ninit = {NULL, 0, 0};

    if (rec == NULL)
        return VD_ERR_INVAL;
    if (rec_lock(rec) != 0)
        return VD_ERR_IO;
    if (rbuf_copy(&ninit, &rec->live) != 0) {
        rec_unlock(rec);
        return VD_ERR_NOMEM;
    }
    rbuf_free(&rec->initial);
    rec->initial = ninit;
    log_clear(rec);
    rbuf_free(&rec->cache);
    rec->cache_valid = 0;
    rec->cache_upto = 0;
    rec_unlock(rec);
    return VD_OK;
}

/* ---- Crash views ------------------------------------------------------------
 * A view reads the durable part of the crash state straight from the
 * recorder's cache (never written) and keeps every byte written since, by
 * the tail ops or by the library, in private 4 KiB overlay blocks, so a
 * crash state costs O(tail + writes) instead of two copies of the image. */

#define VIEW_BLK 4096u

typedef struct rec_view {
    vd_host host; /* first: the vd_host pointer is the view */
    pthread_mutex_t lock;
    const uint8_t *base;
    uint64_t base_size; /* bytes of base still visible (a shrink cuts it) */
    uint64_t size;
    uint64_t *keys;   /* overlay block numbers, open addressing */
    uint8_t **blks;   /* NULL = empty slot */
    size_t cap, n;
    int64_t clock_ns;
    vd_jobs *jobs; /* the recorder's pool: no threads started per state */
} rec_view;

static size_t view_slot(const rec_view *v, uint64_t blk)
{
    size_t i = (size_t)((blk * UINT64_C(0x9E3779B97F4A7C15)) >> 20) & (v->cap - 1);
    while (v->blks[i] != NULL && v->keys[i] != blk)
        i = (i + 1) & (v->cap - 1);
    return i;
}

static uint8_t *view_find(const rec_view *v, uint64_t blk)
{
    return v->blks[view_slot(v, blk)];
}

static int view_grow(rec_view *v)
{
    size_t ncap = v->cap * 2;
    uint64_t *keys = calloc(ncap, sizeof(*keys));
    uint8_t **blks = calloc(ncap, sizeof(*blks));
    rec_view nv = *v;

    if (keys == NULL || blks == NULL) {
        free(keys);
        free(blks);
        return -ENOMEM;
    }
    nv.keys = keys;
    nv.blks = blks;
    nv.cap = ncap;
    for (size_t i = 0; i < v->cap; i++) {
        if (v->blks[i] != NULL) {
            size_t j = view_slot(&nv, v->keys[i]);
            keys[j] = v->keys[i];
            blks[j] = v->blks[i];
        }
    }
    free(v->keys);
    free(v->blks);
    v->keys = keys;
    v->blks = blks;
    v->cap = ncap;
    return 0;
}

/* The overlay block blk, made from the visible base bytes (zeros beyond). */
static int view_block(rec_view *v, uint64_t blk, uint8_t **out)
{
    size_t i;
    uint8_t *b;
    uint64_t start = blk * VIEW_BLK;

    i = view_slot(v, blk);
    if (v->blks[i] != NULL) {
        *out = v->blks[i];
        return 0;
    }
    if ((v->n + 1) * 2 > v->cap) {
        int r = view_grow(v);
        if (r != 0)
            return r;
        i = view_slot(v, blk);
    }
    b = calloc(1, VIEW_BLK);
    if (b == NULL)
        return -ENOMEM;
    if (start < v->base_size) {
        uint64_t n = v->base_size - start;
        memcpy(b, v->base + start, (size_t)(n < VIEW_BLK ? n : VIEW_BLK));
    }
    v->keys[i] = blk;
    v->blks[i] = b;
    v->n++;
    *out = b;
    return 0;
}

static int view_write_locked(rec_view *v, uint64_t off, const uint8_t *src,
                             uint64_t len)
{
    if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    while (len > 0) {
        uint8_t *b;
        size_t in = (size_t)(off % VIEW_BLK);
        size_t n = VIEW_BLK - in;
        int r = view_block(v, off / VIEW_BLK, &b);
        if (r != 0)
            return r;
        if ((uint64_t)n > len)
            n = (size_t)len;
        memcpy(b + in, src, n);
        off += n;
        src += n;
        len -= n;
        if (off > v->size)
            v->size = off;
    }
    return 0;
}

static int view_resize_locked(rec_view *v, uint64_t nsize)
{
    if (nsize < v->size) {
        /* Bytes beyond the new end must read as zeros if it grows again. */
        if (nsize < v->base_size)
            v->base_size = nsize;
        for (size_t i = 0; i < v->cap; i++) {
            uint64_t start;
            if (v->blks[i] == NULL)
                continue;
            start = v->keys[i] * VIEW_BLK;
            if (start + VIEW_BLK > nsize) {
                size_t keep = start >= nsize ? 0 : (size_t)(nsize - start);
                memset(v->blks[i] + keep, 0, VIEW_BLK - keep);
            }
        }
    }
    v->size = nsize;
    return 0;
}

static int view_read_at(void *ctx, uint64_t off, void *buf, size_t len,
                        size_t *done)
{
    rec_view *v = ctx;
    uint8_t *out = buf;
    size_t total = 0;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (buf == NULL && len != 0)
        return -EINVAL;
    if (pthread_mutex_lock(&v->lock) != 0)
        return -EIO;
    while (total < len && off < v->size) {
        size_t in = (size_t)(off % VIEW_BLK);
        size_t n = VIEW_BLK - in;
        const uint8_t *b = view_find(v, off / VIEW_BLK);
        if (n > len - total)
            n = len - total;
        if ((uint64_t)n > v->size - off)
            n = (size_t)(v->size - off);
        if (b != NULL) {
            memcpy(out + total, b + in, n);
        } else if (off >= v->base_size) {
            memset(out + total, 0, n);
        } else {
            size_t nb = (uint64_t)n > v->base_size - off ? (size_t)(v->base_size - off) : n;
            memcpy(out + total, v->base + off, nb);
            memset(out + total + nb, 0, n - nb);
        }
        total += n;
        off += n;
    }
    pthread_mutex_unlock(&v->lock);
    *done = total;
    return 0;
}

static int view_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                         size_t *done)
{
    rec_view *v = ctx;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (buf == NULL && len != 0)
        return -EINVAL;
    if (pthread_mutex_lock(&v->lock) != 0)
        return -EIO;
    r = view_write_locked(v, off, buf, len);
    pthread_mutex_unlock(&v->lock);
    if (r == 0)
        *done = len;
    return r;
}

static int view_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static int view_size(void *ctx, uint64_t *size)
{
    rec_view *v = ctx;

    if (size == NULL)
        return -EINVAL;
    if (pthread_mutex_lock(&v->lock) != 0)
        return -EIO;
    *size = v->size;
    pthread_mutex_unlock(&v->lock);
    return 0;
}

static int view_truncate(void *ctx, uint64_t size)
{
    rec_view *v = ctx;
    int r;

    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    if (pthread_mutex_lock(&v->lock) != 0)
        return -EIO;
    r = view_resize_locked(v, size);
    pthread_mutex_unlock(&v->lock);
    return r;
}

static int view_now(void *ctx, int64_t *ns)
{
    rec_view *v = ctx;

    if (ns == NULL)
        return -EINVAL;
    if (pthread_mutex_lock(&v->lock) != 0)
        return -EIO;
    *ns = v->clock_ns;
    v->clock_ns += REC_CLOCK_STEP_NS;
    pthread_mutex_unlock(&v->lock);
    return 0;
}

static void view_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                          void *arg)
{
    vd_jobs_run(((rec_view *)ctx)->jobs, n, fn, arg);
}

static uint64_t view_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    return vd_jobs_start(((rec_view *)ctx)->jobs, fn, arg);
}

static void view_job_wait(void *ctx, uint64_t ticket)
{
    vd_jobs_wait(((rec_view *)ctx)->jobs, ticket);
}

void vd_rec_view_free(vd_host *view)
{
    rec_view *v = (rec_view *)view;

    if (v == NULL)
        return;
    for (size_t i = 0; i < v->cap; i++)
        free(v->blks[i]);
    free(v->keys);
    free(v->blks);
    (void)pthread_mutex_destroy(&v->lock);
    free(v);
}

vd_err vd_rec_crash_view(vd_rec *rec, size_t n_ops_prefix,
                         const uint8_t *subset_mask, uint64_t seed,
                         int reorder, vd_host **out)
{
    rec_view *v;
    size_t *sel = NULL;
    size_t nsel = 0;
    int r;

    if (out == NULL)
        return VD_ERR_INVAL;
    *out = NULL;
    if (rec == NULL)
        return VD_ERR_INVAL;
    if (n_ops_prefix > rec->nops)
        return VD_ERR_RANGE;
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return VD_ERR_NOMEM;
    v->cap = 64;
    v->keys = calloc(v->cap, sizeof(*v->keys));
    v->blks = calloc(v->cap, sizeof(*v->blks));
    if (v->keys == NULL || v->blks == NULL ||
        pthread_mutex_init(&v->lock, NULL) != 0) {
        free(v->keys);
        free(v->blks);
        free(v);
        return VD_ERR_NOMEM;
    }
    r = rec_lock(rec);
    if (r == 0) {
        r = cache_advance(rec, vd_rec_tail_first(rec, n_ops_prefix));
        if (r == 0) {
            v->base = rec->cache.p;
            v->base_size = rec->cache.size;
            v->size = rec->cache.size;
            r = tail_select(rec, n_ops_prefix, subset_mask, seed, reorder, &sel, &nsel);
        }
        for (size_t i = 0; r == 0 && i < nsel; i++) {
            const rec_op *op = &rec->ops[sel[i]];
            if (op->kind == VD_REC_WRITE)
                r = view_write_locked(v, op->off, op->data, op->len);
            else if (op->kind == VD_REC_TRUNCATE)
                r = view_resize_locked(v, op->off);
        }
        rec_unlock(rec);
    }
    free(sel);
    if (r != 0) {
        vd_rec_view_free(&v->host);
        return r == -ENOMEM ? VD_ERR_NOMEM : VD_ERR_IO;
    }
    v->clock_ns = REC_CLOCK_START_NS;
    v->host.ctx = v;
    v->host.read_at = view_read_at;
    v->host.write_at = view_write_at;
    v->host.flush = view_flush;
    v->host.size = view_size;
    v->host.truncate = view_truncate;
    v->host.now = view_now;
    v->jobs = rec->jobs;
    if (v->jobs != NULL) { /* as the memory host: commits may overlap */
        v->host.run_jobs = view_run_jobs;
        v->host.job_start = view_job_start;
        v->host.job_wait = view_job_wait;
    }
    *out = &v->host;
    return VD_OK;
}
