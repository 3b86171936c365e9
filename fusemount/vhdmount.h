/* vhdmount — an image mounted as a directory through libfuse3's high-level
 * API. The tool is thin (STYLE "Tools are thin"): every operation turns a
 * path into one vd_fs_ / vd_file_ call and its vd_err into an errno. */
#ifndef VHDMOUNT_H
#define VHDMOUNT_H

#define FUSE_USE_VERSION 312
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
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

/* One open file: the handle FUSE keeps in fi->fh. They are linked in a
 * list so that an unmount that did not release them (SIGTERM, lazy
 * unmount) can still close them before vd_fs_unmount, which refuses a
 * volume with open files. */
typedef struct vmnt_file {
    vd_file *f;
    char *path; /* as opened, for messages (nullpath_ok: see volume.c) */
    struct vmnt_file *prev, *next;
} vmnt_file;

/* Everything the operations share; FUSE hands it back through
 * fuse_get_context()->private_data, so nothing here is global. */
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
    uint32_t cluster_bytes;     /* st_blksize, and st_blocks' rounding */
    pthread_mutex_t files_lock; /* guards the open-file list only */
    vmnt_file *files;
    char *real_mountpoint; /* realpath before mounting (readahead.c) */
    pthread_once_t readahead_once;
    int close_status; /* exit status of the final unmount + close */
    char close_reason[512]; /* its first failure, one line, for vhdmount -u */
    int closed;
    int no_notes;         /* -q */
    unsigned commit_secs; /* -o commit=; 0 = only fsync and unmount */
    vmnt_committer committer;
    char state_path[PATH_MAX]; /* "" when there is no state file */
    cli_mstate state;
    struct fuse *fuse; /* from vmnt_session_new to vmnt_finish */
    int lock_ok;       /* files_lock initialised */
} vmnt_ctx;

/* The vd_err -> errno table (fuse2fs's translate_error). Returns a
 * positive errno (0 for VD_OK). */
int vmnt_errno(vd_err e);
/* VD_ERR_NAME is ENAMETOOLONG when the last component of path has more
 * than 255 UTF-16 units (FAT's limit), EINVAL otherwise (a character FAT
 * cannot store), as on Linux vfat. */
int vmnt_name_errno(const char *path);

/* -errno for a failed call on path; an authentication failure is also
 * logged with the block it was found in (vd_image_last_failure). */
int vmnt_fail(const char *what, const char *path, vd_err e);

/* One line to syslog (daemon) or stderr (-f): "vhdmount: IMAGE: ...". */
void vmnt_log(const vmnt_ctx *c, int priority, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

vmnt_ctx *vmnt_ctx_get(void);

/* Once per mount, at the first file open (after the kernel has applied
 * INIT, which would narrow it again): raise the mount's read-ahead window
 * to VMNT_READAHEAD_KB when allowed (root) and wider than now. */
#define VMNT_READAHEAD_KB 1024u
void vmnt_readahead_widen_once(vmnt_ctx *c);


/* The vfat options (uid=, gid=, umask=, dmask=, fmask=, showexec, quiet)
 * taken out of args into c, with vfat's defaults (modes.c). 0, or the
 * usage exit status after a message. */
int vmnt_modes_parse(struct fuse_args *args, vmnt_ctx *c);
/* st_mode of an entry as vfat shows it (path: its name, for showexec). */
mode_t vmnt_mode(const vmnt_ctx *c, const vd_stat *vs, const char *path);

/* The operation table, by kind (ops_*.c, modes.c). */
void vmnt_ops_volume(struct fuse_operations *ops);
void vmnt_ops_tree(struct fuse_operations *ops);
void vmnt_ops_file(struct fuse_operations *ops);
void vmnt_ops_refused(struct fuse_operations *ops);
void vmnt_ops_modes(struct fuse_operations *ops);

/* Periodic commits every c->commit_secs (none when 0 or read-only). */
void vmnt_committer_start(vmnt_ctx *c);
void vmnt_committer_stop(vmnt_ctx *c);

/* The state file (state.c): begin once the daemon has its final pid; set
 * at each later step (CLOSED carries close_status and close_reason). */
void vmnt_state_begin(vmnt_ctx *c, const char *image, const char *mountpoint);
void vmnt_state_set(vmnt_ctx *c, cli_mstate_kind k);
/* Remove it: the mount never came up. */
void vmnt_state_drop(vmnt_ctx *c);

/* vhdmount -u MOUNTPOINT (unmount.c): unmount, wait until the daemon has
 * closed the image and released its lock, and return its close status. */
int vmnt_unmount(const char *prog, const char *mountpoint, int quiet);

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
} vmnt_serve_args;
int vmnt_ctx_init(vmnt_ctx *c, const char *prog);
int vmnt_session_new(vmnt_ctx *c, struct fuse_args *fargs);
int vmnt_serve(vmnt_ctx *c, const vmnt_serve_args *a);
int vmnt_finish(vmnt_ctx *c, int rc);
void vmnt_ctx_fini(vmnt_ctx *c);

/* Close every file FUSE did not release, unmount the volume (sync, clean
 * flag) and close the image (sync, anchor). Idempotent; logs failures. */
void vmnt_volume_close(vmnt_ctx *c);

#endif
