/* seedgen: writes the seed corpora of the fuzz targets (run by
 * make-seeds.sh). Every seed is made by the library itself, from the same
 * deterministic templates the targets build (fz_common.c), so the seeds
 * are real structures the targets recognise (a key-slot seed unwraps in
 * fuzz_keyslot's template, a directory seed mounts in fuzz_dirent's).
 *
 *   fuzz_seedgen OUTDIR      writes OUTDIR/<target>/<seed> (dirs must exist)
 * Exit 0 on success, 1 with one error line otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "image_format.h"

static const char *outdir;

static int put(const char *target, const char *name, const void *a, size_t na,
               const void *b, size_t nb)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%s", outdir, target, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    if (f && fclose(f) != 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "seedgen: %s: cannot write\n", path);
    return ok ? 0 : 1;
}

/* A host that stops writing once `limit` flushes have happened after it
 * was armed: the image it leaves is a sync interrupted right there. */
typedef struct crash_host {
    vd_host host;
    vd_host *inner;
    int armed;
    unsigned flushes, limit;
} crash_host;

static int ch_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    crash_host *c = ctx;
    return c->inner->read_at(c->inner->ctx, off, buf, len, done);
}

static int ch_write(void *ctx, uint64_t off, const void *buf, size_t len, size_t *done)
{
    crash_host *c = ctx;
    if (c->armed && c->flushes >= c->limit)
        return -5; /* -EIO: the machine is gone */
    return c->inner->write_at(c->inner->ctx, off, buf, len, done);
}

static int ch_flush(void *ctx)
{
    crash_host *c = ctx;
    if (c->armed)
        c->flushes++;
    return c->inner->flush(c->inner->ctx);
}

static int ch_size(void *ctx, uint64_t *size)
{
    crash_host *c = ctx;
    return c->inner->size(c->inner->ctx, size);
}

static int ch_now(void *ctx, int64_t *ns)
{
    crash_host *c = ctx;
    return c->inner->now(c->inner->ctx, ns);
}

/* The small template with a sync of new contents for blocks 0..5 cut off
 * after its IN_PROGRESS superblock: what fuzz_superblock needs to start
 * from to reach journal loading and recovery. The superblock block goes
 * to *sb (4096 bytes). */
static int interrupted_super(uint8_t *sb, uint8_t *slot)
{
    uint8_t *tmpl = NULL, b[VD_BLOCK_SIZE];
    uint64_t n = 0, size = 0;
    vd_host *h = NULL;
    vd_image *img = NULL;
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    crash_host c = {.limit = 1};
    vd_header hdr;
    int rc = 1;
    vd_err e = fz_small_image(16, &tmpl, &n);
    if (e == VD_OK)
        e = vd_host_mem_new(&h);
    if (e == VD_OK)
        e = vd_host_mem_set(h, tmpl, n);
    c.inner = h;
    c.host = (vd_host){.ctx = &c, .read_at = ch_read, .write_at = ch_write, .flush = ch_flush,
                       .size = ch_size, .now = ch_now};
    if (e == VD_OK)
        e = vd_image_open(&c.host, fz_key, &o, &img);
    for (uint32_t l = 0; l < 6 && e == VD_OK; l++) {
        memset(b, (int)(0xC0 + l), sizeof b);
        e = vd_image_write(img, l, 1, b);
    }
    if (e == VD_OK) {
        c.armed = 1;
        (void)vd_image_sync(img); /* fails: that is the crash */
    }
    if (img)
        (void)vd_image_close(img);
    const uint8_t *d = e == VD_OK ? vd_host_mem_data(h, &size) : NULL;
    if (d && vd_header_decode(&hdr, d) == 0) {
        for (uint32_t i = 0; i < 2; i++) {
            const uint8_t *p = d + (hdr.sb_start + i) * VDF_BLOCK;
            if (fz_le32(p + SB_OFF_STATE) == SB_STATE_IN_PROGRESS) {
                memcpy(sb, p, VDF_BLOCK);
                *slot = (uint8_t)i;
                rc = 0;
            }
        }
    }
    if (rc)
        fprintf(stderr, "seedgen: could not make an interrupted sync\n");
    vd_host_mem_free(h);
    free(tmpl);
    return rc;
}

