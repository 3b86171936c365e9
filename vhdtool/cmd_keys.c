/* keyslot list|add|remove, keygen, anchor init: managing who can open an
 * image and its freshness anchor. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdtool.h"

const char *vt_slot_type_name(vd_slot_type t);

int vt_cmd_keyslot_list(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *image = o->pos[0];
    vd_host *host = NULL;
    vd_slot_info s[VD_KEYSLOTS];
    int rc = vt_open_public(image, &host);
    if (rc != 0)
        return rc;
    vd_err e = vd_keyslot_list(host, s);
    vd_host_close(host);
    if (e != VD_OK)
        return cli_fail(VT_PROG, image, e,
                        e == VD_ERR_CORRUPT ? "not a vdisk image, or a damaged one"
                                            : NULL);
    for (int n = 0; n < VD_KEYSLOTS; n++) {
        if (s[n].status != VD_OK) {
            printf("%d malformed\n", n);
            continue;
        }
        switch (s[n].type) {
        case VD_SLOT_EMPTY:
            break;
        case VD_SLOT_PASSPHRASE:
            printf("%d passphrase argon2id opslimit=%llu memlimit=%llu\n", n,
                   (unsigned long long)s[n].opslimit, (unsigned long long)s[n].memlimit);
            break;
        case VD_SLOT_SEALED: {
            char hex[2 * VD_X25519_BYTES + 1];
            for (unsigned i = 0; i < VD_X25519_BYTES; i++)
                snprintf(hex + 2 * i, 3, "%02x", s[n].recipient[i]);
            printf("%d sealed %s\n", n, hex);
            break;
        }
        default:
            printf("%d %s\n", n, vt_slot_type_name(s[n].type));
            break;
        }
    }
    return fflush(stdout) == 0 ? 0 : CLI_EXIT_FAIL;
}

/* The new secret of keyslot add; *made = a new key file was created. */
static int new_secret(const vt_cmd *cmd, vt_opts *o, cli_secret *s, int *made)
{
    int n =
        !!o->new_key_file + !!o->new_passphrase_file + !!o->new_passphrase + !!o->seal_to;
    if (n != 1)
        return vt_usage_error(
            cmd, "give exactly one of --new-key-file, --new-passphrase-file, "
                 "--new-passphrase, --seal-to");
    if (o->new_passphrase_file)
        return cli_secret_passphrase_file(VT_PROG, o->new_passphrase_file, s);
    if (o->seal_to)
        return cli_secret_pubkey(VT_PROG, o->seal_to, s);
    if (o->new_passphrase) {
        char prompt[512];
        snprintf(prompt, sizeof prompt, "New passphrase for %s: ", o->pos[0]);
        return cli_secret_passphrase_prompt(VT_PROG, prompt, 1, s);
    }
    memset(s, 0, sizeof *s);
    s->buf = vd_secret_alloc(VD_KEYFILE_BYTES);
    if (!s->buf) {
        cli_errorf(VT_PROG, NULL, "cannot allocate guarded memory for a secret");
        return CLI_EXIT_FAIL;
    }
    int sys = 0;
    vd_err e = vd_keyfile_create(o->new_key_file, s->buf, &sys);
    if (e != VD_OK) {
        if (sys == EEXIST)
            cli_errorf(VT_PROG, o->new_key_file,
                       "exists (a new key file never replaces one)");
        else
            cli_fail_errno(VT_PROG, o->new_key_file, e, sys);
        cli_secret_wipe(s);
        return CLI_EXIT_FAIL;
    }
    *made = 1;
    s->u.type = VD_SLOT_KEYFILE;
    s->u.secret = s->buf;
    s->u.len = VD_KEYFILE_BYTES;
    return 0;
}

int vt_cmd_keyslot_add(const vt_cmd *cmd, vt_opts *o)
{
    cli_secret s = {0};
    cli_image ci = {0};
    int made = 0, opened = 0, slot = -1;
    int rc = new_secret(cmd, o, &s, &made);
    if (rc)
        goto out;
    rc = cli_image_open(VT_PROG, o->pos[0], &o->keys, 0, 0, &ci);
    if (rc)
        goto out;
    opened = 1;
    vd_err e = vd_keyslot_add(ci.img, &s.u, NULL, &slot);
    if (e != VD_OK)
        rc = cli_fail(VT_PROG, o->pos[0], e,
                      e == VD_ERR_NOSPC ? "all 8 key slots are in use" : NULL);
    rc = vt_close(o, &ci, rc);
    opened = 0;
    if (rc == 0 && !o->quiet)
        printf("%s: added key slot %d (%s)\n", o->pos[0], slot,
               vt_slot_type_name(s.u.type));
out:
    if (opened)
        (void)cli_image_close_quiet(&ci);
    if (rc != 0 && made)
        (void)unlink(o->new_key_file);
    cli_secret_wipe(&s);
    return rc;
}

