/* nbdkit-vdisk-plugin: the plaintext volume of a vdisk image served as an
 * NBD disk (docs/man/nbdkit-vdisk-plugin.1). Reads are verified, writes
 * sealed, flush is vd_image_sync; every byte decision stays in libvdisk.
 *
 * nbdkit's plugin API passes no context to its configuration and lifecycle
 * callbacks, so the plugin keeps one vdp_plugin per process (plugin.c) and
 * every connection shares its vd_image: that is what makes a flush on one
 * connection cover the writes of all of them (can_multi_conn). */
#ifndef VD_NBDKIT_VDPLUG_H
#define VD_NBDKIT_VDPLUG_H

#include <pthread.h>
#include <stdint.h>

#include "cli.h"
#include "vdisk/vdisk.h"

typedef struct vdp_plugin {
    /* Parameters (strings owned by nbdkit, but anchor_path: malloc'ed).
     * The image and the secrets are opened before nbdkit changes to /. */
    const char *image;
    const char *key_file;
    const char *passphrase_file;
    const char *identity;
    char *anchor_path; /* absolute */
    int anchor_on_sync;
    int readonly;
    uint64_t cache_mb;

    /* Read at config_complete (stdin is still safe then), wiped once the
     * image is open after the fork. */
    cli_secret secret;

    vd_host *host;     /* opened before the fork: its lock is held throughout */
    vd_anchor *anchor;
    vd_image *img;     /* opened after the fork (after_fork) */
    uint64_t size;     /* bytes: logical blocks * 4096 */

    /* Serializes writes, so that the read-modify-write of a partial block
     * cannot lose a concurrent write to another part of the same block. */
    pthread_mutex_t write_lock;
} vdp_plugin;

/* Data path (io.c). Each returns 0, or -1 having logged one line and set
 * the errno nbdkit sends to the client. */
int vdp_read(vdp_plugin *p, void *buf, uint32_t count, uint64_t offset);
int vdp_write(vdp_plugin *p, const void *buf, uint32_t count, uint64_t offset,
              int fua);
int vdp_sync(vdp_plugin *p, const char *what);

/* vd_err -> errno for the client (errno.c). */
int vdp_errno(vd_err e);

#endif
