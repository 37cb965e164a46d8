/*
 * The libcurl layer. A client owns a small stack of easy handles, a share
 * handle for the DNS cache and TLS sessions, and a driver: one multi
 * handle and the one thread that runs every transfer of the client on it,
 * so concurrent page fetches share its connections (multiplexed over
 * HTTP/2 where the server offers it) without ever sharing a connection
 * cache between threads. Redirects are not followed: a token must never
 * travel to another host. The proxy and CA bundle of every
 * request are set explicitly, so libcurl never picks a proxy from the
 * environment by itself. Nothing here logs.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "http_driver.h"

#define POOL_MAX 16

struct http_client {
	char *ca_file;
	char *proxy;
	char *https_proxy;
	char *http_proxy;
	char *no_proxy;
	struct http_driver *drv;
	CURLSH *share;
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];
	size_t npool;
};

static http_transport_fn fake_transport;
static void *fake_arg;
static atomic_bool aborted;

void http_abort_all(void)
{
	atomic_store(&aborted, true);
}

bool http_aborted(void)
{
	return atomic_load(&aborted);
}

void http_set_transport(http_transport_fn fn, void *arg)
{
	fake_transport = fn;
	fake_arg = arg;
}

int http_req_header(struct http_req *req, const char *fmt, ...)
{
	va_list ap;
	char *h;

	if (req->nheaders == HTTP_MAX_HEADERS)
		return -E2BIG;
	va_start(ap, fmt);
	if (vasprintf(&h, fmt, ap) < 0)
		h = NULL;
	va_end(ap);
	if (!h)
		return -ENOMEM;
	/* A CR or LF would smuggle another header into the request. */
	if (strpbrk(h, "\r\n")) {
		explicit_bzero(h, strlen(h));
		free(h);
		return -EINVAL;
	}
	req->headers[req->nheaders++] = h;
	return 0;
}

const char *http_req_get_header(const struct http_req *req, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < req->nheaders; i++) {
		const char *h = req->headers[i];

		if (strncasecmp(h, name, n) == 0 && h[n] == ':')
			return h[n + 1] == ' ' ? h + n + 2 : h + n + 1;
	}
	return NULL;
}

/* Wipes before freeing: headers and userpwd may hold secrets. */
static void wipe(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void http_req_release(struct http_req *req)
{
	free(req->url);
	for (size_t i = 0; i < req->nheaders; i++)
		wipe(req->headers[i]);
	free(req->body);
	free(req->aws_sigv4);
	wipe(req->userpwd);
	free(req->ca_file);
	memset(req, 0, sizeof(*req));
}

const char *http_resp_header(const struct http_resp *resp, const char *name)
{
	for (size_t i = 0; i < resp->nheaders; i++)
		if (strcasecmp(resp->headers[i].name, name) == 0)
			return resp->headers[i].value;
	return NULL;
}

void http_resp_release(struct http_resp *resp)
{
	free(resp->body);
	for (size_t i = 0; i < resp->nheaders; i++) {
		free(resp->headers[i].name);
		free(resp->headers[i].value);
	}
	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
}

double http_parse_retry_after(const char *v, double now)
{
	struct tm tm = { 0 };
	char *end;
	double d;

	if (!v)
		return -1;
	while (*v == ' ')
		v++;
	d = strtod(v, &end);
	if (end != v && (*end == '\0' || *end == ' ') && d >= 0)
		return d;
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	d = (double)timegm(&tm) - now;
	return d < 0 ? 0 : d;
}

static void lock_cb(CURL *h, curl_lock_data data, curl_lock_access a, void *p)
{
	struct http_client *c = p;

	(void)h;
	(void)a;
	pthread_mutex_lock(&c->share_lock[data]);
}

static void unlock_cb(CURL *h, curl_lock_data data, void *p)
{
	struct http_client *c = p;

	(void)h;
	pthread_mutex_unlock(&c->share_lock[data]);
}

/* A copy of s, or of the first set variable; NULL when none is set. */
static int dup_opt(const char *s, const char *env1, const char *env2,
		   char **out)
{
	if (!s && env1)
		s = getenv(env1);
	if ((!s || !*s) && env2)
		s = getenv(env2);
	*out = NULL;
	if (!s || !*s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int client_opts(struct http_client *c, const struct http_opts *o)
{
	const char *ca = o ? o->ca_file : NULL, *px = o ? o->proxy : NULL;

	/* Lower case first, as curl reads them. */
	return dup_opt(ca, NULL, NULL, &c->ca_file) ||
	       dup_opt(px, NULL, NULL, &c->proxy) ||
	       dup_opt(NULL, "https_proxy", "HTTPS_PROXY", &c->https_proxy) ||
	       dup_opt(NULL, "http_proxy", "HTTP_PROXY", &c->http_proxy) ||
	       dup_opt(NULL, "no_proxy", "NO_PROXY", &c->no_proxy);
}

static void client_opts_free(struct http_client *c)
{
	free(c->ca_file);
	wipe(c->proxy);
	wipe(c->https_proxy);
	wipe(c->http_proxy);
	free(c->no_proxy);
}

struct http_client *http_client_new(const struct http_opts *opts)
{
	struct http_client *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&c->share_lock[i], NULL);
	pthread_mutex_init(&c->pool_lock, NULL);
	c->share = curl_share_init();
	c->drv = http_driver_new();
	if (!c->share || !c->drv || client_opts(c, opts)) {
		http_client_free(c);
		return NULL;
	}
	curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, lock_cb);
	curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, unlock_cb);
	curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	http_driver_free(c->drv);
	for (size_t i = 0; i < c->npool; i++)
		curl_easy_cleanup(c->pool[i]);
	if (c->share)
		curl_share_cleanup(c->share);
	client_opts_free(c);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&c->share_lock[i]);
	pthread_mutex_destroy(&c->pool_lock);
	free(c);
}

