/* Sizing a host tree before it becomes a volume (mkvhd's default size),
 * and the one place that decides what FAT32 cannot hold (specials). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "treeutil.h"

const uint32_t cli_cluster_sizes[CLI_CLUSTER_SIZES] = {512, 4096, 8192, 16384, 32768};

#define FAT_FILE_MAX 0xFFFFFFFFull
#define DIRENT_BYTES 32u
#define LFN_CHARS 13u
#define MIB (1ull << 20)

const char *cli_special_kind(const struct stat *st)
{
    if (S_ISLNK(st->st_mode) && (uint64_t)st->st_size > VD_FS_LINK_MAX)
        return "symbolic link whose target is longer than 1024 bytes (the link "
               "format's limit)";
    if (S_ISLNK(st->st_mode))
        return NULL;
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
        return "device";
    if (S_ISFIFO(st->st_mode))
        return "fifo";
    if (S_ISSOCK(st->st_mode))
        return "socket";
    if (S_ISREG(st->st_mode) && (uint64_t)st->st_size > FAT_FILE_MAX)
        return "file larger than 4 GiB - 1 (the FAT32 limit)";
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode) && !S_ISLNK(st->st_mode))
        return "not a regular file or directory";
    return NULL;
}

int cli_special_report(const char *prog, const char *path, const char *kind,
                       cli_special policy, int warn)
{
    if (policy == CLI_SPECIAL_REFUSE) {
        cli_errorf(prog, path, "%s (refused: --refuse-special)", kind);
        return CLI_EXIT_FAIL;
    }
    if (warn)
        cli_errorf(prog, path, "skipped: %s", kind);
    return 0;
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cli_dir_open(int at, const char *path, int follow)
{
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
}

int cli_dir_list(const char *prog, const char *path, int dfd, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    int fd = dup(dfd); /* closedir closes it; dfd stays the caller's */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        cli_errorf(prog, path, "%s", strerror(errno));
        if (fd >= 0)
            (void)close(fd);
        return CLI_EXIT_FAIL;
    }
    char **out = NULL;
    size_t k = 0, cap = 0;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            if (errno) {
                cli_errorf(prog, path, "%s", strerror(errno));
                rc = CLI_EXIT_FAIL;
            }
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (k == cap) {
            size_t ncap = cap ? 2 * cap : 32;
            char **g = realloc(out, ncap * sizeof *g);
            if (!g) {
                rc = -1;
                break;
            }
            out = g;
            cap = ncap;
        }
        out[k] = strdup(e->d_name);
        if (!out[k]) {
            rc = -1;
            break;
        }
        k++;
    }
    (void)closedir(d); /* read only */
    if (rc != 0) {
        cli_names_free(out, k);
        if (rc < 0)
            cli_errorf(prog, path, "out of memory");
        return CLI_EXIT_FAIL;
    }
    if (k)
        qsort(out, k, sizeof *out, by_bytes);
    *names = out;
    *n = k;
    return 0;
}

void cli_names_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static void add_clusters(cli_tree_stats *st, uint64_t bytes)
{
    for (int k = 0; k < CLI_CLUSTER_SIZES; k++) {
        uint64_t cs = cli_cluster_sizes[k];
        st->need[k] += (bytes + cs - 1) / cs * cs;
    }
}

void cli_tree_stats_file(cli_tree_stats *st, uint64_t bytes)
{
    st->files++;
    st->bytes += bytes;
    add_clusters(st, bytes);
}

void cli_tree_stats_dir(cli_tree_stats *st, uint64_t entries)
{
    st->dirs++;
    add_clusters(st, entries * DIRENT_BYTES);
}

void cli_tree_stats_link(cli_tree_stats *st)
{
    st->links++;
    add_clusters(st, CLI_LINK_BYTES);
}

uint64_t cli_name_entries(const char *name)
{
    return 1 + (strlen(name) + LFN_CHARS - 1) / LFN_CHARS;
}

/* The directories being walked, innermost first (see copy.c). */
typedef struct scan_up {
    dev_t dev;
    ino_t ino;
    const struct scan_up *up;
} scan_up;

typedef struct scan {
    const char *prog;
    cli_special policy;
    int warn, deref;
    cli_tree_stats *st;
} scan;

