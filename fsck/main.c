/* vhdfsck: verify every authenticated byte of an image and check (and
 * repair) its FAT32 volume (DESIGN §7, docs/man/vhdfsck.8). A thin tool:
 * vd_fsck in the library decides everything about bytes; this file parses
 * arguments, prints problems and the summary, and maps the outcome to
 * fsck(8)'s exit statuses. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vdisk/check.h"

#define PROG "vhdfsck"

enum {
    FSCK_OK = 0,
    FSCK_FIXED = 1,
    FSCK_LEFT = 4,
    FSCK_OPERATIONAL = 8,
    FSCK_USAGE = 16
};

enum { OPT_JSON = 0x2000, OPT_HELP, OPT_VERSION };

typedef struct fsck_prob {
    vd_fsck_problem p;
    char *path, *what, *action;
} fsck_prob;

typedef struct fsck_run {
    const char *image;
    vd_fsck_mode mode;
    int verbose, quiet, json;
    cli_progress prog;
    uint64_t last_done;
    double t0, scrub_secs; /* verification pass alone (the rate's time) */
    fsck_prob *probs;
    size_t nprobs, cap;
    int slot_problems;
    int unclean, unclean_fixed; /* the dirty flag: a note (vhdfsck(8)) */
    int oom;
    int printed; /* the JSON summary went out */
} fsck_run;

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: " PROG " [-n|-p|-y] [-v] [-q] [--json] [KEY OPTIONS] IMAGE\n"
            "Verify every authenticated block of a vdisk image, then check its FAT32\n"
            "volume; repair with -p or -y.\n"
            "  -n          check only: open read-only, change nothing (default)\n"
            "  -p, -a      repair what is safe (dirty flag, FSInfo, FAT copies, lost\n"
            "              clusters) when nothing else is wrong\n"
            "  -y          repair everything repairable; files holding blocks that fail\n"
            "              authentication are truncated before the first bad cluster\n"
            "  -v          also say what each repair does or would do\n"
            "  -q          no summary and no progress\n"
            "  --json      machine-readable summary on stdout\n"
            "  --help, --version\n" CLI_KEY_USAGE
            "Exit status (fsck(8)): 0 clean, 1 errors corrected, 4 errors left,\n"
            "8 operational error (cannot open, I/O, wrong key), 16 usage.\n");
}

static char *dup_or_null(const char *s, int *oom)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d)
        *oom = 1;
    else
        memcpy(d, s, n);
    return d;
}

static void print_problem(const fsck_run *r, const vd_fsck_problem *p)
{
    char where[128] = "";
    if (p->have_block && p->nblocks > 1)
        snprintf(where, sizeof where, "blocks %llu-%llu",
                 (unsigned long long)p->first_lbn,
                 (unsigned long long)(p->first_lbn + p->nblocks - 1));
    else if (p->have_block)
        snprintf(where, sizeof where, "block %llu", (unsigned long long)p->first_lbn);
    char subject[4200];
    if (where[0] && p->path)
        snprintf(subject, sizeof subject, "%s: %s (%s)", r->image, where, p->path);
    else if (where[0])
        snprintf(subject, sizeof subject, "%s: %s", r->image, where);
    else if (p->path)
        snprintf(subject, sizeof subject, "%s: %s", r->image, p->path);
    else
        snprintf(subject, sizeof subject, "%s", r->image);
    const char *act = p->action ? p->action : "";
    if (p->fixed)
        cli_errorf(PROG, subject, "%s; fixed: %s", p->what, act);
    else if (!p->repairable)
        cli_errorf(PROG, subject, "%s; cannot be repaired", p->what);
    else if (r->verbose && p->action)
        cli_errorf(PROG, subject, "%s; not fixed (%s would %s)", p->what,
                   p->safe ? "-p or -y" : "-y", act);
    else
        cli_errorf(PROG, subject, "%s; not fixed", p->what);
}

