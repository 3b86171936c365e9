/* Test images for vhdfsck and the damage the cases apply (damage.h).
 * Built with FSCK_DAMAGE_MAIN it is also the `fsck_damage` helper the case
 * recipes in tests/fsck/ call:
 *   fsck_damage make IMAGE KEYFILE            new image + sample tree
 *   fsck_damage volume IMAGE KEYFILE WHAT     dirty|fsinfo|fatcopy|lost|
 *                                             crosslink|size|lfn|dupname
 *   fsck_damage rewrite IMAGE KEYFILE PATH    new bytes in PATH's first block
 *   fsck_damage tamper IMAGE KEYFILE PATH OFF data|node
 *   fsck_damage replay IMAGE OLDIMAGE KEYFILE PATH   old block of PATH back
 *   fsck_damage crash IMAGE KEYFILE           write a file, sync, never unmount
 *   fsck_damage export IMAGE KEYFILE RAW      the decrypted volume
 *   fsck_damage newkey KEYFILE                another random key file
 *   fsck_damage flip IMAGE OFFSET             XOR a byte at OFFSET + 100
 *   fsck_damage where IMAGE LBN               file offsets of logical block
 *                                             LBN and of its level-1 node */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damage.h"
#include "endian.h"
#include "image_format.h"
#include "merkle/merkle.h"
#include "vdisk/fs.h"
#include "vdisk/keys.h"

typedef struct dmg_geo {
    uint32_t bps, spc, rsvd, nfats, fatsz, root, fsinfo;
    uint64_t fat_off, data_off, cb;
} dmg_geo;

static vd_err vol_rw(vd_image *img, uint64_t off, void *buf, size_t len, int wr)
{
    uint8_t blk[VD_BLOCK_SIZE];
    uint8_t *p = buf;
    while (len > 0) {
        uint64_t lbn = off / VD_BLOCK_SIZE;
        size_t in = (size_t)(off % VD_BLOCK_SIZE), n = VD_BLOCK_SIZE - in;
        if (n > len)
            n = len;
        vd_err e = vd_image_read(img, lbn, 1, blk);
        if (e != VD_OK)
            return e;
        if (wr) {
            memcpy(blk + in, p, n);
            e = vd_image_write(img, lbn, 1, blk);
            if (e != VD_OK)
                return e;
        } else {
            memcpy(p, blk + in, n);
        }
        off += n;
        p += n;
        len -= n;
    }
    return VD_OK;
}

static vd_err geo_read(vd_image *img, dmg_geo *g)
{
    uint8_t s[512];
    vd_err e = vol_rw(img, 0, s, sizeof s, 0);
    if (e != VD_OK)
        return e;
    g->bps = vd_get_le16(s + 11);
    g->spc = s[13];
    g->rsvd = vd_get_le16(s + 14);
    g->nfats = s[16];
    g->fatsz = vd_get_le32(s + 36);
    g->root = vd_get_le32(s + 44);
    g->fsinfo = vd_get_le16(s + 48);
    g->fat_off = (uint64_t)g->rsvd * g->bps;
    g->data_off = g->fat_off + (uint64_t)g->nfats * g->fatsz * g->bps;
    g->cb = (uint64_t)g->spc * g->bps;
    return VD_OK;
}

static uint64_t ent_off(const dmg_geo *g, uint32_t copy, uint32_t c)
{
    return g->fat_off + (uint64_t)copy * g->fatsz * g->bps + (uint64_t)c * 4;
}

static vd_err fat_rw(vd_image *img, const dmg_geo *g, uint32_t copy, uint32_t c,
                     uint32_t *v, int wr)
{
    uint8_t b[4];
    if (wr)
        vd_put_le32(b, *v);
    vd_err e = vol_rw(img, ent_off(g, copy, c), b, 4, wr);
    if (e == VD_OK && !wr)
        *v = vd_get_le32(b);
    return e;
}

/* Set entry c in every copy. */
static vd_err fat_put(vd_image *img, const dmg_geo *g, uint32_t c, uint32_t v)
{
    vd_err e = VD_OK;
    for (uint32_t k = 0; e == VD_OK && k < g->nfats; k++)
        e = fat_rw(img, g, k, c, &v, 1);
    return e;
}

static uint64_t clus_off(const dmg_geo *g, uint32_t c)
{
    return g->data_off + (uint64_t)(c - 2) * g->cb;
}

