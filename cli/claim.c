/* Claiming a name in a volume directory for a new entry, and what to do
 * when FAT32's case-blindness makes it clash with a name already there
 * (--on-clash). The library answers VD_ERR_EXIST for any name equal but
 * for case; only a listing tells whether the existing entry has exactly
 * our name (put replaces it) or another one (a clash). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "copy.h"

/* Renames try NAME~1.EXT, NAME~2.EXT ...; past this many something else
 * is wrong (a directory cannot hold more than 65536 entries). */
#define CLASH_TRIES 65536u

int cli_clash_parse(const char *s, cli_clash *out)
{
    static const char *const names[] = {"fail", "skip", "rename"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (cli_clash)i;
            return 0;
        }
    }
    return -1;
}

/* The entry of dir whose name equals name exactly (*exact) or, failing
 * that, one that equals it without ASCII case (copied to other, for the
 * message; non-ASCII case is left to the library and goes unnamed). */
static vd_err find_names(vd_fs *fs, const char *dir, const char *name, int *exact,
                         char *other, size_t olen)
{
    vd_dir *d = NULL;
    vd_dirent *ent = malloc(sizeof *ent);
    *exact = 0;
    other[0] = 0;
    vd_err e = ent ? vd_dir_open(fs, dir, &d) : VD_ERR_NOMEM;
    while (e == VD_OK && !*exact) {
        e = vd_dir_read(d, ent);
        if (e != VD_OK)
            break;
        if (strcmp(ent->name, name) == 0)
            *exact = 1;
        else if (!other[0] && strcasecmp(ent->name, name) == 0)
            snprintf(other, olen, "%s", ent->name);
    }
    if (e == VD_ERR_NOENT && d)
        e = VD_OK;
    if (d)
        (void)vd_dir_close(d); /* a listing changes nothing */
    free(ent);
    return e;
}

/* name with "~n" before its extension: "xt_connmark~1.h", ".bashrc~1". */
static char *clash_candidate(const char *name, unsigned n)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name)
        dot = name + strlen(name);
    size_t stem = (size_t)(dot - name), len = strlen(name) + 16;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%.*s~%u%s", (int)stem, name, n, dot);
    return p;
}

typedef enum claim_kind { CLAIM_FILE, CLAIM_DIR, CLAIM_LINK } claim_kind;

/* What to make: a file (opened into *f), a directory, or a link to target. */
typedef struct claim_what {
    claim_kind kind;
    const char *target;
    vd_file **f;
} claim_what;

/* One attempt at creating path; VD_ERR_EXIST when anything equal but for
 * case is there. */
static vd_err try_create(cli_copy *c, const char *path, const claim_what *w)
{
    switch (w->kind) {
    case CLAIM_DIR:
        return vd_fs_mkdir(c->fs, path);
    case CLAIM_LINK:
        return vd_fs_symlink(c->fs, w->target, path);
    default:
        return vd_file_open(c->fs, path, VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL, w->f);
    }
}

/* The name exists exactly (replace mode): a file is truncated and a
 * directory merged, as put always did; a link is replaced by whatever
 * comes (never written through), and so is a file by a link. */
static vd_err reuse(cli_copy *c, const char *path, const claim_what *w)
{
    vd_stat vs;
    vd_err e = vd_fs_lstat(c->fs, path, &vs);
    if (e != VD_OK)
        return e;
    if (vs.is_dir)
        return w->kind == CLAIM_DIR ? VD_OK : VD_ERR_ISDIR;
    if (!vs.is_link && w->kind == CLAIM_DIR)
        return VD_ERR_NOTDIR;
    if (!vs.is_link && w->kind == CLAIM_FILE)
        return vd_file_open(c->fs, path, VD_O_WRONLY | VD_O_TRUNC, w->f);
    e = vd_fs_unlink(c->fs, path);
    return e != VD_OK ? e : try_create(c, path, w);
}

static int clash_fail(cli_copy *c, const char *src, const char *other)
{
    if (other[0])
        cli_errorf(c->prog, src,
                   "its name clashes with '%s' (FAT32 ignores case; "
                   "--on-clash=skip or --on-clash=rename go on)",
                   other);
    else
        cli_errorf(c->prog, src,
                   "its name clashes with another one that differs only in case "
                   "(FAT32 ignores case; --on-clash=skip or --on-clash=rename go on)");
    return CLI_EXIT_FAIL;
}

static int claim(cli_copy *c, const char *src, const char *dir, const char *name,
                 const claim_what *w, char **final)
{
    *final = NULL;
    char *path = cli_path_join(dir, name);
    if (!path) {
        cli_errorf(c->prog, src, "out of memory");
        return CLI_EXIT_FAIL;
    }
    vd_err e = try_create(c, path, w);
    if (e != VD_ERR_EXIST)
        goto done;
    int exact = 0;
    char other[1024];
    e = find_names(c->fs, dir, name, &exact, other, sizeof other);
    if (e != VD_OK)
        goto done;
    if (exact && c->replace) {
        e = reuse(c, path, w);
        goto done;
    }
    if (exact) /* a second entry of the same name (mkvhd never makes one) */
        snprintf(other, sizeof other, "%s", name);
    int rc = 0;
    switch (c->clash) {
    case CLI_CLASH_FAIL:
        rc = clash_fail(c, src, other);
        break;
    case CLI_CLASH_SKIP:
        cli_errorf(c->prog, src, "skipped: its name clashes with '%s' (--on-clash=skip)",
                   other[0] ? other : "another name");
        break;
    case CLI_CLASH_RENAME:
        e = VD_ERR_EXIST;
        for (unsigned n = 1; n <= CLASH_TRIES && e == VD_ERR_EXIST; n++) {
            char *cand = clash_candidate(name, n);
            char *p = cand ? cli_path_join(dir, cand) : NULL;
            e = p ? try_create(c, p, w) : VD_ERR_NOMEM;
            if (e == VD_ERR_EXIST && c->replace) {
                /* put again: the name an earlier put chose is replaced, so
                 * repeating a put makes no NAME~2. */
                int same = 0;
                char o2[8];
                e = find_names(c->fs, dir, cand, &same, o2, sizeof o2);
                e = e != VD_OK ? e : same ? reuse(c, p, w) : VD_ERR_EXIST;
            }
            if (e == VD_OK) {
                cli_errorf(c->prog, src,
                           "stored as '%s': its name clashes with '%s' "
                           "(--on-clash=rename)",
                           cand, other[0] ? other : "another name");
                *final = p;
            } else {
                free(p);
            }
            free(cand);
        }
        if (e != VD_OK)
            rc = cli_copy_in_fail(c, src, path, e);
        break;
    }
    free(path);
    return rc;
done:
    if (e != VD_OK) {
        int r = cli_copy_in_fail(c, src, path, e);
        free(path);
        return r;
    }
    *final = path;
    return 0;
}

int cli_claim_file(cli_copy *c, const char *src, const char *dir, const char *name,
                   vd_file **f, char **final)
{
    *f = NULL;
    claim_what w = {.kind = CLAIM_FILE, .f = f};
    return claim(c, src, dir, name, &w, final);
}

int cli_claim_dir(cli_copy *c, const char *src, const char *dir, const char *name,
                  char **final)
{
    claim_what w = {.kind = CLAIM_DIR};
    return claim(c, src, dir, name, &w, final);
}

int cli_claim_link(cli_copy *c, const char *src, const char *dir, const char *name,
                   const char *target, char **final)
{
    claim_what w = {.kind = CLAIM_LINK, .target = target};
    return claim(c, src, dir, name, &w, final);
}
