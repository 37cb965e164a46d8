/* Kernel cache invalidation after refreshes. See notify.h. */
#include "notify.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct job {
	struct job *next;
	uint64_t parent;
	struct snapshot *old;
	struct snapshot *new;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct fuse_session *se;
	struct job *head, **tail;
	pthread_t thread;
	bool running;
	bool stop;
} nq = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.wake = PTHREAD_COND_INITIALIZER,
	.tail = &nq.head,
};

static void forget_name(uint64_t parent, const char *name)
{
	fuse_lowlevel_notify_inval_entry(nq.se, parent, name, strlen(name));
}

static void diff(const struct job *j)
{
	for (size_t i = 0; i < j->new->n; i++) {
		const struct snap_entry *e = &j->new->v[i];
		const struct snap_entry *o = snapshot_find(j->old, e->name);

		if (!o || o->ino != e->ino)
			forget_name(j->parent, e->name);
		else if (o->size != e->size || memcmp(o->data, e->data, e->size))
			fuse_lowlevel_notify_inval_inode(nq.se, e->ino, 0, 0);
	}
	for (size_t i = 0; i < j->old->n; i++)
		if (!snapshot_find(j->new, j->old->v[i].name))
			forget_name(j->parent, j->old->v[i].name);
	fuse_lowlevel_notify_inval_inode(nq.se, j->parent, 0, 0);
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&nq.lock);
	for (;;) {
		struct job *j = nq.head;

		if (!j && nq.stop)
			break;
		if (!j) {
			pthread_cond_wait(&nq.wake, &nq.lock);
			continue;
		}
		nq.head = j->next;
		if (!nq.head)
			nq.tail = &nq.head;
		pthread_mutex_unlock(&nq.lock);
		if (!nq.stop)
			diff(j);
		snapshot_put(j->old);
		snapshot_put(j->new);
		free(j);
		pthread_mutex_lock(&nq.lock);
	}
	pthread_mutex_unlock(&nq.lock);
	return NULL;
}

int notify_start(struct fuse_session *se)
{
	nq.se = se;
	nq.stop = false;
	if (pthread_create(&nq.thread, NULL, worker, NULL))
		return -1;
	nq.running = true;
	return 0;
}

void notify_stop(void)
{
	if (!nq.running)
		return;
	pthread_mutex_lock(&nq.lock);
	nq.stop = true;
	pthread_cond_broadcast(&nq.wake);
	pthread_mutex_unlock(&nq.lock);
	pthread_join(nq.thread, NULL);
	nq.running = false;
}

void notify_changes(uint64_t parent, struct snapshot *old,
		    struct snapshot *new)
{
	struct job *j;

	if (!nq.running || !old || !(j = calloc(1, sizeof(*j))))
		return;
	snapshot_get(old);
	snapshot_get(new);
	j->parent = parent;
	j->old = old;
	j->new = new;
	pthread_mutex_lock(&nq.lock);
	*nq.tail = j;
	nq.tail = &j->next;
	pthread_cond_signal(&nq.wake);
	pthread_mutex_unlock(&nq.lock);
}
