/* ls, cat, rm, mkdir, mv: file operations on the volume. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vhdtool.h"

#define READ_CHUNK (1u << 20)
#define NS_PER_S 1000000000LL

/* ---- listing ----------------------------------------------------------------- */

typedef struct entries {
    vd_dirent *v;
    size_t n, cap;
} entries;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const vd_dirent *)a)->name, ((const vd_dirent *)b)->name);
}

/* A volume directory's entries, sorted by name. */
static vd_err list_dir(vd_fs *fs, const char *path, entries *es)
{
    vd_dir *d = NULL;
    memset(es, 0, sizeof *es);
    vd_err e = vd_dir_open(fs, path, &d);
    while (e == VD_OK) {
        if (es->n == es->cap) {
            size_t ncap = es->cap ? 2 * es->cap : 16;
            vd_dirent *g = realloc(es->v, ncap * sizeof *g);
            if (!g) {
                e = VD_ERR_NOMEM;
                break;
            }
            es->v = g;
            es->cap = ncap;
        }
        e = vd_dir_read(d, &es->v[es->n]);
        if (e == VD_OK)
            es->n++;
    }
    if (e == VD_ERR_NOENT && d)
        e = VD_OK;
    if (d)
        (void)vd_dir_close(d); /* a listing changes nothing */
    if (e == VD_OK)
        qsort(es->v, es->n, sizeof *es->v, by_name);
    else
        free(es->v);
    return e;
}

/* target: a link's, for -l ("name -> target"); NULL otherwise. */
static void print_entry(const char *name, const vd_stat *st, int long_fmt,
                        const char *target)
{
    if (!long_fmt) {
        printf("%s\n", name);
        return;
    }
    time_t t = (time_t)(st->mtime_ns / NS_PER_S);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%c %12llu %s %s%s%s\n", st->is_dir ? 'd' : st->is_link ? 'l' : '-',
           (unsigned long long)(st->is_dir ? 0 : st->size), when, name,
           target ? " -> " : "", target ? target : "");
}

static int ls_dir(vt_opts *o, cli_image *ci, const char *path, int header)
{
    entries es;
    vd_err e = list_dir(ci->fs, path, &es);
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, o->pos[0], ci->img, path, e);
    int rc = 0;
    if (header)
        printf("%s:\n", path);
    for (size_t i = 0; i < es.n && rc == 0; i++) {
        vd_stat st = {
            .size = es.v[i].size, .is_dir = es.v[i].is_dir, .is_link = es.v[i].is_link};
        char target[VD_FS_LINK_MAX + 1];
        int has_target = 0;
        if (o->long_fmt) {
            char *p = cli_path_join(path, es.v[i].name);
            e = p ? vd_fs_lstat(ci->fs, p, &st) : VD_ERR_NOMEM;
            if (e == VD_OK && st.is_link) {
                size_t len = 0;
                e = vd_fs_readlink(ci->fs, p, target, sizeof target, &len);
                has_target = e == VD_OK;
            }
            if (e != VD_OK)
                rc = cli_fs_fail(VT_PROG, o->pos[0], ci->img, p ? p : path, e);
            free(p);
        }
        if (rc == 0)
            print_entry(es.v[i].name, &st, o->long_fmt, has_target ? target : NULL);
    }
    for (size_t i = 0; o->recursive && i < es.n && rc == 0; i++) {
        if (!es.v[i].is_dir)
            continue;
        char *p = cli_path_join(path, es.v[i].name);
        if (!p) {
            cli_errorf(VT_PROG, path, "out of memory");
            rc = CLI_EXIT_FAIL;
            break;
        }
        printf("\n");
        rc = ls_dir(o, ci, p, 1);
        free(p);
    }
    free(es.v);
    return rc;
}

