/* Every host answer is checked: a read or write that transfers a count
 * other than asked is an error, never trusted (DESIGN §2). */
#include <errno.h>

#include "image_internal.h"

vd_err vd_errno_to_err(int neg_errno)
{
    switch (-neg_errno) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return VD_ERR_NOSPC;
    case ENOMEM:
        return VD_ERR_NOMEM;
    case EBUSY:
    case EWOULDBLOCK:
        return VD_ERR_BUSY;
    case EROFS:
    case EPERM:
    case EACCES:
        return VD_ERR_READONLY;
    default:
        return VD_ERR_IO;
    }
}

vd_err vd_host_read(const vd_host *h, uint64_t off, void *buf, size_t len)
{
    size_t done = 0;
    int rc = h->read_at(h->ctx, off, buf, len, &done);
    if (rc < 0)
        return vd_errno_to_err(rc);
    if (rc > 0 || done != len)
        return VD_ERR_IO;
    return VD_OK;
}

vd_err vd_host_write(const vd_host *h, uint64_t off, const void *buf, size_t len)
{
    size_t done = 0;
    int rc = h->write_at(h->ctx, off, buf, len, &done);
    if (rc < 0)
        return vd_errno_to_err(rc);
    if (rc > 0 || done != len)
        return VD_ERR_IO;
    return VD_OK;
}

vd_err vd_host_size(const vd_host *h, uint64_t *size)
{
    int rc = h->size(h->ctx, size);
    if (rc < 0)
        return vd_errno_to_err(rc);
    return rc > 0 ? VD_ERR_IO : VD_OK;
}

int64_t vd_host_now(const vd_host *h)
{
    int64_t ns = 0;
    if (!h->now || h->now(h->ctx, &ns) != 0)
        return 0;
    return ns;
}

vd_err vd_io_read(vd_image *img, uint64_t off, void *buf, size_t len)
{
    /* Never ask the host for bytes outside the container we validated. */
    if (off > img->file_bytes || len > img->file_bytes - off)
        return VD_ERR_RANGE;
    vd_err e = vd_flight_read_guard(img, off, len);
    if (e == VD_OK)
        e = vd_host_read(&img->host, off, buf, len);
    if (e == VD_OK)
        img->stat_bytes_read += len;
    return e;
}

vd_err vd_io_write_untallied(vd_image *img, uint64_t off, const void *buf, size_t len)
{
    if (img->read_only)
        return VD_ERR_READONLY;
    if (off > img->file_bytes || len > img->file_bytes - off)
        return VD_ERR_RANGE;
    return vd_host_write(&img->host, off, buf, len);
}

vd_err vd_io_write(vd_image *img, uint64_t off, const void *buf, size_t len)
{
    vd_err e = vd_io_write_untallied(img, off, buf, len);
    if (e == VD_OK)
        img->stat_bytes_written += len;
    return e;
}

vd_err vd_io_flush(vd_image *img)
{
    if (img->read_only)
        return VD_ERR_READONLY;
    int rc = img->host.flush(img->host.ctx);
    img->stat_flushes++;
    if (rc < 0)
        return vd_errno_to_err(rc);
    if (rc == 0) { /* everything written so far is durable */
        img->redo_pending = VD_REDO_NONE;
        img->unflushed = 0;
    }
    return rc > 0 ? VD_ERR_IO : VD_OK;
}
