"""Synthetic connection data for the emulator.

`generate(provider, n, seed)` returns n realistic, deterministic objects in
the exact shape each API documents for a list response.  `hostile(provider, n)` returns objects whose names/ids are designed
to break file systems, URL builders and JSON parsers, while every other
field stays valid.  `make(provider, i, seed)` builds the i-th object alone
(used for the synthetic pages of the `endless` fault).
"""

import random
from datetime import datetime, timedelta, timezone

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
PERSONA_ORG = "org_Q4mTz8Yw1Lk2"      # the org the Persona key belongs to
PERSONA_ENV = "env_Jd7Pq3Xr9Ha5"

_TEAMS = ["billing", "crm", "ops", "growth", "data", "sec", "hr", "finance",
          "support", "platform", "mkt", "eng"]
_SERVICES = ["stripe", "zuora", "salesforce", "hubspot", "slack", "github",
             "pagerduty", "datadog", "okta", "jira", "zendesk", "twilio"]
_EB_STATES = (["AUTHORIZED"] * 11 + ["ACTIVE"] * 4 + ["DEAUTHORIZED"] * 2 +
              ["FAILED_CONNECTIVITY", "AUTHORIZING", "CREATING", "UPDATING",
               "DEAUTHORIZING", "DELETING"])
_EB_REASONS = {
    "DEAUTHORIZED": "Credentials were removed by DeauthorizeConnection",
    "FAILED_CONNECTIVITY": "Unable to reach the private endpoint",
    "AUTHORIZING": "Waiting for the OAuth token endpoint",
    "CREATING": "Connection is being created",
    "UPDATING": "Connection is being updated",
    "DEAUTHORIZING": "Removing stored credentials",
    "DELETING": "Connection is being deleted",
}
_EB_AUTH = ["API_KEY", "API_KEY", "OAUTH_CLIENT_CREDENTIALS", "BASIC"]
_REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]

_COMPANIES = ["Acme, Inc.", "Northwind Outlet", "Globex", "Initech",
              "Umbrella Corp", "Hooli", "Stark Industries", "Wayne Enterprises",
              "Café Zürich", "Soylent", "Vandelay Industries", "Pied Piper",
              "Wonka Chocolates", "Tyrell", "Cyberdyne", "Foo, Inc.",
              "Müller & Söhne GmbH", "東京ストア", "Oceanic Airlines", "Gringotts"]
_AC_SERVICES = ["shopify", "bigcommerce", "woocommerce", "fooCommerce",
                "tinyshop", "magento", "squarespace", "stripe"]

_NANGO_INTEGRATIONS = [
    ("hubspot-prod", "hubspot"), ("hubspot-sandbox", "hubspot"),
    ("slack-nango-community", "slack"), ("github-app", "github-app"),
    ("salesforce prod", "salesforce"), ("google:drive", "google-drive"),
    ("notion@eu", "notion"), ("zendesk~support", "zendesk"),
    ("jira", "jira"), ("linear", "linear"),
]
_NANGO_ORGS = ["acme", "globex", "initech", "hooli", "umbrella", "stark"]

_WK_APPS = [("salesforce", "Salesforce"), ("google_sheets", "Google Sheets"),
            ("jira", "Jira"), ("slack", "Slack"), ("netsuite", "NetSuite"),
            ("workday", "Workday"), ("zendesk", "Zendesk"),
            ("snowflake", "Snowflake")]
_WK_ENVS = ["Production", "Sandbox", "Staging", "EU", "Café Zürich"]

_EPOCH0 = 1577836800            # 2020-01-01T00:00:00Z


def _rid(rng, n):
    return "".join(rng.choices(ALNUM, k=n))


def _uuid(rng):
    h = "%032x" % rng.getrandbits(128)
    return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16],
                                 "89ab"[int(h[16], 16) & 3], h[17:20], h[20:32])


def _iso_ms(epoch):
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _iso_nango(epoch):
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    frac = ("%06d" % dt.microsecond).rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "+00:00"


