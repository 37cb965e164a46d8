/*
 * Status views. Everything here reads counters and snapshots already in
 * memory; nothing reaches the network except status_refresh(), which is
 * the explicit "refresh now" request.
 */
#include "status.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "notify.h"
#include "persist.h"
#include "ratelimit.h"
#include "share.h"

#define XATTR_PREFIX STATUS_XATTR_PREFIX

/* One directory's state, gathered under the right locks. */
struct dstat {
	struct cache_status cache;
	struct walk_stats cur, last;
	struct rate_info rate;
	bool walking;
	bool from_fleet;
	size_t entries;
	double fetched;		/* wall clock, 0 if never */
	double age;
	double err_at;		/* wall clock */
};


static void gather(struct dir *d, struct dstat *s)
{
	struct snapshot *snap = cache_peek(d->cache);
	double mono = mono_now(), wall = wall_now(), seen;

	cache_status(d->cache, &s->cache);
	s->from_fleet = atomic_load(&d->from_fleet);
	remote_stats(d->remote, &s->walking, &s->cur, &s->last, &s->rate);
	/* reset_in was counted from the response that reported it. */
	if (s->rate.reset_in >= 0) {
		pthread_mutex_lock(&d->remote->lock);
		seen = d->remote->rate_seen;
		pthread_mutex_unlock(&d->remote->lock);
		s->rate.reset_in -= wall - seen;
		if (s->rate.reset_in < 0)
			s->rate.reset_in = 0;
	}
	s->entries = snap ? snap->n : 0;
	snapshot_put(snap);
	s->fetched = s->cache.has_value ? wall - (mono - s->cache.loaded_at) : 0;
	s->age = s->cache.has_value ? mono - s->cache.loaded_at : -1;
	s->err_at = s->cache.last_err ? wall - (mono - s->cache.err_at) : 0;
}

