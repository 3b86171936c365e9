/* The data path: NBD byte ranges onto 4 KiB logical blocks. Whole blocks
 * go straight to vd_image_read / vd_image_write; a partial block at either
 * end of a write is read (verified), patched and written back under the
 * write lock. A failure is one log line naming the blocks and, for an
 * integrity failure, the block (or tree node) that failed. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "vdisk/host.h"
#include "vdplug.h"

#define BS VD_BLOCK_SIZE

/* "logical block N" or "logical blocks A-B" */
static const char *io_blocks(char *buf, size_t len, uint64_t first, uint64_t n)
{
    if (n == 1)
        snprintf(buf, len, "logical block %llu", (unsigned long long)first);
    else
        snprintf(buf, len, "logical blocks %llu-%llu", (unsigned long long)first,
                 (unsigned long long)(first + n - 1));
    return buf;
}

static int io_fail(vdp_plugin *p, const char *op, uint64_t lbn, uint64_t n, vd_err e)
{
    char req[64], bad[64];
    vd_bad_range r;
    vd_image_info info;
    io_blocks(req, sizeof req, lbn, n);
    if ((e == VD_ERR_AUTH || e == VD_ERR_ROLLBACK) &&
        vd_image_last_failure(p->img, &r) == VD_OK) {
        /* Another connection's failure could have come in between; the
         * block named is still one that failed on this image. */
        const char *why = e == VD_ERR_AUTH ? "modified or replayed"
                                           : "older than the freshness anchor";
        if (r.level == 0)
            nbdkit_error("%s: %s of %s: integrity failure in %s (%s)", p->image, op, req,
                         io_blocks(bad, sizeof bad, r.first_lbn, 1), why);
        else
            nbdkit_error("%s: %s of %s: integrity failure in a level-%u tree node "
                         "covering %s (%s)",
                         p->image, op, req, (unsigned)r.level,
                         io_blocks(bad, sizeof bad, r.first_lbn, r.nblocks), why);
    } else if (e == VD_ERR_FAILED && vd_image_info_get(p->img, &info) == VD_OK &&
               info.failed != VD_OK) {
        nbdkit_error("%s: %s of %s: %s (since: %s)", p->image, op, req, vd_strerror(e),
                     vd_strerror(info.failed));
    } else {
        const char *host = e == VD_ERR_IO ? vd_host_nbd_last_error(p->host) : NULL;
        nbdkit_error("%s: %s of %s: %s%s%s%s", p->image, op, req, vd_strerror(e),
                     host ? " (" : "", host ? host : "", host ? ")" : "");
    }
    nbdkit_set_error(vdp_errno(e));
    return -1;
}

/* A request cut at block boundaries: a run of whole blocks (in == 0,
 * len a multiple of BS), or the part of one block at either end; pos is
 * where the piece starts in the request. */
typedef struct io_piece {
    uint64_t lbn;
    uint32_t in, len, pos;
} io_piece;

/* The next piece of [offset, offset + count) after *q (zeroed to start);
 * 0 once the request is done. */
static int io_next(io_piece *q, uint64_t offset, uint32_t count)
{
    q->pos += q->len;
    if (q->pos >= count)
        return 0;
    uint64_t at = offset + q->pos;
    uint32_t left = count - q->pos;
    q->lbn = at / BS;
    q->in = (uint32_t)(at % BS);
    q->len = q->in == 0 && left >= BS ? left / BS * BS
             : BS - q->in < left      ? BS - q->in
                                      : left;
    return 1;
}

static int io_whole(const io_piece *q)
{
    return q->in == 0 && q->len >= BS;
}

int vdp_read(vdp_plugin *p, void *buf, uint32_t count, uint64_t offset)
{
    uint8_t *out = buf;
    uint8_t blk[BS];
    for (io_piece q = {0}; io_next(&q, offset, count);) {
        uint32_t n = io_whole(&q) ? q.len / BS : 1;
        vd_err e = vd_image_read(p->img, q.lbn, n, io_whole(&q) ? out + q.pos : blk);
        if (e != VD_OK)
            return io_fail(p, "read", q.lbn, n, e);
        if (!io_whole(&q))
            memcpy(out + q.pos, blk + q.in, q.len);
    }
    return 0;
}

/* Under the write lock. */
static int write_locked(vdp_plugin *p, const uint8_t *src, uint32_t count,
                        uint64_t offset)
{
    uint8_t blk[BS];
    for (io_piece q = {0}; io_next(&q, offset, count);) {
        if (io_whole(&q)) {
            vd_err e = vd_image_write(p->img, q.lbn, q.len / BS, src + q.pos);
            if (e != VD_OK)
                return io_fail(p, "write", q.lbn, q.len / BS, e);
            continue;
        }
        /* The rest of the block must be verified before it is sealed again:
         * a tampered block is not silently re-authenticated. */
        vd_err e = vd_image_read(p->img, q.lbn, 1, blk);
        if (e != VD_OK)
            return io_fail(p, "read-modify-write", q.lbn, 1, e);
        memcpy(blk + q.in, src + q.pos, q.len);
        e = vd_image_write(p->img, q.lbn, 1, blk);
        if (e != VD_OK)
            return io_fail(p, "write", q.lbn, 1, e);
    }
    return 0;
}

int vdp_write(vdp_plugin *p, const void *buf, uint32_t count, uint64_t offset, int fua)
{
    if (pthread_mutex_lock(&p->write_lock) != 0) {
        nbdkit_error("%s: write: cannot take the write lock", p->image);
        nbdkit_set_error(EIO);
        return -1;
    }
    int rc = write_locked(p, buf, count, offset);
    (void)pthread_mutex_unlock(&p->write_lock);
    if (rc == 0 && fua)
        rc = vdp_sync(p, "write with FUA");
    return rc;
}

int vdp_sync(vdp_plugin *p, const char *what)
{
    vd_err e = vd_image_sync(p->img);
    if (e == VD_OK)
        return 0;
    vd_image_info info;
    if (e == VD_ERR_FAILED && vd_image_info_get(p->img, &info) == VD_OK &&
        info.failed != VD_OK)
        nbdkit_error("%s: %s: %s (since: %s)", p->image, what, vd_strerror(e),
                     vd_strerror(info.failed));
    else
        nbdkit_error("%s: %s: %s", p->image, what, vd_strerror(e));
    nbdkit_set_error(vdp_errno(e));
    return -1;
}
