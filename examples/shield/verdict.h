/* How the shield reports the outcome of a run: the vd_err's name and
 * message on stderr, and one exit status per class of error, so a test
 * can tell "caught as tampering" from "caught as rollback" from "the host
 * failed us" (docs/SHIELD.md, "Exit statuses"). */
#ifndef SHIELD_VERDICT_H
#define SHIELD_VERDICT_H

#include <vdisk/vdisk.h>

enum {
    SH_EXIT_OK = 0,
    SH_EXIT_SETUP = 1, /* our own files (key, anchor) or the socket */
    SH_EXIT_USAGE = 2,
    SH_EXIT_AUTH = 10,      /* VD_ERR_AUTH */
    SH_EXIT_ROLLBACK = 11,  /* VD_ERR_ROLLBACK */
    SH_EXIT_IO = 12,        /* VD_ERR_IO */
    SH_EXIT_CORRUPT = 13,   /* VD_ERR_CORRUPT */
    SH_EXIT_FAILED = 14,    /* VD_ERR_FAILED: sticky after a tree-node failure */
    SH_EXIT_WRONG_KEY = 15, /* VD_ERR_WRONG_KEY */
    SH_EXIT_OTHER = 16,     /* any other vd_err */
    SH_EXIT_MISMATCH = 20   /* the library said OK but the bytes are wrong:
                               an attack that went undetected */
};

const char *sh_err_name(vd_err e);
int sh_exit_status(vd_err e);

#endif
