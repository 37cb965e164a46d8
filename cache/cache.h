/*
 * A TTL cache of one refcounted value with single-flight loading: many
 * concurrent callers of an absent or expired value cause exactly one load;
 * a failed load never replaces a good value (it is served stale instead).
 * It knows nothing of FUSE, HTTP or JSON: values are opaque and loading is
 * a function pointer handed in by the owner. No lock is held while loading.
 */
#ifndef CONNFS_CACHE_H
#define CONNFS_CACHE_H

#include <stdbool.h>
#include <stddef.h>

struct cache_ops {
	/* Produces a new value holding one reference; 0 or -errno. */
	int (*load)(void *arg, void **value, char *err, size_t errlen);
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

struct cache_status {
	bool has_value;
	bool stale;		/* the last refresh failed; value is older */
	bool loading;
	double loaded_at;	/* clock time of the value's load */
	unsigned loads;		/* loads started so far */
	int last_err;		/* negative errno of the last failed load */
	double err_at;
	char last_msg[400];
};

struct cache;

/*
 * ttl: seconds a value stays fresh. retry: seconds to keep serving a stale
 * value after a failed refresh before trying again.
 */
struct cache *cache_new(const struct cache_ops *ops, void *arg, double ttl,
			double retry, cache_clock_fn clock);
void cache_free(struct cache *c);

/*
 * A fresh (or, after a failed refresh, stale) value: loads when absent or
 * expired, waiting for a load already in flight. Returns 0 and a new
 * reference in *value, or the load's -errno when there is no value at all.
 */
int cache_get(struct cache *c, void **value);
/* The current value (new reference) without loading; NULL if none. */
void *cache_peek(struct cache *c);
/* Marks the value expired: the next cache_get() loads. */
void cache_expire(struct cache *c);
void cache_status(struct cache *c, struct cache_status *st);

#endif
