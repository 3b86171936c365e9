/* rekey: rotate the master key (vd_image_rekey; docs/SECURITY.md R8).
 * This layer only gathers the secrets of the new key slots and shows
 * progress; the library does the rotation, and resumes it when run again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vhdtool.h"

typedef struct rk_progress {
    cli_progress p;
    uint64_t last;
    const volatile sig_atomic_t *cancel;
} rk_progress;

static int on_progress(void *ctx, uint64_t done, uint64_t total)
{
    rk_progress *r = ctx;
    (void)total;
    cli_progress_add(&r->p, (done - r->last) * VD_BLOCK_SIZE, 0);
    r->last = done;
    return r->cancel && *r->cancel;
}

/* The secrets of the new slots, in slot order: the unlocking one (unless
 * --drop-unlock), each --keep-*, then the one --new-* names. */
typedef struct rk_slots {
    cli_secret sec[VD_KEYSLOTS];
    vd_rekey_slot slot[VD_KEYSLOTS];
    unsigned n;
    int made_key; /* --new-key-file created (removed on failure) */
} rk_slots;

static void slots_wipe(rk_slots *s)
{
    for (unsigned i = 0; i < VD_KEYSLOTS; i++)
        cli_secret_wipe(&s->sec[i]);
    memset(s, 0, sizeof *s);
}

static int slot_push(rk_slots *s, const vt_cmd *cmd)
{
    if (s->n == VD_KEYSLOTS)
        return vt_usage_error(cmd, "more than %d key slots", VD_KEYSLOTS);
    return 0;
}

static int gather(const vt_cmd *cmd, vt_opts *o, const cli_secret *unlock, rk_slots *s)
{
    int rc = 0;
    if (!o->drop_unlock) {
        cli_secret *d = &s->sec[s->n];
        /* A sealed slot is remade for the identity's public key. */
        rc = unlock->u.type == VD_SLOT_SEALED
                 ? cli_secret_public_of(VT_PROG, unlock, d)
                 : cli_secret_copy(VT_PROG, unlock, d);
        if (rc)
            return rc;
        s->n++;
    }
    for (int i = 0; i < o->nkeep && rc == 0; i++) {
        rc = slot_push(s, cmd);
        if (rc == 0)
            rc = o->keep[i].passphrase
                     ? cli_secret_passphrase_file(VT_PROG, o->keep[i].path, &s->sec[s->n])
                     : cli_secret_keyfile(VT_PROG, o->keep[i].path, &s->sec[s->n]);
        if (rc == 0)
            s->n++;
    }
    int nnew = !!o->new_key_file + !!o->new_passphrase_file + !!o->new_passphrase +
               !!o->seal_to;
    if (rc == 0 && nnew > 1)
        rc = vt_usage_error(cmd, "give at most one of --new-key-file, "
                                 "--new-passphrase-file, --new-passphrase, --seal-to");
    if (rc == 0 && nnew)
        rc = slot_push(s, cmd);
    if (rc == 0 && o->new_passphrase_file)
        rc = cli_secret_passphrase_file(VT_PROG, o->new_passphrase_file, &s->sec[s->n]);
    else if (rc == 0 && o->seal_to)
        rc = cli_secret_pubkey(VT_PROG, o->seal_to, &s->sec[s->n]);
    else if (rc == 0 && o->new_passphrase) {
        char prompt[512];
        snprintf(prompt, sizeof prompt, "New passphrase for %s: ", o->pos[0]);
        rc = cli_secret_passphrase_prompt(VT_PROG, prompt, 1, &s->sec[s->n]);
    } else if (rc == 0 && o->new_key_file) {
        cli_secret *d = &s->sec[s->n];
        d->buf = vd_secret_alloc(VD_KEYFILE_BYTES);
        int sys = 0;
        vd_err e = d->buf ? vd_keyfile_create(o->new_key_file, d->buf, &sys) : VD_ERR_NOMEM;
        if (e != VD_OK) {
            if (sys == EEXIST)
                cli_errorf(VT_PROG, o->new_key_file,
                           "exists (a new key file never replaces one)");
            else
                cli_fail_errno(VT_PROG, o->new_key_file, e, sys);
            rc = CLI_EXIT_FAIL;
        } else {
            s->made_key = 1;
            d->u = (vd_unlock){VD_SLOT_KEYFILE, d->buf, VD_KEYFILE_BYTES};
        }
    }
    if (rc == 0 && nnew)
        s->n++;
    if (rc == 0 && s->n == 0)
        rc = vt_usage_error(cmd, "--drop-unlock leaves no key slot: keep or add one");
    for (unsigned i = 0; i < s->n; i++)
        s->slot[i].secret = s->sec[i].u;
    return rc;
}

