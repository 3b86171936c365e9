/* The nbd backend: the image of a full mode lives in a file of --dir that
 * an nbdkit of our own serves over a Unix socket beside it (`nbdkit file`,
 * its default thread model), reached through the library's NBD host. So
 * "full, nbd" against "full, file" in the same run is what the protocol,
 * the socket and the server's thread hand-offs cost (docs/PERFORMANCE.md).
 * The server gets --exit-with-parent, so a killed vhdbench takes it along. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <vdisk/host.h>

#include "bench.h"

extern char **environ;

int bench_nbd_usable(char *why, size_t cap)
{
    char path[4096];
    if (!vd_host_nbd_available()) {
        snprintf(why, cap, "built without NBD support (libnbd-dev)");
        return 0;
    }
    if (!bench_which("nbdkit", path, sizeof path)) {
        snprintf(why, cap, "no nbdkit in PATH (Debian package nbdkit)");
        return 0;
    }
    return 1;
}

vd_err bench_nbd_start(const char *file, const char *sock, long *pid_out)
{
    char pidfile[4200];
    snprintf(pidfile, sizeof pidfile, "%s.pid", sock);
    char *argv[] = {"nbdkit", "-f", "--exit-with-parent", "-U", (char *)sock, "-P", pidfile,
                    "file", (char *)file, NULL};
    pid_t pid;
    (void)unlink(sock);
    (void)unlink(pidfile);
    if (posix_spawnp(&pid, "nbdkit", NULL, NULL, argv, environ) != 0)
        return VD_ERR_IO;
    *pid_out = (long)pid;
    /* Ready once the pid file exists: nbdkit writes it after listen(2)
     * (the socket file alone appears at bind, when a connect is still
     * refused). */
    for (int i = 0; i < 3000; i++) {
        struct stat st;
        if (stat(pidfile, &st) == 0 && st.st_size > 0) {
            (void)unlink(pidfile);
            return VD_OK;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            *pid_out = 0;
            return VD_ERR_IO;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        (void)nanosleep(&ts, NULL);
    }
    bench_nbd_stop(*pid_out, sock);
    *pid_out = 0;
    return VD_ERR_IO;
}

void bench_nbd_stop(long pid, const char *sock)
{
    if (pid > 0) {
        (void)kill((pid_t)pid, SIGTERM);
        int status;
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    (void)unlink(sock);
}
