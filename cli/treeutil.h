/* Internals shared by cli/treescan.c and cli/copy.c. */
#ifndef VD_CLI_TREEUTIL_H
#define VD_CLI_TREEUTIL_H

#include <stddef.h>
#include <sys/stat.h>

#include "copy.h"

/* What kind of special this is, or NULL for a file FAT32 can hold or a
 * directory. st from lstat. */
const char *cli_special_kind(const struct stat *st);
/* Warn (skip) or fail (refuse) for one special; returns an exit status. */
int cli_special_report(const char *prog, const char *path, const char *kind,
                       cli_special policy, int warn);
/* The names in a host directory, sorted, without "." and "..". */
int cli_dir_list(const char *prog, const char *path, char ***names, size_t *n);
void cli_names_free(char **names, size_t n);

#endif
