/*
 * Provider directories: each owns a remote and a cache whose loader walks
 * the remote into a fresh snapshot (in fleet mode, share.c decides whether
 * this host walks or takes another host's walk). A failed walk keeps the
 * last good snapshot (the cache serves it stale) and says so in the log.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connfs.h"
#include "log.h"
#include "naming.h"
#include "notify.h"
#include "persist.h"
#include "ratelimit.h"
#include "share.h"

/* After a failed refresh, serve stale for this long before trying again. */
#define RETRY_AFTER_FAILURE 5.0

int dir_walk(struct dir *d, struct snapshot **out, char *err, size_t errlen)
{
	struct snap_builder b = { .instance = d->remote->name, .owner = d };
	struct walk_stats cur, last;
	struct walk_error werr;
	struct cache_status st;
	struct rate_info rate;
	bool walking;
	struct snapshot *s, *old;
	int rc;

	rc = remote_walk(d->remote, snap_builder_add, &b, &werr);
	if (rc) {
		snap_builder_release(&b);
		if (werr.status && !strstr(werr.msg, "HTTP "))
			snprintf(err, errlen, "%s (HTTP %ld)", werr.msg,
				 werr.status);
		else
			snprintf(err, errlen, "%s", werr.msg);
		cache_status(d->cache, &st);
		/* A walk cut short by an unmount is no failure to warn of. */
		log_msg(rc == -ECANCELED ? LOG_INFO : st.has_value ?
			LOG_WARNING : LOG_ERR, "%s%s", err, st.has_value ?
			" (keeping the last good listing)" : "");
		return rc;
	}
	old = cache_peek(d->cache);
	s = snap_builder_finish(&b, old);
	snap_builder_release(&b);
	if (!s) {
		snapshot_put(old);
		snprintf(err, errlen, "%s: out of memory", d->remote->name);
		return -ENOMEM;
	}
	/* Saved before it is served, on this (the cache's) thread: readers
	 * keep the old listing meanwhile. */
	persist_walked(d->remote->identity, d->remote->name, old, s);
	snapshot_put(old);
	remote_stats(d->remote, &walking, &cur, &last, &rate);
	log_msg(LOG_INFO, "%s: listed %zu connections (%u pages, %u requests)",
		d->remote->name, s->n, last.pages, last.requests);
	atomic_store(&d->from_fleet, false);
	*out = s;
	return 0;
}

static int dir_load(void *arg, void **value, double *age, char *err,
		    size_t errlen)
{
	struct dir *d = arg;
	struct snapshot *s;
	int rc = share_on() ? share_load(d, &s, age, err, errlen) :
			      dir_walk(d, &s, err, errlen);

	if (!rc)
		*value = s;
	return rc;
}

static void snap_get_cb(void *v)
{
	snapshot_get(v);
}

static void snap_put_cb(void *v)
{
	snapshot_put(v);
}

/*
 * Runs once the new snapshot is the one every request gets: only then
 * may the kernel be told to drop what it cached of the old one, or it
 * could cache the old state again after being told.
 */
static void dir_published(void *arg, void *old, void *new)
{
	struct dir *d = arg;
	struct snapshot *s = new;

	atomic_store(&d->gen, s->gen);
	if (old && old != new)
		notify_changes(d->ino, old, new);
}

static const struct cache_ops dir_cache_ops = {
	.load = dir_load,
	.get = snap_get_cb,
	.put = snap_put_cb,
	.published = dir_published,
};

int dir_listing(struct dir *d, bool refresh, struct snapshot **s)
{
	int rc;

	if (d->remote->ttl > 0)
		return cache_get(d->cache, (void **)s);
	if (!refresh && (*s = cache_peek(d->cache)))
		return 0;
	atomic_store(&d->walk_wanted, true);
	rc = cache_refresh(d->cache, d->remote->deadline);
	*s = cache_peek(d->cache);
	return *s ? 0 : rc;
}

int connfs_init(struct connfs *fs, struct remote **remotes, size_t n)
{
	fs->dirs = calloc(n ? n : 1, sizeof(*fs->dirs));
	if (!fs->dirs)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &fs->started);
	for (size_t i = 0; i < n; i++) {
		struct dir *d = &fs->dirs[i];
		struct remote *r = remotes[i];
		struct cache_params p = {
			.ttl = r->ttl,
			.retry = r->ttl < RETRY_AFTER_FAILURE ?
				 r->ttl : RETRY_AFTER_FAILURE,
			.max_stale = r->max_stale,
			.refresh_ahead = r->refresh_ahead,
			.wait = r->deadline,
		};

		d->remote = r;
		/* Bit 62: never a file inode (bit 63) or a control one. */
		d->ino = (name_hash("dir", r->name) >> 2) | (1ULL << 62);
		d->cache = cache_new(&dir_cache_ops, d, &p, mono_now);
		fs->ndirs++;
		if (!d->cache)
			return -ENOMEM;
	}
	return 0;
}

void connfs_seed(struct connfs *fs)
{
	for (size_t i = 0; i < fs->ndirs; i++) {
		struct dir *d = &fs->dirs[i];
		struct snapshot *s;
		double age;

		if (persist_load(d->remote->identity, d->remote->name, d, &s,
				 &age))
			continue;
		log_msg(LOG_INFO, "%s: serving the saved listing of %zu "
			"connections, walked %.0f s ago", d->remote->name, s->n,
			age);
		cache_seed(d->cache, s, age);
	}
}

void connfs_release(struct connfs *fs)
{
	for (size_t i = 0; i < fs->ndirs; i++) {
		cache_free(fs->dirs[i].cache);
		remote_free(fs->dirs[i].remote);
	}
	free(fs->dirs);
	fs->dirs = NULL;
	fs->ndirs = 0;
}

struct dir *connfs_dir_by_name(struct connfs *fs, const char *name)
{
	for (size_t i = 0; i < fs->ndirs; i++)
		if (strcmp(fs->dirs[i].remote->name, name) == 0)
			return &fs->dirs[i];
	return NULL;
}

struct dir *connfs_dir_by_ino(struct connfs *fs, uint64_t ino)
{
	for (size_t i = 0; i < fs->ndirs; i++)
		if (fs->dirs[i].ino == ino)
			return &fs->dirs[i];
	return NULL;
}
