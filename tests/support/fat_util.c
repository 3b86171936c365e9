/* See fat_util.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fat_util.h"

const char *fu_ename(vd_err e)
{
    switch (e) {
    case VD_OK:
        return "VD_OK";
    case VD_ERR_IO:
        return "VD_ERR_IO";
    case VD_ERR_AUTH:
        return "VD_ERR_AUTH";
    case VD_ERR_ROLLBACK:
        return "VD_ERR_ROLLBACK";
    case VD_ERR_WRONG_KEY:
        return "VD_ERR_WRONG_KEY";
    case VD_ERR_CORRUPT:
        return "VD_ERR_CORRUPT";
    case VD_ERR_NOSPC:
        return "VD_ERR_NOSPC";
    case VD_ERR_INVAL:
        return "VD_ERR_INVAL";
    case VD_ERR_NOMEM:
        return "VD_ERR_NOMEM";
    case VD_ERR_UNSUPPORTED:
        return "VD_ERR_UNSUPPORTED";
    case VD_ERR_BUSY:
        return "VD_ERR_BUSY";
    case VD_ERR_FAILED:
        return "VD_ERR_FAILED";
    case VD_ERR_READONLY:
        return "VD_ERR_READONLY";
    case VD_ERR_RANGE:
        return "VD_ERR_RANGE";
    case VD_ERR_NOENT:
        return "VD_ERR_NOENT";
    case VD_ERR_EXIST:
        return "VD_ERR_EXIST";
    case VD_ERR_NOTDIR:
        return "VD_ERR_NOTDIR";
    case VD_ERR_ISDIR:
        return "VD_ERR_ISDIR";
    case VD_ERR_NOTEMPTY:
        return "VD_ERR_NOTEMPTY";
    case VD_ERR_NAME:
        return "VD_ERR_NAME";
    case VD_ERR_FBIG:
        return "VD_ERR_FBIG";
    case VD_ERR_MFILE:
        return "VD_ERR_MFILE";
    case VD_ERR_PERM:
        return "VD_ERR_PERM";
    case VD_ERR_LOOP:
        return "VD_ERR_LOOP";
    case VD_ERR_ANCHOR_MISMATCH:
        return "VD_ERR_ANCHOR_MISMATCH";
    case VD_ERR_ANCHOR_UNREACHABLE:
        return "VD_ERR_ANCHOR_UNREACHABLE";
    case VD_ERR_ANCHOR_MISSING:
        return "VD_ERR_ANCHOR_MISSING";
    case VD_ERR_ANCHOR_DENIED:
        return "VD_ERR_ANCHOR_DENIED";
    case VD_ERR_REKEY:
        return "VD_ERR_REKEY";
    }
    return "(unknown vd_err)";
}

static const uint8_t fu_key[VD_KEY_BYTES] = {
    0x46, 0x41, 0x54, 0x33, 0x32, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20,
    0x6b, 0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12};

void fu_disk_new(fu_disk *d, uint64_t nblocks)
{
    memset(d, 0, sizeof *d);
    FU_OK(vd_host_mem_new(&d->host));
    vd_create_opts c;
    memset(&c, 0, sizeof c);
    c.nblocks = nblocks;
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)32 << 20;
    FU_OK(vd_image_create(d->host, fu_key, &c, &o, &d->img));
    d->nblocks = nblocks;
}

void fu_disk_reopen(fu_disk *d)
{
    FU_OK(vd_image_close(d->img));
    d->img = NULL;
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)32 << 20;
    FU_OK(vd_image_open(d->host, fu_key, &o, &d->img));
}

void fu_disk_snapshot(fu_disk *src, fu_disk *dst)
{
    memset(dst, 0, sizeof *dst);
    uint64_t size = 0;
    const uint8_t *bytes = vd_host_mem_data(src->host, &size);
    assert_non_null(bytes);
    FU_OK(vd_host_mem_new(&dst->host));
    FU_OK(vd_host_mem_set(dst->host, bytes, size));
    vd_open_opts o;
    memset(&o, 0, sizeof o);
    o.cache_bytes = (size_t)32 << 20;
    FU_OK(vd_image_open(dst->host, fu_key, &o, &dst->img));
    dst->nblocks = src->nblocks;
}

void fu_disk_free(fu_disk *d)
{
    if (d->img)
        FU_OK(vd_image_close(d->img));
    vd_host_mem_free(d->host);
    memset(d, 0, sizeof *d);
}

#define FU_CHUNK 256u /* blocks per transfer */

uint8_t *fu_export(fu_disk *d)
{
    uint8_t *raw = malloc(d->nblocks * VD_BLOCK_SIZE);
    assert_non_null(raw);
    for (uint64_t b = 0; b < d->nblocks; b += FU_CHUNK) {
        uint32_t n = (uint32_t)(d->nblocks - b < FU_CHUNK ? d->nblocks - b : FU_CHUNK);
        FU_OK(vd_image_read(d->img, b, n, raw + b * VD_BLOCK_SIZE));
    }
    return raw;
}

