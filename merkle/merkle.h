/* merkle/ — geometry and node format of the tree of MACs over the disk.
 *
 * Leaves are the data blocks (level 0). A node at level l >= 1 holds the
 * versions of up to MT_FANOUT children at level l-1; the single node at
 * level `height` is the root, whose version lives in the superblock.
 * A version names one encryption of one block: the subkey id, the nonce
 * counter and the AEAD tag. Since the AEAD is keyed and bound to the block
 * number, "the child verifies under the version stored in its parent" is a
 * MAC-tree check (SGX protected files do the same), cheaper than hashing. */
#ifndef VD_MERKLE_H
#define VD_MERKLE_H

#include <stdint.h>

#define MT_FANOUT 128u
#define MT_VERSION_BYTES 32u
#define MT_NODE_BYTES 4096u
#define MT_MAX_HEIGHT 12u

/* A node holds `fanout` versions (MT_FANOUT = 128 by default, which fills
 * the block exactly); with a smaller fan-out the rest of the node block is
 * zero padding, encrypted and authenticated like the rest.
 *
 * On-disk version record (little-endian):
 *   0  u64 keyid   subkey id (0 = block never written: reads as zeros)
 *   8  u64 counter nonce counter under that subkey
 *  16  u8[16] tag  AEAD tag */
typedef struct mt_version {
    uint64_t keyid;
    uint64_t counter;
    uint8_t tag[16];
} mt_version;

_Static_assert(MT_FANOUT * MT_VERSION_BYTES == MT_NODE_BYTES,
               "a node is exactly one block of versions");

void mt_version_encode(const mt_version *v, uint8_t out[MT_VERSION_BYTES]);
void mt_version_decode(mt_version *v, const uint8_t in[MT_VERSION_BYTES]);
int mt_version_is_none(const mt_version *v);
/* Constant-time on the tag; 1 when equal. */
int mt_version_equal(const mt_version *a, const mt_version *b);

static inline void mt_node_get(const uint8_t *node, uint32_t slot,
                               mt_version *v)
{
    mt_version_decode(v, node + (uint64_t)slot * MT_VERSION_BYTES);
}
static inline void mt_node_set(uint8_t *node, uint32_t slot,
                               const mt_version *v)
{
    mt_version_encode(v, node + (uint64_t)slot * MT_VERSION_BYTES);
}

typedef struct mt_geometry {
    uint64_t nblocks;  /* data blocks (level 0) */
    uint32_t fanout;
    uint32_t height;   /* node levels; >= 1 (a root always exists) */
    uint64_t count[MT_MAX_HEIGHT + 1];       /* blocks per level; count[height] == 1 */
    uint64_t level_start[MT_MAX_HEIGHT + 1]; /* first index of level in the node region */
    uint64_t node_blocks;                    /* sum of count[1..height] */
} mt_geometry;

/* 0 on success, -1 when nblocks is 0, fanout < 2, or the tree would need
 * more than MT_MAX_HEIGHT levels. */
int mt_geometry_init(mt_geometry *g, uint64_t nblocks, uint32_t fanout);

/* Index within the node region of node idx at level (1..height). The root
 * comes first and level 1 last, so a top-down write is front to back. */
static inline uint64_t mt_node_index(const mt_geometry *g, uint32_t level,
                                     uint64_t idx)
{
    return g->level_start[level] + idx;
}
static inline uint64_t mt_parent_idx(const mt_geometry *g, uint64_t idx)
{
    return idx / g->fanout;
}
static inline uint32_t mt_parent_slot(const mt_geometry *g, uint64_t idx)
{
    return (uint32_t)(idx % g->fanout);
}

#endif
