/*
 * A client-side token bucket per provider account, shared by every thread
 * that talks to that account, so concurrent page fetches stay inside the
 * API's documented limit instead of collecting 429s.
 */
#ifndef CONNFS_RATELIMIT_H
#define CONNFS_RATELIMIT_H

#include <pthread.h>

/*
 * A budget shared beyond this process (fleet mode): take reserves the
 * next slot of every sharer together and says how long until it (0), or
 * -ETIMEDOUT when that is beyond max_wait; any other error means the
 * shared budget is unavailable now and the local bucket alone applies.
 */
struct ratelimit_shared {
	int (*take)(void *arg, double rate, double burst, double max_wait,
		    double *wait);
	void (*pause)(void *arg, double rate, double burst, double secs);
	void *arg;
};

struct ratelimit {
	const struct ratelimit_shared *shared;	/* or NULL; set before use */
	pthread_mutex_t lock;
	double rate;		/* tokens per second; 0 = unlimited */
	double burst;
	double tokens;
	double last;
	double paused_until;	/* a server said "wait": everyone waits */
};

void ratelimit_init(struct ratelimit *rl, double rate, double burst);
void ratelimit_destroy(struct ratelimit *rl);
/*
 * Takes one token, sleeping as needed. -ETIMEDOUT (and no token taken) when
 * it cannot be had before deadline (monotonic seconds); -ECANCELED when
 * http_abort_all() ends the wait.
 */
int ratelimit_acquire(struct ratelimit *rl, double deadline);
/* Holds every caller back until `until` (monotonic seconds). */
void ratelimit_pause(struct ratelimit *rl, double until);

/* Monotonic clock in seconds. */
double mono_now(void);
/* Wall-clock seconds since the epoch (CLOCK_REALTIME). */
double wall_now(void);
/*
 * Sleeps for secs seconds (restarting after signals). Returns 0, or
 * -ECANCELED as soon as http_abort_all() has been called (checked every
 * 50 ms).
 */
int sleep_secs(double secs);

#endif
