/* The shield's freshness anchor (vd_anchor, R4): a monotonic counter in a
 * file on the trusted side, which the host process never opens. It stands
 * in for an enclave's monotonic counter (SGX platform services, a TPM NV
 * counter, a remote counter service): what matters is that the host
 * cannot roll it back together with the image (docs/SHIELD.md).
 *
 * The file is 16 bytes: "VDSHCNT1" and the u64 counter, little-endian.
 * An advance writes FILE.tmp, fsyncs it, renames it over FILE and fsyncs
 * the directory, so a crash leaves the old or the new value. The handle
 * remembers the highest value it has seen and fails a read that goes
 * below it. The vdisk_host library has a richer file anchor
 * (vd_anchor_file_open); this one is here so that the trusted process
 * links the core alone. */
#ifndef SHIELD_COUNTER_H
#define SHIELD_COUNTER_H

#include <stdint.h>

#include <vdisk/vdisk.h>

#define SH_COUNTER_PATH_MAX 4096

typedef struct sh_counter {
    char path[SH_COUNTER_PATH_MAX];
    uint64_t highest;
} sh_counter;

/* create = 1: a missing file is created with value 0 (first boot). 0, or
 * -errno (-EBADMSG: not a counter file; -ENAMETOOLONG). */
int sh_counter_open(sh_counter *c, const char *path, int create);
vd_anchor sh_counter_anchor(sh_counter *c);

#endif
