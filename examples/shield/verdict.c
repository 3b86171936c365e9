/* vd_err -> name and exit class (verdict.h). */
#include "verdict.h"

const char *sh_err_name(vd_err e)
{
    static const char *const names[] = {"VD_OK",
                                        "VD_ERR_IO",
                                        "VD_ERR_AUTH",
                                        "VD_ERR_ROLLBACK",
                                        "VD_ERR_WRONG_KEY",
                                        "VD_ERR_CORRUPT",
                                        "VD_ERR_NOSPC",
                                        "VD_ERR_INVAL",
                                        "VD_ERR_NOMEM",
                                        "VD_ERR_UNSUPPORTED",
                                        "VD_ERR_BUSY",
                                        "VD_ERR_FAILED",
                                        "VD_ERR_READONLY",
                                        "VD_ERR_RANGE",
                                        "VD_ERR_NOENT",
                                        "VD_ERR_EXIST",
                                        "VD_ERR_NOTDIR",
                                        "VD_ERR_ISDIR",
                                        "VD_ERR_NOTEMPTY",
                                        "VD_ERR_NAME",
                                        "VD_ERR_FBIG",
                                        "VD_ERR_MFILE",
                                        "VD_ERR_PERM",
                                        "VD_ERR_LOOP"};
    int i = -(int)e;
    return i >= 0 && i < (int)(sizeof names / sizeof names[0]) ? names[i] : "VD_ERR_?";
}

int sh_exit_status(vd_err e)
{
    switch (e) {
    case VD_OK:
        return SH_EXIT_OK;
    case VD_ERR_AUTH:
        return SH_EXIT_AUTH;
    case VD_ERR_ROLLBACK:
        return SH_EXIT_ROLLBACK;
    case VD_ERR_IO:
        return SH_EXIT_IO;
    case VD_ERR_CORRUPT:
        return SH_EXIT_CORRUPT;
    case VD_ERR_FAILED:
        return SH_EXIT_FAILED;
    case VD_ERR_WRONG_KEY:
        return SH_EXIT_WRONG_KEY;
    default:
        return SH_EXIT_OTHER;
    }
}
