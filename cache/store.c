/*
 * The persistent listing store on SQLite: saved listings (one row per key,
 * one row per item) and the change journal, in DIR/connfs.db. It guards the
 * file like a secret (0700 directory, 0600 file, owner only), survives a
 * corrupt file by moving it aside, and turns every SQLite failure into a
 * negative errno plus a message. It knows nothing of FUSE, HTTP or JSON.
 * SQLite facts relied on: https://sqlite.org/wal.html (readers do not block
 * the writer and see the last commit), https://sqlite.org/pragma.html.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define STORE_FILE "connfs.db"
#define STORE_SCHEMA 1
#define STORE_BUSY_MS 10000
#define STORE_BEGIN_TRIES 3

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS listings(key TEXT PRIMARY KEY,"
	" walked_at REAL NOT NULL, count INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS items(key TEXT NOT NULL,"
	" pos INTEGER NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL,"
	" data BLOB NOT NULL, mtime_sec INTEGER NOT NULL,"
	" mtime_nsec INTEGER NOT NULL, ino INTEGER NOT NULL,"
	" PRIMARY KEY(key, pos));"
	"CREATE TABLE IF NOT EXISTS journal(seq INTEGER PRIMARY KEY"
	" AUTOINCREMENT, at REAL NOT NULL, section TEXT NOT NULL,"
	" line TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS journal_section ON journal(section, seq);"
	"CREATE INDEX IF NOT EXISTS journal_at ON journal(at);"
	"PRAGMA user_version = 1;";

/* Statements of the read connection. */
enum { Q_HEAD, Q_CHECK, Q_ITEMS, Q_JREAD, Q_NRD };
static const char *const rd_sql[Q_NRD] = {
	[Q_HEAD] = "SELECT walked_at, count FROM listings WHERE key = ?1",
	[Q_CHECK] = "SELECT count(*), min(pos), max(pos), total(typeof(name)"
		    " = 'text' AND typeof(id) = 'text' AND typeof(data) ="
		    " 'blob' AND typeof(mtime_sec) = 'integer' AND"
		    " typeof(mtime_nsec) = 'integer' AND mtime_nsec BETWEEN 0"
		    " AND 999999999 AND typeof(ino) = 'integer')"
		    " FROM items WHERE key = ?1",
	[Q_ITEMS] = "SELECT pos, name, id, data, mtime_sec, mtime_nsec, ino"
		    " FROM items WHERE key = ?1 ORDER BY pos",
	[Q_JREAD] = "SELECT seq, line FROM journal WHERE (?1 IS NULL OR"
		    " section = ?1) AND seq > ?2 ORDER BY seq",
};

/* Statements of the small-writes connection. */
enum { Q_JADD, Q_PRUNE_AGE, Q_PRUNE_CAP, Q_DEL_ITEMS, Q_DEL_HEAD, Q_TOUCH,
       Q_NWR };
static const char *const wr_sql[Q_NWR] = {
	[Q_JADD] = "INSERT INTO journal(at, section, line) VALUES(?1, ?2, ?3)",
	[Q_PRUNE_AGE] = "DELETE FROM journal WHERE at < ?1",
	[Q_PRUNE_CAP] = ("DELETE FROM journal WHERE seq <= (SELECT seq FROM"
			 " journal ORDER BY seq DESC LIMIT 1 OFFSET ?1)"),
	[Q_DEL_ITEMS] = "DELETE FROM items WHERE key = ?1",
	[Q_DEL_HEAD] = "DELETE FROM listings WHERE key = ?1",
	[Q_TOUCH] = "UPDATE listings SET walked_at = ?2 WHERE key = ?1",
};

static const char ins_sql[] =
	"INSERT INTO items(key, pos, name, id, data, mtime_sec, mtime_nsec,"
	" ino) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
static const char head_sql[] =
	"INSERT OR REPLACE INTO listings(key, walked_at, count)"
	" VALUES(?1, ?2, ?3)";

struct store {
	char *path;		/* DIR/connfs.db */
	unsigned max_pages;
	pthread_mutex_t rd_lock, wr_lock, err_lock;
	sqlite3 *rd, *wr;
	sqlite3_stmt *rq[Q_NRD], *wq[Q_NWR];
	char last_err[512];
};

struct store_txn {
	struct store *st;
	sqlite3 *db;
	sqlite3_stmt *ins;
	char *key;
	double walked_at;
	int64_t count;
	int failed;
};

