"""Shared plumbing for the API emulator: requests, responses, JSON, datasets.

Everything here is provider-neutral.  Provider modules subclass `Provider`
and are driven by `server.py`; they never touch sockets themselves.  The
server turns a `Response` into bytes on the wire (or into a deliberately
broken wire exchange when a transport fault is injected).
"""

import json
import re
import threading
import time
import uuid
from datetime import datetime
from urllib.parse import parse_qs, quote

PROVIDERS = ("eventbridge", "activecampaign", "nango", "persona", "workato")

# Faults every provider supports, and the ones that only make sense for APIs
# with a cursor or page walk.  Values are the default parameters.
COMMON_FAULTS = {
    "http429": {}, "throttle": {}, "http500": {}, "http502": {},
    "http503": {}, "http504": {}, "http401": {}, "http403": {},
    "slow": {"seconds": 30}, "reset_before": {}, "reset_mid": {},
    "truncated": {}, "invalid_json": {}, "wrong_shape": {},
    "huge_page": {"mb": 64}, "redirect": {},
}
PAGING_FAULTS = ("cursor_loop", "endless")
TOKEN_FAULTS = ("invalid_token",)
WRONG_SHAPES = ("list_not_array", "cursor_wrong_type", "missing_fields",
                "null_object", "null_body")


# --------------------------------------------------------------------------
# JSON with verbatim numbers

class RawFloat(float):
    """A float that remembers the exact text it was parsed from.

    Lets `1.6901184E9` from a data file go back on the wire byte-for-byte.
    """

    def __new__(cls, text):
        obj = float.__new__(cls, text)
        obj.text = text
        return obj


