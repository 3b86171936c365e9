#include "vdisk/vdisk.h"

const char *vd_strerror(vd_err err)
{
    switch (err) {
    case VD_OK: return "success";
    case VD_ERR_IO: return "I/O error from the host";
    case VD_ERR_AUTH: return "authentication failed (data was modified or replayed)";
    case VD_ERR_ROLLBACK: return "image is older than its freshness anchor (rollback)";
    case VD_ERR_WRONG_KEY: return "wrong key for this image";
    case VD_ERR_CORRUPT: return "image structure is corrupt or not a vdisk image";
    case VD_ERR_NOSPC: return "no space left";
    case VD_ERR_INVAL: return "invalid argument";
    case VD_ERR_NOMEM: return "out of memory";
    case VD_ERR_UNSUPPORTED: return "unsupported format version, cipher or operation";
    case VD_ERR_BUSY: return "resource is busy (image locked by another user, or the last key slot)";
    case VD_ERR_FAILED: return "image handle failed earlier and refuses further use";
    case VD_ERR_READONLY: return "image is open read-only";
    case VD_ERR_RANGE: return "block number or size out of range";
    case VD_ERR_NOENT: return "no such file or directory";
    case VD_ERR_EXIST: return "file exists";
    case VD_ERR_NOTDIR: return "not a directory";
    case VD_ERR_ISDIR: return "is a directory";
    case VD_ERR_NOTEMPTY: return "directory not empty";
    case VD_ERR_NAME: return "name too long or not allowed in FAT32";
    case VD_ERR_FBIG: return "file too large for FAT32 (4 GiB - 1 at most)";
    case VD_ERR_MFILE: return "too many open files";
    case VD_ERR_PERM: return "operation not permitted";
    case VD_ERR_LOOP: return "too many levels of symbolic links";
    case VD_ERR_ANCHOR_MISMATCH: return "this anchor belongs to another image";
    case VD_ERR_ANCHOR_UNREACHABLE: return "the freshness anchor does not answer (TPM unreachable)";
    case VD_ERR_ANCHOR_MISSING: return "the freshness anchor does not exist (no such TPM NV index)";
    case VD_ERR_ANCHOR_DENIED: return "the freshness anchor refused the authorization (wrong TPM authorization value)";
    case VD_ERR_REKEY: return "a key rotation is in progress (run vhdtool rekey to finish it)";
    }
    return "unknown error";
}

const char *vd_version(void)
{
    return VD_VERSION_STRING;
}
