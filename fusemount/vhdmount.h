/* vhdmount — an image mounted as a directory through libfuse3's
 * low-level API. The tool is thin (STYLE "Tools are thin"): every
 * operation turns an inode into a path (nodes.c), makes one vd_fs_ /
 * vd_file_ call and turns its vd_err into an errno. */
#ifndef VHDMOUNT_H
#define VHDMOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "cli.h"
#include "mstate.h"

/* The periodic committer (commit.c). */
typedef struct vmnt_committer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled to stop; times out to commit */
    int stop, running;
} vmnt_committer;

#define VMNT_ALIAS_MAX 8
/* WRITEs to one file the write gate orders at once (wgate.c): the FUSE
 * loop's largest thread limit (-o threads=, serve.c); more go untracked. */
#define VMNT_WGATE_MAX 16
/* The FUSE loop's default thread limit: the cores of a small VM, plus
 * threads waiting in a commit's flush. With 16 (the limit before), the loop
 * woke a thread per dirty page the writeback cache sends at an fsync, and
 * each wake-up cost more than serving the request (PERFORMANCE.md,
 * "Session of 2026-12-07 07:33 UTC"). */
#define VMNT_THREADS_DEFAULT 4

/* One kernel inode: one FAT file or directory, whatever spelling the
 * kernel looked it up by (nodes.c). */
typedef struct vmnt_node {
    fuse_ino_t ino;
    /* vd_stat.entry_id of its directory entry (0 for the root);
     * VD_ENTRY_NONE once unlinked or replaced (no path leads to it). */
    uint64_t key;
    struct vmnt_node *parent; /* NULL for the root */
    char *name;               /* as first looked up, or renamed to */
    /* Other spellings the kernel looked it up by (it keeps one dentry per
     * spelling for a file): invalidated when the entry goes or moves. */
    char *alias[VMNT_ALIAS_MAX];
    unsigned nalias;
    uint64_t nlookup;         /* the kernel's references (lookup - forget) */
    unsigned nopen;           /* open handles (vmnt_file) */
    unsigned nchild;          /* nodes whose parent this is */
    struct vmnt_node *next_ino, *next_key; /* hash chains */
    /* The write gate (wgate.c): the end this mount's writes have taken
     * the file to, and the WRITEs in progress from there on (bit k of
     * wmask: woff[k] is one). */
    uint64_t wend;
    uint64_t woff[VMNT_WGATE_MAX];
    uint32_t wmask;
    unsigned wwaiting; /* WRITEs waiting in the gate */
} vmnt_node;

typedef struct vmnt_nodes {
    /* Guards the table and every node's fields. */
    pthread_mutex_t mu;
    /* Held shared by every operation that turns a node into a path and
     * uses it, exclusive by those that move or remove entries (unlink,
     * rmdir, rename): between the lstat that finds an entry's key and the
     * table update, no entry moves. */
    pthread_rwlock_t ns;
    pthread_cond_t wcv; /* with mu: a WRITE left the write gate */
    vmnt_node **by_ino, **by_key;
    size_t nbuckets, count;
    fuse_ino_t next_ino;
    vmnt_node root;
    int ready;
} vmnt_nodes;

/* One open file: the handle FUSE keeps in fi->fh. They are linked in a
 * list so that an unmount that did not release them (SIGTERM, lazy
 * unmount) can still close them before vd_fs_unmount, which refuses a
 * volume with open files. */
typedef struct vmnt_file {
    vd_file *f;
    vmnt_node *node;
    char *path; /* as opened, for messages */
    int writer; /* opened for writing: the kernel may hold dirty pages */
    struct vmnt_file *prev, *next;
} vmnt_file;

typedef struct vmnt_dir vmnt_dir; /* an open directory (ops_tree.c) */

/* Everything the operations share; FUSE hands it back through
 * fuse_req_userdata, so nothing here is global. */
