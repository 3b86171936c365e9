/* The shield's workload through the vd_fs/vd_file API (docs/SHIELD.md,
 * "The workload"). Generation g of the volume:
 *
 *   /shield/state              "generation g\n"
 *   /shield/big.bin            192 KiB: [0, 64 KiB) text "b" of g, the
 *                              rest text "a" of g (written as 256 KiB of
 *                              "a", synced, then its head overwritten in
 *                              place and the file truncated, synced again:
 *                              those blocks have two versions on disk)
 *   /shield/docs/note.txt      10000 bytes of text "n" of g, written as
 *                              /shield/tmp-note.txt and renamed over it
 *   /shield/docs/gen-1..gen-g  one directory per generation
 *
 * Every 64-byte line of text holds the plaintext marker SH_MARKER, the
 * generation, the text's name and the line's offset, so a leaked block
 * is recognisable and a misplaced or stale one detected. */
#ifndef SHIELD_WORKLOAD_H
#define SHIELD_WORKLOAD_H

#include <stdint.h>
#include <stdio.h>

#include <vdisk/fs.h>

#define SH_MARKER "SHIELD-PLAINTEXT-MARKER"

typedef struct sh_work {
    vd_fs *fs;
    FILE *out;      /* progress lines */
    char what[512]; /* the step or path of the first failure */
    int mismatch;   /* the library said OK but the bytes were wrong */
} sh_work;

/* The generation recorded in /shield/state; 0 on a volume the shield has
 * never run on (no /shield). */
vd_err sh_work_generation(sh_work *w, uint32_t *gen);
/* Check that the volume holds generation gen exactly (and print the
 * files' timestamps). On a difference: w->mismatch, VD_ERR_CORRUPT. */
vd_err sh_work_verify(sh_work *w, uint32_t gen);
/* Turn the volume of generation gen - 1 into generation gen, with the two
 * syncs described above. */
vd_err sh_work_write(sh_work *w, uint32_t gen);
/* Print the first line of a provisioned file (put there by the image
 * builder) so the test can compare it. */
vd_err sh_work_show(sh_work *w, const char *path);

#endif
