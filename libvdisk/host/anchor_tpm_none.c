/* The TPM anchor's entry points when the library is built without
 * tpm2-tss (libtss2-dev absent at configure time): every tool then says
 * "built without TPM support". */
#include <stdio.h>

#include "vdisk/anchor.h"

vd_err vd_anchor_tpm_open(const char *tcti, uint32_t nv_index, int flags,
                          vd_anchor **out, char *why, size_t whylen)
{
    (void)tcti;
    (void)nv_index;
    (void)flags;
    if (out)
        *out = NULL;
    if (why && whylen)
        snprintf(why, whylen, "built without TPM support (tpm2-tss)");
    return VD_ERR_UNSUPPORTED;
}

const char *vd_anchor_tpm_why(const vd_anchor *anchor)
{
    (void)anchor;
    return "";
}

void vd_anchor_tpm_close(vd_anchor *anchor)
{
    (void)anchor;
}

int vd_anchor_tpm_available(void)
{
    return 0;
}
