/* vd_file_*: file contents through the node's extent cache. Growth is all
 * or nothing (clusters are reserved before any byte moves), so a full
 * volume yields VD_ERR_NOSPC with the file and the FAT as they were. */
#include <stdlib.h>
#include <string.h>

#include "fat/fat_format.h"
#include "fat/fat_internal.h"

static uint32_t clusters_for(const vd_fs *fs, uint64_t bytes)
{
    return (uint32_t)((bytes + fs->cluster_bytes - 1) >> fs->cluster_shift);
}

/* Move len bytes at file offset off: read into rbuf, or write wbuf (NULL
 * writes zeros). The clusters must exist. */
static vd_err data_io_run(vd_fs *fs, fat_node *n, uint64_t off, uint8_t *rbuf,
                          const uint8_t *wbuf, int write, uint64_t len)
{
    while (len > 0) {
        uint32_t fidx = (uint32_t)(off >> fs->cluster_shift), clus, contig;
        vd_err e = fat_node_map(fs, n, fidx, &clus, &contig);
        if (e != VD_OK)
            return e;
        uint64_t within = off & (fs->cluster_bytes - 1);
        uint64_t avail = ((uint64_t)contig << fs->cluster_shift) - within;
        uint64_t k = avail < len ? avail : len;
        if (k > (1u << 30))
            k = 1u << 30;
        uint64_t dev = fat_clus_off(fs, clus) + within;
        if (!write)
            e = fat_dev_read(fs, dev, rbuf, (size_t)k);
        else if (wbuf)
            e = fat_dev_write(fs, dev, wbuf, (size_t)k);
        else
            e = fat_dev_zero(fs, dev, k);
        if (e != VD_OK)
            return e;
        off += k;
        len -= k;
        if (rbuf)
            rbuf += k;
        if (wbuf)
            wbuf += k;
    }
    return VD_OK;
}

/* Mapping the chain may read (never write) the FAT; everything written
 * here is file data. */
static vd_err data_io(vd_fs *fs, fat_node *n, uint64_t off, uint8_t *rbuf,
                      const uint8_t *wbuf, int write, uint64_t len)
{
    fs->in_data = 1;
    vd_err e = data_io_run(fs, n, off, rbuf, wbuf, write, len);
    fs->in_data = 0;
    return e;
}

static vd_err locked_file_open(vd_fs *fs, const char *path, int flags, vd_file **out)
{
    if (!fs || !path || !out)
        return VD_ERR_INVAL;
    int acc = flags & VD_O_ACCMODE;
    if (acc == VD_O_ACCMODE ||
        (flags & ~(VD_O_ACCMODE | VD_O_CREAT | VD_O_EXCL | VD_O_TRUNC | VD_O_APPEND)))
        return VD_ERR_INVAL;
    if (fs->nopen >= FAT_MAX_OPEN)
        return VD_ERR_MFILE;
    fat_path *p = malloc(sizeof *p);
    if (!p)
        return VD_ERR_NOMEM;
    int wants_write = acc != VD_O_RDONLY || (flags & VD_O_TRUNC);
    /* A final link is followed (a dangling one with VD_O_CREAT creates its
     * target), except under VD_O_CREAT | VD_O_EXCL, where it exists. */
    int excl = (flags & VD_O_CREAT) && (flags & VD_O_EXCL);
    vd_err e = fat_path_walk(fs, path, excl ? FAT_WALK_NOFOLLOW : FAT_WALK_FOLLOW, p);
    if (e == VD_OK && !p->exists) {
        if (!(flags & VD_O_CREAT))
            e = VD_ERR_NOENT;
        else
            e = fat_writable(fs);
        if (e == VD_OK) {
            fat_dent *d = &p->d;
            memset(d, 0, sizeof *d);
            int64_t now = fat_now(fs);
            fat_time_encode(now, &d->cdate, &d->ctime, &d->ctenth);
            d->mdate = d->cdate;
            d->mtime = d->ctime;
            d->adate = d->cdate;
            d->attr = ATTR_ARCHIVE;
            e = fat_mark_dirty(fs);
            if (e == VD_OK)
                e = fat_dir_add(fs, p->parent, p->name, p->nlen, d, &d->slot);
        }
    } else if (e == VD_OK) {
        if ((flags & VD_O_CREAT) && (flags & VD_O_EXCL))
            e = VD_ERR_EXIST;
        else if (p->is_root || (p->d.attr & ATTR_DIRECTORY))
            e = VD_ERR_ISDIR;
        else if (wants_write && (e = fat_writable(fs)) == VD_OK &&
                 (p->d.attr & ATTR_READ_ONLY))
            e = VD_ERR_PERM;
    }
    vd_file *f = NULL;
    if (e == VD_OK) {
        f = calloc(1, sizeof *f);
        if (!f)
            e = VD_ERR_NOMEM;
    }
    if (e == VD_OK) {
        f->fs = fs;
        f->flags = flags;
        e = fat_node_get(fs, &p->d, p->parent, &f->node);
        if (e != VD_OK) {
            free(f);
            f = NULL;
        }
    }
    if (e == VD_OK && (flags & VD_O_TRUNC) && f->node->size > 0) {
        e = fat_mark_dirty(fs);
        if (e == VD_OK)
            e = fat_node_resize(fs, f->node, 0);
        if (e == VD_OK) {
            f->node->size = 0;
            e = fat_node_store(fs, f->node, 1);
        }
    }
    free(p);
    e = fat_op_end(fs, e);
    if (e == VD_OK) {
        fs->nopen++;
        *out = f;
    } else if (f) { /* failed after the handle was made */
        (void)fat_node_put(fs, f->node); /* a fresh handle: nothing to free */
        free(f);
    }
    return e;
}

