/* The node table: one kernel inode per FAT file, whatever the spelling.
 *
 * FAT names match case-insensitively and every long name has an 8.3
 * alias, so "README.TXT", "readme.txt" and "LONGFI~1.TXT" can all name
 * one file. The kernel must see one inode for them, or it keeps one page
 * cache per spelling and they disagree. FAT has no inode numbers (a
 * first cluster is 0 while a file is empty and changes when it grows), so
 * a node is keyed on where its directory entry is (vd_stat.entry_id),
 * the same for every spelling. That key moves only when an entry moves:
 * rename re-keys the node, unlink and rename-over drop its key (the node
 * lives on, without a path, while the kernel or an open handle still
 * refers to it). FAT has no hard links, so one entry is one file.
 *
 * Inode numbers are handed out in order and never reused within a mount,
 * so the kernel never meets a stale number with new contents (generation
 * stays 0). A node is freed when the kernel has forgotten every lookup,
 * no handle is open on it and no child node names it as parent; the
 * kernel keeps parents referenced while children are, so paths built by
 * walking up the parents always reach the root. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vhdmount.h"

static size_t hash64(uint64_t x, size_t nbuckets)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (nbuckets - 1);
}

int vmnt_nodes_init(vmnt_nodes *t)
{
    memset(t, 0, sizeof *t);
    t->nbuckets = 256;
    t->by_ino = calloc(t->nbuckets, sizeof *t->by_ino);
    t->by_key = calloc(t->nbuckets, sizeof *t->by_key);
    if (!t->by_ino || !t->by_key)
        goto fail;
    if (pthread_mutex_init(&t->mu, NULL) != 0)
        goto fail;
    if (pthread_rwlock_init(&t->ns, NULL) != 0) {
        (void)pthread_mutex_destroy(&t->mu);
        goto fail;
    }
    if (pthread_cond_init(&t->wcv, NULL) != 0) {
        (void)pthread_rwlock_destroy(&t->ns);
        (void)pthread_mutex_destroy(&t->mu);
        goto fail;
    }
    t->root.ino = FUSE_ROOT_ID;
    t->root.key = 0;
    t->root.nlookup = 1; /* the kernel never forgets the root */
    t->next_ino = FUSE_ROOT_ID + 1;
    t->ready = 1;
    return 0;
fail:
    free(t->by_ino);
    free(t->by_key);
    t->by_ino = t->by_key = NULL;
    return -1;
}

void vmnt_nodes_fini(vmnt_nodes *t)
{
    if (!t->ready)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        vmnt_node *n = t->by_ino[i];
        while (n) {
            vmnt_node *next = n->next_ino;
            for (unsigned a = 0; a < n->nalias; a++)
                free(n->alias[a]);
            free(n->name);
            free(n);
            n = next;
        }
    }
    free(t->by_ino);
    free(t->by_key);
    (void)pthread_cond_destroy(&t->wcv);
    (void)pthread_rwlock_destroy(&t->ns);
    (void)pthread_mutex_destroy(&t->mu);
    t->ready = 0;
}

static void key_link(vmnt_nodes *t, vmnt_node *n)
{
    size_t b = hash64(n->key, t->nbuckets);
    n->next_key = t->by_key[b];
    t->by_key[b] = n;
}

static void key_unlink(vmnt_nodes *t, vmnt_node *n)
{
    for (vmnt_node **p = &t->by_key[hash64(n->key, t->nbuckets)]; *p; p = &(*p)->next_key)
        if (*p == n) {
            *p = n->next_key;
            break;
        }
    n->next_key = NULL;
    n->key = VD_ENTRY_NONE;
}

static vmnt_node *key_find(vmnt_nodes *t, uint64_t key)
{
    if (key == 0)
        return &t->root;
    for (vmnt_node *n = t->by_key[hash64(key, t->nbuckets)]; n; n = n->next_key)
        if (n->key == key)
            return n;
    return NULL;
}

/* Doubles the buckets when the table is full; stays as is without memory
 * (the chains only get longer). */
static void grow(vmnt_nodes *t)
{
    if (t->count < t->nbuckets || t->nbuckets > ((size_t)1 << 26))
        return;
    size_t nb = t->nbuckets * 2;
    vmnt_node **bi = calloc(nb, sizeof *bi), **bk = calloc(nb, sizeof *bk);
    if (!bi || !bk) {
        free(bi);
        free(bk);
        return;
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        vmnt_node *n = t->by_ino[i];
        while (n) {
            vmnt_node *next = n->next_ino;
            size_t b = hash64(n->ino, nb);
            n->next_ino = bi[b];
            bi[b] = n;
            if (n->key != VD_ENTRY_NONE) {
                b = hash64(n->key, nb);
                n->next_key = bk[b];
                bk[b] = n;
            }
            n = next;
        }
    }
    free(t->by_ino);
    free(t->by_key);
    t->by_ino = bi;
    t->by_key = bk;
    t->nbuckets = nb;
}

vmnt_node *vmnt_node_get(vmnt_nodes *t, fuse_ino_t ino)
{
    if (ino == FUSE_ROOT_ID)
        return &t->root;
    if (pthread_mutex_lock(&t->mu) != 0)
        return NULL;
    vmnt_node *n = t->by_ino[hash64(ino, t->nbuckets)];
    while (n && n->ino != ino)
        n = n->next_ino;
    (void)pthread_mutex_unlock(&t->mu);
    return n;
}

