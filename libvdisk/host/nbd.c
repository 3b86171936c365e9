/* NBD backend of vd_host: an export of a Network Block Device server,
 * through libnbd. The server is one more untrusted host (DESIGN §9,
 * "Remote hosts"): the core checks every byte it returns.
 *
 * One connection carries all requests, issued with libnbd's asynchronous
 * API so that the server works on several at once:
 *   - a read is cut into chunks sent together (up to NBDH_WINDOW); it
 *     returns when every chunk has answered. When reads go in order, the
 *     next range of the same size is requested at once (read-ahead), so
 *     the server reads it while the library decrypts this one; a write
 *     makes it unusable (it may hold bytes the write replaces);
 *   - a write is copied and sent, and returns without waiting for the
 *     answer (write-behind, as a file's page cache does): the writes the
 *     library issues between two flushes (a sync round's blocks, several
 *     runs) are all in flight together instead of one round trip each.
 *     The flush waits for every one of them first, and a write the
 *     server failed fails that flush and every later call, so a sync
 *     never commits over a lost write and nothing is read from a state
 *     the library did not write. A read first waits for the writes in
 *     flight (NBD does not order requests), so it sees them.
 * A lost connection fails the call and every later one (a new open
 * recovers, as after a crash). The handle is closed at once when the
 * connection dies, which retires every request: none can still point into
 * a caller's buffer after the call returns.
 *
 * Where the image ends: an export has a fixed size and an image usually
 * fills less of it, but the library looks for the VHD footer at the end of
 * what size() reports. So the host writes a copy of the image's footer
 * into the export's last 512 bytes and at open reads the image's size
 * back from it (host.h). The copy only tells where to look: the core
 * checks the real footer and the header against each other. */
#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "advise.h"
#include "nbd_uri.h"
#include "vdisk/host.h"

/* 64 KiB requests, 16 in flight: a 256 KiB read of the core (a run of 64
 * blocks) becomes four parallel requests; a large sync write keeps the
 * server's threads busy without flooding it (docs/PERFORMANCE.md). */
#define NBDH_CHUNK ((size_t)64 << 10)
#define NBDH_WINDOW 16
/* Write-behind bound: past it a write waits for earlier ones to answer. */
#define NBDH_WB_BYTES ((size_t)16 << 20)
/* Read-ahead only for reads up to this size (the core reads data in runs
 * of at most 256 KiB). */
#define NBDH_RA_MAX ((size_t)1 << 20)
#define NBDH_FOOTER 512u
#define NBDH_ERRLEN 256

/* The requests of one call, or of the read-ahead. */
typedef struct nbdh_batch {
    unsigned pending;
    int err; /* first errno a request failed with */
} nbdh_batch;

typedef struct nbd_host {
    vd_host host;
    struct nbd_handle *nbd; /* NULL once the connection is lost */
    pthread_mutex_t lock;   /* one call at a time on the handle */
    uint64_t export_bytes;
    uint64_t image_bytes; /* what size() reports */
    size_t chunk;
    int read_only;
    /* write-behind: requests in flight, their copied bytes, and the first
     * error the server answered one with (sticky) */
    unsigned wb_pending;
    size_t wb_bytes;
    int wb_err;
    /* read-ahead: after a read that continues the previous one, the next
     * range of the same size is requested into ra_buf while the caller
     * works (decrypts) on what it got */
    uint8_t *ra_buf;
    size_t ra_cap;
    uint64_t ra_off;
    size_t ra_len;
    nbdh_batch ra_b;
    int ra_issued;     /* requests for ra_buf were sent (maybe answered) */
    int ra_valid;      /* no write since: the bytes may be used */
    uint64_t next_off; /* where a sequential reader reads next */
    char last_error[NBDH_ERRLEN];
    vd_jobs *jobs; /* run_jobs; NULL if it could not be made */
} nbd_host;