static vd_err locked_file_read(vd_file *f, uint64_t off, void *buf, size_t len,
                               size_t *done)
{
    if (!f || (!buf && len) || !done)
        return VD_ERR_INVAL;
    *done = 0;
    if ((f->flags & VD_O_ACCMODE) == VD_O_WRONLY)
        return VD_ERR_INVAL;
    fat_node *n = f->node;
    if (off >= n->size)
        return VD_OK;
    if (len > n->size - off)
        len = (size_t)(n->size - off);
    vd_err e = data_io(f->fs, n, off, buf, NULL, 0, len);
    if (e == VD_OK)
        *done = len;
    else
        memset(buf, 0, len);
    return fat_op_end(f->fs, e);
}

/* A read under the shared volume lock (see vd_fs.lock): only when the
 * volume is on an image (whose reads may run at once) and the node's chain
 * is mapped, so the read looks things up and changes nothing. 1 if it ran
 * (*e its result), 0 to take the exclusive path. */
static int shared_file_read(vd_file *f, uint64_t off, void *buf, size_t len,
                            size_t *done, vd_err *e)
{
    if (!buf && len)
        return 0;
    vd_fs *fs = f->fs;
    fat_node *n = f->node;
    if (!fs->img || !n->mapped || (f->flags & VD_O_ACCMODE) == VD_O_WRONLY)
        return 0;
    *done = 0;
    *e = VD_OK;
    if (off >= n->size)
        return 1;
    if (len > n->size - off)
        len = (size_t)(n->size - off);
    vd_image_op_begin(fs->img); /* one operation, as under fat_lock (C4) */
    uint8_t *out = buf;
    size_t left = len;
    while (*e == VD_OK && left > 0) {
        uint32_t fidx = (uint32_t)(off >> fs->cluster_shift);
        if (fidx >= n->nclus) {
            *e = VD_ERR_CORRUPT; /* the size says more than the chain holds */
            break;
        }
        const fat_run *r = fat_run_find(n, fidx);
        uint64_t within = off & (fs->cluster_bytes - 1);
        uint64_t avail = ((uint64_t)(r->len - (fidx - r->fidx)) << fs->cluster_shift) - within;
        size_t k = avail < left ? (size_t)avail : left;
        *e = fat_dev_read_shared(fs, fat_clus_off(fs, r->clus + (fidx - r->fidx)) + within,
                                 out, k);
        off += k;
        out += k;
        left -= k;
    }
    vd_image_op_end(fs->img);
    if (*e == VD_OK)
        *done = len;
    else
        memset(buf, 0, len);
    return 1;
}

