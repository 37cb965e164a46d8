/*
 * The provider interface, modelled on curl's protocol handlers: each
 * provider file exports exactly one `const struct provider provider_<name>`
 * and keeps everything else static. A provider only builds requests and
 * parses responses (pure functions, unit-testable on fixture pages); the
 * paging loop, retries, rate limiting and deadlines live in pager.c.
 * Nothing here knows about FUSE.
 */
#ifndef CONNFS_PROVIDER_H
#define CONNFS_PROVIDER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf.h"
#include "http.h"

enum provider_paging {
	PAGING_NONE,	/* one response holds everything */
	PAGING_CURSOR,	/* opaque cursor, pages strictly in sequence */
	PAGING_INDEX,	/* pages addressable by number: fetched concurrently */
};

/* Which page to build a request for. */
struct page_req {
	const char *cursor;	/* PAGING_CURSOR: NULL for the first page */
	unsigned long index;	/* PAGING_INDEX: zero-based page number */
	unsigned size;		/* page size to ask for */
};

#define ENTRY_NAME_PARTS 2

/*
 * One connection from a page. The provider fills id, name parts and mtime
 * and hands over obj; the consumer owns everything after page_add().
 */
struct entry {
	char *id;		/* unique and stable within the account */
	char *name[ENTRY_NAME_PARTS];	/* raw file name parts, joined by
					 * the file namer; [1] may be NULL */
	struct timespec mtime;
	cJSON *obj;		/* the object exactly as the API sent it */
};

struct page {
	struct entry *v;
	size_t n;
	size_t cap;
	char *next;		/* PAGING_CURSOR: next cursor, NULL at the end */
	bool more;		/* PAGING_INDEX: a full page (more may follow) */
	long long total;	/* total item count if the API says, else -1 */
};

/*
 * Takes ownership of obj (detached from its parent by the caller) and
 * copies id and name parts. Returns 0 or -ENOMEM (obj freed).
 */
int page_add(struct page *pg, const char *id, const char *name0,
	     const char *name1, const struct timespec *mtime, cJSON *obj);
void page_release(struct page *pg);

enum api_class {
	API_RETRY,	/* transient: network, 5xx */
	API_THROTTLE,	/* rate limited: wait retry_after, then retry */
	API_AUTH,	/* 401/403: credentials refused */
	API_RESTART,	/* cursor expired: restart the walk once */
	API_FATAL,	/* anything else: give up */
};

/* What went wrong with one response. */
struct api_error {
	enum api_class cls;
	long status;		/* HTTP status, 0 for transport errors */
	double retry_after;	/* seconds to wait, or -1 */
	char code[64];		/* provider error code, may be empty */
	char msg[256];		/* readable message, control chars escaped */
};

/* Rate-limit state as reported by the API's headers (-1 where unknown). */
struct rate_info {
	long limit;
	long remaining;
	double reset_in;	/* seconds until the window resets */
};

struct provider {
	const char *name;
	enum provider_paging paging;
	unsigned max_page;	/* largest page size accepted; 0 if none */
	double rate;		/* documented limit, requests per second */
	unsigned burst;		/* requests allowed back to back */
	/*
	 * Environment variables that mean "credentials for this provider are
	 * present": space-separated alternatives, each one variable or
	 * several joined by '+' that must all be set. Without a config
	 * file, connfs mounts every provider whose variables are set.
	 */
	const char *env_secret;

	/*
	 * Reads the provider's keys from sec and the environment into a new
	 * state. base_url is the validated `url=` or NULL (use the default).
	 * No network. -EINVAL with a message in err naming the key.
	 */
	int (*configure)(struct conf_section *sec, const char *base_url,
			 void **state, char *err);
	void (*release)(void *state);
	/* Called before each walk (token_command refresh). Optional. */
	int (*begin_walk)(void *state, char *err, size_t errlen);
	/* Fills req for one page. Pure apart from reading the clock. */
	int (*build_list)(void *state, const struct page_req *pr,
			  struct http_req *req);
	/*
	 * Parses a 2xx response into pg. -EPROTO (message in err) when the
	 * body is not the documented shape.
	 */
	int (*parse_list)(void *state, const struct page_req *pr,
			  const struct http_resp *resp, struct page *pg,
			  char *err, size_t errlen);
	/*
	 * Refines the generic classification of a non-2xx response (already
	 * in e: 429 throttle, 5xx retry, 401/403 auth, others fatal) and
	 * fills code, msg and retry_after from the provider's envelope and
	 * headers.
	 */
	void (*classify_error)(void *state, const struct page_req *pr,
			       const struct http_resp *resp,
			       struct api_error *e);
	/* Rate-limit headers of any response. Optional. */
	void (*rate_info)(const struct http_resp *resp, struct rate_info *ri);
	/* Human-readable source URL of the listing, for status. Optional. */
	const char *(*source_url)(void *state);
	/*
	 * Optional: what identifies the listed account beyond the section's
	 * keys (endpoint, filters, which credentials), written into buf;
	 * never a secret in clear; no network. Without it, the first page's
	 * request stands for all that. 0 or -errno.
	 */
	int (*identity)(void *state, char *buf, size_t len);
	/*
	 * Where the credentials come from and when they expire, for status
	 * and --check; never a secret. Thread-safe. Optional.
	 */
	void (*describe_auth)(void *state, char *buf, size_t len);
	/*
	 * Optional: the CA bundle the provider's own tools trust when neither
	 * the section nor -o ca_file names one (EventBridge: AWS_CA_BUNDLE,
	 * then the profile's ca_bundle, as the AWS CLI does), with where it
	 * came from in *from, for messages; NULL: the system's.
	 */
	const char *(*default_ca)(void *state, const char **from);
	/*
	 * Optional: the section's final CA bundle and proxy, for requests the
	 * provider makes itself outside the pager (EventBridge's STS and SSO
	 * calls). Called once, after configure. 0 or -ENOMEM.
	 */
	int (*use_transport)(void *state, const struct http_opts *o);
};

/* registry.c */
extern const struct provider *const providers[];
const struct provider *provider_find(const char *name);

/* Escapes control characters and invalid UTF-8 in API text for messages. */
void api_text(char *dst, size_t len, const char *src, size_t srclen);
/*
 * A response header holding a non-negative decimal integer (a rate-limit
 * count); -1 if absent, empty, signed, not all digits or beyond a long.
 */
long header_long(const struct http_resp *resp, const char *name);

#endif
