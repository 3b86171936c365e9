/* mkvhd --tar: a volume from a tar archive (ustar, pax, GNU; plain or
 * compressed), read through libarchive in two passes — the first sizes the
 * volume and checks every entry, the second fills it — so a stream that
 * cannot be read twice is spooled to an unlinked file first.
 *
 * Archive names are made safe as bsdtar makes them: leading '/' and '.'
 * components are dropped, a '..' component or an entry below a symbolic
 * link of the archive is refused. Hard links become copies; devices,
 * fifos and sockets follow --skip-special / --refuse-special. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mkvhd.h"
#include "treeutil.h"

#define P MKVHD_PROG
#define TAR_CHUNK (1u << 20)
#define TAR_BLOCK (1u << 16)
#define NS_PER_S 1000000000LL
#define FAT_FILE_MAX 0xFFFFFFFFull
#define SUBJECT_MAX 8192

struct mkvhd_tar {
    const mkvhd_opts *o;
    const char *label; /* the archive in messages */
    int fd, own_fd;
    tarpaths paths;
    uint8_t *buf;
    char subject[SUBJECT_MAX];
};

/* ---- opening and spooling ------------------------------------------------ */

static int spool_fd(mkvhd_tar *t, const char **dir)
{
    const char *d = getenv("TMPDIR");
    if (!d || !*d)
        d = "/tmp";
    *dir = d;
    int fd = open(d, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    /* A file system without O_TMPFILE: a named file, unlinked at once. */
    size_t n = strlen(d) + sizeof "/mkvhd-spool.XXXXXX";
    char *name = malloc(n);
    if (!name) {
        errno = ENOMEM;
        return -1;
    }
    snprintf(name, n, "%s/mkvhd-spool.XXXXXX", d);
    fd = mkstemp(name);
    if (fd >= 0)
        (void)unlink(name);
    free(name);
    (void)t;
    return fd;
}

/* Copy the whole stream in to an unlinked file, so it can be read twice. */
static int spool(mkvhd_tar *t, int in)
{
    const char *dir = NULL;
    int fd = spool_fd(t, &dir);
    if (fd < 0) {
        cli_errorf(P, dir, "cannot make the spool file for %s: %s", t->label,
                   strerror(errno));
        return CLI_EXIT_FAIL;
    }
    t->fd = fd;
    t->own_fd = 1;
    for (;;) {
        if (*t->o->cancel) {
            cli_errorf(P, t->o->image, "interrupted");
            return CLI_EXIT_FAIL;
        }
        ssize_t r = read(in, t->buf, TAR_CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            cli_errorf(P, t->label, "%s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
        if (r == 0)
            return 0;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, t->buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                cli_errorf(P, dir, "spooling %s: %s (the archive is kept there to be "
                           "read twice; set TMPDIR elsewhere)",
                           t->label, strerror(w < 0 ? errno : EIO));
                return CLI_EXIT_FAIL;
            }
            off += w;
        }
    }
}

int mkvhd_tar_open(const mkvhd_opts *o, mkvhd_tar **out)
{
    *out = NULL;
    mkvhd_tar *t = calloc(1, sizeof *t);
    if (t)
        t->buf = malloc(TAR_CHUNK);
    if (!t || !t->buf) {
        free(t);
        cli_errorf(P, o->tar, "out of memory");
        return CLI_EXIT_FAIL;
    }
    *out = t;
    t->o = o;
    t->fd = -1;
    int is_stdin = strcmp(o->tar, "-") == 0;
    t->label = is_stdin ? "standard input" : o->tar;
    int in = is_stdin ? STDIN_FILENO : open(o->tar, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (in < 0 || fstat(in, &sb) != 0) {
        cli_errorf(P, t->label, "%s", strerror(errno));
        if (in >= 0 && !is_stdin)
            (void)close(in);
        return CLI_EXIT_FAIL;
    }
    if (S_ISREG(sb.st_mode)) {
        t->fd = in; /* read twice in place */
        t->own_fd = !is_stdin;
        return 0;
    }
    int rc = spool(t, in);
    if (!is_stdin)
        (void)close(in);
    return rc;
}

void mkvhd_tar_close(mkvhd_tar *t)
{
    if (!t)
        return;
    if (t->own_fd && t->fd >= 0)
        (void)close(t->fd);
    tarpaths_free(&t->paths);
    free(t->buf);
    free(t);
}

static struct archive *pass_open(mkvhd_tar *t)
{
    if (lseek(t->fd, 0, SEEK_SET) != 0) {
        cli_errorf(P, t->label, "%s", strerror(errno));
        return NULL;
    }
    struct archive *a = archive_read_new();
    if (!a) {
        cli_errorf(P, t->label, "out of memory");
        return NULL;
    }
    /* Every compression libarchive knows, but only tar: an archive in
     * another format is an error, not a surprise. */
    if (archive_read_support_filter_all(a) != ARCHIVE_OK ||
        archive_read_support_format_tar(a) != ARCHIVE_OK ||
        archive_read_support_format_gnutar(a) != ARCHIVE_OK ||
        archive_read_support_format_empty(a) != ARCHIVE_OK ||
        archive_read_open_fd(a, t->fd, TAR_BLOCK) != ARCHIVE_OK) {
        cli_errorf(P, t->label, "%s", archive_error_string(a));
        (void)archive_read_free(a);
        return NULL;
    }
    return a;
}

/* ---- names --------------------------------------------------------------- */

/* The archive name as a key: components joined by '/', without empty and
 * '.' ones (so a leading '/' is gone). 1 when a component is '..'. */
static int name_norm(const char *in, char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    while (*in) {
        while (*in == '/')
            in++;
        size_t n = strcspn(in, "/");
        if (n == 0)
            break;
        if (n == 2 && in[0] == '.' && in[1] == '.')
            return 1;
        if (!(n == 1 && in[0] == '.')) {
            if (o + n + 2 > len)
                return 2;
            if (o)
                out[o++] = '/';
            memcpy(out + o, in, n);
            o += n;
            out[o] = 0;
        }
        in += n;
    }
    return 0;
}

static const char *entry_name(struct archive_entry *ae)
{
    const char *n = archive_entry_pathname_utf8(ae);
    return n ? n : archive_entry_pathname(ae);
}

static const char *subject(mkvhd_tar *t, const char *key)
{
    snprintf(t->subject, sizeof t->subject, "%s: %s", t->label, key[0] ? key : ".");
    return t->subject;
}

/* The normalised name of entry ae (or of its hard link's target) into
 * key; an exit status for a name that is refused. */
static int entry_key(mkvhd_tar *t, const char *raw, char *key, size_t len)
{
    int r = raw ? name_norm(raw, key, len) : 2;
    if (r == 1) {
        cli_errorf(P, subject(t, raw),
                   "a '..' component (refused, as bsdtar does: it could "
                   "lead outside the volume's tree)");
        return CLI_EXIT_FAIL;
    }
    if (r != 0) {
        cli_errorf(P, t->label, "an entry's name is too long");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

static const char *kind_of(struct archive_entry *ae)
{
    switch (archive_entry_filetype(ae)) {
    case AE_IFCHR:
    case AE_IFBLK:
        return "device";
    case AE_IFIFO:
        return "fifo";
    case AE_IFSOCK:
        return "socket";
    case AE_IFLNK: {
        const char *t = archive_entry_symlink_utf8(ae);
        if (!t)
            t = archive_entry_symlink(ae);
        if (!t || !*t)
            return "symbolic link without a target";
        if (strlen(t) > VD_FS_LINK_MAX)
            return "symbolic link whose target is longer than 1024 bytes (the link "
                   "format's limit)";
        return NULL;
    }
    case AE_IFREG:
        if ((uint64_t)archive_entry_size(ae) > FAT_FILE_MAX)
            return "file larger than 4 GiB - 1 (the FAT32 limit)";
        return NULL;
    case AE_IFDIR:
        return NULL;
    default:
        return "not a regular file or directory";
    }
}

/* The parent of key (its first len bytes), which must be a directory of
 * the archive or implied by it. */
static int parent_check(mkvhd_tar *t, const char *key, size_t plen, const tarpath *pp)
{
    if (pp->kind == TP_DIR || pp->kind == TP_NONE || pp->kind == TP_SKIPPED)
        return 0;
    char *p = strndup(key, plen);
    if (pp->kind == TP_LINK)
        cli_errorf(P, subject(t, key),
                   "below '%s', a symbolic link of the archive (refused, as bsdtar "
                   "does: it would write through the link)",
                   p ? p : "?");
    else
        cli_errorf(P, subject(t, key), "'%s' is not a directory", p ? p : "?");
    free(p);
    return CLI_EXIT_FAIL;
}

/* ---- first pass: sizes and checks ---------------------------------------- */

/* Add the missing parents of key as directories, counting each name in
 * its own parent. */
static int scan_parents(mkvhd_tar *t, const char *key)
{
    char *k = strdup(key);
    if (!k)
        goto oom;
    for (char *s = strchr(k, '/'); s; s = strchr(s + 1, '/')) {
        *s = 0;
        tarpath *pp = tarpaths_find(&t->paths, k);
        int rc = pp ? parent_check(t, key, (size_t)(s - k), pp) : 0;
        if (rc) {
            free(k);
            return rc;
        }
        if (!pp) {
            char *slash = strrchr(k, '/');
            const char *base = slash ? slash + 1 : k;
            tarpath *gp;
            if (slash) {
                *slash = 0;
                gp = tarpaths_find(&t->paths, k);
                *slash = '/';
            } else {
                gp = tarpaths_find(&t->paths, "");
            }
            if (gp)
                gp->entries += cli_name_entries(base);
            pp = tarpaths_add(&t->paths, k);
            if (!pp)
                goto oom;
            pp->kind = TP_DIR;
        }
        *s = '/';
    }
    free(k);
    return 0;
oom:
    free(k);
    cli_errorf(P, t->label, "out of memory");
    return CLI_EXIT_FAIL;
}

static int scan_entry(mkvhd_tar *t, struct archive_entry *ae, const char *key,
                      cli_tree_stats *st)
{
    const mkvhd_opts *o = t->o;
    tar_kind kind;
    uint64_t size = 0;
    const char *special = kind_of(ae);
    const char *hl = archive_entry_hardlink(ae);
    if (key[0] == 0) { /* the root itself ("./"): nothing to make */
        if (archive_entry_filetype(ae) == AE_IFDIR)
            return 0;
        cli_errorf(P, subject(t, entry_name(ae)), "names the root but is not a directory");
        return CLI_EXIT_FAIL;
    }
    int rc = scan_parents(t, key);
    if (rc)
        return rc;
    if (hl && archive_entry_size(ae) == 0) {
        char tk[4096];
        rc = entry_key(t, hl, tk, sizeof tk);
        if (rc)
            return rc;
        const tarpath *tp = tarpaths_find(&t->paths, tk);
        if (!tp || tp->kind == TP_NONE || tp->kind == TP_DIR) {
            cli_errorf(P, subject(t, key),
                       "a hard link to '%s', which is not a file earlier in the archive",
                       hl);
            return CLI_EXIT_FAIL;
        }
        kind = tp->kind;
        size = tp->size;
        if (kind == TP_SKIPPED) {
            rc = cli_special_report(P, subject(t, key), "hard link to a skipped entry",
                                    o->policy, 1);
            st->skipped++;
        }
    } else if (special) {
        rc = cli_special_report(P, subject(t, key), special, o->policy, 1);
        /* A skipped link still stops entries below it (bsdtar's rule). */
        kind = archive_entry_filetype(ae) == AE_IFLNK ? TP_LINK : TP_SKIPPED;
    } else if (archive_entry_filetype(ae) == AE_IFLNK) {
        kind = TP_LINK;
        st->skipped++;
    } else if (archive_entry_filetype(ae) == AE_IFDIR) {
        kind = TP_DIR;
    } else {
        kind = TP_FILE;
        size = (uint64_t)archive_entry_size(ae);
    }
    if (rc)
        return rc;
    tarpath *p = tarpaths_find(&t->paths, key);
    if (p && p->kind != kind && p->kind != TP_SKIPPED && kind != TP_SKIPPED &&
        !(p->kind == TP_LINK && kind == TP_FILE) && !(p->kind == TP_FILE && kind == TP_LINK)) {
        cli_errorf(P, subject(t, key), "a %s of this name is earlier in the archive",
                   p->kind == TP_DIR ? "directory" : "file");
        return CLI_EXIT_FAIL;
    }
    if (!p) {
        const char *slash = strrchr(key, '/');
        char *pk = slash ? strndup(key, (size_t)(slash - key)) : strdup("");
        tarpath *pp = pk ? tarpaths_find(&t->paths, pk) : NULL;
        free(pk);
        if (pp && kind != TP_SKIPPED)
            pp->entries += cli_name_entries(slash ? slash + 1 : key);
        p = tarpaths_add(&t->paths, key);
        if (!p) {
            cli_errorf(P, t->label, "out of memory");
            return CLI_EXIT_FAIL;
        }
    }
    p->kind = kind;
    p->size = size;
    if (!special && kind == TP_FILE)
        cli_tree_stats_file(st, size);
    else if (!special && kind == TP_LINK)
        cli_tree_stats_link(st);
    return 0;
}

/* One pass over the archive: each entry's key to fn. */
typedef int (*entry_fn)(mkvhd_tar *t, struct archive *a, struct archive_entry *ae,
                        const char *key, void *ctx);

static int pass(mkvhd_tar *t, entry_fn fn, void *ctx)
{
    struct archive *a = pass_open(t);
    if (!a)
        return CLI_EXIT_FAIL;
    tarpaths_free(&t->paths);
    tarpath *root = tarpaths_add(&t->paths, "");
    int rc = root ? 0 : CLI_EXIT_FAIL;
    if (root) {
        root->kind = TP_DIR;
        root->vpath = strdup("/");
        if (!root->vpath)
            rc = CLI_EXIT_FAIL;
    }
    if (rc)
        cli_errorf(P, t->label, "out of memory");
    char key[4096];
    while (rc == 0) {
        if (*t->o->cancel) {
            cli_errorf(P, t->o->image, "interrupted");
            rc = CLI_EXIT_FAIL;
            break;
        }
        struct archive_entry *ae;
        int r = archive_read_next_header(a, &ae);
        if (r == ARCHIVE_EOF)
            break;
        if (r == ARCHIVE_WARN)
            cli_errorf(P, t->label, "warning: %s", archive_error_string(a));
        else if (r != ARCHIVE_OK) {
            cli_errorf(P, t->label, "%s", archive_error_string(a));
            rc = CLI_EXIT_FAIL;
            break;
        }
        rc = entry_key(t, entry_name(ae), key, sizeof key);
        if (rc == 0)
            rc = fn(t, a, ae, key, ctx);
    }
    if (archive_read_free(a) != ARCHIVE_OK && rc == 0) {
        cli_errorf(P, t->label, "%s", "cannot finish reading the archive");
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}

static int scan_cb(mkvhd_tar *t, struct archive *a, struct archive_entry *ae,
                   const char *key, void *ctx)
{
    (void)a;
    return scan_entry(t, ae, key, ctx);
}

int mkvhd_tar_scan(mkvhd_tar *t, cli_tree_stats *st)
{
    memset(st, 0, sizeof *st);
    int rc = pass(t, scan_cb, st);
    for (size_t i = 0; rc == 0 && i < t->paths.cap; i++) {
        const tarpath *p = &t->paths.v[i];
        if (p->key && p->kind == TP_DIR)
            cli_tree_stats_dir(st, 2 + p->entries);
    }
    return rc;
}

/* ---- second pass: into the volume ---------------------------------------- */

static int64_t entry_ns(time_t s, long ns)
{
    return (int64_t)s * NS_PER_S + ns;
}

/* Make the missing parents of key in the volume; *skip when one of them
 * was skipped (a clash), so the entry goes too. */
static int fill_parents(mkvhd_tar *t, cli_copy *c, const char *key, int *skip)
{
    *skip = 0;
    char *k = strdup(key);
    int rc = 0;
    if (!k) {
        cli_errorf(P, t->label, "out of memory");
        return CLI_EXIT_FAIL;
    }
    const char *parent_vpath = "/";
    char *pv = NULL; /* owned copy of parent_vpath when it came from a lookup */
    for (char *s = strchr(k, '/'); s && rc == 0; s = strchr(s + 1, '/')) {
        *s = 0;
        tarpath *pp = tarpaths_add(&t->paths, k);
        if (!pp) {
            cli_errorf(P, t->label, "out of memory");
            rc = CLI_EXIT_FAIL;
            break;
        }
        if (pp->kind == TP_SKIPPED) {
            *skip = 1;
            break;
        }
        rc = parent_check(t, key, (size_t)(s - k), pp);
        if (rc == 0 && !pp->vpath) {
            const char *slash = strrchr(k, '/');
            char *final = NULL;
            rc = cli_claim_dir(c, subject(t, k), parent_vpath, slash ? slash + 1 : k,
                               &final);
            pp = tarpaths_find(&t->paths, k);
            pp->kind = final ? TP_DIR : TP_SKIPPED;
            pp->vpath = final;
            if (rc == 0 && !final) {
                *skip = 1;
                break;
            }
        }
        if (rc == 0) {
            free(pv);
            pv = strdup(pp->vpath);
            parent_vpath = pv;
            if (!pv) {
                cli_errorf(P, t->label, "out of memory");
                rc = CLI_EXIT_FAIL;
            }
        }
        *s = '/';
    }
    free(pv);
    free(k);
    return rc;
}

/* The volume directory key goes into (its parent's vpath), malloc'ed. */
static char *parent_vpath(mkvhd_tar *t, const char *key)
{
    const char *slash = strrchr(key, '/');
    char *pk = slash ? strndup(key, (size_t)(slash - key)) : strdup("");
    tarpath *pp = pk ? tarpaths_find(&t->paths, pk) : NULL;
    free(pk);
    return pp && pp->vpath ? strdup(pp->vpath) : NULL;
}

/* A file's data: from the archive (a != NULL) or from another file of the
 * volume (a hard link: src_vpath). */
static int fill_data(mkvhd_tar *t, cli_copy *c, struct archive *a, const char *src_vpath,
                     vd_file *f, const char *key, const char *vpath)
{
    vd_file *in = NULL;
    vd_err e = VD_OK;
    int rc = 0;
    if (!a) {
        e = vd_file_open(c->fs, src_vpath, VD_O_RDONLY, &in);
        if (e != VD_OK)
            return cli_fs_fail(P, c->image, c->img, src_vpath, e);
    }
    for (uint64_t off = 0; rc == 0;) {
        if (cli_copy_cancelled(c)) {
            rc = CLI_EXIT_FAIL;
            break;
        }
        size_t n = 0;
        if (a) {
            la_ssize_t r = archive_read_data(a, t->buf, TAR_CHUNK);
            if (r < 0) {
                cli_errorf(P, subject(t, key), "%s", archive_error_string(a));
                rc = CLI_EXIT_FAIL;
                break;
            }
            n = (size_t)r;
        } else {
            e = vd_file_read(in, off, t->buf, TAR_CHUNK, &n);
            if (e != VD_OK) {
                rc = cli_fs_fail(P, c->image, c->img, src_vpath, e);
                break;
            }
        }
        if (n == 0)
            break;
        size_t done = 0;
        e = vd_file_write(f, off, t->buf, n, &done);
        if (e == VD_OK && done != n)
            e = VD_ERR_IO;
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, key), vpath, e);
        off += n;
        if (c->progress)
            cli_progress_add(c->progress, n, 0);
    }
    if (in)
        (void)vd_file_close(in); /* read only */
    return rc;
}

static int fill_file(mkvhd_tar *t, cli_copy *c, struct archive *a,
                     struct archive_entry *ae, const char *key, const char *link_vpath)
{
    tarpath *p = tarpaths_find(&t->paths, key);
    vd_file *f = NULL;
    char *vpath = NULL;
    int rc = 0;
    if (p && p->vpath && (p->kind == TP_FILE || p->kind == TP_LINK)) {
        /* The same name again: the later entry wins, as with tar -x (a
         * link is replaced, never written through). */
        vpath = strdup(p->vpath);
        vd_err e = vpath ? VD_OK : VD_ERR_NOMEM;
        int flags = VD_O_WRONLY | VD_O_TRUNC;
        if (e == VD_OK && p->kind == TP_LINK) {
            e = vd_fs_unlink(c->fs, vpath);
            flags = VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL;
        }
        if (e == VD_OK)
            e = vd_file_open(c->fs, vpath, flags, &f);
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, key), p->vpath, e);
        p->kind = TP_FILE;
    } else {
        char *dir = parent_vpath(t, key);
        const char *slash = strrchr(key, '/');
        rc = dir ? cli_claim_file(c, subject(t, key), dir, slash ? slash + 1 : key, &f,
                                  &vpath)
                 : CLI_EXIT_FAIL;
        free(dir);
        p = tarpaths_add(&t->paths, key);
        if (!p) {
            cli_errorf(P, t->label, "out of memory");
            rc = CLI_EXIT_FAIL;
        } else if (rc == 0) {
            p->kind = vpath ? TP_FILE : TP_SKIPPED;
            free(p->vpath);
            p->vpath = vpath ? strdup(vpath) : NULL;
        }
    }
    if (rc == 0 && f)
        rc = fill_data(t, c, link_vpath ? NULL : a, link_vpath, f, key, vpath);
    if (f) {
        vd_err e = vd_file_close(f);
        if (rc == 0 && e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, key), vpath, e);
    }
    if (rc == 0 && vpath) {
        int64_t m = entry_ns(archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
        int64_t at = archive_entry_atime_is_set(ae)
                         ? entry_ns(archive_entry_atime(ae), archive_entry_atime_nsec(ae))
                         : m;
        vd_err e = VD_OK;
        if (archive_entry_mtime_is_set(ae))
            e = vd_fs_utimes(c->fs, vpath, at, m);
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, key), vpath, e);
        if (rc == 0 && c->progress)
            cli_progress_add(c->progress, 0, 1);
    }
    if (rc != 0 && f && vpath)
        (void)vd_fs_unlink(c->fs, vpath); /* no partial copy */
    free(vpath);
    return rc;
}