/* One write in flight: its own copy of the bytes. */
typedef struct nbdh_wb {
    nbd_host *nh;
    size_t len;
    uint8_t data[];
} nbdh_wb;

static void fmt(char *buf, size_t len, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
    if (buf == NULL || len == 0)
        return;
    va_list ap;
    va_start(ap, f);
    (void)vsnprintf(buf, len, f, ap);
    va_end(ap);
}

static int nbd_errno_or(int fallback)
{
    int e = nbd_get_errno();
    return e > 0 ? e : fallback;
}

/* First failure only: it is the cause, later ones are its echoes. */
static void note_error(nbd_host *nh, const char *what, int err)
{
    if (nh->last_error[0] != '\0')
        return;
    const char *msg = nbd_get_error();
    if (msg != NULL && msg[0] != '\0')
        fmt(nh->last_error, sizeof nh->last_error, "%s: %s", what, msg);
    else
        fmt(nh->last_error, sizeof nh->last_error, "%s: %s", what, strerror(err));
}

/* The connection is gone: close the handle (which retires every request
 * still in flight, so none writes into a caller's buffer later). */
static void lose_connection(nbd_host *nh, const char *what)
{
    if (nh->nbd == NULL)
        return;
    char msg[NBDH_ERRLEN];
    const char *cause = nbd_get_error();
    fmt(msg, sizeof msg, "%s", cause != NULL && cause[0] != '\0' ? cause : "closed");
    if (nh->last_error[0] == '\0' || strstr(nh->last_error, "connection") == NULL)
        fmt(nh->last_error, sizeof nh->last_error,
            "connection to the NBD server lost during %s: %s", what, msg);
    nbd_close(nh->nbd);
    nh->nbd = NULL;
    nh->ra_issued = 0; /* closing retired the read-ahead too */
    nh->ra_valid = 0;
}

static int dead(const nbd_host *nh)
{
    return nh->nbd == NULL || nbd_aio_is_dead(nh->nbd) == 1 ||
           nbd_aio_is_closed(nh->nbd) == 1;
}

static int batch_done(void *user_data, int *error)
{
    nbdh_batch *b = user_data;
    if (*error != 0 && b->err == 0)
        b->err = *error;
    b->pending--;
    return 1; /* retire the command: nobody waits for its cookie */
}

/* Read [off, off + len) in chunks, NBDH_WINDOW at a time. 0 or a
 * negative errno. */
static int read_chunks(nbd_host *nh, uint64_t off, uint8_t *buf, size_t len)
{
    const char *what = "read";
    nbdh_batch b = {0, 0};
    size_t issued = 0;
    int issue_failed = 0;

    while (issued < len || b.pending > 0) {
        while (!issue_failed && issued < len && b.pending < NBDH_WINDOW && b.err == 0) {
            size_t n = len - issued < nh->chunk ? len - issued : nh->chunk;
            nbd_completion_callback cb = {.callback = batch_done, .user_data = &b};
            int64_t cookie = nbd_aio_pread(nh->nbd, buf + issued, n, off + issued, cb, 0);
            if (cookie < 0) {
                /* Not sent; the callback never runs for it. */
                issue_failed = nbd_errno_or(EIO);
                break;
            }
            b.pending++;
            issued += n;
        }
        if (b.pending == 0)
            break;
        if (nbd_poll(nh->nbd, -1) < 0 || dead(nh)) {
            lose_connection(nh, what);
            return -EIO;
        }
    }
    if (issue_failed != 0 || (b.err == 0 && issued < len)) {
        if (dead(nh)) {
            lose_connection(nh, what);
            return -EIO;
        }
        note_error(nh, what, issue_failed ? issue_failed : EIO);
        return -(issue_failed ? issue_failed : EIO);
    }
    if (b.err != 0) {
        if (nh->last_error[0] == '\0')
            fmt(nh->last_error, sizeof nh->last_error, "the NBD server failed a %s: %s",
                what, strerror(b.err));
        /* The protocol knows a few errnos; ENOSPC must stay ENOSPC (full
         * export), the rest is an I/O error to the library. */
        return b.err == ENOSPC ? -ENOSPC : -EIO;
    }
    return 0;
}

