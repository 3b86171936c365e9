/* mkvhd — build a vdisk image from a directory tree, from nothing, or from
 * a raw FAT32 volume (DESIGN §7). Option parsing and usage here; the build
 * is in build.c. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mkvhd.h"

static const char usage_text[] =
    "Usage: mkvhd [OPTIONS] [KEY OPTIONS] IMAGE [SOURCE_DIR]\n"
    "       mkvhd [OPTIONS] [KEY OPTIONS] --tar ARCHIVE|- IMAGE\n"
    "Build an encrypted, integrity-protected vdisk image holding a FAT32 volume:\n"
    "a copy of SOURCE_DIR or of a tar archive (names, contents, modification\n"
    "times, symbolic links), an empty volume, or a raw FAT32 volume (--from-raw).\n"
    "\n"
    "Options:\n"
    "  --size N[KMGT]        volume size (logical data, binary units; default:\n"
    "                        what SOURCE_DIR needs plus 10% and 4 MiB; at least\n"
    "                        33M, the smallest FAT32 volume)\n"
    "  --max-size N[KMGT]    leave room in the FAT for vhdtool resize to grow the\n"
    "                        volume up to N (default: none, the FAT mkfs.fat\n"
    "                        makes; costs 8 bytes per cluster of N, e.g. 0.8%\n"
    "                        of a 1G image at --max-size 4G)\n"
    "  --label L             volume label (up to 11 characters)\n"
    "  --log-blocks N        blocks of the leaf-version log (docs/FORMAT.md §7b):\n"
    "                        how many small commits may follow each other before\n"
    "                        one seals the tree; 0 = no log (default: automatic,\n"
    "                        8 to 1024 by size)\n"
    "  --from-raw RAW        import the raw FAT32 volume RAW (mkfs.fat, mtools)\n"
    "  --tar ARCHIVE         build from a tar archive (ustar, pax, GNU; plain,\n"
    "                        gzip, bzip2, xz or zstd); '-' reads standard input,\n"
    "                        spooled to an unlinked file in $TMPDIR (or /tmp)\n"
    "                        to size the volume. Hard links become copies;\n"
    "                        leading '/' is stripped, '..' refused\n"
    "  --force               replace an existing IMAGE\n"
    "  --skip-special        skip devices, fifos, sockets and files over\n"
    "                        4 GiB - 1, one warning each (default)\n"
    "  --refuse-special      fail on them instead\n"
    "  --dereference         copy what symbolic links point to instead of the\n"
    "                        links (stored as links by default; a dangling link\n"
    "                        is then a special)\n"
    CLI_CLASH_USAGE
    "  -q, --quiet           no progress, notes or summary\n"
    "  -h, --help            this text\n"
    "      --version         print the version\n"
    "\n"
    "Key options (several make several key slots; one is needed, without any a\n"
    "new passphrase is asked twice on the terminal):\n"
    "  --new-key-file F      make a new random key file F (mode 0600)\n"
    "  --key-file F          an existing 32-byte key file\n"
    "  --passphrase-file F   the passphrase is the first line of F ('-' = stdin)\n"
    "  --seal-to PUB         seal the key to an X25519 public key (vhdtool keygen);\n"
    "                        may be repeated\n"
    "Freshness (rollback across restarts, docs/SECURITY.md R4):\n"
    "  --anchor F            create (or use) the monotonic counter file F\n"
    "  --anchor tpm:NVINDEX  define (or adopt) a TPM 2.0 NV counter instead\n"
    "  --tpm-tcti STR        how to reach the TPM (default: $TPM2TOOLS_TCTI)\n"
    "  --anchor-on-sync      advance it only on explicit syncs\n"
    "\n"
    "The image is written to IMAGE.tmp.XXXXXX and renamed into place only when\n"
    "complete. Exit status: 0 ok, 1 failure, 2 usage, 3 wrong key, 4 integrity.\n";

enum {
    OPT_SIZE = 0x2000,
    OPT_MAX_SIZE,
    OPT_LABEL,
    OPT_LOG_BLOCKS,
    OPT_FROM_RAW,
    OPT_NEW_KEY_FILE,
    OPT_SEAL_TO,
    OPT_FORCE,
    OPT_SKIP,
    OPT_REFUSE,
    OPT_ON_CLASH,
    OPT_DEREF,
    OPT_TAR,
    OPT_VERSION
};

/* A signal only sets this; the build notices it between chunks and
 * removes its temporary files instead of leaving them behind. */
