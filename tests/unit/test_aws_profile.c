/*
 * Unit tests for the AWS profile files and the chain built from them:
 * INI parsing as botocore reads it (comments, nested blocks, key case,
 * [profile x] and [default], [sso-session x]), the order of sources,
 * source_profile chains, loops and self references, credential_source,
 * mfa_serial refusal, web identity from the environment and from the
 * profile, SSO validation, the descriptions shown in status, command-line
 * splitting and credential_process output. No network, no processes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/source.h"
#include "harness.h"

static const char *const vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_SECURITY_TOKEN", "AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", NULL,
};

static void clear_env(void)
{
	for (size_t i = 0; vars[i]; i++)
		unsetenv(vars[i]);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void load(struct aws_profiles *p, const char *cred, const char *conf)
{
	CHECK_INT(aws_ini_parse(&p->cred, cred), 0);
	CHECK_INT(aws_ini_parse(&p->conf, conf), 0);
}

/* Builds the chain; returns rc and leaves the description in desc. */
static int chain(const char *cred, const char *conf, const char *profile,
		 bool explicit, char *desc, size_t len, char *err)
{
	struct aws_profiles p;
	struct aws_node *n = NULL;
	int rc;

	load(&p, cred, conf);
	err[0] = desc[0] = '\0';
	rc = aws_chain_build(&p, profile, explicit, &n, err, 300);
	if (!rc && n)
		aws_chain_describe(n, desc, len);
	else if (!rc)
		snprintf(desc, len, "(none)");
	aws_node_free(n);
	aws_profiles_release(&p);
	return rc;
}

static void test_ini(void)
{
	struct aws_ini ini;
	const struct aws_ini_sec *s;

	CHECK_INT(aws_ini_parse(&ini,
		"# comment\n"
		"; another\n"
		"[default]\n"
		"Region = us-west-2\n"
		"aws_access_key_id=AKIADEFAULT\r\n"
		"s3 =\n"
		"  max_concurrent_requests = 20\n"
		"region = ignored-second-value\n"
		"[ profile   prod ]\n"
		"role_arn = arn:aws:iam::1:role/x # not a comment\n"
		"[sso-session corp]\n"
		"sso_start_url = https://corp.example/start\n"
		"not a key line\n"
		"[broken\n"
		"orphan = 1\n"), 0);
	CHECK_INT(ini.n, 3);
	s = aws_ini_find(&ini, "default");
	CHECK_STR(aws_ini_get(s, "region"), "us-west-2");
	CHECK_STR(aws_ini_get(s, "REGION"), "us-west-2");
	CHECK_STR(aws_ini_get(s, "aws_access_key_id"), "AKIADEFAULT");
	CHECK_STR(aws_ini_get(s, "s3"), "");
	CHECK(aws_ini_get(s, "max_concurrent_requests") == NULL);
	s = aws_ini_find(&ini, "profile prod");
	CHECK_STR(aws_ini_get(s, "role_arn"),
		  "arn:aws:iam::1:role/x # not a comment");
	s = aws_ini_find(&ini, "sso-session corp");
	CHECK_STR(aws_ini_get(s, "sso_start_url"),
		  "https://corp.example/start");
	CHECK(aws_ini_get(s, "orphan") == NULL);
	aws_ini_release(&ini);

	/* A missing file is an empty one. */
	CHECK_INT(aws_ini_load(&ini, "/nonexistent/connfs/credentials"), 0);
	CHECK_INT(ini.n, 0);
	aws_ini_release(&ini);
}

static void test_profile_lookup(void)
{
	struct aws_profiles p;

	load(&p, "[prod]\naws_access_key_id = AKIACRED\nregion = eu-west-1\n",
	     "[profile prod]\nregion = eu-central-1\noutput = json\n"
	     "[default]\nregion = us-east-2\n"
	     "[prod2]\nregion = never\n");
	/* The credentials file wins, then the config file fills in. */
	CHECK_STR(aws_profile_get(&p, "prod", "region"), "eu-west-1");
	CHECK_STR(aws_profile_get(&p, "prod", "output"), "json");
	CHECK_STR(aws_profile_get(&p, "default", "region"), "us-east-2");
	/* [prod2] in the config file is not a profile (no "profile "). */
	CHECK(!aws_profile_exists(&p, "prod2"));
	CHECK(aws_profile_exists(&p, "prod"));
	aws_profiles_release(&p);
}

