/* vhdbench internals: what integrity and rollback detection cost.
 *
 *   main.c      options, the order of the run
 *   stats.c     clock, figures (repetitions, median/min/max), lookups
 *   rng.c       the fixed-seed generator every workload draws from
 *   backing.c   where blocks live for the non-image modes: memory or a file
 *   devs.c      plain / checksum / aead vd_blockdevs over a backing
 *   devcheck.c  --self-test: they detect what they claim, and only that
 *   modes.c     one vd_fs per mode (the five modes, memory or file; the
 *               full modes also on nbd)
 *   nbdserve.c  the nbd backend's nbdkit
 *   target.c    a mode's volume or a peer's directory, behind one file API
 *   workloads.c sequential, random, OLTP-like and web-like workloads
 *   sqlite.c    Debian's sqlite3 on a database inside each peer
 *   ceilings.c  AES-256-GCM, memcpy and the backing file's own throughput
 *   scale.c     open time / peak RSS / tree height of 64 MiB vs 64 GiB
 *   machine.c   CPU model, AES-NI, cores, kernel, load
 *   report.c    the stdout table; json.c, svg.c the files
 * Timings are never asserted; a failure is an error exit, never a figure. */
#ifndef VHDBENCH_H
#define VHDBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vdisk/fs.h>
#include <vdisk/vdisk.h>

#include "benchdev.h"

#define BENCH_MAX_REPS 15
#define BENCH_MAX_FIGS 256

#define BENCH_MAX_PEERS 8
typedef struct bench_peer {
    char name[32];
    const char *dir;
} bench_peer;

/* What a workload runs on: a mode on memory or file, or a peer. */
typedef struct bench_subject {
    const char *name;
    bench_mode mode;
    bench_backend backend;
    const char *peer_dir; /* non-NULL for a peer */
} bench_subject;

const char *bench_mode_name(bench_mode m);
const char *bench_backend_name(bench_backend b);

/* ---- configuration ---- */
typedef struct bench_cfg {
    int reps;
    const char *dir;     /* where file backends live */
    int drop_caches;     /* drop the page cache before read phases */
    int quick, tiny;
    uint64_t seq_bytes;  /* sequential file */
    uint32_t rand_ops;   /* random 4 KiB reads, and writes */
    uint64_t oltp_bytes; /* database file */
    uint32_t oltp_txns;
    uint32_t web_files;
    int do_scale;
    uint64_t scale_big_bytes;
    int mode_mask, backend_mask;
    size_t cache_bytes;  /* vd_image cache budget; 0 = library default */
    int aead_alg;        /* vdc_aead_alg of the faster AES-GCM here */
    vd_aead_impl impl;   /* the same choice for vd_image */
    const char *self;    /* /proc/self/exe, for the scale child */
    bench_peer peers[BENCH_MAX_PEERS];
    int npeers;
    char sqlite3[4096];  /* the sqlite3 CLI; "" = the sqlite workload is skipped */
    uint32_t sqlite_rows, sqlite_updates, sqlite_selects;
    /* --anchor-tpm NVINDEX: full+anchor uses TPM 2.0 NV counters (NVINDEX,
     * NVINDEX+1, ... one per volume, each image's own; explicit-sync mode,
     * as the tools open a TPM anchor) reached through tpm_tcti, instead of
     * an anchor file advanced at every commit. */
    uint32_t tpm_index;
    const char *tpm_tcti;
    uint32_t *tpm_next; /* volumes made so far (owned by main) */
    size_t warm_bytes;  /* memory touched and freed before each timed phase
                           (warm.c); 0 = none */
} bench_cfg;

/* ---- figures ---- */
typedef struct bench_fig {
    char workload[40]; /* "seq-write", "ceiling", ... */
    char subject[40];  /* mode name, or the ceiling's name */
    int backend;       /* bench_backend, or -1 for machine-wide figures */
    const char *unit;  /* "MB/s", "ops/s", "ms", "MiB", ... (static) */
    double bytes_per_unit; /* to express the figure as MB/s; 0 = not data */
    double v[BENCH_MAX_REPS];
    int n;
} bench_fig;

typedef struct bench_res {
    bench_fig figs[BENCH_MAX_FIGS];
    int nfigs;
    unsigned sqlite_failed; /* bit p: sqlite3 failed in peer p */
} bench_res;

double bench_now(void);
/* bench_now() at the start of a timed phase, after the warm-up (warm.c). */
double bench_start(const bench_cfg *c);
/* Record one repetition's value (creates the figure on first use). */
vd_err bench_add(bench_res *r, const char *workload, const char *subject, int backend,
                 const char *unit, double bytes_per_unit, double value);
const bench_fig *bench_find(const bench_res *r, const char *workload,
                            const char *subject, int backend);
double bench_median(const bench_fig *f);
double bench_min(const bench_fig *f);
double bench_max(const bench_fig *f);
/* Throughput lost by `slow` against `fast` in %, or a negative number
 * below -1e9 when either is missing. */
double bench_overhead(const bench_res *r, const char *workload, const char *fast,
                      const char *slow, int backend);
#define BENCH_NA (-1e12)

/* ---- rng.c ---- */
typedef struct bench_rng {
    uint64_t s;
} bench_rng;
void bench_rng_seed(bench_rng *g, uint64_t seed);
uint64_t bench_rng_next(bench_rng *g);
uint64_t bench_rng_below(bench_rng *g, uint64_t n);
void bench_rng_fill(bench_rng *g, void *buf, size_t n);

