/*
 * Unit tests for connection file names (fs/naming.c): the escaping rules
 * (separator, '/', '%', '~', control characters, DEL, invalid UTF-8, a
 * leading '.' or '-', empty parts), valid non-ASCII kept, the 255-byte
 * limit with a hash tag that never splits a character or a %XX escape,
 * reversibility checked with a small local decoder, collision tags and
 * determinism. Pure string functions: no files, no network.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "naming.h"

#define SUFFIX_LEN 5		/* ".json" */
#define TAG_LEN 17		/* "~" + 16 hex digits */

/* --- helpers ------------------------------------------------------------ */

/* Length of a valid UTF-8 sequence at s (strict: no overlong, surrogate). */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* Valid UTF-8 and every '%' starts a complete %XX (upper-case hex). */
static bool well_formed(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		size_t k;

		if (u[i] == '%') {
			if (i + 3 > n || !isxdigit(u[i + 1]) ||
			    !isxdigit(u[i + 2]) || islower(u[i + 1]) ||
			    islower(u[i + 2]))
				return false;
			i += 3;
			continue;
		}
		k = utf8_ok(u + i, n - i);
		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* The design's safety rules for any file name we produce. */
static bool safe_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_BYTES || name[0] == '.' ||
	    strcmp(name, "..") == 0 || strchr(name, '/'))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return false;
	return n > SUFFIX_LEN && strcmp(name + n - SUFFIX_LEN, ".json") == 0 &&
	       well_formed(name, n);
}

static int hexval(char c)
{
	return isdigit((unsigned char)c) ? c - '0' : toupper(c) - 'A' + 10;
}

/* Decodes one encoded part of len bytes into out (%00 alone = ""). */
static bool decode_part(const char *s, size_t len, char *out, size_t cap)
{
	size_t w = 0;

	if (len == 3 && memcmp(s, "%00", 3) == 0) {
		out[0] = '\0';
		return true;
	}
	for (size_t i = 0; i < len; i++) {
		if (w + 1 >= cap)
			return false;
		if (s[i] == '~')
			return false;	/* never raw inside a part */
		if (s[i] == '%') {
			if (i + 2 >= len)
				return false;
			out[w++] = (char)(hexval(s[i + 1]) << 4 |
					  hexval(s[i + 2]));
			i += 2;
		} else {
			out[w++] = s[i];
		}
	}
	out[w] = '\0';
	return true;
}

/* Splits "P0[~P1].json" and decodes both parts; p1 "" flag via has1. */
static bool decode_name(const char *name, char *p0, char *p1, size_t cap,
			bool *has1)
{
	size_t n = strlen(name) - SUFFIX_LEN;
	const char *sep = memchr(name, '~', n);

	*has1 = sep != NULL;
	if (!sep)
		return decode_part(name, n, p0, cap);
	if (memchr(sep + 1, '~', n - (size_t)(sep + 1 - name)))
		return false;
	return decode_part(name, (size_t)(sep - name), p0, cap) &&
	       decode_part(sep + 1, n - (size_t)(sep + 1 - name), p1, cap);
}

static void expect_name(const char *p0, const char *p1, const char *want)
{
	char *got = name_encode(p0, p1, "id-1");

	CHECK_STR(got, want);
	if (got)
		CHECK(safe_name(got));
	free(got);
}

/* Encodes, checks safety, decodes, and compares with the input. */
static void round_trip(const char *p0, const char *p1)
{
	char *name = name_encode(p0, p1, "rt");
	char d0[1024], d1[1024];
	bool has1 = false;

	CHECK(name != NULL);
	if (!name)
		return;
	if (!safe_name(name))
		fprintf(stderr, "unsafe name: %s\n", name);
	CHECK(safe_name(name));
	CHECK(decode_name(name, d0, d1, sizeof(d0), &has1));
	CHECK_STR(d0, p0);
	CHECK(has1 == (p1 != NULL));
	if (p1 && has1)
		CHECK_STR(d1, p1);
	free(name);
}

/* True if name ends in "~" + 16 lower-case hex digits + ".json". */
static bool has_tag(const char *name)
{
	size_t n = strlen(name);
	const char *t;

	if (n < TAG_LEN + SUFFIX_LEN)
		return false;
	t = name + n - SUFFIX_LEN - TAG_LEN;
	if (t[0] != '~' || strcmp(name + n - SUFFIX_LEN, ".json") != 0)
		return false;
	for (int i = 1; i < TAG_LEN; i++)
		if (!isxdigit((unsigned char)t[i]) ||
		    isupper((unsigned char)t[i]))
			return false;
	return true;
}

/* --- tests -------------------------------------------------------------- */

static void test_plain(void)
{
	expect_name("billing-stripe", NULL, "billing-stripe.json");
	expect_name("billing.zuora_v2", NULL, "billing.zuora_v2.json");
	expect_name("Northwind Outlet", "7", "Northwind Outlet~7.json");
	expect_name("github", "user-42", "github~user-42.json");
	/* Characters that are fine in file names stay as they are. */
	expect_name("a b,c;d=e+f@g!h'i\"j(k)[l]{m}", NULL,
		    "a b,c;d=e+f@g!h'i\"j(k)[l]{m}.json");
}

