/*
 * What every fuzz target shares: FUZZ_ASSERT, an invariant that aborts
 * (so libFuzzer saves the input) and names itself on stderr.
 */
#ifndef CONNFS_FUZZ_H
#define CONNFS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond)                                                  \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",   \
				__FILE__, __LINE__, #cond);                \
			abort();                                           \
		}                                                          \
	} while (0)

#endif
