/*
 * Freshness and health of each provider directory, from memory only (no
 * API call): as extended attributes (user.connfs.*) on directories and
 * files, and as the text and JSON behind /.connfs/status.
 */
#ifndef CONNFS_STATUS_H
#define CONNFS_STATUS_H

#include <stddef.h>

#include "connfs.h"

#define STATUS_XATTR_PREFIX "user.connfs."

/* New strings (caller frees); *len set. */
char *status_text(struct connfs *fs, size_t *len);
char *status_json(struct connfs *fs, size_t *len);

/*
 * Value of xattr `name` of a directory or file into a new string, or NULL
 * with -ENODATA/-ENOMEM in *err. e is NULL for a directory.
 */
char *status_xattr(struct dir *d, const struct snap_entry *e,
		   const char *name, int *err);
/* NUL-separated list of the xattr names (new buffer, *len set). */
char *status_xattr_list(const struct snap_entry *e, size_t *len);

/* One line saying what a forced refresh of d did. */
char *status_refresh(struct dir *d, size_t *len);

#endif
