/* Helpers shared by the FAT32 tests: images on the memory host, raw
 * export/import of the volume (every logical block in order), error names
 * and assertion macros that print both sides. */
#ifndef VD_TEST_FAT_UTIL_H
#define VD_TEST_FAT_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/vdisk.h"

typedef struct fu_disk {
    vd_host *host;
    vd_image *img;
    uint64_t nblocks;
} fu_disk;

const char *fu_ename(vd_err e);

/* New image of nblocks on a fresh memory host (asserts on failure). */
void fu_disk_new(fu_disk *d, uint64_t nblocks);
/* Close and reopen the image on the same host (persistence tests). */
void fu_disk_reopen(fu_disk *d);
void fu_disk_free(fu_disk *d);
/* dst: a new memory host holding src's bytes as they are now (what a
 * crash at this moment would leave), opened writable as after a crash. */
void fu_disk_snapshot(fu_disk *src, fu_disk *dst);

/* The volume as raw bytes (malloc'd, nblocks * 4096). */
uint8_t *fu_export(fu_disk *d);
int fu_export_file(fu_disk *d, const char *path);
/* Write raw bytes into the image block by block (size padded with
 * zeros to whole blocks; must fit). */
void fu_import(fu_disk *d, const uint8_t *raw, size_t size);
/* The same from a file, into a fresh image (all-zero blocks skipped). */
int fu_import_file(fu_disk *d, const char *path);

/* Deterministic content: byte i of stream `id`. */
void fu_fill(uint8_t *buf, size_t len, uint64_t id, uint64_t off);
/* Run a shell command (the interop tests' host tools), stderr with
 * stdout; on failure print both with the exit status. Returns the exit
 * status (128 when it did not exit). */
int fu_run(const char *cmd);
/* Create or replace path holding len bytes of stream id (asserts). */
void fu_put_file(vd_fs *fs, const char *path, uint64_t id, size_t len);

#define FU_EXPECT(got, want, ...)                                                       \
    do {                                                                                \
        vd_err got_ = (got), want_ = (want);                                            \
        if (got_ != want_) {                                                            \
            print_error("%s:%d: got %s, want %s: ", __FILE__, __LINE__, fu_ename(got_), \
                        fu_ename(want_));                                               \
            print_error(__VA_ARGS__);                                                   \
            print_error("\n");                                                          \
            fail();                                                                     \
        }                                                                               \
    } while (0)
#define FU_OK(expr) FU_EXPECT((expr), VD_OK, "%s", #expr)

#endif