/* devcheck.c: every device detects what it claims (see there); prints one
 * line per check on log, returns the exit status. */
int bench_selftest(int aead_alg, FILE *log);


/* ---- modes.c ---- */
/* A mounted volume of one mode on one backend; reopen() drops every cache
 * the mode holds (the image's, and the page cache with --drop-caches)
 * so that reads after it reach the device. */
typedef struct bench_vol bench_vol;
vd_err bench_vol_new(const bench_cfg *c, bench_mode m, bench_backend b, uint64_t bytes,
                     bench_vol **out);
vd_fs *bench_vol_fs(bench_vol *v);
vd_err bench_vol_reopen(bench_vol *v);
/* The image's counters (full modes only; VD_ERR_UNSUPPORTED otherwise). */
vd_err bench_vol_info(bench_vol *v, vd_image_info *info);
/* Reopen, then vd_image_scrub (what vhdfsck verifies first), timed: the
 * seconds and the bytes of blocks it decrypted and verified.
 * VD_ERR_UNSUPPORTED for the non-image modes. */
vd_err bench_vol_scrub(bench_vol *v, double *secs, uint64_t *bytes);
vd_err bench_vol_free(bench_vol *v);

/* ---- target.c ---- */
typedef struct bench_tgt bench_tgt;
typedef struct bench_fh bench_fh;
/* A fresh place for one session's files: a new volume of `bytes` for a
 * mode, a new subdirectory for a peer. */
vd_err bench_tgt_new(const bench_cfg *c, const bench_subject *s, uint64_t bytes,
                     bench_tgt **out);
vd_err bench_tgt_open(bench_tgt *t, const char *path, int flags, bench_fh **out);
/* Whole transfers: a short read or write is VD_ERR_IO. */
vd_err bench_fh_read(bench_fh *h, uint64_t off, void *buf, size_t n);
vd_err bench_fh_write(bench_fh *h, uint64_t off, const void *buf, size_t n);
vd_err bench_fh_sync(bench_fh *h);
vd_err bench_fh_close(bench_fh *h);
vd_err bench_tgt_mkdir(bench_tgt *t, const char *path);
vd_err bench_tgt_sync(bench_tgt *t);
/* Remount (volumes) or sync (+ drop caches) so reads reach the device. */
vd_err bench_tgt_reopen(bench_tgt *t);
vd_err bench_tgt_info(bench_tgt *t, vd_image_info *info);
vd_err bench_tgt_scrub(bench_tgt *t, double *secs, uint64_t *bytes);
vd_err bench_tgt_free(bench_tgt *t);

/* ---- workloads.c ---- */
vd_err bench_run_workloads(const bench_cfg *c, bench_res *r, const bench_subject *s);

/* ---- sqlite.c ---- */
/* The sqlite3 executable in PATH into out; 0 when there is none. */
int bench_sqlite_find(char *out, size_t cap);
/* One repetition of the sqlite workload in the peer s->peer_dir. */
vd_err bench_run_sqlite(const bench_cfg *c, bench_res *r, const bench_subject *s);

/* ---- ceilings.c ---- */
vd_err bench_run_ceilings(const bench_cfg *c, bench_res *r);
/* After the first ceiling round: pick the faster AES-GCM for aead/full. */
void bench_choose_aead(bench_cfg *c, const bench_res *r);
/* The faster single-core AES-256-GCM seal (median MB/s), 0 if none. */
double bench_aes_ceiling(const bench_res *r);

/* ---- scale.c ---- */
vd_err bench_run_scale(const bench_cfg *c, bench_res *r);
/* The child process: opens img with the key in keyfile, prints "key
 * value" lines on stdout; the exit status. */
int bench_scale_child(const char *img, const char *keyfile);

/* ---- machine.c ---- */
typedef struct bench_machine {
    char cpu[128];
    int aes_ni;
    int cores;
    char kernel[200];
    double load_start, load_end; /* 1-minute load average */
    char date[32];
} bench_machine;
void bench_machine_get(bench_machine *m);
double bench_loadavg(void);
/* name's path in PATH into out; 0 when absent. */
int bench_which(const char *name, char *out, size_t cap);

/* ---- nbdserve.c: the nbd backend's server ---- */
/* 1 when the nbd backend can run here, else 0 with the reason in why. */
int bench_nbd_usable(char *why, size_t cap);
/* nbdkit file FILE on the Unix socket SOCK; returns once it listens. */
vd_err bench_nbd_start(const char *file, const char *sock, long *pid);
void bench_nbd_stop(long pid, const char *sock);

/* ---- report.c, json.c, svg.c ---- */
/* The workloads in report order, with the unit they are measured in. */
typedef struct bench_wl {
    const char *name;
    const char *title;
} bench_wl;
extern const bench_wl bench_workloads[];
extern const size_t bench_nworkloads;

void bench_report(FILE *out, const bench_cfg *c, const bench_res *r,
                  const bench_machine *m);
vd_err bench_json(const char *path, const bench_cfg *c, const bench_res *r,
                  const bench_machine *m);
vd_err bench_svg(const char *path, const bench_cfg *c, const bench_res *r,
                 const bench_machine *m);

/* --anchor-cost N (anchorcost.c): time N single-step advances of a file
 * anchor, and of a TPM anchor at c->tpm_index when set. Exit status. */
int bench_anchor_cost(const bench_cfg *c, int n);

#endif
