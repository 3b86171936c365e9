/* get and put: whole files and trees between the host and the volume. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vhdtool.h"

static int is_root(const char *p)
{
    return p[strspn(p, "/")] == 0;
}

int vt_cmd_get(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *src = o->pos[1], *dest = o->pos[2];
    char *base = NULL, *dst = NULL;
    struct stat sb;
    /* As cp: an existing directory receives the source under its name. */
    if (!is_root(src) && stat(dest, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        base = cli_path_base(src);
        dst = base ? cli_path_join(dest, base) : NULL;
    } else {
        dst = strdup(dest);
    }
    if (!dst) {
        free(base);
        cli_errorf(VT_PROG, NULL, "out of memory");
        return CLI_EXIT_FAIL;
    }
    cli_image ci;
    int rc = vt_open_fs(o, 1, &ci);
    if (rc == 0) {
        cli_progress p;
        cli_progress_start(&p, "copying", 0, 0, o->quiet);
        cli_copy c = {.prog = VT_PROG,
                      .image = o->pos[0],
                      .img = ci.img,
                      .fs = ci.fs,
                      .deref = o->deref,
                      .progress = &p,
                      .cancel = o->cancel};
        rc = cli_copy_out(&c, src, dst);
        cli_copy_done(&c);
        cli_progress_end(&p);
        rc = vt_close(o, &ci, rc);
    }
    free(base);
    free(dst);
    return rc;
}

int vt_cmd_put(const vt_cmd *cmd, vt_opts *o)
{
    (void)cmd;
    const char *src = o->pos[1], *path = o->pos[2];
    char *base = NULL, *dst = NULL;
    struct stat sb;
    if ((o->deref ? stat(src, &sb) : lstat(src, &sb)) != 0) {
        cli_errorf(VT_PROG, src, "%s", strerror(errno));
        return CLI_EXIT_FAIL;
    }
    cli_image ci;
    int rc = vt_open_fs(o, 0, &ci);
    if (rc)
        return rc;
    vd_stat st;
    if (vd_fs_stat(ci.fs, path, &st) == VD_OK && st.is_dir) {
        base = cli_path_base(src);
        dst = base ? cli_path_join(path, base) : NULL;
    } else {
        dst = strdup(path);
    }
    if (!dst) {
        cli_errorf(VT_PROG, NULL, "out of memory");
        rc = CLI_EXIT_FAIL;
    } else {
        cli_tree_stats ts;
        rc = cli_tree_scan(VT_PROG, src, o->policy, 1, o->deref ? CLI_SCAN_DEREF : 0, &ts);
        cli_progress p;
        cli_progress_start(&p, "copying", ts.bytes, ts.files + ts.links, o->quiet);
        cli_copy c = {.prog = VT_PROG,
                      .image = o->pos[0],
                      .img = ci.img,
                      .fs = ci.fs,
                      .policy = o->policy,
                      .clash = o->clash,
                      .deref = o->deref,
                      .warn_special = 0,
                      .replace = 1,
                      .progress = &p,
                      .cancel = o->cancel};
        if (rc == 0)
            rc = cli_copy_in(&c, src, dst);
        cli_copy_done(&c);
        cli_progress_end(&p);
    }
    free(base);
    free(dst);
    return vt_close(o, &ci, rc);
}