static int sql_errno(sqlite3 *db, int rc)
{
	int e;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_TOOBIG:
		return -EFBIG;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		e = db ? sqlite3_system_errno(db) : 0;
		return e > 0 ? -e : -EIO;
	default:
		return -EIO;
	}
}

/* Records "what: SQLite's message" as the last error; returns -errno. */
static int fail(struct store *st, sqlite3 *db, int rc, const char *what)
{
	int err = sql_errno(db, rc);

	pthread_mutex_lock(&st->err_lock);
	snprintf(st->last_err, sizeof(st->last_err), "store %s: %s: %s",
		 st->path, what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	pthread_mutex_unlock(&st->err_lock);
	return err ? err : -EIO;
}

/* Records a message of our own as the last error; returns err. */
__attribute__((format(printf, 3, 4)))
static int note(struct store *st, int err, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&st->err_lock);
	va_start(ap, fmt);
	vsnprintf(st->last_err, sizeof(st->last_err), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&st->err_lock);
	return err;
}

void store_last_error(struct store *st, char *buf, size_t len)
{
	pthread_mutex_lock(&st->err_lock);
	snprintf(buf, len, "%s", st->last_err);
	pthread_mutex_unlock(&st->err_lock);
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
	char *p, *s, c;
	int rc = 0;

	if (!*dir) {
		snprintf(err, errlen, "store directory is an empty path");
		return -EINVAL;
	}
	p = strdup(dir);
	if (!p)
		return -ENOMEM;
	for (s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		c = *s;
		*s = '\0';
		if (mkdir(p, 0700) && errno != EEXIST) {
			rc = -errno;
			snprintf(err, errlen, "cannot create store directory "
				 "%s: %s", p, strerror(errno));
			break;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return rc;
}

/* A directory or file the store trusts: ours, and private to us. */
static int check_private(const char *path, const struct stat *sb,
			 const char *what, const char *fix, char *err,
			 size_t errlen)
{
	if (sb->st_uid != geteuid()) {
		snprintf(err, errlen, "%s %s is owned by uid %u, not by the "
			 "mounting user (uid %u): chown it or use another "
			 "cache_dir", what, path, (unsigned)sb->st_uid,
			 (unsigned)geteuid());
		return -EPERM;
	}
	if (sb->st_mode & 077) {
		snprintf(err, errlen, "%s %s is group/world accessible (mode "
			 "%04o): run chmod %s %s", what, path,
			 (unsigned)(sb->st_mode & 07777), fix, path);
		return -EPERM;
	}
	return 0;
}

static int dir_ready(const char *dir, char *err, size_t errlen)
{
	struct stat sb;
	int rc = make_dirs(dir, err, errlen);

	if (rc)
		return rc;
	if (stat(dir, &sb)) {
		rc = -errno;
		snprintf(err, errlen, "store directory %s: %s", dir,
			 strerror(errno));
		return rc;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "store directory %s is not a directory",
			 dir);
		return -ENOTDIR;
	}
	return check_private(dir, &sb, "store directory", "700", err, errlen);
}

/* Creates the file 0600 when missing (SQLite would make it 0644). */
static int file_ready(const char *path, ino_t *ino, char *err, size_t errlen)
{
	struct stat sb;
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		      0600);

	if (fd >= 0)
		close(fd);
	if (lstat(path, &sb)) {
		int rc = -errno;

		snprintf(err, errlen, "store file %s: %s", path,
			 strerror(errno));
		return rc;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "store file %s is not a regular file",
			 path);
		return -EPERM;
	}
	*ino = sb.st_ino;
	return check_private(path, &sb, "store file", "600", err, errlen);
}

