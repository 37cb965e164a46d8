/* Single-flight TTL cache. See cache.h. */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cache {
	const struct cache_ops *ops;
	void *arg;
	double ttl;
	double retry;
	cache_clock_fn clock;
	pthread_mutex_t lock;
	pthread_cond_t done;
	void *value;
	double expires;
	bool loading;
	unsigned started;	/* flights started */
	unsigned finished;	/* flights finished */
	int flight_rc;		/* result of the last finished flight */
	struct cache_status st;
};

struct cache *cache_new(const struct cache_ops *ops, void *arg, double ttl,
			double retry, cache_clock_fn clock)
{
	struct cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->ops = ops;
	c->arg = arg;
	c->ttl = ttl;
	c->retry = retry;
	c->clock = clock;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->done, NULL);
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	if (c->value)
		c->ops->put(c->value);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	free(c);
}

/* Runs one load with the lock dropped, then publishes its outcome. */
static void fly(struct cache *c)
{
	char err[sizeof(c->st.last_msg)] = "";
	void *v = NULL;
	double now;
	int rc;

	c->loading = c->st.loading = true;
	c->started++;
	c->st.loads++;
	pthread_mutex_unlock(&c->lock);
	rc = c->ops->load(c->arg, &v, err, sizeof(err));
	pthread_mutex_lock(&c->lock);
	now = c->clock();
	if (rc == 0) {
		void *old = c->value;

		c->value = v;
		if (c->ops->published)
			c->ops->published(c->arg, old, v);
		if (old)
			c->ops->put(old);
		c->expires = now + c->ttl;
		c->st.loaded_at = now;
		c->st.stale = false;
	} else {
		c->st.last_err = rc;
		c->st.err_at = now;
		snprintf(c->st.last_msg, sizeof(c->st.last_msg), "%s",
			 err[0] ? err : strerror(-rc));
		c->st.stale = c->value != NULL;
		c->expires = now + c->retry;
	}
	c->flight_rc = rc;
	c->finished = c->started;
	c->loading = c->st.loading = false;
	pthread_cond_broadcast(&c->done);
}

int cache_get(struct cache *c, void **value)
{
	unsigned want = 0;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (c->value && c->clock() < c->expires)
			break;
		if (want && c->finished >= want) {
			/* Our flight ended: its value or its error. */
			if (!c->value)
				rc = c->flight_rc;
			break;
		}
		if (c->loading) {
			want = c->started;
			pthread_cond_wait(&c->done, &c->lock);
			continue;
		}
		fly(c);
		want = c->finished;
	}
	if (!rc) {
		c->ops->get(c->value);
		*value = c->value;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void *cache_peek(struct cache *c)
{
	void *v;

	pthread_mutex_lock(&c->lock);
	v = c->value;
	if (v)
		c->ops->get(v);
	pthread_mutex_unlock(&c->lock);
	return v;
}

void cache_expire(struct cache *c)
{
	pthread_mutex_lock(&c->lock);
	c->expires = 0;
	pthread_mutex_unlock(&c->lock);
}

void cache_status(struct cache *c, struct cache_status *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->has_value = c->value != NULL;
	pthread_mutex_unlock(&c->lock);
}
