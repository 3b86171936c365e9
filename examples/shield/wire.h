/* The shield's wire format (docs/SHIELD.md, "Message format"): how the
 * trusted side asks the untrusted host for the vd_host operations, over
 * one stream socket, one request at a time.
 *
 * Request: a 20-byte header, then (WRITE only) `length` payload bytes.
 *   0  u8   op       SH_OP_*
 *   1  u8×3 zero
 *   4  u32  id       request number, 1, 2, 3... (echoed in the reply)
 *   8  u64  offset   READ/WRITE: byte offset; TRUNCATE: the new size; else 0
 *   16 u32  length   READ: bytes wanted; WRITE: payload bytes; else 0
 * Reply: a 16-byte header, then the payload its op defines.
 *   0  u8   op       the request's op
 *   1  u8×3 zero
 *   4  u32  id       the request's id
 *   8  i32  status   0, or a negative errno (-4095..-1)
 *   12 u32  length   READ: payload bytes that follow (<= asked);
 *                    WRITE: bytes written (<= asked), no payload;
 *                    SIZE/NOW: 8, then a u64 size / i64 ns payload;
 *                    FLUSH/TRUNCATE: 0; any op with status != 0: 0
 * Every integer is little-endian and every field is encoded and decoded
 * byte by byte: a buffer from the other side is never cast to a struct.
 * Whoever receives a header checks it (sh_req_check / sh_reply_check)
 * before it trusts any field; the trusted side also checks the sizes and
 * lengths against what it asked (chan.c). */
#ifndef SHIELD_WIRE_H
#define SHIELD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define SH_REQ_BYTES 20u
#define SH_REPLY_BYTES 16u
/* Largest READ/WRITE payload in one message; the trusted side splits
 * bigger transfers, the host refuses bigger requests. */
#define SH_IO_MAX (1u << 20)
#define SH_ERRNO_MAX 4095

enum sh_op {
    SH_OP_READ = 1,
    SH_OP_WRITE = 2,
    SH_OP_FLUSH = 3,
    SH_OP_SIZE = 4,
    SH_OP_TRUNCATE = 5,
    SH_OP_NOW = 6
};

typedef struct sh_req {
    uint8_t op;
    uint32_t id;
    uint64_t offset;
    uint32_t length;
} sh_req;

typedef struct sh_reply {
    uint8_t op;
    uint32_t id;
    int32_t status;
    uint32_t length;
} sh_reply;

void sh_put_le32(uint8_t *p, uint32_t v);
void sh_put_le64(uint8_t *p, uint64_t v);
uint32_t sh_get_le32(const uint8_t *p);
uint64_t sh_get_le64(const uint8_t *p);

void sh_req_encode(const sh_req *r, uint8_t out[SH_REQ_BYTES]);
/* Decode and check a request header (op known, padding zero, lengths
 * within SH_IO_MAX and zero where the op has none): 0 or -1. */
int sh_req_decode(sh_req *r, const uint8_t in[SH_REQ_BYTES]);

void sh_reply_encode(const sh_reply *r, uint8_t out[SH_REPLY_BYTES]);
/* Decode a reply header and check it against the request it answers:
 * op and id echoed, padding zero, status 0 or -1..-SH_ERRNO_MAX, length
 * as the op allows (see above). 0 or -1; on -1 nothing of it may be
 * used. */
int sh_reply_decode_check(sh_reply *r, const uint8_t in[SH_REPLY_BYTES],
                          const sh_req *asked);

/* Read / write exactly n bytes on a stream fd (EINTR retried; the write
 * never raises SIGPIPE). 0, or -1 on error or end of stream. */
int sh_read_full(int fd, void *buf, size_t n);
int sh_write_full(int fd, const void *buf, size_t n);

const char *sh_op_name(uint8_t op);

#endif
