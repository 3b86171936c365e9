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

int vdp_read(vdp_plugin *p, void *buf, uint32_t count, uint64_t offset)
{
    uint8_t *out = buf;
    uint8_t blk[BS];
    while (count > 0) {
        uint64_t lbn = offset / BS;
        uint32_t in = (uint32_t)(offset % BS);
        if (in == 0 && count >= BS) {
            uint32_t n = count / BS;
            vd_err e = vd_image_read(p->img, lbn, n, out);
            if (e != VD_OK)
                return io_fail(p, "read", lbn, n, e);
            out += (size_t)n * BS;
            offset += (uint64_t)n * BS;
            count -= n * BS;
            continue;
        }
        uint32_t len = BS - in < count ? BS - in : count;
        vd_err e = vd_image_read(p->img, lbn, 1, blk);
        if (e != VD_OK)
            return io_fail(p, "read", lbn, 1, e);
        memcpy(out, blk + in, len);
        out += len;
        offset += len;
        count -= len;
    }
    return 0;
}

/* Under the write lock. */
static int write_locked(vdp_plugin *p, const uint8_t *src, uint32_t count,
                        uint64_t offset)
{
    uint8_t blk[BS];
    while (count > 0) {
        uint64_t lbn = offset / BS;
        uint32_t in = (uint32_t)(offset % BS);
        if (in == 0 && count >= BS) {
            uint32_t n = count / BS;
            vd_err e = vd_image_write(p->img, lbn, n, src);
            if (e != VD_OK)
                return io_fail(p, "write", lbn, n, e);
            src += (size_t)n * BS;
            offset += (uint64_t)n * BS;
            count -= n * BS;
            continue;
        }
        /* The rest of the block must be verified before it is sealed again:
         * a tampered block is not silently re-authenticated. */
        uint32_t len = BS - in < count ? BS - in : count;
        vd_err e = vd_image_read(p->img, lbn, 1, blk);
        if (e != VD_OK)
            return io_fail(p, "read-modify-write", lbn, 1, e);
        memcpy(blk + in, src, len);
        e = vd_image_write(p->img, lbn, 1, blk);
        if (e != VD_OK)
            return io_fail(p, "write", lbn, 1, e);
        src += len;
        offset += len;
        count -= len;
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