static int image_seeds(void)
{
    uint8_t *img = NULL, *slots = NULL;
    uint64_t n = 0, ns = 0;
    int rc = 1;
    if (fz_small_image(16, &img, &n) != VD_OK || fz_slot_image(&slots, &ns) != VD_OK) {
        fprintf(stderr, "seedgen: cannot build the image templates\n");
        goto out;
    }
    uint8_t fl0 = 0, fl3 = 3;
    const uint8_t *foot = img + n - VHD_FOOTER_BYTES;
    uint8_t hf[VDF_BLOCK + VHD_FOOTER_BYTES];
    memcpy(hf, img, VDF_BLOCK);
    memcpy(hf + VDF_BLOCK, foot, VHD_FOOTER_BYTES);
    vd_header hdr;
    if (vd_header_decode(&hdr, img) != 0) {
        fprintf(stderr, "seedgen: template header does not decode\n");
        goto out;
    }
    /* The newer superblock of the two, as fuzz_superblock's input. */
    const uint8_t *sa = img + hdr.sb_start * VDF_BLOCK, *sb = sa + VDF_BLOCK;
    const uint8_t *sn = fz_le64(sa + SB_OFF_EPOCH) > fz_le64(sb + SB_OFF_EPOCH) ? sa : sb;
    uint8_t sflags = (uint8_t)(0x07 | (sn == sb ? 0x08 : 0));
    uint8_t sflags_rw = (uint8_t)(sflags | 0x10);
    uint8_t isb[VDF_BLOCK], islot = 0;
    if (interrupted_super(isb, &islot) != 0)
        goto out;
    uint8_t iflags = (uint8_t)(0x07 | islot << 3), iflags_rw = (uint8_t)(iflags | 0x10);
    rc = put("fuzz_header", "template", &fl0, 1, hf, sizeof hf) |
         put("fuzz_header", "template-fixed", &fl3, 1, hf, sizeof hf) |
         put("fuzz_keyslot", "keyfile-sealed", slots + VDF_BLOCK, VDF_BLOCK, NULL, 0) |
         put("fuzz_keyslot", "original-16", img + VDF_BLOCK, VDF_BLOCK, NULL, 0) |
         put("fuzz_superblock", "newest", &sflags, 1, sn, VDF_BLOCK) |
         put("fuzz_superblock", "newest-rw", &sflags_rw, 1, sn, VDF_BLOCK) |
         put("fuzz_superblock", "in-progress", &iflags, 1, isb, VDF_BLOCK) |
         put("fuzz_superblock", "in-progress-rw", &iflags_rw, 1, isb, VDF_BLOCK) |
         put("fuzz_image", "small-16", &fl0, 1, img, (size_t)n) |
         put("fuzz_image", "slots-8", &fl0, 1, slots, (size_t)ns);
out:
    free(img);
    free(slots);
    return rc;
}

static int name_seeds(void)
{
    static const char *const names[] = {
        "README.TXT", "Long file name with spaces.txt",
        "\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93.txt", "a.b.c.d", "  lead.txt...",
        "CON", "\xf0\x9f\x98\x80.txt", "lower.txt", "Mixed.Txt", "x+y=z[1].c", "VOLUME LBL"};
    int rc = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char nm[16];
        uint8_t knob = (uint8_t)(i * 37u);
        snprintf(nm, sizeof nm, "name-%02zu", i);
        rc |= put("fuzz_names", nm, &knob, 1, names[i], strlen(names[i]));
    }
    return rc;
}

/* A patch record of fuzz_fatvol: region, offset, length, bytes. */
static size_t record(uint8_t *out, uint8_t region, uint16_t off, const uint8_t *p, uint8_t len)
{
    out[0] = region;
    out[1] = (uint8_t)off;
    out[2] = (uint8_t)(off >> 8);
    out[3] = len;
    memcpy(out + 4, p, len);
    return 4u + len;
}

