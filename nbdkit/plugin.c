/* nbdkit-vdisk-plugin: configuration, lifecycle and the nbdkit callback
 * table (docs/man/nbdkit-vdisk-plugin.1).
 *
 * Lifecycle, around nbdkit's fork into the background:
 *   config_complete  the secret is read (stdin is still safe here);
 *   get_ready        the host file (and its lock) and the anchor are opened
 *                    and the key is tried on a read-only handle, so a
 *                    wrong key, a rollback or a locked image fails nbdkit's
 *                    start with a message on the terminal;
 *   after_fork       the image is opened for serving: its master key and
 *                    cache live only in the process that serves (memory
 *                    locks are not inherited across fork);
 *   cleanup          sync and close (the anchor advances), on SIGTERM,
 *                    SIGINT or the parent's exit. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-plugin.h>

#include "vdisk/anchor.h"
#include "vdisk/host.h"
#include "vdisk/keys.h"
#include "vdplug.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

#define VDP_CACHE_MB_DEFAULT 64
#define VDP_CACHE_MB_MAX 65536

/* The one instance nbdkit's API allows (no context pointer in config,
 * get_ready or cleanup): see vdplug.h. */
static vdp_plugin vdp = {
    .cache_mb = VDP_CACHE_MB_DEFAULT,
    .write_lock = PTHREAD_MUTEX_INITIALIZER,
};

static void vdp_release(vdp_plugin *p)
{
    if (p->anchor)
        vd_anchor_file_close(p->anchor);
    p->anchor = NULL;
    vd_host_close(p->host);
    p->host = NULL;
    cli_secret_wipe(&p->secret);
}

/* ---- configuration ---------------------------------------------------------- */

static int vdp_flag(const char *key, const char *value, int *out)
{
    int b = nbdkit_parse_bool(value);
    if (b < 0) {
        nbdkit_error("%s=%s: not a boolean", key, value);
        return -1;
    }
    *out = b;
    return 0;
}

static int vdp_config(const char *key, const char *value)
{
    vdp_plugin *p = &vdp;
    if (strcmp(key, "image") == 0)
        p->image = value;
    else if (strcmp(key, "key-file") == 0)
        p->key_file = value;
    else if (strcmp(key, "passphrase-file") == 0)
        p->passphrase_file = value;
    else if (strcmp(key, "identity") == 0)
        p->identity = value;
    else if (strcmp(key, "anchor") == 0) {
        if (strncmp(value, "tpm:", 4) == 0) {
            nbdkit_error("anchor=%s: TPM anchors are not supported by the plugin yet "
                         "(an anchor file only)",
                         value);
            return -1;
        }
        /* The anchor is rewritten by path (a temporary file renamed over
         * it) at commits, after nbdkit has changed directory to /. */
        free(p->anchor_path);
        p->anchor_path = nbdkit_absolute_path(value);
        if (!p->anchor_path)
            return -1;
    }
    else if (strcmp(key, "anchor-on-sync") == 0)
        return vdp_flag(key, value, &p->anchor_on_sync);
    else if (strcmp(key, "readonly") == 0)
        return vdp_flag(key, value, &p->readonly);
    else if (strcmp(key, "cache-mb") == 0) {
        uint64_t mb;
        if (nbdkit_parse_uint64_t("cache-mb", value, &mb) == -1)
            return -1;
        if (mb == 0 || mb > VDP_CACHE_MB_MAX) {
            nbdkit_error("cache-mb=%s: not a number of MiB in 1..%d", value,
                         VDP_CACHE_MB_MAX);
            return -1;
        }
        p->cache_mb = mb;
    } else if (strcmp(key, "password") == 0 || strcmp(key, "passphrase") == 0 ||
               strcmp(key, "key") == 0) {
        nbdkit_error("%s=: secrets are never taken from the command line (use key-file=, "
                     "passphrase-file= or identity=)",
                     key);
        return -1;
    } else {
        nbdkit_error("unknown parameter '%s' (see nbdkit vdisk --help)", key);
        return -1;
    }
    return 0;
}

static int vdp_config_complete(void)
{
    vdp_plugin *p = &vdp;
    if (!p->image) {
        nbdkit_error("image=IMAGE is required (see nbdkit vdisk --help)");
        return -1;
    }
    int n = !!p->key_file + !!p->passphrase_file + !!p->identity;
    if (n != 1) {
        nbdkit_error("%s: give exactly one of key-file=, passphrase-file=, identity= "
                     "(a file name: secrets are never taken from the command line)",
                     p->image);
        return -1;
    }
    int rc;
    if (p->key_file)
        rc = cli_secret_keyfile("vdisk", p->key_file, &p->secret);
    else if (p->identity)
        rc = cli_secret_identity("vdisk", p->identity, &p->secret);
    else if (strcmp(p->passphrase_file, "-") == 0 && !nbdkit_stdio_safe()) {
        nbdkit_error("passphrase-file=-: standard input is the NBD connection here (-s); "
                     "give a file");
        return -1;
    } else
        rc = cli_secret_passphrase_file("vdisk", p->passphrase_file, &p->secret);
    return rc == 0 ? 0 : -1; /* the reader has logged why */
}

