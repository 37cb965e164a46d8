/*
 * A registry of live objects, so that what is still allocated once no
 * request can run any more is freed then: at unmount the kernel neither
 * forgets every node nor releases every handle it held. An intrusive
 * doubly linked list under its own lock; an object embeds a live_link
 * and is found from it with live_of().
 */
#ifndef CONNFS_LIVE_H
#define CONNFS_LIVE_H

#include <pthread.h>
#include <stddef.h>

struct live_link {
	struct live_link *prev, *next;
};

struct live_list {
	pthread_mutex_t lock;
	struct live_link *head;
};

#define LIVE_LIST_INIT { PTHREAD_MUTEX_INITIALIZER, NULL }

#define live_of(link, type, member) \
	((type *)(void *)((char *)(link) - offsetof(type, member)))

static inline void live_add(struct live_list *l, struct live_link *n)
{
	pthread_mutex_lock(&l->lock);
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	l->head = n;
	pthread_mutex_unlock(&l->lock);
}

/* Unlinks n; a zeroed link that was never added is left alone. */
static inline void live_remove(struct live_list *l, struct live_link *n)
{
	pthread_mutex_lock(&l->lock);
	if (n->prev)
		n->prev->next = n->next;
	else if (l->head == n)
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->prev = n->next = NULL;
	pthread_mutex_unlock(&l->lock);
}

#endif
