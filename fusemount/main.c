/* vhdmount: mount an image as a directory (DESIGN §7).
 *
 * Everything that can fail for a reason the user must see happens before
 * the daemon detaches, so the error reaches the terminal and the exit
 * status is right: option parsing (2), the secret and the unlock (3 wrong
 * key, 4 rollback or integrity), the volume and the kernel mount (1). The
 * image's flock is taken at open and its descriptor crosses the fork of
 * detach() (flock(2) locks belong to the open file description), so
 * the lock lasts as long as the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "vhdmount.h"

static const char PROG[] = "vhdmount";

enum { OPT_CACHE_MB = 0x2000 };

static const struct option LONGOPTS[] = {
    CLI_KEY_LONGOPTS,
    {"cache-mb", required_argument, NULL, OPT_CACHE_MB},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *to)
{
    fprintf(
        to,
        "Usage: %s [-f] [-d] [-q] [-o OPT[,OPT...]] [KEY OPTIONS] [--cache-mb N] IMAGE MOUNTPOINT\n"
        "       %s -u [-q] MOUNTPOINT\n"
        "Mount a vdisk image as a directory.\n"
        "  -f             stay in the foreground (log to stderr, not syslog)\n"
        "  -d             FUSE debug output (implies -f)\n"
        "  -q             no notes (errors are still printed)\n"
        "  -o OPTS        commit=SECONDS (periodic commits, default 5; 0 = only at\n"
        "                 fsync and unmount), nowriteback (no kernel write-back\n"
        "                 cache: write errors at write(), not at fsync/close),\n"
        "                 threads=N (requests served at once, 1..16, default 4),\n"
        "                 ro, allow_other and the other options\n"
        "                 of mount.fuse3(8); vfat's uid=N, gid=N, umask=OCT,\n"
        "                 dmask=OCT, fmask=OCT, showexec, quiet (modes: see vhdmount(8))\n"
        "  --cache-mb N   image block cache in MiB (default 64); it and, writable,\n"
        "                 two commit buffers of 7N/16 MiB are resident from the mount on\n"
        "  -u             unmount MOUNTPOINT and wait until the image is synced,\n"
        "                 closed and unlocked; exit with the daemon's close status\n" CLI_KEY_USAGE,
        PROG, PROG);
}

typedef struct mount_args {
    const char *image;
    char mountpoint[PATH_MAX];
    char anchor[PATH_MAX];
    char abs_image[PATH_MAX]; /* "" when realpath failed (reported at open) */
    cli_keyopts keys;
    int foreground, debug, read_only, quiet, unmount;
    unsigned commit_secs; /* -o commit= */
    int no_writeback;     /* -o nowriteback */
    unsigned threads;     /* -o threads= */
    size_t cache_bytes;
    struct fuse_args fargs;
} mount_args;

/* fuse_opt splits -o values on ',' and takes '\' as an escape. */
static int opt_add_escaped(struct fuse_args *a, const char *key, const char *val)
{
    size_t n = strlen(key) + 2 * strlen(val) + 1;
    char *s = malloc(n);
    if (!s)
        return -1;
    char *p = stpcpy(s, key);
    for (; *val; val++) {
        if (*val == ',' || *val == '\\')
            *p++ = '\\';
        *p++ = *val;
    }
    *p = '\0';
    int r = fuse_opt_add_arg(a, "-o") != 0 || fuse_opt_add_arg(a, s) != 0 ? -1 : 0;
    free(s);
    return r;
}

/* Length of the option at p, up to an unescaped ',' (fuse_opt's rule). */
static size_t opt_len(const char *p)
{
    size_t n = 0;
    while (p[n] && p[n] != ',')
        n += (p[n] == '\\' && p[n + 1]) ? 2 : 1;
    return n;
}

/* A plain count in lo .. hi (commit=SECONDS, threads=N). */
static int count_parse(const char *v, size_t n, unsigned lo, unsigned hi, unsigned *out)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* One -o list: vhdmount's own options (commit=, nowriteback, threads=) are taken out, the rest
 * go to FUSE; ro/rw are noted on the way (the image is then opened
 * read-only too). Returns an exit status, or -1 to go on. */
