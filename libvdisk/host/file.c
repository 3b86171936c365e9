/* File backend of vd_host: pread/pwrite/fdatasync on one open descriptor,
 * guarded by an flock so that two writers never open one image at once
 * (exclusive lock for read-write opens, shared for read-only ones).
 *
 * Every callback returns 0 or a negative errno; transfers loop over EINTR
 * and partial counts, so a short count means end of file (reads) or an
 * error (writes), never a mere interruption. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "vdisk/host.h"

/* The host and its private context share one allocation; host.ctx points
 * back at the whole. */
typedef struct file_host {
    vd_host host;
    int fd;
    int read_only;
    size_t write_chunk; /* largest pwrite: FILE_WRITE_CHUNK, or FILE_CHUNK_MAX on tmpfs */
    vd_jobs *jobs; /* run_jobs; NULL if it could not be made */
} file_host;

/* Largest offset pread/pwrite accept (off_t is 64-bit with _GNU_SOURCE on
 * every platform we build for). */
#define FILE_OFF_MAX ((uint64_t)INT64_MAX)

/* Largest single pread/pwrite request: Linux caps transfers at
 * 0x7ffff000 anyway; asking for less keeps ssize_t arithmetic trivial. */
#define FILE_CHUNK_MAX ((size_t)1 << 30)

/* Largest single pwrite, except on tmpfs. The page cache makes a folio
 * as large as the write that creates it (up to 2 MiB), and ext4 (Linux
 * 6.18 here) walks every 4 KiB block of a folio on each later write into
 * it and again when it is flushed: a commit's 4 KiB node and metadata
 * writes into a region a sequential round wrote in one 7 MiB pwrite cost
 * up to 512 steps each. In 256 KiB pieces no folio our writes create
 * exceeds 64 blocks. tmpfs keeps 4 KiB pages (unless mounted huge=) and
 * walks nothing: there the pieces only add system calls (a 1 GB key
 * rotation on /dev/shm, 0.03 s slower in 4 of 5 pairs). fio
 * randrw 70/30 4k fsync=32 through vhdmount, fresh image: 11.3-11.6k read
 * IOPS against 7.1-7.7k unchunked, fio 1M sequential write 526-559 MB/s
 * against 331-379; vhdbench file backend `full` rand-write+fsync/8 11.6-13k
 * against 8-9.2k ops/s, sequential write within noise. Where the folios
 * are 2 MiB already (an image read with a large readahead, by cat, say),
 * the pieces walk them more often: randrw 7.6-7.8k against 6.9-9.6k
 * (docs/PERFORMANCE.md, "Writes in 256 KiB pieces"). */
#define FILE_WRITE_CHUNK ((size_t)256 << 10)

/* A streaming write (a round of new data, FILE_WB_MIN or more) starts
 * each piece's writeback as soon as it is written, so the disk works
 * while the rest is copied in, as the kernel's background writeback does
 * for a plain file: the library's sequential write on the file backend
 * went from 62-63 % of plain to 69-70 % with the early fresh writes
 * (sync.c, fresh_early) and to 71-75 % with this as well
 * (docs/PERFORMANCE.md, 2026-12-07 10:36 UTC). Advice only: the
 * flush stays the point of durability. Not for small writes: after every
 * 4 KiB write it cost random writes 10-20 % (same file, 07:33 UTC). */
#define FILE_WB_MIN ((size_t)1 << 20)

static void writeback_start(int fd, uint64_t off, size_t len)
{
    if (sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) != 0) {
        /* A file that cannot take the advice (ESPIPE, EINVAL on some
         * file systems) loses nothing: the flush writes it back. */
    }
}

static int neg_errno(void)
{
    /* errno is always positive after a failed call; be defensive anyway. */
    return errno > 0 ? -errno : -EIO;
}

/* Reject ranges that do not fit in off_t. */
static int range_ok(uint64_t off, size_t len)
{
    if (off > FILE_OFF_MAX)
        return 0;
    return (uint64_t)len <= FILE_OFF_MAX - off;
}

