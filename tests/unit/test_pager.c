/*
 * Unit tests for the generic pager (providers/pager.c) through
 * remote_walk(), with a fake HTTP transport (http_set_transport) serving
 * scripted responses to remotes built by remote_new() from hand-made
 * sections. Checked are exact request counts and outcomes: cursor walks,
 * cursor loops, max_pages, cursor restarts, retries of 5xx, 429 and
 * transport errors, no retry of 401/400/302/parse failures, the deadline,
 * concurrent page-number walks with and without a total, and a single
 * request for unpaged APIs. No network: the fake answers everything.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "harness.h"
#include "log.h"
#include "remote.h"

#define MAX_REQ 64
#define MAX_IDS 512
#define URL "http://127.0.0.1:1"

static const struct remote_defaults defaults = {
	.ttl = 60, .timeout = 5, .deadline = 10,
};

/* --- the fake transport ------------------------------------------------- */

struct fake;
/* Answers request n (0-based); returns 0 or a transport error. */
typedef int (*handler_fn)(struct fake *f, int n, const struct http_req *req,
			  struct http_resp *resp);

struct fake {
	pthread_mutex_t lock;
	handler_fn handler;
	int calls;
	char *urls[MAX_REQ];
	char *bodies[MAX_REQ];
	long delay_ms;		/* time spent "on the wire", outside the lock */
	int inflight;
	int max_inflight;
	long total;		/* for index handlers: rows on the server */
};

static struct fake F = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts))
		;
}

static int fake_transport(const struct http_req *req, struct http_resp *resp,
			  void *arg)
{
	struct fake *f = arg;
	int n, rc;

	pthread_mutex_lock(&f->lock);
	n = f->calls++;
	if (n < MAX_REQ) {
		f->urls[n] = strdup(req->url ? req->url : "");
		f->bodies[n] = req->body ? strdup(req->body) : NULL;
	}
	if (++f->inflight > f->max_inflight)
		f->max_inflight = f->inflight;
	rc = f->handler(f, n, req, resp);
	pthread_mutex_unlock(&f->lock);
	if (f->delay_ms)
		sleep_ms(f->delay_ms);
	pthread_mutex_lock(&f->lock);
	f->inflight--;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static void fake_reset(handler_fn h)
{
	pthread_mutex_lock(&F.lock);
	for (int i = 0; i < MAX_REQ; i++) {
		free(F.urls[i]);
		free(F.bodies[i]);
		F.urls[i] = F.bodies[i] = NULL;
	}
	F.handler = h;
	F.calls = 0;
	F.delay_ms = 0;
	F.inflight = F.max_inflight = 0;
	F.total = 0;
	pthread_mutex_unlock(&F.lock);
}

static int calls(void)
{
	int n;

	pthread_mutex_lock(&F.lock);
	n = F.calls;
	pthread_mutex_unlock(&F.lock);
	return n;
}

/* True if some recorded request URL contains s. */
static bool requested(const char *s)
{
	bool found = false;

	pthread_mutex_lock(&F.lock);
	for (int i = 0; i < F.calls && i < MAX_REQ; i++)
		if (F.urls[i] && strstr(F.urls[i], s))
			found = true;
	pthread_mutex_unlock(&F.lock);
	return found;
}

static int reply(struct http_resp *resp, long status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int reply(struct http_resp *resp, long status, const char *fmt, ...)
{
	va_list ap;

	resp->status = status;
	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&resp->body, fmt, ap) < 0)
			resp->body = NULL;
		va_end(ap);
		resp->len = resp->body ? strlen(resp->body) : 0;
	}
	return 0;
}

static void header(struct http_resp *resp, const char *name,
		   const char *value)
{
	resp->headers[resp->nheaders].name = strdup(name);
	resp->headers[resp->nheaders].value = strdup(value);
	resp->nheaders++;
	/* What http_do does for real responses. */
	if (strcasecmp(name, "Retry-After") == 0)
		resp->retry_after = http_parse_retry_after(value, 0);
}

static int transport_error(struct http_resp *resp, const char *msg)
{
	resp->status = 0;
	snprintf(resp->err, sizeof(resp->err), "%s", msg);
	return -EIO;
}

/* --- remotes and the sink ----------------------------------------------- */

#define MAX_KV 16

struct sect {
	struct conf_section s;
	struct conf_kv kv[MAX_KV];
};

