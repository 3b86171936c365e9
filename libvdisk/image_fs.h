/* What the FAT layer tells the block device under it, so that every commit
 * moves the volume from one consistent state to the next (DESIGN C4,
 * docs/SECURITY.md §4): which block writes are file-system metadata, and
 * where the file-system operations begin and end. Used only by
 * libvdisk/fat/ when the volume sits on a vd_image (not over another
 * vd_blockdev, which has no commits). */
#ifndef VD_IMAGE_FS_H
#define VD_IMAGE_FS_H

#include <stdint.h>

#include "vdisk/vdisk.h"

/* An operation runs between these (nesting counts; the volume lock is held
 * around them). While one runs, an implicit commit (cache pressure) takes
 * data blocks only: the metadata dirtied so far may hold half of the
 * operation. At the end of the outermost one the image commits everything
 * if its metadata budget is used up or the periodic interval
 * (vd_open_opts.commit_interval_ns) has passed. A commit that fails there
 * fails the handle (sticky), so the next call reports it. */
void vd_image_op_begin(vd_image *img);
void vd_image_op_end(vd_image *img);

/* The operation under way failed after it changed metadata, and may have
 * stopped halfway (a read failed between two FAT copies, a chain and its
 * directory entry): nothing it dirtied may reach a commit. Fails the
 * handle (sticky, e), as a failed commit does: the image keeps its last
 * commit and a new open finds the volume as after a crash. */
void vd_image_op_abort(vd_image *img, vd_err e);

/* vd_image_write for file-system metadata (boot sector, FSInfo, FAT
 * sectors, directory clusters): these blocks reach their place only after
 * the commit that holds them, through the sealed redo journal, so a crash
 * shows all of a commit's metadata or none of it. */
vd_err vd_image_write_meta(vd_image *img, uint64_t lbn, uint32_t count,
                           const void *buf);

/* Counts commits that took every dirty metadata block (the ones at
 * operation boundaries and explicit syncs). Clusters freed by an operation
 * stay unused until this moves on: until then the committed volume still
 * gives them to their old file, and reusing them would put new bytes under
 * an old name after a crash. */
uint64_t vd_image_meta_commits(vd_image *img);

/* Commit everything now, as at an operation boundary (the FAT layer calls
 * it when only clusters freed since the last commit are left, and between
 * the steps of an operation too large for one commit). */
vd_err vd_image_commit_all(vd_image *img);

/* After a commit (no dirty metadata left): put its metadata in place for
 * good, as a clean close does: flush, and rewrite its record without the
 * journal (flush). For a new volume (vd_fs_format): its metadata is most
 * of the format's writes, and left to the next flush it would weigh on the
 * first commit after it; a record naming no journal also lets the next
 * rounds reuse the journal area without a flush first (sync.c). */
vd_err vd_image_settle(vd_image *img);

/* The most metadata blocks one commit takes whole: its round's journal
 * area must hold their sealed copies and the entries for them and the
 * nodes above them, and the cache must hold them without an implicit
 * commit taking metadata (sync.c). *room: how many more the metadata
 * dirty now leaves. An operation that would change more splits itself
 * into steps, each one consistent state, committed in turn (fat/). */
uint32_t vd_image_meta_cap(vd_image *img, uint32_t *room);

#endif