int vt_cmd_ls(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *path = o->npos > 1 ? o->pos[1] : "/";
    cli_image ci;
    int rc = vt_open_fs(o, 1, &ci);
    if (rc)
        return rc;
    vd_stat st;
    char target[VD_FS_LINK_MAX + 1];
    size_t len = 0;
    /* As ls: with -l a link named on the command line is shown itself
     * (unless PATH ends in '/'), without -l followed. */
    vd_err e = o->long_fmt ? vd_fs_lstat(ci.fs, path, &st) : vd_fs_stat(ci.fs, path, &st);
    if (e == VD_OK && st.is_link)
        e = vd_fs_readlink(ci.fs, path, target, sizeof target, &len);
    if (e != VD_OK)
        rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, path, e);
    else if (!st.is_dir)
        print_entry(path, &st, o->long_fmt, st.is_link ? target : NULL);
    else
        rc = ls_dir(o, &ci, path, o->recursive);
    if (fflush(stdout) != 0 && rc == 0) {
        cli_errorf(VT_PROG, NULL, "standard output: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    return vt_close(o, &ci, rc);
}

/* ---- cat ------------------------------------------------------------------------- */

int vt_cmd_cat(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *path = o->pos[1];
    cli_image ci;
    vd_file *f = NULL;
    uint8_t *buf = NULL;
    int rc = vt_open_fs(o, 1, &ci);
    if (rc)
        return rc;
    buf = malloc(READ_CHUNK);
    vd_err e = buf ? vd_file_open(ci.fs, path, VD_O_RDONLY, &f) : VD_ERR_NOMEM;
    for (uint64_t off = 0; e == VD_OK;) {
        size_t done = 0;
        e = vd_file_read(f, off, buf, READ_CHUNK, &done);
        if (e != VD_OK || done == 0)
            break;
        if (fwrite(buf, 1, done, stdout) != done) {
            cli_errorf(VT_PROG, NULL, "standard output: %s", strerror(errno));
            rc = CLI_EXIT_FAIL;
            break;
        }
        off += done;
    }
    if (e != VD_OK)
        rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, path, e);
    if (rc == 0 && fflush(stdout) != 0) {
        cli_errorf(VT_PROG, NULL, "standard output: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (f)
        (void)vd_file_close(f); /* read-only */
    free(buf);
    return vt_close(o, &ci, rc);
}

/* ---- rm ---------------------------------------------------------------------------- */

static int rm_tree(vt_opts *o, cli_image *ci, const char *path)
{
    vd_stat st;
    vd_err e = vd_fs_stat(ci->fs, path, &st);
    if (e == VD_OK && !st.is_dir)
        e = vd_fs_unlink(ci->fs, path);
    if (e != VD_OK || !st.is_dir)
        return e == VD_OK ? 0 : cli_fs_fail(VT_PROG, o->pos[0], ci->img, path, e);
    entries es;
    e = list_dir(ci->fs, path, &es);
    if (e != VD_OK)
        return cli_fs_fail(VT_PROG, o->pos[0], ci->img, path, e);
    int rc = 0;
    for (size_t i = 0; i < es.n && rc == 0; i++) {
        char *p = cli_path_join(path, es.v[i].name);
        if (!p) {
            cli_errorf(VT_PROG, path, "out of memory");
            rc = CLI_EXIT_FAIL;
            break;
        }
        rc = rm_tree(o, ci, p);
        free(p);
    }
    free(es.v);
    if (rc == 0) {
        e = vd_fs_rmdir(ci->fs, path);
        if (e != VD_OK)
            rc = cli_fs_fail(VT_PROG, o->pos[0], ci->img, path, e);
    }
    return rc;
}

static int is_root(const char *p)
{
    return p[strspn(p, "/")] == 0;
}

int vt_cmd_rm(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *path = o->pos[1];
    if (is_root(path)) {
        cli_errorf(VT_PROG, o->pos[0], "refusing to remove the root directory");
        return CLI_EXIT_FAIL;
    }
    cli_image ci;
    int rc = vt_open_fs(o, 0, &ci);
    if (rc)
        return rc;
    vd_stat st;
    vd_err e = vd_fs_stat(ci.fs, path, &st);
    if (e != VD_OK)
        rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, path, e);
    else if (st.is_dir && !o->recursive)
        cli_errorf(VT_PROG, o->pos[0], "%s: is a directory (use rm -r)", path),
            rc = CLI_EXIT_FAIL;
    else
        rc = rm_tree(o, &ci, path);
    return vt_close(o, &ci, rc);
}

/* ---- mkdir, mv ---------------------------------------------------------------------- */

static int mkdir_parents(vt_opts *o, cli_image *ci, const char *path)
{
    char *p = strdup(path);
    if (!p) {
        cli_errorf(VT_PROG, path, "out of memory");
        return CLI_EXIT_FAIL;
    }
    int rc = 0;
    size_t len = strlen(p);
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char saved = p[i];
        p[i] = 0;
        if (!is_root(p) && p[i - 1] != '/') {
            vd_err e = vd_fs_mkdir(ci->fs, p);
            if (e == VD_ERR_EXIST) {
                vd_stat st;
                e = vd_fs_stat(ci->fs, p, &st);
                if (e == VD_OK && !st.is_dir)
                    e = VD_ERR_NOTDIR;
            }
            if (e != VD_OK)
                rc = cli_fs_fail(VT_PROG, o->pos[0], ci->img, p, e);
        }
        p[i] = saved;
    }
    free(p);
    return rc;
}

int vt_cmd_mkdir(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *path = o->pos[1];
    cli_image ci;
    int rc = vt_open_fs(o, 0, &ci);
    if (rc)
        return rc;
    if (o->parents) {
        rc = mkdir_parents(o, &ci, path);
    } else {
        vd_err e = vd_fs_mkdir(ci.fs, path);
        if (e != VD_OK)
            rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, path, e);
    }
    return vt_close(o, &ci, rc);
}

int vt_cmd_mv(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *from = o->pos[1];
    char *to = NULL, *base = NULL;
    cli_image ci;
    int rc = vt_open_fs(o, 0, &ci);
    if (rc)
        return rc;
    vd_stat st;
    vd_err e = vd_fs_stat(ci.fs, o->pos[2], &st);
    if (e == VD_OK && st.is_dir) {
        base = cli_path_base(from);
        to = base ? cli_path_join(o->pos[2], base) : NULL;
    } else {
        to = strdup(o->pos[2]);
    }
    if (!to) {
        cli_errorf(VT_PROG, NULL, "out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    e = vd_fs_rename(ci.fs, from, to, 0);
    if (e != VD_OK)
        rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, from, e);
out:
    free(base);
    free(to);
    return vt_close(o, &ci, rc);
}
