/* Copying files and directories between the host and a mounted volume,
 * with names, sizes and modification times (mkvhd, vhdtool put/get). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "treeutil.h"

#define COPY_CHUNK (1u << 20)
#define NS_PER_S 1000000000LL

static int64_t ts_ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * NS_PER_S + t->tv_nsec;
}

static int is_root(const char *p)
{
    return p[strspn(p, "/")] == 0;
}

static int buf_ready(cli_copy *c)
{
    if (!c->buf)
        c->buf = malloc(COPY_CHUNK);
    if (!c->buf) {
        cli_errorf(c->prog, NULL, "out of memory");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

int cli_copy_cancelled(cli_copy *c)
{
    if (!c->cancel || !*c->cancel)
        return 0;
    if (!c->cancel_said)
        cli_errorf(c->prog, c->image, "interrupted");
    c->cancel_said = 1;
    return 1;
}

void cli_copy_done(cli_copy *c)
{
    free(c->buf);
    c->buf = NULL;
}

/* A failed volume operation while copying host src to volume dst: an
 * integrity failure or the image's host failing (I/O: a disk error, a lost
 * NBD connection) names the image and block; anything else (a name FAT
 * cannot store, a full volume) is about the source file. */
int cli_copy_in_fail(cli_copy *c, const char *src, const char *dst, vd_err e)
{
    if (e == VD_ERR_AUTH || e == VD_ERR_FAILED || e == VD_ERR_CORRUPT ||
        e == VD_ERR_ROLLBACK || e == VD_ERR_IO)
        return cli_fs_fail(c->prog, c->image, c->img, dst, e);
    const char *detail = NULL;
    switch (e) {
    case VD_ERR_NOSPC:
        detail = "the volume is full";
        break;
    case VD_ERR_EXIST:
        detail = "FAT names ignore case: another name clashes with it";
        break;
    case VD_ERR_NAME:
        detail = "FAT32 cannot store this name";
        break;
    default:
        break;
    }
    return cli_fail(c->prog, src, e, detail);
}

/* The directories being copied, innermost first: with --dereference a
 * link to an ancestor would otherwise copy forever. */
typedef struct ancestry {
    dev_t dev;
    ino_t ino;
    const struct ancestry *up;
} ancestry;

/* A host entry: at (a name) relative to the directory dfd, and its path
 * for messages. Entries are reached through their directory, so the
 * kernel does not walk the whole path again for each. */
typedef struct hostent {
    int dfd;
    const char *at;
    const char *path;
} hostent;

