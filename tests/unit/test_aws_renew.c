/*
 * Unit tests for renewal, on a fake clock and a fake STS: the advisory and
 * mandatory windows (botocore's 15 and 10 minutes, scaled down for short
 * lifetimes), renewal exactly when due and not before, keeping valid keys
 * when an advisory renewal fails, failing once they expired, forced
 * renewal after ExpiredToken, single flight under concurrent callers,
 * re-reading rotated profile files, the status description, and
 * EventBridge's one renewal and one retry per walk. No network.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/source.h"
#include "fixture.h"
#include "harness.h"
#include "provider.h"

#define T0 1900000000.0

static double fake_time = T0;
static double lifetime = 3600;
static int sts_calls;
static int sts_status = 200;
static useconds_t sts_delay;
static pthread_mutex_t calls_lock = PTHREAD_MUTEX_INITIALIZER;

static double fake_now(void)
{
	return fake_time;
}

static int fake_sts(const struct http_req *req, struct http_resp *resp,
		    void *arg)
{
	char exp[32], body[1024];
	time_t t = (time_t)(fake_time + lifetime);
	int n;

	(void)arg;
	(void)req;
	if (sts_delay)
		usleep(sts_delay);
	pthread_mutex_lock(&calls_lock);
	n = ++sts_calls;
	pthread_mutex_unlock(&calls_lock);
	strftime(exp, sizeof(exp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	if (sts_status != 200) {
		resp_text(resp, sts_status, "<ErrorResponse><Error><Code>"
			  "ServiceUnavailable</Code><Message>down</Message>"
			  "</Error></ErrorResponse>");
		return 0;
	}
	snprintf(body, sizeof(body), "<AssumeRoleResponse><AssumeRoleResult>"
		 "<Credentials><AccessKeyId>ASIA%d</AccessKeyId>"
		 "<SecretAccessKey>s%d</SecretAccessKey><SessionToken>t%d"
		 "</SessionToken><Expiration>%s</Expiration></Credentials>"
		 "</AssumeRoleResult></AssumeRoleResponse>", n, n, n, exp);
	resp_text(resp, 200, body);
	return 0;
}

static char dir[] = "/tmp/connfs-renew-XXXXXX";
static char cred[300], conf[300];

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void setup(void)
{
	if (!mkdtemp(dir))
		return;
	snprintf(cred, sizeof(cred), "%s/credentials", dir);
	snprintf(conf, sizeof(conf), "%s/config", dir);
	write_text(cred, "[base]\naws_access_key_id = AKIABASE\n"
		   "aws_secret_access_key = basesecret\n");
	write_text(conf, "[profile prod]\nrole_arn = arn:aws:iam::1:role/p\n"
		   "source_profile = base\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_PROFILE");
	aws_set_clock(fake_now);
	http_set_transport(fake_sts, NULL);
}

static struct aws_resolver *resolver(const char *profile)
{
	struct aws_resolver *r = NULL;
	char err[300];

	CHECK_INT(aws_resolver_new(profile, &r, err, sizeof(err)), 0);
	if (r)
		CHECK_INT(aws_resolver_set_endpoints(r, "us-east-1",
						     "http://127.0.0.1:9",
						     NULL, NULL), 0);
	return r;
}

/* The access key get() returns now, or "" on failure. */
static const char *key_now(struct aws_resolver *r, int *rc)
{
	static char key[64];
	struct aws_creds c;
	char err[300];

	*rc = aws_resolver_get(r, &c, err, sizeof(err));
	snprintf(key, sizeof(key), "%s", c.access_key ? c.access_key : "");
	aws_creds_release(&c);
	return key;
}

static void test_windows(void)
{
	double a, m;

	aws_refresh_windows(3600, &a, &m);
	CHECK(a == 900 && m == 600);
	aws_refresh_windows(43200, &a, &m);
	CHECK(a == 900 && m == 600);
	aws_refresh_windows(900, &a, &m);	/* the shortest STS session */
	CHECK(a == 300 && m == 225);
	aws_refresh_windows(5, &a, &m);
	CHECK(fabs(a - 5.0 / 3) < 1e-9 && m == 1.25);
	aws_refresh_windows(-1, &a, &m);
	CHECK(a == 0 && m == 0);
}

