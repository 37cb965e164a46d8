"""Workato Developer API emulation: `GET /api/connections`.

One bare JSON array, no paging.  Filters `folder_id`,
`parent_id`, `project_id`, `external_id`, `updated_after`; runtime child
connections only with `include_runtime_connections=true`; the `tags` key
only with `includes[]=tags`.  60 list requests per minute when limited.
"""

import math
import time

from . import gen
from .base import Provider, dumps, http_date, iso_to_epoch

API_TOKEN = "wrk-test-token-61c0d4"
LIST_PATH = "/api/connections"


def _no_tags(obj):
    return {k: v for k, v in obj.items() if k != "tags"}


def _with_tags(obj):
    if "tags" in obj:
        return obj
    out = dict(obj)
    out["tags"] = []
    return out


class Workato(Provider):
    name = "workato"
    list_key = None
    paging_faults = ()
    limiter_spec = ("window", 60, 60.0, False)
    shape_variants = ("list_not_array", "missing_fields", "null_object", "null_body")

    def __init__(self, emu, token=API_TOKEN):
        super().__init__(emu)
        self.token = token

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        ident = obj.get("id") if isinstance(obj, dict) else None
        if isinstance(ident, (int, float)) and not isinstance(ident, bool):
            return (0, ident, "")
        return (1, 0, str(ident))

    def matches_id(self, obj, ident):
        return str(obj.get("id")) == str(ident)

    # --- envelope -------------------------------------------------------------
    def error(self, status, detail=None):
        default = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden",
                   404: "Not found", 429: "Too many requests"}
        return self.json(status, {"message": detail or default.get(status, "Server error")})

    def throttled(self, req, info, retry_after=None, http_date_form=False, status=429):
        resp = self.error(status, "Too many requests")
        wait = retry_after if retry_after is not None else \
            max(1, int(math.ceil(info[2] - time.time())))
        resp.set_header("Retry-After", http_date(time.time() + wait)
                        if http_date_form else str(wait))
        return resp

    def huge_parts(self):
        obj = gen.make("workato", 0)
        obj.pop("tags", None)
        obj["id"] = 0
        obj["name"] = "huge @@@@@@@@@@"
        text = dumps(obj).replace('"id":0,', '"id":@@@@@@@@@@,', 1)
        return "[", "]", text

    # --- routing and auth -------------------------------------------------
    def route(self, req):
        if req.method in ("GET", "HEAD") and req.path in (LIST_PATH, LIST_PATH + "/"):
            return "list"
        return None

    def authenticate(self, req):
        if req.bearer() != self.token:
            return self.error(401)
        return None

    # --- operations -------------------------------------------------------
    def handle(self, req, fault):
        p = req.param
        want_tags = "tags" in (req.params.get("includes[]", []) +
                               req.params.get("includes", []))
        runtime = (p("include_runtime_connections") or "").lower() == "true"
        conds = []
        for name in ("folder_id", "parent_id", "external_id"):
            if p(name) is not None:
                conds.append((name, p(name)))
        project = p("project_id")
        after = p("updated_after")
        after_epoch = None
        if after is not None:
            after_epoch = iso_to_epoch(after)
            if not after_epoch and not after.startswith("1970"):
                return self.json(400, {"message": "Validation failed",
                                       "errors": {"updated_after": ["is invalid"]}})
        with_children = runtime or p("parent_id") is not None

        def pred(o):
            if not with_children and o.get("parent_id") is not None:
                return False
            for name, value in conds:
                if str(o.get(name)) != value:
                    return False
            if project is not None and str(o.get("project_id", o.get("folder_id"))) != project:
                return False
            if after_epoch is not None and iso_to_epoch(o.get("updated_at")) <= after_epoch:
                return False
            return True

        key = ("filter", tuple(conds), project, after, with_children)
        view = self.store.view(key, pred)
        if want_tags:
            items = [e.variant("tags", _with_tags) for e in view]
        else:
            items = [e.variant("notags", _no_tags) for e in view]
        return self.json(200, "[" + ",".join(items) + "]")
