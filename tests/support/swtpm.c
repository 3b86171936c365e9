/* See swtpm.h. */
#include "swtpm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vdisk/anchor.h"

static int on_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char buf[512];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n + strlen(name) + 2 < sizeof buf) {
            memcpy(buf, path, n);
            buf[n] = '/';
            strcpy(buf + n + 1, name);
            if (access(buf, X_OK) == 0)
                return 1;
        }
        path += n + (path[n] == ':');
    }
    return 0;
}

static int spawn(vt_swtpm *s)
{
    char srv[128], ctrl[128], state[96], log[96];
    snprintf(srv, sizeof srv, "type=unixio,path=%s/tpm.sock", s->dir);
    /* The swtpm TCTI finds the control socket at the data path + ".ctrl". */
    snprintf(ctrl, sizeof ctrl, "type=unixio,path=%s/tpm.sock.ctrl", s->dir);
    snprintf(state, sizeof state, "dir=%s", s->dir);
    snprintf(log, sizeof log, "file=%s/swtpm.log", s->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            (void)dup2(fd, 0);
            (void)dup2(fd, 1);
            (void)dup2(fd, 2);
        }
        execlp("swtpm", "swtpm", "socket", "--tpm2", "--server", srv, "--ctrl", ctrl,
               "--tpmstate", state, "--log", log, "--flags", "not-need-init,startup-clear",
               (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    /* Ready once it answers (the socket appears before it listens). */
    for (int i = 0; i < 1000; i++) {
        vd_anchor *a = NULL;
        if (vd_anchor_tpm_open(s->tcti, 0x01000000u, 0, &a, NULL, 0) == VD_OK) {
            vd_anchor_tpm_close(a);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return -1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    vt_swtpm_stop(s);
    return -1;
}

int vt_swtpm_start(vt_swtpm *s, char *why, size_t whylen)
{
    memset(s, 0, sizeof *s);
    if (!vd_anchor_tpm_available()) {
        snprintf(why, whylen, "libvdisk built without TPM support (libtss2-dev missing)");
        return -1;
    }
    if (!on_path("swtpm")) {
        snprintf(why, whylen, "swtpm not installed");
        return -1;
    }
    snprintf(s->dir, sizeof s->dir, "/tmp/vd-swtpm-XXXXXX");
    if (!mkdtemp(s->dir)) {
        snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
        return -1;
    }
    snprintf(s->tcti, sizeof s->tcti, "swtpm:path=%s/tpm.sock", s->dir);
    if (spawn(s) != 0) {
        snprintf(why, whylen, "swtpm did not start (see %s/swtpm.log)", s->dir);
        return -1;
    }
    return 0;
}

void vt_swtpm_stop(vt_swtpm *s)
{
    if (s->pid > 0) {
        (void)kill(s->pid, SIGKILL); /* a power cut: no orderly shutdown */
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    s->pid = 0;
}

int vt_swtpm_restart(vt_swtpm *s)
{
    vt_swtpm_stop(s);
    char p[128];
    snprintf(p, sizeof p, "%s/tpm.sock", s->dir);
    (void)unlink(p);
    snprintf(p, sizeof p, "%s/tpm.sock.ctrl", s->dir);
    (void)unlink(p);
    return spawn(s);
}

void vt_swtpm_free(vt_swtpm *s)
{
    vt_swtpm_stop(s);
    if (!s->dir[0])
        return;
    DIR *d = opendir(s->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[384];
            snprintf(p, sizeof p, "%s/%s", s->dir, e->d_name);
            (void)unlink(p);
        }
        closedir(d);
    }
    (void)rmdir(s->dir);
    s->dir[0] = '\0';
}