static int wb_done(void *user_data, int *error)
{
    nbdh_wb *w = user_data;
    if (*error != 0 && w->nh->wb_err == 0)
        w->nh->wb_err = *error;
    return 1;
}

/* Called once per request, answered or not (also when the handle closes
 * with the request still in flight). */
static void wb_free(void *user_data)
{
    nbdh_wb *w = user_data;
    w->nh->wb_pending--;
    w->nh->wb_bytes -= w->len;
    free(w);
}

static int wb_failed(nbd_host *nh, const char *what)
{
    if (nh->last_error[0] == '\0')
        fmt(nh->last_error, sizeof nh->last_error, "the NBD server failed a %s: %s", what,
            strerror(nh->wb_err));
    return nh->wb_err == ENOSPC ? -ENOSPC : -EIO;
}

/* Wait until at most `left` writes are in flight. 0 or -EIO (the
 * connection was lost). */
static int wb_wait(nbd_host *nh, unsigned left, size_t left_bytes, const char *what)
{
    while (nh->nbd != NULL && (nh->wb_pending > left || nh->wb_bytes > left_bytes)) {
        if (nbd_poll(nh->nbd, -1) < 0 || dead(nh)) {
            lose_connection(nh, what);
            return -EIO;
        }
    }
    return nh->nbd == NULL ? -EIO : 0;
}

/* Copy and send [off, off + len) in chunks; returns before the answers. */
static int wb_write(nbd_host *nh, uint64_t off, const uint8_t *buf, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        if (nh->wb_err != 0)
            return wb_failed(nh, "write");
        int rc = wb_wait(nh, NBDH_WINDOW * 4, NBDH_WB_BYTES, "write");
        if (rc != 0)
            return rc;
        size_t n = len - sent < nh->chunk ? len - sent : nh->chunk;
        nbdh_wb *w = malloc(sizeof *w + n);
        if (w == NULL)
            return -ENOMEM;
        w->nh = nh;
        w->len = n;
        memcpy(w->data, buf + sent, n);
        nh->wb_pending++;
        nh->wb_bytes += n;
        nbd_completion_callback cb = {.callback = wb_done, .user_data = w, .free = wb_free};
        /* On failure libnbd has called wb_free already. */
        if (nbd_aio_pwrite(nh->nbd, w->data, n, off + sent, cb, 0) < 0) {
            int err = nbd_errno_or(EIO);
            if (dead(nh)) {
                lose_connection(nh, "write");
                return -EIO;
            }
            note_error(nh, "write", err);
            return -err;
        }
        sent += n;
    }
    return 0;
}

/* Every write in flight answered, and none failed. */
static int wb_drain(nbd_host *nh, const char *what)
{
    int rc = wb_wait(nh, 0, 0, what);
    if (rc == 0 && nh->wb_err != 0)
        rc = wb_failed(nh, "write");
    return rc;
}

/* Wait until the read-ahead has answered; ra_buf is then ours again. */
static int ra_wait(nbd_host *nh)
{
    while (nh->ra_issued && nh->ra_b.pending > 0) {
        if (nbd_poll(nh->nbd, -1) < 0 || dead(nh)) {
            lose_connection(nh, "read");
            return -EIO;
        }
    }
    nh->ra_issued = 0;
    return 0;
}

/* Request [off, off + len) into ra_buf without waiting. Best effort: a
 * failure only means no read-ahead (the next read asks again). */
