/*
 * Generic configuration of a provider account: the keys every section
 * accepts, defaults from the provider's documented limits, and the check
 * that no unknown key is left over.
 */
#include "remote.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

#define DEFAULT_CONCURRENCY 4
#define DEFAULT_MAX_BODY_MB 64
#define DEFAULT_MAX_PAGES 20000
#define DEFAULT_MAX_ENTRIES 2000000UL
#define DEFAULT_WALK_LIMIT 3600.0	/* a walk, in seconds */
#define DEFAULT_MAX_STALE 86400.0	/* serve expired listings a day */
#define DEFAULT_REFRESH_AHEAD 0.8

/* "N", "N/s" or "N/min": requests per second and a burst. */
static int parse_rate(struct conf_section *sec, const char *v, double *rate,
		      double *burst, char *err)
{
	char *end;
	double n = strtod(v, &end);

	if (end == v || n < 0 || n > 100000)
		return conf_error(sec, "rate", err, "'%s' is not a rate such "
				  "as 5, 5/s or 200/min (0 = no limit)", v);
	if (*end == '\0' || strcmp(end, "/s") == 0) {
		*rate = n;
		*burst = 1;
	} else if (strcmp(end, "/min") == 0) {
		/* Any 60 s span then holds at most n requests. */
		*burst = n >= 10 ? n / 10 : 1;
		*rate = n > *burst ? (n - *burst) / 60 : n / 60;
	} else {
		return conf_error(sec, "rate", err, "'%s' is not a rate such "
				  "as 5, 5/s or 200/min", v);
	}
	return 0;
}

static int generic_keys(struct remote *r, struct conf_section *sec,
			const struct remote_defaults *d, char *err)
{
	unsigned long page = r->prov->max_page, conc = DEFAULT_CONCURRENCY;
	unsigned long body = DEFAULT_MAX_BODY_MB, pages = DEFAULT_MAX_PAGES;
	unsigned long entries = DEFAULT_MAX_ENTRIES;
	double timeout = d->timeout, walk_limit = DEFAULT_WALK_LIMIT;
	double rate = r->prov->rate, burst = r->prov->burst;
	const char *rs = conf_get(sec, "rate");
	int rc;

	r->ttl = d->ttl;
	r->deadline = d->deadline;
	r->max_stale = DEFAULT_MAX_STALE;
	r->refresh_ahead = DEFAULT_REFRESH_AHEAD;
	if ((rc = conf_double(sec, "ttl", 0, 31536000, &r->ttl, err)) ||
	    (rc = conf_double(sec, "timeout", 0.1, 3600, &timeout, err)) ||
	    (rc = conf_double(sec, "deadline", 0.1, 3600, &r->deadline,
			      err)) ||
	    (rc = conf_double(sec, "walk_limit", 0.1, 604800, &walk_limit,
			      err)) ||
	    (rc = conf_double(sec, "max_stale", 0, 31536000, &r->max_stale,
			      err)) ||
	    (rc = conf_double(sec, "refresh_ahead", 0, 0.99,
			      &r->refresh_ahead, err)) ||
	    (rc = conf_uint(sec, "concurrency", 1, 32, &conc, err)) ||
	    (rc = conf_uint(sec, "max_body_mb", 1, 4096, &body, err)) ||
	    (rc = conf_uint(sec, "max_pages", 1, 10000000, &pages, err)) ||
	    (rc = conf_uint(sec, "max_entries", 1, 100000000, &entries, err)))
		return rc;
	if (r->prov->max_page &&
	    (rc = conf_uint(sec, "page_size", 1, r->prov->max_page, &page,
			    err)))
		return rc;
	if (rs && (rc = parse_rate(sec, rs, &rate, &burst, err)))
		return rc;
	r->page_size = (unsigned)page;
	r->timeout_ms = (long)(timeout * 1000);
	/* A walk may outlive the operation that started it (which waits
	 * `deadline`): it has a limit of its own. */
	r->deadline_ms = (long)(walk_limit * 1000);
	r->concurrency = (unsigned)conc;
	r->max_body = body << 20;
	r->max_pages = (unsigned)pages;
	r->max_entries = entries;
	r->rl.rate = rate;
	r->rl.burst = burst < 1 ? 1 : burst;
	r->rl.tokens = r->rl.burst;
	return 0;
}

/*
 * A relative path made absolute: a daemon leaves its working directory
 * for /. Symbolic links stay: a CA bundle rotated by swapping a link (as
 * Kubernetes does with mounted ConfigMaps) must be followed afresh.
 */
static char *absolute(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)) ||
	    asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/*
 * The CA bundle: the section's ca_file, else -o ca_file, else the one the
 * provider's own tools would trust (EventBridge: AWS_CA_BUNDLE, then the
 * profile's ca_bundle). A bundle that cannot be used is a configuration
 * error now, not a failed walk later. *abs: malloc'd absolute path or
 * NULL.
 */