static void test_escapes(void)
{
	expect_name("Northwind, Inc. / EU", "12",
		    "Northwind, Inc. %2F EU~12.json");
	expect_name("100%", NULL, "100%25.json");
	expect_name("a~b", NULL, "a%7Eb.json");
	expect_name("a", "b~c", "a~b%7Ec.json");
	expect_name("%2F", NULL, "%252F.json");
	expect_name("tab\there", NULL, "tab%09here.json");
	expect_name("line\nbreak\r", NULL, "line%0Abreak%0D.json");
	expect_name("\x01\x1f", NULL, "%01%1F.json");
	expect_name("del\x7f", NULL, "del%7F.json");
	expect_name("esc\x1b[31m", NULL, "esc%1B[31m.json");
}

static void test_invalid_utf8(void)
{
	expect_name("\xff", NULL, "%FF.json");
	expect_name("a\xff" "b", NULL, "a%FFb.json");
	expect_name("trunc\xc3", NULL, "trunc%C3.json");
	expect_name("trunc\xe2\x80", NULL, "trunc%E2%80.json");
	expect_name("\xe2\x80x", NULL, "%E2%80x.json");
	expect_name("\xc0\xaf", NULL, "%C0%AF.json");	/* overlong '/' */
	expect_name("\xe0\x80\xaf", NULL, "%E0%80%AF.json");
	expect_name("\xed\xa0\x80", NULL, "%ED%A0%80.json");	/* surrogate */
	expect_name("\xf4\x90\x80\x80", NULL, "%F4%90%80%80.json");
	expect_name("\x80lone", NULL, "%80lone.json");
	expect_name("x", "\xfe", "x~%FE.json");
}

static void test_leading(void)
{
	expect_name(".env", NULL, "%2Eenv.json");
	expect_name("-rf", NULL, "%2Drf.json");
	expect_name(".", NULL, "%2E.json");
	expect_name("..", NULL, "%2E..json");
	expect_name("...", NULL, "%2E...json");
	/* Only the leading one. */
	expect_name("a.b-c", NULL, "a.b-c.json");
	expect_name("--x", NULL, "%2D-x.json");
	/* Each part is escaped on its own. */
	expect_name("a", ".b", "a~%2Eb.json");
	expect_name(".a", "-b", "%2Ea~%2Db.json");
	expect_name("..", "..", "%2E.~%2E..json");
}

static void test_empty_parts(void)
{
	expect_name("", NULL, "%00.json");
	expect_name("", "7", "%00~7.json");
	expect_name("x", "", "x~%00.json");
	expect_name("", "", "%00~%00.json");
}

static void test_non_ascii(void)
{
	expect_name("Caf\xc3\xa9 Z\xc3\xbcrich", NULL,
		    "Caf\xc3\xa9 Z\xc3\xbcrich.json");
	expect_name("A \xe2\x80\x93 B", "9", "A \xe2\x80\x93 B~9.json");
	expect_name("\xf0\x9f\x98\x80", NULL, "\xf0\x9f\x98\x80.json");
	expect_name("\xe6\x97\xa5\xe6\x9c\xac", NULL,
		    "\xe6\x97\xa5\xe6\x9c\xac.json");
	/* U+FEFF and U+200B are valid characters: kept. */
	expect_name("\xef\xbb\xbfx\xe2\x80\x8b", NULL,
		    "\xef\xbb\xbfx\xe2\x80\x8b.json");
}

static void test_round_trip_fixed(void)
{
	static const char *const parts[] = {
		"plain", "Northwind, Inc. / EU", "100% ~ 50%", ".env", "-x",
		".", "..", "", "tab\tnl\nesc\x1b", "\xff\xfe", "\xc0\xaf",
		"\xed\xa0\x80", "Caf\xc3\xa9", "%00", "~", "a~b~c", "%%%",
		"\x7f", NULL,
	};

	for (size_t i = 0; parts[i]; i++) {
		round_trip(parts[i], NULL);
		for (size_t j = 0; parts[j]; j++)
			round_trip(parts[i], parts[j]);
	}
}