/* Can n grow to `end` bytes? VD_ERR_NOSPC before anything changed if not. */
static vd_err reserve(vd_fs *fs, fat_node *n, uint64_t end)
{
    uint32_t need = clusters_for(fs, end);
    vd_err e = fat_node_map_all(fs, n);
    if (e == VD_OK && need > n->nclus)
        e = fat_reserve(fs, need - n->nclus);
    return e;
}

/* Grow n to `end` bytes: zeros up to `off` (>= n->size), then buf. Every
 * cluster is reserved first (all or nothing). A growth larger than one
 * commit takes runs in steps (step.c), each step's bytes written before
 * the size that covers them and committed before the next step. */
static vd_err grow(vd_fs *fs, fat_node *n, uint64_t end, uint64_t off, const uint8_t *buf)
{
    uint32_t need = clusters_for(fs, end);
    vd_err e = reserve(fs, n, end);
    while (e == VD_OK && n->size < end) {
        e = fat_node_grow(fs, n, need);
        if (e != VD_OK)
            break;
        uint64_t upto = (uint64_t)n->nclus << fs->cluster_shift;
        if (upto > end)
            upto = end;
        uint64_t zend = off < upto ? off : upto;
        if (zend > n->size)
            e = data_io(fs, n, n->size, NULL, NULL, 1, zend - n->size);
        if (e == VD_OK && upto > off)
            e = data_io(fs, n, off, NULL, buf, 1, upto - off);
        if (e != VD_OK)
            break;
        if (upto > off && buf)
            buf += upto - off;
        if (upto > off)
            off = upto;
        n->size = (uint32_t)upto;
        if (upto < end) { /* one step done: its state is consistent */
            e = fat_node_store(fs, n, 1);
            if (e == VD_OK)
                e = fat_op_step(fs);
        }
    }
    return e;
}

/* Grow the file to `size` bytes (zero-filled) or shrink it. */
static vd_err resize(vd_fs *fs, fat_node *n, uint64_t size)
{
    vd_err e = fat_mark_dirty(fs);
    if (e != VD_OK)
        return e;
    if (size > n->size)
        return grow(fs, n, size, size, NULL);
    e = fat_node_resize(fs, n, clusters_for(fs, size));
    if (e == VD_OK)
        n->size = (uint32_t)size;
    return e;
}

static vd_err locked_file_write(vd_file *f, uint64_t off, const void *buf, size_t len,
                                size_t *done)
{
    if (!f || (!buf && len) || !done)
        return VD_ERR_INVAL;
    *done = 0;
    if ((f->flags & VD_O_ACCMODE) == VD_O_RDONLY)
        return VD_ERR_INVAL;
    vd_fs *fs = f->fs;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    fat_node *n = f->node;
    if (f->flags & VD_O_APPEND)
        off = n->size;
    if (len == 0)
        return VD_OK;
    if (off > FAT_MAX_FILE || len > FAT_MAX_FILE - off)
        return VD_ERR_FBIG;
    uint64_t end = off + len;
    /* The part inside the file first (data only), then the growth: every
     * cluster reserved first (all or nothing), the gap between the old end
     * and off zeroed, the rest written. */
    e = fat_mark_dirty(fs);
    if (e == VD_OK && end > n->size)
        e = reserve(fs, n, end);
    uint64_t inside = off < n->size ? (end < n->size ? end : n->size) - off : 0;
    if (e == VD_OK && inside)
        e = data_io(fs, n, off, NULL, buf, 1, inside);
    if (e == VD_OK && end > n->size)
        e = grow(fs, n, end, off + inside, (const uint8_t *)buf + inside);
    if (e == VD_OK)
        e = fat_node_store(fs, n, 1);
    if (e == VD_OK)
        *done = len;
    return fat_op_end(fs, e);
}

static vd_err locked_file_truncate(vd_file *f, uint64_t size)
{
    if (!f)
        return VD_ERR_INVAL;
    if ((f->flags & VD_O_ACCMODE) == VD_O_RDONLY)
        return VD_ERR_INVAL;
    vd_fs *fs = f->fs;
    vd_err e = fat_writable(fs);
    if (e != VD_OK)
        return e;
    if (size > FAT_MAX_FILE)
        return VD_ERR_FBIG;
    fat_node *n = f->node;
    e = resize(fs, n, size);
    if (e == VD_OK)
        e = fat_node_store(fs, n, 1);
    return fat_op_end(fs, e);
}