/* A symbolic link: ae's own target, or (a hard link to a link) target. */
static int fill_link(mkvhd_tar *t, cli_copy *c, struct archive_entry *ae, const char *key,
                     const char *target)
{
    if (!target) {
        target = archive_entry_symlink_utf8(ae);
        if (!target)
            target = archive_entry_symlink(ae);
    }
    char *tcopy = target ? strdup(target) : NULL;
    if (!tcopy) {
        cli_errorf(P, t->label, "out of memory");
        return CLI_EXIT_FAIL;
    }
    tarpath *p = tarpaths_find(&t->paths, key);
    char *vpath = NULL;
    int rc = 0;
    if (p && p->vpath && (p->kind == TP_FILE || p->kind == TP_LINK)) {
        /* The same name again: replaced, as with tar -x. */
        vpath = strdup(p->vpath);
        vd_err e = vpath ? vd_fs_unlink(c->fs, vpath) : VD_ERR_NOMEM;
        if (e == VD_OK)
            e = vd_fs_symlink(c->fs, tcopy, vpath);
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, key), p->vpath, e);
    } else {
        char *dir = parent_vpath(t, key);
        const char *slash = strrchr(key, '/');
        rc = dir ? cli_claim_link(c, subject(t, key), dir, slash ? slash + 1 : key, tcopy,
                                  &vpath)
                 : CLI_EXIT_FAIL;
        free(dir);
    }
    p = rc == 0 ? tarpaths_add(&t->paths, key) : NULL;
    if (rc == 0 && !p) {
        cli_errorf(P, t->label, "out of memory");
        rc = CLI_EXIT_FAIL;
    }
    if (rc == 0) {
        p->kind = vpath ? TP_LINK : TP_SKIPPED;
        free(p->vpath);
        free(p->target);
        p->vpath = vpath;
        p->target = tcopy;
        tcopy = NULL;
        vpath = NULL;
        if (p->vpath && archive_entry_mtime_is_set(ae)) {
            int64_t m = entry_ns(archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
            vd_err e = vd_fs_lutimes(c->fs, p->vpath, m, m);
            if (e != VD_OK)
                rc = cli_copy_in_fail(c, subject(t, key), p->vpath, e);
        }
        if (rc == 0 && c->progress)
            cli_progress_add(c->progress, 0, 1);
    }
    free(vpath);
    free(tcopy);
    return rc;
}