static unsigned rng(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* Random byte strings (no NUL), short enough not to be cut. */
static void test_round_trip_random(void)
{
	unsigned seed = 12345;
	char a[40], b[40];

	for (int iter = 0; iter < 3000; iter++) {
		size_t na = rng(&seed) % 30, nb = rng(&seed) % 30;

		for (size_t i = 0; i < na; i++)
			a[i] = (char)(1 + rng(&seed) % 255);
		for (size_t i = 0; i < nb; i++)
			b[i] = (char)(1 + rng(&seed) % 255);
		a[na] = b[nb] = '\0';
		round_trip(a, iter % 3 ? b : NULL);
	}
}

/* A name cut to the limit: tag, length, no split character or escape. */
static void check_long(const char *p0, const char *p1, const char *id)
{
	char *name = name_encode(p0, p1, id);
	char *again = name_encode(p0, p1, id);
	size_t n;

	CHECK(name != NULL);
	if (!name) {
		free(again);
		return;
	}
	n = strlen(name);
	CHECK(n <= NAME_MAX_BYTES);
	CHECK(n >= NAME_MAX_BYTES - 3);	/* cut at most one escape short */
	CHECK(has_tag(name));
	CHECK(safe_name(name));
	/* The stem before the tag is whole characters and escapes. */
	CHECK(well_formed(name, n - SUFFIX_LEN - TAG_LEN));
	CHECK_STR(again, name);
	free(name);
	free(again);
}

static void test_long_names(void)
{
	static const char *const units[] = {
		"a", "\xc3\xa9", "\xe2\x80\x93", "\xf0\x9f\x98\x80", "/",
		"\x01", "\xff", "%", "a/", "\xc3\xa9/", NULL,
	};
	char buf[1100];
	char *x, *y;

	for (size_t u = 0; units[u]; u++) {
		size_t ul = strlen(units[u]);

		/* Shift the cut point across every byte of the unit. */
		for (size_t off = 0; off < 4; off++) {
			size_t len = 0;

			for (; len < off; len++)
				buf[len] = 'b';
			while (len + ul < 1000) {
				memcpy(buf + len, units[u], ul);
				len += ul;
			}
			buf[len] = '\0';
			check_long(buf, NULL, "arn:aws:events:x");
			check_long("p", buf, "arn:aws:events:x");
			check_long(buf, buf, "7");
		}
	}

	/* The tag depends on the id: same long name, different ids differ. */
	memset(buf, 'n', 1000);
	buf[1000] = '\0';
	x = name_encode(buf, NULL, "id-1");
	y = name_encode(buf, NULL, "id-2");
	CHECK(x && y && strcmp(x, y) != 0);
	free(x);
	free(y);

	/* Exactly at the limit: 250 bytes + ".json" is not cut. */
	memset(buf, 'n', 250);
	buf[250] = '\0';
	x = name_encode(buf, NULL, "id");
	CHECK(x && strlen(x) == 255 && !has_tag(x));
	free(x);
	buf[251] = '\0';
	buf[250] = 'n';
	x = name_encode(buf, NULL, "id");
	CHECK(x && strlen(x) <= 255 && has_tag(x));
	free(x);
}

static void test_disambiguate(void)
{
	char buf[300];
	char *base, *a, *b, *a2, *long_name, *la;

	base = name_encode("dup", NULL, "x");
	a = name_disambiguate(base, "id-a");
	b = name_disambiguate(base, "id-b");
	a2 = name_disambiguate(base, "id-a");
	CHECK(a && b && a2);
	if (a && b && a2) {
		CHECK(strcmp(a, b) != 0);
		CHECK_STR(a2, a);
		CHECK(has_tag(a) && has_tag(b));
		CHECK(strncmp(a, "dup~", 4) == 0);
		CHECK_INT(strlen(a), strlen("dup") + TAG_LEN + SUFFIX_LEN);
		CHECK(safe_name(a));
	}
	free(a);
	free(b);
	free(a2);
	free(base);

	/* A name already at the limit stays within it. */
	memset(buf, 'z', 250);
	buf[250] = '\0';
	long_name = name_encode(buf, NULL, "id");
	la = long_name ? name_disambiguate(long_name, "other") : NULL;
	CHECK(la && strlen(la) <= NAME_MAX_BYTES && has_tag(la));
	if (la)
		CHECK(safe_name(la));
	free(la);
	free(long_name);

	/* Characters and escapes at the cut point are not split. */
	for (size_t off = 0; off < 6; off++) {
		const char *unit = off < 3 ? "\xe2\x80\x93" : "/";
		size_t ul = strlen(unit), len = off % 3;

		memset(buf, 'q', len);
		while (len + ul <= 250) {
			memcpy(buf + len, unit, ul);
			len += ul;
		}
		buf[len] = '\0';
		long_name = name_encode(buf, NULL, "id");
		la = long_name ? name_disambiguate(long_name, "zz") : NULL;
		CHECK(la != NULL);
		if (la) {
			CHECK(strlen(la) <= NAME_MAX_BYTES);
			CHECK(safe_name(la));
			CHECK(has_tag(la));
		}
		free(la);
		free(long_name);
	}
}

static void test_hash(void)
{
	/* name_hash separates its two arguments. */
	CHECK(name_hash("ab", "c") != name_hash("a", "bc"));
	CHECK(name_hash("a", NULL) == name_hash("a", ""));
	CHECK(name_hash("x", "y") == name_hash("x", "y"));
}

int main(void)
{
	test_plain();
	test_escapes();
	test_invalid_utf8();
	test_leading();
	test_empty_parts();
	test_non_ascii();
	test_round_trip_fixed();
	test_round_trip_random();
	test_long_names();
	test_disambiguate();
	test_hash();
	return harness_done("test_naming");
}
