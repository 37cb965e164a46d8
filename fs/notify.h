/*
 * Tells the kernel what a refresh changed, so cached attributes, pages and
 * (negative) dentries never outlive the listing they came from. Runs in a
 * thread of its own: invalidating from inside the lookup or readdir that
 * caused the refresh would deadlock on the directory's lock.
 */
#ifndef CONNFS_NOTIFY_H
#define CONNFS_NOTIFY_H

#include <stdint.h>

#include "snapshot.h"

struct fuse_session;

int notify_start(struct fuse_session *se);
void notify_stop(void);
/* Queues the difference old → new of directory `parent` (takes refs). */
void notify_changes(uint64_t parent, struct snapshot *old,
		    struct snapshot *new);

#endif
