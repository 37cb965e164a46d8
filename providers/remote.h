/*
 * A remote is one configured provider account: the provider, its state,
 * an HTTP client, a rate limiter and the generic settings every section
 * accepts. remote_walk() pages through the account's connection list with
 * retries, backoff, loop detection and one deadline, handing each page to
 * a sink. Thread-safe; knows nothing of FUSE or of how entries are stored.
 */
#ifndef CONNFS_REMOTE_H
#define CONNFS_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "conf.h"
#include "provider.h"
#include "ratelimit.h"

/* Defaults for the generic keys, settable with -o on the command line. */
struct remote_defaults {
	double ttl;		/* seconds a listing stays fresh */
	double timeout;		/* seconds per HTTP request */
	double deadline;	/* seconds per walk (per file-system op) */
	const char *ca_file;	/* PEM CA bundle for every section, or NULL */
	const char *proxy;	/* proxy URL or "none" for every section */
};

/* Counters of one walk, for status and tests. */
struct walk_stats {
	unsigned pages;
	unsigned requests;
	unsigned retries;
	unsigned long entries;
	long long total;	/* expected entries if the API says, else -1 */
	double started;		/* wall-clock seconds */
	double finished;
};

/* Why a walk failed. */
struct walk_error {
	int err;		/* negative errno: -EACCES, -ETIMEDOUT, -EIO */
	long status;		/* last HTTP status, 0 for none */
	char msg[400];		/* readable; never contains secrets */
	double when;		/* wall-clock seconds */
};

struct remote {
	char *name;		/* section name = directory name */
	const struct provider *prov;
	void *state;
	struct http_client *http;
	struct ratelimit rl;
	double ttl;
	double deadline;	/* seconds an operation waits for a walk */
	double max_stale;	/* seconds an expired listing is served */
	double refresh_ahead;	/* fraction of ttl; 0 = off */
	unsigned page_size;
	long timeout_ms;
	long deadline_ms;	/* a walk's own limit (walk_limit) */
	unsigned concurrency;
	size_t max_body;
	unsigned max_pages;
	unsigned long max_entries;

	pthread_mutex_t lock;	/* guards what follows */
	bool walking;
	struct walk_stats cur;	/* the walk in progress */
	struct walk_stats last;	/* the last finished walk */
	struct rate_info rate;
	double rate_seen;	/* when rate was reported (wall clock) */
	char identity[65];	/* account identity, hex SHA-256 (identity.c) */
	char budget[65];	/* rate budget identity, hex SHA-256 */
};

/*
 * Builds a remote from a section: generic keys first, then the provider's
 * configure; leftover keys are reported as unknown. -EINVAL with err set.
 */
int remote_new(struct conf_section *sec, const struct remote_defaults *d,
	       struct remote **out, char *err);
void remote_free(struct remote *r);

/*
 * Fills r->identity and r->budget from the configured remote and its
 * section (at the end of remote_new). 0 or -errno.
 */
int remote_identity(struct remote *r, const struct conf_section *sec);

/*
 * Receives pages in no particular order, one call at a time. pg == NULL
 * means "the walk restarted: forget what you were given". The sink moves
 * what it keeps out of pg (setting pointers NULL); the pager releases the
 * rest. Returns 0 or a negative errno, which aborts the walk.
 */
typedef int (*walk_sink_fn)(void *arg, struct page *pg);

/* One full listing walk. 0 on success, else negative errno and *werr. */
int remote_walk(struct remote *r, walk_sink_fn sink, void *arg,
		struct walk_error *werr);

/*
 * Fetches only the first page (for --check): credentials, URL and the API
 * answer. *n gets the number of connections on that page.
 */
int remote_probe(struct remote *r, unsigned long *n, struct walk_error *werr);

/* A copy of the counters: the walk in progress (if any) and the last. */
void remote_stats(struct remote *r, bool *walking, struct walk_stats *cur,
		  struct walk_stats *last, struct rate_info *rate);

#endif
