/* Argument parsing shared by every subcommand, and opening the image. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vhdtool.h"

enum {
    OPT_JSON = 0x2000,
    OPT_FORCE,
    OPT_NEW_KEY_FILE,
    OPT_NEW_PASS_FILE,
    OPT_NEW_PASS,
    OPT_SEAL_TO,
    OPT_SECRET,
    OPT_PUBLIC,
    OPT_SKIP,
    OPT_REFUSE,
    OPT_ON_CLASH,
    OPT_DEREF,
    OPT_TAR,
    OPT_KEEP_KEY,
    OPT_KEEP_PASS,
    OPT_DROP_UNLOCK
};

int vt_usage_error(const vt_cmd *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: %s: ", VT_PROG, cmd->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'vhdtool --help'.\n");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

/* Which VT_O_* bit an option needs (0: every command takes it). */
static int option_class(int c)
{
    switch (c) {
    case OPT_JSON:
        return VT_O_JSON;
    case 'l':
        return VT_O_LONG;
    case 'R':
    case 'r':
        return VT_O_RECURSIVE;
    case 'p':
        return VT_O_PARENTS;
    case OPT_FORCE:
        return VT_O_FORCE;
    case OPT_NEW_KEY_FILE:
    case OPT_NEW_PASS_FILE:
    case OPT_NEW_PASS:
    case OPT_SEAL_TO:
        return VT_O_NEWKEY;
    case OPT_SECRET:
    case OPT_PUBLIC:
        return VT_O_KEYGEN;
    case OPT_SKIP:
    case OPT_REFUSE:
        return VT_O_SPECIAL;
    case OPT_ON_CLASH:
        return VT_O_CLASH;
    case OPT_DEREF:
        return VT_O_DEREF;
    case OPT_TAR:
        return VT_O_TAR;
    case OPT_KEEP_KEY:
    case OPT_KEEP_PASS:
    case OPT_DROP_UNLOCK:
        return VT_O_REKEY;
    case CLI_OPT_KEY_FILE:
    case CLI_OPT_PASSPHRASE_FILE:
    case CLI_OPT_IDENTITY:
    case CLI_OPT_ANCHOR:
    case CLI_OPT_ANCHOR_EXPLICIT:
        return VT_O_KEYS;
    default:
        return 0;
    }
}

