/* vhdmount's state files: what a running mount tells `vhdmount -u` and the
 * offline tools (docs/man/vhdmount.8, "STATE FILES").
 *
 * The daemon keeps one small text file per mountpoint in a directory of
 * its user ($XDG_RUNTIME_DIR/vhdmount, else /run/vhdmount for root, else
 * /tmp/vhdmount-UID): its pid, the image and the mount, and its state,
 * "mounted" -> "closing" (the session ended; syncing and closing) ->
 * "closed" with the close's exit status, written only after the image
 * lock is released. Every write replaces the file by rename, so a reader
 * never sees half of one. `vhdmount -u` waits for "closed"; a tool that
 * finds the image locked waits a bounded time when the holder is such a
 * daemon on its way out. */
#ifndef VD_CLI_MSTATE_H
#define VD_CLI_MSTATE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* How long a tool waits for an exiting vhdmount to release the lock, and
 * how long `vhdmount -u` waits for the daemon to close the image. */
#define CLI_LOCK_WAIT_SECONDS 10
#define CLI_UNMOUNT_WAIT_SECONDS 60

typedef enum cli_mstate_kind {
    CLI_MSTATE_MOUNTED = 1,
    CLI_MSTATE_CLOSING,
    CLI_MSTATE_CLOSED
} cli_mstate_kind;

typedef struct cli_mstate {
    long pid;
    unsigned long long start; /* the pid's start time (/proc/PID/stat), so a
                                 reused pid is not taken for the daemon */
    unsigned long long dev, ino; /* the image file's */
    cli_mstate_kind state;
    int status;         /* with CLI_MSTATE_CLOSED: the close's exit status */
    unsigned long long epoch; /* the image's last commit the daemon made or
                                 opened at (updated by periodic commits) */
    char image[PATH_MAX];      /* absolute */
    char mountpoint[PATH_MAX]; /* absolute */
    char reason[512];          /* why status != 0, one line */
} cli_mstate;

/* The state file of mountpoint (absolute) into path; the directory is
 * created (mode 0700) when create is set. 0, or -1 with errno (a directory
 * that is not ours or is open to others: EPERM). */
int cli_mstate_path(const char *mountpoint, int create, char *path, size_t cap);
/* Replace the file at path with s (write, fsync-free rename). 0 or -1. */
int cli_mstate_write(const char *path, const cli_mstate *s);
/* 0, or -1 when missing or malformed. */
int cli_mstate_read(const char *path, cli_mstate *s);

/* The running process is s's daemon (same pid and start time, not a
 * zombie). */
int cli_mstate_alive(const cli_mstate *s);
/* Start time of pid (field 22 of /proc/PID/stat), 0 if unknown. */
unsigned long long cli_proc_start(long pid);

/* A mount as /proc/self/mountinfo lists it. */
typedef struct cli_mount {
    char type[256];       /* "fuse.vhd" for vhdmount */
    char source[PATH_MAX]; /* vhdmount's fsname: the image */
    char dev[32];         /* "MAJ:MIN", the name of its bdi in /sys/class/bdi */
} cli_mount;

/* The newest mount at mountpoint in /proc/self/mountinfo (never stat() on
 * the mountpoint, which would wait for a FUSE server, perhaps this very
 * process): 1 with *out filled in, 0 when nothing is mounted there. */
int cli_mount_find(const char *mountpoint, cli_mount *out);

/* Whether image (dev/ino) is held by a vhdmount daemon that is exiting: its
 * state file says closing, or its mountpoint no longer carries its mount.
 * Fills *s with that daemon's state when so. */
int cli_mstate_exiting(unsigned long long dev, unsigned long long ino, cli_mstate *s);

/* Sleep ms milliseconds (polling loops). */
void cli_sleep_ms(unsigned ms);

#endif
