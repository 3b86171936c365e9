/* Path resolution: UTF-8 '/'-separated paths, relative to the root,
 * looked up component by component (case-insensitively), following
 * symbolic links as POSIX does (vdisk/fs.h).
 *
 * The walk keeps the directories it entered from the root as a stack, so
 * a link target's ".." goes back to where the walk came from (the
 * physical parent, as on Linux) without trusting a ".." entry on disk,
 * and stops at the root: nothing a link says can lead out of the volume.
 * A link is expanded by replacing it with its target in the rest of the
 * path, at most VD_FS_MAXSYMLINKS times per walk. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

/* One directory entered: its entry in parent (for describing it when a
 * path ends on it) and its first cluster. */
typedef struct walk_frame {
    uint32_t parent, first_slot, clus;
} walk_frame;

typedef struct walk {
    walk_frame *v;
    size_t n, cap;
    char *rest;   /* the remaining path after a link expansion (owned) */
    unsigned links;
} walk;

static uint32_t walk_cur(const vd_fs *fs, const walk *w)
{
    return w->n ? w->v[w->n - 1].clus : fs->root_clus;
}

static void set_root(vd_fs *fs, fat_path *p)
{
    memset(p, 0, sizeof *p);
    p->parent = fs->root_clus;
    p->is_root = 1;
    p->exists = 1;
    p->d.attr = ATTR_DIRECTORY;
    p->d.first = fs->root_clus;
}

/* Paths from callers are canonical: no ".." (only link targets have it). */
static int has_dotdot(const char *s)
{
    for (;;) {
        while (*s == '/')
            s++;
        if (!*s)
            return 0;
        if (s[0] == '.' && s[1] == '.' && (s[2] == '/' || !s[2]))
            return 1;
        while (*s && *s != '/')
            s++;
    }
}

/* Enter the directory p describes (it exists and is one). */
static vd_err walk_enter(vd_fs *fs, walk *w, const fat_path *p)
{
    if (!fat_valid_cluster(fs, p->d.first))
        return VD_ERR_CORRUPT;
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        walk_frame *v = realloc(w->v, cap * sizeof *v);
        if (!v)
            return VD_ERR_NOMEM;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n].parent = p->parent;
    w->v[w->n].first_slot = p->d.first_slot;
    w->v[w->n].clus = p->d.first;
    w->n++;
    return VD_OK;
}

/* The rest of the walk becomes target + "/" + rest (just target when
 * rest is empty); an absolute target starts again at the root. */
static vd_err walk_expand(vd_fs *fs, walk *w, const char *target, size_t tlen,
                          const char **s)
{
    (void)fs;
    if (++w->links > VD_FS_MAXSYMLINKS)
        return VD_ERR_LOOP;
    size_t rlen = strlen(*s);
    char *nb = malloc(tlen + 1 + rlen + 1);
    if (!nb)
        return VD_ERR_NOMEM;
    memcpy(nb, target, tlen);
    size_t k = tlen;
    if (rlen) {
        nb[k++] = '/';
        memcpy(nb + k, *s, rlen);
        k += rlen;
    }
    nb[k] = 0;
    free(w->rest);
    w->rest = nb;
    *s = nb;
    if (target[0] == '/')
        w->n = 0; /* the volume's root, never the host's */
    return VD_OK;
}

/* The path ended on a directory the walk entered (via "." or ".." or a
 * link to it): describe it from its entry. */
static vd_err describe_cur(vd_fs *fs, const walk *w, fat_path *p)
{
    if (w->n == 0) {
        set_root(fs, p);
        return VD_OK;
    }
    const walk_frame *f = &w->v[w->n - 1];
    memset(p, 0, sizeof *p);
    fat_dirit it;
    fat_dirit_init(&it, f->parent);
    it.slot = f->first_slot;
    vd_err e = fat_dir_next(fs, &it, &p->d);
    if (e == VD_ERR_NOENT || (e == VD_OK && p->d.first != f->clus))
        e = VD_ERR_CORRUPT;
    if (e != VD_OK)
        return e;
    p->parent = f->parent;
    memcpy(p->name, p->d.name, p->d.nlen * sizeof(uint16_t));
    p->nlen = p->d.nlen;
    p->exists = 1;
    return VD_OK;
}

static vd_err walk_run(vd_fs *fs, walk *w, const char *path, int follow, fat_path *p,
                       char *target)
{
    const char *s = path;
    int pending = 0;  /* p holds the last component, looked up in walk_cur */
    int trailing = 0; /* that component was followed by '/' */
    set_root(fs, p);
    for (;;) {
        while (*s == '/')
            s++;
        const char *end = s;
        while (*end && *end != '/')
            end++;
        size_t len = (size_t)(end - s);
        if (pending) {
            /* Another component follows, or the path ends: p must be
             * entered, followed, or is the answer. */
            if (len && !p->exists)
                return VD_ERR_NOENT; /* a middle component is missing */
            size_t tlen = 0;
            vd_err e = VD_OK;
            if (p->exists && fat_link_candidate(&p->d))
                e = fat_link_read(fs, &p->d, target, &tlen);
            if (e != VD_OK)
                return e;
            if (tlen && (len || follow == FAT_WALK_FOLLOW ||
                         (follow == FAT_WALK_LOOKUP && trailing))) {
                const char *rest = len ? s : trailing ? "/" : "";
                e = walk_expand(fs, w, target, tlen, &rest);
                if (e != VD_OK)
                    return e;
                s = rest;
                pending = 0;
                continue;
            }
            if (!len) {
                p->link_len = tlen;
                p->slashed = trailing;
                return VD_OK;
            }
            if (!(p->d.attr & ATTR_DIRECTORY))
                return VD_ERR_NOTDIR;
            e = walk_enter(fs, w, p);
            if (e != VD_OK)
                return e;
            pending = 0;
        }
        if (!len)
            return describe_cur(fs, w, p);
        if (len == 1 && s[0] == '.') {
            s = end;
            continue;
        }
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (w->n)
                w->n--; /* and at the root, ".." is the root */
            s = end;
            continue;
        }
        if (len > 4 * FAT_NAME_MAX)
            return VD_ERR_NAME;
        uint32_t cur = walk_cur(fs, w);
        memset(p, 0, sizeof *p);
        vd_err e = fat_utf8_to_utf16(s, len, p->name, &p->nlen);
        if (e == VD_OK)
            e = fat_name_check(p->name, &p->nlen);
        if (e != VD_OK)
            return e;
        if (!fat_valid_cluster(fs, cur))
            return VD_ERR_CORRUPT;
        p->parent = cur;
        e = fat_dir_lookup(fs, cur, p->name, p->nlen, &p->d);
        if (e == VD_ERR_NOENT)
            p->exists = 0;
        else if (e != VD_OK)
            return e;
        else
            p->exists = 1;
        pending = 1;
        trailing = *end == '/';
        s = end;
    }
}

vd_err fat_path_walk(vd_fs *fs, const char *path, int follow, fat_path *p)
{
    if (has_dotdot(path))
        return VD_ERR_INVAL; /* paths are canonical: no ".." */
    walk w = {.v = NULL, .n = 0, .cap = 0, .rest = NULL, .links = 0};
    char *target = malloc(FAT_LINK_MAX + 1);
    vd_err e = target ? walk_run(fs, &w, path, follow, p, target) : VD_ERR_NOMEM;
    free(target);
    free(w.v);
    free(w.rest);
    return e;
}

vd_err fat_path_resolve(vd_fs *fs, const char *path, fat_path *p)
{
    return fat_path_walk(fs, path, 0, p);
}