/* A remote of `type` with NULL-terminated key, value pairs. */
static struct remote *mk(const char *type, const char *const *kv)
{
	struct sect t;
	struct remote *r = NULL;
	char err[CONF_ERRLEN] = "";
	int rc;

	memset(&t, 0, sizeof(t));
	t.s.name = (char *)type;
	t.s.line = 1;
	t.s.file_mode = 0600;
	t.s.kv = t.kv;
	for (size_t i = 0; kv && kv[i] && t.s.nkv < MAX_KV; i += 2) {
		t.kv[t.s.nkv].key = (char *)kv[i];
		t.kv[t.s.nkv].value = (char *)kv[i + 1];
		t.kv[t.s.nkv].line = 2 + (int)t.s.nkv;
		t.s.nkv++;
	}
	rc = remote_new(&t.s, &defaults, &r, err);
	CHECK_INT(rc, 0);
	if (rc)
		fprintf(stderr, "remote_new(%s): %s\n", type, err);
	return r;
}

struct sink {
	int pages;
	int restarts;
	int n;
	char *ids[MAX_IDS];
	int fail_after;		/* return -ENOSPC after this many pages */
};

static void sink_clear(struct sink *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->ids[i]);
	s->n = 0;
}

static void sink_free(struct sink *s)
{
	sink_clear(s);
	memset(s, 0, sizeof(*s));
}

static int sink_fn(void *arg, struct page *pg)
{
	struct sink *s = arg;

	if (!pg) {
		s->restarts++;
		sink_clear(s);
		return 0;
	}
	s->pages++;
	for (size_t i = 0; i < pg->n && s->n < MAX_IDS; i++)
		s->ids[s->n++] = strdup(pg->v[i].id);
	if (s->fail_after && s->pages >= s->fail_after)
		return -ENOSPC;
	return 0;
}

static bool has_id(const struct sink *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return true;
	return false;
}

static struct walk_stats last_stats(struct remote *r)
{
	struct walk_stats cur, last;
	struct rate_info ri;
	bool walking;

	remote_stats(r, &walking, &cur, &last, &ri);
	CHECK(!walking);
	return last;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Walks r with handler h; fills the sink and werr; returns the result. */
static int walk(struct remote *r, handler_fn h, struct sink *s,
		struct walk_error *werr)
{
	fake_reset(h);
	memset(s, 0, sizeof(*s));
	return remote_walk(r, sink_fn, s, werr);
}

static void expect_msg(const struct walk_error *werr, const char *want)
{
	if (!strstr(werr->msg, want))
		fprintf(stderr, "werr.msg \"%s\", want \"%s\"\n", werr->msg,
			want);
	CHECK(strstr(werr->msg, want) != NULL);
}

/* --- EventBridge: cursor paging ----------------------------------------- */

static const char *const eb_kv[] = { "url", URL, "rate", "0", NULL };

static struct remote *mk_eb(const char *const *extra)
{
	const char *kv[MAX_KV * 2 + 1] = { 0 };
	size_t n = 0;

	for (size_t i = 0; eb_kv[i]; i++)
		kv[n++] = eb_kv[i];
	for (size_t i = 0; extra && extra[i]; i++)
		kv[n++] = extra[i];
	return mk("eventbridge", kv);
}

/* "{"Connections":[c<n>a, c<n>b],"NextToken":"<next>"}" */
static int eb_page(struct http_resp *resp, int n, const char *next)
{
	if (next)
		return reply(resp, 200, "{\"Connections\":[{\"Name\":\"c%da\","
			     "\"ConnectionArn\":\"arn:%da\"},{\"Name\":"
			     "\"c%db\"}],\"NextToken\":\"%s\"}", n, n, n,
			     next);
	return reply(resp, 200, "{\"Connections\":[{\"Name\":\"c%da\","
		     "\"ConnectionArn\":\"arn:%da\"}]}", n, n);
}

static int h_three(struct fake *f, int n, const struct http_req *req,
		   struct http_resp *resp)
{
	(void)f;
	(void)req;
	return eb_page(resp, n, n == 0 ? "t1" : n == 1 ? "t2" : NULL);
}

static void test_cursor_walk(void)
{
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct walk_stats st;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_three, &s, &werr), 0);
	CHECK_INT(calls(), 3);
	CHECK_INT(s.pages, 3);
	CHECK_INT(s.restarts, 0);
	CHECK_INT(s.n, 5);
	CHECK(has_id(&s, "arn:0a") && has_id(&s, "c0b") &&
	      has_id(&s, "arn:1a") && has_id(&s, "c1b") && has_id(&s, "arn:2a"));
	CHECK_STR(F.bodies[0], "{\"Limit\":100}");
	CHECK_STR(F.bodies[1], "{\"Limit\":100,\"NextToken\":\"t1\"}");
	CHECK_STR(F.bodies[2], "{\"Limit\":100,\"NextToken\":\"t2\"}");
	CHECK_STR(F.urls[0], URL "/");
	CHECK_INT(werr.err, 0);
	st = last_stats(r);
	CHECK_INT(st.requests, 3);
	CHECK_INT(st.pages, 3);
	CHECK_INT(st.entries, 5);
	CHECK_INT(st.retries, 0);
	sink_free(&s);
	remote_free(r);
}

