/* vhdtool — inspect and edit vdisk images offline (DESIGN §7): one
 * subcommand per job, git style. This file is the command table and the
 * dispatch; each command lives in a cmd_*.c file. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "vhdtool.h"

static const vt_cmd commands[] = {
    {"info", vt_cmd_info, VT_O_KEYS | VT_O_JSON, 1, 1,
     "info [--json] [KEY OPTIONS] IMAGE",
     "Show the image header without a key (format, cipher, sizes, tree, journal,\n"
     "key slots); with a key option also the verified root, epoch, label, free\n"
     "space and file count.\n"
     "  --json                machine-readable output\n"},
    {"ls", vt_cmd_ls, VT_O_KEYS | VT_O_LONG | VT_O_RECURSIVE, 1, 2,
     "ls [-l] [-R] [KEY OPTIONS] IMAGE [PATH]",
     "List a directory of the volume (default /).\n"
     "  -l                    type, size, modification time (UTC) and name\n"
     "                        (a link as 'name -> target')\n"
     "  -R                    list subdirectories recursively\n"},
    {"cat", vt_cmd_cat, VT_O_KEYS, 2, 2, "cat [KEY OPTIONS] IMAGE PATH",
     "Write a file of the volume to standard output.\n"},
    {"get", vt_cmd_get, VT_O_KEYS | VT_O_DEREF, 3, 3,
     "get [--dereference] [KEY OPTIONS] IMAGE PATH DEST",
     "Copy a file or a directory (recursively) out of the volume, keeping\n"
     "modification times; symbolic links become host links with the stored\n"
     "target. An existing directory DEST receives PATH's name.\n"
     "  --dereference         copy what links point to instead (a dangling link\n"
     "                        is an error)\n"},
    {"put", vt_cmd_put, VT_O_KEYS | VT_O_SPECIAL | VT_O_CLASH | VT_O_DEREF, 3, 3,
     "put [--skip-special|--refuse-special] [--on-clash=fail|skip|rename]\n"
     "            [--dereference] [KEY OPTIONS] IMAGE SRC PATH",
     "Copy a host file or directory (recursively) into the volume, keeping\n"
     "modification times; symbolic links are copied as links; existing files\n"
     "of exactly the same name are replaced. An existing directory PATH\n"
     "receives SRC's name.\n"
     "  --skip-special        skip devices, fifos, sockets and files over\n"
     "                        4 GiB - 1, one warning each (default)\n"
     "  --refuse-special      fail on them instead\n"
     "  --dereference         copy what symbolic links point to instead of the\n"
     "                        links (a dangling link is then a special)\n"
     CLI_CLASH_USAGE},
    {"rm", vt_cmd_rm, VT_O_KEYS | VT_O_RECURSIVE, 2, 2,
     "rm [-r] [KEY OPTIONS] IMAGE PATH",
     "Remove a file, or with -r a directory and everything in it.\n"},
    {"mkdir", vt_cmd_mkdir, VT_O_KEYS | VT_O_PARENTS, 2, 2,
     "mkdir [-p] [KEY OPTIONS] IMAGE PATH",
     "Make a directory.\n"
     "  -p                    make missing parents; an existing directory is fine\n"},
    {"mv", vt_cmd_mv, VT_O_KEYS, 3, 3, "mv [KEY OPTIONS] IMAGE FROM TO",
     "Rename or move a file or directory (into TO if TO is a directory).\n"},
    {"export", vt_cmd_export, VT_O_KEYS | VT_O_FORCE | VT_O_TAR, 2, 2,
     "export [--force] [--tar] [KEY OPTIONS] IMAGE RAW|ARCHIVE|-",
     "Write the decrypted FAT32 volume to the sparse file RAW (fsck.fat and\n"
     "mtools read it), or with --tar the volume's tree as a tar archive (pax;\n"
     "'-' = standard output): names, contents, modification times, directories\n"
     "and symbolic links with their stored targets; owner 0:0, mode 0755\n"
     "(links 0777), as FAT32 keeps neither. With --tar the operands may come in\n"
     "either order (export --tar - IMAGE): the image is the one that is an image,\n"
     "and an archive never replaces an image, even with --force.\n"
     "  --tar                 a tar archive of the tree instead of the raw volume\n"
     "  --force               replace an existing RAW or ARCHIVE\n"},
    {"resize", vt_cmd_resize, VT_O_KEYS, 2, 2, "resize [KEY OPTIONS] IMAGE SIZE",
     "Grow the image and its FAT32 volume in place to SIZE (the volume's size,\n"
     "as mkvhd --size takes it: 512M, 4G, ...), crash-safe: after a crash the\n"
     "image opens at the old size or the new one. The FAT's length was fixed\n"
     "when the image was made (mkvhd --max-size): past its room the error names\n"
     "the largest size possible. Shrinking is not supported.\n"},
    {"keyslot list", vt_cmd_keyslot_list, 0, 1, 1, "keyslot list IMAGE",
     "List the key slots (no key needed).\n"},
    {"keyslot add", vt_cmd_keyslot_add, VT_O_KEYS | VT_O_NEWKEY, 1, 1,
     "keyslot add [KEY OPTIONS] NEW IMAGE",
     "Add a key slot; KEY OPTIONS unlock the image, NEW is one of:\n"
     "  --new-key-file F      make a new random key file F (mode 0600)\n"
     "  --new-passphrase-file F  the new passphrase is the first line of F\n"
     "  --new-passphrase      ask for the new passphrase on the terminal (twice)\n"
     "  --seal-to PUB         seal to an X25519 public key (vhdtool keygen)\n"},
    {"keyslot remove", vt_cmd_keyslot_remove, VT_O_KEYS, 2, 2,
     "keyslot remove [KEY OPTIONS] IMAGE SLOT",
     "Empty key slot SLOT (0-7, see keyslot list). The last slot is never removed.\n"},
    {"keygen", vt_cmd_keygen, VT_O_KEYGEN, 0, 0, "keygen --secret F --public F",
     "Make an X25519 key pair for --seal-to / --identity: the secret key (32 bytes,\n"
     "mode 0600) and the public key (64 hex digits). Existing files are never\n"
     "replaced.\n"},
    {"rekey", vt_cmd_rekey, VT_O_KEYS | VT_O_NEWKEY | VT_O_REKEY, 1, 1,
     "rekey [KEY OPTIONS] [--keep-key-file F]... [--keep-passphrase-file F]...\n"
     "            [--new-key-file F|--new-passphrase-file F|--new-passphrase|\n"
     "            --seal-to PUB] [--drop-unlock] IMAGE",
     "Rotate the master key: a new random key, every written block re-encrypted,\n"
     "the key slots replaced by slots for the secrets given, so the old key and\n"
     "the secrets left out open nothing written from now on (old copies of the\n"
     "image stay readable with them). Crash-safe: an interrupted rotation is\n"
     "finished by running rekey again (with a kept secret once the slots were\n"
     "replaced); meanwhile the image opens read-only. Not with a TPM anchor.\n"
     "  (KEY OPTIONS)         the secret that opens IMAGE keeps a slot\n"
     "  --keep-key-file F     also keep a slot for this existing key file\n"
     "  --keep-passphrase-file F  and for the passphrase in the first line of F\n"
     "  --new-key-file F      add a slot for a new random key file F (mode 0600)\n"
     "  --new-passphrase-file F, --new-passphrase, --seal-to PUB  add one more slot\n"
     "  --drop-unlock         no slot for the secret of KEY OPTIONS\n"
     "Every other slot is dropped.\n"},
    {"anchor init", vt_cmd_anchor_init, VT_O_KEYS, 1, 1,
     "anchor init --anchor F|tpm:NVINDEX [--tpm-tcti STR] [KEY OPTIONS] IMAGE",
     "Bind IMAGE to a new freshness anchor: create the anchor file F, or define\n"
     "the TPM 2.0 NV counter NVINDEX (or adopt an existing counter whose\n"
     "attributes fit), with an authorization derived from the image's key.\n"
     "The image is taken as it is and its epoch moves to the counter; from now\n"
     "on any other anchor is refused as belonging to another image.\n"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* A signal only sets this; get, put and export notice it between chunks
 * and clean up (partial files, temporaries) instead of dying mid-write. */