/* Offset of the 32-byte slot of directory dir_clus that matches pred. */
static vd_err dir_find(vd_image *img, const dmg_geo *g, uint32_t dir, const char *sfn,
                       int want_lfn, uint64_t *off)
{
    for (uint32_t c = dir, guard = 0; c >= 2 && c < 0x0FFFFFF8 && guard < 1000; guard++) {
        for (uint64_t s = 0; s < g->cb; s += 32) {
            uint8_t e[32];
            vd_err r = vol_rw(img, clus_off(g, c) + s, e, 32, 0);
            if (r != VD_OK)
                return r;
            if (e[0] == 0)
                return VD_ERR_NOENT;
            int lfn = (e[11] & 0x3F) == 0x0F;
            if ((want_lfn && lfn && e[0] != 0xE5) ||
                (!want_lfn && !lfn && memcmp(e, sfn, 11) == 0)) {
                *off = clus_off(g, c) + s;
                return VD_OK;
            }
        }
        vd_err r = fat_rw(img, g, 0, c, &c, 0);
        if (r != VD_OK)
            return r;
        c &= 0x0FFFFFFF;
    }
    return VD_ERR_NOENT;
}

static vd_err put_file(vd_fs *fs, const char *path, uint32_t len, uint8_t seed)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return VD_ERR_NOMEM;
    for (uint32_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7 + (i >> 9));
    vd_file *f;
    size_t done = 0;
    vd_err e = vd_file_open(fs, path, VD_O_WRONLY | VD_O_CREAT | VD_O_TRUNC, &f);
    if (e == VD_OK) {
        e = vd_file_write(f, 0, buf, len, &done);
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    free(buf);
    return e;
}

vd_err dmg_build(vd_image *img)
{
    vd_mkfs_opts mo = {.label = "FSCKTEST", .volume_id = 0x20261123u};
    vd_err e = vd_fs_format(img, &mo);
    vd_fs *fs = NULL;
    if (e == VD_OK)
        e = vd_fs_mount(img, NULL, &fs);
    if (e != VD_OK)
        return e;
    e = put_file(fs, "/HELLO.TXT", 6, 1);
    if (e == VD_OK)
        e = put_file(fs, "/DATA.BIN", 40000, 2);
    if (e == VD_OK)
        e = put_file(fs, "/A.BIN", 3000, 3);
    if (e == VD_OK)
        e = put_file(fs, "/B.BIN", 3000, 4);
    if (e == VD_OK)
        e = put_file(fs, "/BIG.BIN", DMG_BIG_BYTES, 5);
    if (e == VD_OK)
        e = vd_fs_mkdir(fs, "/docs");
    if (e == VD_OK)
        e = put_file(fs, "/docs/Long File Name.txt", 5000, 6);
    vd_err u = vd_fs_unmount(fs);
    return e != VD_OK ? e : u;
}

vd_err dmg_rewrite(vd_image *img, const char *path)
{
    vd_fs *fs;
    vd_err e = vd_fs_mount(img, NULL, &fs);
    if (e != VD_OK)
        return e;
    vd_file *f;
    size_t done;
    static const uint8_t other[64] = {0x42};
    e = vd_file_open(fs, path, VD_O_WRONLY, &f);
    if (e == VD_OK) {
        e = vd_file_write(f, DMG_REPLAY_OFF, other, sizeof other, &done);
        vd_err c = vd_file_close(f);
        if (e == VD_OK)
            e = c;
    }
    vd_err u = vd_fs_unmount(fs);
    return e != VD_OK ? e : u;
}

vd_err dmg_file_block(vd_image *img, const char *path, uint64_t off, uint64_t *lbn)
{
    dmg_geo g;
    vd_fs *fs;
    vd_stat st;
    vd_err e = geo_read(img, &g);
    if (e == VD_OK)
        e = vd_fs_mount(img, &(vd_fs_opts){.read_only = 1}, &fs);
    if (e != VD_OK)
        return e;
    e = vd_fs_stat(fs, path, &st);
    vd_err u = vd_fs_unmount(fs);
    if (e != VD_OK)
        return e;
    if (u != VD_OK)
        return u;
    if ((off >= st.size && !st.is_dir) || st.first_cluster < 2)
        return VD_ERR_RANGE;
    uint32_t c = st.first_cluster;
    for (uint64_t k = 0; k < off / g.cb; k++) {
        e = fat_rw(img, &g, 0, c, &c, 0);
        if (e != VD_OK)
            return e;
        c &= 0x0FFFFFFF;
    }
    *lbn = (clus_off(&g, c) + off % g.cb) / VD_BLOCK_SIZE;
    return VD_OK;
}