def _iso_local(epoch):
    """ActiveCampaign style: US Eastern local time with its offset."""
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    off = -4 if 3 <= dt.month <= 10 else -5          # crude DST
    local = dt + timedelta(hours=off)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + "-%02d:00" % -off


# --------------------------------------------------------------------------
# One object per provider

def _eventbridge(rng, i, region="us-east-1", account="210987654321"):
    sep = rng.choice("-._")
    name = "%s%s%s%s%06d" % (rng.choice(_TEAMS), sep, rng.choice(_SERVICES),
                             rng.choice("-_."), i)
    state = rng.choice(_EB_STATES)
    created = _EPOCH0 + i * 97 + rng.randrange(90) + rng.randrange(1000) / 1000
    modified = created + rng.randrange(0, 10_000_000) + rng.randrange(1000) / 1000
    obj = {
        "ConnectionArn": "arn:aws:events:%s:%s:connection/%s/%s"
                         % (region, account, name, _uuid(rng)),
        "Name": name,
        "ConnectionState": state,
    }
    if state in _EB_REASONS:
        obj["StateReason"] = _EB_REASONS[state]
    obj["AuthorizationType"] = rng.choice(_EB_AUTH)
    obj["CreationTime"] = round(created, 3)
    obj["LastModifiedTime"] = round(modified, 3)
    if state not in ("CREATING", "AUTHORIZING"):
        obj["LastAuthorizedTime"] = round(modified + rng.randrange(1000) / 1000, 3)
    return obj


def _activecampaign(rng, i):
    ident = str(i + 1)
    service = rng.choice(_AC_SERVICES)
    company = rng.choice(_COMPANIES)
    slug = "".join(c for c in company.lower() if c.isalnum())[:12] or "shop"
    created = _EPOCH0 + i * 311 + rng.randrange(300)
    updated = created + rng.randrange(0, 5_000_000)
    synced = rng.random() < 0.8
    return {
        "service": service,
        "externalid": rng.choice(["%s-%d.myshopify.com" % (slug, i),
                                  "owner%d@%s.example" % (i, slug),
                                  "store-%s.mybigcommerce.com" % _rid(rng, 5).lower()]),
        "name": company,
        "isInternal": rng.choice(["0", "0", "1"]),
        "status": rng.choice(["1", "1", "1", "0"]),
        "syncStatus": rng.choice(["0", "0", "1"]),
        "lastSync": _iso_local(updated) if synced else None,
        "logoUrl": rng.choice(["", "https://%s.example/logo.png" % service]),
        "linkUrl": rng.choice(["", "https://%s.example/admin/integrations" % service]),
        "listId": str(rng.choice([0, 0, 1, 2, 4, 7])),
        "cdate": _iso_local(created),
        "udate": _iso_local(updated),
        "links": {"customers": "/api/3/connections/%s/customers" % ident},
        "id": ident,
    }


def _nango(rng, i, connection_id=None, integration=None):
    pck, provider = integration or rng.choice(_NANGO_INTEGRATIONS)
    org = rng.choice(_NANGO_ORGS)
    if connection_id is None:
        connection_id = rng.choice(["%s-%d", "%s/%d", "%s user %d", "%s:%d"]) % (org, i)
    created = _EPOCH0 + i * 53 + rng.randrange(50) + rng.randrange(1, 1_000_000) / 1e6
    tags = {"organization_id": "org-%s" % org}
    if rng.random() < 0.5:
        tags["end_user_email"] = "ops%d@%s.example" % (i % 97, org)
    end_user = None
    if rng.random() < 0.25:
        end_user = {"id": "u_%d" % (i * 7 % 100000),
                    "display_name": rng.choice([None, org.title() + " Ops"]),
                    "email": "ops@%s.example" % org,
                    "tags": None,
                    "organization": rng.choice([None, {"id": "org-" + org,
                                                       "display_name": org.title()}])}
    errors = []
    if rng.random() < 0.1:
        errors.append({"type": rng.choice(["auth", "sync"]), "log_id": _rid(rng, 20)})
    return {
        "id": 10000 + i,
        "connection_id": connection_id,
        "provider_config_key": pck,
        "provider": provider,
        "errors": errors,
        "end_user": end_user,
        "tags": tags,
        "metadata": rng.choice([None, {"portal_id": rng.randrange(10**7)}]),
        "created": _iso_nango(created),
    }


