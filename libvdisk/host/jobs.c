/* A small persistent thread pool behind vd_host.run_jobs (host.h): the
 * core seals and opens batches of blocks through it, so a sync or a large
 * read uses every core while the core itself creates no thread.
 *
 * One run at a time owns the workers (run_lock); a run that finds them
 * busy, or a pool whose workers could not start, runs its jobs on the
 * calling thread. The caller always takes jobs too, so a run completes even
 * when no worker ever wakes. A process forked after the workers started
 * has none, and its copy of the pool's locks may be held by a thread that
 * no longer exists: there every run stays on the calling thread. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#include "vdisk/host.h"

#define JOBS_THREADS_MAX 8u

struct vd_jobs {
    pthread_mutex_t run_lock; /* held by the run that owns the workers */
    pthread_mutex_t mu;       /* everything below */
    pthread_cond_t go, done;
    pthread_t th[JOBS_THREADS_MAX];
    unsigned want;    /* worker threads to start (threads - 1) */
    unsigned nth;     /* started */
    int tried;        /* start attempted */
    pid_t owner;      /* the process whose threads those are */
    int stop;
    uint64_t gen;     /* bumped for every run handed to the workers */
    void (*fn)(void *arg, size_t i);
    void *arg;
    size_t n, next, finished;
    /* The background thread (vd_jobs_start): one task at a time. */
    pthread_mutex_t bmu;
    pthread_cond_t bcv;
    pthread_t bth;
    int bstarted, btried, bstop;
    pid_t bowner;
    void (*bfn)(void *arg);
    void *barg;
    uint64_t posted, completed; /* tickets */
};

/* Take jobs of the current run until none is left. Called with mu held;
 * returns with it held. */
static void take_jobs(vd_jobs *j)
{
    while (j->next < j->n) {
        size_t i = j->next++;
        void (*fn)(void *, size_t) = j->fn;
        void *arg = j->arg;
        (void)pthread_mutex_unlock(&j->mu);
        fn(arg, i);
        (void)pthread_mutex_lock(&j->mu);
        if (++j->finished == j->n)
            (void)pthread_cond_broadcast(&j->done);
    }
}

static void *worker(void *p)
{
    vd_jobs *j = p;
    (void)pthread_mutex_lock(&j->mu);
    /* Workers start inside the first run, before it hands its jobs over
     * (gen 0 -> 1), and may first get here after that: start from 0. */
    uint64_t seen = 0;
    for (;;) {
        while (!j->stop && j->gen == seen)
            (void)pthread_cond_wait(&j->go, &j->mu);
        if (j->stop)
            break;
        seen = j->gen;
        take_jobs(j);
    }
    (void)pthread_mutex_unlock(&j->mu);
    return NULL;
}

vd_err vd_jobs_new(unsigned threads, vd_jobs **out)
{
    if (!out)
        return VD_ERR_INVAL;
    *out = NULL;
    if (threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus < 1 ? 1u : cpus > (long)JOBS_THREADS_MAX ? JOBS_THREADS_MAX
                                                               : (unsigned)cpus;
    }
    if (threads > JOBS_THREADS_MAX)
        threads = JOBS_THREADS_MAX;
    vd_jobs *j = calloc(1, sizeof *j);
    if (!j)
        return VD_ERR_NOMEM;
    int ok = 0;
    if (pthread_mutex_init(&j->run_lock, NULL) == 0) {
        ok = 1;
        if (pthread_mutex_init(&j->mu, NULL) == 0) {
            ok = 2;
            if (pthread_cond_init(&j->go, NULL) == 0) {
                ok = 3;
                if (pthread_cond_init(&j->done, NULL) == 0) {
                    ok = 4;
                    if (pthread_mutex_init(&j->bmu, NULL) == 0) {
                        ok = 5;
                        if (pthread_cond_init(&j->bcv, NULL) == 0)
                            ok = 6;
                    }
                }
            }
        }
    }
    if (ok < 6) {
        if (ok >= 5)
            (void)pthread_mutex_destroy(&j->bmu);
        if (ok >= 4)
            (void)pthread_cond_destroy(&j->done);
        if (ok >= 3)
            (void)pthread_cond_destroy(&j->go);
        if (ok >= 2)
            (void)pthread_mutex_destroy(&j->mu);
        if (ok >= 1)
            (void)pthread_mutex_destroy(&j->run_lock);
        free(j);
        return VD_ERR_NOMEM;
    }
    j->want = threads - 1;
    *out = j;
    return VD_OK;
}

