"""Integration fixtures: an in-process emulator and real connfs mounts.

Every test mounts the real ./connfs binary (foreground, as a child process)
against the emulator on 127.0.0.1 and uses real tools on the mount. A mount
is always unmounted at the end and the daemon must then exit with 0.
"""

import calendar
import json
import os
import subprocess
import sys
import time
from datetime import datetime

import pytest

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

from emulator import CREDENTIALS, Emulator  # noqa: E402
from redis_server import Redis  # noqa: E402

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
