/* vdisk-host-server: the untrusted side of the shield example
 * (docs/SHIELD.md). It owns the image file, starts the shield as its
 * child (as an untrusted host process loads an enclave) with one end of a
 * socketpair as the child's fd 3, serves the host interface on the other
 * end, and exits with the shield's exit status.
 *
 *   vdisk-host-server [--log FILE] [--attack MODE] [--region R]
 *       [--after N] [--nth K] [--size-delta BYTES] [--field F]
 *       [--restore SNAPSHOT] [--save-snapshot SNAPSHOT]
 *       IMAGE -- SHIELD_COMMAND [ARG...]
 *
 * --log appends every byte received from the shield (request headers and
 * write payloads) to FILE: what a host learns. --attack: none, flip,
 * other-block, replay, drop-writes, short-read, long-read, size-lie,
 * time-back, rollback, bad-reply (attack.h); --region any|super|node|data|log
 * aims it; --field op|id|status|errno|pad|errlen|length says what
 * bad-reply breaks; --after/--nth place it. --restore copies SNAPSHOT over IMAGE before
 * serving (with --attack rollback), --save-snapshot copies IMAGE to
 * SNAPSHOT after the shield exits. Exit: the shield's status, 128 + N if
 * it died of signal N, 70 if the host itself failed, 2 on usage. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "serve.h"

#define HOST_PROG "vdisk-host-server"
#define HOST_EXIT_FAIL 70
#define SHIELD_FD 3

typedef struct host_opts {
    const char *image, *log, *restore, *save;
    char **shield_argv;
} host_opts;

static int usage(void)
{
    fprintf(stderr,
            "usage: " HOST_PROG " [--log FILE] [--attack MODE] [--region R]"
            " [--after N] [--nth K] [--size-delta BYTES] [--field F] [--restore SNAP]"
            " [--save-snapshot SNAP] IMAGE -- SHIELD_COMMAND [ARG...]\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, host_opts *o, atk *a)
{
    int i;
    a->nth = 1;
    a->size_delta = ATK_BLOCK;
    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (k[0] != '-') {
            if (o->image)
                return -1;
            o->image = k;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(k, "--log") == 0) {
            o->log = v;
        } else if (strcmp(k, "--attack") == 0) {
            if (atk_mode_parse(v, &a->mode) != 0)
                return -1;
        } else if (strcmp(k, "--region") == 0) {
            if (atk_region_parse(v, &a->region) != 0)
                return -1;
        } else if (strcmp(k, "--after") == 0) {
            if (parse_u64(v, &a->after) != 0)
                return -1;
        } else if (strcmp(k, "--nth") == 0) {
            if (parse_u64(v, &a->nth) != 0 || a->nth == 0)
                return -1;
        } else if (strcmp(k, "--field") == 0) {
            if (atk_field_parse(v, &a->field) != 0)
                return -1;
        } else if (strcmp(k, "--size-delta") == 0) {
            char *end = NULL;
            errno = 0;
            long long d = strtoll(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno != 0)
                return -1;
            a->size_delta = d;
        } else if (strcmp(k, "--restore") == 0) {
            o->restore = v;
        } else if (strcmp(k, "--save-snapshot") == 0) {
            o->save = v;
        } else {
            return -1;
        }
    }
    if (!o->image || i + 1 >= argc)
        return -1;
    if ((a->mode == ATK_ROLLBACK) != (o->restore != NULL))
        return -1; /* rollback is exactly "restore an old snapshot" */
    o->shield_argv = argv + i + 1;
    return 0;
}

/* Copy a file, leaving holes where the source has zero blocks (images
 * are sparse). 0 or -errno. */
static int copy_file(const char *from, const char *to)
{
    static const uint8_t zero[ATK_BLOCK];
    uint8_t buf[ATK_BLOCK];
    int rc = 0;
    off_t pos = 0;
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        if ((size_t)n != sizeof buf || memcmp(buf, zero, sizeof buf) != 0) {
            if (pwrite(out, buf, (size_t)n, pos) != n) {
                rc = errno ? -errno : -EIO;
                goto out;
            }
        }
        pos += n;
    }
    if (ftruncate(out, pos) != 0 || fsync(out) != 0)
        rc = -errno;
