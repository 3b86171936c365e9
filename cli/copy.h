/* Copying trees between the host and a mounted volume (mkvhd, vhdtool
 * put/get), sizing a tree for a new volume, and naming the block and the
 * file of an integrity failure. Every error is one line "prog: subject:
 * cause" and comes back as an exit status (cli.h). */
#ifndef VD_CLI_COPY_H
#define VD_CLI_COPY_H

#include <signal.h>
#include <stdint.h>

#include "cli.h"

/* What to do with what FAT32 cannot hold: devices, fifos, sockets, files
 * over 4 GiB - 1 (and with --dereference, dangling symbolic links).
 * Symbolic links themselves are stored as links. */
typedef enum cli_special {
    CLI_SPECIAL_SKIP = 0,  /* one warning line each, then go on */
    CLI_SPECIAL_REFUSE = 1 /* an error (exit 1) */
} cli_special;

/* What to do with a name that equals one already in the volume directory
 * except for case (FAT32 ignores case: "xt_connmark.h" beside
 * "xt_CONNMARK.h"). The first name in sorted order (or in archive order)
 * keeps its name. */
typedef enum cli_clash {
    CLI_CLASH_FAIL = 0, /* an error naming the path and --on-clash (exit 1) */
    CLI_CLASH_SKIP,     /* one line each, then go on */
    CLI_CLASH_RENAME    /* "stem~N.ext", the smallest N >= 1 that is free;
                           one line each */
} cli_clash;

/* "fail", "skip" or "rename"; -1 for anything else. */
int cli_clash_parse(const char *s, cli_clash *out);

#define CLI_CLASH_USAGE                                                       \
    "  --on-clash=fail|skip|rename\n"                                         \
    "                        a name equal to another one but for case (FAT32\n" \
    "                        ignores case): fail (default), skip it, or store\n" \
    "                        it as NAME~N.EXT (one line each)\n"

/* Cluster sizes mkfs.fat may choose for FAT32, smallest first. */
#define CLI_CLUSTER_SIZES 5
extern const uint32_t cli_cluster_sizes[CLI_CLUSTER_SIZES];

typedef struct cli_tree_stats {
    uint64_t files, dirs, links, bytes, skipped;
    /* Bytes of whole clusters the tree takes (file data and directory
     * entries) for each of cli_cluster_sizes. */
    uint64_t need[CLI_CLUSTER_SIZES];
} cli_tree_stats;

/* cli_tree_scan flags. */
enum {
    CLI_SCAN_DEREF = 1 << 0, /* follow symbolic links (a dangling one is a special) */
    CLI_SCAN_ROOT = 1 << 1   /* src becomes the volume's root: a link to a
                                directory is followed even without DEREF */
};

/* Walk the host tree at src (a directory, a file or a link), counting what
 * will be copied. Specials are warned about (warn != 0) or refused by
 * policy. Returns an exit status. */
int cli_tree_scan(const char *prog, const char *src, cli_special policy, int warn,
                  int flags, cli_tree_stats *st);
/* Count one file of `bytes` / one directory holding `entries` directory
 * entries (32 bytes each; "." and ".." included) into st. */
void cli_tree_stats_file(cli_tree_stats *st, uint64_t bytes);
void cli_tree_stats_dir(cli_tree_stats *st, uint64_t entries);
void cli_tree_stats_link(cli_tree_stats *st);
/* Directory entries a name takes: the short entry and its long-name
 * entries (a UTF-8 byte count over-estimates the UTF-16 units). */
uint64_t cli_name_entries(const char *name);

/* FAT32 volume size (bytes, whole MiB) for a tree: its clusters plus FAT
 * and headroom, at least CLI_FAT32_MIN_BYTES. */
uint64_t cli_tree_volume_bytes(const cli_tree_stats *st);

/* The smallest volume vd_fs_format accepts: 65525 clusters of 512 bytes
 * plus two FATs and the reserved sectors (libvdisk/fat/mkfs.c) is 32.5 MiB;
 * rounded up to whole MiB. */