static void iso(double t, char *out, size_t len)
{
	time_t secs = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&secs, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *state_of(const struct dstat *s)
{
	/* Saved by an earlier mount, not walked yet by this one. */
	if (s->cache.has_value && s->cache.stored)
		return "stored";
	if (s->walking)
		return "walking";
	if (!s->cache.has_value)
		return s->cache.last_err ? "failed" : "not-loaded";
	if (s->cache.stale)
		return "stale";
	/* Walked by another host of the fleet, taken from Redis. */
	return s->from_fleet ? "fleet" : "fresh";
}

static int row(struct buf *b, struct dir *d)
{
	struct dstat s;
	char age[32], progress[80] = "-", rate[48] = "-";

	gather(d, &s);
	if (s.age >= 0)
		snprintf(age, sizeof(age), "%.0fs", s.age);
	else
		snprintf(age, sizeof(age), "-");
	if (s.walking)
		snprintf(progress, sizeof(progress), "%u pages, %lu entries%s",
			 s.cur.pages, s.cur.entries,
			 s.cur.total >= 0 ? " of ~" : "");
	if (s.walking && s.cur.total >= 0)
		snprintf(progress + strlen(progress),
			 sizeof(progress) - strlen(progress), "%lld",
			 s.cur.total);
	if (s.rate.remaining >= 0)
		snprintf(rate, sizeof(rate), "%ld/%ld reset %.0fs",
			 s.rate.remaining, s.rate.limit, s.rate.reset_in);
	return buf_printf(b, "%-20s %-14s %-10s %8zu %6s %6u %6u %7u  %-18s "
			  "%-30s %s\n", d->remote->name, d->remote->prov->name,
			  state_of(&s), s.entries, age, s.last.pages,
			  s.last.requests, s.last.retries, rate, progress,
			  s.cache.last_err ? s.cache.last_msg : "-");
}

char *status_text(struct connfs *fs, size_t *len)
{
	struct buf b = { 0 };
	int rc = buf_printf(&b, "%-20s %-14s %-10s %8s %6s %6s %6s %7s  %-18s "
			    "%-30s %s\n", "DIRECTORY", "PROVIDER", "STATE",
			    "ENTRIES", "AGE", "PAGES", "REQS", "RETRIES",
			    "RATE-LIMIT", "PROGRESS", "LAST-ERROR");

	char where[600];

	for (size_t i = 0; !rc && i < fs->ndirs; i++)
		rc = row(&b, &fs->dirs[i]);
	persist_state(where, sizeof(where));
	if (!rc)
		rc = buf_printf(&b, "\nstore: %s\n", where);
	share_state(where, sizeof(where));
	if (!rc)
		rc = buf_printf(&b, "fleet: %s\n", where);
	if (rc) {
		buf_release(&b);
		return NULL;
	}
	*len = b.len;
	return buf_steal(&b);
}

static cJSON *dir_json(struct dir *d)
{
	cJSON *o = cJSON_CreateObject();
	char when[32];
	struct dstat s;

	gather(d, &s);
	cJSON_AddStringToObject(o, "directory", d->remote->name);
	cJSON_AddStringToObject(o, "provider", d->remote->prov->name);
	cJSON_AddStringToObject(o, "state", state_of(&s));
	iso(s.fetched, when, sizeof(when));
	cJSON_AddStringToObject(o, "fetched", when);
	/* Whole seconds: the rendering changes only when something did. */
	cJSON_AddNumberToObject(o, "age", s.age < 0 ? -1 : (double)(long)s.age);
	cJSON_AddNumberToObject(o, "ttl", d->remote->ttl);
	cJSON_AddBoolToObject(o, "stale", s.cache.stale);
	cJSON_AddNumberToObject(o, "entries", (double)s.entries);
	cJSON_AddNumberToObject(o, "pages", s.last.pages);
	cJSON_AddNumberToObject(o, "requests", s.last.requests);
	cJSON_AddNumberToObject(o, "retries", s.last.retries);
	cJSON_AddNumberToObject(o, "walks", s.cache.loads);
	cJSON_AddBoolToObject(o, "walking", s.walking);
	cJSON_AddNumberToObject(o, "walk_pages", s.cur.pages);
	cJSON_AddNumberToObject(o, "walk_entries", (double)s.cur.entries);
	cJSON_AddNumberToObject(o, "walk_total", (double)s.cur.total);
	cJSON_AddNumberToObject(o, "rate_limit", (double)s.rate.limit);
	cJSON_AddNumberToObject(o, "rate_remaining", (double)s.rate.remaining);
	cJSON_AddNumberToObject(o, "rate_reset", (double)(long)s.rate.reset_in);
	if (s.cache.last_err) {
		iso(s.err_at, when, sizeof(when));
		cJSON_AddStringToObject(o, "last_error", s.cache.last_msg);
		cJSON_AddStringToObject(o, "last_error_time", when);
	} else {
		cJSON_AddNullToObject(o, "last_error");
		cJSON_AddNullToObject(o, "last_error_time");
	}
	return o;
}

char *status_json(struct connfs *fs, size_t *len)
{
	cJSON *root = cJSON_CreateArray();
	char *s;

	for (size_t i = 0; root && i < fs->ndirs; i++)
		cJSON_AddItemToArray(root, dir_json(&fs->dirs[i]));
	s = cJSON_Print(root);
	cJSON_Delete(root);
	if (!s)
		return NULL;
	*len = strlen(s);
	return s;
}

static const char *const dir_names[] = {
	"provider", "ttl", "state", "fetched", "age", "stale", "entries",
	"pages", "requests", "retries", "walking", "progress", "last_error",
	"last_error_time", "rate_limit", "rate_remaining", "rate_reset", NULL,
};

static const char *const file_names[] = {
	"id", "provider", "directory", "fetched", "source_url", NULL,
};

char *status_xattr_list(const struct snap_entry *e, size_t *len)
{
	const char *const *names = e ? file_names : dir_names;
	struct buf b = { 0 };

	for (size_t i = 0; names[i]; i++)
		if (buf_printf(&b, XATTR_PREFIX "%s", names[i]) ||
		    buf_add(&b, "", 1)) {
			buf_release(&b);
			return NULL;
		}
	*len = b.len;
	return buf_steal(&b);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char *dir_value(struct dir *d, const struct dstat *s, const char *n)
{
	char when[32];

	if (!strcmp(n, "provider"))
		return strdup(d->remote->prov->name);
	if (!strcmp(n, "ttl"))
		return fmt("%g", d->remote->ttl);
	if (!strcmp(n, "state"))
		return strdup(state_of(s));
	if (!strcmp(n, "fetched") || !strcmp(n, "last_error_time")) {
		iso(!strcmp(n, "fetched") ? s->fetched : s->err_at, when,
		    sizeof(when));
		return strdup(when);
	}
	if (!strcmp(n, "age"))
		return s->age < 0 ? strdup("-") : fmt("%.0f", s->age);
	/* Older than its TTL, for whatever reason (a failed refresh, a
	 * saved listing, a refresh still running). */
	if (!strcmp(n, "stale"))
		return strdup(s->cache.stale || (s->age >= 0 && d->remote->ttl &&
						  s->age > d->remote->ttl) ?
			      "1" : "0");
	if (!strcmp(n, "entries"))
		return fmt("%zu", s->entries);
	if (!strcmp(n, "pages"))
		return fmt("%u", s->last.pages);
	if (!strcmp(n, "requests"))
		return fmt("%u", s->last.requests);
	if (!strcmp(n, "retries"))
		return fmt("%u", s->last.retries);
	if (!strcmp(n, "walking"))
		return strdup(s->walking ? "1" : "0");
	if (!strcmp(n, "progress"))
		return fmt("pages=%u entries=%lu total=%lld", s->cur.pages,
			   s->cur.entries, s->cur.total);
	if (!strcmp(n, "last_error"))
		return strdup(s->cache.last_err ? s->cache.last_msg : "-");
	if (!strcmp(n, "rate_limit"))
		return fmt("%ld", s->rate.limit);
	if (!strcmp(n, "rate_remaining"))
		return fmt("%ld", s->rate.remaining);
	if (!strcmp(n, "rate_reset"))
		return fmt("%.0f", s->rate.reset_in);
	return NULL;
}

static char *file_value(struct dir *d, const struct snap_entry *e,
			const struct dstat *s, const char *n)
{
	const char *url;
	char when[32];

	if (!strcmp(n, "id"))
		return strdup(entry_id(e));
	if (!strcmp(n, "provider"))
		return strdup(d->remote->prov->name);
	if (!strcmp(n, "directory"))
		return strdup(d->remote->name);
	if (!strcmp(n, "fetched")) {
		iso(s->fetched, when, sizeof(when));
		return strdup(when);
	}
	if (!strcmp(n, "source_url")) {
		url = d->remote->prov->source_url ?
		      d->remote->prov->source_url(d->remote->state) : NULL;
		return strdup(url ? url : "-");
	}
	return NULL;
}

char *status_xattr(struct dir *d, const struct snap_entry *e,
		   const char *name, int *err)
{
	size_t plen = strlen(XATTR_PREFIX);
	struct dstat s;
	char *v;

	*err = -ENODATA;
	if (strncmp(name, XATTR_PREFIX, plen) != 0)
		return NULL;
	gather(d, &s);
	v = e ? file_value(d, e, &s, name + plen) :
		dir_value(d, &s, name + plen);
	if (!v && (e ? file_names : dir_names)[0])
		*err = -ENODATA;
	return v;
}

char *status_refresh(struct dir *d, size_t *len)
{
	struct snapshot *s = NULL;
	struct cache_status cs;
	char *out;
	int rc;

	atomic_store(&d->walk_wanted, true);
	rc = cache_refresh(d->cache, d->remote->deadline);
	/* Reading a control file holds no directory lock: safe to wait. */
	if (!rc)
		notify_flush(d->remote->deadline);
	s = cache_peek(d->cache);
	cache_status(d->cache, &cs);
	if (!rc && s)
		out = fmt("%s: refreshed, %zu connections\n", d->remote->name,
			  s->n);
	else if (rc == -ETIMEDOUT)
		out = fmt("%s: still walking after %gs; the new listing is "
			  "served as soon as it is done\n", d->remote->name,
			  d->remote->deadline);
	else if (s)
		out = fmt("%s: refresh failed, still serving the previous "
			  "listing: %s\n", d->remote->name, cs.last_msg);
	else
		out = fmt("%s: refresh failed: %s\n", d->remote->name,
			  cs.last_msg);
	snapshot_put(s);
	*len = out ? strlen(out) : 0;
	return out;
}