static int pick_ca(const struct remote *r, struct conf_section *sec,
		   const struct remote_defaults *d, char **abs, char *err)
{
	const char *ca = conf_get(sec, "ca_file");
	const char *from = NULL;	/* where ca came from if not the key */
	char why[CONF_ERRLEN / 2];

	*abs = NULL;
	if (!ca && d->ca_file) {
		ca = d->ca_file;
		from = "-o ca_file";
	} else if (!ca && r->prov->default_ca) {
		ca = r->prov->default_ca(r->state, &from);
	}
	if (!ca)
		return 0;
	if (http_ca_check(ca, why, sizeof(why)))
		return from ? conf_error(sec, NULL, err, "%s: %s", from, why) :
			      conf_error(sec, "ca_file", err, "%s", why);
	if (!(*abs = absolute(ca)))
		return conf_error(sec, from ? NULL : "ca_file", err,
				  "%s%s%s: cannot make it an absolute path: %s",
				  from ? from : "", from ? ": " : "", ca,
				  strerror(errno));
	return 0;
}

/* The proxy: the section's, else -o proxy, else the environment's. */
static int pick_proxy(struct conf_section *sec,
		      const struct remote_defaults *d, const char **px,
		      char *err)
{
	static const char what[] = "not a proxy URL (http://HOST:PORT, "
				   "https://HOST:PORT or none)";

	*px = conf_get(sec, "proxy");
	if (*px && http_proxy_check(*px))
		return conf_error(sec, "proxy", err, "%s", what);
	if (!*px && (*px = d->proxy) && http_proxy_check(*px))
		return conf_error(sec, NULL, err, "-o proxy: %s", what);
	return 0;
}

/* Trust and proxy into o, shared with the provider's own requests. */
static int trust_keys(struct remote *r, struct conf_section *sec,
		      const struct remote_defaults *d, struct http_opts *o,
		      char **ca, char *err)
{
	int rc = pick_ca(r, sec, d, ca, err);

	if (!rc)
		rc = pick_proxy(sec, d, &o->proxy, err);
	o->ca_file = *ca;
	if (!rc && r->prov->use_transport)
		rc = r->prov->use_transport(r->state, o);
	return rc;
}

/* Says which proxy the account's URL uses, with any password masked. */
static void log_proxy(const struct remote *r)
{
	const char *url = r->prov->source_url ?
			  r->prov->source_url(r->state) : NULL;
	char proxy[1024];

	if (!url || http_proxy_pick_for(r->http, url, proxy, sizeof(proxy)) ||
	    !proxy[0])
		return;
	http_redact(proxy);
	log_msg(LOG_INFO, "%s: via proxy %s", r->name, proxy);
}

static int leftover_keys(struct conf_section *sec, char *err)
{
	for (size_t i = 0; i < sec->nkv; i++)
		if (!sec->kv[i].used)
			return conf_error(sec, sec->kv[i].key, err,
					  "unknown key");
	return 0;
}

int remote_new(struct conf_section *sec, const struct remote_defaults *d,
	       struct remote **out, char *err)
{
	const char *type = conf_get(sec, "type");
	const char *url = conf_get(sec, "url");
	struct http_opts opts = { 0 };
	struct remote *r;
	char *base = NULL, *ca = NULL;
	int rc;

	if (!type)
		type = sec->name;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_init(&r->lock, NULL);
	ratelimit_init(&r->rl, 0, 1);
	r->prov = provider_find(type);
	r->name = strdup(sec->name);
	r->cur.total = r->last.total = -1;
	r->rate.limit = r->rate.remaining = -1;
	r->rate.reset_in = -1;
	if (!r->prov) {
		remote_free(r);
		return conf_error(sec, conf_get(sec, "type") ? "type" : NULL,
				  err, "unknown provider type '%s' (known: "
				  "eventbridge, activecampaign, nango, "
				  "persona, workato)", type);
	}
	rc = generic_keys(r, sec, d, err);
	if (!rc && url)
		rc = conf_url(sec, "url", url, &base, err);
	if (!rc)
		rc = r->prov->configure(sec, base, &r->state, err);
	if (!rc)
		rc = trust_keys(r, sec, d, &opts, &ca, err);
	if (!rc)
		rc = leftover_keys(sec, err);
	if (!rc && (rc = remote_identity(r, sec)))
		conf_error(sec, NULL, err, "cannot build the first request: %s",
			   strerror(-rc));
	if (!rc && !(r->http = http_client_new(&opts)))
		rc = -ENOMEM;
	free(base);
	free(ca);
	if (!rc)
		log_proxy(r);
	if (rc) {
		remote_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

void remote_free(struct remote *r)
{
	if (!r)
		return;
	if (r->state)
		r->prov->release(r->state);
	http_client_free(r->http);
	ratelimit_destroy(&r->rl);
	pthread_mutex_destroy(&r->lock);
	free(r->name);
	free(r);
}

void remote_stats(struct remote *r, bool *walking, struct walk_stats *cur,
		  struct walk_stats *last, struct rate_info *rate)
{
	pthread_mutex_lock(&r->lock);
	*walking = r->walking;
	*cur = r->cur;
	*last = r->last;
	*rate = r->rate;
	pthread_mutex_unlock(&r->lock);
}