static CURL *handle_get(struct http_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->pool_lock);
	if (c->npool)
		h = c->pool[--c->npool];
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_reset(h);
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(struct http_client *c, CURL *h)
{
	pthread_mutex_lock(&c->pool_lock);
	if (c->npool < POOL_MAX) {
		c->pool[c->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

struct sink {
	const char *proxy;
	struct http_resp *resp;
	struct buf body;
	size_t max;
	bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;

	n *= size;
	if (s->body.len + n > s->max) {
		s->too_big = true;
		return 0;
	}
	return buf_add(&s->body, p, n) ? 0 : n;
}

/* Keeps the headers of the last response (a 100-continue resets them). */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct http_resp *r = ((struct sink *)arg)->resp;
	char *colon = memchr(p, ':', n);
	char *name_end = colon;
	size_t vlen;

	(void)size;
	if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		for (size_t i = 0; i < r->nheaders; i++) {
			free(r->headers[i].name);
			free(r->headers[i].value);
		}
		r->nheaders = 0;
		return n;
	}
	if (!colon || r->nheaders == HTTP_MAX_RESP_HEADERS)
		return n;
	vlen = n - (size_t)(colon + 1 - p);
	while (vlen && (colon[1] == ' ' || colon[1] == '\t'))
		colon++, vlen--;
	while (vlen && (colon[vlen] == '\r' || colon[vlen] == '\n' ||
			colon[vlen] == ' '))
		vlen--;
	if (vlen > 512)
		vlen = 512;
	r->headers[r->nheaders].name = strndup(p, (size_t)(name_end - p));
	r->headers[r->nheaders].value = strndup(colon + 1, vlen);
	if (r->headers[r->nheaders].name && r->headers[r->nheaders].value) {
		r->nheaders++;
	} else {
		free(r->headers[r->nheaders].name);
		free(r->headers[r->nheaders].value);
	}
	return n;
}

/* libcurl calls this at least once a second during a transfer. */
static int on_progress(void *arg, curl_off_t dlt, curl_off_t dln,
		       curl_off_t ult, curl_off_t uln)
{
	(void)arg, (void)dlt, (void)dln, (void)ult, (void)uln;
	return http_aborted() ? 1 : 0;
}

static void setup(CURL *h, struct http_client *c, const struct http_req *req,
		  struct curl_slist *hdrs, long timeout_ms, struct sink *s,
		  char *errbuf)
{
	const char *ca = req->ca_file ? req->ca_file : c->ca_file;

	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 timeout_ms < 10000 ? timeout_ms : 10000L);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "connfs/" CONNFS_VERSION);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	/*
	 * Over TLS, wait to learn whether a connection being set up speaks
	 * HTTP/2 (and can carry this transfer too) before opening another.
	 * Plain http is HTTP/1.1 here: one connection per transfer at once.
	 */
	curl_easy_setopt(h, CURLOPT_PIPEWAIT,
			 strncasecmp(req->url, "https:", 6) == 0 ? 1L : 0L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	/* "" (not NULL): no proxy at all, whatever the environment says. */
	curl_easy_setopt(h, CURLOPT_PROXY, s->proxy);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "");
	if (ca) {
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
		curl_easy_setopt(h, CURLOPT_PROXY_CAINFO, ca);
	}
	if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "PUT") == 0) {
		/* PUT: the IMDSv2 token request, with an empty body. */
		if (req->method[1] == 'U')
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
	}
	if (req->aws_sigv4) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, req->aws_sigv4);
		curl_easy_setopt(h, CURLOPT_USERPWD, req->userpwd);
	}
}

