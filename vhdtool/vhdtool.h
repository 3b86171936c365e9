/* vhdtool: the subcommands and what they share (argument parsing,
 * opening the image and mounting its volume). */
#ifndef VD_VHDTOOL_H
#define VD_VHDTOOL_H

#include <signal.h>

#include "cli.h"
#include "copy.h"

#define VT_PROG "vhdtool"

/* Options a subcommand may accept (vt_cmd.opts). */
enum {
    VT_O_KEYS = 1 << 0,      /* KEY OPTIONS */
    VT_O_JSON = 1 << 1,      /* --json */
    VT_O_LONG = 1 << 2,      /* -l */
    VT_O_RECURSIVE = 1 << 3, /* -R (ls) / -r (rm) */
    VT_O_PARENTS = 1 << 4,   /* -p */
    VT_O_FORCE = 1 << 5,     /* --force */
    VT_O_NEWKEY =
        1 << 6, /* --new-key-file/--new-passphrase-file/--new-passphrase/--seal-to */
    VT_O_KEYGEN = 1 << 7, /* --secret/--public */
    VT_O_SPECIAL = 1 << 8, /* --skip-special/--refuse-special */
    VT_O_CLASH = 1 << 9,   /* --on-clash */
    VT_O_DEREF = 1 << 10,  /* --dereference */
    VT_O_TAR = 1 << 11,    /* --tar */
    VT_O_REKEY = 1 << 12   /* --keep-key-file/--keep-passphrase-file/--drop-unlock */
};

#define VT_KEEP_MAX 8 /* key slots */

typedef struct vt_opts {
    cli_keyopts keys;
    int quiet, json, long_fmt, recursive, parents, force;
    cli_special policy;
    cli_clash clash;
    int deref, tar;
    const char *new_key_file, *new_passphrase_file, *seal_to;
    int new_passphrase;
    const char *secret, *public_key;
    struct {
        const char *path;
        int passphrase; /* --keep-passphrase-file (else --keep-key-file) */
    } keep[VT_KEEP_MAX];
    int nkeep, drop_unlock;
    int npos;
    char **pos;
    /* Set by SIGINT/SIGTERM/SIGHUP: long copies stop and clean up. */
    const volatile sig_atomic_t *cancel;
} vt_opts;

typedef struct vt_cmd {
    const char *name;
    int (*run)(const struct vt_cmd *cmd, vt_opts *o);
    int opts;
    int min_pos, max_pos;
    const char *usage; /* the synopsis after "vhdtool " */
    const char *help;  /* what it does, and its own options */
} vt_cmd;

/* Parse argv (argv[0] is the subcommand) into o; returns -1 to go on, or
 * an exit status (help printed = 0, usage error = 2). */
int vt_parse(const vt_cmd *cmd, int argc, char **argv, vt_opts *o);
int vt_usage_error(const vt_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Open IMAGE (o->pos[0]) with the key options and mount its volume. */
int vt_open_fs(vt_opts *o, int read_only, cli_image *ci);
/* Open IMAGE's file for reading its public header and key slots only, without
 * the lock, so info and keyslot list work while a writer (vhdmount) has it.
 * Returns an exit status (the error printed). */
int vt_open_public(const char *image, vd_host **host);
/* Close, folding the close status into rc (the first error wins). */
int vt_close(vt_opts *o, cli_image *ci, int rc);

/* Replace a finished temporary file by rename: with force any existing
 * dst, without it only a missing one. Returns an exit status. */
int vt_install(const char *tmp, const char *dst, int force);

int vt_cmd_info(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_ls(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_cat(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_rm(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_mkdir(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_resize(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_mv(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_get(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_put(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_export(const vt_cmd *cmd, vt_opts *o);
/* export --tar (cmd_export_tar.c). */
int vt_export_tar(vt_opts *o);
int vt_cmd_keyslot_list(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_keyslot_add(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_keyslot_remove(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_keygen(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_anchor_init(const vt_cmd *cmd, vt_opts *o);
int vt_cmd_rekey(const vt_cmd *cmd, vt_opts *o);

#endif
