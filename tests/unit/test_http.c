/*
 * Unit tests for the HTTP layer's policy (providers/http_policy.c) and the
 * guards of http_do() that act before any connection: URL host parsing,
 * loopback and metadata addresses, no_proxy matching (suffixes, leading
 * dots, "*", ports, IPv6, CIDR), the proxy chosen for a URL (never for
 * loopback even with http_proxy set), masking of user:password@, the CA
 * bundle check, the refusal of plain http:// to other hosts and
 * http_abort_all(). No network: every request here is refused before
 * libcurl connects.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "http.h"

static void test_url_host(void)
{
	char h[64];
	bool https;
	int port;

	CHECK_INT(http_url_host("https://API.Example.test/x", h, sizeof(h),
				&port, &https), 0);
	CHECK_STR(h, "api.example.test");
	CHECK_INT(port, 443);
	CHECK(https);
	CHECK_INT(http_url_host("http://127.0.0.1:8080", h, sizeof(h), &port,
				&https), 0);
	CHECK_STR(h, "127.0.0.1");
	CHECK_INT(port, 8080);
	CHECK(!https);
	CHECK_INT(http_url_host("http://[::1]:99/p", h, sizeof(h), &port,
				&https), 0);
	CHECK_STR(h, "::1");
	CHECK_INT(port, 99);
	CHECK_INT(http_url_host("http://u:p@proxy.corp:3128", h, sizeof(h),
				&port, &https), 0);
	CHECK_STR(h, "proxy.corp");
	CHECK_INT(port, 3128);
	CHECK_INT(http_url_host("http://host.:81", h, sizeof(h), &port,
				&https), 0);
	CHECK_STR(h, "host");
	CHECK_INT(http_url_host("ftp://x", h, sizeof(h), &port, &https),
		  -EINVAL);
	CHECK_INT(http_url_host("http://:80", h, sizeof(h), &port, &https),
		  -EINVAL);
	CHECK_INT(http_url_host("http://x:99999", h, sizeof(h), &port,
				&https), -EINVAL);
	CHECK_INT(http_url_host("http://[::1", h, sizeof(h), &port, &https),
		  -EINVAL);
}

static void test_never_proxied(void)
{
	CHECK(http_host_loopback("localhost"));
	CHECK(http_host_loopback("127.0.0.1"));
	CHECK(http_host_loopback("127.255.0.9"));
	CHECK(http_host_loopback("::1"));
	CHECK(!http_host_loopback("128.0.0.1"));
	CHECK(!http_host_loopback("localhost.example"));
	CHECK(http_host_never_proxied("169.254.169.254"));
	CHECK(http_host_never_proxied("169.254.170.2"));
	CHECK(http_host_never_proxied("169.254.170.23"));
	CHECK(http_host_never_proxied("fd00:ec2::254"));
	CHECK(http_host_never_proxied("fd00:ec2:0::23"));
	CHECK(http_host_never_proxied("::1"));
	CHECK(!http_host_never_proxied("169.254.169.253"));
	CHECK(!http_host_never_proxied("fd00:ec2::1"));
	CHECK(!http_host_never_proxied("api.example.test"));
}

static void test_no_proxy(void)
{
	CHECK(http_no_proxy_match("*", "anything.test", 443));
	CHECK(http_no_proxy_match("example.test", "example.test", 443));
	CHECK(http_no_proxy_match("example.test", "api.example.test", 443));
	CHECK(!http_no_proxy_match("example.test", "badexample.test", 443));
	CHECK(http_no_proxy_match(".example.test", "api.example.test", 443));
	CHECK(http_no_proxy_match(".example.test", "example.test", 443));
	CHECK(http_no_proxy_match("EXAMPLE.test.", "api.example.test", 443));
	CHECK(!http_no_proxy_match("api.example.test", "example.test", 443));
	CHECK(http_no_proxy_match("a.test, b.test ,c.test", "x.b.test", 1));
	CHECK(http_no_proxy_match("a.test b.test", "b.test", 1));
	CHECK(!http_no_proxy_match("a.test,,b.test", "c.test", 1));
	CHECK(!http_no_proxy_match("", "c.test", 1));
	CHECK(!http_no_proxy_match(NULL, "c.test", 1));
	/* Ports. */
	CHECK(http_no_proxy_match("example.test:8443", "example.test", 8443));
	CHECK(!http_no_proxy_match("example.test:8443", "example.test", 443));
	CHECK(http_no_proxy_match("10.1.2.3:443", "10.1.2.3", 443));
	CHECK(!http_no_proxy_match("10.1.2.3:443", "10.1.2.3", 80));
	/* Addresses and ranges. */
	CHECK(http_no_proxy_match("10.0.0.0/8", "10.200.3.4", 443));
	CHECK(!http_no_proxy_match("10.0.0.0/8", "11.0.0.1", 443));
	CHECK(http_no_proxy_match("192.168.1.7", "192.168.1.7", 443));
	CHECK(!http_no_proxy_match("192.168.1.7", "192.168.1.70", 443));
	CHECK(!http_no_proxy_match("1.2.3.4", "11.2.3.4", 443));
	CHECK(http_no_proxy_match("fd00::/8", "fdab::1", 443));
	CHECK(!http_no_proxy_match("fd00::/8", "fe80::1", 443));
	CHECK(http_no_proxy_match("2001:db8::1", "2001:db8:0::1", 443));
	CHECK(http_no_proxy_match("[2001:db8::1]:8443", "2001:db8::1", 8443));
	CHECK(!http_no_proxy_match("[2001:db8::1]:8443", "2001:db8::1", 443));
	CHECK(!http_no_proxy_match("2001:db8::1", "example.test", 443));
}

