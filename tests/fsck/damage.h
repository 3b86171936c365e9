/* Building and damaging test images for vhdfsck (tests/fsck/ cases and
 * tests/test_fsck.c). Volume-level damage goes through the image as valid,
 * authenticated but inconsistent FAT32 (what a buggy writer could leave);
 * integrity damage flips ciphertext bytes on the host (what an attacker
 * does). */
#ifndef VD_TEST_FSCK_DAMAGE_H
#define VD_TEST_FSCK_DAMAGE_H

#include <stdint.h>

#include "vdisk/host.h"
#include "vdisk/vdisk.h"

#define DMG_NBLOCKS 8704u /* just over the FAT32 minimum with 512 B clusters */
#define DMG_FANOUT 16u    /* level-1 nodes cover 64 KiB: one can sit inside a file */
#define DMG_BIG_BYTES (256u * 1024u)

/* Format the volume and write the sample tree:
 *   /HELLO.TXT  /DATA.BIN (40000 B)  /A.BIN /B.BIN (3000 B each)
 *   /BIG.BIN (256 KiB)  /docs/Long File Name.txt (5000 B) */
vd_err dmg_build(vd_image *img);
#define DMG_REPLAY_OFF 16384u /* where dmg_rewrite writes, past the first block */
/* Rewrite 64 bytes of a file at DMG_REPLAY_OFF (for replays). */
vd_err dmg_rewrite(vd_image *img, const char *path);
/* Named volume-level damage: dirty, fsinfo, fatcopy, lost, crosslink,
 * size, lfn, dupname. VD_ERR_INVAL for an unknown name. */
vd_err dmg_volume(vd_image *img, const char *what);
/* The logical block holding byte `off` of file path. */
vd_err dmg_file_block(vd_image *img, const char *path, uint64_t off, uint64_t *lbn);
/* Physical byte offsets (in the image file) of a data block and of the
 * level-1 tree node above it; the image must be closed. */
vd_err dmg_phys(const vd_host *host, uint64_t lbn, uint64_t *data_off,
                uint64_t *node_off);
/* XOR one byte at off on the host. */
vd_err dmg_flip(const vd_host *host, uint64_t off);
/* Copy the 4 KiB at off from one host to another (a replayed block). */
vd_err dmg_copy_block(const vd_host *from, const vd_host *to, uint64_t off);

#endif
