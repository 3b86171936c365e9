/* vd_fsck internals (libvdisk/fat/check*.c):
 *   check.c        driver: scrub, mount, phases, repair decision, report
 *   check_table.c  FAT copies, lost clusters, FSInfo, dirty flag, writing
 *                  the repaired table back
 *   check_tree.c   directory walk: entries, long names, "." and "..",
 *                  chains, cross-links, sizes, quarantine of bad clusters
 * The check reads the volume only through fat_dev_* after asking the bad
 * list (from the scrub) whether the bytes are authentic, so it never
 * touches a block that failed; it works on an in-memory copy of the FAT
 * and a list of directory-entry edits, which are written only when the
 * mode says so (all or nothing, see check.c). */
#ifndef VD_FAT_CHECK_INTERNAL_H
#define VD_FAT_CHECK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fat/fat_internal.h"
#include "vdisk/check.h"
#include "vdisk/vdisk.h"

/* scrub.c (also declared in image_internal.h, which the FAT layer cannot
 * include): while on, a failing tree node does not fail the handle (the
 * check knows the bad ranges and keeps away from them). */
vd_err vd_image_tolerate_nodes(vd_image *img, int on);

#define CHK_NONE 0xFFFFFFFFu
#define CHK_PATH_MAX 4096u

typedef struct chk_bad {
    vd_bad_range r;
    int reported;  /* named with an owner by the walk */
    int fat1;      /* in FAT copy 1, rewritable from copy 2 */
    int discarded; /* a bad node's range reset to never written */
    size_t prob;   /* its problem (c->probs) once reported */
} chk_bad;

typedef struct chk_file {
    uint32_t parent; /* index of the directory holding it; CHK_NONE: root */
    uint32_t first;  /* first cluster after repair */
    uint32_t size;   /* size after repair */
    uint32_t nclus;  /* chain length after repair */
    uint8_t is_dir;
    uint64_t ent_off; /* byte offset of the short entry in the volume */
    uint8_t raw[32];  /* the short entry as found */
    char *name;       /* UTF-8 component */
} chk_file;

typedef struct chk_edit {
    uint64_t off; /* 32-byte directory slot */
    uint8_t e[32];
} chk_edit;

typedef struct chk_prob {
    vd_fsck_kind kind;
    int safe; /* 1 safe, 0 needs VD_FSCK_ALL, -1 cannot be repaired */
    int have_block;
    vd_bad_range r;
    char *path, *what, *action;
} chk_prob;

typedef struct chk {
    vd_fs *fs;
    vd_image *img;
    const vd_fsck_opts *o;
    vd_fsck_result *res;
    chk_bad *bad;
    size_t nbad, capbad;
    uint32_t nent;        /* FAT entries: nclusters + 2 */
    uint32_t *fat;        /* working copy, repairs applied */
    uint32_t *disk[2];    /* each copy as read (for diffs); NULL if unreadable */
    uint8_t *copy_bad[2]; /* per entry of each copy: failed authentication */
    uint32_t disk_free;   /* free clusters in the table as found */
    uint32_t *owner;      /* file index + 1 per cluster, 0 = none */
    chk_file *files;
    size_t nfiles, capfiles;
    chk_edit *edits;
    size_t nedits, capedits;
    uint32_t *eslot; /* edits by offset (check.c), capeslot a power of 2 */
    size_t capeslot;
    uint64_t *zero; /* bad data blocks to overwrite with zeros */
    size_t nzero, capzero;
    int unsafe;          /* a problem only VD_FSCK_ALL may repair */
    int persist;         /* decided: write the repairs */
    int fatal;           /* the structure cannot be walked: repair nothing */
    uint32_t fat1_bad;   /* bad blocks in FAT copy 1 that copy 2 can replace */
    uint32_t renames;    /* FSCKnnnn.nnn names handed out */
    int fat_changed;     /* working FAT differs from copy 0 as read */
    uint32_t fsinfo_sec; /* from the boot sector; 0 = none */
    uint32_t fsinfo_free, fsinfo_next;
    int fsinfo_ok;     /* FSInfo sector well formed */
    int bs_dirty;      /* boot sector's dirty byte set */
    int root_label;    /* the root directory holds a valid volume label */
    uint8_t label[11]; /* that label */
    int boot_fix;      /* boot sector (label, dirty byte) or its backup to rewrite */
    uint8_t boot[512]; /* the boot sector as it must be */
    chk_prob *probs;
    size_t nprobs, capprobs;
    char *pathbuf;
} chk;

/* A problem found (safe: 1 safe, 0 needs VD_FSCK_ALL, -1 cannot be
 * repaired): recorded, and reported once the repair decision is known. */
vd_err chk_problem(chk *c, vd_fsck_kind kind, int safe, const char *path,
                   const vd_bad_range *r, const char *what, const char *action);

/* Does [off, off + len) of the volume touch a bad block? Returns the
 * range or NULL. */
chk_bad *chk_bad_find(chk *c, uint64_t off, uint64_t len);
/* Read volume bytes known to be authentic: VD_ERR_AUTH, without touching
 * the image, when they are not. */
vd_err chk_read(chk *c, uint64_t off, void *buf, size_t len);
/* "/dir/name" of file i into c->pathbuf. */
const char *chk_path(chk *c, uint32_t i);
vd_err chk_edit_add(chk *c, uint64_t off, const uint8_t e[32]);
/* Cluster c's data is (partly) in a bad block. */
chk_bad *chk_clus_bad(chk *c, uint32_t clus);

static inline uint32_t chk_fat_get(const chk *c, uint32_t i)
{
    return c->fat[i] & 0x0FFFFFFFu;
}
/* Keeps the reserved top 4 bits as found. */
static inline void chk_fat_set(chk *c, uint32_t i, uint32_t v)
{
    c->fat[i] = (c->fat[i] & 0xF0000000u) | (v & 0x0FFFFFFFu);
}

/* check_table.c */
vd_err chk_table_load(chk *c);
vd_err chk_table_lost(chk *c);
vd_err chk_table_summary(chk *c);
vd_err chk_table_write(chk *c);
/* check_tree.c */
vd_err chk_tree_walk(chk *c);

#endif
