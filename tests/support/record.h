/* Recording, crash-simulating vd_host for tests (the idea of SQLite's test
 * VFS / crash VFS).
 *
 * A vd_rec holds an in-memory image and a log. The host it hands out
 * (vd_rec_host) behaves like the memory backend on a "live" image, and in
 * addition appends every mutating call to the log:
 *   WRITE    offset, length and a copy of the bytes (one write_at call;
 *            zero-length writes are not logged),
 *   TRUNCATE the new size (ordered like a write: durable only after the
 *            next flush),
 *   FLUSH    a barrier marker.
 * read_at and size read the live image; now() is a fake clock private to
 * the recorder (1700000000 s at the first call, +1 ms per call).
 *
 * Ops are numbered 0 .. vd_rec_op_count()-1 in call order. The flushes cut
 * the log into epochs: epoch k holds the WRITE/TRUNCATE ops after the k-th
 * FLUSH (or after the start of the log for k = 0) and before the next one;
 * the FLUSH ops themselves belong to no epoch. There is always exactly
 * vd_rec_flush_count() + 1 epochs; the last is the open (unflushed) one
 * and may be empty.
 *
 * A crash state is described by a prefix of the log (the first n ops were
 * issued before power was lost). Everything before the last FLUSH of the
 * prefix is durable and applied in order; the ops after that flush (the
 * "tail", all of one epoch) may each have reached the disk or not, in any
 * order. Each WRITE is atomic: applied entirely or not at all, never torn.
 *
 * Callbacks are serialised by a mutex; the query functions are meant to be
 * called while no other thread is using the host. Not async-signal-safe. */
#ifndef VD_TEST_RECORD_H
#define VD_TEST_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/vdisk.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vd_rec vd_rec;

typedef enum vd_rec_kind {
    VD_REC_WRITE = 1,
    VD_REC_FLUSH = 2,
    VD_REC_TRUNCATE = 3
} vd_rec_kind;

/* Description of one logged op (see vd_rec_op_get). */
typedef struct vd_rec_op_info {
    vd_rec_kind kind;
    uint64_t offset;     /* WRITE: byte offset; otherwise 0 */
    uint64_t length;     /* WRITE: byte count; otherwise 0 */
    uint64_t new_size;   /* TRUNCATE: the size set; otherwise 0 */
    const uint8_t *data; /* WRITE: the bytes written (valid until
                            vd_rec_reset_log / vd_rec_free); else NULL */
} vd_rec_op_info;

/* New recorder whose initial (and live) image is a copy of
 * initial[0..size). initial may be NULL when size is 0. NULL on failure. */
vd_rec *vd_rec_new(const uint8_t *initial, uint64_t size);
/* Free the recorder, its log and its host. NULL is a no-op. */
void vd_rec_free(vd_rec *rec);
/* The host to give the library. Owned by rec; valid until vd_rec_free. */
vd_host *vd_rec_host(vd_rec *rec);

/* ---- Queries ------------------------------------------------------------- */
/* Number of logged ops (WRITE + TRUNCATE + FLUSH). */
size_t vd_rec_op_count(vd_rec *rec);
/* Number of FLUSH ops in the log. */
size_t vd_rec_flush_count(vd_rec *rec);
/* Number of tasks job_start ran on a host thread: commits the core left in
 * flight (overlapped commits; the log is the same either way). */
size_t vd_rec_jobs_started(vd_rec *rec);
/* Number of epochs: always vd_rec_flush_count() + 1 (see above). */
size_t vd_rec_epoch_count(vd_rec *rec);
/* Total bytes of all logged WRITE ops. */
uint64_t vd_rec_bytes_logged(vd_rec *rec);
/* Describe op index. VD_ERR_RANGE if index >= vd_rec_op_count(). */
vd_err vd_rec_op_get(vd_rec *rec, size_t index, vd_rec_op_info *info);
/* Op index range [*first_op, *end_op) of epoch epoch_index: for a closed
 * epoch *end_op is the index of the FLUSH that closes it, and the next
 * epoch starts at *end_op + 1; for the last (open) epoch *end_op is
 * vd_rec_op_count(). VD_ERR_RANGE if epoch_index >= vd_rec_epoch_count(). */
