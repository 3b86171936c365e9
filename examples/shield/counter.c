/* A monotonic counter file on the trusted side (counter.h). */
#include "counter.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

#define CNT_MAGIC "VDSHCNT1"
#define CNT_BYTES 16

static int counter_file_read(const char *path, uint64_t *v)
{
    uint8_t b[CNT_BYTES + 1];
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, b, sizeof b); /* one byte more: a longer file is bad */
    if (n < 0)
        rc = -errno;
    else if (n != CNT_BYTES || memcmp(b, CNT_MAGIC, 8) != 0)
        rc = -EBADMSG;
    else
        *v = sh_get_le64(b + 8);
    close(fd);
    return rc;
}

static int fsync_dir_of(const char *path)
{
    char dir[SH_COUNTER_PATH_MAX];
    const char *slash = strrchr(path, '/');
    int rc = 0;
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int counter_file_write(const char *path, uint64_t v)
{
    char tmp[SH_COUNTER_PATH_MAX + 8];
    uint8_t b[CNT_BYTES];
    int rc = 0;
    memcpy(b, CNT_MAGIC, 8);
    sh_put_le64(b + 8, v);
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, b, sizeof b);
    if (n != (ssize_t)sizeof b)
        rc = n < 0 ? -errno : -EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir_of(path);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

static int counter_read(void *ctx, uint64_t *value)
{
    sh_counter *c = ctx;
    uint64_t v = 0;
    int rc = counter_file_read(c->path, &v);
    if (rc != 0)
        return rc;
    if (v < c->highest)
        return -ESTALE; /* someone rolled the counter file back */
    c->highest = v;
    *value = v;
    return 0;
}

static int counter_advance(void *ctx, uint64_t value)
{
    sh_counter *c = ctx;
    uint64_t cur = 0;
    int rc = counter_read(c, &cur);
    if (rc != 0)
        return rc;
    if (value < cur)
        return -EINVAL; /* never backwards */
    if (value == cur)
        return 0;
    rc = counter_file_write(c->path, value);
    if (rc == 0)
        c->highest = value;
    return rc;
}

int sh_counter_open(sh_counter *c, const char *path, int create)
{
    uint64_t v = 0;
    memset(c, 0, sizeof *c);
    if (strlen(path) >= sizeof c->path)
        return -ENAMETOOLONG;
    strcpy(c->path, path);
    int rc = counter_file_read(path, &v);
    if (rc == -ENOENT && create)
        rc = counter_file_write(path, 0);
    else if (rc == 0)
        c->highest = v;
    return rc;
}

vd_anchor sh_counter_anchor(sh_counter *c)
{
    vd_anchor a = {.ctx = c, .read = counter_read, .advance = counter_advance};
    return a;
}
