/* vdisk-shield: the trusted side of the shield example (docs/SHIELD.md).
 *
 *   vdisk-shield keygen SECRET_FILE PUBLIC_FILE
 *   vdisk-shield run --fd N --identity SECRET_FILE
 *                    (--anchor FILE [--anchor-create] | --no-anchor)
 *                    [--show PATH]
 *
 * keygen makes the shield's X25519 key pair (in an enclave the secret
 * would never leave it; the public key is what attestation vouches for
 * and what the image builder seals the disk key to). run opens the image
 * through the host process on socket fd N (every byte of it goes through
 * that socket: this program links the core library only), unlocks it
 * with the secret key, checks what the last run left, writes the next
 * generation of its workload, closes, reopens and verifies it. The exit
 * status says what was caught (verdict.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vdisk/fs.h>
#include <vdisk/keys.h>
#include <vdisk/vdisk.h>

#include "chan.h"
#include "counter.h"
#include "verdict.h"
#include "workload.h"

#define PROG "vdisk-shield"

typedef struct run_opts {
    int fd;
    const char *identity;
    const char *anchor;
    int anchor_create;
    int no_anchor; /* to show what the anchor is for (docs/SHIELD.md) */
    const char *show;
} run_opts;

static int usage(void)
{
    fprintf(stderr, "usage: " PROG " keygen SECRET_FILE PUBLIC_FILE\n"
                    "       " PROG " run --fd N --identity SECRET_FILE"
                    " (--anchor FILE [--anchor-create] | --no-anchor) [--show PATH]\n");
    return SH_EXIT_USAGE;
}

static int write_new_file(const char *path, const uint8_t *b, size_t n)
{
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t k = write(fd, b, n);
    if (k != (ssize_t)n)
        rc = k < 0 ? -errno : -EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc != 0)
        unlink(path);
    return rc;
}

static int read_exact_file(const char *path, uint8_t *b, size_t n)
{
    uint8_t extra;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t k = read(fd, b, n);
    if (k < 0)
        rc = -errno;
    else if ((size_t)k != n || read(fd, &extra, 1) != 0)
        rc = -EINVAL; /* not exactly n bytes */
    close(fd);
    return rc;
}

static int cmd_keygen(int argc, char **argv)
{
    uint8_t pk[VD_X25519_BYTES];
    uint8_t *sk = vd_secret_alloc(VD_X25519_BYTES);
    int status = SH_EXIT_SETUP, rc;
    if (argc != 4) {
        status = usage();
        goto out;
    }
    if (!sk) {
        fprintf(stderr, PROG ": keygen: out of guarded memory\n");
        goto out;
    }
    vd_err e = vd_keypair_generate(pk, sk);
    if (e != VD_OK) {
        fprintf(stderr, PROG ": keygen: %s\n", vd_strerror(e));
        goto out;
    }
    if ((rc = write_new_file(argv[2], sk, VD_X25519_BYTES)) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", argv[2], strerror(-rc));
        goto out;
    }
    if ((rc = write_new_file(argv[3], pk, sizeof pk)) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", argv[3], strerror(-rc));
        unlink(argv[2]);
        goto out;
    }
    status = SH_EXIT_OK;
out:
    vd_secret_free(sk);
    return status;
}

static int parse_run(int argc, char **argv, run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--anchor-create") == 0) {
            o->anchor_create = 1;
            continue;
        }
        if (strcmp(a, "--no-anchor") == 0) {
            o->no_anchor = 1;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--fd") == 0) {
            char *end = NULL;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || n < 0 || n > 1 << 20)
                return -1;
            o->fd = (int)n;
        } else if (strcmp(a, "--identity") == 0) {
            o->identity = v;
        } else if (strcmp(a, "--anchor") == 0) {
            o->anchor = v;
        } else if (strcmp(a, "--show") == 0) {
            o->show = v;
        } else {
            return -1;
        }
    }
    if (o->no_anchor && (o->anchor || o->anchor_create))
        return -1;
    return o->fd >= 0 && o->identity && (o->anchor || o->no_anchor) ? 0 : -1;
}

/* Append where the last authentication failure was, if there was one. */
static void describe_failure(vd_image *img, char *buf, size_t cap)
{
    vd_bad_range r;
    buf[0] = '\0';
    if (img && vd_image_last_failure(img, &r) == VD_OK)
        snprintf(buf, cap, " [%s at lbn %" PRIu64 "..%" PRIu64 "]",
                 r.level == 0 ? "data block" : "tree node", r.first_lbn,
                 r.first_lbn + r.nblocks - 1);
}

typedef struct session {
    const vd_host *host;
    const vd_unlock *unlock;
    const vd_open_opts *oo;
    sh_chan *ch;
    vd_image *img;
    sh_work w;
    char where[96]; /* " [data block at lbn ...]" */
} session;

