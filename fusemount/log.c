/* Log lines of a running mount: syslog once daemonized (stderr is
 * /dev/null then), stderr in the foreground. One line each, naming the
 * image, like every tool error (DESIGN §7). */
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "vhdmount.h"

void vmnt_log(const vmnt_ctx *c, int priority, const char *fmt, ...)
{
    if (c->no_notes && priority >= LOG_NOTICE)
        return; /* -q: notes go, errors stay */
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (c->use_syslog)
        syslog(priority, "%s: %s", c->image, msg);
    else
        fprintf(stderr, "%s: %s: %s\n", c->prog, c->image, msg);
}
