/* Where a workload's files live: a vd_fs volume of one mode (through
 * bench_vol), or a directory of the host — a FUSE mount of a peer
 * (gocryptfs, cryfs, vhdmount) or a plain directory — through POSIX
 * calls. The workloads see only these calls, so every subject runs the
 * same code with the same seeds. For a directory, reopen cannot remount:
 * it syncs and, with --drop-caches, evicts the page cache. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PATH_CAP 4096

struct bench_tgt {
    const bench_cfg *c;
    bench_vol *vol;          /* a mode */
    char root[PATH_CAP];     /* a directory: the session's own subdirectory */
    int is_dir;
};

struct bench_fh {
    bench_tgt *t;
    vd_file *vf;
    int fd;
};

vd_err bench_tgt_new(const bench_cfg *c, const bench_subject *s, uint64_t bytes,
                     bench_tgt **out)
{
    bench_tgt *t = calloc(1, sizeof *t);
    if (!t)
        return VD_ERR_NOMEM;
    t->c = c;
    vd_err e = VD_OK;
    if (s->peer_dir) {
        t->is_dir = 1;
        snprintf(t->root, sizeof t->root, "%s/vhdbench-%ld", s->peer_dir, (long)getpid());
        if (mkdir(t->root, 0700) != 0)
            e = VD_ERR_IO;
    } else {
        e = bench_vol_new(c, s->mode, s->backend, bytes, &t->vol);
    }
    if (e != VD_OK) {
        free(t);
        return e;
    }
    *out = t;
    return VD_OK;
}

static void full_path(const bench_tgt *t, const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", t->root, path);
}

vd_err bench_tgt_open(bench_tgt *t, const char *path, int flags, bench_fh **out)
{
    bench_fh *h = calloc(1, sizeof *h);
    if (!h)
        return VD_ERR_NOMEM;
    h->t = t;
    h->fd = -1;
    vd_err e = VD_OK;
    if (!t->is_dir) {
        e = vd_file_open(bench_vol_fs(t->vol), path, flags, &h->vf);
    } else {
        int of = O_CLOEXEC;
        int acc = flags & VD_O_ACCMODE;
        of |= acc == VD_O_RDONLY ? O_RDONLY : acc == VD_O_WRONLY ? O_WRONLY : O_RDWR;
        of |= (flags & VD_O_CREAT) ? O_CREAT : 0;
        of |= (flags & VD_O_EXCL) ? O_EXCL : 0;
        of |= (flags & VD_O_TRUNC) ? O_TRUNC : 0;
        char p[PATH_CAP + 256];
        full_path(t, path, p, sizeof p);
        h->fd = open(p, of, 0600);
        if (h->fd < 0)
            e = VD_ERR_IO;
    }
    if (e != VD_OK) {
        free(h);
        return e;
    }
    *out = h;
    return VD_OK;
}

vd_err bench_fh_read(bench_fh *h, uint64_t off, void *buf, size_t n)
{
    if (h->vf) {
        size_t done = 0;
        vd_err e = vd_file_read(h->vf, off, buf, n, &done);
        return e == VD_OK && done != n ? VD_ERR_IO : e;
    }
    return bench_pread_all(h->fd, off, buf, n);
}

vd_err bench_fh_write(bench_fh *h, uint64_t off, const void *buf, size_t n)
{
    if (h->vf) {
        size_t done = 0;
        vd_err e = vd_file_write(h->vf, off, buf, n, &done);
        return e == VD_OK && done != n ? VD_ERR_IO : e;
    }
    return bench_pwrite_all(h->fd, off, buf, n);
}

vd_err bench_fh_sync(bench_fh *h)
{
    if (h->vf)
        return vd_file_sync(h->vf);
    return fsync(h->fd) == 0 ? VD_OK : VD_ERR_IO;
}

vd_err bench_fh_close(bench_fh *h)
{
    vd_err e = VD_OK;
    if (h->vf)
        e = vd_file_close(h->vf);
    else if (close(h->fd) != 0)
        e = VD_ERR_IO;
    free(h);
    return e;
}

vd_err bench_tgt_mkdir(bench_tgt *t, const char *path)
{
    if (!t->is_dir)
        return vd_fs_mkdir(bench_vol_fs(t->vol), path);
    char p[PATH_CAP + 256];
    full_path(t, path, p, sizeof p);
    return mkdir(p, 0700) == 0 ? VD_OK : VD_ERR_IO;
}

vd_err bench_tgt_sync(bench_tgt *t)
{
    if (!t->is_dir)
        return vd_fs_sync(bench_vol_fs(t->vol));
    int fd = open(t->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return VD_ERR_IO;
    int bad = syncfs(fd) != 0;
    bad |= close(fd) != 0;
    return bad ? VD_ERR_IO : VD_OK;
}

vd_err bench_tgt_reopen(bench_tgt *t)
{
    if (!t->is_dir)
        return bench_vol_reopen(t->vol);
    vd_err e = bench_tgt_sync(t);
    if (e == VD_OK && t->c->drop_caches) {
        sync();
        int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            int bad = write(fd, "3\n", 2) != 2;
            bad |= close(fd) != 0;
            e = bad ? VD_ERR_IO : VD_OK;
        }
    }
    return e;
}

vd_err bench_tgt_info(bench_tgt *t, vd_image_info *info)
{
    return t->is_dir ? VD_ERR_UNSUPPORTED : bench_vol_info(t->vol, info);
}

vd_err bench_tgt_scrub(bench_tgt *t, double *secs, uint64_t *bytes)
{
    return t->is_dir ? VD_ERR_UNSUPPORTED : bench_vol_scrub(t->vol, secs, bytes);
}

/* Remove the session's tree under a directory target. */
static vd_err rm_tree(const char *dir)
{
    vd_err e = VD_OK;
    /* A fixed argv, no shell: the path may hold anything. */
    pid_t pid = fork();
    if (pid < 0)
        return VD_ERR_IO;
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return VD_ERR_IO;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        e = VD_ERR_IO;
    return e;
}

vd_err bench_tgt_free(bench_tgt *t)
{
    if (!t)
        return VD_OK;
    vd_err e = t->is_dir ? rm_tree(t->root) : bench_vol_free(t->vol);
    free(t);
    return e;
}
