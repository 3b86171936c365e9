/* Path resolution: UTF-8 '/'-separated paths, relative to the root,
 * looked up component by component (case-insensitively). */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

vd_err fat_path_resolve(vd_fs *fs, const char *path, fat_path *p)
{
    memset(p, 0, sizeof *p);
    p->parent = fs->root_clus;
    p->is_root = 1;
    p->exists = 1;
    p->d.attr = ATTR_DIRECTORY;
    p->d.first = fs->root_clus;
    const char *s = path;
    uint32_t cur = fs->root_clus;
    for (;;) {
        while (*s == '/')
            s++;
        if (!*s)
            return VD_OK;
        const char *end = s;
        while (*end && *end != '/')
            end++;
        size_t len = (size_t)(end - s);
        if (len == 1 && s[0] == '.') {
            s = end;
            continue;
        }
        if (len == 2 && s[0] == '.' && s[1] == '.')
            return VD_ERR_INVAL; /* paths are canonical: no ".." */
        if (!p->is_root && !p->exists)
            return VD_ERR_NOENT; /* a middle component is missing */
        if (!p->is_root && !(p->d.attr & ATTR_DIRECTORY))
            return VD_ERR_NOTDIR;
        if (!p->is_root)
            cur = p->d.first;
        if (len > 4 * FAT_NAME_MAX)
            return VD_ERR_NAME;
        vd_err e = fat_utf8_to_utf16(s, len, p->name, &p->nlen);
        if (e == VD_OK)
            e = fat_name_check(p->name, &p->nlen);
        if (e != VD_OK)
            return e;
        if (!fat_valid_cluster(fs, cur))
            return VD_ERR_CORRUPT;
        p->parent = cur;
        p->is_root = 0;
        e = fat_dir_lookup(fs, cur, p->name, p->nlen, &p->d);
        if (e == VD_ERR_NOENT) {
            p->exists = 0;
        } else if (e != VD_OK) {
            return e;
        } else {
            p->exists = 1;
        }
        s = end;
    }
}
