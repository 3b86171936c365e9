/* vhdmount -u MOUNTPOINT: an unmount that returns only once the image is
 * synced, closed and unlocked (docs/man/vhdmount.8). fusermount3 -u
 * returns as soon as the kernel has let go of the mount, while the daemon
 * is still syncing: a script that then copies or checks the image races
 * it. Here the mount is found in /proc/self/mountinfo (never by stat on the
 * mountpoint, which would wait for the server), the daemon in its state
 * file (cli/mstate.h), and we wait for the daemon to write "closed", which
 * it does after releasing the lock, then return its close status. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vhdmount.h"

/* realpath, except that a dead FUSE mount (ENOTCONN) or any other last
 * component that cannot be stat'ed is kept by name under its real parent. */
static int mnt_resolve(const char *arg, char *out)
{
    if (realpath(arg, out))
        return 0;
    int saved = errno;
    char *a = strdup(arg), *b = strdup(arg);
    char dir[PATH_MAX];
    int rc = -1;
    if (a && b && realpath(dirname(a), dir)) {
        const char *base = basename(b);
        if (strcmp(base, "/") != 0 && strcmp(base, ".") != 0 && strcmp(base, "..") != 0 &&
            snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "", base) < PATH_MAX)
            rc = 0;
    }
    free(a);
    free(b);
    errno = rc ? saved : 0;
    return rc;
}

/* The kernel unmount: umount2 as root, fusermount3 -u otherwise (its one
 * line of error is passed on under our name). */
