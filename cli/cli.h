/* vdcli — what every vdisk tool shares (mkvhd, vhdtool, vhdfsck, vhdmount):
 * the exit-status table, one-line error messages, the KEY OPTIONS of
 * DESIGN §7, reading secrets (no echo on a terminal, files or stdin for
 * scripts, never the command line), opening an image with its anchor,
 * sizes with K/M/G/T suffixes, and a progress line for long work.
 *
 * Tools are thin (STYLE "Tools are thin"): every decision about bytes is in
 * the library; this layer only turns arguments into library calls and
 * library errors into messages and exit statuses. */
#ifndef VD_CLI_H
#define VD_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "vdisk/fs.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdisk/vdisk.h"

/* Exit statuses of mkvhd, vhdtool and vhdmount (DESIGN §7). vhdfsck uses
 * fsck(8)'s instead (fsck/). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,      /* I/O, not found, full, ... */
    CLI_EXIT_USAGE = 2,     /* bad command line */
    CLI_EXIT_WRONG_KEY = 3, /* the secret opens no key slot */
    CLI_EXIT_INTEGRITY = 4, /* authentication, rollback or corrupt structure */
    /* The freshness anchor (--anchor), never reported as a rollback: */
    CLI_EXIT_ANCHOR_MISMATCH = 5,    /* it belongs to another image (R7) */
    CLI_EXIT_ANCHOR_UNREACHABLE = 6, /* the TPM does not answer */
    CLI_EXIT_ANCHOR_MISSING = 7,     /* no such TPM NV index */
    CLI_EXIT_ANCHOR_DENIED = 8       /* wrong TPM authorization */
};

/* The one table from vd_err to exit status. */
int cli_exit_status(vd_err e);

/* "prog: subject: message\n" on stderr (subject may be NULL). The message
 * is printf-formatted; keep it to one line. */
