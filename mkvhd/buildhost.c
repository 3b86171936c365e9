/* The host a local build writes through: the file host, with its flushes
 * deferred to one at the end and its writes done by a second thread.
 *
 * While mkvhd fills a new image, the image lives under a temporary name
 * and nothing in it has been promised to anyone: a crash or a failure
 * leaves IMAGE.tmp.XXXXXX, never IMAGE (build.c renames only a complete,
 * closed, flushed image). The ordering the library's flushes give a
 * commit (journal, record, blocks, record) only matters for an image that
 * may be opened after a crash, which this one never is. So a flush here
 * does nothing (but report a failed write), and mkvhd_buildhost_finish is
 * the one fdatasync, before the rename. Building /usr/include waited for
 * about 100 fdatasyncs before (docs/PERFORMANCE.md, "Building images").
 * Starting writeback at each flush instead (sync_file_range) was tried:
 * it cost more CPU (the image's tree nodes and FAT blocks are rewritten
 * by later commits, so written back more than once) and was slower on a
 * busy machine.
 *
 * Writes are copied into a ring of RING_BYTES and queued for a writer
 * thread, so copying them into the page cache runs on the second core
 * while the build thread reads the source, updates the FAT and seals the next blocks. A read, a size or a
 * truncate first waits until every queued write is done, so the library
 * always reads back what it wrote. A failed write is reported by the next
 * call and by mkvhd_buildhost_finish: either way the build fails and the
 * temporary is removed. Without the thread (it could not be started, or
 * no memory for the ring), writes go straight through, and so does one
 * larger than the ring, once the queue is empty. The ring is allocated
 * once: a buffer per write, from malloc, cost a page fault per 4 KiB
 * (large allocations are fresh mappings).
 *
 * The writer joins queued writes that continue each other in the file
 * (up to BATCH_JOBS, BATCH_BYTES) into one pwritev and, where offset,
 * length and memory are 4 KiB-aligned (every block write the library
 * makes), writes past the page cache through a second, O_DIRECT
 * descriptor. A build writes each byte of the image once or a few times
 * and reads back little, and on this VM a buffered write into page-cache
 * memory never touched before ran at a fifth of the disk's speed (the
 * kernel's copy took 45% of a 1 GiB build's CPU; docs/PERFORMANCE.md,
 * "Building images"). The kernel keeps both descriptors coherent: a
 * direct write first writes back and drops cached pages of its range, and
 * a read after it goes to the disk. The writes stay in queue order. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mkvhd.h"

#define RING_BYTES ((size_t)32 << 20)
#define RING_ALIGN ((size_t)2 << 20) /* huge pages, where the host offers them */
#define DIO_ALIGN ((size_t)4096)     /* of a direct write's offset, length, memory */
#define BATCH_JOBS 64                /* jobs joined into one write, at most */
#define BATCH_BYTES ((size_t)8 << 20)

typedef struct wjob {
    struct wjob *next;
    uint64_t off;
    size_t len;
    size_t taken; /* ring bytes it holds: len, and the end it skipped */
    uint8_t *buf; /* in the ring */
} wjob;

struct mkvhd_buildhost {
    vd_host host;  /* what the library is given */
    vd_host *inner;
    int fd;        /* the same file, for the final flush */
    int dfd;       /* the same file, O_DIRECT (writer thread only); -1: none */
    pthread_mutex_t lock;
    pthread_cond_t work, done; /* a job queued / a job finished */
    wjob *head, *tail;
    uint8_t *ring;
    size_t wpos;    /* where the next write's copy goes */
    size_t queued;  /* ring bytes held by queued jobs and the one being written */
    int busy;       /* the writer holds a job */
    int stop;
    int err;        /* the first failure (negative errno), sticky */
    int threaded;
    pthread_t thread;
};

static int write_through(const mkvhd_buildhost *b, uint64_t off, const void *buf,
                         size_t len)
{
    size_t done = 0;
    int rc = b->inner->write_at(b->inner->ctx, off, buf, len, &done);
    return rc == 0 && done != len ? -EIO : rc;
}

/* All of iov[0..n) at off through fd, short writes continued. */
static int pwritev_all(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        off += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static int dio_aligned(uint64_t off, const struct iovec *iov, int n)
{
    if (off % DIO_ALIGN != 0)
        return 0;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)iov[i].iov_base % DIO_ALIGN != 0 || iov[i].iov_len % DIO_ALIGN != 0)
            return 0;
    return 1;
}

/* One batch of file-contiguous jobs: past the page cache where it is
 * aligned and the file system allows it, else through it. A direct write
 * the file system refuses (EINVAL: a larger alignment, no O_DIRECT) turns
 * the direct path off for the rest of the build. Only the writer thread
 * uses dfd. */
