/* Write-back block cache with a fixed memory budget.
 *
 * Holds plaintext of data blocks and Merkle nodes, keyed by physical block
 * number. Memory is allocated once at open (budget / 4 KiB entries) and
 * never grows with the image size. Clean, unpinned entries are evicted in
 * LRU order; dirty data entries stay until a sync writes them. */
#ifndef VD_CACHE_H
#define VD_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "merkle/merkle.h"

#define VC_NONE UINT32_MAX

typedef struct vc_entry {
    uint64_t phys;
    uint64_t idx;        /* index within its level (lbn for data) */
    mt_version version;  /* version the block holds on disk (verified) */
    uint32_t hnext;      /* hash chain */
    uint32_t prev, next; /* LRU list, most recent at head */
    uint32_t pins;
    uint32_t dpos;       /* index in vd_cache.dirty while dirty */
    uint8_t level;       /* 0 data, >= 1 node */
    uint8_t valid, dirty;
    uint8_t meta;        /* dirty with file-system metadata (image_fs.h):
                            reaches its place through the redo journal */
    uint8_t *buf;        /* VDF_BLOCK bytes */
    /* A level-1 node: its slots holding versions of spilled data (spill.c),
     * which no record names yet; the node stays pinned while any is set. */
    uint64_t spill[2];
    uint8_t logged;      /* a level-1 node holding versions only the log
                            names (format 6); pinned while so */
    uint32_t spos;       /* index in vd_image.spill_nodes while held */
} vc_entry;

typedef struct vd_cache {
    vc_entry *e;
    uint32_t n;          /* entries */
    uint32_t *bucket;    /* hash heads */
    uint32_t nbuckets;   /* power of two */
    uint32_t head, tail; /* LRU */
    uint32_t nfree_head; /* free list through hnext */
    uint32_t ndirty;
    uint32_t *dirty;     /* the ndirty dirty entries, in no order: a sync
                            visits them without walking the whole cache */
    uint8_t *mem;        /* all block buffers */
    uint32_t touched;    /* entries [0, touched) were ever handed out: only
                            they can hold plaintext to wipe */
} vd_cache;

static inline int vc_spilled(const vc_entry *e, uint32_t slot)
{
    return (int)((e->spill[slot / 64] >> (slot % 64)) & 1u);
}

static inline int vc_any_spilled(const vc_entry *e)
{
    return (e->spill[0] | e->spill[1]) != 0;
}

/* Held in vd_image.spill_nodes: spilled slots, logged ones, or both. */
static inline int vc_held(const vc_entry *e)
{
    return vc_any_spilled(e) || e->logged;
}

/* 0 / -1 (out of memory). nentries >= 16. */
int vc_init(vd_cache *c, uint32_t nentries);
/* Memory for block buffers (the cache's, the commit buffers): 2 MiB
 * aligned from 2 MiB on, so the host can back it with huge pages
 * (vd_host.mem_advise), block aligned below that. free() releases it. */
uint8_t *vc_mem_alloc(size_t bytes);
void vc_destroy(vd_cache *c);

/* Entry index for phys, or VC_NONE. Touches LRU. */
uint32_t vc_lookup(vd_cache *c, uint64_t phys);
/* A free or evicted (clean, unpinned) entry, unlinked from the hash and
 * LRU; VC_NONE when every entry is dirty or pinned. */
uint32_t vc_take(vd_cache *c);
/* Insert a taken entry whose fields the caller filled. */
void vc_insert(vd_cache *c, uint32_t i);
/* Drop an entry (e.g. a block that failed verification). */
void vc_drop(vd_cache *c, uint32_t i);
void vc_set_dirty(vd_cache *c, uint32_t i, int dirty);
/* Number of entries that could be taken right now, counted only up to
 * limit (the walk stops there: a sync asks for what it needs, not for a
 * census of the whole cache). */
uint32_t vc_available(const vd_cache *c, uint32_t limit);

#endif