static int fill_dir(mkvhd_tar *t, cli_copy *c, struct archive_entry *ae, const char *key)
{
    tarpath *p = tarpaths_find(&t->paths, key);
    int rc = 0;
    if (!p || !p->vpath) {
        char *dir = parent_vpath(t, key);
        const char *slash = strrchr(key, '/');
        char *final = NULL;
        rc = dir ? cli_claim_dir(c, subject(t, key), dir, slash ? slash + 1 : key, &final)
                 : CLI_EXIT_FAIL;
        free(dir);
        p = tarpaths_add(&t->paths, key);
        if (!p) {
            free(final);
            cli_errorf(P, t->label, "out of memory");
            return CLI_EXIT_FAIL;
        }
        p->kind = final ? TP_DIR : TP_SKIPPED;
        p->vpath = final;
    }
    /* Directory times are set at the end: adding entries moves them. */
    if (rc == 0 && p->vpath && archive_entry_mtime_is_set(ae)) {
        p->mtime_ns = entry_ns(archive_entry_mtime(ae), archive_entry_mtime_nsec(ae));
        p->atime_ns = archive_entry_atime_is_set(ae)
                          ? entry_ns(archive_entry_atime(ae), archive_entry_atime_nsec(ae))
                          : p->mtime_ns;
        p->has_time = 1;
    }
    return rc;
}