typedef struct vmnt_ctx {
    const char *prog;
    const char *image; /* as given on the command line, for messages */
    cli_image ci;
    int read_only;
    int use_syslog; /* daemonized: log to syslog, not stderr */
    uid_t uid;      /* owner shown for every file (vfat does the same) */
    gid_t gid;
    mode_t fmask, dmask; /* vfat's masks for files and directories */
    int showexec;   /* x bits only for .exe/.com/.bat names */
    int quiet;      /* chown/chmod FAT cannot store succeed without effect */
    int no_writeback; /* -o nowriteback: every write() reaches the image */
    int writeback;    /* the kernel's writeback cache is on (INIT; under files_lock
                         for threads not serving requests) */
    int debug;        /* -d: also say what INIT agreed on */
    uint32_t cluster_bytes;     /* st_blksize, and st_blocks' rounding */
    vmnt_nodes nodes;
    pthread_mutex_t files_lock; /* guards the open-file and directory lists,
                                   nwriters, writeback */
    vmnt_file *files;
    vmnt_dir *dirs;
    unsigned nwriters; /* open files opened for writing */
    char *real_mountpoint; /* realpath before mounting (readahead.c, commit.c) */
    int readahead_done;    /* under files_lock */
    int close_status; /* exit status of the final unmount + close */
    char close_reason[512]; /* its first failure, one line, for vhdmount -u */
    int closed;
    int no_notes;         /* -q */
    unsigned commit_secs; /* -o commit=; 0 = only fsync and unmount */
    vmnt_committer committer;
    char state_path[PATH_MAX]; /* "" when there is no state file */
    cli_mstate state;
    struct fuse_session *se; /* from vmnt_session_new to vmnt_finish */
    int lock_ok;             /* files_lock initialised */
} vmnt_ctx;

/* The vd_err -> errno table (fuse2fs's translate_error). Returns a
 * positive errno (0 for VD_OK). */
int vmnt_errno(vd_err e);
/* VD_ERR_NAME is ENAMETOOLONG when the last component of path has more
 * than 255 UTF-16 units (FAT's limit), EINVAL otherwise (a character FAT
 * cannot store), as on Linux vfat. */
int vmnt_name_errno(const char *path);

/* The positive errno for a failed call on path; an authentication
 * failure is also logged with the block it was found in
 * (vd_image_last_failure). */
int vmnt_fail(vmnt_ctx *c, const char *what, const char *path, vd_err e);

