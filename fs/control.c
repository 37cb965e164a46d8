/*
 * The hidden .connfs tree. See control.h.
 *
 * The kernel may run without OPEN (no-open mode, which saves two upcalls
 * per connection file), so control files cannot rely on an open handle or
 * on direct I/O: their size must be right when the kernel asks for it.
 * Status files are therefore rendered at lookup/getattr; a rendering that
 * differs from the last one replaces it with a new mtime (the kernel then
 * drops its cached pages), and reads are served from it: size, mtime and
 * bytes always belong together. Refresh files have a fixed size (one
 * padded record per directory), refresh when read at offset 0, and report
 * "now" as mtime so every read reaches the daemon.
 */
#include "control.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

#define RECORD 256		/* bytes per refresh result line */
#define RENDERINGS 64

/* The current rendering of each control file, LRU replaced. */
static struct rendering {
	uint64_t ino;
	unsigned long used;
	char *data;
	size_t len;
	struct timespec mtime;
} renderings[RENDERINGS];
static unsigned long render_clock;
static pthread_mutex_t render_lock = PTHREAD_MUTEX_INITIALIZER;

bool control_ino(uint64_t ino)
{
	return ino >= CTL_DIR && ino < CTL_END;
}

static bool is_status(uint64_t ino)
{
	return ino == CTL_STATUS || ino == CTL_STATUS_JSON;
}

static bool is_refresh(struct connfs *fs, uint64_t ino)
{
	return ino == CTL_REFRESH_ALL ||
	       (ino >= CTL_REFRESH_ONE && ino - CTL_REFRESH_ONE < fs->ndirs);
}

static size_t refresh_size(struct connfs *fs, uint64_t ino)
{
	return ino == CTL_REFRESH_ALL ? fs->ndirs * RECORD : RECORD;
}

static void attr(struct connfs *fs, uint64_t ino, size_t size,
		 const struct timespec *mtime, struct stat *st)
{
	bool dir = ino == CTL_DIR || ino == CTL_REFRESH_DIR;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_mtim = st->st_ctim = st->st_atim = fs->started;
	if (dir) {
		st->st_mode = S_IFDIR | 0555;
		return;
	}
	st->st_mode = S_IFREG | (is_status(ino) ? 0444 : 0400);
	st->st_size = (off_t)size;
	if (mtime)
		st->st_mtim = *mtime;
	else
		clock_gettime(CLOCK_REALTIME, &st->st_mtim);
}

/* The slot of ino, taking the least recently used one if new. */
static struct rendering *slot(uint64_t ino)
{
	struct rendering *lru = &renderings[0];

	for (size_t i = 0; i < RENDERINGS; i++) {
		struct rendering *r = &renderings[i];

		if (r->ino == ino) {
			r->used = ++render_clock;
			return r;
		}
		if (r->used < lru->used)
			lru = r;
	}
	free(lru->data);
	*lru = (struct rendering){ .ino = ino, .used = ++render_clock };
	return lru;
}

/*
 * Keeps data (taken over) as the rendering of ino unless it equals the
 * current one; returns the size and mtime of what is now current.
 */
static void keep(uint64_t ino, char *data, size_t len, size_t *size,
		 struct timespec *mtime)
{
	struct rendering *r;

	pthread_mutex_lock(&render_lock);
	r = slot(ino);
	if (r->data && r->len == len && !memcmp(r->data, data, len)) {
		free(data);
	} else {
		free(r->data);
		r->data = data;
		r->len = len;
		clock_gettime(CLOCK_REALTIME, &r->mtime);
	}
	*size = r->len;
	*mtime = r->mtime;
	pthread_mutex_unlock(&render_lock);
}

static char *render_status(struct connfs *fs, uint64_t ino, size_t *len)
{
	return ino == CTL_STATUS ? status_text(fs, len) : status_json(fs, len);
}

/* Status files get their content now, so the size reported is exact. */
static int status_attr(struct connfs *fs, uint64_t ino, struct stat *st)
{
	struct timespec mtime;
	size_t len, size;
	char *data = render_status(fs, ino, &len);

	if (!data)
		return -ENOMEM;
	keep(ino, data, len, &size, &mtime);
	attr(fs, ino, size, &mtime, st);
	return 0;
}

