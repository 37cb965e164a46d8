#!/usr/bin/python3
"""make bench: connfs held to the physical limits (issue 5).

    /usr/bin/python3 tests/bench/bench.py [--quick] [--only 1,4] [--reps N]

Runs as root on a machine with FUSE. Starts the API emulator in a process
of its own (python3 -m emulator), mounts the real ./connfs
binary as a child process for each measurement, and prints a Markdown
table (measure, value, target, met) and the machine it ran on.

Machines here are noisy, so every figure is a ratio of two things measured
in the same run, alternating, and the median of the repetitions (5 by
default, 3 with --quick). The full run takes well under 10 minutes on two
cores; --quick is a smoke run of about a minute with smaller sizes.

Measures (issue 5):
 1  cold `ls`, cursor API: EventBridge vs a minimal sequential client
 2  cold `ls`, offset API: ActiveCampaign vs a sequential client; and with
    the emulator enforcing 5 requests/s
 3  request counts: cold, within the TTL, 32 processes at once
 4  warm speed vs a copy of the tree on tmpfs
 5  memory: peak RSS holding 100,000 connections; RSS over 1,000 rounds
 6  scaling: cold and warm `ls -l` per connection from 100 to 100,000
 7  the listing store: mount to first `ls`, RSS of a saved walk, `ls -l`
    during a background refresh
 8  fleet mode (one Redis, many daemons): API requests of N hosts listing
    one cold section, time to serve another host's walk, warm `ls -l`
    with fleet mode on vs off

Standard library only.
"""

import argparse
import hashlib
import hmac
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

BENCH = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(BENCH)
ROOT = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)

from emulator import CREDENTIALS, EmulatorClient  # noqa: E402
from redis_server import Redis  # noqa: E402

BINARY = os.path.join(ROOT, "connfs")     # main() copies it to the work dir
DAEMON_ENV = {}                             # --env K=V for experiments
AKID = "AKIDCONNFSTEST"
AWS_SECRET = CREDENTIALS["eventbridge"][AKID][0]
AC_TOKEN = CREDENTIALS["activecampaign"]
PROVIDERS = ("eventbridge", "activecampaign", "nango", "persona", "workato")
LATENCY_MS = 20
PAGE = 100
FAST = {"rate": "0", "ttl": "3600", "deadline": "600"}

T0 = time.monotonic()


def say(fmt, *args):
    """A progress line (stderr), stamped with the seconds since the start."""
    sys.stderr.write("[%6.1f s] %s\n" % (time.monotonic() - T0,
                                         fmt % args if args else fmt))
    sys.stderr.flush()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# --------------------------------------------------------------------------
# The emulator (another process) and connfs mounts

class Emu:
    """The emulator in its own process, driven over /_emu/."""

    def __init__(self, work):
        self.portfile = os.path.join(work, "emu.port")
        self.logfile = open(os.path.join(work, "emu.log"), "w")
        env = dict(os.environ, PYTHONPATH=TESTS)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "emulator",
             "--port", "0", "--port-file", self.portfile, "--data", "none"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.logfile,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.portfile):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start (see emu.log)")
            time.sleep(0.05)
        with open(self.portfile) as f:
            self.port = int(f.read())
        self.url = "http://127.0.0.1:%d" % self.port
        self.c = EmulatorClient(self.url, timeout=300).start()

    def __getattr__(self, name):
        if name == "c":
            raise AttributeError(name)
        return getattr(self.c, name)

    def only(self, provider, n, latency_ms=0, seed=1):
        """Reset, empty every provider but `provider`, which gets n objects."""
        self.c.reset()
        for p in PROVIDERS:
            if p != provider:
                self.c.set_connections(p, [])
        self.c._call("POST", "generate/" + provider, {"n": n, "seed": seed})
        self.c.set_latency(provider, latency_ms)
        self.c.set_rate_limit(provider, False)
        self.c.clear_requests()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


def daemon_env(home):
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "AWS_ACCESS_KEY_ID": AKID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_REGION": "us-east-1",
        "ACTIVECAMPAIGN_API_TOKEN": AC_TOKEN,
        "NANGO_SECRET_KEY": CREDENTIALS["nango"],
        "PERSONA_API_KEY": CREDENTIALS["persona"],
        "WORKATO_API_TOKEN": CREDENTIALS["workato"],
        **DAEMON_ENV,
    }


def is_mounted(path, fstype="fuse.connfs"):
    with open("/proc/mounts") as f:
        return any(len(l.split()) > 2 and l.split()[1] == path and
                   l.split()[2] == fstype for l in f)


PROBLEMS = []       # things that went wrong besides missed targets


