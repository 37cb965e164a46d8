"""AWS EventBridge emulation: `POST /` with `X-Amz-Target: AWSEvents.*`.

Implements ListConnections (paged with opaque, tamper-proof NextTokens)
and DescribeConnection, verifies SigV4 signatures cryptographically (as
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
describes), and speaks the AWS JSON 1.1 error envelope
`{"__type": ..., "message": ...}`.
"""

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote

from . import gen
from .base import Provider, dumps, request_id

AWS_KEYS = {
    "AKIDCONNFSTEST": ("connfs-test-secret-7f3a9c", None),
    "AKIDCONNFSSESSION": ("connfs-test-secret-session",
                          "connfs-test-session-token-5d2e"),
}
STATES = ("CREATING", "UPDATING", "DELETING", "AUTHORIZED", "DEAUTHORIZED",
          "AUTHORIZING", "DEAUTHORIZING", "ACTIVE", "FAILED_CONNECTIVITY")
NAME_RE = re.compile(r"^[\.\-_A-Za-z0-9]+$")
MAX_SKEW = 15 * 60
SIG_MISMATCH = ("The request signature we calculated does not match the "
                "signature you provided. Check your AWS Secret Access Key and "
                "signing method. Consult the service documentation for details.")
_STATUS_ERRORS = {
    400: "ValidationException", 401: "UnrecognizedClientException",
    403: "AccessDeniedException", 404: "UnknownOperationException",
    500: "InternalException", 502: "InternalFailure",
    503: "ServiceUnavailable", 504: "RequestTimeout",
}


def _hmac(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region, service="events"):
    k = _hmac(("AWS4" + secret).encode("utf-8"), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_request(method, path, query, headers, signed, body):
    """The SigV4 canonical request built from `signed` header names only."""
    q = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~"))
               for k, v in parse_qsl(query, keep_blank_values=True))
    lines = [method, path, "&".join("%s=%s" % kv for kv in q)]
    for name in signed:
        value = headers.get(name, "")
        lines.append("%s:%s" % (name, " ".join(value.split())))
    lines.append("")
    lines.append(";".join(signed))
    lines.append(hashlib.sha256(body).hexdigest())
    return "\n".join(lines)


