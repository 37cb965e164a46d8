/*
 * libFuzzer target for the file namer (fs/naming.c). The input is split at
 * NUL bytes: "part0 \0 id" gives a one-part name, "part0 \0 part1 \0 id"
 * a two-part one (further NULs end the id). Checked for name_encode() and
 * name_disambiguate():
 *
 *   - a usable file name: 1..255 bytes, no '/', no NUL, no control bytes
 *     (< 0x20, 0x7f), not "." or "..", not starting with '.' or '-',
 *     ending in ".json";
 *   - deterministic: the same input gives the same output;
 *   - reversible when not shortened: decoding the percent escapes and
 *     splitting at the one raw '~' gives back the parts exactly; a
 *     shortened name is 252..255 bytes and ends in "~HASH(id).json";
 *   - name_disambiguate() ends in "~HASH(id).json" and two ids with
 *     different hashes never give the same name.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "naming.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SUFFIX_LEN (sizeof(NAME_SUFFIX) - 1)
#define TAG_LEN 17	/* "~" + 16 hex digits */

static void check_name(const char *name)
{
	size_t n = strlen(name);

	FUZZ_ASSERT(n > SUFFIX_LEN && n <= NAME_MAX_BYTES);
	FUZZ_ASSERT(strcmp(name + n - SUFFIX_LEN, NAME_SUFFIX) == 0);
	FUZZ_ASSERT(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	FUZZ_ASSERT(name[0] != '.' && name[0] != '-');
	FUZZ_ASSERT(!strchr(name, '/'));
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)name[i] >= 0x20 &&
			    name[i] != 0x7f);
}

/* Does name end in "~HASH(id).json"? */
static bool has_tag(const char *name, const char *id)
{
	char tag[TAG_LEN + SUFFIX_LEN + 1];
	size_t n = strlen(name);

	snprintf(tag, sizeof(tag), "~%016llx%s",
		 (unsigned long long)name_hash("id", id), NAME_SUFFIX);
	return n >= strlen(tag) && strcmp(name + n - strlen(tag), tag) == 0;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes one encoded part [s, s+len) into out; false if malformed. */
static bool decode_part(const char *s, size_t len, char *out)
{
	size_t w = 0;

	if (len == 3 && memcmp(s, "%00", 3) == 0) {
		out[0] = '\0';
		return true;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return false;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			out[w++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[w++] = s[i];
		}
	}
	out[w] = '\0';
	return true;
}

/* Is name exactly the reversible encoding of part0 (~ part1)? */
static bool round_trips(const char *name, const char *part0,
			const char *part1)
{
	size_t stem = strlen(name) - SUFFIX_LEN;
	const char *sep = memchr(name, '~', stem);
	char a[NAME_MAX_BYTES + 1], b[NAME_MAX_BYTES + 1];

	if (!part1) {
		if (sep || !decode_part(name, stem, a))
			return false;
		return strcmp(a, part0) == 0;
	}
	if (!sep || memchr(sep + 1, '~', stem - (size_t)(sep + 1 - name)))
		return false;
	if (!decode_part(name, (size_t)(sep - name), a) ||
	    !decode_part(sep + 1, stem - (size_t)(sep + 1 - name), b))
		return false;
	return strcmp(a, part0) == 0 && strcmp(b, part1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	const char *f[3] = { NULL, NULL, NULL };
	const char *part0, *part1, *id, *id2;
	char *name, *again, *d1, *d2;
	size_t nf = 0;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	f[nf++] = buf;
	for (size_t i = 0; i < size && nf < 3; i++)
		if (buf[i] == '\0')
			f[nf++] = buf + i + 1;
	part0 = f[0];
	part1 = nf == 3 ? f[1] : NULL;
	id = nf == 3 ? f[2] : nf == 2 ? f[1] : "";
	id2 = part0;

	name = name_encode(part0, part1, id);
	FUZZ_ASSERT(name);
	check_name(name);
	again = name_encode(part0, part1, id);
	FUZZ_ASSERT(again && strcmp(name, again) == 0);
	free(again);
	if (!round_trips(name, part0, part1)) {
		/* Only a shortened name may lose information. */
		FUZZ_ASSERT(has_tag(name, id));
		FUZZ_ASSERT(strlen(name) >= NAME_MAX_BYTES - 3);
	}

	d1 = name_disambiguate(name, id);
	FUZZ_ASSERT(d1);
	check_name(d1);
	FUZZ_ASSERT(has_tag(d1, id));
	again = name_disambiguate(name, id);
	FUZZ_ASSERT(again && strcmp(d1, again) == 0);
	free(again);
	d2 = name_disambiguate(name, id2);
	FUZZ_ASSERT(d2);
	check_name(d2);
	if (name_hash("id", id) != name_hash("id", id2))
		FUZZ_ASSERT(strcmp(d1, d2) != 0);
	free(d1);
	free(d2);
	free(name);
	free(buf);
	return 0;
}
