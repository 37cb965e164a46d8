/*
 * The transfer thread of a client: a queue of easy handles handed over by
 * callers, one multi handle that runs them all at once, and a condition
 * variable that tells each caller its transfer ended. The thread starts
 * with the first transfer, so a process that forks after building its
 * clients (daemonizing) starts it in the child; a driver inherited across
 * fork() without its thread is abandoned and started afresh. Knows nothing
 * of requests or providers.
 */
#include "http_driver.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * Longest wait in curl_multi_poll() while transfers run, so that progress
 * callbacks run often; idle, only a new transfer (curl_multi_wakeup())
 * or the stop request wakes the thread.
 */
#define POLL_MS 100
#define IDLE_MS 600000

struct job {
	CURL *h;
	CURLcode cc;
	bool done;
	struct job *next;
};

struct http_driver {
	pthread_mutex_t lock;	/* guards everything below */
	pthread_cond_t done;
	CURLM *multi;
	pthread_t thread;
	pid_t pid;		/* process the thread runs in; 0: none */
	bool stop;
	struct job *queue;	/* handed over, not yet added */
};

struct http_driver *http_driver_new(void)
{
	struct http_driver *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->done, NULL);
	return d;
}

static void finish(struct http_driver *d, struct job *j, CURLcode cc)
{
	pthread_mutex_lock(&d->lock);
	j->cc = cc;
	j->done = true;
	pthread_cond_broadcast(&d->done);
	pthread_mutex_unlock(&d->lock);
}

/* Adds what callers queued; true when asked to stop. */
static bool take_queue(struct http_driver *d)
{
	struct job *q, *next;
	bool stop;

	pthread_mutex_lock(&d->lock);
	q = d->queue;
	d->queue = NULL;
	stop = d->stop;
	pthread_mutex_unlock(&d->lock);
	for (; q; q = next) {
		next = q->next;
		curl_easy_setopt(q->h, CURLOPT_PRIVATE, q);
		if (curl_multi_add_handle(d->multi, q->h) != CURLM_OK)
			finish(d, q, CURLE_OUT_OF_MEMORY);
	}
	return stop;
}

static void reap(struct http_driver *d)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left))) {
		CURL *h = m->easy_handle;
		CURLcode cc = m->data.result;
		char *p = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(h, CURLINFO_PRIVATE, &p);
		curl_multi_remove_handle(d->multi, h);
		finish(d, (struct job *)(void *)p, cc);
	}
}

static void *drive(void *arg)
{
	struct http_driver *d = arg;

	while (!take_queue(d)) {
		long wait = POLL_MS;
		int running;

		curl_multi_perform(d->multi, &running);
		reap(d);
		if (curl_multi_timeout(d->multi, &wait) || wait < 0 ||
		    wait > POLL_MS)
			wait = running ? POLL_MS : IDLE_MS;
		curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
	}
	return NULL;
}

/* Called with d->lock held. 0 when the thread runs in this process. */
static int start(struct http_driver *d)
{
	if (d->pid == getpid())
		return 0;
	/* None yet, or one a fork() left behind: never touch that one. */
	d->pid = 0;
	d->queue = NULL;
	d->multi = curl_multi_init();
	if (!d->multi)
		return -1;
	curl_multi_setopt(d->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	if (pthread_create(&d->thread, NULL, drive, d)) {
		curl_multi_cleanup(d->multi);
		d->multi = NULL;
		return -1;
	}
	d->pid = getpid();
	return 0;
}

CURLcode http_driver_perform(struct http_driver *d, CURL *h)
{
	struct job j = { .h = h };
	CURLM *multi;

	pthread_mutex_lock(&d->lock);
	if (start(d)) {
		pthread_mutex_unlock(&d->lock);
		return curl_easy_perform(h);
	}
	j.next = d->queue;
	d->queue = &j;
	multi = d->multi;
	pthread_mutex_unlock(&d->lock);
	curl_multi_wakeup(multi);
	pthread_mutex_lock(&d->lock);
	while (!j.done)
		pthread_cond_wait(&d->done, &d->lock);
	pthread_mutex_unlock(&d->lock);
	return j.cc;
}

void http_driver_free(struct http_driver *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	d->stop = true;
	pthread_mutex_unlock(&d->lock);
	if (d->pid == getpid()) {
		curl_multi_wakeup(d->multi);
		pthread_join(d->thread, NULL);
		curl_multi_cleanup(d->multi);
	}
	pthread_cond_destroy(&d->done);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
