/*
 * The persistent listing store: saved listings and a change journal in one
 * SQLite database (DIR/connfs.db, WAL mode) so that a remount can serve
 * what the last walk saw, byte for byte. It knows nothing of FUSE, HTTP or
 * JSON: a listing is a key, a walk time and items of opaque bytes; journal
 * lines are strings built by the caller.
 *
 * Thread safety: a handle may be used from any number of threads at once.
 * Loads and journal reads share one connection under a mutex; journal
 * writes and forgets share another under a second mutex; every save opens
 * a connection of its own for its transaction, so saves never block loads
 * or journal reads (WAL readers see the last committed state) and several
 * saves, from threads or from other processes on the same directory, are
 * serialised by SQLite's write lock: a writer waits up to a busy timeout
 * and then fails with -EBUSY, never corrupting anything.
 *
 * Errors are 0 or -errno: -EBUSY locked too long, -ENOSPC full, -EROFS or
 * -EACCES not writable, -EPERM unsafe permissions, -EBADMSG a saved listing
 * failed validation (forget it), -EUCLEAN the database is corrupt (close the
 * handle; store_open() moves the file aside), -EPROTO made by a newer
 * connfs, -EIO anything else. store_last_error() tells the SQLite message.
 */
#ifndef CONNFS_STORE_H
#define CONNFS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_txn;

/* One file of a saved listing. The store copies nothing it is handed. */
struct store_item {
	const char *name;	/* file name, not NULL */
	const char *id;		/* connection id, not NULL */
	const void *data;	/* rendered bytes; NULL only when size is 0 */
	size_t size;
	int64_t mtime_sec;
	long mtime_nsec;	/* 0 .. 999999999 */
	uint64_t ino;		/* all 64 bits are kept */
};

/*
 * Opens, creating when missing, DIR/connfs.db. DIR (and missing parents) is
 * created 0700 and the file 0600; a DIR or file that is not owned by the
 * effective user or is group/world accessible is refused (-EPERM), a file
 * that cannot be written is refused (-EROFS/-EACCES), with a message in err
 * naming the path and the fix. A corrupt database is moved aside to
 * connfs.db.corrupt-UNIXTIME (with its -wal and -shm), never deleted, and a
 * fresh one is created: that returns 0 with err saying what happened (err is
 * "" otherwise). *st is the new handle; free with store_close().
 */
int store_open(const char *dir, struct store **st, char *err, size_t errlen);
/* Closes the handle; no transaction of it may be open. NULL is a no-op. */
void store_close(struct store *st);

/* The message of the handle's last failure ("" if none), into buf. */
void store_last_error(struct store *st, char *buf, size_t len);

/*
 * Saving a listing: begin, one store_save_item() per item in the order a
 * load must give them back, then commit (which replaces the key's previous
 * listing atomically) or abort (which leaves it untouched). The items are
 * written as they come: nothing of the listing is kept in memory. SQLite's
 * write lock is held from begin to commit or abort, so keep that short:
 * render first, then save. A failed store_save_item() leaves the txn
 * usable only for abort. Commit and abort free *t.
 */
int store_save_begin(struct store *st, const char *key, double walked_at,
		     struct store_txn **t);
int store_save_item(struct store_txn *t, const struct store_item *it);
int store_save_commit(struct store_txn *t);
void store_save_abort(struct store_txn *t);

/*
 * Loads the key's saved listing: *walked_at and *count (either may be NULL)
 * are set, then fn is called once per item in saved order; the pointers in
 * *it live only during the call. The whole listing is validated (types,
 * fields, positions, count) before fn is first called, so an invalid one is
 * never partly served: -EBADMSG with the reason in err. -ENOENT when the key
 * has no listing. A non-zero return of fn stops the load and is returned.
 * fn runs under the handle's read lock: it must not call the store.
 */
typedef int (*store_item_fn)(void *arg, const struct store_item *it);
int store_load(struct store *st, const char *key, double *walked_at,
	       size_t *count, store_item_fn fn, void *arg, char *err,
	       size_t errlen);
/* Deletes the key's listing; 0 also when there was none. */
int store_forget(struct store *st, const char *key);
/*
 * A walk found the key's listing unchanged: only its time is written.
 * -ENOENT when there is no listing under key.
 */
int store_touch(struct store *st, const char *key, double walked_at);

/*
 * The change journal: rows of (sequence number, time, section, line). The
 * sequence numbers only grow, also across pruning, so a reader can resume
 * after the last one it saw. store_journal_add() writes n lines in one
 * transaction. store_journal_read() calls fn for each row of the section
 * (every section when NULL) with seq > after_seq, oldest first; a non-zero
 * return of fn stops it and is returned; fn must not call the store.
 * store_journal_prune() deletes the rows written before older_than, then
 * the oldest rows beyond the newest max_rows (0: no cap).
 */
typedef int (*store_line_fn)(void *arg, int64_t seq, const char *line);
int store_journal_add(struct store *st, double when, const char *section,
		      const char *const *lines, size_t n);
int store_journal_read(struct store *st, const char *section,
		       int64_t after_seq, store_line_fn fn, void *arg);
int store_journal_prune(struct store *st, double older_than,
			size_t max_rows);

/*
 * A test seam: caps the database at pages pages (PRAGMA max_page_count) on
 * every connection the handle opens from now on, to simulate a full disk.
 * Not synchronised: call it while no other thread uses the handle.
 */
void store_limit_pages(struct store *st, unsigned pages);

#endif
