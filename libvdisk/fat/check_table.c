/* vd_fsck, the table: both FAT copies read and compared, the working copy
 * chosen, lost clusters, the FSInfo free count and next-free hint, the
 * dirty flags (FAT[1]'s clean bit, which this library and Linux keep, and
 * the boot sector's state byte, which Windows and fsck.fat read), and the
 * repaired table written back over every copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endian.h"
#include "fat/check_internal.h"
#include "fat/fat_format.h"
#include "fat/fat_internal.h"

#define BS_STATE_DIRTY 0x01u /* BS_RESERVED1 bit 0 */

static uint64_t copy_off(const chk *c, uint32_t k)
{
    return c->fs->fat_off + (uint64_t)k * c->fs->fat_sectors * c->fs->bps;
}

/* Read FAT number phys as copy k, block by block, so one bad block costs
 * only its entries. */
static vd_err read_copy(chk *c, uint32_t k, uint32_t phys)
{
    c->disk[k] = calloc(c->nent, sizeof(uint32_t));
    c->copy_bad[k] = calloc(c->nent, 1);
    uint8_t *buf = malloc(FAT_BLOCK);
    vd_err e = (!c->disk[k] || !c->copy_bad[k] || !buf) ? VD_ERR_NOMEM : VD_OK;
    uint64_t base = copy_off(c, phys), bytes = (uint64_t)c->nent * FAT_ENTRY_BYTES;
    for (uint64_t pos = 0; e == VD_OK && pos < bytes;) {
        uint64_t off = base + pos;
        uint64_t n = FAT_BLOCK - off % FAT_BLOCK;
        if (n > bytes - pos)
            n = bytes - pos;
        vd_err r = chk_read(c, off, buf, (size_t)n);
        if (r != VD_OK && r != VD_ERR_AUTH) {
            e = r;
            break;
        }
        /* Entries never straddle blocks: copies start sector aligned. */
        for (uint64_t i = 0; i < n / FAT_ENTRY_BYTES; i++) {
            uint64_t ent = pos / FAT_ENTRY_BYTES + i;
            c->disk[k][ent] = r == VD_OK ? vd_get_le32(buf + i * FAT_ENTRY_BYTES) : 0;
            c->copy_bad[k][ent] = r != VD_OK;
        }
        pos += n;
    }
    free(buf);
    return e;
}

/* FAT[0] holds the media byte with every other bit of the 28 set. */
#define FAT0_MARK 0x0FFFFFF0u
static int fat0_ok(uint32_t v)
{
    return (v & FAT0_MARK) == FAT0_MARK;
}

/* How suspicious copy k looks: unreadable entries weigh most, then
 * entries no chain may hold (reserved values, clusters out of range). */
static uint64_t copy_score(const chk *c, uint32_t k)
{
    /* A copy whose first entry is not the media marker is what fsck.fat
     * calls corrupt. */
    uint64_t s = c->copy_bad[k][0] || !fat0_ok(c->disk[k][0]) ? 1000 : 0;
    for (uint32_t i = FAT_FIRST_CLUSTER; i < c->nent; i++) {
        if (c->copy_bad[k][i]) {
            s += 1000;
            continue;
        }
        uint32_t v = c->disk[k][i] & FAT_MASK;
        if (v == FAT_FREE || v == FAT_BAD || v >= FAT_EOC_MIN)
            continue;
        if (v < FAT_FIRST_CLUSTER || v >= c->nent)
            s++;
    }
    return s;
}

vd_err chk_table_load(chk *c)
{
    vd_fs *fs = c->fs;
    c->nent = fs->nclusters + FAT_FIRST_CLUSTER;
    c->fat = malloc((size_t)c->nent * sizeof *c->fat);
    c->owner = calloc(c->nent, sizeof *c->owner);
    if (!c->fat || !c->owner)
        return VD_ERR_NOMEM;
    /* Without mirroring only the active copy counts. */
    uint32_t ncopies = fs->mirror ? (fs->nfats > 2 ? 2 : fs->nfats) : 1;
    for (uint32_t k = 0; k < ncopies; k++) {
        vd_err e = read_copy(c, k, fs->mirror ? k : fs->active_fat);
        if (e != VD_OK)
            return e;
    }
    uint32_t use = 0;
    if (ncopies == 2 && copy_score(c, 1) < copy_score(c, 0))
        use = 1;
    uint32_t other = 1 - use;
    uint32_t differ = 0, lost_both = 0;
    for (uint32_t i = 0; i < c->nent; i++) {
        c->fat[i] = c->disk[use][i];
        if (ncopies < 2)
            continue;
        if (c->copy_bad[use][i]) {
            if (!c->copy_bad[other][i])
                c->fat[i] = c->disk[other][i];
            else
                lost_both++;
        }
        if (c->copy_bad[0][i] || c->copy_bad[1][i] ||
            (c->disk[0][i] & FAT_MASK) != (c->disk[1][i] & FAT_MASK))
            differ++;
    }
    c->disk_free = 0;
    for (uint32_t i = FAT_FIRST_CLUSTER; i < c->nent; i++)
        if (chk_fat_get(c, i) == FAT_FREE)
            c->disk_free++;
    if (lost_both) {
        c->fatal = 1;
        return chk_problem(c, VD_FSCK_P_VOLUME, -1, NULL, NULL,
                           "both FAT copies fail authentication in the same place", NULL);
    }
    if (differ) {
        char what[96], action[64];
        snprintf(what, sizeof what, "the FAT copies differ in %u entries", differ);
        snprintf(action, sizeof action, "copy FAT %u over FAT %u", use + 1, other + 1);
        return chk_problem(c, VD_FSCK_P_FAT_COPIES, 1, NULL, NULL, what, action);
    }
    return VD_OK;
}

