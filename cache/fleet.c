/*
 * The fleet tier (see fleet.h): a pool of Redis connections for callers,
 * and one thread of its own that holds the subscription, polls the
 * generations of watched listings once a second (so a lost message or a
 * broken subscription delays a pickup by a second at most), renews the
 * leases this host holds, and reconnects after a failure.
 */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "blob.h"

#define POOL_MAX 8
#define CHUNK (1u << 20)	/* upload pieces of a listing blob */
#define STAGING_MS "600000"	/* an abandoned upload is dropped after */
#define JOURNAL_CAP "100000"	/* lines kept in the shared journal */
#define POLL_EVERY 1.0		/* seconds between generation polls */
#define RETRY_EVERY 1.0		/* seconds between reconnects */

/* Renews the caller's lease; 0 when another host holds it now. */
static const char RENEW[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
static const char RELEASE[] =
	"if redis.call('GET', KEYS[1]) == ARGV[1] then "
	"return redis.call('DEL', KEYS[1]) end return 0";
/*
 * Swaps the uploaded listing in, bumps the generation and appends the
 * walk's journal lines, atomically and only for the lease holder, then
 * announces it. A generation is at least the publish's Redis time in
 * microseconds, so one is never used twice, not even after Redis lost its
 * data while a host still remembers an old one. KEYS: staging, listing,
 * meta, lease, journal; ARGV: owner, channel, listing key, section,
 * journal cap, lines...
 */
static const char PUBLISH[] =
	"if redis.call('GET', KEYS[4]) ~= ARGV[1] then "
	"return redis.error_reply('CONNFSLEASE the lease was lost') end "
	"redis.call('RENAME', KEYS[1], KEYS[2]) "
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
	"local gen = tonumber(redis.call('HGET', KEYS[3], 'gen')) or 0 "
	"if gen < now then gen = now else gen = gen + 1 end "
	"gen = string.format('%d', gen) "
	"redis.call('HSET', KEYS[3], 'gen', gen, 'at', string.format('%d', "
	"now)) "
	"for i = 6, #ARGV do "
	"  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[5], '*', 'key', "
	"    ARGV[3], 'section', ARGV[4], 'line', ARGV[i]) end "
	"redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. gen) "
	"return gen";
/*
 * Renews the age of an unchanged listing, only for the lease holder and
 * only while ARGV[2] is still the published generation. KEYS: meta,
 * lease; ARGV: owner, generation. 1, or 0 when another was published.
 */
static const char TOUCH[] =
	"if redis.call('GET', KEYS[2]) ~= ARGV[1] then "
	"return redis.error_reply('CONNFSLEASE the lease was lost') end "
	"if redis.call('HGET', KEYS[1], 'gen') ~= ARGV[2] then return 0 end "
	"local t = redis.call('TIME') "
	"redis.call('HSET', KEYS[1], 'at', string.format('%d', "
	"tonumber(t[1]) * 1000000 + tonumber(t[2]))) "
	"return 1";
/*
 * GCRA on Redis time: the budget's state is the theoretical arrival time
 * of the next request (tat, microseconds). ARGV: interval and burst
 * tolerance (microseconds), the longest wait worth reserving, and a pause
 * (microseconds; > 0 = Retry-After: push tat out, reserve nothing).
 * Returns the microseconds to wait for the reserved slot, or -1.
 */
static const char GCRA[] =
	"local t = redis.call('TIME') "
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
	"local T, tau = tonumber(ARGV[1]), tonumber(ARGV[2]) "
	"local tat = tonumber(redis.call('GET', KEYS[1])) or now "
	"if tat < now then tat = now end "
	"local pause = tonumber(ARGV[4]) "
	"if pause > 0 then "
	"  if tat < now + pause + tau then tat = now + pause + tau end "
	"  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', "
	"    math.floor((tat - now) / 1000) + 1000) return 0 end "
	"local wait = tat - tau - now "
	"if wait < 0 then wait = 0 end "
	"if wait > tonumber(ARGV[3]) then return -1 end "
	"tat = tat + T "
	"redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', "
	"  math.floor((tat - now) / 1000) + 1000) "
	"return wait";

struct watch {
	char *key;
	fleet_watch_fn fn;
	void *arg;
	uint64_t gen;		/* the last generation told of */
};

struct fleet {
	const struct redis_target *target;
	char *prefix;
	double lease, timeout;
	void (*changed)(const char *reason);
	char owner[160];	/* host:pid:random, the lease holder's name */
	char lease_ms[24];

	pthread_mutex_t lock;	/* guards what follows */
	struct redis_conn *pool[POOL_MAX];
	size_t npool;
	bool down;
	char reason[300];
	struct watch *watches;
	size_t nwatch;
	char **held;		/* keys whose lease this host holds */
	size_t nheld;
	bool stop;

	pthread_t thread;
	int wake[2];		/* a byte here ends the thread's poll */
	struct redis_conn *sub;	/* the thread's subscription */
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "P:{ID}:what" into buf. */
static void key_of(const struct fleet *f, const char *id, const char *what,
		   char *buf, size_t len)
{
	snprintf(buf, len, "%s:{%s}:%s", f->prefix, id, what);
}

/* The part of a redis.c message after "redis URL: ". */
static const char *reason_of(const struct fleet *f, const char *err)
{
	size_t n = strlen(f->target->display);

	if (!strncmp(err, "redis ", 6) && !strncmp(err + 6, f->target->display,
						  n) && err[6 + n] == ':')
		return err + 6 + n + 2;
	return err;
}

static void mark_down(struct fleet *f, const char *err)
{
	char reason[sizeof(f->reason)] = "";

	pthread_mutex_lock(&f->lock);
	if (!f->down)
		snprintf(reason, sizeof(reason), "%s", reason_of(f, err));
	if (reason[0])
		snprintf(f->reason, sizeof(f->reason), "%s", reason);
	f->down = true;
	while (f->npool)
		redis_close(f->pool[--f->npool]);
	pthread_mutex_unlock(&f->lock);
	if (reason[0] && f->changed)
		f->changed(reason);
}

static struct redis_conn *conn_get(struct fleet *f, int *rc)
{
	struct redis_conn *c = NULL;
	char err[400];

	pthread_mutex_lock(&f->lock);
	*rc = f->down ? -ENOTCONN : 0;
	if (!f->down && f->npool)
		c = f->pool[--f->npool];
	pthread_mutex_unlock(&f->lock);
	if (c || *rc)
		return c;
	*rc = redis_connect(f->target, f->timeout, &c, err, sizeof(err));
	if (*rc)
		mark_down(f, err);
	return c;
}

static void conn_put(struct fleet *f, struct redis_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&f->lock);
	if (!redis_dead(c) && !f->down && f->npool < POOL_MAX) {
		f->pool[f->npool++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	redis_close(c);
}

/*
 * Runs commands on a pooled connection. Any failure but a lost lease
 * makes the tier unavailable: it is the server's state, not the call's.
 */
static int run(struct fleet *f, const struct redis_cmd *cmds, size_t n,
	       redisReply **r)
{
	char err[400];
	int rc;
	struct redis_conn *c = conn_get(f, &rc);

	if (!c) {
		for (size_t i = 0; i < n; i++)
			r[i] = NULL;
		return rc;
	}
	rc = redis_run(c, cmds, n, r, err, sizeof(err));
	if (rc && strstr(err, "CONNFSLEASE"))
		rc = -ESTALE;
	else if (rc)
		mark_down(f, err);
	conn_put(f, c);
	return rc;
}

static redisReply *run1(struct fleet *f, int *rc, int argc,
			const char **argv)
{
	struct redis_cmd cmd = { .argc = argc, .argv = argv };
	redisReply *r;

	*rc = run(f, &cmd, 1, &r);
	return r;
}

static void drop(redisReply *r)
{
	if (r)
		freeReplyObject(r);
}

static uint64_t reply_u64(const redisReply *r)
{
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
		return (uint64_t)r->integer;
	if (r && r->type == REDIS_REPLY_STRING)
		return strtoull(r->str, NULL, 10);
	return 0;
}

/* TIME's reply in microseconds. */
static double reply_time(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING)
		return 0;
	return strtod(r->element[0]->str, NULL) * 1e6 +
	       strtod(r->element[1]->str, NULL);
}

/* Can this host write under the prefix? (OOM, replicas and ACLs say no.) */
static int probe(struct fleet *f, struct redis_conn *c, char *err,
		 size_t errlen)
{
	char key[300];
	redisReply *r;
	int rc;

	snprintf(key, sizeof(key), "%s:alive:%s", f->prefix, f->owner);
	r = redis_call(c, &rc, err, errlen, 5,
		       (const char *[]){ "SET", key, "1", "PX", "10000" });
	drop(r);
	return rc;
}

/* ---- the tier's thread ---- */

static void tell(struct fleet *f, const char *key, uint64_t gen)
{
	fleet_watch_fn fn = NULL;
	void *arg = NULL;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nwatch; i++) {
		struct watch *w = &f->watches[i];

		if (!strcmp(w->key, key) && gen && gen != w->gen) {
			w->gen = gen;
			fn = w->fn;
			arg = w->arg;
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (fn)
		fn(arg, gen);
}

static void on_message(struct fleet *f, const redisReply *r)
{
	char key[128];
	const char *sp;

	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return;
	sp = strchr(r->element[2]->str, ' ');
	if (!sp || (size_t)(sp - r->element[2]->str) >= sizeof(key))
		return;
	snprintf(key, sizeof(key), "%.*s", (int)(sp - r->element[2]->str),
		 r->element[2]->str);
	tell(f, key, strtoull(sp + 1, NULL, 10));
}

/* The generations of every watched listing, in one round trip. */
static void poll_gens(struct fleet *f)
{
	struct redis_cmd *cmds;
	redisReply **r;
	char (*keys)[300];
	char (*ids)[128];
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->nwatch;
	cmds = calloc(n ? n : 1, sizeof(*cmds));
	r = calloc(n ? n : 1, sizeof(*r));
	keys = calloc(n ? n : 1, sizeof(*keys));
	ids = calloc(n ? n : 1, sizeof(*ids));
	for (size_t i = 0; cmds && r && keys && ids && i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s", f->watches[i].key);
		key_of(f, ids[i], "meta", keys[i], sizeof(keys[i]));
	}
	pthread_mutex_unlock(&f->lock);
	if (n && cmds && r && keys && ids) {
		const char **argv = calloc(n * 3, sizeof(*argv));

		for (size_t i = 0; argv && i < n; i++) {
			argv[3 * i] = "HGET";
			argv[3 * i + 1] = keys[i];
			argv[3 * i + 2] = "gen";
			cmds[i] = (struct redis_cmd){ 3, argv + 3 * i, NULL };
		}
		if (argv && !run(f, cmds, n, r))
			for (size_t i = 0; i < n; i++)
				tell(f, ids[i], reply_u64(r[i]));
		for (size_t i = 0; i < n; i++)
			drop(r[i]);
		free(argv);
	}
	free(cmds);
	free(r);
	free(keys);
	free(ids);
}

static void renew_leases(struct fleet *f)
{
	char **keys;
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->nheld;
	keys = calloc(n ? n : 1, sizeof(*keys));
	for (size_t i = 0; keys && i < n; i++)
		keys[i] = strdup(f->held[i]);
	pthread_mutex_unlock(&f->lock);
	for (size_t i = 0; keys && i < n; i++) {
		char lk[300];
		int rc;

		if (!keys[i])
			continue;
		key_of(f, keys[i], "lease", lk, sizeof(lk));
		drop(run1(f, &rc, 6, (const char *[]){ "EVAL", RENEW, "1", lk,
						       f->owner, f->lease_ms }));
		free(keys[i]);
	}
	free(keys);
}

static int subscribe(struct fleet *f, char *err, size_t errlen)
{
	char chan[300];
	redisReply *r;
	int rc = redis_connect(f->target, f->timeout, &f->sub, err, errlen);

	if (rc)
		return rc;
	snprintf(chan, sizeof(chan), "%s:published", f->prefix);
	r = redis_call(f->sub, &rc, err, errlen, 2,
		       (const char *[]){ "SUBSCRIBE", chan });
	drop(r);
	if (rc) {
		redis_close(f->sub);
		f->sub = NULL;
	}
	return rc;
}

/* While unavailable: one connection, login and write probe per second. */
static void reconnect(struct fleet *f)
{
	struct redis_conn *c;
	char err[400];
	int rc = redis_connect(f->target, f->timeout, &c, err, sizeof(err));

	if (!rc && (rc = probe(f, c, err, sizeof(err))) == 0) {
		pthread_mutex_lock(&f->lock);
		f->down = false;
		f->reason[0] = 0;
		pthread_mutex_unlock(&f->lock);
		conn_put(f, c);
		if (f->changed)
			f->changed(NULL);
		return;
	}
	redis_close(c);
	/* The status view shows why the latest attempt failed. */
	pthread_mutex_lock(&f->lock);
	snprintf(f->reason, sizeof(f->reason), "%s", reason_of(f, err));
	pthread_mutex_unlock(&f->lock);
}

/* Reads what the subscription pushed, waiting up to secs for it. */
static void listen_for(struct fleet *f, double secs)
{
	struct pollfd p[2] = { { .fd = f->wake[0], .events = POLLIN },
			       { .fd = f->sub ? redis_fd(f->sub) : -1,
				 .events = POLLIN } };
	char err[400], b[16];
	redisReply *r;
	int rc;

	if (poll(p, 2, (int)(secs * 1000)) <= 0)
		return;
	if (p[0].revents && read(f->wake[0], b, sizeof(b)) < 0)
		return;
	if (!p[1].revents)
		return;
	for (bool wait = true;; wait = false) {
		r = redis_pushed(f->sub, wait, &rc, err, sizeof(err));
		if (!r)
			break;
		on_message(f, r);
		drop(r);
	}
	if (rc) {
		redis_close(f->sub);
		f->sub = NULL;
	}
}

static bool stopping(struct fleet *f)
{
	bool stop, down;

	pthread_mutex_lock(&f->lock);
	stop = f->stop;
	down = f->down;
	pthread_mutex_unlock(&f->lock);
	if (down && f->sub) {
		redis_close(f->sub);
		f->sub = NULL;
	}
	return stop;
}

static bool is_down(struct fleet *f)
{
	bool down;

	pthread_mutex_lock(&f->lock);
	down = f->down;
	pthread_mutex_unlock(&f->lock);
	return down;
}

static void *fleet_main(void *arg)
{
	struct fleet *f = arg;
	double next_poll = 0, next_renew = 0, next_try = 0;
	char err[400];

	while (!stopping(f)) {
		double now = mono();

		if (is_down(f)) {
			if (now >= next_try) {
				next_try = now + RETRY_EVERY;
				reconnect(f);
			}
			listen_for(f, 0.25);
			continue;
		}
		if (!f->sub && subscribe(f, err, sizeof(err)))
			mark_down(f, err);
		if (now >= next_renew) {
			next_renew = now + f->lease / 3;
			renew_leases(f);
		}
		if (now >= next_poll) {
			next_poll = now + POLL_EVERY;
			poll_gens(f);
		}
		listen_for(f, 0.25);
	}
	redis_close(f->sub);
	f->sub = NULL;
	return NULL;
}

/* ---- opening ---- */

static void make_owner(struct fleet *f)
{
	char host[64] = "host";
	uint64_t rnd = 0;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = 0;
	if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
		rnd = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	snprintf(f->owner, sizeof(f->owner), "%s:%d:%016" PRIx64, host,
		 (int)getpid(), rnd);
}

int fleet_check(const struct fleet_params *p, char *err, size_t errlen)
{
	struct fleet f = { .target = p->target, .prefix = (char *)p->prefix };
	struct redis_conn *c;
	int rc = redis_connect(p->target, p->timeout, &c, err, errlen);

	if (rc)
		return rc;
	make_owner(&f);
	rc = probe(&f, c, err, errlen);
	redis_close(c);
	return rc;
}

int fleet_open(const struct fleet_params *p, struct fleet **out)
{
	struct fleet *f = calloc(1, sizeof(*f));
	int rc = 0;

	*out = NULL;
	if (!f || !(f->prefix = strdup(p->prefix))) {
		free(f);
		return -ENOMEM;
	}
	f->target = p->target;
	f->lease = p->lease;
	f->timeout = p->timeout;
	f->changed = p->changed;
	snprintf(f->lease_ms, sizeof(f->lease_ms), "%.0f", p->lease * 1000);
	make_owner(f);
	pthread_mutex_init(&f->lock, NULL);
	f->wake[0] = f->wake[1] = -1;
	if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK))
		rc = -errno;
	if (!rc)
		rc = -pthread_create(&f->thread, NULL, fleet_main, f);
	if (rc) {
		f->thread = 0;
		fleet_close(f);
		return rc;
	}
	*out = f;
	return 0;
}

void fleet_close(struct fleet *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_mutex_unlock(&f->lock);
	if (f->wake[1] >= 0) {
		/* Ends the thread's poll now (else within 0.25 s anyway). */
		ssize_t n = write(f->wake[1], "x", 1);

		(void)n;
	}
	if (f->thread)
		pthread_join(f->thread, NULL);
	while (f->npool)
		redis_close(f->pool[--f->npool]);
	for (size_t i = 0; i < f->nwatch; i++)
		free(f->watches[i].key);
	free(f->watches);
	for (size_t i = 0; i < f->nheld; i++)
		free(f->held[i]);
	free(f->held);
	if (f->wake[0] >= 0)
		close(f->wake[0]);
	if (f->wake[1] >= 0)
		close(f->wake[1]);
	pthread_mutex_destroy(&f->lock);
	free(f->prefix);
	free(f);
}

void fleet_state(struct fleet *f, char *buf, size_t len)
{
	pthread_mutex_lock(&f->lock);
	snprintf(buf, len, "%s (prefix %s): %s%s%s", f->target->display,
		 f->prefix, f->down ? "unavailable (" : "ok",
		 f->down ? f->reason : "", f->down ? ")" : "");
	pthread_mutex_unlock(&f->lock);
}

int fleet_watch(struct fleet *f, const char *key, fleet_watch_fn fn,
		void *arg)
{
	struct watch *w;
	int rc = 0;

	pthread_mutex_lock(&f->lock);
	w = realloc(f->watches, (f->nwatch + 1) * sizeof(*w));
	if (w) {
		f->watches = w;
		w += f->nwatch;
		*w = (struct watch){ .key = strdup(key), .fn = fn, .arg = arg };
		if (w->key)
			f->nwatch++;
	}
	if (!w || !w->key)
		rc = -ENOMEM;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* ---- listings ---- */

int fleet_meta(struct fleet *f, const char *key, struct fleet_meta *m)
{
	char mk[300], lk[300];
	const char *a1[] = { "HMGET", mk, "gen", "at" };
	const char *a2[] = { "EXISTS", lk };
	const char *a3[] = { "TIME" };
	struct redis_cmd cmds[] = { { 4, a1, NULL }, { 2, a2, NULL },
				    { 1, a3, NULL } };
	redisReply *r[3];
	int rc;

	key_of(f, key, "meta", mk, sizeof(mk));
	key_of(f, key, "lease", lk, sizeof(lk));
	memset(m, 0, sizeof(*m));
	if ((rc = run(f, cmds, 3, r)))
		return rc;
	if (r[0]->type == REDIS_REPLY_ARRAY && r[0]->elements == 2) {
		m->gen = reply_u64(r[0]->element[0]);
		m->age = (reply_time(r[2]) -
			  (double)reply_u64(r[0]->element[1])) / 1e6;
	}
	m->leased = r[1]->type == REDIS_REPLY_INTEGER && r[1]->integer > 0;
	for (int i = 0; i < 3; i++)
		drop(r[i]);
	return 0;
}

int fleet_fetch(struct fleet *f, const char *key, uint64_t *gen,
		double *age, size_t *count, store_item_fn fn, void *arg,
		char *err, size_t errlen)
{
	char mk[300], lk[300];
	const char *a0[] = { "MULTI" }, *a1[] = { "HMGET", mk, "gen", "at" };
	const char *a2[] = { "GET", lk }, *a3[] = { "TIME" };
	const char *a4[] = { "EXEC" };
	struct redis_cmd cmds[] = { { 1, a0, NULL }, { 4, a1, NULL },
				    { 2, a2, NULL }, { 1, a3, NULL },
				    { 1, a4, NULL } };
	redisReply *r[5], *x, *data;
	int rc;

	key_of(f, key, "meta", mk, sizeof(mk));
	key_of(f, key, "listing", lk, sizeof(lk));
	if ((rc = run(f, cmds, 5, r))) {
		snprintf(err, errlen, "%s", strerror(-rc));
		return rc;
	}
	x = r[4];
	if (x->type != REDIS_REPLY_ARRAY || x->elements != 3 ||
	    x->element[0]->type != REDIS_REPLY_ARRAY ||
	    x->element[0]->elements != 2) {
		rc = -EBADMSG;
		snprintf(err, errlen, "unexpected reply");
	} else if ((data = x->element[1])->type != REDIS_REPLY_STRING ||
		   !(*gen = reply_u64(x->element[0]->element[0]))) {
		rc = data->type == REDIS_REPLY_NIL ? -ENOENT : -EBADMSG;
		snprintf(err, errlen, "%s", rc == -ENOENT ? "no listing" :
			 "the listing is not a string");
	} else {
		*age = (reply_time(x->element[2]) -
			(double)reply_u64(x->element[0]->element[1])) / 1e6;
		rc = blob_read(data->str, data->len, key, count, fn, arg, err,
			       errlen);
	}
	for (int i = 0; i < 5; i++)
		drop(r[i]);
	return rc;
}

static void held_add(struct fleet *f, const char *key)
{
	char **h, *k = strdup(key);

	pthread_mutex_lock(&f->lock);
	h = k ? realloc(f->held, (f->nheld + 1) * sizeof(*h)) : NULL;
	if (h) {
		f->held = h;
		f->held[f->nheld++] = k;
		k = NULL;
	}
	pthread_mutex_unlock(&f->lock);
	free(k);
}

static void held_remove(struct fleet *f, const char *key)
{
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nheld; i++)
		if (!strcmp(f->held[i], key)) {
			free(f->held[i]);
			f->held[i] = f->held[--f->nheld];
			break;
		}
	pthread_mutex_unlock(&f->lock);
}

int fleet_lease_take(struct fleet *f, const char *key)
{
	char lk[300];
	redisReply *r;
	int rc;

	key_of(f, key, "lease", lk, sizeof(lk));
	r = run1(f, &rc, 6, (const char *[]){ "SET", lk, f->owner, "NX", "PX",
					      f->lease_ms });
	if (!rc)
		rc = r->type == REDIS_REPLY_STATUS;
	drop(r);
	if (rc == 1)
		held_add(f, key);
	return rc;
}

void fleet_lease_release(struct fleet *f, const char *key)
{
	char lk[300];
	int rc;

	held_remove(f, key);
	key_of(f, key, "lease", lk, sizeof(lk));
	drop(run1(f, &rc, 5, (const char *[]){ "EVAL", RELEASE, "1", lk,
					       f->owner }));
}

struct fleet_txn {
	struct fleet *f;
	struct redis_conn *c;
	struct blob_writer *w;
	char key[128];
	char staging[400];
	bool expiring;		/* the staging key has its expiry */
};

static int txn_call(struct fleet_txn *t, int argc, const char **argv,
		    const size_t *lens)
{
	struct redis_cmd cmd = { argc, argv, lens };
	redisReply *r;
	char err[400];
	int rc = redis_run(t->c, &cmd, 1, &r, err, sizeof(err));

	if (rc && strstr(err, "CONNFSLEASE"))
		return -ESTALE;
	if (rc)
		mark_down(t->f, err);
	drop(r);
	return rc;
}

static int upload(void *arg, const void *data, size_t len)
{
	struct fleet_txn *t = arg;
	const char *argv[] = { "APPEND", t->staging, data };
	size_t lens[] = { 6, strlen(t->staging), len };
	int rc = txn_call(t, 3, argv, lens);

	if (!rc && !t->expiring) {
		t->expiring = true;
		rc = txn_call(t, 3, (const char *[]){ "PEXPIRE", t->staging,
						      STAGING_MS }, NULL);
	}
	return rc;
}

int fleet_publish_begin(struct fleet *f, const char *key, size_t count,
			struct fleet_txn **out)
{
	struct fleet_txn *t = calloc(1, sizeof(*t));
	char tail[200];
	int rc;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->f = f;
	snprintf(t->key, sizeof(t->key), "%s", key);
	snprintf(tail, sizeof(tail), "staging:%s", f->owner);
	key_of(f, key, tail, t->staging, sizeof(t->staging));
	if (!(t->c = conn_get(f, &rc))) {
		free(t);
		return rc;
	}
	rc = txn_call(t, 2, (const char *[]){ "DEL", t->staging }, NULL);
	if (!rc)
		rc = blob_begin(key, count, CHUNK, upload, t, &t->w);
	if (rc) {
		fleet_publish_abort(t);
		return rc;
	}
	*out = t;
	return 0;
}

int fleet_publish_item(struct fleet_txn *t, const struct store_item *it)
{
	return blob_add(t->w, it);
}

int fleet_publish_commit(struct fleet_txn *t, const char *section,
			 const char *const *lines, size_t n, uint64_t *gen)
{
	char lk[300], mk[300], ek[300], jk[300], chan[300];
	struct redis_cmd cmd = { .argc = 13 + (int)n };
	const char **argv = calloc(13 + n, sizeof(*argv));
	redisReply *r = NULL;
	char err[400] = "";
	int rc = blob_finish(t->w);

	t->w = NULL;
	key_of(t->f, t->key, "listing", lk, sizeof(lk));
	key_of(t->f, t->key, "meta", mk, sizeof(mk));
	key_of(t->f, t->key, "lease", ek, sizeof(ek));
	snprintf(jk, sizeof(jk), "%s:journal", t->f->prefix);
	snprintf(chan, sizeof(chan), "%s:published", t->f->prefix);
	if (!rc && !argv)
		rc = -ENOMEM;
	if (!rc) {
		const char *fixed[] = { "EVAL", PUBLISH, "5", t->staging, lk,
					mk, ek, jk, t->f->owner, chan, t->key,
					section, JOURNAL_CAP };

		memcpy(argv, fixed, sizeof(fixed));
		if (n)
			memcpy(argv + 13, lines, n * sizeof(*lines));
		cmd.argv = argv;
		rc = redis_run(t->c, &cmd, 1, &r, err, sizeof(err));
	}
	if (rc && strstr(err, "CONNFSLEASE"))
		rc = -ESTALE;
	else if (rc && err[0])
		mark_down(t->f, err);
	if (!rc)
		*gen = reply_u64(r);
	drop(r);
	free(argv);
	fleet_publish_abort(t);
	return rc;
}

int fleet_touch(struct fleet *f, const char *key, uint64_t gen)
{
	char mk[300], lk[300], g[24];
	redisReply *r;
	int rc;

	key_of(f, key, "meta", mk, sizeof(mk));
	key_of(f, key, "lease", lk, sizeof(lk));
	snprintf(g, sizeof(g), "%llu", (unsigned long long)gen);
	r = run1(f, &rc, 7, (const char *[]){ "EVAL", TOUCH, "2", mk, lk,
					      f->owner, g });
	if (!rc)
		rc = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	drop(r);
	return rc;
}

void fleet_publish_abort(struct fleet_txn *t)
{
	if (!t)
		return;
	blob_abort(t->w);
	/* The upload expires by itself if this cannot delete it. */
	if (t->c && !redis_dead(t->c))
		txn_call(t, 2, (const char *[]){ "DEL", t->staging }, NULL);
	conn_put(t->f, t->c);
	free(t);
}

/* ---- rate budgets ---- */

static int gcra(struct fleet *f, const char *budget, double rate,
		double burst, double max_wait, double pause, long long *us)
{
	char key[300], iv[32], tau[32], mw[32], ps[32];
	redisReply *r;
	int rc;

	snprintf(key, sizeof(key), "%s:rate:{%s}", f->prefix, budget);
	snprintf(iv, sizeof(iv), "%.0f", 1e6 / rate);
	snprintf(tau, sizeof(tau), "%.0f", (burst < 1 ? 0 : burst - 1) * 1e6 /
		 rate);
	snprintf(mw, sizeof(mw), "%.0f", max_wait > 0 ? max_wait * 1e6 : 0);
	snprintf(ps, sizeof(ps), "%.0f", pause * 1e6);
	r = run1(f, &rc, 8, (const char *[]){ "EVAL", GCRA, "1", key, iv, tau,
					      mw, ps });
	if (!rc && r->type != REDIS_REPLY_INTEGER)
		rc = -EPROTO;
	if (!rc)
		*us = r->integer;
	drop(r);
	return rc;
}

int fleet_rate_take(struct fleet *f, const char *budget, double rate,
		    double burst, double max_wait, double *wait)
{
	long long us;
	int rc = gcra(f, budget, rate, burst, max_wait, 0, &us);

	if (rc)
		return rc;
	if (us < 0)
		return -ETIMEDOUT;
	*wait = (double)us / 1e6;
	return 0;
}

void fleet_rate_pause(struct fleet *f, const char *budget, double rate,
		      double burst, double secs)
{
	long long us;

	if (secs > 0)
		gcra(f, budget, rate, burst, 0, secs, &us);
}

/* ---- the journal ---- */

/* The value of field name in an XRANGE entry's field list, or NULL. */
static const char *field(const redisReply *fields, const char *name)
{
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    !strcmp(fields->element[i]->str, name) &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING)
			return fields->element[i + 1]->str;
	return NULL;
}