static volatile sig_atomic_t vt_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    vt_interrupted = 1;
}

static void usage_all(FILE *f)
{
    fprintf(f, "Usage: vhdtool COMMAND [OPTIONS] ARGS...\n"
               "Inspect and edit vdisk images offline.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  vhdtool %s\n", commands[i].usage);
    fprintf(f, "\n%s", CLI_KEY_USAGE);
    fprintf(f, "\nEvery command takes -q (no notes or progress) and --help.\n"
               "Exit status: 0 ok, 1 failure, 2 usage, 3 wrong key, 4 integrity or\n"
               "rollback violation (the message names the block and the file).\n");
}

int main(int argc, char **argv)
{
    cli_locale_utf8();
    if (argc < 2) {
        fprintf(stderr, "vhdtool: missing command\nTry 'vhdtool --help'.\n");
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage_all(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vhdtool (vdisk) %s\n", VD_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    int group = strcmp(argv[1], "keyslot") == 0 || strcmp(argv[1], "anchor") == 0;
    if (group && argc < 3) {
        fprintf(stderr, "vhdtool: %s: missing subcommand\nTry 'vhdtool --help'.\n",
                argv[1]);
        return CLI_EXIT_USAGE;
    }
    if (group && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        usage_all(stdout);
        return CLI_EXIT_OK;
    }
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", argv[1], group ? " " : "",
             group ? argv[2] : "");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        vt_opts o;
        int rc = vt_parse(&commands[i], argc - 1 - group, argv + 1 + group, &o);
        if (rc >= 0)
            return rc;
        if (cli_signals_catch(on_signal) != 0) {
            cli_errorf(VT_PROG, NULL, "cannot install signal handlers");
            return CLI_EXIT_FAIL;
        }
        o.cancel = &vt_interrupted;
        return commands[i].run(&commands[i], &o);
    }
    fprintf(stderr, "vhdtool: unknown command '%s'\nTry 'vhdtool --help'.\n", name);
    return CLI_EXIT_USAGE;
}
