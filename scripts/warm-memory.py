#!/usr/bin/env python3
"""warm-memory.py MIB: fault in MIB MiB as huge pages, then free them.

Run right before a timed step, so the step's own allocations (page cache,
buffers) come from memory this VM's host already backs instead of pages
it took back, whose first touch costs 2-9 ms per MiB here (bench/warm.c,
docs/PERFORMANCE.md "Fresh memory on this VM"). vhdbench does the same
with --warm; the fio and rekey scripts call this.
"""
import mmap
import sys

n = int(sys.argv[1]) << 20
if n > 0:
    m = mmap.mmap(-1, n)
    m.madvise(mmap.MADV_HUGEPAGE)
    for off in range(0, n, mmap.PAGESIZE):
        m[off] = 1
    m.close()
