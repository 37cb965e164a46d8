"""A private Redis server for tests and benchmarks (fleet mode): see the
class Redis. Python standard library only."""

import os
import shutil
import signal
import subprocess
import tempfile
import time


REDIS_BINARY = "redis-check-rdb"    # Debian's redis-tools: the whole server


class Redis:
    """A private Redis server for one test: unix socket only (port 0), no
    persistence, its own directory. Debian 12's redis-tools ships the full
    server as /usr/bin/redis-check-rdb; it runs as the server when started
    under the name redis-server, so a symlink of that name in the test's
    directory starts it (no redis-server package, no system service).

    stop() ends it (SIGKILL by default: a crash) and keeps the socket path,
    start() runs it again on the same socket. Only its own pid is ever
    signalled. The password, when there is one, is in a 0600 config file,
    never on a command line (redis-cli gets it through REDISCLI_AUTH)."""

    def __init__(self, tmp, password=None):
        binary = shutil.which(REDIS_BINARY) or shutil.which(
            REDIS_BINARY, path="/usr/bin:/usr/sbin:/bin:/sbin")
        if not binary:
            raise RuntimeError("redis-tools (redis-check-rdb) is not "
                               "installed: make deps")
        self.cli_binary = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        self.dir = str(tmp)
        os.makedirs(self.dir, exist_ok=True)
        self.server = os.path.join(self.dir, "redis-server")
        if not os.path.lexists(self.server):
            os.symlink(binary, self.server)
        # sun_path holds 108 bytes: a deep pytest directory gets a short
        # private one for the socket.
        self._short = None
        sock = os.path.join(self.dir, "redis.sock")
        if len(sock) > 90:
            self._short = tempfile.mkdtemp(prefix="connfs-redis-")
            sock = os.path.join(self._short, "redis.sock")
        self.sock = sock
        self.url = "unix://" + sock
        self.password = password
        self.log = os.path.join(self.dir, "redis.log")
        self.conf = os.path.join(self.dir, "redis.conf")
        lines = ["port 0", "unixsocket " + sock, "unixsocketperm 700",
                 'save ""', "appendonly no", "dir " + self.dir,
                 'logfile ""', "daemonize no"]
        if password is not None:
            lines.append("requirepass " + password)
        fd = os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None
        self._logf = None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=15):
        """Starts the server (again, on the same socket); returns self once
        it answers PING."""
        assert not self.running, "redis is already running"
        if self._logf is None or self._logf.closed:
            self._logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [self.server, self.conf], stdin=subprocess.DEVNULL,
            stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s: %s" % (
                    self.proc.returncode, self.logs()[-2000:]))
            if os.path.exists(self.sock):
                r = self.cli("PING", check=False)
                if r.returncode == 0 and r.stdout.strip() == b"PONG":
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING: "
                                   + self.logs()[-2000:])
            time.sleep(0.02)

    def stop(self, sig=signal.SIGKILL):
        """Ends the server (its own pid only) and waits for it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pause(self):
        """SIGSTOP: the server hangs, its sockets stay open."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cli(self, *args, check=True, stdin=None, timeout=15):
        """redis-cli -s SOCK ARGS...: the CompletedProcess (stdout bytes,
        raw, as redis-cli prints when not on a terminal)."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if self.password is not None:
            env["REDISCLI_AUTH"] = self.password
        cmd = [self.cli_binary, "-s", self.sock]
        if stdin is not None:
            cmd.append("-x")
        r = subprocess.run(cmd + [str(a) for a in args], input=stdin,
                           capture_output=True, env=env, timeout=timeout)
        if check and (r.returncode != 0 or r.stdout.startswith(b"ERR")
                      or r.stdout.startswith(b"WRONGPASS")
                      or r.stdout.startswith(b"NOAUTH")):
            raise RuntimeError("redis-cli %s: %r %r" % (
                " ".join(map(str, args)), r.stdout, r.stderr))
        return r

    def get(self, *args):
        """One command's raw reply without the final newline (bytes)."""
        out = self.cli(*args).stdout
        return out[:-1] if out.endswith(b"\n") else out

    def keys(self, pattern="*"):
        """Every key matching pattern (SCAN, not KEYS), sorted."""
        out = self.cli("--scan", "--pattern", pattern).stdout
        return sorted(k for k in out.decode().splitlines() if k)

    def logs(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def close(self):
        self.stop()
        if self._logf is not None and not self._logf.closed:
            self._logf.close()
        if self._short:
            shutil.rmtree(self._short, ignore_errors=True)
            self._short = None
