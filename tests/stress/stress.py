#!/usr/bin/env python3
"""Stress test: many readers against an API that fails at random (issue 4).

An emulator in its own process serves 2,000 connections over the five
providers and gives every list request a 20 % chance of a random fault
(everything but the slow, huge and endless ones). connfs is mounted with
ttl=1, so listings are refreshed all the time, through the faults. Sixteen
workers run `ls -l`, `cat` of random files and `grep -r` in parallel.

It passes when:
  - the daemon never dies and exits 0 at unmount (no sanitizer report when
    built with SAN=1);
  - no command hangs: each ends within its deadline plus slack;
  - every error is one the faults explain (EIO, EACCES, ETIMEDOUT): never
    ENOENT for a file that was listed (the data does not change), never an
    empty or partial listing;
  - the daemon's RSS at the end is within +20 % of its RSS after the first
    round and a warm-up of a third of the run (at least 10 s).

    python3 tests/stress/stress.py [--seconds 30] [--workers 16] ...

Prints `stress: N ops, E errors (by errno), RSS start/end` and exits 1 on
failure. Standard library only. Also a pytest test (test_stress_short),
collected when this file is named on the pytest command line.
"""

import argparse
import collections
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests")
sys.path.insert(0, TESTS)

from emulator import CREDENTIALS  # noqa: E402
from emulator.server import EmulatorClient  # noqa: E402

PROVIDERS = ("eventbridge", "activecampaign", "nango", "persona", "workato")
AKID = "AKIDCONNFSTEST"
EXPLAINED = {"EIO", "EACCES", "ETIMEDOUT"}
STRERROR = {os.strerror(e): errno.errorcode[e] for e in
            (errno.EIO, errno.EACCES, errno.ETIMEDOUT, errno.ENOENT,
             errno.ENOTCONN, errno.ENOTDIR, errno.EINVAL, errno.ENOMEM,
             errno.EAGAIN, errno.EINTR)}
# EventBridge's `wrong_shape missing_fields` (a page without `Connections`)
# is read as an empty page: a known issue, asserted (xfail) by
# tests/integration/test_faults.py. Left out here so that it does not hide
# anything else.
EB_FAULTS = ("http429", "throttle", "http500", "http502", "http503",
             "http504", "http401", "http403", "reset_before", "reset_mid",
             "truncated", "invalid_json", "redirect", "cursor_loop",
             "invalid_token")


def log(msg):
    print("stress: " + msg, flush=True)


def is_mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == path for line in f)


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def errnos(stderr):
    """errno names of the `tool: path: message` lines on stderr."""
    out = []
    for line in stderr.splitlines():
        for text, name in STRERROR.items():
            if line.endswith(text) or (text + " ") in line:
                out.append(name)
                break
        else:
            out.append("other: " + line[-120:])
    return out


