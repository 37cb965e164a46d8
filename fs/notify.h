/*
 * Tells the kernel what a refresh changed, so its cached names, negative
 * names and directory listings never outlive the snapshot they came from.
 * A file's node never changes content (its entry version is immutable),
 * so nothing of a file's attributes or pages needs dropping: a changed
 * or removed name's old node is marked deleted, as unlink(2) would, and
 * its readers finish reading it. Runs in a thread of its own: the kernel
 * takes the directory's lock to drop a name, and the lookup or readdir
 * that caused the refresh may hold it.
 */
#ifndef CONNFS_NOTIFY_H
#define CONNFS_NOTIFY_H

#include <stdint.h>

#include "snapshot.h"

struct fuse_session;

int notify_start(struct fuse_session *se);
void notify_stop(void);
/*
 * Queues the difference old → new of directory `parent` (takes its own
 * references). Call only once new is what every request is served.
 */
void notify_changes(uint64_t parent, struct snapshot *old,
		    struct snapshot *new);
/*
 * Waits (at most secs seconds) until the kernel was told of every change
 * queued before the call: after a refresh someone asked for, what they
 * read next is the new listing. Never call it from a request that may
 * hold a provider directory's lock (lookup, readdir, opendir).
 */
void notify_flush(double secs);

#endif