static vd_err find_sfn_entry(vd_image *img, const dmg_geo *g, const char *sfn,
                             uint8_t e[32], uint64_t *off)
{
    vd_err r = dir_find(img, g, g->root, sfn, 0, off);
    if (r == VD_OK)
        r = vol_rw(img, *off, e, 32, 0);
    return r;
}

static uint32_t ent_first(const uint8_t e[32])
{
    return ((uint32_t)vd_get_le16(e + 20) << 16) | vd_get_le16(e + 26);
}

vd_err dmg_volume(vd_image *img, const char *what)
{
    dmg_geo g;
    vd_err e = geo_read(img, &g);
    if (e != VD_OK)
        return e;
    uint8_t ent[32];
    uint64_t off;
    if (strcmp(what, "dirty") == 0) {
        /* What a crash leaves: FAT[1]'s clean bit cleared by the mount. */
        uint32_t v;
        e = fat_rw(img, &g, 0, 1, &v, 0);
        if (e == VD_OK)
            e = fat_put(img, &g, 1, v & ~0x08000000u);
    } else if (strcmp(what, "fsinfo") == 0) {
        uint8_t b[4];
        vd_put_le32(b, 1234);
        e = vol_rw(img, (uint64_t)g.fsinfo * g.bps + 488, b, 4, 1);
    } else if (strcmp(what, "fatcopy") == 0) {
        /* Copy 2 claims a cluster copy 1 (and every file) leaves free. */
        uint32_t v = 0x0FFFFFFF, c = 60000;
        e = fat_rw(img, &g, 1, c, &v, 1);
    } else if (strcmp(what, "lost") == 0) {
        /* A three-cluster chain nobody owns, as a crash between the FAT
         * update and the directory entry would leave. */
        e = fat_put(img, &g, 60000, 60001);
        if (e == VD_OK)
            e = fat_put(img, &g, 60001, 60002);
        if (e == VD_OK)
            e = fat_put(img, &g, 60002, 0x0FFFFFFF);
    } else if (strcmp(what, "crosslink") == 0) {
        /* B.BIN's chain continues into A.BIN's: the last cluster of B
         * points at A's first. */
        uint8_t a[32];
        uint64_t aoff;
        e = find_sfn_entry(img, &g, "A       BIN", a, &aoff);
        if (e == VD_OK)
            e = find_sfn_entry(img, &g, "B       BIN", ent, &off);
        if (e == VD_OK) {
            uint32_t c = ent_first(ent), v = 0;
            for (int guard = 0; e == VD_OK && guard < 100; guard++) {
                e = fat_rw(img, &g, 0, c, &v, 0);
                if ((v & 0x0FFFFFFF) >= 0x0FFFFFF8)
                    break;
                c = v & 0x0FFFFFFF;
            }
            if (e == VD_OK)
                e = fat_put(img, &g, c, ent_first(a));
        }
    } else if (strcmp(what, "dupname") == 0) {
        /* B.BIN's short entry now says A.BIN too. */
        e = find_sfn_entry(img, &g, "B       BIN", ent, &off);
        if (e == VD_OK) {
            memcpy(ent, "A       BIN", 11);
            e = vol_rw(img, off, ent, 32, 1);
        }
    } else if (strcmp(what, "size") == 0) {
        e = find_sfn_entry(img, &g, "DATA    BIN", ent, &off);
        if (e == VD_OK) {
            vd_put_le32(ent + 28, vd_get_le32(ent + 28) + 100000);
            e = vol_rw(img, off, ent, 32, 1);
        }
    } else if (strcmp(what, "lfn") == 0) {
        e = find_sfn_entry(img, &g, "DOCS       ", ent, &off);
        if (e == VD_OK)
            e = dir_find(img, &g, ent_first(ent), NULL, 1, &off);
        if (e == VD_OK)
            e = vol_rw(img, off, ent, 32, 0);
        if (e == VD_OK) {
            ent[13] ^= 0xFF; /* checksum of the alias */
            e = vol_rw(img, off, ent, 32, 1);
        }
    } else {
        e = VD_ERR_INVAL;
    }
    if (e == VD_OK)
        e = vd_image_sync(img);
    return e;
}

