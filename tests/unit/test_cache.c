/*
 * Unit tests for the single-flight TTL cache (cache/cache.c) with a fake
 * clock and a counting loader: loads on first use and after the TTL only,
 * stale values served (and the error recorded) when a refresh fails, the
 * retry interval, errors when there is nothing to serve, cache_refresh(),
 * exactly one load for 16 concurrent cold callers, cache_peek() never
 * loading, and every value freed exactly once. No FUSE, no network.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "harness.h"

#define TTL 10.0
#define RETRY 3.0
#define NTHREADS 16

/* A refcounted value that counts how often it is freed. */
struct val {
	atomic_int refs;
	int gen;
};

static atomic_int vals_alive, vals_freed, bad_puts;

static void val_get(void *v)
{
	atomic_fetch_add(&((struct val *)v)->refs, 1);
}

static void val_put(void *p)
{
	struct val *v = p;
	int old = atomic_fetch_sub(&v->refs, 1);

	if (old <= 0) {
		atomic_fetch_add(&bad_puts, 1);
		return;
	}
	if (old == 1) {
		atomic_fetch_sub(&vals_alive, 1);
		atomic_fetch_add(&vals_freed, 1);
		free(v);
	}
}

/* The loader: counts calls, can fail, can take its time. */
struct loader {
	atomic_int calls;
	int fail;		/* negative errno to fail with, or 0 */
	const char *msg;	/* error text, or NULL */
	long sleep_ms;
	int gen;
	double age;		/* reported as the age of each value */
	atomic_bool gated;	/* loads wait until the test opens the gate */
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts))
		;
}