class Mount:
    """One connfs daemon (./connfs -f) and its mount point."""
    seq = 0

    def __init__(self, work, emu, sections, options=(), args=()):
        Mount.seq += 1
        self.base = os.path.join(work, "m%d" % Mount.seq)
        self.dir = os.path.join(self.base, "mnt")
        os.makedirs(self.dir)
        self.config = os.path.join(self.base, "config")
        lines = []
        for name, keys in sections.items():
            keys = dict(keys)
            keys.setdefault("url", emu.url)
            lines.append("[%s]" % name)
            lines += ["%s = %s" % kv for kv in keys.items()] + [""]
        with open(self.config, "w") as f:
            f.write("\n".join(lines))
        os.chmod(self.config, 0o600)
        self.log = os.path.join(self.base, "connfs.log")
        self.out = open(os.path.join(self.base, "stderr"), "w")
        opts = ["config=" + self.config, "logfile=" + self.log] + list(options)
        # Measures of walks must not be served from a store of an earlier
        # mount: only the store's own rows (7) name one.
        if not any(o.startswith("cache_dir=") for o in opts):
            opts.append("nostore")
        self.proc = subprocess.Popen(
            [BINARY, "-f"] + list(args) + ["-o", ",".join(opts), self.dir],
            env=daemon_env(self.base), stdin=subprocess.DEVNULL,
            stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not is_mounted(self.dir):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("connfs did not mount: see " + self.base)
            time.sleep(0.005)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def status(self):
        """/proc/PID/status of the daemon as {key: kB or text}."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip()
                out[k] = int(v.split()[0]) if v.endswith("kB") else v
        return out

    def unmount(self):
        if self.proc.returncode is not None:
            return self.proc.returncode
        for _ in range(50):
            if subprocess.run(["fusermount3", "-u", self.dir],
                              stderr=subprocess.DEVNULL).returncode == 0:
                break
            time.sleep(0.1)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            subprocess.run(["fusermount3", "-uz", self.dir],
                           stderr=subprocess.DEVNULL)
        self.out.close()
        if rc != 0:
            PROBLEMS.append("connfs exited with %s after unmount (%s)"
                            % (rc, self.base))
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unmount()


# --------------------------------------------------------------------------
# Baseline clients: one kept-alive connection, pages one after another

def sigv4(host, body, when=None):
    """SigV4 headers for EventBridge ListConnections (what libcurl sends)."""
    t = when or datetime.now(timezone.utc)
    amz = t.strftime("%Y%m%dT%H%M%SZ")
    headers = {"content-type": "application/x-amz-json-1.1", "host": host,
               "x-amz-date": amz, "x-amz-target": "AWSEvents.ListConnections"}
    names = sorted(headers)
    canon = "\n".join(["POST", "/", ""] +
                      ["%s:%s" % (k, headers[k]) for k in names] +
                      ["", ";".join(names), hashlib.sha256(body).hexdigest()])
    scope = "%s/us-east-1/events/aws4_request" % amz[:8]
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope,
                     hashlib.sha256(canon.encode()).hexdigest()])
    key = ("AWS4" + AWS_SECRET).encode()
    for part in (amz[:8], "us-east-1", "events", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
        % (AKID, scope, ";".join(names), sig))
    return headers


def baseline_eventbridge(emu):
    """Walks every NextToken page; returns (seconds, objects, pages)."""
    host = "127.0.0.1:%d" % emu.port
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=60)
    token, n, pages = None, 0, 0
    while True:
        doc = {"Limit": PAGE}
        if token:
            doc["NextToken"] = token
        body = json.dumps(doc).encode()
        conn.request("POST", "/", body, sigv4(host, body))
        r = conn.getresponse()
        page = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError("baseline: HTTP %d %s" % (r.status, page))
        pages += 1
        n += len(page["Connections"])
        token = page.get("NextToken")
        if not token:
            break
    conn.close()
    return time.perf_counter() - t, n, pages


def baseline_activecampaign(emu):
    """Walks limit/offset pages in order; returns (seconds, objects, pages)."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=60)
    offset, n, pages = 0, 0, 0
    while True:
        conn.request("GET", "/api/3/connections?limit=%d&offset=%d"
                     % (PAGE, offset), headers={"Api-Token": AC_TOKEN})
        r = conn.getresponse()
        page = json.loads(r.read())
        if r.status != 200:
            raise RuntimeError("baseline: HTTP %d %s" % (r.status, page))
        pages += 1
        n += len(page["connections"])
        offset += PAGE
        if offset >= int(page["meta"]["total"]) or not page["connections"]:
            break
    conn.close()
    return time.perf_counter() - t, n, pages


# --------------------------------------------------------------------------
# Running commands

def sh(cmd, cwd, ok=(0,)):
    """Runs a shell command with its output thrown away; returns seconds."""
    t = time.perf_counter()
    p = subprocess.run(cmd, shell=True, cwd=cwd, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE,
                       env=dict(os.environ, LC_ALL="C"))
    t = time.perf_counter() - t
    if p.returncode not in ok:
        PROBLEMS.append("`%s` in %s exited %d: %s" % (
            cmd, cwd, p.returncode, p.stderr.decode(errors="replace")[:200]))
    return t


def timed_listdir(path):
    t = time.perf_counter()
    n = len(os.listdir(path))
    return time.perf_counter() - t, n


class Table:
    def __init__(self):
        self.rows = []

    def add(self, num, measure, value, target, met):
        mark = "—" if met is None else ("yes" if met else "**no**")
        self.rows.append((num, measure, value, target, mark))
        say("%s %s: %s (target %s) %s", num, measure, value, target, mark)

    def markdown(self):
        out = ["| # | measure | value | target | met |",
               "|---|---|---|---|---|"]
        # A | even inside `code` ends a cell in GitHub's tables.
        out += ["| %s |" % " | ".join(c.replace("|", "\\|") for c in r)
                for r in self.rows]
        return "\n".join(out)


def fmt_n(n):
    return "{:,}".format(n)


# --------------------------------------------------------------------------
# 1-3. Cold listings and request counts

def cold_walks(cfg, emu, work, table, counts):
    """Measures 1 and 2 (first part): connfs vs the sequential baseline."""
    cases = [
        ("1", "eventbridge", "cursor API (EventBridge)", baseline_eventbridge,
         {"region": "us-east-1", "page_size": str(PAGE)}, 1.10),
        ("2a", "activecampaign", "offset API (ActiveCampaign), rate limits "
         "off", baseline_activecampaign,
         {"page_size": str(PAGE), "rate": "0"}, 0.35),
    ]
    for num, prov, label, baseline, keys, target in cases:
        if num[0] not in cfg.only and "3" not in cfg.only:
            continue
        n = cfg.cold_n
        emu.only(prov, n, LATENCY_MS)
        pages = -(-n // PAGE)
        ratios, ts_c, ts_b, seen = [], [], [], []
        for rep in range(cfg.reps):
            pair = {}
            for who in (("base", "connfs") if rep % 2 == 0
                        else ("connfs", "base")):
                if who == "base":
                    t, got, npages = baseline(emu)
                    assert got == n and npages == pages, (got, npages)
                    pair["base"] = t
                    continue
                with Mount(work, emu, {prov: keys}) as m:
                    emu.clear_requests()
                    t, got = timed_listdir(m.path(prov))
                    seen.append(emu.count(prov))
                    if got != n:
                        PROBLEMS.append("%s: listed %d of %d" % (prov, got, n))
                pair["connfs"] = t
            ratios.append(pair["connfs"] / pair["base"])
            ts_c.append(pair["connfs"])
            ts_b.append(pair["base"])
            say("  %s rep %d: connfs %.3f s, baseline %.3f s, %d requests",
                prov, rep + 1, pair["connfs"], pair["base"], seen[-1])
        r = median(ratios)
        table.add(num, "cold `ls`, %s: %s conns, page %d, %d ms/request"
                  % (label, fmt_n(n), PAGE, LATENCY_MS),
                  "%.2f× (connfs %.2f s, sequential client %.2f s)"
                  % (r, median(ts_c), median(ts_b)),
                  "≤ %.2f× client" % target, r <= target)
        counts[prov] = (seen, pages)


def rate_limited(cfg, emu, work, table):
    """Measure 2, second part: the emulator enforcing 5 requests/s."""
    n = cfg.rl_n
    pages = -(-n // PAGE)
    bound = pages / 5.0
    emu.only("activecampaign", n, LATENCY_MS)
    times, limited, counts = [], 0, []
    for rep in range(cfg.reps):
        emu.set_rate_limit("activecampaign", True)
        time.sleep(1.2)                 # the emulator's bucket refills
        with Mount(work, emu, {"activecampaign": {"page_size": str(PAGE)}}) as m:
            emu.clear_requests()
            t, got = timed_listdir(m.path("activecampaign"))
            recs = emu.requests("activecampaign")
        if got != n:
            PROBLEMS.append("activecampaign (rate limited): listed %d of %d"
                            % (got, n))
        lists = [r for r in recs if r["kind"] == "list"]
        limited += sum(1 for r in recs if r["status"] == 429)
        counts.append(len(lists))
        times.append(t)
        say("  rate-limited rep %d: %.2f s, %d requests, %d × 429", rep + 1,
            t, len(lists), sum(1 for r in recs if r["status"] == 429))
    emu.set_rate_limit("activecampaign", False)
    r = median(times) / bound
    table.add("2b", "cold `ls`, ActiveCampaign %s conns, emulator enforcing "
              "5 req/s, default limiter" % fmt_n(n),
              "%.2f× of %d pages ÷ 5/s (%.1f s of %.1f s); %d × 429; "
              "%s requests" % (r, pages, median(times), bound, limited,
                               "/".join(map(str, sorted(set(counts))))),
              "≤ 1.10×, 0 × 429", r <= 1.10 and limited == 0)


def request_counts(cfg, emu, work, table, counts):
    """Measure 3: cold minimum, zero within the TTL, single flight."""
    n = cfg.cold_n
    pages = -(-n // PAGE)
    # Cold: the counts recorded by every cold walk of measures 1 and 2.
    for num, prov in (("3a", "eventbridge"), ("3b", "activecampaign")):
        if prov in counts:
            seen, want = counts[prov]
            table.add(num, "list requests of a cold `ls`, %s, %s conns "
                      "(every rep of %s)" % (prov, fmt_n(n),
                                             "1" if num == "3a" else "2a"),
                      "/".join(map(str, sorted(set(seen)))), str(want),
                      set(seen) == {want})
    # Within the TTL: every other tool costs nothing.
    emu.c.reset()
    for p in PROVIDERS:
        emu.c.set_connections(p, [])
    for p in ("eventbridge", "activecampaign"):
        emu.c._call("POST", "generate/" + p, {"n": n, "seed": 1})
    emu.clear_requests()
    secs = {"eventbridge": dict(FAST, region="us-east-1",
                                page_size=str(PAGE)),
            "activecampaign": dict(FAST, page_size=str(PAGE))}
    dirs = "eventbridge activecampaign"
    with Mount(work, emu, secs) as m:
        sh("ls " + dirs, m.dir)
        cold = {p: emu.count(p) for p in ("eventbridge", "activecampaign")}
        needle = sorted(os.listdir(m.path("eventbridge")))[n // 2][:-5]
        cmds = [("ls -l", "ls -l " + dirs, (0,)),
                ("stat", "find %s -type f -exec stat {} +" % dirs, (0,)),
                ("cat", "find %s -type f -exec cat {} +" % dirs, (0,)),
                ("grep -r", "grep -r %s %s" % (needle, dirs), (0,)),
                ("find", "find %s" % dirs, (0,)),
                ("tar", "tar cf - %s | wc -c" % dirs, (0,))]
        costs = []
        for name, cmd, ok in cmds:
            emu.clear_requests()
            sh(cmd, m.dir, ok)
            costs.append((name, sum(emu.count(p) for p in
                                    ("eventbridge", "activecampaign"))))
    total = sum(c for _, c in costs)
    table.add("3c", "list requests of `ls -l`, `stat`, `cat`, `grep -r`, "
              "`find`, `tar` of every file within the TTL (EventBridge + "
              "ActiveCampaign, %s each)" % fmt_n(n),
              "%d (%s)" % (total, ", ".join("%s %d" % c for c in costs)),
              "0", total == 0)
    if cold != {"eventbridge": pages, "activecampaign": pages}:
        PROBLEMS.append("cold ls before 3c cost %s, not %d each"
                        % (cold, pages))
    # Single flight: 32 processes listing one cold directory at once.
    results = []
    for prov, keys in (("eventbridge", {"region": "us-east-1",
                                        "page_size": str(PAGE)}),
                       ("activecampaign", {"page_size": str(PAGE),
                                           "rate": "0"})):
        emu.c.set_latency(prov, LATENCY_MS)
        with Mount(work, emu, {prov: keys}) as m:
            emu.clear_requests()
            procs = [subprocess.Popen(["ls", "-1", m.path(prov)],
                                      stdout=subprocess.PIPE)
                     for _ in range(32)]
            lines = [len(p.communicate()[0].splitlines()) for p in procs]
            got = emu.count(prov)
        if set(lines) != {n}:
            PROBLEMS.append("32 × ls of %s saw %s entries" % (prov,
                                                             sorted(set(lines))))
        results.append((prov, got))
        emu.c.set_latency(prov, 0)
    table.add("3d", "list requests of 32 processes listing one cold "
              "directory at once (%s conns, %d ms/request)"
              % (fmt_n(n), LATENCY_MS),
              ", ".join("%s %d" % r for r in results),
              "%d each (one walk)" % pages,
              all(c == pages for _, c in results))


# --------------------------------------------------------------------------
# 4. Warm speed against tmpfs

def warm_vs_tmpfs(cfg, emu, work, table):
    each = cfg.warm_total // len(PROVIDERS)
    emu.c.reset()
    for p in PROVIDERS:
        emu.c._call("POST", "generate/" + p, {"n": each, "seed": 2})
    secs = {p: dict(FAST) for p in PROVIDERS}
    secs["eventbridge"]["region"] = "us-east-1"
    secs["workato"]["include_runtime_connections"] = "true"
    tmp = os.path.join(work, "tmpfs")
    os.makedirs(tmp)
    mounted_tmpfs = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1g,mode=0755", "tmpfs", tmp],
        stderr=subprocess.DEVNULL).returncode == 0
    if not mounted_tmpfs:
        tmp = tempfile.mkdtemp(dir="/dev/shm")
        say("  could not mount a tmpfs: using %s", tmp)
    try:
        with Mount(work, emu, secs) as m:
            total = 0
            for p in PROVIDERS:
                total += len(os.listdir(m.path(p)))
            for p in PROVIDERS:
                subprocess.run(["cp", "-R", "--preserve=mode,timestamps",
                                m.path(p), tmp], check=True)
            names = sorted(os.listdir(m.path("eventbridge")))
            needle = names[len(names) // 2][:-5]
            d = " ".join(PROVIDERS)
            cmds = [
                ("ls -l", "`ls -l` of every directory", "ls -l " + d, 1.5,
                 (0,)),
                ("find", "`find -type f | wc -l`",
                 "find %s -type f | wc -l" % d, None, (0,)),
                ("grep -r", "`grep -r` for a string",
                 "grep -r %s %s" % (needle, d), 3.0, (0,)),
                ("cat", "`cat` of every file",
                 "find %s -type f -exec cat {} + >/dev/null" % d, 3.0, (0,)),
                ("tar", "`tar cf - | wc -c`", "tar cf - %s | wc -c" % d, 2.0,
                 (0,)),
                ("du", "`du -s`", "du -s " + d, None, (0,)),
            ]
            for _, _, cmd, _, ok in cmds:           # warm both up
                sh(cmd, m.dir, ok)
                sh(cmd, tmp, ok)
            emu.clear_requests()
            ratios = {c[0]: [] for c in cmds}
            times = {c[0]: ([], []) for c in cmds}
            for rep in range(cfg.warm_reps):
                for key, _, cmd, _, ok in cmds:
                    if rep % 2 == 0:
                        tt = sh(cmd, tmp, ok)
                        tc = sh(cmd, m.dir, ok)
                    else:
                        tc = sh(cmd, m.dir, ok)
                        tt = sh(cmd, tmp, ok)
                    ratios[key].append(tc / tt)
                    times[key][0].append(tc)
                    times[key][1].append(tt)
            requests = sum(emu.count(p) for p in PROVIDERS)
            for i, (key, label, cmd, target, _) in enumerate(cmds):
                r = median(ratios[key])
                table.add("4" + "abcdef"[i], "warm %s, 5 providers, %s conns: connfs ÷ "
                          "tmpfs" % (label, fmt_n(total)),
                          "%.2f× (%.1f ms vs %.1f ms)"
                          % (r, median(times[key][0]) * 1e3,
                             median(times[key][1]) * 1e3),
                          "≤ %.1f×" % target if target else "report",
                          r <= target if target else None)
            if requests:
                PROBLEMS.append("warm commands cost %d list requests"
                                % requests)
        # ls -l asks every entry for security.selinux, which the kernel
        # never caches: with xattrs served that is one upcall per file.
        with Mount(work, emu, secs, options=["noxattr"]) as m:
            for p in PROVIDERS:
                os.listdir(m.path(p))
            cmd = "ls -l " + d
            sh(cmd, m.dir)
            sh(cmd, tmp)
            rs, tcs, tts = [], [], []
            for rep in range(cfg.warm_reps):
                if rep % 2 == 0:
                    tt, tc = sh(cmd, tmp), sh(cmd, m.dir)
                else:
                    tc, tt = sh(cmd, m.dir), sh(cmd, tmp)
                rs.append(tc / tt)
                tcs.append(tc)
                tts.append(tt)
            r = median(rs)
            table.add("4g", "warm `ls -l` of every directory with -o noxattr "
                      "(no user.connfs.* attributes), %s conns: connfs ÷ "
                      "tmpfs" % fmt_n(total),
                      "%.2f× (%.1f ms vs %.1f ms)"
                      % (r, median(tcs) * 1e3, median(tts) * 1e3),
                      "≤ 1.5×", r <= 1.5)
    finally:
        if mounted_tmpfs:
            subprocess.run(["umount", tmp])
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# 5-6. Memory and scaling

def scaling_and_memory(cfg, emu, work, table):
    """Cold and warm `ls -l` at each N; memory at the largest."""
    cold, warm, mem = {}, {}, []
    keys = dict(FAST, region="us-east-1", page_size=str(PAGE))
    for n in cfg.sizes:
        emu.only("eventbridge", n)
        cold[n], warm[n] = [], []
        for rep in range(cfg.scale_reps):
            with Mount(work, emu, {"eventbridge": keys}) as m:
                d = m.path("eventbridge")
                idle = m.status()["VmRSS"] * 1024
                cold[n].append(sh("ls -l " + d, m.dir))
                warm[n].append(sh("ls -l " + d, m.dir))
                if n == cfg.sizes[-1] and "5" in cfg.only:
                    nbytes = sum(e.stat().st_size for e in os.scandir(d))
                    files = len(os.listdir(d))
                    st = m.status()
                    mem.append((st["VmHWM"] * 1024, st["VmRSS"] * 1024,
                                nbytes, files, idle))
            say("  N=%d rep %d: cold %.3f s, warm %.4f s", n, rep + 1,
                cold[n][-1], warm[n][-1])
    if "6" in cfg.only:
        ref, big = 1000, cfg.sizes[-1]
        for num, label, data in (("6a", "cold", cold), ("6b", "warm", warm)):
            per = {n: median(data[n]) / n * 1e6 for n in cfg.sizes}
            r = per[big] / per[ref]
            table.add(num, "%s `ls -l` (EventBridge, no latency), µs per "
                      "connection at N = %s" % (label, ", ".join(
                          fmt_n(n) for n in cfg.sizes)),
                      "%s; %s÷%s: %.2f×" % (", ".join("%.1f" % per[n] for n
                                                        in cfg.sizes),
                                            fmt_n(big), fmt_n(ref), r),
                      "≤ 2× (%s vs %s)" % (fmt_n(big), fmt_n(ref)), r <= 2.0)
    if mem:
        hwm = median([m[0] for m in mem])
        rss = median([m[1] for m in mem])
        nbytes, files = mem[0][2], mem[0][3]
        idle = median([m[4] for m in mem])
        limit = 1.5 * nbytes + 20 * 2**20
        if files != cfg.sizes[-1]:
            PROBLEMS.append("memory mount listed %d files" % files)
        table.add("5a", "peak RSS (VmHWM) of the daemon holding %s "
                  "connections (EventBridge)" % fmt_n(files),
                  "%.1f MB (%.2f× the %.1f MB of rendered JSON; VmRSS "
                  "%.1f MB, %.1f MB before the listing)"
                  % (hwm / 2**20, hwm / nbytes, nbytes / 2**20, rss / 2**20,
                     idle / 2**20),
                  "≤ 1.5 × %.1f MB + 20 MB = %.1f MB"
                  % (nbytes / 2**20, limit / 2**20), hwm <= limit)


def drop_kernel_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")


def store_rows(cfg, emu, work, table):
    """7a: mount to first `ls` of a stored listing; 7b: peak RSS while the
    walk's listing is saved; 7c: `ls -l` with a background refresh in
    flight vs with none."""
    n = cfg.sizes[-1]
    store = os.path.join(work, "store")
    keys = dict(FAST, region="us-east-1", page_size=str(PAGE))
    emu.only("eventbridge", n)
    opts = ["cache_dir=" + store]
    with Mount(work, emu, {"eventbridge": keys}, options=opts) as m:
        d = m.path("eventbridge")
        files = len(os.listdir(d))
        nbytes = sum(e.stat().st_size for e in os.scandir(d))
        hwm = m.status()["VmHWM"] * 1024
    limit = 1.5 * nbytes + 20 * 2**20
    table.add("7b", "peak RSS (VmHWM) of a cold walk of %s connections saved "
              "to the store (EventBridge)" % fmt_n(files),
              "%.1f MB" % (hwm / 2**20),
              "within 5a's bound, %.1f MB" % (limit / 2**20), hwm <= limit)
    # The API fails every request now: the listing can only come from
    # the store.
    emu.c.inject("eventbridge", "http500", count=1000000)
    times = []
    for _ in range(cfg.reps):
        t0 = time.monotonic()
        with Mount(work, emu, {"eventbridge": keys}, options=opts) as m:
            got = len(os.listdir(m.path("eventbridge")))
            times.append(time.monotonic() - t0)
        if got != files:
            PROBLEMS.append("stored mount listed %d of %d" % (got, files))
    t = median(times)
    table.add("7a", "mount to the first `ls` of a stored %s-connection "
              "section, with the API failing every request" % fmt_n(files),
              "%.2f s, all %s files" % (t, fmt_n(files)), "≤ 1 s, no API "
              "request needed", t <= 1.0)
    emu.only("eventbridge", 10000, latency_ms=40)
    slow = dict(keys, ttl="3600", refresh_ahead="0")
    with Mount(work, emu, {"eventbridge": slow}, options=opts) as m:
        d = m.path("eventbridge")
        os.listdir(d)
        quiet, busy = [], []
        for _ in range(cfg.reps):
            drop_kernel_caches()
            quiet.append(sh("ls -l " + d, m.dir))
            r = threading.Thread(target=lambda: open(
                m.path(".connfs", "refresh", "eventbridge")).read())
            r.start()
            time.sleep(0.2)
            drop_kernel_caches()
            busy.append(sh("ls -l " + d, m.dir))
            r.join()
    ratio = median(busy) / median(quiet)
    table.add("7c", "`ls -l` of 10,000 files (kernel caches dropped) during "
              "a background refresh ÷ with none", "%.2f× (%.3f s vs %.3f s)"
              % (ratio, median(busy), median(quiet)), "≤ 1.2×",
              ratio <= 1.2)


# --------------------------------------------------------------------------
# 8. Fleet mode: daemons sharing listings through Redis

def hosts_at_once(paths):
    """`ls -1` of every path at the same moment: the entries each listed."""
    procs = [subprocess.Popen(["ls", "-1", p], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL) for p in paths]
    return [len(p.communicate()[0].splitlines()) for p in procs]


def fleet_rows(cfg, emu, work, table):
    """8a: list requests of N hosts listing one cold section at once; 8b:
    a host serving the listing another host walked (cold `ls`, and the
    pickup of a refresh); 8c: warm `ls -l` with fleet mode on vs off."""
    try:
        redis = Redis(os.path.join(work, "redis")).start()
    except (RuntimeError, OSError) as e:
        PROBLEMS.append("fleet rows (8) not run: %s" % e)
        return
    prov = "activecampaign"
    keys = dict(FAST, page_size=str(PAGE))
    fleet = ["redis=" + redis.url]
    try:
        # 8a: one walk whatever the number of hosts.
        n = cfg.cold_n
        pages = -(-n // PAGE)
        emu.only(prov, n, LATENCY_MS)
        got = {}
        for hosts in (1, 4, 8):
            redis.cli("FLUSHALL")
            ms = [Mount(work, emu, {prov: keys}, options=fleet)
                  for _ in range(hosts)]
            try:
                emu.clear_requests()
                lines = hosts_at_once([m.path(prov) for m in ms])
                got[hosts] = emu.count(prov)
            finally:
                for m in ms:
                    m.unmount()
            if set(lines) != {n}:
                PROBLEMS.append("8a: %d hosts listed %s entries"
                                % (hosts, sorted(set(lines))))
            say("  %d host(s): %d requests", hosts, got[hosts])
        one = got[1]
        table.add("8a", "API requests of N = 1, 4, 8 fleet hosts listing "
                  "one cold section at once (ActiveCampaign, %s conns, "
                  "page %d, %d ms/request)" % (fmt_n(n), PAGE, LATENCY_MS),
                  "%s; ratio to 1 host %s" % (
                      ", ".join("N=%d: %d" % kv for kv in sorted(got.items())),
                      ", ".join("%.2f×" % (got[k] / one) for k in (4, 8))),
                  "%d each (the single-host count)" % pages,
                  set(got.values()) == {pages} and one == pages)

        # 8b: serving a listing another host walked (10,000 conns).
        n = 10000
        emu.only(prov, n)
        redis.cli("FLUSHALL")
        cold, pickup = [], []
        with Mount(work, emu, {prov: keys}, options=fleet) as a:
            if len(os.listdir(a.path(prov))) != n:
                PROBLEMS.append("8b: the walking host listed too few")
            objs = None
            for rep in range(cfg.reps):
                walked = emu.count(prov)
                with Mount(work, emu, {prov: keys}, options=fleet) as b:
                    t, got_n = timed_listdir(b.path(prov))
                    cold.append(t)
                    if got_n != n or emu.count(prov) != walked:
                        PROBLEMS.append("8b: the second host listed %d "
                                        "with %d requests of its own"
                                        % (got_n, emu.count(prov) - walked))
                    # A walk on a: how soon b serves it.
                    if objs is None:
                        objs = emu.c._call("GET", "connections/" + prov)
                    extra = dict(objs[0], id=str(5_000_000 + rep),
                                 name="fleet-bench-%d" % rep)
                    emu.c.add_connection(prov, extra)
                    n += 1
                    with open(a.path(".connfs", "refresh", prov)) as f:
                        f.read()
                    t0 = time.monotonic()
                    while len(os.listdir(b.path(prov))) != n:
                        if time.monotonic() - t0 > 30:
                            PROBLEMS.append("8b: no pickup within 30 s")
                            break
                        time.sleep(0.005)
                    pickup.append(time.monotonic() - t0)
                say("  8b rep %d: cold %.3f s, pickup %.3f s", rep + 1,
                    cold[-1], pickup[-1])
        tc, tp = median(cold), median(pickup)
        table.add("8b", "a fleet host serving a listing another host "
                  "walked, 10,000 conns: its cold `ls`; a refresh "
                  "elsewhere until served", "cold %.2f s, pickup %.2f s "
                  "(0 API requests)" % (tc, tp), "≤ 1 s",
                  tc <= 1.0 and tp <= 1.0)

        # 8c: warm ls -l, fleet on vs off.
        n = 10000
        emu.only(prov, n)
        redis.cli("FLUSHALL")
        on_t, off_t = [], []
        with Mount(work, emu, {prov: keys}, options=fleet) as on, \
                Mount(work, emu, {prov: keys}) as off:
            for m in (on, off):
                os.listdir(m.path(prov))
                sh("ls -l " + prov, m.dir)
            for rep in range(cfg.warm_reps):
                order = (on, off) if rep % 2 == 0 else (off, on)
                for m in order:
                    (on_t if m is on else off_t).append(
                        sh("ls -l " + prov, m.dir))
        r = median(on_t) / median(off_t)
        table.add("8c", "warm `ls -l` of 10,000 files, fleet mode on ÷ off",
                  "%.2f× (%.1f ms vs %.1f ms)" % (
                      r, median(on_t) * 1e3, median(off_t) * 1e3),
                  "≤ 1.1×", r <= 1.1)
    finally:
        redis.close()


def rss_rounds(cfg, emu, work, table):
    """RSS after many warm `ls -l` + `grep -r` rounds vs after the first."""
    n = 2000
    emu.only("eventbridge", n)
    keys = dict(FAST, region="us-east-1", page_size=str(PAGE))
    with Mount(work, emu, {"eventbridge": keys}) as m:
        d = m.path("eventbridge")
        one = "ls -l %s >/dev/null; grep -r -c ConnectionArn %s >/dev/null" \
            % (d, d)
        sh(one, m.dir)
        first = m.status()["VmRSS"]
        # The other rounds in two loops at once (two cores): 1,000 rounds
        # one after another would take minutes of the 10-minute budget.
        loop = "(i=0; while [ $i -lt %d ]; do %s; i=$((i+1)); done)"
        half = (cfg.rounds - 1) // 2
        t = sh("%s & %s; wait" % (loop % (half, one),
                                  loop % (cfg.rounds - 1 - half, one)), m.dir)
        st = m.status()
        last = st["VmRSS"]
    drift = (last - first) / first * 100
    say("  %d rounds in %.1f s", cfg.rounds, t)
    table.add("5b", "VmRSS after %s rounds of `ls -l` + `grep -r` vs after "
              "the first (%s connections, two loops at once: 1,000 rounds "
              "of 100,000 would take too long)" % (fmt_n(cfg.rounds),
                                                   fmt_n(n)),
              "%+.1f %% (%.1f → %.1f MB; VmHWM %.1f MB)"
              % (drift, first / 1024, last / 1024, st["VmHWM"] / 1024),
              "within ±5 %", abs(drift) <= 5)


# --------------------------------------------------------------------------
# Optional: FUSE upcalls per file (debug output of a small mount)

def upcalls(cfg, emu, work):
    """Counts FUSE requests per command on a warm 200-file tree (-d)."""
    n = 200
    emu.only("eventbridge", n)
    keys = dict(FAST, region="us-east-1", page_size=str(PAGE))
    m = Mount(work, emu, {"eventbridge": keys}, args=("-d",))
    out = {}
    try:
        d = m.path("eventbridge")
        cmds = [("ls -l", "ls -l " + d),
                ("grep -r", "grep -r -c ConnectionArn " + d),
                ("cat", "find %s -type f -exec cat {} + >/dev/null" % d),
                ("tar", "tar cf - %s | wc -c" % d)]
        for _, cmd in cmds:
            sh(cmd, m.dir)           # cold, then warm once
            sh(cmd, m.dir)
        for key, cmd in cmds:
            time.sleep(0.2)
            start = os.path.getsize(os.path.join(m.base, "stderr"))
            sh(cmd, m.dir)
            time.sleep(0.2)
            with open(os.path.join(m.base, "stderr"), "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            ops = {}
            for op in re.findall(r"opcode: (\w+)", text):
                ops[op] = ops.get(op, 0) + 1
            out[key] = ops
    finally:
        m.unmount()
    return n, out


# --------------------------------------------------------------------------

def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        fuse = subprocess.run(["pkg-config", "--modversion", "fuse3"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        fuse = ""
    if not fuse:
        fuse = subprocess.run(["fusermount3", "-V"], capture_output=True,
                              text=True).stdout.strip().split()[-1]
    return "%d cores (nproc), %s, Linux %s, libfuse %s" % (
        os.cpu_count(), cpu, platform.release(), fuse)


def binary_identity(path):
    """The binary's hash and the git commit of the tree it sits in."""
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    git = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(path)),
                          "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return "%s (sha256 %s, built %s%s)" % (
        os.path.relpath(path, ROOT) if path.startswith(ROOT) else path,
        digest, time.strftime("%Y-%m-%d %H:%M",
                              time.localtime(os.path.getmtime(path))),
        ", tree at git " + git if git else "")


def main(argv=None):
    global BINARY
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes and 3 repetitions (~1 minute)")
    ap.add_argument("--reps", type=int, help="repetitions per ratio")
    ap.add_argument("--only", default="12345678",
                    help="measures to run, e.g. 1,4 (default all)")
    ap.add_argument("--no-upcalls", dest="upcalls", action="store_false",
                    help="skip counting FUSE requests per command (-d mount)")
    ap.add_argument("--binary", default=BINARY,
                    help="the connfs binary to measure (default ./connfs)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for the daemon (experiments)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs, configs)")
    cfg = ap.parse_args(argv)
    cfg.only = set(cfg.only.replace(",", ""))
    q = cfg.quick
    cfg.reps = cfg.reps or (3 if q else 5)
    cfg.warm_reps = cfg.reps if q else max(cfg.reps, 7)
    cfg.scale_reps = cfg.reps
    cfg.cold_n = 2000 if q else 10000
    cfg.rl_n = 1000 if q else 10000
    cfg.warm_total = 2500 if q else 10000
    cfg.sizes = [100, 1000, 10000] if q else [100, 1000, 10000, 100000]
    cfg.rounds = 100 if q else 1000
    if os.geteuid() != 0:
        say("note: not root; tmpfs falls back to /dev/shm")
    if not os.access(cfg.binary, os.X_OK):
        sys.exit("bench: %s not built (make connfs)" % cfg.binary)
    libs = subprocess.run(["ldd", cfg.binary], capture_output=True,
                          text=True).stdout
    if "libasan" in libs or "libubsan" in libs or "libtsan" in libs:
        PROBLEMS.append("%s is a sanitizer build (make SAN=1?): its figures "
                        "are not connfs's; rebuild with `make`" % cfg.binary)
    for kv in cfg.env:
        k, _, v = kv.partition("=")
        DAEMON_ENV[k] = v

    load0 = os.getloadavg()
    work = tempfile.mkdtemp(prefix="connfs-bench-")
    say("work directory %s", work)
    # A copy: others may rebuild ./connfs while the benchmark runs.
    BINARY = os.path.join(work, "connfs")
    shutil.copy2(cfg.binary, BINARY)
    build = binary_identity(cfg.binary)
    emu = Emu(work)
    table = Table()
    counts = {}
    up = None
    try:
        if cfg.only & {"1", "2", "3"}:
            cold_walks(cfg, emu, work, table, counts)
        if "2" in cfg.only:
            rate_limited(cfg, emu, work, table)
        if "3" in cfg.only:
            request_counts(cfg, emu, work, table, counts)
        if "4" in cfg.only:
            warm_vs_tmpfs(cfg, emu, work, table)
        if cfg.only & {"5", "6"}:
            scaling_and_memory(cfg, emu, work, table)
        if "5" in cfg.only:
            rss_rounds(cfg, emu, work, table)
        if "7" in cfg.only:
            store_rows(cfg, emu, work, table)
        if "8" in cfg.only:
            fleet_rows(cfg, emu, work, table)
        if cfg.upcalls:
            up = upcalls(cfg, emu, work)
    finally:
        emu.stop()
        for base in sorted(os.listdir(work)):
            mnt = os.path.join(work, base, "mnt")
            if os.path.isdir(mnt) and is_mounted(mnt):
                subprocess.run(["fusermount3", "-uz", mnt])
    elapsed = time.monotonic() - T0
    load1 = os.getloadavg()
    table.rows.sort(key=lambda r: r[0])
    print()
    print(table.markdown())
    print()
    print("Machine: %s; load average %.2f at the start, %.2f at the end. "
          "`%s` took %.0f s.%s"
          % (machine(), load0[0], load1[0],
             "tests/bench/bench.py --quick" if q else "make bench", elapsed,
             " Sizes scaled down (--quick)." if q else ""))
    print("Measured: %s%s." % (build, "; daemon environment " + " ".join(
        cfg.env) if cfg.env else ""))
    if up:
        n, ops = up
        print()
        print("FUSE requests of one warm command on %d files (connfs -d):" % n)
        for key, o in ops.items():
            print("  %-8s %s" % (key, ", ".join(
                "%s %d" % kv for kv in sorted(o.items(), key=lambda x: -x[1]))))
    if PROBLEMS:
        print()
        print("Problems:")
        for p in PROBLEMS:
            print("  - " + p)
    if cfg.keep or PROBLEMS:
        say("work directory kept: %s", work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