void cli_errorf(const char *prog, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "prog: subject: <vd_strerror(e)>[ (detail)]" and returns
 * cli_exit_status(e). detail may be NULL. */
int cli_fail(const char *prog, const char *subject, vd_err e, const char *detail);
/* What a failed open means (a wrong key for a slot of type t, rollback,
 * a damaged header...), for cli_fail's detail; NULL when nothing is to be
 * added (opendetail.c, compiled into the nbdkit plugin too). */
const char *cli_open_detail(vd_err e, vd_slot_type t);
/* As cli_fail, for an error that came with an errno from the host
 * (vd_host_file_open & co): the errno's text is more useful there. */
int cli_fail_errno(const char *prog, const char *subject, vd_err e, int sys_errno);

/* ---- KEY OPTIONS ----------------------------------------------------------
 * Long options every tool accepts; add CLI_KEY_LONGOPTS to a getopt_long
 * table and pass each returned value to cli_keyopts_handle. */
enum {
    CLI_OPT_KEY_FILE = 0x1000,
    CLI_OPT_PASSPHRASE_FILE,
    CLI_OPT_IDENTITY,
    CLI_OPT_ANCHOR,
    CLI_OPT_ANCHOR_EXPLICIT,
    CLI_OPT_TPM_TCTI
};
#define CLI_KEY_LONGOPTS                                                      \
    {"key-file", required_argument, NULL, CLI_OPT_KEY_FILE},                  \
        {"passphrase-file", required_argument, NULL, CLI_OPT_PASSPHRASE_FILE}, \
        {"identity", required_argument, NULL, CLI_OPT_IDENTITY},              \
        {"anchor", required_argument, NULL, CLI_OPT_ANCHOR},                  \
        {"anchor-on-sync", no_argument, NULL, CLI_OPT_ANCHOR_EXPLICIT},        \
        {"tpm-tcti", required_argument, NULL, CLI_OPT_TPM_TCTI}

#define CLI_KEY_USAGE                                                          \
    "Key options (one of; without any, a passphrase is asked on the terminal):\n" \
    "  --key-file F          a 32-byte key file\n"                             \
    "  --passphrase-file F   the passphrase is the first line of F ('-' = stdin)\n" \
    "  --identity F          X25519 secret key of a --seal-to slot\n"          \
    "Freshness (rollback across restarts, docs/SECURITY.md R4):\n"            \
    "  --anchor F            monotonic counter file; must exist to open\n"     \
    "  --anchor tpm:NVINDEX  a TPM 2.0 NV counter (e.g. tpm:0x01500020)\n"     \
    "  --tpm-tcti STR        how to reach the TPM (default: $TPM2TOOLS_TCTI,\n" \
    "                        e.g. device:/dev/tpmrm0, swtpm:path=SOCKET)\n"     \
    "  --anchor-on-sync      advance it only on explicit syncs (default: every\n" \
    "                        commit for a file, always for a TPM)\n"

typedef struct cli_keyopts {
    const char *key_file;
    const char *passphrase_file;
    const char *identity;
    const char *anchor;   /* FILE or tpm:NVINDEX */
    const char *tpm_tcti; /* --tpm-tcti */
    int anchor_explicit;
    int quiet; /* no "freshness not guaranteed" note */
} cli_keyopts;

/* 1 if c was a key option (stored), 0 otherwise. Giving two different
 * secrets is reported at cli_secret_get. */
int cli_keyopts_handle(cli_keyopts *k, int c, const char *arg);
/* Whether any secret option was given. */
int cli_keyopts_has_secret(const cli_keyopts *k);

/* A secret read for unlocking or for adding a slot, in guarded memory. */
typedef struct cli_secret {
    vd_unlock u;
    uint8_t *buf; /* vd_secret_alloc'ed; u.secret points into it */
} cli_secret;

/* Read the secret the options name; with none, prompt for a passphrase on
 * the controlling terminal without echo (confirm != 0: ask twice, for new
 * passphrases). No terminal and no option: usage error. Returns an exit
 * status (0 = ok), having printed the error. */
int cli_secret_get(const char *prog, const char *image, const cli_keyopts *k,
                   int confirm, cli_secret *out);
/* Single sources, for tools that take extra secrets (mkvhd, keyslot add). */
int cli_secret_keyfile(const char *prog, const char *path, cli_secret *out);
int cli_secret_passphrase_file(const char *prog, const char *path, cli_secret *out);
int cli_secret_passphrase_prompt(const char *prog, const char *prompt, int confirm,
                                 cli_secret *out);
int cli_secret_identity(const char *prog, const char *path, cli_secret *out);
/* A --seal-to public key: 64 hex digits (one line) or 32 raw bytes. */
int cli_secret_pubkey(const char *prog, const char *path, cli_secret *out);
void cli_secret_wipe(cli_secret *s);
/* A copy of a secret (guarded memory). */
int cli_secret_copy(const char *prog, const cli_secret *in, cli_secret *out);
/* The public key of an --identity secret key: a SEALED secret for adding a
 * slot sealed to it (vhdtool rekey keeps the identity's slot). */
int cli_secret_public_of(const char *prog, const cli_secret *identity, cli_secret *out);

/* ---- The freshness anchor (--anchor FILE | tpm:NVINDEX) -------------------- */
int cli_anchor_is_tpm(const char *spec);
/* --tpm-tcti, else $TPM2TOOLS_TCTI, else NULL (tpm2-tss's default). */
const char *cli_anchor_tcti(const cli_keyopts *k);
/* Open the anchor k->anchor names. CLI_OPEN_ANCHOR_CREATE in flags: a
 * missing file is created; a TPM index is defined (or adopted) when the
 * image's authorization reaches it. Returns an exit status, having printed
 * the error (unreachable TPM = 6, "built without TPM support" = 1). */
int cli_anchor_open(const char *prog, const cli_keyopts *k, int flags, vd_anchor **out);
void cli_anchor_close(vd_anchor *a);
/* The detail of a TPM anchor's last failure, or "". */
const char *cli_anchor_why(const vd_anchor *a);
/* VD_ANCHOR_EXPLICIT_SYNC for --anchor-on-sync and for every TPM anchor. */
vd_anchor_mode cli_anchor_mode(const cli_keyopts *k);
/* Whether e is one of the anchor's own errors (exit statuses 5-8). */
int cli_is_anchor_err(vd_err e);
/* "prog: image: ANCHOR: message (detail)"; returns the exit status. */
int cli_anchor_fail(const char *prog, const char *image, const cli_keyopts *k,
                    const vd_anchor *a, vd_err e);

/* ---- Opening an image ------------------------------------------------------ */
typedef struct cli_image {
    vd_host *host;
    vd_anchor *anchor;
    const char *anchor_name; /* --anchor's argument, for messages */
    vd_image *img;
    vd_fs *fs; /* after cli_fs_mount */
    vd_err err; /* why cli_image_open failed in the library, else VD_OK */
    int quiet;  /* the tool's -q: no notes (cli_fs_mount's unclean note) */
} cli_image;

enum {
    CLI_OPEN_READONLY = 1 << 0,
    CLI_OPEN_NOLOCK = 1 << 1,
    CLI_OPEN_ANCHOR_CREATE = 1 << 2, /* a missing --anchor file starts at the
                                        image's epoch, a TPM index is
                                        defined (vhdtool anchor init) */
    CLI_OPEN_ANCHOR_BIND = 1 << 3,   /* bind the image to this anchor
                                        (vd_open_opts.anchor_bind) */
    CLI_OPEN_PREFAULT = 1 << 4       /* the cache and commit buffers faulted
                                        in at open (VD_HOST_PREFAULT) */
};

/* Open IMAGE's host: a file path or an NBD URI (vd_host_open). Returns an
 * exit status, having printed one line with the cause; *err (may be NULL)
 * gets the library's error. Close with vd_host_close. */
int cli_host_open(const char *prog, const char *image, int hflags, vd_host **out,
                  vd_err *err);

/* Open the host file, the anchor (when --anchor was given; otherwise print
 * once that freshness across restarts is not guaranteed), read the secret
 * and unlock. cache_bytes 0 = library default. Returns an exit status,
 * having printed the error (wrong key = 3, rollback = 4, ...). */
int cli_image_open(const char *prog, const char *path, const cli_keyopts *k,
                   int flags, size_t cache_bytes, cli_image *out);
/* The image's lock is taken: if its holder is a vhdmount on its way out
 * (cli/mstate.h), note it (unless quiet) and wait until that daemon has
 * closed the image or died, at most CLI_LOCK_WAIT_SECONDS; returns 1 then
 * (the caller tries the lock again), 0 at once for any other holder. */
int cli_lock_wait(const char *prog, const char *path, int quiet);
/* Mount the FAT32 volume on an opened image (clock = the host's). A
 * volume the last session did not unmount is noted (unless quiet):
 * "IMAGE: not unmounted cleanly; last commit at epoch N". */
int cli_fs_mount(const char *prog, const char *path, cli_image *ci, int read_only);
/* That note alone, for tools that mount the volume themselves. */
void cli_unclean_note(const char *prog, const char *path, const cli_image *ci);
/* Unmount (if mounted), close the image (syncing a writable one), close
 * the anchor and the host. Returns an exit status (errors printed). */
int cli_image_close(const char *prog, const char *path, cli_image *ci);
/* As cli_image_close after a failure already reported: the close's own
 * errors are not printed (one line per failure) and only its status is
 * returned. */
int cli_image_close_quiet(cli_image *ci);

/* The host clock as a vd_clock_fn (ctx = vd_host *). */
int cli_clock(void *ctx, int64_t *ns);

/* ---- Sizes and progress ---------------------------------------------------- */
/* "64M", "1.5G", "4096", "2T", "100k": binary units (K = 1024). -1 on a
 * malformed or overflowing value. */
int cli_size_parse(const char *s, uint64_t *out);
/* "1.5 GiB" into buf (at least 16 bytes). */
const char *cli_size_format(uint64_t bytes, char *buf, size_t len);

typedef struct cli_progress {
    int enabled;        /* only on a terminal, not with -q */
    const char *what;   /* "copying", "verifying" ... */
    uint64_t total_bytes, total_items;
    uint64_t bytes, items;
    double start, last;
} cli_progress;

/* enabled when stderr is a terminal and !quiet. Totals may be 0 (unknown). */
void cli_progress_start(cli_progress *p, const char *what, uint64_t total_bytes,
                        uint64_t total_items, int quiet);
/* Add to the counters; redraws at most ~8 times a second. */
void cli_progress_add(cli_progress *p, uint64_t bytes, uint64_t items);
/* Clear the line. */
void cli_progress_end(cli_progress *p);

/* LC_CTYPE = UTF-8 (names in a volume are UTF-8; libarchive converts
 * tar header names through the locale). */
void cli_locale_utf8(void);

/* Monotonic seconds. */
double cli_now(void);

/* Route SIGINT, SIGTERM and SIGHUP to on_signal (which should only set the
 * tool's sig_atomic_t flag, checked between chunks). 0, or -1. */
int cli_signals_catch(void (*on_signal)(int));

#endif
