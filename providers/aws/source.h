/*
 * What the AWS credential sources share inside providers/aws/: the profile
 * files as parsed INI, the chain of sources as a tree of nodes (an assumed
 * role points at the node its source credentials come from), the fetch
 * context and one fetch function per source file. The resolver owns the
 * tree; only the thread that holds the resolver's renewal turn fetches, so
 * nodes need no locks. Nothing here may log a secret.
 */
#ifndef CONNFS_AWS_SOURCE_H
#define CONNFS_AWS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "aws.h"
#include "http.h"

/* --- ini.c: the shared credentials and config files ------------------- */

struct aws_ini_kv {
	char *key;		/* lower case */
	char *value;
};

struct aws_ini_sec {
	char *name;		/* "default", "profile x", ... */
	struct aws_ini_kv *kv;
	size_t n, cap;
};

struct aws_ini {
	struct aws_ini_sec *sec;
	size_t n, cap;
};

/* Parses INI text (pure). -ENOMEM only: bad lines are skipped. */
int aws_ini_parse(struct aws_ini *ini, const char *text);
/* Loads a file; a missing file is an empty INI. */
int aws_ini_load(struct aws_ini *ini, const char *path);
const struct aws_ini_sec *aws_ini_find(const struct aws_ini *ini,
				       const char *name);
const char *aws_ini_get(const struct aws_ini_sec *s, const char *key);
void aws_ini_release(struct aws_ini *ini);

/* Both files, with profile lookups as botocore merges them. */
struct aws_profiles {
	struct aws_ini cred;	/* [NAME] */
	struct aws_ini conf;	/* [profile X], [default], [sso-session X] */
};

/* The credentials file section of profile, or NULL. */
const struct aws_ini_sec *aws_profile_cred(const struct aws_profiles *p,
					   const char *profile);
/* The config file section of profile, or NULL. */
const struct aws_ini_sec *aws_profile_conf(const struct aws_profiles *p,
					   const char *profile);
/* A profile key, credentials file first; NULL or "" when unset. */
const char *aws_profile_get(const struct aws_profiles *p, const char *profile,
			    const char *key);
bool aws_profile_exists(const struct aws_profiles *p, const char *profile);
void aws_profiles_release(struct aws_profiles *p);

/* Path of ~/.aws/NAME unless the variable names another; new string. */
char *aws_file_path(const char *env, const char *name);

/* Identity of a file's contents as seen by stat(); all zero if absent. */
struct aws_filesig {
	dev_t dev;
	ino_t ino;
	off_t size;
	long long mtime_ns;
	bool present;
};

void aws_filesig_of(const char *path, struct aws_filesig *sig);
bool aws_filesig_equal(const struct aws_filesig *a,
		       const struct aws_filesig *b);

/* --- the chain ---------------------------------------------------------- */

enum aws_kind {
	AWS_SRC_ENV,		/* env.c */
	AWS_SRC_STATIC,		/* profile.c: keys in a profile */
	AWS_SRC_PROCESS,	/* process.c: credential_process */
	AWS_SRC_ASSUME,		/* assume.c: sts:AssumeRole */
	AWS_SRC_WEBID,		/* webid.c: AssumeRoleWithWebIdentity */
	AWS_SRC_SSO,		/* sso.c: IAM Identity Center */
	AWS_SRC_CONTAINER,	/* container.c: ECS / EKS Pod Identity */
	AWS_SRC_IMDS,		/* imds.c: EC2 instance metadata, IMDSv2 */
};

struct aws_node {
	enum aws_kind kind;
	char *profile;		/* profile it came from, NULL for env */
	const char *file;	/* STATIC: "credentials" or "config" */
	struct aws_creds keys;	/* ENV, STATIC: the keys themselves */
	char *role_arn;		/* ASSUME, WEBID */
	char *external_id;	/* ASSUME */
	char *session_name;	/* ASSUME, WEBID */
	long duration;		/* ASSUME, WEBID: seconds; 0: default */
	char *token_file;	/* WEBID: re-read at every fetch */
	char *via;		/* ASSUME: "source_profile base", ... */
	struct aws_node *source;	/* ASSUME: the source keys */
	char *command;		/* PROCESS */
	char *sso_session;	/* SSO: session name (NULL: legacy) */
	char *sso_start_url;
	char *sso_region;
	char *sso_account;
	char *sso_role;
	char *url;		/* CONTAINER: full URL; IMDS: base URL */
	char *auth_file;	/* CONTAINER: token file, re-read each time */
	char *auth_token;	/* CONTAINER: literal token (a secret) */
	char *role;		/* IMDS: the role found, for messages */
	struct aws_creds cur;	/* last fetched, reused inside a chain */
};

void aws_node_free(struct aws_node *n);

/* What a fetch needs besides its node. */
struct aws_ctx {
	struct http_client *http;
	char *region;		/* STS region */
	char *sts_url;		/* STS base URL */
	char *sso_url;		/* SSO portal override, or NULL */
	char *oidc_url;		/* SSO OIDC override, or NULL */
};

/*
 * Fetches fresh credentials for n (a chain fetches its source first).
 * Messages never contain secrets.
 */
int aws_fetch(struct aws_ctx *ctx, struct aws_node *n, struct aws_creds *out,
	      char *err, size_t errlen);

