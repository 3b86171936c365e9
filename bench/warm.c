/* Memory the host already backs, right before every timed phase.
 *
 * A VM whose host backs guest memory lazily and takes back the pages the
 * guest frees (free page reporting, a balloon) charges the first touch of
 * such a page far more than its use: 2-9 ms per MiB on the machine of
 * docs/PERFORMANCE.md, against 0.1-0.5 ms for memory touched recently.
 * Which phase draws those pages (for the page cache of a fresh file, an
 * image's cache, a peer daemon's buffers) is chance, and it moved single
 * figures fivefold. Touching and freeing warm_bytes just before a phase
 * leaves that much backed memory at the head of the kernel's free lists,
 * where the phase's own allocations come from, as on bare metal. It is
 * offered for huge pages: freed, they are whole 2 MiB blocks, which the
 * page cache's large folios are cut from (faulted in 4 KiB at a time the
 * same warm-up made no difference on that machine). Unmapped at once, so
 * the memory goes back to the kernel, not to this process's heap. */
#include <sys/mman.h>

#include "bench.h"

double bench_start(const bench_cfg *c)
{
    size_t n = c->warm_bytes;
    uint8_t *p = n ? mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                   : MAP_FAILED;
    if (p != MAP_FAILED) {
        (void)madvise(p, n, MADV_HUGEPAGE); /* a hint: 4 KiB pages still warm some */
        bench_touch(p, n);
        (void)munmap(p, n); /* nothing to do if it fails: only a warm-up */
    }
    return bench_now();
}
