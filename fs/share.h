/*
 * Fleet mode: directories whose listings are shared with other hosts
 * through Redis (cache/fleet.h). Off unless -o redis= is given; when on,
 * a directory's loader asks share_load() instead of walking by itself.
 */
#ifndef CONNFS_SHARE_H
#define CONNFS_SHARE_H

#include <stdbool.h>
#include <stddef.h>

#include "connfs.h"

struct share_options {
	const char *url;		/* -o redis=, NULL: fleet mode off */
	const char *password_file;	/* -o redis_password_file= */
	const char *prefix;		/* -o redis_prefix=, NULL: "connfs" */
	const char *lease;		/* -o redis_lease= (seconds) */
};

/*
 * Parses and checks the options (-EINVAL with err). With verify, connects
 * once: a refused login or a Redis that cannot be written is an error
 * (-EACCES etc. with err); a Redis that does not answer only sets err.
 */
int share_configure(const struct share_options *o, bool verify, char *err,
		    size_t errlen);
/*
 * Starts the tier (after the fork into the background) and attaches the
 * directories: their rate budgets become the fleet's and they hear of
 * listings other hosts publish.
 */
int share_start(struct connfs *fs);
/* No more pickups; then the caches may stop. */
void share_quiesce(void);
/* After the caches stopped. */
void share_stop(void);

bool share_on(void);
/* A cache load of d through the fleet (see share.c). */
int share_load(struct dir *d, struct snapshot **s, double *age, char *err,
	       size_t errlen);
/* The shared journal of d (every directory when NULL); -ENOTCONN: none. */
int share_changes(struct connfs *fs, struct dir *d, char **data,
		  size_t *len);
/* "off" or "URL (prefix P): ok" / "...: unavailable (reason)". */
void share_state(char *buf, size_t len);

#endif
