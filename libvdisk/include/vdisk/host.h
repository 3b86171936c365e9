/* Ready-made backends for the vd_host interface (library vdisk_host; the
 * core itself never makes a system call).
 *   file:   pread/pwrite/fdatasync on a path, with an flock so two writers
 *           cannot open one image at once (exclusive for read-write, shared
 *           for read-only opens; a conflict is VD_ERR_BUSY).
 *   memory: a growable in-memory byte array (tests, benchmarks).
 * Also key-file helpers (below) and the file freshness anchor (anchor.h). */
#ifndef VDISK_HOST_H
#define VDISK_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    VD_HOST_READONLY = 1 << 0, /* open O_RDONLY, shared lock */
    VD_HOST_CREATE = 1 << 1,   /* create with O_EXCL, mode 0600 */
    VD_HOST_NOLOCK = 1 << 2    /* skip flock (tests that open twice on purpose) */
};

/* Open (or create, mode 0600) an image file. Errors: VD_ERR_IO (with errno
 * preserved in *sys_errno when non-NULL), VD_ERR_BUSY (locked by another
 * writer), VD_ERR_INVAL (exists with VD_HOST_CREATE). */
vd_err vd_host_file_open(const char *path, int flags, vd_host **out,
                         int *sys_errno);
void vd_host_file_close(vd_host *host);

vd_err vd_host_mem_new(vd_host **out);
void vd_host_mem_free(vd_host *host);
/* Direct access to the bytes of a memory host (tests tamper with them). */
uint8_t *vd_host_mem_data(vd_host *host, uint64_t *size);
/* Replace the contents (copy). */
vd_err vd_host_mem_set(vd_host *host, const uint8_t *data, uint64_t size);

/* ---- Key files (R6) ------------------------------------------------------
 * A key file holds exactly 32 random bytes (a KEYFILE slot's secret, see
 * keys.h). vd_keyfile_create writes a new one with O_CREAT|O_EXCL, mode
 * 0600, fsync of the file and of its directory; the key also goes to
 * key_out (32 bytes, may be NULL; use vd_secret_alloc memory). An existing
 * path is VD_ERR_INVAL with *sys_errno = EEXIST; a failed write removes
 * the partial file. vd_keyfile_read reads one back into key (32 bytes);
 * a file of any other size is VD_ERR_INVAL. */
vd_err vd_keyfile_create(const char *path, uint8_t *key_out, int *sys_errno);
vd_err vd_keyfile_read(const char *path, uint8_t *key, int *sys_errno);

#ifdef __cplusplus
}
#endif
#endif
