/* Scale: does cost follow the work or the image size? A 64 MiB and a
 * large (default 64 GiB) sparse image on the file backend, each formatted
 * FAT32 once; then, per repetition, a fresh process (so its peak RSS is
 * its own) opens the image, mounts it, writes and syncs 32 MiB (enough
 * to fill the cache budget), reads it back, and reports: open time (vd_image_open; page cache warm), mount
 * time, peak RSS (VmHWM), tree height and flushes per sync. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vdisk/host.h>

#include "bench.h"
#include "crypto/crypto.h"

#define PROBE_CHUNK (1u << 20)
#define PROBE_BYTES (32u << 20) /* twice the default cache budget */

static vd_err make_image(const char *img, const char *keyfile, uint64_t bytes)
{
    vd_host *h = NULL;
    vd_image *im = NULL;
    uint8_t *key = vdc_secure_alloc(VD_KEY_BYTES);
    vd_err e = key ? VD_OK : VD_ERR_NOMEM;
    (void)unlink(img);
    (void)unlink(keyfile);
    if (e == VD_OK)
        e = vd_keyfile_create(keyfile, key, NULL);
    if (e == VD_OK)
        e = vd_host_file_open(img, VD_HOST_CREATE, &h, NULL);
    vd_create_opts co;
    memset(&co, 0, sizeof co);
    co.nblocks = bytes / BENCH_BLOCK;
    if (e == VD_OK)
        e = vd_image_create(h, key, &co, NULL, &im);
    if (e == VD_OK)
        e = vd_fs_format(im, NULL); /* mkfs.fat's cluster size for the size */
    if (im) {
        vd_err e2 = vd_image_close(im);
        e = e != VD_OK ? e : e2;
    }
    if (h)
        vd_host_file_close(h);
    vdc_secure_free(key);
    return e;
}

/* VmHWM of this process image. Not getrusage's ru_maxrss: Linux keeps
 * that across execve, so it would include the parent's resident pages
 * the forked child shared before exec. */
static int peak_rss_mib(double *mib)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int rc = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long kib;
        if (sscanf(line, "VmHWM: %lu kB", &kib) == 1) {
            *mib = (double)kib / 1024.0;
            rc = 0;
            break;
        }
    }
    (void)fclose(f); /* read-only */
    return rc;
}

int bench_scale_child(const char *img, const char *keyfile)
{
    vd_host *h = NULL;
    vd_image *im = NULL;
    vd_fs *fs = NULL;
    vd_file *f = NULL;
    uint8_t *key = vdc_secure_alloc(VD_KEY_BYTES);
    uint8_t *buf = malloc(PROBE_CHUNK);
    vd_err e = key && buf ? VD_OK : VD_ERR_NOMEM;
    double t_open = 0, t_mount = 0;
    vd_image_info info;
    memset(&info, 0, sizeof info);
    if (e == VD_OK)
        e = vd_keyfile_read(keyfile, key, NULL);
    if (e == VD_OK)
        e = vd_host_file_open(img, 0, &h, NULL);
    double t0 = bench_now();
    if (e == VD_OK)
        e = vd_image_open(h, key, NULL, &im);
    double t1 = bench_now();
    t_open = t1 - t0;
    if (e == VD_OK)
        e = vd_fs_mount(im, NULL, &fs);
    t_mount = bench_now() - t1;
    if (e == VD_OK) {
        memset(buf, 0x5A, PROBE_CHUNK);
        e = vd_file_open(fs, "/probe.bin", VD_O_RDWR | VD_O_CREAT | VD_O_TRUNC, &f);
    }
    size_t done = 0;
    for (uint32_t off = 0; e == VD_OK && off < PROBE_BYTES; off += PROBE_CHUNK)
        e = vd_file_write(f, off, buf, PROBE_CHUNK, &done);
    if (e == VD_OK)
        e = vd_file_sync(f);
    for (uint32_t off = 0; e == VD_OK && off < PROBE_BYTES; off += PROBE_CHUNK)
        e = vd_file_read(f, off, buf, PROBE_CHUNK, &done);
    if (e == VD_OK)
        e = vd_image_info_get(im, &info);
    if (f) {
        vd_err e2 = vd_file_close(f);
        e = e != VD_OK ? e : e2;
    }
    if (fs) {
        vd_err e2 = vd_fs_unmount(fs);
        e = e != VD_OK ? e : e2;
    }
    if (im) {
        vd_err e2 = vd_image_close(im);
        e = e != VD_OK ? e : e2;
    }
    if (h)
        vd_host_file_close(h);
    vdc_secure_free(key);
    free(buf);
    double hwm_mib = 0;
    if (e == VD_OK && peak_rss_mib(&hwm_mib) != 0)
        e = VD_ERR_IO;
    if (e != VD_OK) {
        fprintf(stderr, "vhdbench: %s: %s\n", img, vd_strerror(e));
        return 1;
    }
    printf("open_ms %.3f\nmount_ms %.3f\nrss_mib %.1f\nheight %u\n"
           "flushes_per_sync %.2f\ncache_mib %.1f\n",
           t_open * 1e3, t_mount * 1e3, hwm_mib, info.height,
           info.syncs ? (double)info.flushes / (double)info.syncs : 0.0,
           (double)info.cache_bytes / 1048576.0);
    return fflush(stdout) == 0 ? 0 : 1;
}

