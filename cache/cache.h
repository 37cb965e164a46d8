/*
 * A TTL cache of one refcounted value, refreshed behind its readers.
 *
 * Loads run on a thread of the cache's own, never on a caller's: many
 * concurrent callers of an absent or expired value cause exactly one load,
 * a caller that needs a value waits for it at most `wait` seconds (the
 * load goes on after that, and its value is served when it is done), and
 * while a value younger than `max_stale` exists nobody waits at all: an
 * expired value is served while the refresh runs behind it. A failed load
 * never replaces a good value. With `refresh_ahead`, a value that was used
 * since it loaded is refreshed at that fraction of the TTL, so a value in
 * use never even expires.
 *
 * It knows nothing of FUSE, HTTP or JSON: values are opaque and loading is
 * a function pointer handed in by the owner. No lock is held while loading.
 */
#ifndef CONNFS_CACHE_H
#define CONNFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>

struct cache_ops {
	/*
	 * Produces a new value holding one reference; 0 or -errno. *age
	 * (0 when the loader does not set it) is how many seconds old the
	 * value already is: one another host loaded ages from that load.
	 */
	int (*load)(void *arg, void **value, double *age, char *err,
		    size_t errlen);
	void (*get)(void *value);	/* takes a reference */
	void (*put)(void *value);	/* drops a reference */
	/*
	 * Optional: told of each successful load right after its value
	 * replaced old (NULL at first; old == value when the loader kept
	 * it), so that what depends on the value is changed only once every
	 * reader gets the new one. Called with the cache's lock held: it
	 * must not block or call back into this cache.
	 */
	void (*published)(void *arg, void *old, void *value);
};

/* Monotonic seconds; a seam so tests can drive time by hand. */
typedef double (*cache_clock_fn)(void);

struct cache_params {
	double ttl;		/* seconds a value stays fresh */
	double retry;		/* after a failed load: seconds until the next */
	double max_stale;	/* serve an expired value this long, no wait */
	double refresh_ahead;	/* fraction of ttl; 0 = off */
	double wait;		/* longest a caller waits for a load */
};

struct cache_status {
	bool has_value;
	bool stale;		/* the last refresh failed; value is older */
	bool stored;		/* the value was seeded, not loaded yet */
	bool loading;
	double loaded_at;	/* clock time of the value's load */
	unsigned loads;		/* loads started so far */
	int last_err;		/* negative errno of the last failed load */
	double err_at;
	char last_msg[400];
};

struct cache;

struct cache *cache_new(const struct cache_ops *ops, void *arg,
			const struct cache_params *p, cache_clock_fn clock);
/* Stops the loader thread (waiting for a load in flight) and frees. */
void cache_free(struct cache *c);

/*
 * A value to serve (new reference in *value): a fresh one, or an expired
 * one younger than max_stale while it is refreshed in the background, or
 * after a failed refresh the stale one. With nothing to serve, waits up to
 * `wait` for the load: its -errno, or -ETIMEDOUT while it goes on.
 */
int cache_get(struct cache *c, void **value);
/* The current value (new reference) without loading; NULL if none. */
void *cache_peek(struct cache *c);
/*
 * Loads anew: a load that starts after this call. Waits up to `wait`
 * seconds (0: not at all) for it; 0, its -errno, or -ETIMEDOUT when it is
 * still running (-EINPROGRESS when not asked to wait).
 */
int cache_refresh(struct cache *c, double wait);
/*
 * Serves value (takes the caller's reference) as loaded `age` seconds ago,
 * marked stored until a load replaces it, and starts that load.
 */
void cache_seed(struct cache *c, void *value, double age);
void cache_status(struct cache *c, struct cache_status *st);

#endif