out:
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = -errno;
    close(in);
    return rc;
}

static pid_t spawn_shield(char **argv, int sock)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* Child: the socket becomes fd 3, everything else of ours is
     * O_CLOEXEC (the shield never sees the image file). */
    if (sock == SHIELD_FD) {
        if (fcntl(sock, F_SETFD, 0) != 0)
            _exit(HOST_EXIT_FAIL);
    } else if (dup2(sock, SHIELD_FD) != SHIELD_FD) {
        _exit(HOST_EXIT_FAIL);
    }
    execvp(argv[0], argv);
    fprintf(stderr, HOST_PROG ": %s: %s\n", argv[0], strerror(errno));
    _exit(HOST_EXIT_FAIL);
}

int main(int argc, char **argv)
{
    host_opts o = {0};
    host_srv h = {.sock = -1, .img_fd = -1, .log_fd = -1};
    int sv[2] = {-1, -1}, status = HOST_EXIT_FAIL, rc, ws = 0;
    pid_t pid = -1;
    if (parse_args(argc, argv, &o, &h.attack) != 0)
        return usage();
    if (o.restore && (rc = copy_file(o.restore, o.image)) != 0) {
        fprintf(stderr, HOST_PROG ": %s: cannot restore from %s: %s\n", o.image,
                o.restore, strerror(-rc));
        goto out;
    }
    if (o.restore)
        fprintf(stderr, HOST_PROG ": attack rollback: %s restored from %s\n", o.image,
                o.restore);
    h.img_fd = open(o.image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (h.img_fd < 0) {
        fprintf(stderr, HOST_PROG ": %s: %s\n", o.image, strerror(errno));
        goto out;
    }
    if (o.log) {
        h.log_fd = open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (h.log_fd < 0) {
            fprintf(stderr, HOST_PROG ": %s: %s\n", o.log, strerror(errno));
            goto out;
        }
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        fprintf(stderr, HOST_PROG ": socketpair: %s\n", strerror(errno));
        goto out;
    }
    fflush(NULL);
    pid = spawn_shield(o.shield_argv, sv[1]);
    if (pid < 0) {
        fprintf(stderr, HOST_PROG ": fork: %s\n", strerror(errno));
        goto out;
    }
    close(sv[1]);
    sv[1] = -1;
    h.sock = sv[0];
    rc = host_serve(&h);
    /* Hang up whatever happened, so the shield cannot wait on us. */
    close(sv[0]);
    sv[0] = -1;
    while (waitpid(pid, &ws, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, HOST_PROG ": waitpid: %s\n", strerror(errno));
            goto out;
        }
    }
    pid = -1;
    if (h.attack.mode != ATK_NONE && h.attack.mode != ATK_ROLLBACK)
        fprintf(stderr, HOST_PROG ": attack %s fired %" PRIu64 " times\n",
                atk_mode_name(h.attack.mode), h.attack.fired);
    fprintf(stderr, HOST_PROG ": %" PRIu64 " requests served\n", h.requests);
    if (rc != 0)
        goto out;
    if (o.save && (rc = copy_file(o.image, o.save)) != 0) {
        fprintf(stderr, HOST_PROG ": %s: cannot save snapshot %s: %s\n", o.image, o.save,
                strerror(-rc));
        goto out;
    }
    if (WIFEXITED(ws)) {
        status = WEXITSTATUS(ws);
    } else if (WIFSIGNALED(ws)) {
        fprintf(stderr, HOST_PROG ": shield killed by signal %d\n", WTERMSIG(ws));
        status = 128 + WTERMSIG(ws);
    }
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (h.img_fd >= 0)
        close(h.img_fd);
    if (h.log_fd >= 0 && close(h.log_fd) != 0 && status == 0) {
        fprintf(stderr, HOST_PROG ": %s: %s\n", o.log, strerror(errno));
        status = HOST_EXIT_FAIL;
    }
    atk_free(&h.attack);
    return status;
}
