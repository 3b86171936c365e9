/* vdisk-shield-build: the image builder of the shield example, for when
 * mkvhd is not built (mkvhd --seal-to does the same). The builder runs
 * on the image owner's machine, not on the untrusted host: it creates the
 * image with its master key sealed to the shield's public key (a SEALED
 * slot; the Haven provisioning flow, keys.h), adds a KEYFILE slot so the
 * owner keeps access, formats FAT32 and copies files into the root.
 *
 *   vdisk-shield-build --seal-to PUBLIC_KEY_FILE --new-key-file KEY_FILE
 *                      --size-mib N IMAGE [FILE...]
 *
 * Exit 0 ok, 1 failure, 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vdisk/fs.h>
#include <vdisk/host.h>
#include <vdisk/keys.h>
#include <vdisk/vdisk.h>

#define PROG "vdisk-shield-build"

static int usage(void)
{
    fprintf(stderr, "usage: " PROG " --seal-to PUBLIC_KEY_FILE --new-key-file KEY_FILE"
                    " --size-mib N IMAGE [FILE...]\n");
    return 2;
}

static int read_public(const char *path, uint8_t pk[VD_X25519_BYTES])
{
    FILE *f = fopen(path, "rb");
    int extra;
    if (!f)
        return -1;
    size_t n = fread(pk, 1, VD_X25519_BYTES, f);
    extra = fgetc(f);
    fclose(f);
    return n == VD_X25519_BYTES && extra == EOF ? 0 : -1;
}

/* Copy a local file to /<its base name> in the volume. */
static vd_err copy_in(vd_fs *fs, const char *src)
{
    char path[512], buf[65536];
    const char *base = strrchr(src, '/');
    vd_file *f = NULL;
    uint64_t off = 0;
    snprintf(path, sizeof path, "/%s", base ? base + 1 : src);
    FILE *in = fopen(src, "rb");
    if (!in)
        return VD_ERR_NOENT;
    vd_err e = vd_file_open(fs, path, VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL, &f);
    while (e == VD_OK) {
        size_t n = fread(buf, 1, sizeof buf, in), done = 0;
        if (n == 0) {
            if (ferror(in))
                e = VD_ERR_IO;
            break;
        }
        e = vd_file_write(f, off, buf, n, &done);
        off += done;
    }
    if (f) {
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    fclose(in);
    return e;
}

int main(int argc, char **argv)
{
    const char *seal = NULL, *keyfile = NULL, *image = NULL;
    uint64_t mib = 0;
    uint8_t pk[VD_X25519_BYTES];
    uint8_t *key = vd_secret_alloc(VD_KEYFILE_BYTES);
    vd_host *host = NULL;
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    int i, status = 1, sys = 0;
    vd_err e = VD_OK;
    const char *what = NULL;
    for (i = 1; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "--seal-to") == 0)
            seal = argv[i + 1];
        else if (strcmp(argv[i], "--new-key-file") == 0)
            keyfile = argv[i + 1];
        else if (strcmp(argv[i], "--size-mib") == 0)
            mib = strtoull(argv[i + 1], NULL, 10);
        else
            break;
    }
    if (!seal || !keyfile || mib == 0 || mib > (1u << 20) || i >= argc ||
        argv[i][0] == '-') {
        status = usage();
        goto out;
    }
    image = argv[i++];
    if (!key) {
        fprintf(stderr, PROG ": out of guarded memory\n");
        goto out;
    }
    if (read_public(seal, pk) != 0) {
        fprintf(stderr, PROG ": %s: not a 32-byte public key\n", seal);
        goto out;
    }
    what = image;
    e = vd_host_file_open(image, VD_HOST_CREATE, &host, &sys);
    if (e == VD_OK) {
        vd_unlock first = {.type = VD_SLOT_SEALED, .secret = pk, .len = sizeof pk};
        vd_create_opts co = {.nblocks = mib * 256};
        e = vd_image_create_unlock(host, &first, NULL, &co, NULL, &img);
    }
    if (e == VD_OK) {
        what = keyfile;
        e = vd_keyfile_create(keyfile, key, &sys);
    }
    if (e == VD_OK) {
        vd_unlock second = {
            .type = VD_SLOT_KEYFILE, .secret = key, .len = VD_KEYFILE_BYTES};
        what = image;
        e = vd_keyslot_add(img, &second, NULL, NULL);
    }
    if (e == VD_OK)
        e = vd_fs_format(img, NULL);
    if (e == VD_OK)
        e = vd_fs_mount(img, NULL, &fs);
    for (; e == VD_OK && i < argc; i++) {
        what = argv[i];
        e = copy_in(fs, argv[i]);
    }
    if (fs) {
        vd_err u = vd_fs_unmount(fs);
        if (e == VD_OK && (e = u) != VD_OK)
            what = image;
    }
    if (e == VD_OK)
        what = image;
    if (img) {
        vd_err c = vd_image_close(img);
        if (e == VD_OK)
            e = c;
    }
    if (e != VD_OK) {
        fprintf(stderr, PROG ": %s: %s%s%s\n", what, vd_strerror(e), sys ? ": " : "",
                sys ? strerror(sys) : "");
        goto out;
    }
    status = 0;
out:
    vd_host_file_close(host);
    vd_secret_free(key);
    return status;
}