static int write_batch(mkvhd_buildhost *b, uint64_t off, struct iovec *iov, int n)
{
    if (b->dfd >= 0 && dio_aligned(off, iov, n)) {
        struct iovec copy[BATCH_JOBS];
        memcpy(copy, iov, (size_t)n * sizeof *iov);
        int rc = pwritev_all(b->dfd, copy, n, off);
        if (rc != -EINVAL)
            return rc;
        (void)close(b->dfd);
        b->dfd = -1; /* partly written or not: the buffered write redoes it */
    }
    if (n == 1)
        return write_through(b, off, iov[0].iov_base, iov[0].iov_len);
    return pwritev_all(b->fd, iov, n, off);
}

static void *writer(void *arg)
{
    mkvhd_buildhost *b = arg;
    (void)pthread_mutex_lock(&b->lock);
    for (;;) {
        while (!b->head && !b->stop)
            (void)pthread_cond_wait(&b->work, &b->lock);
        wjob *j = b->head;
        if (!j)
            break; /* stopping, nothing left */
        /* Take the jobs that continue it in the file: one larger write
         * (a direct write of 400 KiB ran at half the speed of 4 MiB). */
        struct iovec iov[BATCH_JOBS];
        int n = 0;
        size_t bytes = 0;
        wjob *last = j;
        for (wjob *k = j; k && n < BATCH_JOBS && bytes < BATCH_BYTES &&
                          (n == 0 || k->off == j->off + bytes);
             k = k->next) {
            iov[n++] = (struct iovec){.iov_base = k->buf, .iov_len = k->len};
            bytes += k->len;
            last = k;
        }
        b->head = last->next;
        if (!b->head)
            b->tail = NULL;
        last->next = NULL;
        b->busy = 1;
        int skip = b->err != 0; /* the build fails anyway */
        (void)pthread_mutex_unlock(&b->lock);
        int rc = skip ? 0 : write_batch(b, j->off, iov, n);
        (void)pthread_mutex_lock(&b->lock);
        if (rc != 0 && b->err == 0)
            b->err = rc;
        while (j) {
            wjob *next = j->next;
            b->queued -= j->taken;
            free(j);
            j = next;
        }
        b->busy = 0;
        (void)pthread_cond_broadcast(&b->done);
    }
    (void)pthread_mutex_unlock(&b->lock);
    return NULL;
}

/* Queue a write of len (0 < len <= RING_BYTES) bytes from buf, copied into
 * the ring, waiting while the ring is full. The ring is used in order, so
 * its free bytes are the RING_BYTES - queued that follow wpos: a copy that
 * would not fit before the end skips that end and starts at 0. An empty
 * ring starts at 0 again, so any len fits once the writer is done. */
static int enqueue(mkvhd_buildhost *b, uint64_t off, const void *buf, size_t len)
{
    wjob *j = malloc(sizeof *j);
    if (!j)
        return -ENOMEM;
    (void)pthread_mutex_lock(&b->lock);
    size_t at, taken;
    for (;;) {
        if (b->queued == 0)
            b->wpos = 0; /* all of it is free: start at the beginning */
        /* Copies start DIO_ALIGN-aligned, as a direct write needs. */
        size_t start = (b->wpos + DIO_ALIGN - 1) / DIO_ALIGN * DIO_ALIGN;
        int wrap = start + len > RING_BYTES;
        at = wrap ? 0 : start;
        taken = (wrap ? RING_BYTES : start) - b->wpos + len;
        if (b->err != 0 || b->queued + taken <= RING_BYTES)
            break;
        (void)pthread_cond_wait(&b->done, &b->lock);
    }
    int rc = b->err;
    if (rc == 0) {
        *j = (wjob){.next = NULL, .off = off, .len = len, .taken = taken,
                    .buf = b->ring + at};
        b->wpos = at + len;
        b->queued += taken;
    }
    (void)pthread_mutex_unlock(&b->lock);
    if (rc != 0) {
        free(j);
        return rc;
    }
    /* The bytes are ours until the job is queued: copy outside the lock,
     * while the writer works on earlier jobs. */
    memcpy(j->buf, buf, len);
    (void)pthread_mutex_lock(&b->lock);
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
    (void)pthread_cond_signal(&b->work);
    (void)pthread_mutex_unlock(&b->lock);
    return 0;
}

/* Every queued write done; the first failure, if any. */
static int drain(mkvhd_buildhost *b)
{
    if (!b->threaded)
        return b->err;
    (void)pthread_mutex_lock(&b->lock);
    while (b->head || b->busy)
        (void)pthread_cond_wait(&b->done, &b->lock);
    int rc = b->err;
    (void)pthread_mutex_unlock(&b->lock);
    return rc;
}

/* A failed write so far, or nothing: durability waits for the end. */
static int deferred_flush(void *ctx)
{
    mkvhd_buildhost *b = ctx;
    if (!b->threaded)
        return 0;
    (void)pthread_mutex_lock(&b->lock);
    int rc = b->err;
    (void)pthread_mutex_unlock(&b->lock);
    return rc;
}