#define vdp_config_help                                                                  \
    "image=IMAGE|URI        (required) the vdisk image file, or an NBD URI\n"                          \
    "key-file=FILE          a 32-byte key file\n"                                        \
    "passphrase-file=FILE   the passphrase is the first line of FILE ('-' = stdin)\n"    \
    "identity=FILE          X25519 secret key of a sealed key slot\n"                    \
    "anchor=FILE            freshness counter file (rollback across restarts)\n"         \
    "anchor-on-sync=BOOL    advance the anchor only at flush and exit\n"                 \
    "cache-mb=N             image block cache in MiB (default 64)\n"                     \
    "readonly=BOOL          open the image read-only (shared lock, nothing written)"

static void vdp_dump_plugin(void)
{
    printf("vdisk_library_version=%s\n", vd_version());
    printf("vdisk_block_size=%u\n", VD_BLOCK_SIZE);
    printf("vdisk_image_uri=%s\n", vd_host_nbd_available() ? "yes" : "no");
}

/* ---- opening and closing ----------------------------------------------------- */

static vd_err vdp_unlock(vdp_plugin *p, int read_only, size_t cache_bytes, vd_image **out)
{
    vd_open_opts o = {
        .read_only = read_only,
        .cache_bytes = cache_bytes,
        .anchor = p->anchor,
        .anchor_mode = p->anchor_on_sync ? VD_ANCHOR_EXPLICIT_SYNC : VD_ANCHOR_EVERY_COMMIT,
    };
    vd_err e = vd_image_open_unlock(p->host, &p->secret.u, &o, out);
    if (e != VD_OK) {
        const char *d = cli_open_detail(e, p->secret.u.type);
        nbdkit_error("%s: %s%s%s%s", p->image, vd_strerror(e), d ? " (" : "", d ? d : "",
                     d ? ")" : "");
    }
    return e;
}

/* A file (its lock taken) or an NBD export (vd_host_open decides). */
static int vdp_host_open(vdp_plugin *p)
{
    char why[256];
    int sys = 0;
    vd_err e = vd_host_open(p->image, p->readonly ? VD_HOST_READONLY : 0, &p->host, &sys,
                            why, sizeof why);
    if (e == VD_OK)
        return 0;
    p->host = NULL;
    if (e == VD_ERR_BUSY)
        nbdkit_error("%s: %s (another program has it open for writing)", p->image,
                     vd_strerror(e));
    else
        nbdkit_error("%s: %s", p->image, why[0] ? why : vd_strerror(e));
    return -1;
}

static int vdp_get_ready(void)
{
    vdp_plugin *p = &vdp;
    int sys = 0;
    vd_err e;
    if (vdp_host_open(p) != 0)
        return -1;
    if (p->anchor_path) {
        e = vd_anchor_file_open(p->anchor_path, 0, &p->anchor, &sys);
        if (e != VD_OK) {
            if (sys == ENOENT)
                nbdkit_error("%s: anchor file not found (it is made by mkvhd --anchor or "
                             "vhdtool anchor init; a missing anchor is never recreated "
                             "silently)",
                             p->anchor_path);
            else
                nbdkit_error("%s: %s", p->anchor_path,
                             sys ? strerror(sys) : "not an anchor file");
            return -1;
        }
    } else {
        /* A note, not an error; nbdkit has no warning level, and stderr is
         * still the terminal before the fork. */
        fprintf(stderr,
                "nbdkit: vdisk: %s: note: no anchor= given; freshness across restarts "
                "is not guaranteed (an old copy of the image would open)\n",
                p->image);
    }
    /* The key, the anchor and the header are checked now, while errors
     * still reach the terminal; the handle that serves is opened after
     * the fork. A read-only trial writes nothing and advances nothing. */
    vd_image *trial = NULL;
    if (vdp_unlock(p, 1, 0, &trial) != VD_OK)
        return -1;
    (void)vd_image_close(trial);
    /* A file keeps its descriptor (and lock) across the fork; an NBD
     * connection is made again by the process that serves. */
    if (vd_host_is_uri(p->image)) {
        vd_host_close(p->host);
        p->host = NULL;
    }
    return 0;
}

static int vdp_after_fork(void)
{
    vdp_plugin *p = &vdp;
    vd_image_info info;
    if (!p->host && vdp_host_open(p) != 0) {
        cli_secret_wipe(&p->secret);
        return -1;
    }
    vd_err e = vdp_unlock(p, p->readonly, (size_t)p->cache_mb << 20, &p->img);
    cli_secret_wipe(&p->secret);
    if (e != VD_OK)
        return -1;
    e = vd_image_info_get(p->img, &info);
    if (e != VD_OK) {
        nbdkit_error("%s: %s", p->image, vd_strerror(e));
        return -1;
    }
    p->size = info.nblocks * VD_BLOCK_SIZE;
    nbdkit_debug("%s: %" PRIu64 " logical blocks, epoch %" PRIu64 ", %s%s", p->image,
                 info.nblocks, info.epoch, info.read_only ? "read-only" : "read-write",
                 info.recovered ? ", recovered an interrupted sync" : "");
    return 0;
}

