/* The hidden .connfs tree. See control.h. */
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "status.h"

enum {
	CTL_DIR = 2,
	CTL_STATUS = 3,
	CTL_STATUS_JSON = 4,
	CTL_REFRESH_DIR = 5,
	CTL_REFRESH_ALL = 6,
	CTL_REFRESH_ONE = 1024,	/* + directory index */
	CTL_END = 1024 + 65536,
};

bool control_ino(uint64_t ino)
{
	return ino >= CTL_DIR && ino < CTL_END;
}

static void attr(struct connfs *fs, uint64_t ino, struct stat *st)
{
	bool dir = ino == CTL_DIR || ino == CTL_REFRESH_DIR;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = st->st_ctim = st->st_atim = fs->started;
	if (dir)
		st->st_mode = S_IFDIR | 0555;
	else if (ino == CTL_STATUS || ino == CTL_STATUS_JSON)
		st->st_mode = S_IFREG | 0444;
	else
		st->st_mode = S_IFREG | 0400;
}

int control_getattr(struct connfs *fs, uint64_t ino, struct stat *st)
{
	if (!control_ino(ino) || (ino > CTL_REFRESH_ALL && ino < CTL_REFRESH_ONE) ||
	    (ino >= CTL_REFRESH_ONE && ino - CTL_REFRESH_ONE >= fs->ndirs))
		return -ENOENT;
	attr(fs, ino, st);
	return 0;
}

const char *control_child(struct connfs *fs, uint64_t dir, size_t i,
			  struct stat *st)
{
	static const char *const top[] = { "status", "status.json", "refresh" };
	static const uint64_t top_ino[] = { CTL_STATUS, CTL_STATUS_JSON,
					    CTL_REFRESH_DIR };

	if (dir == CTL_DIR) {
		if (i >= 3)
			return NULL;
		attr(fs, top_ino[i], st);
		return top[i];
	}
	if (dir != CTL_REFRESH_DIR || i > fs->ndirs)
		return NULL;
	if (i == fs->ndirs) {
		attr(fs, CTL_REFRESH_ALL, st);
		return "all";
	}
	attr(fs, CTL_REFRESH_ONE + i, st);
	return fs->dirs[i].remote->name;
}

int control_lookup(struct connfs *fs, uint64_t parent, const char *name,
		   struct stat *st)
{
	const char *n;

	if (parent == ROOT_INO) {
		if (strcmp(name, CONTROL_NAME))
			return -ENOENT;
		attr(fs, CTL_DIR, st);
		return 0;
	}
	for (size_t i = 0; (n = control_child(fs, parent, i, st)); i++)
		if (!strcmp(n, name))
			return 0;
	return -ENOENT;
}

static char *refresh_all(struct connfs *fs, size_t *len)
{
	struct buf b = { 0 };

	for (size_t i = 0; i < fs->ndirs; i++) {
		size_t n;
		char *line = status_refresh(&fs->dirs[i], &n);

		if (!line || buf_add(&b, line, n)) {
			free(line);
			buf_release(&b);
			return NULL;
		}
		free(line);
	}
	*len = b.len;
	return buf_steal(&b);
}

int control_open(struct connfs *fs, uint64_t ino, char **data, size_t *len)
{
	if (ino == CTL_STATUS)
		*data = status_text(fs, len);
	else if (ino == CTL_STATUS_JSON)
		*data = status_json(fs, len);
	else if (ino == CTL_REFRESH_ALL)
		*data = refresh_all(fs, len);
	else if (ino >= CTL_REFRESH_ONE && ino - CTL_REFRESH_ONE < fs->ndirs)
		*data = status_refresh(&fs->dirs[ino - CTL_REFRESH_ONE], len);
	else
		return -EISDIR;
	return *data ? 0 : -ENOMEM;
}