static void ra_start(nbd_host *nh, uint64_t off, size_t len)
{
    if (len > nh->ra_cap) {
        uint8_t *b = realloc(nh->ra_buf, len);
        if (b == NULL)
            return;
        nh->ra_buf = b;
        nh->ra_cap = len;
    }
    nh->ra_off = off;
    nh->ra_len = len;
    nh->ra_b.pending = 0;
    nh->ra_b.err = 0;
    nh->ra_issued = 1;
    nh->ra_valid = 1;
    for (size_t at = 0; at < len; at += nh->chunk) {
        size_t n = len - at < nh->chunk ? len - at : nh->chunk;
        nbd_completion_callback cb = {.callback = batch_done, .user_data = &nh->ra_b};
        if (nbd_aio_pread(nh->nbd, nh->ra_buf + at, n, off + at, cb, 0) < 0) {
            nh->ra_valid = 0; /* what was sent is waited for, never used */
            return;
        }
        nh->ra_b.pending++;
    }
}

/* The read [off, off + n) from the read-ahead, or straight from the
 * server; then the next range is requested when the reads go in order. */
static int read_range(nbd_host *nh, uint64_t off, uint8_t *buf, size_t n)
{
    int rc = 0, hit = 0;
    if (nh->ra_issued && nh->ra_valid && off >= nh->ra_off &&
        off - nh->ra_off + n <= nh->ra_len) {
        rc = ra_wait(nh);
        if (rc == 0 && nh->ra_b.err == 0) {
            memcpy(buf, nh->ra_buf + (off - nh->ra_off), n);
            hit = 1;
        }
    }
    if (rc == 0 && !hit) {
        rc = ra_wait(nh); /* ra_buf may still be the target of requests */
        if (rc == 0)
            rc = read_chunks(nh, off, buf, n);
    }
    if (rc != 0)
        return rc;
    uint64_t next = off + n;
    if ((hit || off == nh->next_off) && n <= NBDH_RA_MAX && next < nh->image_bytes)
        ra_start(nh, next, nh->image_bytes - next < n ? (size_t)(nh->image_bytes - next) : n);
    nh->next_off = next;
    return 0;
}

static int nbdh_read_at(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    nbd_host *nh = ctx;
    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (nh == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (pthread_mutex_lock(&nh->lock) != 0)
        return -EIO;
    int rc = 0;
    /* Like a file: a read past the end is short, not an error. */
    size_t n = 0;
    if (off < nh->image_bytes)
        n = nh->image_bytes - off < len ? (size_t)(nh->image_bytes - off) : len;
    if (nh->nbd == NULL)
        rc = -EIO;
    else if (n > 0) {
        /* Writes still in flight first: the server may run requests in
         * any order. After a failed write nothing is read either: the
         * server holds a state the library never wrote, and its next
         * flush would have failed. */
        rc = wb_drain(nh, "read");
        if (rc == 0)
            rc = read_range(nh, off, buf, n);
    }
    if (rc == 0)
        *done = n;
    (void)pthread_mutex_unlock(&nh->lock);
    return rc;
}

/* The image's footer is being written: keep the copy at the export's end
 * in step (see the top of the file). */
static int mirror_footer(nbd_host *nh, uint64_t off, const uint8_t *buf, size_t len)
{
    uint64_t foot = nh->image_bytes - NBDH_FOOTER;
    if (nh->image_bytes == nh->export_bytes || nh->image_bytes < NBDH_FOOTER ||
        off > foot || off + len < nh->image_bytes)
        return 0;
    return wb_write(nh, nh->export_bytes - NBDH_FOOTER, buf + (foot - off), NBDH_FOOTER);
}

static int nbdh_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                         size_t *done)
{
    nbd_host *nh = ctx;
    if (done == NULL)
        return -EINVAL;
    *done = 0;
    if (nh == NULL || (buf == NULL && len != 0))
        return -EINVAL;
    if (nh->read_only)
        return -EBADF;
    if (off > nh->image_bytes || len > nh->image_bytes - off)
        return -EFBIG; /* the image never grows past its truncate */
    if (pthread_mutex_lock(&nh->lock) != 0)
        return -EIO;
    int rc = nh->nbd == NULL ? -EIO : 0;
    nh->ra_valid = 0; /* it may hold what this write replaces */
    if (rc == 0 && len > 0)
        rc = wb_write(nh, off, buf, len);
    if (rc == 0)
        rc = mirror_footer(nh, off, buf, len);
    if (rc == 0)
        *done = len;
    (void)pthread_mutex_unlock(&nh->lock);
    return rc;
}

