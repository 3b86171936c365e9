/* Reading secrets for the KEY OPTIONS: key files, passphrase files (or
 * stdin), a passphrase typed on the terminal without echo, X25519 identity
 * and public-key files. Everything lands in guarded memory (R6) and is
 * wiped by cli_secret_wipe; nothing is ever taken from the command line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

#define PASSPHRASE_MAX 1024u /* bytes; longer input is refused, not cut */

int cli_keyopts_handle(cli_keyopts *k, int c, const char *arg)
{
    switch (c) {
    case CLI_OPT_KEY_FILE: k->key_file = arg; return 1;
    case CLI_OPT_PASSPHRASE_FILE: k->passphrase_file = arg; return 1;
    case CLI_OPT_IDENTITY: k->identity = arg; return 1;
    case CLI_OPT_ANCHOR: k->anchor = arg; return 1;
    case CLI_OPT_ANCHOR_EXPLICIT: k->anchor_explicit = 1; return 1;
    case CLI_OPT_TPM_TCTI: k->tpm_tcti = arg; return 1;
    default: return 0;
    }
}

int cli_keyopts_has_secret(const cli_keyopts *k)
{
    return k->key_file || k->passphrase_file || k->identity;
}

void cli_secret_wipe(cli_secret *s)
{
    vd_secret_free(s->buf);
    memset(s, 0, sizeof *s);
}

static int secret_init(const char *prog, cli_secret *s, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->buf = vd_secret_alloc(cap);
    if (!s->buf) {
        cli_errorf(prog, NULL, "cannot allocate guarded memory for a secret");
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* The secret is out->buf[0, len), of slot type t. */
static int secret_ready(cli_secret *out, vd_slot_type t, size_t len)
{
    out->u.type = t;
    out->u.secret = out->buf;
    out->u.len = len;
    return 0;
}

/* Read at most cap bytes of fd into buf; *len = count; 1 if more was left. */
static int read_fd(int fd, uint8_t *buf, size_t cap, size_t *len, int *more)
{
    size_t got = 0;
    *more = 0;
    for (;;) {
        uint8_t extra;
        uint8_t *dst = got < cap ? buf + got : &extra;
        size_t want = got < cap ? cap - got : 1;
        ssize_t r = read(fd, dst, want);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno;
        if (r == 0)
            break;
        if (dst == &extra) {
            *more = 1;
            break;
        }
        got += (size_t)r;
    }
    *len = got;
    return 0;
}

/* The whole file (up to cap bytes) into s->buf. */
static int slurp(const char *prog, const char *path, size_t cap, cli_secret *s,
                 size_t *len, int *more)
{
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        cli_errorf(prog, path, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    int rc = secret_init(prog, s, cap);
    if (rc == 0) {
        int err = read_fd(fd, s->buf, cap, len, more);
        if (err) {
            cli_errorf(prog, path, "%s", strerror(err));
            rc = CLI_EXIT_FAIL;
        }
    }
    if (fd != STDIN_FILENO)
        (void)close(fd);
    if (rc != 0)
        cli_secret_wipe(s);
    return rc;
}

int cli_secret_keyfile(const char *prog, const char *path, cli_secret *out)
{
    size_t len;
    int more;
    int rc = slurp(prog, path, VD_KEYFILE_BYTES, out, &len, &more);
    if (rc)
        return rc;
    if (len != VD_KEYFILE_BYTES || more) {
        cli_errorf(prog, path, "not a key file (a key file holds exactly %u bytes)",
                   VD_KEYFILE_BYTES);
        cli_secret_wipe(out);
        return CLI_EXIT_FAIL;
    }
    return secret_ready(out, VD_SLOT_KEYFILE, len);
}

/* The passphrase is the first line (without its "\n" or "\r\n"), so files
 * written by echo and editors work; a file without a newline is taken
 * whole. */
int cli_secret_passphrase_file(const char *prog, const char *path, cli_secret *out)
{
    size_t len;
    int more;
    int rc = slurp(prog, path, PASSPHRASE_MAX + 2, out, &len, &more);
    if (rc)
        return rc;
    uint8_t *nl = memchr(out->buf, '\n', len);
    if (nl)
        len = (size_t)(nl - out->buf);
    else if (more) {
        cli_errorf(prog, path, "passphrase longer than %u bytes", PASSPHRASE_MAX);
        cli_secret_wipe(out);
        return CLI_EXIT_FAIL;
    }
    if (len > 0 && out->buf[len - 1] == '\r')
        len--;
    if (len == 0 || len > PASSPHRASE_MAX) {
        cli_errorf(prog, path, len == 0 ? "empty passphrase" : "passphrase longer than %u bytes",
                   PASSPHRASE_MAX);
        cli_secret_wipe(out);
        return CLI_EXIT_FAIL;
    }
    return secret_ready(out, VD_SLOT_PASSPHRASE, len);
}

/* One line from the terminal with echo off; the terminal is restored on
 * every path. Returns the length, or -1. */
static long tty_read_line(int fd, const char *prompt, uint8_t *buf, size_t cap)
{
    struct termios old, quiet;
    if (tcgetattr(fd, &old) != 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    quiet.c_lflag |= ICANON;
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* the prompt is a courtesy; reading still works */
    }
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0)
        return -1;
    size_t len = 0;
    long rc = 0;
    for (;;) {
        uint8_t c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || c == '\n')
            break;
        if (len < cap)
            buf[len] = c;
        len++;
    }
    sodium_memzero(&quiet, sizeof quiet);
    (void)tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
        /* cosmetic */
    }
    rc = len > cap ? -2 : (long)len;
    return rc;
}

