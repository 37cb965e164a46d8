/*
 * A tiny unit-test harness: CHECK records a failure with file and line and
 * carries on; main() of each test file ends with `return harness_done();`,
 * which prints "N passed, N failed".
 */
#ifndef CONNFS_HARNESS_H
#define CONNFS_HARNESS_H

#include <stdio.h>
#include <string.h>

static int harness_pass, harness_fail;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond) {                                                \
			harness_pass++;                                    \
		} else {                                                   \
			harness_fail++;                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n",       \
				__FILE__, __LINE__, #cond);                \
		}                                                          \
	} while (0)

#define CHECK_STR(a, b)                                                    \
	do {                                                               \
		const char *a_ = (a), *b_ = (b);                           \
		if (a_ && b_ && strcmp(a_, b_) == 0) {                     \
			harness_pass++;                                    \
		} else {                                                   \
			harness_fail++;                                    \
			fprintf(stderr, "%s:%d: %s == \"%s\", want \"%s\"\n", \
				__FILE__, __LINE__, #a, a_ ? a_ : "(null)", \
				b_ ? b_ : "(null)");                       \
		}                                                          \
	} while (0)

#define CHECK_INT(a, b)                                                    \
	do {                                                               \
		long long a_ = (long long)(a), b_ = (long long)(b);        \
		if (a_ == b_) {                                            \
			harness_pass++;                                    \
		} else {                                                   \
			harness_fail++;                                    \
			fprintf(stderr, "%s:%d: %s == %lld, want %lld\n",  \
				__FILE__, __LINE__, #a, a_, b_);           \
		}                                                          \
	} while (0)

static inline int harness_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, harness_pass, harness_fail);
	return harness_fail ? 1 : 0;
}

#endif
