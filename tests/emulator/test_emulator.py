"""Tests of the API emulator itself (standard library clients only).

Run: cd /work/main && /usr/bin/python3 -m pytest tests/emulator -q
"""

import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from emulator import CREDENTIALS, Emulator, EmulatorClient, gen

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(TESTS_DIR, "data", "sample.json")
AC_TOKEN = CREDENTIALS["activecampaign"]
NANGO_KEY = CREDENTIALS["nango"]
PERSONA_KEY = CREDENTIALS["persona"]
WORKATO_TOKEN = CREDENTIALS["workato"]
AKID, SECRET = "AKIDCONNFSTEST", "connfs-test-secret-7f3a9c"
AUTH = {
    "activecampaign": {"Api-Token": AC_TOKEN},
    "nango": {"Authorization": "Bearer " + NANGO_KEY},
    "persona": {"Authorization": "Bearer " + PERSONA_KEY},
    "workato": {"Authorization": "Bearer " + WORKATO_TOKEN},
}
LIST = {"activecampaign": "/api/3/connections", "nango": "/connections",
        "persona": "/api/v1/connect/connections", "workato": "/api/connections"}


# --------------------------------------------------------------------------
# helpers

@pytest.fixture
def emu():
    e = Emulator(port=0).start()
    yield e
    e.stop()


@pytest.fixture
def sample():
    e = Emulator(port=0, data=SAMPLE).start()
    yield e
    e.stop()


