/* A wider read-ahead window for this mount. The kernel sends a FUSE file
 * system reads of at most the bdi's read-ahead (128 KiB by default), and a
 * FUSE server cannot ask for more in INIT; the bdi's read_ahead_kb in sysfs
 * can be raised by root. Each request costs a context switch, the volume
 * lock and a tree-path check, so 1 MiB requests read sequential files
 * ~30 % faster here (docs/PERFORMANCE.md). The INIT reply sets the window
 * to the smaller of the bdi's and the kernel's own offer, so this runs
 * after it, at the first open. Best effort: without the right
 * to write sysfs, or if the user already set a wider window, nothing
 * changes. The mount is found in /proc/self/mountinfo (cli_mount_find),
 * never by stat() on the mount point, which would wait for this very
 * server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdmount.h"

static void widen(const char *real_mountpoint, unsigned kb)
{
    char path[128];
    cli_mount mt;
    if (!real_mountpoint || !cli_mount_find(real_mountpoint, &mt) ||
        strncmp(mt.type, "fuse", 4) != 0)
        return;
    snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", mt.dev);
    FILE *f = fopen(path, "r+e");
    if (!f)
        return;
    unsigned now = 0;
    if (fscanf(f, "%u", &now) == 1 && now < kb && fseek(f, 0, SEEK_SET) == 0)
        (void)fprintf(f, "%u\n", kb);
    (void)fclose(f); /* a refused write shows here; it changes nothing */
}

void vmnt_readahead_widen_once(vmnt_ctx *c)
{
    if (pthread_mutex_lock(&c->files_lock) != 0)
        return;
    int done = c->readahead_done;
    c->readahead_done = 1;
    (void)pthread_mutex_unlock(&c->files_lock);
    if (!done)
        widen(c->real_mountpoint, VMNT_READAHEAD_KB);
}
