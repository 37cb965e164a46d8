/*
 * connfs's own entries under the hidden root directory `.connfs`: left out
 * of readdir of the root, so ls, find, grep -r, tar and rsync of the mount
 * see connections only, but reachable by name:
 *
 *   .connfs/status          table of every directory's freshness
 *   .connfs/status.json     the same as JSON
 *   .connfs/refresh/NAME    reading it refreshes directory NAME now
 *   .connfs/refresh/all     reading it refreshes every directory
 *   .connfs/changes         the change journal, every directory (NDJSON)
 *   .connfs/changes.d/NAME  the journal of directory NAME
 *
 * Refresh files are 0400: only the mount's owner (and root) may read them.
 * Each refresh result is one line padded to 256 bytes (the size must be
 * known before the refresh runs). Each rendering of a status file is a
 * node of its own (inode, size and bytes that never change).
 */
#ifndef CONNFS_CONTROL_H
#define CONNFS_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "connfs.h"

#define CONTROL_NAME ".connfs"

bool control_ino(uint64_t ino);
/*
 * 0 and attributes, or -ENOENT. parent is ROOT_INO or a control dir.
 * Status files are rendered right here: the attributes are those of the
 * node holding the current rendering.
 */
int control_lookup(struct connfs *fs, uint64_t parent, const char *name,
		   struct stat *st);
int control_getattr(struct connfs *fs, uint64_t ino, struct stat *st);
/* Names of a control directory's children; NULL at the end. */
const char *control_child(struct connfs *fs, uint64_t dir, size_t i,
			  struct stat *st);
/* A control file's content at open: a refresh runs here (new buffer). */
int control_open(struct connfs *fs, uint64_t ino, char **data, size_t *len);
/*
 * Without an open (the kernel's no-open mode): a read at offset 0 renders
 * refresh files anew; everything else is served from the current
 * rendering. *data is a new buffer (or NULL at the end).
 */
int control_read(struct connfs *fs, uint64_t ino, off_t off, size_t size,
		 char **data, size_t *len);
void control_release(void);

#endif