static int q_write(void *ctx, uint64_t off, const void *buf, size_t len, size_t *done)
{
    mkvhd_buildhost *b = ctx;
    *done = 0;
    if (b->threaded && len > 0 && len <= RING_BYTES) {
        int rc = enqueue(b, off, buf, len);
        if (rc == 0)
            *done = len;
        return rc;
    }
    int rc = drain(b);
    return rc ? rc : b->inner->write_at(b->inner->ctx, off, buf, len, done);
}

static int q_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    mkvhd_buildhost *b = ctx;
    *done = 0;
    int rc = drain(b);
    return rc ? rc : b->inner->read_at(b->inner->ctx, off, buf, len, done);
}

static int q_size(void *ctx, uint64_t *size)
{
    mkvhd_buildhost *b = ctx;
    int rc = drain(b);
    return rc ? rc : b->inner->size(b->inner->ctx, size);
}

static int q_truncate(void *ctx, uint64_t size)
{
    mkvhd_buildhost *b = ctx;
    int rc = drain(b);
    return rc ? rc : b->inner->truncate(b->inner->ctx, size);
}

static int fwd_now(void *ctx, int64_t *ns)
{
    const mkvhd_buildhost *b = ctx;
    return b->inner->now(b->inner->ctx, ns);
}

static void fwd_mem_advise(void *ctx, void *addr, size_t len)
{
    const mkvhd_buildhost *b = ctx;
    b->inner->mem_advise(b->inner->ctx, addr, len);
}

/* The file host's pool: without it a commit seals its batch of blocks on
 * the build thread alone. */
static void fwd_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                         void *arg)
{
    const mkvhd_buildhost *b = ctx;
    b->inner->run_jobs(b->inner->ctx, n, fn, arg);
}

int mkvhd_buildhost_open(const char *path, mkvhd_buildhost **out, int *sys_errno)
{
    *out = NULL;
    mkvhd_buildhost *b = calloc(1, sizeof *b);
    if (!b) {
        *sys_errno = ENOMEM;
        return -1;
    }
    b->fd = open(path, O_RDWR | O_CLOEXEC);
    vd_err e = VD_ERR_IO;
    if (b->fd < 0)
        *sys_errno = errno;
    else
        e = vd_host_file_open(path, 0, &b->inner, sys_errno);
    if (e != VD_OK) {
        if (b->fd >= 0)
            (void)close(b->fd);
        free(b);
        return -1;
    }
    /* Optional: without it (a file system with no O_DIRECT) every write
     * goes through the page cache. */
    b->dfd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
    const vd_host *in = b->inner;
    b->host = (vd_host){
        .ctx = b,
        .read_at = q_read,
        .write_at = q_write,
        .flush = deferred_flush,
        .size = q_size,
        .truncate = in->truncate ? q_truncate : NULL,
        .now = in->now ? fwd_now : NULL,
        .mem_advise = in->mem_advise ? fwd_mem_advise : NULL,
        .run_jobs = in->run_jobs ? fwd_run_jobs : NULL,
    };
    b->ring = aligned_alloc(RING_ALIGN, RING_BYTES);
    if (b->ring && b->host.mem_advise)
        b->host.mem_advise(b, b->ring, RING_BYTES);
    if (b->ring && pthread_mutex_init(&b->lock, NULL) == 0) {
        if (pthread_cond_init(&b->work, NULL) == 0) {
            if (pthread_cond_init(&b->done, NULL) == 0) {
                b->threaded = pthread_create(&b->thread, NULL, writer, b) == 0;
                if (!b->threaded)
                    (void)pthread_cond_destroy(&b->done);
            }
            if (!b->threaded)
                (void)pthread_cond_destroy(&b->work);
        }
        if (!b->threaded)
            (void)pthread_mutex_destroy(&b->lock);
    }
    *out = b;
    return 0;
}

vd_host *mkvhd_buildhost_host(mkvhd_buildhost *b)
{
    return &b->host;
}

int mkvhd_buildhost_finish(mkvhd_buildhost *b)
{
    int rc = drain(b);
    if (rc != 0) {
        errno = -rc;
        return -1;
    }
    while (fdatasync(b->fd) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

void mkvhd_buildhost_close(mkvhd_buildhost *b)
{
    if (!b)
        return;
    if (b->threaded) {
        (void)pthread_mutex_lock(&b->lock);
        b->stop = 1;
        b->err = b->err ? b->err : -ECANCELED; /* what is left is not written */
        (void)pthread_cond_signal(&b->work);
        (void)pthread_mutex_unlock(&b->lock);
        (void)pthread_join(b->thread, NULL);
        (void)pthread_cond_destroy(&b->done);
        (void)pthread_cond_destroy(&b->work);
        (void)pthread_mutex_destroy(&b->lock);
    }
    vd_host_close(b->inner);
    (void)close(b->fd);
    if (b->dfd >= 0)
        (void)close(b->dfd);
    free(b->ring);
    free(b);
}