def loads(text):
    """Parse JSON keeping the original spelling of fractional numbers."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    return json.loads(text, parse_float=RawFloat)


def _needs_raw(o):
    if isinstance(o, RawFloat):
        return o.text != repr(float(o))
    if isinstance(o, dict):
        return any(_needs_raw(v) for v in o.values())
    if isinstance(o, list):
        return any(_needs_raw(v) for v in o)
    return False


def _mark(o, raws):
    if isinstance(o, RawFloat) and o.text != repr(float(o)):
        raws.append(o.text)
        return "\x00RAW%d\x00" % (len(raws) - 1)
    if isinstance(o, dict):
        return {k: _mark(v, raws) for k, v in o.items()}
    if isinstance(o, list):
        return [_mark(v, raws) for v in o]
    return o


def _plain_dumps(o):
    try:
        s = json.dumps(o, ensure_ascii=False, separators=(",", ":"))
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:      # lone surrogates: emit \udcxx escapes
        return json.dumps(o, ensure_ascii=True, separators=(",", ":"))


def dumps(o):
    """Compact JSON text; RawFloat values keep their original spelling."""
    if not _needs_raw(o):
        return _plain_dumps(o)
    raws = []
    s = _plain_dumps(_mark(o, raws))
    for i, text in enumerate(raws):
        s = s.replace('"\\u0000RAW%d\\u0000"' % i, text, 1)
    return s


def encode(text):
    """str -> UTF-8 bytes, tolerating lone surrogates."""
    return text.encode("utf-8", "surrogatepass")


# --------------------------------------------------------------------------
# Requests and responses

class Request:
    """One parsed HTTP request as seen by a provider."""

    def __init__(self, method, target, headers, body):
        self.method = method
        path, _, query = target.partition("?")
        self.path = path
        self.query = query
        self.params = parse_qs(query, keep_blank_values=True)
        self.headers = headers            # dict, lower-case names
        self.body = body                  # bytes
        self.route = None                 # what Provider.route() said
        self.kind = "other"               # "list", "get" or "other"
        self.notes = {}                   # extra keys for the request record

    def param(self, name, default=None):
        v = self.params.get(name)
        return v[0] if v else default

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def bearer(self):
        """The token of an `Authorization: Bearer` header, or None."""
        auth = self.header("authorization")
        if auth is None:
            return None
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return auth.strip()


class Response:
    """An HTTP response.  `stream` (length, iterator of bytes) replaces body.

    `action` asks the server to break the exchange on purpose:
    "reset_before", "reset_mid" or "truncated".
    """

    def __init__(self, status, body=b"", headers=None, content_type=None):
        self.status = status
        self.body = encode(body) if isinstance(body, str) else body
        self.headers = list(headers or [])
        if content_type:
            self.headers.append(("Content-Type", content_type))
        self.stream = None
        self.action = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def set_header(self, name, value):
        self.headers = [(k, v) for k, v in self.headers
                        if k.lower() != name.lower()]
        self.headers.append((name, str(value)))


# --------------------------------------------------------------------------
# Datasets

class Entry:
    """One stored connection: the object plus cached encodings of it."""

    __slots__ = ("obj", "_raw", "_variants")

    def __init__(self, obj):
        self.obj = obj
        self._raw = None
        self._variants = None

    def raw(self):
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw

    def variant(self, name, fn):
        """Cached `dumps(fn(obj))`, e.g. without tags or camel-cased."""
        if self._variants is None:
            self._variants = {}
        v = self._variants.get(name)
        if v is None:
            v = self._variants[name] = dumps(fn(self.obj))
        return v


class Store:
    """The connections of one provider, with cached sorted/filtered views.

    The entry list is replaced, never mutated, so readers can use a
    snapshot without holding the lock.  `generation` changes only when the
    whole dataset is replaced (it makes old EventBridge tokens stale);
    `version` changes on every modification (it invalidates views).
    """

    def __init__(self, sort_key):
        self._sort_key = sort_key
        self._lock = threading.Lock()
        self._entries = []
        self.version = 0
        self.generation = 0
        self._views = {}

    def replace(self, objs):
        entries = [Entry(o) for o in objs]
        with self._lock:
            self._entries = entries
            self.version += 1
            self.generation += 1
            self._views = {}

    def add(self, obj):
        with self._lock:
            self._entries = self._entries + [Entry(obj)]
            self.version += 1
            self._views = {}

    def remove(self, pred):
        with self._lock:
            keep = [e for e in self._entries if not pred(e.obj)]
            n = len(self._entries) - len(keep)
            if n:
                self._entries = keep
                self.version += 1
                self._views = {}
            return n

    def objects(self):
        return [e.obj for e in self._entries]

    def __len__(self):
        return len(self._entries)

    def view(self, key=None, pred=None):
        """Entries in API order, filtered by `pred`; cached under `key`."""
        with self._lock:
            version = self.version
            hit = self._views.get(key)
            if hit is not None:
                return hit
            entries = self._entries
            base = self._views.get(None)
        if base is None:
            base = sorted(entries, key=lambda e: self._sort_key(e.obj))
        result = base if pred is None else [e for e in base if pred(e.obj)]
        with self._lock:
            if self.version == version:
                if len(self._views) > 32:
                    self._views = {None: self._views.get(None)}
                self._views[None] = base
                self._views[key] = result
        return result


# --------------------------------------------------------------------------
# Rate limiting

class Limiter:
    """Token bucket ("bucket") or fixed window ("window") request counter.

    Counting always runs so that informational headers are right; `enabled`
    decides whether an exhausted limiter actually rejects.
    """

    def __init__(self, kind, rate, period, aligned=False):
        self.kind, self.rate, self.period = kind, rate, period
        self.aligned = aligned          # windows start on the clock minute
        self.enabled = False
        self._lock = threading.Lock()
        self._defaults = (rate, period)
        self.reset()

    def reset(self):
        self.rate, self.period = self._defaults
        self.enabled = False
        self._tokens = float(self.rate)
        self._stamp = time.monotonic()
        self._window_start = None
        self._count = 0

    def configure(self, enabled, rate=None, window=None):
        with self._lock:
            self.enabled = enabled
            if rate is not None:
                self.rate = rate
            if window is not None:
                self.period = window
            self._tokens = float(self.rate)
            self._window_start = None
            self._count = 0

    def peek(self):
        """(remaining, reset_epoch) without counting a request."""
        with self._lock:
            if self.kind == "bucket":
                return int(self._tokens), time.time()
            now = time.time()
            start = self._window_start
            if start is None or now >= start + self.period:
                start = now - (now % self.period) if self.aligned else now
                return self.rate, start + self.period
            return max(0, self.rate - self._count), start + self.period

    def hit(self):
        """Count one request.  Returns (allowed, remaining, reset_epoch)."""
        with self._lock:
            if self.kind == "bucket":
                now = time.monotonic()
                fill = (now - self._stamp) * self.rate / self.period
                self._tokens = min(float(self.rate), self._tokens + fill)
                self._stamp = now
                ok = self._tokens >= 1.0
                if ok:
                    self._tokens -= 1.0
                wait = 0 if ok else (1.0 - self._tokens) * self.period / self.rate
                return (ok or not self.enabled, int(self._tokens),
                        time.time() + wait)
            now = time.time()
            if self.aligned:
                start = now - (now % self.period)
            else:
                start = self._window_start
                if start is None or now >= start + self.period:
                    start = now
            if start != self._window_start:
                self._window_start, self._count = start, 0
            self._count += 1
            ok = self._count <= self.rate
            return (ok or not self.enabled, max(0, self.rate - self._count),
                    start + self.period)


# --------------------------------------------------------------------------
# Small helpers

def iso_to_epoch(s):
    """Epoch seconds of an ISO-8601 string; 0.0 if it does not parse."""
    if not isinstance(s, str):
        return 0.0
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def http_date(epoch):
    from email.utils import formatdate
    return formatdate(epoch, usegmt=True)


def request_id():
    return str(uuid.uuid4())


def pct(s):
    """Percent-encode everything but unreserved characters."""
    return quote(str(s), safe="-._~")


_KEY_RE = re.compile(r"^([^\[\]]+)\[([^\]]*)\]$")


def bracket_params(params, name):
    """{"k": [values]} for every `name[k]` key in parsed params."""
    out = {}
    for key, values in params.items():
        m = _KEY_RE.match(key)
        if m and m.group(1) == name:
            out[m.group(2)] = values
    return out


# --------------------------------------------------------------------------
# Provider base class

class Provider:
    """Base class of the five provider emulations.

    A subclass serves the provider's real routes.  The server calls, in
    order: `route` (which endpoint?), `authenticate`, the limiter, then
    `handle`.  Generic faults (status codes, transport breakage, invalid
    JSON, huge pages, redirects) are produced by the server from the hooks
    `error`, `throttled`, `wrong_shape` and `huge_parts`; paging faults
    (`cursor_loop`, `endless`, `invalid_token`) are implemented by
    `handle` itself because they depend on the provider's cursor.
    """

    name = ""
    content_type = "application/json; charset=utf-8"
    paging_faults = ()              # subset of PAGING_FAULTS + TOKEN_FAULTS
    shape_variants = WRONG_SHAPES
    limiter_spec = ("window", 60, 60.0, False)   # kind, rate, period, aligned

    def __init__(self, emu):
        self.emu = emu
        self.store = Store(self.sort_key)
        kind, rate, period, aligned = self.limiter_spec
        self.limiter = Limiter(kind, rate, period, aligned)
        self.endless_epoch = 0

    # --- data -------------------------------------------------------------
    def sort_key(self, obj):
        return 0

    def matches_id(self, obj, ident):
        return False

    # --- routing and auth -------------------------------------------------
    def route(self, req):
        """Return "list", "get", "other" or None (404)."""
        return None

    def authenticate(self, req):
        """Return None when authorised, else an error Response."""
        return None

    def handle(self, req, fault):
        """Answer a routed, authorised request; `fault` is (name, params)."""
        raise NotImplementedError

    def continuation(self, req):
        """Name of a fault that continues on this request (endless walks)."""
        return None

    def eligible(self, fault, req):
        """Whether a queued fault may fire on this list request."""
        return True

    # --- response building --------------------------------------------------
    def json(self, status, doc, headers=None):
        text = doc if isinstance(doc, str) else dumps(doc)
        return Response(status, text, headers, self.content_type)

    def error(self, status, detail=None):
        """A provider-shaped error for an HTTP status (faults, 404, 500)."""
        return self.json(status, {"message": detail or "error"})

    def throttled(self, req, limit_info, retry_after=None, http_date_form=False,
                  status=429):
        """The provider's rate-limit answer."""
        return self.error(status, "Too many requests")

    def rate_headers(self, limit_info):
        """Informational rate-limit headers for a normal response."""
        return []

    list_key = None                 # key of the list; None: bare array

    def wrong_shape(self, doc, variant):
        """Mangle a parsed good page into the requested wrong shape."""
        if variant == "null_body":
            return None
        bare = self.list_key is None
        items = doc if bare else doc.get(self.list_key) or []
        if variant == "cursor_wrong_type":
            return self.bad_cursor(doc)
        if variant == "null_object":
            bad = [None] + [v for x in items for v in (x, None)]
        elif variant == "list_not_array":
            bad = {"count": len(items), "first": items[0] if items else None}
            if bare:
                return {"result": items}
        elif variant == "missing_fields":
            if bare:
                return [{k: v for k, v in x.items() if k not in ("id", "name")}
                        for x in items if isinstance(x, dict)]
            doc.pop(self.list_key, None)
            return doc
        else:
            raise ValueError("unknown wrong_shape variant %r" % variant)
        if bare:
            return bad
        doc[self.list_key] = bad
        return doc

    def bad_cursor(self, doc):
        raise ValueError("%s has no cursor" % self.name)

    def huge_parts(self):
        """(prefix, suffix, item_template) for the huge_page fault.

        The template contains the 10-character marker `@@@@@@@@@@` wherever
        a running number goes, so every item has the same length.
        """
        raise NotImplementedError

    @property
    def faults(self):
        names = list(COMMON_FAULTS) + list(self.paging_faults)
        return tuple(names)
