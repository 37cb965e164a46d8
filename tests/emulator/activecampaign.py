"""ActiveCampaign v3 emulation: `GET /api/3/connections[/{id}]`.

Offset paging with `limit`/`offset`, `filters[service]` and
`filters[externalid]`, the `{"connections": [...], "meta": {"total": "N"}}`
envelope with numbers as strings, and a 5 req/s token bucket (the
documented per-account limit).
"""

import json

from . import gen
from .base import Provider, dumps, http_date

API_TOKEN = "ac-test-token-3b8e1f"
LIST_PATH = "/api/3/connections"
ENDLESS_TOTAL = "999999999"


def _int_param(value, default):
    """Parsed non-negative integer, the default when absent, None if bad."""
    if value is None:
        return default
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n >= 0 else None


class ActiveCampaign(Provider):
    name = "activecampaign"
    list_key = "connections"
    paging_faults = ("cursor_loop", "endless")
    limiter_spec = ("bucket", 5, 1.0, False)

    def __init__(self, emu, token=API_TOKEN):
        super().__init__(emu)
        self.token = token
        self.endless_active = False

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        ident = obj.get("id") if isinstance(obj, dict) else None
        try:
            return (0, int(ident), "")
        except (TypeError, ValueError):
            return (1, 0, str(ident))

    def matches_id(self, obj, ident):
        return str(obj.get("id")) == str(ident)

    # --- envelope -------------------------------------------------------------
    def error(self, status, detail=None):
        if status == 401:
            return self.json(401, {"message": "Authentication required"})
        if status == 403:
            return self.json(403, {"errors": [{"title": "Forbidden",
                                               "detail": "You do not have permission"}]})
        if status == 400:
            return self.json(400, {})
        if status == 404:
            return self.json(404, {"message": detail or "Not Found"})
        return self.json(status, {"message": detail or "Server Error"})

    def rate_headers(self, info):
        if not self.limiter.enabled:
            return []
        return [("RateLimit-Limit", str(self.limiter.rate)),
                ("RateLimit-Remaining", str(info[1]))]

    def throttled(self, req, info, retry_after=None, http_date_form=False, status=429):
        resp = self.json(status, {"message": "Too Many Requests"})
        wait = 1 if retry_after is None else retry_after
        resp.set_header("Retry-After", http_date(info[2] + wait) if http_date_form
                        else str(wait))
        resp.set_header("RateLimit-Limit", str(self.limiter.rate))
        resp.set_header("RateLimit-Remaining", "0")
        return resp

    def bad_cursor(self, doc):
        meta = doc.get("meta") or {}
        try:
            meta["total"] = int(meta.get("total", 0))
        except (TypeError, ValueError):
            meta["total"] = 0
        doc["meta"] = meta
        return doc

    def huge_parts(self):
        obj = gen.make("activecampaign", 0)
        obj["id"] = "@@@@@@@@@@"
        obj["links"]["customers"] = "/api/3/connections/@@@@@@@@@@/customers"
        return '{"connections":[', '],"meta":{"total":"@@N@@"}}', dumps(obj)

    # --- routing and auth -------------------------------------------------
    def route(self, req):
        if req.method not in ("GET", "HEAD"):
            return None
        if req.path in (LIST_PATH, LIST_PATH + "/"):
            return "list"
        rest = req.path[len(LIST_PATH) + 1:]
        if req.path.startswith(LIST_PATH + "/") and rest and "/" not in rest:
            return "get"
        return None

    def authenticate(self, req):
        token = req.header("api-token")
        if token is None or token == "":
            return self.error(401)
        if token != self.token:
            return self.error(403)
        return None

    def continuation(self, req):
        if not self.endless_active:
            return None
        if _int_param(req.param("offset"), 0) == 0:
            self.endless_active = False
            return None
        return "endless"

    def eligible(self, fault, req):
        if fault == "cursor_loop":
            return bool(_int_param(req.param("offset"), 0))
        return True

    # --- operations -------------------------------------------------------
    def handle(self, req, fault):
        if req.kind == "get":
            return self.get(req.path[len(LIST_PATH) + 1:])
        limit = _int_param(req.param("limit"), 20)
        offset = _int_param(req.param("offset"), 0)
        if limit is None or offset is None:
            return self.json(400, {})
        limit = min(limit or 20, 100)
        fname = fault[0] if fault else None
        if fname == "endless":
            self.endless_active = True
            items = []
            for i in range(offset, offset + limit):
                obj = gen.make("activecampaign", i)
                obj["id"] = str(1_000_000 + i)
                obj["links"]["customers"] = "/api/3/connections/%s/customers" % obj["id"]
                items.append(dumps(obj))
            total = ENDLESS_TOTAL
        else:
            service = req.param("filters[service]")
            extid = req.param("filters[externalid]")
            if service is None and extid is None:
                view = self.store.view()
            else:
                s = service.lower() if service is not None else None
                x = extid.lower() if extid is not None else None
                view = self.store.view(
                    ("filter", s, x),
                    lambda o: (s is None or str(o.get("service", "")).lower() == s)
                    and (x is None or str(o.get("externalid", "")).lower() == x))
            if fname == "cursor_loop":
                offset = max(0, offset - limit)
            items = [e.raw() for e in view[offset:offset + limit]]
            total = str(len(view))
        body = '{"connections":[%s],"meta":{"total":%s}}' % (
            ",".join(items), json.dumps(total))
        return self.json(200, body)

    def get(self, ident):
        for e in self.store.view():
            if str(e.obj.get("id")) == ident:
                obj = dict(e.obj)
                try:
                    obj["isInternal"] = int(obj.get("isInternal"))
                except (TypeError, ValueError):
                    pass
                return self.json(200, {"connection": obj})
        return self.error(404, "No Result found for Connection with id %s" % ident)
