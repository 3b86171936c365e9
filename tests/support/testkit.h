/* Small things every cmocka suite needs: an error-checking macro that
 * prints both codes and the place, a seeded xorshift generator, and
 * self-identifying block contents (a block says which write produced it,
 * so crash and rollback tests can tell exactly which version they read). */
#ifndef VD_TESTKIT_H
#define VD_TESTKIT_H

#include <stdint.h>

#include "vdisk/host.h"
#include "vdisk/vdisk.h"

/* Fails the running cmocka test unless got == want; the message names the
 * file, the line and both errors, then the printf-style context. */
#define VT_EXPECT_ERR(got, want, ...)                                         \
    do {                                                                      \
        vd_err got_ = (got), want_ = (want);                                  \
        if (got_ != want_) {                                                  \
            print_error("%s:%d: got %d (%s), want %d (%s): ", __FILE__,       \
                        __LINE__, (int)got_, vd_strerror(got_), (int)want_,   \
                        vd_strerror(want_));                                  \
            print_error(__VA_ARGS__);                                         \
            print_error("\n");                                                \
            fail();                                                           \
        }                                                                     \
    } while (0)

/* xorshift64*: deterministic from its seed (never 0). */
uint64_t vt_rand(uint64_t *state);
/* The seed the environment variable var gives (strtoull, base 0), else
 * dflt: a failing run's printed seed is rerun with var set to it. */
uint64_t vt_seed_from_env(const char *var, uint64_t dflt);

/* Block content for (lbn, id): lbn and id in the first 16 bytes, then a
 * pattern derived from both; id 0 is the never-written block, all zeros. */
void vt_block_fill(uint8_t *b, uint64_t lbn, uint32_t id);
/* The id whose content b holds for lbn (0 for zeros), or -1 when it is no
 * content vt_block_fill ever makes for lbn. */
int64_t vt_block_identify(const uint8_t *b, uint64_t lbn);

/* vt_block_identify for a harness that checks every block of thousands of
 * crash states, which mostly hold what the state before held: per block
 * number the memo keeps the content vt_block_fill made for the id last
 * seen there, so a block that still holds it costs one memcmp instead of
 * generating the pattern again. Same answers as vt_block_identify (the
 * comparison is still with the whole generated block). */
typedef struct vt_block_memo vt_block_memo;
/* A memo for block numbers [0, nblocks); NULL when out of memory. */
vt_block_memo *vt_block_memo_new(uint64_t nblocks);
void vt_block_memo_free(vt_block_memo *m);
/* vt_block_identify(b, lbn); lbn < the memo's nblocks. */
int64_t vt_block_memo_identify(vt_block_memo *m, const uint8_t *b, uint64_t lbn);

/* A copy of memory host h's image as it is now (*size bytes, the caller
 * frees it): the state a test puts back later, as a host rolling the image
 * back would. Fails the running cmocka test when out of memory. */
uint8_t *vt_host_mem_copy(vd_host *h, uint64_t *size);
/* A new memory host holding a copy of bytes[0, size): an image put back,
 * or a crash state opened on its own. Fails the running cmocka test when
 * it cannot be made. */
vd_host *vt_host_mem_from(const uint8_t *bytes, uint64_t size);

#endif
