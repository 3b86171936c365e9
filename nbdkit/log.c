/* cli/secret.c reports through cli_errorf; in the plugin its lines go to
 * nbdkit's log (stderr before the fork, syslog or stderr after), with
 * nbdkit's own "nbdkit: vdisk: error:" prefix in place of a program name. */
#include <stdarg.h>
#include <stdio.h>

#include <nbdkit-plugin.h>

#include "cli.h"

void cli_errorf(const char *prog, const char *subject, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    (void)prog;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    if (subject)
        nbdkit_error("%s: %s", subject, msg);
    else
        nbdkit_error("%s", msg);
}
