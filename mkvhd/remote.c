/* mkvhd onto an NBD export (IMAGE is a URI). The export exists and keeps
 * its size, so there is no temporary file and no rename: the image is
 * written in place and is an image only once its header, written last by
 * the library, is there. An export that already holds a vdisk image is
 * replaced only with --force, as an existing file would be. */
#include <stdio.h>

#include "mkvhd.h"

#define P MKVHD_PROG

int mkvhd_remote_check(const mkvhd_opts *o, uint64_t *capacity)
{
    vd_host *host = NULL;
    int rc = cli_host_open(P, o->image, 0, &host, NULL);
    if (rc != 0)
        return rc;
    vd_image_info info;
    if (vd_host_nbd_capacity(host, capacity) != VD_OK) {
        cli_errorf(P, o->image, "not an NBD export");
        rc = CLI_EXIT_FAIL;
    } else if (!o->force && vd_image_probe(host, &info) == VD_OK) {
        cli_errorf(P, o->image, "the export holds a vdisk image (give --force to replace it)");
        rc = CLI_EXIT_FAIL;
    }
    vd_host_close(host);
    return rc;
}

/* The image bytes of a volume of vol_bytes; 0 when no layout exists. */
static uint64_t image_bytes(const mkvhd_opts *o, uint64_t vol_bytes)
{
    vd_create_opts c = {.nblocks = vol_bytes / VD_BLOCK_SIZE, .log_blocks = o->log_blocks};
    uint64_t bytes = 0;
    return vd_image_bytes_for(&c, &bytes) == VD_OK ? bytes : 0;
}

int mkvhd_remote_fit(const mkvhd_opts *o, uint64_t capacity, int fixed,
                     uint64_t *vol_bytes)
{
    char s1[16], s2[16], s3[16];
    if (fixed) {
        uint64_t need = image_bytes(o, *vol_bytes);
        if (need == 0 || need > capacity) {
            cli_errorf(P, o->image,
                       "the export is too small: a %s volume needs %s, the export "
                       "holds an image of at most %s",
                       cli_size_format(*vol_bytes, s1, sizeof s1),
                       cli_size_format(need, s2, sizeof s2),
                       cli_size_format(capacity, s3, sizeof s3));
            return CLI_EXIT_FAIL;
        }
        return 0;
    }
    /* The largest volume whose image fits: the layout's overhead grows
     * with the volume, so search (the size is monotonic in the volume). */
    uint64_t lo = 0, hi = capacity / VD_BLOCK_SIZE;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        uint64_t need = image_bytes(o, mid * VD_BLOCK_SIZE);
        if (need != 0 && need <= capacity)
            lo = mid;
        else
            hi = mid - 1;
    }
    *vol_bytes = lo * VD_BLOCK_SIZE;
    if (*vol_bytes < CLI_FAT32_MIN_BYTES) {
        cli_errorf(P, o->image,
                   "the export is too small: it holds an image of at most %s, a "
                   "FAT32 volume needs at least %s",
                   cli_size_format(capacity, s1, sizeof s1),
                   cli_size_format(CLI_FAT32_MIN_BYTES, s2, sizeof s2));
        return CLI_EXIT_FAIL;
    }
    return 0;
}
