/* vd_host over the socket: one request, one checked reply (wire.h). */
#include "chan.h"

#include <errno.h>
#include <string.h>

#include "wire.h"

void sh_chan_init(sh_chan *ch, int fd)
{
    memset(ch, 0, sizeof *ch);
    ch->fd = fd;
    ch->next_id = 1;
}

static int chan_refuse(sh_chan *ch)
{
    ch->broken = 1;
    ch->rejected++;
    return -EIO;
}

/* Send one request (with the WRITE payload) and read and check its reply
 * header. On success the reply's payload, if any, is still in the stream
 * and is exactly rep->length bytes (checked against what was asked). */
static int chan_call(sh_chan *ch, uint8_t op, uint64_t off, uint32_t len,
                     const void *payload, sh_reply *rep)
{
    uint8_t hdr[SH_REQ_BYTES], rhdr[SH_REPLY_BYTES];
    sh_req req = {.op = op, .id = ch->next_id++, .offset = off, .length = len};
    if (ch->broken)
        return -EIO;
    ch->requests++;
    sh_req_encode(&req, hdr);
    if (sh_write_full(ch->fd, hdr, sizeof hdr) != 0 ||
        (op == SH_OP_WRITE && len > 0 && sh_write_full(ch->fd, payload, len) != 0))
        return chan_refuse(ch); /* the host went away */
    if (sh_read_full(ch->fd, rhdr, sizeof rhdr) != 0)
        return chan_refuse(ch);
    if (sh_reply_decode_check(rep, rhdr, &req) != 0)
        return chan_refuse(ch);
    return 0;
}

/* The 8-byte payload of a SIZE or NOW reply. */
static int chan_word(sh_chan *ch, uint8_t op, uint64_t *out)
{
    sh_reply rep;
    uint8_t w[8];
    int rc = chan_call(ch, op, 0, 0, NULL, &rep);
    if (rc != 0)
        return rc;
    if (rep.status != 0)
        return rep.status;
    if (sh_read_full(ch->fd, w, sizeof w) != 0)
        return chan_refuse(ch);
    *out = sh_get_le64(w);
    return 0;
}

static int chan_read_at(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    sh_chan *ch = ctx;
    uint8_t *p = buf;
    *done = 0;
    while (*done < len) {
        uint32_t want = len - *done > SH_IO_MAX ? SH_IO_MAX : (uint32_t)(len - *done);
        sh_reply rep;
        if (off + *done < off)
            return -EINVAL;
        int rc = chan_call(ch, SH_OP_READ, off + *done, want, NULL, &rep);
        if (rc != 0)
            return rc;
        if (rep.status != 0)
            return rep.status;
        /* rep.length <= want was checked: the copy stays inside buf. */
        if (sh_read_full(ch->fd, p + *done, rep.length) != 0)
            return chan_refuse(ch);
        *done += rep.length;
        if (rep.length < want)
            break; /* short: the library decides (it asks for exact counts) */
    }
    return 0;
}

static int chan_write_at(void *ctx, uint64_t off, const void *buf, size_t len,
                         size_t *done)
{
    sh_chan *ch = ctx;
    const uint8_t *p = buf;
    *done = 0;
    while (*done < len) {
        uint32_t want = len - *done > SH_IO_MAX ? SH_IO_MAX : (uint32_t)(len - *done);
        sh_reply rep;
        if (off + *done < off)
            return -EINVAL;
        int rc = chan_call(ch, SH_OP_WRITE, off + *done, want, p + *done, &rep);
        if (rc != 0)
            return rc;
        if (rep.status != 0)
            return rep.status;
        *done += rep.length;
        /* The file grows by what was written past its end. */
        if (ch->size_known && off + *done > ch->size_bytes)
            ch->size_bytes = off + *done;
        if (rep.length < want)
            break;
    }
    return 0;
}

static int chan_flush(void *ctx)
{
    sh_chan *ch = ctx;
    sh_reply rep;
    int rc = chan_call(ch, SH_OP_FLUSH, 0, 0, NULL, &rep);
    return rc != 0 ? rc : rep.status;
}

static int chan_size(void *ctx, uint64_t *size)
{
    sh_chan *ch = ctx;
    uint64_t v;
    int rc = chan_word(ch, SH_OP_SIZE, &v);
    if (rc != 0)
        return rc;
    /* Nobody but us changes the image while we hold it: once we know
     * its size, any other answer is a lie. The first answer of a run is
     * checked by the library against the footer and the header. */
    if (ch->size_known && v != ch->size_bytes)
        return chan_refuse(ch);
    ch->size_known = 1;
    ch->size_bytes = v;
    *size = v;
    return 0;
}

static int chan_truncate(void *ctx, uint64_t size)
{
    sh_chan *ch = ctx;
    sh_reply rep;
    int rc = chan_call(ch, SH_OP_TRUNCATE, size, 0, NULL, &rep);
    if (rc != 0)
        return rc;
    if (rep.status != 0)
        return rep.status;
    ch->size_known = 1;
    ch->size_bytes = size;
    return 0;
}

int sh_chan_now(void *ctx, int64_t *ns)
{
    uint64_t v;
    int rc = chan_word(ctx, SH_OP_NOW, &v);
    if (rc != 0)
        return rc;
    /* Any value is well-formed: time is untrusted and only stamps files;
     * the library clamps it into FAT's 1980..2107. */
    *ns = v <= INT64_MAX ? (int64_t)v : -(int64_t)(UINT64_MAX - v) - 1;
    return 0;
}

vd_host sh_chan_host(sh_chan *ch)
{
    vd_host h = {.ctx = ch,
                 .read_at = chan_read_at,
                 .write_at = chan_write_at,
                 .flush = chan_flush,
                 .size = chan_size,
                 .truncate = chan_truncate,
                 .now = sh_chan_now};
    return h;
}
