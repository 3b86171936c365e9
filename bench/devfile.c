/* A weaker device over a file, formatted: what vhdbench-mount
 * mounts, built the way modes.c builds vhdbench's own file-backed aead
 * volume, so the FUSE peer and the library-level mode differ only by
 * FUSE. */
#include <stdio.h>
#include <string.h>

#include "benchdev.h"
#include "crypto/crypto.h"

#define FILE_PATH_CAP 4096
/* The side table's size bound: 32 bytes per block (devs.c's largest). */
#define META_PER_BLOCK 32u

vd_err bench_dev_file_new(bench_mode mode, const char *path, uint64_t bytes,
                          bench_dev **out)
{
    char meta_path[FILE_PATH_CAP];
    bench_backing *data = NULL, *meta = NULL;
    uint64_t nblocks = bytes / BENCH_BLOCK;
    if (mode != MODE_PLAIN && mode != MODE_CHECKSUM && mode != MODE_AEAD)
        return VD_ERR_INVAL;
    int n = snprintf(meta_path, sizeof meta_path, "%s.meta", path);
    if (n < 0 || (size_t)n >= sizeof meta_path)
        return VD_ERR_NAME;
    if (vdc_init() != 0)
        return VD_ERR_UNSUPPORTED;
    vd_err e = bench_backing_new(BACK_FILE, path, nblocks * BENCH_BLOCK, &data);
    if (e == VD_OK && mode != MODE_PLAIN)
        e = bench_backing_new(BACK_FILE, meta_path,
                              nblocks * META_PER_BLOCK + BENCH_BLOCK, &meta);
    if (e != VD_OK) {
        bench_backing_free(data);
        bench_backing_free(meta);
        return e;
    }
    bench_dev *d = NULL;
    e = bench_dev_new(mode, data, meta, nblocks, VDC_AES256GCM_OPENSSL, &d);
    if (e != VD_OK)
        return e; /* bench_dev_new freed both backings */
    vd_mkfs_opts mo;
    memset(&mo, 0, sizeof mo);
    mo.cluster_bytes = BENCH_BLOCK;
    mo.volume_id = 0x76646B62;
    e = vd_fs_format_dev(bench_dev_blockdev(d), &mo);
    if (e != VD_OK) {
        bench_dev_free(d);
        return e;
    }
    *out = d;
    return VD_OK;
}
