/*
 * Token bucket with reservations: a caller takes its token up front (the
 * count may go negative) and sleeps until its turn, so waiting callers are
 * served in order without a condition variable. Waits end early when the
 * daemon stops (http_abort_all()).
 */
#include "ratelimit.h"

#include <errno.h>
#include <time.h>

#include "http.h"

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define SLICE 0.05

int sleep_secs(double secs)
{
	double end = mono_now() + secs, left;

	while (!http_aborted() && (left = end - mono_now()) > 0) {
		struct timespec ts;

		if (left > SLICE)
			left = SLICE;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	return http_aborted() ? -ECANCELED : 0;
}

void ratelimit_init(struct ratelimit *rl, double rate, double burst)
{
	pthread_mutex_init(&rl->lock, NULL);
	rl->shared = NULL;
	rl->rate = rate;
	rl->burst = burst < 1 ? 1 : burst;
	rl->tokens = rl->burst;
	rl->last = mono_now();
	rl->paused_until = 0;
}

void ratelimit_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->lock);
}

int ratelimit_acquire(struct ratelimit *rl, double deadline)
{
	double now, wait = 0;
	int rc;

	pthread_mutex_lock(&rl->lock);
	now = mono_now();
	if (rl->paused_until > now)
		wait = rl->paused_until - now;
	if (rl->rate > 0) {
		rl->tokens += (now - rl->last) * rl->rate;
		if (rl->tokens > rl->burst)
			rl->tokens = rl->burst;
		rl->last = now;
		if (rl->tokens < 1 && (1 - rl->tokens) / rl->rate > wait)
			wait = (1 - rl->tokens) / rl->rate;
	}
	if (now + wait > deadline) {
		pthread_mutex_unlock(&rl->lock);
		return -ETIMEDOUT;
	}
	if (rl->rate > 0)
		rl->tokens -= 1;
	pthread_mutex_unlock(&rl->lock);
	if ((rc = sleep_secs(wait)) || !rl->shared || rl->rate <= 0)
		return rc;
	/* The shared slot is reserved last, as close to the send as can be. */
	rc = rl->shared->take(rl->shared->arg, rl->rate, rl->burst,
			      deadline - mono_now(), &wait);
	if (rc == -ETIMEDOUT)
		return rc;
	return rc ? 0 : sleep_secs(wait);
}

void ratelimit_pause(struct ratelimit *rl, double until)
{
	pthread_mutex_lock(&rl->lock);
	if (until > rl->paused_until)
		rl->paused_until = until;
	pthread_mutex_unlock(&rl->lock);
	if (rl->shared && rl->rate > 0)
		rl->shared->pause(rl->shared->arg, rl->rate, rl->burst,
				  until - mono_now());
}