def _persona(rng, i, ident=None):
    outbound = rng.random() < 0.5
    other = "org_" + _rid(rng, 12)
    created = _EPOCH0 + i * 71 + rng.randrange(60)
    creator = rng.choice([("api-key", "api_"), ("user", "user_")])
    return {
        "type": "connect/connection",
        "id": ident or "cxn_" + _rid(rng, 16),
        "attributes": {
            "status": rng.choice(["pending", "active", "active", "inactive"]),
            "source-organization-id": PERSONA_ORG if outbound else other,
            "destination-organization-id": other if outbound else PERSONA_ORG,
            "created-at": _iso_ms(created),
            "updated-at": _iso_ms(created + rng.randrange(0, 3_000_000)),
        },
        "relationships": {
            "creator": {"data": {"type": creator[0], "id": creator[1] + _rid(rng, 12)}}
        },
    }


def _workato(rng, i, parent=None):
    app, title = (parent["application"], None) if parent else rng.choice(_WK_APPS)
    name = parent["name"] if parent else "%s – %s" % (title, rng.choice(_WK_ENVS))
    created = _EPOCH0 + i * 131 + rng.randrange(120) + rng.randrange(1000) / 1000
    updated = created + rng.randrange(0, 8_000_000)
    status = rng.choice(["success", "success", "success", "failed", "exception", None])
    lost = status == "failed" and rng.random() < 0.5
    return {
        "id": 400000 + i,
        "application": app,
        "name": name,
        "description": ("runtime connection for customer %d" % i) if parent
        else rng.choice([None, "Shared %s connection" % app]),
        "authorized_at": _iso_ms(updated) if status == "success" else None,
        "authorization_status": status,
        "authorization_error": "invalid_grant: expired access/refresh token"
        if status == "failed" else ("Connection refused" if status == "exception" else None),
        "created_at": _iso_ms(created),
        "updated_at": _iso_ms(updated),
        "external_id": ("cust-%d" % i) if parent else rng.choice([None, None, "ext-%d" % i]),
        "folder_id": parent["folder_id"] if parent else 90000 + rng.randrange(12),
        "connection_lost_at": _iso_ms(updated - 0.02) if lost else None,
        "connection_lost_reason": "Token refresh failed" if lost else None,
        "parent_id": parent["id"] if parent else None,
        "tags": ["tag-%s-%s" % (_rid(rng, 8), _rid(rng, 6))
                 for _ in range(rng.choice([0, 0, 1, 2]))],
    }


# --------------------------------------------------------------------------
# Public API

def generate(provider, n, seed=1):
    """n deterministic objects of `provider`'s API shape."""
    rng = random.Random("%s:%s" % (provider, seed))
    if provider == "eventbridge":
        region = rng.choice(_REGIONS)
        return [_eventbridge(rng, i, region) for i in range(n)]
    if provider == "activecampaign":
        return [_activecampaign(rng, i) for i in range(n)]
    if provider == "nango":
        out = []
        for i in range(n):
            if out and rng.random() < 0.15:          # same id, other integration
                prev = out[rng.randrange(len(out))]
                others = [x for x in _NANGO_INTEGRATIONS
                          if x[0] != prev["provider_config_key"]]
                out.append(_nango(rng, i, prev["connection_id"], rng.choice(others)))
            else:
                out.append(_nango(rng, i))
        return out
    if provider == "persona":
        seen, out = set(), []
        for i in range(n):
            obj = _persona(rng, i)
            while obj["id"] in seen:
                obj["id"] = "cxn_" + _rid(rng, 16)
            seen.add(obj["id"])
            out.append(obj)
        return out
    if provider == "workato":
        out, parents = [], []
        for i in range(n):
            if parents and rng.random() < 0.2:
                out.append(_workato(rng, i, parents[rng.randrange(len(parents))]))
            else:
                obj = _workato(rng, i)
                parents.append(obj)
                out.append(obj)
        return out
    raise ValueError("unknown provider %r" % provider)


