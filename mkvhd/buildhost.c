/* The host a local build writes through: the file host, with its flushes
 * deferred to one at the end.
 *
 * While mkvhd fills a new image, the image lives under a temporary name
 * and nothing in it has been promised to anyone: a crash or a failure
 * leaves IMAGE.tmp.XXXXXX, never IMAGE (build.c renames only a complete,
 * closed, flushed image). The ordering the library's flushes give a
 * commit (journal, record, blocks, record) only matters for an image that
 * may be opened after a crash, which this one never is. So a flush here
 * only starts the kernel writing back what was written so far (the disk
 * works while the build goes on, and the last flush has little left to
 * wait for), and mkvhd_buildhost_finish is the one fdatasync, before the
 * rename. Building /usr/include waited for about 100 fdatasyncs before
 * (docs/PERFORMANCE.md, "Building images"). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mkvhd.h"

struct mkvhd_buildhost {
    vd_host host;  /* what the library is given: inner's, flush replaced */
    vd_host *inner;
    int fd;        /* the same file, for writeback and the final flush */
};

static int deferred_flush(void *ctx)
{
    const mkvhd_buildhost *b = ctx;
    /* A hint: on a file system without it the final fdatasync does all. */
    (void)sync_file_range(b->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    return 0;
}

static int fwd_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    const mkvhd_buildhost *b = ctx;
    return b->inner->read_at(b->inner->ctx, off, buf, len, done);
}

static int fwd_write(void *ctx, uint64_t off, const void *buf, size_t len, size_t *done)
{
    const mkvhd_buildhost *b = ctx;
    return b->inner->write_at(b->inner->ctx, off, buf, len, done);
}

static int fwd_size(void *ctx, uint64_t *size)
{
    const mkvhd_buildhost *b = ctx;
    return b->inner->size(b->inner->ctx, size);
}

static int fwd_truncate(void *ctx, uint64_t size)
{
    const mkvhd_buildhost *b = ctx;
    return b->inner->truncate(b->inner->ctx, size);
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
    const vd_host *in = b->inner;
    b->host = (vd_host){
        .ctx = b,
        .read_at = fwd_read,
        .write_at = fwd_write,
        .flush = deferred_flush,
        .size = fwd_size,
        .truncate = in->truncate ? fwd_truncate : NULL,
        .now = in->now ? fwd_now : NULL,
        .mem_advise = in->mem_advise ? fwd_mem_advise : NULL,
    };
    *out = b;
    return 0;
}

vd_host *mkvhd_buildhost_host(mkvhd_buildhost *b)
{
    return &b->host;
}

int mkvhd_buildhost_finish(mkvhd_buildhost *b)
{
    while (fdatasync(b->fd) != 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

void mkvhd_buildhost_close(mkvhd_buildhost *b)
{
    if (!b)
        return;
    vd_host_close(b->inner);
    (void)close(b->fd);
    free(b);
}
