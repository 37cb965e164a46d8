/*
 * The FUSE low-level operations. Two levels: the root (one directory per
 * provider account) and the provider directories (one read-only file per
 * connection). Lookups and opendir of an expired directory refresh it
 * through its cache; getattr, read and xattrs of a file only look at its
 * node. A file's node is one immutable entry version (connfs.h): the
 * kernel counts its lookups of it, and the version lives until the
 * kernel forgets the node, so a reader never sees a size or bytes change
 * under it, whatever refreshes land. Kernel entry and attribute caches
 * last as long as the TTL, and where the kernel allows it files are read
 * without OPEN/RELEASE upcalls (no-open mode), straight from its page
 * cache; notify.c drops the names a refresh changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "connfs.h"
#include "control.h"
#include "live.h"
#include "status.h"

static struct connfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void root_attr(struct connfs *fs, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ROOT_INO;
	st->st_mode = S_IFDIR | (0555 & ~fs->umask);
	st->st_nlink = 2 + fs->ndirs;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = st->st_ctim = st->st_atim = fs->started;
}

/*
 * Directory times are the mount time: they must not move when a listing
 * loads, or rsync would touch every directory on every run.
 */
static void dir_attr(struct connfs *fs, struct dir *d, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = d->ino;
	st->st_mode = S_IFDIR | (0555 & ~fs->umask);
	st->st_nlink = 2;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = st->st_ctim = st->st_atim = fs->started;
}

static void file_attr(struct connfs *fs, const struct snap_entry *e,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_mode = S_IFREG | (0444 & ~fs->umask);
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)e->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
	st->st_mtim = st->st_ctim = st->st_atim = e->mtime;
}

static double dir_ttl(const struct dir *d)
{
	return d ? d->remote->ttl : 0;
}

static void entry_param(struct fuse_entry_param *ep, const struct stat *st,
			double ttl)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = st->st_ino;
	ep->attr = *st;
	ep->attr_timeout = ttl;
	ep->entry_timeout = ttl;
}

static void lookup_root(fuse_req_t req, struct connfs *fs, const char *name)
{
	struct dir *d = connfs_dir_by_name(fs, name);
	struct fuse_entry_param ep;
	struct stat st;

	if (!d) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	dir_attr(fs, d, &st);
	entry_param(&ep, &st, dir_ttl(d));
	fuse_reply_entry(req, &ep);
}