vd_err vd_file_sync(vd_file *f)
{
    if (!f)
        return VD_ERR_INVAL;
    return vd_fs_sync(f->fs);
}

static vd_err locked_file_stat(vd_file *f, vd_stat *st)
{
    if (!f || !st)
        return VD_ERR_INVAL;
    fat_dent d;
    fat_node *n = f->node;
    if (n->orphan) { /* unlinked while open: its entry is gone */
        memset(&d, 0, sizeof d);
        d.attr = n->o_attr;
        d.mdate = n->o_mdate;
        d.mtime = n->o_mtime;
        d.adate = n->o_adate;
        d.cdate = n->o_cdate;
        d.ctime = n->o_ctime;
        d.ctenth = n->o_ctenth;
    } else {
        vd_err e = fat_dir_read_slot(f->fs, n->loc.dir, n->loc.slot, &d);
        if (e != VD_OK)
            return fat_op_end(f->fs, e);
    }
    memset(st, 0, sizeof *st);
    st->size = f->node->size;
    st->attr = d.attr;
    st->is_dir = 0;
    st->first_cluster = f->node->first;
    /* An orphan's loc is (UINT32_MAX, UINT32_MAX): VD_ENTRY_NONE. */
    st->entry_id = ((uint64_t)n->loc.dir << 32) | n->loc.slot;
    st->mtime_ns = fat_time_decode(d.mdate, d.mtime, 0);
    st->atime_ns = fat_time_decode(d.adate, 0, 0);
    st->ctime_ns = fat_time_decode(d.cdate, d.ctime, d.ctenth);
    return fat_op_end(f->fs, VD_OK);
}

static vd_err locked_file_close(vd_file *f)
{
    if (!f)
        return VD_ERR_INVAL;
    vd_fs *fs = f->fs;
    vd_err e = fat_node_put(fs, f->node); /* frees an orphan's clusters */
    fs->nopen--;
    free(f);
    return fat_op_end(fs, e);
}

/* ---- public entry points: the volume lock, exclusive but for reads of a
 * mapped file (shared_file_read) ---- */

vd_err vd_file_open(vd_fs *fs, const char *path, int flags, vd_file **out)
{
    if (!fs)
        return VD_ERR_INVAL;
    vd_fs *lk = fs;
    fat_lock(lk);
    vd_err e = locked_file_open(fs, path, flags, out);
    fat_unlock(lk);
    return e;
}

vd_err vd_file_read(vd_file *f, uint64_t off, void *buf, size_t len, size_t *done)
{
    if (!f || !done)
        return VD_ERR_INVAL;
    vd_fs *lk = f->fs;
    vd_err e;
    (void)pthread_rwlock_rdlock(&lk->lock);
    int ran = shared_file_read(f, off, buf, len, done, &e);
    (void)pthread_rwlock_unlock(&lk->lock);
    if (ran)
        return e;
    fat_lock(lk);
    e = locked_file_read(f, off, buf, len, done);
    fat_unlock(lk);
    return e;
}

vd_err vd_file_write(vd_file *f, uint64_t off, const void *buf, size_t len, size_t *done)
{
    if (!f)
        return VD_ERR_INVAL;
    vd_fs *lk = f->fs;
    fat_lock(lk);
    vd_err e = locked_file_write(f, off, buf, len, done);
    fat_unlock(lk);
    return e;
}

vd_err vd_file_truncate(vd_file *f, uint64_t size)
{
    if (!f)
        return VD_ERR_INVAL;
    vd_fs *lk = f->fs;
    fat_lock(lk);
    vd_err e = locked_file_truncate(f, size);
    fat_unlock(lk);
    return e;
}

vd_err vd_file_stat(vd_file *f, vd_stat *st)
{
    if (!f)
        return VD_ERR_INVAL;
    vd_fs *lk = f->fs;
    fat_lock(lk);
    vd_err e = locked_file_stat(f, st);
    fat_unlock(lk);
    return e;
}

vd_err vd_file_close(vd_file *f)
{
    if (!f)
        return VD_ERR_INVAL;
    vd_fs *lk = f->fs;
    fat_lock(lk);
    vd_err e = locked_file_close(f);
    fat_unlock(lk);
    return e;
}
