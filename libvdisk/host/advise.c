/* Transparent huge pages for the core's block cache. Where THP is set to
 * "madvise" (Debian's default), a fresh cache otherwise takes one page
 * fault per 4 KiB block it fills, which is most of the cost of the first
 * thousands of reads after an open (docs/PERFORMANCE.md). A hint only:
 * without THP nothing changes, so failure is ignored. */
#include <sys/mman.h>

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