static int load(void *arg, void **value, double *age, char *err,
		size_t errlen)
{
	struct loader *l = arg;
	struct val *v;

	atomic_fetch_add(&l->calls, 1);
	if (l->sleep_ms)
		sleep_ms(l->sleep_ms);
	while (atomic_load(&l->gated))
		sleep_ms(1);
	if (l->fail) {
		if (l->msg)
			snprintf(err, errlen, "%s", l->msg);
		return l->fail;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	atomic_init(&v->refs, 1);
	v->gen = ++l->gen;
	atomic_fetch_add(&vals_alive, 1);
	*value = v;
	*age = l->age;
	return 0;
}

static const struct cache_ops ops = {
	.load = load,
	.get = val_get,
	.put = val_put,
};

/* No stale serving, no refresh ahead: every expired get waits. */
static const struct cache_params waiting = {
	.ttl = TTL, .retry = RETRY, .max_stale = 0, .wait = 30,
};

static double fake_now;

static double fake_clock(void)
{
	return fake_now;
}

static struct val *get(struct cache *c, int *rc)
{
	void *v = NULL;

	*rc = cache_get(c, &v);
	return v;
}

/* --- tests -------------------------------------------------------------- */

static void test_ttl(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct cache_status st;
	struct val *v1, *v2, *v;
	int rc;

	fake_now = 1000;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	CHECK(c != NULL);
	if (!c)
		return;
	cache_status(c, &st);
	CHECK(!st.has_value);
	CHECK_INT(st.loads, 0);

	/* First get loads once. */
	v1 = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK_INT(atomic_load(&l.calls), 1);
	CHECK(v1 && v1->gen == 1);
	cache_status(c, &st);
	CHECK(st.has_value && !st.stale && !st.loading);
	CHECK_INT(st.loads, 1);
	CHECK(st.loaded_at == 1000);

	/* Within the TTL: no load, same value. */
	for (int i = 0; i < 5; i++) {
		fake_now += 1.9;
		v = get(c, &rc);
		CHECK_INT(rc, 0);
		CHECK(v == v1);
		val_put(v);
	}
	CHECK_INT(atomic_load(&l.calls), 1);

	/* After the TTL: exactly one load, a new value. */
	fake_now = 1000 + TTL + 0.01;
	v2 = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v2 && v2 != v1 && v2->gen == 2);
	v = get(c, &rc);
	CHECK(v == v2);
	val_put(v);
	CHECK_INT(atomic_load(&l.calls), 2);
	/* The old value lives on while its holder keeps it. */
	CHECK_INT(atomic_load(&vals_alive), 2);
	val_put(v1);
	CHECK_INT(atomic_load(&vals_alive), 1);
	val_put(v2);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* A value another host loaded ages from that load: it expires sooner. */
static void test_loaded_age(void)
{
	struct loader l = { .age = 7 };
	struct cache_status st;
	struct cache *c;
	struct val *v1, *v;
	int rc;

	fake_now = 5000;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	v1 = get(c, &rc);
	CHECK_INT(rc, 0);
	cache_status(c, &st);
	CHECK(st.loaded_at == 5000 - 7);
	/* Still fresh 2.9 s later, expired after TTL - 7 s. */
	fake_now = 5000 + 2.9;
	v = get(c, &rc);
	CHECK(v == v1);
	val_put(v);
	CHECK_INT(atomic_load(&l.calls), 1);
	fake_now = 5000 + TTL - 7 + 0.01;
	l.age = 0;
	v = get(c, &rc);
	CHECK(v && v != v1);
	CHECK_INT(atomic_load(&l.calls), 2);
	val_put(v);
	val_put(v1);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

static void test_stale(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct cache_status st;
	struct val *good, *v;
	int rc;

	fake_now = 5000;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	good = get(c, &rc);
	CHECK_INT(rc, 0);

	/* The refresh fails: the old value is served, the error recorded. */
	l.fail = -ETIMEDOUT;
	l.msg = "eb: deadline of 30 s reached";
	fake_now += TTL + 1;
	v = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v == good);
	val_put(v);
	CHECK_INT(atomic_load(&l.calls), 2);
	cache_status(c, &st);
	CHECK(st.has_value);
	CHECK(st.stale);
	CHECK_INT(st.last_err, -ETIMEDOUT);
	CHECK_STR(st.last_msg, "eb: deadline of 30 s reached");
	CHECK(st.err_at == fake_now);
	CHECK(st.loaded_at == 5000);

	/* No new attempt until `retry` seconds have passed. */
	fake_now += RETRY - 0.5;
	v = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v == good);
	val_put(v);
	CHECK_INT(atomic_load(&l.calls), 2);

	/* Then one attempt (failing again: still stale, still served). */
	l.msg = NULL;
	l.fail = -EACCES;
	fake_now += 0.6;
	v = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v == good);
	val_put(v);
	CHECK_INT(atomic_load(&l.calls), 3);
	cache_status(c, &st);
	CHECK(st.stale);
	CHECK_INT(st.last_err, -EACCES);
	CHECK_STR(st.last_msg, strerror(EACCES));

	/* A successful refresh ends the stale state. */
	l.fail = 0;
	fake_now += RETRY + 0.1;
	v = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v && v != good && v->gen == 2);
	cache_status(c, &st);
	CHECK(!st.stale);
	CHECK_INT(atomic_load(&l.calls), 4);
	val_put(v);
	val_put(good);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

