/* info: the public header and key slots without a key; with one, what only
 * the key reveals (verified root, epoch, label, free space, file count). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdtool.h"

typedef struct keyed {
    int have;
    vd_image_info info;
    vd_statfs sfs;
    uint64_t files, dirs;
} keyed;

const char *vt_slot_type_name(vd_slot_type t);
const char *vt_slot_type_name(vd_slot_type t)
{
    switch (t) {
    case VD_SLOT_PASSPHRASE:
        return "passphrase";
    case VD_SLOT_KEYFILE:
        return "keyfile";
    case VD_SLOT_SEALED:
        return "sealed";
    default:
        return "empty";
    }
}

static const char *cipher_name(vd_cipher c)
{
    switch (c) {
    case VD_CIPHER_AES256GCM:
        return "AES-256-GCM";
    case VD_CIPHER_XCHACHA20POLY1305:
        return "XChaCha20-Poly1305";
    default:
        return "unknown";
    }
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static int count_tree(vd_fs *fs, const char *path, keyed *k, char **bad)
{
    vd_dir *d = NULL;
    vd_dirent *ent = malloc(sizeof *ent);
    vd_err e = ent ? vd_dir_open(fs, path, &d) : VD_ERR_NOMEM;
    char **subs = NULL;
    size_t nsubs = 0;
    while (e == VD_OK && (e = vd_dir_read(d, ent)) == VD_OK) {
        if (!ent->is_dir) {
            k->files++;
            continue;
        }
        k->dirs++;
        char *p = cli_path_join(path, ent->name);
        char **g = p ? realloc(subs, (nsubs + 1) * sizeof *g) : NULL;
        if (!g) {
            free(p);
            e = VD_ERR_NOMEM;
            break;
        }
        subs = g;
        subs[nsubs++] = p;
    }
    if (e == VD_ERR_NOENT && d)
        e = VD_OK;
    if (d)
        (void)vd_dir_close(d); /* read-only */
    if (e != VD_OK && !*bad)
        *bad = strdup(path);
    for (size_t i = 0; i < nsubs; i++) {
        if (e == VD_OK)
            e = count_tree(fs, subs[i], k, bad);
        free(subs[i]);
    }
    free(subs);
    free(ent);
    return e;
}

static int open_keyed(vt_opts *o, keyed *k)
{
    cli_image ci;
    char *bad = NULL;
    int rc = vt_open_fs(o, 1, &ci);
    if (rc)
        return rc;
    vd_err e = vd_image_info_get(ci.img, &k->info);
    if (e == VD_OK)
        e = vd_fs_statfs(ci.fs, &k->sfs);
    if (e == VD_OK)
        e = count_tree(ci.fs, "/", k, &bad);
    if (e != VD_OK)
        rc = cli_fs_fail(VT_PROG, o->pos[0], ci.img, bad, e);
    free(bad);
    k->have = rc == 0;
    return vt_close(o, &ci, rc);
}

static void print_text(const char *image, const vd_image_info *i, const vd_slot_info *s,
                       const keyed *k)
{
    char b1[16], b2[16];
    printf("image:           %s\n", image);
    printf("format version:  %u\n", i->format_version);
    printf("cipher:          %s\n", cipher_name(i->cipher));
    printf("volume size:     %s (%llu blocks of %u bytes)\n",
           cli_size_format(i->nblocks * VD_BLOCK_SIZE, b1, sizeof b1),
           (unsigned long long)i->nblocks, VD_BLOCK_SIZE);
    printf("file size:       %s (%llu bytes)\n",
           cli_size_format(i->file_bytes, b2, sizeof b2),
           (unsigned long long)i->file_bytes);
    printf("tree:            fanout %u, height %u, %llu node blocks\n", i->fanout,
           i->height, (unsigned long long)i->node_blocks);
    printf("journal:         2 x %u blocks\n", i->journal_blocks);
    if (i->log_blocks)
        printf("log:             %u blocks\n", i->log_blocks);
    printf("data start:      block %llu\n", (unsigned long long)i->data_start);
    for (int n = 0; n < VD_KEYSLOTS; n++) {
        if (s[n].status != VD_OK)
            printf("key slot %d:      malformed\n", n);
        else if (s[n].type != VD_SLOT_EMPTY)
            printf("key slot %d:      %s\n", n, vt_slot_type_name(s[n].type));
    }
    if (!k->have)
        return;
    const vd_statfs *f = &k->sfs;
    printf("root:            verified\n");
    printf("epoch:           %llu\n", (unsigned long long)k->info.epoch);
    if (k->info.log_blocks)
        printf("log in use:      %u of %u blocks\n", k->info.log_len, k->info.log_blocks);
    printf("label:           %s\n", f->label);
    printf("cluster size:    %u\n", f->cluster_bytes);
    printf(
        "free space:      %s of %s\n",
        cli_size_format((uint64_t)f->free_clusters * f->cluster_bytes, b1, sizeof b1),
        cli_size_format((uint64_t)f->total_clusters * f->cluster_bytes, b2, sizeof b2));
    printf("files:           %llu\n", (unsigned long long)k->files);
    printf("directories:     %llu\n", (unsigned long long)k->dirs);
}

