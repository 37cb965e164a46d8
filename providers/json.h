/*
 * Small cJSON helpers shared by the providers: tolerant field access
 * ("number or numeric string", open enums), timestamps, and parsing a body
 * safely (thread-safe: never touches cJSON_GetErrorPtr).
 */
#ifndef CONNFS_JSON_H
#define CONNFS_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/*
 * Parses len bytes; NULL if not exactly one JSON value. Every number whose
 * digits cJSON would print differently (beyond int, fractions, exponents,
 * -0) is a cJSON_Raw node holding the literal as the text had it, with
 * valuedouble/valueint set as for a number: read numbers with
 * json_number(), never cJSON_IsNumber() alone.
 */
cJSON *json_parse(const char *text, size_t len);
/* A JSON number node (plain or Raw from json_parse) and its value. */
bool json_number(const cJSON *v, double *out);

/* Object member as a string (NULL if absent or not a string). */
const char *json_str(const cJSON *obj, const char *key);
/*
 * Member as an identifier string: a string, an integer literal exactly as
 * written (any size), or another integral number below 2^53 printed in
 * decimal (into buf). NULL if absent or of another type.
 */
const char *json_id(const cJSON *obj, const char *key, char *buf, size_t len);
/* Member as a number: JSON number or numeric string. */
bool json_num(const cJSON *obj, const char *key, double *out);

/* RFC 3339 (Z or +hh:mm, 0-9 fraction digits) to UTC; false if invalid. */
bool json_time_rfc3339(const char *s, struct timespec *out);
/*
 * The first of keys (NULL-terminated) holding an RFC 3339 time: an update
 * time before a creation time, say. false, out untouched, if none does.
 */
bool json_time_first(const cJSON *obj, const char *const *keys,
		     struct timespec *out);
/*
 * 0 if every element of list is an object with an id under key; else
 * -EPROTO and "NAME: connection I of page P is not an object|has no id".
 * Lets a parser refuse a page before handing any entry over.
 */
int json_check_ids(const cJSON *list, const char *key, const char *name,
		   unsigned long page, char *err, size_t errlen);
/* Epoch seconds (possibly fractional, exponent form) to a timespec. */
bool json_time_epoch(double secs, struct timespec *out);

#endif
