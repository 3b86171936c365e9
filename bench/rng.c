/* splitmix64: tiny, fast, and the same sequence on every machine, so a
 * workload's offsets and sizes depend only on its seed. */
#include <string.h>

#include "bench.h"

void bench_rng_seed(bench_rng *g, uint64_t seed)
{
    g->s = seed;
}

uint64_t bench_rng_next(bench_rng *g)
{
    uint64_t z = (g->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t bench_rng_below(bench_rng *g, uint64_t n)
{
    /* The modulo bias is far below what a benchmark can notice. */
    return n ? bench_rng_next(g) % n : 0;
}

void bench_rng_fill(bench_rng *g, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n >= 8) {
        uint64_t x = bench_rng_next(g);
        memcpy(p, &x, 8);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t x = bench_rng_next(g);
        memcpy(p, &x, n);
    }
}
