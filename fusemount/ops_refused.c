/* What FAT cannot store, answered as Linux vfat answers it (no "quiet"
 * option): chmod that would change a permission bit FAT cannot keep and
 * chown to another owner are EPERM, symlink/link/mknod are EPERM (vfat
 * has no such operations, so the VFS says EPERM), extended attributes are
 * ENOTSUP. Requests that change nothing succeed, so `cp -a` and `rsync
 * -a` of files with the modes shown here work. */
#include <errno.h>
#include <sys/stat.h>

#include "vhdmount.h"

static int op_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
    (void)fi;
    vd_stat vs;
    vd_err e = vd_fs_stat(vmnt_ctx_get()->ci.fs, path, &vs);
    if (e != VD_OK)
        return vmnt_fail("chmod", path, e);
    mode_t cur = vs.is_dir ? 0755 : ((vs.attr & VD_ATTR_READONLY) ? 0444 : 0644);
    /* vfat's fat_sanitize_mode with umask 022: bits the mask hides are
     * ignored; every other bit must already be as shown (there is no call
     * to store the read-only attribute). */
    return (mode & 0755) == (cur & 0755) ? 0 : -EPERM;
}

static int op_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
    (void)path;
    (void)fi;
    const vmnt_ctx *c = vmnt_ctx_get();
    if ((uid != (uid_t)-1 && uid != c->uid) || (gid != (gid_t)-1 && gid != c->gid))
        return -EPERM;
    return 0;
}

static int op_symlink(const char *target, const char *path)
{
    (void)target;
    (void)path;
    return -EPERM;
}

static int op_link(const char *from, const char *to)
{
    (void)from;
    (void)to;
    return -EPERM;
}

static int op_mknod(const char *path, mode_t mode, dev_t dev)
{
    (void)path;
    (void)mode;
    (void)dev;
    return -EPERM;
}

static int op_setxattr(const char *path, const char *name, const char *value, size_t size,
                       int flags)
{
    (void)path;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    return -ENOTSUP;
}

static int op_getxattr(const char *path, const char *name, char *value, size_t size)
{
    (void)path;
    (void)name;
    (void)value;
    (void)size;
    return -ENOTSUP;
}

static int op_listxattr(const char *path, char *list, size_t size)
{
    (void)path;
    (void)list;
    (void)size;
    return -ENOTSUP;
}

static int op_removexattr(const char *path, const char *name)
{
    (void)path;
    (void)name;
    return -ENOTSUP;
}

void vmnt_ops_refused(struct fuse_operations *ops)
{
    ops->chmod = op_chmod;
    ops->chown = op_chown;
    ops->symlink = op_symlink;
    ops->link = op_link;
    ops->mknod = op_mknod;
    ops->setxattr = op_setxattr;
    ops->getxattr = op_getxattr;
    ops->listxattr = op_listxattr;
    ops->removexattr = op_removexattr;
}
