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

/* Hand the anchor its authorization and compute the tag of its identity
 * (img->anchor_cur; zero when it cannot name itself). Needs the master
 * key (after vd_keys_derive). */
vd_err vd_anchor_attach(vd_image *img)
{
    memset(img->anchor_cur, 0, sizeof img->anchor_cur);
    if (!img->have_anchor)
        return VD_OK;
    const vd_anchor *a = &img->anchor;
    uint8_t *k = vdc_secure_alloc(VDC_KEY_BYTES);
    if (!k)
        return VD_ERR_NOMEM;
    vd_err e = VD_OK;
    if (a->authorize) {
        if (vdc_kdf(k, img->master, VD_KDF_ANCHOR, 1) != 0)
            e = VD_ERR_NOMEM;
        int rc = e == VD_OK ? a->authorize(a->ctx, k) : 0;
        if (rc != 0)
            e = vd_anchor_err(rc);
    }
    if (e == VD_OK && a->identity) {
        uint8_t id[VD_ANCHOR_ID_MAX], mac[VDC_MAC_BYTES];
        size_t len = 0;
        int rc = a->identity(a->ctx, id, &len);
        if (rc != 0)
            e = vd_anchor_err(rc);
        else if (len > VD_ANCHOR_ID_MAX)
            e = VD_ERR_INVAL;
        else if (len > 0) {
            if (vdc_kdf(k, img->master, VD_KDF_ANCHOR, 0) != 0 ||
                vdc_mac(mac, k, VD_ANCHOR_TAG_CTX, sizeof VD_ANCHOR_TAG_CTX - 1, id, len,
                        NULL, 0) != 0)
                e = VD_ERR_NOMEM;
            else {
                memcpy(img->anchor_cur, mac, SB_ANCHOR_TAG_BYTES);
                if (tag_is_zero(img->anchor_cur))
                    img->anchor_cur[0] = 1; /* zero means "not bound" */
            }
        }
    }
    vdc_secure_free(k);
    return e;
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
        rc = img->anchor.advance(img->anchor.ctx, img->committed);
        if (rc != 0)
            return vd_anchor_err(rc);
    }
    return VD_OK;
}

/* Bind a writable image to the anchor in use: a COMMITTED superblock with
 * the same root, the new tag and an epoch at least the anchor's value
 * (epochs may jump; parity picks the slot), flushed before the anchor
 * moves to it. A crash leaves the old record (old binding) or the new one. */
vd_err vd_anchor_bind(vd_image *img)
{
    uint64_t a;
    int rc = img->anchor.read(img->anchor.ctx, &a);
    if (rc != 0)
        return vd_anchor_err(rc);
    uint64_t epoch = img->epoch + 1;
    if (a > epoch)
        epoch = a;
    if (epoch < img->epoch) /* wrapped */
        return VD_ERR_RANGE;
    vd_super s;
    memset(&s, 0, sizeof s);
    s.version = img->hdr.format_version;
    s.slot = (uint32_t)(epoch % 2);
    s.epoch = epoch;
    s.base_epoch = img->committed;
    s.state = SB_STATE_COMMITTED;
    memcpy(s.header_digest, img->header_digest, 32);
    s.root = img->root;
    s.time_ns = vd_host_now(&img->host);
    memcpy(s.anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES);
    uint8_t *blk = img->scratch;
    vd_super_encode(&s, blk);
    vd_err e = vd_super_seal(img, blk);
    if (e == VD_OK)
        e = vd_io_write(img, (img->hdr.sb_start + s.slot) * VDF_BLOCK, blk, VDF_BLOCK);
    if (e == VD_OK)
        e = vd_io_flush(img);
    if (e != VD_OK) {
        img->failed = e;
        return e;
    }
    img->epoch = img->committed = epoch;
    img->sb_state = SB_STATE_COMMITTED;
    img->slot_redo[s.slot] = 0; /* names no journal (metadata redone at open) */
    img->sb_clean = 0;
    if (img->sb_last)
        memcpy(img->sb_last, blk, VDF_BLOCK);
    memcpy(img->anchor_tag, img->anchor_cur, SB_ANCHOR_TAG_BYTES);
    rc = img->anchor.advance(img->anchor.ctx, epoch);
    if (rc != 0) {
        img->anchor_due = epoch; /* retried by the next sync or close */
        return vd_anchor_err(rc);
    }
    return VD_OK;
}
