/* See testkit.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testkit.h"

/* The pattern after the 16-byte header: xorshift64* words from a seed of
 * (lbn, id). Filling and checking every block of every crash state is
 * most of a crash harness's own time, so both run the generator inline
 * (no call per word) and the check stops at the first differing word
 * instead of building the expected block. */
static uint64_t block_seed(uint64_t lbn, uint32_t id)
{
    return lbn * 0x9E3779B97F4A7C15ull ^ ((uint64_t)id << 32) ^ 0xABCDEFull;
}

#define VT_XORSHIFT_STEP(x) \
    do {                    \
        (x) ^= (x) >> 12;   \
        (x) ^= (x) << 25;   \
        (x) ^= (x) >> 27;   \
    } while (0)

uint64_t vt_rand(uint64_t *state)
{
    uint64_t x = *state;
    VT_XORSHIFT_STEP(x);
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
    uint64_t x = block_seed(lbn, id), id64 = id;
    uint64_t words[VD_BLOCK_SIZE / 8];
    words[0] = lbn;
    words[1] = id64;
    for (unsigned i = 2; i < VD_BLOCK_SIZE / 8; i++) {
        VT_XORSHIFT_STEP(x);
        words[i] = x * 0x2545F4914F6CDD1Dull;
    }
    memcpy(b, words, VD_BLOCK_SIZE);
}

int64_t vt_block_identify(const uint8_t *b, uint64_t lbn)
{
    uint64_t words[VD_BLOCK_SIZE / 8];
    memcpy(words, b, VD_BLOCK_SIZE);
    uint64_t any = 0;
    for (unsigned i = 0; i < VD_BLOCK_SIZE / 8; i++)
        any |= words[i];
    if (any == 0)
        return 0;
    uint64_t l = words[0], id = words[1];
    if (l != lbn || id == 0 || id > UINT32_MAX)
        return -1;
    uint64_t x = block_seed(lbn, (uint32_t)id);
    for (unsigned i = 2; i < VD_BLOCK_SIZE / 8; i++) {
        VT_XORSHIFT_STEP(x);
        if (words[i] != x * 0x2545F4914F6CDD1Dull)
            return -1;
    }
    return (int64_t)id;
}

struct vt_block_memo {
    uint64_t nblocks;
    uint32_t *ids;   /* per block: the id whose content is kept; 0 none */
    uint8_t *blocks; /* per block: vt_block_fill(lbn, ids[lbn]) */
};

vt_block_memo *vt_block_memo_new(uint64_t nblocks)
{
    vt_block_memo *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nblocks = nblocks;
    m->ids = calloc(nblocks ? nblocks : 1, sizeof *m->ids);
    m->blocks = malloc(nblocks ? nblocks * VD_BLOCK_SIZE : 1);
    if (!m->ids || !m->blocks) {
        vt_block_memo_free(m);
        return NULL;
    }
    return m;
}

void vt_block_memo_free(vt_block_memo *m)
{
    if (!m)
        return;
    free(m->ids);
    free(m->blocks);
    free(m);
}

int64_t vt_block_memo_identify(vt_block_memo *m, const uint8_t *b, uint64_t lbn)
{
    if (lbn >= m->nblocks)
        return vt_block_identify(b, lbn);
    uint64_t l, id;
    memcpy(&l, b, 8);
    memcpy(&id, b + 8, 8);
    if (l != lbn || id == 0 || id > UINT32_MAX)
        return vt_block_identify(b, lbn); /* zeros or foreign content */
    uint8_t *want = m->blocks + lbn * VD_BLOCK_SIZE;
    if (m->ids[lbn] != id) {
        vt_block_fill(want, lbn, (uint32_t)id);
        m->ids[lbn] = (uint32_t)id;
    }
    return memcmp(want, b, VD_BLOCK_SIZE) == 0 ? (int64_t)id : -1;
}

uint8_t *vt_host_mem_copy(vd_host *h, uint64_t *size)
{
    const uint8_t *live = vd_host_mem_data(h, size);
    uint8_t *copy = malloc(*size);
    assert_non_null(copy);
    memcpy(copy, live, *size);
    return copy;
}

vd_host *vt_host_mem_from(const uint8_t *bytes, uint64_t size)
{
    vd_host *h = NULL;
    assert_int_equal(vd_host_mem_new(&h), VD_OK);
    assert_int_equal(vd_host_mem_set(h, bytes, size), VD_OK);
    return h;
}
