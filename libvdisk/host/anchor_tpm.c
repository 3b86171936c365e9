/* TPM 2.0 freshness anchor (vdisk_host, tpm2-tss ESAPI): an NV index of
 * type counter, not orderly, read and incremented with an authorization
 * value the library derives from the image's master key (vd_anchor
 * .authorize). Its identity (R7) is the index's TPM name, the hash of its
 * public area: a different index, or one redefined with other attributes
 * or policy, has another name. docs/SECURITY.md "R4" and "R7" explain the
 * choices. Callbacks return 0 or a negative errno (vdisk.h, vd_anchor):
 * -EHOSTDOWN when the TPM does not answer, -ENOENT when the index does not
 * exist, -EACCES when it refuses the authorization. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "vdisk/anchor.h"

/* NV_RATE: the TPM throttles NV writes; wait and retry this long at most. */
#define TPM_RATE_WAIT_MS 50
#define TPM_RATE_TRIES 200

typedef struct tpm_anchor {
    vd_anchor a; /* first: the vd_anchor handed out is this struct */
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR nv;
    uint32_t index;
    int flags;
    int have_auth;
    int gone; /* the connection failed: ESYS is left mid-command, so every
                 later call is "unreachable" too (reopen to retry) */
    TPM2B_AUTH auth;
    char why[200]; /* the last failure, for messages */
} tpm_anchor;

static int tpm_fail(tpm_anchor *t, const char *what, TSS2_RC rc)
{
    snprintf(t->why, sizeof t->why, "%s: %s", what, Tss2_RC_Decode(rc));
    if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
        switch (rc & 0xffffu) { /* the base code, whatever the layer */
        case TSS2_BASE_RC_NO_CONNECTION:
        case TSS2_BASE_RC_IO_ERROR:
        case TSS2_BASE_RC_TRY_AGAIN:
            t->gone = 1;
            return -EHOSTDOWN;
        case TSS2_BASE_RC_MEMORY:
            return -ENOMEM;
        default:
            return -EIO;
        }
    }
    if (rc & TPM2_RC_FMT1) {
        switch (rc & (TPM2_RC_FMT1 | 0x3fu)) {
        case TPM2_RC_HANDLE:
            return -ENOENT;
        case TPM2_RC_AUTH_FAIL:
        case TPM2_RC_BAD_AUTH:
            return -EACCES;
        default:
            return -EIO;
        }
    }
    if (rc == TPM2_RC_LOCKOUT)
        return -EACCES;
    return -EIO;
}

static int tpm_fail_msg(tpm_anchor *t, int err, const char *msg)
{
    snprintf(t->why, sizeof t->why, "%s", msg);
    return err;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The index's ESYS handle (looked up once; the TPM answers TPM_RC_HANDLE
 * when it does not exist). */
static int tpm_handle(tpm_anchor *t)
{
    if (t->gone)
        return -EHOSTDOWN; /* t->why still says why */
    if (t->nv != ESYS_TR_NONE)
        return 0;
    TSS2_RC rc = Esys_TR_FromTPMPublic(t->esys, t->index, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &t->nv);
    if (rc != TSS2_RC_SUCCESS) {
        t->nv = ESYS_TR_NONE;
        return tpm_fail(t, "NV index", rc);
    }
    if (t->have_auth && (rc = Esys_TR_SetAuth(t->esys, t->nv, &t->auth)) != TSS2_RC_SUCCESS)
        return tpm_fail(t, "set authorization", rc);
    return 0;
}

static int tpm_public(tpm_anchor *t, TPM2B_NV_PUBLIC **pub, TPM2B_NAME **name)
{
    int r = tpm_handle(t);
    if (r != 0)
        return r;
    TSS2_RC rc = Esys_NV_ReadPublic(t->esys, t->nv, ESYS_TR_NONE, ESYS_TR_NONE,
                                    ESYS_TR_NONE, pub, name);
    return rc == TSS2_RC_SUCCESS ? 0 : tpm_fail(t, "NV read public", rc);
}

static int tpm_counter(tpm_anchor *t, uint64_t *v)
{
    int r = tpm_handle(t);
    if (r != 0)
        return r;
    TPM2B_MAX_NV_BUFFER *data = NULL;
    TSS2_RC rc = Esys_NV_Read(t->esys, t->nv, t->nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                              ESYS_TR_NONE, 8, 0, &data);
    if (rc != TSS2_RC_SUCCESS)
        return tpm_fail(t, "NV read", rc);
    if (data->size != 8) {
        Esys_Free(data);
        return tpm_fail_msg(t, -EIO, "NV read: not an 8-byte counter");
    }
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) /* TPM byte order: big-endian */
        x = x << 8 | data->buffer[i];
    Esys_Free(data);
    *v = x;
    return 0;
}

