/*
 * Token bucket with reservations: a caller takes its token up front (the
 * count may go negative) and sleeps until its turn, so waiting callers are
 * served in order without a condition variable.
 */
#include "ratelimit.h"

#include <errno.h>
#include <time.h>

double mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void sleep_secs(double secs)
{
	struct timespec ts;

	if (secs <= 0)
		return;
	ts.tv_sec = (time_t)secs;
	ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void ratelimit_init(struct ratelimit *rl, double rate, double burst)
{
	pthread_mutex_init(&rl->lock, NULL);
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
	sleep_secs(wait);
	return 0;
}

void ratelimit_pause(struct ratelimit *rl, double until)
{
	pthread_mutex_lock(&rl->lock);
	if (until > rl->paused_until)
		rl->paused_until = until;
	pthread_mutex_unlock(&rl->lock);
}
