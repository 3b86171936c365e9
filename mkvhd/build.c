/* Building the image: secrets into key slots, a temporary file next to
 * IMAGE, the volume (formatted and filled, or imported), and a rename into
 * place only once the image is complete and synced — so a failure at any
 * step leaves no image, no temporary and no new key or anchor file.
 * On an NBD export (remote.c) the image is written in place instead. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mkvhd.h"
#include "vdisk/anchor.h"

#define P MKVHD_PROG
#define MIB (1ull << 20)

typedef struct build {
    const mkvhd_opts *o;
    cli_tree_stats st;
    uint64_t vol_bytes;
    cli_secret sec[VD_KEYSLOTS];
    int nsec;
    int key_made, anchor_made;
    char *tmp; /* temporary image path, once it exists */
    int remote;        /* IMAGE is an NBD URI */
    uint64_t capacity; /* of the export, when remote */
    vd_host *host;
    mkvhd_buildhost *bhost; /* a local build: host is its host */
    vd_anchor *anchor;
    vd_image *img;
    vd_fs *fs;
    int raw_fd;
    mkvhd_tar *tar;
    int old_fd; /* --force: the image replaced, locked until the rename */
} build;

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* --force over an image another program has open (a vhdmount): replacing
 * it would leave that program writing to a file that no longer has a name.
 * Take its lock as a writer would, waiting for an exiting vhdmount
 * (cli_lock_wait); held until the new image has the name. */
static int lock_old(build *b)
{
    const char *image = b->o->image;
    struct stat sb;
    if (stat(image, &sb) != 0 || !S_ISREG(sb.st_mode))
        return 0; /* no image there to be in use; install() reports the rest */
    b->old_fd = open(image, O_RDONLY | O_CLOEXEC);
    if (b->old_fd < 0)
        return 0; /* unreadable: nobody we could ask; rename decides */
    int r = flock(b->old_fd, LOCK_EX | LOCK_NB);
    if (r != 0 && errno == EWOULDBLOCK && cli_lock_wait(P, image, b->o->quiet))
        r = flock(b->old_fd, LOCK_EX | LOCK_NB);
    if (r == 0)
        return 0;
    cli_errorf(P, image, "%s; not replaced",
               errno == EWOULDBLOCK ? "another program has it open (a vhdmount?)"
                                    : strerror(errno));
    return CLI_EXIT_FAIL;
}

/* ---- size ---------------------------------------------------------------- */

