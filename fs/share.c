/*
 * Fleet mode (see share.h). A directory's load goes like this:
 *
 *   1. The listing in Redis is fresh (younger than the TTL, or than the
 *      refresh-ahead point): take it, no API request. If this host has
 *      that generation already, keep its own.
 *   2. Otherwise take the lease. The holder walks, saves locally, and
 *      publishes the listing with its journal in one atomic step; the
 *      others keep serving what they have (a cold host waits, as for any
 *      load) and poll the generation until it changes or the lease is
 *      gone (its holder died: then one of them takes the lease).
 *   3. Redis unavailable at any step: walk alone, as without a fleet.
 *
 * A refresh someone asked for (connfs refresh, opendir with ttl = 0)
 * skips step 1: it wants a walk that starts now, not the last one.
 *
 * Hosts that did not ask hear of a publish from the tier's thread and
 * refresh, which is step 1. A listing from Redis that fails validation
 * is logged once and never served: the next walk replaces it.
 */
#include "share.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fleet.h"
#include "journal.h"
#include "log.h"
#include "persist.h"
#include "ratelimit.h"

#define DEFAULT_LEASE 10.0	/* seconds; renewed every third of it */
#define CALL_TIMEOUT 1.0	/* seconds per Redis call */
#define WAIT_POLL 0.1		/* seconds between looks at a lease holder */

/* A directory's rate budget, handed to its rate limiter. */
struct budget {
	struct ratelimit_shared ops;
	const char *key;
};