static int h_repeat(struct fake *f, int n, const struct http_req *req,
		    struct http_resp *resp)
{
	(void)f;
	(void)req;
	return eb_page(resp, n, "SAME");
}

static int h_repeat_later(struct fake *f, int n, const struct http_req *req,
			  struct http_resp *resp)
{
	static const char *const next[] = { "A", "B", "C", "B" };

	(void)f;
	(void)req;
	return eb_page(resp, n, next[n < 4 ? n : 3]);
}

static int h_endless(struct fake *f, int n, const struct http_req *req,
		     struct http_resp *resp)
{
	char next[32];

	(void)f;
	(void)req;
	snprintf(next, sizeof(next), "tok-%d", n);
	return eb_page(resp, n, next);
}

static void test_cursor_loops(void)
{
	static const char *const five[] = { "max_pages", "5", NULL };
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_repeat, &s, &werr), -EIO);
	CHECK_INT(calls(), 2);
	CHECK_INT(werr.err, -EIO);
	expect_msg(&werr, "pagination loop");
	sink_free(&s);

	CHECK_INT(walk(r, h_repeat_later, &s, &werr), -EIO);
	CHECK_INT(calls(), 4);
	expect_msg(&werr, "pagination loop");
	sink_free(&s);
	remote_free(r);

	r = mk_eb(five);
	if (!r)
		return;
	CHECK_INT(walk(r, h_endless, &s, &werr), -EIO);
	CHECK_INT(calls(), 5);
	CHECK_INT(s.pages, 5);
	expect_msg(&werr, "max_pages");
	sink_free(&s);
	remote_free(r);
}

/* Page 1 refuses the cursor once; the restarted walk goes through. */
static int h_restart_once(struct fake *f, int n, const struct http_req *req,
			  struct http_resp *resp)
{
	(void)f;
	if (n == 1) {
		CHECK(req->body && strstr(req->body, "\"NextToken\":\"A\""));
		return reply(resp, 400, "{\"__type\":\"InvalidToken\","
			     "\"message\":\"expired\"}");
	}
	if (n == 2)
		CHECK(req->body && !strstr(req->body, "NextToken"));
	return eb_page(resp, n, n == 0 ? "A" : n == 2 ? "B" : NULL);
}

static int h_restart_twice(struct fake *f, int n, const struct http_req *req,
			   struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n % 2)
		return reply(resp, 400, "{\"__type\":\"InvalidToken\"}");
	return eb_page(resp, n, "A");
}

static int h_token_first(struct fake *f, int n, const struct http_req *req,
			 struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return reply(resp, 400, "{\"__type\":\"InvalidToken\"}");
}

static void test_cursor_restart(void)
{
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_restart_once, &s, &werr), 0);
	CHECK_INT(calls(), 4);
	CHECK_INT(s.restarts, 1);
	/* Only the restarted walk's entries remain: pages 2 and 3. */
	CHECK_INT(s.n, 3);
	CHECK(has_id(&s, "arn:2a") && has_id(&s, "c2b") && has_id(&s, "arn:3a"));
	CHECK(!has_id(&s, "arn:0a"));
	CHECK_INT(last_stats(r).entries, 3);
	sink_free(&s);

	CHECK_INT(walk(r, h_restart_twice, &s, &werr), -EIO);
	CHECK_INT(calls(), 4);
	CHECK_INT(s.restarts, 1);
	CHECK_INT(werr.status, 400);
	expect_msg(&werr, "again after a restart");
	sink_free(&s);

	/* Without a cursor there is nothing to restart: fatal at once. */
	CHECK_INT(walk(r, h_token_first, &s, &werr), -EIO);
	CHECK_INT(calls(), 1);
	CHECK_INT(s.restarts, 0);
	expect_msg(&werr, "InvalidToken");
	sink_free(&s);
	remote_free(r);
}

