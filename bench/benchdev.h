/* The weaker block devices (plain, checksum, aead) and the backings they
 * keep their blocks in: the static library vdbenchdev, shared by vhdbench
 * and by vhdbench-mount (mount.c), so that the FUSE peer
 * "vhdmount-aead" runs exactly the device the library-level aead mode
 * measures. For benchmarks only: no rollback detection, no crash
 * consistency, a key that lives and dies with the process. */
#ifndef VHDBENCH_DEV_H
#define VHDBENCH_DEV_H

#include <stddef.h>
#include <stdint.h>

#include <vdisk/fs.h>
#include <vdisk/vdisk.h>

#define BENCH_BLOCK VD_BLOCK_SIZE

/* ---- modes and backends ---- */
typedef enum bench_mode {
    MODE_PLAIN = 0,
    MODE_CHECKSUM,
    MODE_AEAD,
    MODE_FULL,
    MODE_FULL_ANCHOR,
    MODE_COUNT
} bench_mode;

/* BACK_NBD: an image file served by nbdkit over a Unix socket (full
 * modes only). BACK_PEER: a directory of the host (a FUSE mount or a plain
 * directory), reached through POSIX calls. */
typedef enum bench_backend {
    BACK_MEM = 0,
    BACK_FILE,
    BACK_NBD,
    BACK_PEER,
    BACK_COUNT
} bench_backend;

/* ---- backing.c ---- */
typedef struct bench_backing bench_backing;
/* A store into every 4 KiB page of [p, p + bytes): fresh memory faulted
 * in before a timed phase, which memset(0) after malloc does not
 * guarantee (the compiler may make the pair a calloc). */
void bench_touch(void *p, size_t bytes);
/* Memory (zeroed, every page faulted in) or a new file at path. */
vd_err bench_backing_new(bench_backend kind, const char *path, uint64_t bytes,
                         bench_backing **out);
/* The whole transfer at off, retried on EINTR and short counts; VD_ERR_IO
 * on an error or end of file. */
vd_err bench_pread_all(int fd, uint64_t off, void *buf, size_t len);
vd_err bench_pwrite_all(int fd, uint64_t off, const void *buf, size_t len);
vd_err bench_backing_read(bench_backing *b, uint64_t off, void *buf, size_t len);
vd_err bench_backing_write(bench_backing *b, uint64_t off, const void *buf, size_t len);
vd_err bench_backing_sync(bench_backing *b);
/* Evict the file's pages from the page cache (no-op for memory). */
vd_err bench_backing_drop(bench_backing *b);
void bench_backing_free(bench_backing *b); /* removes the file */

/* ---- devs.c ---- */
typedef struct bench_dev bench_dev;
/* mode is MODE_PLAIN, MODE_CHECKSUM or MODE_AEAD; the data lives in
 * `data`, the side table (checksum, aead) in `meta` (may be NULL for
 * plain). Takes ownership of both backings. */
vd_err bench_dev_new(bench_mode mode, bench_backing *data, bench_backing *meta,
                     uint64_t nblocks, int aead_alg, bench_dev **out);
const vd_blockdev *bench_dev_blockdev(bench_dev *d);
vd_err bench_dev_drop(bench_dev *d);
/* For the self-test: the data backing, and block lbn's side-table entry
 * (NULL for plain). */
bench_backing *bench_dev_data(bench_dev *d);
uint8_t *bench_dev_entry(bench_dev *d, uint64_t lbn, size_t *len);
void bench_dev_free(bench_dev *d);

/* A fresh device of `mode` over the file at path (created or truncated,
 * `bytes` long) and its side table at path + ".meta", with a random key
 * and OpenSSL's AES-256-GCM, carrying a new FAT32 volume laid out as
 * vhdbench's modes lay theirs (4 KiB clusters). Both files are removed by
 * bench_dev_free: the key dies with the process, so the data could never
 * be read again. Initialises the crypto layer. */
vd_err bench_dev_file_new(bench_mode mode, const char *path, uint64_t bytes,
                          bench_dev **out);

#endif