static int plan_size(build *b)
{
    const mkvhd_opts *o = b->o;
    char s1[16], s2[16];
    if (o->from_raw) {
        struct stat sb;
        b->raw_fd = open(o->from_raw, O_RDONLY | O_CLOEXEC);
        if (b->raw_fd < 0 || fstat(b->raw_fd, &sb) != 0) {
            cli_errorf(P, o->from_raw, "%s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
        uint64_t raw = (uint64_t)sb.st_size;
        b->vol_bytes = o->size ? o->size : raw;
        b->vol_bytes = (b->vol_bytes + VD_BLOCK_SIZE - 1) / VD_BLOCK_SIZE * VD_BLOCK_SIZE;
        if (b->vol_bytes < raw) {
            cli_errorf(P, o->from_raw, "larger (%s) than --size %s",
                       cli_size_format(raw, s1, sizeof s1),
                       cli_size_format(o->size, s2, sizeof s2));
            return CLI_EXIT_FAIL;
        }
        return b->remote ? mkvhd_remote_fit(o, b->capacity, 1, &b->vol_bytes) : 0;
    }
    if (o->source) {
        struct stat sb;
        if (stat(o->source, &sb) != 0) {
            cli_errorf(P, o->source, "%s", strerror(errno));
            return CLI_EXIT_FAIL;
        }
        if (!S_ISDIR(sb.st_mode)) {
            cli_errorf(P, o->source, "not a directory");
            return CLI_EXIT_FAIL;
        }
        int rc = cli_tree_scan(P, o->source, o->policy, 1,
                               CLI_SCAN_ROOT | (o->deref ? CLI_SCAN_DEREF : 0), &b->st);
        if (rc)
            return rc;
    }
    if (o->tar) {
        int rc = mkvhd_tar_open(o, &b->tar);
        if (rc == 0)
            rc = mkvhd_tar_scan(b->tar, &b->st);
        if (rc)
            return rc;
    }
    b->vol_bytes = o->size ? o->size : cli_tree_volume_bytes(&b->st);
    b->vol_bytes = (b->vol_bytes + VD_BLOCK_SIZE - 1) / VD_BLOCK_SIZE * VD_BLOCK_SIZE;
    if (b->remote) {
        int rc = mkvhd_remote_fit(o, b->capacity, o->size != 0, &b->vol_bytes);
        if (rc)
            return rc;
    }
    if (b->vol_bytes < CLI_FAT32_MIN_BYTES) {
        cli_errorf(P, o->image,
                   "--size %s is too small: a FAT32 volume needs at least %s",
                   cli_size_format(b->vol_bytes, s1, sizeof s1),
                   cli_size_format(CLI_FAT32_MIN_BYTES, s2, sizeof s2));
        return CLI_EXIT_FAIL;
    }
    /* need[0] (512-byte clusters) is the least the tree can take. */
    if ((o->source || o->tar) && b->st.need[0] > b->vol_bytes) {
        cli_errorf(P, o->source ? o->source : o->tar,
                   "does not fit in a %s volume (it needs at least %s; "
                   "give a bigger --size, or none)",
                   cli_size_format(b->vol_bytes, s1, sizeof s1),
                   cli_size_format(b->st.need[0], s2, sizeof s2));
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* ---- secrets --------------------------------------------------------------- */

static int new_key_file(build *b, cli_secret *s)
{
    const char *path = b->o->new_key_file;
    memset(s, 0, sizeof *s);
    s->buf = vd_secret_alloc(VD_KEYFILE_BYTES);
    if (!s->buf) {
        cli_errorf(P, NULL, "cannot allocate guarded memory for a secret");
        return CLI_EXIT_FAIL;
    }
    int sys = 0;
    vd_err e = vd_keyfile_create(path, s->buf, &sys);
    if (e != VD_OK) {
        if (sys == EEXIST)
            cli_errorf(P, path, "exists (a new key file never replaces one)");
        else
            cli_fail_errno(P, path, e, sys);
        cli_secret_wipe(s);
        return CLI_EXIT_FAIL;
    }
    b->key_made = 1;
    s->u.type = VD_SLOT_KEYFILE;
    s->u.secret = s->buf;
    s->u.len = VD_KEYFILE_BYTES;
    return 0;
}

/* Every secret becomes one slot, in the order of the usage text. The new
 * key file is made last, so a bad passphrase file leaves no key behind. */
static int read_secrets(build *b)
{
    const mkvhd_opts *o = b->o;
    int rc = 0;
    if (o->keys.key_file)
        rc = cli_secret_keyfile(P, o->keys.key_file, &b->sec[b->nsec++]);
    if (rc == 0 && o->keys.passphrase_file)
        rc = cli_secret_passphrase_file(P, o->keys.passphrase_file, &b->sec[b->nsec++]);
    for (int i = 0; rc == 0 && i < o->nseal; i++)
        rc = cli_secret_pubkey(P, o->seal_to[i], &b->sec[b->nsec++]);
    if (rc == 0 && o->new_key_file)
        rc = new_key_file(b, &b->sec[b->nsec++]);
    if (rc == 0 && b->nsec == 0) {
        if (!isatty(STDIN_FILENO)) {
            cli_errorf(P, NULL,
                       "no key option and no terminal to ask for a passphrase "
                       "(use --new-key-file, --key-file, --passphrase-file or "
                       "--seal-to)");
            fputs("Try 'mkvhd --help'.\n", stderr);
            return CLI_EXIT_USAGE;
        }
        char prompt[512];
        snprintf(prompt, sizeof prompt, "New passphrase for %s: ", o->image);
        rc = cli_secret_passphrase_prompt(P, prompt, 1, &b->sec[b->nsec++]);
    }
    return rc;
}

/* ---- the image --------------------------------------------------------------- */

static int open_anchor(build *b)
{
    const mkvhd_opts *o = b->o;
    if (!o->keys.anchor) {
        if (!o->quiet)
            cli_errorf(P, o->image,
                       "note: no --anchor given; freshness across restarts "
                       "is not guaranteed (an old copy of the image would open)");
        return 0;
    }
    int existed = cli_anchor_is_tpm(o->keys.anchor) || exists(o->keys.anchor);
    int rc = cli_anchor_open(P, &o->keys, CLI_OPEN_ANCHOR_CREATE, &b->anchor);
    if (rc != 0)
        return rc;
    b->anchor_made = !existed;
    return 0;
}

/* A unique empty file next to IMAGE (same file system, so the final
 * rename is atomic), opened as the image's host. */
static int open_tmp(build *b)
{
    const char *image = b->o->image;
    size_t n = strlen(image) + sizeof ".tmp.XXXXXX";
    char *t = malloc(n);
    if (!t) {
        cli_errorf(P, image, "out of memory");
        return CLI_EXIT_FAIL;
    }
    snprintf(t, n, "%s.tmp.XXXXXX", image);
    int fd = mkstemp(t);
    if (fd < 0) {
        cli_errorf(P, t, "%s", strerror(errno));
        free(t);
        return CLI_EXIT_FAIL;
    }
    b->tmp = t;
    if (close(fd) != 0) {
        cli_errorf(P, t, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    int sys = 0;
    if (mkvhd_buildhost_open(t, &b->bhost, &sys) != 0)
        return cli_fail_errno(P, t, VD_ERR_IO, sys);
    b->host = mkvhd_buildhost_host(b->bhost);
    return 0;
}

static int create_image(build *b)
{
    const mkvhd_opts *o = b->o;
    vd_create_opts co = {.nblocks = b->vol_bytes / VD_BLOCK_SIZE, .log_blocks = o->log_blocks};
    vd_open_opts oo = {
        .anchor = b->anchor,
        .anchor_mode = cli_anchor_mode(&o->keys),
    };
    vd_err e = vd_image_create_unlock(b->host, &b->sec[0].u, NULL, &co, &oo, &b->img);
    if (e != VD_OK && cli_is_anchor_err(e))
        return cli_anchor_fail(P, o->image, &o->keys, b->anchor, e);
    if (e != VD_OK)
        return cli_fail(P, o->image, e, "while creating it");
    for (int i = 1; i < b->nsec; i++) {
        e = vd_keyslot_add(b->img, &b->sec[i].u, NULL, NULL);
        if (e != VD_OK)
            return cli_fail(P, o->image, e, "while adding a key slot");
    }
    return 0;
}

static int raw_source(void *ctx, uint64_t off, void *buf, size_t len)
{
    const build *b = ctx;
    uint8_t *p = buf;
    if (*b->o->cancel)
        return -1;
    while (len > 0) {
        ssize_t r = pread(b->raw_fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return 0;
}

static int import_raw(build *b)
{
    struct stat sb;
    if (fstat(b->raw_fd, &sb) != 0) {
        cli_errorf(P, b->o->from_raw, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    vd_err e = vd_fs_import(b->img, raw_source, b, (uint64_t)sb.st_size);
    if (*b->o->cancel) {
        cli_errorf(P, b->o->image, "interrupted");
        return CLI_EXIT_FAIL;
    }
    if (e == VD_ERR_CORRUPT) {
        cli_errorf(P, b->o->from_raw, "not a FAT32 volume");
        return CLI_EXIT_FAIL;
    }
    if (e != VD_OK)
        return cli_fail(P, b->o->from_raw, e, e == VD_ERR_IO ? "while reading it" : NULL);
    return 0;
}

static int fill_volume(build *b)
{
    const mkvhd_opts *o = b->o;
    vd_mkfs_opts mo = {.label = o->label, .now = cli_clock, .now_ctx = b->host,
                       .max_bytes = o->max_size};
    vd_err e = vd_fs_format(b->img, &mo);
    if (e == VD_ERR_NAME) {
        cli_errorf(P, o->label,
                   "not a FAT label (up to 11 characters of A-Z 0-9 "
                   "!#$%%&'()-@^_`{}~ and space)");
        return CLI_EXIT_FAIL;
    }
    if (e != VD_OK)
        return cli_fail(P, o->image, e, "while formatting the volume");
    vd_fs_opts fo = {.now = cli_clock, .now_ctx = b->host};
    e = vd_fs_mount(b->img, &fo, &b->fs);
    if (e != VD_OK)
        return cli_fail(P, o->image, e, "while mounting the new volume");
    int rc = 0;
    if (o->source || o->tar) {
        cli_progress prog;
        cli_progress_start(&prog, "copying", b->st.bytes, b->st.files + b->st.links, o->quiet);
        cli_copy c = {.prog = P,
                      .image = o->image,
                      .img = b->img,
                      .fs = b->fs,
                      .policy = o->policy,
                      .clash = o->clash,
                      .deref = o->deref,
                      .warn_special = 0,
                      .progress = &prog,
                      .cancel = o->cancel};
        /* The image being written (and a new key or anchor file) may be
         * inside the source tree: never copy them into themselves. */
        const char *own[] = {b->tmp, o->image, o->new_key_file, o->keys.anchor};
        for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
            if (own[i] && cli_copy_skip_add(&c, own[i]) != 0)
                rc = CLI_EXIT_FAIL; /* cannot happen: 4 slots for 4 paths */
        if (rc == 0 && o->tar)
            rc = mkvhd_tar_fill(b->tar, &c);
        else if (rc == 0)
            rc = cli_copy_in(&c, o->source, "/");
        cli_copy_done(&c);
        cli_progress_end(&prog);
    }
    e = vd_fs_unmount(b->fs);
    b->fs = NULL;
    if (rc == 0 && e != VD_OK)
        rc = cli_fail(P, o->image, e, "while syncing the volume");
    return rc;
}

/* Only a complete, closed image gets the final name; without --force an
 * IMAGE that appeared meanwhile is not replaced either. */
static int install(build *b)
{
    const char *image = b->o->image;
    int r;
    if (b->o->force) {
        r = rename(b->tmp, image);
    } else {
        r = renameat2(AT_FDCWD, b->tmp, AT_FDCWD, image, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* File systems without RENAME_NOREPLACE: link refuses to
             * replace too. */
            r = link(b->tmp, image);
            if (r == 0)
                (void)unlink(b->tmp); /* both names are the image now */
        }
    }
    if (r != 0) {
        cli_errorf(P, image, "%s",
                   errno == EEXIST ? "exists (give --force to replace it)"
                                   : strerror(errno));
        return CLI_EXIT_FAIL;
    }
    free(b->tmp);
    b->tmp = NULL;
    char *d = strdup(image);
    int fd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0) {
        cli_errorf(P, image, "cannot make the new name durable: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (fd >= 0)
        (void)close(fd);
    free(d);
    return rc;
}

static void close_host(build *b)
{
    if (b->bhost)
        mkvhd_buildhost_close(b->bhost);
    else if (b->host)
        vd_host_close(b->host);
    b->bhost = NULL;
    b->host = NULL;
}

static void summary(const build *b)
{
    char v[16], d[16];
    char links[48] = "";
    if (b->st.links)
        snprintf(links, sizeof links, ", %llu symbolic links",
                 (unsigned long long)b->st.links);
    printf("%s: %llu files, %llu directories%s, %s in a %s volume; %d key slot%s\n",
           b->o->image, (unsigned long long)b->st.files,
           (unsigned long long)(b->st.dirs ? b->st.dirs - 1 : 0), links,
           cli_size_format(b->st.bytes, d, sizeof d),
           cli_size_format(b->vol_bytes, v, sizeof v), b->nsec, b->nsec == 1 ? "" : "s");
}

int mkvhd_build(const mkvhd_opts *o)
{
    build b;
    memset(&b, 0, sizeof b);
    b.o = o;
    b.raw_fd = -1;
    b.old_fd = -1;
    int rc = 0;
    b.remote = vd_host_is_uri(o->image);
    if (b.remote) {
        rc = mkvhd_remote_check(o, &b.capacity);
        if (rc)
            goto out;
    } else if (exists(o->image) && !o->force) {
        cli_errorf(P, o->image, "exists (give --force to replace it)");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (!b.remote && o->force && (rc = lock_old(&b)) != 0)
        goto out;
    rc = plan_size(&b);
    if (rc == 0)
        rc = read_secrets(&b);
    if (rc == 0)
        rc = open_anchor(&b);
    if (rc == 0)
        rc = b.remote ? cli_host_open(P, o->image, VD_HOST_CREATE, &b.host, NULL)
                      : open_tmp(&b);
    if (rc == 0)
        rc = create_image(&b);
    if (rc == 0)
        rc = o->from_raw ? import_raw(&b) : fill_volume(&b);
    if (rc == 0 && *o->cancel) {
        cli_errorf(P, o->image, "interrupted");
        rc = CLI_EXIT_FAIL;
    }
    if (rc == 0) {
        vd_err e = vd_image_close(b.img);
        b.img = NULL;
        if (e != VD_OK)
            rc = cli_fail(P, o->image, e, "while syncing the image");
    }
    if (rc == 0 && b.bhost && mkvhd_buildhost_finish(b.bhost) != 0) {
        cli_errorf(P, o->image, "while syncing the image: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (rc == 0) {
        close_host(&b);
        if (!b.remote)
            rc = install(&b);
    }
    if (rc == 0 && !o->quiet)
        summary(&b);
out:
    if (b.fs)
        (void)vd_fs_unmount(b.fs); /* failing anyway: the image is discarded */
    if (b.img)
        (void)vd_image_close(b.img);
    close_host(&b);
    if (b.anchor)
        cli_anchor_close(b.anchor);
    if (b.tmp) {
        (void)unlink(b.tmp);
        free(b.tmp);
    }
    if (rc != 0 && b.key_made)
        (void)unlink(o->new_key_file);
    if (rc != 0 && b.anchor_made)
        (void)unlink(o->keys.anchor);
    for (int i = 0; i < b.nsec; i++)
        cli_secret_wipe(&b.sec[i]);
    if (b.raw_fd >= 0)
        (void)close(b.raw_fd);
    mkvhd_tar_close(b.tar);
    if (b.old_fd >= 0)
        (void)close(b.old_fd);
    return rc;
}