static int file_read_at(void *ctx, uint64_t off, void *buf, size_t len,
                        size_t *done)
{
    file_host *fh = ctx;
    uint8_t *p = buf;
    size_t got = 0;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (fh == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (!range_ok(off, len))
        return -EINVAL;
    while (got < len) {
        size_t want = len - got;
        if (want > FILE_CHUNK_MAX)
            want = FILE_CHUNK_MAX;
        ssize_t r = pread(fh->fd, p + got, want, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *done = got;
            return neg_errno();
        }
        if (r == 0)
            break; /* end of file: short count, success */
        got += (size_t)r;
    }
    *done = got;
    return 0;
}

static int file_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                         size_t *done)
{
    file_host *fh = ctx;
    const uint8_t *p = buf;
    size_t put = 0;

    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (fh == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (fh->read_only)
        return -EBADF;
    if (!range_ok(off, len))
        return -EFBIG;
    while (put < len) {
        size_t want = len - put;
        if (want > fh->write_chunk)
            want = fh->write_chunk;
        ssize_t r = pwrite(fh->fd, p + put, want, (off_t)(off + put));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            *done = put;
            return neg_errno();
        }
        if (r == 0) {
            /* No progress and no error: never spin. */
            *done = put;
            return -EIO;
        }
        if (len >= FILE_WB_MIN)
            writeback_start(fh->fd, off + put, (size_t)r);
        put += (size_t)r;
    }
    *done = put;
    return 0;
}

static int file_flush(void *ctx)
{
    file_host *fh = ctx;

    if (fh == NULL)
        return -EINVAL;
    for (;;) {
        if (fdatasync(fh->fd) == 0)
            return 0;
        if (errno != EINTR)
            return neg_errno();
    }
}

static int file_size(void *ctx, uint64_t *size)
{
    file_host *fh = ctx;
    struct stat st;

    if (fh == NULL || size == NULL)
        return -EINVAL;
    if (fstat(fh->fd, &st) != 0)
        return neg_errno();
    if (S_ISBLK(st.st_mode)) {
        /* st_size is 0 for block devices; ask the device. pread/pwrite
         * ignore the file offset, so moving it is harmless. */
        off_t end = lseek(fh->fd, 0, SEEK_END);
        if (end < 0)
            return neg_errno();
        *size = (uint64_t)end;
        return 0;
    }
    if (st.st_size < 0)
        return -EIO;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int file_truncate(void *ctx, uint64_t size)
{
    file_host *fh = ctx;

    if (fh == NULL)
        return -EINVAL;
    if (fh->read_only)
        return -EBADF;
    if (size > FILE_OFF_MAX)
        return -EFBIG;
    for (;;) {
        if (ftruncate(fh->fd, (off_t)size) == 0)
            return 0;
        if (errno != EINTR)
            return neg_errno(); /* ENOSPC comes back as -ENOSPC */
    }
}

static int file_now(void *ctx, int64_t *ns)
{
    struct timespec ts;

    (void)ctx;
    if (ns == NULL)
        return -EINVAL;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return neg_errno();
    if (ts.tv_sec < 0 || (int64_t)ts.tv_sec > INT64_MAX / 1000000000 - 1)
        return -EOVERFLOW;
    *ns = (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
    return 0;
}

static void file_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                          void *arg)
{
    vd_jobs_run(((file_host *)ctx)->jobs, n, fn, arg);
}

static uint64_t file_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    return vd_jobs_start(((file_host *)ctx)->jobs, fn, arg);
}

static void file_job_wait(void *ctx, uint64_t ticket)
{
    vd_jobs_wait(((file_host *)ctx)->jobs, ticket);
}

static void set_errno_out(int *sys_errno, int value)
{
    if (sys_errno != NULL)
        *sys_errno = value;
}

