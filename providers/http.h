/*
 * The one HTTP layer: requests as plain data (so providers can build them
 * without any transport), and a client that performs them with libcurl over
 * reused connections. Redirects are never followed, TLS is always
 * verified (no switch turns it off), bodies are capped, and every request
 * gets the same trust and proxy policy (http_policy.c): loopback and the
 * cloud metadata addresses never go through a proxy, and plain http:// is
 * refused for anything else, so a token never crosses a network in clear
 * text. Nothing here logs headers or bodies.
 */
#ifndef CONNFS_HTTP_H
#define CONNFS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_HEADERS 8
#define HTTP_MAX_RESP_HEADERS 32

/* One request, as built by a provider. All strings owned by the request. */
struct http_req {
	const char *method;	/* static string: "GET", "POST" or "PUT" */
	char *url;
	char *headers[HTTP_MAX_HEADERS];	/* "Name: value" */
	size_t nheaders;
	char *body;		/* NULL: no body */
	size_t body_len;
	/* AWS SigV4: "aws:amz:REGION:SERVICE" and "KEY:SECRET", else NULL. */
	char *aws_sigv4;
	char *userpwd;
	/*
	 * PEM CA bundle for this request only (CURLOPT_CAINFO), overriding
	 * the client's ca_file; NULL: the client's. For callers outside the
	 * pager (credential fetchers) that were given their own bundle, e.g.
	 * AWS_CA_BUNDLE or a profile's ca_bundle.
	 */
	char *ca_file;
};

