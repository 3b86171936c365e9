/* The freshness anchor inside the trusted side (R4, R7): which anchor an
 * image belongs to, the rollback check at open, and the commit that binds
 * an image to its anchor.
 *
 * Binding (R7): every superblock carries an 8-byte tag of the anchor's
 * identity, keyed by a subkey of the master key, so the host can neither
 * edit it (the superblock MAC covers it) nor compute one for another
 * anchor. The anchor only names itself (vd_anchor.identity); the decision
 * is taken here. docs/SECURITY.md "R7" explains the choices. */
#include <errno.h>
#include <string.h>

#include "image_internal.h"

vd_err vd_anchor_err(int rc)
{
    switch (-rc) {
    case ENOENT:
        return VD_ERR_ANCHOR_MISSING;
    case EACCES:
    case EPERM:
        return VD_ERR_ANCHOR_DENIED;
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ECONNREFUSED:
    case ECONNRESET:
    case ENOTCONN:
    case EPIPE:
    case ETIMEDOUT:
        return VD_ERR_ANCHOR_UNREACHABLE;
    case ENOMEM:
        return VD_ERR_NOMEM;
    default:
        return VD_ERR_IO;
    }
}

static int tag_is_zero(const uint8_t t[SB_ANCHOR_TAG_BYTES])
{
    uint8_t acc = 0;
    for (unsigned i = 0; i < SB_ANCHOR_TAG_BYTES; i++)
        acc |= t[i];
    return acc == 0;
}

vd_err vd_anchor_tag_of(vd_image *img, const uint8_t *key,
                        uint8_t out[SB_ANCHOR_TAG_BYTES])
{
    memset(out, 0, SB_ANCHOR_TAG_BYTES);
    const vd_anchor *a = &img->anchor;
    if (!img->have_anchor || !a->identity)
        return VD_OK;
    uint8_t id[VD_ANCHOR_ID_MAX], mac[VDC_MAC_BYTES];
    size_t len = 0;
    int rc = a->identity(a->ctx, id, &len);
    if (rc != 0)
        return vd_anchor_err(rc);
    if (len > VD_ANCHOR_ID_MAX)
        return VD_ERR_INVAL;
    if (len == 0)
        return VD_OK;
    uint8_t *k = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!k)
        return VD_ERR_NOMEM;
    vd_err e = VD_OK;
    if (vdc_kdf(k, key, VD_KDF_ANCHOR, 0) != 0 ||
        vdc_mac(mac, k, VD_ANCHOR_TAG_CTX, sizeof VD_ANCHOR_TAG_CTX - 1, id, len, NULL,
                0) != 0)
        e = VD_ERR_NOMEM;
    else {
        memcpy(out, mac, SB_ANCHOR_TAG_BYTES);
        if (tag_is_zero(out))
            out[0] = 1; /* zero means "not bound" */
    }
    vdc_secure_free(k);
    return e;
}

/* Hand the anchor its authorization and compute the tag of its identity
 * (img->anchor_cur; zero when it cannot name itself). Needs the master
 * key (after vd_keys_derive). */
vd_err vd_anchor_attach(vd_image *img)
{
    memset(img->anchor_cur, 0, sizeof img->anchor_cur);
    if (!img->have_anchor)
        return VD_OK;
    const vd_anchor *a = &img->anchor;
    vd_err e = VD_OK;
    if (a->authorize) {
        uint8_t *k = vdc_secure_alloc(VDC_KEY_BYTES);
        if (!k)
            return VD_ERR_NOMEM;
        if (vdc_kdf(k, img->master, VD_KDF_ANCHOR, 1) != 0)
            e = VD_ERR_NOMEM;
        int rc = e == VD_OK ? a->authorize(a->ctx, k) : 0;
        if (rc != 0)
            e = vd_anchor_err(rc);
        vdc_secure_free(k);
    }
    if (e == VD_OK)
        e = vd_anchor_tag_of(img, img->master, img->anchor_cur);
    return e;
}

/* vd_anchor.step: 1 for an anchor that holds any value. */
static uint64_t anchor_step(const vd_image *img)
{
    return img->anchor.step > 1 ? img->anchor.step : 1;
}

/* The smallest epoch >= e the anchor can hold; 0 when there is none. */
static uint64_t anchor_round_up(const vd_image *img, uint64_t e)
{
    uint64_t step = anchor_step(img), r = e % step;
    if (r == 0)
        return e;
    return e + (step - r) < e ? 0 : e + (step - r);
}

/* Whether this open binds the image to the anchor in use (a commit at the
 * end of the open, vd_anchor_bind). */
static int wants_bind(const vd_image *img)
{
    return img->have_anchor && !img->read_only && !tag_is_zero(img->anchor_cur) &&
           memcmp(img->anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES) != 0;
}

/* At open, after the superblocks (img->anchor_tag, img->committed) are
 * loaded: the anchor must be this image's (R7), and the state must not be
 * older than it (R4). An IN_PROGRESS record stands for its base epoch, so
 * once the anchor has passed that base the record is a replay even though
 * it is authentic. *bind is set when the open must end with
 * vd_anchor_bind. */
