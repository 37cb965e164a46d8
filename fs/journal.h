/*
 * The change journal's lines for one refresh: what changed between two
 * listings of a section, one JSON object per line (see journal.c).
 */
#ifndef CONNFS_JOURNAL_H
#define CONNFS_JOURNAL_H

#include <stddef.h>

#include "snapshot.h"

struct journal {
	const char *section;
	char time[32];		/* of the refresh, RFC 3339 UTC */
	char **lines;		/* NUL-terminated, no newline */
	size_t n;
};

/* Fills j with the changes old → new; 0, or -1 when out of memory. */
int journal_diff(struct journal *j, const char *section, double when,
		 const struct snapshot *old, const struct snapshot *new);
void journal_release(struct journal *j);

#endif
