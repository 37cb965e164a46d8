"""Nango emulation: `GET /connections` and `GET /connection` (same handler).

Strict query validation (unknown keys are a 400), page-number paging with
a default limit of 10 000, newest-first order, `X-RateLimit-*` headers,
415 for non-JSON Content-Types, and Nango's auth errors.
Also `GET /connections/{connectionId}?provider_config_key=` (single GET).
"""

import math
import re
import time
from urllib.parse import unquote

from . import gen
from .base import Provider, bracket_params, dumps, http_date, iso_to_epoch

SECRET_KEY = "3f1d8a52-9c4e-4b7a-8e21-6d0f5c9b2a71"
UUID4_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                      r"-[0-9a-f]{12}$", re.I)
TAG_KEY_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_\-./]*$")
STRING_PARAMS = ("connectionId", "search", "endUserId", "endUserOrganizationId",
                 "integrationId")
ALLOWED = set(STRING_PARAMS) | {"limit", "page"}
GET_ALLOWED = {"provider_config_key", "force_refresh", "refresh_token",
               "refresh_github_app_jwt_token"}
DEFAULT_LIMIT = 10000


def _issue(code, message, path):
    return {"code": code, "message": message, "path": path}


def _coerce_int(name, values, minimum, maximum, issues):
    """zod's z.coerce.number().int().min().max() on a query value."""
    if values is None:
        return None
    if len(values) != 1:
        issues.append(_issue("invalid_type", "Expected number, received nan", [name]))
        return None
    text = values[0].strip()
    try:
        num = float(text) if text else 0.0
    except ValueError:
        num = math.nan
    if math.isnan(num):
        issues.append(_issue("invalid_type", "Expected number, received nan", [name]))
        return None
    if not math.isfinite(num) or num != int(num):
        issues.append(_issue("invalid_type", "Expected integer, received float", [name]))
        return None
    if num < minimum:
        issues.append(_issue("too_small", "Number must be greater than or equal "
                             "to %d" % minimum, [name]))
        return None
    if maximum is not None and num > maximum:
        issues.append(_issue("too_big", "Number must be less than or equal to %d"
                             % maximum, [name]))
        return None
    return int(num)


