/* vhdtool resize IMAGE SIZE: grow the image and its FAT32 volume in place
 * (vd_fs_grow, one crash-safe commit; docs/FORMAT.md §4). SIZE is the
 * volume's size, as mkvhd --size takes it. */
#include <stdio.h>

#include "vhdtool.h"

int vt_cmd_resize(const vt_cmd *cmd, vt_opts *o)
{
    const char *image = o->pos[0];
    uint64_t want;
    if (cli_size_parse(o->pos[1], &want) != 0)
        return vt_usage_error(cmd, "SIZE: not a size like 512M or 2G: '%s'", o->pos[1]);
    want = want / VD_BLOCK_SIZE * VD_BLOCK_SIZE;
    cli_image ci;
    int rc = vt_open_fs(o, 0, &ci);
    if (rc)
        return rc;
    vd_image_info info;
    vd_err e = vd_image_info_get(ci.img, &info);
    uint64_t have = info.nblocks * VD_BLOCK_SIZE, limit = 0;
    char s1[32], s2[32];
    if (e == VD_OK)
        e = vd_fs_grow_limit(ci.fs, &limit);
    if (e != VD_OK) {
        rc = cli_fail(VT_PROG, image, e, NULL);
    } else if (want == have) {
        if (!o->quiet)
            fprintf(stderr, "%s: %s: already %s\n", VT_PROG, image,
                    cli_size_format(have, s1, sizeof s1));
    } else if (want < have) {
        cli_errorf(VT_PROG, image, "shrinking (%s to %s) is not supported: make a new "
                   "image with mkvhd --size and copy the files over",
                   cli_size_format(have, s1, sizeof s1),
                   cli_size_format(want, s2, sizeof s2));
        rc = CLI_EXIT_FAIL;
    } else if (want > limit) {
        cli_errorf(VT_PROG, image, "%s is past what the volume's FAT can address: the "
                   "largest size possible is %s (%llu bytes); for more, make a new image "
                   "with mkvhd --size (and --max-size to leave room to grow) and copy the "
                   "files over",
                   cli_size_format(want, s1, sizeof s1),
                   cli_size_format(limit, s2, sizeof s2), (unsigned long long)limit);
        rc = CLI_EXIT_FAIL;
    } else {
        uint64_t capacity = 0;
        e = vd_fs_grow(ci.fs, want);
        if (e == VD_ERR_NOSPC && vd_host_nbd_capacity(ci.host, &capacity) == VD_OK) {
            cli_errorf(VT_PROG, image, "the NBD export keeps its size: it holds an image "
                       "of at most %s (this size needs a bigger export)",
                       cli_size_format(capacity, s1, sizeof s1));
            rc = CLI_EXIT_FAIL;
        } else if (e != VD_OK) {
            rc = cli_fail(VT_PROG, image, e, e == VD_ERR_NOSPC ? "no room for the bigger image file" : NULL);
        } else if (!o->quiet) {
            printf("%s: %s -> %s\n", image, cli_size_format(have, s1, sizeof s1),
                   cli_size_format(want, s2, sizeof s2));
        }
    }
    return vt_close(o, &ci, rc);
}
