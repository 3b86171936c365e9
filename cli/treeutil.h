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
/* The names in a host directory, sorted by bytes (strcmp: the order does
 * not depend on the locale), without "." and "..". dfd is the directory
 * open (O_DIRECTORY); path names it in messages. */
int cli_dir_list(const char *prog, const char *path, int dfd, char ***names, size_t *n);
/* Open path (relative to at) as a directory for cli_dir_list and *at()
 * calls; -1 with errno set. follow: a final link is followed. */
int cli_dir_open(int at, const char *path, int follow);
void cli_names_free(char **names, size_t n);

#endif
