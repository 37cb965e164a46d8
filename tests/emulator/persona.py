"""Persona Connect emulation: `GET /api/v1/connect/connections[/{id}]`.

Cursor paging by object id (`page[after]`, `page[before]`, `page[size]`)
over a newest-first list, root-relative `links`, `filter[...]`, sparse
fieldsets, `Key-Inflection`, and the `RateLimit-*` / `Request-Id` /
`Persona-*` headers.
"""

import math
import random
import re
import time
from bisect import bisect_left, bisect_right
from urllib.parse import unquote

from . import gen
from .base import Provider, dumps, http_date, iso_to_epoch, pct

API_KEY = "persona_sandbox_connfs_test_9a7c"
LIST_PATH = "/api/v1/connect/connections"
AUTH_TITLE = "Must be authenticated to access this endpoint"
ENDLESS_RE = re.compile(r"^cxn_END(\d{3})(\d{10})$")
DEST_KEYS = ("filter[destination-organization-id]",
             "filter[destinationOrganizationId]",
             "filter[destination_organization_id]")
FIELDS_KEY = "fields[connect/connection]"


def inflect(key, mode):
    """Convert a kebab/snake/camel key to the requested inflection."""
    words = re.split(r"[-_]|(?<=[a-z0-9])(?=[A-Z])", key)
    words = [w.lower() for w in words if w] or [key]
    if mode == "camel":
        return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])
    return ("_" if mode == "snake" else "-").join(words)


def _deep_keys(v, mode):
    if isinstance(v, dict):
        return {inflect(k, mode): _deep_keys(x, mode) for k, x in v.items()}
    if isinstance(v, list):
        return [_deep_keys(x, mode) for x in v]
    return v


