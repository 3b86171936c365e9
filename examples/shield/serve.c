/* The host's request loop (serve.h). An honest host but for the hooks. */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define HOST_PROG "vdisk-host-server"

static int log_bytes(host_srv *h, const void *b, size_t n)
{
    const uint8_t *p = b;
    while (h->log_fd >= 0 && n > 0) {
        ssize_t k = write(h->log_fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            fprintf(stderr, HOST_PROG ": log: %s\n", strerror(k < 0 ? errno : EIO));
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int reply(host_srv *h, const sh_req *q, int32_t status, uint32_t len,
                 const void *payload, size_t payload_len)
{
    uint8_t hdr[SH_REPLY_BYTES];
    sh_reply r = {.op = q->op, .id = q->id, .status = status, .length = len};
    sh_reply_encode(&r, hdr);
    atk_on_reply(&h->attack, h->requests, hdr);
    if (sh_write_full(h->sock, hdr, sizeof hdr) != 0 ||
        (payload_len > 0 && sh_write_full(h->sock, payload, payload_len) != 0))
        return -1;
    return 0;
}

static int serve_read(host_srv *h, const sh_req *q, uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < q->length) {
        ssize_t k = pread(h->img_fd, buf + n, q->length - n, (off_t)(q->offset + n));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return reply(h, q, -errno, 0, NULL, 0);
        if (k == 0)
            break; /* end of file: an honest short read */
        n += (size_t)k;
    }
    atk_on_read(&h->attack, h->img_fd, h->requests, q->offset, q->length, buf, &n, cap);
    return reply(h, q, 0, (uint32_t)n, buf, n);
}

static int serve_write(host_srv *h, const sh_req *q, uint8_t *buf)
{
    size_t n = 0;
    if (sh_read_full(h->sock, buf, q->length) != 0)
        return -1;
    if (log_bytes(h, buf, q->length) != 0)
        return -2;
    if (atk_on_write(&h->attack, h->img_fd, h->requests, q->offset, buf, q->length))
        return reply(h, q, 0, q->length, NULL, 0); /* "done" */
    while (n < q->length) {
        ssize_t k = pwrite(h->img_fd, buf + n, q->length - n, (off_t)(q->offset + n));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return reply(h, q, k < 0 ? -errno : -EIO, 0, NULL, 0);
        n += (size_t)k;
    }
    return reply(h, q, 0, (uint32_t)n, NULL, 0);
}

static int serve_one(host_srv *h, const sh_req *q, uint8_t *buf, size_t cap)
{
    uint8_t w[8];
    struct stat st;
    struct timespec ts;
    switch (q->op) {
    case SH_OP_READ:
        return serve_read(h, q, buf, cap);
    case SH_OP_WRITE:
        return serve_write(h, q, buf);
    case SH_OP_FLUSH:
        return reply(h, q, fdatasync(h->img_fd) == 0 ? 0 : -errno, 0, NULL, 0);
    case SH_OP_SIZE: {
        if (fstat(h->img_fd, &st) != 0)
            return reply(h, q, -errno, 0, NULL, 0);
        uint64_t size = (uint64_t)st.st_size;
        atk_on_size(&h->attack, h->requests, &size);
        sh_put_le64(w, size);
        return reply(h, q, 0, 8, w, 8);
    }
    case SH_OP_TRUNCATE:
        if (q->offset > INT64_MAX)
            return reply(h, q, -EFBIG, 0, NULL, 0);
        return reply(h, q, ftruncate(h->img_fd, (off_t)q->offset) == 0 ? 0 : -errno, 0,
                     NULL, 0);
    case SH_OP_NOW: {
        if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
            return reply(h, q, -errno, 0, NULL, 0);
        int64_t ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        atk_on_now(&h->attack, h->requests, &ns);
        sh_put_le64(w, (uint64_t)ns);
        return reply(h, q, 0, 8, w, 8);
    }
    default:
        return -1; /* sh_req_decode let through only known ops */
    }
}

int host_serve(host_srv *h)
{
    uint8_t hdr[SH_REQ_BYTES];
    size_t cap = SH_IO_MAX + ATK_BLOCK; /* room for a long-read attack */
    uint8_t *buf = malloc(cap);
    int rc = -1;
    sh_req q;
    if (!buf) {
        fprintf(stderr, HOST_PROG ": out of memory\n");
        return -1;
    }
    for (;;) {
        ssize_t k = read(h->sock, hdr, 1);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0 || (k < 0 && errno == ECONNRESET)) {
            rc = 0; /* the shield hung up (perhaps leaving a reply unread) */
            break;
        }
        if (k < 0 || sh_read_full(h->sock, hdr + 1, sizeof hdr - 1) != 0) {
            fprintf(stderr, HOST_PROG ": request %" PRIu64 ": truncated header\n",
                    h->requests + 1);
            break;
        }
        if (log_bytes(h, hdr, sizeof hdr) != 0)
            break;
        h->requests++;
        if (sh_req_decode(&q, hdr) != 0) {
            fprintf(stderr, HOST_PROG ": request %" PRIu64 ": malformed header\n",
                    h->requests);
            break;
        }
        int s = serve_one(h, &q, buf, cap);
        if (s != 0) {
            /* -1: the shield hung up, as it may after refusing a reply;
             * -2: our log failed, and the run proves nothing without it. */
            rc = s == -1 ? 0 : -1;
            break;
        }
    }
    free(buf);
    return rc;
}
