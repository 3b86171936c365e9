/* The host's attacks (attack.h). The host is the adversary: it reads
 * the image's public header to aim at a region, as any attacker could. */
#include "attack.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wire.h"

#define HOST_PROG "vdisk-host-server"

static const char *const mode_names[] = {
    "none",      "flip",     "other-block", "replay",   "drop-writes", "short-read",
    "long-read", "size-lie", "time-back",   "rollback", "bad-reply"};

static const char *const field_names[] = {"op",  "id",     "status", "errno",
                                          "pad", "errlen", "length"};

int atk_field_parse(const char *s, atk_field *out)
{
    for (size_t i = 0; i < sizeof field_names / sizeof field_names[0]; i++)
        if (strcmp(s, field_names[i]) == 0) {
            *out = (atk_field)i;
            return 0;
        }
    return -1;
}

int atk_mode_parse(const char *s, atk_mode *out)
{
    for (size_t i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
        if (strcmp(s, mode_names[i]) == 0) {
            *out = (atk_mode)i;
            return 0;
        }
    return -1;
}

int atk_region_parse(const char *s, atk_region *out)
{
    static const char *const names[] = {"any", "super", "node", "data", "log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (atk_region)i;
            return 0;
        }
    return -1;
}

const char *atk_mode_name(atk_mode m)
{
    return (size_t)m < sizeof mode_names / sizeof mode_names[0] ? mode_names[m] : "?";
}

void atk_free(atk *a)
{
    for (size_t i = 0; i < a->nhist; i++)
        free(a->hist[i].bytes);
    free(a->hist);
    a->hist = NULL;
    a->nhist = a->caphist = 0;
}

/* The public header: magic "VDISKIMG", journal_blocks at 64,
 * journal_start at 88, node_start at 96, data_start at 104, total_blocks
 * at 112; the log lies between the journal areas and the nodes
 * (docs/FORMAT.md §4). */
static int layout_load(atk *a, int img_fd)
{
    uint8_t h[128];
    if (a->total_blocks)
        return 0;
    if (pread(img_fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
        memcmp(h, "VDISKIMG", 8) != 0)
        return -1;
    uint64_t ns = sh_get_le64(h + 96), ds = sh_get_le64(h + 104),
             tb = sh_get_le64(h + 112);
    uint64_t ls = sh_get_le64(h + 88) + 2 * (uint64_t)sh_get_le32(h + 64);
    if (!(4 <= ns && ns < ds && ds < tb && ls <= ns))
        return -1;
    a->log_start = ls;
    a->node_start = ns;
    a->data_start = ds;
    a->total_blocks = tb;
    return 0;
}

static int in_region(const atk *a, uint64_t blk)
{
    switch (a->region) {
    case REG_SUPER:
        return blk == 2 || blk == 3;
    case REG_NODE:
        return blk >= a->node_start && blk < a->data_start;
    case REG_DATA:
        return blk >= a->data_start && blk < a->total_blocks;
    case REG_LOG:
        return blk >= a->log_start && blk < a->node_start;
    default:
        return 1;
    }
}

/* The first whole block of [off, off + n) inside the region, as an index
 * into the buffer; -1 if none. */
static long region_block(atk *a, int img_fd, uint64_t off, size_t n)
{
    if (a->region != REG_ANY && layout_load(a, img_fd) != 0)
        return -1;
    uint64_t first = (off + ATK_BLOCK - 1) / ATK_BLOCK;
    for (uint64_t b = first; (b + 1) * ATK_BLOCK <= off + n; b++)
        if (in_region(a, b))
            return (long)(b * ATK_BLOCK - off);
    return -1;
}

/* Count an eligible request; 1 when the attack fires on it. */
static int trigger(atk *a, uint64_t seq, int persistent)
{
    if (seq <= a->after)
        return 0;
    a->eligible++;
    if (a->eligible < a->nth || (!persistent && a->eligible > a->nth))
        return 0;
    a->fired++;
    return 1;
}

static void announce(const atk *a, uint64_t seq, const char *op, uint64_t off, size_t len)
{
    if (a->fired == 1)
        fprintf(stderr,
                HOST_PROG ": attack %s: fired at request %" PRIu64 " (%s at %" PRIu64
                          ", %zu bytes)\n",
                atk_mode_name(a->mode), seq, op, off, len);
}

/* The newest recorded version of the block at off that differs from cur. */
/* The newest earlier write of the block at off that differs from cur. For
 * a superblock slot it must also differ in the epoch (bytes 16..23, stored
 * in the clear, docs/FORMAT.md §6): a clean close rewrites the newest
 * record with the same epoch and root, and replaying that copy is no
 * older state, so an attacker after a rollback reaches further back. */
static const uint8_t *older_version(const atk *a, uint64_t off, const uint8_t *cur)
{
    int super = a->region == REG_SUPER;
    for (size_t i = a->nhist; i-- > 0;)
        if (a->hist[i].off == off && memcmp(a->hist[i].bytes, cur, ATK_BLOCK) != 0 &&
            (!super || memcmp(a->hist[i].bytes + 16, cur + 16, 8) != 0))
            return a->hist[i].bytes;
    return NULL;
}

void atk_on_read(atk *a, int img_fd, uint64_t seq, uint64_t off, uint32_t asked,
                 uint8_t *buf, size_t *n, size_t cap)
{
    uint8_t other[ATK_BLOCK];
    long at;
    switch (a->mode) {
    case ATK_FLIP:
        if ((at = region_block(a, img_fd, off, *n)) < 0 || !trigger(a, seq, 0))
            return;
        buf[at + 100] ^= 0x10;
        break;
    case ATK_OTHER_BLOCK: {
        if ((at = region_block(a, img_fd, off, *n)) < 0)
            return;
        uint64_t blk = (off + (uint64_t)at) / ATK_BLOCK;
        /* A neighbour in the same region, with different bytes. */
        uint64_t nb = in_region(a, blk + 1) && a->region != REG_ANY ? blk + 1 : blk - 1;
        if (blk == 0 ||
            pread(img_fd, other, sizeof other, (off_t)(nb * ATK_BLOCK)) !=
                (ssize_t)sizeof other ||
            memcmp(other, buf + at, ATK_BLOCK) == 0 || !trigger(a, seq, 0))
            return;
        memcpy(buf + at, other, ATK_BLOCK);
        break;
    }
    case ATK_REPLAY: {
        if ((at = region_block(a, img_fd, off, *n)) < 0)
            return;
        const uint8_t *old = older_version(a, off + (uint64_t)at, buf + at);
        if (!old || !trigger(a, seq, 0))
            return;
        memcpy(buf + at, old, ATK_BLOCK);
        break;
    }
    case ATK_SHORT_READ:
        if (*n < 2 || region_block(a, img_fd, off, *n) < 0 || !trigger(a, seq, 0))
            return;
        *n /= 2;
        break;
    case ATK_LONG_READ:
        if (*n != asked || cap < (size_t)asked + ATK_BLOCK ||
            region_block(a, img_fd, off, *n) < 0 || !trigger(a, seq, 0))
            return;
        memset(buf + *n, 0xA5, ATK_BLOCK);
        *n += ATK_BLOCK;
        break;
    default:
        return;
    }
    announce(a, seq, "read", off, asked);
}

int atk_on_write(atk *a, int img_fd, uint64_t seq, uint64_t off, const uint8_t *buf,
                 size_t len)
{
    /* Keep every whole block the trusted side ever wrote. */
    for (size_t i = 0; off % ATK_BLOCK == 0 && i + ATK_BLOCK <= len; i += ATK_BLOCK) {
        if (a->nhist == a->caphist) {
            size_t nc = a->caphist ? a->caphist * 2 : 256;
            atk_version *h = realloc(a->hist, nc * sizeof *h);
            if (!h)
                break; /* a poorer attacker, still a working host */
            a->hist = h;
            a->caphist = nc;
        }
        uint8_t *copy = malloc(ATK_BLOCK);
        if (!copy)
            break;
        memcpy(copy, buf + i, ATK_BLOCK);
        a->hist[a->nhist].off = off + i;
        a->hist[a->nhist].bytes = copy;
        a->nhist++;
    }
    if (a->mode != ATK_DROP_WRITES)
        return 0;
    if (a->region != REG_ANY) {
        /* Drop a write that touches the region at all. */
        if (layout_load(a, img_fd) != 0 || len == 0)
            return 0;
        int hit = 0;
        for (uint64_t b = off / ATK_BLOCK; b <= (off + len - 1) / ATK_BLOCK && !hit; b++)
            hit = in_region(a, b);
        if (!hit)
            return 0;
    }
    if (!trigger(a, seq, 1))
        return 0;
    announce(a, seq, "write", off, len);
    return 1;
}

void atk_on_size(atk *a, uint64_t seq, uint64_t *size)
{
    if (a->mode != ATK_SIZE_LIE || !trigger(a, seq, 1))
        return;
    announce(a, seq, "size", *size, 8);
    *size += (uint64_t)a->size_delta; /* wraps for a negative delta */
}

void atk_on_now(atk *a, uint64_t seq, int64_t *ns)
{
    static const int64_t absurd[] = {-1, INT64_MIN, INT64_MAX, 0, 4102444800000000000};
    if (a->mode != ATK_TIME_BACK || !trigger(a, seq, 1))
        return;
    announce(a, seq, "now", 0, 8);
    /* Every third answer is absurd; the others go back a day each. */
    a->clock_calls++;
    if (a->clock_ns == 0)
        a->clock_ns = *ns;
    a->clock_ns -= 86400ll * 1000000000ll;
    *ns = a->clock_calls % 3 == 0
              ? absurd[(a->clock_calls / 3) % (sizeof absurd / sizeof absurd[0])]
              : a->clock_ns;
}

void atk_on_reply(atk *a, uint64_t seq, uint8_t hdr[16])
{
    if (a->mode != ATK_BAD_REPLY || !trigger(a, seq, 0))
        return;
    fprintf(stderr,
            HOST_PROG ": attack bad-reply: fired at request %" PRIu64 " (field %s)\n",
            seq, field_names[a->field]);
    switch (a->field) {
    case FLD_OP:
        hdr[0] = (uint8_t)(hdr[0] == SH_OP_READ ? SH_OP_WRITE : SH_OP_READ);
        break;
    case FLD_ID:
        sh_put_le32(hdr + 4, sh_get_le32(hdr + 4) + 1);
        break;
    case FLD_STATUS:
        sh_put_le32(hdr + 8, 5);
        break;
    case FLD_ERRNO:
        sh_put_le32(hdr + 8, (uint32_t)-5000);
        break;
    case FLD_PAD:
        hdr[2] = 1;
        break;
    case FLD_ERRLEN:
        sh_put_le32(hdr + 8, (uint32_t)-5); /* -EIO, with a length */
        sh_put_le32(hdr + 12, 8);
        break;
    case FLD_LENGTH:
        sh_put_le32(hdr + 12, UINT32_MAX);
        break;
    }
}