def _like(pattern):
    """SQL ILIKE '%pattern%' as a compiled regex (% and _ are wildcards)."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.I | re.S)


class Nango(Provider):
    name = "nango"
    list_key = "connections"
    paging_faults = ("cursor_loop", "endless")
    limiter_spec = ("window", 200, 60.0, False)
    shape_variants = ("list_not_array", "missing_fields", "null_object", "null_body")

    def __init__(self, emu, secret_keys=(SECRET_KEY,)):
        super().__init__(emu)
        self.keys = set(secret_keys)
        self.endless_active = False

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        ident = obj.get("id") if isinstance(obj, dict) else None
        n = ident if isinstance(ident, (int, float)) and not isinstance(ident, bool) else 0
        return (-iso_to_epoch(obj.get("created")), -n)

    def matches_id(self, obj, ident):
        return str(obj.get("id")) == str(ident)

    # --- envelope -------------------------------------------------------------
    def fail(self, status, code, message=None, **extra):
        err = {"code": code}
        if message is not None:
            err["message"] = message
        err.update(extra)
        resp = self.json(status, {"error": err})
        remaining, reset = self.limiter.peek()
        for k, v in self._headers(remaining, reset):
            resp.set_header(k, v)
        return resp

    def error(self, status, detail=None):
        if status == 401:
            return self.fail(401, "unknown_account", detail or
                             "Authentication failed. The provided secret/public "
                             "key does not match any account.")
        if status == 403:
            return self.fail(403, "forbidden", "Insufficient scope. Required one "
                             "of: environment:connections:list, "
                             "environment:connections:list_credentials")
        if status == 404:
            return self.fail(404, "not_found", detail or "Route not found")
        if status == 400:
            return self.fail(400, "invalid_query_params", detail)
        return self.fail(status, "server_error", detail or
                         "An unexpected error occurred")

    def _headers(self, remaining, reset):
        return [("X-RateLimit-Limit", str(self.limiter.rate)),
                ("X-RateLimit-Remaining", str(remaining)),
                ("X-RateLimit-Reset", str(int(math.ceil(reset))))]

    def rate_headers(self, info):
        return self._headers(info[1], info[2])

    def throttled(self, req, info, retry_after=None, http_date_form=False, status=429):
        resp = self.json(status, {"error": {"code": "too_many_request",
                                            "method": req.method,
                                            "path": req.path}})
        now = time.time()
        reset = info[2] if retry_after is None else now + retry_after
        wait = max(1, int(math.ceil(reset - now)))
        for k, v in self._headers(0, reset):
            resp.set_header(k, v)
        resp.set_header("Retry-After", http_date(now + wait) if http_date_form
                        else str(wait))
        return resp

    def huge_parts(self):
        obj = gen.make("nango", 0)
        obj["id"] = 0
        obj["connection_id"] = "huge-@@@@@@@@@@"
        text = dumps(obj).replace('"id":0,', '"id":@@@@@@@@@@,', 1)
        return '{"connections":[', "]}", text

    # --- routing and auth -------------------------------------------------
    def route(self, req):
        if req.method not in ("GET", "HEAD"):
            return None
        for base in ("/connections", "/connection"):
            if req.path in (base, base + "/"):
                return "list"
            if req.path.startswith(base + "/"):
                return "get"
        return None

    def authenticate(self, req):
        ctype = req.header("content-type")
        if ctype and not ctype.strip().lower().startswith("application/json"):
            return self.fail(415, "invalid_content_type",
                             "Content-Type must be application/json")
        auth = req.header("authorization")
        if auth is None:
            return self.fail(401, "missing_auth_header", "Authentication failed. "
                             "The request is missing the Authorization header.")
        key = req.bearer()
        if not UUID4_RE.match(key or ""):
            return self.fail(401, "invalid_secret_key_format", "Authentication "
                             "failed. The provided secret key is not a UUID v4.")
        if key.lower() not in self.keys:
            return self.error(401)
        return None

    def _page(self, req):
        try:
            page = int(req.param("page", "0"))
        except ValueError:
            page = 0
        return page

    def continuation(self, req):
        if not self.endless_active:
            return None
        if self._page(req) <= 0:
            self.endless_active = False
            return None
        return "endless"

    def eligible(self, fault, req):
        if fault == "cursor_loop":
            return self._page(req) > 0
        return True

    # --- operations -------------------------------------------------------
    def validate(self, params):
        """(filters, limit, page) or an error Response."""
        issues = []
        tags_raw = bracket_params(params, "tags")
        unknown = [k for k in params if k not in ALLOWED and k not in
                   ["tags[%s]" % t for t in tags_raw]]
        nested = [k for k in unknown if k.startswith("tags[")]
        unknown = [k for k in unknown if k not in nested]
        if "tags" in unknown:
            unknown.remove("tags")
            issues.append(_issue("invalid_type", "Expected object, received string",
                                 ["tags"]))
        for k in nested:
            issues.append(_issue("invalid_type", "Expected string, received object",
                                 ["tags", k[5:].split("]")[0]]))
        if unknown:
            issues.append(_issue("unrecognized_keys", "Unrecognized key(s) in "
                                 "object: %s" % ", ".join("'%s'" % k for k in unknown),
                                 []))
        filters = {}
        for name in STRING_PARAMS:
            values = params.get(name)
            if values is None:
                continue
            if len(values) != 1:
                issues.append(_issue("invalid_type", "Expected string, received array",
                                     [name]))
            elif not values[0]:
                issues.append(_issue("too_small", "String must contain at least 1 "
                                     "character(s)", [name]))
            elif len(values[0]) > 255 and name != "integrationId":
                issues.append(_issue("too_big", "String must contain at most 255 "
                                     "character(s)", [name]))
            else:
                filters[name] = values[0]
        tags = {}
        if len(tags_raw) > 10:
            issues.append(_issue("too_big", "Object must have at most 10 key(s)", ["tags"]))
        for key, values in tags_raw.items():
            if not TAG_KEY_RE.match(key) or len(key) > 64:
                issues.append(_issue("invalid_key", "Invalid key in record", ["tags", key]))
            elif len(values) != 1:
                issues.append(_issue("invalid_type", "Expected string, received array",
                                     ["tags", key]))
            elif not 1 <= len(values[0]) <= 255:
                issues.append(_issue("too_small" if not values[0] else "too_big",
                                     "String must contain between 1 and 255 "
                                     "character(s)", ["tags", key]))
            else:
                tags[key.lower()] = values[0]
        limit = _coerce_int("limit", params.get("limit"), 1, 2000, issues)
        page = _coerce_int("page", params.get("page"), 0, None, issues)
        if issues:
            return self.fail(400, "invalid_query_params", errors=issues)
        filters["tags"] = tags
        return filters, DEFAULT_LIMIT if limit is None else limit, page or 0

    def _predicate(self, f):
        cid = f.get("connectionId")
        search = _like(f["search"]) if "search" in f else None
        euid = f.get("endUserId")
        eorg = f.get("endUserOrganizationId")
        integ = set(f["integrationId"].split(",")) if "integrationId" in f else None
        tags = f["tags"]

        def pred(o):
            eu = o.get("end_user") if isinstance(o.get("end_user"), dict) else {}
            if cid is not None and o.get("connection_id") != cid:
                return False
            if integ is not None and o.get("provider_config_key") not in integ:
                return False
            if euid is not None and eu.get("id") != euid:
                return False
            if eorg is not None:
                org = eu.get("organization")
                if not isinstance(org, dict) or org.get("id") != eorg:
                    return False
            if search is not None and not any(
                    isinstance(v, str) and search.search(v) for v in
                    (o.get("connection_id"), eu.get("display_name"), eu.get("email"))):
                return False
            if tags:
                have = o.get("tags") if isinstance(o.get("tags"), dict) else {}
                have = {str(k).lower(): v for k, v in have.items()}
                if any(have.get(k) != v for k, v in tags.items()):
                    return False
            return True
        return pred

    def handle(self, req, fault):
        if req.kind == "get":
            return self.get(req)
        parsed = self.validate(req.params)
        if not isinstance(parsed, tuple):
            return parsed
        filters, limit, page = parsed
        fname = fault[0] if fault else None
        if fname == "endless":
            self.endless_active = True
            items = []
            for i in range(page * limit, page * limit + limit):
                obj = gen.make("nango", i)
                obj["id"] = 50_000_000 + i
                obj["connection_id"] = "endless-%09d" % i
                items.append(dumps(obj))
        else:
            key = repr(sorted((k, v if not isinstance(v, dict) else sorted(v.items()))
                              for k, v in filters.items()))
            trivial = filters == {"tags": {}}
            view = self.store.view() if trivial else \
                self.store.view(("filter", key), self._predicate(filters))
            if fname == "cursor_loop":
                page = max(0, page - 1)
            start = page * limit
            items = [e.raw() for e in view[start:start + limit]]
        return self.json(200, '{"connections":[' + ",".join(items) + "]}")

    def get(self, req):
        ident = unquote(req.path.split("/", 2)[2].rstrip("/"))
        issues = []
        unknown = [k for k in req.params if k not in GET_ALLOWED]
        if unknown:
            issues.append(_issue("unrecognized_keys", "Unrecognized key(s) in "
                                 "object: %s" % ", ".join("'%s'" % k for k in unknown), []))
        pck = req.param("provider_config_key")
        if not pck:
            issues.append(_issue("invalid_type", "Required", ["provider_config_key"]))
        if issues:
            return self.fail(400, "invalid_query_params", errors=issues)
        for e in self.store.view():
            o = e.obj
            if o.get("connection_id") == ident and o.get("provider_config_key") == pck:
                full = {k: v for k, v in o.items() if k != "created"}
                full.update({
                    "connection_config": {}, "webhook_url_override": None,
                    "created_at": o.get("created"), "updated_at": o.get("created"),
                    "last_fetched_at": None, "credentials": {},
                })
                return self.json(200, full)
        return self.fail(404, "not_found", "Failed to find connection")
