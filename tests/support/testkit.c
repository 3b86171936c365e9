/* See testkit.h. */
#include <stdlib.h>
#include <string.h>

#include "testkit.h"

uint64_t vt_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

uint64_t vt_seed_from_env(const char *var, uint64_t dflt)
{
    const char *s = getenv(var);
    return s ? strtoull(s, NULL, 0) : dflt;
}

void vt_block_fill(uint8_t *b, uint64_t lbn, uint32_t id)
{
    if (id == 0) {
        memset(b, 0, VD_BLOCK_SIZE);
        return;
    }
    uint64_t s = lbn * 0x9E3779B97F4A7C15ull ^ ((uint64_t)id << 32) ^ 0xABCDEFull;
    uint64_t id64 = id;
    memcpy(b, &lbn, 8);
    memcpy(b + 8, &id64, 8);
    for (unsigned i = 16; i < VD_BLOCK_SIZE; i += 8) {
        uint64_t v = vt_rand(&s);
        memcpy(b + i, &v, 8);
    }
}

int64_t vt_block_identify(const uint8_t *b, uint64_t lbn)
{
    static const uint8_t zero[VD_BLOCK_SIZE];
    if (memcmp(b, zero, VD_BLOCK_SIZE) == 0)
        return 0;
    uint64_t l, id;
    memcpy(&l, b, 8);
    memcpy(&id, b + 8, 8);
    if (l != lbn || id == 0 || id > UINT32_MAX)
        return -1;
    uint8_t want[VD_BLOCK_SIZE];
    vt_block_fill(want, lbn, (uint32_t)id);
    return memcmp(want, b, VD_BLOCK_SIZE) == 0 ? (int64_t)id : -1;
}
