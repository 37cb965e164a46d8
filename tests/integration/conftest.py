"""Integration fixtures: an in-process emulator and real connfs mounts.

Every test mounts the real ./connfs binary (foreground, as a child process)
against the emulator on 127.0.0.1 and uses real tools on the mount. A mount
is always unmounted at the end and the daemon must then exit with 0.
"""

import calendar
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

from emulator import CREDENTIALS, Emulator  # noqa: E402

BINARY = os.path.join(ROOT, "connfs")
AKID = "AKIDCONNFSTEST"
AWS_SECRET = CREDENTIALS["eventbridge"][AKID][0]
# Every secret a test hands connfs: none may ever appear in a file or log.
SECRETS = [AWS_SECRET, CREDENTIALS["activecampaign"], CREDENTIALS["nango"],
           CREDENTIALS["persona"], CREDENTIALS["workato"]]


def part(s):
    """One percent-encoded file name part (the naming rule in the manual),
    computed independently of connfs."""
    if s == "":
        return "%00"
    out = []
    for i, ch in enumerate(s):
        if (ord(ch) < 0x20 or ch in "\x7f%/~"
                or (i == 0 and ch in ".-")):
            out.append("%%%02X" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def epoch_ns(iso):
    """An RFC 3339 time as integer nanoseconds since the epoch."""
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return calendar.timegm(dt.utctimetuple()) * 10**9 + dt.microsecond * 1000


def daemon_env(home, extra=None):
    """Environment with credentials for all five providers."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        # The listing store of mounts made without cache_dir (root's
        # default, /var/cache/connfs, would be shared by every test).
        "XDG_CACHE_HOME": str(home) + "/.cache",
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_REGION": "us-east-1",
        "ACTIVECAMPAIGN_API_TOKEN": CREDENTIALS["activecampaign"],
        "NANGO_SECRET_KEY": CREDENTIALS["nango"],
        "PERSONA_API_KEY": CREDENTIALS["persona"],
        "WORKATO_API_TOKEN": CREDENTIALS["workato"],
        # No test may wait for (or reach) a real 169.254.169.254.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
              "TSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


def config_text(sections):
    """INI text from {"name": {"key": "value", ...}, ...}."""
    out = []
    for name, keys in sections.items():
        out.append("[%s]" % name)
        out.extend("%s = %s" % kv for kv in keys.items())
        out.append("")
    return "\n".join(out)


def tar_round_trip(m, tmp_path):
    """tar czf of the whole mount, extracted elsewhere, is byte-identical
    to the mount (diff -r). Returns the extracted copy."""
    tarball = tmp_path / "mount.tgz"
    subprocess.run(["tar", "czf", str(tarball), "-C", m.dir, "."],
                   check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "xzf", str(tarball), "-C", str(out)], check=True)
    subprocess.run(["diff", "-r", m.dir, str(out)], check=True)
    return out


def rsync_twice(m, tmp_path, files):
    """rsync -a of the mount copies `files` files; a second run transfers
    nothing (exact sizes, stable mtimes); the copy is identical."""
    dest = str(tmp_path / "backup") + "/"
    first = subprocess.run(["rsync", "-a", "-i", m.dir + "/", dest],
                           check=True, capture_output=True, text=True)
    assert first.stdout.count(">f+++++++++") == files
    second = subprocess.run(["rsync", "-a", "-i", m.dir + "/", dest],
                            check=True, capture_output=True, text=True)
    assert second.stdout.strip() == ""
    subprocess.run(["diff", "-r", m.dir, dest], check=True)


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path and line.split()[2] == "fuse.connfs"
                   for line in f)


def process_gone(pid, wait=10):
    """True once pid has exited (gone, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def wait_for(pred, timeout=20, what=None):
    """Polls pred() until it returns something true and returns that;
    fails the test after `timeout` seconds (generous: this is no timing
    assertion, only a bound on a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("gave up after %gs waiting for %s"
                                 % (timeout, what or pred))
        time.sleep(0.02)


def dir_status(m, name):
    """One directory's row of .connfs/status.json."""
    with open(m.path(".connfs", "status.json")) as f:
        return next(r for r in json.load(f) if r["directory"] == name)


def wait_listdir(path, pred, timeout=20):
    """os.listdir(path) once pred(names) holds (a refresh behind the
    readers has been published)."""
    def names():
        got = os.listdir(path)
        return got if pred(got) else None
    return wait_for(names, timeout, "a listing of %s" % path)


def wait_walked(m, name, walks, timeout=20):
    """Waits until directory `name` has started `walks` walks in all and
    none is running (a background refresh has ended); returns its status
    row. The count goes up just before the walk shows as running, and the
    walk ends just before its result is published: callers wait on that
    result too (the new listing, the stale flag)."""
    def done():
        row = dir_status(m, name)
        if row["walks"] > walks:
            raise AssertionError("%s: %d walks, want %d" % (
                name, row["walks"], walks))
        return row if row["walks"] == walks and not row["walking"] \
            else None
    return wait_for(done, timeout, "%s to end walk %d" % (name, walks))


class Mount:
    """A running connfs daemon and its mount point."""

    def __init__(self, tmp, emu, sections, options=(), env=None,
                 wrapper=()):
        self.dir = str(tmp / "mnt")
        os.makedirs(self.dir, exist_ok=True)
        self.log = str(tmp / "connfs.log")
        self.config = str(tmp / "config")
        for keys in sections.values():
            keys.setdefault("url", emu.url)
        with open(self.config, "w") as f:
            f.write(config_text(sections))
        os.chmod(self.config, 0o600)
        opts = ["config=" + self.config, "logfile=" + self.log,
                "loglevel=debug"] + list(options)
        # Each test's own listing store, unless it names one (or none).
        if not any(o.startswith(("cache_dir=", "nostore")) for o in opts):
            opts.append("cache_dir=" + str(tmp / "store"))
        self.errfile = str(tmp / "stderr")
        self.stderr = open(self.errfile, "w")
        # wrapper: a command to run the daemon under (valgrind).
        self.proc = subprocess.Popen(
            list(wrapper) + [BINARY, "-f", "-o", ",".join(opts), self.dir],
            env=daemon_env(tmp, env), stdin=subprocess.DEVNULL,
            stdout=self.stderr, stderr=subprocess.STDOUT)
        deadline = time.time() + (120 if wrapper else 15)
        while not is_mounted(self.dir):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("connfs did not mount: " + self.output())
            time.sleep(0.02)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def output(self):
        with open(self.errfile, errors="replace") as f:
            return f.read()

    def logs(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def unmount(self):
        """Unmounts; returns the daemon's exit status."""
        if self.proc.poll() is not None:
            # Died or was stopped: never leave a dead mount behind.
            if is_mounted(self.dir):
                subprocess.run(["fusermount3", "-uz", self.dir], check=False)
            return self.proc.returncode
        if is_mounted(self.dir):
            subprocess.run(["fusermount3", "-u", self.dir], check=False)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            subprocess.run(["fusermount3", "-uz", self.dir], check=False)
        if not self.stderr.closed:
            self.stderr.close()
        return rc


@pytest.fixture(scope="session")
def emu():
    e = Emulator(port=0).start()
    yield e
    e.stop()


@pytest.fixture
def fresh_emu(emu):
    """The shared emulator with faults, latency and records cleared."""
    emu.reset()
    for p in ("eventbridge", "activecampaign", "nango", "persona", "workato"):
        emu.set_connections(p, [])
    yield emu
    emu.reset()


@pytest.fixture
def mount(tmp_path, fresh_emu):
    """Factory: mount(sections, options=..., env=...) → Mount."""
    mounts = []

    def make(sections, options=(), env=None, wrapper=()):
        m = Mount(tmp_path / ("m%d" % len(mounts)), fresh_emu, sections,
                  options, env, wrapper)
        mounts.append(m)
        return m

    (tmp_path / "m0").mkdir()
    for i in range(1, 8):
        (tmp_path / ("m%d" % i)).mkdir()
    yield make
    # Unmount everything first, then judge: one failure must not strand
    # the other mounts.
    results = [(m, m.unmount()) for m in mounts]
    for m, rc in results:
        assert rc == 0, "daemon exited with %s: %s" % (rc, m.output())
        logs = m.logs() + m.output()
        for s in SECRETS:
            assert s not in logs, "a secret leaked into the log"
        assert "runtime error" not in logs and "AddressSanitizer" not in logs
        assert "ThreadSanitizer" not in logs


# --- Redis (fleet mode) -------------------------------------------------------

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
            pytest.skip("redis-tools (redis-check-rdb) is not installed")
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


@pytest.fixture
def redis_factory(tmp_path):
    """Factory: redis_factory(password=None, name="redis") -> a started
    Redis in tmp_path/name; every one is stopped at teardown."""
    servers = []

    def make(password=None, name="redis"):
        r = Redis(tmp_path / name, password)
        servers.append(r)
        return r.start()

    yield make
    for r in servers:
        r.close()


@pytest.fixture
def redis_server(redis_factory):
    """A started private Redis (no password) on a unix socket."""
    return redis_factory()
