/* Stand-in for the NBD host in builds without libnbd (VD_NBD=OFF, or
 * libnbd-dev missing): every NBD URI is refused with that reason. */
#include <stdio.h>

#include "nbd_uri.h"
#include "vdisk/host.h"

int vd_host_nbd_available(void)
{
    return 0;
}

vd_err vd_host_nbd_open(const char *uri, int flags, vd_host **out, int *sys_errno,
                        char *why, size_t why_len)
{
    int tls = 0;
    (void)flags;
    if (sys_errno != NULL)
        *sys_errno = 0;
    if (out != NULL)
        *out = NULL;
    if (uri == NULL || out == NULL)
        return VD_ERR_INVAL;
    vd_err e = vdh_nbd_uri_check(uri, &tls, why, why_len);
    if (e != VD_OK)
        return e;
    if (why != NULL && why_len > 0)
        snprintf(why, why_len, "built without NBD support (libnbd was not found at build time)");
    return VD_ERR_UNSUPPORTED;
}

void vd_host_nbd_close(vd_host *host)
{
    (void)host;
}

vd_err vd_host_nbd_capacity(const vd_host *host, uint64_t *bytes)
{
    (void)host;
    (void)bytes;
    return VD_ERR_INVAL;
}

const char *vd_host_nbd_last_error(const vd_host *host)
{
    (void)host;
    return NULL;
}
