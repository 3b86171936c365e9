/* vdrename — renameat2(2) from the command line, for the mount's tests:
 * mv(1) checks "into itself" and -n itself and never shows what the file
 * system answers.
 *
 *   vdrename [--noreplace|--exchange] FROM TO
 *
 * Prints "ok" or the errno's symbolic name (EEXIST, EINVAL, ...) on stdout;
 * exits 0 on success, 1 on a refused rename, 2 on usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static const char *errno_name(int e)
{
    switch (e) {
    case EEXIST:
        return "EEXIST";
    case EINVAL:
        return "EINVAL";
    case ENOENT:
        return "ENOENT";
    case EBUSY:
        return "EBUSY";
    case ENOTEMPTY:
        return "ENOTEMPTY";
    case ENOTDIR:
        return "ENOTDIR";
    case EISDIR:
        return "EISDIR";
    case EPERM:
        return "EPERM";
    case ENOTSUP:
        return "ENOTSUP";
    case ENOSYS:
        return "ENOSYS";
    case EXDEV:
        return "EXDEV";
    default:
        return strerror(e);
    }
}

int main(int argc, char **argv)
{
    unsigned flags = 0;
    int i = 1;
    if (argc == 4 && strcmp(argv[1], "--noreplace") == 0)
        flags = RENAME_NOREPLACE;
    else if (argc == 4 && strcmp(argv[1], "--exchange") == 0)
        flags = RENAME_EXCHANGE;
    else if (argc != 3) {
        fprintf(stderr, "usage: vdrename [--noreplace|--exchange] FROM TO\n");
        return 2;
    }
    if (argc == 4)
        i = 2;
    /* The raw system call: glibc's wrapper may be missing on old systems. */
    if (syscall(SYS_renameat2, AT_FDCWD, argv[i], AT_FDCWD, argv[i + 1], flags) != 0) {
        printf("%s\n", errno_name(errno));
        return 1;
    }
    printf("ok\n");
    return 0;
}
