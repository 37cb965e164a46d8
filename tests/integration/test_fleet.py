"""Fleet mode: connfs daemons on many hosts share one listing per section
through Redis.

Every "host" here is a real ./connfs daemon with a store of its own
(cache_dir), all against the same emulator and one private Redis server
(conftest's Redis: unix socket only, no persistence). The tests check
request counts exactly with the emulator's counters: a fleet walks each
section once per TTL, whatever the number of hosts; the other hosts serve
the walker's listing byte for byte, with zero API requests, and pick up a
new one within about a second. The rate budget of an account is shared by
every host; leases of dead walkers expire; a Redis that is gone or hangs
never stops an operation, and the fleet forms again when it is back. Bad
listings in Redis are ignored and logged, never served; passwords never
appear in a message or a log.
"""

import bisect
import copy
import errno
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

from conftest import (BINARY, SECRETS, Mount, config_text, daemon_env,
                      dir_status, epoch_ns, is_mounted, part, wait_for)

AC = "activecampaign"
PAGE = 100                       # ActiveCampaign's default (and maximum)
SERVICES = ("shopify", "bigcommerce", "woocommerce", "stripe")
FAST = {"rate": "0"}             # no client-side limit: walks in ~1 s


# --- expectations, computed independently of connfs ------------------------