static int map_error(CURLcode cc, const struct sink *s)
{
	if (s->too_big || cc == CURLE_FILESIZE_EXCEEDED)
		return -EFBIG;
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return -ECANCELED;
	if (cc == CURLE_PEER_FAILED_VERIFICATION ||
	    cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CERTPROBLEM ||
	    cc == CURLE_SSL_ISSUER_ERROR ||
	    cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
	    cc == CURLE_SSL_INVALIDCERTSTATUS)
		return -EPROTO;
	if (cc == CURLE_OPERATION_TIMEDOUT)
		return -ETIMEDOUT;
	if (cc == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	return -EIO;
}

static int say(struct http_resp *resp, int rc, const char *msg)
{
	snprintf(resp->err, sizeof(resp->err), "%s", msg);
	http_redact(resp->err);
	resp->err[strcspn(resp->err, "\r\n")] = '\0';
	return rc;
}

int http_proxy_pick_for(const struct http_client *c, const char *url,
			char *out, size_t outlen)
{
	const struct http_proxy_env pe = {
		.proxy = c->proxy, .https_proxy = c->https_proxy,
		.http_proxy = c->http_proxy, .no_proxy = c->no_proxy,
	};

	return http_proxy_pick(&pe, url, out, outlen);
}

/*
 * Where req may go: plain http only to loopback and metadata addresses,
 * and through the proxy http_proxy_pick() chooses (written to proxy).
 */
static int route(const struct http_client *c, const struct http_req *req,
		 char *proxy, size_t len, struct http_resp *resp)
{
	char host[256];
	bool https;
	int port;

	if (!req->url || http_url_host(req->url, host, sizeof(host), &port,
				       &https))
		return say(resp, -EINVAL, "not an http(s) URL");
	if (!https && !http_host_never_proxied(host))
		return say(resp, -EPERM, "plain http:// is refused for hosts "
			   "other than loopback and metadata addresses");
	if (http_proxy_pick_for(c, req->url, proxy, len))
		return say(resp, -EINVAL, "proxy URL too long");
	return 0;
}

int http_do(struct http_client *c, const struct http_req *req,
	    long timeout_ms, size_t max_body, struct http_resp *resp)
{
	struct sink s = { .resp = resp, .max = max_body };
	char errbuf[CURL_ERROR_SIZE] = "", proxy[1024];
	struct curl_slist *hdrs = NULL;
	CURLcode cc;
	CURL *h;
	int rc = 0;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after = -1;
	if (fake_transport)
		return fake_transport(req, resp, fake_arg);
	if (http_aborted())
		return say(resp, -ECANCELED, "stopping");
	if ((rc = route(c, req, proxy, sizeof(proxy), resp)))
		return rc;
	s.proxy = proxy;
	for (size_t i = 0; i < req->nheaders; i++) {
		struct curl_slist *n = curl_slist_append(hdrs, req->headers[i]);

		if (!n) {
			curl_slist_free_all(hdrs);
			return -ENOMEM;
		}
		hdrs = n;
	}
	h = handle_get(c);
	if (!h) {
		curl_slist_free_all(hdrs);
		return -ENOMEM;
	}
	setup(h, c, req, hdrs, timeout_ms < 1 ? 1 : timeout_ms, &s, errbuf);
	cc = http_driver_perform(c->drv, h);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		resp->body = s.body.p;
		resp->len = s.body.len;
		s.body.p = NULL;
		resp->retry_after = http_parse_retry_after(
			http_resp_header(resp, "Retry-After"),
			(double)time(NULL));
	} else {
		rc = say(resp, map_error(cc, &s),
			 errbuf[0] ? errbuf : curl_easy_strerror(cc));
		resp->status = 0;
	}
	buf_release(&s.body);
	/* Drop the credentials from the handle before it is pooled. */
	curl_easy_setopt(h, CURLOPT_USERPWD, NULL);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	handle_put(c, h);
	curl_slist_free_all(hdrs);
	return rc;
}
