/*
 * The FUSE low-level operations. Two levels: the root (one directory per
 * provider account) and the provider directories (one read-only file per
 * connection). Lookups and readdir of an expired directory refresh it
 * through its cache; getattr, open and read only ever look at snapshots in
 * memory. Kernel entry and attribute caches last as long as the TTL, and
 * where the kernel allows it files are read without OPEN/RELEASE upcalls
 * (no-open mode), straight from its page cache; notify.c invalidates what
 * a refresh changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "connfs.h"
#include "control.h"
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

/* Finds a file by inode in the current snapshots (new reference). */
static const struct snap_entry *find_file(struct connfs *fs, uint64_t ino,
					  struct dir **dirp)
{
	for (size_t i = 0; i < fs->ndirs; i++) {
		struct snapshot *s = cache_peek(fs->dirs[i].cache);
		const struct snap_entry *e = s ? snapshot_find_ino(s, ino) : NULL;

		if (e) {
			*dirp = &fs->dirs[i];
			return e;
		}
		snapshot_put(s);
	}
	return NULL;
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
	const struct snap_entry *e;
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
	if ((rc = cache_get(d->cache, (void **)&s))) {
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
		fuse_reply_entry(req, &ep);
	}
	snapshot_put(s);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	struct dir *d = connfs_dir_by_ino(fs, ino);
	const struct snap_entry *e;
	struct stat st;
	double ttl;

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
	} else if (fi && fi->fh) {
		e = (const struct snap_entry *)(uintptr_t)fi->fh;
		file_attr(fs, e, &st);
		ttl = e->snap->ttl;
	} else if ((e = find_file(fs, ino, &d))) {
		file_attr(fs, e, &st);
		ttl = e->snap->ttl;
		snapshot_put(e->snap);
	} else {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_attr(req, &st, ttl);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	struct dir *d = connfs_dir_by_ino(fs, ino);
	struct snapshot *s;
	int rc;

	fi->fh = 0;
	if (ino != ROOT_INO && !d && !control_ino(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (d) {
		if ((rc = cache_get(d->cache, (void **)&s))) {
			fuse_reply_err(req, -rc);
			return;
		}
		fi->fh = (uintptr_t)s;
		/* The kernel may keep its cached listing while the snapshot it
		 * was built from is still the current one. */
		fi->cache_readdir = 1;
		fi->keep_cache = atomic_exchange(&d->listed_gen, s->gen) ==
				 s->gen;
	}
	fuse_reply_open(req, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	snapshot_put((struct snapshot *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/*
 * Adds one directory entry; returns false when the buffer is full. Offsets
 * are index + 1 and never 0, so readdirplus hands the kernel attributes.
 */
static bool add_entry(fuse_req_t req, char *buf, size_t size, size_t *used,
		      bool plus, const char *name, const struct stat *st,
		      double ttl, off_t next)
{
	struct fuse_entry_param ep;
	size_t n;

	if (plus) {
		entry_param(&ep, st, ttl);
		/* No lookup reference for "." and "..": the kernel skips them. */
		if (ttl == 0 && (strcmp(name, ".") == 0 ||
				 strcmp(name, "..") == 0))
			ep.ino = 0;
		n = fuse_add_direntry_plus(req, buf + *used, size - *used, name,
					   &ep, next);
	} else {
		n = fuse_add_direntry(req, buf + *used, size - *used, name, st,
				      next);
	}
	if (n > size - *used)
		return false;
	*used += n;
	return true;
}

/* Fills entry i of the directory listing (0 ".", 1 "..", then content). */
static bool fill(fuse_req_t req, struct connfs *fs, fuse_ino_t ino,
		 const struct snapshot *s, size_t i, char *buf, size_t size,
		 size_t *used, bool plus)
{
	struct dir *d = connfs_dir_by_ino(fs, ino);
	struct stat st;

	if (i < 2) {
		memset(&st, 0, sizeof(st));
		st.st_ino = i == 0 ? ino : ROOT_INO;
		st.st_mode = S_IFDIR;
		return add_entry(req, buf, size, used, plus, i ? ".." : ".",
				 &st, 0, (off_t)i + 1);
	}
	i -= 2;
	if (control_ino(ino)) {
		const char *name = control_child(fs, ino, i, &st);

		return !name || add_entry(req, buf, size, used, plus, name, &st,
					  0, (off_t)i + 3);
	}
	if (!s) {
		dir_attr(fs, &fs->dirs[i], &st);
		return add_entry(req, buf, size, used, plus,
				 fs->dirs[i].remote->name, &st,
				 dir_ttl(&fs->dirs[i]), (off_t)i + 3);
	}
	file_attr(fs, &s->v[i], &st);
	return add_entry(req, buf, size, used, plus, s->v[i].name, &st,
			 dir_ttl(d), (off_t)i + 3);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi, bool plus)
{
	struct connfs *fs = fs_of(req);
	const struct snapshot *s = (struct snapshot *)(uintptr_t)fi->fh;
	size_t count = 2 + (s ? s->n : fs->ndirs), used = 0;
	struct stat st;

	if (control_ino(ino))
		for (count = 2; control_child(fs, ino, count - 2, &st); count++)
			;
	char *buf = malloc(size);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < count; i++)
		if (!fill(req, fs, ino, s, i, buf, size, &used, plus))
			break;
	fuse_reply_buf(req, buf, used);
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
struct control_file {
	char *data;
	size_t size;
	atomic_uint refs;	/* the open file's, and each read in flight */
};

static void control_file_put(struct control_file *cf)
{
	if (atomic_fetch_sub(&cf->refs, 1) == 1) {
		free(cf->data);
		free(cf);
	}
}

static void open_control(fuse_req_t req, struct connfs *fs, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct control_file *cf = calloc(1, sizeof(*cf));
	int rc = cf ? control_open(fs, ino, &cf->data, &cf->size) : -ENOMEM;

	if (rc) {
		free(cf);
		fuse_reply_err(req, -rc);
		return;
	}
	atomic_init(&cf->refs, 1);
	fi->fh = (uintptr_t)cf;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		control_file_put(cf);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	struct snap_entry *e;
	struct dir *d;

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
	 * cache, which notify.c invalidates when a refresh changes a file.
	 */
	if (fs->no_open) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (control_ino(ino)) {
		open_control(req, fs, ino, fi);
		return;
	}
	e = (struct snap_entry *)find_file(fs, ino, &d);
	if (!e) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* The reference from find_file is the open file's. */
	fi->fh = (uintptr_t)e;
	/* Content never changes within a snapshot: after the first open of
	 * this entry the kernel's cached pages are still right. */
	fi->keep_cache = atomic_exchange(&e->opened, true);
	/* Nothing to flush in a read-only file: spare the FLUSH upcall. */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		snapshot_put(e->snap);
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

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct connfs *fs = fs_of(req);
	const struct snap_entry *e = (const void *)(uintptr_t)fi->fh;
	struct control_file *cf = (void *)(uintptr_t)fi->fh;
	bool ctl = control_ino(ino);
	const char *data;
	size_t total;
	struct dir *d;

	if (ctl && !cf) {
		read_control(req, fs, ino, size, off);
		return;
	}
	/*
	 * The reader may close, and a RELEASE free the data on another
	 * thread, as soon as the kernel has the reply: hold a reference
	 * until fuse_reply_buf() has returned. Without an open (no-open
	 * mode) the entry is found by inode in the current snapshot.
	 */
	if (ctl)
		atomic_fetch_add(&cf->refs, 1);
	else if (e)
		snapshot_get(e->snap);
	else if (!(e = find_file(fs, ino, &d))) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	data = ctl ? cf->data : e->data;
	total = ctl ? cf->size : e->size;
	if (off < 0 || (size_t)off >= total)
		size = 0;
	else if (size > total - (size_t)off)
		size = total - (size_t)off;
	fuse_reply_buf(req, size ? data + off : NULL, size);
	if (ctl)
		control_file_put(cf);
	else
		snapshot_put(e->snap);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	const struct snap_entry *e = (const void *)(uintptr_t)fi->fh;
	struct control_file *cf = (void *)(uintptr_t)fi->fh;

	if (control_ino(ino))
		control_file_put(cf);
	else if (e)
		snapshot_put(e->snap);
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

/* Finds the directory or file behind ino (e: new snapshot reference). */
static struct dir *xattr_target(struct connfs *fs, fuse_ino_t ino,
				const struct snap_entry **e)
{
	struct dir *d = connfs_dir_by_ino(fs, ino);

	*e = NULL;
	if (d || ino == ROOT_INO || control_ino(ino))
		return d;
	*e = find_file(fs, ino, &d);
	return *e ? d : NULL;
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
	/* ls -l asks every entry for security.selinux: answer at once. */
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
	if (e)
		snapshot_put(e->snap);
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
	if (e)
		snapshot_put(e->snap);
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
