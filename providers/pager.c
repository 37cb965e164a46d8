/*
 * The one paging loop. Cursor APIs are walked in sequence; page-number APIs
 * are fetched by a few threads at once once the first page shows there is
 * more. Every request goes through the account's rate limiter, is retried
 * only where a retry can help (network, 429, 5xx, throttling codes) with
 * jittered exponential backoff that honours Retry-After, and the whole walk
 * shares one deadline. Repeated cursors and runaway page counts stop the
 * walk instead of looping forever. http_abort_all() stops every walk at
 * its next request, retry wait or rate-limit wait, and ends transfers in
 * flight.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "remote.h"

#define MAX_ATTEMPTS 6
#define BACKOFF_BASE 0.25
#define BACKOFF_CAP 8.0
#define PROGRESS_EVERY 2.0
#define WALK_RESTART 1		/* internal: the cursor expired */

/* Seen cursors, to stop an API that hands the same cursor out again. */
struct cursor_set {
	uint64_t *h;
	size_t n;
	size_t cap;
};

struct walk {
	struct remote *r;
	walk_sink_fn sink;
	void *arg;
	double deadline;	/* monotonic */
	double started;		/* monotonic */
	double progress_at;
	struct walk_error *werr;
	pthread_mutex_t lock;	/* sink calls, error, the index dispenser */
	int failed;
	unsigned long next_index;
	unsigned long end_index;
	struct cursor_set pages;	/* PAGING_INDEX: page_hash() of each page */
	bool short_seen;	/* a page-number page came back short */
	bool last_full;		/* the highest page fetched was full */
};


