/* The daemon's side of the state file (cli/mstate.h): written once the
 * daemon has its final pid, then at each step of the end, so `vhdmount -u`
 * and the tools can tell a mount from one on its way out. Without a
 * usable directory the mount still works; only `vhdmount -u` falls back
 * to waiting on the lock. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "vhdmount.h"

void vmnt_state_begin(vmnt_ctx *c, const char *image, const char *mountpoint)
{
    cli_mstate *s = &c->state;
    struct stat st;
    memset(s, 0, sizeof *s);
    /* An NBD URI has no dev/ino (0: no tool waits on it; -u still does). */
    memset(&st, 0, sizeof st);
    if (!image[0] || snprintf(s->image, sizeof s->image, "%s", image) >= (int)sizeof s->image ||
        (stat(s->image, &st) != 0 && !vd_host_is_uri(s->image)) ||
        snprintf(s->mountpoint, sizeof s->mountpoint, "%s", mountpoint) >=
            (int)sizeof s->mountpoint ||
        cli_mstate_path(mountpoint, 1, c->state_path, sizeof c->state_path) != 0) {
        vmnt_log(c, LOG_NOTICE, "no state file (%s): vhdmount -u can only wait on the lock",
                 strerror(errno));
        c->state_path[0] = '\0';
        return;
    }
    s->pid = (long)getpid();
    s->start = cli_proc_start(s->pid);
    vd_image_info info;
    if (c->ci.img && vd_image_info_get(c->ci.img, &info) == VD_OK)
        s->epoch = info.epoch;
    s->dev = (unsigned long long)st.st_dev;
    s->ino = (unsigned long long)st.st_ino;
    vmnt_state_set(c, CLI_MSTATE_MOUNTED);
}

void vmnt_state_set(vmnt_ctx *c, cli_mstate_kind k)
{
    if (!c->state_path[0])
        return;
    c->state.state = k;
    c->state.status = c->close_status;
    snprintf(c->state.reason, sizeof c->state.reason, "%s", c->close_reason);
    if (cli_mstate_write(c->state_path, &c->state) != 0)
        vmnt_log(c, LOG_NOTICE, "cannot write the state file %s: %s", c->state_path,
                 strerror(errno));
}

void vmnt_state_drop(vmnt_ctx *c)
{
    if (c->state_path[0])
        (void)unlink(c->state_path);
    c->state_path[0] = '\0';
}
