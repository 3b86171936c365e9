/* The freshness anchor a tool's --anchor names: an anchor FILE, or a TPM
 * 2.0 NV counter "tpm:NVINDEX" reached through --tpm-tcti STR or the
 * TPM2TOOLS_TCTI environment variable, as tpm2-tools do. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vdisk/anchor.h"

int cli_anchor_is_tpm(const char *spec)
{
    return spec && strncmp(spec, "tpm:", 4) == 0;
}

const char *cli_anchor_tcti(const cli_keyopts *k)
{
    if (k->tpm_tcti)
        return k->tpm_tcti;
    const char *env = getenv("TPM2TOOLS_TCTI");
    return env && env[0] ? env : NULL;
}

static int parse_index(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || v > UINT32_MAX || (v >> 24) != 0x01)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_anchor_open(const char *prog, const cli_keyopts *k, int flags, vd_anchor **out)
{
    *out = NULL;
    int sys = 0;
    if (!cli_anchor_is_tpm(k->anchor)) {
        vd_err e = vd_anchor_file_open(k->anchor, (flags & CLI_OPEN_ANCHOR_CREATE) != 0, out,
                                       &sys);
        if (e == VD_OK)
            return 0;
        if (sys == ENOENT) {
            cli_errorf(prog, k->anchor,
                       "anchor file not found (it is made by mkvhd --anchor or "
                       "vhdtool anchor init; a missing anchor is never recreated "
                       "silently)");
            return CLI_EXIT_FAIL;
        }
        if (sys) {
            cli_errorf(prog, k->anchor, "%s", strerror(sys));
            return CLI_EXIT_FAIL;
        }
        cli_errorf(prog, k->anchor, "%s (not an anchor file)", vd_strerror(e));
        return cli_exit_status(e);
    }
    uint32_t index;
    if (parse_index(k->anchor + 4, &index) != 0) {
        cli_errorf(prog, k->anchor,
                   "not a TPM NV index (tpm:0x01xxxxxx, e.g. tpm:0x01500020)");
        return CLI_EXIT_USAGE;
    }
    char why[256];
    const char *tcti = cli_anchor_tcti(k);
    vd_err e = vd_anchor_tpm_open(tcti, index,
                                  (flags & CLI_OPEN_ANCHOR_CREATE) ? VD_ANCHOR_TPM_DEFINE : 0,
                                  out, why, sizeof why);
    if (e == VD_ERR_UNSUPPORTED) {
        cli_errorf(prog, k->anchor, "built without TPM support (tpm2-tss)");
        return CLI_EXIT_FAIL;
    }
    if (e != VD_OK) {
        cli_errorf(prog, k->anchor, "%s (%s; set --tpm-tcti or TPM2TOOLS_TCTI)",
                   vd_strerror(e), why);
        return cli_exit_status(e);
    }
    return 0;
}

const char *cli_anchor_why(const vd_anchor *a)
{
    return vd_anchor_tpm_why(a);
}

void cli_anchor_close(vd_anchor *a)
{
    if (!a)
        return;
    /* Each closer frees only what its own open made, recognised by its
     * callbacks; ask the second one about a copy, as the first may have
     * freed *a. */
    vd_anchor copy = *a;
    vd_anchor_file_close(a);
    vd_anchor_tpm_close(&copy);
}

vd_anchor_mode cli_anchor_mode(const cli_keyopts *k)
{
    /* A TPM counter wears out and throttles (TPM_RC_NV_RATE): explicit
     * syncs only (docs/SECURITY.md R4). */
    return k->anchor_explicit || cli_anchor_is_tpm(k->anchor) ? VD_ANCHOR_EXPLICIT_SYNC
                                                              : VD_ANCHOR_EVERY_COMMIT;
}

int cli_anchor_fail(const char *prog, const char *image, const cli_keyopts *k,
                    const vd_anchor *a, vd_err e)
{
    const char *why = a ? cli_anchor_why(a) : "";
    switch (e) {
    case VD_ERR_ANCHOR_MISMATCH:
        cli_errorf(prog, image, "%s: %s (the image is bound to another anchor; "
                                "vhdtool anchor init binds it anew)",
                   k->anchor, vd_strerror(e));
        break;
    default:
        if (why[0])
            cli_errorf(prog, image, "%s: %s (%s)", k->anchor, vd_strerror(e), why);
        else
            cli_errorf(prog, image, "%s: %s", k->anchor, vd_strerror(e));
    }
    return cli_exit_status(e);
}

int cli_is_anchor_err(vd_err e)
{
    return e == VD_ERR_ANCHOR_MISMATCH || e == VD_ERR_ANCHOR_UNREACHABLE ||
           e == VD_ERR_ANCHOR_MISSING || e == VD_ERR_ANCHOR_DENIED;
}
