"""The emulator's credential endpoints (awsauth.py) refuse what AWS
refuses: unsigned or wrongly signed AssumeRole, unknown roles and external
ids, bad web identity tokens, IMDSv1, missing container and SSO tokens;
and the temporary keys they issue work on EventBridge until they expire.
"""

import hashlib
import hmac
import http.client
import json
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest

from emulator import CREDENTIALS, Emulator

AKID = "AKIDCONNFSTEST"
SECRET = CREDENTIALS["eventbridge"][AKID][0]
ROLE = "arn:aws:iam::123456789012:role/r"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.fixture
def emu():
    e = Emulator(port=0).start()
    e.generate("eventbridge", 3)
    yield e
    e.stop()


def call(emu, method, path, headers=None, body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data.decode()


def sign(emu, body, ctype, service, akid, secret, token=None, target=None):
    amz = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"content-type": ctype, "host": "127.0.0.1:%d" % emu.port,
               "x-amz-date": amz}
    if target:
        headers["x-amz-target"] = target
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canon = "\n".join(["POST", "/", ""] +
                      ["%s:%s" % (k, headers[k]) for k in names] +
                      ["", ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/us-east-1/%s/aws4_request" % (amz[:8], service)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz[:8], "us-east-1", service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, "
                                "SignedHeaders=%s, Signature=%s"
                                % (akid, scope, ";".join(names), sig))
    return headers


def assume(emu, akid=AKID, secret=SECRET, token=None, service="sts", **form):
    doc = {"Action": "AssumeRole", "Version": "2011-06-15", "RoleArn": ROLE,
           "RoleSessionName": "test"}
    doc.update(form)
    body = urlencode(doc).encode()
    return call(emu, "POST", "/", sign(emu, body, FORM, service, akid,
                                       secret, token), body)


def xml_field(doc, name):
    return doc.split("<%s>" % name)[1].split("</%s>" % name)[0]


def list_with(emu, akid, secret, token):
    body = b"{}"
    return call(emu, "POST", "/", sign(emu, body, "application/x-amz-json-1.1",
                                       "events", akid, secret, token,
                                       "AWSEvents.ListConnections"), body)


def test_assume_role_checks_signature_role_and_external_id(emu):
    a = emu.aws_auth
    a.add_role(ROLE, external_id="x1")
    st, doc = assume(emu, ExternalId="x1")
    assert st == 200 and "<AssumeRoleResponse" in doc
    assert a.issued["sts"] == 1
    st, doc = assume(emu, secret="wrong", ExternalId="x1")
    assert st == 403 and "<Code>SignatureDoesNotMatch</Code>" in doc
    st, doc = assume(emu, service="events", ExternalId="x1")
    assert st == 403 and "SignatureDoesNotMatch" in doc
    st, doc = assume(emu, ExternalId="x2")
    assert st == 403 and "<Code>AccessDenied</Code>" in doc
    st, doc = assume(emu, RoleArn="arn:aws:iam::1:role/other", ExternalId="x1")
    assert st == 403 and "AccessDenied" in doc
    body = urlencode({"Action": "AssumeRole", "Version": "2011-06-15",
                      "RoleArn": ROLE, "RoleSessionName": "ss"}).encode()
    st, doc = call(emu, "POST", "/", {"content-type": FORM}, body)
    assert st == 403 and "MissingAuthenticationToken" in doc
    assert a.issued["sts"] == 1


def test_issued_keys_work_until_they_expire(emu):
    a = emu.aws_auth
    a.add_role(ROLE)
    st, doc = assume(emu)
    akid, secret, token = (xml_field(doc, n) for n in
                           ("AccessKeyId", "SecretAccessKey", "SessionToken"))
    assert list_with(emu, akid, secret, token)[0] == 200
    # Without the session token the keys are not valid.
    assert list_with(emu, akid, secret, None)[0] == 403
    # The issued keys can sign the next hop of a chain.
    st, _ = assume(emu, akid=akid, secret=secret, token=token)
    assert st == 200
    emu.providers["eventbridge"].expiry[akid] = time.time() - 1
    st, doc = list_with(emu, akid, secret, token)
    assert st == 400
    assert json.loads(doc)["__type"] == "ExpiredTokenException"
    st, doc = assume(emu, akid=akid, secret=secret, token=token)
    assert st == 403 and "<Code>ExpiredToken</Code>" in doc


def test_web_identity_is_unsigned_and_needs_a_known_token(emu):
    a = emu.aws_auth
    a.add_role(ROLE)
    a.web_tokens.add("jwt")

    def webid(token, headers=None):
        body = urlencode({"Action": "AssumeRoleWithWebIdentity",
                          "Version": "2011-06-15", "RoleArn": ROLE,
                          "RoleSessionName": "pod", "WebIdentityToken": token
                          }).encode()
        return call(emu, "POST", "/", dict({"content-type": FORM},
                                           **(headers or {})), body)

    st, doc = webid("jwt")
    assert st == 200 and "<AssumeRoleWithWebIdentityResult>" in doc
    st, doc = webid("other")
    assert st == 400 and "InvalidIdentityToken" in doc
    st, doc = webid("jwt", {"authorization": "AWS4-HMAC-SHA256 x"})
    assert st == 400
    assert a.issued["webid"] == 1
    # The token itself is never recorded.
    assert all("jwt" not in json.dumps(r.get("form"))
               for r in a.requests("webid"))


def test_imds_is_v2_only(emu):
    a = emu.aws_auth
    base = "/latest/meta-data/iam/security-credentials/"
    assert call(emu, "GET", base)[0] == 401
    assert call(emu, "PUT", "/latest/api/token")[0] == 400
    st, tok = call(emu, "PUT", "/latest/api/token",
                   {"x-aws-ec2-metadata-token-ttl-seconds": "60"})
    assert st == 200
    hdr = {"x-aws-ec2-metadata-token": tok}
    assert call(emu, "GET", base, hdr) == (200, a.imds_role)
    st, doc = call(emu, "GET", base + a.imds_role, hdr)
    assert st == 200 and json.loads(doc)["Code"] == "Success"
    assert call(emu, "GET", base + "nope", hdr)[0] == 404
    assert call(emu, "GET", "/latest/meta-data/placement/region", hdr) == \
        (200, "us-east-1")
    a.imds_enabled = False
    assert call(emu, "PUT", "/latest/api/token",
                {"x-aws-ec2-metadata-token-ttl-seconds": "60"})[0] == 404
    assert a.issued["imds"] == 1


def test_container_and_sso_tokens(emu):
    a = emu.aws_auth
    a.container_token = "Bearer c1"
    assert call(emu, "GET", "/v2/credentials/x")[0] == 401
    assert call(emu, "GET", "/v2/credentials/x",
                {"authorization": "Bearer c1"})[0] == 200
    a.sso_tokens["s1"] = ("1111", "Role")
    q = "/federation/credentials?account_id=1111&role_name=Role"
    assert call(emu, "GET", q)[0] == 401
    assert call(emu, "GET", q.replace("1111", "2222"),
                {"x-amz-sso_bearer_token": "s1"})[0] == 403
    st, doc = call(emu, "GET", q, {"x-amz-sso_bearer_token": "s1"})
    assert st == 200 and json.loads(doc)["roleCredentials"]["accessKeyId"]
    assert (a.issued["container"], a.issued["sso"]) == (1, 1)


def test_sso_oidc_refresh_rotates_the_refresh_token(emu):
    a = emu.aws_auth
    a.sso_clients["c1"] = "cs1"
    a.sso_refresh["r1"] = ("1111", "Role")
    q = "/federation/credentials?account_id=1111&role_name=Role"

    def create(**doc):
        body = dict({"grantType": "refresh_token", "clientId": "c1",
                     "clientSecret": "cs1", "refreshToken": "r1"}, **doc)
        return call(emu, "POST", "/token",
                    {"content-type": "application/json"},
                    json.dumps(body).encode())
    assert create(clientSecret="wrong")[0] == 401
    assert create(grantType="authorization_code")[0] == 400
    st, doc = create()
    assert st == 200
    got = json.loads(doc)
    assert got["expiresIn"] == a.lifetime
    assert call(emu, "GET", q, {"x-amz-sso_bearer_token":
                                got["accessToken"]})[0] == 200
    # The refresh token is spent; the new one works once.
    assert create()[0] == 400
    assert create(refreshToken=got["refreshToken"])[0] == 200
    # An access token past its expiry is refused like an unknown one.
    a.sso_expiry[got["accessToken"]] = time.time() - 1
    assert call(emu, "GET", q, {"x-amz-sso_bearer_token":
                                got["accessToken"]})[0] == 401
    assert a.issued["oidc"] == 2