#define CLI_FAT32_MIN_BYTES (33ull << 20)

#define CLI_COPY_SKIP_MAX 4

typedef struct cli_copy {
    const char *prog;
    const char *image; /* for messages */
    vd_image *img;     /* to name the block of an integrity failure */
    vd_fs *fs;
    cli_special policy;
    cli_clash clash;
    int deref;              /* copy what symbolic links point to */
    int warn_special;       /* print skip warnings (0 when a scan already did) */
    int replace;            /* put: overwrite existing files; mkvhd: 0 (a name
                         clash in a case-insensitive FAT is an error) */
    cli_progress *progress; /* may be NULL */
    /* Set by the tool's signal handler (may be NULL): the copy stops at
     * the next chunk with "interrupted" (exit 1), so the tool can clean
     * up instead of dying mid-write. */
    const volatile sig_atomic_t *cancel;
    /* Host files never copied in (mkvhd's own output, new key file and
     * anchor, when they are inside the source tree). */
    struct cli_copy_skip {
        uint64_t dev, ino;
    } skip[CLI_COPY_SKIP_MAX];
    int nskip;
    uint8_t *buf;    /* internal */
    int cancel_said; /* internal */
} cli_copy;

/* Claim the name `name` in volume directory dir for a new entry, resolving
 * a case clash per c->clash (src names the source in messages). A file is
 * opened for writing (*f; with c->replace an existing file of exactly
 * that name is truncated); a directory is made (with c->replace an
 * existing one of exactly that name is merged). *final is the volume path
 * used (malloc'ed), or NULL when the entry was skipped. Returns an exit
 * status, the error printed. */
int cli_claim_file(cli_copy *c, const char *src, const char *dir, const char *name,
                   vd_file **f, char **final);
int cli_claim_dir(cli_copy *c, const char *src, const char *dir, const char *name,
                  char **final);
/* The same for a symbolic link to target (with c->replace an existing
 * link or file of exactly that name is replaced). */
int cli_claim_link(cli_copy *c, const char *src, const char *dir, const char *name,
                   const char *target, char **final);

/* The bytes a symbolic link takes in the volume: a Minshall+French link
 * is a 1067-byte file (docs/FORMAT.md). */
#define CLI_LINK_BYTES 1067u
/* The exit status for a failed volume operation while copying host src to
 * volume dst (an integrity failure names the image and block; a full
 * volume or a name FAT cannot store names src). */
int cli_copy_in_fail(cli_copy *c, const char *src, const char *dst, vd_err e);

/* Host file or directory src -> volume path dst (created; with replace,
 * existing files are truncated and existing directories merged). Names,
 * sizes and modification times are kept. Returns an exit status. */
int cli_copy_in(cli_copy *c, const char *src, const char *dst);
/* Volume path src -> host path dst (file, or directory recursively),
 * keeping modification times. Returns an exit status. */
int cli_copy_out(cli_copy *c, const char *src, const char *dst);
/* Add path to c->skip when it exists (0), or -1 when full. */
int cli_copy_skip_add(cli_copy *c, const char *path);
/* Whether *c->cancel is set; if so, says "interrupted" once. */
int cli_copy_cancelled(cli_copy *c);
/* Free the internal buffer. */
void cli_copy_done(cli_copy *c);

/* An error of a volume operation on path: "prog: image: path: cause", and
 * for an integrity failure the block (vd_image_last_failure). Returns the
 * exit status. */
int cli_fs_fail(const char *prog, const char *image, vd_image *img, const char *path,
                vd_err e);

/* a + "/" + b (malloc'ed; no doubled slash); NULL when out of memory. */
char *cli_path_join(const char *a, const char *b);
/* The last component of a path without trailing slashes ("" for "/"),
 * malloc'ed; NULL when out of memory. */
char *cli_path_base(const char *p);
/* Everything before the last component ("/" for "/x", "x" or "/"),
 * malloc'ed; NULL when out of memory. */
char *cli_path_dir(const char *p);

#endif
