/* One FAT32 volume per (mode, backend), always formatted and mounted by
 * the same vd_fs code: over a bench_dev (plain, checksum, aead) through
 * vd_fs_mount_dev, or over a vd_image (full, full+anchor) through
 * vd_fs_mount, whose host is memory, a file, or (nbd) a file behind
 * nbdkit. Files live in --dir and are removed when the volume is freed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vdisk/anchor.h>
#include <vdisk/check.h>
#include <vdisk/host.h>

#include "bench.h"
#include "crypto/crypto.h"

#define PATH_CAP 4096

struct bench_vol {
    const bench_cfg *c;
    bench_mode mode;
    bench_backend back;
    uint64_t nblocks;
    char path[PATH_CAP], meta_path[PATH_CAP], anchor_path[PATH_CAP];
    char sock[PATH_CAP]; /* nbd: the server's socket */
    long nbd_pid;        /* nbd: the server, 0 when none runs */
    bench_dev *dev;
    vd_host *host;
    vd_image *img;
    vd_anchor *anchor;
    uint8_t *key;
    vd_fs *fs;
};

const char *bench_mode_name(bench_mode m)
{
    static const char *const names[MODE_COUNT] = {"plain", "checksum", "aead", "full",
                                                  "full+anchor"};
    return (unsigned)m < MODE_COUNT ? names[m] : "?";
}

const char *bench_backend_name(bench_backend b)
{
    return b == BACK_MEM ? "memory" : b == BACK_FILE ? "file" : b == BACK_NBD ? "nbd" : "peer";
}

static int is_image(bench_mode m)
{
    return m == MODE_FULL || m == MODE_FULL_ANCHOR;
}

static vd_open_opts open_opts(const bench_vol *v)
{
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = v->c->cache_bytes; /* 0: the library default, as the tools use */
    o.aead_impl = v->c->impl;
    o.anchor = v->anchor;
    o.anchor_mode = v->c->tpm_index ? VD_ANCHOR_EXPLICIT_SYNC : VD_ANCHOR_EVERY_COMMIT;
    return o;
}

/* Evict a file's pages from the page cache, then (as root) everything
 * else: only with --drop-caches. */
static vd_err drop_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return VD_ERR_IO;
    int bad = fdatasync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0;
    bad |= close(fd) != 0;
    return bad ? VD_ERR_IO : VD_OK;
}

static vd_err drop_system(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return VD_OK; /* not root: the per-file fadvise has to do */
    int bad = write(fd, "3\n", 2) != 2;
    bad |= close(fd) != 0;
    return bad ? VD_ERR_IO : VD_OK;
}

static vd_err mount_image_fs(bench_vol *v, int format)
{
    vd_open_opts o = open_opts(v);
    vd_err e;
    if (format) {
        vd_create_opts co;
        memset(&co, 0, sizeof co);
        co.nblocks = v->nblocks;
        e = vd_image_create(v->host, v->key, &co, &o, &v->img);
    } else {
        e = vd_image_open(v->host, v->key, &o, &v->img);
    }
    if (e == VD_OK && format) {
        vd_mkfs_opts mo;
        memset(&mo, 0, sizeof mo);
        mo.cluster_bytes = BENCH_BLOCK;
        mo.volume_id = 0x76646B62;
        e = vd_fs_format(v->img, &mo);
    }
    if (e == VD_OK)
        e = vd_fs_mount(v->img, NULL, &v->fs);
    return e;
}

/* The nbd backend: a file sized for the image plus a page (the NBD host
 * keeps a copy of the footer at the export's end), served by nbdkit. */