vd_err vd_anchor_check(vd_image *img, int *bind)
{
    *bind = 0;
    if (!img->have_anchor)
        return VD_OK;
    int bound = !tag_is_zero(img->anchor_tag);
    int same = memcmp(img->anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES) == 0;
    if (bound && !same && !(img->anchor_bind && !img->read_only))
        return VD_ERR_ANCHOR_MISMATCH;
    *bind = wants_bind(img);
    /* An explicit (re)bind takes the image as it is: the new anchor may
     * have counted for something else. An image never bound (made before
     * R7) keeps the rollback check: its anchor is the one it always had. */
    if (*bind && (bound || img->anchor_bind))
        return VD_OK;
    uint64_t a;
    int rc = img->anchor.read(img->anchor.ctx, &a);
    if (rc != 0)
        return vd_anchor_err(rc);
    if (a > img->committed)
        return VD_ERR_ROLLBACK;
    if (a < img->committed && !img->read_only) {
        /* A stepped anchor catches up to the newest multiple it can hold;
         * the rest stays owed to the next acknowledged sync (a jump). */
        uint64_t to = img->committed - img->committed % anchor_step(img);
        if (to > a) {
            rc = img->anchor.advance(img->anchor.ctx, to);
            if (rc != 0)
                return vd_anchor_err(rc);
        }
        if (to != img->committed)
            img->anchor_due = img->committed;
    }
    return VD_OK;
}

/* A COMMITTED record of the state in memory (same root, no journal) at
 * epoch, carrying tag, made durable: epochs may jump (parity picks the
 * slot). What was written before it is flushed first (the last commit's
 * metadata, written in place after its record, and a deferred record), so
 * a crash leaves that commit's record or this one, both of the same state. */
static vd_err write_record(vd_image *img, uint64_t epoch,
                           const uint8_t tag[SB_ANCHOR_TAG_BYTES])
{
    vd_err e = vd_flight_join(img); /* its record comes first */
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e == VD_OK)
        e = vd_super_write(img, img->scratch, epoch, SB_STATE_COMMITTED, &img->root, tag,
                           NULL, 0, 0, NULL, NULL);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK) {
        img->failed = e;
        return e;
    }
    img->epoch = img->committed = epoch;
    img->sb_state = SB_STATE_COMMITTED;
    return VD_OK;
}

vd_err vd_super_write_plain(vd_image *img, uint64_t epoch)
{
    return write_record(img, epoch, img->anchor_tag);
}

/* Bind a writable image to the anchor in use: a COMMITTED superblock with
 * the same root, the new tag and an epoch at least the anchor's value
 * (and one it can hold), flushed before the anchor moves to it. A crash
 * leaves the old record (old binding) or the new one. */
vd_err vd_anchor_bind(vd_image *img)
{
    uint64_t a;
    int rc = img->anchor.read(img->anchor.ctx, &a);
    if (rc != 0)
        return vd_anchor_err(rc);
    uint64_t epoch = img->epoch + 1;
    if (a > epoch)
        epoch = a;
    epoch = anchor_round_up(img, epoch);
    if (epoch <= img->epoch) /* wrapped */
        return VD_ERR_RANGE;
    vd_err e = write_record(img, epoch, img->anchor_cur);
    if (e != VD_OK)
        return e;
    memcpy(img->anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES);
    rc = img->anchor.advance(img->anchor.ctx, epoch);
    if (rc != 0) {
        img->anchor_due = epoch; /* retried by the next sync or close */
        return vd_anchor_err(rc);
    }
    return VD_OK;
}

int vd_anchor_fold(const vd_image *img, int ack, int meta, uint64_t *x, uint64_t *commit,
                   uint64_t *to)
{
    if (!img->have_anchor || anchor_step(img) == 1 || img->sb_state != SB_STATE_COMMITTED ||
        !(img->anchor_mode == VD_ANCHOR_EVERY_COMMIT || ack))
        return 0;
    uint64_t e = anchor_round_up(img, img->epoch + 1);
    if (e == 0 || e + 1 == 0)
        return 0;
    *to = e;
    if (e % 2 != img->epoch % 2) {
        *x = *commit = e;
    } else if (!meta) {
        *x = img->epoch + 1;
        *commit = e;
    } else {
        return 0; /* vd_anchor_advance_due's record at e follows the round */
    }
    return 1;
}

/* Advance the anchor to the commit it is owed (img->anchor_due, the newest
 * commit). A stepped anchor can hold only multiples of its step: unless
 * the commit's epoch is one, a record of the same state at the next
 * multiple comes first (write_record), and the anchor moves there, one
 * counter increment. Failing, the advance stays owed: the sync that asked
 * is not acknowledged (R4). */
vd_err vd_anchor_advance_due(vd_image *img)
{
    uint64_t to = img->anchor_due;
    if (to % anchor_step(img) != 0) {
        if (img->sb_state != SB_STATE_COMMITTED)
            return VD_ERR_INVAL; /* a round under way: never owed */
        uint64_t epoch = anchor_round_up(img, img->epoch + 1);
        if (epoch == 0)
            return VD_ERR_RANGE;
        vd_err e = write_record(img, epoch, img->anchor_tag);
        if (e != VD_OK)
            return e;
        img->anchor_due = to = epoch;
    }
    int rc = img->anchor.advance(img->anchor.ctx, to);
    if (rc != 0)
        return vd_anchor_err(rc);
    img->anchor_due = 0;
    return VD_OK;
}