/* Control entries are never cached: they change with every look. */
static void lookup_control(fuse_req_t req, struct connfs *fs,
			   fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param ep;
	struct stat st;
	int rc = control_lookup(fs, parent, name, &st);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	entry_param(&ep, &st, 0);
	fuse_reply_entry(req, &ep);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct connfs *fs = fs_of(req);
	struct dir *d = connfs_dir_by_ino(fs, parent);
	struct snap_entry *e;
	struct fuse_entry_param ep;
	struct snapshot *s;
	struct stat st;
	int rc;

	if ((parent == ROOT_INO && !strcmp(name, CONTROL_NAME)) ||
	    control_ino(parent)) {
		lookup_control(req, fs, parent, name);
		return;
	}
	if (parent == ROOT_INO) {
		lookup_root(req, fs, name);
		return;
	}
	if (!d) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if ((rc = dir_listing(d, false, &s))) {
		fuse_reply_err(req, -rc);
		return;
	}
	e = snapshot_find(s, name);
	if (!e) {
		/* A negative entry, cached like the listing. */
		memset(&ep, 0, sizeof(ep));
		ep.entry_timeout = dir_ttl(d);
		fuse_reply_entry(req, &ep);
	} else {
		file_attr(fs, e, &st);
		entry_param(&ep, &st, dir_ttl(d));
		ep.ino = entry_node(e);
		/* The kernel's lookup reference, dropped by FORGET. */
		entry_get(e);
		if (fuse_reply_entry(req, &ep))
			entry_put_n(e, 1);
	}
	snapshot_put(s);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	entry_put_n(node_entry(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		entry_put_n(node_entry(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	struct dir *d = connfs_dir_by_ino(fs, ino);
	const struct snap_entry *e = node_entry(ino);
	struct stat st;
	double ttl;

	(void)fi;
	if (control_ino(ino)) {
		if (control_getattr(fs, ino, &st)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		fuse_reply_attr(req, &st, 0);
		return;
	} else if (ino == ROOT_INO) {
		root_attr(fs, &st);
		ttl = fs->ndirs ? dir_ttl(&fs->dirs[0]) : 0;
	} else if (d) {
		dir_attr(fs, d, &st);
		ttl = dir_ttl(d);
	} else if (e) {
		file_attr(fs, e, &st);
		ttl = dir_ttl(e->owner);
	} else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, ttl);
}

/*
 * What fi->fh points to, for every handle that has one (a provider
 * directory or a control file; files need none: their node is their
 * version).
 */
struct handle {
	enum handle_kind { HANDLE_DIR, HANDLE_CONTROL } kind;
	atomic_uint refs;	/* the handle's, and each request in flight */
	/* HANDLE_DIR: the listing read through it, and whether the kernel
	 * fills the directory's readdir cache from it. */
	struct dir *dir;
	struct snapshot *snap;
	bool cache;
	/* HANDLE_CONTROL: the content, rendered once per open. */
	char *data;
	size_t size;
	struct live_link live;	/* in handles */
};

/*
 * Every handle not yet released. At unmount the kernel drops the releases
 * it had not sent yet (a closedir just before SIGTERM), so what is left
 * here then is freed by ops_release_handles().
 */
static struct live_list handles = LIVE_LIST_INIT;

static struct handle *handle_of(const struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static struct handle *handle_new(enum handle_kind kind)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (h) {
		h->kind = kind;
		atomic_init(&h->refs, 1);
		live_add(&handles, &h->live);
	}
	return h;
}

static void handle_free(struct handle *h)
{
	live_remove(&handles, &h->live);
	snapshot_put(h->snap);
	free(h->data);
	free(h);
}

static void handle_put(struct handle *h)
{
	if (h && atomic_fetch_sub(&h->refs, 1) == 1)
		handle_free(h);
}

void ops_release_handles(void)
{
	while (handles.head)
		handle_free(live_of(handles.head, struct handle, live));
}

/* Hands h to the kernel; if the request is gone, h is dropped. */
static void reply_open(fuse_req_t req, struct fuse_file_info *fi,
		       struct handle *h)
{
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi))
		handle_put(h);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	struct dir *d = connfs_dir_by_ino(fs, ino);
	struct handle *h;
	struct snapshot *s;
	int rc;

	fi->fh = 0;
	if (ino != ROOT_INO && !d && !control_ino(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!d) {
		fuse_reply_open(req, fi);
		return;
	}
	if ((rc = dir_listing(d, true, &s))) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (!(h = handle_new(HANDLE_DIR))) {
		snapshot_put(s);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->dir = d;
	h->snap = s;
	h->cache = true;
	fi->cache_readdir = 1;
	/* The kernel may keep its cached listing only when it was filled
	 * from the generation this handle serves; otherwise it drops it
	 * now, and this handle fills it anew. */
	fi->keep_cache = atomic_exchange(&d->rdc_gen, s->gen) == s->gen;
	reply_open(req, fi, h);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	handle_put(handle_of(fi));
	fuse_reply_err(req, 0);
}

/*
 * Adds one directory entry; returns false when the buffer is full. ep
 * NULL: a name only, with no node or attributes for the kernel to cache.
 */
static bool add_entry(fuse_req_t req, char *buf, size_t size, size_t *used,
		      bool plus, const char *name, const struct stat *st,
		      const struct fuse_entry_param *ep, off_t next)
{
	struct fuse_entry_param none;
	size_t n;

	if (plus && !ep) {
		memset(&none, 0, sizeof(none));
		none.attr = *st;	/* d_ino and d_type only */
		ep = &none;
	}
	if (plus)
		n = fuse_add_direntry_plus(req, buf + *used, size - *used, name,
					   ep, next);
	else
		n = fuse_add_direntry(req, buf + *used, size - *used, name, st,
				      next);
	if (n > size - *used)
		return false;
	*used += n;
	return true;
}

/* "." and "..": never a node reference (the kernel skips them). */
static bool add_dots(fuse_req_t req, fuse_ino_t ino, size_t i, char *buf,
		     size_t size, size_t *used, bool plus, off_t next)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_ino = i == 0 ? ino : ROOT_INO;
	st.st_mode = S_IFDIR;
	return add_entry(req, buf, size, used, plus, i ? ".." : ".", &st, NULL,
			 next);
}

/* The root and the control directories: fixed nodes, offsets index + 1. */
static void readdir_fixed(fuse_req_t req, struct connfs *fs, fuse_ino_t ino,
			  size_t size, off_t off, bool plus, char *buf)
{
	struct fuse_entry_param ep;
	size_t used = 0;
	struct stat st;

	for (size_t i = (size_t)off;; i++) {
		const char *name;
		double ttl = 0;

		if (i < 2) {
			if (!add_dots(req, ino, i, buf, size, &used, plus,
				      (off_t)i + 1))
				break;
			continue;
		}
		if (control_ino(ino)) {
			name = control_child(fs, ino, i - 2, &st);
		} else if (i - 2 < fs->ndirs) {
			dir_attr(fs, &fs->dirs[i - 2], &st);
			name = fs->dirs[i - 2].remote->name;
			ttl = dir_ttl(&fs->dirs[i - 2]);
		} else {
			name = NULL;
		}
		if (!name)
			break;
		entry_param(&ep, &st, ttl);
		/* Control entries are never cached: no node for them. */
		if (!add_entry(req, buf, size, &used, plus, name, &st,
			       ttl > 0 ? &ep : NULL, (off_t)i + 1))
			break;
	}
	fuse_reply_buf(req, buf, used);
}

/*
 * Offsets of a provider directory carry the generation of the listing
 * they index (bits 32-62) above index + 1: the kernel appends a reply to
 * its readdir cache only at the offset the cache ended at, so entries of
 * another generation can never extend a cached listing.
 */
#define OFF_INDEX(off) ((size_t)((uint64_t)(off) & 0xffffffffu))

static off_t listing_off(const struct snapshot *s, size_t i)
{
	return (off_t)(((s->gen & 0x7fffffffu) << 32) | (i + 1));
}

/*
 * A listing read through h. A handle opened before a refresh starts
 * over (offset 0) on the served listing; in the middle of a read it
 * keeps its own, so the reader sees one listing, but only as names: the
 * kernel must not cache an older generation's nodes and sizes. Each node
 * handed over is a lookup reference; if the reply fails, none counts.
 */
static void readdir_listing(fuse_req_t req, struct connfs *fs,
			    struct handle *h, fuse_ino_t ino, size_t size,
			    off_t off, bool plus, char *buf)
{
	struct dir *d = h->dir;
	struct fuse_entry_param ep;
	struct snapshot *s, *cur;
	size_t used = 0, i, first = 0, taken = 0;
	bool served;
	struct stat st;

	if (off == 0 && h->snap->gen != atomic_load(&d->gen) &&
	    (cur = cache_peek(d->cache))) {
		snapshot_put(h->snap);
		h->snap = cur;
	}
	s = h->snap;
	served = s->gen == atomic_load(&d->gen);
	if (!served && h->cache)
		atomic_store(&d->rdc_gen, 0);
	for (i = OFF_INDEX(off); i < 2 + s->n; i++) {
		struct snap_entry *e;

		if (i < 2) {
			if (!add_dots(req, ino, i, buf, size, &used, plus,
				      listing_off(s, i)))
				break;
			continue;
		}
		e = s->v[i - 2];
		file_attr(fs, e, &st);
		entry_param(&ep, &st, dir_ttl(d));
		ep.ino = entry_node(e);
		if (!add_entry(req, buf, size, &used, plus, entry_name(e), &st,
			       served ? &ep : NULL, listing_off(s, i)))
			break;
		if (plus && served) {
			if (!taken++)
				first = i - 2;
			entry_get(e);
		}
	}
	if (fuse_reply_buf(req, buf, used))
		for (i = first; i < first + taken; i++)
			entry_put_n(s->v[i], 1);
}

/*
 * Requests of one handle can run at once (libfuse does not serialise
 * them); the handle's listing pointer is only swapped at offset 0, which
 * the kernel sends only for a fresh or rewound read of that handle.
 */
static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi, bool plus)
{
	struct connfs *fs = fs_of(req);
	struct handle *h = handle_of(fi);
	char *buf = malloc(size);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (h)
		readdir_listing(req, fs, h, ino, size, off, plus, buf);
	else
		readdir_fixed(req, fs, ino, size, off, plus, buf);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

/* Content rendered once per open; direct I/O since the size varies. */
static void open_control(fuse_req_t req, struct connfs *fs, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct handle *h = handle_new(HANDLE_CONTROL);
	int rc = h ? control_open(fs, ino, &h->data, &h->size) : -ENOMEM;

	if (rc) {
		handle_put(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->direct_io = 1;
	reply_open(req, fi, h);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (connfs_dir_by_ino(fs, ino) || ino == ROOT_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	/*
	 * No-open mode: the kernel stops sending OPEN and RELEASE (two
	 * upcalls per file for every grep, tar or cat) and keeps the page
	 * cache, which stays right: a node's bytes never change.
	 */
	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (control_ino(ino)) {
		open_control(req, fs, ino, fi);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	/* Nothing to flush in a read-only file: spare the FLUSH upcall. */
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

/* A control file read without an open: rendered at read time. */
static void read_control(fuse_req_t req, struct connfs *fs, fuse_ino_t ino,
			 size_t size, off_t off)
{
	char *data;
	size_t len;
	int rc = control_read(fs, ino, off, size, &data, &len);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, data, len);
	free(data);
}

static void reply_slice(fuse_req_t req, const char *data, size_t total,
			size_t size, off_t off)
{
	if (off < 0 || (size_t)off >= total)
		size = 0;
	else if (size > total - (size_t)off)
		size = total - (size_t)off;
	fuse_reply_buf(req, size ? data + off : NULL, size);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct snap_entry *e = node_entry(ino);
	struct handle *h = handle_of(fi);

	/*
	 * The kernel has the reply before fuse_reply_buf() returns, and its
	 * FORGET (or RELEASE) may then run on another thread: a reference
	 * keeps the bytes until the call is over.
	 */
	if (e) {
		entry_get(e);
		reply_slice(req, e->data, e->size, size, off);
		entry_put_n(e, 1);
	} else if (h && h->kind == HANDLE_CONTROL) {
		atomic_fetch_add(&h->refs, 1);
		reply_slice(req, h->data, h->size, size, off);
		handle_put(h);
	} else if (control_ino(ino)) {
		read_control(req, fs_of(req), ino, size, off);
	} else {
		fuse_reply_err(req, EISDIR);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	handle_put(handle_of(fi));
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv = {
		.f_bsize = 4096,
		.f_frsize = 4096,
		.f_namemax = 255,
		.f_flag = ST_RDONLY,
	};

	(void)ino;
	fuse_reply_statfs(req, &sv);
}

/* Anything that would change the tree: the file system is read-only. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void reply_xattr_value(fuse_req_t req, const char *v, size_t len,
			      size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, v, len);
}

/* The directory behind ino, or the file's (then *e is the file). */
static struct dir *xattr_target(struct connfs *fs, fuse_ino_t ino,
				const struct snap_entry **e)
{
	*e = node_entry(ino);
	return *e ? (*e)->owner : connfs_dir_by_ino(fs, ino);
}

/*
 * Namespaces with no handler here. The kernel answers EOPNOTSUPP for
 * them on a file system without one, and GNU ls then stops asking for
 * security.selinux on every entry of the device (ENODATA makes it ask
 * again for each file). POSIX ACLs are the exception: the kernel takes
 * EOPNOTSUPP for them as a failed permission check, ENODATA as "none".
 */
static bool foreign_xattr(const char *name)
{
	static const char *const spaces[] = { "security.", "system.",
					      "trusted." };

	if (!strncmp(name, "system.posix_acl_", 17))
		return false;
	for (size_t i = 0; i < sizeof(spaces) / sizeof(spaces[0]); i++)
		if (!strncmp(name, spaces[i], strlen(spaces[i])))
			return true;
	return false;
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	const struct snap_entry *e;
	struct dir *d;

	/* ENOSYS once and the kernel never asks again (-o noxattr). */
	if (!fs_of(req)->xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (foreign_xattr(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (strncmp(name, STATUS_XATTR_PREFIX,
		    sizeof(STATUS_XATTR_PREFIX) - 1) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	d = xattr_target(fs_of(req), ino, &e);
	char *v = NULL;
	int err = -ENODATA;

	if (d)
		v = status_xattr(d, e, name, &err);
	if (v)
		reply_xattr_value(req, v, strlen(v), size);
	else
		fuse_reply_err(req, -err);
	free(v);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	const struct snap_entry *e;
	struct dir *d;
	size_t len = 0;
	char *v;

	if (!fs_of(req)->xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	d = xattr_target(fs_of(req), ino, &e);
	v = d ? status_xattr_list(e, &len) : NULL;
	if (d && !v)
		fuse_reply_err(req, ENOMEM);
	else
		reply_xattr_value(req, v ? v : "", len, size);
	free(v);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct connfs *fs = userdata;

	fs->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	/* A changed mtime or size drops cached pages (control files). */
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	/* The kernel then caches "no ACL" instead of asking per ls -l. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Always plus: every ls -l wants the attributes anyway. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
}

const struct fuse_lowlevel_ops connfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
};
