/*
 * One provider directory's listing: an immutable, refcounted snapshot of
 * entries sorted by name (found by binary search) and indexed by inode.
 * Readers hold a reference, never a lock.
 *
 * Entries are versions: immutable, refcounted objects that a snapshot
 * shares with the one before it when the connection did not change. The
 * FUSE side hands each version to the kernel as a node of its own, so a
 * version's size and bytes never change under a reader, and a refresh
 * replaces a changed file the way rename(2) replaces one: whoever still
 * holds the old node keeps reading the old bytes, whole.
 *
 * Built page by page from a walk by a snap_builder, which renders and
 * frees each JSON object as it arrives so a listing costs about its
 * rendered size in memory.
 */
#ifndef CONNFS_SNAPSHOT_H
#define CONNFS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "live.h"
#include "provider.h"

/*
 * One version of one connection file. The struct, its JSON bytes, name
 * and id are one allocation, and name and id are found from the sizes
 * rather than kept as pointers: at 100,000 entries every 8 bytes of
 * header is 0.8 MB. References: one per snapshot that lists it, plus
 * any the FUSE side takes (the kernel's lookups of its node).
 */
struct snap_entry {
	atomic_uint_fast64_t refs;
	struct live_link live;	/* every live entry */
	void *owner;		/* the builder's owner (its directory) */
	struct timespec mtime;
	uint64_t ino;		/* stable st_ino: hash of instance and id */
#define SNAP_INO_BIT (1ULL << 63)	/* set in every file's inode */
	uint32_t size;		/* JSON bytes; no connection is 4 GiB */
	uint16_t name_len;	/* a file name is at most NAME_MAX bytes */
	char data[];		/* JSON + "\n", NUL, name, NUL, id, NUL */
};

/* The file name, unique in its snapshot. */
static inline const char *entry_name(const struct snap_entry *e)
{
	return e->data + e->size + 1;
}

/* The connection's id at the provider. */
static inline const char *entry_id(const struct snap_entry *e)
{
	return e->data + e->size + 1 + e->name_len + 1;
}

struct snapshot {
	atomic_int refs;
	struct live_link live;	/* every live snapshot */
	uint64_t gen;		/* unique per snapshot, never reused */
	struct snap_entry **v;	/* sorted by name (strcmp) */
	size_t n;
	uint32_t *by_ino;	/* open addressing: index + 1, 0 = empty */
	size_t slots;
	size_t bytes;		/* total rendered bytes */
};

struct snap_builder {
	const char *instance;	/* seeds inode numbers */
	void *owner;		/* copied into every entry */
	struct snap_entry **v;
	size_t n;
	size_t cap;
	char *scratch;		/* reused render buffer: one exact-size */
	size_t scratch_len;	/* allocation per entry, no holes */
};

/* The walk sink (walk_sink_fn): renders and keeps the page's entries. */
int snap_builder_add(void *builder, struct page *pg);
/*
 * Adds one entry exactly as it was saved (name, bytes, mtime, inode).
 * -EINVAL when it cannot be a file of a listing: an unsafe name, or an
 * inode outside the file range.
 */
int snap_builder_add_saved(struct snap_builder *b, const char *name,
			   const char *id, const void *data, size_t size,
			   const struct timespec *mtime, uint64_t ino);
/*
 * Dedupes by id, names, sorts and indexes. Entries equal to old's
 * (same name, id, inode, mtime and bytes) are old's versions, shared;
 * when every entry is, old itself is returned. old may be NULL.
 * Returns one reference, or NULL when out of memory.
 */
struct snapshot *snap_builder_finish(struct snap_builder *b,
				     struct snapshot *old);
void snap_builder_release(struct snap_builder *b);

/*
 * Frees every snapshot and entry still alive, whatever its count: only
 * once no request can run any more (after the FUSE session is gone).
 */
void snapshot_free_all(void);

void snapshot_get(struct snapshot *s);
void snapshot_put(struct snapshot *s);	/* NULL is fine */
struct snap_entry *snapshot_find(const struct snapshot *s, const char *name);
struct snap_entry *snapshot_find_ino(const struct snapshot *s, uint64_t ino);

/* qsort comparator of entry pointers: by id. */
int entry_cmp_id(const void *a, const void *b);

/* Entry references; thread-safe. entry_put_n drops n at once. */
void entry_get(struct snap_entry *e);
void entry_put_n(struct snap_entry *e, uint64_t n);

/* Renders a JSON value as a file: pretty-printed, trailing newline. */
char *render_json(const cJSON *obj, size_t *len);

#endif