static void on_report(void *ctx, const vd_fsck_problem *p)
{
    fsck_run *r = ctx;
    /* Problems come after the verification pass: clear its line first. */
    cli_progress_end(&r->prog);
    r->prog.enabled = 0;
    /* Every commit is a consistent volume (DESIGN C4): the flag only says
     * the last mount did not end with an unmount. Anything a crash really
     * left behind is reported on its own, so the flag alone is a note and
     * does not change the exit status; -p and -y clear it. */
    if (p->kind == VD_FSCK_P_DIRTY) {
        r->unclean = 1;
        r->unclean_fixed = p->fixed;
        if (!r->quiet && !r->json)
            cli_errorf(PROG, r->image, "note: not unmounted cleanly (dirty flag set)%s",
                       p->fixed ? "; flag cleared" : "; nothing to repair for that alone");
        return;
    }
    print_problem(r, p);
    if (r->nprobs == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        fsck_prob *n = realloc(r->probs, cap * sizeof *n);
        if (!n) {
            r->oom = 1;
            return;
        }
        r->probs = n;
        r->cap = cap;
    }
    fsck_prob *q = &r->probs[r->nprobs++];
    q->p = *p;
    q->path = dup_or_null(p->path, &r->oom);
    q->what = dup_or_null(p->what, &r->oom);
    q->action = dup_or_null(p->action, &r->oom);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    fsck_run *r = ctx;
    if (done >= total)
        r->scrub_secs = cli_now() - r->t0;
    if (done > r->last_done) {
        cli_progress_add(&r->prog, (done - r->last_done) * VD_BLOCK_SIZE, 0);
        r->last_done = done;
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static const char *kind_name(vd_fsck_kind k)
{
    switch (k) {
    case VD_FSCK_P_INTEGRITY:
        return "integrity";
    case VD_FSCK_P_FAT_COPIES:
        return "fat_copies";
    case VD_FSCK_P_DIRTY:
        return "dirty";
    case VD_FSCK_P_FSINFO:
        return "fsinfo";
    case VD_FSCK_P_LOST:
        return "lost_clusters";
    case VD_FSCK_P_CROSSLINK:
        return "cross_link";
    case VD_FSCK_P_CHAIN:
        return "chain";
    case VD_FSCK_P_SIZE:
        return "size";
    case VD_FSCK_P_LFN:
        return "long_name";
    case VD_FSCK_P_DOT:
        return "dot_entry";
    case VD_FSCK_P_DIRENT:
        return "dir_entry";
    case VD_FSCK_P_VOLUME:
        return "volume";
    }
    return "other";
}

static const char *mode_name(vd_fsck_mode m)
{
    return m == VD_FSCK_ALL ? "all" : m == VD_FSCK_SAFE ? "safe" : "check";
}

static void print_json(const fsck_run *r, const vd_fsck_result *res, double secs,
                       int status)
{
    double mbs = secs > 0 ? (double)res->scrub.bytes_read / 1e6 / secs : 0;
    printf("{\"image\": ");
    json_str(r->image);
    printf(", \"mode\": \"%s\", \"exit\": %d,\n", mode_name(r->mode), status);
    printf(" \"blocks\": %llu, \"blocks_verified\": %llu, \"bad_blocks\": %llu, "
           "\"bad_nodes\": %llu, \"unverifiable_blocks\": %llu, \"bytes_read\": %llu,\n",
           (unsigned long long)res->scrub.blocks,
           (unsigned long long)res->scrub.blocks_ok,
           (unsigned long long)res->scrub.bad_blocks,
           (unsigned long long)res->scrub.bad_nodes,
           (unsigned long long)res->scrub.unverifiable,
           (unsigned long long)res->scrub.bytes_read);
    printf(" \"seconds\": %.3f, \"mb_per_s\": %.1f, \"fs_checked\": %s, \"files\": %u, "
           "\"dirs\": %u, \"clusters_used\": %u, \"clusters_total\": %u,\n",
           secs, mbs, res->fs_checked ? "true" : "false", res->files, res->dirs,
           res->clusters_used, res->clusters_total);
    unsigned found = res->found - (unsigned)r->unclean;
    unsigned fixed = res->fixed - (unsigned)r->unclean_fixed;
    printf(" \"unclean\": %s, \"unclean_cleared\": %s,\n", r->unclean ? "true" : "false",
           r->unclean_fixed ? "true" : "false");
    printf(" \"problems_found\": %u, \"problems_fixed\": %u, \"integrity_found\": %u, "
           "\"integrity_fixed\": %u, \"fat_found\": %u, \"fat_fixed\": %u, "
           "\"key_slot_problems\": %d,\n",
           found, fixed, res->integrity_found, res->integrity_fixed,
           found - res->integrity_found, fixed - res->integrity_fixed, r->slot_problems);
    printf(" \"problems\": [");
    for (size_t k = 0; k < r->nprobs; k++) {
        const fsck_prob *q = &r->probs[k];
        printf("%s\n  {\"kind\": \"%s\", \"fixed\": %s, \"safe\": %s, \"repairable\": %s",
               k ? "," : "", kind_name(q->p.kind), q->p.fixed ? "true" : "false",
               q->p.safe ? "true" : "false", q->p.repairable ? "true" : "false");
        if (q->p.have_block)
            printf(", \"block\": %llu, \"nblocks\": %llu, \"level\": %u",
                   (unsigned long long)q->p.first_lbn, (unsigned long long)q->p.nblocks,
                   q->p.level);
        if (q->path) {
            printf(", \"path\": ");
            json_str(q->path);
        }
        printf(", \"what\": ");
        json_str(q->what);
        if (q->action) {
            printf(", \"action\": ");
            json_str(q->action);
        }
        printf("}");
    }
    printf("%s]}\n", r->nprobs ? "\n " : "");
}

static void print_summary(const fsck_run *r, const vd_fsck_result *res, double secs)
{
    /* The rate is of bytes read and authenticated: never-written blocks
     * are vouched for by their node without a read. */
    char sz[16], rd[16];
    double mbs = secs > 0 ? (double)res->scrub.bytes_read / 1e6 / secs : 0;
    cli_size_format(res->scrub.blocks * VD_BLOCK_SIZE, sz, sizeof sz);
    cli_size_format(res->scrub.bytes_read, rd, sizeof rd);
    printf("%s: %llu blocks verified (%s; %s read and authenticated in %.2f s, "
           "%.1f MB/s), %llu bad blocks, %llu bad tree nodes\n",
           r->image, (unsigned long long)res->scrub.blocks_ok, sz, rd, secs, mbs,
           (unsigned long long)res->scrub.bad_blocks,
           (unsigned long long)res->scrub.bad_nodes);
    if (res->fs_checked)
        printf("%s: %u files, %u directories, %u/%u clusters in use\n", r->image,
               res->files, res->dirs, res->clusters_used, res->clusters_total);
    unsigned found = res->found - (unsigned)r->unclean + (unsigned)r->slot_problems;
    unsigned fixed = res->fixed - (unsigned)r->unclean_fixed;
    if (found == 0)
        printf("%s: clean\n", r->image);
    else
        printf("%s: %u problems found, %u fixed, %u left\n", r->image, found, fixed,
               found - fixed);
}

/* Key slots are not covered by the tree (each wraps the key on its own):
 * a malformed one is reported, never repaired here (vhdtool keyslot). */
static int check_slots(fsck_run *r, const vd_host *host)
{
    vd_slot_info slots[VD_KEYSLOTS];
    vd_err e = vd_keyslot_list(host, slots);
    if (e != VD_OK)
        return cli_fail(PROG, r->image, e, "reading the key slots"), -1;
    for (int k = 0; k < VD_KEYSLOTS; k++) {
        if (slots[k].status == VD_OK)
            continue;
        cli_errorf(PROG, r->image,
                   "key slot %d is malformed (it can never unlock); not fixed (vhdtool "
                   "keyslot remove)",
                   k);
        r->slot_problems++;
    }
    return 0;
}

static int open_status(int rc, vd_err e)
{
    if (rc == CLI_EXIT_USAGE)
        return FSCK_USAGE;
    /* The image opened far enough to show tampering (a superblock or the
     * header failed authentication, a rollback): an integrity violation
     * nothing here can repair. Anything else — including a file that is
     * not a vdisk image at all (VD_ERR_CORRUPT) — stopped us from
     * checking (vhdfsck(8)). */
    if (rc == CLI_EXIT_INTEGRITY && e != VD_ERR_CORRUPT)
        return FSCK_LEFT;
    return FSCK_OPERATIONAL;
}

static int run(fsck_run *r, const cli_keyopts *k)
{
    cli_image ci;
    int flags = r->mode == VD_FSCK_CHECK ? CLI_OPEN_READONLY : 0;
    int rc = cli_image_open(PROG, r->image, k, flags, 0, &ci);
    if (rc != 0)
        return open_status(rc, ci.err);
    int status = FSCK_OPERATIONAL, checked = 0;
    vd_fsck_result res;
    double secs = 0;
    if (check_slots(r, ci.host) != 0)
        goto out;
    vd_image_info info;
    vd_err e = vd_image_info_get(ci.img, &info);
    if (e != VD_OK) {
        cli_fail(PROG, r->image, e, NULL);
        goto out;
    }
    if (r->verbose && !r->json)
        printf("%s: format %u, %llu blocks, tree fan-out %u, height %u, epoch %llu%s\n",
               r->image, info.format_version, (unsigned long long)info.nblocks,
               info.fanout, info.height, (unsigned long long)info.epoch,
               info.recovered ? " (recovered an interrupted sync)" : "");
    vd_fsck_opts o = {
        .mode = r->mode, .ctx = r, .report = on_report, .progress = on_progress};
    cli_progress_start(&r->prog, "verifying", info.nblocks * VD_BLOCK_SIZE, 0, r->quiet);
    r->t0 = cli_now();
    e = vd_fsck(ci.img, &o, &res);
    secs = r->scrub_secs > 0 ? r->scrub_secs : cli_now() - r->t0;
    cli_progress_end(&r->prog);
    if (e != VD_OK) {
        cli_fail(PROG, r->image, e, "while checking");
        goto out;
    }
    if (r->oom) {
        cli_errorf(PROG, r->image, "out of memory");
        goto out;
    }
    /* The dirty flag is a note (on_report): neither left nor fixed. */
    unsigned found = res.found - (unsigned)r->unclean;
    unsigned fixed = res.fixed - (unsigned)r->unclean_fixed;
    unsigned left = found - fixed + (unsigned)r->slot_problems;
    status = left ? FSCK_LEFT : fixed ? FSCK_FIXED : FSCK_OK;
    checked = 1;
out:;
    /* The summary after the close: a repair is only done once synced. */
    /* Unless checked, the failure is reported already: one line. */
    int crc = checked ? cli_image_close(PROG, r->image, &ci) : cli_image_close_quiet(&ci);
    if (crc != 0)
        status = FSCK_OPERATIONAL;
    if (checked && r->json) {
        print_json(r, &res, secs, status);
        r->printed = 1;
    } else if (checked && !r->quiet && status != FSCK_OPERATIONAL) {
        print_summary(r, &res, secs);
    }
    return status;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"json", no_argument, NULL, OPT_JSON},
                                             {"help", no_argument, NULL, OPT_HELP},
                                             {"version", no_argument, NULL, OPT_VERSION},
                                             CLI_KEY_LONGOPTS,
                                             {NULL, 0, NULL, 0}};
    fsck_run r;
    memset(&r, 0, sizeof r);
    cli_keyopts k;
    memset(&k, 0, sizeof k);
    int modes = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "npayvq", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            r.mode = VD_FSCK_CHECK;
            modes |= 1;
            break;
        case 'p':
        case 'a':
            r.mode = VD_FSCK_SAFE;
            modes |= 2;
            break;
        case 'y':
            r.mode = VD_FSCK_ALL;
            modes |= 4;
            break;
        case 'v':
            r.verbose = 1;
            break;
        case 'q':
            r.quiet = 1;
            break;
        case OPT_JSON:
            r.json = 1;
            break;
        case OPT_HELP:
            usage(stdout);
            return FSCK_OK;
        case OPT_VERSION:
            printf(PROG " %s\n", vd_version());
            return FSCK_OK;
        default:
            if (cli_keyopts_handle(&k, c, optarg))
                break;
            if (optopt)
                cli_errorf(PROG, NULL, "unknown or incomplete option -%c (see --help)",
                           optopt);
            else
                cli_errorf(PROG, NULL, "unknown option %s (see --help)",
                           argv[optind - 1]);
            return FSCK_USAGE;
        }
    }
    if (modes & (modes - 1)) {
        cli_errorf(PROG, NULL, "-n, -p and -y exclude each other");
        return FSCK_USAGE;
    }
    if (optind + 1 != argc) {
        cli_errorf(PROG, NULL,
                   optind == argc ? "no image given (see --help)"
                                  : "one image at a time (see --help)");
        return FSCK_USAGE;
    }
    r.image = argv[optind];
    k.quiet = r.quiet;
    int status = run(&r, &k);
    if (r.json && !r.printed) {
        /* Scripts always get an object: the error itself went to stderr. */
        printf("{\"image\": ");
        json_str(r.image);
        printf(", \"mode\": \"%s\", \"exit\": %d, \"checked\": false}\n",
               mode_name(r.mode), status);
    }
    for (size_t i = 0; i < r.nprobs; i++) {
        free(r.probs[i].path);
        free(r.probs[i].what);
        free(r.probs[i].action);
    }
    free(r.probs);
    return status;
}
