/* A wider read-ahead window for this mount. The kernel sends a FUSE file
 * system reads of at most the bdi's read-ahead (128 KiB by default), and a
 * FUSE server cannot ask for more in INIT; the bdi's read_ahead_kb in sysfs
 * can be raised by root. Each request costs a context switch, the volume
 * lock and a tree-path check, so 1 MiB requests read sequential files
 * ~30 % faster here (docs/PERFORMANCE.md). The INIT reply sets the window
 * to the smaller of the bdi's and the kernel's own offer, so this runs
 * after it, at the first open. Best effort: without the right
 * to write sysfs, or if the user already set a wider window, nothing
 * changes. The mount is found in /proc/self/mountinfo, never by stat() on
 * the mount point, which would wait for this very server. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vhdmount.h"

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
            r += 3;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* "MAJ:MIN" of the newest FUSE mount at path, or 0 if none. */
static int find_mount(const char *path, char *dev, size_t cap)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return 0;
    char line[8192];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char mdev[64], mpoint[PATH_MAX];
        if (sscanf(line, "%*s %*s %63s %*s %4095s", mdev, mpoint) != 2)
            continue;
        const char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "fuse", 4) != 0)
            continue;
        unescape(mpoint);
        if (strcmp(mpoint, path) == 0 && strlen(mdev) < cap) {
            memcpy(dev, mdev, strlen(mdev) + 1); /* the last match is the newest */
            found = 1;
        }
    }
    (void)fclose(f);
    return found;
}

static void widen(const char *real_mountpoint, unsigned kb)
{
    char dev[64], path[128];
    if (!real_mountpoint || !find_mount(real_mountpoint, dev, sizeof dev))
        return;
    snprintf(path, sizeof path, "/sys/class/bdi/%s/read_ahead_kb", dev);
    FILE *f = fopen(path, "r+e");
    if (!f)
        return;
    unsigned now = 0;
    if (fscanf(f, "%u", &now) == 1 && now < kb && fseek(f, 0, SEEK_SET) == 0)
        (void)fprintf(f, "%u\n", kb);
    (void)fclose(f); /* a refused write shows here; it changes nothing */
}

static void widen_ctx(void)
{
    vmnt_ctx *c = vmnt_ctx_get();
    widen(c->real_mountpoint, VMNT_READAHEAD_KB);
}

void vmnt_readahead_widen_once(vmnt_ctx *c)
{
    (void)pthread_once(&c->readahead_once, widen_ctx);
}