static vd_err host_rw(const vd_host *h, uint64_t off, void *buf, size_t len, int wr)
{
    size_t done = 0;
    int r = wr ? h->write_at(h->ctx, off, buf, len, &done)
               : h->read_at(h->ctx, off, buf, len, &done);
    return r == 0 && done == len ? VD_OK : VD_ERR_IO;
}

vd_err dmg_phys(const vd_host *host, uint64_t lbn, uint64_t *data_off, uint64_t *node_off)
{
    uint8_t *blk = malloc(VDF_BLOCK);
    if (!blk)
        return VD_ERR_NOMEM;
    vd_header h;
    mt_geometry geo;
    vd_err e = host_rw(host, 0, blk, VDF_BLOCK, 0);
    if (e == VD_OK && vd_header_decode(&h, blk) != 0)
        e = VD_ERR_CORRUPT;
    if (e == VD_OK && mt_geometry_init(&geo, h.nblocks, h.fanout) != 0)
        e = VD_ERR_CORRUPT;
    if (e == VD_OK) {
        *data_off = (h.data_start + lbn) * VDF_BLOCK;
        *node_off = (h.node_start + mt_node_index(&geo, 1, lbn / geo.fanout)) * VDF_BLOCK;
    }
    free(blk);
    return e;
}

vd_err dmg_flip(const vd_host *host, uint64_t off)
{
    uint8_t b;
    vd_err e = host_rw(host, off + 100, &b, 1, 0);
    if (e == VD_OK) {
        b ^= 0x5A;
        e = host_rw(host, off + 100, &b, 1, 1);
    }
    return e;
}

vd_err dmg_copy_block(const vd_host *from, const vd_host *to, uint64_t off)
{
    uint8_t *blk = malloc(VDF_BLOCK);
    if (!blk)
        return VD_ERR_NOMEM;
    vd_err e = host_rw(from, off, blk, VDF_BLOCK, 0);
    if (e == VD_OK)
        e = host_rw(to, off, blk, VDF_BLOCK, 1);
    free(blk);
    return e;
}

#ifdef FSCK_DAMAGE_MAIN
static int die(const char *what, vd_err e)
{
    fprintf(stderr, "fsck_damage: %s: %s\n", what, vd_strerror(e));
    return 1;
}

static vd_err open_img(const char *path, const char *keyfile, int create, vd_host **h,
                       vd_image **img)
{
    int sys = 0;
    uint8_t *key = vd_secret_alloc(VD_KEYFILE_BYTES);
    if (!key)
        return VD_ERR_NOMEM;
    vd_err e = create ? vd_keyfile_create(keyfile, key, &sys)
                      : vd_keyfile_read(keyfile, key, &sys);
    if (e == VD_OK)
        e = vd_host_file_open(path, create ? VD_HOST_CREATE : 0, h, &sys);
    vd_unlock u = {VD_SLOT_KEYFILE, key, VD_KEYFILE_BYTES};
    if (e == VD_OK && create) {
        vd_pwhash_params pw = {VD_PWHASH_OPSLIMIT_MIN, VD_PWHASH_MEMLIMIT_MIN};
        vd_create_opts co = {.nblocks = DMG_NBLOCKS, .fanout = DMG_FANOUT};
        e = vd_image_create_unlock(*h, &u, &pw, &co, NULL, img);
    } else if (e == VD_OK) {
        e = vd_image_open_unlock(*h, &u, NULL, img);
    }
    if (e != VD_OK && *h) {
        vd_host_file_close(*h);
        *h = NULL;
    }
    vd_secret_free(key);
    return e;
}

static int sink_file(void *ctx, uint64_t off, const void *buf, size_t len)
{
    FILE *f = ctx;
    return fseek(f, (long)off, SEEK_SET) == 0 && fwrite(buf, 1, len, f) == len ? 0 : -1;
}