static int in_file(cli_copy *c, const hostent *h, const char *ddir, const char *name)
{
    const char *src = h->path;
    int rc = 0;
    vd_file *f = NULL;
    char *dst = NULL;
    struct stat sb;
    int fd = openat(h->dfd, h->at, O_RDONLY | O_CLOEXEC | (c->deref ? 0 : O_NOFOLLOW));
    if (fd < 0 || fstat(fd, &sb) != 0) {
        cli_errorf(c->prog, src, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    rc = cli_claim_file(c, src, ddir, name, &f, &dst);
    if (rc != 0 || !dst)
        goto out;
    vd_err e;
    /* The size fstat gave, as tar takes it: no read just to see the end. */
    for (uint64_t off = 0; off < (uint64_t)sb.st_size;) {
        if (cli_copy_cancelled(c)) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        uint64_t want = (uint64_t)sb.st_size - off;
        ssize_t r = read(fd, c->buf, want < COPY_CHUNK ? (size_t)want : COPY_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            cli_errorf(c->prog, src, "%s", strerror(errno));
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (r == 0)
            break;
        size_t done = 0;
        e = vd_file_write(f, off, c->buf, (size_t)r, &done);
        if (e == VD_OK && done != (size_t)r)
            e = VD_ERR_IO;
        if (e != VD_OK) {
            rc = cli_copy_in_fail(c, src, dst, e);
            goto out;
        }
        off += (uint64_t)r;
        if (c->progress)
            cli_progress_add(c->progress, (uint64_t)r, 0);
    }
    e = vd_file_close(f);
    f = NULL;
    if (e == VD_OK)
        e = vd_fs_utimes(c->fs, dst, ts_ns(&sb.st_atim), ts_ns(&sb.st_mtim));
    if (e != VD_OK) {
        rc = cli_copy_in_fail(c, src, dst, e);
        goto out;
    }
    if (c->progress)
        cli_progress_add(c->progress, 0, 1);
out:
    if (f) {
        (void)vd_file_close(f); /* the error that got us here is reported */
        /* No partial file that looks like a copy (a full volume, an
         * unreadable source). */
        (void)vd_fs_unlink(c->fs, dst);
    }
    free(dst);
    if (fd >= 0)
        (void)close(fd);
    return rc;
}

static int in_link(cli_copy *c, const hostent *h, const char *ddir, const char *name,
                   const struct stat *sb)
{
    const char *src = h->path;
    char target[VD_FS_LINK_MAX + 1];
    ssize_t n = readlinkat(h->dfd, h->at, target, sizeof target);
    if (n < 0) {
        cli_errorf(c->prog, src, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if ((size_t)n >= sizeof target) /* grew since lstat */
        return cli_special_report(c->prog, src,
                                  "symbolic link whose target is longer than 1024 "
                                  "bytes (the link format's limit)",
                                  c->policy, 1);
    target[n] = 0;
    char *dst = NULL;
    int rc = cli_claim_link(c, src, ddir, name, target, &dst);
    if (rc == 0 && dst) {
        vd_err e = vd_fs_lutimes(c->fs, dst, ts_ns(&sb->st_atim), ts_ns(&sb->st_mtim));
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, src, dst, e);
        else if (c->progress)
            cli_progress_add(c->progress, 0, 1);
    }
    free(dst);
    return rc;
}

static int in_tree(cli_copy *c, const hostent *h, const char *ddir, const char *name,
                   const struct stat *sb, const ancestry *up);

/* ddir == NULL: src's contents go into the volume's root. */
static int in_dir(cli_copy *c, const hostent *h, const char *ddir, const char *name,
                  const struct stat *sb, const ancestry *up)
{
    const char *src = h->path;
    for (const ancestry *a = up; a; a = a->up) {
        if (a->dev == sb->st_dev && a->ino == sb->st_ino) {
            cli_errorf(c->prog, src,
                       "a symbolic link leads back to a directory being copied "
                       "(--dereference would copy forever)");
            return CLI_EXIT_FAIL;
        }
    }
    ancestry me = {.dev = sb->st_dev, .ino = sb->st_ino, .up = up};
    char **names = NULL;
    size_t n = 0;
    char *dst = NULL;
    int rc = 0;
    if (ddir) {
        rc = cli_claim_dir(c, src, ddir, name, &dst);
        if (rc != 0 || !dst)
            return rc;
    }
    const char *d = dst ? dst : "/";
    /* Followed only where a link was meant to be (--dereference, the
     * source named on the command line): not if one appeared since fstatat. */
    int dfd = cli_dir_open(h->dfd, h->at, c->deref || h->dfd == AT_FDCWD);
    if (dfd < 0) {
        cli_errorf(c->prog, src, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    } else {
        rc = cli_dir_list(c->prog, src, dfd, &names, &n);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *s = cli_path_join(src, names[i]);
        hostent ch = {.dfd = dfd, .at = names[i], .path = s};
        struct stat cb;
        int flags = c->deref ? 0 : AT_SYMLINK_NOFOLLOW;
        if (!s) {
            cli_errorf(c->prog, src, "out of memory");
            rc = CLI_EXIT_FAIL;
        } else if (fstatat(dfd, names[i], &cb, flags) != 0) {
            if (c->deref && errno == ENOENT &&
                fstatat(dfd, names[i], &cb, AT_SYMLINK_NOFOLLOW) == 0)
                rc = cli_special_report(c->prog, s, "dangling symbolic link", c->policy,
                                        c->warn_special);
            else {
                cli_errorf(c->prog, s, "%s", strerror(errno));
                rc = CLI_EXIT_FAIL;
            }
        } else {
            rc = in_tree(c, &ch, d, names[i], &cb, &me);
        }
        free(s);
    }
    cli_names_free(names, n);
    if (dfd >= 0)
        (void)close(dfd); /* read only */
    /* Last, so adding the entries does not move the directory's time. */
    if (rc == 0 && dst) {
        vd_err e = vd_fs_utimes(c->fs, dst, ts_ns(&sb->st_atim), ts_ns(&sb->st_mtim));
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, src, dst, e);
    }
    free(dst);
    return rc;
}

int cli_copy_skip_add(cli_copy *c, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return 0;
    if (c->nskip == CLI_COPY_SKIP_MAX)
        return -1;
    c->skip[c->nskip].dev = (uint64_t)sb.st_dev;
    c->skip[c->nskip].ino = (uint64_t)sb.st_ino;
    c->nskip++;
    return 0;
}

static int skipped(const cli_copy *c, const struct stat *sb)
{
    for (int i = 0; i < c->nskip; i++)
        if (c->skip[i].dev == (uint64_t)sb->st_dev &&
            c->skip[i].ino == (uint64_t)sb->st_ino)
            return 1;
    return 0;
}

static int in_tree(cli_copy *c, const hostent *h, const char *ddir, const char *name,
                   const struct stat *sb, const ancestry *up)
{
    if (skipped(c, sb))
        return 0;
    const char *kind = cli_special_kind(sb);
    if (kind)
        return cli_special_report(c->prog, h->path, kind, c->policy, c->warn_special);
    if (S_ISDIR(sb->st_mode))
        return in_dir(c, h, ddir, name, sb, up);
    if (S_ISLNK(sb->st_mode))
        return in_link(c, h, ddir, name, sb);
    return in_file(c, h, ddir, name);
}

int cli_copy_in(cli_copy *c, const char *src, const char *dst)
{
    int rc = buf_ready(c);
    if (rc)
        return rc;
    struct stat sb;
    /* A source that becomes the root is followed if it is a link (mkvhd
     * SOURCE_DIR); any other is copied as a link unless --dereference. */
    if ((is_root(dst) || c->deref ? stat(src, &sb) : lstat(src, &sb)) != 0) {
        cli_errorf(c->prog, src, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    hostent h = {.dfd = AT_FDCWD, .at = src, .path = src};
    if (is_root(dst)) {
        if (!S_ISDIR(sb.st_mode)) {
            cli_errorf(c->prog, src, "not a directory (only a directory can be the root)");
            return CLI_EXIT_FAIL;
        }
        return in_dir(c, &h, NULL, NULL, &sb, NULL);
    }
    char *base = cli_path_base(dst);
    char *dir = cli_path_dir(dst);
    if (!base || !dir) {
        cli_errorf(c->prog, src, "out of memory");
        rc = CLI_EXIT_FAIL;
    } else {
        rc = in_tree(c, &h, dir, base, &sb, NULL);
    }
    free(base);
    free(dir);
    return rc;
}

/* ---- volume -> host ------------------------------------------------------ */

static int set_host_times(cli_copy *c, const char *dst, const vd_stat *vs)
{
    struct timespec ts[2] = {
        {.tv_sec = vs->atime_ns / NS_PER_S, .tv_nsec = vs->atime_ns % NS_PER_S},
        {.tv_sec = vs->mtime_ns / NS_PER_S, .tv_nsec = vs->mtime_ns % NS_PER_S},
    };
    if (ts[0].tv_nsec < 0 || ts[1].tv_nsec < 0) /* FAT times are after 1980 */
        return 0;
    if (utimensat(AT_FDCWD, dst, ts, AT_SYMLINK_NOFOLLOW) != 0) {
        cli_errorf(c->prog, dst, "cannot set the modification time: %s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int out_file(cli_copy *c, const char *src, const char *dst, const vd_stat *vs)
{
    int rc = 0, created = 0;
    int fd = -1;
    vd_file *f = NULL;
    vd_err e = vd_file_open(c->fs, src, VD_O_RDONLY, &f);
    if (e != VD_OK) {
        rc = cli_fs_fail(c->prog, c->image, c->img, src, e);
        goto out;
    }
    /* FAT32 keeps no permission bits: files come out as a vfat mount (and
     * vhdmount) shows them, executable unless the umask says otherwise. */
    fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0777);
    if (fd < 0) {
        cli_errorf(c->prog, dst, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    created = 1;
    for (uint64_t off = 0;;) {
        if (cli_copy_cancelled(c)) {
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        size_t done = 0;
        e = vd_file_read(f, off, c->buf, COPY_CHUNK, &done);
        if (e != VD_OK) {
            rc = cli_fs_fail(c->prog, c->image, c->img, src, e);
            goto out;
        }
        if (done == 0)
            break;
        if (write_all(fd, c->buf, done) != 0) {
            cli_errorf(c->prog, dst, "%s", strerror(errno));
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        off += done;
        if (c->progress)
            cli_progress_add(c->progress, done, 0);
    }
    if (close(fd) != 0) {
        fd = -1;
        cli_errorf(c->prog, dst, "%s", strerror(errno));
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    fd = -1;
    rc = set_host_times(c, dst, vs);
    if (rc == 0 && c->progress)
        cli_progress_add(c->progress, 0, 1);
out:
    if (fd >= 0)
        (void)close(fd);
    /* Never leave a partial copy that looks like the whole file. */
    if (rc != 0 && created)
        (void)unlink(dst);
    if (f)
        (void)vd_file_close(f); /* read-only: nothing to lose */
    return rc;
}

/* The names in a volume directory (read whole first, so no directory
 * stays open while its subdirectories are copied). */
static int vol_list(cli_copy *c, const char *src, char ***names, size_t *n)
{
    vd_dir *d = NULL;
    vd_dirent *ent = malloc(sizeof *ent);
    size_t cap = 0, k = 0;
    char **out = NULL;
    int rc = 0;
    vd_err e = ent ? vd_dir_open(c->fs, src, &d) : VD_ERR_NOMEM;
    while (e == VD_OK) {
        e = vd_dir_read(d, ent);
        if (e != VD_OK)
            break;
        if (k + 1 >= cap) {
            size_t ncap = cap ? 2 * cap : 16;
            char **g = realloc(out, ncap * sizeof *g);
            if (!g) {
                e = VD_ERR_NOMEM;
                break;
            }
            out = g;
            cap = ncap;
        }
        out[k] = strdup(ent->name);
        if (!out[k]) {
            e = VD_ERR_NOMEM;
            break;
        }
        k++;
    }
    if (e == VD_ERR_NOENT && d)
        e = VD_OK;
    if (d)
        (void)vd_dir_close(d); /* read-only listing */
    if (e != VD_OK) {
        rc = cli_fs_fail(c->prog, c->image, c->img, src, e);
        cli_names_free(out, k);
        out = NULL;
        k = 0;
    }
    free(ent);
    *names = out;
    *n = k;
    return rc;
}

/* A volume link becomes a host link with the stored target (an existing
 * file or link at dst is replaced, as get replaces files). */
static int out_link(cli_copy *c, const char *src, const char *dst, const vd_stat *vs)
{
    char target[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    vd_err e = vd_fs_readlink(c->fs, src, target, sizeof target, &len);
    if (e != VD_OK)
        return cli_fs_fail(c->prog, c->image, c->img, src, e);
    if (symlink(target, dst) != 0) {
        struct stat sb;
        if (errno != EEXIST || lstat(dst, &sb) != 0 || S_ISDIR(sb.st_mode) ||
            unlink(dst) != 0 || symlink(target, dst) != 0) {
            cli_errorf(c->prog, dst, "%s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
    }
    int rc = set_host_times(c, dst, vs);
    if (rc == 0 && c->progress)
        cli_progress_add(c->progress, 0, 1);
    return rc;
}

/* Volume directories being copied (by first cluster), innermost first:
 * with --dereference a link to an ancestor would copy forever. */
typedef struct vol_ancestry {
    uint32_t cluster;
    const struct vol_ancestry *up;
} vol_ancestry;

static int out_tree(cli_copy *c, const char *src, const char *dst, const vol_ancestry *up)
{
    vd_stat vs;
    vd_err e = c->deref ? vd_fs_stat(c->fs, src, &vs) : vd_fs_lstat(c->fs, src, &vs);
    if (c->deref && (e == VD_ERR_NOENT || e == VD_ERR_LOOP) &&
        vd_fs_lstat(c->fs, src, &vs) == VD_OK && vs.is_link) {
        cli_errorf(c->prog, c->image, "%s: %s (--dereference)", src,
                   e == VD_ERR_LOOP ? "a symbolic link in a loop"
                                    : "a dangling symbolic link");
        return CLI_EXIT_FAIL;
    }
    if (e != VD_OK)
        return cli_fs_fail(c->prog, c->image, c->img, src, e);
    if (vs.is_link)
        return out_link(c, src, dst, &vs);
    if (!vs.is_dir)
        return out_file(c, src, dst, &vs);
    for (const vol_ancestry *a = up; a; a = a->up) {
        if (a->cluster == vs.first_cluster) {
            cli_errorf(c->prog, c->image,
                       "%s: a symbolic link leads back to a directory being copied "
                       "(--dereference would copy forever)",
                       src);
            return CLI_EXIT_FAIL;
        }
    }
    vol_ancestry me = {.cluster = vs.first_cluster, .up = up};
    if (mkdir(dst, 0777) != 0) {
        struct stat sb;
        if (errno != EEXIST || stat(dst, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            cli_errorf(c->prog, dst, "%s", strerror(errno == EEXIST ? ENOTDIR : errno));
            return CLI_EXIT_FAIL;
        }
    }
    char **names = NULL;
    size_t n = 0;
    int rc = vol_list(c, src, &names, &n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *s = cli_path_join(src, names[i]);
        char *d = cli_path_join(dst, names[i]);
        if (!s || !d) {
            cli_errorf(c->prog, dst, "out of memory");
            rc = CLI_EXIT_FAIL;
        } else {
            rc = out_tree(c, s, d, &me);
        }
        free(s);
        free(d);
    }
    cli_names_free(names, n);
    if (rc == 0 && !is_root(src))
        rc = set_host_times(c, dst, &vs);
    return rc;
}

int cli_copy_out(cli_copy *c, const char *src, const char *dst)
{
    int rc = buf_ready(c);
    if (rc)
        return rc;
    return out_tree(c, src, dst, NULL);
}