int cli_secret_passphrase_prompt(const char *prog, const char *prompt, int confirm,
                                 cli_secret *out)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0 || !isatty(fd)) {
        if (fd >= 0)
            (void)close(fd);
        cli_errorf(prog, NULL, "no key given and no terminal to ask for a passphrase "
                               "(use --key-file, --passphrase-file or --identity)");
        return CLI_EXIT_USAGE;
    }
    int rc = secret_init(prog, out, PASSPHRASE_MAX);
    cli_secret again = {0};
    if (rc == 0 && confirm)
        rc = secret_init(prog, &again, PASSPHRASE_MAX);
    long len = -1, len2 = -1;
    if (rc == 0) {
        len = tty_read_line(fd, prompt, out->buf, PASSPHRASE_MAX);
        if (len == 0 || len < 0) {
            cli_errorf(prog, NULL, len == 0 ? "empty passphrase"
                                   : len == -2 ? "passphrase too long"
                                               : "cannot read the terminal");
            rc = CLI_EXIT_FAIL;
        }
    }
    if (rc == 0 && confirm) {
        len2 = tty_read_line(fd, "Repeat the passphrase: ", again.buf, PASSPHRASE_MAX);
        if (len2 != len || sodium_memcmp(out->buf, again.buf, (size_t)len) != 0) {
            cli_errorf(prog, NULL, "the passphrases do not match");
            rc = CLI_EXIT_FAIL;
        }
    }
    (void)close(fd);
    cli_secret_wipe(&again);
    if (rc != 0) {
        cli_secret_wipe(out);
        return rc;
    }
    return secret_ready(out, VD_SLOT_PASSPHRASE, (size_t)len);
}

/* 32 raw bytes, or 64 hex digits with optional trailing whitespace. */
static int key32(const char *prog, const char *path, const char *what, cli_secret *out)
{
    size_t len;
    int more;
    int rc = slurp(prog, path, 2 * 32 + 4, out, &len, &more);
    if (rc)
        return rc;
    if (!more && len == 32)
        return 0;
    size_t n = len;
    while (n > 0 && (out->buf[n - 1] == '\n' || out->buf[n - 1] == '\r' ||
                     out->buf[n - 1] == ' '))
        n--;
    if (!more && n == 64) {
        cli_secret hex;
        size_t bin = 0;
        if (secret_init(prog, &hex, 64) != 0) {
            cli_secret_wipe(out);
            return CLI_EXIT_FAIL;
        }
        memcpy(hex.buf, out->buf, 64);
        int bad = sodium_hex2bin(out->buf, 32, (const char *)hex.buf, 64, NULL, &bin, NULL);
        cli_secret_wipe(&hex);
        if (bad == 0 && bin == 32)
            return 0;
    }
    cli_errorf(prog, path, "not %s (32 bytes, or 64 hex digits)", what);
    cli_secret_wipe(out);
    return CLI_EXIT_FAIL;
}

/* Both X25519 keys of a SEALED slot: the secret one opens, the public
 * one adds. */
static int sealed_key(const char *prog, const char *path, const char *what,
                      cli_secret *out)
{
    int rc = key32(prog, path, what, out);
    return rc ? rc : secret_ready(out, VD_SLOT_SEALED, VD_X25519_BYTES);
}

int cli_secret_identity(const char *prog, const char *path, cli_secret *out)
{
    return sealed_key(prog, path, "an X25519 secret key", out);
}

int cli_secret_pubkey(const char *prog, const char *path, cli_secret *out)
{
    return sealed_key(prog, path, "an X25519 public key", out);
}

int cli_secret_get(const char *prog, const char *image, const cli_keyopts *k,
                   int confirm, cli_secret *out)
{
    int n = !!k->key_file + !!k->passphrase_file + !!k->identity;
    if (n > 1) {
        cli_errorf(prog, NULL, "give only one of --key-file, --passphrase-file, --identity");
        return CLI_EXIT_USAGE;
    }
    if (k->key_file)
        return cli_secret_keyfile(prog, k->key_file, out);
    if (k->passphrase_file)
        return cli_secret_passphrase_file(prog, k->passphrase_file, out);
    if (k->identity)
        return cli_secret_identity(prog, k->identity, out);
    char prompt[512];
    snprintf(prompt, sizeof prompt, "%s for %s: ",
             confirm ? "New passphrase" : "Passphrase", image ? image : "the image");
    return cli_secret_passphrase_prompt(prog, prompt, confirm, out);
}

int cli_secret_copy(const char *prog, const cli_secret *in, cli_secret *out)
{
    int rc = secret_init(prog, out, in->u.len ? in->u.len : 1);
    if (rc)
        return rc;
    memcpy(out->buf, in->u.secret, in->u.len);
    return secret_ready(out, in->u.type, in->u.len);
}

int cli_secret_public_of(const char *prog, const cli_secret *identity, cli_secret *out)
{
    int rc = secret_init(prog, out, VD_X25519_BYTES);
    if (rc)
        return rc;
    if (identity->u.len != VD_X25519_BYTES ||
        crypto_scalarmult_base(out->buf, identity->u.secret) != 0) {
        cli_errorf(prog, NULL, "not an X25519 secret key");
        cli_secret_wipe(out);
        return CLI_EXIT_FAIL;
    }
    return secret_ready(out, VD_SLOT_SEALED, VD_X25519_BYTES);
}
