/* Which contents each block of an image was written with, in order, so a
 * crash harness can tell what a block may hold after a crash. Every
 * recorded write takes the next sequence number; a harness notes
 * vt_hist_seq() when a sync starts. Record a write before the library
 * call: an implicit commit inside it may already persist it. */
#ifndef VD_TEST_BLOCKHIST_H
#define VD_TEST_BLOCKHIST_H

#include <stdint.h>

typedef struct vt_hist vt_hist;

/* A history of nblocks blocks, all never written (id 0). Fails the
 * running cmocka test when out of memory. */
vt_hist *vt_hist_new(uint64_t nblocks);
void vt_hist_free(vt_hist *h);
/* lbn was written with content id (vt_block_fill's ids, never 0). */
void vt_hist_record(vt_hist *h, uint64_t lbn, uint32_t id);
/* The sequence number the next write gets. */
uint64_t vt_hist_seq(const vt_hist *h);
/* May lbn hold id after a crash whose last completed sync started at
 * sequence number start (0: none since the history began)? The last id
 * written before start (0 when none), or any id written from start on. */
int vt_hist_allowed(const vt_hist *h, uint64_t start, uint64_t lbn, uint32_t id);

#endif