/* --- retries ------------------------------------------------------------ */

static int h_503_twice(struct fake *f, int n, const struct http_req *req,
		       struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n < 2)
		return reply(resp, 503, "Service Unavailable");
	return eb_page(resp, n, NULL);
}

static int h_429(struct fake *f, int n, const struct http_req *req,
		 struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n == 0) {
		header(resp, "Retry-After", "0");
		return reply(resp, 429, "{\"__type\":\"ThrottlingException\"}");
	}
	return eb_page(resp, n, NULL);
}

static int h_throttle_400(struct fake *f, int n, const struct http_req *req,
			  struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n == 0) {
		header(resp, "x-amz-retry-after", "10");
		return reply(resp, 400, "{\"__type\":\"ThrottlingException\"}");
	}
	return eb_page(resp, n, NULL);
}

static int h_transport(struct fake *f, int n, const struct http_req *req,
		       struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n == 0)
		return transport_error(resp, "Failed to connect to 127.0.0.1 "
				       "port 1: Connection refused");
	return eb_page(resp, n, NULL);
}

static int h_transport_always(struct fake *f, int n,
			      const struct http_req *req,
			      struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return transport_error(resp, "Connection refused");
}

static void test_retries(void)
{
	static const char *const short_deadline[] = { "walk_limit", "1", NULL };
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct walk_stats st;
	struct sink s;
	double t0;

	if (!r)
		return;
	CHECK_INT(walk(r, h_503_twice, &s, &werr), 0);
	CHECK_INT(calls(), 3);
	CHECK_INT(s.n, 1);
	st = last_stats(r);
	CHECK_INT(st.requests, 3);
	CHECK_INT(st.retries, 2);
	sink_free(&s);

	CHECK_INT(walk(r, h_429, &s, &werr), 0);
	CHECK_INT(calls(), 2);
	CHECK_INT(last_stats(r).retries, 1);
	sink_free(&s);

	/* EventBridge throttling is HTTP 400; x-amz-retry-after in ms. */
	CHECK_INT(walk(r, h_throttle_400, &s, &werr), 0);
	CHECK_INT(calls(), 2);
	sink_free(&s);

	CHECK_INT(walk(r, h_transport, &s, &werr), 0);
	CHECK_INT(calls(), 2);
	CHECK_INT(s.n, 1);
	CHECK_INT(last_stats(r).retries, 1);
	sink_free(&s);
	remote_free(r);

	/* Persistent transport errors: retried until the deadline. */
	r = mk_eb(short_deadline);
	if (!r)
		return;
	t0 = mono();
	CHECK_INT(walk(r, h_transport_always, &s, &werr), -ETIMEDOUT);
	CHECK(calls() >= 2);
	CHECK(mono() - t0 < 1.5);
	expect_msg(&werr, "Connection refused");
	sink_free(&s);
	remote_free(r);
}

/* --- no retries --------------------------------------------------------- */

static int h_401(struct fake *f, int n, const struct http_req *req,
		 struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return reply(resp, 401, NULL);
}

static int h_400(struct fake *f, int n, const struct http_req *req,
		 struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return reply(resp, 400, "{\"__type\":\"ValidationException\","
		     "\"message\":\"1 validation error detected\"}");
}

static int h_302(struct fake *f, int n, const struct http_req *req,
		 struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	header(resp, "Location", "https://evil.example.com/steal");
	return reply(resp, 302, NULL);
}

static int h_bad_json(struct fake *f, int n, const struct http_req *req,
		      struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return reply(resp, 200, "{\"Connections\":[");
}

