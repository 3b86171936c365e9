/* Key files (vdisk_host): 32 random bytes, created with O_CREAT|O_EXCL and
 * mode 0600, fsync'ed (and the directory entry too). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdisk/host.h"
#include "vdisk/keys.h"

static vd_err fail(int *sys_errno, int err, vd_err e)
{
    if (sys_errno)
        *sys_errno = err;
    return e;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t w = write(fd, p + put, n - put);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        put += (size_t)w;
    }
    return 0;
}

static int sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(dlen + 2);
    if (!dir)
        return ENOMEM;
    if (!slash)
        memcpy(dir, ".", 2);
    else if (dlen == 0)
        memcpy(dir, "/", 2);
    else {
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return errno;
    int err = 0;
    while (fsync(fd) != 0) {
        if (errno == EINTR)
            continue;
        if (errno != EINVAL) /* EINVAL: directories cannot be synced here */
            err = errno;
        break;
    }
    (void)close(fd);
    return err;
}

vd_err vd_keyfile_create(const char *path, uint8_t *key_out, int *sys_errno)
{
    if (sys_errno)
        *sys_errno = 0;
    if (!path || !path[0])
        return VD_ERR_INVAL;
    uint8_t *key = vd_secret_alloc(VD_KEYFILE_BYTES);
    if (!key)
        return fail(sys_errno, ENOMEM, VD_ERR_NOMEM);
    vd_err e = vd_key_generate(key);
    if (e != VD_OK) {
        vd_secret_free(key);
        return e;
    }
    int fd;
    do
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)0600);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int err = errno;
        vd_secret_free(key);
        return fail(sys_errno, err, err == EEXIST ? VD_ERR_INVAL : VD_ERR_IO);
    }
    int err = write_all(fd, key, VD_KEYFILE_BYTES);
    while (err == 0 && fsync(fd) != 0)
        if (errno != EINTR)
            err = errno;
    if (close(fd) != 0 && err == 0 && errno != EINTR)
        err = errno;
    if (err == 0)
        err = sync_parent(path);
    if (err != 0) {
        (void)unlink(path); /* never leave a partial key file behind */
        vd_secret_free(key);
        return fail(sys_errno, err, err == ENOSPC || err == EDQUOT ? VD_ERR_NOSPC
                                                                  : VD_ERR_IO);
    }
    if (key_out)
        memcpy(key_out, key, VD_KEYFILE_BYTES);
    vd_secret_free(key);
    return VD_OK;
}

vd_err vd_keyfile_read(const char *path, uint8_t *key, int *sys_errno)
{
    if (sys_errno)
        *sys_errno = 0;
    if (!path || !path[0] || !key)
        return VD_ERR_INVAL;
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return fail(sys_errno, errno, VD_ERR_IO);
    uint8_t *buf = vd_secret_alloc(VD_KEYFILE_BYTES + 1);
    if (!buf) {
        (void)close(fd);
        return fail(sys_errno, ENOMEM, VD_ERR_NOMEM);
    }
    size_t got = 0;
    int err = 0;
    while (got < VD_KEYFILE_BYTES + 1) {
        ssize_t r = read(fd, buf + got, VD_KEYFILE_BYTES + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    (void)close(fd);
    vd_err e = VD_OK;
    if (err != 0)
        e = fail(sys_errno, err, VD_ERR_IO);
    else if (got != VD_KEYFILE_BYTES)
        e = VD_ERR_INVAL; /* not a key file: exactly 32 bytes */
    else
        memcpy(key, buf, VD_KEYFILE_BYTES);
    vd_secret_free(buf);
    return e;
}