static bool wanted(const char *key, const char *const *keys, size_t nkeys)
{
	if (!nkeys)
		return true;
	for (size_t i = 0; key && i < nkeys; i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

int fleet_journal_read(struct fleet *f, const char *const *keys,
		       size_t nkeys, store_line_fn fn, void *arg)
{
	char jk[300], from[64] = "-";
	int64_t seq = 0;
	int rc = 0;

	snprintf(jk, sizeof(jk), "%s:journal", f->prefix);
	for (;;) {
		redisReply *r = run1(f, &rc, 6, (const char *[]){
			"XRANGE", jk, from, "+", "COUNT", "1000" });
		size_t got;

		if (rc)
			return rc;
		if (r->type != REDIS_REPLY_ARRAY) {
			drop(r);
			return -EPROTO;
		}
		got = r->elements;
		for (size_t i = 0; !rc && i < got; i++) {
			const redisReply *e = r->element[i];
			const char *line;

			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[0]->type != REDIS_REPLY_STRING ||
			    e->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			snprintf(from, sizeof(from), "(%s", e->element[0]->str);
			line = field(e->element[1], "line");
			seq++;
			if (line && wanted(field(e->element[1], "key"), keys,
					   nkeys))
				rc = fn(arg, seq, line);
		}
		drop(r);
		if (rc || got < 1000)
			return rc;
	}
}