int control_getattr(struct connfs *fs, uint64_t ino, struct stat *st)
{
	if (is_status(ino))
		return status_attr(fs, ino, st);
	if (is_refresh(fs, ino)) {
		attr(fs, ino, refresh_size(fs, ino), NULL, st);
		return 0;
	}
	if (ino != CTL_DIR && ino != CTL_REFRESH_DIR)
		return -ENOENT;
	attr(fs, ino, 0, &fs->started, st);
	return 0;
}

/* Children without rendering anything (readdir must stay cheap). */
const char *control_child(struct connfs *fs, uint64_t dir, size_t i,
			  struct stat *st)
{
	static const char *const top[] = { "status", "status.json", "refresh" };
	static const uint64_t top_ino[] = { CTL_STATUS, CTL_STATUS_JSON,
					    CTL_REFRESH_DIR };
	uint64_t ino;

	if (dir == CTL_DIR) {
		if (i >= 3)
			return NULL;
		attr(fs, top_ino[i], 0, &fs->started, st);
		return top[i];
	}
	if (dir != CTL_REFRESH_DIR || i > fs->ndirs)
		return NULL;
	ino = i == fs->ndirs ? CTL_REFRESH_ALL : CTL_REFRESH_ONE + i;
	attr(fs, ino, refresh_size(fs, ino), NULL, st);
	return i == fs->ndirs ? "all" : fs->dirs[i].remote->name;
}

int control_lookup(struct connfs *fs, uint64_t parent, const char *name,
		   struct stat *st)
{
	const char *n;

	if (parent == ROOT_INO) {
		if (strcmp(name, CONTROL_NAME))
			return -ENOENT;
		attr(fs, CTL_DIR, 0, &fs->started, st);
		return 0;
	}
	for (size_t i = 0; (n = control_child(fs, parent, i, st)); i++)
		if (!strcmp(n, name))
			return control_getattr(fs, st->st_ino, st);
	return -ENOENT;
}

/* One refresh result as a record: padded with spaces to RECORD bytes. */
static int add_record(struct buf *b, struct dir *d)
{
	size_t n;
	char *line = status_refresh(d, &n);
	int rc;

	if (!line)
		return -ENOMEM;
	line[strcspn(line, "\n")] = '\0';
	rc = buf_printf(b, "%-*.*s\n", RECORD - 1, RECORD - 1, line);
	free(line);
	return rc;
}

static char *refresh(struct connfs *fs, uint64_t ino, size_t *len)
{
	struct buf b = { 0 };
	int rc = 0;

	if (ino == CTL_REFRESH_ALL)
		for (size_t i = 0; !rc && i < fs->ndirs; i++)
			rc = add_record(&b, &fs->dirs[i]);
	else
		rc = add_record(&b, &fs->dirs[ino - CTL_REFRESH_ONE]);
	if (rc) {
		buf_release(&b);
		return NULL;
	}
	*len = b.len;
	return buf_steal(&b);
}

int control_open(struct connfs *fs, uint64_t ino, char **data, size_t *len)
{
	if (is_status(ino))
		*data = render_status(fs, ino, len);
	else if (is_refresh(fs, ino))
		*data = refresh(fs, ino, len);
	else
		return -EISDIR;
	return *data ? 0 : -ENOMEM;
}

int control_read(struct connfs *fs, uint64_t ino, off_t off, size_t size,
		 char **data, size_t *len)
{
	struct timespec mtime;
	struct rendering *r;
	size_t flen, cur;
	char *fresh;
	bool render;
	int rc = 0;

	/* A refresh (or a status nobody looked up first) happens here. */
	pthread_mutex_lock(&render_lock);
	r = slot(ino);
	render = off == 0 && (is_refresh(fs, ino) || !r->data);
	pthread_mutex_unlock(&render_lock);
	if (render) {
		if ((rc = control_open(fs, ino, &fresh, &flen)))
			return rc;
		keep(ino, fresh, flen, &cur, &mtime);
	}
	pthread_mutex_lock(&render_lock);
	r = slot(ino);
	*len = 0;
	*data = NULL;
	if (r->data && off >= 0 && (size_t)off < r->len) {
		*len = r->len - (size_t)off < size ? r->len - (size_t)off : size;
		*data = malloc(*len);
		if (*data)
			memcpy(*data, r->data + off, *len);
		else
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&render_lock);
	return rc;
}

void control_release(void)
{
	for (size_t i = 0; i < RENDERINGS; i++) {
		free(renderings[i].data);
		renderings[i] = (struct rendering){ 0 };
	}
}