static void test_order(void)
{
	static const char cred[] =
		"[base]\naws_access_key_id = AKIABASE\n"
		"aws_secret_access_key = basesecret\n"
		"[both]\naws_access_key_id = AKIABOTH\n"
		"aws_secret_access_key = s\n";
	static const char conf[] =
		"[profile prod]\nrole_arn = arn:aws:iam::1:role/prod\n"
		"source_profile = base\n"
		"[profile both]\ncredential_process = /bin/creds\n"
		"[profile proc]\ncredential_process = /bin/creds --json\n"
		"aws_access_key_id = AKIACONF\naws_secret_access_key = c\n"
		"[profile conf]\naws_access_key_id = AKIACONF\n"
		"aws_secret_access_key = c\n";
	char d[300], err[300];

	clear_env();
	/* Environment keys first ... */
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	CHECK_INT(chain(cred, conf, "prod", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "environment (AWS_ACCESS_KEY_ID)");
	/* ... unless the section names the profile. */
	CHECK_INT(chain(cred, conf, "prod", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role prod -> source_profile base (static keys)");
	/* A key without its secret is an error, not a skip. */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_INT(chain(cred, conf, "prod", false, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "AWS_SECRET_ACCESS_KEY") != NULL);
	clear_env();

	/* Shared credentials file, then credential_process, then config. */
	CHECK_INT(chain(cred, conf, "both", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "profile both (static keys, credentials file)");
	CHECK_INT(chain(cred, conf, "proc", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "credential_process of profile proc");
	CHECK_INT(chain(cred, conf, "conf", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "profile conf (static keys, config file)");

	/* Nothing configured and IMDS disabled: no source. */
	CHECK_INT(chain(cred, conf, "nobody", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "(none)");
	/* Container variables come before instance metadata. */
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x",
	       1);
	CHECK_INT(chain(cred, conf, "nobody", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "container credentials "
		  "(http://169.254.170.2/v2/credentials/x)");
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	unsetenv("AWS_EC2_METADATA_DISABLED");
	CHECK_INT(chain(cred, conf, "nobody", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "EC2 instance metadata");
	clear_env();
}

static void test_source_profile_chains(void)
{
	static const char cred[] =
		"[base]\naws_access_key_id = AKIABASE\n"
		"aws_secret_access_key = basesecret\n";
	static const char conf[] =
		"[profile a]\nrole_arn = arn:aws:iam::1:role/a\n"
		"source_profile = b\n"
		"[profile b]\nrole_arn = arn:aws:iam::1:role/b\n"
		"source_profile = c\n"
		"[profile c]\nrole_arn = arn:aws:iam::1:role/c\n"
		"source_profile = base\n"
		"[profile x]\nrole_arn = arn:aws:iam::1:role/x\n"
		"source_profile = y\n"
		"[profile y]\nrole_arn = arn:aws:iam::1:role/y\n"
		"source_profile = z\n"
		"[profile z]\nrole_arn = arn:aws:iam::1:role/z\n"
		"source_profile = x\n"
		"[profile self]\nrole_arn = arn:aws:iam::1:role/s\n"
		"source_profile = self\naws_access_key_id = AKIASELF\n"
		"aws_secret_access_key = selfsecret\n"
		"[profile selfloop]\nrole_arn = arn:aws:iam::1:role/s\n"
		"source_profile = selfloop\n"
		"[profile keysrole]\nrole_arn = arn:aws:iam::1:role/k\n"
		"source_profile = keyed\n"
		"[profile keyed]\nrole_arn = arn:aws:iam::1:role/ignored\n"
		"source_profile = a\naws_access_key_id = AKIAK\n"
		"aws_secret_access_key = k\n"
		"[profile empty]\nrole_arn = arn:aws:iam::1:role/e\n"
		"source_profile = nokeys\n"
		"[profile nokeys]\nregion = eu-west-1\n";
	char d[300], err[300];

	clear_env();
	CHECK_INT(chain(cred, conf, "a", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role a -> source_profile b (assume-role b -> "
		  "source_profile c (assume-role c -> source_profile base "
		  "(static keys)))");
	CHECK_INT(chain(cred, conf, "x", true, d, sizeof(d), err), -EINVAL);
	CHECK_STR(err, "source_profile loop: x -> y -> z -> x");
	/* A profile may use its own keys as the source ... */
	CHECK_INT(chain(cred, conf, "self", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role self -> source_profile self (static keys)");
	/* ... but not itself without keys. */
	CHECK_INT(chain(cred, conf, "selfloop", true, d, sizeof(d), err),
		  -EINVAL);
	CHECK_STR(err, "source_profile loop: selfloop -> selfloop");
	/* A source with keys uses them, not its own role_arn. */
	CHECK_INT(chain(cred, conf, "keysrole", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role keysrole -> source_profile keyed "
		  "(static keys)");
	CHECK_INT(chain(cred, conf, "empty", true, d, sizeof(d), err), -EINVAL);
	CHECK_STR(err, "profile empty: source_profile nokeys has no "
		  "credentials");
}

static void test_assume_role_options(void)
{
	static const char conf[] =
		"[profile env]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Environment\n"
		"[profile ecs]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = EcsContainer\n"
		"[profile ec2]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Ec2InstanceMetadata\n"
		"[profile bad]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Laptop\n"
		"[profile two]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Environment\nsource_profile = env\n"
		"[profile mfa]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Environment\n"
		"mfa_serial = arn:aws:iam::1:mfa/me\n"
		"[profile dur]\nrole_arn = arn:aws:iam::1:role/e\n"
		"credential_source = Ec2InstanceMetadata\n"
		"duration_seconds = 60\n"
		"[profile opts]\nrole_arn = arn:aws:iam::1:role/o\n"
		"credential_source = Ec2InstanceMetadata\n"
		"duration_seconds = 3600\nexternal_id = ext\n"
		"role_session_name = mine\n";
	struct aws_profiles p;
	struct aws_node *n = NULL;
	char d[300], err[300], def[80];

	clear_env();
	CHECK_INT(chain("", conf, "env", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "credential_source Environment, but "
		     "AWS_ACCESS_KEY_ID is not set") != NULL);
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
	CHECK_INT(chain("", conf, "env", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role env -> credential_source Environment "
		  "(environment keys)");
	CHECK_INT(chain("", conf, "ecs", true, d, sizeof(d), err), -EINVAL);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
	       "http://169.254.170.23/v1/credentials", 1);
	CHECK_INT(chain("", conf, "ecs", true, d, sizeof(d), err), 0);
	/* Plain http to another host would carry the token in clear. */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
	       "http://169.254.170.23.evil.example/x", 1);
	CHECK_INT(chain("", conf, "ecs", true, d, sizeof(d), err), -EINVAL);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
	       "http://[fd00:ec2::23]/v1/credentials", 1);
	CHECK_INT(chain("", conf, "ecs", true, d, sizeof(d), err), 0);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://creds.example/x",
	       1);
	CHECK_INT(chain("", conf, "ecs", true, d, sizeof(d), err), 0);
	CHECK_INT(chain("", conf, "ec2", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "assume-role ec2 -> credential_source "
		  "Ec2InstanceMetadata (EC2 instance metadata)");
	CHECK_INT(chain("", conf, "bad", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "'Laptop' is not Environment, Ec2InstanceMetadata "
		     "or EcsContainer") != NULL);
	CHECK_INT(chain("", conf, "two", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "exactly one of source_profile and "
		     "credential_source") != NULL);
	CHECK_INT(chain("", conf, "mfa", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "mfa_serial") && strstr(err, "credential_process"));
	CHECK_INT(chain("", conf, "dur", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "duration_seconds '60'") != NULL);

	load(&p, "", conf);
	CHECK_INT(aws_chain_build(&p, "opts", true, &n, err, sizeof(err)), 0);
	if (n) {
		CHECK_INT(n->kind, AWS_SRC_ASSUME);
		CHECK_STR(n->role_arn, "arn:aws:iam::1:role/o");
		CHECK_STR(n->external_id, "ext");
		CHECK_STR(n->session_name, "mine");
		CHECK_INT(n->duration, 3600);
	}
	aws_node_free(n);
	n = NULL;
	CHECK_INT(aws_chain_build(&p, "ec2", true, &n, err, sizeof(err)), 0);
	aws_session_name(def, sizeof(def));
	CHECK(strncmp(def, "connfs-", 7) == 0 && strlen(def) <= 64);
	if (n) {
		CHECK_STR(n->session_name, def);
		CHECK(n->external_id == NULL && n->duration == 0);
	}
	aws_node_free(n);
	aws_profiles_release(&p);
	clear_env();
}

static void test_web_identity(void)
{
	static const char conf[] =
		"[profile irsa]\nrole_arn = arn:aws:iam::1:role/p\n"
		"web_identity_token_file = /var/run/token\n"
		"[profile norole]\nweb_identity_token_file = /t\n";
	struct aws_profiles p;
	struct aws_node *n = NULL;
	char d[300], err[300];

	clear_env();
	CHECK_INT(chain("", conf, "irsa", false, d, sizeof(d), err), 0);
	CHECK_STR(d, "web identity arn:aws:iam::1:role/p (token file "
		  "/var/run/token)");
	CHECK_INT(chain("", conf, "norole", false, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "AWS_ROLE_ARN") != NULL);

	/* The EKS variables win over the profile's keys ... */
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/eks/token", 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/eks", 1);
	setenv("AWS_ROLE_SESSION_NAME", "pod", 1);
	load(&p, "", conf);
	CHECK_INT(aws_chain_build(&p, "irsa", false, &n, err, sizeof(err)), 0);
	if (n) {
		CHECK_STR(n->token_file, "/eks/token");
		CHECK_STR(n->role_arn, "arn:aws:iam::1:role/eks");
		CHECK_STR(n->session_name, "pod");
	}
	aws_node_free(n);
	n = NULL;
	/* ... unless the section names the profile. */
	CHECK_INT(aws_chain_build(&p, "irsa", true, &n, err, sizeof(err)), 0);
	if (n)
		CHECK_STR(n->token_file, "/var/run/token");
	aws_node_free(n);
	aws_profiles_release(&p);
	clear_env();
}

static void test_sso(void)
{
	static const char conf[] =
		"[profile dev]\nsso_session = corp\nsso_account_id = 1111\n"
		"sso_role_name = ReadOnly\n"
		"[sso-session corp]\nsso_start_url = https://corp/start\n"
		"sso_region = eu-west-1\n"
		"[profile legacy]\nsso_start_url = https://old/start\n"
		"sso_region = us-east-1\nsso_account_id = 2222\n"
		"sso_role_name = Admin\n"
		"[profile half]\nsso_session = corp\nsso_account_id = 1\n"
		"[profile lost]\nsso_session = gone\nsso_account_id = 1\n"
		"sso_role_name = r\n";
	struct aws_profiles p;
	struct aws_node *n = NULL;
	char d[300], err[300], hex[41];

	clear_env();
	CHECK_INT(chain("", conf, "dev", true, d, sizeof(d), err), 0);
	CHECK_STR(d, "SSO profile dev (account 1111, role ReadOnly)");
	CHECK_INT(chain("", conf, "half", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "sso_role_name") != NULL);
	CHECK_INT(chain("", conf, "lost", true, d, sizeof(d), err), -EINVAL);
	CHECK(strstr(err, "no [sso-session gone] section") != NULL);
	load(&p, "", conf);
	CHECK_INT(aws_chain_build(&p, "dev", true, &n, err, sizeof(err)), 0);
	if (n) {
		CHECK_STR(n->sso_start_url, "https://corp/start");
		CHECK_STR(n->sso_region, "eu-west-1");
		CHECK_STR(n->sso_session, "corp");
	}
	aws_node_free(n);
	n = NULL;
	CHECK_INT(aws_chain_build(&p, "legacy", true, &n, err, sizeof(err)),
		  0);
	if (n)
		CHECK(n->sso_session == NULL);
	aws_node_free(n);
	aws_profiles_release(&p);
	/* The cache file names of `aws sso login` (SHA-1, FIPS 180-4). */
	aws_sso_cache_name("", hex);
	CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
	aws_sso_cache_name("abc", hex);
	CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
	aws_sso_cache_name("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmn"
			   "omnopnopq", hex);
	CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void check_split(const char *cmd, const char *const *want)
{
	char **argv = NULL;
	size_t i;

	CHECK_INT(aws_split_command(cmd, &argv), 0);
	for (i = 0; argv && want[i]; i++)
		CHECK_STR(argv[i], want[i]);
	CHECK(argv && argv[i] == NULL);
	aws_argv_free(argv);
}

static void test_split(void)
{
	char **argv = NULL;

	check_split("/usr/bin/creds --profile prod",
		    (const char *[]){ "/usr/bin/creds", "--profile", "prod",
				      NULL });
	check_split("  tool 'two words' \"a \\\"q\\\" $x\" back\\ slash ",
		    (const char *[]){ "tool", "two words", "a \"q\" $x",
				      "back slash", NULL });
	check_split("a'b'\"c\"d ''", (const char *[]){ "abcd", "", NULL });
	check_split("x 'no \\escape'", (const char *[]){ "x", "no \\escape",
							 NULL });
	CHECK_INT(aws_split_command("tool 'unterminated", &argv), -EINVAL);
	CHECK(argv == NULL);
	CHECK_INT(aws_split_command("   ", &argv), -EINVAL);
}

static void test_process_output(void)
{
	struct aws_creds c;
	char err[300];

	CHECK_INT(aws_process_parse("{\"Version\": 1, \"AccessKeyId\": \"AK\","
				    " \"SecretAccessKey\": \"SK\", "
				    "\"SessionToken\": \"TOK\", \"Expiration\":"
				    " \"2030-01-02T03:04:05Z\"}", &c, err,
				    sizeof(err)), 0);
	CHECK_STR(c.access_key, "AK");
	CHECK_STR(c.secret_key, "SK");
	CHECK_STR(c.session_token, "TOK");
	CHECK_INT(c.expiration, 1893553445);
	aws_creds_release(&c);
	/* Long-term keys: no token, no expiry. */
	CHECK_INT(aws_process_parse("{\"Version\":1,\"AccessKeyId\":\"AK\","
				    "\"SecretAccessKey\":\"SK\"}", &c, err,
				    sizeof(err)), 0);
	CHECK(c.session_token == NULL && c.expiration == 0);
	aws_creds_release(&c);
	CHECK_INT(aws_process_parse("{\"Version\":2,\"AccessKeyId\":\"AK\","
				    "\"SecretAccessKey\":\"SK\"}", &c, err,
				    sizeof(err)), -EPROTO);
	CHECK(strstr(err, "Version") != NULL);
	CHECK_INT(aws_process_parse("{\"Version\":1,\"AccessKeyId\":\"AK\"}",
				    &c, err, sizeof(err)), -EPROTO);
	CHECK(strstr(err, "SecretAccessKey") != NULL);
	CHECK_INT(aws_process_parse("{\"Version\":1,\"AccessKeyId\":\"AK\","
				    "\"SecretAccessKey\":\"SECRETVALUE\","
				    "\"Expiration\":\"tomorrow\"}", &c, err,
				    sizeof(err)), -EPROTO);
	CHECK(strstr(err, "Expiration") != NULL);
	CHECK(strstr(err, "SECRETVALUE") == NULL);
	CHECK_INT(aws_process_parse("AccessKeyId=AK", &c, err, sizeof(err)),
		  -EPROTO);
}

static char tmp[] = "/tmp/connfs-proc-XXXXXX";

static int process(const char *script, struct aws_creds *c, char *err)
{
	char path[300], cmd[400];
	struct aws_node n = { .kind = AWS_SRC_PROCESS,
			      .profile = (char *)"p", .command = cmd };
	FILE *f;

	snprintf(path, sizeof(path), "%s/creds.sh", tmp);
	f = fopen(path, "w");
	if (!f)
		return -EIO;
	fprintf(f, "#!/bin/sh\n%s\n", script);
	fclose(f);
	chmod(path, 0700);
	snprintf(cmd, sizeof(cmd), "%s 'arg one' two", path);
	err[0] = '\0';
	return aws_fetch(NULL, &n, c, err, 300);
}

#define GOOD                                                            \
	"echo '{\"Version\":1,\"AccessKeyId\":\"AKP\","                    \
	"\"SecretAccessKey\":\"SKP\"}'"

static void test_process_run(void)
{
	struct aws_creds c;
	char err[300];
	sigset_t block, old;
	double t;

	if (!mkdtemp(tmp))
		return;
	CHECK_INT(process("[ \"$1\" = 'arg one' ] && [ \"$2\" = two ] || "
			  "exit 3\n" GOOD, &c, err), 0);
	CHECK_STR(c.access_key, "AKP");
	aws_creds_release(&c);
	CHECK_INT(process("echo 'not json'; exit 0", &c, err), -EIO);
	CHECK_INT(process("exit 4", &c, err), -EACCES);
	CHECK(strstr(err, "failed (exit status 4)") != NULL);
	/* Only 0-2, even with a descriptor the daemon forgot to mark. */
	CHECK_INT(dup2(2, 7), 7);
	CHECK_INT(process("[ -e /proc/self/fd/7 ] && exit 5\n" GOOD, &c, err),
		  0);
	aws_creds_release(&c);
	close(7);
	/* A clean signal mask although the calling thread blocks TERM. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	CHECK_INT(process("grep -q '^SigBlk:[[:space:]]*0*$' /proc/self/status"
			  " || exit 6\n" GOOD, &c, err), 0);
	aws_creds_release(&c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* A hanging command and its children are stopped at the limit. */
	aws_process_timeout_ms = 300;
	t = (double)time(NULL);
	CHECK_INT(process("sleep 30 & sleep 30", &c, err), -EIO);
	CHECK(strstr(err, "no answer within 0.3 s") != NULL);
	CHECK((double)time(NULL) - t < 10);
	aws_process_timeout_ms = 10000;
	CHECK_INT(process("", &c, err), -EIO);	/* no output */
}

int main(void)
{
	test_ini();
	test_profile_lookup();
	test_order();
	test_source_profile_chains();
	test_assume_role_options();
	test_web_identity();
	test_sso();
	test_split();
	test_process_output();
	test_process_run();
	return harness_done("test_aws_profile");
}