int vt_cmd_keyslot_remove(const vt_cmd *cmd, vt_opts *o)
{
    char *end;
    errno = 0;
    long slot = strtol(o->pos[1], &end, 10);
    if (errno || *end || end == o->pos[1] || slot < 0 || slot >= VD_KEYSLOTS)
        return vt_usage_error(cmd, "%s: not a slot number (0-%d)", o->pos[1],
                              VD_KEYSLOTS - 1);
    cli_image ci;
    int rc = cli_image_open(VT_PROG, o->pos[0], &o->keys, 0, 0, &ci);
    if (rc)
        return rc;
    vd_err e = vd_keyslot_remove(ci.img, (int)slot);
    if (e == VD_ERR_BUSY) {
        cli_errorf(VT_PROG, o->pos[0],
                   "slot %ld: refusing to remove the last key slot "
                   "(the image could never be opened again)",
                   slot);
        rc = CLI_EXIT_FAIL;
    } else if (e == VD_ERR_INVAL) {
        cli_errorf(VT_PROG, o->pos[0], "slot %ld: empty", slot);
        rc = CLI_EXIT_FAIL;
    } else if (e != VD_OK) {
        rc = cli_fail(VT_PROG, o->pos[0], e, NULL);
    }
    return vt_close(o, &ci, rc);
}

/* ---- keygen ---------------------------------------------------------------------- */

static int sync_dir_of(const char *path)
{
    char *d = strdup(path);
    int fd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int r = fd >= 0 && fsync(fd) == 0 ? 0 : -1;
    if (fd >= 0)
        (void)close(fd);
    free(d);
    return r;
}

/* Write a new file (never replacing one) durably. */
static int write_new(const char *path, const void *buf, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        cli_errorf(VT_PROG, path, "%s",
                   errno == EEXIST ? "exists (never replaced)" : strerror(errno));
        return CLI_EXIT_FAIL;
    }
    const uint8_t *p = buf;
    size_t left = len;
    int err = 0;
    while (left > 0 && !err) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            err = w < 0 ? errno : EIO;
        else {
            p += w;
            left -= (size_t)w;
        }
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && sync_dir_of(path) != 0)
        err = errno;
    if (err) {
        cli_errorf(VT_PROG, path, "%s", strerror(err));
        (void)unlink(path);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

int vt_cmd_keygen(const vt_cmd *cmd, vt_opts *o)
{
    if (!o->secret || !o->public_key)
        return vt_usage_error(cmd, "give both --secret F and --public F");
    uint8_t pk[VD_X25519_BYTES];
    char hex[2 * VD_X25519_BYTES + 2];
    uint8_t *sk = vd_secret_alloc(VD_X25519_BYTES);
    int rc = 0;
    if (!sk) {
        cli_errorf(VT_PROG, NULL, "cannot allocate guarded memory for a secret");
        return CLI_EXIT_FAIL;
    }
    vd_err e = vd_keypair_generate(pk, sk);
    if (e != VD_OK) {
        rc = cli_fail(VT_PROG, NULL, e, "while generating a key pair");
        goto out;
    }
    for (unsigned i = 0; i < VD_X25519_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", pk[i]);
    hex[2 * VD_X25519_BYTES] = '\n';
    hex[2 * VD_X25519_BYTES + 1] = 0;
    rc = write_new(o->secret, sk, VD_X25519_BYTES, 0600);
    if (rc == 0) {
        rc = write_new(o->public_key, hex, 2 * VD_X25519_BYTES + 1, 0644);
        if (rc != 0)
            (void)unlink(o->secret); /* a pair or nothing */
    }
out:
    vd_secret_free(sk);
    return rc;
}

/* ---- anchor init ------------------------------------------------------------------- */

int vt_cmd_anchor_init(const vt_cmd *cmd, vt_opts *o)
{
    if (!o->keys.anchor)
        return vt_usage_error(cmd, "--anchor F or --anchor tpm:NVINDEX is required");
    int tpm = cli_anchor_is_tpm(o->keys.anchor);
    if (!tpm && access(o->keys.anchor, F_OK) == 0) {
        cli_errorf(VT_PROG, o->keys.anchor,
                   "exists (anchor init only makes a new anchor file)");
        return CLI_EXIT_FAIL;
    }
    cli_image ci;
    /* The writable open binds the image to the new anchor (R7): the file
     * starts at 0, a TPM index is defined (or adopted) with the image's
     * authorization, and the image's epoch jumps to the counter. */
    int rc = cli_image_open(VT_PROG, o->pos[0], &o->keys,
                            CLI_OPEN_ANCHOR_CREATE | CLI_OPEN_ANCHOR_BIND, 0, &ci);
    if (rc) {
        if (!tpm && rc != CLI_EXIT_USAGE)
            (void)unlink(o->keys.anchor); /* made by this call, bound to nothing */
        return rc;
    }
    vd_image_info info;
    vd_err e = vd_image_info_get(ci.img, &info);
    if (e != VD_OK)
        rc = cli_fail(VT_PROG, o->pos[0], e, NULL);
    rc = vt_close(o, &ci, rc);
    if (rc == 0 && !o->quiet)
        printf("%s: anchor %s at epoch %llu\n", o->pos[0], o->keys.anchor,
               (unsigned long long)info.epoch);
    return rc;
}
