/* vhdmount's state files (mstate.h): where they live, their text form,
 * and the questions the tools ask of them. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mstate.h"

/* The per-user directory: a runtime dir is private by definition; the
 * /tmp fallback must be checked, since anyone could have made it first. */
static int dir_get(int create, char *dir, size_t cap)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    int n;
    if (x && x[0] == '/')
        n = snprintf(dir, cap, "%s/vhdmount", x);
    else if (geteuid() == 0)
        n = snprintf(dir, cap, "/run/vhdmount");
    else
        n = snprintf(dir, cap, "/tmp/vhdmount-%u", (unsigned)geteuid());
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (create && mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* FNV-1a: a short stable file name for any mountpoint; the file repeats
 * the mountpoint, and a reader checks it. */
static unsigned long long name_hash(const char *s)
{
    unsigned long long h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

int cli_mstate_path(const char *mountpoint, int create, char *path, size_t cap)
{
    char dir[PATH_MAX];
    if (dir_get(create, dir, sizeof dir) != 0)
        return -1;
    int n = snprintf(path, cap, "%s/mnt-%016llx", dir, name_hash(mountpoint));
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static const char *kind_name(cli_mstate_kind k)
{
    return k == CLI_MSTATE_CLOSED ? "closed" : k == CLI_MSTATE_CLOSING ? "closing" : "mounted";
}

/* Paths and the reason may hold anything but a newline (one value per
 * line); a newline in a path makes the file unreadable, never wrong. */
int cli_mstate_write(const char *path, const cli_mstate *s)
{
    char tmp[PATH_MAX + 32];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        (void)close(fd);
        (void)unlink(tmp);
        return -1;
    }
    fprintf(f, "pid %ld\nstart %llu\nstate %s\nstatus %d\nepoch %llu\ndev %llu\nino %llu\n",
            s->pid, s->start, kind_name(s->state), s->status, s->epoch, s->dev, s->ino);
    fprintf(f, "image %s\nmountpoint %s\nreason %s\n", s->image, s->mountpoint, s->reason);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        int saved = errno;
        (void)unlink(tmp);
        errno = saved ? saved : EIO;
        return -1;
    }
    return 0;
}

static void copy_value(char *dst, size_t cap, const char *v)
{
    size_t n = strcspn(v, "\n");
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

int cli_mstate_read(const char *path, cli_mstate *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[PATH_MAX + 32];
    int have = 0;
    while (fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        if (!sp)
            continue;
        *sp = '\0';
        const char *v = sp + 1;
        if (strcmp(line, "pid") == 0)
            s->pid = strtol(v, NULL, 10), have |= 1;
        else if (strcmp(line, "start") == 0)
            s->start = strtoull(v, NULL, 10);
        else if (strcmp(line, "state") == 0)
            s->state = strncmp(v, "closed", 6) == 0    ? CLI_MSTATE_CLOSED
                       : strncmp(v, "closing", 7) == 0 ? CLI_MSTATE_CLOSING
                                                       : CLI_MSTATE_MOUNTED,
            have |= 2;
        else if (strcmp(line, "status") == 0)
            s->status = (int)strtol(v, NULL, 10);
        else if (strcmp(line, "epoch") == 0)
            s->epoch = strtoull(v, NULL, 10);
        else if (strcmp(line, "dev") == 0)
            s->dev = strtoull(v, NULL, 10);
        else if (strcmp(line, "ino") == 0)
            s->ino = strtoull(v, NULL, 10);
        else if (strcmp(line, "image") == 0)
            copy_value(s->image, sizeof s->image, v), have |= 4;
        else if (strcmp(line, "mountpoint") == 0)
            copy_value(s->mountpoint, sizeof s->mountpoint, v), have |= 8;
        else if (strcmp(line, "reason") == 0)
            copy_value(s->reason, sizeof s->reason, v);
    }
    (void)fclose(f);
    return have == 15 && s->pid > 0 ? 0 : -1;
}

/* Fields of /proc/PID/stat after the command (which may hold spaces and
 * parentheses: it ends at the last ')'). */
static int proc_stat(long pid, char *state, unsigned long long *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    (void)fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    /* starttime is field 22; the state is field 3. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    *start = strtoull(p, NULL, 10);
    return 0;
}

unsigned long long cli_proc_start(long pid)
{
    char st;
    unsigned long long start = 0;
    return proc_stat(pid, &st, &start) == 0 ? start : 0;
}

int cli_mstate_alive(const cli_mstate *s)
{
    char st;
    unsigned long long start = 0;
    if (s->pid <= 0 || proc_stat(s->pid, &st, &start) != 0)
        return 0;
    if (st == 'Z' || st == 'X')
        return 0; /* exited; its parent has not reaped it yet */
    return s->start == 0 || start == s->start;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

int cli_mount_find(const char *mountpoint, cli_mount *out)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    char *line = malloc(3 * PATH_MAX);
    int found = 0;
    while (line && fgets(line, 3 * PATH_MAX, f)) {
        char mpoint[PATH_MAX], t[256], src[PATH_MAX], dev[32];
        if (sscanf(line, "%*s %*s %31s %*s %4095s", dev, mpoint) != 2)
            continue;
        const char *sep = strstr(line, " - ");
        if (!sep || sscanf(sep + 3, "%255s %4095s", t, src) != 2)
            continue;
        unescape(mpoint);
        if (strcmp(mpoint, mountpoint) != 0)
            continue;
        unescape(src);
        /* The last match is the newest (mounted over the others). */
        found = 1;
        snprintf(out->type, sizeof out->type, "%s", t);
        snprintf(out->source, sizeof out->source, "%s", src);
        snprintf(out->dev, sizeof out->dev, "%s", dev);
    }
    free(line);
    (void)fclose(f);
    return found;
}

static int holder_exiting(const cli_mstate *s)
{
    if (!cli_mstate_alive(s))
        return 0; /* dead: the kernel has dropped its lock already */
    if (s->state != CLI_MSTATE_MOUNTED)
        return 1;
    cli_mount mt;
    return !cli_mount_find(s->mountpoint, &mt) || strcmp(mt.type, "fuse.vhd") != 0 ||
           strcmp(mt.source, s->image) != 0;
}

int cli_mstate_exiting(unsigned long long dev, unsigned long long ino, cli_mstate *s)
{
    char dir[PATH_MAX];
    if (dir_get(0, dir, sizeof dir) != 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    char path[PATH_MAX + 256];
    while (!found && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "mnt-", 4) != 0 || strchr(de->d_name, '.'))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (cli_mstate_read(path, s) == 0 && s->dev == dev && s->ino == ino &&
            holder_exiting(s))
            found = 1;
    }
    (void)closedir(d);
    return found;
}

void cli_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}
