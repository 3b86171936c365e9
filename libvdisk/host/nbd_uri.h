/* Which image names are URIs, and which URIs the NBD host takes. Shared
 * by the NBD host, its stand-in for builds without libnbd and the
 * dispatcher (vd_host_open). */
#ifndef VD_HOST_NBD_URI_H
#define VD_HOST_NBD_URI_H

#include <stddef.h>

#include "vdisk/vdisk.h"

/* VD_OK when uri's scheme is nbd, nbds, nbd+unix or nbds+unix (*tls set
 * for the two nbds forms); otherwise VD_ERR_INVAL with one line in why. */
vd_err vdh_nbd_uri_check(const char *uri, int *tls, char *why, size_t why_len);

#endif