vd_err vd_host_file_open(const char *path, int flags, vd_host **out,
                         int *sys_errno)
{
    const int known = VD_HOST_READONLY | VD_HOST_CREATE | VD_HOST_NOLOCK | VD_HOST_PREFAULT;
    int oflags;
    int fd;
    int saved;
    file_host *fh;
    struct stat st;

    set_errno_out(sys_errno, 0);
    if (out != NULL)
        *out = NULL;
    if (path == NULL || out == NULL || path[0] == '\0')
        return VD_ERR_INVAL;
    if ((flags & ~known) != 0)
        return VD_ERR_INVAL;
    /* Creating an image we could then not write makes no sense. */
    if ((flags & VD_HOST_READONLY) && (flags & VD_HOST_CREATE))
        return VD_ERR_INVAL;

    /* Allocate first: a failure after O_CREAT would leave a stray file. */
    fh = calloc(1, sizeof(*fh));
    if (fh == NULL) {
        set_errno_out(sys_errno, ENOMEM);
        return VD_ERR_NOMEM;
    }

    oflags = O_CLOEXEC;
    oflags |= (flags & VD_HOST_READONLY) ? O_RDONLY : O_RDWR;
    if (flags & VD_HOST_CREATE)
        oflags |= O_CREAT | O_EXCL;
    do {
        fd = open(path, oflags, (mode_t)0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        saved = errno;
        free(fh);
        set_errno_out(sys_errno, saved);
        if (saved == EEXIST && (flags & VD_HOST_CREATE))
            return VD_ERR_INVAL;
        return VD_ERR_IO;
    }

    /* A directory opens fine read-only; refuse it here rather than at the
     * first read. */
    if (fstat(fd, &st) != 0) {
        saved = errno;
        (void)close(fd);
        free(fh);
        set_errno_out(sys_errno, saved);
        return VD_ERR_IO;
    }
    if (S_ISDIR(st.st_mode)) {
        (void)close(fd);
        free(fh);
        set_errno_out(sys_errno, EISDIR);
        return VD_ERR_IO;
    }

    if (!(flags & VD_HOST_NOLOCK)) {
        int op = ((flags & VD_HOST_READONLY) ? LOCK_SH : LOCK_EX) | LOCK_NB;
        int r;
        do {
            r = flock(fd, op);
        } while (r != 0 && errno == EINTR);
        if (r != 0) {
            saved = errno;
            (void)close(fd);
            free(fh);
            set_errno_out(sys_errno, saved);
            if (saved == EWOULDBLOCK || saved == EAGAIN)
                return VD_ERR_BUSY;
            return VD_ERR_IO;
        }
    }

    fh->fd = fd;
    fh->read_only = (flags & VD_HOST_READONLY) ? 1 : 0;
    struct statfs sfs;
    fh->write_chunk = fstatfs(fd, &sfs) == 0 && sfs.f_type == TMPFS_MAGIC ? FILE_CHUNK_MAX
                                                                          : FILE_WRITE_CHUNK;
    fh->host.ctx = fh;
    fh->host.read_at = file_read_at;
    fh->host.write_at = file_write_at;
    fh->host.flush = file_flush;
    fh->host.size = file_size;
    fh->host.truncate = file_truncate;
    fh->host.now = file_now;
    fh->host.mem_advise = (flags & VD_HOST_PREFAULT) ? vdh_mem_prefault : vdh_mem_advise;
    if (vd_jobs_new(0, &fh->jobs) == VD_OK) {
        fh->host.run_jobs = file_run_jobs;
        fh->host.job_start = file_job_start;
        fh->host.job_wait = file_job_wait;
    }
    *out = &fh->host;
    return VD_OK;
}

void vd_host_file_close(vd_host *host)
{
    file_host *fh;

    if (host == NULL)
        return;
    /* Only ever free what vd_host_file_open allocated. */
    if (host->read_at != file_read_at || host->ctx == NULL)
        return;
    fh = host->ctx;
    /* Closing drops the flock. A close error cannot be acted upon here:
     * durability is the business of flush. */
    (void)close(fh->fd);
    fh->fd = -1;
    vd_jobs_free(fh->jobs);
    free(fh);
}