static int opts_take(const char *list, mount_args *m)
{
    char *rest = malloc(strlen(list) + 1);
    if (!rest)
        return CLI_EXIT_FAIL;
    char *w = rest;
    for (const char *p = list; *p;) {
        size_t n = opt_len(p);
        if (n == 2 && strncmp(p, "ro", 2) == 0)
            m->read_only = 1;
        else if (n == 2 && strncmp(p, "rw", 2) == 0)
            m->read_only = 0;
        if (n == 11 && strncmp(p, "nowriteback", 11) == 0) {
            m->no_writeback = 1;
        } else if (n >= 7 && strncmp(p, "commit=", 7) == 0) {
            if (count_parse(p + 7, n - 7, 0, 86400, &m->commit_secs) != 0) {
                cli_errorf(PROG, NULL, "-o %.*s: not a number of seconds in 0..86400",
                           (int)n, p);
                free(rest);
                return CLI_EXIT_USAGE;
            }
        } else if (n >= 8 && strncmp(p, "threads=", 8) == 0) {
            if (count_parse(p + 8, n - 8, 1, VMNT_WGATE_MAX, &m->threads) != 0) {
                cli_errorf(PROG, NULL, "-o %.*s: not a number of threads in 1..%d", (int)n,
                           p, VMNT_WGATE_MAX);
                free(rest);
                return CLI_EXIT_USAGE;
            }
        } else if (n > 0) {
            if (w != rest)
                *w++ = ',';
            memcpy(w, p, n);
            w += n;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    *w = '\0';
    int rc = -1;
    if (w != rest && (fuse_opt_add_arg(&m->fargs, "-o") != 0 ||
                      fuse_opt_add_arg(&m->fargs, rest) != 0))
        rc = CLI_EXIT_FAIL;
    free(rest);
    return rc;
}

/* Returns -1 to go on, or an exit status. */
static int args_parse(int argc, char **argv, mount_args *m)
{
    uint64_t cache_mb = 64;
    m->commit_secs = 5; /* ext4's default */
    if (fuse_opt_add_arg(&m->fargs, PROG) != 0)
        return CLI_EXIT_FAIL;
    int c, mount_opts = 0;
    while ((c = getopt_long(argc, argv, "fdqo:uhV", LONGOPTS, NULL)) != -1) {
        if (c != 'q' && c != 'u')
            mount_opts = 1;
        if (cli_keyopts_handle(&m->keys, c, optarg))
            continue;
        switch (c) {
        case 'f':
            m->foreground = 1;
            break;
        case 'd':
            m->debug = m->foreground = 1;
            break;
        case 'q':
            m->quiet = m->keys.quiet = 1;
            break;
        case 'u':
            m->unmount = 1;
            break;
        case 'o': {
            int rc = opts_take(optarg, m);
            if (rc >= 0)
                return rc;
            break;
        }
        case OPT_CACHE_MB: {
            /* A plain count of MiB ("64M" would read as 64 Mi MiB). */
            char *end = NULL;
            errno = 0;
            cache_mb = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || cache_mb == 0 || cache_mb > 65536) {
                cli_errorf(PROG, NULL,
                           "--cache-mb: not a number of MiB in 1..65536: '%s'", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case 'V':
            printf("%s %s\n", PROG, vd_version());
            return CLI_EXIT_OK;
        default:
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (m->unmount) {
        if (mount_opts || argc - optind != 1) {
            cli_errorf(PROG, NULL, "-u takes only -q and MOUNTPOINT (see --help)");
            return CLI_EXIT_USAGE;
        }
        return -1;
    }
    if (argc - optind != 2) {
        cli_errorf(PROG, NULL, "expected IMAGE and MOUNTPOINT (see --help)");
        return CLI_EXIT_USAGE;
    }
    m->image = argv[optind];
    m->cache_bytes = (size_t)cache_mb << 20;
    /* The daemon runs in "/": keep absolute paths for what is used later
     * by name (the mountpoint at unmount, the anchor at every advance). */
    const char *mnt = argv[argc - 1];
    struct stat st;
    if (!realpath(mnt, m->mountpoint) || stat(m->mountpoint, &st) != 0) {
        cli_errorf(PROG, mnt, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (!S_ISDIR(st.st_mode)) {
        cli_errorf(PROG, mnt, "%s", strerror(ENOTDIR));
        return CLI_EXIT_FAIL;
    }
    if (m->keys.anchor && realpath(m->keys.anchor, m->anchor))
        m->keys.anchor = m->anchor; /* a missing one is reported at open */
    if (!realpath(m->image, m->abs_image))
        m->abs_image[0] = '\0';
    if (opt_add_escaped(&m->fargs, "default_permissions,subtype=vhd,fsname=",
                        m->abs_image[0] ? m->abs_image : m->image) != 0)
        return CLI_EXIT_FAIL;
    if (m->debug && fuse_opt_add_arg(&m->fargs, "-d") != 0)
        return CLI_EXIT_FAIL;
    return -1;
}

/* What the state file names: the fsname (an NBD URI stays as given). */
static const char *state_image(const mount_args *m)
{
    return m->abs_image[0] ? m->abs_image : m->image;
}

int main(int argc, char **argv)
{
    mount_args m;
    memset(&m, 0, sizeof m);
    m.fargs = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    vmnt_ctx c;
    if (vmnt_ctx_init(&c, PROG) != 0)
        return CLI_EXIT_FAIL;

    int rc = args_parse(argc, argv, &m);
    if (rc >= 0)
        goto out;
    if (m.unmount) {
        rc = vmnt_unmount(PROG, argv[argc - 1], m.quiet);
        goto out;
    }
    c.image = m.image;
    c.read_only = m.read_only;
    c.no_notes = m.quiet;
    c.commit_secs = m.commit_secs;
    c.no_writeback = m.no_writeback;
    c.debug = m.debug;
    rc = vmnt_modes_parse(&m.fargs, &c);
    if (rc == 0)
        rc = vmnt_session_new(&c, &m.fargs);
    if (rc == 0)
        rc = cli_image_open(PROG, m.image, &m.keys,
                            (m.read_only ? CLI_OPEN_READONLY : 0) | CLI_OPEN_PREFAULT,
                            m.cache_bytes, &c.ci);
    if (rc == 0)
        rc = cli_fs_mount(PROG, m.image, &c.ci, m.read_only);
    if (rc == 0) {
        vmnt_serve_args sa = {.mountpoint = m.mountpoint,
                              .state_image = state_image(&m),
                              .foreground = m.foreground,
                              .threads = m.threads};
        rc = vmnt_serve(&c, &sa);
    }
out:
    rc = vmnt_finish(&c, rc);
    vmnt_ctx_fini(&c);
    fuse_opt_free_args(&m.fargs);
    return rc;
}