static void test_renew_when_due(void)
{
	struct aws_resolver *r;
	char d[400];
	int rc;

	fake_time = T0;
	lifetime = 3600;
	sts_calls = 0;
	sts_status = 200;
	r = resolver("prod");
	if (!r)
		return;
	CHECK_INT(sts_calls, 0);	/* no network when configuring */
	aws_resolver_describe(r, d, sizeof(d));
	CHECK_STR(d, "assume-role prod -> source_profile base (static keys), "
		  "not fetched yet");
	CHECK_STR(key_now(r, &rc), "ASIA1");
	CHECK_INT(rc, 0);
	aws_resolver_describe(r, d, sizeof(d));
	CHECK_STR(d, "assume-role prod -> source_profile base (static keys), "
		  "expires in 60 min");
	/* Reused until 15 minutes before expiry. */
	fake_time = T0 + 3600 - 901;
	CHECK_STR(key_now(r, &rc), "ASIA1");
	CHECK_INT(sts_calls, 1);
	fake_time = T0 + 3600 - 899;
	CHECK_STR(key_now(r, &rc), "ASIA2");
	CHECK_INT(sts_calls, 2);
	CHECK_INT(aws_resolver_fetches(r), 2);

	/* Advisory renewal fails: keep the valid keys, say so. */
	sts_status = 503;
	fake_time = T0 + 2 * 3600 - 899 - 800;
	CHECK_STR(key_now(r, &rc), "ASIA2");
	CHECK_INT(rc, 0);
	CHECK_INT(sts_calls, 3);
	aws_resolver_describe(r, d, sizeof(d));
	CHECK(strstr(d, "expires in 13 min; last renewal failed: STS "
		     "AssumeRole: ServiceUnavailable: down (HTTP 503)"));
	/* Expired and STS still down: an error, no keys. */
	fake_time = T0 + 3 * 3600;
	CHECK_STR(key_now(r, &rc), "");
	CHECK_INT(rc, -EIO);
	/* STS back: renewed at the next get. */
	sts_status = 200;
	CHECK_STR(key_now(r, &rc), "ASIA5");
	CHECK_INT(rc, 0);

	/* The service said they expired: renewed although fresh. */
	aws_resolver_expire(r);
	CHECK_STR(key_now(r, &rc), "ASIA6");
	CHECK_STR(key_now(r, &rc), "ASIA6");
	CHECK_INT(sts_calls, 6);
	aws_resolver_free(r);
}

static void test_short_lifetimes(void)
{
	struct aws_resolver *r;
	int rc;

	fake_time = T0;
	lifetime = 5;
	sts_calls = 0;
	r = resolver("prod");
	if (!r)
		return;
	CHECK_STR(key_now(r, &rc), "ASIA1");
	/* STS times are whole seconds: expiry T0 + 5; advisory 5/3 s. */
	fake_time = T0 + 3.2;
	CHECK_STR(key_now(r, &rc), "ASIA1");
	fake_time = T0 + 3.5;
	CHECK_STR(key_now(r, &rc), "ASIA2");
	/* Ten lifetimes of repeated use: renewed each time, never expired. */
	for (int i = 0; i < 100; i++) {
		fake_time += 0.5;
		CHECK(strcmp(key_now(r, &rc), "") != 0);
	}
	CHECK(sts_calls >= 10 && sts_calls <= 20);
	aws_resolver_free(r);
	lifetime = 3600;
}

struct racer {
	struct aws_resolver *r;
	char key[32];
};

static void *race(void *arg)
{
	struct racer *x = arg;
	struct aws_creds c;
	char err[300];

	if (aws_resolver_get(x->r, &c, err, sizeof(err)) == 0)
		snprintf(x->key, sizeof(x->key), "%s", c.access_key);
	aws_creds_release(&c);
	return NULL;
}

