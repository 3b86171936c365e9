/* What FAT cannot store, answered as Linux vfat answers it: link and
 * mknod are EPERM (vfat has no such operations, so the VFS says EPERM),
 * extended attributes are ENOTSUP. (Modes and owners: modes.c; symbolic
 * links are stored: ops_tree.c.) */
#include <errno.h>

#include "vhdmount.h"

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
    ops->link = op_link;
    ops->mknod = op_mknod;
    ops->setxattr = op_setxattr;
    ops->getxattr = op_getxattr;
    ops->listxattr = op_listxattr;
    ops->removexattr = op_removexattr;
}