/* One line to syslog (daemon) or stderr (-f): "vhdmount: IMAGE: ...". */
void vmnt_log(const vmnt_ctx *c, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline vmnt_ctx *vmnt_req_ctx(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

/* Once per mount, at the first file open (after the kernel has applied
 * INIT, which would narrow it again): raise the mount's read-ahead window
 * to VMNT_READAHEAD_KB when allowed (root) and wider than now. */
#define VMNT_READAHEAD_KB 1024u
void vmnt_readahead_widen_once(vmnt_ctx *c);

/* The node table (nodes.c). Inode numbers count up from 2 (1 is the
 * root) and are never reused within a mount. */
int vmnt_nodes_init(vmnt_nodes *t);
void vmnt_nodes_fini(vmnt_nodes *t);
/* The node of ino (the kernel holds a reference, so it stays), or NULL. */
vmnt_node *vmnt_node_get(vmnt_nodes *t, fuse_ino_t ino);
/* "/dir/.../name" of n, or of its child name when name is not NULL;
 * malloc'd. NULL with *err = ENOENT when n has no entry any more, ENOMEM.
 * Call with t->ns held. */
char *vmnt_node_path(vmnt_nodes *t, vmnt_node *n, const char *name, int *err);
/* The node whose entry is key (found under parent as name): the known
 * one, or a new one; one more kernel reference. NULL: out of memory.
 * With t->ns held. */
vmnt_node *vmnt_node_learn(vmnt_nodes *t, vmnt_node *parent, const char *name, uint64_t key);
void vmnt_node_forget(vmnt_nodes *t, vmnt_node *n, uint64_t nlookup);
/* The entry key was removed: its node (if known) keeps its inode for
 * open handles and the kernel's references, but no path leads to it.
 * With t->ns held exclusively. */
void vmnt_node_unkey(vmnt_nodes *t, uint64_t key);
/* The entry at key moved to newparent/newname at newkey (a rename).
 * 0, or ENOMEM. With t->ns held exclusively. */
int vmnt_node_move(vmnt_nodes *t, uint64_t key, vmnt_node *newparent, const char *newname,
                   uint64_t newkey);
/* The names the kernel may have cached for the entry at key (its name
 * and aliases; the aliases are dropped) and its parent's inode, to
 * invalidate once the entry went or moved: *count names, malloc'd (free
 * with vmnt_names_free), NULL when none. With t->ns held exclusively. */
char **vmnt_node_names(vmnt_nodes *t, uint64_t key, fuse_ino_t *parent, unsigned *count);
void vmnt_names_free(char **names, unsigned count);
/* Open handles on n: +1 at open, -1 at release. */
void vmnt_node_open(vmnt_nodes *t, vmnt_node *n, int delta);

/* The write gate (wgate.c): a WRITE at off to n, from the end this
 * mount's writes took the file to on, waits for those below it in
 * progress. Returns the slot to give vmnt_wgate_leave (-1: not tracked). */
int vmnt_wgate_enter(vmnt_nodes *t, vmnt_node *n, uint64_t off);
/* The WRITE is done; end: where its bytes ended (off when none went). */
void vmnt_wgate_leave(vmnt_nodes *t, vmnt_node *n, int slot, uint64_t end);
/* The file was truncated or extended to size by a setattr. */
void vmnt_wgate_resized(vmnt_nodes *t, vmnt_node *n, uint64_t size);
/* Whether a WRITE at off would wait now, and how many are waiting (tests). */
int vmnt_wgate_would_wait(vmnt_nodes *t, vmnt_node *n, uint64_t off);
unsigned vmnt_wgate_waiting(vmnt_nodes *t, vmnt_node *n);

/* The vfat options (uid=, gid=, umask=, dmask=, fmask=, showexec, quiet)
 * taken out of args into c, with vfat's defaults (modes.c). 0, or the
 * usage exit status after a message. */
int vmnt_modes_parse(struct fuse_args *args, vmnt_ctx *c);
/* st_mode of an entry as vfat shows it (name: its name, for showexec). */
mode_t vmnt_mode(const vmnt_ctx *c, const vd_stat *vs, const char *name);
/* The mode and owner parts of a setattr (chmod, chown) on path; 0 or a
 * positive errno. */
int vmnt_modes_set(vmnt_ctx *c, const char *path, const char *name, const struct stat *attr,
                   int to_set);

/* struct stat of a library vd_stat for node n. */
void vmnt_stat_fill(const vmnt_ctx *c, const vd_stat *vs, const vmnt_node *n,
                    struct stat *st);
/* The attributes of n: through one of its open handles when it has no
 * path (unlinked while open). 0 or a positive errno. */
int vmnt_node_stat(vmnt_ctx *c, vmnt_node *n, struct stat *st);

/* Free the directory handles the kernel never released (at the close). */
void vmnt_dirs_free(vmnt_ctx *c);

/* The operation table, by kind (ops_*.c, volume.c). */
void vmnt_ops_volume(struct fuse_lowlevel_ops *ops);
void vmnt_ops_tree(struct fuse_lowlevel_ops *ops);
void vmnt_ops_file(struct fuse_lowlevel_ops *ops);
void vmnt_ops_refused(struct fuse_lowlevel_ops *ops);

/* Periodic commits every c->commit_secs (none when 0 or read-only). */
void vmnt_committer_start(vmnt_ctx *c);
void vmnt_committer_stop(vmnt_ctx *c);
/* With the writeback cache, have the kernel write its dirty pages of
 * this mount to us (syncfs on the mount) when a file open for writing may
 * hold some; from a thread that is not a request handler. */
void vmnt_flush_kernel(vmnt_ctx *c);

/* The state file (state.c): begin once the daemon has its final pid; set
 * at each later step (CLOSED carries close_status and close_reason). */
void vmnt_state_begin(vmnt_ctx *c, const char *image, const char *mountpoint);
void vmnt_state_set(vmnt_ctx *c, cli_mstate_kind k);
/* Remove it: the mount never came up. */
void vmnt_state_drop(vmnt_ctx *c);

/* vhdmount -u MOUNTPOINT (unmount.c): unmount, wait until the daemon has
 * closed the image and released its lock, and return its close status. */
int vmnt_unmount(const char *prog, const char *mountpoint, int quiet);

/* Close every file FUSE did not release, unmount the volume (sync, clean
 * flag) and close the image (sync, anchor). Idempotent; logs failures. */
void vmnt_volume_close(vmnt_ctx *c);

/* Running a mount (serve.c), for vhdmount and bench/vhdbench-mount:
 * vmnt_ctx_init first; vmnt_session_new before the image is opened (it
 * checks the -o options: the usage status after a message); then, with
 * c->ci.fs mounted, vmnt_serve (mount, detach unless foreground, loop);
 * vmnt_finish always, which closes the volume and returns the final exit
 * status from rc; vmnt_ctx_fini last. */
typedef struct vmnt_serve_args {
    const char *mountpoint;  /* absolute */
    const char *state_image; /* what the state file names */
    int foreground;
    unsigned threads; /* the FUSE loop's thread limit; 0: VMNT_THREADS_DEFAULT */
} vmnt_serve_args;
int vmnt_ctx_init(vmnt_ctx *c, const char *prog);
int vmnt_session_new(vmnt_ctx *c, struct fuse_args *fargs);
int vmnt_serve(vmnt_ctx *c, const vmnt_serve_args *a);
int vmnt_finish(vmnt_ctx *c, int rc);
void vmnt_ctx_fini(vmnt_ctx *c);

#endif
