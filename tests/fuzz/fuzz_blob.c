/*
 * libFuzzer target for the listing blob reader (cache/blob.c), the one
 * parser of what comes from Redis. The input is the blob *before*
 * compression (so the fuzzer works on the format, not on zlib): it is
 * compressed and read back under the key "k". The raw input is also read
 * as if it were the compressed blob (zlib's own input handling). Checked:
 *
 *   - no crash, leak or hang, whatever the input;
 *   - a blob that is accepted handed over exactly the count of items its
 *     header announced, each with a valid name (1..4096 bytes, no '/',
 *     not "." or ".."), an mtime nanosecond field below 10^9, and data
 *     that is present exactly when its size is not zero.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "blob.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int seen(void *arg, const struct store_item *it)
{
	size_t n = strlen(it->name);

	FUZZ_ASSERT(n >= 1 && n <= 4096 && !strchr(it->name, '/'));
	FUZZ_ASSERT(strcmp(it->name, ".") && strcmp(it->name, ".."));
	FUZZ_ASSERT(it->mtime_nsec >= 0 && it->mtime_nsec < 1000000000);
	FUZZ_ASSERT((it->size == 0) == (it->data == NULL));
	(*(size_t *)arg)++;
	return 0;
}

static void read_one(const void *blob, size_t len)
{
	char err[200];
	size_t count = 0, n = 0;

	if (!blob_read(blob, len, "k", &count, seen, &n, err, sizeof(err)))
		FUZZ_ASSERT(n == count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uLongf len = compressBound(size);
	unsigned char *z = malloc(len);

	if (z && compress2(z, &len, data, size, 1) == Z_OK)
		read_one(z, len);
	free(z);
	read_one(data, size);
	return 0;
}