/* Records the first failure of the walk; later ones are dropped. */
static int fail(struct walk *w, int err, long status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(struct walk *w, int err, long status, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->lock);
	if (!w->failed) {
		w->failed = err;
		w->werr->err = err;
		w->werr->status = status;
		w->werr->when = wall_now();
		va_start(ap, fmt);
		vsnprintf(w->werr->msg, sizeof(w->werr->msg), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&w->lock);
	return err;
}

static bool failed(struct walk *w)
{
	bool f;

	pthread_mutex_lock(&w->lock);
	f = w->failed != 0;
	pthread_mutex_unlock(&w->lock);
	return f;
}

static int stopped(struct walk *w)
{
	return fail(w, -ECANCELED, 0, "%s: listing stopped: connfs is "
		    "shutting down", w->r->name);
}

static void count(struct remote *r, unsigned requests, unsigned retries)
{
	pthread_mutex_lock(&r->lock);
	r->cur.requests += requests;
	r->cur.retries += retries;
	pthread_mutex_unlock(&r->lock);
}

static void note_rate(struct remote *r, const struct http_resp *resp)
{
	struct rate_info ri = { -1, -1, -1 };

	if (!r->prov->rate_info || resp->status == 0)
		return;
	r->prov->rate_info(resp, &ri);
	if (ri.limit < 0 && ri.remaining < 0)
		return;
	pthread_mutex_lock(&r->lock);
	r->rate = ri;
	r->rate_seen = wall_now();
	pthread_mutex_unlock(&r->lock);
}

/* Full jitter in the upper half: [d/2, d], d = base * 2^attempt. */
static double backoff(unsigned attempt)
{
	static __thread unsigned seed;
	double d = BACKOFF_BASE * pow(2, attempt);

	if (!seed)
		seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
	if (d > BACKOFF_CAP)
		d = BACKOFF_CAP;
	return d / 2 + d / 2 * ((double)rand_r(&seed) / RAND_MAX);
}

static void generic_class(const struct http_resp *resp, struct api_error *e)
{
	memset(e, 0, sizeof(*e));
	e->status = resp->status;
	e->retry_after = resp->retry_after;
	if (resp->status == 429)
		e->cls = API_THROTTLE;
	else if (resp->status >= 500)
		e->cls = API_RETRY;
	else if (resp->status == 401 || resp->status == 403)
		e->cls = API_AUTH;
	else
		e->cls = API_FATAL;
}

/* Classifies a non-2xx response; redirects are never followed. */
static void classify(struct remote *r, const struct page_req *pr,
		     const struct http_resp *resp, struct api_error *e)
{
	const char *loc = http_resp_header(resp, "Location");

	generic_class(resp, e);
	r->prov->classify_error(r->state, pr, resp, e);
	if (resp->status >= 300 && resp->status < 400) {
		e->cls = API_FATAL;
		api_text(e->msg, sizeof(e->msg), "redirect not followed: ", 23);
		if (loc)
			api_text(e->msg + strlen(e->msg),
				 sizeof(e->msg) - strlen(e->msg), loc,
				 strlen(loc));
	}
	if (!e->msg[0])
		snprintf(e->msg, sizeof(e->msg), "HTTP %ld", resp->status);
}

static int errno_of(enum api_class cls)
{
	return cls == API_AUTH ? -EACCES : -EIO;
}

/* How long to wait before retrying, or -1 if the error is final. */
static double retry_delay(const struct api_error *e, unsigned attempt)
{
	double d;

	if (e->cls != API_RETRY && e->cls != API_THROTTLE)
		return -1;
	if (attempt + 1 >= MAX_ATTEMPTS)
		return -1;
	d = backoff(attempt);
	if (e->retry_after > d)
		d = e->retry_after;
	return d;
}

/* One request, no retry. 0 = 2xx response in resp; else e is filled. */
static int request(struct walk *w, const struct page_req *pr,
		   struct http_resp *resp, struct api_error *e)
{
	struct remote *r = w->r;
	struct http_req req = { 0 };
	double left = w->deadline - mono_now();
	long tmo = r->timeout_ms;
	int rc;

	memset(e, 0, sizeof(*e));
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	if (left <= 0)
		return -ETIMEDOUT;
	if ((rc = ratelimit_acquire(&r->rl, w->deadline)))
		return rc;
	left = w->deadline - mono_now();
	if (left * 1000 < tmo)
		tmo = (long)(left * 1000);
	rc = r->prov->build_list(r->state, pr, &req);
	if (rc) {
		http_req_release(&req);
		e->cls = API_FATAL;
		snprintf(e->msg, sizeof(e->msg), "cannot build the request: %s",
			 strerror(-rc));
		return -EIO;
	}
	rc = http_do(r->http, &req, tmo, r->max_body, resp);
	http_req_release(&req);
	count(r, 1, 0);
	if (rc == -EFBIG) {
		e->cls = API_FATAL;
		snprintf(e->msg, sizeof(e->msg), "response larger than %zu MiB"
			 " (max_body_mb); not parsed", r->max_body >> 20);
		return -EIO;
	}
	if (rc == -ECANCELED)
		return rc;
	if (rc == -EPROTO || rc == -EPERM || rc == -EINVAL) {
		/* Refused certificate or URL: a retry would change nothing. */
		char why[sizeof(e->msg)];

		e->cls = API_FATAL;
		http_failure(rc, resp, why, sizeof(why));
		api_text(e->msg, sizeof(e->msg), why, strlen(why));
		return -EIO;
	}
	if (rc == -ETIMEDOUT || rc == -EIO) {
		e->cls = API_RETRY;
		e->retry_after = -1;
		snprintf(e->msg, sizeof(e->msg), "%s", rc == -ETIMEDOUT ?
			 "request timed out" : resp->err);
		return rc;
	}
	if (rc)
		return rc;
	note_rate(r, resp);
	if (resp->status >= 200 && resp->status < 300)
		return 0;
	classify(r, pr, resp, e);
	return -EIO;
}

/* Fetches and parses one page, retrying where it can help. */
static int fetch(struct walk *w, const struct page_req *pr, struct page *pg)
{
	struct remote *r = w->r;
	char perr[256] = "";

	for (unsigned attempt = 0;; attempt++) {
		struct http_resp resp;
		struct api_error e;
		double delay;
		int rc = request(w, pr, &resp, &e);

		if (rc == 0) {
			rc = r->prov->parse_list(r->state, pr, &resp, pg, perr,
						 sizeof(perr));
			http_resp_release(&resp);
			if (rc)
				return fail(w, -EIO, 200, "%s: bad response: %s",
					    r->name, perr);
			return 0;
		}
		http_resp_release(&resp);
		if (rc == -ECANCELED)
			return stopped(w);
		if (rc == -ETIMEDOUT && !e.msg[0])
			return fail(w, -ETIMEDOUT, 0, "%s: walk_limit of %.0f s "
				    "reached", r->name, r->deadline_ms / 1e3);
		if (e.cls == API_RESTART)
			return WALK_RESTART;
		delay = retry_delay(&e, attempt);
		if (delay < 0)
			return fail(w, errno_of(e.cls), e.status, "%s: %s%s%s",
				    r->name, e.code, e.code[0] ? ": " : "",
				    e.msg);
		if (mono_now() + delay >= w->deadline)
			return fail(w, -ETIMEDOUT, e.status, "%s: gave up "
				    "before the deadline: %s", r->name, e.msg);
		if (e.cls == API_THROTTLE)
			ratelimit_pause(&r->rl, mono_now() + delay);
		log_msg(LOG_INFO, "%s: %s (HTTP %ld); retry %u in %.1f s",
			r->name, e.msg, e.status, attempt + 1, delay);
		count(r, 0, 1);
		if (sleep_secs(delay))
			return stopped(w);
		if (failed(w))
			return w->failed;
	}
}

static void progress(struct walk *w)
{
	struct remote *r = w->r;
	double now = mono_now();

	if (now - w->started < PROGRESS_EVERY ||
	    now - w->progress_at < PROGRESS_EVERY)
		return;
	w->progress_at = now;
	pthread_mutex_lock(&r->lock);
	if (r->cur.total >= 0)
		log_msg(LOG_INFO, "%s: listing: %u pages, %lu of %lld entries",
			r->name, r->cur.pages, r->cur.entries, r->cur.total);
	else
		log_msg(LOG_INFO, "%s: listing: %u pages, %lu entries so far",
			r->name, r->cur.pages, r->cur.entries);
	pthread_mutex_unlock(&r->lock);
}

static bool hash_seen(struct cursor_set *cs, uint64_t h);

/*
 * The ids of a page, in order. An index API that ignores the page number
 * (or loops back) hands out a page it has handed out before; the snapshot
 * would silently drop the repeated rows and miss the ones never sent.
 */
static uint64_t page_hash(const struct page *pg)
{
	uint64_t h = FNV1A_INIT;

	for (size_t i = 0; i < pg->n; i++)
		h = fnv1a(h, pg->v[i].id, true);
	return h ? h : 1;
}

/* Hands a page to the sink (serialised) and updates the counters. */
static int deliver(struct walk *w, struct page *pg)
{
	struct remote *r = w->r;
	size_t n = pg->n;
	bool over, loop = false;
	int rc;

	pthread_mutex_lock(&w->lock);
	if (w->failed) {
		rc = w->failed;
	} else if (r->prov->paging == PAGING_INDEX && n &&
		   hash_seen(&w->pages, page_hash(pg))) {
		loop = true;
		rc = -EIO;
	} else {
		rc = w->sink(w->arg, pg);
	}
	pthread_mutex_lock(&r->lock);
	r->cur.pages++;
	r->cur.entries += n;
	if (pg->total >= 0)
		r->cur.total = pg->total;
	over = r->cur.entries > r->max_entries;
	pthread_mutex_unlock(&r->lock);
	pthread_mutex_unlock(&w->lock);
	page_release(pg);
	if (loop)
		return fail(w, -EIO, 0, "%s: the API returned a page with the "
			    "same entries as an earlier page (pagination loop); "
			    "stopping", r->name);
	if (rc)
		return fail(w, rc, 0, "%s: cannot store the listing: %s",
			    r->name, strerror(-rc));
	if (over)
		return fail(w, -EIO, 0, "%s: more than %lu entries "
			    "(max_entries); stopping", r->name,
			    r->max_entries);
	progress(w);
	return 0;
}

static void restart(struct walk *w)
{
	struct remote *r = w->r;

	log_msg(LOG_WARNING, "%s: the API refused the page cursor (expired?); "
		"restarting the listing once", r->name);
	pthread_mutex_lock(&w->lock);
	w->sink(w->arg, NULL);
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_lock(&r->lock);
	r->cur.pages = 0;
	r->cur.entries = 0;
	pthread_mutex_unlock(&r->lock);
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = fnv1a(FNV1A_INIT, s, false);

	return h ? h : 1;
}

static void cursor_insert(struct cursor_set *cs, uint64_t h)
{
	size_t i = h % cs->cap;

	while (cs->h[i])
		i = (i + 1) % cs->cap;
	cs->h[i] = h;
	cs->n++;
}

/* Returns true if h was seen before; adds it otherwise. */
static bool hash_seen(struct cursor_set *cs, uint64_t h)
{
	if (cs->n * 2 >= cs->cap) {
		struct cursor_set big = { .cap = cs->cap ? cs->cap * 2 : 64 };

		big.h = calloc(big.cap, sizeof(*big.h));
		if (!big.h)
			return false;
		for (size_t i = 0; i < cs->cap; i++)
			if (cs->h[i])
				cursor_insert(&big, cs->h[i]);
		free(cs->h);
		*cs = big;
	}
	for (size_t i = h % cs->cap; cs->h[i]; i = (i + 1) % cs->cap)
		if (cs->h[i] == h)
			return true;
	cursor_insert(cs, h);
	return false;
}

static bool cursor_seen(struct cursor_set *cs, const char *s)
{
	return hash_seen(cs, hash_str(s));
}

static int walk_cursor(struct walk *w)
{
	struct cursor_set seen = { 0 };
	struct remote *r = w->r;
	char *cursor = NULL;
	bool restarted = false;
	unsigned pages = 0;
	int rc = 0;

	for (;;) {
		struct page_req pr = { .cursor = cursor, .size = r->page_size };
		struct page pg = { .total = -1 };

		if (pages++ >= r->max_pages) {
			rc = fail(w, -EIO, 0, "%s: pagination did not end "
				  "after %u pages (max_pages); stopping",
				  r->name, r->max_pages);
			break;
		}
		rc = fetch(w, &pr, &pg);
		if (rc == WALK_RESTART && !restarted && cursor) {
			page_release(&pg);
			restarted = true;
			restart(w);
			free(seen.h);
			memset(&seen, 0, sizeof(seen));
			free(cursor);
			cursor = NULL;
			pages = 0;
			continue;
		}
		if (rc == WALK_RESTART)
			rc = fail(w, -EIO, 400, "%s: the API refused the page "
				  "cursor again after a restart", r->name);
		if (rc) {
			page_release(&pg);
			break;
		}
		free(cursor);
		cursor = pg.next;
		pg.next = NULL;
		if ((rc = deliver(w, &pg)) || !cursor)
			break;
		if (cursor_seen(&seen, cursor)) {
			rc = fail(w, -EIO, 0, "%s: the API returned a page "
				  "cursor it had already returned (pagination "
				  "loop); stopping", r->name);
			break;
		}
	}
	free(cursor);
	free(seen.h);
	return rc;
}

/* Fetches page `index` and delivers it; notes whether it was full. */
static int index_page(struct walk *w, unsigned long index)
{
	struct page_req pr = { .index = index, .size = w->r->page_size };
	struct page pg = { .total = -1 };
	bool full;
	int rc = fetch(w, &pr, &pg);

	if (rc == WALK_RESTART)
		rc = fail(w, -EIO, 400, "%s: the API refused page %lu",
			  w->r->name, index);
	if (rc) {
		page_release(&pg);
		return rc;
	}
	full = pg.more;
	pthread_mutex_lock(&w->lock);
	if (!full)
		w->short_seen = true;
	if (index + 1 == w->end_index)
		w->last_full = full;
	pthread_mutex_unlock(&w->lock);
	return deliver(w, &pg);
}

static void *index_worker(void *arg)
{
	struct walk *w = arg;

	for (;;) {
		unsigned long idx;

		pthread_mutex_lock(&w->lock);
		idx = w->next_index++;
		pthread_mutex_unlock(&w->lock);
		if (idx >= w->end_index || failed(w))
			return NULL;
		if (index_page(w, idx))
			return NULL;
	}
}

/* Fetches pages [from, to) with up to `concurrency` threads. */
static int fetch_range(struct walk *w, unsigned long from, unsigned long to)
{
	pthread_t tids[32];
	unsigned n = w->r->concurrency, started = 0;

	if (to - from < n)
		n = (unsigned)(to - from);
	w->next_index = from;
	w->end_index = to;
	for (unsigned i = 1; i < n; i++)
		if (pthread_create(&tids[started], NULL, index_worker, w) == 0)
			started++;
	index_worker(w);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	return w->failed;
}

static int too_many_pages(struct walk *w, unsigned long pages)
{
	return fail(w, -EIO, 0, "%s: the listing needs %lu pages, more than "
		    "max_pages (%u); stopping", w->r->name, pages,
		    w->r->max_pages);
}

/*
 * Page-number APIs. With a total (ActiveCampaign) the pages still to fetch
 * are known after page 0 and fetched concurrently, costing exactly the
 * minimum. Without one (Nango), windows of `concurrency` pages are fetched
 * until a short page shows the end.
 */
static int walk_index(struct walk *w)
{
	struct remote *r = w->r;
	unsigned long size = r->page_size, next;
	long long total;
	int rc;

	w->end_index = 1;
	if ((rc = index_page(w, 0)) || !w->last_full)
		return rc;
	pthread_mutex_lock(&r->lock);
	total = r->cur.total;
	pthread_mutex_unlock(&r->lock);
	if (total >= 0) {
		unsigned long pages = (unsigned long)((total + size - 1) / size);

		if (pages > r->max_pages)
			return too_many_pages(w, pages);
		if (pages > 1 && (rc = fetch_range(w, 1, pages)))
			return rc;
		/* Grown while we paged: go on while the API says so. */
		for (next = pages; w->last_full && !w->short_seen; next++) {
			pthread_mutex_lock(&r->lock);
			total = r->cur.total;
			pthread_mutex_unlock(&r->lock);
			if (total <= (long long)(next * size))
				break;
			if (next >= r->max_pages)
				return too_many_pages(w, next + 1);
			w->end_index = next + 1;
			if ((rc = index_page(w, next)))
				return rc;
		}
		return 0;
	}
	for (next = 1; !w->short_seen; next += r->concurrency) {
		unsigned long end = next + r->concurrency;

		if (next >= r->max_pages)
			return too_many_pages(w, next + 1);
		if (end > r->max_pages)
			end = r->max_pages;
		if ((rc = fetch_range(w, next, end)))
			return rc;
	}
	return 0;
}

static int walk_single(struct walk *w)
{
	struct page_req pr = { .size = w->r->page_size };
	struct page pg = { .total = -1 };
	int rc = fetch(w, &pr, &pg);

	if (rc == WALK_RESTART)
		rc = fail(w, -EIO, 400, "%s: the API refused the listing",
			  w->r->name);
	if (rc) {
		page_release(&pg);
		return rc;
	}
	return deliver(w, &pg);
}

static void walk_begin(struct remote *r)
{
	pthread_mutex_lock(&r->lock);
	r->walking = true;
	memset(&r->cur, 0, sizeof(r->cur));
	r->cur.total = -1;
	r->cur.started = wall_now();
	pthread_mutex_unlock(&r->lock);
}

static void walk_end(struct remote *r)
{
	pthread_mutex_lock(&r->lock);
	r->walking = false;
	r->cur.finished = wall_now();
	r->last = r->cur;
	pthread_mutex_unlock(&r->lock);
}

int remote_walk(struct remote *r, walk_sink_fn sink, void *arg,
		struct walk_error *werr)
{
	struct walk w = {
		.r = r, .sink = sink, .arg = arg, .werr = werr,
		.started = mono_now(),
	};
	char err[256] = "";
	int rc = 0;

	memset(werr, 0, sizeof(*werr));
	w.deadline = w.started + r->deadline_ms / 1e3;
	pthread_mutex_init(&w.lock, NULL);
	walk_begin(r);
	if (r->prov->begin_walk &&
	    (rc = r->prov->begin_walk(r->state, err, sizeof(err))))
		rc = fail(&w, -EIO, 0, "%s: %s", r->name, err);
	else if (r->prov->paging == PAGING_CURSOR)
		rc = walk_cursor(&w);
	else if (r->prov->paging == PAGING_INDEX)
		rc = walk_index(&w);
	else
		rc = walk_single(&w);
	walk_end(r);
	free(w.pages.h);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

int remote_probe(struct remote *r, unsigned long *n, struct walk_error *werr)
{
	struct walk w = { .r = r, .werr = werr, .started = mono_now() };
	struct page_req pr = { .size = r->page_size };
	struct page pg = { .total = -1 };
	char err[256] = "";
	int rc;

	memset(werr, 0, sizeof(*werr));
	w.deadline = w.started + r->deadline_ms / 1e3;
	pthread_mutex_init(&w.lock, NULL);
	if (r->prov->begin_walk &&
	    (rc = r->prov->begin_walk(r->state, err, sizeof(err))))
		rc = fail(&w, -EIO, 0, "%s: %s", r->name, err);
	else if ((rc = fetch(&w, &pr, &pg)) == WALK_RESTART)
		rc = fail(&w, -EIO, 400, "%s: the API refused the first page",
			  r->name);
	*n = pg.n;
	page_release(&pg);
	pthread_mutex_destroy(&w.lock);
	return rc;
}