/* Run the child and collect its "key value" lines into r. */
static vd_err run_child(const bench_cfg *c, bench_res *r, const char *img,
                        const char *keyfile, const char *label)
{
    int fds[2];
    if (pipe(fds) != 0)
        return VD_ERR_IO;
    pid_t pid = fork();
    if (pid < 0) {
        (void)close(fds[0]);
        (void)close(fds[1]);
        return VD_ERR_IO;
    }
    if (pid == 0) {
        if (dup2(fds[1], STDOUT_FILENO) < 0)
            _exit(127);
        (void)close(fds[0]);
        (void)close(fds[1]);
        execl(c->self, "vhdbench", "--scale-child", img, keyfile, (char *)NULL);
        _exit(127);
    }
    (void)close(fds[1]);
    char out[1024];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, sizeof out - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = 0;
    (void)close(fds[0]);
    int st = 0;
    vd_err e = VD_OK;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) {
            e = VD_ERR_IO;
            break;
        }
    if (e == VD_OK && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
        e = VD_ERR_IO;
    static const struct {
        const char *key, *what, *unit;
    } fields[] = {{"open_ms", "open", "ms"},
                  {"mount_ms", "mount", "ms"},
                  {"rss_mib", "peak-rss", "MiB"},
                  {"height", "tree-height", "levels"},
                  {"flushes_per_sync", "flushes-per-sync", "flushes"},
                  {"cache_mib", "cache-budget", "MiB"}};
    for (size_t i = 0; e == VD_OK && i < sizeof fields / sizeof fields[0]; i++) {
        char *p = strstr(out, fields[i].key);
        double v;
        if (!p || sscanf(p + strlen(fields[i].key), "%lf", &v) != 1) {
            e = VD_ERR_CORRUPT;
            break;
        }
        char subject[96];
        snprintf(subject, sizeof subject, "%s %s", fields[i].what, label);
        e = bench_add(r, "scale", subject, BACK_FILE, fields[i].unit, 0, v);
    }
    return e;
}

vd_err bench_run_scale(const bench_cfg *c, bench_res *r)
{
    char img[4096], key[4096], label[2][24];
    const uint64_t sizes[2] = {(uint64_t)64 << 20, c->scale_big_bytes};
    vd_err e = VD_OK;
    long pid = (long)getpid();
    snprintf(key, sizeof key, "%s/vhdbench-%ld.key", c->dir, pid);
    for (int s = 0; s < 2 && e == VD_OK; s++) {
        uint64_t mib = sizes[s] >> 20;
        if (mib >= 1024 && mib % 1024 == 0)
            snprintf(label[s], sizeof label[s], "%llu GiB", (unsigned long long)(mib >> 10));
        else
            snprintf(label[s], sizeof label[s], "%llu MiB", (unsigned long long)mib);
        snprintf(img, sizeof img, "%s/vhdbench-%ld-scale%d.vhd", c->dir, pid, s);
        e = make_image(img, key, sizes[s]);
        for (int rep = 0; rep < c->reps && e == VD_OK; rep++)
            e = run_child(c, r, img, key, label[s]);
        (void)unlink(img);
        (void)unlink(key);
    }
    return e;
}
