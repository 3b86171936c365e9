/* A software TPM 2.0 (swtpm) for tests: started in its own temporary
 * directory on its own unix socket, stopped (and restarted on the same
 * state, as a TPM survives a power cycle) by the test that owns it. */
#ifndef VD_TEST_SWTPM_H
#define VD_TEST_SWTPM_H

#include <sys/types.h>

typedef struct vt_swtpm {
    pid_t pid;        /* 0 when not running */
    char dir[64];     /* state directory and socket */
    char tcti[160];   /* "swtpm:path=DIR/tpm.sock" */
} vt_swtpm;

/* Start swtpm in a new temporary directory and wait until it answers.
 * 0, or -1 with the reason in why (swtpm not installed, library built
 * without TPM support): the caller skips with that reason. */
int vt_swtpm_start(vt_swtpm *s, char *why, size_t whylen);
/* Kill the process (its NV state stays in dir). */
void vt_swtpm_stop(vt_swtpm *s);
/* Start again on the state in dir. 0 or -1. */
int vt_swtpm_restart(vt_swtpm *s);
/* Stop and remove the directory. */
void vt_swtpm_free(vt_swtpm *s);

#endif