static void print_json(const char *image, const vd_image_info *i, const vd_slot_info *s,
                       const keyed *k)
{
    printf("{\"image\": ");
    json_string(image);
    printf(", \"format_version\": %u, \"cipher\": \"%s\", \"block_size\": %u, "
           "\"nblocks\": %llu, \"volume_bytes\": %llu, \"total_blocks\": %llu, "
           "\"file_bytes\": %llu, \"fanout\": %u, \"height\": %u, \"node_blocks\": %llu, "
           "\"journal_blocks\": %u, \"log_blocks\": %u, \"data_start\": %llu, "
           "\"key_slots\": [",
           i->format_version, cipher_name(i->cipher), VD_BLOCK_SIZE,
           (unsigned long long)i->nblocks,
           (unsigned long long)(i->nblocks * VD_BLOCK_SIZE),
           (unsigned long long)i->total_blocks, (unsigned long long)i->file_bytes,
           i->fanout, i->height, (unsigned long long)i->node_blocks, i->journal_blocks,
           i->log_blocks, (unsigned long long)i->data_start);
    const char *sep = "";
    for (int n = 0; n < VD_KEYSLOTS; n++) {
        if (s[n].status == VD_OK && s[n].type == VD_SLOT_EMPTY)
            continue;
        printf("%s{\"slot\": %d, \"type\": \"%s\"}", sep, n,
               s[n].status != VD_OK ? "malformed" : vt_slot_type_name(s[n].type));
        sep = ", ";
    }
    printf("]");
    if (k->have) {
        const vd_statfs *f = &k->sfs;
        printf(", \"verified\": true, \"epoch\": %llu, \"label\": ",
               (unsigned long long)k->info.epoch);
        json_string(f->label);
        printf(", \"cluster_bytes\": %u, \"total_clusters\": %u, \"free_clusters\": %u, "
               "\"free_bytes\": %llu, \"files\": %llu, \"directories\": %llu",
               f->cluster_bytes, f->total_clusters, f->free_clusters,
               (unsigned long long)f->free_clusters * f->cluster_bytes,
               (unsigned long long)k->files, (unsigned long long)k->dirs);
    }
    printf("}\n");
}

int vt_cmd_info(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *image = o->pos[0];
    vd_host *host = NULL;
    vd_image_info info;
    vd_slot_info slots[VD_KEYSLOTS];
    keyed k;
    memset(&k, 0, sizeof k);
    int rc = 0;
    rc = vt_open_public(image, &host);
    if (rc != 0)
        return rc;
    vd_err e = vd_image_probe(host, &info);
    if (e == VD_OK)
        e = vd_keyslot_list(host, slots);
    vd_host_close(host);
    if (e != VD_OK)
        return cli_fail(VT_PROG, image, e,
                        e == VD_ERR_CORRUPT ? "not a vdisk image, or a damaged one"
                                            : NULL);
    if (cli_keyopts_has_secret(&o->keys)) {
        rc = open_keyed(o, &k);
        if (rc)
            return rc;
    }
    if (o->json)
        print_json(image, &info, slots, &k);
    else
        print_text(image, &info, slots, &k);
    if (fflush(stdout) != 0) {
        cli_errorf(VT_PROG, NULL, "standard output: write error");
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}
