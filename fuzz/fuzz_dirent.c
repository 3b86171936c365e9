/* fuzz_dirent: a directory full of fuzzed entries (fat/dir.c and names.c:
 * long-name runs, checksums, 8.3 aliases, deleted and volume entries,
 * first clusters and sizes), written over the root directory of a real
 * volume inside a valid encrypted image, then used through the public
 * API: every entry listed, stat'ed and read, names looked up, and files
 * created, renamed and removed beside the fuzzed ones (alias generation
 * and free-slot search over hostile slots).
 *
 * Input: the bytes of the root directory's clusters, from the first one
 * (512-byte clusters; about 10 of them). */
#include <string.h>

#include "fz_common.h"

static fz_volume vol;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_rng_install();
    if (fz_volume_setup(&vol) != VD_OK || vol.root_n < 2)
        fz_die(__FILE__, __LINE__, "cannot build the volume template");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    vd_err e = fz_volume_open(&vol, &img);
    FZ_CHECK(e == VD_OK);
    for (uint32_t i = 0; i < vol.root_n && e == VD_OK; i++) {
        size_t at = (size_t)i * vol.cluster_bytes;
        if (at >= size)
            break;
        size_t n = size - at < vol.cluster_bytes ? size - at : vol.cluster_bytes;
        e = fz_patch(img, vol.vol_bytes, vol.root_off[i], data + at, n);
    }
    FZ_CHECK(e == VD_OK);
    if (vd_fs_mount(img, NULL, &fs) == VD_OK) {
        static const char *const names[] = {"/README.TXT", "/readme.md", "/LONGFI~1.TXT",
                                            "/Long file name with spaces.txt", "/dir one",
                                            "/DIRONE~1", "/EMPTY", "/nonexistent"};
        vd_stat st;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            (void)vd_fs_stat(fs, names[i], &st);
        fz_walk(fs);
        fz_mutate(fs);
        (void)vd_fs_unmount(fs);
    }
    (void)vd_image_close(img);
    return 0;
}
