/* Memory backend of vd_host: a growable byte array (tests, benchmarks).
 *
 * Reads beyond the end return a short count; writes beyond the end grow
 * the array, zero-filling any gap; truncate resizes, zero-filling on
 * growth; flush does nothing. now() is a fake clock kept in the context:
 * 1700000000 s at the first call, one millisecond more at each call.
 *
 * Callbacks are serialised by a mutex in the context. The pointer from
 * vd_host_mem_data is not: it is for single-threaded tests, and it is
 * invalidated by any call that changes the size. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "advise.h"
#include "vdisk/host.h"

#define MEM_CLOCK_START_NS ((int64_t)1700000000 * 1000000000)
#define MEM_CLOCK_STEP_NS ((int64_t)1000000)

typedef struct mem_host {
    vd_host host;
    pthread_mutex_t lock;
    uint8_t *data;
    uint64_t size; /* bytes in use */
    uint64_t cap;  /* bytes allocated; [size, cap) is not kept zeroed */
    int64_t clock_ns;
    vd_jobs *jobs; /* run_jobs; NULL if it could not be made */
} mem_host;

/* Make room for at least need bytes. Returns 0 or -ENOMEM / -EFBIG. */
static int mem_reserve(mem_host *m, uint64_t need)
{
    uint64_t ncap;
    uint8_t *p;

    if (need <= m->cap)
        return 0;
    if (need > (uint64_t)SIZE_MAX || need > (uint64_t)INT64_MAX)
        return -EFBIG;
    ncap = m->cap < 4096 ? 4096 : m->cap;
    while (ncap < need) {
        if (ncap > UINT64_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    if (ncap > (uint64_t)SIZE_MAX)
        ncap = need;
    p = realloc(m->data, (size_t)ncap);
    if (p == NULL && ncap > need) {
        ncap = need; /* the doubling was greedy; try the exact size */
        p = realloc(m->data, (size_t)ncap);
    }
    if (p == NULL)
        return -ENOMEM;
    m->data = p;
    m->cap = ncap;
    return 0;
}

/* Set the size, zero-filling any growth. Caller holds the lock. */
static int mem_resize(mem_host *m, uint64_t nsize)
{
    int r;

    if (nsize > m->size) {
        r = mem_reserve(m, nsize);
        if (r != 0)
            return r;
        memset(m->data + m->size, 0, (size_t)(nsize - m->size));
    } else if (nsize < m->cap / 4 && m->cap > 65536) {
        /* Give most of a large array back after a big shrink. */
        uint64_t ncap = nsize < 4096 ? 4096 : nsize;
        uint8_t *p = realloc(m->data, (size_t)ncap);
        if (p != NULL) { /* keeping the larger block is fine too */
            m->data = p;
            m->cap = ncap;
        }
    }
    m->size = nsize;
    return 0;
}

static int mem_lock(mem_host *m)
{
    int r = pthread_mutex_lock(&m->lock);
    return r == 0 ? 0 : -r;
}

static void mem_unlock(mem_host *m)
{
    (void)pthread_mutex_unlock(&m->lock);
}

static int mem_read_at(void *ctx, uint64_t off, void *buf, size_t len,
                       size_t *done)
{
    mem_host *m = ctx;
    size_t n = 0;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (m == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    r = mem_lock(m);
    if (r != 0)
        return r;
    if (off < m->size) {
        uint64_t avail = m->size - off;
        n = (uint64_t)len < avail ? len : (size_t)avail;
        memcpy(buf, m->data + off, n);
    }
    mem_unlock(m);
    *done = n;
    return 0;
}

static int mem_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                        size_t *done)
{
    mem_host *m = ctx;
    int r;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (m == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (len == 0)
        return 0;
    if (off > (uint64_t)INT64_MAX || (uint64_t)len > (uint64_t)INT64_MAX - off)
        return -EFBIG;
    r = mem_lock(m);
    if (r != 0)
        return r;
    if (off + len > m->size) {
        r = mem_resize(m, off + len);
        if (r != 0) {
            mem_unlock(m);
            return r;
        }
    }
    memcpy(m->data + off, buf, len);
    mem_unlock(m);
    *done = len;
    return 0;
}

static int mem_flush(void *ctx)
{
    return ctx == NULL ? -EINVAL : 0;
}

static int mem_size(void *ctx, uint64_t *size)
{
    mem_host *m = ctx;
    int r;

    if (m == NULL || size == NULL)
        return -EINVAL;
    r = mem_lock(m);
    if (r != 0)
        return r;
    *size = m->size;
    mem_unlock(m);
    return 0;
}

static int mem_truncate(void *ctx, uint64_t size)
{
    mem_host *m = ctx;
    int r;

    if (m == NULL)
        return -EINVAL;
    if (size > (uint64_t)INT64_MAX)
        return -EFBIG;
    r = mem_lock(m);
    if (r != 0)
        return r;
    r = mem_resize(m, size);
    mem_unlock(m);
    return r;
}

static int mem_now(void *ctx, int64_t *ns)
{
    mem_host *m = ctx;
    int r;

    if (m == NULL || ns == NULL)
        return -EINVAL;
    r = mem_lock(m);
    if (r != 0)
        return r;
    *ns = m->clock_ns;
    if (m->clock_ns <= INT64_MAX - MEM_CLOCK_STEP_NS)
        m->clock_ns += MEM_CLOCK_STEP_NS;
    mem_unlock(m);
    return 0;
}

static void mem_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                         void *arg)
{
    vd_jobs_run(((mem_host *)ctx)->jobs, n, fn, arg);
}

static uint64_t mem_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    return vd_jobs_start(((mem_host *)ctx)->jobs, fn, arg);
}

static void mem_job_wait(void *ctx, uint64_t ticket)
{
    vd_jobs_wait(((mem_host *)ctx)->jobs, ticket);
}

/* The mem_host behind a host made here, or NULL. */
static mem_host *mem_of(vd_host *host)
{
    if (host == NULL || host->read_at != mem_read_at || host->ctx == NULL)
        return NULL;
    return host->ctx;
}

vd_err vd_host_mem_new(vd_host **out)
{
    mem_host *m;

    if (out == NULL)
        return VD_ERR_INVAL;
    *out = NULL;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return VD_ERR_NOMEM;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return VD_ERR_NOMEM;
    }
    m->data = NULL;
    m->size = 0;
    m->cap = 0;
    m->clock_ns = MEM_CLOCK_START_NS;
    m->host.ctx = m;
    m->host.read_at = mem_read_at;
    m->host.write_at = mem_write_at;
    m->host.flush = mem_flush;
    m->host.size = mem_size;
    m->host.truncate = mem_truncate;
    m->host.now = mem_now;
    m->host.mem_advise = vdh_mem_advise;
    if (vd_jobs_new(0, &m->jobs) == VD_OK) {
        m->host.run_jobs = mem_run_jobs;
        m->host.job_start = mem_job_start;
        m->host.job_wait = mem_job_wait;
    }
    *out = &m->host;
    return VD_OK;
}