def shaped(obj, mode, fields=None):
    """The object with inflected attribute/relationship keys (sparse too)."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    attrs = obj.get("attributes")
    if isinstance(attrs, dict):
        if fields is not None:
            attrs = {k: v for k, v in attrs.items() if inflect(k, "kebab") in fields}
        out["attributes"] = _deep_keys(attrs, mode) if mode != "kebab" else attrs
    rels = obj.get("relationships")
    if isinstance(rels, dict) and mode != "kebab":
        out["relationships"] = {inflect(k, mode): v for k, v in rels.items()}
    return out


class Persona(Provider):
    name = "persona"
    list_key = "data"
    paging_faults = ("cursor_loop", "endless", "invalid_token")
    limiter_spec = ("window", 300, 60.0, True)

    def __init__(self, emu, api_key=API_KEY, org_id=gen.PERSONA_ORG,
                 env_id=gen.PERSONA_ENV):
        super().__init__(emu)
        self.key, self.org_id, self.env_id = api_key, org_id, env_id
        self._index = (None, None)
        self._positions = {}

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        attrs = obj.get("attributes") if isinstance(obj, dict) else None
        created = attrs.get("created-at") if isinstance(attrs, dict) else None
        return (-iso_to_epoch(created), str(obj.get("id")))

    def matches_id(self, obj, ident):
        return obj.get("id") == ident

    # --- envelope -------------------------------------------------------------
    def json(self, status, doc, headers=None):
        resp = super().json(status, doc, headers)
        resp.set_header("Request-Id", "req_" + "".join(random.choices(gen.ALNUM, k=24)))
        return resp

    def fail(self, status, title, details=None):
        err = {"title": title}
        if details is not None:
            err["details"] = details
        return self.json(status, {"errors": [err]})

    def error(self, status, detail=None):
        titles = {400: "Bad Request", 401: AUTH_TITLE, 403: "Forbidden",
                  404: "Record not found", 409: "Conflict",
                  422: "Unprocessable entity", 500: "Internal Server Error",
                  502: "Bad Gateway", 503: "Service Unavailable",
                  504: "Gateway Timeout"}
        if status == 404 and detail is None:
            return self.fail(404, "Record not found")
        return self.fail(status, titles.get(status, "Error"),
                         detail or ("Token is invalid" if status == 401 else
                                    titles.get(status, "Error")))

    def rate_headers(self, info):
        reset = max(0, int(math.ceil(info[2] - time.time())))
        return [("RateLimit-Limit", str(self.limiter.rate)),
                ("RateLimit-Remaining", str(info[1])),
                ("RateLimit-Reset", str(reset)),
                ("Persona-Organization-Id", self.org_id),
                ("Persona-Environment-Id", self.env_id)]

    def throttled(self, req, info, retry_after=None, http_date_form=False, status=429):
        resp = self.fail(status, "Rate limit exceeded", "You have hit your rate "
                         "limit of %d requests / min." % self.limiter.rate)
        for k, v in self.rate_headers((False, 0, info[2])):
            resp.set_header(k, v)
        if retry_after is not None:
            resp.set_header("Retry-After", http_date(time.time() + retry_after)
                            if http_date_form else str(retry_after))
        return resp

    def bad_cursor(self, doc):
        links = doc.get("links") or {}
        links["next"] = {"href": links.get("next") or LIST_PATH}
        doc["links"] = links
        return doc

    def huge_parts(self):
        obj = gen.make("persona", 0, seed=1)
        obj["id"] = "cxn_HUGEPG@@@@@@@@@@"
        return '{"data":[', '],"links":{"prev":null,"next":null}}', dumps(obj)

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
        if req.header("authorization") is None:
            return self.fail(401, AUTH_TITLE, "No API key was provided")
        if req.bearer() != self.key:
            return self.fail(401, AUTH_TITLE, "Token is invalid")
        return None

    def continuation(self, req):
        m = ENDLESS_RE.match(req.param("page[after]") or "")
        if m and int(m.group(1)) == self.endless_epoch % 1000:
            return "endless"
        return None

    def eligible(self, fault, req):
        if fault == "cursor_loop":
            return bool(req.param("page[after]"))
        if fault == "invalid_token":
            return bool(req.param("page[after]") or req.param("page[before]"))
        return True

    # --- helpers ----------------------------------------------------------------
    def _mode(self, req):
        mode = (req.header("key-inflection") or "kebab").strip().lower()
        return mode if mode in ("camel", "kebab", "snake") else "kebab"

    def _fields(self, req):
        value = req.param(FIELDS_KEY)
        if value is None:
            return None
        return {inflect(f.strip(), "kebab") for f in value.split(",") if f.strip()}

    def _render(self, entry_or_obj, mode, fields):
        if fields is None and hasattr(entry_or_obj, "raw"):
            if mode == "kebab":
                return entry_or_obj.raw()
            return entry_or_obj.variant(mode, lambda o: shaped(o, mode))
        obj = getattr(entry_or_obj, "obj", entry_or_obj)
        return dumps(shaped(obj, mode, fields))

    def _link(self, req, size, cursor_key, cursor, filters):
        parts = []
        if cursor_key:
            parts.append("page%%5B%s%%5D=%s" % (cursor_key, pct(cursor)))
        parts.append("page%%5Bsize%%5D=%d" % size)
        for key, value in filters:
            parts.append("%s=%s" % (pct(key), pct(value)))
        if req.param(FIELDS_KEY) is not None:
            parts.append("%s=%s" % (pct(FIELDS_KEY), pct(req.param(FIELDS_KEY))))
        return LIST_PATH + "?" + "&".join(parts)

    def _full_index(self):
        version = self.store.version
        if self._index[0] != version:
            view = self.store.view()
            index = {}
            by_entry = {}
            for pos, e in enumerate(view):
                index.setdefault(e.obj.get("id"), pos)
                by_entry[id(e)] = pos
            self._index = (version, (index, by_entry))
            self._positions = {}
        return self._index[1]

    # --- operations -------------------------------------------------------
    def handle(self, req, fault):
        mode, fields = self._mode(req), self._fields(req)
        if req.kind == "get":
            ident = unquote(req.path[len(LIST_PATH) + 1:])
            for e in self.store.view():
                if e.obj.get("id") == ident:
                    return self.json(200, '{"data":%s}' % self._render(e, mode, fields))
            return self.error(404)
        size_text = req.param("page[size]", "10")
        try:
            size = int(size_text)
        except ValueError:
            size = 0
        if not 1 <= size <= 100:
            return self.fail(400, "Bad Request", "page[size] must be between 1 and 100")
        status = req.param("filter[status]")
        dest = next((req.param(k) for k in DEST_KEYS if req.param(k) is not None), None)
        filters = []
        if status is not None:
            filters.append(("filter[status]", status))
        if dest is not None:
            filters.append(("filter[destination-organization-id]", dest))
        after, before = req.param("page[after]"), req.param("page[before]")
        fname = fault[0] if fault else None
        if fname == "invalid_token":
            return self.error(404)
        if fname == "endless":
            return self._endless(req, size, filters, mode, fields)
        index, by_entry = self._full_index()
        if not filters:
            view = self.store.view()
            vpos = None
        else:
            def pred(o):
                a = o.get("attributes") if isinstance(o.get("attributes"), dict) else {}
                return ((status is None or a.get("status") == status) and
                        (dest is None or a.get("destination-organization-id") == dest))
            key = ("filter", status, dest)
            view = self.store.view(key, pred)
            vpos = self._positions.get(key)
            if vpos is None or len(vpos) != len(view):
                vpos = [by_entry.get(id(e), 0) for e in view]
                self._positions[key] = vpos
        positions = vpos if vpos is not None else range(len(view))
        if after is not None or before is not None:
            cursor = after if after is not None else before
            if cursor not in index:
                return self.error(404)
            full = index[cursor]
            if after is not None:
                start = bisect_right(positions, full)
                end = min(len(view), start + size)
            else:
                end = bisect_left(positions, full)
                start = max(0, end - size)
        else:
            start, end = 0, min(len(view), size)
        page = view[start:end]
        nxt = prev = None
        if page and end < len(view):
            nxt = self._link(req, size, "after", page[-1].obj.get("id"), filters)
        if page and start > 0:
            prev = self._link(req, size, "before", page[0].obj.get("id"), filters)
        if fname == "cursor_loop":
            nxt = self._link(req, size, "after", after, filters)
        return self._page([self._render(e, mode, fields) for e in page], prev, nxt)

    def _page(self, items, prev, nxt):
        return self.json(200, '{"data":[%s],"links":{"prev":%s,"next":%s}}' % (
            ",".join(items), dumps(prev), dumps(nxt)))

    def _endless(self, req, size, filters, mode, fields):
        m = ENDLESS_RE.match(req.param("page[after]") or "")
        start = int(m.group(2)) + 1 if m else 0
        items, last = [], None
        for i in range(start, start + size):
            obj = gen.make("persona", i)
            obj["id"] = last = "cxn_END%03d%010d" % (self.endless_epoch % 1000, i)
            items.append(self._render(obj, mode, fields))
        return self._page(items, None, self._link(req, size, "after", last, filters))
