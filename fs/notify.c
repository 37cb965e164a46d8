/* Kernel cache invalidation after refreshes. See notify.h. */
#include "notify.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connfs.h"

struct job {
	struct job *next;
	uint64_t parent;
	struct snapshot *old;
	struct snapshot *new;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t idle;	/* done moved */
	uint64_t queued, done;	/* jobs so far */
	struct fuse_session *se;
	struct job *head, **tail;
	pthread_t thread;
	bool running;
	bool stop;
} nq = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.tail = &nq.head,
};

/*
 * Drops the kernel's dentry for name. When it named old's node, that
 * node is marked deleted: the kernel forgets it as soon as no reader
 * holds it, instead of keeping it cached (and its version alive).
 */
static void forget_name(uint64_t parent, const struct snap_entry *old,
			const char *name)
{
	size_t len = strlen(name);

	if (!old || fuse_lowlevel_notify_delete(nq.se, parent,
						entry_node(old), name, len))
		fuse_lowlevel_notify_inval_entry(nq.se, parent, name, len);
}

/*
 * Both listings are sorted by name: one pass over the two finds every
 * name that is new, gone, or now another version.
 */
static void diff(const struct job *j)
{
	struct snap_entry *const *a = j->old->v, *const *b = j->new->v;
	size_t na = j->old->n, nb = j->new->n, i = 0, k = 0;

	while (i < na || k < nb) {
		int c = i == na ? 1 : k == nb ? -1 :
			strcmp(entry_name(a[i]), entry_name(b[k]));

		if (c < 0) {
			forget_name(j->parent, a[i], entry_name(a[i]));
			i++;
		} else if (c > 0) {
			forget_name(j->parent, NULL, entry_name(b[k]));
			k++;
		} else {
			if (a[i] != b[k])
				forget_name(j->parent, a[i], entry_name(a[i]));
			i++;
			k++;
		}
	}
	/* The directory's cached listing (its readdir cache) goes too. */
	fuse_lowlevel_notify_inval_inode(nq.se, j->parent, 0, 0);
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nq.lock);
	for (;;) {
		struct job *j = nq.head;
		bool stop = nq.stop;

		if (!j && stop)
			break;
		if (!j) {
			pthread_cond_wait(&nq.wake, &nq.lock);
			continue;
		}
		nq.head = j->next;
		if (!nq.head)
			nq.tail = &nq.head;
		pthread_mutex_unlock(&nq.lock);
		if (!stop)
			diff(j);
		snapshot_put(j->old);
		snapshot_put(j->new);
		free(j);
		pthread_mutex_lock(&nq.lock);
		nq.done++;
		pthread_cond_broadcast(&nq.idle);
	}
	pthread_mutex_unlock(&nq.lock);
	return NULL;
}

int notify_start(struct fuse_session *se)
{
	int rc;

	pthread_mutex_lock(&nq.lock);
	nq.se = se;
	nq.stop = false;
	rc = pthread_create(&nq.thread, NULL, worker, NULL) ? -1 : 0;
	nq.running = rc == 0;
	pthread_mutex_unlock(&nq.lock);
	return rc;
}

void notify_stop(void)
{
	bool running;

	pthread_mutex_lock(&nq.lock);
	running = nq.running;
	nq.stop = true;
	pthread_cond_broadcast(&nq.wake);
	pthread_mutex_unlock(&nq.lock);
	if (!running)
		return;
	pthread_join(nq.thread, NULL);
	pthread_mutex_lock(&nq.lock);
	nq.running = false;
	pthread_cond_broadcast(&nq.idle);
	pthread_mutex_unlock(&nq.lock);
}

void notify_flush(double secs)
{
	struct timespec until;
	uint64_t target;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)secs;
	pthread_mutex_lock(&nq.lock);
	target = nq.queued;
	while (nq.running && nq.done < target &&
	       pthread_cond_timedwait(&nq.idle, &nq.lock, &until) == 0)
		;
	pthread_mutex_unlock(&nq.lock);
}

void notify_changes(uint64_t parent, struct snapshot *old,
		    struct snapshot *new)
{
	struct job *j;

	if (!old || !(j = calloc(1, sizeof(*j))))
		return;
	j->parent = parent;
	j->old = old;
	j->new = new;
	pthread_mutex_lock(&nq.lock);
	if (nq.running && !nq.stop) {
		snapshot_get(old);
		snapshot_get(new);
		*nq.tail = j;
		nq.tail = &j->next;
		nq.queued++;
		pthread_cond_signal(&nq.wake);
		j = NULL;
	}
	pthread_mutex_unlock(&nq.lock);
	free(j);
}
