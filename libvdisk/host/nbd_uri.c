/* Image names: SCHEME://... is a URI (RFC 3986 scheme syntax), anything
 * else a file path. Of URIs only NBD's four schemes are taken; libnbd also
 * knows vsock, which is no way to reach remote storage and stays out. */
#include <stdio.h>
#include <string.h>

#include "nbd_uri.h"
#include "vdisk/host.h"

static int scheme_len(const char *s)
{
    int n = 0;
    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '+' || s[n] == '-' || s[n] == '.')
        n++;
    return strncmp(s + n, "://", 3) == 0 ? n : 0;
}

int vd_host_is_uri(const char *image)
{
    return scheme_len(image) > 0;
}

vd_err vdh_nbd_uri_check(const char *uri, int *tls, char *why, size_t why_len)
{
    static const struct {
        const char *name;
        int tls;
    } schemes[] = {{"nbd", 0}, {"nbd+unix", 0}, {"nbds", 1}, {"nbds+unix", 1}};
    int n = scheme_len(uri);
    for (size_t i = 0; n > 0 && i < sizeof schemes / sizeof schemes[0]; i++) {
        if ((size_t)n == strlen(schemes[i].name) && strncmp(uri, schemes[i].name, (size_t)n) == 0) {
            *tls = schemes[i].tls;
            return VD_OK;
        }
    }
    if (why != NULL && why_len > 0)
        snprintf(why, why_len,
                 "unsupported URI scheme '%.*s' (an image is a file path or an "
                 "nbd://, nbds://, nbd+unix:// or nbds+unix:// URI)",
                 n > 32 ? 32 : n, uri ? uri : "");
    return VD_ERR_INVAL;
}
