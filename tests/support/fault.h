/* Fault-injecting vd_host for tests: a hostile host wrapped around another
 * vd_host (memory, file, recorder...).
 *
 * With no fault configured the wrapper forwards every call unchanged. The
 * calls of each kind (vd_fault_op) are counted and numbered from 1, since
 * vd_fault_new or the last vd_fault_reset_counters; most faults apply to a
 * window of those numbers:
 *     first, ncalls   calls first .. first + ncalls - 1 of that kind;
 *                     ncalls = VD_FAULT_FOREVER (0): every call from first;
 *                     first = 0: the fault is disabled.
 * "The next call" is therefore vd_fault_calls(f, op) + 1. Setting a fault
 * again replaces the previous setting of the same fault.
 *
 * When several faults cover one call they combine in this order:
 *   read:     fail > short read (the inner host is asked for fewer bytes)
 *             > bit flips on the bytes returned > over-long count lie;
 *   write:    fail > drop > short write;
 *   flush, truncate: fail > drop;
 *   size:     fail > lie;
 *   now:      fail > constant > backwards.
 * A failed or dropped call never reaches the inner host.
 *
 * Callbacks and configuration are serialised by a mutex in the wrapper
 * (held across the inner call). */
#ifndef VD_TEST_FAULT_H
#define VD_TEST_FAULT_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vd_fault_op {
    VD_FAULT_READ = 0,
    VD_FAULT_WRITE = 1,
    VD_FAULT_FLUSH = 2,
    VD_FAULT_SIZE = 3,
    VD_FAULT_TRUNCATE = 4,
    VD_FAULT_NOW = 5,
    VD_FAULT_NOPS = 6 /* number of kinds, not a kind */
} vd_fault_op;

#define VD_FAULT_FOREVER 0u
#define VD_FAULT_MAX_FLIPS 16u

typedef struct vd_fault vd_fault;

/* Wrap inner: the struct is copied (callbacks and ctx); whatever inner->ctx
 * points to must outlive the wrapper. If inner->now is NULL the wrapper's
 * now() still exists and fails with -ENOSYS unless a constant/backwards
 * time fault answers instead. NULL on bad argument or out of memory. */
vd_fault *vd_fault_new(const vd_host *inner);
/* Free the wrapper (not the inner host). NULL is a no-op. */
void vd_fault_free(vd_fault *f);
/* The hostile host; owned by f, valid until vd_fault_free. */
vd_host *vd_fault_host(vd_fault *f);

/* ---- Counters ------------------------------------------------------------- */
/* Calls of kind op seen so far (faulted or not). 0 for a bad op. */
uint64_t vd_fault_calls(vd_fault *f, vd_fault_op op);
/* Calls of kind op on which at least one fault was injected. */
uint64_t vd_fault_injected(vd_fault *f, vd_fault_op op);
/* Restart both counters (and call numbering) of every kind from zero. */
void vd_fault_reset_counters(vd_fault *f);
/* Remove every configured fault (bit flips included); counters are kept. */
void vd_fault_clear(vd_fault *f);

/* ---- Faults ---------------------------------------------------------------
 * All return VD_OK, or VD_ERR_INVAL for a NULL f, a bad op, an errno that
 * is not negative, or a parameter outside the range stated below. */

/* Calls in the window return neg_errno (e.g. -EIO) without reaching the
 * inner host; read/write report *done = 0. Any kind. */
vd_err vd_fault_fail(vd_fault *f, vd_fault_op op, uint64_t first,
                     uint64_t ncalls, int neg_errno);
/* Only the n-th call (n >= 1) of kind op fails. */
vd_err vd_fault_fail_nth(vd_fault *f, vd_fault_op op, uint64_t n,
                         int neg_errno);
/* The first n calls succeed, every later one fails (n = 0: all fail). */
vd_err vd_fault_fail_after(vd_fault *f, vd_fault_op op, uint64_t n,
                           int neg_errno);

/* Calls in the window report success without reaching the inner host:
 * write reports *done = len; flush and truncate return 0. op must be
 * VD_FAULT_WRITE, VD_FAULT_FLUSH or VD_FAULT_TRUNCATE. A dropped flush is
 * a host lying about durability. */
vd_err vd_fault_drop(vd_fault *f, vd_fault_op op, uint64_t first,
                     uint64_t ncalls);
/* vd_fault_drop(f, VD_FAULT_WRITE, first, ncalls). */
vd_err vd_fault_drop_writes(vd_fault *f, uint64_t first, uint64_t ncalls);

/* Reads in the window ask the inner host for len - shortfall bytes (0 if
 * shortfall >= len) and return that count with rc 0. shortfall >= 1. */
vd_err vd_fault_short_read(vd_fault *f, uint64_t first, uint64_t ncalls,
                           size_t shortfall);
/* Reads in the window read len bytes but report *done = len + 1. */
vd_err vd_fault_long_read(vd_fault *f, uint64_t first, uint64_t ncalls);
/* Writes in the window write only the first len - shortfall bytes (0 if
 * shortfall >= len) and report that count with rc 0. shortfall >= 1. */
vd_err vd_fault_short_write(vd_fault *f, uint64_t first, uint64_t ncalls,
                            size_t shortfall);

/* size() calls in the window report the inner size + delta, saturating
 * at 0 and UINT64_MAX. */
vd_err vd_fault_size_lie(vd_fault *f, uint64_t first, uint64_t ncalls,
                         int64_t delta);

/* now() calls in the window return step_ns (>= 1) less than the value the
 * wrapper returned last (the first time: the inner clock minus step_ns,
 * or 1700000000 s minus step_ns if the inner clock fails), so time runs
 * strictly backwards (saturating at INT64_MIN). */
vd_err vd_fault_time_backwards(vd_fault *f, uint64_t first, uint64_t ncalls,
                               int64_t step_ns);
/* now() calls in the window return the constant ns (e.g. 0, a negative
 * value, or INT64_MAX). */
vd_err vd_fault_time_constant(vd_fault *f, uint64_t first, uint64_t ncalls,
                              int64_t ns);

/* Every read whose returned bytes cover file offset `offset` gets that byte
 * XORed with xor_mask (!= 0). The inner host is untouched. Up to
 * VD_FAULT_MAX_FLIPS flips (VD_ERR_RANGE beyond); adding one at an offset
 * already flipped replaces its mask. */
vd_err vd_fault_bitflip(vd_fault *f, uint64_t offset, uint8_t xor_mask);

#ifdef __cplusplus
}
#endif
#endif