static void test_no_retry(void)
{
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_401, &s, &werr), -EACCES);
	CHECK_INT(calls(), 1);
	CHECK_INT(werr.err, -EACCES);
	CHECK_INT(werr.status, 401);
	expect_msg(&werr, "HTTP 401");
	CHECK_INT(s.pages, 0);
	sink_free(&s);

	CHECK_INT(walk(r, h_400, &s, &werr), -EIO);
	CHECK_INT(calls(), 1);
	CHECK_INT(werr.status, 400);
	expect_msg(&werr, "ValidationException");
	expect_msg(&werr, "1 validation error detected");
	sink_free(&s);

	CHECK_INT(walk(r, h_302, &s, &werr), -EIO);
	CHECK_INT(calls(), 1);
	expect_msg(&werr, "redirect");
	expect_msg(&werr, "https://evil.example.com/steal");
	sink_free(&s);

	CHECK_INT(walk(r, h_bad_json, &s, &werr), -EIO);
	CHECK_INT(calls(), 1);
	CHECK_INT(last_stats(r).retries, 0);
	expect_msg(&werr, "bad response");
	sink_free(&s);
	remote_free(r);
}

/* --- deadline, limits, sink errors -------------------------------------- */

static int h_503_wait(struct fake *f, int n, const struct http_req *req,
		      struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	header(resp, "Retry-After", "30");
	return reply(resp, 503, NULL);
}

static void test_deadline(void)
{
	static const char *const half[] = { "walk_limit", "0.5", NULL };
	struct remote *r = mk_eb(half);
	struct walk_error werr;
	struct sink s;
	double t0;

	if (!r)
		return;
	t0 = mono();
	CHECK_INT(walk(r, h_503_wait, &s, &werr), -ETIMEDOUT);
	CHECK(mono() - t0 < 0.5);
	CHECK_INT(calls(), 1);
	CHECK_INT(werr.err, -ETIMEDOUT);
	CHECK_INT(werr.status, 503);
	expect_msg(&werr, "deadline");
	sink_free(&s);
	remote_free(r);
}

/* http_do() refused the server's certificate: a retry changes nothing. */
static int h_cert(struct fake *f, int n, const struct http_req *req,
		  struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	transport_error(resp, "SSL certificate problem: certificate has "
			"expired");
	return -EPROTO;
}

static void test_tls_refused(void)
{
	struct remote *r = mk_eb(NULL);
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_cert, &s, &werr), -EIO);
	CHECK_INT(calls(), 1);
	CHECK_INT(last_stats(r).retries, 0);
	expect_msg(&werr, "TLS certificate refused: SSL certificate problem: "
		   "certificate has expired");
	sink_free(&s);
	remote_free(r);
}

static void *abort_soon(void *arg)
{
	(void)arg;
	while (calls() == 0)
		sleep_secs(0.01);
	http_abort_all();
	return NULL;
}

/*
 * http_abort_all() ends a walk waiting out a 30 s Retry-After, and every
 * later walk before its first request. Irreversible: runs last.
 */
static void test_abort(void)
{
	static const char *const slow[] = { "deadline", "60", NULL };
	struct remote *r = mk_eb(slow);
	struct walk_error werr;
	struct sink s;
	pthread_t tid;

	if (!r)
		return;
	/* The count of the test before must not set off the abort. */
	fake_reset(h_503_wait);
	pthread_create(&tid, NULL, abort_soon, NULL);
	CHECK_INT(walk(r, h_503_wait, &s, &werr), -ECANCELED);
	pthread_join(tid, NULL);
	CHECK_INT(calls(), 1);
	expect_msg(&werr, "listing stopped: connfs is shutting down");
	sink_free(&s);
	CHECK_INT(walk(r, h_three, &s, &werr), -ECANCELED);
	CHECK_INT(calls(), 0);
	CHECK_INT(s.pages, 0);
	sink_free(&s);
	remote_free(r);
}

/*
 * The rate limiter cannot give a token before the deadline: request()
 * returns -ETIMEDOUT before http_do() has initialised the response.
 * Regression (fixed): pager.c fetch() then calls http_resp_release(&resp) on the
 * uninitialised stack struct (free() of garbage pointers). It may pass
 * by luck here; valgrind shows it ("Conditional jump or move depends on
 * uninitialised value(s)" / invalid free in http_resp_release).
 */
static void test_rate_deadline(void)
{
	const char *kv[] = { "url", URL, "rate", "1/min", "walk_limit", "0.5",
			     NULL };
	struct remote *r = mk("eventbridge", kv);
	struct walk_error werr;
	struct sink s;
	double t0;

	if (!r)
		return;
	t0 = mono();
	CHECK_INT(walk(r, h_three, &s, &werr), -ETIMEDOUT);
	CHECK(mono() - t0 < 0.5);
	CHECK_INT(calls(), 1);
	expect_msg(&werr, "walk_limit");
	sink_free(&s);
	remote_free(r);
}