def make(provider, i, seed=0):
    """The i-th synthetic object alone (ids derived from i, unique)."""
    rng = random.Random("%s:%s:%s" % (provider, seed, i))
    if provider == "eventbridge":
        return _eventbridge(rng, i)
    if provider == "activecampaign":
        return _activecampaign(rng, i)
    if provider == "nango":
        return _nango(rng, i)
    if provider == "persona":
        return _persona(rng, i)
    if provider == "workato":
        obj = _workato(rng, i)
        obj["parent_id"] = None
        return obj
    raise ValueError("unknown provider %r" % provider)


def _deep(depth):
    v = "bottom"
    for k in range(depth):
        v = {"level": depth - k, "next": v} if k % 2 else [v]
    return v


# Hostile names: each entry is (label, text).
HOSTILE_NAMES = [
    ("slash", "a/b/c"),
    ("dot", "."),
    ("dotdot", ".."),
    ("dash", "-rf --no-preserve-root"),
    ("control", "ctrl\x01\x02\x1f\x7f\nnew\tline\r"),
    ("replacement", "bad-utf8-\ufffd\ufffd"),
    ("empty", ""),
    ("long", "L" * 1000),
    ("same", "same-name"),
    ("deep", "deeply-nested"),
    ("huge", "huge-string"),
    ("hidden", ".env"),
    ("quotes", "spaces \"double\" 'single' \\back\\slash {braces} [x]|$@"),
    ("surrogate", "lone-surrogate-\udcff"),
    ("traversal", "%2F..%2Fetc%2Fpasswd"),
    ("nul", "nul\x00byte"),
    ("unicode", "🔥 Café Zürich 日本語"),
    ("same", "same-name"),
]


def hostile(provider, n, seed=7):
    """n objects with hostile names/ids (see HOSTILE_NAMES), cycling.

    The hostile text goes into the field a client is most likely to use
    for a file name: EventBridge `Name` (and the ARN), ActiveCampaign and
    Workato `name`, Nango `connection_id`, Persona `id` (kept unique, as
    Persona ids are cursors).  Pattern "deep" adds a 200-deep nested value
    under the extra key `x-nested`; pattern "huge" (first occurrence only)
    puts a 1 MB string into a descriptive string field.
    """
    base = generate(provider, n, seed)
    out, seen = [], set()
    for i, obj in enumerate(base):
        label, text = HOSTILE_NAMES[i % len(HOSTILE_NAMES)]
        if provider == "eventbridge":
            obj["Name"] = text
            arn = obj["ConnectionArn"].split("/")
            obj["ConnectionArn"] = "%s/%s/%s" % (arn[0], text, arn[-1])
        elif provider in ("activecampaign", "workato"):
            obj["name"] = text
        elif provider == "nango":
            obj["connection_id"] = text
        elif provider == "persona":
            ident = "" if label == "empty" else "cxn_" + text
            if ident in seen:
                ident = "cxn_%s~%d" % (text, i)
            seen.add(ident)
            obj["id"] = ident
        if label == "deep":
            obj["x-nested"] = _deep(200)
        if label == "huge" and i < len(HOSTILE_NAMES):
            big = "H" * (1 << 20)
            if provider == "eventbridge":
                obj["StateReason"] = big
            elif provider == "activecampaign":
                obj["linkUrl"] = big
            elif provider == "nango":
                obj["metadata"] = {"note": big}
            elif provider == "persona":
                obj["attributes"]["note"] = big
            else:
                obj["description"] = big
        out.append(obj)
    return out
