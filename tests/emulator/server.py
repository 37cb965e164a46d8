"""The emulator's HTTP server: routing, recording, faults and control API.

One `ThreadingHTTPServer` (HTTP/1.1, keep-alive, always Content-Length)
serves all five providers on their real paths, plus a JSON control API
under `/_emu/`.  `Emulator` runs it in a daemon thread of the calling
process; `EmulatorClient` drives an emulator in another process through
the control API with the same method names.

Request flow: route -> record -> latency -> auth -> rate limiter ->
fault (list requests only) -> provider handler -> wire.
"""

import http.server
import json
import logging
import random
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from urllib.parse import parse_qs, quote, urlencode

from . import gen
from .activecampaign import ActiveCampaign
from .awsauth import AwsAuth
from .base import (COMMON_FAULTS, PROVIDERS, Request, Response, dumps,
                   encode, loads)
from .eventbridge import MAX_SKEW, EventBridge
from .nango import Nango
from .persona import Persona
from .workato import Workato

log = logging.getLogger("connfs.emulator")

STATUS_FAULTS = {"http500": 500, "http502": 502, "http503": 503,
                 "http504": 504, "http401": 401, "http403": 403}
# Left out of random_faults unless asked for: they hang or trap a walk.
NOT_RANDOM = ("slow", "huge_page", "endless")
MARK = b"@@@@@@@@@@"
MAX_BODY = 512 << 20


class _Spec:
    """One queued fault: fires on `remaining` list requests after `after`."""

    __slots__ = ("name", "remaining", "after", "params")

    def __init__(self, name, remaining, after, params):
        self.name, self.remaining = name, remaining
        self.after, self.params = after, params