static void test_pick(void)
{
	struct http_proxy_env pe = {
		.https_proxy = "http://u:secret@127.0.0.1:3128",
		.http_proxy = "http://127.0.0.1:3129",
		.no_proxy = "internal.test",
	};
	char out[256];

	CHECK_INT(http_proxy_pick(&pe, "https://api.example.test/x", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "http://u:secret@127.0.0.1:3128");
	CHECK_INT(http_proxy_pick(&pe, "http://example.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "http://127.0.0.1:3129");
	/* Loopback and metadata: direct, whatever is set. */
	CHECK_INT(http_proxy_pick(&pe, "http://127.0.0.1:4566/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(http_proxy_pick(&pe, "https://localhost/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(http_proxy_pick(&pe, "http://[::1]:80/", out, sizeof(out)),
		  0);
	CHECK_STR(out, "");
	CHECK_INT(http_proxy_pick(&pe, "http://169.254.169.254/latest", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(http_proxy_pick(&pe, "http://[fd00:ec2::23]/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	/* no_proxy. */
	CHECK_INT(http_proxy_pick(&pe, "https://a.internal.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	/* The explicit setting wins; "none" turns proxies off. */
	pe.proxy = "https://proxy.corp:8443";
	CHECK_INT(http_proxy_pick(&pe, "https://api.example.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "https://proxy.corp:8443");
	CHECK_INT(http_proxy_pick(&pe, "https://a.internal.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	pe.proxy = "none";
	CHECK_INT(http_proxy_pick(&pe, "https://api.example.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	pe.proxy = NULL;
	pe.https_proxy = NULL;
	CHECK_INT(http_proxy_pick(&pe, "https://api.example.test/", out,
				  sizeof(out)), 0);
	CHECK_STR(out, "");
	CHECK_INT(http_proxy_pick(&pe, "gopher://x/", out, sizeof(out)),
		  -EINVAL);
	pe.https_proxy = "http://127.0.0.1:3128";
	CHECK_INT(http_proxy_pick(&pe, "https://api.example.test/", out, 8),
		  -ENAMETOOLONG);
	CHECK_INT(http_proxy_check("none"), 0);
	CHECK_INT(http_proxy_check("http://proxy:3128"), 0);
	CHECK_INT(http_proxy_check("https://u:p@proxy:3128/"), 0);
	CHECK_INT(http_proxy_check("socks5://proxy:1080"), -EINVAL);
	CHECK_INT(http_proxy_check("proxy:3128"), -EINVAL);
	CHECK_INT(http_proxy_check("http://proxy :3128"), -EINVAL);
}

static void test_redact(void)
{
	char s[200];

	strcpy(s, "via http://user:hunter2@127.0.0.1:3128 and "
	       "https://h/x@y and 'https://a:b@c/'");
	http_redact(s);
	CHECK_STR(s, "via http://***@127.0.0.1:3128 and https://h/x@y and "
		  "'https://***@c/'");
	CHECK(!strstr(s, "hunter2"));
	strcpy(s, "no url here");
	http_redact(s);
	CHECK_STR(s, "no url here");
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static void test_ca_check(void)
{
	char dir[] = "/tmp/connfs-test-http-XXXXXX", good[64], bad[64];
	char missing[64];
	char why[256];

	CHECK(mkdtemp(dir) != NULL);
	snprintf(good, sizeof(good), "%s/ca.pem", dir);
	snprintf(bad, sizeof(bad), "%s/not.pem", dir);
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	write_file(good, "junk\n-----BEGIN CERTIFICATE-----\nMIIB\n"
		   "-----END CERTIFICATE-----\n");
	write_file(bad, "just text\n");
	CHECK_INT(http_ca_check(good, why, sizeof(why)), 0);
	CHECK_INT(http_ca_check(bad, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "no PEM certificate") != NULL);
	CHECK_INT(http_ca_check(dir, why, sizeof(why)), -EINVAL);
	CHECK(strstr(why, "not a regular file") != NULL);
	CHECK_INT(http_ca_check(missing, why, sizeof(why)), -ENOENT);
	CHECK(strstr(why, "No such file") != NULL);
	unlink(good);
	unlink(bad);
	rmdir(dir);
}

static void test_failure_words(void)
{
	struct http_resp resp = { 0 };
	char why[300];

	snprintf(resp.err, sizeof(resp.err), "SSL certificate problem: "
		 "certificate has expired");
	CHECK_STR(http_failure(-EPROTO, &resp, why, sizeof(why)),
		  "TLS certificate refused: SSL certificate problem: "
		  "certificate has expired");
	CHECK_STR(http_failure(-ETIMEDOUT, &resp, why, sizeof(why)),
		  "timed out");
	snprintf(resp.err, sizeof(resp.err), "Could not resolve host: x");
	CHECK_STR(http_failure(-EIO, &resp, why, sizeof(why)),
		  "Could not resolve host: x");
	resp.err[0] = '\0';
	CHECK_STR(http_failure(-ENOMEM, &resp, why, sizeof(why)),
		  strerror(ENOMEM));
}

/* Refused before any connection: no network needed. */
static void test_guards(void)
{
	struct http_client *c = http_client_new(NULL);
	struct http_req req = { .method = "GET" };
	struct http_resp resp;

	req.url = strdup("http://10.0.0.1/api");
	CHECK_INT(http_do(c, &req, 1000, 1024, &resp), -EPERM);
	CHECK(strstr(resp.err, "plain http://") != NULL);
	http_resp_release(&resp);
	free(req.url);
	req.url = strdup("ftp://127.0.0.1/");
	CHECK_INT(http_do(c, &req, 1000, 1024, &resp), -EINVAL);
	http_resp_release(&resp);
	free(req.url);
	req.url = strdup("http://127.0.0.1:1/");
	CHECK(!http_aborted());
	http_abort_all();
	CHECK(http_aborted());
	CHECK_INT(http_do(c, &req, 1000, 1024, &resp), -ECANCELED);
	http_resp_release(&resp);
	http_req_release(&req);
	http_client_free(c);
}

int main(void)
{
	test_url_host();
	test_never_proxied();
	test_no_proxy();
	test_pick();
	test_redact();
	test_ca_check();
	test_failure_words();
	test_guards();
	return harness_done("test_http");
}
