/* mkvhd: what the command line asked for, and the build itself. */
#ifndef VD_MKVHD_H
#define VD_MKVHD_H

#include <signal.h>
#include <stdint.h>

#include "cli.h"
#include "copy.h"

#define MKVHD_PROG "mkvhd"
#define MKVHD_MAX_SEAL VD_KEYSLOTS

typedef struct mkvhd_opts {
    const char *image;
    const char *source;   /* NULL: empty volume */
    const char *from_raw; /* NULL: format a new volume */
    const char *tar;      /* a tar archive to build from ("-" = stdin) */
    const char *label;
    const char *new_key_file;
    const char *seal_to[MKVHD_MAX_SEAL];
    int nseal;
    uint64_t size; /* volume bytes; 0 = from the tree */
    uint64_t max_size; /* --max-size: FAT room to grow to; 0 = none */
    uint32_t log_blocks; /* --log-blocks: vd_create_opts.log_blocks (0: automatic) */
    int quiet, force;
    cli_special policy;
    cli_clash clash;
    int deref; /* --dereference */
    cli_keyopts keys;
    const volatile sig_atomic_t *cancel; /* SIGINT/SIGTERM/SIGHUP seen */
} mkvhd_opts;

/* IMAGE on an NBD export (remote.c): the export's capacity, refusing
 * one that holds an image already without --force; then the volume size
 * (fixed: --size or a raw volume, checked against the export; else the
 * largest that fits). Exit
 * statuses, errors printed. */
int mkvhd_remote_check(const mkvhd_opts *o, uint64_t *capacity);
int mkvhd_remote_fit(const mkvhd_opts *o, uint64_t capacity, int fixed,
                     uint64_t *vol_bytes);

/* The host of a local build (buildhost.c): the file host at path with
 * its flushes deferred (they do nothing) until
 * mkvhd_buildhost_finish, the one fdatasync before the image gets its
 * name. open returns 0, or -1 with *sys_errno set. */
typedef struct mkvhd_buildhost mkvhd_buildhost;
int mkvhd_buildhost_open(const char *path, mkvhd_buildhost **out, int *sys_errno);
vd_host *mkvhd_buildhost_host(mkvhd_buildhost *b);
/* 0, or -1 with errno set. */
int mkvhd_buildhost_finish(mkvhd_buildhost *b);
void mkvhd_buildhost_close(mkvhd_buildhost *b);

/* Build the image; returns the exit status (errors printed). */
int mkvhd_build(const mkvhd_opts *o);

/* ---- --tar (tarin.c, tarpaths.c) ---------------------------------------- */

typedef enum tar_kind { TP_NONE = 0, TP_DIR, TP_FILE, TP_LINK, TP_SKIPPED } tar_kind;

typedef struct tarpath {
    char *key;    /* archive path, normalised ("" is the root) */
    char *vpath;  /* where it is in the volume (fill pass) */
    char *target; /* a link's target */
    tar_kind kind;
    uint64_t size;    /* a file's size */
    uint64_t entries; /* a directory's entries, without "." and ".." */
    int64_t mtime_ns, atime_ns;
    int has_time;
} tarpath;

/* Pointers from find/add stay valid only until the next add. */
typedef struct tarpaths {
    tarpath *v;
    size_t n, cap;
} tarpaths;

tarpath *tarpaths_find(tarpaths *t, const char *key);
/* The path's entry, added (zeroed, kind TP_NONE) if new; NULL when out of
 * memory. */
tarpath *tarpaths_add(tarpaths *t, const char *key);
void tarpaths_free(tarpaths *t);

typedef struct mkvhd_tar mkvhd_tar;

/* Open ARCHIVE ("-" = stdin); a stream that cannot be read twice (a pipe)
 * is first spooled to an unlinked file in $TMPDIR. */
int mkvhd_tar_open(const mkvhd_opts *o, mkvhd_tar **out);
/* First pass: what the archive will take (warns about specials). */
int mkvhd_tar_scan(mkvhd_tar *t, cli_tree_stats *st);
/* Second pass: every entry into the volume through c. */
int mkvhd_tar_fill(mkvhd_tar *t, cli_copy *c);
void mkvhd_tar_close(mkvhd_tar *t);

#endif