class Emulator:
    """All five provider APIs on one port, in a daemon thread.

    Datasets, request records, fault queues and settings are guarded by
    one lock; provider datasets have their own (see base.Store).
    """

    def __init__(self, port=0, host="127.0.0.1", data=None, aws_keys=None,
                 verbose=False, aws_max_skew=MAX_SKEW):
        self.verbose = verbose
        self.providers = {
            "eventbridge": EventBridge(self, aws_keys, aws_max_skew),
            "activecampaign": ActiveCampaign(self),
            "nango": Nango(self),
            "persona": Persona(self),
            "workato": Workato(self),
        }
        self.aws_auth = AwsAuth(self)     # STS, IMDS, container, SSO
        self._lock = threading.RLock()
        self._records = []
        self._counts = Counter()
        self._queues = {p: deque() for p in PROVIDERS}
        self._random = {}
        self._latency = {}
        self._stopping = threading.Event()
        self._thread = None
        self._server = _Server((host, port), _Handler)
        self._server.emu = self
        self._tls = []
        self.host = host
        if data is not None:
            self.load(data)

    # --- lifecycle -----------------------------------------------------------
    @property
    def port(self):
        return self._server.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def start(self):
        """Serve in a daemon thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="emulator", daemon=True)
            self._thread.start()
        return self

    def listen_tls(self, certfile, keyfile):
        """Also serve HTTPS with this certificate, on a new port of the
        same host; returns the port. Same datasets and records."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certfile, keyfile)
        srv = _Server((self.host, 0), _Handler)
        srv.emu = self
        srv.ssl_context = ctx
        t = threading.Thread(target=srv.serve_forever,
                             kwargs={"poll_interval": 0.05},
                             name="emulator-tls", daemon=True)
        t.start()
        self._tls.append((srv, t))
        return srv.server_address[1]

    def stop(self):
        """Stop serving, end slow requests and drop open connections."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        for srv, t in self._tls:
            srv.shutdown()
            srv.server_close()
            srv.close_all()
            t.join(5)
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        self._server.close_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- data ----------------------------------------------------------------
    def _provider(self, name):
        try:
            return self.providers[name]
        except KeyError:
            raise ValueError("unknown provider %r (one of %s)"
                             % (name, ", ".join(PROVIDERS))) from None

    def load(self, data):
        """Replace datasets from a dict or a JSON file {provider: [...]}."""
        if not isinstance(data, dict):
            with open(data, "rb") as f:
                data = loads(f.read())
        for name, objs in data.items():
            if not name.startswith("_"):
                self.set_connections(name, objs)

    def set_connections(self, provider, objs):
        if not isinstance(objs, list):
            raise ValueError("connections must be a JSON array")
        self._provider(provider).store.replace(objs)

    def add_connection(self, provider, obj):
        self._provider(provider).store.add(obj)

    def remove_connection(self, provider, id_or_predicate):
        """Remove matching objects; returns how many were removed."""
        prov = self._provider(provider)
        if callable(id_or_predicate):
            pred = id_or_predicate
        else:
            def pred(o):
                return isinstance(o, dict) and prov.matches_id(o, id_or_predicate)
        return prov.store.remove(pred)

    def generate(self, provider, n, seed=1):
        """Replace the dataset with n synthetic objects and return them."""
        prov = self._provider(provider)
        objs = gen.generate(provider, n, seed)
        prov.store.replace(objs)
        return objs

    def connections(self, provider):
        return self._provider(provider).store.objects()

    # --- records -------------------------------------------------------------
    def requests(self, provider=None):
        with self._lock:
            return [dict(r) for r in self._records
                    if provider is None or r["provider"] == provider]

    def count(self, provider):
        with self._lock:
            return self._counts[provider]

    def clear_requests(self):
        with self._lock:
            self._records = []
            self._counts = Counter()

    # --- behaviour -----------------------------------------------------------
    def set_latency(self, provider, ms):
        with self._lock:
            for name in (PROVIDERS + ("unknown",)) if provider is None else (provider,):
                if name != "unknown":
                    self._provider(name)
                self._latency[name] = max(0.0, float(ms)) / 1000.0

    def set_rate_limit(self, provider, enabled=True, rate=None, window=None):
        """Enforce the documented limit, or `rate` requests per `window` s.

        Defaults: EventBridge 10/s (undocumented), ActiveCampaign 5/s token
        bucket, Nango 200/min, Persona 300/min (clock minute), Workato 60/min.
        """
        for name in PROVIDERS if provider is None else (provider,):
            self._provider(name).limiter.configure(enabled, rate, window)

    def inject(self, provider, fault, count=1, after=0, **params):
        """Queue `fault` for the next `count` list requests after `after`.

        `count=None` means until reset().  Faults queue up in order.
        """
        prov = self._provider(provider)
        if fault not in prov.faults:
            raise ValueError("fault %r not supported by %s (one of %s)"
                             % (fault, provider, ", ".join(prov.faults)))
        if count is not None and int(count) < 1:
            raise ValueError("count must be >= 1 or None")
        full = dict(COMMON_FAULTS.get(fault, {}))
        full.update(params)
        if fault == "wrong_shape":
            full.setdefault("variant", "list_not_array")
            if full["variant"] not in prov.shape_variants:
                raise ValueError("wrong_shape variant %r not supported by %s"
                                 % (full["variant"], provider))
        with self._lock:
            self._queues[provider].append(
                _Spec(fault, None if count is None else int(count), int(after), full))

    def random_faults(self, provider=None, probability=0.2, seed=1, faults=None):
        """Give each list request a `probability` of a random fault.

        faults=None: every supported fault except slow, huge_page and
        endless.  probability 0 turns random faults off.
        """
        with self._lock:
            for name in PROVIDERS if provider is None else (provider,):
                prov = self._provider(name)
                if not probability:
                    self._random.pop(name, None)
                    continue
                names = [f for f in (faults or prov.faults) if f in prov.faults
                         and (faults or f not in NOT_RANDOM)]
                if provider is not None and faults and len(names) != len(faults):
                    raise ValueError("unsupported fault for %s in %r" % (name, faults))
                if names:
                    self._random[name] = (random.Random("%s:%s" % (seed, name)),
                                          float(probability), names)

    def reset(self):
        """Keep data; clear faults, latency, rate limits and records."""
        with self._lock:
            for q in self._queues.values():
                q.clear()
            self._random.clear()
            self._latency.clear()
            for prov in self.providers.values():
                prov.limiter.reset()
                prov.endless_epoch += 1
                if hasattr(prov, "endless_active"):
                    prov.endless_active = False
            self.aws_auth.reset()
        self.clear_requests()

    # --- request handling ------------------------------------------------------
    @staticmethod
    def classify(method, path):
        """Which provider a request path belongs to ("unknown" if none)."""
        if path == "/" and method == "POST":
            return "eventbridge"
        if path == "/api/3" or path.startswith("/api/3/"):
            return "activecampaign"
        if path == "/api/v1" or path.startswith("/api/v1/"):
            return "persona"
        if path.startswith("/api/"):
            return "workato"
        for base in ("/connections", "/connection"):
            if path == base or path.startswith(base + "/"):
                return "nango"
        return "unknown"

    def _pick_fault(self, prov, req):
        with self._lock:
            queue = self._queues[prov.name]
            if queue:
                spec = queue[0]
                if spec.after > 0:
                    spec.after -= 1
                    return None
                if not prov.eligible(spec.name, req):
                    return None
                if spec.remaining is not None:
                    spec.remaining -= 1
                    if spec.remaining <= 0:
                        queue.popleft()
                return spec.name, dict(spec.params)
            rnd = self._random.get(prov.name)
            if rnd:
                rng, probability, names = rnd
                if rng.random() < probability:
                    name = rng.choice(names)
                    params = dict(COMMON_FAULTS.get(name, {}))
                    if name == "wrong_shape":
                        params["variant"] = rng.choice(prov.shape_variants)
                    if prov.eligible(name, req):
                        return name, params
        return None

    def _serve(self, req):
        """Answer one provider request; returns (Response, record)."""
        name = self.classify(req.method, req.path)
        prov = self.providers.get(name)
        req.route = prov.route(req) if prov else None
        req.kind = req.route or "other"
        record = {"provider": name, "method": req.method, "path": req.path,
                  "query": req.query, "params": req.params,
                  "headers": dict(req.headers),
                  "body": req.body.decode("utf-8", "replace"),
                  "status": None, "fault": None, "kind": req.kind,
                  "time": time.time()}
        with self._lock:
            self._records.append(record)
            if req.kind == "list":
                self._counts[name] += 1
            delay = self._latency.get(name, 0.0)
        if delay and self._stopping.wait(delay):
            return _dropped(), record
        try:
            resp = self._answer(prov, req, record)
        except Exception as exc:          # never let a provider bug kill us
            log.exception("emulator: error handling %s %s", req.method, req.path)
            resp = Response(500, dumps({"message": "emulator internal error",
                                        "detail": repr(exc)}),
                            content_type="application/json")
        record.update(req.notes)
        record["status"] = resp.status
        return resp, record

    def _answer(self, prov, req, record):
        if prov is None:
            return Response(404, '{"message":"Not Found"}',
                            content_type="application/json")
        if req.route is None:
            return prov.error(404)
        denied = prov.authenticate(req)
        if denied is not None:
            return denied
        info = prov.limiter.hit()
        fault = None
        if req.kind == "list":
            cont = prov.continuation(req)
            fault = (cont, {}) if cont else self._pick_fault(prov, req)
        if fault:
            record["fault"] = fault[0]
            resp = self._faulted(prov, req, fault)
        elif not info[0]:
            resp = prov.throttled(req, info, status=400 if prov.name == "eventbridge" else 429)
        else:
            resp = prov.handle(req, None)
        for k, v in prov.rate_headers(info):
            if resp.header(k) is None:
                resp.headers.append((k, v))
        return resp

    def _faulted(self, prov, req, fault):
        name, params = fault
        if name == "slow":
            if self._stopping.wait(float(params.get("seconds", 30))):
                return _dropped()
            return prov.handle(req, None)
        if name in STATUS_FAULTS:
            return prov.error(STATUS_FAULTS[name])
        if name in ("http429", "throttle"):
            retry = params.get("retry_after")
            as_date = bool(params.get("retry_after_date"))
            wait = int(retry) if retry is not None else 1
            status = 400 if name == "throttle" and prov.name == "eventbridge" else 429
            return prov.throttled(req, (False, 0, time.time() + wait),
                                  wait if (retry is not None or as_date) else None,
                                  as_date, status)
        if name == "reset_before":
            return _dropped()
        if name == "redirect":
            loc = "http://127.0.0.2:%d%s%s" % (self.port, req.path,
                                              "?" + req.query if req.query else "")
            return Response(302, '{"message":"Found"}', [("Location", loc)],
                            "application/json")
        if name == "huge_page":
            return self._huge(prov, float(params.get("mb", 64)))
        if name in ("cursor_loop", "endless", "invalid_token"):
            return prov.handle(req, fault)
        resp = prov.handle(req, None)
        if name in ("reset_mid", "truncated"):
            resp.action = name
        elif resp.status == 200 and name == "invalid_json":
            resp.body = resp.body[:len(resp.body) // 2] + b"\n<html>not json"
        elif resp.status == 200 and name == "wrong_shape":
            doc = json.loads(resp.body)
            resp.body = encode(dumps(prov.wrong_shape(doc, params["variant"])))
        return resp

    def _huge(self, prov, mb):
        prefix, suffix, template = prov.huge_parts()
        parts = encode(template).split(MARK)
        size = len(encode(template))
        target = int(mb * (1 << 20))
        n = max(1, (target - len(prefix) - len(suffix) + 1) // (size + 1))
        head, tail = encode(prefix), encode(suffix.replace("@@N@@", str(n)))
        length = len(head) + len(tail) + n * size + (n - 1)

        def chunks():
            yield head
            for start in range(0, n, 2000):
                items = [b"%010d" % (1_000_000_000 + i) for i in
                         range(start, min(n, start + 2000))]
                block = b",".join(num.join(parts) for num in items)
                yield (b"," + block) if start else block
            yield tail

        resp = Response(200, b"", content_type=prov.content_type)
        resp.stream = (length, chunks())
        return resp

    # --- control API -----------------------------------------------------------
    def control(self, method, path, query, body):
        """Handle /_emu/...; returns (status, JSON-able document)."""
        parts = [p for p in path.split("/") if p][1:]
        q = {k: v[0] for k, v in parse_qs(query).items()}
        doc = loads(body) if body.strip() else {}
        op = parts[0] if parts else ""
        if op == "health":
            return 200, {"ok": True, "url": self.url}
        if op == "requests" and method == "GET":
            return 200, self.requests(q.get("provider"))
        if op == "count":
            return 200, {"count": self.count(q.get("provider"))}
        if op == "clear" and method == "POST":
            self.clear_requests()
            return 200, {"ok": True}
        if op == "reset" and method == "POST":
            self.reset()
            return 200, {"ok": True}
        if op == "connections" and len(parts) == 2:
            p = parts[1]
            if method == "GET":
                return 200, self.connections(p)
            if method == "PUT":
                self.set_connections(p, doc)
                return 200, {"count": len(doc)}
            if method == "POST":
                self.add_connection(p, doc)
                return 200, {"ok": True}
            if method == "DELETE":
                return 200, {"removed": self.remove_connection(p, q.get("id"))}
        if op == "remove" and len(parts) == 2 and method == "POST":
            return 200, {"removed": self.remove_connection(parts[1], doc.get("id"))}
        if op == "generate" and len(parts) == 2 and method == "POST":
            objs = self.generate(parts[1], int(doc.get("n", 10)), doc.get("seed", 1))
            return 200, {"count": len(objs)}
        if op == "latency" and method == "POST":
            self.set_latency(doc.get("provider"), doc.get("ms", 0))
            return 200, {"ok": True}
        if op == "ratelimit" and method == "POST":
            self.set_rate_limit(doc.get("provider"), doc.get("enabled", True),
                                doc.get("rate"), doc.get("window"))
            return 200, {"ok": True}
        if op == "inject" and method == "POST":
            args = dict(doc)
            self.inject(args.pop("provider"), args.pop("fault"),
                        args.pop("count", 1), args.pop("after", 0), **args)
            return 200, {"ok": True}
        if op == "random" and method == "POST":
            self.random_faults(doc.get("provider"), doc.get("probability", 0.2),
                               doc.get("seed", 1), doc.get("faults"))
            return 200, {"ok": True}
        return 404, {"error": "unknown control call %s %s" % (method, path)}


def _dropped():
    resp = Response(0)
    resp.action = "reset_before"
    return resp


class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that can drop every open connection on stop."""

    daemon_threads = True
    request_queue_size = 128
    ssl_context = None

    def __init__(self, *args, **kw):
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(*args, **kw)

    def track(self, sock, add):
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def close_all(self):
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's own thread: a client
        # that refuses the certificate only ends its own connection.
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request,
                                                       server_side=True)
            except (ssl.SSLError, OSError):
                return
            try:
                super().finish_request(request, client_address)
            finally:
                request.close()
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        log.debug("emulator: connection error from %s", client_address,
                  exc_info=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Reads a request, hands it to the Emulator, writes the Response."""

    protocol_version = "HTTP/1.1"
    # The head and body go out in two writes: without TCP_NODELAY the body
    # waits for the client's delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True
    server_version = "connfs-emulator/1.0"
    sys_version = ""
    timeout = 300

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        finally:
            self.server.track(self.connection, False)

    def log_message(self, fmt, *args):
        if self.server.emu.verbose:
            sys.stderr.write("emulator: %s %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(out)
                out.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _dispatch(self):
        emu = self.server.emu
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._write(Response(400, '{"message":"bad request body"}',
                                 content_type="application/json"))
            return
        try:
            if self.path == "/_emu" or self.path.startswith("/_emu/"):
                path, _, query = self.path.partition("?")
                try:
                    status, doc = emu.control(self.command, path, query, body)
                except (ValueError, KeyError, TypeError) as exc:
                    status, doc = 400, {"error": str(exc)}
                resp = Response(status, dumps(doc), content_type="application/json")
            else:
                headers = {}
                for k, v in self.headers.items():
                    k = k.lower()
                    headers[k] = headers[k] + ", " + v if k in headers else v
                req = Request(self.command, self.path, headers, body)
                if emu.aws_auth.claims(req):
                    resp = emu.aws_auth.serve(req)
                else:
                    resp, _ = emu._serve(req)
        except Exception as exc:
            log.exception("emulator: unexpected error")
            resp = Response(500, dumps({"message": "emulator internal error",
                                        "detail": repr(exc)}),
                            content_type="application/json")
        try:
            self._write(resp)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch

    def _reset(self):
        """Close with RST: SO_LINGER 0 then close every reference."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.rfile, self.connection):
            try:
                f.close()
            except OSError:
                pass

    def _write(self, resp):
        if resp.action == "reset_before":
            self._reset()
            return
        length = resp.stream[0] if resp.stream else len(resp.body)
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.action in ("reset_mid", "truncated"):
            self.wfile.write(resp.body[:len(resp.body) // 2])
            if resp.action == "reset_mid":
                time.sleep(0.01)
                self._reset()
            else:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            return
        if resp.stream:
            for chunk in resp.stream[1]:
                self.wfile.write(chunk)
        else:
            self.wfile.write(resp.body)


# --------------------------------------------------------------------------
# Out-of-process client

class EmulatorClient:
    """Drive a running emulator through /_emu/ with Emulator's method names."""

    def __init__(self, url, timeout=60):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method, path, doc=None, query=None):
        url = self.url + "/_emu/" + path
        if query:
            url += "?" + urlencode(query)
        data = None if doc is None else encode(dumps(doc))
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return loads(r.read())
        except urllib.error.HTTPError as e:
            raise ValueError("emulator control %s %s: %s"
                             % (method, path, e.read().decode("utf-8", "replace")))

    def start(self):
        self._call("GET", "health")
        return self

    def stop(self):
        pass

    def set_connections(self, provider, objs):
        self._call("PUT", "connections/" + quote(provider), list(objs))

    def add_connection(self, provider, obj):
        self._call("POST", "connections/" + quote(provider), obj)

    def remove_connection(self, provider, ident):
        if callable(ident):
            raise TypeError("EmulatorClient.remove_connection takes an id, "
                            "not a predicate")
        return self._call("POST", "remove/" + quote(provider), {"id": ident})["removed"]

    def generate(self, provider, n, seed=1):
        self._call("POST", "generate/" + quote(provider), {"n": n, "seed": seed})
        return gen.generate(provider, n, seed)     # deterministic: same list

    def connections(self, provider):
        return self._call("GET", "connections/" + quote(provider))

    def requests(self, provider=None):
        return self._call("GET", "requests", query={"provider": provider} if provider else None)

    def count(self, provider):
        return self._call("GET", "count", query={"provider": provider})["count"]

    def clear_requests(self):
        self._call("POST", "clear", {})

    def set_latency(self, provider, ms):
        self._call("POST", "latency", {"provider": provider, "ms": ms})

    def set_rate_limit(self, provider, enabled=True, rate=None, window=None):
        self._call("POST", "ratelimit", {"provider": provider, "enabled": enabled,
                                         "rate": rate, "window": window})

    def inject(self, provider, fault, count=1, after=0, **params):
        doc = dict(params, provider=provider, fault=fault, count=count, after=after)
        self._call("POST", "inject", doc)

    def random_faults(self, provider=None, probability=0.2, seed=1, faults=None):
        self._call("POST", "random", {"provider": provider, "probability": probability,
                                      "seed": seed, "faults": faults})

    def reset(self):
        self._call("POST", "reset", {})
