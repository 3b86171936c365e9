/* Walking the crash states of a recorded log (record.h), the way the
 * crash harnesses do it, so each harness only says what a state must show:
 *   - every prefix of the log, the whole tail applied in order;
 *   - in every flush epoch of at least two writes, random subsets of its
 *     writes in a random order;
 *   - per prefix, a random subset of its tail (vt_replay_tail_variant).
 * The subsets are drawn from the caller's xorshift state (testkit.h) in a
 * fixed order, so a seed names the same states run after run. */
#ifndef VD_TEST_REPLAY_H
#define VD_TEST_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "record.h"
#include "vdisk/vdisk.h"

/* One crash state: h holds it (a crash view, record.h: the durable part
 * shared with the recorder, not copied per state; freed after the call),
 * prefix is the number of log ops issued, subset the subset's number in
 * its epoch (0 for the plain prefixes). fn may ask rec for the same
 * state again (vd_rec_crash_image with prefix), not for another one. */
typedef void (*vt_replay_fn)(void *ctx, vd_host *h, size_t prefix, unsigned subset);

/* VD_CRASH_STRIDE=N in the environment (default 1): the harnesses visit
 * one crash point in N (and the last, and wherever else the harness says
 * something happens). */
size_t vt_crash_stride(void);

/* fn for every prefix 0 .. vd_rec_op_count(rec), in order; with
 * VD_CRASH_STRIDE=N in the environment, every Nth one and the last. */
void vt_replay_prefixes(vd_rec *rec, vt_replay_fn fn, void *ctx);

/* fn for subsets random subsets of every flush epoch of two or more ops,
 * each applied in a random order: per subset, one draw from rng per op of
 * the epoch (its mask bit), then one for the order. */
void vt_replay_epoch_subsets(vd_rec *rec, unsigned subsets, uint64_t *rng,
                             vt_replay_fn fn, void *ctx);

/* The two ways a harness applies the tail of prefix p: variant 0 the whole
 * tail in order (*mask = NULL), variant 1 a random subset of it, its mask
 * drawn from rng into buf (one draw per byte of buf_bytes), to be applied
 * in a random order. Returns 0 where variant 1 does not apply (a tail of
 * fewer than 2 ops, or more than 8 * buf_bytes): skip it. */
int vt_replay_tail_variant(vd_rec *rec, size_t p, int variant, uint64_t *rng,
                           uint8_t *buf, size_t buf_bytes, const uint8_t **mask);

#endif
