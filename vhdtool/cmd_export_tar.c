/* export --tar: the volume's tree as a tar archive (pax, plain ustar
 * headers where they suffice) through libarchive — names, contents,
 * modification times, directories and symbolic links with their stored
 * targets. FAT32 keeps no owners or permission bits: entries are owned by
 * 0:0 with the modes vhdmount shows by default (0755; links 0777). */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "treeutil.h"
#include "vhdtool.h"

#define TAR_CHUNK (1u << 20)
#define NS_PER_S 1000000000LL
#define MODE_DIR 0755
#define MODE_FILE 0755
#define MODE_LINK 0777

typedef struct tarout {
    vt_opts *o;
    cli_image *ci;
    struct archive *a;
    struct archive_entry *ae;
    uint8_t *buf;
    const char *dest; /* for messages */
    cli_progress *p;
} tarout;

static int64_t ns_floor_s(int64_t ns)
{
    return ns >= 0 ? ns / NS_PER_S : -((-ns + NS_PER_S - 1) / NS_PER_S);
}

static int ar_fail(tarout *t)
{
    cli_errorf(VT_PROG, t->dest, "%s", archive_error_string(t->a));
    return CLI_EXIT_FAIL;
}

static int put_header(tarout *t, const char *name, const vd_stat *vs, int type,
                      int mode, uint64_t size)
{
    archive_entry_clear(t->ae);
    archive_entry_set_pathname_utf8(t->ae, name);
    archive_entry_set_filetype(t->ae, (unsigned)type);
    archive_entry_set_perm(t->ae, (mode_t)mode);
    archive_entry_set_uid(t->ae, 0);
    archive_entry_set_gid(t->ae, 0);
    archive_entry_set_size(t->ae, (la_int64_t)size);
    int64_t s = ns_floor_s(vs->mtime_ns);
    archive_entry_set_mtime(t->ae, (time_t)s, (long)(vs->mtime_ns - s * NS_PER_S));
    return 0;
}

static int write_header(tarout *t)
{
    int r = archive_write_header(t->a, t->ae);
    if (r == ARCHIVE_WARN)
        cli_errorf(VT_PROG, t->dest, "warning: %s", archive_error_string(t->a));
    else if (r != ARCHIVE_OK)
        return ar_fail(t);
    return 0;
}

static int tar_file(tarout *t, const char *path, const char *name, const vd_stat *vs)
{
    vd_file *f = NULL;
    vd_err e = vd_file_open(t->ci->fs, path, VD_O_RDONLY, &f);
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, t->o->pos[0], t->ci->img, path, e);
    put_header(t, name, vs, AE_IFREG, MODE_FILE, vs->size);
    int rc = write_header(t);
    for (uint64_t off = 0; rc == 0 && off < vs->size;) {
        if (*t->o->cancel) {
            cli_errorf(VT_PROG, t->o->pos[0], "interrupted");
            rc = CLI_EXIT_FAIL;
            break;
        }
        size_t done = 0;
        e = vd_file_read(f, off, t->buf, TAR_CHUNK, &done);
        if (e != VD_OK) {
            rc = cli_fs_fail(VT_PROG, t->o->pos[0], t->ci->img, path, e);
            break;
        }
        if (done == 0) {
            /* The size in the header is a promise the archive must keep. */
            cli_errorf(VT_PROG, path, "shorter than its size while being read");
            rc = CLI_EXIT_FAIL;
            break;
        }
        if (done > vs->size - off)
            done = (size_t)(vs->size - off);
        la_ssize_t w = archive_write_data(t->a, t->buf, done);
        if (w < 0 || (size_t)w != done) {
            rc = ar_fail(t);
            break;
        }
        off += done;
        cli_progress_add(t->p, done, 0);
    }
    (void)vd_file_close(f); /* read only */
    if (rc == 0)
        cli_progress_add(t->p, 0, 1);
    return rc;
}

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A volume directory's names, sorted (the archive's order does not depend
 * on the order of the directory's entries). */
static vd_err list_names(vd_fs *fs, const char *path, names *ns)
{
    vd_dir *d = NULL;
    vd_dirent *ent = malloc(sizeof *ent);
    memset(ns, 0, sizeof *ns);
    vd_err e = ent ? vd_dir_open(fs, path, &d) : VD_ERR_NOMEM;
    while (e == VD_OK) {
        e = vd_dir_read(d, ent);
        if (e != VD_OK)
            break;
        if (ns->n == ns->cap) {
            size_t ncap = ns->cap ? 2 * ns->cap : 16;
            char **g = realloc(ns->v, ncap * sizeof *g);
            if (!g) {
                e = VD_ERR_NOMEM;
                break;
            }
            ns->v = g;
            ns->cap = ncap;
        }
        ns->v[ns->n] = strdup(ent->name);
        if (!ns->v[ns->n]) {
            e = VD_ERR_NOMEM;
            break;
        }
        ns->n++;
    }
    if (e == VD_ERR_NOENT && d)
        e = VD_OK;
    if (d)
        (void)vd_dir_close(d); /* a listing changes nothing */
    free(ent);
    if (e == VD_OK && ns->n)
        qsort(ns->v, ns->n, sizeof *ns->v, by_str);
    return e;
}