int main(int argc, char **argv)
{
    vd_host *h = NULL, *h2 = NULL;
    vd_image *img = NULL;
    vd_err e;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (strcmp(cmd, "newkey") == 0 && argc == 3) {
        int sys;
        e = vd_keyfile_create(argv[2], NULL, &sys);
        return e == VD_OK ? 0 : die(argv[2], e);
    }
    if (strcmp(cmd, "flip") == 0 && argc == 4) {
        int sys;
        e = vd_host_file_open(argv[2], 0, &h, &sys);
        if (e == VD_OK)
            e = dmg_flip(h, strtoull(argv[3], NULL, 0));
    } else if (strcmp(cmd, "where") == 0 && argc == 4) {
        int sys;
        uint64_t doff, noff;
        e = vd_host_file_open(argv[2], VD_HOST_READONLY, &h, &sys);
        if (e == VD_OK)
            e = dmg_phys(h, strtoull(argv[3], NULL, 0), &doff, &noff);
        if (e == VD_OK)
            printf("%llu %llu\n", (unsigned long long)doff, (unsigned long long)noff);
    } else if (strcmp(cmd, "make") == 0 && argc == 4) {
        e = open_img(argv[2], argv[3], 1, &h, &img);
        if (e == VD_OK)
            e = dmg_build(img);
    } else if (strcmp(cmd, "volume") == 0 && argc == 5) {
        e = open_img(argv[2], argv[3], 0, &h, &img);
        if (e == VD_OK)
            e = dmg_volume(img, argv[4]);
    } else if (strcmp(cmd, "crash") == 0 && argc == 4) {
        /* What a killed writer leaves: everything synced, the volume never
         * unmounted (the mount handle is dropped, not freed: we exit). */
        vd_fs *fs;
        e = open_img(argv[2], argv[3], 0, &h, &img);
        if (e == VD_OK)
            e = vd_fs_mount(img, NULL, &fs);
        if (e == VD_OK)
            e = put_file(fs, "/CRASH.TXT", 10000, 9);
        if (e == VD_OK)
            e = vd_fs_sync(fs);
        /* Die here, as a killed writer would: no unmount, no close, and no
         * exit handlers (LeakSanitizer would report the dropped handles). */
        if (e == VD_OK) {
            fflush(NULL);
            _exit(0);
        }
    } else if (strcmp(cmd, "rewrite") == 0 && argc == 5) {
        e = open_img(argv[2], argv[3], 0, &h, &img);
        if (e == VD_OK)
            e = dmg_rewrite(img, argv[4]);
    } else if (strcmp(cmd, "export") == 0 && argc == 5) {
        e = open_img(argv[2], argv[3], 0, &h, &img);
        FILE *f = e == VD_OK ? fopen(argv[4], "wb") : NULL;
        uint64_t bytes;
        if (e == VD_OK && !f)
            e = VD_ERR_IO;
        if (e == VD_OK)
            e = vd_fs_export(img, sink_file, f, 0, &bytes);
        if (f && fclose(f) != 0 && e == VD_OK)
            e = VD_ERR_IO;
    } else if ((strcmp(cmd, "tamper") == 0 && argc == 7) ||
               (strcmp(cmd, "replay") == 0 && argc == 6)) {
        int tamper = cmd[0] == 't';
        const char *keyf = tamper ? argv[3] : argv[4];
        const char *path = tamper ? argv[4] : argv[5];
        uint64_t lbn = 0, doff, noff;
        e = open_img(argv[2], keyf, 0, &h, &img);
        if (e == VD_OK)
            e = dmg_file_block(
                img, path, tamper ? strtoull(argv[5], NULL, 0) : DMG_REPLAY_OFF, &lbn);
        vd_err c = img ? vd_image_close(img) : VD_OK;
        img = NULL;
        if (e == VD_OK)
            e = c;
        if (e == VD_OK)
            e = dmg_phys(h, lbn, &doff, &noff);
        if (e == VD_OK && tamper)
            e = dmg_flip(h, strcmp(argv[6], "node") == 0 ? noff : doff);
        if (e == VD_OK && !tamper) {
            int sys;
            e = vd_host_file_open(argv[3], VD_HOST_READONLY, &h2, &sys);
            if (e == VD_OK)
                e = dmg_copy_block(h2, h, doff);
        }
        if (e == VD_OK)
            printf("%llu\n", (unsigned long long)lbn);
    } else {
        fprintf(stderr, "fsck_damage: bad usage (see tests/fsck/damage.c)\n");
        return 2;
    }
    if (img) {
        vd_err c = vd_image_close(img);
        if (e == VD_OK)
            e = c;
    }
    if (h)
        vd_host_file_close(h);
    if (h2)
        vd_host_file_close(h2);
    return e == VD_OK ? 0 : die(cmd, e);
}
#endif