void vd_jobs_free(vd_jobs *j)
{
    if (!j)
        return;
    if ((j->tried && j->owner != getpid()) || (j->btried && j->bowner != getpid())) {
        /* Forked: the threads and maybe the locks' holders are the
         * parent's. Leak rather than touch them. */
        return;
    }
    if (j->bstarted) {
        (void)pthread_mutex_lock(&j->bmu);
        while (j->completed < j->posted)
            (void)pthread_cond_wait(&j->bcv, &j->bmu);
        j->bstop = 1;
        (void)pthread_cond_broadcast(&j->bcv);
        (void)pthread_mutex_unlock(&j->bmu);
        (void)pthread_join(j->bth, NULL);
    }
    (void)pthread_cond_destroy(&j->bcv);
    (void)pthread_mutex_destroy(&j->bmu);
    (void)pthread_mutex_lock(&j->mu);
    j->stop = 1;
    (void)pthread_cond_broadcast(&j->go);
    (void)pthread_mutex_unlock(&j->mu);
    for (unsigned i = 0; i < j->nth; i++)
        (void)pthread_join(j->th[i], NULL);
    (void)pthread_cond_destroy(&j->done);
    (void)pthread_cond_destroy(&j->go);
    (void)pthread_mutex_destroy(&j->mu);
    (void)pthread_mutex_destroy(&j->run_lock);
    free(j);
}

/* Start the workers once (under run_lock). A thread that fails to start
 * only means fewer helpers. */
static void start_workers(vd_jobs *j)
{
    if (j->tried)
        return;
    j->tried = 1;
    j->owner = getpid();
    for (unsigned i = 0; i < j->want; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, j) != 0)
            break;
        (void)pthread_mutex_lock(&j->mu);
        j->th[j->nth++] = t;
        (void)pthread_mutex_unlock(&j->mu);
    }
}

void vd_jobs_run(void *pool, size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
    vd_jobs *j = pool;
    if (!j || n < 2 || j->want == 0 || pthread_mutex_trylock(&j->run_lock) != 0) {
        for (size_t i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    if (j->tried && j->owner != getpid()) { /* forked: no workers here */
        (void)pthread_mutex_unlock(&j->run_lock);
        for (size_t i = 0; i < n; i++)
            fn(arg, i);
        return;
    }
    start_workers(j);
    (void)pthread_mutex_lock(&j->mu);
    j->fn = fn;
    j->arg = arg;
    j->n = n;
    j->next = 0;
    j->finished = 0;
    j->gen++;
    (void)pthread_cond_broadcast(&j->go);
    take_jobs(j);
    while (j->finished < j->n)
        (void)pthread_cond_wait(&j->done, &j->mu);
    j->fn = NULL;
    j->arg = NULL;
    j->n = j->next = j->finished = 0;
    (void)pthread_mutex_unlock(&j->mu);
    (void)pthread_mutex_unlock(&j->run_lock);
}

/* ---- one task in the background ------------------------------------------ */

static void *bg_main(void *p)
{
    vd_jobs *j = p;
    (void)pthread_mutex_lock(&j->bmu);
    for (;;) {
        while (!j->bstop && j->completed == j->posted)
            (void)pthread_cond_wait(&j->bcv, &j->bmu);
        if (j->completed == j->posted) /* stopping, nothing left */
            break;
        void (*fn)(void *) = j->bfn;
        void *arg = j->barg;
        (void)pthread_mutex_unlock(&j->bmu);
        fn(arg);
        (void)pthread_mutex_lock(&j->bmu);
        j->completed = j->posted;
        j->bfn = NULL;
        j->barg = NULL;
        (void)pthread_cond_broadcast(&j->bcv);
    }
    (void)pthread_mutex_unlock(&j->bmu);
    return NULL;
}

uint64_t vd_jobs_start(void *pool, void (*fn)(void *arg), void *arg)
{
    vd_jobs *j = pool;
    if (!j || !fn)
        return 0;
    (void)pthread_mutex_lock(&j->bmu);
    if (j->btried && j->bowner != getpid()) {
        (void)pthread_mutex_unlock(&j->bmu);
        return 0; /* forked: the thread is the parent's */
    }
    if (!j->btried) {
        j->btried = 1;
        j->bowner = getpid();
        j->bstarted = pthread_create(&j->bth, NULL, bg_main, j) == 0;
    }
    if (!j->bstarted) {
        (void)pthread_mutex_unlock(&j->bmu);
        return 0;
    }
    while (j->completed < j->posted) /* one at a time */
        (void)pthread_cond_wait(&j->bcv, &j->bmu);
    j->bfn = fn;
    j->barg = arg;
    uint64_t ticket = ++j->posted;
    (void)pthread_cond_broadcast(&j->bcv);
    (void)pthread_mutex_unlock(&j->bmu);
    return ticket;
}

void vd_jobs_wait(void *pool, uint64_t ticket)
{
    vd_jobs *j = pool;
    if (!j || ticket == 0)
        return;
    (void)pthread_mutex_lock(&j->bmu);
    while (j->completed < ticket)
        (void)pthread_cond_wait(&j->bcv, &j->bmu);
    (void)pthread_mutex_unlock(&j->bmu);
}
