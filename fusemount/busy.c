/* Waiting for releases that close(2) did not wait for (vhdmount.h). */
#include <errno.h>
#include <time.h>

#include "vhdmount.h"

int vmnt_release_init(vmnt_ctx *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0)
        return -1;
    int rc = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) == 0 &&
                     pthread_cond_init(&c->released, &a) == 0
                 ? 0
                 : -1;
    (void)pthread_condattr_destroy(&a);
    return rc;
}

void vmnt_release_destroy(vmnt_ctx *c)
{
    (void)pthread_cond_destroy(&c->released);
}

void vmnt_release_note(vmnt_ctx *c)
{
    c->nreleases++;
    (void)pthread_cond_broadcast(&c->released);
}

/* 1 if a release came after *seen and before the deadline. */
static int release_wait(vmnt_ctx *c, unsigned long *seen, const struct timespec *deadline)
{
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return 0;
    int rc = 0;
    while (c->nreleases == *seen && rc == 0)
        rc = pthread_cond_timedwait(&c->released, &c->files_lock, deadline);
    int got = c->nreleases != *seen;
    *seen = c->nreleases;
    (void)pthread_mutex_unlock(&c->files_lock);
    return got;
}

vd_err vmnt_retry_busy(vmnt_ctx *c, vmnt_busy_fn fn, const void *arg)
{
    struct timespec deadline;
    if (clock_gettime(CLOCK_MONOTONIC, &deadline) != 0)
        return fn(c, arg);
    deadline.tv_sec += VMNT_BUSY_WAIT_MS / 1000;
    deadline.tv_nsec += (long)(VMNT_BUSY_WAIT_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    unsigned long seen = 0;
    if (pthread_mutex_lock(&c->files_lock) == 0) {
        seen = c->nreleases; /* before the first try: no release is missed */
        (void)pthread_mutex_unlock(&c->files_lock);
    }
    vd_err e;
    while ((e = fn(c, arg)) == VD_ERR_BUSY && release_wait(c, &seen, &deadline)) {
    }
    return e;
}