/*
 * Regression (fixed): when build_list() fails (here: http_req_header() refuses the
 * session token's line break with -EINVAL), pager.c request() returns
 * that errno with e zeroed, i.e. e.cls == API_RETRY (0) and no message:
 * fetch() then retries a request that can never be built, with backoff,
 * until the deadline, and reports -ETIMEDOUT "gave up before the
 * deadline: " with an empty reason. Each attempt also releases the
 * never-initialised resp (see test_rate_deadline): here that crashes the
 * process ("free(): invalid pointer"; ASan: SEGV in http_resp_release
 * from fetch, pager.c:238). Want: fail at once (-EIO or the errno) with
 * a message, no retries, no crash. Run last so a crash hides nothing.
 */
static void test_build_failure(void)
{
	static const char *const two[] = { "walk_limit", "2", NULL };
	struct remote *r;
	struct walk_error werr;
	struct sink s;
	double t0;
	int rc;

	setenv("AWS_SESSION_TOKEN", "tok\r\nX-Evil: 1", 1);
	r = mk_eb(two);
	unsetenv("AWS_SESSION_TOKEN");
	if (!r)
		return;
	t0 = mono();
	rc = walk(r, h_three, &s, &werr);
	CHECK(rc < 0);
	CHECK_INT(calls(), 0);
	/* Regression (fixed): retried for the whole deadline, want an immediate failure */
	CHECK(mono() - t0 < 0.5);
	CHECK(rc != -ETIMEDOUT);
	CHECK_INT(last_stats(r).retries, 0);
	sink_free(&s);
	remote_free(r);
}

static void test_limits(void)
{
	static const char *const three[] = { "max_entries", "3", NULL };
	struct remote *r = mk_eb(three);
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	CHECK_INT(walk(r, h_three, &s, &werr), -EIO);
	CHECK_INT(calls(), 2);
	expect_msg(&werr, "max_entries");
	sink_free(&s);
	remote_free(r);

	/* A sink error stops the walk and is returned as it is. */
	r = mk_eb(NULL);
	if (!r)
		return;
	fake_reset(h_three);
	memset(&s, 0, sizeof(s));
	s.fail_after = 1;
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), -ENOSPC);
	CHECK_INT(calls(), 1);
	expect_msg(&werr, "cannot store");
	sink_free(&s);
	remote_free(r);
}

/* --- ActiveCampaign: offsets with a total ------------------------------- */

static long url_num(const char *url, const char *key)
{
	const char *p = strstr(url, key);

	return p ? atol(p + strlen(key)) : -1;
}

/* Rows [offset, min(offset + limit, total)), meta.total as a string. */
static int h_ac(struct fake *f, int n, const struct http_req *req,
		struct http_resp *resp)
{
	long off = url_num(req->url, "offset="), lim = url_num(req->url,
							      "limit=");
	size_t cap = 64 + 40 * (size_t)(lim > 0 ? lim : 1), len = 0;
	char *b = malloc(cap);

	(void)n;
	if (!b)
		return transport_error(resp, "out of memory");
	len += (size_t)snprintf(b + len, cap - len, "{\"connections\":[");
	for (long i = off; i >= 0 && i < off + lim && i < f->total; i++)
		len += (size_t)snprintf(b + len, cap - len,
					"%s{\"id\":\"%ld\",\"name\":\"c%ld\"}",
					i > off ? "," : "", i + 1, i);
	snprintf(b + len, cap - len, "],\"meta\":{\"total\":\"%ld\"}}",
		 f->total);
	resp->status = 200;
	resp->body = b;
	resp->len = strlen(b);
	return 0;
}

static struct remote *mk_ac(void)
{
	static const char *const kv[] = { "url", URL, "rate", "0", NULL };

	setenv("ACTIVECAMPAIGN_API_TOKEN", "ac-token", 1);
	return mk("activecampaign", kv);
}

