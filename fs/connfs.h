/*
 * The mounted file system's state: one dir per configured provider
 * account, each with its remote and its listing cache. Shared by the FUSE
 * operations (ops.c), status (status.c) and main.c.
 */
#ifndef CONNFS_CONNFS_H
#define CONNFS_CONNFS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "cache.h"
#include "remote.h"
#include "snapshot.h"

#define ROOT_INO 1

struct dir {
	struct remote *remote;
	struct cache *cache;
	uint64_t ino;
	_Atomic uint64_t gen;		/* generation of the served snapshot */
	/*
	 * The generation the kernel's readdir cache of this directory was
	 * filled from, 0 when it may hold a mix: it may be kept by a new
	 * directory handle only while that is the served generation.
	 */
	_Atomic uint64_t rdc_gen;
	/* Fleet mode: the generation in Redis of the served listing (0:
	 * none is), and whether another host walked it. */
	_Atomic uint64_t fleet_gen;
	atomic_bool from_fleet;
	uint64_t bad_gen;		/* a Redis listing refused; loader only */
	atomic_bool walk_wanted;	/* a refresh asked for a real walk */
};

/*
 * Kernel node ids. The root, the provider directories and the control
 * tree have fixed ones (bit 63 clear); a connection file's node is its
 * entry version, so a node's size and bytes never change, and a refresh
 * that changes a file hands the kernel a new node for its name. The
 * file's st_ino stays the stable one in the entry.
 */
#define FILE_NODE_BIT (1ULL << 63)

static inline uint64_t entry_node(const struct snap_entry *e)
{
	return (uint64_t)(uintptr_t)e | FILE_NODE_BIT;
}

static inline struct snap_entry *node_entry(uint64_t node)
{
	return node & FILE_NODE_BIT ?
	       (struct snap_entry *)(uintptr_t)(node & ~FILE_NODE_BIT) : NULL;
}

struct connfs {
	struct dir *dirs;
	size_t ndirs;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	struct timespec started;
	bool xattr;		/* serve user.connfs.* (-o noxattr: off) */
	bool no_open;		/* the kernel can skip OPEN/RELEASE */
};

/* Builds one dir per remote (takes ownership of the remotes). */
int connfs_init(struct connfs *fs, struct remote **remotes, size_t n);
void connfs_release(struct connfs *fs);
/*
 * Serves every directory's saved listing (persist.h), if it has one, and
 * starts refreshing it. Once, after the daemon is in the background.
 */
void connfs_seed(struct connfs *fs);

struct dir *connfs_dir_by_name(struct connfs *fs, const char *name);
struct dir *connfs_dir_by_ino(struct connfs *fs, uint64_t ino);

/*
 * The listing to serve (new reference in *s), loading when there is none
 * or it expired. With ttl = 0 a listing never expires by age: refresh
 * (opendir) always reloads, and everything else reuses the last listing.
 * 0 or the load's -errno.
 */
int dir_listing(struct dir *d, bool refresh, struct snapshot **s);
/*
 * Walks d's remote into a new snapshot (new reference in *s; the served
 * one itself when nothing changed), saved and journaled in the local
 * store. 0, or the walk's -errno with a message in err.
 */
int dir_walk(struct dir *d, struct snapshot **s, char *err, size_t errlen);

/*
 * After the session ended: frees the directory and control handles the
 * kernel never released (ops.c).
 */
void ops_release_handles(void);

/* The FUSE low-level operations (ops.c). */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops connfs_ops;

#endif
