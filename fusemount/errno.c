/* vd_err -> errno, in one table (STYLE "Errors"; fuse2fs's
 * translate_error). Where Linux vfat answers a case with a particular
 * errno, the same one is used, so programs see a FAT mount behave alike. */
#include <errno.h>
#include <string.h>
#include <syslog.h>

#include "vhdmount.h"

int vmnt_errno(vd_err e)
{
    switch (e) {
    case VD_OK:
        return 0;
    /* Authentication, rollback and a sticky-failed handle all mean "these
     * bytes cannot be trusted": EIO, as a disk with a bad sector. */
    case VD_ERR_IO:
    case VD_ERR_AUTH:
    case VD_ERR_ROLLBACK:
    case VD_ERR_FAILED:
        return EIO;
    case VD_ERR_CORRUPT:
        return EUCLEAN; /* as ext4 and fat report it */
    case VD_ERR_WRONG_KEY:
        return EACCES;
    case VD_ERR_NOSPC:
        return ENOSPC;
    case VD_ERR_INVAL:
        return EINVAL;
    case VD_ERR_NOMEM:
        return ENOMEM;
    case VD_ERR_UNSUPPORTED:
        return EOPNOTSUPP;
    case VD_ERR_BUSY:
        return EBUSY;
    case VD_ERR_READONLY:
        return EROFS;
    case VD_ERR_RANGE:
        return EINVAL;
    case VD_ERR_NOENT:
        return ENOENT;
    case VD_ERR_EXIST:
        return EEXIST;
    case VD_ERR_NOTDIR:
        return ENOTDIR;
    case VD_ERR_ISDIR:
        return EISDIR;
    case VD_ERR_NOTEMPTY:
        return ENOTEMPTY;
    case VD_ERR_NAME:
        return EINVAL;
    case VD_ERR_FBIG:
        return EFBIG;
    case VD_ERR_MFILE:
        return EMFILE;
    case VD_ERR_PERM:
        return EPERM;
    case VD_ERR_LOOP:
        return ELOOP;
    /* An anchor that cannot advance: the sync is not acknowledged. */
    case VD_ERR_ANCHOR_MISMATCH:
    case VD_ERR_ANCHOR_UNREACHABLE:
    case VD_ERR_ANCHOR_MISSING:
    case VD_ERR_ANCHOR_DENIED:
        return EIO;
    case VD_ERR_REKEY:
        return EBUSY;
    }
    return EIO;
}

int vmnt_name_errno(const char *path)
{
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    size_t units = 0;
    for (const unsigned char *p = (const unsigned char *)last; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;                  /* continuation byte */
        units += (*p >= 0xF0) ? 2 : 1; /* 4-byte sequences are surrogate pairs */
    }
    return units > 255 ? ENAMETOOLONG : EINVAL;
}

int vmnt_fail(vmnt_ctx *c, const char *what, const char *path, vd_err e)
{
    if (e == VD_ERR_AUTH) {
        vd_bad_range r;
        if (vd_image_last_failure(c->ci.img, &r) != VD_OK)
            vmnt_log(c, LOG_ERR,
                     "%s: %s: integrity failure (block unknown); returning EIO", path,
                     what);
        else if (r.level == 0)
            vmnt_log(c, LOG_ERR,
                     "%s: %s: integrity failure in logical block %llu; returning EIO",
                     path, what, (unsigned long long)r.first_lbn);
        else
            vmnt_log(c, LOG_ERR,
                     "%s: %s: integrity failure in a level-%u tree node covering logical "
                     "blocks %llu-%llu; returning EIO",
                     path, what, r.level, (unsigned long long)r.first_lbn,
                     (unsigned long long)(r.first_lbn + r.nblocks - 1));
    }
    if (e == VD_ERR_NAME)
        return vmnt_name_errno(path);
    return vmnt_errno(e);
}
