/* Owners and permission bits as Linux vfat presents them (fs/fat/inode.c
 * fat_make_mode, fs/fat/file.c fat_setattr and fat_sanitize_mode): FAT
 * stores no owner and no mode, only a read-only attribute, so the mount
 * options say who owns everything and which bits show:
 *   uid= gid=      owner (default: the user who mounts)
 *   umask=         mask for files and directories (default: the process
 *                  umask); dmask= and fmask= for one kind; the last wins
 *   showexec       x bits only for names ending in .exe, .com or .bat
 *   quiet          chown/chmod that cannot be stored succeed silently
 * A file is rwxrwxrwx less its mask (executable unless a mask says
 * otherwise), without w when it is read-only; a directory rwxrwxrwx less
 * dmask; a symbolic link rwxrwxrwx. No convention keeps per-file Unix
 * modes in a FAT volume that fsck.fat and mtools read as plain FAT (UMSDOS
 * kept them in an extra file per directory and left Linux in 2.6.11), so
 * these vfat semantics are the contract (vhdmount(8)). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhdmount.h"

enum { KEY_UID, KEY_GID, KEY_UMASK, KEY_DMASK, KEY_FMASK, KEY_SHOWEXEC, KEY_QUIET };

static const struct fuse_opt MODE_OPTS[] = {
    FUSE_OPT_KEY("uid=", KEY_UID),       FUSE_OPT_KEY("gid=", KEY_GID),
    FUSE_OPT_KEY("umask=", KEY_UMASK),   FUSE_OPT_KEY("dmask=", KEY_DMASK),
    FUSE_OPT_KEY("fmask=", KEY_FMASK),   FUSE_OPT_KEY("showexec", KEY_SHOWEXEC),
    FUSE_OPT_KEY("quiet", KEY_QUIET),    FUSE_OPT_END,
};

/* A number in base (10 for ids, 8 for masks) up to max; -1 if not. */
static long long opt_number(const char *arg, int base, long long max)
{
    const char *v = strchr(arg, '=');
    if (!v || !v[1])
        return -1;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v + 1, &end, base);
    if (errno || *end || n < 0 || n > max || v[1] == '-' || v[1] == '+')
        return -1;
    return n;
}

static int mode_opt(void *data, const char *arg, int key, struct fuse_args *out)
{
    (void)out;
    vmnt_ctx *c = data;
    long long n = 0;
    switch (key) {
    case KEY_UID:
    case KEY_GID:
        n = opt_number(arg, 10, 0xFFFFFFFELL); /* (uid_t)-1 means "unchanged" */
        break;
    case KEY_UMASK:
    case KEY_DMASK:
    case KEY_FMASK:
        n = opt_number(arg, 8, 0777);
        break;
    case KEY_SHOWEXEC:
        c->showexec = 1;
        return 0;
    case KEY_QUIET:
        c->quiet = 1;
        return 0;
    default:
        return 1; /* not ours: FUSE's */
    }
    if (n < 0) {
        cli_errorf(c->prog, NULL, "-o %s: expected %s", arg,
                   key == KEY_UID || key == KEY_GID ? "a decimal id" : "an octal mask (0..0777)");
        return -1;
    }
    if (key == KEY_UID)
        c->uid = (uid_t)n;
    else if (key == KEY_GID)
        c->gid = (gid_t)n;
    if (key == KEY_UMASK || key == KEY_DMASK)
        c->dmask = (mode_t)n;
    if (key == KEY_UMASK || key == KEY_FMASK)
        c->fmask = (mode_t)n;
    return 0;
}

int vmnt_modes_parse(struct fuse_args *args, vmnt_ctx *c)
{
    c->uid = getuid();
    c->gid = getgid();
    mode_t u = umask(0); /* vfat's default mask: the mounting process's umask */
    umask(u);
    c->fmask = c->dmask = u & 0777;
    return fuse_opt_parse(args, c, MODE_OPTS, mode_opt) == 0 ? 0 : CLI_EXIT_USAGE;
}

/* vfat's is_exec: the 8.3 extension, i.e. up to 3 characters after the
 * last dot of the name (not a leading one). */
static int name_is_exec(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return 0;
    char ext[4] = {0};
    strncpy(ext, dot + 1, 3);
    return strcasecmp(ext, "exe") == 0 || strcasecmp(ext, "com") == 0 ||
           strcasecmp(ext, "bat") == 0;
}

mode_t vmnt_mode(const vmnt_ctx *c, const vd_stat *vs, const char *name)
{
    if (vs->is_link)
        return S_IFLNK | 0777;
    if (vs->is_dir) /* vfat without rodir: a directory's read-only bit shows nothing */
        return S_IFDIR | (0777 & ~c->dmask);
    mode_t m = (c->showexec && !(name && name_is_exec(name))) ? 0666 : 0777;
    if (vs->attr & VD_ATTR_READONLY)
        m &= ~(mode_t)0222;
    return S_IFREG | (m & ~c->fmask);
}

/* fat_sanitize_mode: may mode be stored? Of the r and x bits, all that the
 * mask lets show must stay as shown; of the w bits, all or none (none only
 * where the read-only attribute can say so: files whose mask shows some w
 * bit). *ro is the read-only attribute that stores it. */
static int mode_storable(const vmnt_ctx *c, const vd_stat *vs, mode_t cur, mode_t mode,
                         int *ro)
{
    mode_t mask = vs->is_dir ? c->dmask : c->fmask;
    mode_t perm = mode & 0777 & ~mask, w = 0222 & ~mask;
    if ((perm & 0555) != (cur & 0555))
        return 0;
    int can_hold_ro = !vs->is_dir && w != 0;
    if ((perm & 0222) != w && !(can_hold_ro && (perm & 0222) == 0))
        return 0;
    *ro = can_hold_ro && (perm & 0222) == 0;
    return 1;
}

static int chmod_set(vmnt_ctx *c, const char *path, const char *name, mode_t mode)
{
    vd_stat vs;
    vd_err e = vd_fs_lstat(c->ci.fs, path, &vs);
    if (e != VD_OK)
        return vmnt_fail(c, "chmod", path, e);
    if (vs.is_link)
        return EOPNOTSUPP; /* fchmodat(AT_SYMLINK_NOFOLLOW): Linux's answer */
    /* Set-id and sticky bits cannot be stored: EPERM (0 with quiet). */
    if (mode & ~(mode_t)(S_IFMT | 0777))
        return c->quiet ? 0 : EPERM;
    /* Anything else FAT cannot hold is ignored without an error, as vfat
     * does ("too old behavior" to change, says fs/fat/file.c). */
    int ro;
    if (!mode_storable(c, &vs, vmnt_mode(c, &vs, name), mode, &ro))
        return 0;
    if (vs.is_dir || ro == !!(vs.attr & VD_ATTR_READONLY))
        return 0;
    e = vd_fs_set_attr(c->ci.fs, path, ro ? VD_ATTR_READONLY : 0, VD_ATTR_READONLY);
    return e == VD_OK ? 0 : vmnt_fail(c, "chmod", path, e);
}

int vmnt_modes_set(vmnt_ctx *c, const char *path, const char *name, const struct stat *attr,
                   int to_set)
{
    /* chown first, as chown(1) then chmod would: other owners are EPERM. */
    uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
    gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
    if (((uid != (uid_t)-1 && uid != c->uid) || (gid != (gid_t)-1 && gid != c->gid)) &&
        !c->quiet)
        return EPERM;
    if (to_set & FUSE_SET_ATTR_MODE)
        return chmod_set(c, path, name, attr->st_mode);
    return 0;
}
