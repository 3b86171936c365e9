/* vhdbench — what integrity and rollback detection cost.
 *
 *   vhdbench [--quick | --tiny] [--reps N] [--dir DIR] [--drop-caches]
 *            [--modes LIST] [--backends LIST] [--no-scale] [--scale-big MIB]
 *            [--cache MIB] [--warm MIB] [--peer NAME=DIR]... [--json FILE]
 *            [--svg FILE]
 *
 * The same FAT32 layer and the same fixed-seed workloads over five block
 * devices (plain, checksum, aead, full, full+anchor), on memory (the CPU
 * cost) and on a file in DIR (end to end), with the hardware ceilings of
 * the same run. Every figure is the median of --reps repetitions (>= 3 by
 * default) with min and max. Each --peer runs the same workloads through
 * POSIX calls in DIR (a FUSE mount of gocryptfs, cryfs or vhdmount, or a
 * plain directory named "dir"): scripts/bench.sh --peers sets them up;
 * in each peer Debian's sqlite3 also runs a scripted database (sqlite.c).
 * --self-test checks the weaker devices detect what they claim. Timings
 * are reported, never asserted. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "crypto/crypto.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vhdbench [--quick | --tiny] [--reps N] [--dir DIR] [--drop-caches]\n"
            "                [--modes plain,checksum,aead,full,full+anchor]\n"
            "                [--backends memory,file,nbd] [--no-scale] [--scale-big MIB]\n"
            "                [--cache MIB] [--warm MIB] [--peer NAME=DIR]... [--json FILE]\n"
            "                [--svg FILE]\n"
            "  --quick        64 MiB sequential, fewer operations (a few minutes)\n"
            "  --tiny         smallest sizes, to prove the tool works (tests)\n"
            "  --self-test    check that checksum and aead detect what they claim\n"
            "  --drop-caches  evict the page cache before every read phase\n"
            "                 (posix_fadvise; as root also /proc/sys/vm/drop_caches)\n"
            "  --backends L   memory and file by default; nbd (only when named) puts\n"
            "                 the full modes' image in DIR behind an nbdkit of its own\n"
            "                 on a Unix socket, to compare with file in the same run\n"
            "  --warm MIB     memory touched and freed right before each timed phase,\n"
            "                 so that no phase pays a VM host's first touch of fresh\n"
            "                 pages (default: the sequential size + 192 MiB; 0 with\n"
            "                 --tiny); 0 turns it off\n"
            "  --cache MIB    vd_image cache budget of the full modes (default: the\n"
            "                 library's, 16 MiB)\n"
            "  --anchor-cost N  only time N one-step anchor advances (file, and TPM\n"
            "                 with --anchor-tpm), then exit\n"
            "  --anchor-tpm NVINDEX  full+anchor on TPM 2.0 NV counters from NVINDEX\n"
            "                 up (one per volume, explicit-sync mode) instead of an\n"
            "                 anchor file; --tpm-tcti STR or $TPM2TOOLS_TCTI reaches it\n"
            "  --peer NAME=DIR  also run the workloads in DIR through POSIX calls\n"
            "                 (a FUSE mount; NAME \"dir\" is the plain baseline),\n"
            "                 and the sqlite3 CLI on DIR/bench.db when installed\n");
}

static int parse_list(const char *s, int is_mode, int *mask)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *mask = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int found = 0, n = is_mode ? MODE_COUNT : BACK_COUNT;
        for (int i = 0; i < n; i++) {
            const char *name = is_mode ? bench_mode_name((bench_mode)i)
                                       : bench_backend_name((bench_backend)i);
            if (strcmp(t, name) == 0) {
                *mask |= 1 << i;
                found = 1;
            }
        }
        if (!found)
            return -1;
    }
    return *mask ? 0 : -1;
}

/* A whole number of MiB, 0 to 1 TiB; -1 for anything else. */
static int parse_mib(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > (1L << 20))
        return -1;
    *out = v;
    return 0;
}

static void sizes(bench_cfg *c)
{
    if (c->tiny) {
        c->seq_bytes = (uint64_t)8 << 20;
        c->rand_ops = 400;
        c->oltp_bytes = (uint64_t)8 << 20;
        c->oltp_txns = 100;
        c->web_files = 120;
        c->sqlite_rows = 1000;
        c->sqlite_updates = 20;
        c->sqlite_selects = 100;
    } else if (c->quick) {
        c->seq_bytes = (uint64_t)64 << 20;
        c->rand_ops = 4000;
        c->oltp_bytes = (uint64_t)32 << 20;
        c->oltp_txns = 1000;
        c->web_files = 1000;
        c->sqlite_rows = 10000;
        c->sqlite_updates = 200;
        c->sqlite_selects = 1000;
    } else {
        c->seq_bytes = (uint64_t)1 << 30;
        c->rand_ops = 20000;
        c->oltp_bytes = (uint64_t)128 << 20;
        c->oltp_txns = 4000;
        c->web_files = 5000;
        c->sqlite_rows = 100000;
        c->sqlite_updates = 1000;
        c->sqlite_selects = 5000;
    }
}

