/* vd_err -> the errno an NBD client sees. The NBD protocol carries only a
 * few codes (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP,
 * ESHUTDOWN); nbdkit maps anything else to EINVAL, so pick among those. */
#include <errno.h>

#include "vdplug.h"

int vdp_errno(vd_err e)
{
    switch (e) {
    case VD_OK:
        return 0;
    case VD_ERR_NOSPC:
        return ENOSPC;
    case VD_ERR_NOMEM:
        return ENOMEM;
    case VD_ERR_READONLY:
        return EPERM; /* what NBD sends for a write to a read-only export */
    case VD_ERR_INVAL:
    case VD_ERR_RANGE:
        return EINVAL;
    /* Authentication, rollback, a sticky-failed handle and host I/O errors
     * all mean "these bytes cannot be served": EIO, as a bad sector. */
    default:
        return EIO;
    }
}
