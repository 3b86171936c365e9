/* Ready-made backends for the vd_host interface (library vdisk_host; the
 * core itself never makes a system call).
 *   file:   pread/pwrite/fdatasync on a path, with an flock so two writers
 *           cannot open one image at once (exclusive for read-write, shared
 *           for read-only opens; a conflict is VD_ERR_BUSY).
 *   memory: a growable in-memory byte array (tests, benchmarks).
 *   nbd:    an export of a Network Block Device server (libnbd), named by
 *           an nbd://, nbds://, nbd+unix:// or nbds+unix:// URI. No lock
 *           exists there (docs/SECURITY.md, "Two writers").
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
    VD_HOST_NOLOCK = 1 << 2,   /* skip flock (tests that open twice on purpose) */
    /* Fault the core's long-lived buffers in when it allocates them
     * (vd_host.mem_advise: the block cache and the commit buffers, at
     * open), so that their first touch is paid at open, not by the first
     * writes. Fresh memory can be slow: a confidential VM accepts each
     * page on first use, a VM whose host backs memory lazily faults it in
     * from the host (2-9 ms per MiB on this project's CI machine,
     * docs/PERFORMANCE.md). A long-lived mount asks for it (vhdmount);
     * the cost is the whole budget resident from the start. */
    VD_HOST_PREFAULT = 1 << 3
};

/* Open (or create, mode 0600) an image file. Errors: VD_ERR_IO (with errno
 * preserved in *sys_errno when non-NULL), VD_ERR_BUSY (locked by another
 * writer), VD_ERR_INVAL (exists with VD_HOST_CREATE). */
vd_err vd_host_file_open(const char *path, int flags, vd_host **out,
                         int *sys_errno);
void vd_host_file_close(vd_host *host);

/* ---- NBD (libnbd) ---------------------------------------------------------
 * uri: nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, and the
 * TLS forms nbds:// and nbds+unix:// where libnbd supports TLS. flags as
 * for vd_host_file_open; VD_HOST_NOLOCK changes nothing (no lock exists).
 * The export keeps its size: an image occupies its start and a copy of
 * the image's VHD footer sits in the export's last 512 bytes, so the
 * image's size is found again at open (an export holding a copied image
 * file exactly is read as it is). With VD_HOST_CREATE the host reports
 * size 0 until the library's truncate, which must fit the export (else
 * -ENOSPC). Requests of one call go to the server in parallel (libnbd's
 * asynchronous API); flush is NBD_CMD_FLUSH.
 * Errors: VD_ERR_INVAL (not an NBD URI, or a scheme other than the four),
 * VD_ERR_UNSUPPORTED (built without NBD support; TLS URI without TLS in
 * libnbd; a writable open of a server that cannot flush), VD_ERR_READONLY
 * (a writable open of a read-only export), VD_ERR_IO (connect or
 * handshake failed; errno in *sys_errno when non-NULL). why (may be NULL)
 * receives one line saying why the open failed. */
vd_err vd_host_nbd_open(const char *uri, int flags, vd_host **out, int *sys_errno,
                        char *why, size_t why_len);
void vd_host_nbd_close(vd_host *host);
/* The largest image (bytes) the export can hold; VD_ERR_INVAL for a host
 * that is not an NBD host. */
vd_err vd_host_nbd_capacity(const vd_host *host, uint64_t *bytes);
/* One line about the first failure of a connected NBD host (server error
 * or lost connection), NULL when none happened or host is not an NBD
 * host. Every call after a lost connection fails with -EIO: a new open
 * recovers, as after a crash. */
const char *vd_host_nbd_last_error(const vd_host *host);
/* 1 when the library was built with NBD support. */
int vd_host_nbd_available(void);

/* ---- Any image by name ------------------------------------------------------
 * A name of the form SCHEME://... is a URI and goes to vd_host_nbd_open
 * (which refuses schemes other than NBD's); anything else is a file path
 * (vd_host_file_open; why gets strerror of the errno there). A local file
 * whose name looks like a URI is reached as ./NAME. vd_host_close closes a
 * host from either. */
int vd_host_is_uri(const char *image);
vd_err vd_host_open(const char *image, int flags, vd_host **out, int *sys_errno,
                    char *why, size_t why_len);
void vd_host_close(vd_host *host);

vd_err vd_host_mem_new(vd_host **out);
void vd_host_mem_free(vd_host *host);
/* Direct access to the bytes of a memory host (tests tamper with them). */
uint8_t *vd_host_mem_data(vd_host *host, uint64_t *size);
/* Replace the contents (copy). */
vd_err vd_host_mem_set(vd_host *host, const uint8_t *data, uint64_t size);

/* ---- A pool for vd_host.run_jobs --------------------------------------------
 * The bundled hosts (file, memory, NBD) each own one; a host written
 * elsewhere (a test's recording host, a wrapper) can use it too. threads:
 * how many threads run jobs, the caller of vd_jobs_run included; 0 means
 * one per online CPU (at most 8). The workers start at the first run that
 * has more than one job, so a host that never seals a batch costs no
 * thread. The caller always takes jobs itself: if a worker cannot be
 * started, or another run is under way, the jobs still all run.
 * vd_jobs_run has the shape of vd_host.run_jobs with the pool as ctx. */
typedef struct vd_jobs vd_jobs;
vd_err vd_jobs_new(unsigned threads, vd_jobs **out);
void vd_jobs_free(vd_jobs *jobs);
void vd_jobs_run(void *jobs, size_t n, void (*fn)(void *arg, size_t i), void *arg);
/* vd_host.job_start / job_wait with the pool as ctx: one background
 * thread (started at the first task) runs one task at a time; a start
 * while one runs waits for it. 0 when the thread cannot be started. */
uint64_t vd_jobs_start(void *jobs, void (*fn)(void *arg), void *arg);
void vd_jobs_wait(void *jobs, uint64_t ticket);

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