static int fail(const char *what, vd_err e)
{
    fprintf(stderr, "vhdbench: %s: %s\n", what, vd_strerror(e));
    return 1;
}

static int run_subject(const bench_cfg *c, bench_res *r, const bench_subject *s, int rep)
{
    char what[128];
    if (s->peer_dir)
        snprintf(what, sizeof what, "%s in %s (repetition %d)", s->name, s->peer_dir,
                 rep + 1);
    else
        snprintf(what, sizeof what, "%s on %s (repetition %d)", s->name,
                 bench_backend_name(s->backend), rep + 1);
    fprintf(stderr, "vhdbench: %s\n", what);
    vd_err e = bench_run_workloads(c, r, s);
    return e == VD_OK ? 0 : fail(what, e);
}

/* sqlite3 failing inside a peer is a finding about that peer (a FUSE
 * file system refusing what a database does), not a broken benchmark:
 * it is reported, the peer gets no figure, and the run goes on. */
static void run_sqlite(const bench_cfg *c, bench_res *r, const bench_subject *s, int peer,
                       int rep)
{
    if (!c->sqlite3[0] || (r->sqlite_failed & (1u << peer)))
        return;
    fprintf(stderr, "vhdbench: sqlite in %s (repetition %d)\n", s->peer_dir, rep + 1);
    vd_err e = bench_run_sqlite(c, r, s);
    if (e != VD_OK) {
        fprintf(stderr, "vhdbench: sqlite in %s: %s; no sqlite figure for %s\n",
                s->peer_dir, vd_strerror(e), s->name);
        r->sqlite_failed |= 1u << peer;
    }
}