int vt_parse(const vt_cmd *cmd, int argc, char **argv, vt_opts *o)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"force", no_argument, NULL, OPT_FORCE},
        {"new-key-file", required_argument, NULL, OPT_NEW_KEY_FILE},
        {"new-passphrase-file", required_argument, NULL, OPT_NEW_PASS_FILE},
        {"new-passphrase", no_argument, NULL, OPT_NEW_PASS},
        {"seal-to", required_argument, NULL, OPT_SEAL_TO},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"public", required_argument, NULL, OPT_PUBLIC},
        {"skip-special", no_argument, NULL, OPT_SKIP},
        {"refuse-special", no_argument, NULL, OPT_REFUSE},
        {"on-clash", required_argument, NULL, OPT_ON_CLASH},
        {"dereference", no_argument, NULL, OPT_DEREF},
        {"tar", no_argument, NULL, OPT_TAR},
        {"keep-key-file", required_argument, NULL, OPT_KEEP_KEY},
        {"keep-passphrase-file", required_argument, NULL, OPT_KEEP_PASS},
        {"drop-unlock", no_argument, NULL, OPT_DROP_UNLOCK},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        CLI_KEY_LONGOPTS,
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":hqlRrp", longopts, NULL)) != -1) {
        if (c == ':')
            return vt_usage_error(cmd, "option '%s' needs an argument", argv[optind - 1]);
        int cls = option_class(c);
        if (c == '?' || (cls && !(cmd->opts & cls)) ||
            (c == 'R' && strcmp(cmd->name, "ls")) ||
            (c == 'r' && strcmp(cmd->name, "rm")))
            return vt_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        if (cli_keyopts_handle(&o->keys, c, optarg))
            continue;
        switch (c) {
        case 'h':
            printf("Usage: vhdtool %s\n%s", cmd->usage, cmd->help);
            printf("  -q, --quiet           no notes or progress\n");
            if (cmd->opts & VT_O_KEYS)
                printf("\n%s", CLI_KEY_USAGE);
            return CLI_EXIT_OK;
        case 'q':
            o->quiet = 1;
            break;
        case OPT_JSON:
            o->json = 1;
            break;
        case 'l':
            o->long_fmt = 1;
            break;
        case 'R':
        case 'r':
            o->recursive = 1;
            break;
        case 'p':
            o->parents = 1;
            break;
        case OPT_FORCE:
            o->force = 1;
            break;
        case OPT_NEW_KEY_FILE:
            o->new_key_file = optarg;
            break;
        case OPT_NEW_PASS_FILE:
            o->new_passphrase_file = optarg;
            break;
        case OPT_NEW_PASS:
            o->new_passphrase = 1;
            break;
        case OPT_SEAL_TO:
            o->seal_to = optarg;
            break;
        case OPT_SECRET:
            o->secret = optarg;
            break;
        case OPT_PUBLIC:
            o->public_key = optarg;
            break;
        case OPT_SKIP:
            o->policy = CLI_SPECIAL_SKIP;
            break;
        case OPT_REFUSE:
            o->policy = CLI_SPECIAL_REFUSE;
            break;
        case OPT_ON_CLASH:
            if (cli_clash_parse(optarg, &o->clash) != 0)
                return vt_usage_error(cmd, "--on-clash=%s: not fail, skip or rename",
                                      optarg);
            break;
        case OPT_DEREF:
            o->deref = 1;
            break;
        case OPT_TAR:
            o->tar = 1;
            break;
        case OPT_KEEP_KEY:
        case OPT_KEEP_PASS:
            if (o->nkeep == VT_KEEP_MAX)
                return vt_usage_error(cmd, "at most %d --keep-* options", VT_KEEP_MAX);
            o->keep[o->nkeep].path = optarg;
            o->keep[o->nkeep++].passphrase = c == OPT_KEEP_PASS;
            break;
        case OPT_DROP_UNLOCK:
            o->drop_unlock = 1;
            break;
        default:
            return vt_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    o->keys.quiet = o->quiet;
    o->npos = argc - optind;
    o->pos = argv + optind;
    if (o->npos < cmd->min_pos)
        return vt_usage_error(cmd, "missing argument (usage: vhdtool %s)", cmd->usage);
    if (o->npos > cmd->max_pos)
        return vt_usage_error(cmd, "unexpected argument '%s'", o->pos[cmd->max_pos]);
    return -1;
}

int vt_open_fs(vt_opts *o, int read_only, cli_image *ci)
{
    const char *image = o->pos[0];
    int rc = cli_image_open(VT_PROG, image, &o->keys, read_only ? CLI_OPEN_READONLY : 0,
                            0, ci);
    if (rc == 0) {
        /* As cli_fs_mount, but an integrity failure names its block. */
        vd_fs_opts fo = {.read_only = read_only, .now = cli_clock, .now_ctx = ci->host};
        vd_err e = vd_fs_mount(ci->img, &fo, &ci->fs);
        if (e == VD_ERR_CORRUPT)
            rc = cli_fail(VT_PROG, image, e, "no valid FAT32 volume inside");
        else if (e != VD_OK)
            rc = cli_fs_fail(VT_PROG, image, ci->img, NULL, e);
        else
            cli_unclean_note(VT_PROG, image, ci);
    }
    if (rc != 0)
        (void)cli_image_close_quiet(ci); /* the open error is the one to report */
    return rc;
}

int vt_open_public(const char *image, vd_host **host)
{
    return cli_host_open(VT_PROG, image, VD_HOST_READONLY | VD_HOST_NOLOCK, host, NULL);
}

int vt_close(vt_opts *o, cli_image *ci, int rc)
{
    /* After a failure already reported, the close says nothing more. */
    int crc = rc ? cli_image_close_quiet(ci) : cli_image_close(VT_PROG, o->pos[0], ci);
    return rc ? rc : crc;
}

int vt_install(const char *tmp, const char *dst, int force)
{
    int r;
    if (force) {
        r = rename(tmp, dst);
    } else {
        r = renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE);
        if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
            r = link(tmp, dst); /* refuses to replace, like NOREPLACE */
            if (r == 0)
                (void)unlink(tmp);
        }
    }
    if (r != 0) {
        cli_errorf(VT_PROG, dst, "%s",
                   errno == EEXIST ? "exists (give --force to replace it)"
                                   : strerror(errno));
        return CLI_EXIT_FAIL;
    }
    /* The new name itself must survive a crash. */
    char *d = strdup(dst);
    int fd = d ? open(dirname(d), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int rc = 0;
    if (fd < 0 || fsync(fd) != 0) {
        cli_errorf(VT_PROG, dst, "cannot make the new name durable: %s", strerror(errno));
        rc = CLI_EXIT_FAIL;
    }
    if (fd >= 0)
        (void)close(fd);
    free(d);
    return rc;
}
