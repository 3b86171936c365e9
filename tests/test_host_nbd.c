/* The NBD host against a real server (nbdkit memory, started here on a
 * Unix socket of our own): the size of a new image and where an image
 * ends at the next open (the footer copy), reads past the end, writes
 * past the image, and that a read sees every write before it even when
 * the write is still in flight (write-behind) or the range was read ahead.
 * Skipped where the library has no NBD support or nbdkit is missing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vdisk/host.h"
#include "vdisk/vdisk.h"

extern char **environ;

#define EXPORT_BYTES (8u << 20)
#define RUN (256u << 10) /* the core's largest data read */

typedef struct server {
    char dir[64], sock[128], pidfile[128], uri[192];
    pid_t pid;
} server;

static int server_start(server *s)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/vdisk-nbdhost.XXXXXX");
    if (!mkdtemp(s->dir))
        return -1;
    snprintf(s->sock, sizeof s->sock, "%s/s", s->dir);
    snprintf(s->pidfile, sizeof s->pidfile, "%s/p", s->dir);
    snprintf(s->uri, sizeof s->uri, "nbd+unix:///?socket=%s", s->sock);
    char size[32];
    snprintf(size, sizeof size, "size=%u", EXPORT_BYTES);
    char *argv[] = {"nbdkit", "-f", "--exit-with-parent", "-U", s->sock, "-P", s->pidfile,
                    "memory", size, NULL};
    if (posix_spawnp(&s->pid, "nbdkit", NULL, NULL, argv, environ) != 0)
        return -1;
    for (int i = 0; i < 2000; i++) {
        struct stat st;
        if (stat(s->pidfile, &st) == 0 && st.st_size > 0)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        (void)nanosleep(&ts, NULL);
    }
    return -1;
}

static void server_stop(server *s)
{
    if (s->pid > 0) {
        /* KILL: a failed test may leave its connection open, and nbdkit
         * waits for its clients on TERM. The memory export is scratch. */
        (void)kill(s->pid, SIGKILL);
        (void)waitpid(s->pid, NULL, 0);
    }
    (void)unlink(s->sock);
    (void)unlink(s->pidfile);
    (void)rmdir(s->dir);
}

static int setup(void **state)
{
    char path[4096];
    const char *p = getenv("PATH");
    int found = 0;
    if (!vd_host_nbd_available())
        return 0; /* each test skips */
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s", p ? p : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, sizeof path, "%s/nbdkit", d);
        found = access(path, X_OK) == 0;
    }
    if (!found)
        return 0;
    server *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(server_start(s), 0);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    if (*state) {
        server_stop(*state);
        free(*state);
    }
    return 0;
}

static server *need(void **state)
{
    if (*state == NULL) {
        print_message("skipped: %s\n", vd_host_nbd_available()
                                           ? "nbdkit not in PATH"
                                           : "built without NBD support");
        skip();
    }
    return *state;
}

static void put(const vd_host *h, uint64_t off, const void *buf, size_t len)
{
    size_t done = (size_t)-1;
    assert_int_equal(h->write_at(h->ctx, off, buf, len, &done), 0);
    assert_int_equal(done, len);
}

static void get(const vd_host *h, uint64_t off, void *buf, size_t len)
{
    size_t done = (size_t)-1;
    assert_int_equal(h->read_at(h->ctx, off, buf, len, &done), 0);
    assert_int_equal(done, len);
}

static void fill(uint8_t *b, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(seed >> 16);
    }
}

/* A VHD footer as the library writes it: cookie and current size. */
static void footer(uint8_t f[512], uint64_t image_bytes)
{
    memset(f, 0, 512);
    memcpy(f, "conectix", 8);
    uint64_t cur = image_bytes - 512;
    for (int i = 0; i < 8; i++)
        f[48 + i] = (uint8_t)(cur >> (56 - 8 * i));
}

