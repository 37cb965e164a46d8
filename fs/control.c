/*
 * The hidden .connfs tree. See control.h.
 *
 * The kernel may run without OPEN (no-open mode, which saves two upcalls
 * per connection file), so control files cannot rely on an open handle or
 * on direct I/O: their size must be right when the kernel asks for it, and
 * the kernel's page cache must never mix two renderings. So every distinct
 * rendering of a status file is a node of its own, with its own inode
 * number, size and bytes that never change: a lookup returns the node of
 * the current rendering (a new one only when the content changed), and a
 * reader that holds an older node keeps reading that one. Refresh files
 * have a fixed size (one padded record per directory), refresh when read
 * at offset 0, and report "now" as mtime so every read reaches the daemon.
 */
#include "control.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "persist.h"
#include "share.h"
#include "status.h"

enum {
	CTL_DIR = 2,
	CTL_STATUS = 3,
	CTL_STATUS_JSON = 4,
	CTL_REFRESH_DIR = 5,
	CTL_REFRESH_ALL = 6,
	CTL_CHANGES = 7,
	CTL_CHANGES_DIR = 8,
	CTL_REFRESH_ONE = 1024,		/* + directory index */
	CTL_CHANGES_ONE = 1024 + 65536,	/* + directory index */
	CTL_END = 1024 + 2 * 65536,
};

#define NODE_BASE (1ULL << 32)		/* + rendering sequence number */
#define NODE_END (1ULL << 48)
#define NODES 64			/* renderings kept for readers */
#define RECORD 256			/* bytes per refresh result line */

/* One immutable rendering of a status file. */
struct node {
	uint64_t seq;			/* 0: free */
	uint64_t kind;			/* CTL_STATUS or CTL_STATUS_JSON */
	char *data;
	size_t len;
	struct timespec mtime;
};

static struct node nodes[NODES];
static uint64_t next_seq = 1;
static uint64_t current[2];		/* seq of the current rendering */
static pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;

/* The latest refresh result of each refresh file: one per directory,
 * then "all". Allocated at the first refresh, under node_lock. */
static struct refresh_result {
	char *data;
	size_t len;
} *results;
static size_t nresults;

