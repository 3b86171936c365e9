/* Fault-injecting vd_host (see fault.h). */
#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FAULT_FALLBACK_NS ((int64_t)1700000000 * 1000000000)

/* Calls [first, first + ncalls) of one kind; first == 0: disabled. */
typedef struct window {
    uint64_t first;
    uint64_t ncalls; /* 0: unlimited */
} window;

typedef struct flip {
    uint64_t offset;
    uint8_t mask;
} flip;

struct vd_fault {
    vd_host host;
    vd_host inner;
    pthread_mutex_t lock;
    uint64_t calls[VD_FAULT_NOPS];
    uint64_t injected[VD_FAULT_NOPS];

    window fail[VD_FAULT_NOPS];
    int fail_errno[VD_FAULT_NOPS];
    window drop[VD_FAULT_NOPS]; /* WRITE, FLUSH, TRUNCATE */

    window short_read;
    size_t short_read_by;
    window long_read;
    window short_write;
    size_t short_write_by;
    window size_lie;
    int64_t size_delta;
    window time_back;
    int64_t time_step;
    window time_const;
    int64_t time_value;

    flip flips[VD_FAULT_MAX_FLIPS];
    size_t nflips;

    int have_last_now;
    int64_t last_now;
};

static int in_window(const window *w, uint64_t n)
{
    if (w->first == 0 || n < w->first)
        return 0;
    return w->ncalls == 0 || n - w->first < w->ncalls;
}

static window make_window(uint64_t first, uint64_t ncalls)
{
    window w = {first, ncalls};
    return w;
}

static int op_ok(vd_fault_op op)
{
    return (int)op >= 0 && op < VD_FAULT_NOPS;
}

static int f_lock(vd_fault *f)
{
    int r = pthread_mutex_lock(&f->lock);
    return r == 0 ? 0 : -r;
}

static void f_unlock(vd_fault *f)
{
    (void)pthread_mutex_unlock(&f->lock);
}

/* Count a call of kind op; returns its number (1-based). */
static uint64_t count_call(vd_fault *f, vd_fault_op op)
{
    if (f->calls[op] != UINT64_MAX)
        f->calls[op]++;
    return f->calls[op];
}

/* ---- Host callbacks ------------------------------------------------------- */