static int tpm_increment(tpm_anchor *t)
{
    int r = tpm_handle(t);
    if (r != 0)
        return r;
    for (int tries = 0;; tries++) {
        TSS2_RC rc = Esys_NV_Increment(t->esys, t->nv, t->nv, ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc == TSS2_RC_SUCCESS)
            return 0;
        if ((rc == TPM2_RC_NV_RATE || rc == TPM2_RC_RETRY) && tries < TPM_RATE_TRIES) {
            sleep_ms(TPM_RATE_WAIT_MS); /* NV wear limiter: wait it out */
            continue;
        }
        return tpm_fail(t, "NV increment", rc);
    }
}

/* The anchor's value is the counter times VD_ANCHOR_TPM_STEP (vd_anchor
 * .step): the library anchors only epochs that are multiples of it, so an
 * acknowledged sync costs one increment however many commits preceded it
 * (docs/SECURITY.md, "R4": NV wear). */
static int ta_read(void *ctx, uint64_t *value)
{
    tpm_anchor *t = ctx;
    uint64_t c;
    if (!t || !value)
        return -EINVAL;
    int r = tpm_counter(t, &c);
    if (r != 0)
        return r;
    if (c > UINT64_MAX / VD_ANCHOR_TPM_STEP)
        return tpm_fail_msg(t, -ERANGE, "NV counter too large to serve as an anchor");
    *value = c * VD_ANCHOR_TPM_STEP;
    return 0;
}

/* The counter moves one step per TPM2_NV_Increment: step until it holds
 * value. A crash in between leaves it lower than value, never higher. */
static int ta_advance(void *ctx, uint64_t value)
{
    tpm_anchor *t = ctx;
    uint64_t cur;
    if (!t || value % VD_ANCHOR_TPM_STEP != 0)
        return -EINVAL;
    value /= VD_ANCHOR_TPM_STEP;
    int r = tpm_counter(t, &cur);
    if (r != 0)
        return r;
    if (value < cur)
        return -EINVAL; /* never backwards */
    while (cur < value) {
        r = tpm_increment(t);
        if (r != 0)
            return r;
        cur++;
    }
    return 0;
}

static int ta_identity(void *ctx, uint8_t id[VD_ANCHOR_ID_MAX], size_t *len)
{
    tpm_anchor *t = ctx;
    if (!t || !id || !len)
        return -EINVAL;
    TPM2B_NV_PUBLIC *pub = NULL;
    TPM2B_NAME *name = NULL;
    int r = tpm_public(t, &pub, &name);
    if (r == 0) {
        if (name->size == 0 || name->size > VD_ANCHOR_ID_MAX)
            r = tpm_fail_msg(t, -EIO, "NV index name of an unexpected size");
        else {
            memcpy(id, name->name, name->size);
            *len = name->size;
        }
    }
    Esys_Free(pub);
    Esys_Free(name);
    return r;
}