static struct {
	bool on;
	struct redis_target target;
	char prefix[128];
	double lease;
	struct fleet *fleet;
	struct budget *budgets;
	pthread_mutex_t lock;	/* guards live */
	bool live;		/* pickups may refresh caches */
} sh = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int parse_lease(const char *s, double *out, char *err, size_t errlen)
{
	char *end;
	double v;

	if (!s) {
		*out = DEFAULT_LEASE;
		return 0;
	}
	v = strtod(s, &end);
	if (end == s || *end || !(v >= 1 && v <= 3600)) {
		snprintf(err, errlen, "-o redis_lease=%s: a number of seconds "
			 "from 1 to 3600", s);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static bool valid_prefix(const char *p)
{
	if (!p[0] || strlen(p) >= sizeof(sh.prefix))
		return false;
	for (; *p; p++)
		if (*p <= ' ' || *p == '{' || *p == '}' || *p == 0x7f)
			return false;
	return true;
}

static void changed(const char *reason)
{
	if (reason)
		log_msg(LOG_WARNING, "fleet: %s (prefix %s) unavailable: %s; "
			"walking alone until it answers", sh.target.display,
			sh.prefix, reason);
	else
		log_msg(LOG_NOTICE, "fleet: %s (prefix %s) answers again",
			sh.target.display, sh.prefix);
}

static struct fleet_params params(void)
{
	return (struct fleet_params){ .target = &sh.target,
				      .prefix = sh.prefix,
				      .lease = sh.lease,
				      .timeout = CALL_TIMEOUT,
				      .changed = changed };
}

int share_configure(const struct share_options *o, bool verify, char *err,
		    size_t errlen)
{
	const char *prefix = o->prefix ? o->prefix : "connfs";
	struct fleet_params p;
	int rc;

	err[0] = 0;
	if (!o->url) {
		if (o->password_file || o->prefix || o->lease) {
			snprintf(err, errlen, "redis_password_file, "
				 "redis_prefix and redis_lease need -o redis=");
			return -EINVAL;
		}
		return 0;
	}
	if (!valid_prefix(prefix)) {
		snprintf(err, errlen, "-o redis_prefix=%s: up to 127 "
			 "printable characters, no spaces or braces", prefix);
		return -EINVAL;
	}
	snprintf(sh.prefix, sizeof(sh.prefix), "%s", prefix);
	if ((rc = parse_lease(o->lease, &sh.lease, err, errlen)) ||
	    (rc = redis_parse_url(o->url, &sh.target, err, errlen)))
		return rc;
	if (o->password_file &&
	    (rc = redis_read_password(&sh.target, o->password_file, err,
				      errlen)))
		return rc;
	sh.on = true;
	if (!verify)
		return 0;
	p = params();
	rc = fleet_check(&p, err, errlen);
	/* Not answering is a state to wait out; a refusal is a mistake. */
	if (rc == -EACCES || rc == -EROFS || rc == -ENOSPC || rc == -EIO ||
	    rc == -EPROTO)
		return rc;
	return 0;
}

static int budget_take(void *arg, double rate, double burst, double max_wait,
		       double *wait)
{
	const struct budget *b = arg;

	return fleet_rate_take(sh.fleet, b->key, rate, burst, max_wait, wait);
}

static void budget_pause(void *arg, double rate, double burst, double secs)
{
	const struct budget *b = arg;

	fleet_rate_pause(sh.fleet, b->key, rate, burst, secs);
}

/* From the tier's thread: another host published d's listing. */
static void on_publish(void *arg, uint64_t gen)
{
	struct dir *d = arg;

	pthread_mutex_lock(&sh.lock);
	if (sh.live && gen != atomic_load(&d->fleet_gen))
		cache_refresh(d->cache, 0);
	pthread_mutex_unlock(&sh.lock);
}

int share_start(struct connfs *fs)
{
	struct fleet_params p = params();
	int rc = 0;

	if (!sh.on)
		return 0;
	sh.budgets = calloc(fs->ndirs ? fs->ndirs : 1, sizeof(*sh.budgets));
	if (!sh.budgets || fleet_open(&p, &sh.fleet))
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < fs->ndirs; i++) {
		struct dir *d = &fs->dirs[i];
		struct budget *b = &sh.budgets[i];

		b->ops = (struct ratelimit_shared){ budget_take, budget_pause,
						    b };
		b->key = d->remote->budget;
		d->remote->rl.shared = &b->ops;
		rc = fleet_watch(sh.fleet, d->remote->identity, on_publish, d);
	}
	if (rc) {
		/* All or nothing: a half-attached fleet would be worse. */
		for (size_t i = 0; i < fs->ndirs; i++)
			fs->dirs[i].remote->rl.shared = NULL;
		fleet_close(sh.fleet);
		sh.fleet = NULL;
		return rc;
	}
	pthread_mutex_lock(&sh.lock);
	sh.live = true;
	pthread_mutex_unlock(&sh.lock);
	return 0;
}

void share_quiesce(void)
{
	pthread_mutex_lock(&sh.lock);
	sh.live = false;
	pthread_mutex_unlock(&sh.lock);
}

void share_stop(void)
{
	fleet_close(sh.fleet);
	sh.fleet = NULL;
	free(sh.budgets);
	sh.budgets = NULL;
	redis_target_release(&sh.target);
	sh.on = false;
}

bool share_on(void)
{
	return sh.fleet != NULL;
}

void share_state(char *buf, size_t len)
{
	if (sh.fleet)
		fleet_state(sh.fleet, buf, len);
	else
		snprintf(buf, len, "off");
}

/* Seconds a published listing is young enough to serve as it is. */
static double fresh_for(const struct remote *r)
{
	return r->ttl * (r->refresh_ahead > 0 ? r->refresh_ahead : 1);
}

/*
 * Serves the published listing (step 1): 0, -EBADMSG when it is not one
 * to serve (logged once per generation), -ENOTCONN when Redis failed.
 */
static int take(struct dir *d, const struct fleet_meta *m,
		struct snapshot **s, double *age)
{
	struct remote *r = d->remote;
	struct snap_builder b = { .instance = r->name, .owner = d };
	struct snapshot *old = cache_peek(d->cache);
	char why[300] = "";
	size_t count = 0;
	uint64_t gen = 0;
	int rc;

	if (old && m->gen == atomic_load(&d->fleet_gen)) {
		*s = old;
		*age = m->age;
		return 0;
	}
	rc = fleet_fetch(sh.fleet, r->identity, &gen, age, &count,
			 persist_add_item, &b, why, sizeof(why));
	if (!rc && !(*s = snap_builder_finish(&b, old)))
		rc = -ENOMEM;
	if (!rc && (*s)->n != count) {
		snapshot_put(*s);
		rc = -EBADMSG;
		snprintf(why, sizeof(why), "duplicate file names");
	}
	snap_builder_release(&b);
	if (rc == -EBADMSG && gen != d->bad_gen) {
		d->bad_gen = gen;
		log_msg(LOG_WARNING, "%s: fleet listing (generation %llu) "
			"ignored: %s", r->name, (unsigned long long)gen, why);
	}
	if (rc) {
		snapshot_put(old);
		return rc == -EBADMSG || rc == -ENOENT ? -EBADMSG : -ENOTCONN;
	}
	atomic_store(&d->fleet_gen, gen);
	atomic_store(&d->from_fleet, true);
	persist_walked(r->identity, r->name, old, *s);
	persist_journal_bump();
	snapshot_put(old);
	log_msg(LOG_INFO, "%s: took the listing of %zu connections another "
		"host walked %.1f s ago", r->name, (*s)->n, *age);
	return 0;
}

static bool servable(const struct dir *d, const struct fleet_meta *m)
{
	return m->gen && m->age < fresh_for(d->remote) && m->gen != d->bad_gen;
}

static void not_shared(const struct dir *d, int rc)
{
	log_msg(LOG_WARNING, "%s: the listing was not shared with the fleet: "
		"%s", d->remote->name, rc == -ESTALE ? "the lease expired "
		"during the walk" : strerror(-rc));
}

/*
 * Publishes the walk old → s with its journal; a failure is only logged.
 * A walk that found the fleet's own listing unchanged only renews its age:
 * no upload, no new generation, nothing for the other hosts to fetch.
 */
static void publish(struct dir *d, const struct snapshot *old,
		    const struct snapshot *s)
{
	struct remote *r = d->remote;
	uint64_t gen = atomic_load(&d->fleet_gen);
	struct journal j = { 0 };
	struct fleet_txn *t;
	int rc;

	if (s == old && gen && (rc = fleet_touch(sh.fleet, r->identity, gen))) {
		if (rc < 0)
			not_shared(d, rc);
		return;
	}
	if (old && old != s && journal_diff(&j, r->name, wall_now(), old, s))
		rc = -ENOMEM;
	else
		rc = fleet_publish_begin(sh.fleet, r->identity, s->n, &t);
	for (size_t i = 0; !rc && i < s->n; i++) {
		struct store_item it;

		persist_item(s->v[i], &it);
		if ((rc = fleet_publish_item(t, &it)))
			fleet_publish_abort(t);
	}
	if (!rc)
		rc = fleet_publish_commit(t, r->name,
					  (const char *const *)j.lines, j.n,
					  &gen);
	journal_release(&j);
	if (rc) {
		/* What this host serves is no longer the fleet's listing. */
		if (s != old)
			atomic_store(&d->fleet_gen, 0);
		not_shared(d, rc);
		return;
	}
	atomic_store(&d->fleet_gen, gen);
	persist_journal_bump();
}

/* Without the fleet (Redis failed): this host's own walk. */
static int walk_alone(struct dir *d, struct snapshot **s, char *err,
		      size_t errlen)
{
	struct snapshot *old = cache_peek(d->cache);
	int rc = dir_walk(d, s, err, errlen);

	/* A changed listing is no longer the fleet's generation. */
	if (!rc && *s != old)
		atomic_store(&d->fleet_gen, 0);
	snapshot_put(old);
	return rc;
}

/* Step 2 for the lease holder. */
static int walk_for_fleet(struct dir *d, bool walk, struct snapshot **s,
			  double *age, char *err, size_t errlen)
{
	const char *key = d->remote->identity;
	struct snapshot *old;
	struct fleet_meta m;
	int rc;

	/* Another host may have published between the look and the lease. */
	if (!walk && !fleet_meta(sh.fleet, key, &m) && servable(d, &m) &&
	    !take(d, &m, s, age)) {
		fleet_lease_release(sh.fleet, key);
		return 0;
	}
	old = cache_peek(d->cache);
	rc = dir_walk(d, s, err, errlen);
	if (!rc)
		publish(d, old, *s);
	fleet_lease_release(sh.fleet, key);
	snapshot_put(old);
	return rc;
}

/*
 * Step 2 for the others: 0 once the generation moved on or the lease is
 * free, -ENOTCONN when Redis failed, -ETIMEDOUT after until, -ECANCELED
 * at unmount.
 */
static int wait_for_walker(struct dir *d, uint64_t gen, double until)
{
	struct fleet_meta m;
	int rc;

	for (;;) {
		if ((rc = sleep_secs(WAIT_POLL)))
			return rc;
		if (fleet_meta(sh.fleet, d->remote->identity, &m))
			return -ENOTCONN;
		if (m.gen != gen || !m.leased)
			return 0;
		if (mono_now() > until)
			return -ETIMEDOUT;
	}
}

int share_load(struct dir *d, struct snapshot **s, double *age, char *err,
	       size_t errlen)
{
	struct remote *r = d->remote;
	double until = mono_now() + (double)r->deadline_ms / 1000;
	/* A refresh someone asked for wants a walk, not the last one. */
	bool walk = atomic_exchange(&d->walk_wanted, false);
	struct fleet_meta m;
	int rc;

	for (;; walk = false) {
		if (fleet_meta(sh.fleet, r->identity, &m))
			break;
		if (!walk && servable(d, &m)) {
			rc = take(d, &m, s, age);
			if (rc != -EBADMSG) {
				if (rc != -ENOTCONN)
					return rc;
				break;
			}
		}
		rc = fleet_lease_take(sh.fleet, r->identity);
		if (rc < 0)
			break;
		if (rc == 1)
			return walk_for_fleet(d, walk, s, age, err, errlen);
		rc = wait_for_walker(d, m.gen, until);
		if (rc == -ENOTCONN)
			break;
		if (rc) {
			snprintf(err, errlen, "%s: waiting for another host's "
				 "walk: %s", r->name, strerror(-rc));
			return rc;
		}
	}
	return walk_alone(d, s, err, errlen);
}

static int add_line(void *arg, int64_t seq, const char *line)
{
	(void)seq;
	return buf_printf(arg, "%s\n", line) ? -ENOMEM : 0;
}

int share_changes(struct connfs *fs, struct dir *d, char **data,
		  size_t *len)
{
	const char **keys = calloc(fs->ndirs + 1, sizeof(*keys));
	struct buf b = { 0 };
	size_t n = 0;
	int rc;

	if (!sh.fleet) {
		free(keys);
		return -ENOTCONN;
	}
	if (!keys)
		return -ENOMEM;
	for (size_t i = 0; i < fs->ndirs; i++)
		if (!d || d == &fs->dirs[i])
			keys[n++] = fs->dirs[i].remote->identity;
	rc = n ? fleet_journal_read(sh.fleet, keys, n, add_line, &b) : 0;
	free(keys);
	if (rc) {
		buf_release(&b);
		return rc == -ENOMEM ? rc : -ENOTCONN;
	}
	*len = b.len;
	*data = b.len ? buf_steal(&b) : strdup("");
	return *data ? 0 : -ENOMEM;
}
