/* Shared pieces of the libFuzzer targets (fuzz/README.md) and of the seed
 * generator (fuzz/seedgen.c, which is built without libFuzzer).
 *
 * Determinism: every template image a target builds at start-up, and
 * every seed, comes from the library itself driven by a fixed key and a
 * deterministic random generator installed into libsodium before the
 * library initialises it (fz_rng_install). So a target's templates are the
 * same bytes in every run and in the seed generator, and a reproducer
 * replays exactly. */
#ifndef VD_FZ_COMMON_H
#define VD_FZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

/* libFuzzer's entry points (declared for -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A finding: print what and where, then abort so libFuzzer saves the input. */
#define FZ_CHECK(cond)                                                                 \
    do {                                                                               \
        if (!(cond))                                                                   \
            fz_die(__FILE__, __LINE__, #cond);                                         \
    } while (0)
_Noreturn void fz_die(const char *file, int line, const char *what);

/* Replace libsodium's random source with a seeded, deterministic one; must
 * run before the first library call. fz_rng_reset restarts the sequence. */
void fz_rng_install(void);
void fz_rng_reset(void);

/* The raw master key of every fuzz image, and the key file / X25519 secret
 * key of the key-slot template. */
extern const uint8_t fz_key[VD_KEY_BYTES];
extern const uint8_t fz_keyfile[VD_KEYFILE_BYTES];
extern const uint8_t fz_x25519_sk[VD_X25519_BYTES];

/* Cache budget of every image a target opens: the default 16 MiB cache
 * would cost more per input than the parsing it serves. */
#define FZ_CACHE_BYTES (256u << 10)

/* Little helpers on byte strings. */
uint32_t fz_le32(const uint8_t *p);
void fz_put_le64(uint8_t *p, uint64_t v);
uint64_t fz_le64(const uint8_t *p);

/* Recompute the checksums the fuzzer cannot forge by mutation (the xxh64
 * of the header block, the VHD footer's byte sum), so inputs get past them
 * to the field checks behind. */
void fz_fix_header(uint8_t blk[VD_BLOCK_SIZE]);
void fz_fix_footer(uint8_t foot[512]);

/* ---- images ----------------------------------------------------------------
 * A small image (fanout 2, so a deep tree) with a recognisable pattern in
 * some blocks, synced, on a memory host; its bytes are copied into *bytes
 * (malloc'd). nblocks logical blocks. */
vd_err fz_small_image(uint32_t nblocks, uint8_t **bytes, uint64_t *size);
/* fz_small_image(16) followed by FZ_LOG_COMMITS syncs of one or two
 * blocks, each a log commit (format 6), taken before the close: the
 * newest record names a leaf-version log of FZ_LOG_COMMITS blocks. */
#define FZ_LOG_COMMITS 3u
vd_err fz_log_image(uint8_t **bytes, uint64_t *size);
/* The same with key slots instead of a raw key: a KEYFILE slot (fz_keyfile)
 * and a SEALED slot (to the public key of fz_x25519_sk). */
vd_err fz_slot_image(uint8_t **bytes, uint64_t *size);

/* A FAT32 volume template: a 40 MiB image formatted with 512-byte clusters,
 * holding a small tree of files and directories with long names, synced.
 * Output as for fz_small_image. */
#define FZ_VOL_BLOCKS 10240u
vd_err fz_volume_image(uint8_t **bytes, uint64_t *size);

/* ---- copy-on-write host -----------------------------------------------------
 * A vd_host over a read-only template (the bytes of an image file): writes
 * land in private copies of the 4 KiB pages they touch, so resetting the
 * host between fuzz inputs costs only what the input changed. */
typedef struct fz_cow fz_cow;
vd_err fz_cow_new(const uint8_t *base, uint64_t size, fz_cow **out);
const vd_host *fz_cow_host(fz_cow *c);
void fz_cow_reset(fz_cow *c);
void fz_cow_free(fz_cow *c);

/* Open h with fz_key, read-only or read-write, and read logical blocks
 * [0, nblocks); read-write also writes block wlbn, syncs and reads them
 * again. A failed open must leave no handle. FZ_VERBOSE=1 prints what the
 * open returned. */
void fz_open_and_read(const vd_host *h, int writable, uint64_t nblocks, uint64_t wlbn);

/* ---- the volume template, ready to patch ------------------------------------
 * fz_volume_image on a copy-on-write host, with the volume's geometry read
 * back from its boot sector and FAT: where the FATs and the data region
 * start and where the root directory's clusters are (byte offsets in the
 * volume, i.e. in the image's logical blocks). */
#define FZ_ROOT_MAX 32u
typedef struct fz_volume {
    uint8_t *bytes;
    uint64_t size;
    fz_cow *cow;
    uint64_t vol_bytes, fat_off[2], data_off;
    uint32_t cluster_bytes, nfats;
    uint32_t root_n;
    uint64_t root_off[FZ_ROOT_MAX];
} fz_volume;
vd_err fz_volume_setup(fz_volume *v);
/* Reset the host to the template and open the image read-write. */
vd_err fz_volume_open(fz_volume *v, vd_image **img);
/* Overwrite n bytes at byte offset off of the volume (read-modify-write of
 * the blocks it covers, through vd_image_write). Out of range: ignored. */
vd_err fz_patch(vd_image *img, uint64_t vol_bytes, uint64_t off, const uint8_t *p, size_t n);

/* ---- walking a mounted volume -----------------------------------------------
 * List every directory (depth-first, bounded), stat every entry, read every
 * file (bounded bytes), statfs. Errors from a malformed volume are fine;
 * the point is that none of them crashes. */
void fz_walk(vd_fs *fs);
/* A few writes through the volume (create, write, mkdir, rename, unlink,
 * truncate) so allocation and directory insertion run over fuzzed state. */
void fz_mutate(vd_fs *fs);

#endif