static vd_err new_nbd_host(bench_vol *v)
{
    vd_create_opts co;
    memset(&co, 0, sizeof co);
    co.nblocks = v->nblocks;
    uint64_t bytes;
    vd_err e = vd_image_bytes_for(&co, &bytes);
    if (e != VD_OK)
        return e;
    bytes = (bytes + 2 * BENCH_BLOCK - 1) / BENCH_BLOCK * BENCH_BLOCK;
    int fd = open(v->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return VD_ERR_IO;
    int bad = ftruncate(fd, (off_t)bytes) != 0;
    bad |= close(fd) != 0;
    if (bad)
        return VD_ERR_IO;
    int n = snprintf(v->sock, sizeof v->sock, "%s.sock", v->path);
    if (n < 0 || (size_t)n >= 100) /* sun_path: 108 bytes with its NUL */
        return VD_ERR_INVAL;
    e = bench_nbd_start(v->path, v->sock, &v->nbd_pid);
    char uri[PATH_CAP + 32];
    snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", v->sock);
    if (e == VD_OK)
        e = vd_host_nbd_open(uri, VD_HOST_CREATE, &v->host, NULL, NULL, 0);
    return e;
}

static vd_err new_image(bench_vol *v)
{
    vd_err e;
    if (v->back == BACK_MEM) {
        e = vd_host_mem_new(&v->host);
    } else if (v->back == BACK_NBD) {
        e = new_nbd_host(v);
    } else {
        (void)unlink(v->path); /* a leftover of a killed run */
        e = vd_host_file_open(v->path, VD_HOST_CREATE, &v->host, NULL);
    }
    if (e != VD_OK)
        return e;
    v->key = vdc_secure_alloc(VD_KEY_BYTES);
    if (!v->key)
        return VD_ERR_NOMEM;
    vdc_random(v->key, VD_KEY_BYTES);
    if (v->mode == MODE_FULL_ANCHOR && v->c->tpm_index) {
        /* A fresh index per volume: each image's key authorizes its own. */
        uint32_t index = v->c->tpm_index + (*v->c->tpm_next)++;
        char why[256];
        e = vd_anchor_tpm_open(v->c->tpm_tcti, index, VD_ANCHOR_TPM_DEFINE, &v->anchor, why,
                               sizeof why);
        if (e != VD_OK) {
            fprintf(stderr, "vhdbench: tpm:0x%08x: %s (%s)\n", index, vd_strerror(e), why);
            return e;
        }
    } else if (v->mode == MODE_FULL_ANCHOR) {
        (void)unlink(v->anchor_path);
        e = vd_anchor_file_open(v->anchor_path, 1, &v->anchor, NULL);
        if (e != VD_OK)
            return e;
    }
    return mount_image_fs(v, 1);
}

static vd_err new_dev(bench_vol *v)
{
    uint64_t bytes = v->nblocks * BENCH_BLOCK;
    bench_backing *data = NULL, *meta = NULL;
    vd_err e = bench_backing_new(v->back, v->path, bytes, &data);
    if (e == VD_OK && v->mode != MODE_PLAIN)
        /* The side table's size bound: 32 bytes per block. */
        e = bench_backing_new(v->back, v->meta_path, v->nblocks * 32 + BENCH_BLOCK, &meta);
    if (e != VD_OK) {
        bench_backing_free(data);
        bench_backing_free(meta);
        return e;
    }
    e = bench_dev_new(v->mode, data, meta, v->nblocks, v->c->aead_alg, &v->dev);
    if (e != VD_OK)
        return e;
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.cluster_bytes = BENCH_BLOCK;
    mo.volume_id = 0x76646B62;
    e = vd_fs_format_dev(bench_dev_blockdev(v->dev), &mo);
    if (e == VD_OK)
        e = vd_fs_mount_dev(bench_dev_blockdev(v->dev), NULL, &v->fs);
    return e;
}

vd_err bench_vol_new(const bench_cfg *c, bench_mode m, bench_backend b, uint64_t bytes,
                     bench_vol **out)
{
    bench_vol *v = calloc(1, sizeof *v);
    if (!v)
        return VD_ERR_NOMEM;
    v->c = c;
    v->mode = m;
    v->back = b;
    v->nblocks = bytes / BENCH_BLOCK;
    long pid = (long)getpid();
    snprintf(v->path, sizeof v->path, "%s/vhdbench-%ld.%s", c->dir, pid,
             is_image(m) ? "vhd" : "dat");
    snprintf(v->meta_path, sizeof v->meta_path, "%s/vhdbench-%ld.meta", c->dir, pid);
    snprintf(v->anchor_path, sizeof v->anchor_path, "%s/vhdbench-%ld.anchor", c->dir, pid);
    vd_err e = is_image(m) ? new_image(v) : new_dev(v);
    if (e != VD_OK) {
        (void)bench_vol_free(v);
        return e;
    }
    *out = v;
    return VD_OK;
}

vd_fs *bench_vol_fs(bench_vol *v)
{
    return v->fs;
}

vd_err bench_vol_reopen(bench_vol *v)
{
    vd_err e = vd_fs_unmount(v->fs);
    v->fs = NULL;
    if (e != VD_OK)
        return e;
    if (is_image(v->mode)) {
        e = vd_image_close(v->img);
        v->img = NULL;
        if (e == VD_OK && v->c->drop_caches && v->back != BACK_MEM)
            e = drop_file(v->path);
    } else if (v->c->drop_caches) {
        e = bench_dev_drop(v->dev);
    }
    if (e == VD_OK && v->c->drop_caches && v->back != BACK_MEM)
        e = drop_system();
    if (e != VD_OK)
        return e;
    if (is_image(v->mode))
        return mount_image_fs(v, 0);
    return vd_fs_mount_dev(bench_dev_blockdev(v->dev), NULL, &v->fs);
}

vd_err bench_vol_scrub(bench_vol *v, double *secs, uint64_t *bytes)
{
    if (!is_image(v->mode))
        return VD_ERR_UNSUPPORTED;
    /* As vhdfsck finds it: a fresh open, nothing cached. */
    vd_err e = bench_vol_reopen(v);
    vd_image_info a, b;
    vd_scrub_stats st;
    if (e == VD_OK)
        e = vd_image_info_get(v->img, &a);
    double t0 = bench_now();
    if (e == VD_OK)
        e = vd_image_scrub(v->img, NULL, &st);
    double t1 = bench_now();
    if (e == VD_OK)
        e = vd_image_info_get(v->img, &b);
    if (e == VD_OK && (st.bad_blocks || st.bad_nodes))
        e = VD_ERR_AUTH;
    if (e != VD_OK)
        return e;
    *secs = t1 - t0;
    *bytes = (b.blocks_verified - a.blocks_verified) * BENCH_BLOCK;
    return VD_OK;
}

vd_err bench_vol_info(bench_vol *v, vd_image_info *info)
{
    if (!v->img)
        return VD_ERR_UNSUPPORTED;
    return vd_image_info_get(v->img, info);
}

vd_err bench_vol_free(bench_vol *v)
{
    vd_err first = VD_OK, e;
    if (!v)
        return VD_OK;
    if (v->fs && (e = vd_fs_unmount(v->fs)) != VD_OK)
        first = e;
    if (v->img && (e = vd_image_close(v->img)) != VD_OK && first == VD_OK)
        first = e;
    bench_dev_free(v->dev);
    if (v->host) {
        const char *why = v->back == BACK_NBD ? vd_host_nbd_last_error(v->host) : NULL;
        if (why)
            fprintf(stderr, "vhdbench: %s on nbd: %s\n", bench_mode_name(v->mode), why);
        if (v->back == BACK_MEM)
            vd_host_mem_free(v->host);
        else
            vd_host_close(v->host);
    }
    if (v->back == BACK_NBD && v->sock[0])
        bench_nbd_stop(v->nbd_pid, v->sock);
    if (v->anchor) {
        /* Each closer frees only its own; the second looks at a copy, as
         * the first may have freed the struct. */
        vd_anchor copy = *v->anchor;
        vd_anchor_file_close(v->anchor);
        vd_anchor_tpm_close(&copy);
    }
    vdc_secure_free(v->key);
    if (is_image(v->mode) && v->back != BACK_MEM)
        (void)unlink(v->path); /* scratch files */
    if (v->mode == MODE_FULL_ANCHOR)
        (void)unlink(v->anchor_path);
    free(v);
    return first;
}
