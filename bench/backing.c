/* Where the non-image modes keep their blocks: a zeroed memory area (the
 * CPU cost alone, no page cache involved) or a sparse file written with
 * pwrite and made durable with fdatasync, as the image's file backend
 * does, so end-to-end figures compare like with like. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "benchdev.h"

struct bench_backing {
    bench_backend kind;
    uint64_t bytes;
    uint8_t *mem;
    int fd;
    char *path;
};

void bench_touch(void *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += 4096)
        ((volatile uint8_t *)p)[i] = 0;
}

vd_err bench_backing_new(bench_backend kind, const char *path, uint64_t bytes,
                         bench_backing **out)
{
    vd_err e = VD_OK;
    bench_backing *b = calloc(1, sizeof *b);
    if (!b)
        return VD_ERR_NOMEM;
    b->kind = kind;
    b->bytes = bytes;
    b->fd = -1;
    if (kind == BACK_MEM) {
        b->mem = bytes <= SIZE_MAX ? malloc((size_t)bytes) : NULL;
        if (!b->mem)
            e = VD_ERR_NOMEM;
        else
            /* Fault every page in now, untimed: the image's memory host
             * zero-fills its whole array at create, and page faults in
             * the timed phase would be charged to the weaker modes only.
             * (Not memset: the compiler may turn malloc and memset(0) into
             * calloc, which skips fresh mmap'd pages. It did: plain
             * seq-write on memory measured 336 MB/s, most of its time in
             * page faults inside the timed memcpy.) */
            bench_touch(b->mem, (size_t)bytes);
        goto out;
    }
    b->path = strdup(path);
    if (!b->path) {
        e = VD_ERR_NOMEM;
        goto out;
    }
    b->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (b->fd < 0 || ftruncate(b->fd, (off_t)bytes) != 0)
        e = VD_ERR_IO;
out:
    if (e != VD_OK) {
        bench_backing_free(b);
        return e;
    }
    *out = b;
    return VD_OK;
}

vd_err bench_pread_all(int fd, uint64_t off, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VD_ERR_IO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return VD_OK;
}

vd_err bench_pwrite_all(int fd, uint64_t off, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return VD_ERR_IO;
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return VD_OK;
}

vd_err bench_backing_read(bench_backing *b, uint64_t off, void *buf, size_t len)
{
    if (off > b->bytes || len > b->bytes - off)
        return VD_ERR_RANGE;
    if (b->kind == BACK_MEM) {
        memcpy(buf, b->mem + off, len);
        return VD_OK;
    }
    return bench_pread_all(b->fd, off, buf, len);
}

vd_err bench_backing_write(bench_backing *b, uint64_t off, const void *buf, size_t len)
{
    if (off > b->bytes || len > b->bytes - off)
        return VD_ERR_RANGE;
    if (b->kind == BACK_MEM) {
        memcpy(b->mem + off, buf, len);
        return VD_OK;
    }
    return bench_pwrite_all(b->fd, off, buf, len);
}

vd_err bench_backing_sync(bench_backing *b)
{
    if (b->kind == BACK_MEM)
        return VD_OK;
    return fdatasync(b->fd) == 0 ? VD_OK : VD_ERR_IO;
}

vd_err bench_backing_drop(bench_backing *b)
{
    if (b->kind == BACK_MEM)
        return VD_OK;
    if (fdatasync(b->fd) != 0)
        return VD_ERR_IO;
    return posix_fadvise(b->fd, 0, 0, POSIX_FADV_DONTNEED) == 0 ? VD_OK : VD_ERR_IO;
}

void bench_backing_free(bench_backing *b)
{
    if (!b)
        return;
    free(b->mem);
    if (b->fd >= 0)
        (void)close(b->fd); /* a scratch file about to be removed */
    if (b->path)
        (void)unlink(b->path);
    free(b->path);
    free(b);
}