/*
 * chain.c: builds the tree for a profile (see aws.h). explicit means the
 * profile was named in the section: environment keys and the web-identity
 * variables are then not used.
 */
int aws_chain_build(const struct aws_profiles *p, const char *profile,
		    bool explicit, struct aws_node **out, char *err,
		    size_t errlen);
/* "assume-role prod -> source_profile base (static keys)". */
void aws_chain_describe(const struct aws_node *n, char *buf, size_t len);

/* The sources. Each returns 0 or a negative errno with err set. */
int aws_env_node(struct aws_node **out, char *err, size_t errlen);
int aws_static_node(const struct aws_ini_sec *s, const char *profile,
		    const char *file, struct aws_node **out, char *err,
		    size_t errlen);
int aws_assume_fetch(struct aws_ctx *ctx, struct aws_node *n,
		     struct aws_creds *out, char *err, size_t errlen);
int aws_webid_fetch(struct aws_ctx *ctx, struct aws_node *n,
		    struct aws_creds *out, char *err, size_t errlen);
int aws_sso_fetch(struct aws_ctx *ctx, struct aws_node *n,
		  struct aws_creds *out, char *err, size_t errlen);
int aws_process_fetch(struct aws_node *n, struct aws_creds *out, char *err,
		      size_t errlen);
int aws_container_node(struct aws_node **out, char *err, size_t errlen);
int aws_container_fetch(struct aws_ctx *ctx, struct aws_node *n,
			struct aws_creds *out, char *err, size_t errlen);
int aws_imds_node(struct aws_node **out);
int aws_imds_fetch(struct aws_ctx *ctx, struct aws_node *n,
		   struct aws_creds *out, char *err, size_t errlen);
/* placement/region into buf; -ENOENT when disabled or absent. */
int aws_imds_region(struct aws_ctx *ctx, char *buf, size_t len);
/* false when AWS_EC2_METADATA_DISABLED is true. */
bool aws_imds_enabled(void);

/*
 * resolver.c: how many seconds before expiry renewal becomes advisory and
 * mandatory, for credentials of the given lifetime (pure).
 */
void aws_refresh_windows(double lifetime, double *advisory,
			 double *mandatory);

/* The default session name, connfs-HOST-PID (64 characters at most). */
void aws_session_name(char *buf, size_t len);

/* sso.c: FIPS 180-4 SHA-1 of s in hex (cache file names). */
void aws_sso_cache_name(const char *s, char out[41]);

/* --- stsxml.c: the STS XML wire format ----------------------------------- */

/*
 * Text of the elements at the given slash-separated paths (from the root
 * element, namespace prefixes ignored), entities decoded. values[i] is a
 * new string or NULL when absent. -EPROTO if doc is not well-formed XML
 * (a DOCTYPE is refused), -ENOMEM.
 */
int aws_xml_get(const char *doc, size_t len, const char *const *paths,
		char **values, size_t n);
/*
 * An STS reply: the Credentials of ACTIONResult on 2xx, else the
 * ErrorResponse's Code and Message in err. -EACCES for errors the caller
 * cannot fix by retrying, -EIO otherwise.
 */
int aws_sts_parse(const char *action, long status, const char *body,
		  size_t len, struct aws_creds *out, char *err, size_t errlen);

/*
 * assume.c: POSTs an STS Query request (form is "Action=...&..." without
 * Version) to the STS endpoint, SigV4-signed with signer unless NULL, and
 * parses the reply. Never logs; messages carry no secret.
 */
struct buf;
/* Appends "&key=value", both percent-encoded, to a form body. */
int aws_form_add(struct buf *form, const char *key, const char *value);
int aws_sts_call(struct aws_ctx *ctx, const char *action, const char *form,
		 const struct aws_creds *signer, struct aws_creds *out,
		 char *err, size_t errlen);

/* --- process.c: the one command runner ------------------------------------ */

/* Splits a command line as POSIX shells quote words (no expansion). */
int aws_split_command(const char *cmd, char ***argv_out);
void aws_argv_free(char **argv);
/* How long a credential_process may take (10 s; a seam for tests). */
extern long aws_process_timeout_ms;
/* credential_process output (Version 1 JSON) into *out. */
int aws_process_parse(const char *out_text, struct aws_creds *out, char *err,
		      size_t errlen);

/* --- creds: JSON documents shared by several sources -------------------- */

/*
 * Takes keys from a JSON object with the given member names (token and
 * expiry may be NULL); the expiry is RFC 3339. -EPROTO with err naming the
 * missing member.
 */
int aws_creds_from_json(const char *body, size_t len, const char *key_name,
			const char *secret_name, const char *token_name,
			const char *expiry_name, struct aws_creds *out,
			const char *what, char *err, size_t errlen);
/* Wipes the strings of a parsed document (two levels) and frees it. */
struct cJSON;
void aws_json_free(struct cJSON *root);
/* RFC 3339 to epoch seconds; -EINVAL if invalid. */
int aws_parse_time(const char *s, time_t *out);
/* Reads a small file (token files) into a new string without trailing
 * white space; -errno. The content is treated as a secret. */
int aws_read_token(const char *path, char **out);

#endif