static int nv_is_counter(const TPMS_NV_PUBLIC *p)
{
    return ((p->attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT) == TPM2_NT_COUNTER;
}

/* vhdtool anchor init: define the index with this authorization, or adopt
 * an existing one if it is a usable counter (and the authorization opens
 * it). Either way the counter has been written once, so it can be read. */
static int tpm_define_or_adopt(tpm_anchor *t)
{
    TPM2B_NV_PUBLIC *pub = NULL;
    TPM2B_NAME *name = NULL;
    int r = tpm_public(t, &pub, &name);
    if (r == -ENOENT) {
        /* A random policy no one can satisfy: the name (our identity) is
         * new even if this index number was used before, and the index's
         * authorization can never be changed (TPM2_NV_ChangeAuth needs the
         * policy). Reading and incrementing use the authorization value;
         * the owner may read it too (tpm2_nvread -C o), a counter is no
         * secret. */
        TPM2B_NV_PUBLIC info = {
            .size = 0,
            .nvPublic = {
                .nvIndex = t->index,
                .nameAlg = TPM2_ALG_SHA256,
                .attributes = TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_OWNERREAD |
                              TPMA_NV_NO_DA |
                              ((TPMA_NV)TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT),
                .authPolicy = {.size = 32},
                .dataSize = 8,
            },
        };
        size_t got = 0;
        while (got < 32) {
            ssize_t n = getrandom(info.nvPublic.authPolicy.buffer + got, 32 - got, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return tpm_fail_msg(t, -EIO, "no random bytes for the NV policy");
            got += (size_t)n;
        }
        t->nv = ESYS_TR_NONE;
        TSS2_RC rc = Esys_NV_DefineSpace(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD,
                                         ESYS_TR_NONE, ESYS_TR_NONE, &t->auth, &info,
                                         &t->nv);
        if (rc != TSS2_RC_SUCCESS) {
            t->nv = ESYS_TR_NONE;
            r = tpm_fail(t, "NV define space (owner hierarchy)", rc);
            /* Owner authorization refused: not "index missing". */
            return r == -ENOENT ? -EIO : r;
        }
        r = tpm_increment(t); /* an index never written cannot be read */
        return r;
    }
    if (r != 0)
        return r;
    const TPMS_NV_PUBLIC *p = &pub->nvPublic;
    if (!nv_is_counter(p) || p->dataSize != 8)
        r = tpm_fail_msg(t, -EINVAL, "the NV index exists and is not a counter");
    else if (p->attributes & TPMA_NV_ORDERLY)
        r = tpm_fail_msg(t, -EINVAL, "the NV counter is orderly (it may jump after a "
                                     "crash; define a new one)");
    else if (!(p->attributes & TPMA_NV_AUTHWRITE) || !(p->attributes & TPMA_NV_AUTHREAD))
        r = tpm_fail_msg(t, -EINVAL, "the NV counter is not read and written with its "
                                     "authorization value");
    else if (!(p->attributes & TPMA_NV_WRITTEN))
        r = tpm_increment(t);
    Esys_Free(pub);
    Esys_Free(name);
    if (r == 0) {
        uint64_t v;
        r = tpm_counter(t, &v); /* the authorization must open it */
    }
    return r;
}

static int ta_authorize(void *ctx, const uint8_t secret[VD_ANCHOR_SECRET_BYTES])
{
    tpm_anchor *t = ctx;
    if (!t || !secret)
        return -EINVAL;
    _Static_assert(VD_ANCHOR_SECRET_BYTES <= sizeof t->auth.buffer, "auth fits");
    t->auth.size = VD_ANCHOR_SECRET_BYTES;
    memcpy(t->auth.buffer, secret, VD_ANCHOR_SECRET_BYTES);
    t->have_auth = 1;
    if (t->nv != ESYS_TR_NONE) {
        TSS2_RC rc = Esys_TR_SetAuth(t->esys, t->nv, &t->auth);
        if (rc != TSS2_RC_SUCCESS)
            return tpm_fail(t, "set authorization", rc);
    }
    if (t->flags & VD_ANCHOR_TPM_DEFINE) {
        t->flags &= ~VD_ANCHOR_TPM_DEFINE; /* once */
        return tpm_define_or_adopt(t);
    }
    return 0;
}

static void tpm_free(tpm_anchor *t)
{
    if (!t)
        return;
    if (t->esys) {
        if (t->nv != ESYS_TR_NONE)
            (void)Esys_TR_Close(t->esys, &t->nv);
        Esys_Finalize(&t->esys);
    }
    if (t->tcti)
        Tss2_TctiLdr_Finalize(&t->tcti);
    explicit_bzero(&t->auth, sizeof t->auth);
    free(t);
}

vd_err vd_anchor_tpm_open(const char *tcti, uint32_t nv_index, int flags,
                          vd_anchor **out, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || (flags & ~VD_ANCHOR_TPM_DEFINE) ||
        (nv_index & 0xff000000u) != ((uint32_t)TPM2_HT_NV_INDEX << 24))
        return VD_ERR_INVAL;
    tpm_anchor *t = calloc(1, sizeof *t);
    if (!t)
        return VD_ERR_NOMEM;
    t->nv = ESYS_TR_NONE;
    t->index = nv_index;
    t->flags = flags;
    /* tpm2-tss logs its errors to stderr by default; the tools report one
     * line of their own (vd_anchor_tpm_why), so keep it quiet unless the
     * user asked for its log. */
    if (!getenv("TSS2_LOG"))
        (void)setenv("TSS2_LOG", "all+NONE", 0);
    TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti && tcti[0] ? tcti : NULL, &t->tcti);
    if (rc == TSS2_RC_SUCCESS)
        rc = Esys_Initialize(&t->esys, t->tcti, NULL);
    if (rc == TSS2_RC_SUCCESS) {
        /* Ask once now, so an absent TPM is reported at open. */
        TPMS_CAPABILITY_DATA *cap = NULL;
        rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1, NULL,
                                &cap);
        Esys_Free(cap);
    }
    if (rc != TSS2_RC_SUCCESS) {
        if (why && whylen)
            snprintf(why, whylen, "TCTI %s: %s", tcti && tcti[0] ? tcti : "(default)",
                     Tss2_RC_Decode(rc));
        tpm_free(t);
        return VD_ERR_ANCHOR_UNREACHABLE;
    }
    t->a.ctx = t;
    t->a.read = ta_read;
    t->a.advance = ta_advance;
    t->a.identity = ta_identity;
    t->a.authorize = ta_authorize;
    t->a.step = VD_ANCHOR_TPM_STEP;
    *out = &t->a;
    return VD_OK;
}

const char *vd_anchor_tpm_why(const vd_anchor *anchor)
{
    if (!anchor || anchor->read != ta_read || !anchor->ctx)
        return "";
    return ((const tpm_anchor *)anchor->ctx)->why;
}

void vd_anchor_tpm_close(vd_anchor *anchor)
{
    if (!anchor || anchor->read != ta_read || !anchor->ctx)
        return;
    tpm_free(anchor->ctx);
}

int vd_anchor_tpm_available(void)
{
    return 1;
}