/* Free n and then its parents while nothing refers to them. */
static void maybe_free(vmnt_nodes *t, vmnt_node *n)
{
    while (n && n != &t->root && n->nlookup == 0 && n->nopen == 0 && n->nchild == 0) {
        vmnt_node *parent = n->parent;
        if (n->key != VD_ENTRY_NONE)
            key_unlink(t, n);
        for (vmnt_node **p = &t->by_ino[hash64(n->ino, t->nbuckets)]; *p; p = &(*p)->next_ino)
            if (*p == n) {
                *p = n->next_ino;
                break;
            }
        t->count--;
        for (unsigned i = 0; i < n->nalias; i++)
            free(n->alias[i]);
        free(n->name);
        free(n);
        if (parent)
            parent->nchild--;
        n = parent;
    }
}

char *vmnt_node_path(vmnt_nodes *t, vmnt_node *n, const char *name, int *err)
{
    *err = ENOMEM;
    if (pthread_mutex_lock(&t->mu) != 0)
        return NULL;
    size_t len = name ? strlen(name) + 1 : 0;
    for (vmnt_node *p = n; p != &t->root; p = p->parent) {
        if (p->key == VD_ENTRY_NONE || !p->parent) {
            *err = ENOENT; /* unlinked: no path leads there */
            (void)pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        len += strlen(p->name) + 1;
    }
    char *s = malloc(len + 2);
    if (s) {
        /* Filled from the end: name, then each parent up to the root. */
        size_t at = len;
        s[at] = '\0';
        if (name) {
            at -= strlen(name);
            memcpy(s + at, name, strlen(name));
            s[--at] = '/';
        }
        for (vmnt_node *p = n; p != &t->root; p = p->parent) {
            size_t l = strlen(p->name);
            at -= l;
            memcpy(s + at, p->name, l);
            s[--at] = '/';
        }
        if (len == 0) {
            s[0] = '/';
            s[1] = '\0';
        }
        *err = 0;
    }
    (void)pthread_mutex_unlock(&t->mu);
    return s;
}

vmnt_node *vmnt_node_learn(vmnt_nodes *t, vmnt_node *parent, const char *name, uint64_t key)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return NULL;
    vmnt_node *n = key_find(t, key);
    if (!n) {
        n = calloc(1, sizeof *n);
        char *copy = strdup(name);
        if (!n || !copy) {
            free(n);
            free(copy);
            (void)pthread_mutex_unlock(&t->mu);
            return NULL;
        }
        grow(t);
        n->name = copy;
        n->ino = t->next_ino++;
        n->key = key;
        n->parent = parent;
        parent->nchild++;
        size_t b = hash64(n->ino, t->nbuckets);
        n->next_ino = t->by_ino[b];
        t->by_ino[b] = n;
        key_link(t, n);
        t->count++;
    } else if (n != &t->root && strcmp(n->name, name) != 0 && n->nalias < VMNT_ALIAS_MAX) {
        unsigned i = 0;
        while (i < n->nalias && strcmp(n->alias[i], name) != 0)
            i++;
        if (i == n->nalias && (n->alias[i] = strdup(name)) != NULL)
            n->nalias++; /* without memory: that spelling lives out its timeout */
    }
    n->nlookup++;
    (void)pthread_mutex_unlock(&t->mu);
    return n;
}

void vmnt_node_forget(vmnt_nodes *t, vmnt_node *n, uint64_t nlookup)
{
    if (n == &t->root || pthread_mutex_lock(&t->mu) != 0)
        return;
    n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
    maybe_free(t, n);
    (void)pthread_mutex_unlock(&t->mu);
}

void vmnt_node_unkey(vmnt_nodes *t, uint64_t key)
{
    if (key == 0 || key == VD_ENTRY_NONE || pthread_mutex_lock(&t->mu) != 0)
        return;
    vmnt_node *n = key_find(t, key);
    if (n)
        key_unlink(t, n);
    (void)pthread_mutex_unlock(&t->mu);
}

int vmnt_node_move(vmnt_nodes *t, uint64_t key, vmnt_node *newparent, const char *newname,
                   uint64_t newkey)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return ENOMEM;
    int rc = 0;
    vmnt_node *n = key_find(t, key);
    if (n && n != &t->root) {
        char *copy = strdup(newname);
        key_unlink(t, n);
        if (copy) {
            free(n->name);
            n->name = copy;
            n->key = newkey;
            key_link(t, n);
            vmnt_node *old = n->parent;
            n->parent = newparent;
            newparent->nchild++;
            old->nchild--;
            maybe_free(t, old);
        } else {
            rc = ENOMEM; /* left without a path: safe, never wrong */
        }
    }
    (void)pthread_mutex_unlock(&t->mu);
    return rc;
}

char **vmnt_node_names(vmnt_nodes *t, uint64_t key, fuse_ino_t *parent, unsigned *count)
{
    *count = 0;
    if (key == 0 || key == VD_ENTRY_NONE || pthread_mutex_lock(&t->mu) != 0)
        return NULL;
    vmnt_node *n = key_find(t, key);
    char **v = n ? calloc(n->nalias + 1, sizeof *v) : NULL;
    if (v) {
        *parent = n->parent->ino;
        v[0] = strdup(n->name);
        *count = v[0] ? 1 : 0;
        for (unsigned i = 0; i < n->nalias; i++)
            v[(*count)++] = n->alias[i]; /* handed over */
        n->nalias = 0;
    }
    (void)pthread_mutex_unlock(&t->mu);
    return v;
}

void vmnt_names_free(char **names, unsigned count)
{
    for (unsigned i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

void vmnt_node_open(vmnt_nodes *t, vmnt_node *n, int delta)
{
    if (pthread_mutex_lock(&t->mu) != 0)
        return;
    if (delta > 0)
        n->nopen++;
    else if (n->nopen > 0)
        n->nopen--;
    maybe_free(t, n);
    (void)pthread_mutex_unlock(&t->mu);
}