static void vdp_cleanup(void)
{
    vdp_plugin *p = &vdp;
    if (p->img) {
        vd_err e = vd_image_close(p->img); /* syncs; the anchor advances */
        p->img = NULL;
        if (e != VD_OK)
            nbdkit_error("%s: closing the image: %s", p->image, vd_strerror(e));
        else
            nbdkit_debug("%s: synced and closed", p->image);
    }
    vdp_release(p);
}

static void vdp_unload(void)
{
    vdp_cleanup(); /* cleanup is not reached when the start failed */
    free(vdp.anchor_path);
    vdp.anchor_path = NULL;
}

/* ---- connections and data ---------------------------------------------------- */

static void *vdp_open(int readonly)
{
    (void)readonly;
    if (!vdp.img) {
        nbdkit_error("%s: the image is not open", vdp.image);
        return NULL;
    }
    return &vdp;
}

static int64_t vdp_get_size(void *h)
{
    return (int64_t)((vdp_plugin *)h)->size;
}

static int vdp_block_size(void *h, uint32_t *minimum, uint32_t *preferred,
                          uint32_t *maximum)
{
    (void)h;
    *minimum = 1; /* partial blocks are read-modify-written */
    *preferred = VD_BLOCK_SIZE;
    *maximum = 0xffffffff;
    return 0;
}

static int vdp_can_write(void *h)
{
    return !((vdp_plugin *)h)->readonly;
}

static int vdp_can_flush(void *h)
{
    return !((vdp_plugin *)h)->readonly;
}

static int vdp_can_fua(void *h)
{
    return ((vdp_plugin *)h)->readonly ? NBDKIT_FUA_NONE : NBDKIT_FUA_NATIVE;
}

/* Every connection shares one vd_image: a write completed on one is read
 * by all, and a flush (or FUA) on any commits all of them. */
static int vdp_can_multi_conn(void *h)
{
    (void)h;
    return 1;
}

/* No discard in the library: a block once written stays allocated. */
static int vdp_can_trim(void *h)
{
    (void)h;
    return 0;
}

static int vdp_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    (void)flags;
    return vdp_read(h, buf, count, offset);
}

static int vdp_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset,
                      uint32_t flags)
{
    return vdp_write(h, buf, count, offset, (flags & NBDKIT_FLAG_FUA) != 0);
}

static int vdp_flush(void *h, uint32_t flags)
{
    (void)flags;
    return vdp_sync(h, "flush");
}

/* One request at a time per connection (connections still run in
 * parallel: multi-conn) with an nbdkit older than 1.33.10. Those abort, or
 * in a small window send a reply to another client's socket, when a client
 * hangs up with several replies of one connection pending, which only
 * PARALLEL allows (nbdkit commit 9d82aa4f, Red Hat bug 2173054). nbdcopy
 * does exactly that at its first EIO, so one integrity failure would stop
 * the server for every client, and leave the image unclosed. */
static int vdp_thread_model(void)
{
#if NBDKIT_VERSION_MAJOR == 1 &&                                                    \
    (NBDKIT_VERSION_MINOR < 33 || (NBDKIT_VERSION_MINOR == 33 && NBDKIT_VERSION_MICRO < 10))
    return NBDKIT_THREAD_MODEL_SERIALIZE_REQUESTS;
#else
    return NBDKIT_THREAD_MODEL_PARALLEL;
#endif
}

static struct nbdkit_plugin plugin = {
    .name = "vdisk",
    .longname = "vdisk encrypted, integrity-protected image",
    .version = VD_VERSION_STRING,
    .description = "Serve the verified plaintext volume of a vdisk image.",
    .magic_config_key = "image",
    .config = vdp_config,
    .config_complete = vdp_config_complete,
    .config_help = vdp_config_help,
    .dump_plugin = vdp_dump_plugin,
    .thread_model = vdp_thread_model,
    .get_ready = vdp_get_ready,
    .after_fork = vdp_after_fork,
    .cleanup = vdp_cleanup,
    .unload = vdp_unload,
    .open = vdp_open,
    .get_size = vdp_get_size,
    .block_size = vdp_block_size,
    .can_write = vdp_can_write,
    .can_flush = vdp_can_flush,
    .can_fua = vdp_can_fua,
    .can_multi_conn = vdp_can_multi_conn,
    .can_trim = vdp_can_trim,
    .pread = vdp_pread,
    .pwrite = vdp_pwrite,
    .flush = vdp_flush,
    .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
