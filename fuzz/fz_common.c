/* Shared pieces of the fuzz targets and the seed generator (fz_common.h). */
#include "fz_common.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fat/fat_internal.h"
#include "image_format.h"

#define FZ_PAGE 4096u

const uint8_t fz_key[VD_KEY_BYTES] = {
    0x66, 0x75, 0x7a, 0x7a, 0x20, 0x6b, 0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
    0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
const uint8_t fz_keyfile[VD_KEYFILE_BYTES] = {
    0x6b, 0x65, 0x79, 0x66, 0x69, 0x6c, 0x65, 0x21, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8,
    0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8};
const uint8_t fz_x25519_sk[VD_X25519_BYTES] = {
    0x58, 0x32, 0x35, 0x35, 0x31, 0x39, 0x20, 0x73, 0x6b, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47};

_Noreturn void fz_die(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz check failed at %s:%d: %s\n", file, line, what);
    abort();
}

uint32_t fz_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t fz_le64(const uint8_t *p)
{
    return (uint64_t)fz_le32(p) | (uint64_t)fz_le32(p + 4) << 32;
}

void fz_put_le64(uint8_t *p, uint64_t v)
{
    for (unsigned i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void fz_fix_header(uint8_t blk[VD_BLOCK_SIZE])
{
    fz_put_le64(blk + HDR_OFF_CHECKSUM, XXH64(blk, HDR_OFF_CHECKSUM, 0));
}

void fz_fix_footer(uint8_t foot[512])
{
    uint32_t sum = 0;
    memset(foot + VHD_OFF_CHECKSUM, 0, 4);
    for (unsigned i = 0; i < VHD_FOOTER_BYTES; i++)
        sum += foot[i];
    sum = ~sum;
    for (unsigned i = 0; i < 4; i++)
        foot[VHD_OFF_CHECKSUM + i] = (uint8_t)(sum >> (24 - 8 * i));
}

/* ---- deterministic randomness ------------------------------------------------
 * libsodium's callbacks carry no context, so the generator state is the one
 * piece of mutable file-scope state here (fuzz harness only, never in the
 * library). splitmix64: fast, and plenty for keys nobody attacks. */
static uint64_t fz_rng_state;

void fz_rng_reset(void)
{
    fz_rng_state = 0x7664697363667a7aull; /* "vdiscfzz" */
}

static uint64_t rng_next(void)
{
    uint64_t z = (fz_rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *rng_name(void)
{
    return "vdisk-fuzz-splitmix64";
}

static uint32_t rng_random(void)
{
    return (uint32_t)rng_next();
}

static void rng_buf(void *const buf, const size_t size)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < size; i += 8) {
        uint64_t v = rng_next();
        size_t n = size - i < 8 ? size - i : 8;
        memcpy(p + i, &v, n);
    }
}

static randombytes_implementation fz_rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .stir = NULL,
    .uniform = NULL,
    .buf = rng_buf,
    .close = NULL,
};

void fz_rng_install(void)
{
    fz_rng_reset();
    if (randombytes_set_implementation(&fz_rng_impl) != 0 || sodium_init() < 0)
        fz_die(__FILE__, __LINE__, "cannot install the deterministic RNG");
}

/* ---- template images ---------------------------------------------------------- */

static vd_err copy_out(vd_host *h, uint8_t **bytes, uint64_t *size)
{
    uint64_t n = 0;
    uint8_t *d = vd_host_mem_data(h, &n);
    *bytes = malloc(n ? n : 1);
    if (!*bytes)
        return VD_ERR_NOMEM;
    memcpy(*bytes, d, n);
    *size = n;
    return VD_OK;
}

static void pattern(uint8_t *b, uint64_t lbn, unsigned round)
{
    for (unsigned i = 0; i < VD_BLOCK_SIZE; i++)
        b[i] = (uint8_t)(lbn * 31u + i * 7u + round);
}

/* Two sync rounds: some blocks written in both, some once, some never. */
static vd_err fill_small(vd_image *img, uint32_t nblocks)
{
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = VD_OK;
    for (unsigned round = 0; round < 2 && e == VD_OK; round++) {
        for (uint32_t l = round; l < nblocks && e == VD_OK; l += 2 + round) {
            pattern(b, l, round);
            e = vd_image_write(img, l, 1, b);
        }
        if (e == VD_OK)
            e = vd_image_sync(img);
    }
    return e;
}

vd_err fz_small_image(uint32_t nblocks, uint8_t **bytes, uint64_t *size)
{
    fz_rng_reset(); /* the same bytes whoever builds it, whenever */
    vd_host *h = NULL;
    vd_image *img = NULL;
    vd_create_opts c = {.nblocks = nblocks, .fanout = 2};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_err e = vd_host_mem_new(&h);
    if (e == VD_OK)
        e = vd_image_create(h, fz_key, &c, &o, &img);
    if (e == VD_OK)
        e = fill_small(img, nblocks);
    if (img) {
        vd_err ce = vd_image_close(img);
        e = e == VD_OK ? ce : e;
    }
    if (e == VD_OK)
        e = copy_out(h, bytes, size);
    vd_host_mem_free(h);
    return e;
}

vd_err fz_log_image(uint8_t **bytes, uint64_t *size)
{
    fz_rng_reset(); /* the same bytes whoever builds it, whenever */
    vd_host *h = NULL;
    vd_image *img = NULL;
    vd_create_opts c = {.nblocks = 16, .fanout = 2};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = vd_host_mem_new(&h);
    if (e == VD_OK)
        e = vd_image_create(h, fz_key, &c, &o, &img);
    if (e == VD_OK)
        e = fill_small(img, 16);
    /* Small syncs of one or two blocks: log commits. */
    for (unsigned k = 0; k < FZ_LOG_COMMITS && e == VD_OK; k++) {
        for (uint32_t l = k; l <= k + k % 2 && e == VD_OK; l++) {
            pattern(b, l, 2 + k);
            e = vd_image_write(img, l, 1, b);
        }
        if (e == VD_OK)
            e = vd_image_sync(img);
    }
    vd_image_info info;
    if (e == VD_OK)
        e = vd_image_info_get(img, &info);
    if (e == VD_OK && info.log_len != FZ_LOG_COMMITS)
        e = VD_ERR_INVAL; /* the syncs were not log commits */
    /* The bytes as a crash right after the last sync leaves them, so that
     * nothing the close may do changes the log. */
    if (e == VD_OK)
        e = copy_out(h, bytes, size);
    if (img)
        (void)vd_image_close(img);
    vd_host_mem_free(h);
    return e;
}

vd_err fz_slot_image(uint8_t **bytes, uint64_t *size)
{
    fz_rng_reset(); /* the same bytes whoever builds it, whenever */
    vd_host *h = NULL;
    vd_image *img = NULL;
    uint8_t pk[VD_X25519_BYTES];
    vd_unlock kf = {.type = VD_SLOT_KEYFILE, .secret = fz_keyfile, .len = sizeof fz_keyfile};
    vd_unlock sealed = {.type = VD_SLOT_SEALED, .secret = pk, .len = sizeof pk};
    vd_create_opts c = {.nblocks = 8, .fanout = 2};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_err e = crypto_scalarmult_base(pk, fz_x25519_sk) == 0 ? VD_OK : VD_ERR_INVAL;
    if (e == VD_OK)
        e = vd_host_mem_new(&h);
    if (e == VD_OK)
        e = vd_image_create_unlock(h, &kf, NULL, &c, &o, &img);
    if (e == VD_OK)
        e = vd_keyslot_add(img, &sealed, NULL, NULL);
    if (e == VD_OK)
        e = fill_small(img, 8);
    if (img) {
        vd_err ce = vd_image_close(img);
        e = e == VD_OK ? ce : e;
    }
    if (e == VD_OK)
        e = copy_out(h, bytes, size);
    vd_host_mem_free(h);
    return e;
}

static vd_err put_file(vd_fs *fs, const char *path, size_t len, uint8_t seed)
{
    vd_file *f = NULL;
    uint8_t buf[8192];
    size_t done = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(seed + i * 13u);
    vd_err e = vd_file_open(fs, path, VD_O_WRONLY | VD_O_CREAT | VD_O_EXCL, &f);
    for (size_t off = 0; e == VD_OK && off < len; off += done) {
        size_t n = len - off < sizeof buf ? len - off : sizeof buf;
        e = vd_file_write(f, off, buf, n, &done);
    }
    if (f) {
        vd_err ce = vd_file_close(f);
        e = e == VD_OK ? ce : e;
    }
    return e;
}

static vd_err fill_volume(vd_fs *fs)
{
    char name[128];
    vd_err e = vd_fs_mkdir(fs, "/dir one");
    if (e == VD_OK)
        e = vd_fs_mkdir(fs, "/dir one/sub");
    if (e == VD_OK)
        e = vd_fs_mkdir(fs, "/EMPTYDIR");
    if (e == VD_OK)
        e = put_file(fs, "/README.TXT", 300, 1);
    if (e == VD_OK)
        e = put_file(fs, "/readme.md", 40, 2);
    if (e == VD_OK)
        e = put_file(fs, "/Long file name with spaces.txt", 1500, 3);
    if (e == VD_OK)
        e = put_file(fs, "/dir one/\xc3\xbc" "n\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93.txt", 700, 4);
    if (e == VD_OK)
        e = put_file(fs, "/dir one/sub/deep.bin", 9000, 5);
    if (e == VD_OK)
        e = put_file(fs, "/EMPTY", 0, 6);
    /* Enough long names that the root directory spans several clusters. */
    for (unsigned i = 0; i < 40 && e == VD_OK; i++) {
        snprintf(name, sizeof name, "/file number %02u with a long name.dat", i);
        e = put_file(fs, name, i * 37u, (uint8_t)i);
    }
    if (e == VD_OK)
        e = vd_fs_unlink(fs, "/file number 07 with a long name.dat"); /* a deleted entry */
    return e;
}

vd_err fz_volume_image(uint8_t **bytes, uint64_t *size)
{
    fz_rng_reset(); /* the same bytes whoever builds it, whenever */
    vd_host *h = NULL;
    vd_image *img = NULL;
    vd_fs *fs = NULL;
    vd_create_opts c = {.nblocks = FZ_VOL_BLOCKS};
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_mkfs_opts m = {.label = "FUZZVOL", .cluster_bytes = 512, .volume_id = 0x46555a5a};
    vd_err e = vd_host_mem_new(&h);
    if (e == VD_OK)
        e = vd_image_create(h, fz_key, &c, &o, &img);
    if (e == VD_OK)
        e = vd_fs_format(img, &m);
    if (e == VD_OK)
        e = vd_fs_mount(img, NULL, &fs);
    if (e == VD_OK)
        e = fill_volume(fs);
    if (fs) {
        vd_err ue = vd_fs_unmount(fs);
        e = e == VD_OK ? ue : e;
    }
    if (img) {
        vd_err ce = vd_image_close(img);
        e = e == VD_OK ? ce : e;
    }
    if (e == VD_OK)
        e = copy_out(h, bytes, size);
    vd_host_mem_free(h);
    return e;
}

/* ---- copy-on-write host --------------------------------------------------------- */

struct fz_cow {
    vd_host host;
    const uint8_t *base;
    uint64_t size;
    size_t npages;
    uint8_t **pages;  /* private copy of page i, or NULL */
    size_t *touched;  /* indices of the private pages */
    size_t ntouched;
    int64_t clock_ns;
};

static int cow_read(void *ctx, uint64_t off, void *buf, size_t len, size_t *done)
{
    fz_cow *c = ctx;
    uint8_t *out = buf;
    *done = 0;
    if (off >= c->size)
        return 0;
    if (len > c->size - off)
        len = (size_t)(c->size - off);
    while (*done < len) {
        uint64_t at = off + *done;
        size_t pg = (size_t)(at / FZ_PAGE), in = (size_t)(at % FZ_PAGE);
        size_t n = FZ_PAGE - in < len - *done ? FZ_PAGE - in : len - *done;
        const uint8_t *src = c->pages[pg] ? c->pages[pg] + in : c->base + at;
        memcpy(out + *done, src, n);
        *done += n;
    }
    return 0;
}

static int cow_write(void *ctx, uint64_t off, const void *buf, size_t len, size_t *done)
{
    fz_cow *c = ctx;
    const uint8_t *in = buf;
    *done = 0;
    if (off > c->size || len > c->size - off)
        return -ENOSPC; /* a fixed-size host: nothing may grow the image */
    while (*done < len) {
        uint64_t at = off + *done;
        size_t pg = (size_t)(at / FZ_PAGE), po = (size_t)(at % FZ_PAGE);
        size_t n = FZ_PAGE - po < len - *done ? FZ_PAGE - po : len - *done;
        if (!c->pages[pg]) {
            uint64_t start = (uint64_t)pg * FZ_PAGE;
            size_t have = c->size - start < FZ_PAGE ? (size_t)(c->size - start) : FZ_PAGE;
            c->pages[pg] = calloc(1, FZ_PAGE);
            if (!c->pages[pg])
                return -ENOMEM;
            memcpy(c->pages[pg], c->base + start, have);
            c->touched[c->ntouched++] = pg;
        }
        memcpy(c->pages[pg] + po, in + *done, n);
        *done += n;
    }
    return 0;
}

static int cow_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static int cow_size(void *ctx, uint64_t *size)
{
    *size = ((fz_cow *)ctx)->size;
    return 0;
}

static int cow_truncate(void *ctx, uint64_t size)
{
    return size == ((fz_cow *)ctx)->size ? 0 : -EINVAL;
}

static int cow_now(void *ctx, int64_t *ns)
{
    fz_cow *c = ctx;
    *ns = c->clock_ns;
    c->clock_ns += 1000000000;
    return 0;
}

vd_err fz_cow_new(const uint8_t *base, uint64_t size, fz_cow **out)
{
    fz_cow *c = calloc(1, sizeof *c);
    if (!c)
        return VD_ERR_NOMEM;
    c->base = base;
    c->size = size;
    c->npages = (size_t)((size + FZ_PAGE - 1) / FZ_PAGE);
    c->pages = calloc(c->npages ? c->npages : 1, sizeof *c->pages);
    c->touched = calloc(c->npages ? c->npages : 1, sizeof *c->touched);
    if (!c->pages || !c->touched) {
        fz_cow_free(c);
        return VD_ERR_NOMEM;
    }
    c->host = (vd_host){.ctx = c, .read_at = cow_read, .write_at = cow_write,
                        .flush = cow_flush, .size = cow_size, .truncate = cow_truncate,
                        .now = cow_now};
    fz_cow_reset(c);
    *out = c;
    return VD_OK;
}

const vd_host *fz_cow_host(fz_cow *c)
{
    return &c->host;
}

void fz_cow_reset(fz_cow *c)
{
    for (size_t i = 0; i < c->ntouched; i++) {
        free(c->pages[c->touched[i]]);
        c->pages[c->touched[i]] = NULL;
    }
    c->ntouched = 0;
    c->clock_ns = 1700000000ll * 1000000000ll;
}

void fz_cow_free(fz_cow *c)
{
    if (!c)
        return;
    if (c->pages)
        fz_cow_reset(c);
    free(c->pages);
    free(c->touched);
    free(c);
}

/* ---- walking a volume ------------------------------------------------------------ */

#define WALK_MAX_DEPTH 6
#define WALK_MAX_ENTRIES 64    /* per directory */
#define WALK_MAX_FILE 65536u   /* bytes read per file */
#define WALK_MAX_FILES 24      /* files read per walk */

typedef struct walk {
    vd_fs *fs;
    char path[4096];
    unsigned files;
    uint8_t buf[16384];
} walk;

static void read_file(walk *w)
{
    vd_file *f = NULL;
    vd_stat st;
    if (w->files >= WALK_MAX_FILES || vd_file_open(w->fs, w->path, VD_O_RDONLY, &f) != VD_OK)
        return;
    w->files++;
    if (vd_file_stat(f, &st) == VD_OK) {
        uint64_t total = 0;
        size_t done = 0;
        while (total < WALK_MAX_FILE &&
               vd_file_read(f, total, w->buf, sizeof w->buf, &done) == VD_OK && done > 0) {
            FZ_CHECK(done <= sizeof w->buf);
            total += done;
        }
        /* Nothing can be read past the recorded size. */
        FZ_CHECK(total <= st.size || total == 0);
    }
    (void)vd_file_close(f);
}

static void walk_dir(walk *w, size_t plen, int depth)
{
    vd_dir *d = NULL;
    vd_dirent *ent = malloc(sizeof *ent);
    if (!ent || vd_dir_open(w->fs, plen ? w->path : "/", &d) != VD_OK) {
        free(ent);
        return;
    }
    for (unsigned n = 0; n < WALK_MAX_ENTRIES && vd_dir_read(d, ent) == VD_OK; n++) {
        size_t nlen = strnlen(ent->name, sizeof ent->name);
        FZ_CHECK(nlen < sizeof ent->name); /* NUL-terminated */
        /* Every listed name can be used as a path component again. */
        FZ_CHECK(nlen > 0);
        FZ_CHECK(!memchr(ent->name, '/', nlen));
        FZ_CHECK(strcmp(ent->name, ".") != 0 && strcmp(ent->name, "..") != 0);
        if (plen + 1 + nlen + 1 > sizeof w->path)
            continue;
        w->path[plen] = '/';
        memcpy(w->path + plen + 1, ent->name, nlen + 1);
        vd_stat st;
        if (vd_fs_stat(w->fs, w->path, &st) == VD_OK) {
            if (st.is_dir && depth < WALK_MAX_DEPTH)
                walk_dir(w, plen + 1 + nlen, depth + 1);
            else if (!st.is_dir)
                read_file(w);
        }
        w->path[plen] = '\0';
    }
    (void)vd_dir_close(d);
    free(ent);
}

void fz_walk(vd_fs *fs)
{
    walk *w = calloc(1, sizeof *w);
    vd_statfs sf;
    if (!w)
        return;
    w->fs = fs;
    if (vd_fs_statfs(fs, &sf) == VD_OK)
        FZ_CHECK(strnlen(sf.label, sizeof sf.label) < sizeof sf.label);
    walk_dir(w, 0, 0);
    free(w);
}

void fz_mutate(vd_fs *fs)
{
    static const uint8_t data[5000];
    vd_file *f = NULL;
    size_t done = 0;
    (void)vd_fs_mkdir(fs, "/fz new directory");
    if (vd_file_open(fs, "/fz new directory/a new file.txt", VD_O_RDWR | VD_O_CREAT, &f) ==
        VD_OK) {
        (void)vd_file_write(f, 0, data, sizeof data, &done);
        (void)vd_file_truncate(f, 100);
        (void)vd_file_close(f);
    }
    (void)vd_fs_rename(fs, "/fz new directory/a new file.txt", "/README.TXT", 0);
    (void)vd_fs_rename(fs, "/dir one", "/dir two", VD_RENAME_NOREPLACE);
    (void)vd_fs_unlink(fs, "/readme.md");
    (void)vd_fs_rmdir(fs, "/EMPTYDIR");
    (void)vd_fs_rmdir(fs, "/fz new directory");
    for (unsigned i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "/another long file name %u.txt", i);
        if (vd_file_open(fs, name, VD_O_WRONLY | VD_O_CREAT, &f) == VD_OK) {
            (void)vd_file_write(f, 0, data, 700u * i, &done);
            (void)vd_file_close(f);
        }
    }
}

/* ---- the volume template ------------------------------------------------------- */

vd_err fz_patch(vd_image *img, uint64_t vol_bytes, uint64_t off, const uint8_t *p, size_t n)
{
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = VD_OK;
    if (off >= vol_bytes)
        return VD_OK;
    if (n > vol_bytes - off)
        n = (size_t)(vol_bytes - off);
    for (size_t done = 0; done < n && e == VD_OK;) {
        uint64_t at = off + done, lbn = at / VD_BLOCK_SIZE;
        size_t in = (size_t)(at % VD_BLOCK_SIZE);
        size_t k = VD_BLOCK_SIZE - in < n - done ? VD_BLOCK_SIZE - in : n - done;
        e = vd_image_read(img, lbn, 1, b);
        if (e == VD_OK) {
            memcpy(b + in, p + done, k);
            e = vd_image_write(img, lbn, 1, b);
        }
        done += k;
    }
    return e;
}

vd_err fz_volume_open(fz_volume *v, vd_image **img)
{
    vd_open_opts o = {.aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    fz_cow_reset(v->cow);
    *img = NULL;
    return vd_image_open(fz_cow_host(v->cow), fz_key, &o, img);
}

static vd_err read_at(vd_image *img, uint64_t off, void *buf, size_t n)
{
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = vd_image_read(img, off / VD_BLOCK_SIZE, 1, b);
    if (e == VD_OK && off % VD_BLOCK_SIZE + n <= VD_BLOCK_SIZE)
        memcpy(buf, b + off % VD_BLOCK_SIZE, n);
    else if (e == VD_OK)
        e = VD_ERR_RANGE;
    return e;
}

vd_err fz_volume_setup(fz_volume *v)
{
    vd_image *img = NULL;
    uint8_t sec[VD_BLOCK_SIZE];
    fat_geom g;
    uint32_t nclus = 0;
    memset(v, 0, sizeof *v);
    vd_err e = fz_volume_image(&v->bytes, &v->size);
    if (e == VD_OK)
        e = fz_cow_new(v->bytes, v->size, &v->cow);
    if (e == VD_OK)
        e = fz_volume_open(v, &img);
    if (e == VD_OK)
        e = vd_image_read(img, 0, 1, sec);
    v->vol_bytes = (uint64_t)FZ_VOL_BLOCKS * VD_BLOCK_SIZE;
    if (e == VD_OK)
        e = fat_bpb_decode(sec, v->vol_bytes, &g, &nclus);
    if (e == VD_OK) {
        v->nfats = g.nfats;
        v->cluster_bytes = g.bps * g.spc;
        for (uint32_t i = 0; i < g.nfats; i++)
            v->fat_off[i] = ((uint64_t)g.rsvd + (uint64_t)i * g.fat_sectors) * g.bps;
        v->data_off = ((uint64_t)g.rsvd + (uint64_t)g.nfats * g.fat_sectors) * g.bps;
    }
    /* The root directory's chain, from the first FAT. */
    for (uint32_t c = e == VD_OK ? g.root_clus : 0; c >= 2 && c < 0x0FFFFFF8u && v->root_n < FZ_ROOT_MAX;) {
        uint8_t ent[4];
        v->root_off[v->root_n++] = v->data_off + (uint64_t)(c - 2) * v->cluster_bytes;
        e = read_at(img, v->fat_off[0] + (uint64_t)c * 4, ent, sizeof ent);
        if (e != VD_OK)
            break;
        c = fz_le32(ent) & 0x0FFFFFFFu;
    }
    if (img) {
        vd_err ce = vd_image_close(img);
        e = e == VD_OK ? ce : e;
    }
    fz_cow_reset(v->cow);
    return e;
}

/* ---- opening a fuzzed image ---------------------------------------------------- */

void fz_open_and_read(const vd_host *h, int writable, uint64_t nblocks, uint64_t wlbn)
{
    vd_open_opts o = {.read_only = !writable, .aead_impl = VD_AEAD_OPENSSL, .cache_bytes = FZ_CACHE_BYTES};
    vd_image *img = NULL;
    uint8_t b[VD_BLOCK_SIZE];
    vd_err e = vd_image_open(h, fz_key, &o, &img);
    if (getenv("FZ_VERBOSE"))
        fprintf(stderr, "open %s: %s\n", writable ? "rw" : "ro", vd_strerror(e));
    if (e != VD_OK) {
        FZ_CHECK(img == NULL);
        return;
    }
    for (uint64_t l = 0; l < nblocks; l++)
        (void)vd_image_read(img, l, 1, b);
    if (writable) {
        memset(b, 0xA5, sizeof b);
        if (vd_image_write(img, wlbn, 1, b) == VD_OK && vd_image_sync(img) == VD_OK)
            for (uint64_t l = 0; l < nblocks; l++)
                (void)vd_image_read(img, l, 1, b);
    }
    (void)vd_image_close(img);
}
