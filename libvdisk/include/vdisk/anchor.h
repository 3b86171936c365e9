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
 * A 48-byte file (docs/FORMAT.md §15: magic, version, u64 counter, random
 * 16-byte anchor id, xxh64 checksum) for the tools' `--anchor FILE`. The id
 * is the anchor's identity (R7): the image records a keyed tag of it and
 * refuses another file (VD_ERR_ANCHOR_MISMATCH). A 32-byte version-1 file
 * (before R7) has no id; it still works, and its next advance rewrites it
 * as version 2 with a new id, which the image adopts at its next writable
 * open. It protects an image kept on storage the attacker controls with a
 * file kept where they do not (a local disk, a different machine's share):
 * whoever can roll back both together defeats it. Every advance writes a
 * temporary file in the same directory, fsyncs it, renames it over FILE and
 * fsyncs the directory, so a crash leaves the old or the new value, never
 * a torn one. A damaged file is reported (VD_ERR_CORRUPT at open, -EBADMSG
 * from read()), never taken as 0. The handle also remembers the highest
 * value it has seen and fails (-ESTALE) if the file later reads lower. Not
 * for concurrent use by two processes (the image's own lock keeps two
 * writers apart).
 *
 * ---- TPM 2.0 anchor (library vdisk_host, with tpm2-tss) ---------------------
 * An NV index of type counter (TPM_NT_COUNTER), not orderly (an orderly
 * counter may jump after an unclean shutdown), with TPMA_NV_AUTHREAD |
 * TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA and as authorization value the secret
 * the library derives from the image's master key (vd_anchor.authorize):
 * whoever holds only the image file cannot step it. Its identity is the
 * index's TPM name (nameAlg || hash of its public area). Its value is the
 * counter times VD_ANCHOR_TPM_STEP (vd_anchor.step), so the library jumps
 * the epoch of an acknowledged sync to the next multiple and one sync is
 * one TPM2_NV_Increment, however many commits came between two syncs
 * (fewer than the step). advance(v) increments until the counter reads
 * v / step; TPM_RC_NV_RATE is waited out. Hardware counters are slow
 * (tens of milliseconds per increment) and wear out (NV writes): open
 * such images with VD_ANCHOR_EXPLICIT_SYNC.
 *
 * ---- Other hardware counters -------------------------------------------------
 * Such counters only count up by one per call, so advance(v) increments
 * until the counter reaches v, as the TPM anchor does. Keep one counter per
 * image, and give it an identity. Enclave monotonic counters (e.g. Intel
 * SGX platform-services counters, deprecated and missing on many
 * platforms; or a remote counter service the enclave attests to): the same
 * wrapper, with the counter's UUID as identity, sealed to the enclave next
 * to the image's key. */
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

/* Open the TPM 2.0 NV counter nv_index (0x01xxxxxx) through the TCTI
 * string tcti (as tpm2-tools take it: "device:/dev/tpmrm0",
 * "swtpm:path=SOCKET"; NULL = tpm2-tss's default). The TPM is asked once
 * here: VD_ERR_ANCHOR_UNREACHABLE when it does not answer, and
 * VD_ERR_UNSUPPORTED when the library was built without tpm2-tss. why
 * (may be NULL) receives the detail of a failure. flags:
 * VD_ANCHOR_TPM_DEFINE (vhdtool anchor init) defines the index when the
 * image's authorization arrives (vd_image_open with anchor_bind), or
 * adopts an existing counter after checking its attributes. Free with
 * vd_anchor_tpm_close. */
#define VD_ANCHOR_TPM_DEFINE 1
/* The TPM anchor's vd_anchor.step: 2^20 commits between two acknowledged
 * syncs before one sync costs a second increment; 2^44 syncs in 64 bits. */
#define VD_ANCHOR_TPM_STEP (UINT64_C(1) << 20)
vd_err vd_anchor_tpm_open(const char *tcti, uint32_t nv_index, int flags,
                          vd_anchor **out, char *why, size_t whylen);
/* The detail of the TPM anchor's last failure ("NV read: tpm:...") or "". */
const char *vd_anchor_tpm_why(const vd_anchor *anchor);
void vd_anchor_tpm_close(vd_anchor *anchor);
/* 1 when built with tpm2-tss, else 0. */
int vd_anchor_tpm_available(void);

#ifdef __cplusplus
}
#endif
#endif