static void test_no_value_errors(void)
{
	struct loader l = { .fail = -EACCES, .msg = "HTTP 401" };
	struct cache *c;
	struct cache_status st;
	struct val *v;
	int rc;

	fake_now = 100;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	v = get(c, &rc);
	CHECK_INT(rc, -EACCES);
	CHECK(v == NULL);
	CHECK_INT(atomic_load(&l.calls), 1);
	cache_status(c, &st);
	CHECK(!st.has_value);
	CHECK(!st.stale);	/* nothing to be stale */
	CHECK_INT(st.last_err, -EACCES);
	CHECK_STR(st.last_msg, "HTTP 401");

	l.fail = -ETIMEDOUT;
	l.msg = NULL;
	fake_now += RETRY + 1;
	v = get(c, &rc);
	CHECK_INT(rc, -ETIMEDOUT);
	CHECK(v == NULL);
	cache_status(c, &st);
	CHECK_INT(st.last_err, -ETIMEDOUT);
	CHECK_STR(st.last_msg, strerror(ETIMEDOUT));
	CHECK(cache_peek(c) == NULL);

	/* And it recovers as soon as the loader does. */
	l.fail = 0;
	fake_now += RETRY + 1;
	v = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK(v != NULL);
	if (v)
		val_put(v);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

static void test_expire(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct val *a, *b;
	int rc;

	fake_now = 0;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	a = get(c, &rc);
	CHECK_INT(cache_refresh(c, 30), 0);
	b = get(c, &rc);
	CHECK_INT(rc, 0);
	CHECK_INT(atomic_load(&l.calls), 2);
	CHECK(a && b && a != b && b->gen == 2);
	val_put(a);
	val_put(b);
	/* Fresh again after the forced reload. */
	b = get(c, &rc);
	CHECK_INT(atomic_load(&l.calls), 2);
	val_put(b);
	/* A refresh not waited for runs behind; a get meanwhile costs
	 * nothing more. */
	CHECK_INT(cache_refresh(c, 0), -EINPROGRESS);
	b = get(c, &rc);
	val_put(b);
	CHECK_INT(cache_refresh(c, 30), 0);
	CHECK(atomic_load(&l.calls) == 3 || atomic_load(&l.calls) == 4);
	b = get(c, &rc);
	val_put(b);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* Publication: each successful load once, old then new, never a failure. */
static int pub_calls, pub_old_gen, pub_new_gen;

static void published(void *arg, void *old, void *value)
{
	(void)arg;
	pub_calls++;
	pub_old_gen = old ? ((struct val *)old)->gen : 0;
	pub_new_gen = ((struct val *)value)->gen;
	/* The old value is still referenced by the cache here. */
	CHECK(!old || atomic_load(&((struct val *)old)->refs) >= 1);
}

static const struct cache_ops pub_ops = {
	.load = load,
	.get = val_get,
	.put = val_put,
	.published = published,
};

static void test_published(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct val *a;
	int rc;

	fake_now = 0;
	c = cache_new(&pub_ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	a = get(c, &rc);
	CHECK_INT(pub_calls, 1);
	CHECK_INT(pub_old_gen, 0);
	CHECK_INT(pub_new_gen, 1);
	val_put(a);
	a = get(c, &rc);	/* fresh: no load, no publication */
	val_put(a);
	CHECK_INT(pub_calls, 1);
	CHECK_INT(cache_refresh(c, 30), 0);
	a = get(c, &rc);
	CHECK_INT(pub_calls, 2);
	CHECK_INT(pub_old_gen, 1);
	CHECK_INT(pub_new_gen, 2);
	CHECK(a && a->gen == 2);
	val_put(a);
	l.fail = -EIO;
	CHECK_INT(cache_refresh(c, 30), -EIO);
	a = get(c, &rc);	/* stale: served, not published */
	CHECK_INT(pub_calls, 2);
	CHECK(a && a->gen == 2);
	val_put(a);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

static double real_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Polls up to 10 s for the loader to have been called n times. */
static bool calls_reach(struct loader *l, int n)
{
	for (int i = 0; i < 10000 && atomic_load(&l->calls) < n; i++)
		sleep_ms(1);
	return atomic_load(&l->calls) >= n;
}

/* An expired value is served at once while one refresh runs behind it. */
static void test_serve_while_refreshing(void)
{
	static const struct cache_params p = {
		.ttl = TTL, .retry = RETRY, .max_stale = 100, .wait = 30,
	};
	struct loader l = { .gen = 0 };
	struct cache_status st;
	struct cache *c = cache_new(&ops, &l, &p, fake_clock);
	struct val *a;
	int rc;

	fake_now = 0;
	a = get(c, &rc);
	CHECK(a && a->gen == 1);
	val_put(a);
	atomic_store(&l.gated, true);
	fake_now = TTL + 1;
	for (int i = 0; i < 5; i++) {
		a = get(c, &rc);
		CHECK(rc == 0 && a && a->gen == 1);
		val_put(a);
	}
	CHECK(calls_reach(&l, 2));
	cache_status(c, &st);
	CHECK(st.loading);
	CHECK_INT(atomic_load(&l.calls), 2);
	atomic_store(&l.gated, false);
	CHECK_INT(cache_refresh(c, 30), 0);	/* a third, after the second */
	a = get(c, &rc);
	CHECK(a && a->gen == 3);
	val_put(a);
	/* Too old to serve without waiting: the reader waits. */
	fake_now += 200;
	a = get(c, &rc);
	CHECK(a && a->gen == 4);
	val_put(a);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* A caller waits `wait` at most; the load goes on and is never doubled. */
static void test_wait_times_out_and_load_goes_on(void)
{
	static const struct cache_params p = {
		.ttl = TTL, .retry = RETRY, .max_stale = 100, .wait = 0.05,
	};
	struct loader l = { .gen = 0 };
	struct cache *c = cache_new(&ops, &l, &p, fake_clock);
	struct val *a;
	int rc;

	fake_now = 0;
	atomic_store(&l.gated, true);
	a = get(c, &rc);
	CHECK(a == NULL && rc == -ETIMEDOUT);
	a = get(c, &rc);
	CHECK(a == NULL && rc == -ETIMEDOUT);
	CHECK_INT(atomic_load(&l.calls), 1);
	atomic_store(&l.gated, false);
	for (int i = 0; i < 1000 && !(a = cache_peek(c)); i++)
		sleep_ms(5);
	CHECK(a && a->gen == 1);
	val_put(a);
	a = get(c, &rc);
	CHECK(rc == 0 && a && a->gen == 1);
	val_put(a);
	CHECK_INT(atomic_load(&l.calls), 1);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* A seeded value is served at once, marked stored, and refreshed. */
static void test_seed(void)
{
	static const struct cache_params p = {
		.ttl = TTL, .retry = RETRY, .max_stale = 100, .wait = 30,
	};
	struct loader l = { .gen = 100 };
	struct cache *c = cache_new(&ops, &l, &p, fake_clock);
	struct val *v = calloc(1, sizeof(*v)), *a;
	struct cache_status st;
	int rc;

	fake_now = 50;
	if (!c || !v)
		return;
	atomic_init(&v->refs, 1);
	v->gen = 7;
	atomic_fetch_add(&vals_alive, 1);
	atomic_store(&l.gated, true);
	cache_seed(c, v, 20);
	a = get(c, &rc);
	CHECK(rc == 0 && a == v);
	val_put(a);
	cache_status(c, &st);
	CHECK(st.stored && st.has_value && st.loaded_at == 30);
	atomic_store(&l.gated, false);
	CHECK(calls_reach(&l, 1));
	for (int i = 0; i < 1000; i++) {
		cache_status(c, &st);
		if (!st.stored)
			break;
		sleep_ms(5);
	}
	CHECK(!st.stored);
	a = get(c, &rc);
	CHECK(a && a->gen == 101);
	val_put(a);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* Refresh ahead: a value in use is reloaded before it expires; an idle
 * one is not. Real time, with a short TTL. */
static void test_refresh_ahead(void)
{
	static const struct cache_params p = {
		.ttl = 0.3, .retry = RETRY, .max_stale = 100,
		.refresh_ahead = 0.5, .wait = 30,
	};
	struct loader used = { .gen = 0 }, idle = { .gen = 0 };
	struct cache *c = cache_new(&ops, &used, &p, real_clock);
	struct cache *d = cache_new(&ops, &idle, &p, real_clock);
	struct val *a;
	int rc;

	a = get(c, &rc);
	val_put(a);
	a = get(c, &rc);	/* in use */
	val_put(a);
	a = get(d, &rc);
	val_put(a);
	CHECK(calls_reach(&used, 2));
	sleep_ms(600);
	/* The idle one loaded once: its first get counts as its use. */
	CHECK(atomic_load(&idle.calls) <= 2);
	cache_free(c);
	cache_free(d);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

static void test_peek(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct val *a, *p;
	int rc;

	fake_now = 0;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	CHECK(cache_peek(c) == NULL);
	CHECK_INT(atomic_load(&l.calls), 0);
	a = get(c, &rc);
	fake_now += TTL * 5;	/* expired: peek still does not load */
	p = cache_peek(c);
	CHECK(p == a);
	CHECK_INT(atomic_load(&l.calls), 1);
	if (p)
		CHECK_INT(atomic_load(&p->refs), 3);	/* cache, a, p */
	val_put(p);
	val_put(a);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);
}

/* --- single flight ------------------------------------------------------ */

struct racer {
	struct cache *c;
	pthread_barrier_t *start;
	struct val *got;
	int rc;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	void *v = NULL;

	pthread_barrier_wait(r->start);
	r->rc = cache_get(r->c, &v);
	r->got = v;
	return NULL;
}

/* NTHREADS cold callers; returns how many loads ran. */
static int stampede(struct cache *c, struct racer *r)
{
	pthread_t tid[NTHREADS];
	pthread_barrier_t start;
	int started = 0;

	pthread_barrier_init(&start, NULL, NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		r[i] = (struct racer){ .c = c, .start = &start, .rc = 1 };
		if (pthread_create(&tid[i], NULL, race, &r[i]) == 0)
			started++;
	}
	CHECK_INT(started, NTHREADS);
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&start);
	return started;
}

static void test_single_flight(void)
{
	struct loader l = { .sleep_ms = 200 };
	struct racer r[NTHREADS];
	struct cache *c;
	int n;

	fake_now = 0;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	n = stampede(c, r);
	CHECK_INT(atomic_load(&l.calls), 1);
	for (int i = 0; i < n; i++) {
		CHECK_INT(r[i].rc, 0);
		CHECK(r[i].got != NULL && r[i].got == r[0].got);
	}
	if (r[0].got)
		CHECK_INT(atomic_load(&r[0].got->refs), NTHREADS + 1);
	for (int i = 0; i < n; i++)
		if (r[i].got)
			val_put(r[i].got);

	/* Expired: again exactly one load for all of them. */
	fake_now += TTL + 1;
	n = stampede(c, r);
	CHECK_INT(atomic_load(&l.calls), 2);
	for (int i = 0; i < n; i++) {
		CHECK_INT(r[i].rc, 0);
		CHECK(r[i].got != NULL && r[i].got == r[0].got);
		if (r[i].got)
			val_put(r[i].got);
	}
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 0);

	/* A failing cold load: one load, every caller gets its error. */
	l = (struct loader){ .sleep_ms = 200, .fail = -ETIMEDOUT };
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	n = stampede(c, r);
	CHECK_INT(atomic_load(&l.calls), 1);
	for (int i = 0; i < n; i++) {
		CHECK_INT(r[i].rc, -ETIMEDOUT);
		CHECK(r[i].got == NULL);
	}
	cache_free(c);
}

static void test_refcount_balance(void)
{
	struct loader l = { .gen = 0 };
	struct cache *c;
	struct val *held[4];
	int rc, freed0 = atomic_load(&vals_freed);

	fake_now = 0;
	c = cache_new(&ops, &l, &waiting, fake_clock);
	if (!c)
		return;
	for (int i = 0; i < 4; i++) {
		held[i] = get(c, &rc);
		fake_now += TTL + 1;	/* every get loads a new value */
	}
	CHECK_INT(atomic_load(&l.calls), 4);
	CHECK_INT(atomic_load(&vals_alive), 4);
	/* The cache holds only the newest; the others live by our refs. */
	for (int i = 0; i < 3; i++)
		val_put(held[i]);
	CHECK_INT(atomic_load(&vals_freed) - freed0, 3);
	cache_free(c);
	CHECK_INT(atomic_load(&vals_alive), 1);	/* still held by us */
	val_put(held[3]);
	CHECK_INT(atomic_load(&vals_freed) - freed0, 4);
	CHECK_INT(atomic_load(&vals_alive), 0);
	cache_free(NULL);
}

int main(void)
{
	test_ttl();
	test_loaded_age();
	test_stale();
	test_no_value_errors();
	test_expire();
	test_published();
	test_serve_while_refreshing();
	test_wait_times_out_and_load_goes_on();
	test_seed();
	test_refresh_ahead();
	test_peek();
	test_single_flight();
	test_refcount_balance();
	CHECK_INT(atomic_load(&bad_puts), 0);
	CHECK_INT(atomic_load(&vals_alive), 0);
	return harness_done("test_cache");
}