static int nbdh_flush(void *ctx)
{
    nbd_host *nh = ctx;
    if (nh == NULL)
        return -EINVAL;
    if (pthread_mutex_lock(&nh->lock) != 0)
        return -EIO;
    int rc = nh->nbd == NULL ? -EIO : wb_drain(nh, "flush");
    if (rc != 0) {
        /* a write of this barrier was lost: nothing to make durable */
    } else if (nbd_flush(nh->nbd, 0) != 0) {
        int err = nbd_errno_or(EIO);
        if (dead(nh))
            lose_connection(nh, "flush");
        else
            note_error(nh, "the NBD server failed a flush", err);
        rc = -EIO;
    }
    (void)pthread_mutex_unlock(&nh->lock);
    return rc;
}

static int nbdh_size(void *ctx, uint64_t *size)
{
    nbd_host *nh = ctx;
    if (nh == NULL || size == NULL)
        return -EINVAL;
    if (pthread_mutex_lock(&nh->lock) != 0)
        return -EIO;
    int rc = nh->nbd == NULL ? -EIO : 0;
    if (rc == 0)
        *size = nh->image_bytes;
    (void)pthread_mutex_unlock(&nh->lock);
    return rc;
}

/* Only a new image is sized (the library's create); the export itself
 * keeps its size. The range is zeroed where the server can, so a new
 * image starts on zeros as a new file does. */
static int nbdh_truncate(void *ctx, uint64_t size)
{
    nbd_host *nh = ctx;
    if (nh == NULL)
        return -EINVAL;
    if (nh->read_only)
        return -EBADF;
    if (size != nh->export_bytes &&
        (nh->export_bytes < NBDH_FOOTER || size > nh->export_bytes - NBDH_FOOTER))
        return -ENOSPC;
    if (pthread_mutex_lock(&nh->lock) != 0)
        return -EIO;
    nh->ra_valid = 0;
    int rc = nh->nbd == NULL ? -EIO : wb_drain(nh, "zeroing");
    if (rc == 0 && size > nh->image_bytes && nbd_can_zero(nh->nbd) == 1) {
        uint64_t at = nh->image_bytes;
        while (rc == 0 && at < size) {
            uint64_t n = size - at < (1u << 30) ? size - at : (1u << 30);
            if (nbd_zero(nh->nbd, n, at, 0) != 0) {
                int err = nbd_errno_or(EIO);
                if (dead(nh))
                    lose_connection(nh, "zeroing");
                else
                    note_error(nh, "the NBD server failed to zero", err);
                rc = -EIO;
            }
            at += n;
        }
    }
    if (rc == 0)
        nh->image_bytes = size;
    (void)pthread_mutex_unlock(&nh->lock);
    return rc;
}