int fu_export_file(fu_disk *d, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    uint8_t *buf = malloc((size_t)FU_CHUNK * VD_BLOCK_SIZE);
    assert_non_null(buf);
    int rc = 0;
    for (uint64_t b = 0; b < d->nblocks && rc == 0; b += FU_CHUNK) {
        uint32_t n = (uint32_t)(d->nblocks - b < FU_CHUNK ? d->nblocks - b : FU_CHUNK);
        FU_OK(vd_image_read(d->img, b, n, buf));
        /* Leave holes for all-zero blocks: the raw file stays sparse. */
        for (uint32_t i = 0; i < n && rc == 0; i++) {
            const uint8_t *blk = buf + (size_t)i * VD_BLOCK_SIZE;
            int zero = 1;
            for (size_t k = 0; k < VD_BLOCK_SIZE && zero; k++)
                zero = blk[k] == 0;
            if (zero)
                rc = fseeko(f, VD_BLOCK_SIZE, SEEK_CUR);
            else if (fwrite(blk, 1, VD_BLOCK_SIZE, f) != VD_BLOCK_SIZE)
                rc = -1;
        }
    }
    free(buf);
    if (rc == 0 && fflush(f) != 0)
        rc = -1;
    if (rc == 0 && ftruncate(fileno(f), (off_t)(d->nblocks * VD_BLOCK_SIZE)) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

void fu_import(fu_disk *d, const uint8_t *raw, size_t size)
{
    assert_true(size <= d->nblocks * VD_BLOCK_SIZE);
    uint8_t *buf = calloc(FU_CHUNK, VD_BLOCK_SIZE);
    assert_non_null(buf);
    uint64_t nb = (size + VD_BLOCK_SIZE - 1) / VD_BLOCK_SIZE;
    for (uint64_t b = 0; b < nb; b += FU_CHUNK) {
        uint32_t n = (uint32_t)(nb - b < FU_CHUNK ? nb - b : FU_CHUNK);
        size_t have = size - (size_t)(b * VD_BLOCK_SIZE);
        size_t want = (size_t)n * VD_BLOCK_SIZE;
        memset(buf, 0, want);
        memcpy(buf, raw + b * VD_BLOCK_SIZE, have < want ? have : want);
        FU_OK(vd_image_write(d->img, b, n, buf));
    }
    free(buf);
    FU_OK(vd_image_sync(d->img));
}

int fu_import_file(fu_disk *d, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = malloc((size_t)FU_CHUNK * VD_BLOCK_SIZE);
    assert_non_null(buf);
    int rc = 0;
    for (uint64_t b = 0;; b += FU_CHUNK) {
        size_t n = fread(buf, 1, (size_t)FU_CHUNK * VD_BLOCK_SIZE, f);
        if (n == 0)
            break;
        uint32_t nb = (uint32_t)((n + VD_BLOCK_SIZE - 1) / VD_BLOCK_SIZE);
        memset(buf + n, 0, (size_t)nb * VD_BLOCK_SIZE - n);
        if (b + nb > d->nblocks) {
            rc = -1;
            break;
        }
        /* A fresh image reads zeros everywhere: skip all-zero blocks so a
         * sparse mkfs.fat image stays small in memory. */
        for (uint32_t i = 0; i < nb; i++) {
            const uint8_t *blk = buf + (size_t)i * VD_BLOCK_SIZE;
            int zero = 1;
            for (size_t k = 0; k < VD_BLOCK_SIZE && zero; k++)
                zero = blk[k] == 0;
            if (!zero)
                FU_OK(vd_image_write(d->img, b + i, 1, blk));
        }
        if (n < (size_t)FU_CHUNK * VD_BLOCK_SIZE)
            break;
    }
    free(buf);
    fclose(f);
    if (rc == 0)
        FU_OK(vd_image_sync(d->img));
    return rc;
}

void fu_fill(uint8_t *buf, size_t len, uint64_t id, uint64_t off)
{
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ id * 0xC2B2AE3D27D4EB4Full;
        x ^= x >> 29;
        x *= 0xBF58476D1CE4E5B9ull;
        buf[i] = (uint8_t)(x >> 40);
    }
}

void fu_put_file(vd_fs *fs, const char *path, uint64_t id, size_t len)
{
    vd_file *f;
    FU_OK(vd_file_open(fs, path, VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f));
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    fu_fill(buf, len, id, 0);
    size_t done;
    FU_OK(vd_file_write(f, 0, buf, len, &done));
    assert_int_equal(done, len);
    FU_OK(vd_file_close(f));
    free(buf);
}

int fu_run(const char *cmd)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    char out[65536];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    if (rc != 0)
        print_message("$ %s\n%s[exit %d]\n", cmd, out, rc);
    return rc;
}