vd_err chk_table_lost(chk *c)
{
    uint8_t *pointed = calloc(c->nent, 1);
    if (!pointed)
        return VD_ERR_NOMEM;
    uint32_t lost = 0, heads = 0;
    for (uint32_t i = FAT_FIRST_CLUSTER; i < c->nent; i++) {
        uint32_t v = chk_fat_get(c, i);
        if (v == FAT_FREE || v == FAT_BAD || c->owner[i])
            continue;
        lost++;
        if (v >= FAT_FIRST_CLUSTER && v < c->nent)
            pointed[v] = 1;
    }
    for (uint32_t i = FAT_FIRST_CLUSTER; i < c->nent; i++) {
        uint32_t v = chk_fat_get(c, i);
        if (v == FAT_FREE || v == FAT_BAD || c->owner[i])
            continue;
        if (!pointed[i])
            heads++;
        chk_fat_set(c, i, FAT_FREE);
    }
    free(pointed);
    if (!lost)
        return VD_OK;
    if (!heads)
        heads = 1; /* only loops */
    char what[96];
    snprintf(what, sizeof what,
             "%u lost clusters in %u chains (in use, owned by no file)", lost, heads);
    return chk_problem(c, VD_FSCK_P_LOST, 1, NULL, NULL, what, "free them");
}

static vd_err check_fsinfo(chk *c, uint32_t free_now)
{
    vd_fs *fs = c->fs;
    uint8_t sec[512];
    c->fsinfo_ok = 0;
    if (!c->fsinfo_sec)
        return VD_OK; /* no FSInfo sector at all: nothing to keep right */
    vd_err e = chk_read(c, (uint64_t)c->fsinfo_sec * fs->bps, sec, sizeof sec);
    if (e == VD_ERR_AUTH)
        return VD_OK; /* reported with its block */
    if (e != VD_OK)
        return e;
    c->fsinfo_ok = vd_get_le32(sec + FSI_LEAD_SIG) == FSI_LEAD_VALUE &&
                   vd_get_le32(sec + FSI_STRUC_SIG) == FSI_STRUC_VALUE &&
                   vd_get_le32(sec + FSI_TRAIL_SIG) == FSI_TRAIL_VALUE;
    if (!c->fsinfo_ok)
        return chk_problem(c, VD_FSCK_P_FSINFO, 1, NULL, NULL,
                           "the FSInfo sector is malformed", "rewrite it");
    uint32_t fc = vd_get_le32(sec + FSI_FREE_COUNT), nf = vd_get_le32(sec + FSI_NXT_FREE);
    char what[128];
    if (fc != FSI_UNKNOWN && fc != free_now) {
        snprintf(what, sizeof what, "FSInfo says %u free clusters, the FAT has %u", fc,
                 free_now);
        e = chk_problem(c, VD_FSCK_P_FSINFO, 1, NULL, NULL, what, "correct the count");
    }
    if (e == VD_OK && nf != FSI_UNKNOWN && !fat_valid_cluster(fs, nf)) {
        snprintf(what, sizeof what, "FSInfo next-free hint %u is not a cluster", nf);
        e = chk_problem(c, VD_FSCK_P_FSINFO, 1, NULL, NULL, what, "reset the hint");
    }
    return e;
}

/* Free clusters of the working table, and the first as next-free hint. */
static uint32_t count_free(chk *c)
{
    uint32_t free_n = 0, first_free = 0;
    for (uint32_t i = FAT_FIRST_CLUSTER; i < c->nent; i++)
        if (chk_fat_get(c, i) == FAT_FREE) {
            if (!free_n)
                first_free = i;
            free_n++;
        }
    c->fsinfo_free = free_n;
    c->fsinfo_next = free_n ? first_free : FSI_UNKNOWN;
    return free_n;
}

