/* A host that forwards every call to an inner host. A test puts a
 * vt_passthru first in its own context struct, fills it with
 * vt_passthru_init and then replaces the callbacks it watches: each gets
 * the test's struct as ctx (the vt_passthru is its first member), and
 * forwards through pt.inner itself. */
#ifndef VT_PASSTHRU_H
#define VT_PASSTHRU_H

#include "vdisk/vdisk.h"

typedef struct vt_passthru {
    vd_host host; /* ctx: the vt_passthru, i.e. the struct it opens */
    vd_host *inner;
} vt_passthru;

/* jobs = 0 leaves run_jobs, job_start and job_wait NULL: every batch and
 * every commit then runs on the calling thread, whatever inner offers. */
void vt_passthru_init(vt_passthru *p, vd_host *inner, int jobs);

#endif