static void test_ac_total(void)
{
	struct remote *r = mk_ac();
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	fake_reset(h_ac);
	F.total = 250;
	F.delay_ms = 100;
	memset(&s, 0, sizeof(s));
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
	CHECK_INT(calls(), 3);
	CHECK(requested("limit=100&offset=0"));
	CHECK(requested("limit=100&offset=100"));
	CHECK(requested("limit=100&offset=200"));
	/* Pages 1 and 2 were in flight at the same time. */
	CHECK_INT(F.max_inflight, 2);
	CHECK_INT(s.n, 250);
	CHECK(has_id(&s, "1") && has_id(&s, "250"));
	CHECK_INT(last_stats(r).total, 250);
	sink_free(&s);

	/* An exact multiple: no empty extra page. */
	fake_reset(h_ac);
	F.total = 200;
	memset(&s, 0, sizeof(s));
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
	CHECK_INT(calls(), 2);
	CHECK(requested("offset=0") && requested("offset=100"));
	CHECK(!requested("offset=200"));
	CHECK_INT(s.n, 200);
	sink_free(&s);

	/* One short page: one request. */
	fake_reset(h_ac);
	F.total = 7;
	memset(&s, 0, sizeof(s));
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
	CHECK_INT(calls(), 1);
	CHECK_INT(s.n, 7);
	sink_free(&s);

	/* Empty account. */
	fake_reset(h_ac);
	F.total = 0;
	memset(&s, 0, sizeof(s));
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
	CHECK_INT(calls(), 1);
	CHECK_INT(s.n, 0);
	sink_free(&s);
	remote_free(r);
	unsetenv("ACTIVECAMPAIGN_API_TOKEN");
}

/* Page 2 of 3 is refused: the walk fails as a whole, no hang. */
static int h_ac_auth(struct fake *f, int n, const struct http_req *req,
		     struct http_resp *resp)
{
	if (url_num(req->url, "offset=") == 200)
		return reply(resp, 403, "{\"message\":\"You are not "
			     "authorized to access this resource\"}");
	return h_ac(f, n, req, resp);
}

static void test_ac_error(void)
{
	struct remote *r = mk_ac();
	struct walk_error werr;
	struct sink s;

	if (!r)
		return;
	fake_reset(h_ac_auth);
	F.total = 250;
	memset(&s, 0, sizeof(s));
	CHECK_INT(remote_walk(r, sink_fn, &s, &werr), -EACCES);
	CHECK_INT(calls(), 3);
	expect_msg(&werr, "not authorized");
	sink_free(&s);
	remote_free(r);
	unsetenv("ACTIVECAMPAIGN_API_TOKEN");
}

/* --- Nango: page numbers without a total -------------------------------- */

static int h_nango(struct fake *f, int n, const struct http_req *req,
		   struct http_resp *resp)
{
	long page = url_num(req->url, "page="), lim = url_num(req->url,
							       "limit=");
	char b[1024];
	size_t len = 0;

	(void)n;
	len += (size_t)snprintf(b, sizeof(b), "{\"connections\":[");
	for (long i = page * lim; i >= 0 && i < (page + 1) * lim &&
	     i < f->total; i++)
		len += (size_t)snprintf(b + len, sizeof(b) - len,
					"%s{\"id\":%ld,\"connection_id\":"
					"\"conn-%ld\",\"provider_config_key\":"
					"\"github\"}", i > page * lim ? "," : "",
					i + 1, i + 1);
	snprintf(b + len, sizeof(b) - len, "]}");
	return reply(resp, 200, "%s", b);
}

static void test_nango(void)
{
	static const char *const one[] = { "url", URL, "rate", "0",
					   "page_size", "2", "concurrency",
					   "1", NULL };
	static const char *const four[] = { "url", URL, "rate", "0",
					    "page_size", "2", NULL };
	struct remote *r;
	struct walk_error werr;
	struct sink s;

	setenv("NANGO_SECRET_KEY", "nango-secret", 1);
	/* One page at a time: pages 0, 1 (full) and 2 (short). */
	r = mk("nango", one);
	if (r) {
		fake_reset(h_nango);
		F.total = 5;
		memset(&s, 0, sizeof(s));
		CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
		CHECK_INT(calls(), 3);
		CHECK(requested("limit=2&page=0") && requested("page=1") &&
		      requested("page=2"));
		CHECK_INT(s.n, 5);
		CHECK(has_id(&s, "1") && has_id(&s, "5"));
		sink_free(&s);
		remote_free(r);
	}

	/* Windows of 4 after page 0: pages 1-4, 3 and 4 come back empty. */
	r = mk("nango", four);
	if (r) {
		fake_reset(h_nango);
		F.total = 5;
		memset(&s, 0, sizeof(s));
		CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
		CHECK_INT(calls(), 5);
		CHECK_INT(s.n, 5);
		sink_free(&s);

		/* A first short page ends the walk at once. */
		fake_reset(h_nango);
		F.total = 1;
		memset(&s, 0, sizeof(s));
		CHECK_INT(remote_walk(r, sink_fn, &s, &werr), 0);
		CHECK_INT(calls(), 1);
		CHECK_INT(s.n, 1);
		sink_free(&s);
		remote_free(r);
	}
	unsetenv("NANGO_SECRET_KEY");
}

