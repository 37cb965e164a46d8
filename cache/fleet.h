/*
 * The fleet tier: listings, leases, rate budgets and the change journal
 * shared by every host that mounts with the same Redis and prefix.
 *
 * Keys (P = prefix, ID = a listing key; the {ID} hash tag keeps one
 * listing's keys in one slot):
 *   P:{ID}:listing    the listing, one blob (blob.h)
 *   P:{ID}:meta       hash: gen (grows with every publish, never reused),
 *                     at (Redis time of the publish, microseconds)
 *   P:{ID}:lease      the walker's owner string, SET NX PX, renewed
 *   P:{ID}:staging:O  a listing being uploaded by owner O
 *   P:rate:{B}        the GCRA state of rate budget B
 *   P:journal         a capped stream of journal lines
 * and the channel P:published, on which "ID GEN" announces a publish.
 *
 * Every time is Redis server time, so hosts whose clocks disagree agree on
 * ages, leases and budgets. Every call is bounded by the call timeout; a
 * failure marks the tier unavailable (fleet_state says why), after which
 * calls fail at once with -ENOTCONN while a thread of the tier reconnects
 * every second, so callers fall back to working alone without waiting.
 *
 * It knows nothing of FUSE, HTTP or JSON. Thread-safe.
 */
#ifndef CONNFS_FLEET_H
#define CONNFS_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis.h"
#include "store.h"

struct fleet_params {
	const struct redis_target *target;
	const char *prefix;
	double lease;		/* seconds a lease lasts unless renewed */
	double timeout;		/* seconds per Redis call */
	/*
	 * Optional: told when the tier becomes unavailable (reason) and
	 * available again (NULL), from whichever thread saw it.
	 */
	void (*changed)(const char *reason);
};

struct fleet;

/*
 * Connects once, logs in and tries a write under the prefix: 0, or -errno
 * with the reason in err (-EACCES: the login or the write was refused).
 */
int fleet_check(const struct fleet_params *p, char *err, size_t errlen);
/* Starts the tier; its thread connects in the background. */
int fleet_open(const struct fleet_params *p, struct fleet **f);
void fleet_close(struct fleet *f);
/* "URL (prefix P): ok" or "URL (prefix P): unavailable (reason)". */
void fleet_state(struct fleet *f, char *buf, size_t len);

/*
 * Asks to be told (from the tier's thread, within about a second) of each
 * publish of key: fn(arg, gen). fn must not block.
 */
typedef void (*fleet_watch_fn)(void *arg, uint64_t gen);
int fleet_watch(struct fleet *f, const char *key, fleet_watch_fn fn,
		void *arg);

struct fleet_meta {
	uint64_t gen;		/* 0: nothing published */
	double age;		/* seconds since the publish */
	bool leased;		/* some host holds the lease */
};
int fleet_meta(struct fleet *f, const char *key, struct fleet_meta *m);

/*
 * Reads key's listing: *gen and *age of it, *count from its blob, fn per
 * item. -ENOENT when nothing is published; -EBADMSG (reason in err) when
 * the blob is not a listing of key: the caller discards what fn got.
 */
int fleet_fetch(struct fleet *f, const char *key, uint64_t *gen,
		double *age, size_t *count, store_item_fn fn, void *arg,
		char *err, size_t errlen);

/*
 * The lease on key: 1 taken (renewed by the tier until released), 0 held
 * by another host, or -errno.
 */
int fleet_lease_take(struct fleet *f, const char *key);
void fleet_lease_release(struct fleet *f, const char *key);

/*
 * Publishing a listing (only while holding its lease): begin, one item
 * per file in order, commit. The items are compressed and uploaded as they
 * come; commit swaps the new listing in, bumps the generation and appends
 * the n journal lines of the walk (of section, as named on this host) in
 * one atomic step, so a listing is never seen half written nor its journal
 * without it. -ESTALE when the lease was lost meanwhile. Commit and abort
 * free *t.
 */
struct fleet_txn;
int fleet_publish_begin(struct fleet *f, const char *key, size_t count,
			struct fleet_txn **t);
int fleet_publish_item(struct fleet_txn *t, const struct store_item *it);
int fleet_publish_commit(struct fleet_txn *t, const char *section,
			 const char *const *lines, size_t n, uint64_t *gen);
void fleet_publish_abort(struct fleet_txn *t);

/*
 * A walk found the published listing of key (generation gen) unchanged:
 * its age starts again, with no new generation, so no host fetches it
 * again. Only while holding the lease. 1 done, 0 when gen is no longer
 * the published one (publish instead), -ESTALE when the lease was lost,
 * or -errno.
 */
int fleet_touch(struct fleet *f, const char *key, uint64_t gen);

/*
 * Rate budget: reserves the next request slot of budget (rate per second,
 * burst) for every host together. *wait = seconds until the slot (0: go
 * now). -ETIMEDOUT (nothing reserved) when it is further than max_wait.
 */
int fleet_rate_take(struct fleet *f, const char *budget, double rate,
		    double burst, double max_wait, double *wait);
/* Holds every host's requests of budget back for secs (Retry-After). */
void fleet_rate_pause(struct fleet *f, const char *budget, double rate,
		      double burst, double secs);

/*
 * The shared journal: every line published for the listed keys (all keys
 * when nkeys is 0), oldest first, seq counting from 1.
 */
int fleet_journal_read(struct fleet *f, const char *const *keys,
		       size_t nkeys, store_line_fn fn, void *arg);

#endif