static void names_free(names *ns)
{
    cli_names_free(ns->v, ns->n);
    memset(ns, 0, sizeof *ns);
}

static int tar_tree(tarout *t, const char *path, const char *name);

static int tar_dir(tarout *t, const char *path, const char *name, const vd_stat *vs)
{
    int rc = 0;
    if (name[0]) {
        put_header(t, name, vs, AE_IFDIR, MODE_DIR, 0);
        rc = write_header(t);
    }
    names ns;
    vd_err e = rc == 0 ? list_names(t->ci->fs, path, &ns) : VD_OK;
    if (rc)
        return rc;
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, t->o->pos[0], t->ci->img, path, e);
    for (size_t i = 0; i < ns.n && rc == 0; i++) {
        char *p = cli_path_join(path, ns.v[i]);
        char *n = name[0] ? cli_path_join(name, ns.v[i]) : strdup(ns.v[i]);
        if (!p || !n) {
            cli_errorf(VT_PROG, path, "out of memory");
            rc = CLI_EXIT_FAIL;
        } else {
            rc = tar_tree(t, p, n);
        }
        free(p);
        free(n);
    }
    names_free(&ns);
    return rc;
}

static int tar_link(tarout *t, const char *path, const char *name, const vd_stat *vs)
{
    char target[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    vd_err e = vd_fs_readlink(t->ci->fs, path, target, sizeof target, &len);
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, t->o->pos[0], t->ci->img, path, e);
    put_header(t, name, vs, AE_IFLNK, MODE_LINK, 0);
    archive_entry_set_symlink_utf8(t->ae, target);
    int rc = write_header(t);
    if (rc == 0)
        cli_progress_add(t->p, 0, 1);
    return rc;
}

static int tar_tree(tarout *t, const char *path, const char *name)
{
    vd_stat vs;
    vd_err e = vd_fs_lstat(t->ci->fs, path, &vs);
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, t->o->pos[0], t->ci->img, path, e);
    if (vs.is_link)
        return tar_link(t, path, name, &vs);
    if (vs.is_dir)
        return tar_dir(t, path, name, &vs);
    return tar_file(t, path, name, &vs);
}

/* The archive goes to dest: "-" is standard output, anything else a
 * temporary next to it, renamed into place when complete. */
int vt_export_tar(vt_opts *o)
{
    const char *dest = o->pos[1];
    int to_stdout = strcmp(dest, "-") == 0;
    char *tmp = NULL;
    int fd = -1;
    if (to_stdout && isatty(STDOUT_FILENO)) {
        cli_errorf(VT_PROG, NULL, "refusing to write a tar archive to a terminal");
        return CLI_EXIT_USAGE;
    }
    if (!to_stdout && !o->force && access(dest, F_OK) == 0) {
        cli_errorf(VT_PROG, dest, "exists (give --force to replace it)");
        return CLI_EXIT_FAIL;
    }
    cli_image ci;
    int rc = vt_open_fs(o, 1, &ci);
    if (rc)
        return rc;
    tarout t = {.o = o, .ci = &ci, .dest = to_stdout ? "standard output" : dest};
    cli_progress p;
    cli_progress_start(&p, "exporting", 0, 0, o->quiet);
    t.p = &p;
    if (to_stdout) {
        fd = STDOUT_FILENO;
    } else {
        size_t n = strlen(dest) + sizeof ".tmp.XXXXXX";
        tmp = malloc(n);
        if (tmp) {
            snprintf(tmp, n, "%s.tmp.XXXXXX", dest);
            fd = mkstemp(tmp);
        }
        if (fd < 0) {
            cli_errorf(VT_PROG, tmp ? tmp : dest, "%s", strerror(tmp ? errno : ENOMEM));
            free(tmp);
            tmp = NULL;
            rc = CLI_EXIT_FAIL;
            goto out;
        }
    }
    t.buf = malloc(TAR_CHUNK);
    t.a = archive_write_new();
    t.ae = archive_entry_new();
    if (!t.buf || !t.a || !t.ae) {
        cli_errorf(VT_PROG, dest, "out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (archive_write_set_format_pax_restricted(t.a) != ARCHIVE_OK ||
        archive_write_open_fd(t.a, fd) != ARCHIVE_OK) {
        rc = ar_fail(&t);
        goto out;
    }
    rc = tar_tree(&t, "/", "");
    if (archive_write_close(t.a) != ARCHIVE_OK && rc == 0)
        rc = ar_fail(&t);
    if (rc == 0 && !to_stdout) {
        if (fsync(fd) != 0 || close(fd) != 0) {
            fd = -1;
            cli_errorf(VT_PROG, tmp, "%s", strerror(errno));
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        fd = -1;
        rc = vt_install(tmp, dest, o->force);
        if (rc == 0) {
            free(tmp);
            tmp = NULL;
        }
    }
out:
    cli_progress_end(&p);
    if (t.a)
        (void)archive_write_free(t.a);
    if (t.ae)
        archive_entry_free(t.ae);
    free(t.buf);
    if (fd >= 0 && !to_stdout)
        (void)close(fd);
    if (tmp) {
        (void)unlink(tmp);
        free(tmp);
    }
    return vt_close(o, &ci, rc);
}