vd_err vd_rec_epoch_bounds(vd_rec *rec, size_t epoch_index, size_t *first_op,
                           size_t *end_op);
/* Index of the first op of the tail of the prefix of n_ops_prefix ops:
 * one past the last FLUSH inside the prefix, or 0 if the prefix holds no
 * FLUSH. The tail is [result, n_ops_prefix) and holds no FLUSH. Values of
 * n_ops_prefix beyond vd_rec_op_count() are clamped to it. */
size_t vd_rec_tail_first(vd_rec *rec, size_t n_ops_prefix);
/* The live image (what read_at sees). Valid until the next mutating call. */
const uint8_t *vd_rec_live(vd_rec *rec, uint64_t *size);
/* The initial image (as of vd_rec_new or the last vd_rec_reset_log). */
const uint8_t *vd_rec_initial(vd_rec *rec, uint64_t *size);

/* ---- Crash states -------------------------------------------------------- */
/* Materialise the image a crash after the first n_ops_prefix ops could
 * leave (n_ops_prefix may range over 0 .. vd_rec_op_count()):
 *   1. the initial image;
 *   2. every op before the tail (see vd_rec_tail_first), in log order;
 *   3. of the tail ops: all of them when subset_mask is NULL, otherwise
 *      exactly those whose mask bit is set, bit j (mask[j / 8] >> (j % 8)
 *      & 1) standing for op tail_first + j; the mask must hold at least
 *      (tail length + 7) / 8 bytes;
 *   4. applied in log order when reorder is 0, otherwise in a permutation
 *      drawn by xorshift64* from seed (deterministic for a given seed;
 *      seed 0 is allowed).
 * WRITE ops beyond the current size grow the image with zeros; TRUNCATE
 * ops resize it (zero-filling growth). Returns a malloc'd image (at least
 * one byte is allocated even for an empty image; the caller frees) and its
 * size in *size_out (when non-NULL), or NULL if n_ops_prefix exceeds the
 * op count or memory runs out. Successive calls with non-decreasing
 * prefixes are cheap: the durable part is cached incrementally. */
uint8_t *vd_rec_crash_image(vd_rec *rec, size_t n_ops_prefix,
                            const uint8_t *subset_mask, uint64_t seed,
                            int reorder, uint64_t *size_out);
/* Same crash state, loaded into a new memory host (vd_host_mem_new; free
 * it with vd_host_mem_free). VD_ERR_RANGE for a bad prefix, VD_ERR_NOMEM. */
vd_err vd_rec_crash_host(vd_rec *rec, size_t n_ops_prefix,
                         const uint8_t *subset_mask, uint64_t seed,
                         int reorder, vd_host **out);

/* The same crash state as vd_rec_crash_host, without copying the image:
 * the view reads the durable part from the recorder's own copy and keeps
 * the tail ops and every later write (a recovery commit, a check's
 * repairs) in private blocks, so a state costs O(tail + writes), not
 * O(image). flush does nothing; run_jobs, job_start and job_wait use the
 * recorder's threads, as the memory host would its own. The view is valid
 * until vd_rec_reset_log, vd_rec_free, or a vd_rec_crash_image /
 * vd_rec_crash_host / vd_rec_crash_view call on rec for a prefix with
 * another durable part (another vd_rec_tail_first), and must be freed
 * with vd_rec_view_free before. Same errors as vd_rec_crash_host. */
vd_err vd_rec_crash_view(vd_rec *rec, size_t n_ops_prefix,
                         const uint8_t *subset_mask, uint64_t seed,
                         int reorder, vd_host **out);
void vd_rec_view_free(vd_host *view);

/* Make the current live image the new initial image and clear the log
 * (op, flush and byte counters restart from zero). VD_ERR_NOMEM leaves
 * the recorder unchanged. */
vd_err vd_rec_reset_log(vd_rec *rec);

#ifdef __cplusplus
}
#endif
#endif