static volatile sig_atomic_t mkvhd_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    mkvhd_interrupted = 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", MKVHD_PROG);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry 'mkvhd --help'.\n");
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    cli_locale_utf8();
    static const struct option longopts[] = {
        {"size", required_argument, NULL, OPT_SIZE},
        {"max-size", required_argument, NULL, OPT_MAX_SIZE},
        {"label", required_argument, NULL, OPT_LABEL},
        {"log-blocks", required_argument, NULL, OPT_LOG_BLOCKS},
        {"from-raw", required_argument, NULL, OPT_FROM_RAW},
        {"new-key-file", required_argument, NULL, OPT_NEW_KEY_FILE},
        {"seal-to", required_argument, NULL, OPT_SEAL_TO},
        {"force", no_argument, NULL, OPT_FORCE},
        {"skip-special", no_argument, NULL, OPT_SKIP},
        {"refuse-special", no_argument, NULL, OPT_REFUSE},
        {"on-clash", required_argument, NULL, OPT_ON_CLASH},
        {"dereference", no_argument, NULL, OPT_DEREF},
        {"tar", required_argument, NULL, OPT_TAR},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        CLI_KEY_LONGOPTS,
        {NULL, 0, NULL, 0}};
    mkvhd_opts o;
    memset(&o, 0, sizeof o);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
        if (cli_keyopts_handle(&o.keys, c, optarg))
            continue;
        switch (c) {
        case OPT_SIZE:
            if (cli_size_parse(optarg, &o.size) != 0 || o.size == 0)
                return usage_error("--size %s: not a size (e.g. 64M, 1.5G)", optarg);
            break;
        case OPT_MAX_SIZE:
            if (cli_size_parse(optarg, &o.max_size) != 0 || o.max_size == 0)
                return usage_error("--max-size %s: not a size (e.g. 4G)", optarg);
            break;
        case OPT_LABEL:
            o.label = optarg;
            break;
        case OPT_LOG_BLOCKS: {
            char *end = NULL;
            errno = 0;
            unsigned long n = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || n > 4096)
                return usage_error("--log-blocks %s: not a number from 0 to 4096", optarg);
            o.log_blocks = n ? (uint32_t)n : VD_LOG_NONE;
            break;
        }
        case OPT_FROM_RAW:
            o.from_raw = optarg;
            break;
        case OPT_NEW_KEY_FILE:
            if (o.new_key_file)
                return usage_error("--new-key-file given twice");
            o.new_key_file = optarg;
            break;
        case OPT_SEAL_TO:
            if (o.nseal == MKVHD_MAX_SEAL)
                return usage_error("too many --seal-to (an image has %d key slots)",
                                   VD_KEYSLOTS);
            o.seal_to[o.nseal++] = optarg;
            break;
        case OPT_FORCE:
            o.force = 1;
            break;
        case OPT_SKIP:
            o.policy = CLI_SPECIAL_SKIP;
            break;
        case OPT_REFUSE:
            o.policy = CLI_SPECIAL_REFUSE;
            break;
        case OPT_ON_CLASH:
            if (cli_clash_parse(optarg, &o.clash) != 0)
                return usage_error("--on-clash=%s: not fail, skip or rename", optarg);
            break;
        case OPT_DEREF:
            o.deref = 1;
            break;
        case OPT_TAR:
            o.tar = optarg;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return CLI_EXIT_OK;
        case OPT_VERSION:
            printf("mkvhd (vdisk) %s\n", VD_VERSION_STRING);
            return CLI_EXIT_OK;
        case ':':
            return usage_error("option '%s' needs an argument", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    o.keys.quiet = o.quiet;
    int npos = argc - optind;
    if (npos < 1)
        return usage_error("missing IMAGE");
    if (npos > 2)
        return usage_error("unexpected argument '%s'", argv[optind + 2]);
    o.image = argv[optind];
    o.source = npos == 2 ? argv[optind + 1] : NULL;
    if (!!o.source + !!o.from_raw + !!o.tar > 1)
        return usage_error("give one of SOURCE_DIR, --tar and --from-raw");
    if (o.tar && strcmp(o.tar, "-") == 0 && o.keys.passphrase_file &&
        strcmp(o.keys.passphrase_file, "-") == 0)
        return usage_error("--tar - and --passphrase-file - cannot both read standard input");
    if (o.deref && o.tar)
        return usage_error("--dereference copies what a host link points to; a --tar "
                           "archive's links stay links");
    if (o.from_raw && o.label)
        return usage_error("--label cannot relabel a --from-raw volume");
    if (o.from_raw && o.max_size)
        return usage_error("--max-size sizes the FAT of a new volume, not of a --from-raw one");
    if (o.keys.identity)
        return usage_error("--identity opens images; to build one for that identity, "
                           "use --seal-to with its public key");
    int nslots =
        !!o.keys.key_file + !!o.keys.passphrase_file + !!o.new_key_file + o.nseal;
    if (nslots > VD_KEYSLOTS)
        return usage_error("too many key options (an image has %d key slots)",
                           VD_KEYSLOTS);
    if (cli_signals_catch(on_signal) != 0) {
        cli_errorf(MKVHD_PROG, NULL, "cannot install signal handlers");
        return CLI_EXIT_FAIL;
    }
    o.cancel = &mkvhd_interrupted;
    return mkvhd_build(&o);
}