static int fill_cb(mkvhd_tar *t, struct archive *a, struct archive_entry *ae,
                   const char *key, void *ctx)
{
    cli_copy *c = ctx;
    if (key[0] == 0)
        return 0; /* the root: FAT keeps no times for it */
    int skip = 0;
    int rc = fill_parents(t, c, key, &skip);
    if (rc || skip)
        return rc;
    const char *hl = archive_entry_hardlink(ae);
    if (hl && archive_entry_size(ae) == 0) {
        char tk[4096];
        rc = entry_key(t, hl, tk, sizeof tk);
        if (rc)
            return rc;
        const tarpath *tp = tarpaths_find(&t->paths, tk);
        if (!tp || tp->kind == TP_SKIPPED || !tp->vpath)
            return 0; /* reported by the first pass */
        if (tp->kind == TP_LINK) {
            char *target = tp->target ? strdup(tp->target) : NULL;
            rc = target ? fill_link(t, c, ae, key, target) : CLI_EXIT_FAIL;
            free(target);
            return rc;
        }
        char *src = strdup(tp->vpath);
        rc = src ? fill_file(t, c, a, ae, key, src) : CLI_EXIT_FAIL;
        free(src);
        return rc;
    }
    if (kind_of(ae))
        return 0; /* a special, reported by the first pass */
    switch (archive_entry_filetype(ae)) {
    case AE_IFDIR:
        return fill_dir(t, c, ae, key);
    case AE_IFLNK:
        return fill_link(t, c, ae, key, NULL);
    default:
        return fill_file(t, c, a, ae, key, NULL);
    }
}

int mkvhd_tar_fill(mkvhd_tar *t, cli_copy *c)
{
    int rc = pass(t, fill_cb, c);
    for (size_t i = 0; rc == 0 && i < t->paths.cap; i++) {
        const tarpath *p = &t->paths.v[i];
        if (!p->key || p->kind != TP_DIR || !p->has_time || !p->vpath)
            continue;
        vd_err e = vd_fs_utimes(c->fs, p->vpath, p->atime_ns, p->mtime_ns);
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, subject(t, p->key), p->vpath, e);
    }
    return rc;
}
