/* The exit-status table and one-line error messages (DESIGN §7). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_exit_status(vd_err e)
{
    switch (e) {
    case VD_OK:
        return CLI_EXIT_OK;
    case VD_ERR_WRONG_KEY:
        return CLI_EXIT_WRONG_KEY;
    /* What a user must treat as "this image cannot be trusted": a failed
     * tag, a replayed state, a malformed structure, or a handle that has
     * already seen one of these (sticky). */
    case VD_ERR_AUTH:
    case VD_ERR_ROLLBACK:
    case VD_ERR_CORRUPT:
    case VD_ERR_FAILED:
        return CLI_EXIT_INTEGRITY;
    case VD_ERR_ANCHOR_MISMATCH:
        return CLI_EXIT_ANCHOR_MISMATCH;
    case VD_ERR_ANCHOR_UNREACHABLE:
        return CLI_EXIT_ANCHOR_UNREACHABLE;
    case VD_ERR_ANCHOR_MISSING:
        return CLI_EXIT_ANCHOR_MISSING;
    case VD_ERR_ANCHOR_DENIED:
        return CLI_EXIT_ANCHOR_DENIED;
    default:
        return CLI_EXIT_FAIL;
    }
}

void cli_errorf(const char *prog, const char *subject, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (subject)
        fprintf(stderr, "%s: %s: ", prog, subject);
    else
        fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_fail(const char *prog, const char *subject, vd_err e, const char *detail)
{
    if (detail && detail[0])
        cli_errorf(prog, subject, "%s (%s)", vd_strerror(e), detail);
    else
        cli_errorf(prog, subject, "%s", vd_strerror(e));
    return cli_exit_status(e);
}

int cli_fail_errno(const char *prog, const char *subject, vd_err e, int sys_errno)
{
    if (sys_errno != 0)
        cli_errorf(prog, subject, "%s", strerror(sys_errno));
    else
        cli_errorf(prog, subject, "%s", vd_strerror(e));
    return e == VD_OK ? CLI_EXIT_FAIL : cli_exit_status(e);
}
