/* The paths a tar archive has named so far (mkvhd --tar): what each is,
 * where it went in the volume (a clash may rename it), and for a
 * directory how many entries it holds and the mtime to give it last.
 * An archive lists its entries in any order, with parents implied, with
 * duplicates and with hard links to earlier names; this table answers all
 * of those by archive path. Open addressing, FNV-1a. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mkvhd.h"

#define TP_MIN_CAP 1024u

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

void tarpaths_free(tarpaths *t)
{
    for (size_t i = 0; i < t->cap; i++) {
        if (t->v[i].key) {
            free(t->v[i].key);
            free(t->v[i].vpath);
            free(t->v[i].target);
        }
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

static size_t slot_of(const tarpaths *t, const char *key)
{
    size_t mask = t->cap - 1, i = (size_t)fnv1a(key) & mask;
    while (t->v[i].key && strcmp(t->v[i].key, key) != 0)
        i = (i + 1) & mask;
    return i;
}

tarpath *tarpaths_find(tarpaths *t, const char *key)
{
    if (t->cap == 0)
        return NULL;
    tarpath *p = &t->v[slot_of(t, key)];
    return p->key ? p : NULL;
}

static int grow(tarpaths *t)
{
    size_t ncap = t->cap ? 2 * t->cap : TP_MIN_CAP;
    tarpath *old = t->v;
    size_t ocap = t->cap;
    t->v = calloc(ncap, sizeof *t->v);
    if (!t->v) {
        t->v = old;
        return -1;
    }
    t->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].key)
            t->v[slot_of(t, old[i].key)] = old[i];
    free(old);
    return 0;
}

tarpath *tarpaths_add(tarpaths *t, const char *key)
{
    if ((t->n + 1) * 4 > t->cap * 3 && grow(t) != 0)
        return NULL;
    tarpath *p = &t->v[slot_of(t, key)];
    if (p->key)
        return p;
    memset(p, 0, sizeof *p);
    p->key = strdup(key);
    if (!p->key)
        return NULL;
    t->n++;
    return p;
}