/* An 11-byte label as printable text, trailing spaces dropped. */
static void label_text(const uint8_t *l, char out[12])
{
    int n = 11;
    while (n > 0 && l[n - 1] == ' ')
        n--;
    for (int i = 0; i < n; i++)
        out[i] = l[i] >= 0x20 && l[i] < 0x7F ? (char)l[i] : '?';
    out[n] = 0;
}

/* The boot sector's label follows the root directory's (which mounting
 * and fsck.fat take as the volume's); the backup copy follows the boot
 * sector. sec is the boot sector as read. */
static vd_err check_boot(chk *c, const uint8_t sec[512])
{
    vd_fs *fs = c->fs;
    vd_err e = VD_OK;
    memcpy(c->boot, sec, 512);
    c->boot[BS_RESERVED1] &= (uint8_t)~BS_STATE_DIRTY;
    c->boot_fix = c->bs_dirty;
    if (sec[BS_BOOT_SIG] == 0x29) {
        static const uint8_t none[11] = {'N', 'O', ' ', 'N', 'A', 'M',
                                         'E', ' ', ' ', ' ', ' '};
        const uint8_t *want = c->root_label ? c->label : none;
        if (memcmp(sec + BS_VOL_LAB, want, 11) != 0) {
            char what[96], had[12], has[12];
            label_text(sec + BS_VOL_LAB, had);
            label_text(c->root_label ? want : (const uint8_t *)"           ", has);
            snprintf(what, sizeof what,
                     "the boot sector's label is '%s', the volume's '%s'", had, has);
            memcpy(c->boot + BS_VOL_LAB, want, 11);
            c->boot_fix = 1;
            e = chk_problem(c, VD_FSCK_P_DIRENT, 1, NULL, NULL, what,
                            "copy the volume's label to the boot sector");
        }
    }
    uint32_t bk = vd_get_le16(sec + BPB_BK_BOOT_SEC);
    uint8_t bsec[512];
    if (e == VD_OK && bk > 0 && (uint64_t)(bk + 1) * fs->bps <= fs->fat_off) {
        vd_err r = chk_read(c, (uint64_t)bk * fs->bps, bsec, sizeof bsec);
        if (r != VD_OK && r != VD_ERR_AUTH)
            return r;
        if (r == VD_OK && memcmp(bsec, sec, 512) != 0) {
            c->boot_fix = 1;
            e = chk_problem(c, VD_FSCK_P_DIRENT, 1, NULL, NULL,
                            "the backup boot sector differs from the boot sector",
                            "copy the boot sector over it");
        }
    }
    return e;
}

vd_err chk_table_summary(chk *c)
{
    vd_fs *fs = c->fs;
    uint8_t sec[512];
    vd_err e = chk_read(c, 0, sec, sizeof sec);
    if (e != VD_OK)
        return e;
    /* The boot sector names FSInfo; the mount ignores a malformed one, the
     * check repairs it. */
    uint32_t fsi = vd_get_le16(sec + BPB_FS_INFO);
    c->fsinfo_sec = fsi >= 1 && (uint64_t)(fsi + 1) * fs->bps <= fs->fat_off ? fsi : 0;
    e = check_fsinfo(c, c->disk_free);
    if (e != VD_OK)
        return e;
    c->bs_dirty = (sec[BS_RESERVED1] & BS_STATE_DIRTY) != 0;
    if (!(c->fat[1] & FAT1_CLEAN) || c->bs_dirty) {
        e = chk_problem(c, VD_FSCK_P_DIRTY, 1, NULL, NULL,
                        "the volume was not cleanly unmounted (dirty flag set)",
                        "clear the flag");
        if (e != VD_OK)
            return e;
    }
    e = check_boot(c, sec);
    if (e == VD_OK && !fat0_ok(c->fat[0])) {
        chk_fat_set(c, 0, 0x0FFFFF00u | sec[BPB_MEDIA]);
        e = chk_problem(c, VD_FSCK_P_FAT_COPIES, 1, NULL, NULL,
                        "the FAT's first entry is not the media marker", "rewrite it");
    }
    if (e != VD_OK)
        return e;
    uint32_t free_n = count_free(c);
    c->res->clusters_total = fs->nclusters;
    c->res->clusters_used = fs->nclusters - free_n;
    return VD_OK;
}