class EventBridge(Provider):
    name = "eventbridge"
    content_type = "application/x-amz-json-1.1"
    list_key = "Connections"
    paging_faults = ("cursor_loop", "endless", "invalid_token")
    limiter_spec = ("bucket", 10, 1.0, False)    # undocumented; 10 TPS

    def __init__(self, emu, aws_keys=None, max_skew=MAX_SKEW):
        super().__init__(emu)
        self.keys = dict(AWS_KEYS if aws_keys is None else aws_keys)
        self.expiry = {}        # akid -> epoch: temporary keys (awsauth.py)
        self.max_skew = max_skew
        self.secret = hashlib.sha256(repr(id(self)).encode() +
                                     str(time.time()).encode()).digest()

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        n = obj.get("Name") if isinstance(obj, dict) else None
        return n if isinstance(n, str) else ""

    def matches_id(self, obj, ident):
        return ident in (obj.get("Name"), obj.get("ConnectionArn"))

    # --- envelope -------------------------------------------------------------
    def json(self, status, doc, headers=None):
        resp = super().json(status, doc, headers)
        resp.set_header("x-amzn-RequestId", request_id())
        return resp

    def fail(self, status, code, message):
        return self.json(status, {"__type": code, "message": message})

    def error(self, status, detail=None):
        code = _STATUS_ERRORS.get(status, "InternalFailure")
        return self.fail(status, code, detail or code)

    def throttled(self, req, info, retry_after=None, http_date_form=False, status=400):
        resp = self.fail(status, "ThrottlingException", "Rate exceeded")
        return resp

    def bad_cursor(self, doc):
        doc["NextToken"] = 12345
        return doc

    def huge_parts(self):
        obj = gen.make("eventbridge", 0)
        obj["Name"] = "huge-page-@@@@@@@@@@"
        obj["ConnectionArn"] = ("arn:aws:events:us-east-1:210987654321:connection/"
                                "huge-page-@@@@@@@@@@/00000000-0000-4000-8000-@@@@@@@@@@00")
        return '{"Connections":[', "]}", dumps(obj)

    # --- routing and auth -------------------------------------------------
    def route(self, req):
        if req.path != "/" or req.method != "POST":
            return None
        target = req.header("x-amz-target", "")
        if target == "AWSEvents.ListConnections":
            return "list"
        if target == "AWSEvents.DescribeConnection":
            return "get"
        return "other"

    def authenticate(self, req):
        auth = req.header("authorization")
        if not auth:
            return self.fail(400, "MissingAuthenticationTokenException",
                             "Missing Authentication Token")
        m = re.match(r"^AWS4-HMAC-SHA256\s+(.*)$", auth.strip(), re.S)
        fields = {}
        if m:
            for part in m.group(1).split(","):
                k, _, v = part.strip().partition("=")
                fields[k.strip()] = v.strip()
        if not m or not all(k in fields for k in
                            ("Credential", "SignedHeaders", "Signature")):
            return self.fail(400, "IncompleteSignatureException",
                             "Authorization header requires 'Credential', "
                             "'Signature' and 'SignedHeaders' parameters.")
        scope = fields["Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return self.fail(400, "IncompleteSignatureException",
                             "Credential is not of the form "
                             "<AKID>/<date>/<region>/<service>/aws4_request")
        akid, date, region, service = scope[:4]
        req.notes["region"] = region
        req.notes["akid"] = akid
        if akid not in self.keys:
            return self.fail(403, "UnrecognizedClientException",
                             "The security token included in the request is invalid.")
        secret, token = self.keys[akid]
        if (req.header("x-amz-security-token") or None) != token:
            return self.fail(403, "UnrecognizedClientException",
                             "The security token included in the request is invalid.")
        if time.time() >= self.expiry.get(akid, float("inf")):
            return self.fail(400, "ExpiredTokenException",
                             "The security token included in the request is expired")
        if service != "events":
            return self.fail(403, "InvalidSignatureException",
                             "Credential should be scoped to correct service: 'events'.")
        amz_date = req.header("x-amz-date")
        if not amz_date:
            return self.fail(400, "IncompleteSignatureException",
                             "Authorization header requires existence of "
                             "either a 'X-Amz-Date' or a 'Date' header.")
        try:
            when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=timezone.utc).timestamp()
        except ValueError:
            return self.fail(400, "IncompleteSignatureException",
                             "Invalid X-Amz-Date: %s" % amz_date)
        if amz_date[:8] != date:
            return self.fail(403, "InvalidSignatureException",
                             "Date in Credential scope does not match YYYYMMDD "
                             "from ISO-8601 version of date from HTTP: '%s' != '%s'"
                             % (date, amz_date[:8]))
        if self.max_skew is not None and abs(time.time() - when) > self.max_skew:
            return self.fail(403, "InvalidSignatureException",
                             "Signature expired: %s is now earlier than the "
                             "allowed clock skew" % amz_date)
        signed = [h.strip().lower() for h in fields["SignedHeaders"].split(";")]
        if "host" not in signed:
            return self.fail(403, "InvalidSignatureException",
                             "'Host' must be a 'SignedHeader' in the AWS Authorization.")
        if (token is not None and "x-amz-security-token" not in signed) or \
                any(h not in req.headers for h in signed):
            return self.fail(403, "InvalidSignatureException", SIG_MISMATCH)
        key = signing_key(secret, date, region, service)
        want = fields["Signature"].lower()
        for path in {req.path, quote(unquote(req.path), safe="/-_.~")}:
            creq = canonical_request(req.method, path, req.query,
                                     req.headers, signed, req.body)
            sts = "\n".join(["AWS4-HMAC-SHA256", amz_date,
                             "/".join(scope[1:]),
                             hashlib.sha256(creq.encode("utf-8")).hexdigest()])
            got = hmac.new(key, sts.encode("utf-8"), hashlib.sha256).hexdigest()
            if hmac.compare_digest(got, want):
                return None
        return self.fail(403, "InvalidSignatureException", SIG_MISMATCH)

    # --- tokens -------------------------------------------------------------
    def make_token(self, state):
        payload = json.dumps(state, separators=(",", ":")).encode()
        mac = hmac.new(self.secret, payload, hashlib.sha256).hexdigest()[:24]
        return base64.b64encode(payload + b"." + mac.encode()).decode()

    def read_token(self, token):
        """Decoded token state, or None when unknown or tampered with."""
        try:
            raw = base64.b64decode(token, validate=True)
            payload, mac = raw.rsplit(b".", 1)
            want = hmac.new(self.secret, payload, hashlib.sha256).hexdigest()[:24]
            if not hmac.compare_digest(mac.decode(), want):
                return None
            state = json.loads(payload)
            return state if isinstance(state, dict) else None
        except (ValueError, TypeError, UnicodeDecodeError):
            return None

    def _body(self, req):
        if not req.body.strip():
            return {}
        try:
            doc = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    def continuation(self, req):
        doc = self._body(req)
        tok = doc.get("NextToken") if doc else None
        state = self.read_token(tok) if isinstance(tok, str) else None
        if state and state.get("e") == self.endless_epoch:
            return "endless"
        return None

    def eligible(self, fault, req):
        if fault in ("cursor_loop", "invalid_token"):
            doc = self._body(req)
            return bool(doc and doc.get("NextToken"))
        return True

    # --- operations -------------------------------------------------------
    def handle(self, req, fault):
        doc = self._body(req)
        if doc is None:
            return self.fail(400, "SerializationException",
                             "Start of structure or map found where not expected.")
        kind = req.kind
        if kind == "get":
            return self.describe(doc)
        if kind != "list":
            return self.fail(400, "UnknownOperationException", "")
        return self.list(req, doc, fault)

    def describe(self, doc):
        name = doc.get("Name")
        if not isinstance(name, str) or not name:
            return self.fail(400, "ValidationException",
                             "1 validation error detected: Value null at 'name' "
                             "failed to satisfy constraint: Member must not be null")
        for e in self.store.view():
            if e.obj.get("Name") == name:
                return self.json(200, e.raw())
        return self.fail(400, "ResourceNotFoundException",
                         "Failed to describe the connection(s). Connection "
                         "'%s' does not exist." % name)

    def _validate(self, doc):
        errors = []
        limit = doc.get("Limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool):
            return None, self.fail(400, "SerializationException",
                                   "NUMBER_VALUE can not be converted to an Integer")
        if limit > 100:
            errors.append("Value '%d' at 'limit' failed to satisfy constraint: "
                          "Member must have value less than or equal to 100" % limit)
        elif limit < 1:
            errors.append("Value '%d' at 'limit' failed to satisfy constraint: "
                          "Member must have value greater than or equal to 1" % limit)
        prefix = doc.get("NamePrefix")
        if prefix is not None:
            if not isinstance(prefix, str):
                return None, self.fail(400, "SerializationException",
                                       "Unexpected value type in payload")
            if len(prefix) > 64:
                errors.append("Value '%s' at 'namePrefix' failed to satisfy "
                              "constraint: Member must have length less than or "
                              "equal to 64" % prefix)
            elif not NAME_RE.match(prefix):
                errors.append("Value '%s' at 'namePrefix' failed to satisfy "
                              "constraint: Member must satisfy regular expression "
                              "pattern: [\\.\\-_A-Za-z0-9]+" % prefix)
        state = doc.get("ConnectionState")
        if state is not None and state not in STATES:
            errors.append("Value '%s' at 'connectionState' failed to satisfy "
                          "constraint: Member must satisfy enum value set: [%s]"
                          % (state, ", ".join(STATES)))
        token = doc.get("NextToken")
        if token is not None and (not isinstance(token, str) or
                                  not 1 <= len(token) <= 2048):
            errors.append("Value at 'nextToken' failed to satisfy constraint: "
                          "Member must have length between 1 and 2048")
        if errors:
            msg = "%d validation error%s detected: %s" % (
                len(errors), "" if len(errors) == 1 else "s", "; ".join(errors))
            return None, self.fail(400, "ValidationException", msg)
        return (limit, prefix, state, token), None

    def list(self, req, doc, fault):
        args, err = self._validate(doc)
        if err:
            return err
        limit, prefix, state, token = args
        fhash = hashlib.sha256(json.dumps([prefix, state]).encode()).hexdigest()[:12]
        gen_no = self.store.generation
        fname = fault[0] if fault else None
        offset, endless = 0, fname == "endless"
        if token:
            st = self.read_token(token)
            if fname == "invalid_token" or st is None:
                return self.fail(400, "InvalidToken",
                                 "The NextToken provided is invalid or expired.")
            if st.get("f") != fhash:
                return self.fail(400, "InvalidToken", "The NextToken does not "
                                 "match the request parameters.")
            stale = st.get("g") != gen_no
            if "e" in st:
                stale = st["e"] != self.endless_epoch
            if stale:
                return self.fail(400, "InvalidToken", "The NextToken has expired.")
            offset = int(st.get("o", 0))
        if endless:
            items = []
            for i in range(offset, offset + limit):
                obj = gen.make("eventbridge", 10_000_000 + i)
                name = "%sendless-%09d" % (prefix or "", i)
                obj["ConnectionArn"] = obj["ConnectionArn"].replace(obj["Name"], name)
                obj["Name"] = name
                items.append(dumps(obj))
            nxt = self.make_token({"o": offset + limit, "f": fhash, "g": gen_no,
                                   "e": self.endless_epoch})
        else:
            if prefix is None and state is None:
                view = self.store.view()
            else:
                view = self.store.view(
                    ("filter", prefix, state),
                    lambda o: (prefix is None or str(o.get("Name", "")).startswith(prefix))
                    and (state is None or o.get("ConnectionState") == state))
            items = [e.raw() for e in view[offset:offset + limit]]
            nxt = None
            if offset + limit < len(view):
                nxt = self.make_token({"o": offset + limit, "f": fhash, "g": gen_no})
        if fname == "cursor_loop":
            nxt = token
        body = '{"Connections":[' + ",".join(items) + "]"
        if nxt:
            body += ',"NextToken":' + json.dumps(nxt)
        return self.json(200, body + "}")
