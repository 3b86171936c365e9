/* vdisk-demo: the secure block device end to end, on a real file.
 *
 *   vdisk-demo IMAGE [MIB]
 *
 * Creates IMAGE (a fixed VHD), writes a pattern into every block, syncs,
 * reopens and verifies it, then flips one byte of a data block in a copy
 * of the file and shows the read being refused as an authentication
 * failure, and a wrong key being refused as a wrong key. Exit 0 when every
 * step behaved as it must, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vdisk/host.h>
#include <vdisk/vdisk.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pattern(uint8_t *b, uint64_t lbn)
{
    for (unsigned i = 0; i < VD_BLOCK_SIZE; i += 8) {
        uint64_t v = lbn * 0x9E3779B97F4A7C15ull + i;
        memcpy(b + i, &v, 8);
    }
}

static int fail(const char *what, vd_err e)
{
    fprintf(stderr, "vdisk-demo: %s: %s\n", what, vd_strerror(e));
    return 1;
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    int rc = in && out ? 0 : -1;
    char buf[1 << 16];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = -1;
    if (in && ferror(in))
        rc = -1;
    if (in)
        fclose(in);
    if (out && fclose(out) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: vdisk-demo IMAGE [MIB]\n");
        return 2;
    }
    const char *path = argv[1];
    uint64_t mib = argc == 3 ? strtoull(argv[2], NULL, 10) : 64;
    if (mib == 0 || mib > 1 << 20) {
        fprintf(stderr, "vdisk-demo: size must be 1..1048576 MiB\n");
        return 2;
    }
    uint64_t nblocks = mib * 256;
    uint8_t key[VD_KEY_BYTES], wrong[VD_KEY_BYTES];
    FILE *ur = fopen("/dev/urandom", "rb");
    if (!ur || fread(key, 1, sizeof key, ur) != sizeof key ||
        fread(wrong, 1, sizeof wrong, ur) != sizeof wrong) {
        fprintf(stderr, "vdisk-demo: cannot read /dev/urandom\n");
        return 1;
    }
    fclose(ur);
    if (remove(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "vdisk-demo: %s: cannot replace: %s\n", path, strerror(errno));
        return 1;
    }

    vd_host *host;
    vd_image *img;
    vd_err e = vd_host_file_open(path, VD_HOST_CREATE, &host, NULL);
    if (e != VD_OK)
        return fail(path, e);
    vd_create_opts c = {.nblocks = nblocks};
    e = vd_image_create(host, key, &c, NULL, &img);
    if (e != VD_OK)
        return fail("create", e);
    uint8_t *buf = malloc(256 * VD_BLOCK_SIZE);
    if (!buf)
        return 1;
    double t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += 256) {
        uint32_t n = (uint32_t)(nblocks - l < 256 ? nblocks - l : 256);
        for (uint32_t k = 0; k < n; k++)
            pattern(buf + (size_t)k * VD_BLOCK_SIZE, l + k);
        if ((e = vd_image_write(img, l, n, buf)) != VD_OK)
            return fail("write", e);
    }
    if ((e = vd_image_sync(img)) != VD_OK)
        return fail("sync", e);
    double t1 = now_s();
    vd_image_info info;
    vd_image_info_get(img, &info);
    printf("created %s: %llu MiB, tree height %u (fanout %u), %s\n", path,
           (unsigned long long)mib, info.height, info.fanout, info.aead_impl_name);
    printf("wrote and synced %llu blocks: %.0f MB/s, %llu flushes\n",
           (unsigned long long)nblocks, mib * 1.048576 / (t1 - t0),
           (unsigned long long)info.flushes);
    if ((e = vd_image_close(img)) != VD_OK)
        return fail("close", e);
    vd_host_file_close(host);

    /* Reopen read-only and verify every block. */
    if ((e = vd_host_file_open(path, VD_HOST_READONLY, &host, NULL)) != VD_OK)
        return fail(path, e);
    vd_open_opts ro = {.read_only = 1};
    if ((e = vd_image_open(host, key, &ro, &img)) != VD_OK)
        return fail("open", e);
    uint8_t want[VD_BLOCK_SIZE];
    t0 = now_s();
    for (uint64_t l = 0; l < nblocks; l += 256) {
        uint32_t n = (uint32_t)(nblocks - l < 256 ? nblocks - l : 256);
        if ((e = vd_image_read(img, l, n, buf)) != VD_OK)
            return fail("read", e);
        for (uint32_t k = 0; k < n; k++) {
            pattern(want, l + k);
            if (memcmp(want, buf + (size_t)k * VD_BLOCK_SIZE, VD_BLOCK_SIZE) != 0) {
                fprintf(stderr, "vdisk-demo: block %llu reads back wrong\n",
                        (unsigned long long)(l + k));
                return 1;
            }
        }
    }
    t1 = now_s();
    printf("reopened and verified every block: %.0f MB/s\n", mib * 1.048576 / (t1 - t0));
    vd_image_close(img);

    /* The wrong key is a wrong key, not corruption. */
    e = vd_image_open(host, wrong, &ro, &img);
    printf("open with a wrong key: %s -> %s\n", vd_strerror(e),
           e == VD_ERR_WRONG_KEY ? "refused, as it must be" : "UNEXPECTED");
    if (e == VD_OK)
        vd_image_close(img);
    vd_host_file_close(host);
    if (e != VD_ERR_WRONG_KEY)
        return 1;

    /* Tamper: flip one byte of data block 7 in a copy. */
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s.tampered", path);
    if (copy_file(path, tpath) != 0) {
        fprintf(stderr, "vdisk-demo: cannot copy %s\n", path);
        return 1;
    }
    if ((e = vd_host_file_open(tpath, 0, &host, NULL)) != VD_OK)
        return fail(tpath, e);
    vd_image_info pi;
    if ((e = vd_image_probe(host, &pi)) != VD_OK)
        return fail("probe", e);
    uint64_t off = (pi.total_blocks - pi.nblocks + 7) * VD_BLOCK_SIZE + 100;
    uint8_t byte;
    size_t done;
    if (host->read_at(host->ctx, off, &byte, 1, &done) != 0 || done != 1)
        return 1;
    byte ^= 0x01;
    if (host->write_at(host->ctx, off, &byte, 1, &done) != 0 || done != 1)
        return 1;
    if ((e = vd_image_open(host, key, &ro, &img)) != VD_OK)
        return fail("open tampered", e);
    vd_err r6 = vd_image_read(img, 6, 1, buf);
    vd_err r7 = vd_image_read(img, 7, 1, buf);
    int wiped = 1;
    for (unsigned i = 0; i < VD_BLOCK_SIZE; i++)
        wiped &= buf[i] == 0;
    printf("flipped one bit of data block 7 in %s\n", tpath);
    printf("  read block 6: %s\n", vd_strerror(r6));
    printf("  read block 7: %s (output %s)\n", vd_strerror(r7),
           wiped ? "wiped" : "NOT wiped");
    vd_image_close(img);
    vd_host_file_close(host);
    free(buf);
    if (r6 != VD_OK || r7 != VD_ERR_AUTH || !wiped) {
        fprintf(stderr, "vdisk-demo: tampering was not handled as required\n");
        return 1;
    }
    printf("tampered block caught; demo OK\n");
    return 0;
}
