/* vhdmount: mount an image as a directory (DESIGN §7).
 *
 * Everything that can fail for a reason the user must see happens before
 * the daemon detaches, so the error reaches the terminal and the exit
 * status is right: option parsing (2), the secret and the unlock (3 wrong
 * key, 4 rollback or integrity), the volume and the kernel mount (1). The
 * image's flock is taken at open and its descriptor crosses the fork of
 * detach() (flock(2) locks belong to the open file description), so
 * the lock lasts as long as the daemon.
 *
 * --bench-device aead:FILE (hidden, man page only) mounts instead a fresh
 * FAT32 volume over vhdbench's AEAD-only device in FILE: the FUSE peer
 * "vhdmount-aead" of scripts/bench.sh, which shows what the tree and the
 * two-version sync cost through FUSE. It has no rollback detection, no
 * crash consistency and a key that dies with the process: benchmarks
 * only. */
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

#include "benchdev.h"
#include "vhdmount.h"

static const char PROG[] = "vhdmount";

enum { OPT_CACHE_MB = 0x2000, OPT_BENCH_DEVICE };

static const struct option LONGOPTS[] = {
    CLI_KEY_LONGOPTS,
    {"cache-mb", required_argument, NULL, OPT_CACHE_MB},
    {"bench-device", required_argument, NULL, OPT_BENCH_DEVICE},
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
        "                 fsync and unmount), ro, allow_other and the other options\n"
        "                 of mount.fuse3(8); vfat's uid=N, gid=N, umask=OCT,\n"
        "                 dmask=OCT, fmask=OCT, showexec, quiet (modes: see vhdmount(8))\n"
        "  --cache-mb N   image block cache in MiB (default 64)\n"
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
    size_t cache_bytes;
    int bench;             /* --bench-device aead:FILE; image is FILE */
    char bench_file[PATH_MAX];
    uint64_t bench_bytes;  /* FILE's size when given */
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

/* commit=SECONDS: 0 .. one day, as a plain count. */
static int commit_parse(const char *v, size_t n, unsigned *out)
{
    if (n == 0 || n > 5)
        return -1;
    unsigned x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    if (x > 86400)
        return -1;
    *out = x;
    return 0;
}

/* One -o list: vhdmount's own options (commit=) are taken out, the rest
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
        if (n >= 7 && strncmp(p, "commit=", 7) == 0) {
            if (commit_parse(p + 7, n - 7, &m->commit_secs) != 0) {
                cli_errorf(PROG, NULL, "-o %.*s: not a number of seconds in 0..86400",
                           (int)n, p);
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
        case OPT_BENCH_DEVICE:
            if (strncmp(optarg, "aead:", 5) != 0 || !optarg[5]) {
                cli_errorf(PROG, NULL, "--bench-device: expected aead:FILE, not '%s'", optarg);
                return CLI_EXIT_USAGE;
            }
            m->bench = 1;
            m->image = optarg + 5;
            break;
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
    if (m->bench && (argc - optind != 1 || cli_keyopts_has_secret(&m->keys) ||
                     m->keys.anchor)) {
        cli_errorf(PROG, NULL, "--bench-device takes only MOUNTPOINT, no image, key or anchor");
        return CLI_EXIT_USAGE;
    }
    if (!m->bench && argc - optind != 2) {
        cli_errorf(PROG, NULL, "expected IMAGE and MOUNTPOINT (see --help)");
        return CLI_EXIT_USAGE;
    }
    if (!m->bench)
        m->image = argv[optind];
    m->cache_bytes = (size_t)cache_mb << 20;
    /* The daemon runs in "/": keep absolute paths for what is used later
     * by name (the mountpoint at unmount, the anchor at every advance,
     * a bench device's files at their removal). */
    const char *mnt = argv[argc - 1];
    struct stat st;
    if (m->bench) {
        if (!realpath(m->image, m->bench_file) || stat(m->bench_file, &st) != 0) {
            cli_errorf(PROG, m->image, "%s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
        m->bench_bytes = (uint64_t)st.st_size;
    }
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

/* The bench device in place of an image: c->ci holds only the volume. */
static int bench_mount(const mount_args *m, vmnt_ctx *c, bench_dev **dev)
{
    vd_err e = bench_dev_file_new(MODE_AEAD, m->bench_file, m->bench_bytes, dev);
    if (e == VD_OK) {
        vd_fs_opts o;
        memset(&o, 0, sizeof o);
        o.read_only = m->read_only;
        e = vd_fs_mount_dev(bench_dev_blockdev(*dev), &o, &c->ci.fs);
    }
    return e == VD_OK ? 0 : cli_fail(PROG, m->image, e, "while creating the bench device");
}

/* What the state file names: the fsname (an NBD URI stays as given). */
static const char *state_image(const mount_args *m)
{
    return m->bench ? m->bench_file : m->abs_image[0] ? m->abs_image : m->image;
}

/* fuse_daemonize, except that the child writes its state file (state.c)
 * before the parent returns, so `vhdmount IMAGE M && ... && vhdmount -u M`
 * always finds it. 0 in the child (or in the foreground), -1 on failure;
 * the parent exits here. */
static int detach(vmnt_ctx *c, const mount_args *m)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        (void)close(pfd[0]);
        (void)close(pfd[1]);
        return -1;
    }
    if (pid > 0) {
        (void)close(pfd[1]);
        char ok = 0;
        ssize_t r;
        while ((r = read(pfd[0], &ok, 1)) < 0 && errno == EINTR)
            ;
        _exit(r == 1 && ok == 1 ? CLI_EXIT_OK : CLI_EXIT_FAIL);
    }
    (void)close(pfd[0]);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (setsid() < 0 || chdir("/") != 0 || nul < 0 || dup2(nul, STDIN_FILENO) < 0 ||
        dup2(nul, STDOUT_FILENO) < 0 || dup2(nul, STDERR_FILENO) < 0) {
        cli_errorf(PROG, m->image, "cannot detach into the background: %s", strerror(errno));
        if (nul >= 0)
            (void)close(nul);
        (void)close(pfd[1]); /* the parent exits 1 */
        return -1;
    }
    if (nul > STDERR_FILENO)
        (void)close(nul);
    openlog(PROG, LOG_PID, LOG_DAEMON);
    c->use_syslog = 1;
    vmnt_state_begin(c, state_image(m), m->mountpoint);
    const char one = 1;
    ssize_t w;
    while ((w = write(pfd[1], &one, 1)) < 0 && errno == EINTR)
        ;
    (void)close(pfd[1]);
    return w == 1 ? 0 : -1;
}

static int fuse_run(struct fuse *f, vmnt_ctx *c, const mount_args *m)
{
    int rc = CLI_EXIT_FAIL;
    struct fuse_loop_config *lc = NULL;
    int mounted = 0, handlers = 0;
    /* Before mounting: afterwards resolving the path would ask this server. */
    c->real_mountpoint = realpath(m->mountpoint, NULL);
    /* In the foreground the pid is final: the state file is there before
     * the mount answers its first request. */
    if (m->foreground)
        vmnt_state_begin(c, state_image(m), m->mountpoint);
    if (fuse_mount(f, m->mountpoint) != 0) {
        cli_errorf(PROG, m->mountpoint, "the kernel refused the FUSE mount (see above)");
        vmnt_state_drop(c); /* nothing was mounted: nothing to wait for */
        goto out;
    }
    mounted = 1;
    if (!m->foreground && detach(c, m) != 0)
        goto out;
    if (fuse_set_signal_handlers(fuse_get_session(f)) != 0) {
        vmnt_log(c, LOG_ERR, "cannot install signal handlers");
        goto out;
    }
    handlers = 1;
    lc = fuse_loop_cfg_create();
    if (!lc) {
        vmnt_log(c, LOG_ERR, "out of memory");
        goto out;
    }
    fuse_loop_cfg_set_clone_fd(lc, 0);
    fuse_loop_cfg_set_max_threads(lc, 16);
    /* libfuse reports an exit by SIGTERM/SIGINT/SIGHUP as that signal's
     * number: an ordinary, clean end for a mount. */
    int r = fuse_loop_mt(f, lc);
    rc = (r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP) ? CLI_EXIT_OK
                                                                : CLI_EXIT_FAIL;
    if (rc != CLI_EXIT_OK)
        vmnt_log(c, LOG_ERR, "the FUSE session failed (%d)", r);
out:
    free(c->real_mountpoint);
    c->real_mountpoint = NULL;
    if (lc)
        fuse_loop_cfg_destroy(lc);
    if (handlers)
        fuse_remove_signal_handlers(fuse_get_session(f));
    if (mounted)
        fuse_unmount(f);
    return rc;
}

int main(int argc, char **argv)
{
    mount_args m;
    memset(&m, 0, sizeof m);
    m.fargs = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    vmnt_ctx c;
    memset(&c, 0, sizeof c);
    c.readahead_once = (pthread_once_t)PTHREAD_ONCE_INIT;
    c.prog = PROG;
    struct fuse *f = NULL;
    bench_dev *dev = NULL;
    int lock_ok = 0;

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
    rc = vmnt_modes_parse(&m.fargs, &c);
    if (rc != 0)
        goto out;
    if (pthread_mutex_init(&c.files_lock, NULL) != 0) {
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    lock_ok = 1;

    struct fuse_operations ops;
    memset(&ops, 0, sizeof ops);
    vmnt_ops_volume(&ops);
    vmnt_ops_tree(&ops);
    vmnt_ops_file(&ops);
    vmnt_ops_refused(&ops);
    vmnt_ops_modes(&ops);
    /* Before the image is opened, so a bad -o costs no passphrase. */
    f = fuse_new(&m.fargs, &ops, sizeof ops, &c);
    if (!f) {
        cli_errorf(PROG, NULL, "invalid -o option (see above and mount.fuse3(8))");
        rc = CLI_EXIT_USAGE;
        goto out;
    }

    if (m.bench) {
        rc = bench_mount(&m, &c, &dev);
    } else {
        rc = cli_image_open(PROG, m.image, &m.keys, m.read_only ? CLI_OPEN_READONLY : 0,
                            m.cache_bytes, &c.ci);
        if (rc == 0)
            rc = cli_fs_mount(PROG, m.image, &c.ci, m.read_only);
    }
    if (rc != 0)
        goto out;
    vd_statfs sf;
    vd_err e = vd_fs_statfs(c.ci.fs, &sf);
    if (e != VD_OK) {
        rc = cli_fail(PROG, m.image, e, NULL);
        goto out;
    }
    c.cluster_bytes = sf.cluster_bytes;

    rc = fuse_run(f, &c, &m);
out:
    if (f)
        fuse_destroy(f); /* runs destroy (the clean unmount) if init ran */
    if (c.ci.host || c.ci.fs) {
        vmnt_volume_close(&c); /* init never ran, or the loop failed */
        if (rc == 0)
            rc = c.close_status;
    } else if (c.closed && rc == 0) {
        rc = c.close_status;
    }
    bench_dev_free(dev); /* after the volume over it is unmounted */
    if (lock_ok)
        (void)pthread_mutex_destroy(&c.files_lock);
    fuse_opt_free_args(&m.fargs);
    return rc;
}