static int conn_open(struct store *st, sqlite3 **out)
{
	char sql[64];
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(st->path, &db, SQLITE_OPEN_READWRITE |
				 SQLITE_OPEN_NOFOLLOW, NULL);

	if (rc == SQLITE_OK && sqlite3_db_readonly(db, "main") == 1) {
		sqlite3_close_v2(db);
		return note(st, -EROFS, "store file %s cannot be opened for "
			    "writing (read-only or immutable file, or a "
			    "read-only file system): fix it or use another "
			    "cache_dir", st->path);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_timeout(db, STORE_BUSY_MS);
	if (rc == SQLITE_OK)
		/* A small page cache: saves and loads stream through the
		 * tables once, and each of the handle's connections would
		 * otherwise keep up to 2 MiB of pages in the daemon. */
		rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL;"
				  "PRAGMA journal_size_limit = 16777216;"
				  "PRAGMA cache_size = -256",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK && st->max_pages) {
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %u",
			 st->max_pages);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		rc = fail(st, db, rc, "open");
		sqlite3_close_v2(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* BEGIN IMMEDIATE takes the write lock now, waiting busy_timeout. */
static int tx_begin(struct store *st, sqlite3 *db)
{
	int rc = SQLITE_BUSY;

	for (int i = 0; i < STORE_BEGIN_TRIES && (rc & 0xff) == SQLITE_BUSY;
	     i++)
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(st, db, rc, "begin");
}

/* Commits when rc is 0, else rolls back; returns the first error. */
static int tx_end(struct store *st, sqlite3 *db, int rc)
{
	int r;

	if (rc) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	r = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (r == SQLITE_OK)
		return 0;
	rc = fail(st, db, r, "commit");
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Steps a statement to its end; resets it and clears its bindings. */
static int run(struct store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : fail(st, sqlite3_db_handle(s), rc, what);
}

static int int_pragma(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*v = sqlite3_column_int64(s, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return rc;
}

/* quick_check, then the schema; -EUCLEAN when the file is corrupt. */
static int schema_ready(struct store *st, sqlite3 *db)
{
	const unsigned char *ok;
	sqlite3_stmt *s;
	int64_t ver = 0;
	int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL,
			      NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return fail(st, db, rc, "check");
	rc = sqlite3_step(s);
	ok = rc == SQLITE_ROW ? sqlite3_column_text(s, 0) : NULL;
	if (rc == SQLITE_ROW && !(ok && strcmp((const char *)ok, "ok") == 0))
		rc = SQLITE_CORRUPT;
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW)
		return fail(st, db, rc, "quick_check");
	rc = int_pragma(db, "PRAGMA user_version", &ver);
	if (rc != SQLITE_OK)
		return fail(st, db, rc, "schema");
	if (ver == STORE_SCHEMA)
		return 0;
	rc = tx_begin(st, db);
	if (rc)
		return rc;
	rc = int_pragma(db, "PRAGMA user_version", &ver);
	if (rc == SQLITE_OK && ver == 0)
		rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
	rc = rc == SQLITE_OK ? 0 : fail(st, db, rc, "schema");
	if (!rc && ver > STORE_SCHEMA)
		rc = note(st, -EPROTO, "store %s has schema %lld, newer than "
			  "this connfs knows (%d): use another cache_dir",
			  st->path, (long long)ver, STORE_SCHEMA);
	return tx_end(st, db, rc);
}

static int prepare_all(struct store *st, sqlite3 *db, const char *const *sql,
		       sqlite3_stmt **q, int n)
{
	for (int i = 0; i < n; i++) {
		int rc = sqlite3_prepare_v3(db, sql[i], -1,
					    SQLITE_PREPARE_PERSISTENT, &q[i],
					    NULL);

		if (rc != SQLITE_OK)
			return fail(st, db, rc, "prepare");
	}
	return 0;
}

static void conns_close(struct store *st)
{
	for (int i = 0; i < Q_NRD; i++)
		sqlite3_finalize(st->rq[i]);
	for (int i = 0; i < Q_NWR; i++)
		sqlite3_finalize(st->wq[i]);
	memset(st->rq, 0, sizeof(st->rq));
	memset(st->wq, 0, sizeof(st->wq));
	sqlite3_close_v2(st->rd);
	sqlite3_close_v2(st->wr);
	st->rd = st->wr = NULL;
}

static int conns_open(struct store *st)
{
	int rc = conn_open(st, &st->wr);

	if (!rc)
		rc = schema_ready(st, st->wr);
	if (!rc)
		rc = conn_open(st, &st->rd);
	if (!rc)
		rc = prepare_all(st, st->wr, wr_sql, st->wq, Q_NWR);
	if (!rc)
		rc = prepare_all(st, st->rd, rd_sql, st->rq, Q_NRD);
	if (rc)
		conns_close(st);
	return rc;
}

/* Renames path+sfx to to+sfx without replacing anything. */
static int move_one(const char *path, const char *to, const char *sfx)
{
	char a[4096], b[4096];

	snprintf(a, sizeof(a), "%s%s", path, sfx);
	snprintf(b, sizeof(b), "%s%s", to, sfx);
	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) == 0 ||
	    errno == ENOENT)
		return 0;
	return -errno;
}

/* Moves the database and its -wal and -shm to PATH.corrupt-UNIXTIME[-N]. */
static int move_aside(const char *path, char *to, size_t tolen)
{
	long now = (long)time(NULL);
	int rc = -EEXIST;

	for (int n = 0; n < 100 && rc == -EEXIST; n++) {
		if (n)
			snprintf(to, tolen, "%s.corrupt-%ld-%d", path, now, n);
		else
			snprintf(to, tolen, "%s.corrupt-%ld", path, now);
		rc = move_one(path, to, "");
	}
	if (!rc)
		rc = move_one(path, to, "-wal");
	if (!rc)
		rc = move_one(path, to, "-shm");
	return rc;
}

static int store_new(const char *dir, struct store **out)
{
	struct store *st = calloc(1, sizeof(*st));

	if (!st || asprintf(&st->path, "%s/%s", dir, STORE_FILE) < 0) {
		free(st);
		return -ENOMEM;
	}
	pthread_mutex_init(&st->rd_lock, NULL);
	pthread_mutex_init(&st->wr_lock, NULL);
	pthread_mutex_init(&st->err_lock, NULL);
	*out = st;
	return 0;
}

/*
 * Moves the checked file aside when it is still the one at the path: a
 * second opener that found it corrupt too must not move the fresh one.
 */
static int recover(struct store *st, ino_t checked, char *err,
		   size_t errlen)
{
	char to[4096];
	struct stat sb;
	int rc;

	if (lstat(st->path, &sb) || sb.st_ino != checked)
		return 0;
	rc = move_aside(st->path, to, sizeof(to));
	if (rc)
		snprintf(err, errlen, "store %s is corrupt and cannot be moved "
			 "aside: %s", st->path, strerror(-rc));
	else
		snprintf(err, errlen, "store %s was corrupt: moved aside to "
			 "%s, starting a fresh one", st->path, to);
	return rc;
}

/* Opens the connections; a corrupt file is moved aside once. */
static int open_or_recover(struct store *st, char *err, size_t errlen)
{
	ino_t ino;
	int rc = file_ready(st->path, &ino, err, errlen);

	if (!rc)
		rc = conns_open(st);
	if (rc == -EUCLEAN) {
		rc = recover(st, ino, err, errlen);
		if (!rc)
			rc = file_ready(st->path, &ino, err, errlen);
		if (!rc && (rc = conns_open(st)))
			store_last_error(st, err, errlen);
	}
	if (rc && !err[0])
		store_last_error(st, err, errlen);
	return rc;
}

int store_open(const char *dir, struct store **out, char *err, size_t errlen)
{
	struct store *st;
	int rc;

	err[0] = '\0';
	*out = NULL;
	rc = dir_ready(dir, err, errlen);
	if (!rc)
		rc = store_new(dir, &st);
	if (rc)
		return rc;
	rc = open_or_recover(st, err, errlen);
	if (rc) {
		store_close(st);
		return rc;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	conns_close(st);
	pthread_mutex_destroy(&st->rd_lock);
	pthread_mutex_destroy(&st->wr_lock);
	pthread_mutex_destroy(&st->err_lock);
	free(st->path);
	free(st);
}

void store_limit_pages(struct store *st, unsigned pages)
{
	st->max_pages = pages;
}

static void txn_free(struct store_txn *t)
{
	sqlite3_finalize(t->ins);
	sqlite3_close_v2(t->db);
	free(t->key);
	free(t);
}

int store_save_begin(struct store *st, const char *key, double walked_at,
		     struct store_txn **out)
{
	struct store_txn *t = calloc(1, sizeof(*t));
	sqlite3_stmt *del = NULL;
	int rc;

	*out = NULL;
	if (!t || !(t->key = strdup(key))) {
		free(t);
		return -ENOMEM;
	}
	t->st = st;
	t->walked_at = walked_at;
	rc = conn_open(st, &t->db);
	if (!rc)
		rc = tx_begin(st, t->db);
	if (!rc && (sqlite3_prepare_v2(t->db, ins_sql, -1, &t->ins, NULL) ||
		    sqlite3_prepare_v2(t->db, wr_sql[Q_DEL_ITEMS], -1, &del,
				       NULL)))
		rc = fail(st, t->db, sqlite3_errcode(t->db), "prepare");
	if (!rc) {
		sqlite3_bind_text(del, 1, key, -1, SQLITE_STATIC);
		rc = run(st, del, "save");
	}
	sqlite3_finalize(del);
	if (rc) {
		if (t->db)
			sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
		txn_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int store_save_item(struct store_txn *t, const struct store_item *it)
{
	sqlite3_stmt *s = t->ins;
	int rc;

	if (t->failed)
		return t->failed;
	if (!it->name || !it->id || (!it->data && it->size) ||
	    it->mtime_nsec < 0 || it->mtime_nsec > 999999999)
		return t->failed = -EINVAL;
	sqlite3_bind_text(s, 1, t->key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, t->count);
	sqlite3_bind_text(s, 3, it->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(s, 5, it->size ? it->data : "", it->size,
			    SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, it->mtime_sec);
	sqlite3_bind_int64(s, 7, it->mtime_nsec);
	sqlite3_bind_int64(s, 8, (sqlite3_int64)it->ino);
	rc = run(t->st, s, "save");
	if (rc)
		return t->failed = rc;
	t->count++;
	return 0;
}

int store_save_commit(struct store_txn *t)
{
	struct store *st = t->st;
	sqlite3_stmt *s = NULL;
	int rc = t->failed;

	if (!rc && sqlite3_prepare_v2(t->db, head_sql, -1, &s, NULL))
		rc = fail(st, t->db, sqlite3_errcode(t->db), "prepare");
	if (!rc) {
		sqlite3_bind_text(s, 1, t->key, -1, SQLITE_STATIC);
		sqlite3_bind_double(s, 2, t->walked_at);
		sqlite3_bind_int64(s, 3, t->count);
		rc = run(st, s, "save");
	}
	sqlite3_finalize(s);
	rc = tx_end(st, t->db, rc);
	txn_free(t);
	return rc;
}

void store_save_abort(struct store_txn *t)
{
	if (!t)
		return;
	sqlite3_exec(t->db, "ROLLBACK", NULL, NULL, NULL);
	txn_free(t);
}

static int bad(char *err, size_t errlen, const char *key, const char *why)
{
	snprintf(err, errlen, "saved listing %s is invalid: %s", key, why);
	return -EBADMSG;
}

static int load_head(struct store *st, const char *key, double *walked_at,
		     int64_t *count, char *err, size_t errlen)
{
	sqlite3_stmt *s = st->rq[Q_HEAD];
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else if (rc != SQLITE_ROW) {
		rc = fail(st, st->rd, rc, "load");
		store_last_error(st, err, errlen);
	} else if (sqlite3_column_type(s, 0) != SQLITE_FLOAT ||
		   sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
		   sqlite3_column_int64(s, 1) < 0) {
		rc = bad(err, errlen, key, "bad walk time or count");
	} else {
		*walked_at = sqlite3_column_double(s, 0);
		*count = sqlite3_column_int64(s, 1);
		rc = 0;
	}
	sqlite3_reset(s);
	return rc;
}

/* The rows agree with the count, positions are 0..n-1, types are right. */
static int load_check(struct store *st, const char *key, int64_t n,
		      char *err, size_t errlen)
{
	sqlite3_stmt *s = st->rq[Q_CHECK];
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		rc = fail(st, st->rd, rc, "load");
		store_last_error(st, err, errlen);
	} else if (sqlite3_column_int64(s, 0) != n) {
		rc = bad(err, errlen, key, "item count differs from listing");
	} else if (n && (sqlite3_column_int64(s, 1) != 0 ||
			 sqlite3_column_int64(s, 2) != n - 1)) {
		rc = bad(err, errlen, key, "item positions have gaps");
	} else if (sqlite3_column_double(s, 3) != (double)n) {
		rc = bad(err, errlen, key, "an item has a missing or "
			 "mistyped field");
	} else {
		rc = 0;
	}
	sqlite3_reset(s);
	return rc;
}

static int load_items(struct store *st, const char *key, int64_t n,
		      store_item_fn fn, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *s = st->rq[Q_ITEMS];
	struct store_item it;
	int64_t i = 0;
	int rc;

	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (sqlite3_column_int64(s, 0) != i++ || i > n) {
			rc = bad(err, errlen, key, "items changed under load");
			break;
		}
		it.name = (const char *)sqlite3_column_text(s, 1);
		it.id = (const char *)sqlite3_column_text(s, 2);
		it.data = sqlite3_column_blob(s, 3);
		it.size = (size_t)sqlite3_column_bytes(s, 3);
		it.mtime_sec = sqlite3_column_int64(s, 4);
		it.mtime_nsec = (long)sqlite3_column_int64(s, 5);
		it.ino = (uint64_t)sqlite3_column_int64(s, 6);
		if (!it.data)
			it.data = "";
		rc = fn ? fn(arg, &it) : 0;
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = i == n ? 0 : bad(err, errlen, key, "items vanished");
	else if (rc > 0) {
		rc = fail(st, st->rd, rc, "load");
		store_last_error(st, err, errlen);
	}
	sqlite3_reset(s);
	return rc;
}

int store_load(struct store *st, const char *key, double *walked_at,
	       size_t *count, store_item_fn fn, void *arg, char *err,
	       size_t errlen)
{
	double at = 0;
	int64_t n = 0;
	int rc;

	err[0] = '\0';
	pthread_mutex_lock(&st->rd_lock);
	rc = sqlite3_exec(st->rd, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = fail(st, st->rd, rc, "load");
		store_last_error(st, err, errlen);
		pthread_mutex_unlock(&st->rd_lock);
		return rc;
	}
	rc = load_head(st, key, &at, &n, err, errlen);
	if (!rc)
		rc = load_check(st, key, n, err, errlen);
	if (!rc) {
		if (walked_at)
			*walked_at = at;
		if (count)
			*count = (size_t)n;
		rc = load_items(st, key, n, fn, arg, err, errlen);
	}
	sqlite3_exec(st->rd, "COMMIT", NULL, NULL, NULL);
	pthread_mutex_unlock(&st->rd_lock);
	return rc;
}

int store_forget(struct store *st, const char *key)
{
	int rc;

	pthread_mutex_lock(&st->wr_lock);
	rc = tx_begin(st, st->wr);
	if (!rc) {
		sqlite3_bind_text(st->wq[Q_DEL_ITEMS], 1, key, -1,
				  SQLITE_STATIC);
		rc = run(st, st->wq[Q_DEL_ITEMS], "forget");
	}
	if (!rc) {
		sqlite3_bind_text(st->wq[Q_DEL_HEAD], 1, key, -1,
				  SQLITE_STATIC);
		rc = run(st, st->wq[Q_DEL_HEAD], "forget");
	}
	rc = tx_end(st, st->wr, rc);
	pthread_mutex_unlock(&st->wr_lock);
	return rc;
}

int store_touch(struct store *st, const char *key, double walked_at)
{
	int rc;

	pthread_mutex_lock(&st->wr_lock);
	sqlite3_bind_text(st->wq[Q_TOUCH], 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_double(st->wq[Q_TOUCH], 2, walked_at);
	rc = run(st, st->wq[Q_TOUCH], "touch");
	if (!rc && sqlite3_changes(st->wr) == 0)
		rc = -ENOENT;
	pthread_mutex_unlock(&st->wr_lock);
	return rc;
}

int store_journal_add(struct store *st, double when, const char *section,
		      const char *const *lines, size_t n)
{
	sqlite3_stmt *s = st->wq[Q_JADD];
	int rc;

	pthread_mutex_lock(&st->wr_lock);
	rc = tx_begin(st, st->wr);
	for (size_t i = 0; !rc && i < n; i++) {
		sqlite3_bind_double(s, 1, when);
		sqlite3_bind_text(s, 2, section, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, lines[i], -1, SQLITE_STATIC);
		rc = run(st, s, "journal");
	}
	rc = tx_end(st, st->wr, rc);
	pthread_mutex_unlock(&st->wr_lock);
	return rc;
}

int store_journal_read(struct store *st, const char *section,
		       int64_t after_seq, store_line_fn fn, void *arg)
{
	sqlite3_stmt *s = st->rq[Q_JREAD];
	int rc;

	pthread_mutex_lock(&st->rd_lock);
	if (section)
		sqlite3_bind_text(s, 1, section, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, after_seq);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(s, 1);

		rc = fn(arg, sqlite3_column_int64(s, 0), line ? line : "");
		if (rc)
			break;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else if (rc > 0)
		rc = fail(st, st->rd, rc, "journal");
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	pthread_mutex_unlock(&st->rd_lock);
	return rc;
}

int store_journal_prune(struct store *st, double older_than, size_t max_rows)
{
	int rc;

	pthread_mutex_lock(&st->wr_lock);
	rc = tx_begin(st, st->wr);
	if (!rc) {
		sqlite3_bind_double(st->wq[Q_PRUNE_AGE], 1, older_than);
		rc = run(st, st->wq[Q_PRUNE_AGE], "prune");
	}
	if (!rc && max_rows) {
		sqlite3_bind_int64(st->wq[Q_PRUNE_CAP], 1,
				   (sqlite3_int64)max_rows);
		rc = run(st, st->wq[Q_PRUNE_CAP], "prune");
	}
	rc = tx_end(st, st->wr, rc);
	pthread_mutex_unlock(&st->wr_lock);
	return rc;
}
