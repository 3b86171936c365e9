/* The trusted side's vd_host: every callback is a request to the
 * untrusted host process over a stream socket (wire.h), and every reply
 * is checked before any of it is used (docs/SHIELD.md, "What the shield
 * checks"). A reply that breaks the format makes the callback fail with
 * -EIO, which the library reports as VD_ERR_IO; the channel then stays
 * failed, since after a malformed reply the stream can no longer be
 * trusted to be in step. */
#ifndef SHIELD_CHAN_H
#define SHIELD_CHAN_H

#include <stdint.h>

#include <vdisk/vdisk.h>

typedef struct sh_chan {
    int fd;
    uint32_t next_id;
    int broken;     /* a reply broke the protocol: every call -EIO */
    int size_known; /* size_bytes is what the host must answer next */
    uint64_t size_bytes;
    uint64_t requests; /* counters for the run summary */
    uint64_t rejected; /* replies refused by the checks */
} sh_chan;

void sh_chan_init(sh_chan *ch, int fd);
/* A vd_host whose ctx is ch. */
vd_host sh_chan_host(sh_chan *ch);
/* The host's clock, for vd_fs_opts.now (ctx = the sh_chan). */
int sh_chan_now(void *ctx, int64_t *ns);

#endif