def pages(n, size=PAGE):
    """List requests of one offset walk of n connections."""
    return max(1, -(-n // size))


def ac_name(conn):
    """`name~id.json`."""
    return "%s~%s.json" % (part(conn.get("name") or ""), part(conn["id"]))


def ac_mtime_ns(conn):
    return epoch_ns(conn.get("udate") or conn["cdate"])


def new_conn(template, ident, name):
    """A connection like template with another id and name."""
    c = copy.deepcopy(template)
    c.update(id=str(ident), name=name,
             externalid="fleet-%s.myshopify.com" % ident)
    c["links"] = {"customers": "/api/3/connections/%s/customers" % ident}
    return c


# --- reading the mounts ------------------------------------------------------

def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def tree_stats(d):
    """name -> every stat field that is the same on every host (not
    st_dev), and the readdir inode, of every file in d."""
    out = {}
    with os.scandir(d) as it:
        for e in it:
            st = os.lstat(e.path)
            out[e.name] = (e.inode(), st.st_ino, st.st_mode, st.st_nlink,
                           st.st_uid, st.st_gid, st.st_size, st.st_blocks,
                           st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)
    return out


def snapshot(d):
    """name -> (bytes, size, mtime_ns, inode) of every file in d."""
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.stat(p)
        out[n] = (read_bytes(p), st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def ls_at_once(paths, timeout=120):
    """`ls -1` of every path, all started at the same moment (one process
    each): per path the number of names listed, or None if ls failed."""
    procs = [subprocess.Popen(["ls", "-1", p], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for p in paths]
    out = []
    for p in procs:
        o, _ = p.communicate(timeout=timeout)
        out.append(len(o.splitlines()) if p.returncode == 0 else None)
    return out


def count_files(d):
    try:
        return len(os.listdir(d))
    except OSError:
        return None


def refresh(m, name=AC):
    with open(m.path(".connfs", "refresh", name)) as f:
        return f.read().strip()


def changes_text(m, section=None):
    p = (m.path(".connfs", "changes") if section is None
         else m.path(".connfs", "changes.d", section))
    with open(p, "rb") as f:
        return f.read()


def status_lines(m):
    with open(m.path(".connfs", "status")) as f:
        return f.read().splitlines()


def fleet_line(m):
    """The status view's one `fleet: ` line."""
    lines = [ln for ln in status_lines(m) if ln.startswith("fleet: ")]
    assert len(lines) == 1, lines
    return lines[0]


def fleet_ok(m, url):
    """The status says the fleet is up, naming the URL."""
    line = fleet_line(m)
    return (url in line and re.search(r"\bok\b", line) is not None
            and "unavailable" not in line)


def fleet_unavailable(m):
    return "unavailable (" in fleet_line(m)


def states(hosts, name=AC):
    return sorted(dir_status(h, name)["state"] for h in hosts)


def ignored_lines(hosts):
    """Log lines of all hosts that say a fleet listing was ignored."""
    return [ln for h in hosts for ln in h.logs().splitlines()
            if "fleet" in ln and "ignored" in ln]


# --- Redis keys ----------------------------------------------------------------

def listing_ids(redis, prefix="connfs"):
    """The listing IDs that have a meta hash in Redis."""
    ids = []
    for k in redis.keys("%s:{*}:meta" % prefix):
        m = re.fullmatch(re.escape(prefix) + r":\{([0-9a-f]{64})\}:meta", k)
        assert m, "unexpected key %r" % k
        ids.append(m.group(1))
    return ids


def meta(redis, ident, prefix="connfs"):
    out = redis.get("HGETALL", "%s:{%s}:meta" % (prefix, ident))
    f = out.decode().split("\n")
    return dict(zip(f[0::2], f[1::2]))


# --- the fleet -----------------------------------------------------------------

class Fleet:
    """Daemons ("hosts") sharing one Redis: each its own directory, mount
    point, log and store. close() unmounts all and judges them as conftest's
    mount fixture does, except the ones a test killed on purpose."""

    def __init__(self, tmp, emu, redis, tag="h"):
        self.tmp, self.emu, self.redis, self.tag = tmp, emu, redis, tag
        self.mounts = []
        self.killed = []
        self.secrets = list(SECRETS)

    def host(self, sections, options=(), redis=True, env=None):
        d = self.tmp / ("%s%d" % (self.tag, len(self.mounts)))
        d.mkdir(parents=True)
        opts = (["redis=" + self.redis.url] if redis else []) + list(options)
        m = Mount(d, self.emu, copy.deepcopy(sections), opts, env)
        self.mounts.append(m)
        return m

    def hosts(self, n, sections, options=()):
        return [self.host(sections, options) for _ in range(n)]

    def kill(self, m):
        """kill -9 of one daemon (its own pid, a child of this process)."""
        self.killed.append(m)
        m.proc.kill()
        m.proc.wait()

    def close(self):
        results = [(m, m.unmount()) for m in self.mounts]
        for m, rc in results:
            logs = m.logs() + m.output()
            if m not in self.killed:
                assert rc == 0, "daemon exited with %s: %s" % (rc, m.output())
            for s in self.secrets:
                assert s not in logs, "a secret leaked into the log"
            assert "runtime error" not in logs
            assert "AddressSanitizer" not in logs
            assert "ThreadSanitizer" not in logs


@pytest.fixture
def make_fleet(tmp_path, fresh_emu):
    fleets = []

    def make(redis):
        f = Fleet(tmp_path, fresh_emu, redis,
                  "h" if not fleets else "f%dh" % len(fleets))
        fleets.append(f)
        return f

    yield make
    for f in fleets:
        f.close()


@pytest.fixture
def fleet(make_fleet, redis_server):
    return make_fleet(redis_server)


def names_redis(text, *paths):
    """The message says "redis" by itself, not only inside a path (test
    directories and sockets are named redis too)."""
    for p in sorted(map(str, paths), key=len, reverse=True):
        text = text.replace(p, "<path>")
    return re.search(r"redis", text, re.I) is not None


def write_secret(path, text):
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return str(path)


def write_config(path, emu, sections):
    sections = copy.deepcopy(sections)
    for keys in sections.values():
        keys.setdefault("url", emu.url)
    with open(path, "w") as f:
        f.write(config_text(sections))
    os.chmod(path, 0o600)
    return str(path)


def check(tmp, cfg, options):
    """connfs --check with these -o options: the CompletedProcess."""
    return subprocess.run(
        [BINARY, "--check", "-o", ",".join(["config=" + cfg] + options)],
        env=daemon_env(tmp), capture_output=True, text=True, timeout=120)


def refused_mount(tmp, emu, sections, options):
    """Runs a mount that must be refused before mounting: (exit status,
    everything it printed and logged)."""
    tmp.mkdir(parents=True)
    mnt = tmp / "mnt"
    mnt.mkdir()
    cfg = write_config(tmp / "config", emu, sections)
    log = tmp / "connfs.log"
    opts = ["config=" + cfg, "logfile=" + str(log), "loglevel=debug",
            "cache_dir=" + str(tmp / "store")] + list(options)
    p = subprocess.Popen([BINARY, "-f", "-o", ",".join(opts), str(mnt)],
                         env=daemon_env(tmp), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        p.kill()
        p.communicate()
        raise AssertionError("connfs mounted (or hung) although the mount "
                             "must be refused: %s" % " ".join(options))
    assert not is_mounted(str(mnt))
    text = out.decode(errors="replace")
    if log.exists():
        text += log.read_text(errors="replace")
    return p.returncode, text


# --- 1. one walk for the fleet, identical files ------------------------------

def test_four_hosts_cold_cost_one_walk_and_serve_identical_files(
        fleet, fresh_emu, redis_server):
    n = 10000
    conns = fresh_emu.generate(AC, n, seed=101)
    hosts = fleet.hosts(4, {AC: dict(FAST)})
    assert fresh_emu.count(AC) == 0
    assert ls_at_once([h.path(AC) for h in hosts]) == [n] * 4
    # Exactly one walk's requests for the four: every page once.
    assert fresh_emu.count(AC) == pages(n) == 100
    offsets = sorted(int(r["params"]["offset"][0])
                     for r in fresh_emu.requests(AC) if r["kind"] == "list")
    assert offsets == list(range(0, n, PAGE))
    # One host walked; the three others serve its listing from Redis.
    assert states(hosts) == ["fleet", "fleet", "fleet", "fresh"]
    want = {ac_name(c): c for c in conns}
    assert len(want) == n
    names = [sorted(os.listdir(h.path(AC))) for h in hosts]
    assert names[0] == sorted(want)
    assert all(x == names[0] for x in names[1:])
    # Every stat field of every file (but st_dev) is the same everywhere.
    stats = [tree_stats(h.path(AC)) for h in hosts]
    assert all(s == stats[0] for s in stats[1:])
    for name, st in stats[0].items():
        assert st[9] == ac_mtime_ns(want[name]), name
    # A sample's bytes: identical, and the connection exactly as listed.
    for name in random.Random(5).sample(sorted(want), 200):
        datas = [read_bytes(h.path(AC, name)) for h in hosts]
        assert all(d == datas[0] for d in datas[1:]), name
        assert json.loads(datas[0]) == want[name], name
        assert len(datas[0]) == stats[0][name][6], name
    assert fresh_emu.count(AC) == 100          # all of that cost nothing
    # Redis holds one listing under the section's 64-hex identity.
    ids = listing_ids(redis_server)
    assert len(ids) == 1
    m = meta(redis_server, ids[0])
    assert int(m["gen"]) >= 1 and int(m["at"]) > 0
    assert redis_server.get("EXISTS", "connfs:{%s}:listing" % ids[0]) == b"1"
    for h in hosts:
        assert fleet_ok(h, redis_server.url)


# --- 2. one walk per TTL -----------------------------------------------------

def test_after_the_ttl_the_fleet_walks_once_more(fleet, fresh_emu):
    n = 1950                      # 20 pages, and still 20 with one more
    conns = fresh_emu.generate(AC, n, seed=102)
    ttl = 3
    hosts = fleet.hosts(4, {AC: dict(FAST, ttl=str(ttl),
                                      refresh_ahead="0")})
    assert ls_at_once([h.path(AC) for h in hosts]) == [n] * 4
    walked = time.monotonic()
    assert fresh_emu.count(AC) == pages(n) == 20
    added = new_conn(conns[0], 990001, "fleet-ttl-new")
    fresh_emu.add_connection(AC, added)
    time.sleep(max(0, walked + ttl + 0.5 - time.monotonic()))
    # Expired on every host: each read answers at once (the old listing
    # or the new one), and the fleet walks once behind them.
    got = ls_at_once([h.path(AC) for h in hosts])
    assert all(g in (n, n + 1) for g in got), got
    for h in hosts:
        wait_for(lambda: ac_name(added) in os.listdir(h.path(AC)), 20,
                 "the new listing on %s" % h.dir)
    assert fresh_emu.count(AC) == 2 * 20
    time.sleep(1.0)               # a second walker would have started now
    assert fresh_emu.count(AC) == 2 * 20
    assert states(hosts) == ["fleet", "fleet", "fleet", "fresh"]
    stats = [tree_stats(h.path(AC)) for h in hosts]
    assert all(s == stats[0] for s in stats[1:])


# --- 3. pickup of another host's walk ----------------------------------------

def test_refresh_on_one_host_is_picked_up_by_the_others_without_requests(
        fleet, fresh_emu, redis_server):
    n = 990                       # 10 pages, and still 10 with one more
    conns = fresh_emu.generate(AC, n, seed=103)
    a, b, c = fleet.hosts(3, {AC: dict(FAST)})
    assert len(os.listdir(a.path(AC))) == n
    assert fresh_emu.count(AC) == pages(n) == 10
    assert len(os.listdir(b.path(AC))) == n
    assert len(os.listdir(c.path(AC))) == n
    assert fresh_emu.count(AC) == 10           # b and c: from Redis
    assert dir_status(a, AC)["state"] == "fresh"
    assert dir_status(b, AC)["state"] == "fleet"
    assert dir_status(c, AC)["state"] == "fleet"
    ident, = listing_ids(redis_server)
    gen = int(meta(redis_server, ident)["gen"])
    # Upstream: one connection modified, one added.
    old = conns[7]
    mod = dict(old, status="0" if old["status"] == "1" else "1",
               udate="2031-02-03T04:05:06-05:00")
    added = new_conn(conns[0], 990002, "fleet-pickup-new")
    fresh_emu.set_connections(AC, [mod if x is old else x for x in conns]
                              + [added])
    for h in (b, c):                # the old version is in their caches
        assert json.loads(read_bytes(h.path(AC, ac_name(old)))) == old
    assert "refreshed" in refresh(a)
    assert fresh_emu.count(AC) == 20
    new_gen = int(meta(redis_server, ident)["gen"])
    assert new_gen > gen                # one publish: a new generation

    def picked(h):
        return (ac_name(added) in os.listdir(h.path(AC)) and json.loads(
            read_bytes(h.path(AC, ac_name(old)))) == mod)
    for h in (b, c):
        wait_for(lambda: picked(h), 5, "%s to pick up the walk" % h.dir)
    assert fresh_emu.count(AC) == 20           # no request of b or c
    assert dir_status(a, AC)["state"] == "fresh"
    assert dir_status(b, AC)["state"] == "fleet"
    assert dir_status(c, AC)["state"] == "fleet"
    assert os.stat(b.path(AC, ac_name(old))).st_mtime_ns == ac_mtime_ns(mod)
    stats = [tree_stats(h.path(AC)) for h in (a, b, c)]
    assert stats[0] == stats[1] == stats[2]
    assert len(stats[0]) == n + 1
    assert fresh_emu.count(AC) == 20


def test_an_unchanged_walk_renews_the_listing_without_a_new_generation(
        fleet, fresh_emu, redis_server):
    n = 990
    conns = fresh_emu.generate(AC, n, seed=107)
    a, b = fleet.hosts(2, {AC: dict(FAST)})
    assert len(os.listdir(a.path(AC))) == n
    assert len(os.listdir(b.path(AC))) == n
    assert fresh_emu.count(AC) == 10
    ident, = listing_ids(redis_server)
    first = meta(redis_server, ident)
    # Nothing changed upstream: a walks, and only the age starts again.
    assert "refreshed" in refresh(a)
    assert fresh_emu.count(AC) == 20
    again = meta(redis_server, ident)
    assert again["gen"] == first["gen"]
    assert int(again["at"]) > int(first["at"])
    assert "not shared" not in a.logs()
    # A change afterwards is published as ever, and b picks it up.
    added = new_conn(conns[0], 990003, "fleet-touch-new")
    fresh_emu.add_connection(AC, added)
    assert "refreshed" in refresh(a)
    assert int(meta(redis_server, ident)["gen"]) > int(first["gen"])
    wait_for(lambda: ac_name(added) in os.listdir(b.path(AC)), 5,
             "b to pick up the walk")
    assert fresh_emu.count(AC) == 20 + pages(n + 1)


# --- 4. the shared rate budget -------------------------------------------------

def filtered_sections(**keys):
    """Four filtered views of one ActiveCampaign account (same URL and
    token: one rate budget)."""
    return {"ac-" + s: dict(keys, type=AC, service=s) for s in SERVICES}


def per_service(conns):
    return {s: sum(str(c.get("service", "")).lower() == s for c in conns)
            for s in SERVICES}


def test_four_hosts_share_the_accounts_rate_budget(fleet, fresh_emu):
    conns = fresh_emu.generate(AC, 4000, seed=104)
    want = per_service(conns)
    hosts = fleet.hosts(4, filtered_sections(rate="5/s", deadline="60"))
    fresh_emu.set_rate_limit(AC, True)        # the documented 5/s bucket
    fresh_emu.clear_requests()
    # Each host walks its own section of the account, all at once.
    got = ls_at_once([h.path("ac-" + s) for h, s in zip(hosts, SERVICES)])
    assert got == [want[s] for s in SERVICES]
    recs = [r for r in fresh_emu.requests(AC) if r["kind"] == "list"]
    # The hard assertion: the emulator's own limiter rejected nothing.
    assert [r["status"] for r in recs if r["status"] != 200] == []
    assert len(recs) == sum(pages(want[s]) for s in SERVICES)
    # No second of the run saw much more than 5 requests (5/s with a
    # burst of 1 is one every 200 ms; hosts with budgets of their own put
    # 13 in one second). The slack is for a loaded machine delaying one
    # request into its successor's window, never for a second bucket.
    times = sorted(r["time"] for r in recs)
    worst = max(bisect.bisect_left(times, t + 1.0) - i
                for i, t in enumerate(times))
    assert worst <= 8, "%d requests within one second" % worst
    # Every host now serves every section from the fleet, at no cost.
    for h in hosts:
        for s in SERVICES:
            assert len(os.listdir(h.path("ac-" + s))) == want[s]
    assert fresh_emu.count(AC) == len(recs)


def test_retry_after_on_one_host_holds_back_every_host(fleet, fresh_emu):
    conns = fresh_emu.generate(AC, 4000, seed=105)
    want = per_service(conns)
    # 10/s shared; pages of 50: about 10 pages per host. One page at a
    # time per host: each host holds at most one reserved slot of the
    # shared budget, so at the 429 no slot is reserved more than
    # 4 x 100 ms ahead. (Hosts with budgets of their own would each walk
    # at 10/s, all through the pause.)
    hosts = fleet.hosts(4, filtered_sections(rate="10/s", deadline="60",
                                             concurrency="1",
                                             page_size="50"))
    fresh_emu.clear_requests()
    # The 7th list request (some host's, mid-walk for all) is a 429 with
    # Retry-After: 2.
    fresh_emu.inject(AC, "http429", count=1, after=6, retry_after=2)
    got = ls_at_once([h.path("ac-" + s) for h, s in zip(hosts, SERVICES)])
    assert got == [want[s] for s in SERVICES]
    recs = sorted((r for r in fresh_emu.requests(AC) if r["kind"] == "list"),
                  key=lambda r: r["time"])
    limited = [r["time"] for r in recs if r["status"] == 429]
    assert len(limited) == 1
    assert [r for r in recs if r["status"] not in (200, 429)] == []
    assert len(recs) == sum(pages(want[s], 50) for s in SERVICES) + 1
    t = limited[0]
    # Every host held back: past the slots reserved before the 429 (at
    # most 0.4 s ahead), no request of any host until the 2 s are over
    # (hosts with budgets of their own send 7 or more in that window; two
    # are allowed for a loaded machine sending a reserved slot late).
    during = [round(r["time"] - t, 3) for r in recs
              if t + 0.6 < r["time"] < t + 1.8]
    assert len(during) <= 2, "requests %s s after the 429" % during
    assert any(r["time"] >= t + 1.8 for r in recs)


# --- 5. a walker killed mid-walk -------------------------------------------

def test_killed_walker_lease_expires_and_another_host_finishes(
        fleet, fresh_emu, redis_server):
    n = 1200
    fresh_emu.generate(AC, n, seed=106)
    fresh_emu.set_latency(AC, 250)            # 12 pages one by one: ~3 s
    hosts = fleet.hosts(4, {AC: dict(FAST, concurrency="1",
                                      deadline="60")},
                        options=["redis_lease=2"])
    seen = {i: [] for i in range(len(hosts))}
    stop = threading.Event()

    def reader(i, h):
        while not stop.is_set():
            try:
                seen[i].append(len(os.listdir(h.path(AC))))
            except OSError as e:
                seen[i].append(errno.errorcode.get(e.errno, e.errno))
            time.sleep(0.05)

    threads = [threading.Thread(target=reader, args=(i, h), daemon=True)
               for i, h in enumerate(hosts)]
    for t in threads:
        t.start()
    try:
        def walker():
            busy = []
            for h in hosts:
                row = dir_status(h, AC)
                if row["walking"] and row["walk_pages"] >= 3:
                    busy.append(h)
            return busy[0] if len(busy) == 1 else None
        w = wait_for(walker, 30, "one host to be 3 pages into the walk")
        lease_keys = redis_server.keys("connfs:{*}:lease")
        assert len(lease_keys) == 1
        owner = redis_server.get("GET", lease_keys[0]).decode()
        pids = [h.proc.pid for h in hosts
                if re.search(r"(^|\D)%d(\D|$)" % h.proc.pid, owner)]
        assert pids in ([], [w.proc.pid]), (owner, pids, w.proc.pid)
        fleet.kill(w)
        killed_at = fresh_emu.count(AC)
        assert 3 <= killed_at < pages(n)
        pttl = int(redis_server.get("PTTL", lease_keys[0]))
        assert pttl <= 2000               # redis_lease=2: gone within 2 s
        survivors = [i for i, h in enumerate(hosts) if h is not w]
        wait_for(lambda: all(seen[i] and seen[i][-1] == n
                             for i in survivors), 45,
                 "a survivor to finish the listing")
    finally:
        stop.set()
        for t in threads:
            t.join(90)
    # Never a partial listing, anywhere: nothing (an error, or the empty
    # mount point of the killed host) or all of it.
    for i, vals in seen.items():
        partial = [v for v in vals if isinstance(v, int) and v not in (0, n)]
        assert partial == [], "host %d listed %s" % (i, sorted(set(partial)))
    for i in survivors:
        assert 0 not in seen[i]
    # One host finished it: at most one more walk's requests.
    finished = fresh_emu.count(AC) - killed_at
    assert 1 <= finished <= pages(n)
    rest = [hosts[i] for i in survivors]
    assert sorted(dir_status(h, AC)["state"] for h in rest) == \
        ["fleet", "fleet", "fresh"]
    stats = [tree_stats(h.path(AC)) for h in rest]
    assert all(s == stats[0] for s in stats[1:]) and len(stats[0]) == n
    assert fresh_emu.count(AC) == killed_at + finished


# --- 6. Redis stopped, hung, restarted ------------------------------------------

def run_ok(cmd, deadline):
    """A command on a mount: it must succeed within the deadline (plus a
    margin for the process itself)."""
    r = subprocess.run(cmd, capture_output=True, timeout=deadline + 10)
    assert r.returncode == 0, (cmd, r.stderr)
    return r.stdout


def every_operation(h, deadline, n=None):
    d = h.path(AC)
    out = run_ok(["ls", "-l", d], deadline)
    if n is not None:
        assert out.count(b"\n") == n + 1          # "total" line
    name = sorted(os.listdir(d))[0]
    run_ok(["cat", os.path.join(d, name)], deadline)
    run_ok(["stat", os.path.join(d, name)], deadline)
    run_ok(["cat", h.path(".connfs", "status")], deadline)
    run_ok(["cat", h.path(".connfs", "status.json")], deadline)


def test_redis_down_then_back_the_fleet_carries_on_and_forms_again(
        fleet, fresh_emu, redis_server):
    n = 990                       # 10 pages, still 10 with two more
    conns = fresh_emu.generate(AC, n, seed=107)
    ttl, deadline = 4, 5
    hosts = fleet.hosts(4, {AC: dict(FAST, ttl=str(ttl), refresh_ahead="0",
                                      deadline=str(deadline))})
    paths = [h.path(AC) for h in hosts]
    assert ls_at_once(paths) == [n] * 4
    walked = time.monotonic()
    assert fresh_emu.count(AC) == pages(n) == 10
    for h in hosts:
        assert fleet_ok(h, redis_server.url)

    redis_server.stop()                       # SIGKILL: a crash
    for h in hosts:
        every_operation(h, deadline, n)
    for h in hosts:
        wait_for(lambda: fleet_unavailable(h), 15,
                 "%s to report the fleet unavailable" % h.dir)
    base = fresh_emu.count(AC)
    assert base == 10, "a walk before the TTL ran out"
    # Alone, each host refreshes its expired listing itself.
    added = new_conn(conns[0], 990003, "fleet-alone-new")
    fresh_emu.add_connection(AC, added)
    time.sleep(max(0, walked + ttl + 0.5 - time.monotonic()))
    for h in hosts:
        every_operation(h, deadline)
    for h in hosts:
        wait_for(lambda: ac_name(added) in os.listdir(h.path(AC)), 30,
                 "%s to walk on its own" % h.dir)
    alone = time.monotonic()
    assert fresh_emu.count(AC) == base + 4 * 10
    for h in hosts:
        assert fleet_unavailable(h)
        assert dir_status(h, AC)["state"] == "fresh"

    redis_server.start()                      # same socket, empty
    for h in hosts:
        wait_for(lambda: fleet_ok(h, redis_server.url), 15,
                 "%s to reconnect" % h.dir)
    # One fleet again: one walk per TTL.
    added2 = new_conn(conns[0], 990004, "fleet-again-new")
    fresh_emu.add_connection(AC, added2)
    time.sleep(max(0, alone + ttl + 0.5 - time.monotonic()))
    before = fresh_emu.count(AC)
    got = ls_at_once(paths)
    assert all(g in (n + 1, n + 2) for g in got), got
    for h in hosts:
        wait_for(lambda: ac_name(added2) in os.listdir(h.path(AC)), 20,
                 "the fleet's new listing on %s" % h.dir)
    assert fresh_emu.count(AC) == before + 10
    time.sleep(1.0)
    assert fresh_emu.count(AC) == before + 10
    assert states(hosts) == ["fleet", "fleet", "fleet", "fresh"]


def test_hung_redis_never_hangs_an_operation(fleet, fresh_emu, redis_server):
    n = 300
    conns = fresh_emu.generate(AC, n, seed=108)
    ttl, deadline = 3, 5
    a, b = fleet.hosts(2, {AC: dict(FAST, ttl=str(ttl), refresh_ahead="0",
                                     deadline=str(deadline))})
    assert ls_at_once([a.path(AC), b.path(AC)]) == [n, n]
    walked = time.monotonic()
    redis_server.pause()                      # SIGSTOP: answers nothing
    try:
        for h in (a, b):
            every_operation(h, deadline, n)
        added = new_conn(conns[0], 990005, "fleet-hung-new")
        fresh_emu.add_connection(AC, added)
        time.sleep(max(0, walked + ttl + 0.5 - time.monotonic()))
        for h in (a, b):
            every_operation(h, deadline)
        # Redis calls time out; the hosts refresh on their own.
        for h in (a, b):
            wait_for(lambda: ac_name(added) in os.listdir(h.path(AC)), 30,
                     "%s to refresh with Redis hung" % h.dir)
        for h in (a, b):
            every_operation(h, deadline, n + 1)
    finally:
        redis_server.resume()
    for h in (a, b):
        wait_for(lambda: fleet_ok(h, redis_server.url), 20,
                 "%s to be back in the fleet" % h.dir)


# --- 7. passwords, URLs, an unreachable Redis ---------------------------------

def test_redis_password_file_wrong_is_refused_right_works(
        tmp_path, fresh_emu, redis_factory, make_fleet):
    pw, wrong = "fleet-pw-7d1c9e0b", "not-the-pw-42af55"
    aclpw = "acl-user-pw-91be3c"
    fresh_emu.generate(AC, 150, seed=109)
    r = redis_factory(password=pw, name="pwredis")
    r.cli("ACL", "SETUSER", "fleetuser", "on", ">" + aclpw, "~*", "&*",
          "+@all")
    good = write_secret(tmp_path / "good-pw", pw)
    bad = write_secret(tmp_path / "bad-pw", wrong)
    aclgood = write_secret(tmp_path / "acl-pw", aclpw)
    secs = {AC: dict(FAST)}
    cfg = write_config(tmp_path / "config", fresh_emu, secs)
    secret = (pw, wrong, aclpw)

    paths = (tmp_path, r.sock, r.dir)
    res = check(tmp_path, cfg, ["redis=" + r.url,
                                "redis_password_file=" + bad])
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert names_redis(out, *paths), out
    assert not any(s in out for s in secret), out
    res = check(tmp_path, cfg, ["redis=" + r.url,
                                "redis_password_file=" + good])
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert not any(s in out for s in secret), out
    # No password at all against a server that wants one.
    res = check(tmp_path, cfg, ["redis=" + r.url])
    out = res.stdout + res.stderr
    assert res.returncode != 0 and names_redis(out, *paths), out

    # A plain mount with the wrong password: refused at mount, clearly.
    rc, out = refused_mount(tmp_path / "wrongpw", fresh_emu, secs,
                            ["redis=" + r.url, "redis_password_file=" + bad])
    assert rc != 0
    assert names_redis(out, *paths), out
    assert re.search(r"password|wrongpass|auth", out, re.I), out
    assert not any(s in out for s in secret), out

    # The right password (default user, then an ACL user in the URL).
    fresh_emu.clear_requests()          # each --check made its request
    f = make_fleet(r)
    f.secrets += list(secret)
    h = f.host(secs, ["redis_password_file=" + good])
    assert len(os.listdir(h.path(AC))) == 150
    assert fleet_ok(h, r.url)
    acl_url = "unix://fleetuser@" + r.sock
    h2 = f.host(secs, redis=False, options=["redis=" + acl_url,
                                            "redis_password_file=" + aclgood])
    assert len(os.listdir(h2.path(AC))) == 150
    assert dir_status(h2, AC)["state"] == "fleet"
    assert fleet_ok(h2, r.sock)
    assert fresh_emu.count(AC) == 2
    assert len(listing_ids(r)) == 1
    # The ACL user with another user's password: refused.
    rc, out = refused_mount(tmp_path / "wrongacl", fresh_emu, secs,
                            ["redis=" + acl_url,
                             "redis_password_file=" + good])
    assert rc != 0 and names_redis(out, *paths), out
    assert not any(s in out for s in secret), out


def test_password_in_the_redis_url_is_refused(tmp_path, fresh_emu):
    pw = "url-pw-5c2e81aa"
    secs = {AC: dict(FAST)}
    cfg = write_config(tmp_path / "config", fresh_emu, secs)
    urls = ["redis://:%s@127.0.0.1:6379/0" % pw,
            "redis://fleetuser:%s@127.0.0.1:6379/0" % pw,
            "unix://fleetuser:%s@/run/redis/redis.sock" % pw]
    for i, url in enumerate(urls):
        res = check(tmp_path, cfg, ["redis=" + url])
        out = res.stdout + res.stderr
        assert res.returncode != 0, url
        assert "redis_password_file" in out, out
        assert pw not in out, out
        rc, out = refused_mount(tmp_path / ("u%d" % i), fresh_emu, secs,
                                ["redis=" + url])
        assert rc != 0, url
        assert "redis_password_file" in out, out
        assert pw not in out, out


def test_redis_out_of_memory_the_host_walks_alone_then_rejoins(
        fleet, fresh_emu, redis_server):
    n = 250
    conns = fresh_emu.generate(AC, n, seed=112)
    a, b = fleet.hosts(2, {AC: dict(FAST)})
    assert ls_at_once([a.path(AC), b.path(AC)]) == [n, n]
    assert fresh_emu.count(AC) == 3
    # Every write now refused with OOM (the default noeviction policy).
    redis_server.cli("CONFIG", "SET", "maxmemory", "1")
    added = new_conn(conns[0], 990006, "fleet-oom-new")
    fresh_emu.add_connection(AC, added)
    assert "refreshed" in refresh(a)             # walked alone
    assert fresh_emu.count(AC) == 6
    assert ac_name(added) in os.listdir(a.path(AC))
    line = fleet_line(a)
    assert "unavailable (" in line and "OOM" in line, line
    assert any("unavailable" in ln and "OOM" in ln
               for ln in a.logs().splitlines())
    every_operation(a, 30, n + 1)
    # Writable again: a rejoins by itself, and its next walk is b's too.
    redis_server.cli("CONFIG", "SET", "maxmemory", "0")
    wait_for(lambda: fleet_ok(a, redis_server.url), 15, "a to rejoin")
    assert any("answers again" in ln for ln in a.logs().splitlines())
    assert "refreshed" in refresh(a)
    assert fresh_emu.count(AC) == 9
    wait_for(lambda: ac_name(added) in os.listdir(b.path(AC)), 5,
             "b to take a's walk")
    assert fresh_emu.count(AC) == 9              # none of b's own
    assert dir_status(b, AC)["state"] == "fleet"
    assert snapshot(a.path(AC)) == snapshot(b.path(AC))


def test_unreachable_redis_at_mount_works_alone(fleet, fresh_emu, tmp_path):
    fresh_emu.generate(AC, 250, seed=110)
    nowhere = tempfile.mkdtemp(prefix="connfs-noredis-")
    try:
        url = "unix://" + os.path.join(nowhere, "redis.sock")
        cfg = write_config(tmp_path / "config", fresh_emu, {AC: dict(FAST)})
        res = check(tmp_path, cfg, ["redis=" + url])
        assert res.returncode != 0
        assert names_redis(res.stdout + res.stderr, tmp_path, nowhere)
        assert fresh_emu.count(AC) <= 1          # --check's one request
        fresh_emu.clear_requests()
        h = fleet.host({AC: dict(FAST)}, redis=False,
                       options=["redis=" + url])
        assert len(os.listdir(h.path(AC))) == 250
        assert fresh_emu.count(AC) == 3
        assert dir_status(h, AC)["state"] == "fresh"
        assert fleet_unavailable(h)
        assert url in fleet_line(h)
    finally:
        shutil.rmtree(nowhere, ignore_errors=True)


def test_status_ends_with_store_and_fleet_lines(fleet, fresh_emu,
                                                redis_server):
    fresh_emu.generate(AC, 20, seed=111)
    plain = fleet.host({AC: dict(FAST)}, redis=False)
    lines = status_lines(plain)
    assert lines[-2].startswith("store: ")
    assert lines[-1] == "fleet: off"
    h = fleet.host({AC: dict(FAST)}, options=["redis_prefix=stat"])
    os.listdir(h.path(AC))
    lines = status_lines(h)
    assert lines[-2].startswith("store: ")
    assert lines[-1].startswith("fleet: ")
    assert fleet_ok(h, redis_server.url)
    # The prefix names every key.
    keys = redis_server.keys()
    assert keys and all(k.startswith("stat:") for k in keys), keys


# --- 8. bad listings in Redis --------------------------------------------------

def test_bad_listing_in_redis_is_ignored_and_logged_never_served(
        fleet, fresh_emu, redis_server):
    P = "t8"
    conns = fresh_emu.generate(AC, 200, seed=112)
    shop = sum(c["service"].lower() == "shopify" for c in conns)
    secs = {AC: dict(FAST), "ac-shop": dict(FAST, type=AC,
                                             service="shopify")}
    a, b = fleet.hosts(2, secs, options=["redis_prefix=" + P])
    for h in (a, b):
        assert len(os.listdir(h.path(AC))) == 200
        assert len(os.listdir(h.path("ac-shop"))) == shop
    assert fresh_emu.count(AC) == pages(200) + pages(shop)
    assert all(k.startswith(P + ":") for k in redis_server.keys())
    before = {h.dir: (snapshot(h.path(AC)), snapshot(h.path("ac-shop")))
              for h in (a, b)}
    ids = listing_ids(redis_server, P)
    assert len(ids) == 2
    # Which id is whose: the bigger listing is the unfiltered one.
    size = {i: int(redis_server.get("STRLEN", "%s:{%s}:listing" % (P, i)))
            for i in ids}
    full, sub = sorted(ids, key=lambda i: -size[i])
    real = redis_server.get("GET", "%s:{%s}:listing" % (P, full))
    assert len(real) == size[full]

    def plant(ident, blob=None, copy_from=None):
        """Puts a bad listing under ident and announces it as new."""
        key = "%s:{%s}:listing" % (P, ident)
        if copy_from:
            redis_server.cli("COPY", "%s:{%s}:listing" % (P, copy_from),
                             key, "REPLACE")
        else:
            redis_server.cli("SET", key, stdin=blob)
        gen = int(redis_server.get("HINCRBY", "%s:{%s}:meta" % (P, ident),
                                   "gen", "1"))
        redis_server.cli("PUBLISH", P + ":published", "%s %d" % (ident, gen))

    bad = [("garbage", dict(blob=b"this is not a listing\x00\xff" * 50)),
           ("truncated", dict(blob=real[:len(real) // 2])),
           ("zlib of other JSON", dict(blob=zlib.compress(
               b'{"connections":[{"id":"1","name":"evil"}]}'))),
           ("another key's listing", dict(copy_from=sub))]
    for what, how in bad:
        seen = len(ignored_lines([a, b]))
        plant(full, **how)
        wait_for(lambda: len(ignored_lines([a, b])) > seen, 10,
                 "a log line that the %s listing was ignored" % what)
        time.sleep(1.2)           # both hosts have seen it (1 s polling)
        for h in (a, b):
            assert h.proc.poll() is None, "crashed on the %s listing" % what
            assert (snapshot(h.path(AC)), snapshot(h.path("ac-shop"))) == \
                before[h.dir], what
    # A good walk after all that is picked up as ever.
    added = new_conn(conns[0], 990006, "fleet-after-bad")
    fresh_emu.add_connection(AC, added)
    calls = fresh_emu.count(AC)
    assert "refreshed" in refresh(a)
    wait_for(lambda: ac_name(added) in os.listdir(b.path(AC)), 5,
             "the good listing on the other host")
    assert fresh_emu.count(AC) == calls + pages(201)
    assert dir_status(b, AC)["state"] == "fleet"
    assert snapshot(a.path(AC)) == snapshot(b.path(AC))


# --- 9. the shared journal ---------------------------------------------------

def test_change_journal_reads_the_same_on_every_host(fleet, fresh_emu,
                                                     redis_server):
    n = 300
    conns = fresh_emu.generate(AC, n, seed=113)
    ttl = 3
    hosts = fleet.hosts(4, {AC: dict(FAST, ttl=str(ttl),
                                      refresh_ahead="0")})
    assert ls_at_once([h.path(AC) for h in hosts]) == [n] * 4
    walked = time.monotonic()
    assert fresh_emu.count(AC) == 3
    for h in hosts:
        assert changes_text(h) == b""            # a first walk: nothing
    old = conns[11]
    mod = dict(old, status="0" if old["status"] == "1" else "1")
    added = new_conn(conns[0], 990007, "fleet-journal-new")
    removed = conns[12]
    fresh_emu.set_connections(
        AC, [mod if x is old else x for x in conns if x is not removed]
        + [added])
    # The listing expires; one host reads it and so walks for the fleet.
    a = hosts[2]
    time.sleep(max(0, walked + ttl + 0.5 - time.monotonic()))
    os.listdir(a.path(AC))
    wait_for(lambda: ac_name(added) in os.listdir(a.path(AC)), 20,
             "the walk on one host")
    assert fresh_emu.count(AC) == 6
    assert dir_status(a, AC)["state"] == "fresh"
    text = changes_text(a)
    lines = [json.loads(x) for x in text.decode().splitlines()]
    assert sorted((x["kind"], x["file"]) for x in lines) == sorted([
        ("added", ac_name(added)), ("modified", ac_name(mod)),
        ("removed", ac_name(removed))])
    assert all(x["section"] == AC for x in lines)
    m = next(x for x in lines if x["kind"] == "modified")
    assert m["changes"]["status"] == {"old": old["status"],
                                      "new": mod["status"]}
    for h in hosts:
        wait_for(lambda: changes_text(h) == text, 5,
                 "the journal on %s" % h.dir)
        assert changes_text(h, AC) == text
    for h in hosts:
        wait_for(lambda: ac_name(added) in os.listdir(h.path(AC)), 5,
                 "the new listing on %s" % h.dir)
    assert states(hosts) == ["fleet", "fleet", "fleet", "fresh"]
    assert redis_server.get("TYPE", "connfs:journal") == b"stream"
    assert fresh_emu.count(AC) == 6
    time.sleep(0.5)
    for h in hosts:
        assert changes_text(h) == text          # nothing twice
