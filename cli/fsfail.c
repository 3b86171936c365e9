/* Messages for volume operations: the image, the path inside it, the
 * cause, and for an integrity failure the block that failed, so a user can
 * tell which file of a tampered image is affected (DESIGN §7). */
#include <stdlib.h>
#include <string.h>

#include "copy.h"

static const char *fs_detail(vd_err e)
{
    switch (e) {
    case VD_ERR_NOSPC:
        return "the volume is full";
    case VD_ERR_BUSY:
        return "another program has it open for writing";
    case VD_ERR_EXIST:
        return "FAT names ignore case: another name may clash with it";
    case VD_ERR_FAILED:
        return "an earlier integrity failure made the image refuse further use";
    default:
        return NULL;
    }
}

int cli_fs_fail(const char *prog, const char *image, vd_image *img, const char *path,
                vd_err e)
{
    char subject[4096];
    if (path)
        snprintf(subject, sizeof subject, "%s: %s", image, path);
    else
        snprintf(subject, sizeof subject, "%s", image);
    vd_bad_range r;
    if ((e == VD_ERR_AUTH || e == VD_ERR_FAILED) && img &&
        vd_image_last_failure(img, &r) == VD_OK) {
        if (r.level == 0)
            cli_errorf(prog, subject, "%s at block %llu", vd_strerror(e),
                       (unsigned long long)r.first_lbn);
        else
            cli_errorf(prog, subject,
                       "%s at tree node level %u covering blocks %llu-%llu",
                       vd_strerror(e), r.level, (unsigned long long)r.first_lbn,
                       (unsigned long long)(r.first_lbn + r.nblocks - 1));
        return cli_exit_status(e);
    }
    vd_image_info ii;
    if (e == VD_ERR_NOSPC && img && vd_image_info_get(img, &ii) == VD_OK &&
        ii.failed == VD_ERR_NOSPC)
        /* A sync could not write: the host's file system is full, not the
         * volume. The image keeps its last committed state. */
        return cli_fail(prog, subject, e,
                        "the disk holding the image is full; changes since the "
                        "last sync were not saved");
    return cli_fail(prog, subject, e, fs_detail(e));
}

char *cli_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/') {
        b++;
        lb--;
    }
    int slash = !(la > 0 && a[la - 1] == '/') && lb > 0;
    char *p = malloc(la + (size_t)slash + lb + 1);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    if (slash)
        p[la] = '/';
    memcpy(p + la + (size_t)slash, b, lb + 1);
    return p;
}

char *cli_path_base(const char *p)
{
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    size_t s = n;
    while (s > 0 && p[s - 1] != '/')
        s--;
    char *b = malloc(n - s + 1);
    if (!b)
        return NULL;
    memcpy(b, p + s, n - s);
    b[n - s] = 0;
    return b;
}

char *cli_path_dir(const char *p)
{
    size_t n = strlen(p);
    while (n > 0 && p[n - 1] == '/')
        n--;
    while (n > 0 && p[n - 1] != '/')
        n--;
    while (n > 1 && p[n - 1] == '/')
        n--;
    if (n == 0)
        return strdup("/");
    return strndup(p, n);
}
