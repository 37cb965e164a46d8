/* Connection file names. See naming.h. */
#include "naming.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

#define HASH_TAG_LEN 17		/* "~" + 16 hex digits */

uint64_t name_hash(const char *a, const char *b)
{
	return fnv1a(fnv1a(FNV1A_INIT, a, true), b, false);
}

static bool must_escape(unsigned char c, bool first)
{
	return c < 0x20 || c == 0x7f || c == '%' || c == '/' || c == '~' ||
	       (first && (c == '.' || c == '-'));
}

static int encode_part(struct buf *b, const char *part)
{
	const unsigned char *s = (const unsigned char *)part;
	size_t len = strlen(part);

	if (!*s)
		return buf_puts(b, "%00");
	for (size_t i = 0; s[i];) {
		size_t n = utf8_char(s + i, len - i);

		if (n == 1 && !must_escape(s[i], i == 0)) {
			if (buf_add(b, s + i, 1))
				return -1;
			i++;
		} else if (n > 1) {
			if (buf_add(b, s + i, n))
				return -1;
			i += n;
		} else if (buf_printf(b, "%%%02X", s[i++])) {
			return -1;
		}
	}
	return 0;
}

bool name_is_safe(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t len = strlen(name), sl = strlen(NAME_SUFFIX);

	if (len <= sl || len > NAME_MAX_BYTES || s[0] == '.' || s[0] == '-' ||
	    strcmp(name + len - sl, NAME_SUFFIX))
		return false;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_char(s + i, len - i);

		if (n == 0 || (n == 1 && (s[i] < 0x20 || s[i] == 0x7f ||
					  s[i] == '/')))
			return false;
		i += n;
	}
	return true;
}

/* Cuts s to at most max bytes without splitting a %XX or UTF-8 sequence. */
static size_t cut(const char *s, size_t len, size_t max)
{
	size_t i = 0;

	while (i < len) {
		size_t n = s[i] == '%' ? 3 :
			   utf8_char((const unsigned char *)s + i, len - i);

		if (n == 0)
			n = 1;
		if (i + n > max)
			break;
		i += n;
	}
	return i;
}

static char *with_tag(const char *stem, size_t len, const char *id)
{
	char *out;

	if (asprintf(&out, "%.*s~%016llx%s", (int)len, stem,
		     (unsigned long long)name_hash("id", id), NAME_SUFFIX) < 0)
		return NULL;
	return out;
}

char *name_encode(const char *part0, const char *part1, const char *id)
{
	size_t max = NAME_MAX_BYTES - strlen(NAME_SUFFIX);
	struct buf b = { 0 };
	char *out;

	if (encode_part(&b, part0) ||
	    (part1 && (buf_puts(&b, "~") || encode_part(&b, part1)))) {
		buf_release(&b);
		return NULL;
	}
	if (b.len <= max) {
		if (buf_puts(&b, NAME_SUFFIX)) {
			buf_release(&b);
			return NULL;
		}
		return buf_steal(&b);
	}
	out = with_tag(b.p, cut(b.p, b.len, max - HASH_TAG_LEN), id);
	buf_release(&b);
	return out;
}

char *name_disambiguate(const char *name, const char *id)
{
	size_t len = strlen(name) - strlen(NAME_SUFFIX);
	size_t max = NAME_MAX_BYTES - strlen(NAME_SUFFIX) - HASH_TAG_LEN;

	return with_tag(name, cut(name, len, max), id);
}
