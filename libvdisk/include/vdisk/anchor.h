/* Freshness anchors (R4): ready-made vd_anchor implementations and how to
 * wrap a hardware counter as one (docs/SECURITY.md, "R4").
 *
 * A vd_anchor (vdisk.h) is a monotonic counter the host of the image
 * cannot roll back: read() returns its value, advance(v) makes it exactly
 * v and refuses to go backwards. Each committed sync advances it to the
 * sync's epoch (or, with VD_ANCHOR_EXPLICIT_SYNC, each vd_image_sync and
 * vd_image_close); opening an image whose state is older than it fails
 * with VD_ERR_ROLLBACK. Use one anchor per image, and always supply it.
 *
 * ---- File anchor (library vdisk_host) -------------------------------------
 * A 32-byte file (docs/FORMAT.md §15: magic, version, u64 counter, xxh64
 * checksum) for the tools' `--anchor FILE`. It protects an image kept on
 * storage the attacker controls with a file kept where they do not (a
 * local disk, a different machine's share): whoever can roll back both
 * together defeats it. Every advance writes a temporary file in the same
 * directory, fsyncs it, renames it over FILE and fsyncs the directory, so
 * a crash leaves the old or the new value, never a torn one. A damaged
 * file is reported (VD_ERR_CORRUPT at open, -EBADMSG from read()), never
 * taken as 0. The handle also remembers the highest value it has seen and
 * fails (-ESTALE) if the file later reads lower. Not for concurrent use by
 * two processes (the image's own lock keeps two writers apart).
 *
 * ---- Hooks for hardware counters --------------------------------------------
 * Such counters only count up by one per call, so advance(v) increments
 * until the counter reaches v. Keep one counter per image. Sketch:
 *
 *   static int hw_read(void *ctx, uint64_t *v) { return counter_read(ctx, v); }
 *   static int hw_advance(void *ctx, uint64_t v)
 *   {
 *       uint64_t c;
 *       if (counter_read(ctx, &c) != 0)  return -EIO;
 *       if (c > v)                       return -EINVAL; // never backwards
 *       while (c < v)                    // usually one step per commit
 *           if (counter_increment(ctx, &c) != 0) return -EIO;
 *       return 0;
 *   }
 *   vd_anchor a = {.ctx = dev, .read = hw_read, .advance = hw_advance};
 *
 * TPM 2.0 NV counter (tpm2-tss ESAPI): define an NV index of type counter
 * (TPM_NT_COUNTER) with Esys_NV_DefineSpace, without TPMA_NV_ORDERLY (an
 * orderly counter jumps forward after an unclean shutdown, which would look
 * like a rollback); step it with Esys_NV_Increment (once right after
 * defining it: an index never written cannot be read) and read it with
 * Esys_NV_Read (8 bytes, big-endian). Its first value is not 0 (the TPM
 * starts a counter no lower than counters it had before); that is fine:
 * vd_image_create starts the image's epochs at the anchor's value. Protect
 * the index with an authorization (policy or password) the host does not
 * hold.
 *
 * Enclave monotonic counters (e.g. Intel SGX platform-services counters:
 * sgx_create_monotonic_counter / sgx_read_monotonic_counter /
 * sgx_increment_monotonic_counter, which Intel has deprecated and which are
 * missing on many platforms; or a remote counter service the enclave
 * attests to): the same wrapper, with the counter's UUID sealed to the
 * enclave next to the image's key.
 *
 * Hardware counters are slow (tens of milliseconds per increment) and wear
 * out (NV writes); open such images with VD_ANCHOR_EXPLICIT_SYNC so only
 * vd_image_sync / vd_image_close advance them. */
#ifndef VDISK_ANCHOR_H
#define VDISK_ANCHOR_H

#include "vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open the anchor file at path. create = 0: it must exist (missing:
 * VD_ERR_IO, *sys_errno = ENOENT); create = 1: a missing file is created
 * with counter 0 (mode 0600, durably, never replacing an existing one); an
 * existing file is used as it is. A file that is not a valid anchor record
 * is VD_ERR_CORRUPT. sys_errno (may be NULL) receives the errno of a
 * failed system call, 0 otherwise. The returned anchor is for
 * vd_open_opts.anchor; free it with vd_anchor_file_close. */
vd_err vd_anchor_file_open(const char *path, int create, vd_anchor **out,
                           int *sys_errno);
void vd_anchor_file_close(vd_anchor *anchor);

#ifdef __cplusplus
}
#endif
#endif
