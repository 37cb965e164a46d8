/*
 * The one HTTP layer: requests as plain data (so providers can build them
 * without any transport), and a client that performs them with libcurl over
 * a pool of reused connections. Redirects are never followed, TLS is always
 * verified, bodies are capped. Nothing here logs headers or bodies.
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

struct http_client *http_client_new(void);
void http_client_free(struct http_client *c);

/*
 * Performs req with a total timeout (ms) and a body cap (bytes). Returns 0
 * when an HTTP response arrived (any status), -ETIMEDOUT, -EFBIG (body over
 * the cap), -EIO (connection and protocol errors; resp->err says what), or
 * -ENOMEM. Thread-safe: the client keeps a pool of easy handles and shares
 * connections between them.
 */
int http_do(struct http_client *c, const struct http_req *req,
	    long timeout_ms, size_t max_body, struct http_resp *resp);

/* Seam for unit tests: replaces the transport for every client. */
typedef int (*http_transport_fn)(const struct http_req *req,
				 struct http_resp *resp, void *arg);
void http_set_transport(http_transport_fn fn, void *arg);

#endif