bool control_ino(uint64_t ino)
{
	return (ino >= CTL_DIR && ino < CTL_END) ||
	       (ino >= NODE_BASE && ino < NODE_END);
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

static bool is_changes(struct connfs *fs, uint64_t ino)
{
	return ino == CTL_CHANGES ||
	       (ino >= CTL_CHANGES_ONE && ino - CTL_CHANGES_ONE < fs->ndirs);
}

/*
 * The journal files: one inode each whose size grows as entries arrive
 * (tail -f polls the size), rendered when the journal changed. A new
 * rendering gets a new mtime, so the kernel drops pages it cached.
 */
static struct journal_file {
	unsigned gen;
	bool done;
	char *data;
	size_t len;
	struct timespec mtime;
} *journals;			/* every section's, then all; node_lock */
static size_t njournals;

/* The current rendering of a journal file; call with node_lock held. */
static struct journal_file *journal_of(struct connfs *fs, uint64_t ino)
{
	size_t i = ino == CTL_CHANGES ? fs->ndirs : ino - CTL_CHANGES_ONE;
	unsigned gen = persist_journal_gen();
	struct journal_file *j;
	char *data;
	size_t len;

	if (!journals && (journals = calloc(fs->ndirs + 1, sizeof(*journals))))
		njournals = fs->ndirs + 1;
	if (!journals)
		return NULL;
	j = &journals[i];
	if (j->done && j->gen == gen)
		return j;
	/* The fleet's journal when there is one, else this host's. */
	if (share_changes(fs, ino == CTL_CHANGES ? NULL : &fs->dirs[i], &data,
			  &len) &&
	    persist_changes(ino == CTL_CHANGES ? NULL :
			    fs->dirs[i].remote->name, &data, &len))
		return j->done ? j : NULL;
	if (!j->done || len != j->len || memcmp(data, j->data, len))
		clock_gettime(CLOCK_REALTIME, &j->mtime);
	free(j->data);
	j->data = data;
	j->len = len;
	j->gen = gen;
	j->done = true;
	return j;
}

static size_t refresh_size(struct connfs *fs, uint64_t ino)
{
	return ino == CTL_REFRESH_ALL ? fs->ndirs * RECORD : RECORD;
}

static void attr(struct connfs *fs, uint64_t ino, mode_t mode, size_t size,
		 const struct timespec *mtime, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_mtim = st->st_ctim = st->st_atim = *mtime;
}

static struct node *node_of(uint64_t ino)
{
	struct node *n;

	if (ino < NODE_BASE || ino >= NODE_END)
		return NULL;
	n = &nodes[(ino - NODE_BASE) % NODES];
	return n->seq == ino - NODE_BASE ? n : NULL;
}

/*
 * Renders status file `kind` and returns the attributes of the node that
 * holds this content: the current one if nothing changed, else a new one.
 */
static int status_node(struct connfs *fs, uint64_t kind, struct stat *st)
{
	size_t len;
	char *data = kind == CTL_STATUS ? status_text(fs, &len) :
					  status_json(fs, &len);
	uint64_t *cur = &current[kind - CTL_STATUS];
	struct node *n;

	if (!data)
		return -ENOMEM;
	pthread_mutex_lock(&node_lock);
	n = node_of(NODE_BASE + *cur);
	if (n && n->len == len && !memcmp(n->data, data, len)) {
		free(data);
	} else {
		*cur = next_seq++;
		n = &nodes[*cur % NODES];
		free(n->data);
		*n = (struct node){ .seq = *cur, .kind = kind, .data = data,
				    .len = len };
		clock_gettime(CLOCK_REALTIME, &n->mtime);
	}
	attr(fs, NODE_BASE + n->seq, S_IFREG | 0444, n->len, &n->mtime, st);
	pthread_mutex_unlock(&node_lock);
	return 0;
}

int control_getattr(struct connfs *fs, uint64_t ino, struct stat *st)
{
	struct timespec now;
	struct node *n;
	int rc = 0;

	if (ino >= NODE_BASE) {
		pthread_mutex_lock(&node_lock);
		n = node_of(ino);
		if (n)
			attr(fs, ino, S_IFREG | 0444, n->len, &n->mtime, st);
		else
			rc = -ESTALE;
		pthread_mutex_unlock(&node_lock);
		return rc;
	}
	if (is_status(ino))
		return status_node(fs, ino, st);
	if (is_refresh(fs, ino)) {
		clock_gettime(CLOCK_REALTIME, &now);
		attr(fs, ino, S_IFREG | 0400, refresh_size(fs, ino), &now, st);
		return 0;
	}
	if (is_changes(fs, ino)) {
		struct journal_file *j;

		pthread_mutex_lock(&node_lock);
		if ((j = journal_of(fs, ino)))
			attr(fs, ino, S_IFREG | 0444, j->len, &j->mtime, st);
		pthread_mutex_unlock(&node_lock);
		return j ? 0 : -EIO;
	}
	if (ino != CTL_DIR && ino != CTL_REFRESH_DIR && ino != CTL_CHANGES_DIR)
		return -ENOENT;
	attr(fs, ino, S_IFDIR | 0555, 0, &fs->started, st);
	return 0;
}

/* Child i of a control directory, with its attributes; NULL past the end. */
const char *control_child(struct connfs *fs, uint64_t dir, size_t i,
			  struct stat *st)
{
	static const char *const top[] = { "status", "status.json", "refresh",
					   "changes", "changes.d" };
	static const uint64_t top_ino[] = { CTL_STATUS, CTL_STATUS_JSON,
					    CTL_REFRESH_DIR, CTL_CHANGES,
					    CTL_CHANGES_DIR };
	uint64_t ino;

	if (dir == CTL_DIR) {
		if (i >= 5 || control_getattr(fs, top_ino[i], st))
			return NULL;
		return top[i];
	}
	if (dir == CTL_CHANGES_DIR) {
		if (i >= fs->ndirs ||
		    control_getattr(fs, CTL_CHANGES_ONE + i, st))
			return NULL;
		return fs->dirs[i].remote->name;
	}
	if (dir != CTL_REFRESH_DIR || i > fs->ndirs)
		return NULL;
	ino = i == fs->ndirs ? CTL_REFRESH_ALL : CTL_REFRESH_ONE + i;
	if (control_getattr(fs, ino, st))
		return NULL;
	return i == fs->ndirs ? "all" : fs->dirs[i].remote->name;
}

int control_lookup(struct connfs *fs, uint64_t parent, const char *name,
		   struct stat *st)
{
	const char *n;

	if (parent == ROOT_INO)
		return strcmp(name, CONTROL_NAME) ? -ENOENT :
		       control_getattr(fs, CTL_DIR, st);
	for (size_t i = 0; (n = control_child(fs, parent, i, st)); i++)
		if (!strcmp(n, name))
			return 0;
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

/* A copy of node ino's bytes. */
static int node_copy(uint64_t ino, char **data, size_t *len)
{
	struct node *n;
	int rc = 0;

	pthread_mutex_lock(&node_lock);
	n = node_of(ino);
	if (!n)
		rc = -ESTALE;
	else if (!(*data = malloc(n->len ? n->len : 1)))
		rc = -ENOMEM;
	else
		memcpy(*data, n->data, *len = n->len);
	pthread_mutex_unlock(&node_lock);
	return rc;
}

int control_open(struct connfs *fs, uint64_t ino, char **data, size_t *len)
{
	if (ino >= NODE_BASE)
		return node_copy(ino, data, len);
	if (is_changes(fs, ino)) {
		struct journal_file *j;
		int rc = -EIO;

		pthread_mutex_lock(&node_lock);
		if ((j = journal_of(fs, ino)))
			rc = (*data = malloc(j->len ? j->len : 1)) ?
			     (memcpy(*data, j->data, *len = j->len), 0) :
			     -ENOMEM;
		pthread_mutex_unlock(&node_lock);
		return rc;
	}
	if (!is_refresh(fs, ino))
		return -EISDIR;
	*data = refresh(fs, ino, len);
	return *data ? 0 : -ENOMEM;
}

/* Copies [off, off + size) of data into a new buffer. */
static int slice(const char *data, size_t total, off_t off, size_t size,
		 char **out, size_t *len)
{
	*out = NULL;
	*len = 0;
	if (!data || off < 0 || (size_t)off >= total)
		return 0;
	*len = total - (size_t)off < size ? total - (size_t)off : size;
	*out = malloc(*len);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, data + off, *len);
	return 0;
}

static struct refresh_result *result_of(struct connfs *fs, uint64_t ino)
{
	if (!results && (results = calloc(fs->ndirs + 1, sizeof(*results))))
		nresults = fs->ndirs + 1;
	if (!results)
		return NULL;
	return &results[ino == CTL_REFRESH_ALL ? fs->ndirs :
			ino - CTL_REFRESH_ONE];
}

int control_read(struct connfs *fs, uint64_t ino, off_t off, size_t size,
		 char **data, size_t *len)
{
	struct refresh_result *r;
	char *fresh = NULL;
	size_t flen = 0;
	struct node *n;
	int rc;

	if (ino >= NODE_BASE) {
		pthread_mutex_lock(&node_lock);
		n = node_of(ino);
		rc = n ? slice(n->data, n->len, off, size, data, len) : -ESTALE;
		pthread_mutex_unlock(&node_lock);
		return rc;
	}
	if (is_changes(fs, ino)) {
		struct journal_file *j;

		pthread_mutex_lock(&node_lock);
		j = journal_of(fs, ino);
		rc = j ? slice(j->data, j->len, off, size, data, len) : -EIO;
		pthread_mutex_unlock(&node_lock);
		return rc;
	}
	if (!is_refresh(fs, ino))
		return -EISDIR;
	/* The refresh happens on the read at offset 0, outside the lock. */
	if (off == 0 && !(fresh = refresh(fs, ino, &flen)))
		return -ENOMEM;
	pthread_mutex_lock(&node_lock);
	r = result_of(fs, ino);
	if (r && fresh) {
		free(r->data);
		r->data = fresh;
		r->len = flen;
		fresh = NULL;
	}
	rc = r ? slice(r->data, r->len, off, size, data, len) : -ENOMEM;
	pthread_mutex_unlock(&node_lock);
	free(fresh);
	return rc;
}

void control_release(void)
{
	for (size_t i = 0; i < NODES; i++) {
		free(nodes[i].data);
		nodes[i] = (struct node){ 0 };
	}
	for (size_t i = 0; i < nresults; i++)
		free(results[i].data);
	free(results);
	results = NULL;
	for (size_t i = 0; i < njournals; i++)
		free(journals[i].data);
	free(journals);
	journals = NULL;
	nresults = njournals = 0;
}
