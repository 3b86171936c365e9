#include "merkle.h"

#include <string.h>

#include "../libvdisk/endian.h"

int mt_geometry_init(mt_geometry *g, uint64_t nblocks, uint32_t fanout)
{
    memset(g, 0, sizeof *g);
    if (nblocks == 0 || fanout < 2)
        return -1;
    g->nblocks = nblocks;
    g->fanout = fanout;
    g->count[0] = nblocks;
    uint32_t h = 0;
    /* Even one data block gets a root node: the superblock always names a
     * root, which keeps the read path uniform. */
    do {
        if (h == MT_MAX_HEIGHT)
            return -1;
        h++;
        g->count[h] = g->count[h - 1] / fanout + (g->count[h - 1] % fanout != 0);
    } while (g->count[h] > 1);
    g->height = h;
    uint64_t at = 0;
    for (uint32_t l = h; l >= 1; l--) {
        g->level_start[l] = at;
        at += g->count[l];
    }
    g->node_blocks = at;
    return 0;
}

void mt_version_encode(const mt_version *v, uint8_t out[MT_VERSION_BYTES])
{
    vd_put_le64(out, v->keyid);
    vd_put_le64(out + 8, v->counter);
    memcpy(out + 16, v->tag, 16);
}

void mt_version_decode(mt_version *v, const uint8_t in[MT_VERSION_BYTES])
{
    v->keyid = vd_get_le64(in);
    v->counter = vd_get_le64(in + 8);
    memcpy(v->tag, in + 16, 16);
}

int mt_version_is_none(const mt_version *v)
{
    return v->keyid == 0;
}

int mt_version_equal(const mt_version *a, const mt_version *b)
{
    uint8_t d = 0;
    for (unsigned i = 0; i < 16; i++)
        d |= (uint8_t)(a->tag[i] ^ b->tag[i]);
    return a->keyid == b->keyid && a->counter == b->counter && d == 0;
}
