/* TTL cache refreshed behind its readers. See cache.h. */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cache {
	const struct cache_ops *ops;
	void *arg;
	struct cache_params p;
	cache_clock_fn clock;
	pthread_mutex_t lock;
	pthread_cond_t done;	/* a load finished */
	pthread_cond_t wake;	/* the loader has work, or must stop */
	pthread_t thread;
	bool thread_live;	/* joinable: running, or exited */
	bool thread_running;	/* in its loop, will see `want` */
	bool stop;
	bool want;		/* a load is asked for */
	bool used;		/* served since it loaded */
	void *value;
	double expires;
	double retry_at;	/* no load before this after a failure */
	bool loading;
	unsigned started;	/* loads started */
	unsigned finished;	/* loads finished */
	int flight_rc;		/* result of the last finished load */
	struct cache_status st;
};

struct cache *cache_new(const struct cache_ops *ops, void *arg,
			const struct cache_params *p, cache_clock_fn clock)
{
	struct cache *c = calloc(1, sizeof(*c));
	pthread_condattr_t ca;

	if (!c)
		return NULL;
	c->ops = ops;
	c->arg = arg;
	c->p = *p;
	c->clock = clock;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done, &ca);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	if (c->thread_live)
		pthread_join(c->thread, NULL);
	if (c->value)
		c->ops->put(c->value);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->wake);
	free(c);
}

/* Replaces the value by v (its reference is the cache's now). */
static void publish(struct cache *c, void *v, double loaded_at)
{
	void *old = c->value;

	c->value = v;
	c->expires = loaded_at + c->p.ttl;
	c->st.loaded_at = loaded_at;
	c->used = false;
	if (c->ops->published)
		c->ops->published(c->arg, old, v);
	if (old)
		c->ops->put(old);
}

/* Runs one load with the lock dropped, then publishes its outcome. */
static void fly(struct cache *c)
{
	char err[sizeof(c->st.last_msg)] = "";
	void *v = NULL;
	double now, age = 0;
	int rc;

	c->loading = c->st.loading = true;
	c->started++;
	c->st.loads++;
	pthread_mutex_unlock(&c->lock);
	rc = c->ops->load(c->arg, &v, &age, err, sizeof(err));
	pthread_mutex_lock(&c->lock);
	now = c->clock();
	if (rc == 0) {
		publish(c, v, now - (age > 0 ? age : 0));
		c->st.stale = c->st.stored = false;
	} else {
		c->st.last_err = rc;
		c->st.err_at = now;
		snprintf(c->st.last_msg, sizeof(c->st.last_msg), "%s",
			 err[0] ? err : strerror(-rc));
		c->st.stale = c->value != NULL;
		c->retry_at = now + c->p.retry;
	}
	c->flight_rc = rc;
	c->finished = c->started;
	c->loading = c->st.loading = false;
	pthread_cond_broadcast(&c->done);
}

static struct timespec deadline_in(double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)seconds;
	ts.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/*
 * Refresh ahead: sleeps until the value reaches that fraction of its TTL,
 * then asks for a load if it was used meanwhile. False when there is
 * nothing to wait for (the loader thread then ends).
 */
static bool wait_ahead(struct cache *c)
{
	double at, now;
	struct timespec ts;

	if (c->p.refresh_ahead <= 0 || c->p.ttl <= 0 || !c->value ||
	    c->st.stale)
		return false;
	at = c->st.loaded_at + c->p.refresh_ahead * c->p.ttl;
	now = c->clock();
	if (now >= at) {
		if (!c->used)
			return false;
		c->want = true;
		return true;
	}
	ts = deadline_in(at - now);
	pthread_cond_timedwait(&c->wake, &c->lock, &ts);
	return true;
}

static void *loader(void *arg)
{
	struct cache *c = arg;

	pthread_mutex_lock(&c->lock);
	while (!c->stop) {
		if (c->want) {
			c->want = false;
			fly(c);
		} else if (!wait_ahead(c)) {
			break;
		}
	}
	c->thread_running = false;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Asks the loader thread for a load, starting it if it is not running. */
static void ask_load(struct cache *c)
{
	c->want = true;
	if (c->thread_running) {
		pthread_cond_signal(&c->wake);
		return;
	}
	if (c->thread_live)
		pthread_join(c->thread, NULL);	/* it has left its loop */
	c->thread_live = c->thread_running =
		pthread_create(&c->thread, NULL, loader, c) == 0;
	if (!c->thread_live) {
		c->want = false;
		fly(c);		/* no thread to be had: load here */
	}
}

/* Waits until load `target` finished or `wait` passed; true if it did. */
static bool wait_load(struct cache *c, unsigned target, double wait)
{
	struct timespec ts = deadline_in(wait);

	while ((int)(c->finished - target) < 0)
		if (pthread_cond_timedwait(&c->done, &c->lock, &ts) ==
		    ETIMEDOUT)
			return (int)(c->finished - target) >= 0;
	return true;
}

/* The load a caller asking now gets: the next one unless one is running. */
static unsigned next_load(struct cache *c)
{
	return c->loading && !c->want ? c->started : c->started + 1;
}

int cache_get(struct cache *c, void **value)
{
	unsigned target;
	double now;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	now = c->clock();
	if (c->value && now < c->expires)
		goto serve;
	if (!c->loading && !c->want && (!c->value || now >= c->retry_at))
		ask_load(c);
	if (c->value && (now - c->st.loaded_at < c->p.max_stale ||
			 !(c->loading || c->want)))
		goto serve;
	/* Nothing to serve, or too old to serve without waiting. */
	target = next_load(c);
	if (!wait_load(c, target, c->p.wait) && !c->value)
		rc = -ETIMEDOUT;
	else if (!c->value)
		rc = c->flight_rc;
serve:
	if (!rc) {
		c->used = true;
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

int cache_refresh(struct cache *c, double wait)
{
	unsigned target;
	int rc;

	pthread_mutex_lock(&c->lock);
	/* A load already running began before this call: ask for another. */
	target = c->loading ? c->started + 1 : next_load(c);
	if (!c->want)
		ask_load(c);
	if (wait <= 0)
		rc = -EINPROGRESS;
	else if (!wait_load(c, target, wait))
		rc = -ETIMEDOUT;
	else
		rc = c->flight_rc;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void cache_seed(struct cache *c, void *value, double age)
{
	pthread_mutex_lock(&c->lock);
	publish(c, value, c->clock() - age);
	c->st.stored = true;
	c->st.stale = false;
	if (!c->loading && !c->want)
		ask_load(c);
	pthread_mutex_unlock(&c->lock);
}

void cache_status(struct cache *c, struct cache_status *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->has_value = c->value != NULL;
	pthread_mutex_unlock(&c->lock);
}
