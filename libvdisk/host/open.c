/* Opening an image by name: the one place that tells a URI (NBD host)
 * from a file path (file host), so every tool takes both alike. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "vdisk/host.h"

vd_err vd_host_open(const char *image, int flags, vd_host **out, int *sys_errno,
                    char *why, size_t why_len)
{
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (vd_host_is_uri(image))
        return vd_host_nbd_open(image, flags, out, sys_errno, why, why_len);
    int sys = 0;
    vd_err e = vd_host_file_open(image, flags, out, &sys);
    if (sys_errno != NULL)
        *sys_errno = sys;
    if (e != VD_OK && sys != 0 && why != NULL && why_len > 0)
        snprintf(why, why_len, "%s", strerror(sys));
    return e;
}

void vd_host_close(vd_host *host)
{
    uint64_t cap;
    if (host == NULL)
        return;
    if (vd_host_nbd_capacity(host, &cap) == VD_OK)
        vd_host_nbd_close(host);
    else
        vd_host_file_close(host); /* ignores a host it did not make */
}
