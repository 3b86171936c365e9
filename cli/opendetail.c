/* What a failed open of an image means, in the words every tool and the
 * nbdkit plugin (which compiles this file in) print after the error. */
#include "cli.h"

const char *cli_open_detail(vd_err e, vd_slot_type t)
{
    switch (e) {
    case VD_ERR_WRONG_KEY:
        switch (t) {
        case VD_SLOT_PASSPHRASE: return "no key slot opens with this passphrase";
        case VD_SLOT_KEYFILE: return "no key slot opens with this key file";
        case VD_SLOT_SEALED: return "no key slot is sealed to this identity";
        default: return NULL;
        }
    case VD_ERR_ROLLBACK:
        return "an older copy of the image was put back, or its last commits were lost";
    case VD_ERR_AUTH:
        /* At open: records, journal, log, and the nodes the log names. */
        return "in its metadata: header, key slots, superblocks, journal, log or tree nodes";
    case VD_ERR_CORRUPT:
        return "damaged, truncated, or not made by mkvhd";
    case VD_ERR_BUSY:
        return "another program has it open";
    default:
        return NULL;
    }
}