static void test_image_end_found_again(void **state)
{
    server *s = need(state);
    vd_host *h = NULL;
    char why[256];
    uint64_t cap = 0, size = 1;
    assert_int_equal(vd_host_nbd_open(s->uri, VD_HOST_CREATE, &h, NULL, why, sizeof why),
                     VD_OK);
    assert_int_equal(vd_host_nbd_capacity(h, &cap), VD_OK);
    assert_int_equal(cap, EXPORT_BYTES - 512);
    assert_int_equal(h->size(h->ctx, &size), 0);
    assert_int_equal(size, 0); /* as a new file: the library formats it */
    assert_int_equal(h->truncate(h->ctx, cap + 1), -ENOSPC);
    uint64_t img = 3u << 20;
    img += 512;
    assert_int_equal(h->truncate(h->ctx, img), 0);
    assert_int_equal(h->size(h->ctx, &size), 0);
    assert_int_equal(size, img);
    uint8_t f[512];
    footer(f, img);
    put(h, img - 512, f, sizeof f);
    /* Past the image: a write is refused, a read is short. */
    size_t done = 7;
    assert_int_equal(h->write_at(h->ctx, img - 4, f, 8, &done), -EFBIG);
    uint8_t b[16];
    assert_int_equal(h->read_at(h->ctx, img - 4, b, sizeof b, &done), 0);
    assert_int_equal(done, 4);
    assert_int_equal(h->flush(h->ctx), 0);
    vd_host_nbd_close(h);

    /* The next open finds the image's end from the copy at the export's. */
    h = NULL;
    assert_int_equal(vd_host_nbd_open(s->uri, VD_HOST_READONLY, &h, NULL, why, sizeof why),
                     VD_OK);
    assert_int_equal(h->size(h->ctx, &size), 0);
    assert_int_equal(size, img);
    uint8_t back[512];
    get(h, img - 512, back, sizeof back);
    assert_memory_equal(back, f, sizeof f);
    vd_host_close(h);
}

static void test_reads_see_every_write(void **state)
{
    server *s = need(state);
    vd_host *h = NULL;
    char why[256];
    const size_t n = 4 * RUN;
    uint8_t *a = malloc(n), *b = malloc(RUN), *got = malloc(n);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(got);
    fill(a, n, 1);
    fill(b, RUN, 2);
    assert_int_equal(vd_host_nbd_open(s->uri, VD_HOST_CREATE, &h, NULL, why, sizeof why),
                     VD_OK);
    assert_int_equal(h->truncate(h->ctx, n), 0);
    /* Still in flight when read back: the read waits for it. */
    put(h, 0, a, n);
    get(h, 0, got, RUN);
    assert_memory_equal(got, a, RUN);
    /* In order: the next run is read ahead... */
    get(h, RUN, got, RUN);
    assert_memory_equal(got, a + RUN, RUN);
    /* ...and then overwritten: the read must see the write, not the
     * bytes read ahead before it. */
    put(h, 2 * RUN, b, RUN);
    get(h, 2 * RUN, got, RUN);
    assert_memory_equal(got, b, RUN);
    /* And a plain sequential pass after a flush. */
    assert_int_equal(h->flush(h->ctx), 0);
    memcpy(a + 2 * RUN, b, RUN);
    for (size_t off = 0; off < n; off += RUN)
        get(h, off, got + off, RUN);
    assert_memory_equal(got, a, n);
    vd_host_close(h);
    free(a);
    free(b);
    free(got);
}

static void test_refused_uris(void **state)
{
    (void)state;
    vd_host *h = (vd_host *)1;
    char why[256];
    assert_int_equal(vd_host_nbd_open("http://x/y", 0, &h, NULL, why, sizeof why),
                     VD_ERR_INVAL);
    assert_null(h);
    assert_non_null(strstr(why, "unsupported URI scheme 'http'"));
    assert_int_equal(vd_host_nbd_open("nbd+vsock://1/x", 0, &h, NULL, why, sizeof why),
                     VD_ERR_INVAL);
    assert_int_equal(vd_host_is_uri("nbd://h/e"), 1);
    assert_int_equal(vd_host_is_uri("./nbd://h/e"), 0);
    assert_int_equal(vd_host_is_uri("disk.vhd"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_image_end_found_again),
        cmocka_unit_test(test_reads_see_every_write),
        cmocka_unit_test(test_refused_uris),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
