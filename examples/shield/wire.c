/* Encoding, decoding and checking of the wire format of wire.h. */
#include "wire.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

void sh_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void sh_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t sh_get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t sh_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void sh_req_encode(const sh_req *r, uint8_t out[SH_REQ_BYTES])
{
    out[0] = r->op;
    out[1] = out[2] = out[3] = 0;
    sh_put_le32(out + 4, r->id);
    sh_put_le64(out + 8, r->offset);
    sh_put_le32(out + 16, r->length);
}

int sh_req_decode(sh_req *r, const uint8_t in[SH_REQ_BYTES])
{
    r->op = in[0];
    r->id = sh_get_le32(in + 4);
    r->offset = sh_get_le64(in + 8);
    r->length = sh_get_le32(in + 16);
    if (in[1] || in[2] || in[3])
        return -1;
    switch (r->op) {
    case SH_OP_READ:
    case SH_OP_WRITE:
        return r->length <= SH_IO_MAX ? 0 : -1;
    case SH_OP_TRUNCATE:
        return r->length == 0 ? 0 : -1;
    case SH_OP_FLUSH:
    case SH_OP_SIZE:
    case SH_OP_NOW:
        return r->length == 0 && r->offset == 0 ? 0 : -1;
    default:
        return -1;
    }
}

void sh_reply_encode(const sh_reply *r, uint8_t out[SH_REPLY_BYTES])
{
    out[0] = r->op;
    out[1] = out[2] = out[3] = 0;
    sh_put_le32(out + 4, r->id);
    sh_put_le32(out + 8, (uint32_t)r->status);
    sh_put_le32(out + 12, r->length);
}

int sh_reply_decode_check(sh_reply *r, const uint8_t in[SH_REPLY_BYTES],
                          const sh_req *asked)
{
    uint32_t raw_status = sh_get_le32(in + 8);
    r->op = in[0];
    r->id = sh_get_le32(in + 4);
    /* Two's complement by arithmetic, not by a cast of an out-of-range
     * value (implementation-defined in C11). */
    r->status = raw_status <= INT32_MAX ? (int32_t)raw_status
                                        : -(int32_t)(UINT32_MAX - raw_status) - 1;
    r->length = sh_get_le32(in + 12);
    if (in[1] || in[2] || in[3] || r->op != asked->op || r->id != asked->id)
        return -1;
    if (r->status > 0 || r->status < -SH_ERRNO_MAX)
        return -1;
    if (r->status != 0)
        return r->length == 0 ? 0 : -1;
    switch (r->op) {
    case SH_OP_READ:
    case SH_OP_WRITE:
        return r->length <= asked->length ? 0 : -1;
    case SH_OP_SIZE:
    case SH_OP_NOW:
        return r->length == 8 ? 0 : -1;
    default:
        return r->length == 0 ? 0 : -1;
    }
}

int sh_read_full(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int sh_write_full(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

const char *sh_op_name(uint8_t op)
{
    static const char *const names[] = {"?",    "read",     "write", "flush",
                                        "size", "truncate", "now"};
    return op < sizeof names / sizeof names[0] ? names[op] : "?";
}
