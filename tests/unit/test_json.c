/*
 * Unit tests for providers/json.c: numbers keep the digits the API wrote
 * (through json_parse and the file renderer, fs/snapshot.c render_json),
 * the field helpers read them either way, and ids of any size stay exact.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"
#include "snapshot.h"

/* {"n": LIT} rendered as a file must show LIT byte for byte. */
static void check_round_trip(const char *lit)
{
	char in[128], want[160], *got;
	cJSON *v;
	size_t len = 0;

	snprintf(in, sizeof(in), "{\"n\": %s, \"s\": \"%s\"}", lit, lit);
	snprintf(want, sizeof(want), "{\n\t\"n\":\t%s,\n\t\"s\":\t\"%s\"\n}\n",
		 lit, lit);
	v = json_parse(in, strlen(in));
	CHECK(v != NULL);
	got = v ? render_json(v, &len) : NULL;
	CHECK_STR(got, want);
	CHECK_INT(len, strlen(want));
	free(got);
	cJSON_Delete(v);
}

static void test_round_trips(void)
{
	static const char *const lits[] = {
		"9007199254740993",		/* 2^53 + 1 */
		"12345678901234567890", "-12345678901234567890", "-0",
		"1.10", "1e400", "-1e400", "0.1e-5", "1E+2", "0.0",
		"2147483648", "-2147483649", "1.5", "0", "-7", "123456789",
		"3.141592653589793238462643383279",
	};

	for (size_t i = 0; i < sizeof(lits) / sizeof(lits[0]); i++)
		check_round_trip(lits[i]);
}

/* Nested, in arrays, next to strings that look like numbers. */
static void test_document_order(void)
{
	const char *in = "{\"a\":[1.10,{\"-1\":\"2e5 \\\" 3.0\",\"b\":-0}],"
			 "\"c\":9007199254740993,\"d\":[true,null,4]}";
	char *got;
	cJSON *v = json_parse(in, strlen(in));

	CHECK(v != NULL);
	got = v ? cJSON_PrintUnformatted(v) : NULL;
	CHECK_STR(got, in);
	free(got);
	cJSON_Delete(v);
}

static void test_helpers(void)
{
	const char *in = "{\"big\":12345678901234567890,\"neg\":-9007199254740993,"
			 "\"small\":42,\"exp\":1e3,\"frac\":1.5,\"inf\":1e400,"
			 "\"str\":\"77\",\"total\":\"1.10\"}";
	cJSON *v = json_parse(in, strlen(in));
	char buf[32];
	double d = 0;

	CHECK(v != NULL);
	CHECK_STR(json_id(v, "big", buf, sizeof(buf)),
		  "12345678901234567890");
	CHECK_STR(json_id(v, "neg", buf, sizeof(buf)), "-9007199254740993");
	CHECK_STR(json_id(v, "small", buf, sizeof(buf)), "42");
	CHECK_STR(json_id(v, "exp", buf, sizeof(buf)), "1000");
	CHECK(json_id(v, "frac", buf, sizeof(buf)) == NULL);
	CHECK(json_id(v, "inf", buf, sizeof(buf)) == NULL);
	CHECK_STR(json_id(v, "str", buf, sizeof(buf)), "77");
	CHECK(json_num(v, "big", &d) && d == 12345678901234567890.0);
	CHECK(json_num(v, "frac", &d) && d == 1.5);
	CHECK(json_num(v, "small", &d) && d == 42);
	CHECK(json_num(v, "total", &d) && d == 1.1);
	CHECK(!json_num(v, "inf", &d));
	CHECK(json_number(cJSON_GetObjectItemCaseSensitive(v, "exp"), &d) &&
	      d == 1000);
	CHECK(!json_number(cJSON_GetObjectItemCaseSensitive(v, "str"), &d));
	cJSON_Delete(v);
}

int main(void)
{
	test_round_trips();
	test_document_order();
	test_helpers();
	return harness_done("test_json");
}
