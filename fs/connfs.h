/*
 * The mounted file system's state: one dir per configured provider
 * account, each with its remote and its listing cache. Shared by the FUSE
 * operations (ops.c), status (status.c) and main.c.
 */
#ifndef CONNFS_CONNFS_H
#define CONNFS_CONNFS_H

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
	_Atomic uint64_t listed_gen;	/* snapshot the kernel last listed */
};

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

struct dir *connfs_dir_by_name(struct connfs *fs, const char *name);
struct dir *connfs_dir_by_ino(struct connfs *fs, uint64_t ino);

/* The FUSE low-level operations (ops.c). */
struct fuse_lowlevel_ops;
extern const struct fuse_lowlevel_ops connfs_ops;

#endif
