"""A small forward proxy on loopback for tests (standard library only).

`Proxy(hosts={"api.example.test": ("127.0.0.1", 4443)})` listens on
127.0.0.1 port 0. A `CONNECT host:port` request is tunnelled to the address
`hosts` maps the name to (names it does not know get 502: the proxy
resolves nothing itself, so a test never reaches the internet). Any other
request (a plain-http forward request, which would carry a token in clear
text) is recorded and answered 502 without being forwarded.

Every request is recorded: method, target and the Proxy-Authorization
header it carried, so tests can assert what reached the proxy. With
`auth="user:password"` a request without those Basic credentials gets 407.
"""

import base64
import select
import socket
import threading


class Proxy:
    def __init__(self, hosts=None, auth=None):
        self.hosts = dict(hosts or {})
        self.auth = auth
        self._lock = threading.Lock()
        self._records = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._stop = threading.Event()
        self._thread = None
        self._conns = set()

    @property
    def port(self):
        return self._sock.getsockname()[1]

    def url(self, userinfo=None):
        return "http://%s127.0.0.1:%d" % (userinfo + "@" if userinfo else "",
                                          self.port)

    def requests(self):
        """[(method, target, proxy_authorization or None)] so far."""
        with self._lock:
            return list(self._records)

    def start(self):
        self._thread = threading.Thread(target=self._accept, daemon=True,
                                        name="proxy")
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _track(self, sock, add):
        with self._lock:
            (self._conns.add if add else self._conns.discard)(sock)

    def _serve(self, conn):
        self._track(conn, True)
        try:
            self._handle(conn)
        except OSError:
            pass
        finally:
            self._track(conn, False)
            conn.close()

    def _handle(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk or len(head) > 65536:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return
        method, target = parts[0], parts[1]
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        pa = headers.get("proxy-authorization")
        with self._lock:
            self._records.append((method, target, pa))
        if self.auth is not None:
            want = "Basic " + base64.b64encode(self.auth.encode()).decode()
            if pa != want:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                             b"Content-Length: 0\r\n\r\n")
                return
        if method != "CONNECT":
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        addr = self.hosts.get(host.lower().strip("[]"))
        if addr is None:
            conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                         b"\r\n")
            return
        up = socket.create_connection(addr, timeout=10)
        self._track(up, True)
        try:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            self._splice(conn, up)
        finally:
            self._track(up, False)
            up.close()

    def _splice(self, a, b):
        peers = {a: b, b: a}
        while not self._stop.is_set():
            r, _, _ = select.select([a, b], [], [], 0.5)
            for s in r:
                data = s.recv(65536)
                if not data:
                    return
                peers[s].sendall(data)
