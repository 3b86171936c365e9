/* The untrusted host's attacks (docs/SHIELD.md, "Attack modes"). Each is
 * a hook on one kind of reply; a trigger decides which eligible request
 * it hits: eligible requests are counted from request number after + 1,
 * and the attack fires on the nth of them (one-shot modes), or on that
 * one and every later one (drop-writes, size-lie, time-back). */
#ifndef SHIELD_ATTACK_H
#define SHIELD_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#define ATK_BLOCK 4096u

typedef enum atk_mode {
    ATK_NONE = 0,
    ATK_FLIP,        /* flip one bit of a read reply */
    ATK_OTHER_BLOCK, /* answer a block read with another block's bytes */
    ATK_REPLAY,      /* answer a block read with an older version of it */
    ATK_DROP_WRITES, /* acknowledge writes without doing them */
    ATK_SHORT_READ,  /* return half of what a read asked for */
    ATK_LONG_READ,   /* return 4096 bytes more than a read asked for */
    ATK_SIZE_LIE,    /* add size_delta to the size */
    ATK_TIME_BACK,   /* a clock that runs backwards and jumps to absurd values */
    ATK_ROLLBACK,    /* restore an old copy of the image before serving */
    ATK_BAD_REPLY    /* break one field of a reply header (atk_field) */
} atk_mode;

/* Which blocks a read/write attack may hit (from the public header). */
typedef enum atk_region {
    REG_ANY = 0,
    REG_SUPER, /* the two superblocks */
    REG_NODE,  /* Merkle nodes */
    REG_DATA,  /* data blocks */
    REG_LOG    /* the leaf-version log (format 6) */
} atk_region;

/* Which field bad-reply breaks. */
typedef enum atk_field {
    FLD_OP = 0, /* echo another op */
    FLD_ID,     /* echo another id */
    FLD_STATUS, /* a positive status */
    FLD_ERRNO,  /* a status below -4095 */
    FLD_PAD,    /* nonzero padding */
    FLD_ERRLEN, /* a failure that claims a payload */
    FLD_LENGTH  /* length 0xFFFFFFFF */
} atk_field;

typedef struct atk_version {
    uint64_t off;
    uint8_t *bytes; /* ATK_BLOCK bytes */
} atk_version;

typedef struct atk {
    atk_mode mode;
    atk_region region;
    uint64_t after;
    uint64_t nth;
    int64_t size_delta;
    atk_field field;
    uint64_t eligible; /* eligible requests seen so far */
    uint64_t fired;
    /* Layout, from the image's public header (0 until it parses). */
    uint64_t log_start, node_start, data_start, total_blocks;
    /* Every block-aligned block ever written, in order (replay). */
    atk_version *hist;
    size_t nhist, caphist;
    int64_t clock_ns; /* time-back's clock */
    uint64_t clock_calls;
} atk;

int atk_mode_parse(const char *s, atk_mode *out);
int atk_region_parse(const char *s, atk_region *out);
const char *atk_mode_name(atk_mode m);
void atk_free(atk *a);

/* The hooks. seq is the request's number (1, 2, ...); img_fd the image. */
/* A read of [off, off + asked): buf holds *n bytes (*n <= asked, short at
 * the end of the file) and has room for cap >= asked + ATK_BLOCK. May
 * change the bytes and *n. */
void atk_on_read(atk *a, int img_fd, uint64_t seq, uint64_t off, uint32_t asked,
                 uint8_t *buf, size_t *n, size_t cap);
/* A write: records it; returns 1 when it must be dropped (acknowledged
 * but not written). */
int atk_on_write(atk *a, int img_fd, uint64_t seq, uint64_t off, const uint8_t *buf,
                 size_t len);
void atk_on_size(atk *a, uint64_t seq, uint64_t *size);
void atk_on_now(atk *a, uint64_t seq, int64_t *ns);
/* Any reply header, encoded, just before it is sent. */
void atk_on_reply(atk *a, uint64_t seq, uint8_t hdr[16]);
int atk_field_parse(const char *s, atk_field *out);

#endif
