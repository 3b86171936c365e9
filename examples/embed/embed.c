/* embed: a program built against the INSTALLED libvdisk through
 * pkg-config, as an application embedding the library would be.
 *
 *   embed IMAGE
 *
 * Creates IMAGE (it must not exist) with a random master key, lays a
 * FAT32 volume over it, writes a file through the vd_fs API, closes
 * everything, reopens the image with the same key and reads the file
 * back. Prints the library version and "embed: ok" on success; exit 0
 * when every step worked, 1 otherwise (with one error line). */
#include <stdio.h>
#include <string.h>

#include <vdisk/fs.h>
#include <vdisk/host.h>
#include <vdisk/keys.h>
#include <vdisk/vdisk.h>

#define NBLOCKS 10240u /* 40 MiB: enough 512-byte clusters for FAT32 */
#define FILE_PATH "/docs/hello.txt"

static const char message[] = "hello from an embedded vdisk\n";

static int fail(const char *what, vd_err e)
{
    fprintf(stderr, "embed: %s: %s\n", what, vd_strerror(e));
    return 1;
}

/* Format a fresh image and store the message in FILE_PATH. */
static int write_volume(const char *path, const uint8_t *key)
{
    vd_host *host = NULL;
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    vd_file *f = NULL;
    int rc = 1;
    size_t done = 0;
    vd_err e = vd_host_file_open(path, VD_HOST_CREATE, &host, NULL);
    if (e != VD_OK) {
        rc = fail(path, e);
        goto out;
    }
    vd_create_opts c = {.nblocks = NBLOCKS};
    vd_mkfs_opts m = {.label = "EMBED", .cluster_bytes = 512, .volume_id = 0x1234abcd};
    if ((e = vd_image_create(host, key, &c, NULL, &img)) != VD_OK ||
        (e = vd_fs_format(img, &m)) != VD_OK || (e = vd_fs_mount(img, NULL, &fs)) != VD_OK ||
        (e = vd_fs_mkdir(fs, "/docs")) != VD_OK ||
        (e = vd_file_open(fs, FILE_PATH, VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL, &f)) != VD_OK ||
        (e = vd_file_write(f, 0, message, sizeof message - 1, &done)) != VD_OK) {
        rc = fail("write", e);
        goto out;
    }
    rc = done == sizeof message - 1 ? 0 : fail("short write", VD_ERR_IO);
out:
    if (f && (e = vd_file_close(f)) != VD_OK)
        rc = fail("file close", e);
    if (fs && (e = vd_fs_unmount(fs)) != VD_OK)
        rc = fail("unmount", e);
    if (img && (e = vd_image_close(img)) != VD_OK)
        rc = fail("image close", e);
    if (host)
        vd_host_file_close(host);
    return rc;
}

/* Reopen read-only and check the file's size and contents. */
static int read_volume(const char *path, const uint8_t *key)
{
    vd_host *host = NULL;
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    vd_file *f = NULL;
    vd_stat st;
    char buf[256];
    size_t done = 0;
    int rc = 1;
    vd_open_opts oo = {.read_only = 1};
    vd_fs_opts fo = {.read_only = 1};
    vd_err e = vd_host_file_open(path, VD_HOST_READONLY, &host, NULL);
    if (e != VD_OK) {
        rc = fail(path, e);
        goto out;
    }
    if ((e = vd_image_open(host, key, &oo, &img)) != VD_OK ||
        (e = vd_fs_mount(img, &fo, &fs)) != VD_OK || (e = vd_fs_stat(fs, FILE_PATH, &st)) != VD_OK ||
        (e = vd_file_open(fs, FILE_PATH, VD_O_RDONLY, &f)) != VD_OK ||
        (e = vd_file_read(f, 0, buf, sizeof buf, &done)) != VD_OK) {
        rc = fail("read back", e);
        goto out;
    }
    if (st.size != sizeof message - 1 || done != st.size || memcmp(buf, message, done) != 0) {
        fprintf(stderr, "embed: %s: %s reads back wrong (%zu bytes)\n", path, FILE_PATH, done);
        goto out;
    }
    printf("read back %s: %zu bytes\n", FILE_PATH, done);
    rc = 0;
out:
    if (f && (e = vd_file_close(f)) != VD_OK)
        rc = fail("file close", e);
    if (fs && (e = vd_fs_unmount(fs)) != VD_OK)
        rc = fail("unmount", e);
    if (img && (e = vd_image_close(img)) != VD_OK)
        rc = fail("image close", e);
    if (host)
        vd_host_file_close(host);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: embed IMAGE\n");
        return 2;
    }
    printf("libvdisk %s (built against headers %s)\n", vd_version(), VD_VERSION_STRING);
    uint8_t *key = vd_secret_alloc(VD_KEY_BYTES);
    if (!key)
        return fail("key", VD_ERR_NOMEM);
    vd_err e = vd_key_generate(key);
    int rc = e != VD_OK ? fail("key", e) : write_volume(argv[1], key);
    if (rc == 0)
        rc = read_volume(argv[1], key);
    vd_secret_free(key);
    if (rc == 0)
        printf("embed: ok\n");
    return rc;
}