int http_req_header(struct http_req *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Header value of a built request (case-insensitive name), for tests. */
const char *http_req_get_header(const struct http_req *req, const char *name);
void http_req_release(struct http_req *req);

struct http_header {
	char *name;
	char *value;
};

/* One response. A transport failure has status 0 and err set. */
struct http_resp {
	long status;
	char *body;		/* NUL-terminated; NULL if empty */
	size_t len;
	struct http_header headers[HTTP_MAX_RESP_HEADERS];
	size_t nheaders;
	double retry_after;	/* Retry-After in seconds, or -1 */
	char err[256];		/* transport error text (never secrets) */
};

/* Case-insensitive response header lookup; NULL when absent. */
const char *http_resp_header(const struct http_resp *resp, const char *name);
void http_resp_release(struct http_resp *resp);

/* Parses Retry-After as delta-seconds or an HTTP-date; -1 if invalid. */
double http_parse_retry_after(const char *value, double now);

struct http_client;

/* Trust and proxy settings of a client; the strings are copied. */
struct http_opts {
	const char *ca_file;	/* PEM CA bundle; NULL: the system's */
	/*
	 * Proxy URL for every request that may be proxied, "none" for no
	 * proxy; NULL: from the environment (https_proxy, HTTPS_PROXY,
	 * http_proxy, HTTP_PROXY, no_proxy, NO_PROXY, read once here).
	 */
	const char *proxy;
};

/* opts may be NULL (system CAs, proxies from the environment). */
struct http_client *http_client_new(const struct http_opts *opts);
void http_client_free(struct http_client *c);

/*
 * Performs req with a total timeout (ms) and a body cap (bytes). Returns 0
 * when an HTTP response arrived (any status), -ETIMEDOUT, -EFBIG (body over
 * the cap), -EPROTO (the server's certificate was refused: untrusted CA,
 * wrong host name, expired; not worth a retry), -EPERM (plain http:// to a
 * host that is neither loopback nor a metadata address), -ECANCELED
 * (http_abort_all() was called), -EIO (other connection and protocol
 * errors), or -ENOMEM. resp->err says what failed, in libcurl's words, with
 * any user:password@ in URLs masked.
 *
 * Thread safety: any number of threads may call http_do() on one client at
 * once. Each call sets up an easy handle of its own (from the client's
 * pool) and hands it to the client's transfer thread, which alone drives
 * the client's libcurl multi handle: every transfer of the client, from
 * any thread, runs there and reuses its connections (HTTP/2 multiplexing
 * where offered). The client's share handle holds only the DNS cache and
 * TLS session IDs, under locks; no connection cache is ever used by two
 * threads, which libcurl does not support
 * (https://curl.se/libcurl/c/CURLSHOPT_SHARE.html). The transfer thread
 * starts with the first request, so clients may be built before a fork().
 * http_client_new() and http_client_free() must not race with calls on the
 * same client; http_set_transport() is for single-threaded test setup.
 */
int http_do(struct http_client *c, const struct http_req *req,
	    long timeout_ms, size_t max_body, struct http_resp *resp);

/*
 * The proxy c uses for url ("" for none), after the rules of
 * http_proxy_pick(). May hold a password: mask with http_redact() before
 * showing it.
 */
int http_proxy_pick_for(const struct http_client *c, const char *url,
			char *out, size_t outlen);

/*
 * Makes every transfer in flight, and every later one, fail promptly with
 * -ECANCELED (within about a second: libcurl's progress callback) so that
 * a daemon can stop while walks run. Async-signal-safe; there is no undo.
 */
void http_abort_all(void);
bool http_aborted(void);

/* --- policy (http_policy.c): pure functions, no I/O --------------------- */

/* What a client knows of the environment's proxy settings. */
struct http_proxy_env {
	const char *proxy;	/* explicit setting: URL or "none"; NULL */
	const char *https_proxy;
	const char *http_proxy;
	const char *no_proxy;
};

/*
 * Host and port of an http(s) URL: host without brackets, lower case, in
 * host (size hostlen); port defaults from the scheme. *https tells which.
 * -EINVAL for anything else.
 */
int http_url_host(const char *url, char *host, size_t hostlen, int *port,
		  bool *https);
/* Loopback: localhost, 127.0.0.0/8, ::1. */
bool http_host_loopback(const char *host);
/*
 * Never sent through a proxy: loopback and the instance-metadata and
 * container-credential addresses of AWS (169.254.169.254, 169.254.170.2,
 * 169.254.170.23, fd00:ec2::254, fd00:ec2::23).
 */
bool http_host_never_proxied(const char *host);
/*
 * no_proxy matching as curl does it, plus ports: a comma or space
 * separated list; "*" matches everything; a name matches itself and its
 * subdomains, with or without a leading dot; an IP address or CIDR range
 * (10.0.0.0/8, fd00::/8) matches addresses in it; "[::1]:8080" or
 * "example.com:8443" only that port. Case-insensitive.
 */
bool http_no_proxy_match(const char *no_proxy, const char *host, int port);
/*
 * The proxy for url: 0 with out = "" for a direct connection, or the
 * proxy URL. Never a proxy for the addresses above; the explicit setting
 * wins over the environment; lower-case variables win over upper-case
 * ones, as in curl. -EINVAL if url is not http(s), -ENAMETOOLONG.
 */
int http_proxy_pick(const struct http_proxy_env *pe, const char *url,
		    char *out, size_t outlen);
/*
 * Checks a proxy setting: "none", or an http:// or https:// URL with a
 * host. Returns 0 or -EINVAL.
 */
int http_proxy_check(const char *proxy);
/* Masks user:password@ after every "://" in s, in place. */
void http_redact(char *s);
/*
 * Checks that path is a readable regular file holding at least one PEM
 * certificate. 0, or a negative errno with why (for a config error).
 */
int http_ca_check(const char *path, char *why, size_t whylen);
/*
 * Why http_do() failed with rc, for a message: "timed out", "TLS
 * certificate refused: " and libcurl's reason, resp->err, or strerror.
 * Returns buf.
 */
const char *http_failure(int rc, const struct http_resp *resp, char *buf,
			 size_t len);

/* Seam for unit tests: replaces the transport for every client. */
typedef int (*http_transport_fn)(const struct http_req *req,
				 struct http_resp *resp, void *arg);
void http_set_transport(http_transport_fn fn, void *arg);

#endif
