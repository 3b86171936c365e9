#include "passthru.h"

#include <errno.h>
#include <string.h>

static int pt_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->read_at(in->ctx, off, buf, len, done);
}
static int pt_write(void *ctx, uint64_t off, const void *buf, size_t len, size_t *done)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->write_at(in->ctx, off, buf, len, done);
}
static int pt_flush(void *ctx)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->flush(in->ctx);
}
static int pt_size(void *ctx, uint64_t *size)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->size(in->ctx, size);
}
static int pt_truncate(void *ctx, uint64_t size)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->truncate(in->ctx, size);
}
static int pt_now(void *ctx, int64_t *ns)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->now ? in->now(in->ctx, ns) : -ENOSYS;
}
static void pt_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    in->run_jobs(in->ctx, n, fn, arg);
}
static uint64_t pt_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    return in->job_start(in->ctx, fn, arg);
}
static void pt_job_wait(void *ctx, uint64_t ticket)
{
    vd_host *in = ((vt_passthru *)ctx)->inner;
    in->job_wait(in->ctx, ticket);
}

void vt_passthru_init(vt_passthru *p, vd_host *inner, int jobs)
{
    memset(p, 0, sizeof *p);
    p->inner = inner;
    p->host.ctx = p;
    p->host.read_at = pt_read;
    p->host.write_at = pt_write;
    p->host.flush = pt_flush;
    p->host.size = pt_size;
    p->host.truncate = pt_truncate;
    p->host.now = pt_now;
    if (jobs && inner->run_jobs)
        p->host.run_jobs = pt_run_jobs;
    if (jobs && inner->job_start && inner->job_wait) {
        p->host.job_start = pt_job_start;
        p->host.job_wait = pt_job_wait;
    }
}
