"""Where AWS credentials come from, emulated: STS, IMDSv2, the container
credentials endpoint and the IAM Identity Center (SSO) portal.

Every source issues TEMPORARY credentials with a lifetime the test
chooses (`lifetime`, seconds).  They are added to the EventBridge key
table with their expiry, so EventBridge accepts them until they expire and
then answers `ExpiredTokenException`, as AWS does.

Real paths and wire formats:
- STS: `POST /` with a form body `Action=AssumeRole|AssumeRoleWithWebIdentity`,
  XML answers and `ErrorResponse` documents.  AssumeRole must be SigV4-signed
  for service `sts` with known (and unexpired) keys; web identity is unsigned
  and needs a token from `web_tokens`.
- IMDSv2: `PUT /latest/api/token` (TTL header required), then
  `GET /latest/meta-data/iam/security-credentials/[ROLE]` and
  `GET /latest/meta-data/placement/region` with `X-aws-ec2-metadata-token`.
  Requests without a session token get 401 (IMDSv1 is off).
- Container: `GET /v2/credentials/...`, `Authorization` checked when
  `container_token` is set.
- SSO portal: `GET /federation/credentials?account_id=&role_name=` with
  `x-amz-sso_bearer_token` from `sso_tokens` (unexpired, when
  `sso_expiry` names the token).
- SSO OIDC: `POST /token` (CreateToken), JSON body with `grantType`
  `refresh_token`, a client of `sso_clients` and a refresh token of
  `sso_refresh`: a new access token valid for `lifetime` seconds, and a
  new refresh token (the old one is spent), as the AWS CLI's renewal sees.

`issued[kind]` counts the credentials handed out per source ("sts",
"webid", "imds", "container", "sso"); `records` keeps every request.
"""

import hashlib
import hmac
import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import parse_qs, quote, unquote
from xml.sax.saxutils import escape

