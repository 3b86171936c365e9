/* mkvhd: what the command line asked for, and the build itself. */
#ifndef VD_MKVHD_H
#define VD_MKVHD_H

#include <signal.h>
#include <stdint.h>

#include "cli.h"
#include "copy.h"

#define MKVHD_PROG "mkvhd"
#define MKVHD_MAX_SEAL VD_KEYSLOTS

typedef struct mkvhd_opts {
    const char *image;
    const char *source;   /* NULL: empty volume */
    const char *from_raw; /* NULL: format a new volume */
    const char *label;
    const char *new_key_file;
    const char *seal_to[MKVHD_MAX_SEAL];
    int nseal;
    uint64_t size; /* volume bytes; 0 = from the tree */
    int quiet, force;
    cli_special policy;
    cli_keyopts keys;
    const volatile sig_atomic_t *cancel; /* SIGINT/SIGTERM/SIGHUP seen */
} mkvhd_opts;

/* Build the image; returns the exit status (errors printed). */
int mkvhd_build(const mkvhd_opts *o);

#endif