static int kernel_unmount(const char *prog, const char *mnt)
{
    if (geteuid() == 0) {
        if (umount2(mnt, UMOUNT_NOFOLLOW) == 0)
            return 0;
        cli_errorf(prog, mnt, "cannot unmount: %s%s", strerror(errno),
                   errno == EBUSY ? " (a file or directory in it is in use)" : "");
        return -1;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        cli_errorf(prog, mnt, "cannot unmount: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        cli_errorf(prog, mnt, "cannot unmount: %s", strerror(errno));
        (void)close(pfd[0]);
        (void)close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        (void)dup2(pfd[1], STDERR_FILENO);
        execlp("fusermount3", "fusermount3", "-u", mnt, (char *)NULL);
        dprintf(STDERR_FILENO, "fusermount3: %s\n", strerror(errno));
        _exit(127);
    }
    (void)close(pfd[1]);
    char msg[512];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof msg - 1 &&
           ((r = read(pfd[0], msg + n, sizeof msg - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
        n += r > 0 ? (size_t)r : 0;
    (void)close(pfd[0]);
    msg[n] = '\0';
    msg[strcspn(msg, "\n")] = '\0';
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    cli_errorf(prog, mnt, "cannot unmount: %s", msg[0] ? msg : "fusermount3 -u failed");
    return -1;
}

/* No state file (mounted by another user, or by a vhdmount that wrote
 * none): with the image known, its lock tells when it is closed; the exit
 * status cannot be known. */
static int fallback_wait(const char *prog, const char *mnt, const char *image, int quiet)
{
    struct stat st;
    int fd = image[0] == '/' && stat(image, &st) == 0 && S_ISREG(st.st_mode)
                 ? open(image, O_RDONLY | O_CLOEXEC)
                 : -1;
    if (fd < 0) {
        cli_errorf(prog, mnt,
                   "warning: unmounted, but its image is unknown: cannot tell when it is "
                   "closed and unlocked");
        return CLI_EXIT_OK;
    }
    double end = cli_now() + CLI_UNMOUNT_WAIT_SECONDS;
    int free_now = 0;
    while (!(free_now = flock(fd, LOCK_EX | LOCK_NB) == 0) && cli_now() < end)
        cli_sleep_ms(20);
    (void)close(fd);
    if (!free_now) {
        cli_errorf(prog, image, "unmounted, but still locked after %d s (another program "
                                "has it open, or its vhdmount is hung)",
                   CLI_UNMOUNT_WAIT_SECONDS);
        return CLI_EXIT_FAIL;
    }
    if (!quiet)
        cli_errorf(prog, image,
                   "note: closed and unlocked; the daemon's exit status is unknown (it "
                   "left no state file)");
    return CLI_EXIT_OK;
}

/* Wait for the daemon's "closed" (written after it released the lock). */
static int daemon_wait(const char *prog, const char *mnt, const char *path, cli_mstate *s)
{
    double end = cli_now() + CLI_UNMOUNT_WAIT_SECONDS;
    cli_mstate cur = *s;
    for (;;) {
        if (cli_mstate_read(path, &cur) == 0 && cur.pid == s->pid &&
            cur.state == CLI_MSTATE_CLOSED)
            break;
        if (!cli_mstate_alive(s)) {
            /* It may have written "closed" just before it went. */
            if (cli_mstate_read(path, &cur) == 0 && cur.pid == s->pid &&
                cur.state == CLI_MSTATE_CLOSED)
                break;
            (void)unlink(path);
            cli_errorf(prog, s->image,
                       "vhdmount (pid %ld) ended without closing it (killed?); the image "
                       "keeps its last commit",
                       s->pid);
            return CLI_EXIT_FAIL;
        }
        if (cli_now() >= end) {
            cli_errorf(prog, s->image,
                       "unmounted from %s, but vhdmount (pid %ld) has not closed it after "
                       "%d s (still syncing, or hung)",
                       mnt, s->pid, CLI_UNMOUNT_WAIT_SECONDS);
            return CLI_EXIT_FAIL;
        }
        cli_sleep_ms(10);
    }
    (void)unlink(path);
    if (cur.status != CLI_EXIT_OK)
        cli_errorf(prog, s->image, "%s",
                   cur.reason[0] ? cur.reason : "the final sync or close failed (see syslog)");
    return cur.status;
}

int vmnt_unmount(const char *prog, const char *arg, int quiet)
{
    char mnt[PATH_MAX], path[PATH_MAX];
    if (mnt_resolve(arg, mnt) != 0) {
        cli_errorf(prog, arg, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    cli_mstate s;
    int have = cli_mstate_path(mnt, 0, path, sizeof path) == 0 &&
               cli_mstate_read(path, &s) == 0 && strcmp(s.mountpoint, mnt) == 0;
    cli_mount mt;
    int mounted = cli_mount_find(mnt, &mt);
    const char *type = mt.type, *src = mt.source;
    if (!mounted) {
        /* Unmounted by someone else, its daemon still closing: wait too. */
        if (have && s.state != CLI_MSTATE_CLOSED && cli_mstate_alive(&s))
            return daemon_wait(prog, mnt, path, &s);
        cli_errorf(prog, arg, "not mounted (nothing to unmount)");
        return CLI_EXIT_FAIL;
    }
    if (strcmp(type, "fuse.vhd") != 0) {
        cli_errorf(prog, arg, "not mounted by vhdmount (file system type %s); nothing unmounted",
                   type);
        return CLI_EXIT_FAIL;
    }
    /* A state file of an earlier mount there, or of another image. */
    if (have && (strcmp(s.image, src) != 0 || s.state == CLI_MSTATE_CLOSED))
        have = 0;
    int dead = have && !cli_mstate_alive(&s);
    if (kernel_unmount(prog, mnt) != 0)
        return CLI_EXIT_FAIL;
    if (dead) {
        (void)unlink(path);
        cli_errorf(prog, s.image,
                   "vhdmount (pid %ld) had ended without closing it (killed?); unmounted; "
                   "the image keeps its last commit",
                   s.pid);
        return CLI_EXIT_FAIL;
    }
    return have ? daemon_wait(prog, mnt, path, &s) : fallback_wait(prog, mnt, src, quiet);
}