static int scan_dir(const scan *sc, const char *path, const struct stat *dsb,
                    const scan_up *up)
{
    for (const scan_up *a = up; a; a = a->up) {
        if (a->dev == dsb->st_dev && a->ino == dsb->st_ino) {
            cli_errorf(sc->prog, path,
                       "a symbolic link leads back to a directory being copied "
                       "(--dereference would copy forever)");
            return CLI_EXIT_FAIL;
        }
    }
    scan_up me = {.dev = dsb->st_dev, .ino = dsb->st_ino, .up = up};
    char **names = NULL;
    size_t n = 0;
    /* Entries are looked at relative to the directory: no path walk each. */
    int dfd = cli_dir_open(AT_FDCWD, path, 1);
    if (dfd < 0) {
        cli_errorf(sc->prog, path, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    int rc = cli_dir_list(sc->prog, path, dfd, &names, &n);
    if (rc) {
        (void)close(dfd);
        return rc;
    }
    uint64_t entries = 2; /* "." and ".." */
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *p = cli_path_join(path, names[i]);
        struct stat sb;
        if (!p) {
            cli_errorf(sc->prog, path, "out of memory");
            rc = CLI_EXIT_FAIL;
        } else if (fstatat(dfd, names[i], &sb, sc->deref ? 0 : AT_SYMLINK_NOFOLLOW) != 0) {
            if (sc->deref && errno == ENOENT &&
                fstatat(dfd, names[i], &sb, AT_SYMLINK_NOFOLLOW) == 0) {
                rc = cli_special_report(sc->prog, p, "dangling symbolic link",
                                        sc->policy, sc->warn);
                sc->st->skipped++;
            } else {
                cli_errorf(sc->prog, p, "%s", strerror(errno));
                rc = CLI_EXIT_FAIL;
            }
        } else {
            const char *kind = cli_special_kind(&sb);
            if (kind) {
                rc = cli_special_report(sc->prog, p, kind, sc->policy, sc->warn);
                sc->st->skipped++;
            } else {
                entries += cli_name_entries(names[i]);
                if (S_ISDIR(sb.st_mode))
                    rc = scan_dir(sc, p, &sb, &me);
                else if (S_ISLNK(sb.st_mode))
                    cli_tree_stats_link(sc->st);
                else
                    cli_tree_stats_file(sc->st, (uint64_t)sb.st_size);
            }
        }
        free(p);
    }
    cli_tree_stats_dir(sc->st, entries);
    cli_names_free(names, n);
    (void)close(dfd); /* read only */
    return rc;
}

int cli_tree_scan(const char *prog, const char *src, cli_special policy, int warn,
                  int flags, cli_tree_stats *st)
{
    memset(st, 0, sizeof *st);
    int deref = !!(flags & CLI_SCAN_DEREF);
    scan sc = {.prog = prog, .policy = policy, .warn = warn, .deref = deref, .st = st};
    struct stat sb;
    int follow = deref || (flags & CLI_SCAN_ROOT);
    if ((follow ? stat(src, &sb) : lstat(src, &sb)) != 0) {
        cli_errorf(prog, src, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (S_ISDIR(sb.st_mode))
        return scan_dir(&sc, src, &sb, NULL);
    const char *kind = cli_special_kind(&sb);
    if (kind) {
        st->skipped++;
        return cli_special_report(prog, src, kind, policy, warn);
    }
    if (S_ISLNK(sb.st_mode))
        cli_tree_stats_link(st);
    else
        cli_tree_stats_file(st, (uint64_t)sb.st_size);
    return 0;
}

uint64_t cli_tree_volume_bytes(const cli_tree_stats *st)
{
    uint64_t vol = CLI_FAT32_MIN_BYTES;
    for (int k = 0; k < CLI_CLUSTER_SIZES; k++) {
        uint64_t cs = cli_cluster_sizes[k];
        /* Headroom: 10% and 4 MiB, so the image is usable after creation
         * and estimates of directory sizes never make the copy fail. */
        uint64_t data = st->need[k] + cs /* root */ + st->need[k] / 10 + 4 * MIB;
        uint64_t fat = 2 * (data / cs + 2) * 4;
        vol = data + fat + 64 * 1024 /* reserved sectors */;
        vol = (vol + MIB - 1) / MIB * MIB;
        if (vol < CLI_FAT32_MIN_BYTES)
            vol = CLI_FAT32_MIN_BYTES;
        if (vd_fs_default_cluster_bytes(vol) <= cs)
            break;
    }
    return vol;
}
