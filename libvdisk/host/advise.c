/* Transparent huge pages for the core's block cache. Where THP is set to
 * "madvise" (Debian's default), a fresh cache otherwise takes one page
 * fault per 4 KiB block it fills, which is most of the cost of the first
 * thousands of reads after an open (docs/PERFORMANCE.md). A hint only:
 * without THP nothing changes, so failure is ignored. */
#include <sys/mman.h>
#include <unistd.h>

#include "advise.h"

void vdh_mem_advise(void *ctx, void *addr, size_t len)
{
    (void)ctx;
#ifdef MADV_HUGEPAGE
    (void)madvise(addr, len, MADV_HUGEPAGE);
#else
    (void)addr;
    (void)len;
#endif
}

/* MADV_POPULATE_WRITE (Linux 5.14) faults the pages in without writing
 * them; where it is missing or refused, one write per page does the same
 * (the buffers are fresh: nothing in them yet to keep). */
void vdh_mem_prefault(void *ctx, void *addr, size_t len)
{
    vdh_mem_advise(ctx, addr, len);
#ifdef MADV_POPULATE_WRITE
    if (madvise(addr, len, MADV_POPULATE_WRITE) == 0)
        return;
#endif
    long pg = sysconf(_SC_PAGESIZE);
    size_t step = pg > 0 ? (size_t)pg : 4096;
    volatile unsigned char *p = addr;
    for (size_t off = 0; off < len; off += step)
        p[off] = 0;
}