from .base import Response, request_id
from .eventbridge import canonical_request, signing_key

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IMDS_PREFIX = "/latest/"
CONTAINER_PREFIX = "/v2/credentials/"
SSO_PATH = "/federation/credentials"
OIDC_PATH = "/token"


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AwsAuth:
    def __init__(self, emu):
        self.emu = emu
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self.reset()

    # --- settings --------------------------------------------------------------
    def reset(self):
        with getattr(self, "_lock", threading.Lock()):
            self.lifetime = 3600
            self.region = "us-east-1"
            self.roles = {}            # role arn -> {"external_id": ...}
            self.web_tokens = set()
            self.sso_tokens = {}       # token -> (account, role)
            self.sso_expiry = {}       # token -> epoch it expires
            self.sso_clients = {}      # OIDC client id -> secret
            self.sso_refresh = {}      # refresh token -> (account, role)
            self.imds_role = "connfs-instance-role"
            self.imds_enabled = True
            self.container_token = None
            self.issued = Counter()
            self.records = []
            self._imds_tokens = set()

    def add_role(self, arn, external_id=None):
        self.roles[arn] = {"external_id": external_id}

    # --- issuing ---------------------------------------------------------------
    def issue(self, kind):
        n = next(self._serial)
        akid = "ASIACONNFS%010d" % n
        secret = "emu-secret-%d-%s" % (n, secrets.token_hex(8))
        token = "emu-session-%d-%s" % (n, secrets.token_hex(16))
        expires = time.time() + self.lifetime
        eb = self.emu.providers["eventbridge"]
        eb.keys[akid] = (secret, token)
        eb.expiry[akid] = expires
        with self._lock:
            self.issued[kind] += 1
        return {"AccessKeyId": akid, "SecretAccessKey": secret,
                "SessionToken": token, "Expiration": iso(expires),
                "expires": expires}

    # --- routing ---------------------------------------------------------------
    def claims(self, req):
        if req.path == "/" and req.method == "POST":
            ctype = req.header("content-type", "")
            return ctype.startswith("application/x-www-form-urlencoded")
        return (req.path.startswith(IMDS_PREFIX) or
                req.path.startswith(CONTAINER_PREFIX) or
                req.path == SSO_PATH or
                (req.path == OIDC_PATH and req.method == "POST"))

    def serve(self, req):
        record = {"method": req.method, "path": req.path, "query": req.query,
                  "headers": dict(req.headers),
                  "body": req.body.decode("utf-8", "replace"),
                  "time": time.time()}
        if req.path == "/":
            kind, resp = "sts", self.sts(req, record)
        elif req.path.startswith(IMDS_PREFIX):
            kind, resp = "imds", self.imds(req)
        elif req.path.startswith(CONTAINER_PREFIX):
            kind, resp = "container", self.container(req)
        elif req.path == OIDC_PATH:
            kind, resp = "oidc", self.oidc(req)
        else:
            kind, resp = "sso", self.sso(req)
        record["kind"] = record.get("kind", kind)
        record["status"] = resp.status
        with self._lock:
            self.records.append(record)
        return resp

    def requests(self, kind=None):
        with self._lock:
            return [dict(r) for r in self.records
                    if kind is None or r["kind"] == kind]

    # --- STS -------------------------------------------------------------------
    def sts_error(self, status, code, message, kind="Sender"):
        body = ('<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code>'
                '<Message>%s</Message></Error><RequestId>%s</RequestId>'
                '</ErrorResponse>' % (STS_NS, kind, code, escape(message),
                                      request_id()))
        return Response(status, body, content_type="text/xml")

    def sts_ok(self, action, creds, extra=""):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<%sResponse xmlns="%s"><%sResult>%s<Credentials>'
                '<AccessKeyId>%s</AccessKeyId>'
                '<SecretAccessKey>%s</SecretAccessKey>'
                '<SessionToken>%s</SessionToken>'
                '<Expiration>%s</Expiration></Credentials></%sResult>'
                '<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>'
                '</%sResponse>' % (action, STS_NS, action, extra,
                                   creds["AccessKeyId"],
                                   escape(creds["SecretAccessKey"]),
                                   escape(creds["SessionToken"]),
                                   creds["Expiration"], action, request_id(),
                                   action))
        return Response(200, body, content_type="text/xml")

    def verify_sigv4(self, req):
        """None when signed for sts by known, unexpired keys; else an error."""
        auth = req.header("authorization")
        if not auth:
            return self.sts_error(403, "MissingAuthenticationToken",
                                  "Request is missing Authentication Token")
        m = re.match(r"^AWS4-HMAC-SHA256\s+(.*)$", auth.strip(), re.S)
        fields = dict(p.strip().partition("=")[::2] for p in
                      (m.group(1).split(",") if m else []))
        scope = fields.get("Credential", "").split("/")
        if len(scope) != 5 or "Signature" not in fields or "SignedHeaders" not in fields:
            return self.sts_error(400, "IncompleteSignature", "bad Authorization")
        akid, date, region, service = scope[:4]
        eb = self.emu.providers["eventbridge"]
        if akid not in eb.keys:
            return self.sts_error(403, "InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
        secret, token = eb.keys[akid]
        if (req.header("x-amz-security-token") or None) != token:
            return self.sts_error(403, "InvalidClientTokenId",
                                  "The security token included in the request is invalid.")
        exp = eb.expiry.get(akid)
        if exp is not None and time.time() >= exp:
            return self.sts_error(403, "ExpiredToken",
                                  "The security token included in the request is expired")
        if service != "sts":
            return self.sts_error(403, "SignatureDoesNotMatch",
                                  "Credential should be scoped to correct service: 'sts'.")
        signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";")]
        amz_date = req.header("x-amz-date", "")
        if (token is not None and "x-amz-security-token" not in signed) or \
                any(h not in req.headers for h in signed):
            return self.sts_error(403, "SignatureDoesNotMatch", "headers not signed")
        key = signing_key(secret, date, region, service)
        for path in {req.path, quote(unquote(req.path), safe="/-_.~")}:
            creq = canonical_request(req.method, path, req.query, req.headers,
                                     signed, req.body)
            sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "/".join(scope[1:]),
                             hashlib.sha256(creq.encode()).hexdigest()])
            got = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
            if hmac.compare_digest(got, fields["Signature"].lower()):
                return None
        return self.sts_error(403, "SignatureDoesNotMatch",
                              "The request signature we calculated does not match")

    def sts(self, req, record):
        form = {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace"),
                                              keep_blank_values=True).items()}
        action = form.get("Action")
        record["action"] = action
        record["form"] = {k: v for k, v in form.items() if k != "WebIdentityToken"}
        if form.get("Version") != "2011-06-15":
            return self.sts_error(400, "InvalidAction", "bad Version")
        arn = form.get("RoleArn", "")
        name = form.get("RoleSessionName", "")
        if not re.match(r"^[\w+=,.@-]{2,64}$", name):
            return self.sts_error(400, "ValidationError",
                                  "1 validation error detected: Value at "
                                  "'roleSessionName' failed to satisfy constraint")
        if action == "AssumeRole":
            denied = self.verify_sigv4(req)
            if denied is not None:
                return denied
            role = self.roles.get(arn)
            if role is None:
                return self.sts_error(403, "AccessDenied", "User is not "
                                      "authorized to perform: sts:AssumeRole on "
                                      "resource: %s" % arn)
            if role["external_id"] is not None and \
                    form.get("ExternalId") != role["external_id"]:
                return self.sts_error(403, "AccessDenied", "ExternalId mismatch")
            record["kind"] = "sts"
            creds = self.issue("sts")
            extra = ("<AssumedRoleUser><Arn>%s/%s</Arn><AssumedRoleId>AROA:%s"
                     "</AssumedRoleId></AssumedRoleUser>" % (escape(arn), escape(name),
                                                            escape(name)))
            return self.sts_ok("AssumeRole", creds, extra)
        if action == "AssumeRoleWithWebIdentity":
            record["kind"] = "webid"
            if req.header("authorization"):
                return self.sts_error(400, "InvalidAction", "must be unsigned")
            if form.get("WebIdentityToken") not in self.web_tokens:
                return self.sts_error(400, "InvalidIdentityToken",
                                      "Couldn't retrieve verification key from "
                                      "your identity provider")
            if arn not in self.roles:
                return self.sts_error(403, "AccessDenied", "Not authorized to "
                                      "perform sts:AssumeRoleWithWebIdentity")
            creds = self.issue("webid")
            return self.sts_ok("AssumeRoleWithWebIdentity", creds,
                               "<SubjectFromWebIdentityToken>system:sa"
                               "</SubjectFromWebIdentityToken>")
        return self.sts_error(400, "InvalidAction", "Could not find operation %s"
                              % action)

    # --- IMDSv2 ----------------------------------------------------------------
    def imds(self, req):
        text = "text/plain"
        if not self.imds_enabled:
            return Response(404, "", content_type=text)
        if req.path == "/latest/api/token":
            ttl = req.header("x-aws-ec2-metadata-token-ttl-seconds")
            if req.method != "PUT" or not ttl or not ttl.isdigit():
                return Response(400 if req.method == "PUT" else 405, "",
                                content_type=text)
            tok = "imds-token-" + secrets.token_hex(12)
            with self._lock:
                self._imds_tokens.add(tok)
            return Response(200, tok, [("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
                            content_type=text)
        if req.header("x-aws-ec2-metadata-token") not in self._imds_tokens:
            return Response(401, "", content_type=text)
        base = "/latest/meta-data/iam/security-credentials/"
        if req.path == "/latest/meta-data/placement/region":
            return Response(200, self.region, content_type=text)
        if req.path == base:
            return Response(200, self.imds_role or "", content_type=text)
        if self.imds_role and req.path == base + self.imds_role:
            c = self.issue("imds")
            doc = {"Code": "Success", "LastUpdated": iso(time.time()),
                   "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
                   "SecretAccessKey": c["SecretAccessKey"],
                   "Token": c["SessionToken"], "Expiration": c["Expiration"]}
            return Response(200, json.dumps(doc), content_type=text)
        return Response(404, "", content_type=text)

    # --- container -------------------------------------------------------------
    def container(self, req):
        if self.container_token is not None and \
                req.header("authorization") != self.container_token:
            return Response(401, json.dumps({"message": "unauthorized"}),
                            content_type="application/json")
        c = self.issue("container")
        doc = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
               "Token": c["SessionToken"], "Expiration": c["Expiration"],
               "RoleArn": "arn:aws:iam::123456789012:role/task"}
        return Response(200, json.dumps(doc), content_type="application/json")

    # --- SSO portal ------------------------------------------------------------
    def sso(self, req):
        tok = req.header("x-amz-sso_bearer_token")
        want = self.sso_tokens.get(tok)
        if want is not None and self.sso_expiry.get(tok, time.time() + 1) \
                <= time.time():
            want = None
        if want is None:
            return Response(401, json.dumps({"message": "Session token not found or invalid"}),
                            [("x-amzn-ErrorType", "UnauthorizedException")],
                            content_type="application/json")
        if (req.param("account_id"), req.param("role_name")) != want:
            return Response(403, json.dumps({"message": "No access"}),
                            [("x-amzn-ErrorType", "ForbiddenException")],
                            content_type="application/json")
        c = self.issue("sso")
        doc = {"roleCredentials": {"accessKeyId": c["AccessKeyId"],
                                   "secretAccessKey": c["SecretAccessKey"],
                                   "sessionToken": c["SessionToken"],
                                   "expiration": int(c["expires"] * 1000)}}
        return Response(200, json.dumps(doc), content_type="application/json")

    # --- SSO OIDC --------------------------------------------------------------
    def oidc(self, req):
        def refused(status, error):
            return Response(status, json.dumps({"error": error}),
                            [("x-amzn-ErrorType", error)],
                            content_type="application/json")
        try:
            doc = json.loads(req.body)
        except ValueError:
            return refused(400, "InvalidRequestException")
        if not isinstance(doc, dict) or doc.get("grantType") != "refresh_token":
            return refused(400, "UnsupportedGrantTypeException")
        cid = doc.get("clientId")
        if cid not in self.sso_clients or \
                self.sso_clients[cid] != doc.get("clientSecret"):
            return refused(401, "InvalidClientException")
        with self._lock:
            want = self.sso_refresh.pop(doc.get("refreshToken"), None)
        if want is None:
            return refused(400, "InvalidGrantException")
        n = next(self._serial)
        access = "emu-sso-access-%d-%s" % (n, secrets.token_hex(8))
        refresh = "emu-sso-refresh-%d-%s" % (n, secrets.token_hex(8))
        self.sso_tokens[access] = want
        self.sso_expiry[access] = time.time() + self.lifetime
        self.sso_refresh[refresh] = want
        with self._lock:
            self.issued["oidc"] += 1
        return Response(200, json.dumps({
            "accessToken": access, "tokenType": "Bearer",
            "expiresIn": self.lifetime, "refreshToken": refresh}),
            content_type="application/json")