static int volume_seeds(void)
{
    fz_volume v;
    vd_image *img = NULL;
    uint8_t *root = NULL, boot[VD_BLOCK_SIZE], fat[VD_BLOCK_SIZE], data[VD_BLOCK_SIZE];
    uint8_t rec[4 * 260];
    int rc = 1;
    if (fz_volume_setup(&v) != VD_OK || fz_volume_open(&v, &img) != VD_OK) {
        fprintf(stderr, "seedgen: cannot build the volume template\n");
        goto out;
    }
    root = malloc((size_t)v.root_n * v.cluster_bytes);
    if (!root || vd_image_read(img, 0, 1, boot) != VD_OK ||
        vd_image_read(img, v.fat_off[0] / VD_BLOCK_SIZE, 1, fat) != VD_OK ||
        vd_image_read(img, v.data_off / VD_BLOCK_SIZE, 1, data) != VD_OK)
        goto out;
    for (uint32_t i = 0; i < v.root_n; i++) {
        uint8_t b[VD_BLOCK_SIZE];
        if (vd_image_read(img, v.root_off[i] / VD_BLOCK_SIZE, 1, b) != VD_OK)
            goto out;
        memcpy(root + (size_t)i * v.cluster_bytes, b + v.root_off[i] % VD_BLOCK_SIZE,
               v.cluster_bytes);
    }
    uint8_t vol[8];
    fz_put_le64(vol, v.vol_bytes);
    size_t fo = v.fat_off[0] % VD_BLOCK_SIZE, dof = v.data_off % VD_BLOCK_SIZE;
    size_t n0 = record(rec, 0, 0, boot, 90);
    size_t n1 = n0 + record(rec + n0, 0, 512, boot + 512, 4);           /* FSInfo lead */
    size_t n2 = record(rec, 1, 0, fat + fo, 200);                          /* FAT chains */
    size_t n3 = record(rec, 3, 0, data + dof, 255);                        /* root dir */
    size_t n4 = n3 + record(rec + n3, 2, 0, fat + fo, 100);
    rc = put("fuzz_bpb", "ours-40m", vol, sizeof vol, boot, 512) |
         put("fuzz_dirent", "root", root, (size_t)v.root_n * v.cluster_bytes, NULL, 0) |
         put("fuzz_fatvol", "empty", "", 0, NULL, 0) |
         put("fuzz_fatvol", "boot", rec, n1, NULL, 0);
    rc |= put("fuzz_fatvol", "fat", rec, n2, NULL, 0);
    rc |= put("fuzz_fatvol", "rootdir-fat2", rec, n4, NULL, 0);
out:
    if (img)
        (void)vd_image_close(img);
    free(root);
    return rc;
}

/* fuzz_log: the template's own log blocks before the last, with the chain
 * head fixed up (it is the right one already) and without. */
static int log_seeds(void)
{
    uint8_t *img = NULL;
    uint64_t n = 0;
    vd_header hdr;
    if (fz_log_image(&img, &n) != VD_OK || vd_header_decode(&hdr, img) != 0) {
        fprintf(stderr, "seedgen: cannot build the log template\n");
        free(img);
        return 1;
    }
    const uint8_t *log = img + vd_header_log_start(&hdr) * VDF_BLOCK;
    const size_t len = (size_t)(FZ_LOG_COMMITS - 1) * VDF_BLOCK;
    uint8_t f0 = 0, f1 = 1, f3 = 3;
    int rc = put("fuzz_log", "template", &f0, 1, log, len) |
             put("fuzz_log", "template-fixed", &f1, 1, log, len) |
             put("fuzz_log", "template-fixed-rw", &f3, 1, log, len);
    free(img);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seedgen OUTDIR\n");
        return 2;
    }
    outdir = argv[1];
    fz_rng_install();
    int rc = image_seeds();
    rc |= name_seeds();
    rc |= volume_seeds();
    rc |= log_seeds();
    return rc ? 1 : 0;
}