/* Write entries [from, to) of copy k from the working table. */
/* Write entries [from, to) of copy k from the working table. When their
 * block failed authentication it cannot be read to merge a partial write:
 * the whole block is written, the bytes past the last entry as zeros
 * (unused, as mkfs leaves them), provided the block lies inside the copy. */
static vd_err write_span(chk *c, uint32_t k, uint32_t from, uint32_t to, int whole)
{
    uint8_t *buf = calloc(1, FAT_BLOCK);
    if (!buf)
        return VD_ERR_NOMEM;
    uint64_t off = copy_off(c, k) + (uint64_t)from * FAT_ENTRY_BYTES;
    size_t len = (size_t)(to - from) * FAT_ENTRY_BYTES;
    uint64_t copy_end = copy_off(c, k) + (uint64_t)c->fs->fat_sectors * c->fs->bps;
    if (whole && off % FAT_BLOCK == 0 && off + FAT_BLOCK <= copy_end)
        len = FAT_BLOCK;
    for (uint32_t i = from; i < to; i++)
        vd_put_le32(buf + (size_t)(i - from) * FAT_ENTRY_BYTES, c->fat[i]);
    vd_err e = fat_dev_write(c->fs, off, buf, len);
    free(buf);
    return e;
}

static vd_err write_copies(chk *c)
{
    vd_fs *fs = c->fs;
    uint32_t ncopies = fs->mirror ? fs->nfats : 1;
    for (uint32_t k = 0; k < ncopies; k++) {
        uint32_t dk = fs->mirror ? (k < 2 ? k : 1) : 0;
        uint32_t phys = fs->mirror ? k : fs->active_fat;
        uint64_t base = copy_off(c, phys);
        for (uint32_t i = 0; i < c->nent;) {
            /* One block's worth of entries at a time, aligned to the block. */
            uint64_t off = base + (uint64_t)i * FAT_ENTRY_BYTES;
            uint32_t n = (uint32_t)((FAT_BLOCK - off % FAT_BLOCK) / FAT_ENTRY_BYTES);
            if (n > c->nent - i)
                n = c->nent - i;
            int differ = 0;
            for (uint32_t j = i; j < i + n && !differ; j++)
                differ = c->copy_bad[dk][j] || c->disk[dk][j] != c->fat[j];
            chk_bad *b = chk_bad_find(c, off, (uint64_t)n * FAT_ENTRY_BYTES);
            if (differ && !(b && b->r.level > 0 && !b->discarded)) {
                vd_err e = write_span(c, phys, i, i + n, b != NULL);
                if (e != VD_OK)
                    return e;
            }
            i += n;
        }
    }
    return VD_OK;
}

static vd_err write_fsinfo(chk *c)
{
    vd_fs *fs = c->fs;
    if (!c->fsinfo_sec)
        return VD_OK;
    uint64_t off = (uint64_t)c->fsinfo_sec * fs->bps;
    if (chk_bad_find(c, off, 512))
        return VD_OK; /* under a bad node: left as reported */
    uint8_t sec[512], was[512];
    vd_err e = chk_read(c, off, was, sizeof was);
    if (e != VD_OK)
        return e;
    if (c->fsinfo_ok) {
        memcpy(sec, was, sizeof sec);
        vd_put_le32(sec + FSI_FREE_COUNT, c->fsinfo_free);
        vd_put_le32(sec + FSI_NXT_FREE, c->fsinfo_next);
    } else {
        fat_fsinfo_encode(sec, c->fsinfo_free, c->fsinfo_next);
    }
    /* Unchanged is not rewritten: no new version of a block for nothing. */
    return memcmp(sec, was, sizeof sec) ? fat_dev_write(fs, off, sec, sizeof sec) : VD_OK;
}

/* The boot sector as check_boot made it, and the same over its backup. */
static vd_err write_boot(chk *c)
{
    vd_fs *fs = c->fs;
    uint32_t bk = vd_get_le16(c->boot + BPB_BK_BOOT_SEC);
    vd_err e = fat_dev_write(fs, 0, c->boot, 512);
    if (e == VD_OK && bk > 0 && (uint64_t)(bk + 1) * fs->bps <= fs->fat_off &&
        !chk_bad_find(c, (uint64_t)bk * fs->bps, 512))
        e = fat_dev_write(fs, (uint64_t)bk * fs->bps, c->boot, 512);
    return e;
}

vd_err chk_table_write(chk *c)
{
    c->fat[1] |= FAT1_CLEAN;
    (void)count_free(c); /* after the last change to the table */
    vd_err e = write_copies(c);
    if (e == VD_OK)
        e = write_fsinfo(c);
    if (e == VD_OK && c->boot_fix)
        e = write_boot(c);
    return e;
}