static int fault_read_at(void *ctx, uint64_t off, void *buf, size_t len,
                         size_t *done)
{
    vd_fault *f = ctx;
    size_t want = len;
    size_t got = 0;
    uint64_t n;
    int injected = 0;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (f == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    n = count_call(f, VD_FAULT_READ);
    if (in_window(&f->fail[VD_FAULT_READ], n)) {
        f->injected[VD_FAULT_READ]++;
        r = f->fail_errno[VD_FAULT_READ];
        f_unlock(f);
        return r;
    }
    if (f->inner.read_at == NULL) {
        f_unlock(f);
        return -ENOSYS;
    }
    if (in_window(&f->short_read, n)) {
        want = len > f->short_read_by ? len - f->short_read_by : 0;
        injected = 1;
    }
    r = f->inner.read_at(f->inner.ctx, off, buf, want, &got);
    if (got > want)
        got = want; /* never trust the inner count past our buffer */
    if (buf != NULL) {
        uint8_t *p = buf;
        for (size_t i = 0; i < f->nflips; i++) {
            uint64_t fo = f->flips[i].offset;
            if (fo >= off && fo - off < (uint64_t)got) {
                p[fo - off] ^= f->flips[i].mask;
                injected = 1;
            }
        }
    }
    if (r == 0 && in_window(&f->long_read, n) && len != SIZE_MAX) {
        got = len + 1;
        injected = 1;
    }
    if (injected)
        f->injected[VD_FAULT_READ]++;
    f_unlock(f);
    *done = got;
    return r;
}

static int fault_write_at(void *ctx, uint64_t off, const void *buf,
                          size_t len, size_t *done)
{
    vd_fault *f = ctx;
    size_t want = len;
    size_t put = 0;
    uint64_t n;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (f == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    n = count_call(f, VD_FAULT_WRITE);
    if (in_window(&f->fail[VD_FAULT_WRITE], n)) {
        f->injected[VD_FAULT_WRITE]++;
        r = f->fail_errno[VD_FAULT_WRITE];
        f_unlock(f);
        return r;
    }
    if (in_window(&f->drop[VD_FAULT_WRITE], n)) {
        f->injected[VD_FAULT_WRITE]++;
        f_unlock(f);
        *done = len;
        return 0;
    }
    if (f->inner.write_at == NULL) {
        f_unlock(f);
        return -ENOSYS;
    }
    if (in_window(&f->short_write, n)) {
        want = len > f->short_write_by ? len - f->short_write_by : 0;
        f->injected[VD_FAULT_WRITE]++;
    }
    if (want == 0 && len != 0) {
        r = 0; /* a zero-byte "success" */
    } else {
        r = f->inner.write_at(f->inner.ctx, off, buf, want, &put);
        if (put > want)
            put = want;
    }
    f_unlock(f);
    *done = put;
    return r;
}

/* The common shape of flush and truncate: fail, drop, forward. Returns 1
 * when the call was handled (result in *rc), 0 to forward. */
static int fail_or_drop(vd_fault *f, vd_fault_op op, int *rc)
{
    uint64_t n = count_call(f, op);

    if (in_window(&f->fail[op], n)) {
        f->injected[op]++;
        *rc = f->fail_errno[op];
        return 1;
    }
    if (in_window(&f->drop[op], n)) {
        f->injected[op]++;
        *rc = 0;
        return 1;
    }
    return 0;
}

static int fault_flush(void *ctx)
{
    vd_fault *f = ctx;
    int r;

    if (f == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    if (!fail_or_drop(f, VD_FAULT_FLUSH, &r))
        r = f->inner.flush != NULL ? f->inner.flush(f->inner.ctx) : -ENOSYS;
    f_unlock(f);
    return r;
}

static int fault_truncate(void *ctx, uint64_t size)
{
    vd_fault *f = ctx;
    int r;

    if (f == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    if (!fail_or_drop(f, VD_FAULT_TRUNCATE, &r))
        r = f->inner.truncate != NULL ? f->inner.truncate(f->inner.ctx, size)
                                      : -ENOSYS;
    f_unlock(f);
    return r;
}

static int fault_size(void *ctx, uint64_t *size)
{
    vd_fault *f = ctx;
    uint64_t n;
    uint64_t s = 0;
    int r;

    if (f == NULL || size == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    n = count_call(f, VD_FAULT_SIZE);
    if (in_window(&f->fail[VD_FAULT_SIZE], n)) {
        f->injected[VD_FAULT_SIZE]++;
        r = f->fail_errno[VD_FAULT_SIZE];
        f_unlock(f);
        return r;
    }
    r = f->inner.size != NULL ? f->inner.size(f->inner.ctx, &s) : -ENOSYS;
    if (r == 0 && in_window(&f->size_lie, n)) {
        int64_t d = f->size_delta;
        if (d >= 0)
            s = (uint64_t)d > UINT64_MAX - s ? UINT64_MAX : s + (uint64_t)d;
        else {
            /* -(d + 1) + 1 avoids negating INT64_MIN. */
            uint64_t m = (uint64_t)(-(d + 1)) + 1;
            s = m > s ? 0 : s - m;
        }
        f->injected[VD_FAULT_SIZE]++;
    }
    f_unlock(f);
    if (r == 0)
        *size = s;
    return r;
}

static int fault_now(void *ctx, int64_t *ns)
{
    vd_fault *f = ctx;
    uint64_t n;
    int64_t t = 0;
    int r;

    if (f == NULL || ns == NULL)
        return -EINVAL;
    r = f_lock(f);
    if (r != 0)
        return r;
    n = count_call(f, VD_FAULT_NOW);
    if (in_window(&f->fail[VD_FAULT_NOW], n)) {
        f->injected[VD_FAULT_NOW]++;
        r = f->fail_errno[VD_FAULT_NOW];
    } else if (in_window(&f->time_const, n)) {
        f->injected[VD_FAULT_NOW]++;
        t = f->time_value;
    } else if (in_window(&f->time_back, n)) {
        int64_t base;
        f->injected[VD_FAULT_NOW]++;
        if (f->have_last_now) {
            base = f->last_now;
        } else if (f->inner.now == NULL ||
                   f->inner.now(f->inner.ctx, &base) != 0) {
            base = FAULT_FALLBACK_NS;
        }
        t = base < INT64_MIN + f->time_step ? INT64_MIN : base - f->time_step;
    } else {
        r = f->inner.now != NULL ? f->inner.now(f->inner.ctx, &t) : -ENOSYS;
    }
    if (r == 0) {
        f->last_now = t;
        f->have_last_now = 1;
    }
    f_unlock(f);
    if (r == 0)
        *ns = t;
    return r;
}

/* ---- Lifetime and counters ------------------------------------------------ */

/* The inner host's jobs: a fault host injects faults into I/O only. Its
 * commits stay synchronous (no job_start), so a fault fails the call that
 * met it. */
static void fault_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                           void *arg)
{
    vd_fault *f = ctx;
    f->inner.run_jobs(f->inner.ctx, n, fn, arg);
}

vd_fault *vd_fault_new(const vd_host *inner)
{
    vd_fault *f;

    if (inner == NULL)
        return NULL;
    f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        return NULL;
    }
    f->inner = *inner;
    f->host.ctx = f;
    f->host.read_at = fault_read_at;
    f->host.write_at = fault_write_at;
    f->host.flush = fault_flush;
    f->host.size = fault_size;
    f->host.truncate = fault_truncate;
    f->host.now = fault_now;
    f->host.run_jobs = inner->run_jobs ? fault_run_jobs : NULL;
    return f;
}

void vd_fault_free(vd_fault *f)
{
    if (f == NULL)
        return;
    (void)pthread_mutex_destroy(&f->lock);
    free(f);
}

vd_host *vd_fault_host(vd_fault *f)
{
    return f == NULL ? NULL : &f->host;
}

uint64_t vd_fault_calls(vd_fault *f, vd_fault_op op)
{
    uint64_t v;

    if (f == NULL || !op_ok(op) || f_lock(f) != 0)
        return 0;
    v = f->calls[op];
    f_unlock(f);
    return v;
}

uint64_t vd_fault_injected(vd_fault *f, vd_fault_op op)
{
    uint64_t v;

    if (f == NULL || !op_ok(op) || f_lock(f) != 0)
        return 0;
    v = f->injected[op];
    f_unlock(f);
    return v;
}

void vd_fault_reset_counters(vd_fault *f)
{
    if (f == NULL || f_lock(f) != 0)
        return;
    memset(f->calls, 0, sizeof(f->calls));
    memset(f->injected, 0, sizeof(f->injected));
    f_unlock(f);
}

void vd_fault_clear(vd_fault *f)
{
    if (f == NULL || f_lock(f) != 0)
        return;
    memset(f->fail, 0, sizeof(f->fail));
    memset(f->fail_errno, 0, sizeof(f->fail_errno));
    memset(f->drop, 0, sizeof(f->drop));
    f->short_read = make_window(0, 0);
    f->short_read_by = 0;
    f->long_read = make_window(0, 0);
    f->short_write = make_window(0, 0);
    f->short_write_by = 0;
    f->size_lie = make_window(0, 0);
    f->size_delta = 0;
    f->time_back = make_window(0, 0);
    f->time_step = 0;
    f->time_const = make_window(0, 0);
    f->time_value = 0;
    f->nflips = 0;
    f_unlock(f);
}

/* ---- Configuration -------------------------------------------------------- */

vd_err vd_fault_fail(vd_fault *f, vd_fault_op op, uint64_t first,
                     uint64_t ncalls, int neg_errno)
{
    if (f == NULL || !op_ok(op) || neg_errno >= 0)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->fail[op] = make_window(first, ncalls);
    f->fail_errno[op] = neg_errno;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_fail_nth(vd_fault *f, vd_fault_op op, uint64_t n,
                         int neg_errno)
{
    if (n == 0)
        return VD_ERR_INVAL;
    return vd_fault_fail(f, op, n, 1, neg_errno);
}

vd_err vd_fault_fail_after(vd_fault *f, vd_fault_op op, uint64_t n,
                           int neg_errno)
{
    if (n == UINT64_MAX)
        return VD_ERR_INVAL;
    return vd_fault_fail(f, op, n + 1, VD_FAULT_FOREVER, neg_errno);
}

vd_err vd_fault_drop(vd_fault *f, vd_fault_op op, uint64_t first,
                     uint64_t ncalls)
{
    if (f == NULL ||
        (op != VD_FAULT_WRITE && op != VD_FAULT_FLUSH &&
         op != VD_FAULT_TRUNCATE))
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->drop[op] = make_window(first, ncalls);
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_drop_writes(vd_fault *f, uint64_t first, uint64_t ncalls)
{
    return vd_fault_drop(f, VD_FAULT_WRITE, first, ncalls);
}

vd_err vd_fault_short_read(vd_fault *f, uint64_t first, uint64_t ncalls,
                           size_t shortfall)
{
    if (f == NULL || shortfall == 0)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->short_read = make_window(first, ncalls);
    f->short_read_by = shortfall;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_long_read(vd_fault *f, uint64_t first, uint64_t ncalls)
{
    if (f == NULL)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->long_read = make_window(first, ncalls);
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_short_write(vd_fault *f, uint64_t first, uint64_t ncalls,
                            size_t shortfall)
{
    if (f == NULL || shortfall == 0)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->short_write = make_window(first, ncalls);
    f->short_write_by = shortfall;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_size_lie(vd_fault *f, uint64_t first, uint64_t ncalls,
                         int64_t delta)
{
    if (f == NULL)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->size_lie = make_window(first, ncalls);
    f->size_delta = delta;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_time_backwards(vd_fault *f, uint64_t first, uint64_t ncalls,
                               int64_t step_ns)
{
    if (f == NULL || step_ns <= 0)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->time_back = make_window(first, ncalls);
    f->time_step = step_ns;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_time_constant(vd_fault *f, uint64_t first, uint64_t ncalls,
                              int64_t ns)
{
    if (f == NULL)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    f->time_const = make_window(first, ncalls);
    f->time_value = ns;
    f_unlock(f);
    return VD_OK;
}

vd_err vd_fault_bitflip(vd_fault *f, uint64_t offset, uint8_t xor_mask)
{
    vd_err err = VD_OK;

    if (f == NULL || xor_mask == 0)
        return VD_ERR_INVAL;
    if (f_lock(f) != 0)
        return VD_ERR_IO;
    for (size_t i = 0; i < f->nflips; i++) {
        if (f->flips[i].offset == offset) {
            f->flips[i].mask = xor_mask;
            f_unlock(f);
            return VD_OK;
        }
    }
    if (f->nflips >= VD_FAULT_MAX_FLIPS) {
        err = VD_ERR_RANGE;
    } else {
        f->flips[f->nflips].offset = offset;
        f->flips[f->nflips].mask = xor_mask;
        f->nflips++;
    }
    f_unlock(f);
    return err;
}