static vd_err session_open(session *s, const char *label)
{
    vd_fs_opts fo = {.now = sh_chan_now, .now_ctx = s->ch};
    vd_err e = vd_image_open_unlock(s->host, s->unlock, s->oo, &s->img);
    if (e != VD_OK) {
        snprintf(s->w.what, sizeof s->w.what, "%s", label);
        return e;
    }
    e = vd_fs_mount(s->img, &fo, &s->w.fs);
    if (e != VD_OK)
        snprintf(s->w.what, sizeof s->w.what, "mount");
    return e;
}

/* Unmount and close; the first error wins, and a failure already seen
 * is described before the handle goes away. */
static vd_err session_close(session *s, vd_err e)
{
    if (e != VD_OK && s->where[0] == '\0')
        describe_failure(s->img, s->where, sizeof s->where);
    if (s->w.fs) {
        vd_err u = vd_fs_unmount(s->w.fs);
        s->w.fs = NULL;
        if (e == VD_OK && u != VD_OK) {
            snprintf(s->w.what, sizeof s->w.what, "unmount");
            describe_failure(s->img, s->where, sizeof s->where);
            e = u;
        }
    }
    if (s->img) {
        vd_err c = vd_image_close(s->img);
        s->img = NULL;
        if (e == VD_OK && c != VD_OK) {
            snprintf(s->w.what, sizeof s->w.what, "close");
            e = c;
        }
    }
    return e;
}

static int cmd_run(int argc, char **argv)
{
    run_opts o;
    sh_counter counter;
    sh_chan ch;
    session s;
    uint8_t *sk = vd_secret_alloc(VD_X25519_BYTES);
    uint32_t gen = 0;
    int status = SH_EXIT_SETUP, rc;
    vd_err e = VD_OK;
    memset(&s, 0, sizeof s);
    if (parse_run(argc, argv, &o) != 0) {
        status = usage();
        goto out;
    }
    if (!sk) {
        fprintf(stderr, PROG ": out of guarded memory\n");
        goto out;
    }
    if ((rc = read_exact_file(o.identity, sk, VD_X25519_BYTES)) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", o.identity,
                rc == -EINVAL ? "not a 32-byte secret key" : strerror(-rc));
        goto out;
    }
    if (o.anchor && (rc = sh_counter_open(&counter, o.anchor, o.anchor_create)) != 0) {
        fprintf(stderr, PROG ": %s: %s\n", o.anchor,
                rc == -EBADMSG ? "not a counter file" : strerror(-rc));
        goto out;
    }
    vd_anchor anchor = sh_counter_anchor(&counter);
    sh_chan_init(&ch, o.fd);
    vd_host host = sh_chan_host(&ch);
    vd_unlock unlock = {.type = VD_SLOT_SEALED, .secret = sk, .len = VD_X25519_BYTES};
    vd_open_opts oo = {.anchor = o.no_anchor ? NULL : &anchor,
                       .anchor_mode = VD_ANCHOR_EVERY_COMMIT};
    s.host = &host;
    s.unlock = &unlock;
    s.oo = &oo;
    s.ch = &ch;
    s.w.out = stdout;

    /* Session 1: what the last run left, then the next generation. */
    e = session_open(&s, "open image");
    if (e == VD_OK && o.show)
        e = sh_work_show(&s.w, o.show);
    if (e == VD_OK)
        e = sh_work_generation(&s.w, &gen);
    if (e == VD_OK && gen > 0)
        e = sh_work_verify(&s.w, gen);
    if (e == VD_OK)
        e = sh_work_write(&s.w, gen + 1);
    e = session_close(&s, e);
    /* Session 2: a cold reopen; every read now comes from the host. */
    if (e == VD_OK)
        e = session_open(&s, "reopen image");
    if (e == VD_OK)
        e = sh_work_verify(&s.w, gen + 1);
    e = session_close(&s, e);

    printf("channel: %" PRIu64 " requests, %" PRIu64 " replies refused\n", ch.requests,
           ch.rejected);
    if (s.w.mismatch) {
        fprintf(stderr, PROG ": %s (undetected tampering)\n", s.w.what);
        status = SH_EXIT_MISMATCH;
    } else if (e != VD_OK) {
        fprintf(stderr, PROG ": %s: %s: %s%s\n", s.w.what[0] ? s.w.what : "run",
                sh_err_name(e), vd_strerror(e), s.where);
        status = sh_exit_status(e);
    } else {
        status = SH_EXIT_OK;
    }
out:
    vd_secret_free(sk);
    return status;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return cmd_run(argc, argv);
    return usage();
}
