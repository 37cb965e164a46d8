/*
 * Listings kept across restarts, and the change journal, in the local
 * store (cache/store.h). Every walk that changed a listing is saved under
 * its directory's account identity and journaled; at mount, a directory
 * with a saved listing for its identity is served from it at once while a
 * walk refreshes it. The store is an aid, never a requirement: when it
 * cannot be opened or written, connfs says so once (log and status view)
 * and carries on in memory, trying the store again at the next save.
 */
#include "persist.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "journal.h"
#include "log.h"
#include "ratelimit.h"
#include "store.h"

/* Journal retention beyond journal_days: at most this many entries. */
#define JOURNAL_MAX_ROWS 200000

static struct {
	/* Shared by every use of the store; exclusive to reopen it. */
	pthread_rwlock_t lock;
	struct store *st;
	char *dir;
	double journal_days;
	pthread_mutex_t msg_lock;	/* guards what follows */
	char problem[400];	/* "" when the store works */
	unsigned gen;		/* bumped by every journal write */
} ps = {
	.lock = PTHREAD_RWLOCK_INITIALIZER,
	.msg_lock = PTHREAD_MUTEX_INITIALIZER,
};


/* Records the store's state; logs a problem once, and its end. */
static void set_problem(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void set_problem(const char *fmt, ...)
{
	char msg[sizeof(ps.problem)] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_lock(&ps.msg_lock);
	if (strcmp(msg, ps.problem)) {
		if (msg[0])
			log_msg(LOG_WARNING, "listing store %s: %s (carrying "
				"on in memory)", ps.dir, msg);
		else
			log_msg(LOG_NOTICE, "listing store %s: working again",
				ps.dir);
		snprintf(ps.problem, sizeof(ps.problem), "%s", msg);
	}
	pthread_mutex_unlock(&ps.msg_lock);
}

/* Opens the store if it is closed; call with ps.lock held exclusively. */
static void open_locked(void)
{
	char err[400] = "";
	int rc;

	if (ps.st || !ps.dir)
		return;
	rc = store_open(ps.dir, &ps.st, err, sizeof(err));
	if (rc) {
		ps.st = NULL;
		set_problem("%s", err[0] ? err : strerror(-rc));
		return;
	}
	if (err[0])
		log_msg(LOG_WARNING, "listing store %s: %s", ps.dir, err);
	set_problem(NULL);
}

int persist_open(const char *dir, double journal_days, char *err,
		 size_t errlen)
{
	char msg[400] = "";
	int rc;

	if (!dir)
		return 0;
	if (!(ps.dir = strdup(dir)))
		return -ENOMEM;
	ps.journal_days = journal_days;
	rc = store_open(dir, &ps.st, msg, sizeof(msg));
	/* Unsafe permissions are the user's to fix, like the config's. */
	if (rc == -EPERM && err) {
		snprintf(err, errlen, "%s", msg);
		return rc;
	}
	if (rc) {
		ps.st = NULL;
		set_problem("%s", msg[0] ? msg : strerror(-rc));
	} else if (msg[0]) {
		log_msg(LOG_WARNING, "listing store %s: %s", dir, msg);
	}
	return 0;
}

void persist_close(void)
{
	store_close(ps.st);
	ps.st = NULL;
	free(ps.dir);
	ps.dir = NULL;
}

/* After a failed call: a corrupt file is reopened (moved aside). */
static void failed(int rc, const char *what)
{
	char msg[300] = "";

	if (ps.st)
		store_last_error(ps.st, msg, sizeof(msg));
	set_problem("%s: %s", what, msg[0] ? msg : strerror(-rc));
	if (rc != -EUCLEAN)
		return;
	pthread_rwlock_wrlock(&ps.lock);
	store_close(ps.st);
	ps.st = NULL;
	open_locked();
	pthread_rwlock_unlock(&ps.lock);
}

/* Takes the lock shared with the store open (reopening if need be). */
static bool acquire(void)
{
	pthread_rwlock_rdlock(&ps.lock);
	if (ps.st || !ps.dir)
		return ps.st != NULL;
	pthread_rwlock_unlock(&ps.lock);
	pthread_rwlock_wrlock(&ps.lock);
	open_locked();
	pthread_rwlock_unlock(&ps.lock);
	pthread_rwlock_rdlock(&ps.lock);
	return ps.st != NULL;
}

void persist_item(const struct snap_entry *e, struct store_item *it)
{
	*it = (struct store_item){
		.name = entry_name(e), .id = entry_id(e), .data = e->data,
		.size = e->size, .mtime_sec = e->mtime.tv_sec,
		.mtime_nsec = e->mtime.tv_nsec, .ino = e->ino,
	};
}

int persist_add_item(void *arg, const struct store_item *it)
{
	struct timespec mt = { .tv_sec = it->mtime_sec,
			       .tv_nsec = it->mtime_nsec };

	return snap_builder_add_saved(arg, it->name, it->id, it->data,
				      it->size, &mt, it->ino);
}

int persist_load(const char *key, const char *instance, void *owner,
		 struct snapshot **s, double *age)
{
	struct snap_builder b = { .instance = instance, .owner = owner };
	char err[300] = "";
	double walked = 0;
	size_t count = 0;
	int rc = -ENOENT;

	*s = NULL;
	if (acquire())
		rc = store_load(ps.st, key, &walked, &count, persist_add_item,
				&b, err,
				sizeof(err));
	pthread_rwlock_unlock(&ps.lock);
	if (!rc && !(*s = snap_builder_finish(&b, NULL)))
		rc = -ENOMEM;
	/* Anything that could not be a listing is never served. */
	if (!rc && (*s)->n != count) {
		log_msg(LOG_WARNING, "%s: saved listing has duplicate names; "
			"not served", instance);
		snapshot_put(*s);
		*s = NULL;
		rc = -EBADMSG;
	}
	snap_builder_release(&b);
	if (rc == -EBADMSG || rc == -EINVAL)
		log_msg(LOG_WARNING, "%s: saved listing is invalid (%s); not "
			"served", instance, err[0] ? err : "bad entry");
	else if (rc && rc != -ENOENT)
		failed(rc, "load");
	*age = wall_now() - walked;
	return rc;
}

static int save(const char *key, const struct snapshot *s, double when)
{
	struct store_txn *t = NULL;
	int rc = store_save_begin(ps.st, key, when, &t);

	for (size_t i = 0; !rc && i < s->n; i++) {
		struct store_item it;

		persist_item(s->v[i], &it);
		rc = store_save_item(t, &it);
	}
	if (rc) {
		if (t)
			store_save_abort(t);
		return rc;
	}
	return store_save_commit(t);
}

static int journal(const char *section, const struct snapshot *old,
		   const struct snapshot *s, double when)
{
	struct journal j;
	size_t n;
	int rc;

	if (journal_diff(&j, section, when, old, s))
		return -ENOMEM;
	n = j.n;
	rc = n ? store_journal_add(ps.st, when, section,
				   (const char *const *)j.lines, n) : 0;
	journal_release(&j);
	if (!rc && n)
		rc = store_journal_prune(ps.st, when - ps.journal_days * 86400,
					 JOURNAL_MAX_ROWS);
	if (!rc && n)
		persist_journal_bump();
	return rc;
}

void persist_journal_bump(void)
{
	pthread_mutex_lock(&ps.msg_lock);
	ps.gen++;
	pthread_mutex_unlock(&ps.msg_lock);
}

void persist_walked(const char *key, const char *section,
		    const struct snapshot *old, const struct snapshot *s)
{
	double when = wall_now();
	bool unchanged = old == s;
	const char *what = "save";
	int rc = 0;

	if (!acquire()) {
		pthread_rwlock_unlock(&ps.lock);
		return;
	}
	/* Unchanged, a new walk time (the next mount's age) is enough,
	 * unless the store does not hold the listing yet. */
	if (unchanged) {
		rc = store_touch(ps.st, key, when);
		what = "touch";
	} else if (old) {
		rc = journal(section, old, s, when);
		what = "journal";
	}
	if (unchanged ? rc == -ENOENT : !rc) {
		rc = save(key, s, when);
		what = "save";
	}
	pthread_rwlock_unlock(&ps.lock);
	if (rc)
		failed(rc, what);
	else
		set_problem(NULL);
}

static int add_line(void *arg, int64_t seq, const char *line)
{
	(void)seq;
	return buf_printf(arg, "%s\n", line) ? -ENOMEM : 0;
}

int persist_changes(const char *section, char **data, size_t *len)
{
	struct buf b = { 0 };
	int rc = 0;

	if (acquire())
		rc = store_journal_read(ps.st, section, 0, add_line, &b);
	pthread_rwlock_unlock(&ps.lock);
	if (rc) {
		buf_release(&b);
		failed(rc, "journal read");
		return rc;
	}
	*len = b.len;
	*data = b.len ? buf_steal(&b) : strdup("");
	return *data ? 0 : -ENOMEM;
}

unsigned persist_journal_gen(void)
{
	unsigned g;

	pthread_mutex_lock(&ps.msg_lock);
	g = ps.gen;
	pthread_mutex_unlock(&ps.msg_lock);
	return g;
}

void persist_state(char *buf, size_t len)
{
	pthread_mutex_lock(&ps.msg_lock);
	if (!ps.dir)
		snprintf(buf, len, "off");
	else if (ps.problem[0])
		snprintf(buf, len, "%s: unavailable (%s)", ps.dir, ps.problem);
	else
		snprintf(buf, len, "%s", ps.dir);
	pthread_mutex_unlock(&ps.msg_lock);
}