int vt_cmd_rekey(const vt_cmd *cmd, vt_opts *o)
{
    const char *image = o->pos[0];
    if (o->keys.anchor && cli_anchor_is_tpm(o->keys.anchor)) {
        cli_errorf(VT_PROG, image,
                   "%s: rekey with a TPM anchor is not supported (the index's "
                   "authorization is derived from the master key): bind a file "
                   "anchor (vhdtool anchor init --anchor FILE), rekey with it, then "
                   "bind a new index with vhdtool anchor init",
                   o->keys.anchor);
        return CLI_EXIT_FAIL;
    }
    vd_host *host = NULL;
    vd_anchor *anchor = NULL;
    cli_secret unlock = {0};
    rk_slots slots;
    memset(&slots, 0, sizeof slots);
    int called = 0;
    vd_rekey_info info = {0};
    int rc = cli_host_open(VT_PROG, image, 0, &host, NULL);
    if (rc)
        return rc;
    if (o->keys.anchor)
        rc = cli_anchor_open(VT_PROG, &o->keys, 0, &anchor);
    else if (!o->quiet)
        cli_errorf(VT_PROG, image, "note: no --anchor given; freshness across restarts "
                                   "is not guaranteed (an old copy of the image would open)");
    if (rc == 0)
        rc = cli_secret_get(VT_PROG, image, &o->keys, 0, &unlock);
    if (rc == 0)
        rc = gather(cmd, o, &unlock, &slots);
    if (rc)
        goto out;

    vd_image_info pi;
    vd_err e = vd_image_probe(host, &pi);
    rk_progress prog = {.cancel = o->cancel};
    cli_progress_start(&prog.p, "re-encrypting", e == VD_OK ? pi.nblocks * VD_BLOCK_SIZE : 0,
                       0, o->quiet);
    vd_open_opts oo = {.anchor = anchor, .anchor_mode = cli_anchor_mode(&o->keys)};
    vd_rekey_opts ro = {.slots = slots.slot, .nslots = slots.n, .open = &oo,
                        .progress = on_progress, .progress_ctx = &prog};
    called = 1;
    double t0 = cli_now();
    e = vd_image_rekey(host, &unlock.u, &ro, &info);
    double secs = cli_now() - t0;
    cli_progress_end(&prog.p);
    if (e == VD_ERR_REKEY) {
        cli_errorf(VT_PROG, image, "interrupted after %llu blocks; the rotation is in "
                                   "progress (read-only opens work): run vhdtool rekey "
                                   "again to finish it",
                   (unsigned long long)info.blocks);
        rc = CLI_EXIT_FAIL;
    } else if (e != VD_OK && cli_is_anchor_err(e)) {
        if (e == VD_ERR_ANCHOR_MISMATCH && !anchor)
            cli_errorf(VT_PROG, image, "%s (the image is bound to a freshness anchor: "
                                       "give it with --anchor)", vd_strerror(e));
        else
            (void)cli_anchor_fail(VT_PROG, image, &o->keys, anchor, e);
        rc = cli_exit_status(e);
    } else if (e != VD_OK) {
        const char *why = NULL;
        if (e == VD_ERR_WRONG_KEY)
            why = "no key slot opens with this secret (after the key slots were "
                  "replaced, only the new secrets open the image)";
        else if (e == VD_ERR_UNSUPPORTED)
            why = "not with an anchor whose authorization derives from the key";
        rc = cli_fail(VT_PROG, image, e, why);
    }
    if (rc == 0 && info.resumed && slots.made_key) {
        (void)unlink(o->new_key_file); /* the rotation had its slots already */
        if (!o->quiet)
            cli_errorf(VT_PROG, o->new_key_file, "note: not used (removed): the "
                                                  "rotation resumed has its key slots");
    }
    if (rc == 0 && !o->quiet) {
        if (info.resumed)
            printf("%s: finished an interrupted key rotation (its key slots were already "
                   "in place; slot options were not used)\n", image);
        else
            printf("%s: new master key; %u key slot%s\n", image, slots.n,
                   slots.n == 1 ? "" : "s");
        char rate[16];
        printf("%s: re-encrypted %llu blocks in %.2f s (%s/s), epoch %llu\n", image,
               (unsigned long long)info.blocks, secs,
               cli_size_format(secs > 0 ? (uint64_t)((double)info.blocks * VD_BLOCK_SIZE / secs)
                                        : 0,
                               rate, sizeof rate),
               (unsigned long long)info.epoch);
    }
out:
    /* Once the new slots may be on disk, the new key file may be the
     * only way in. */
    if (rc != 0 && slots.made_key && !(called && info.slots_written))
        (void)unlink(o->new_key_file);
    slots_wipe(&slots);
    cli_secret_wipe(&unlock);
    if (anchor)
        cli_anchor_close(anchor);
    vd_host_close(host);
    return rc;
}
