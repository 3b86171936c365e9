/* vhdbench-mount: the FUSE peer "vhdmount-aead" of scripts/bench.sh. It
 * mounts a fresh FAT32 volume over vhdbench's AEAD-only device in FILE
 * with vhdmount's own FUSE code (the static library vdmount), so that
 * vhdmount against this mount shows what the Merkle tree and the
 * two-version sync cost through FUSE. It has no rollback detection, no
 * crash consistency and a key that dies with the process: benchmarks
 * only, which is why it lives here and not in vhdmount (the production
 * binary links no benchmark code).
 *
 *   vhdbench-mount [-f] [-o OPTS] aead:FILE MOUNTPOINT
 *
 * FILE must exist; its size is the device's. It and FILE.meta are removed
 * at unmount. Exit statuses as vhdmount's (0, 1 failure, 2 usage). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "benchdev.h"
#include "vhdmount.h"

static const char PROG[] = "vhdbench-mount";

static void usage(FILE *to)
{
    fprintf(to,
            "Usage: %s [-f] [-o OPT[,OPT...]] aead:FILE MOUNTPOINT\n"
            "Mount a fresh FAT32 volume over vhdbench's AEAD-only device in FILE\n"
            "(benchmarks only: no rollback detection, no crash consistency; FILE\n"
            "and FILE.meta are removed at unmount).\n"
            "  -f        stay in the foreground\n"
            "  -o OPTS   options of mount.fuse3(8)\n",
            PROG);
}

typedef struct bench_mount_args {
    char file[PATH_MAX];
    char mountpoint[PATH_MAX];
    uint64_t bytes;
    int foreground;
    struct fuse_args fargs;
} bench_mount_args;

/* -1 to go on, or an exit status. */
static int args_parse(int argc, char **argv, bench_mount_args *m)
{
    if (fuse_opt_add_arg(&m->fargs, PROG) != 0)
        return CLI_EXIT_FAIL;
    int c;
    while ((c = getopt(argc, argv, "fo:h")) != -1) {
        switch (c) {
        case 'f':
            m->foreground = 1;
            break;
        case 'o':
            if (fuse_opt_add_arg(&m->fargs, "-o") != 0 ||
                fuse_opt_add_arg(&m->fargs, optarg) != 0)
                return CLI_EXIT_FAIL;
            break;
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        default:
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        cli_errorf(PROG, NULL, "expected aead:FILE and MOUNTPOINT (see --help)");
        return CLI_EXIT_USAGE;
    }
    const char *dev = argv[optind], *mnt = argv[optind + 1];
    if (strncmp(dev, "aead:", 5) != 0 || !dev[5]) {
        cli_errorf(PROG, NULL, "expected aead:FILE, not '%s'", dev);
        return CLI_EXIT_USAGE;
    }
    struct stat st;
    if (!realpath(dev + 5, m->file) || stat(m->file, &st) != 0) {
        cli_errorf(PROG, dev + 5, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    m->bytes = (uint64_t)st.st_size;
    if (!realpath(mnt, m->mountpoint) || stat(m->mountpoint, &st) != 0) {
        cli_errorf(PROG, mnt, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    if (!S_ISDIR(st.st_mode)) {
        cli_errorf(PROG, mnt, "%s", strerror(ENOTDIR));
        return CLI_EXIT_FAIL;
    }
    /* The file name has no ',' or '\' worth escaping in a bench tree. */
    char opt[PATH_MAX + 64];
    if (strpbrk(m->file, ",\\") ||
        snprintf(opt, sizeof opt, "default_permissions,subtype=vhd-bench,fsname=%s", m->file) >=
            (int)sizeof opt ||
        fuse_opt_add_arg(&m->fargs, "-o") != 0 || fuse_opt_add_arg(&m->fargs, opt) != 0) {
        cli_errorf(PROG, m->file, "a name with ',' or '\\' is not supported here");
        return CLI_EXIT_FAIL;
    }
    return -1;
}

int main(int argc, char **argv)
{
    bench_mount_args m;
    memset(&m, 0, sizeof m);
    m.fargs = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
    vmnt_ctx c;
    if (vmnt_ctx_init(&c, PROG) != 0)
        return CLI_EXIT_FAIL;
    bench_dev *dev = NULL;
    int rc = args_parse(argc, argv, &m);
    if (rc >= 0)
        goto out;
    rc = 0;
    c.image = m.file;
    c.commit_secs = 0; /* no image: nothing to commit but at fsync */
    c.no_notes = 1;
    rc = vmnt_modes_parse(&m.fargs, &c);
    if (rc == 0)
        rc = vmnt_session_new(&c, &m.fargs);
    if (rc == 0) {
        vd_err e = bench_dev_file_new(MODE_AEAD, m.file, m.bytes, &dev);
        if (e == VD_OK)
            e = vd_fs_mount_dev(bench_dev_blockdev(dev), NULL, &c.ci.fs);
        if (e != VD_OK)
            rc = cli_fail(PROG, m.file, e, "while creating the bench device");
    }
    if (rc == 0) {
        vmnt_serve_args sa = {.mountpoint = m.mountpoint,
                              .state_image = m.file,
                              .foreground = m.foreground};
        rc = vmnt_serve(&c, &sa);
    }
out:
    rc = vmnt_finish(&c, rc);
    bench_dev_free(dev); /* after the volume over it is unmounted */
    vmnt_ctx_fini(&c);
    fuse_opt_free_args(&m.fargs);
    return rc;
}