class Reply:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def call(emu, method, path, headers=None, body=None, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        if own:
            conn.close()


def get(emu, provider, query="", headers=None, path=None):
    h = dict(AUTH.get(provider, {}))
    h.update(headers or {})
    return call(emu, "GET", (path or LIST[provider]) + (("?" + query) if query else ""), h)


def sign(host, body, akid=AKID, secret=SECRET, token=None, region="us-east-1",
         target="AWSEvents.ListConnections", when=None):
    """A minimal SigV4 signer (what libcurl does) for POST / requests."""
    t = when or datetime.now(timezone.utc)
    amz = t.strftime("%Y%m%dT%H%M%SZ")
    headers = {"content-type": "application/x-amz-json-1.1", "host": host,
               "x-amz-date": amz, "x-amz-target": target}
    if token:
        headers["x-amz-security-token"] = token
    names = sorted(headers)
    canon = "\n".join(["POST", "/", ""] + ["%s:%s" % (k, headers[k]) for k in names] +
                      ["", ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/%s/events/aws4_request" % (amz[:8], region)
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (amz[:8], region, "events", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                "Signature=%s" % (akid, scope, ";".join(names), sig))
    headers["accept"] = "*/*"              # unsigned, like libcurl
    return headers


def eb(emu, doc, raw=None, **kw):
    body = raw if raw is not None else json.dumps(doc).encode()
    headers = sign("127.0.0.1:%d" % emu.port, body, **kw)
    return call(emu, "POST", "/", headers, body)


def eb_walk(emu, limit=100, **filters):
    names, token, pages = [], None, 0
    while True:
        doc = dict(filters, Limit=limit)
        if token:
            doc["NextToken"] = token
        r = eb(emu, doc)
        assert r.status == 200, r.body
        page = r.json()
        names += [c["Name"] for c in page["Connections"]]
        pages += 1
        token = page.get("NextToken")
        if not token:
            return names, pages


# --------------------------------------------------------------------------
# EventBridge

def test_eventbridge_paging_walk(emu):
    objs = emu.generate("eventbridge", 250, seed=3)
    names, pages = eb_walk(emu, limit=100)
    assert pages == 3 and emu.count("eventbridge") == 3
    assert names == sorted(o["Name"] for o in objs)
    assert len(set(names)) == 250
    rec = emu.requests("eventbridge")[0]
    assert rec["region"] == "us-east-1" and rec["status"] == 200
    assert rec["headers"]["x-amz-target"] == "AWSEvents.ListConnections"


def test_eventbridge_sample_verbatim_numbers(sample):
    r = eb(sample, {"NamePrefix": "billing", "Limit": 2})
    assert r.headers["content-type"] == "application/x-amz-json-1.1"
    assert "x-amzn-requestid" in r.headers
    page = r.json()
    assert [c["Name"] for c in page["Connections"]] == ["billing-chargebee", "billing-stripe"]
    assert "NextToken" in page
    r2 = eb(sample, {"NamePrefix": "billing", "Limit": 2, "NextToken": page["NextToken"]})
    assert b'"CreationTime":1.6901184E9' in r2.body
    last = r2.json()
    assert [c["Name"] for c in last["Connections"]] == ["billing.zuora_v2"]
    assert last["Connections"][0]["CreationTime"] == 1690118400
    assert "NextToken" not in last


def test_eventbridge_filters_and_describe(sample):
    r = eb(sample, {"ConnectionState": "DEAUTHORIZED"})
    assert {c["Name"] for c in r.json()["Connections"]} == {"billing.zuora_v2", "hr-workday"}
    r = eb(sample, {"Name": "ops_pagerduty"}, target="AWSEvents.DescribeConnection")
    assert r.status == 200 and r.json()["Name"] == "ops_pagerduty"
    r = eb(sample, {"Name": "nope"}, target="AWSEvents.DescribeConnection")
    assert r.status == 400 and r.json()["__type"] == "ResourceNotFoundException"
    assert sample.count("eventbridge") == 1       # describe is not a list call


def test_eventbridge_sigv4_failures(sample):
    body = b"{}"
    good = sign("127.0.0.1:%d" % sample.port, body)
    assert call(sample, "POST", "/", good, body).status == 200

    no_auth = {k: v for k, v in good.items() if k != "authorization"}
    r = call(sample, "POST", "/", no_auth, body)
    assert (r.status, r.json()["__type"]) == (400, "MissingAuthenticationTokenException")

    r = eb(sample, {}, akid="AKIDUNKNOWN")
    assert (r.status, r.json()["__type"]) == (403, "UnrecognizedClientException")

    r = eb(sample, {}, secret="wrong-secret")
    assert (r.status, r.json()["__type"]) == (403, "InvalidSignatureException")
    assert r.json()["message"].startswith("The request signature we calculated does not match")

    tampered = sign("127.0.0.1:%d" % sample.port, b'{"Limit":1}')
    r = call(sample, "POST", "/", tampered, b'{"Limit":2}')
    assert (r.status, r.json()["__type"]) == (403, "InvalidSignatureException")

    r = eb(sample, {}, region="eu-central-1")
    assert r.status == 200 and sample.requests()[-1]["region"] == "eu-central-1"

    session = dict(akid="AKIDCONNFSSESSION", secret="connfs-test-secret-session")
    r = eb(sample, {}, **session)
    assert (r.status, r.json()["__type"]) == (403, "UnrecognizedClientException")
    r = eb(sample, {}, token="connfs-test-session-token-5d2e", **session)
    assert r.status == 200

    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    r = eb(sample, {}, when=old)
    assert (r.status, r.json()["__type"]) == (403, "InvalidSignatureException")

    r = eb(sample, {}, target="AWSEvents.PutEvents")
    assert (r.status, r.json()["__type"]) == (400, "UnknownOperationException")


def test_eventbridge_validation_and_tokens(sample):
    r = eb(sample, {"Limit": 101})
    assert r.status == 400
    assert r.json() == {"__type": "ValidationException", "message":
                        "1 validation error detected: Value '101' at 'limit' failed to "
                        "satisfy constraint: Member must have value less than or equal to 100"}
    assert eb(sample, {"Limit": 0}).json()["__type"] == "ValidationException"
    assert eb(sample, None, raw=b"{not json").json()["__type"] == "SerializationException"

    token = eb(sample, {"Limit": 5}).json()["NextToken"]
    bad = token[:-6] + ("AAAA" if not token.endswith("AAAA") else "BBBB") + token[-2:]
    for t in ("garbage", bad):
        r = eb(sample, {"Limit": 5, "NextToken": t})
        assert (r.status, r.json()["__type"]) == (400, "InvalidToken")
    r = eb(sample, {"Limit": 5, "NextToken": token, "NamePrefix": "crm"})
    assert (r.status, r.json()["__type"]) == (400, "InvalidToken")
    assert eb(sample, {"Limit": 7, "NextToken": token}).status == 200   # Limit may change
    sample.generate("eventbridge", 20)
    r = eb(sample, {"Limit": 5, "NextToken": token})
    assert (r.status, r.json()["__type"]) == (400, "InvalidToken")


# --------------------------------------------------------------------------
# ActiveCampaign

def test_activecampaign_paging_walk(emu):
    emu.generate("activecampaign", 30, seed=2)
    seen, offset = [], 0
    while True:
        page = get(emu, "activecampaign", "limit=7&offset=%d" % offset).json()
        assert page["meta"]["total"] == "30"
        seen += [c["id"] for c in page["connections"]]
        offset += 7
        if offset >= int(page["meta"]["total"]) or len(page["connections"]) < 7:
            break
    assert seen == [str(i) for i in range(1, 31)]
    assert emu.count("activecampaign") == 5
    assert get(emu, "activecampaign", "offset=1000").json()["connections"] == []


def test_activecampaign_params_filters_and_auth(sample):
    assert len(get(sample, "activecampaign").json()["connections"]) == 11
    r = get(sample, "activecampaign", "limit=abc")
    assert (r.status, r.json()) == (400, {})
    sample.generate("activecampaign", 150)
    assert len(get(sample, "activecampaign", "limit=500").json()["connections"]) == 100
    assert len(get(sample, "activecampaign").json()["connections"]) == 20
    sample.load(SAMPLE)
    for q in ("filters[service]=shopify", "filters%5Bservice%5D=shopify"):
        page = get(sample, "activecampaign", q).json()
        assert {c["id"] for c in page["connections"]} == {"1", "3", "9", "100"}
        assert page["meta"]["total"] == "4"
    page = get(sample, "activecampaign", "filters%5Bexternalid%5D=owner%40northwind.example").json()
    assert [c["name"] for c in page["connections"]] == ["Northwind, Inc. / EU"]
    one = get(sample, "activecampaign", path="/api/3/connections/7").json()["connection"]
    assert one["isInternal"] == 1 and one["id"] == "7"
    assert get(sample, "activecampaign", path="/api/3/connections/999").status == 404
    r = get(sample, "activecampaign", headers={"Api-Token": ""})
    assert (r.status, r.json()) == (401, {"message": "Authentication required"})
    r = get(sample, "activecampaign", headers={"Api-Token": "wrong"})
    assert r.status == 403 and r.json()["errors"][0]["title"] == "Forbidden"


# --------------------------------------------------------------------------
# Nango

def test_nango_paging_walk_newest_first(emu):
    objs = emu.generate("nango", 25, seed=5)
    seen, page = [], 0
    while True:
        rows = get(emu, "nango", "limit=4&page=%d" % page).json()["connections"]
        seen += rows
        page += 1
        if len(rows) < 4:
            break
    assert emu.count("nango") == 7
    assert sorted(r["id"] for r in seen) == sorted(o["id"] for o in objs)
    created = [datetime.fromisoformat(r["created"]) for r in seen]
    assert created == sorted(created, reverse=True)
    assert len(get(emu, "nango", path="/connection").json()["connections"]) == 25


def test_nango_strict_validation_and_auth(sample):
    r = get(sample, "nango", "offset=3")
    err = r.json()["error"]
    assert r.status == 400 and err["code"] == "invalid_query_params"
    assert err["errors"][0]["code"] == "unrecognized_keys"
    for q in ("limit=0", "limit=2001", "limit=abc", "limit=2.5", "page=-1", "page=x"):
        r = get(sample, "nango", q)
        assert r.status == 400 and r.json()["error"]["code"] == "invalid_query_params", q
    assert get(sample, "nango", "limit=2000&page=0").status == 200
    r = get(sample, "nango", headers={"Content-Type": "text/plain"})
    assert (r.status, r.json()["error"]["code"]) == (415, "invalid_content_type")
    assert get(sample, "nango", headers={"Content-Type": "application/json"}).status == 200
    r = call(sample, "GET", "/connections")
    assert (r.status, r.json()["error"]["code"]) == (401, "missing_auth_header")
    r = get(sample, "nango", headers={"Authorization": "Bearer not-a-uuid"})
    assert r.json()["error"]["code"] == "invalid_secret_key_format"
    r = get(sample, "nango", headers={"Authorization": "Bearer 11111111-2222-4333-8444-555555555555"})
    assert (r.status, r.json()["error"]["code"]) == (401, "unknown_account")
    r = get(sample, "nango", "limit=2")
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)
    assert int(r.headers["x-ratelimit-reset"]) > time.time()


def test_nango_filters(sample):
    def ids(q):
        return sorted(c["id"] for c in get(sample, "nango", q).json()["connections"])
    assert ids("connectionId=acme%2Feu-west%20hubspot") == [90377, 90412]
    assert ids("tags[organization_id]=org-77&limit=2&page=0") == [90500, 90501]
    assert ids("tags%5BORGANIZATION_ID%5D=org-77") == [90377, 90412, 90500, 90501]
    assert ids("integrationId=hubspot-prod,jira") == [90412, 90503, 90505]
    assert ids("search=ACME%2F%25HUBSPOT") == [90377, 90412]
    assert ids("search=Z%C3%BCrich") == [90502]
    assert ids("endUserOrganizationId=org-cafe") == [90502]
    rows = get(sample, "nango", "limit=3").json()["connections"]
    assert [r["id"] for r in rows] == [90502, 90501, 90500]
    r = get(sample, "nango", "provider_config_key=hubspot-prod",
            path="/connections/acme%2Feu-west%20hubspot")
    assert r.status == 200 and r.json()["id"] == 90412 and "created_at" in r.json()


# --------------------------------------------------------------------------
# Persona

def persona_walk(emu, size, query="", headers=None):
    path = "/api/v1/connect/connections?page%%5Bsize%%5D=%d%s" % (size, query)
    ids, links = [], []
    while path:
        r = call(emu, "GET", path, dict(AUTH["persona"], **(headers or {})))
        assert r.status == 200, r.body
        doc = r.json()
        ids += [d["id"] for d in doc["data"]]
        path = doc["links"]["next"]
        links.append(doc["links"])
    return ids, links


def test_persona_cursor_walk_and_links(emu):
    objs = emu.generate("persona", 23, seed=4)
    ids, links = persona_walk(emu, 5)
    assert len(ids) == 23 and set(ids) == {o["id"] for o in objs}
    assert emu.count("persona") == 5
    assert links[0]["prev"] is None and links[-1]["next"] is None
    nxt = links[0]["next"]
    assert nxt.startswith("/api/v1/connect/connections?page%5Bafter%5D=")
    assert "page%5Bsize%5D=5" in nxt
    q = parse_qs(urlsplit(links[1]["prev"]).query)
    assert q["page[before]"] == [ids[5]]
    back = call(emu, "GET", links[1]["prev"], AUTH["persona"]).json()
    assert [d["id"] for d in back["data"]] == ids[:5]
    created = [o["attributes"]["created-at"] for o in sorted(objs, key=lambda o: ids.index(o["id"]))]
    assert created == sorted(created, reverse=True)


def test_persona_filters_inflection_headers_errors(sample):
    ids, links = persona_walk(sample, 2, "&filter%5Bstatus%5D=active")
    assert len(ids) == 5
    assert "filter%5Bstatus%5D=active" in links[0]["next"]
    r = get(sample, "persona", "page[size]=1", {"Key-Inflection": "snake"})
    assert "source_organization_id" in r.json()["data"][0]["attributes"]
    r = get(sample, "persona", "page[size]=1", {"Key-Inflection": "camel"})
    d = r.json()["data"][0]
    assert "sourceOrganizationId" in d["attributes"] and d["type"] == "connect/connection"
    assert "source-organization-id" in get(sample, "persona").json()["data"][0]["attributes"]
    for h in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
              "persona-organization-id", "persona-environment-id"):
        assert h in r.headers
    assert r.headers["request-id"].startswith("req_")
    assert 0 <= int(r.headers["ratelimit-reset"]) <= 60
    r = get(sample, "persona", "page[size]=101")
    assert r.status == 400 and r.json()["errors"][0]["details"] == \
        "page[size] must be between 1 and 100"
    r = get(sample, "persona", "page[after]=cxn_doesnotexist000")
    assert (r.status, r.json()) == (404, {"errors": [{"title": "Record not found"}]})
    r = get(sample, "persona", headers={"Authorization": "Bearer nope"})
    assert r.status == 401 and r.json()["errors"][0]["title"] == \
        "Must be authenticated to access this endpoint"
    dest = get(sample, "persona", "filter[destination-organization-id]=org_Q4mTz8Yw1Lk2")
    assert {d["attributes"]["destination-organization-id"] for d in dest.json()["data"]} == \
        {"org_Q4mTz8Yw1Lk2"}


# --------------------------------------------------------------------------
# Workato

def test_workato_runtime_tags_filters(sample):
    rows = get(sample, "workato").json()
    assert isinstance(rows, list) and len(rows) == 9
    assert all(r["parent_id"] is None and "tags" not in r for r in rows)
    rows = get(sample, "workato", "include_runtime_connections=true").json()
    assert len(rows) == 11
    for q in ("includes[]=tags", "includes%5B%5D=tags"):
        rows = get(sample, "workato", q).json()
        assert all(isinstance(r["tags"], list) for r in rows)
        assert rows[0]["tags"] == ["tag-ANgeffPL-3gxQwA"]
    rows = get(sample, "workato", "folder_id=90211").json()
    assert {r["id"] for r in rows} == {418207, 418210, 418220}
    rows = get(sample, "workato", "parent_id=418207").json()
    assert {r["id"] for r in rows} == {418233, 418230}
    names = [r["name"] for r in get(sample, "workato", "include_runtime_connections=true").json()]
    assert names.count("Salesforce – Production") == 3
    assert sample.count("workato") == 7
    r = get(sample, "workato", headers={"Authorization": "Bearer bad"})
    assert (r.status, r.json()) == (401, {"message": "Unauthorized"})


# --------------------------------------------------------------------------
# Faults

def test_fault_status_codes_every_provider(sample):
    for p in ("eventbridge", "activecampaign", "nango", "persona", "workato"):
        for fault, status in (("http500", 500), ("http502", 502), ("http503", 503),
                              ("http504", 504), ("http401", 401), ("http403", 403)):
            sample.inject(p, fault)
            r = eb(sample, {}) if p == "eventbridge" else get(sample, p)
            assert r.status == status, (p, fault)
            doc = r.json()
            key = {"eventbridge": "__type", "activecampaign": None, "nango": "error",
                   "persona": "errors", "workato": "message"}[p]
            assert key is None or key in doc
            assert sample.requests(p)[-1]["fault"] == fault
        assert (eb(sample, {}) if p == "eventbridge" else get(sample, p)).status == 200


def test_fault_http429_and_throttle(sample):
    sample.inject("activecampaign", "http429", retry_after=3)
    r = get(sample, "activecampaign")
    assert (r.status, r.headers["retry-after"]) == (429, "3")
    assert "ratelimit-limit" in r.headers and r.headers["ratelimit-remaining"] == "0"
    sample.inject("nango", "http429", retry_after_date=True)
    r = get(sample, "nango")
    assert r.status == 429 and r.json()["error"]["code"] == "too_many_request"
    assert parsedate_to_datetime(r.headers["retry-after"]).timestamp() > time.time() - 5
    assert r.headers["x-ratelimit-remaining"] == "0"
    sample.inject("persona", "http429")
    r = get(sample, "persona")
    assert r.status == 429 and "retry-after" not in r.headers
    assert r.headers["ratelimit-reset"] == "1"
    sample.inject("workato", "throttle")
    assert get(sample, "workato").status == 429
    sample.inject("eventbridge", "throttle")
    r = eb(sample, {})
    assert r.status == 400 and r.json() == {"__type": "ThrottlingException",
                                            "message": "Rate exceeded"}


def test_fault_after_and_count(sample):
    sample.inject("workato", "http500", count=2, after=1)
    assert [get(sample, "workato").status for _ in range(4)] == [200, 500, 500, 200]
    assert [r["fault"] for r in sample.requests("workato")] == [None, "http500", "http500", None]


def test_fault_slow_does_not_block_and_ends_on_stop():
    e = Emulator(port=0, data=SAMPLE).start()
    e.inject("workato", "slow", seconds=30)
    result = {}

    def slow():
        try:
            get(e, "workato")
            result["outcome"] = "answered"
        except (OSError, http.client.HTTPException):
            result["outcome"] = "dropped"

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    # Another request is answered while the slow one still waits...
    assert get(e, "workato").status == 200
    assert t.is_alive()
    # ...and stopping the emulator ends the slow one instead of waiting.
    e.stop()
    t.join(30)
    assert not t.is_alive() and result["outcome"] == "dropped"


def test_fault_transport_breakage(sample):
    sample.inject("nango", "reset_before")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        get(sample, "nango")
    sample.inject("nango", "reset_mid")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        get(sample, "nango")
    sample.inject("persona", "truncated")
    with pytest.raises(http.client.IncompleteRead):
        get(sample, "persona")
    assert get(sample, "persona").status == 200
    assert [r["fault"] for r in sample.requests("nango")] == ["reset_before", "reset_mid"]


def test_fault_invalid_json_redirect_huge(sample):
    sample.inject("activecampaign", "invalid_json")
    r = get(sample, "activecampaign")
    assert r.status == 200
    with pytest.raises(ValueError):
        json.loads(r.body)
    sample.inject("workato", "redirect")
    r = get(sample, "workato", "folder_id=1")
    assert r.status == 302
    assert r.headers["location"].startswith("http://127.0.0.2:%d/api/connections?folder_id=1"
                                            % sample.port)
    for p in ("eventbridge", "persona"):
        sample.inject(p, "huge_page", mb=1)
        r = eb(sample, {}) if p == "eventbridge" else get(sample, p)
        assert r.status == 200 and abs(len(r.body) - (1 << 20)) < 4096
        doc = r.json()
        items = doc["Connections"] if p == "eventbridge" else doc["data"]
        assert len(items) > 500 and len({json.dumps(i) for i in items}) == len(items)


@pytest.mark.parametrize("provider", ["eventbridge", "activecampaign", "nango",
                                      "persona", "workato"])
def test_fault_wrong_shape(sample, provider):
    def fetch():
        return eb(sample, {}) if provider == "eventbridge" else get(sample, provider)
    key = {"eventbridge": "Connections", "activecampaign": "connections",
           "nango": "connections", "persona": "data", "workato": None}[provider]
    prov = sample.providers[provider]
    for variant in prov.shape_variants:
        sample.inject(provider, "wrong_shape", variant=variant)
        doc = fetch().json()
        if variant == "null_body":
            assert doc is None
        elif variant == "list_not_array":
            assert not isinstance(doc if key is None else doc[key], list)
        elif variant == "missing_fields":
            assert (key not in doc) if key else all("id" not in o for o in doc)
        elif variant == "null_object":
            assert None in (doc if key is None else doc[key])
        elif variant == "cursor_wrong_type":
            cursor = {"eventbridge": lambda d: d["NextToken"],
                      "activecampaign": lambda d: d["meta"]["total"],
                      "persona": lambda d: d["links"]["next"]}[provider](doc)
            assert not isinstance(cursor, str)
    if provider in ("nango", "workato"):
        with pytest.raises(ValueError):
            sample.inject(provider, "wrong_shape", variant="cursor_wrong_type")


def test_fault_cursor_loop(sample):
    tok = eb(sample, {"Limit": 3}).json()["NextToken"]
    sample.inject("eventbridge", "cursor_loop")
    assert eb(sample, {"Limit": 3, "NextToken": tok}).json()["NextToken"] == tok
    assert eb(sample, {"Limit": 3, "NextToken": tok}).json()["NextToken"] != tok

    first = get(sample, "persona", "page[size]=2").json()
    after = parse_qs(urlsplit(first["links"]["next"]).query)["page[after]"][0]
    sample.inject("persona", "cursor_loop")
    looped = get(sample, "persona", "page[size]=2&page[after]=" + after).json()
    assert parse_qs(urlsplit(looped["links"]["next"]).query)["page[after]"] == [after]

    sample.inject("activecampaign", "cursor_loop")
    p0 = get(sample, "activecampaign", "limit=3&offset=0").json()   # not eligible
    p1 = get(sample, "activecampaign", "limit=3&offset=3").json()
    assert p0 == p1
    sample.inject("nango", "cursor_loop")
    n0 = get(sample, "nango", "limit=3&page=0").json()
    assert get(sample, "nango", "limit=3&page=1").json() == n0


def test_fault_endless(sample):
    sample.inject("eventbridge", "endless")
    seen, token = set(), None
    for _ in range(12):
        doc = {"Limit": 50}
        if token:
            doc["NextToken"] = token
        page = eb(sample, doc).json()
        assert len(page["Connections"]) == 50
        seen |= {c["Name"] for c in page["Connections"]}
        token = page["NextToken"]
    assert len(seen) == 600
    sample.reset()
    assert eb(sample, {"Limit": 50, "NextToken": token}).json()["__type"] == "InvalidToken"

    sample.inject("persona", "endless")
    path, ids = "/api/v1/connect/connections?page%5Bsize%5D=10", set()
    for _ in range(5):
        doc = call(sample, "GET", path, AUTH["persona"]).json()
        ids |= {d["id"] for d in doc["data"]}
        path = doc["links"]["next"]
    assert len(ids) == 50 and path

    sample.inject("activecampaign", "endless")
    ids = set()
    for off in range(0, 100, 20):
        doc = get(sample, "activecampaign", "limit=20&offset=%d" % off).json()
        assert len(doc["connections"]) == 20 and int(doc["meta"]["total"]) > 10**8
        ids |= {c["id"] for c in doc["connections"]}
    assert len(ids) == 100
    assert get(sample, "activecampaign", "limit=20&offset=0").json()["meta"]["total"] == "11"

    sample.inject("nango", "endless")
    for page in range(3):
        assert len(get(sample, "nango", "limit=7&page=%d" % page).json()["connections"]) == 7
    assert [r["fault"] for r in sample.requests("nango")] == ["endless"] * 3


def test_fault_invalid_token(sample):
    sample.inject("eventbridge", "invalid_token")
    assert eb(sample, {"Limit": 2}).status == 200         # no token: not eligible
    tok = eb(sample, {"Limit": 2}).json()["NextToken"]
    r = eb(sample, {"Limit": 2, "NextToken": tok})
    assert (r.status, r.json()["__type"]) == (400, "InvalidToken")
    assert eb(sample, {"Limit": 2, "NextToken": tok}).status == 200
    sample.inject("persona", "invalid_token")
    nxt = get(sample, "persona", "page[size]=2").json()["links"]["next"]
    assert call(sample, "GET", nxt, AUTH["persona"]).status == 404
    assert call(sample, "GET", nxt, AUTH["persona"]).status == 200


def test_random_faults_seeded(sample):
    def run():
        sample.reset()
        sample.random_faults("workato", probability=0.5, seed=9)
        statuses = []
        for _ in range(30):
            try:
                statuses.append(get(sample, "workato").status)
            except (OSError, http.client.HTTPException):
                statuses.append(0)
        return statuses, [r["fault"] for r in sample.requests("workato")]
    a, b = run(), run()
    assert a == b
    faults = [f for f in a[1] if f]
    assert 5 < len(faults) < 25
    assert not {"slow", "huge_page", "endless"} & set(faults)


def test_latency_and_rate_limits(sample):
    sample.set_latency("workato", 150)
    t0 = time.time()
    get(sample, "workato")
    assert time.time() - t0 >= 0.14
    sample.reset()

    sample.set_rate_limit("activecampaign")
    statuses = [get(sample, "activecampaign") for _ in range(8)]
    limited = [r for r in statuses if r.status == 429]
    assert limited and limited[0].headers["retry-after"] == "1"
    assert limited[0].headers["ratelimit-limit"] == "5"

    sample.set_rate_limit("nango", rate=2)
    r = [get(sample, "nango") for _ in range(3)][-1]
    assert r.status == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json() == {"error": {"code": "too_many_request", "method": "GET",
                                  "path": "/connections"}}
    sample.set_rate_limit("persona", rate=1)        # clock-minute window:
    rs = [get(sample, "persona") for _ in range(3)]  # survive one boundary
    r = next(x for x in rs if x.status == 429)
    assert r.status == 429 and r.json()["errors"][0]["title"] == "Rate limit exceeded"
    assert "retry-after" not in r.headers and "ratelimit-reset" in r.headers
    sample.set_rate_limit("workato", rate=1)
    r = [get(sample, "workato") for _ in range(2)][-1]
    assert (r.status, r.json()) == (429, {"message": "Too many requests"})
    sample.set_rate_limit("eventbridge", rate=1)
    r = [eb(sample, {}) for _ in range(3)][-1]
    assert r.status == 400 and r.json()["__type"] == "ThrottlingException"
    sample.reset()
    assert get(sample, "workato").status == 200


# --------------------------------------------------------------------------
# Server behaviour

def test_keepalive_unknown_paths_and_robustness(sample):
    conn = http.client.HTTPConnection("127.0.0.1", sample.port, timeout=10)
    for p in ("activecampaign", "workato", "persona", "nango"):
        r = call(sample, "GET", LIST[p], AUTH[p], conn=conn)
        assert r.status == 200 and "content-length" in r.headers
    conn.close()
    r = call(sample, "GET", "/nothing/here")
    assert r.status == 404 and sample.requests()[-1]["provider"] == "unknown"
    r = get(sample, "activecampaign", path="/api/3/contacts")
    assert r.status == 404 and sample.requests()[-1]["provider"] == "activecampaign"

    import socket
    s = socket.create_connection(("127.0.0.1", sample.port))
    s.sendall(b"\x00\xffGARBAGE \r\n\r\n")
    s.recv(100)
    s.close()

    def boom(req, fault):
        raise RuntimeError("provider bug")
    sample.providers["workato"].handle = boom
    assert get(sample, "workato").status == 500
    del sample.providers["workato"].handle
    assert get(sample, "workato").status == 200


def test_concurrent_clients_with_random_faults(sample):
    sample.random_faults(None, probability=0.3, seed=5)
    answered = []

    def worker(i):
        conn = http.client.HTTPConnection("127.0.0.1", sample.port, timeout=10)
        for j in range(20):
            p = ("activecampaign", "nango", "persona", "workato")[(i + j) % 4]
            try:
                r = call(sample, "GET", LIST[p], AUTH[p], conn=conn)
                answered.append(r.status)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", sample.port, timeout=10)
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(sample.count(p) for p in LIST) == 160
    assert 60 < len(answered) <= 160 and 200 in answered
    sample.reset()
    assert all(get(sample, p).status == 200 for p in LIST)


def test_hostile_data_served_as_valid_json(emu):
    for p in ("eventbridge", "activecampaign", "nango", "persona", "workato"):
        objs = gen.hostile(p, 40)
        emu.set_connections(p, objs)
        if p == "eventbridge":
            names, _ = eb_walk(emu)
            assert len(names) == 40 and "" in names and "L" * 1000 in names
            continue
        if p == "persona":
            ids, _ = persona_walk(emu, 7)
            assert sorted(ids) == sorted(o["id"] for o in objs)
            continue
        q = {"activecampaign": "limit=100", "nango": "limit=100",
             "workato": "include_runtime_connections=true"}[p]
        r = get(emu, p, q)
        doc = r.json()
        rows = doc if isinstance(doc, list) else doc["connections"]
        assert len(rows) == 40 and len(r.body) > (1 << 20)


def test_generators(emu):
    objs = gen.generate("eventbridge", 100000, seed=1)
    assert len({o["Name"] for o in objs}) == 100000
    assert gen.generate("nango", 50, 2) == gen.generate("nango", 50, 2)
    ac = gen.generate("activecampaign", 5)
    assert [o["id"] for o in ac] == ["1", "2", "3", "4", "5"]
    assert all(isinstance(o["status"], str) for o in ac)
    ng = gen.generate("nango", 300)
    assert len({o["connection_id"] for o in ng}) < 300
    assert all(o["id"].startswith("cxn_") and len(o["id"]) == 20
               for o in gen.generate("persona", 50))
    wk = gen.generate("workato", 200)
    assert any(o["parent_id"] for o in wk) and len({o["name"] for o in wk}) < 200
    assert emu.generate("workato", 10, seed=3) == emu.connections("workato")


def test_sample_data_contents():
    doc = json.load(open(SAMPLE, encoding="utf-8"))
    assert {"eventbridge", "activecampaign", "nango", "persona", "workato"} <= set(doc)
    assert {"billing-stripe", "billing.zuora_v2"} <= {o["Name"] for o in doc["eventbridge"]}
    assert {"1", "2", "7", "12"} <= {o["id"] for o in doc["activecampaign"]}
    assert {1, 2, 90412, 90377} <= {o["id"] for o in doc["nango"]}
    assert {"cxn_7bWq1NzR4kTs9PdE", "cxn_2mKs8QwE5rYt1ZxB"} <= {o["id"] for o in doc["persona"]}
    assert {418207, 418233} <= {o["id"] for o in doc["workato"]}
    assert "1.6901184E9" in open(SAMPLE, encoding="utf-8").read()


# --------------------------------------------------------------------------
# Control API and CLI

def test_control_api_client(emu):
    c = EmulatorClient(emu.url).start()
    c.set_connections("workato", gen.generate("workato", 5, 1))
    c.add_connection("workato", dict(gen.make("workato", 99), id=7))
    assert len(c.connections("workato")) == 6
    assert c.remove_connection("workato", 7) == 1
    objs = c.generate("activecampaign", 12, seed=4)
    assert objs == emu.connections("activecampaign")
    get(emu, "activecampaign")
    assert c.count("activecampaign") == 1
    assert c.requests("activecampaign")[0]["path"] == "/api/3/connections"
    c.inject("activecampaign", "http503", count=1)
    assert get(emu, "activecampaign").status == 503
    c.inject("activecampaign", "wrong_shape", variant="null_body")
    assert get(emu, "activecampaign").json() is None
    c.set_rate_limit("workato", rate=1)
    assert [get(emu, "workato").status for _ in range(2)] == [200, 429]
    c.set_latency(None, 0)
    c.random_faults("nango", probability=1.0, seed=1, faults=["http500"])
    assert get(emu, "nango").status == 500
    c.clear_requests()
    assert c.requests() == []
    c.reset()
    assert get(emu, "nango").status == 200 and get(emu, "workato").status == 200
    with pytest.raises(ValueError):
        c.inject("workato", "no_such_fault")
    assert c.count("nango") == 1


def test_cli_starts_and_stops_on_sigterm(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--port-file", str(port_file),
         "--quiet", "--generate", "workato=3"],
        cwd=TESTS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        port = int(port_file.read_text())
        assert line == "emulator listening on http://127.0.0.1:%d" % port
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/api/connections?include_runtime_connections=true",
                     headers=AUTH["workato"])
        assert len(json.loads(conn.getresponse().read())) == 3
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