static void test_single_flight(void)
{
	struct racer x[8];
	pthread_t t[8];
	struct aws_resolver *r;

	fake_time = T0;
	sts_calls = 0;
	sts_delay = 100000;
	r = resolver("prod");
	if (!r)
		return;
	for (int i = 0; i < 8; i++) {
		x[i].r = r;
		x[i].key[0] = '\0';
		pthread_create(&t[i], NULL, race, &x[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_STR(x[i].key, "ASIA1");
	}
	CHECK_INT(sts_calls, 1);
	sts_delay = 0;
	aws_resolver_free(r);
}

static void test_rotated_files(void)
{
	struct aws_resolver *r;
	int rc;

	sts_calls = 0;
	r = resolver("base");
	if (!r)
		return;
	CHECK_STR(key_now(r, &rc), "AKIABASE");
	CHECK_STR(key_now(r, &rc), "AKIABASE");
	write_text(cred, "[base]\naws_access_key_id = AKIAROTATED\n"
		   "aws_secret_access_key = rotatedsecret\n");
	CHECK_STR(key_now(r, &rc), "AKIAROTATED");
	/* Caught half-written: the last good keys, until it is whole. */
	write_text(cred, "[base]\naws_access_key_id = AKIAHALF\n");
	CHECK_STR(key_now(r, &rc), "AKIAROTATED");
	CHECK_INT(rc, 0);
	write_text(cred, "[base]\naws_access_key_id = AKIABASE\n"
		   "aws_secret_access_key = basesecret\n");
	CHECK_STR(key_now(r, &rc), "AKIABASE");
	CHECK_INT(sts_calls, 0);
	aws_resolver_free(r);
}

static void test_env_expiry(void)
{
	struct aws_resolver *r;
	char err[300];
	int rc;

	fake_time = T0;
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_CREDENTIAL_EXPIRATION", "2030-03-17T17:48:20Z", 1);
	r = resolver(NULL);
	if (r) {
		CHECK_STR(key_now(r, &rc), "AKIAENV");
		fake_time = T0 + 100;
		CHECK_STR(key_now(r, &rc), "");
		CHECK_INT(rc, -EACCES);
	}
	aws_resolver_free(r);
	setenv("AWS_CREDENTIAL_EXPIRATION", "soon", 1);
	r = NULL;
	CHECK_INT(aws_resolver_new(NULL, &r, err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "AWS_CREDENTIAL_EXPIRATION") != NULL);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_CREDENTIAL_EXPIRATION");
}

extern const struct provider provider_eventbridge;

static void classify(void *st, const char *body, struct api_error *e)
{
	struct page_req pr = { .size = 100 };
	struct http_resp resp;

	resp_text(&resp, 400, body);
	memset(e, 0, sizeof(*e));
	e->cls = API_FATAL;
	provider_eventbridge.classify_error(st, &pr, &resp, e);
	http_resp_release(&resp);
}

static void test_eventbridge_expired_token(void)
{
	const struct provider *P = &provider_eventbridge;
	static const char expired[] = "{\"__type\":\"ExpiredTokenException\","
				      "\"message\":\"The security token "
				      "included in the request is expired\"}";
	struct http_req req = { 0 };
	struct page_req pr = { .size = 100 };
	struct api_error e;
	struct sect t;
	char err[CONF_ERRLEN];
	void *st = NULL;

	fake_time = T0;
	sts_calls = 0;
	sect_init(&t, "eb", NULL, 1);
	sect_set(&t, "profile", "prod");
	sect_set(&t, "region", "us-east-1");
	setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9", 1);
	CHECK_INT(P->configure(&t.s, "http://127.0.0.1:8", &st, err), 0);
	if (!st)
		return;
	CHECK_INT(P->begin_walk(st, err, sizeof(err)), 0);
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.userpwd, "ASIA1:s1");
	CHECK_STR(http_req_get_header(&req, "X-Amz-Security-Token"), "t1");
	http_req_release(&req);
	/* First ExpiredToken of a walk: renew and retry the page. */
	classify(st, expired, &e);
	CHECK_INT(e.cls, API_RETRY);
	CHECK_STR(e.code, "ExpiredTokenException");
	CHECK_INT(sts_calls, 1);	/* renewal waits for the retry */
	CHECK_INT(P->build_list(st, &pr, &req), 0);
	CHECK_STR(req.userpwd, "ASIA2:s2");
	http_req_release(&req);
	CHECK_INT(sts_calls, 2);
	/* A second one in the same walk is a real refusal. */
	classify(st, expired, &e);
	CHECK_INT(e.cls, API_AUTH);
	classify(st, "{\"__type\":\"RequestExpired\"}", &e);
	CHECK_INT(e.cls, API_AUTH);
	/* The next walk may renew once again. */
	CHECK_INT(P->begin_walk(st, err, sizeof(err)), 0);
	classify(st, "{\"__type\":\"RequestExpired\"}", &e);
	CHECK_INT(e.cls, API_RETRY);
	P->describe_auth(st, err, sizeof(err));
	CHECK_STR(err, "assume-role prod -> source_profile base (static keys), "
		  "expires in 60 min");
	P->release(st);
	unsetenv("AWS_ENDPOINT_URL_STS");
}

static void cleanup(void)
{
	unlink(cred);
	unlink(conf);
	rmdir(dir);
	http_set_transport(NULL, NULL);
	aws_set_clock(NULL);
}

int main(void)
{
	setup();
	test_windows();
	test_renew_when_due();
	test_short_lifetimes();
	test_single_flight();
	test_rotated_files();
	test_env_expiry();
	test_eventbridge_expired_token();
	cleanup();
	return harness_done("test_aws_renew");
}