/* --- Persona: cursor from links.next ------------------------------------ */

static int h_persona(struct fake *f, int n, const struct http_req *req,
		     struct http_resp *resp)
{
	(void)f;
	(void)req;
	if (n == 0)
		return reply(resp, 200, "{\"data\":[{\"id\":\"cxn_1\","
			     "\"type\":\"connection\",\"attributes\":{}},"
			     "{\"id\":\"cxn_2\",\"type\":\"connection\","
			     "\"attributes\":{}}],\"links\":{\"next\":"
			     "\"/api/v1/connect/connections?page%%5Bafter%%5D"
			     "=cxn_2&page%%5Bsize%%5D=2\"}}");
	return reply(resp, 200, "{\"data\":[{\"id\":\"cxn_3\",\"type\":"
		     "\"connection\",\"attributes\":{}}],\"links\":"
		     "{\"next\":null}}");
}

static void test_persona(void)
{
	static const char *const kv[] = { "url", URL, "rate", "0", NULL };
	struct remote *r;
	struct walk_error werr;
	struct sink s;

	setenv("PERSONA_API_KEY", "persona-key", 1);
	r = mk("persona", kv);
	if (r) {
		CHECK_INT(walk(r, h_persona, &s, &werr), 0);
		CHECK_INT(calls(), 2);
		CHECK(requested("page%5Bafter%5D=cxn_2"));
		CHECK_INT(s.n, 3);
		sink_free(&s);
		remote_free(r);
	}
	unsetenv("PERSONA_API_KEY");
}

/* --- Workato: one request ----------------------------------------------- */

static int h_workato(struct fake *f, int n, const struct http_req *req,
		     struct http_resp *resp)
{
	(void)f;
	(void)n;
	(void)req;
	return reply(resp, 200, "[{\"id\":1,\"name\":\"Slack\"},{\"id\":2,"
		     "\"name\":\"Jira\"},{\"id\":3,\"name\":\"Slack\"}]");
}

static void test_workato(void)
{
	static const char *const kv[] = { "url", URL, "rate", "0", NULL };
	struct remote *r;
	struct walk_error werr;
	struct sink s;

	setenv("WORKATO_API_TOKEN", "wrk-token", 1);
	r = mk("workato", kv);
	if (r) {
		CHECK_INT(walk(r, h_workato, &s, &werr), 0);
		CHECK_INT(calls(), 1);
		CHECK(requested(URL "/api/connections"));
		CHECK_INT(s.pages, 1);
		CHECK_INT(s.n, 3);
		CHECK_INT(last_stats(r).requests, 1);
		sink_free(&s);

		CHECK_INT(walk(r, h_401, &s, &werr), -EACCES);
		CHECK_INT(calls(), 1);
		sink_free(&s);
		remote_free(r);
	}
	unsetenv("WORKATO_API_TOKEN");
}

int main(void)
{
	log_set_level(LOG_ERR);	/* the restart warnings are expected */
	setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret/EXAMPLE", 1);
	unsetenv("AWS_SESSION_TOKEN");
	setenv("AWS_REGION", "us-east-1", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_EVENTBRIDGE");
	http_set_transport(fake_transport, &F);

	test_cursor_walk();
	test_cursor_loops();
	test_cursor_restart();
	test_retries();
	test_no_retry();
	test_deadline();
	test_limits();
	test_ac_total();
	test_ac_error();
	test_nango();
	test_persona();
	test_workato();
	test_rate_deadline();
	test_build_failure();
	test_tls_refused();
	test_abort();		/* last: there is no undo */

	http_set_transport(NULL, NULL);
	fake_reset(NULL);
	return harness_done("test_pager");
}
