/*
 * One provider directory's listing: an immutable, refcounted snapshot of
 * entries (name, id, rendered JSON bytes, mtime, inode), sorted by name and
 * indexed by name and inode. Readers hold a reference, never a lock; an
 * open file keeps reading the snapshot it opened. Built page by page from
 * a walk by a snap_builder, which renders and frees each JSON object as it
 * arrives so a listing costs about its rendered size in memory.
 */
#ifndef CONNFS_SNAPSHOT_H
#define CONNFS_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "provider.h"

struct snapshot;

/*
 * data, name and id live in one allocation (data): JSON bytes, NUL, name,
 * NUL, id, NUL. At 100,000 entries a malloc header each adds megabytes.
 */
struct snap_entry {
	char *name;		/* file name, unique in the snapshot */
	char *id;		/* the connection's id at the provider */
	char *data;		/* pretty-printed JSON + "\n"; owns the block */
	size_t size;
	struct timespec mtime;
	uint64_t ino;
	atomic_bool opened;	/* opened once: the page cache may be kept */
	struct snapshot *snap;	/* owner, for references from open files */
};

struct snapshot {
	atomic_int refs;
	struct snapshot *prev, *next;	/* every live snapshot */
	uint64_t gen;		/* unique per snapshot, never reused */
	double ttl;		/* kernel cache timeout for its entries */
	struct snap_entry *v;
	size_t n;
	uint32_t *by_name;	/* open addressing: index + 1, 0 = empty */
	uint32_t *by_ino;
	size_t slots;
	size_t bytes;		/* total rendered bytes */
};

struct snap_builder {
	const char *instance;	/* seeds inode numbers */
	struct snap_entry *v;
	size_t n;
	size_t cap;
	char *scratch;		/* reused render buffer: one exact-size */
	size_t scratch_len;	/* allocation per entry, no holes */
};

/* The walk sink (walk_sink_fn): renders and keeps the page's entries. */
int snap_builder_add(void *builder, struct page *pg);
/* Dedupes by id, names, sorts and indexes. Returns one reference. */
struct snapshot *snap_builder_finish(struct snap_builder *b);
void snap_builder_release(struct snap_builder *b);

/*
 * Frees every snapshot still alive, whatever its count: only once no
 * request can run any more (after the FUSE session is gone).
 */
void snapshot_free_all(void);

void snapshot_get(struct snapshot *s);
void snapshot_put(struct snapshot *s);
const struct snap_entry *snapshot_find(const struct snapshot *s,
				       const char *name);
const struct snap_entry *snapshot_find_ino(const struct snapshot *s,
					   uint64_t ino);

/* Renders a JSON value as a file: pretty-printed, trailing newline. */
char *render_json(const cJSON *obj, size_t *len);

#endif
