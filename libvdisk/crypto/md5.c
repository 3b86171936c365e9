/* crypto/md5.c — MD5 through OpenSSL EVP, for one format checksum only:
 * the Minshall+French symbolic-link files of fat/link.c carry the MD5 of
 * their target, so other readers (Linux cifs, Samba) can tell a link from
 * a file. Nothing in vdisk relies on MD5 for security. */
#include <openssl/evp.h>

#include "crypto.h"

int vdc_md5(uint8_t out[VDC_MD5_BYTES], const void *p, size_t n)
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_md5(), NULL) != 1 || len != VDC_MD5_BYTES)
        return -1;
    return 0;
}