static int nbdh_now(void *ctx, int64_t *ns)
{
    struct timespec ts;

    (void)ctx;
    if (ns == NULL)
        return -EINVAL;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return errno > 0 ? -errno : -EIO;
    if (ts.tv_sec < 0 || (int64_t)ts.tv_sec > INT64_MAX / 1000000000 - 1)
        return -EOVERFLOW;
    *ns = (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
    return 0;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Where the image ends, from the footer copy in the export's last 512
 * bytes (or the image's own footer when it fills the export). Anything
 * else: the whole export, which the library then finds is no image. */
static int find_image_end(nbd_host *nh, char *why, size_t why_len)
{
    uint64_t s = nh->export_bytes;
    nh->image_bytes = s;
    if (s < NBDH_FOOTER)
        return 0;
    uint8_t foot[NBDH_FOOTER];
    if (nbd_pread(nh->nbd, foot, sizeof foot, s - NBDH_FOOTER, 0) != 0) {
        int err = nbd_errno_or(EIO);
        fmt(why, why_len, "reading the end of the export: %s", nbd_get_error());
        return -err;
    }
    if (memcmp(foot, "conectix", 8) != 0)
        return 0;
    uint64_t cur = be64(foot + 48); /* VHD "current size" */
    if (cur > s - NBDH_FOOTER)
        return 0;
    uint64_t end = cur + NBDH_FOOTER;
    if (end == s || end <= s - NBDH_FOOTER)
        nh->image_bytes = end;
    return 0;
}

static void set_errno_out(int *sys_errno, int value)
{
    if (sys_errno != NULL)
        *sys_errno = value;
}

static void nbdh_run_jobs(void *ctx, size_t n, void (*fn)(void *arg, size_t i),
                          void *arg)
{
    vd_jobs_run(((nbd_host *)ctx)->jobs, n, fn, arg);
}

static uint64_t nbdh_job_start(void *ctx, void (*fn)(void *arg), void *arg)
{
    return vd_jobs_start(((nbd_host *)ctx)->jobs, fn, arg);
}

static void nbdh_job_wait(void *ctx, uint64_t ticket)
{
    vd_jobs_wait(((nbd_host *)ctx)->jobs, ticket);
}

static vd_err open_fail(nbd_host *nh, vd_err e, int *sys_errno, int err)
{
    set_errno_out(sys_errno, err);
    if (nh->nbd != NULL)
        nbd_close(nh->nbd);
    (void)pthread_mutex_destroy(&nh->lock);
    free(nh);
    return e;
}

int vd_host_nbd_available(void)
{
    return 1;
}

vd_err vd_host_nbd_open(const char *uri, int flags, vd_host **out, int *sys_errno,
                        char *why, size_t why_len)
{
    const int known = VD_HOST_READONLY | VD_HOST_CREATE | VD_HOST_NOLOCK | VD_HOST_PREFAULT;

    set_errno_out(sys_errno, 0);
    fmt(why, why_len, "%s", "");
    if (out != NULL)
        *out = NULL;
    if (uri == NULL || out == NULL || (flags & ~known) != 0 ||
        ((flags & VD_HOST_READONLY) && (flags & VD_HOST_CREATE)))
        return VD_ERR_INVAL;
    int tls = 0;
    vd_err e = vdh_nbd_uri_check(uri, &tls, why, why_len);
    if (e != VD_OK)
        return e;

    nbd_host *nh = calloc(1, sizeof *nh);
    if (nh == NULL) {
        set_errno_out(sys_errno, ENOMEM);
        return VD_ERR_NOMEM;
    }
    if (pthread_mutex_init(&nh->lock, NULL) != 0) {
        free(nh);
        return VD_ERR_NOMEM;
    }
    nh->nbd = nbd_create();
    if (nh->nbd == NULL) {
        fmt(why, why_len, "libnbd: %s", nbd_get_error());
        return open_fail(nh, VD_ERR_NOMEM, sys_errno, ENOMEM);
    }
    if (tls && nbd_supports_tls(nh->nbd) != 1) {
        fmt(why, why_len, "this libnbd was built without TLS, so %s cannot be reached",
            "an nbds:// URI");
        return open_fail(nh, VD_ERR_UNSUPPORTED, sys_errno, 0);
    }
    /* Only TCP and Unix sockets (vsock is refused above as well), and no
     * local files named by the URI's query (TLS key files stay local
     * configuration, not something an image name can point at). */
    if (nbd_set_uri_allow_transports(nh->nbd, LIBNBD_ALLOW_TRANSPORT_TCP |
                                                  LIBNBD_ALLOW_TRANSPORT_UNIX) != 0 ||
        nbd_set_uri_allow_local_file(nh->nbd, false) != 0 ||
        nbd_connect_uri(nh->nbd, uri) != 0) {
        int err = nbd_errno_or(EIO);
        fmt(why, why_len, "%s", nbd_get_error());
        return open_fail(nh, VD_ERR_IO, sys_errno, err);
    }
    int64_t size = nbd_get_size(nh->nbd);
    if (size < 0) {
        int err = nbd_errno_or(EIO);
        fmt(why, why_len, "%s", nbd_get_error());
        return open_fail(nh, VD_ERR_IO, sys_errno, err);
    }
    nh->export_bytes = (uint64_t)size;
    nh->read_only = (flags & VD_HOST_READONLY) ? 1 : 0;
    if (!nh->read_only) {
        if (nbd_is_read_only(nh->nbd) == 1) {
            fmt(why, why_len, "the NBD export is read-only");
            return open_fail(nh, VD_ERR_READONLY, sys_errno, EROFS);
        }
        if (nbd_can_flush(nh->nbd) != 1) {
            fmt(why, why_len, "the NBD server cannot flush (no NBD_CMD_FLUSH), "
                              "so no sync could be made durable; refusing to write");
            return open_fail(nh, VD_ERR_UNSUPPORTED, sys_errno, 0);
        }
    }
    nh->chunk = NBDH_CHUNK;
    int64_t max = nbd_get_block_size(nh->nbd, LIBNBD_SIZE_MAXIMUM);
    if (max > 0 && (uint64_t)max < nh->chunk)
        nh->chunk = (size_t)max;
    if (flags & VD_HOST_CREATE) {
        nh->image_bytes = 0;
    } else {
        int rc = find_image_end(nh, why, why_len);
        if (rc < 0)
            return open_fail(nh, VD_ERR_IO, sys_errno, -rc);
    }

    nh->host.ctx = nh;
    nh->host.read_at = nbdh_read_at;
    nh->host.write_at = nbdh_write_at;
    nh->host.flush = nbdh_flush;
    nh->host.size = nbdh_size;
    nh->host.truncate = nbdh_truncate;
    nh->host.now = nbdh_now;
    nh->host.mem_advise = (flags & VD_HOST_PREFAULT) ? vdh_mem_prefault : vdh_mem_advise;
    if (vd_jobs_new(0, &nh->jobs) == VD_OK) {
        nh->host.run_jobs = nbdh_run_jobs;
        nh->host.job_start = nbdh_job_start;
        nh->host.job_wait = nbdh_job_wait;
    }
    *out = &nh->host;
    return VD_OK;
}

void vd_host_nbd_close(vd_host *host)
{
    if (host == NULL || host->read_at != nbdh_read_at || host->ctx == NULL)
        return;
    nbd_host *nh = host->ctx;
    /* Writes after the library's last flush are not durable anyway, but
     * they were issued: let them land before NBD_CMD_DISC. A failure here
     * loses nothing that was synced. */
    if (nh->nbd != NULL)
        (void)wb_wait(nh, 0, 0, "close");
    if (nh->nbd != NULL) {
        (void)nbd_shutdown(nh->nbd, 0);
        nbd_close(nh->nbd);
    }
    (void)pthread_mutex_destroy(&nh->lock);
    vd_jobs_free(nh->jobs);
    free(nh->ra_buf); /* after nbd_close: no request points into it */
    free(nh);
}

vd_err vd_host_nbd_capacity(const vd_host *host, uint64_t *bytes)
{
    if (host == NULL || bytes == NULL || host->read_at != nbdh_read_at)
        return VD_ERR_INVAL;
    const nbd_host *nh = host->ctx;
    *bytes = nh->export_bytes < NBDH_FOOTER ? 0 : nh->export_bytes - NBDH_FOOTER;
    return VD_OK;
}

const char *vd_host_nbd_last_error(const vd_host *host)
{
    if (host == NULL || host->read_at != nbdh_read_at)
        return NULL;
    const nbd_host *nh = host->ctx;
    return nh->last_error[0] != '\0' ? nh->last_error : NULL;
}