int main(int argc, char **argv)
{
    bench_cfg c;
    memset(&c, 0, sizeof c);
    c.reps = 3;
    c.dir = ".";
    c.do_scale = 1;
    c.scale_big_bytes = (uint64_t)64 << 30;
    c.mode_mask = (1 << MODE_COUNT) - 1;
    /* nbd only when asked for: it needs nbdkit and a server per volume. */
    c.backend_mask = ((1 << BACK_COUNT) - 1) & ~(1 << BACK_NBD);
    const char *json = NULL, *svg = NULL;
    int anchor_cost = 0;
    long warm_mib = -1; /* -1: the default for the sizes */
    if (argc == 4 && strcmp(argv[1], "--scale-child") == 0)
        return vdc_init() == 0 ? bench_scale_child(argv[2], argv[3]) : 1;
    if (argc == 2 && strcmp(argv[1], "--self-test") == 0)
        return vdc_init() == 0 ? bench_selftest(VDC_AES256GCM_OPENSSL, stdout) : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            c.quick = 1;
        } else if (strcmp(a, "--tiny") == 0) {
            c.tiny = 1;
        } else if (strcmp(a, "--drop-caches") == 0) {
            c.drop_caches = 1;
        } else if (strcmp(a, "--no-scale") == 0) {
            c.do_scale = 0;
        } else if (strcmp(a, "--reps") == 0 && v) {
            c.reps = atoi(v);
            i++;
        } else if (strcmp(a, "--dir") == 0 && v) {
            c.dir = v;
            i++;
        } else if (strcmp(a, "--json") == 0 && v) {
            json = v;
            i++;
        } else if (strcmp(a, "--svg") == 0 && v) {
            svg = v;
            i++;
        } else if (strcmp(a, "--warm") == 0 && v && parse_mib(v, &warm_mib) == 0) {
            i++;
        } else if (strcmp(a, "--cache") == 0 && v) {
            c.cache_bytes = (size_t)strtoull(v, NULL, 10) << 20;
            i++;
        } else if (strcmp(a, "--peer") == 0 && v && strchr(v, '=') &&
                   c.npeers < BENCH_MAX_PEERS) {
            bench_peer *p = &c.peers[c.npeers++];
            size_t n = (size_t)(strchr(v, '=') - v);
            snprintf(p->name, sizeof p->name, "%.*s", (int)(n < 31 ? n : 31), v);
            p->dir = strchr(v, '=') + 1;
            i++;
        } else if (strcmp(a, "--anchor-cost") == 0 && v) {
            anchor_cost = atoi(v);
            i++;
        } else if (strcmp(a, "--anchor-tpm") == 0 && v) {
            c.tpm_index = (uint32_t)strtoul(v, NULL, 0);
            i++;
        } else if (strcmp(a, "--tpm-tcti") == 0 && v) {
            c.tpm_tcti = v;
            i++;
        } else if (strcmp(a, "--scale-big") == 0 && v) {
            c.scale_big_bytes = strtoull(v, NULL, 10) << 20;
            i++;
        } else if (strcmp(a, "--modes") == 0 && v && parse_list(v, 1, &c.mode_mask) == 0) {
            i++;
        } else if (strcmp(a, "--backends") == 0 && v &&
                   parse_list(v, 0, &c.backend_mask) == 0) {
            i++;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("vhdbench %s\n", vd_version());
            return 0;
        } else {
            fprintf(stderr, "vhdbench: %s: unknown or incomplete option\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (c.reps < 1 || c.reps > BENCH_MAX_REPS || c.scale_big_bytes < ((uint64_t)64 << 20)) {
        fprintf(stderr, "vhdbench: --reps must be 1..%d and --scale-big at least 64\n",
                BENCH_MAX_REPS);
        return 2;
    }
    if (access(c.dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "vhdbench: %s: %s\n", c.dir, strerror(errno));
        return 1;
    }
    uint32_t tpm_next = 0;
    c.tpm_next = &tpm_next;
    if (!c.tpm_tcti)
        c.tpm_tcti = getenv("TPM2TOOLS_TCTI");
    if (anchor_cost > 0)
        return bench_anchor_cost(&c, anchor_cost);
    sizes(&c);
    if (warm_mib >= 0)
        c.warm_bytes = (size_t)warm_mib << 20;
    else if (!c.tiny)
        c.warm_bytes = (size_t)c.seq_bytes + ((size_t)192 << 20);
    if (c.tiny && c.scale_big_bytes == ((uint64_t)64 << 30))
        c.scale_big_bytes = (uint64_t)1 << 30;
    char self[4096];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return fail("/proc/self/exe", VD_ERR_IO);
    self[sl] = 0;
    c.self = self;
    if (vdc_init() != 0)
        return fail("crypto init", VD_ERR_UNSUPPORTED);

    char why[128];
    if ((c.backend_mask & (1 << BACK_NBD)) && !bench_nbd_usable(why, sizeof why)) {
        fprintf(stderr, "vhdbench: nbd backend skipped: %s\n", why);
        c.backend_mask &= ~(1 << BACK_NBD);
        if (!c.backend_mask)
            return 1;
    }
    /* sqlite3 runs only inside peers: the modes have no POSIX path. */
    if (c.npeers == 0)
        fprintf(stderr, "vhdbench: sqlite workload skipped: no --peer to run it in\n");
    else if (!bench_sqlite_find(c.sqlite3, sizeof c.sqlite3))
        fprintf(stderr, "vhdbench: sqlite workload skipped: no sqlite3 in PATH "
                        "(Debian package sqlite3)\n");

    bench_machine m;
    bench_machine_get(&m);
    bench_res *r = calloc(1, sizeof *r);
    if (!r)
        return fail("results", VD_ERR_NOMEM);
    int rc = 0;
    vd_err e = VD_OK;
    for (int rep = 0; rep < c.reps && e == VD_OK; rep++)
        e = bench_run_ceilings(&c, r);
    if (e != VD_OK)
        rc = fail("ceilings", e);
    bench_choose_aead(&c, r);
    /* Subjects interleaved inside each repetition, so a change in the
     * machine's load touches every one alike. */
    for (int rep = 0; rep < c.reps && rc == 0; rep++) {
        for (int b = 0; b < BACK_PEER && rc == 0; b++)
            for (int md = 0; md < MODE_COUNT && rc == 0; md++) {
                if (!(c.backend_mask & (1 << b)) || !(c.mode_mask & (1 << md)))
                    continue;
                if (b == BACK_NBD && md != MODE_FULL && md != MODE_FULL_ANCHOR)
                    continue; /* an NBD export holds images, not bench devices */
                bench_subject s = {bench_mode_name((bench_mode)md), (bench_mode)md,
                                   (bench_backend)b, NULL};
                rc = run_subject(&c, r, &s, rep);
            }
        for (int p = 0; p < c.npeers && rc == 0; p++) {
            bench_subject s = {c.peers[p].name, MODE_PLAIN, BACK_PEER, c.peers[p].dir};
            rc = run_subject(&c, r, &s, rep);
            if (rc == 0)
                run_sqlite(&c, r, &s, p, rep);
        }
    }
    if (rc == 0 && c.do_scale) {
        fprintf(stderr, "vhdbench: scale\n");
        e = bench_run_scale(&c, r);
        if (e != VD_OK)
            rc = fail("scale", e);
    }
    m.load_end = bench_loadavg();
    if (rc == 0) {
        bench_report(stdout, &c, r, &m);
        if (json && bench_json(json, &c, r, &m) != VD_OK)
            rc = 1;
        if (svg && bench_svg(svg, &c, r, &m) != VD_OK)
            rc = 1;
    }
    free(r);
    return rc;
}