void vd_host_mem_free(vd_host *host)
{
    mem_host *m = mem_of(host);

    if (m == NULL)
        return;
    (void)pthread_mutex_destroy(&m->lock);
    vd_jobs_free(m->jobs);
    free(m->data);
    free(m);
}

uint8_t *vd_host_mem_data(vd_host *host, uint64_t *size)
{
    mem_host *m = mem_of(host);

    if (m == NULL) {
        if (size != NULL)
            *size = 0;
        return NULL;
    }
    if (size != NULL)
        *size = m->size;
    return m->data;
}

vd_err vd_host_mem_set(vd_host *host, const uint8_t *data, uint64_t size)
{
    mem_host *m = mem_of(host);
    int r;

    if (m == NULL || (data == NULL && size != 0))
        return VD_ERR_INVAL;
    if (size > (uint64_t)INT64_MAX || size > (uint64_t)SIZE_MAX)
        return VD_ERR_RANGE;
    /* A fresh exact-size block: data may point into the old one, and a
     * failure leaves the old contents in place. */
    size_t alloc = size != 0 ? (size_t)size : 1;
    uint8_t *p = malloc(alloc);
    if (p == NULL)
        return VD_ERR_NOMEM;
    if (size != 0)
        memcpy(p, data, (size_t)size);
    r = mem_lock(m);
    if (r != 0) {
        free(p);
        return VD_ERR_IO;
    }
    free(m->data);
    m->data = p;
    m->cap = alloc;
    m->size = size;
    mem_unlock(m);
    return VD_OK;
}
