/* What FAT cannot store, answered as Linux vfat answers it: link and
 * mknod are EPERM (vfat has no such operations, so the VFS says EPERM),
 * extended attributes are ENOTSUP. (Modes and owners: modes.c; symbolic
 * links are stored: ops_tree.c.)
 *
 * The xattr calls answer ENOSYS, which the kernel turns into ENOTSUP for
 * the caller and remembers for the mount: it then answers every later
 * one itself. With ENOTSUP it would ask again each time, and it asks at
 * every write(2) (security.capability, to know whether the write must
 * clear it): one more round trip through this daemon per write. */
#include <errno.h>

#include "vhdmount.h"

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino;
    (void)newparent;
    (void)newname;
    (void)fuse_reply_err(req, EPERM);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
    (void)parent;
    (void)name;
    (void)mode;
    (void)rdev;
    (void)fuse_reply_err(req, EPERM);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
    (void)ino;
    (void)name;
    (void)value;
    (void)size;
    (void)flags;
    (void)fuse_reply_err(req, ENOSYS);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    (void)ino;
    (void)name;
    (void)size;
    (void)fuse_reply_err(req, ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    (void)ino;
    (void)size;
    (void)fuse_reply_err(req, ENOSYS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino;
    (void)name;
    (void)fuse_reply_err(req, ENOSYS);
}

void vmnt_ops_refused(struct fuse_lowlevel_ops *ops)
{
    ops->link = op_link;
    ops->mknod = op_mknod;
    ops->setxattr = op_setxattr;
    ops->getxattr = op_getxattr;
    ops->listxattr = op_listxattr;
    ops->removexattr = op_removexattr;
}