class Stress:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="connfs-stress-")
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mnt)
        self.logfile = os.path.join(self.tmp, "connfs.log")
        self.emu_proc = self.daemon = None
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.errors = collections.Counter()
        self.failures = []          # unexplained: each one fails the run
        self.names = {}             # directory -> last full listing
        self.expected = {}
        self.rounds = collections.Counter()

    # --- setup ---------------------------------------------------------------
    def start_emulator(self):
        port_file = os.path.join(self.tmp, "port")
        env = dict(os.environ, PYTHONPATH=TESTS)
        self.emu_out = open(os.path.join(self.tmp, "emulator.log"), "w")
        self.emu_proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--port", "0", "--port-file",
             port_file, "--data", "none", "--quiet"], cwd=TESTS, env=env,
            stdout=self.emu_out, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while not os.path.exists(port_file):
            if self.emu_proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.05)
        with open(port_file) as f:
            self.url = "http://127.0.0.1:%d" % int(f.read())
        self.emu = EmulatorClient(self.url).start()
        each = self.args.connections // len(PROVIDERS)
        for i, p in enumerate(PROVIDERS):
            objs = self.emu.generate(p, each, seed=i + 1)
            if p == "workato":      # runtime children are not listed
                objs = [o for o in objs if o.get("parent_id") is None]
            self.expected[p] = len(objs)

    def faults_on(self):
        self.emu.random_faults(None, probability=self.args.probability,
                               seed=self.args.seed)
        self.emu.random_faults("eventbridge", probability=self.args.probability,
                               seed=self.args.seed, faults=list(EB_FAULTS))

    def mount(self):
        cfg = os.path.join(self.tmp, "config")
        with open(cfg, "w") as f:
            for p in PROVIDERS:
                # deadline bounds a reader's wait, walk_limit the walk.
                f.write("[%s]\nurl = %s\nttl = 1\ntimeout = %g\n"
                        "deadline = %g\nwalk_limit = %g\nrate = 0\n" % (
                            p, self.url, self.args.timeout,
                            self.args.deadline, self.args.deadline))
                if p == "eventbridge":
                    f.write("region = us-east-1\n")
                f.write("\n")
        os.chmod(cfg, 0o600)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.tmp,
            "AWS_ACCESS_KEY_ID": AKID,
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["eventbridge"][AKID][0],
            "ACTIVECAMPAIGN_API_TOKEN": CREDENTIALS["activecampaign"],
            "NANGO_SECRET_KEY": CREDENTIALS["nango"],
            "PERSONA_API_KEY": CREDENTIALS["persona"],
            "WORKATO_API_TOKEN": CREDENTIALS["workato"],
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                  "MALLOC_ARENA_MAX"):
            if k in os.environ:
                env[k] = os.environ[k]
        self.daemon_out = open(os.path.join(self.tmp, "stderr"), "w")
        self.daemon = subprocess.Popen(
            [self.args.binary, "-f", "-o", "config=%s,logfile=%s,"
             "loglevel=info" % (cfg, self.logfile), self.mnt],
            env=env, stdin=subprocess.DEVNULL, stdout=self.daemon_out,
            stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while not is_mounted(self.mnt):
            if self.daemon.poll() is not None or time.time() > deadline:
                raise RuntimeError("connfs did not mount: " + self.output())
            time.sleep(0.02)

    def output(self):
        with open(os.path.join(self.tmp, "stderr"), errors="replace") as f:
            return f.read()

    # --- operations ----------------------------------------------------------
    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)

    def run(self, name, cmd, limit):
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True,
                               errors="replace", timeout=limit)
        except subprocess.TimeoutExpired:
            self.fail("hang: %s did not finish within %.0f s" % (
                " ".join(cmd), limit))
            return None
        with self.lock:
            self.ops[name] += 1
            for e in errnos(r.stderr):
                self.errors[e] += 1
                if e not in EXPLAINED:
                    if len(self.failures) < 50:
                        self.failures.append("%s: %s" % (" ".join(cmd), e))
        r.elapsed = time.monotonic() - t0
        return r

    def op_ls(self, rnd):
        d = rnd.choice(PROVIDERS)
        r = self.run("ls -l", ["ls", "-l", os.path.join(self.mnt, d)],
                     self.args.deadline + self.args.slack)
        if r is None or r.returncode != 0:
            return
        names = [line.split(None, 8)[8] for line in r.stdout.splitlines()
                 if line.startswith("-")]
        if len(names) != self.expected[d]:
            self.fail("%s: listed %d files, the API has %d" % (
                d, len(names), self.expected[d]))
        with self.lock:
            self.names[d] = names

    def op_cat(self, rnd):
        d = rnd.choice(PROVIDERS)
        with self.lock:
            names = self.names.get(d)
        if not names:
            return self.op_ls(rnd)
        picks = rnd.sample(names, min(5, len(names)))
        self.run("cat", ["cat"] + [os.path.join(self.mnt, d, n)
                                   for n in picks],
                 self.args.deadline + self.args.slack)

    def op_grep(self, rnd):
        # Every file holds a '{'; a listing that fails is an error line.
        r = self.run("grep -r", ["grep", "-r", "-l", "-F", "{", self.mnt],
                     len(PROVIDERS) * self.args.deadline + self.args.slack)
        if r is None:
            return
        found = collections.Counter(
            os.path.relpath(line, self.mnt).split(os.sep)[0]
            for line in r.stdout.splitlines())
        for d in PROVIDERS:
            if found[d] and found[d] != self.expected[d]:
                self.fail("grep -r: %s had %d files, the API has %d" % (
                    d, found[d], self.expected[d]))
        if r.returncode == 1 and not r.stderr:
            self.fail("grep -r matched nothing at all")

    def worker(self, i, stop):
        rnd = random.Random(self.args.seed * 100 + i)
        ops = [self.op_ls, self.op_cat, self.op_grep]
        while time.monotonic() < stop:
            # Each round does every kind of operation once, in random order.
            rnd.shuffle(ops)
            for op in ops:
                op(rnd)
            with self.lock:
                self.rounds[i] += 1

    # --- the run -------------------------------------------------------------
    def check_alive(self, when):
        if self.daemon.poll() is not None:
            self.fail("the daemon died %s (exit %s): %s" % (
                when, self.daemon.returncode, self.output()[-2000:]))
            return False
        try:
            if sorted(os.listdir(self.mnt)) != sorted(PROVIDERS):
                self.fail("the mount root is wrong %s" % when)
        except OSError as e:
            self.fail("the mount root failed %s: %s" % (when, e))
            return False
        return True

    def dir_status(self, d):
        with open(os.path.join(self.mnt, ".connfs", "status.json")) as f:
            return next(r for r in json.load(f) if r["directory"] == d)

    def wait_idle(self, limit):
        """True once no directory is walking (within limit seconds)."""
        end = time.monotonic() + limit
        while any(self.dir_status(d)["walking"] for d in PROVIDERS):
            if time.monotonic() > end:
                return False
            time.sleep(0.05)
        return True

    def main(self):
        a = self.args
        self.start_emulator()
        self.mount()
        self.faults_on()
        stop = time.monotonic() + a.seconds
        threads = [threading.Thread(target=self.worker, args=(i, stop))
                   for i in range(a.workers)]
        for t in threads:
            t.start()
        # The baseline RSS: once every worker has finished its first round
        # and a third of the run (at least 10 s) is over. glibc gives each
        # new thread (FUSE workers, page fetchers) an arena of its own as
        # they come: with MALLOC_ARENA_MAX=1 the RSS is flat from the first
        # round on; without, it settles within the first minute or two.
        rss_start = None
        warm = time.monotonic() + max(10.0, a.seconds / 3)
        self.samples = []
        next_sample = time.monotonic() + 10
        while any(t.is_alive() for t in threads):
            with self.lock:
                first = len(self.rounds) == a.workers
            if first and rss_start is None and time.monotonic() >= warm \
                    and self.daemon.poll() is None:
                rss_start = rss_mb(self.daemon.pid)
            if time.monotonic() >= next_sample and self.daemon.poll() is None:
                self.samples.append(round(rss_mb(self.daemon.pid), 1))
                next_sample += 10
            time.sleep(0.2)
        for t in threads:
            t.join()
        alive = self.check_alive("during the run")
        rss_end = rss_mb(self.daemon.pid) if alive else 0.0
        if rss_start is None:
            rss_start = rss_end
            self.fail("no RSS baseline: no worker finished a round after "
                      "the warm-up")
        # Faults off: every directory comes back whole and fresh. Walks
        # that began under the faults end first (within walk_limit); then
        # .connfs/refresh/NAME makes one walk and waits for it.
        self.emu.reset()
        if alive and not self.wait_idle(a.deadline + a.slack):
            self.fail("still walking %.0f s after the faults stopped"
                      % (a.deadline + a.slack))
            alive = False
        if alive:
            for d in PROVIDERS:
                # One record: the result line padded with blanks.
                want = "%s: refreshed, %d connections" % (
                    d, self.expected[d])
                with open(os.path.join(self.mnt, ".connfs", "refresh",
                                       d)) as f:
                    got = f.read().rstrip("\n").rstrip(" ")
                if got != want:
                    self.fail("%s after the faults: %r, want %r"
                              % (d, got, want))
                row = self.dir_status(d)
                if row["stale"] or row["state"] != "fresh":
                    self.fail("%s after the faults: state %s, stale %s"
                              % (d, row["state"], row["stale"]))
                try:
                    n = len(os.listdir(os.path.join(self.mnt, d)))
                except OSError as e:
                    self.fail("%s after the faults: %s" % (d, e))
                    continue
                if n != self.expected[d]:
                    self.fail("%s after the faults: %d files, the API has %d"
                              % (d, n, self.expected[d]))
        # AddressSanitizer keeps freed memory in quarantine (256 MB):
        # RSS says nothing about leaks there; LeakSanitizer does.
        asan = alive and sanitized(self.daemon.pid)
        if asan:
            log("AddressSanitizer build: RSS not checked")
        if alive and not asan and rss_end > rss_start * 1.2:
            self.fail("daemon RSS grew from %.1f MB to %.1f MB (> +20 %%)"
                      % (rss_start, rss_end))
        with open(self.logfile, errors="replace") as f:
            text = f.read()
        stale = text.count("keeping the last good listing")
        retries = text.count("; retry ")
        walks = text.count(" connections (")
        if a.probability and not stale:
            self.fail("no refresh failed: the faults did not happen")
        n_ops = sum(self.ops.values())
        n_err = sum(self.errors.values())
        by = ", ".join("%s %d" % kv for kv in sorted(self.errors.items()))
        log("%d ops, %d errors (%s), RSS start/end %.1f/%.1f MB" % (
            n_ops, n_err, by or "none", rss_start, rss_end))
        log("ops: " + ", ".join("%s %d" % kv for kv in sorted(
            self.ops.items())) + "; rounds per worker %d..%d" % (
            min(self.rounds.values() or [0]), max(self.rounds.values() or [0])))
        log("daemon: %d good walks, %d failed refreshes served stale, "
            "%d retries; RSS every 10 s: %s MB" % (
                walks, stale, retries, " ".join(map(str, self.samples))))
        return n_ops

    def finish(self):
        rc = None
        if self.daemon is not None:
            if self.daemon.poll() is None and is_mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", self.mnt], check=False)
            try:
                rc = self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                rc = self.daemon.wait()
                subprocess.run(["fusermount3", "-uz", self.mnt], check=False)
            if rc != 0:
                self.fail("the daemon exited with %s: %s" % (
                    rc, self.output()[-3000:]))
            text = self.output()
            with open(self.logfile, errors="replace") as f:
                text += f.read()
            for bad in ("AddressSanitizer", "runtime error:",
                        "LeakSanitizer"):
                if bad in text:
                    self.fail("sanitizer report: %s" % bad)
            for s in ([CREDENTIALS["eventbridge"][AKID][0]] +
                      [CREDENTIALS[p] for p in PROVIDERS[1:]]):
                if s in text:
                    self.fail("a secret is in the log")
        if self.emu_proc is not None:
            self.emu_proc.send_signal(signal.SIGTERM)
            try:
                self.emu_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.emu_proc.kill()
                self.emu_proc.wait()
            self.emu_out.close()
        if self.daemon is not None:
            self.daemon_out.close()
        if not self.failures and not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept %s (connfs.log, stderr, emulator.log)" % self.tmp)
        return rc


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--probability", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=2,
                    help="connfs per-request timeout (s)")
    ap.add_argument("--deadline", type=float, default=6,
                    help="connfs per-walk deadline (s)")
    ap.add_argument("--slack", type=float, default=15,
                    help="seconds a command may take beyond its deadline")
    ap.add_argument("--binary", default=os.path.join(ROOT, "connfs"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory and logs")
    return ap.parse_args(argv)


def run(argv=None):
    """One stress run; returns the list of failures (empty: passed)."""
    s = Stress(parse(argv))
    try:
        s.main()
    except Exception as e:      # noqa: BLE001 - reported as a failure
        s.fail("%s: %s" % (type(e).__name__, e))
    finally:
        s.finish()
    for f in s.failures:
        log("FAIL " + f)
    return s.failures


def main(argv=None):
    return 1 if run(argv) else 0


def test_stress_short():
    """`make check`: 30 s of the full stress."""
    failures = run(["--seconds", "30"])
    assert not failures, "\n".join(failures)


if __name__ == "__main__":
    sys.exit(main())
