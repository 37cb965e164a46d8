"""Operations (issue 6): the status view and user.connfs.* xattrs after a
walk, after a failure and during a slow walk; refresh on demand (files,
`connfs refresh`, SIGHUP) and who may trigger it; the status view staying
out of ls/find/grep -r/tar/rsync; `connfs --check`; fstab mounts through
mount.fuse3; uid=/gid=/umask=; daemon logging (syslog, logfile, loglevel).
"""

import errno
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import (BINARY, SECRETS, Mount, config_text, daemon_env,
                      is_mounted, wait_walked)

EB, AC, PS = "eventbridge", "activecampaign", "persona"
DIR_XATTRS = ["provider", "ttl", "state", "fetched", "age", "stale",
              "entries", "pages", "requests", "retries", "walking",
              "progress", "last_error", "last_error_time", "rate_limit",
              "rate_remaining", "rate_reset"]
FILE_XATTRS = ["id", "provider", "directory", "fetched", "source_url"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


# --- helpers -----------------------------------------------------------------


def records(text):
    """Refresh results: padded lines, trimmed."""
    return [line.rstrip(" ") for line in text.splitlines()]

def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    return subprocess.run(cmd, **kw)


def status(m):
    """.connfs/status.json as {directory: row}, in order."""
    with open(m.path(".connfs", "status.json")) as f:
        rows = json.load(f)
    return {r["directory"]: r for r in rows}


def status_rows(text):
    """The table's rows, split on blanks (fields hold no blanks when idle)."""
    lines = text.splitlines()
    assert lines[0].split() == ["DIRECTORY", "PROVIDER", "STATE", "ENTRIES",
                                "AGE", "PAGES", "REQS", "RETRIES",
                                "RATE-LIMIT", "PROGRESS", "LAST-ERROR"]
    # A blank line, then the store's and the fleet's lines, end the table.
    rows = lines[1:lines.index("")]
    assert lines[lines.index("") + 1].startswith("store: ")
    assert lines[lines.index("") + 2].startswith("fleet: ")
    return rows


def xattrs(path):
    return {n: os.getxattr(path, n).decode() for n in os.listxattr(path)}


def when(iso):
    return datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


def assert_recent(iso, slack=60):
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso), iso
    assert abs(when(iso) - time.time()) < slack, iso


def counts(emu, providers=(EB, AC)):
    return {p: emu.count(p) for p in providers}


def wait_for(pred, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def mounts_under(path):
    """/proc/mounts lines of mounts under path (other tests mount too)."""
    path = str(path)
    with open("/proc/mounts") as f:
        return [ln for ln in f if ln.split()[1] == path
                or ln.split()[1].startswith(path + "/")]


def mount_options(path):
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == path:
                return fields[3].split(",")
    return None


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def daemon_pid(text):
    m = re.search(r"connfs\[(\d+)\]", text)
    return int(m.group(1)) if m else None


def eb(**keys):
    return dict({"region": "us-east-1"}, **keys)


def write_config(path, emu, sections):
    for keys in sections.values():
        keys.setdefault("url", emu.url)
    path.write_text(config_text(sections))
    os.chmod(path, 0o600)
    return str(path)


@pytest.fixture
def shared_dir(fresh_emu):
    """A directory every user can reach (pytest's tmp is 0700 root)."""
    d = tempfile.mkdtemp(prefix="connfs-ops-")
    os.chmod(d, 0o755)
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def finish(m):
    rc = m.unmount()
    assert rc == 0, "daemon exited with %s: %s" % (rc, m.output())
    for s in SECRETS:
        assert s not in m.logs() + m.output()


# --- 1. status after a walk --------------------------------------------------

def test_status_after_a_walk_costs_no_requests(mount, fresh_emu, tmp_path):
    ebc = {c["Name"]: c for c in fresh_emu.generate(EB, 25, seed=21)}
    acc = fresh_emu.generate(AC, 30, seed=22)
    fresh_emu.generate(PS, 7, seed=23)
    m = mount({EB: eb(page_size="10"), AC: {"page_size": "10"}, PS: {}})
    assert len(os.listdir(m.path(EB))) == 25
    assert len(os.listdir(m.path(AC))) == 30
    assert len(os.listdir(m.path(PS))) == 7
    before = counts(fresh_emu, (EB, AC, PS))
    assert before == {EB: 3, AC: 3, PS: 1}

    st = status(m)
    assert list(st) == [EB, AC, PS]
    for name, n, pages in ((EB, 25, 3), (AC, 30, 3), (PS, 7, 1)):
        row = st[name]
        assert_recent(row["fetched"])
        assert 0 <= row["age"] < 30
        want = {"directory": name, "provider": name, "state": "fresh",
                "ttl": 60, "stale": False, "entries": n, "pages": pages,
                "requests": pages, "retries": 0, "walks": 1,
                "walking": False, "walk_pages": pages, "walk_entries": n,
                "last_error": None, "last_error_time": None}
        assert {k: row[k] for k in want} == want, name
    # meta.total is ActiveCampaign's; EventBridge does not say.
    assert st[AC]["walk_total"] == 30 and st[EB]["walk_total"] == -1
    # Persona reports its rate limit: 300 a minute, one request spent.
    assert st[PS]["rate_limit"] == 300 and st[PS]["rate_remaining"] == 299
    assert 0 <= st[PS]["rate_reset"] <= 60
    assert st[EB]["rate_limit"] == st[EB]["rate_remaining"] == -1

    # Directory xattrs: getfattr -d shows exactly these names.
    d = xattrs(m.path(EB))
    assert sorted(d) == sorted("user.connfs." + n for n in DIR_XATTRS)
    assert d["user.connfs.fetched"] == st[EB]["fetched"]
    assert 0 <= int(d["user.connfs.age"]) < 30
    assert {k[12:]: v for k, v in d.items()
            if k[12:] not in ("fetched", "age")} == {
        "provider": EB, "ttl": "60", "state": "fresh", "stale": "0",
        "entries": "25", "pages": "3", "requests": "3", "retries": "0",
        "walking": "0", "progress": "pages=3 entries=25 total=-1",
        "last_error": "-", "last_error_time": "-", "rate_limit": "-1",
        "rate_remaining": "-1", "rate_reset": "-1"}
    a = xattrs(m.path(AC))
    assert a["user.connfs.entries"] == "30"
    assert a["user.connfs.progress"] == "pages=3 entries=30 total=30"
    p = xattrs(m.path(PS))
    assert (p["user.connfs.rate_limit"], p["user.connfs.rate_remaining"]) \
        == ("300", "299")
    # getfattr itself, where installed, sees the same.
    if shutil.which("getfattr"):
        out = run(["getfattr", "-d", m.path(EB)], check=True).stdout
        assert 'user.connfs.entries="25"' in out
        assert 'user.connfs.stale="0"' in out

    # File xattrs: the connection's own id.
    for f in os.listdir(m.path(EB))[:5]:
        x = xattrs(m.path(EB, f))
        assert x == {"user.connfs.id": ebc[f[:-5]]["ConnectionArn"],
                     "user.connfs.provider": EB,
                     "user.connfs.directory": EB,
                     "user.connfs.fetched": st[EB]["fetched"],
                     "user.connfs.source_url": fresh_emu.url}
    ac_ids = {c["id"] for c in acc}
    for f in sorted(os.listdir(m.path(AC)))[:5]:
        x = xattrs(m.path(AC, f))
        # Files are NAME~ID.json.
        assert x["user.connfs.id"] == f.rsplit("~", 1)[1][:-5]
        assert x["user.connfs.id"] in ac_ids
        assert x["user.connfs.provider"] == AC
        assert x["user.connfs.source_url"] == \
            fresh_emu.url + "/api/3/connections"
    with pytest.raises(OSError) as e:
        os.getxattr(m.path(EB), "user.connfs.nonesuch")
    assert e.value.errno == errno.ENODATA

    # The table, by file and by `connfs status`.
    with open(m.path(".connfs", "status")) as f:
        text = f.read()
    res = run([BINARY, "status", m.dir])
    assert res.returncode == 0 and res.stderr == ""
    for out in (text, res.stdout):
        rows = [r.split() for r in status_rows(out)]
        assert [r[:4] + r[5:] for r in rows] == [
            [EB, EB, "fresh", "25", "3", "3", "0", "-", "-", "-"],
            [AC, AC, "fresh", "30", "3", "3", "0", "-", "-", "-"],
            [PS, PS, "fresh", "7", "1", "1", "0", "299/300", "reset",
             rows[2][10], "-", "-"]]
        assert re.fullmatch(r"\d+s", rows[0][4])
        assert re.fullmatch(r"\d+s", rows[2][10])

    # None of this reached the APIs.
    assert counts(fresh_emu, (EB, AC, PS)) == before

    res = run([BINARY, "status", str(tmp_path)])
    assert res.returncode == 1 and res.stdout == ""
    assert "is %s a connfs mount?" % tmp_path in res.stderr
    res = run([BINARY, "status"])
    assert res.returncode == 2 and "usage" in res.stderr


# --- 2. status after a failure -----------------------------------------------

def test_status_after_a_failure_is_stale_with_the_error(mount, fresh_emu):
    fresh_emu.generate(EB, 25, seed=31)
    # walk_limit=1: the persistent 500 is given up on within a second.
    m = mount({EB: eb(page_size="10", ttl="1", walk_limit="1")})
    assert len(os.listdir(m.path(EB))) == 25
    fetched = status(m)[EB]["fetched"]
    fresh_emu.inject(EB, "http500", count=None)
    time.sleep(1.2)                             # past the TTL
    t0 = time.time()
    # The expired listing is served while one walk refreshes it behind.
    assert len(os.listdir(m.path(EB))) == 25
    wait_walked(m, EB, 2)
    # The failed refresh keeps the last good listing, marked stale.
    assert wait_for(lambda: status(m)[EB]["stale"], 20)
    assert fresh_emu.count(EB) > 3
    assert "keeping the last good listing" in m.logs()

    row = status(m)[EB]
    assert row["state"] == "stale" and row["stale"] is True
    assert row["entries"] == 25 and row["fetched"] == fetched
    assert row["walks"] == 2 and row["walking"] is False
    assert row["last_error"] == (
        "eventbridge: gave up before the deadline: InternalException"
        " (HTTP 500)")
    assert_recent(row["last_error_time"])
    assert when(row["last_error_time"]) >= int(t0) - 1
    assert when(row["last_error_time"]) >= when(fetched)
    assert row["retries"] >= 1 and row["requests"] == row["retries"] + 1

    x = xattrs(m.path(EB))
    assert x["user.connfs.stale"] == "1"
    assert x["user.connfs.state"] == "stale"
    assert x["user.connfs.last_error"] == row["last_error"]
    assert x["user.connfs.last_error_time"] == row["last_error_time"]
    with open(m.path(".connfs", "status")) as f:
        line = status_rows(f.read())[0]
    assert line.split()[:4] == [EB, EB, "stale", "25"]
    assert line.endswith(row["last_error"])
    assert "(keeping the last good listing)" in m.logs()

    # Healthy again: the next refresh clears the stale state.
    fresh_emu.reset()
    assert wait_for(lambda: (os.listdir(m.path(EB)) and
                             status(m)[EB]["state"] == "fresh"), 10, 0.2)
    row = status(m)[EB]
    assert row["stale"] is False and row["entries"] == 25
    assert xattrs(m.path(EB))["user.connfs.stale"] == "0"


def test_last_error_names_the_http_status(mount, fresh_emu):
    fresh_emu.generate(EB, 5, seed=32)
    fresh_emu.inject(EB, "http403", count=None)
    m = mount({EB: eb()})
    with pytest.raises(OSError):
        os.listdir(m.path(EB))
    assert "403" in status(m)[EB]["last_error"]


# --- 3. progress during a slow walk ------------------------------------------

def test_progress_during_a_slow_walk(mount, fresh_emu):
    size, pages = 5, 20
    fresh_emu.generate(EB, size * pages, seed=41)
    fresh_emu.generate(AC, size * pages, seed=42)
    m = mount({EB: eb(page_size=str(size)),
               AC: {"page_size": str(size), "concurrency": "1"}},
              options=["loglevel=info"])
    fresh_emu.set_latency(EB, 400)
    fresh_emu.set_latency(AC, 400)
    listed = {}

    def ls(p):
        listed[p] = len(os.listdir(m.path(p)))

    threads = [threading.Thread(target=ls, args=(p,)) for p in (EB, AC)]
    for t in threads:
        t.start()
    seen = {EB: [], AC: []}
    xa = text = None
    deadline = time.time() + 30
    try:
        while any(t.is_alive() for t in threads) and time.time() < deadline:
            st = status(m)
            for p in (EB, AC):
                row = st[p]
                if row["walking"] and row["walk_pages"] > 0:
                    seen[p].append(row)
            if (xa is None and st[AC]["walking"]
                    and st[AC]["walk_pages"] >= 2):
                xa = xattrs(m.path(AC))
                with open(m.path(".connfs", "status")) as f:
                    text = f.read()
            time.sleep(0.15)
    finally:
        for t in threads:
            t.join(30)
    assert listed == {EB: 100, AC: 100}
    for p in (EB, AC):
        assert len(seen[p]) >= 3, p
        for row in seen[p]:
            assert row["state"] == "walking"
            assert row["walk_entries"] == row["walk_pages"] * size
            assert 0 < row["walk_pages"] <= pages
            # Nothing finished yet: no entries, no last walk.
            assert row["entries"] == 0 and row["walks"] == 1
        assert seen[p][-1]["walk_pages"] > seen[p][0]["walk_pages"]
    assert all(r["walk_total"] == 100 for r in seen[AC])
    assert all(r["walk_total"] == -1 for r in seen[EB])
    assert xa["user.connfs.walking"] == "1"
    assert xa["user.connfs.state"] == "walking"
    n = int(re.fullmatch(r"pages=(\d+) entries=\d+ total=100",
                         xa["user.connfs.progress"]).group(1))
    assert xa["user.connfs.progress"] == \
        "pages=%d entries=%d total=100" % (n, n * size)
    prog = re.search(r"activecampaign\s+activecampaign\s+walking.*?"
                     r"(\d+) pages, (\d+) entries of ~100", text)
    assert prog and int(prog.group(2)) == int(prog.group(1)) * size

    st = status(m)
    for p in (EB, AC):
        assert st[p]["walking"] is False and st[p]["state"] == "fresh"
        assert st[p]["pages"] == st[p]["requests"] == pages
        assert fresh_emu.count(p) == pages
    # More than 2 s: progress lines at info level.
    logs = m.logs()
    eb_lines = re.findall(r"info: eventbridge: listing: (\d+) pages, "
                          r"(\d+) entries so far", logs)
    ac_lines = re.findall(r"info: activecampaign: listing: (\d+) pages, "
                          r"(\d+) of 100 entries", logs)
    assert eb_lines and ac_lines
    for pg, ent in eb_lines + ac_lines:
        assert int(ent) == int(pg) * size
    assert "debug:" not in logs


# --- 4. refresh on demand ----------------------------------------------------

def added(emu, conns, name):
    new = dict(conns[0], Name=name,
               ConnectionArn=conns[0]["ConnectionArn"] + "-" + name)
    emu.add_connection(EB, new)
    return new


def test_refresh_file_walks_once_and_shows_new_connections(mount, fresh_emu):
    conns = fresh_emu.generate(EB, 25, seed=51)
    fresh_emu.generate(AC, 30, seed=52)
    m = mount({EB: eb(page_size="10", ttl="3600"),
               AC: {"page_size": "10", "ttl": "3600"}})
    assert len(os.listdir(m.path(EB))) == 25
    assert len(os.listdir(m.path(AC))) == 30
    assert counts(fresh_emu) == {EB: 3, AC: 3}
    new = added(fresh_emu, conns, "zz-refresh-1")
    # Looked up (and cached as absent for the TTL, 3600 s) before.
    assert not os.path.exists(m.path(EB, "zz-refresh-1.json"))
    assert "zz-refresh-1.json" not in os.listdir(m.path(EB))
    assert counts(fresh_emu) == {EB: 3, AC: 3}

    res = run(["cat", m.path(".connfs", "refresh", EB)])
    assert res.returncode == 0
    # One result record per directory: a line padded to 256 bytes.
    assert len(res.stdout) == 256
    assert records(res.stdout) == ["eventbridge: refreshed, 26 connections"]
    assert counts(fresh_emu) == {EB: 6, AC: 3}
    assert "zz-refresh-1.json" in os.listdir(m.path(EB))
    assert wait_for(lambda: os.path.exists(m.path(EB, "zz-refresh-1.json")),
                    2)
    with open(m.path(EB, "zz-refresh-1.json")) as f:
        assert json.load(f) == new
    st = status(m)
    assert (st[EB]["walks"], st[EB]["entries"], st[EB]["requests"]) == \
        (2, 26, 3)
    assert st[AC]["walks"] == 1
    assert counts(fresh_emu) == {EB: 6, AC: 3}

    # The same through the command.
    added(fresh_emu, conns, "zz-refresh-2")
    res = run([BINARY, "refresh", m.dir, EB])
    assert res.returncode == 0 and res.stderr == ""
    assert res.stdout == "eventbridge: refreshed, 27 connections\n"
    assert counts(fresh_emu) == {EB: 9, AC: 3}
    assert "zz-refresh-2.json" in os.listdir(m.path(EB))
    assert status(m)[EB]["walks"] == 3

    res = run([BINARY, "refresh", m.dir, "nonesuch"])
    assert res.returncode == 1
    assert "no directory 'nonesuch'" in res.stderr
    assert counts(fresh_emu) == {EB: 9, AC: 3}


def test_refresh_all_and_sighup_refresh_every_directory_once(mount,
                                                             fresh_emu):
    fresh_emu.generate(EB, 25, seed=53)
    fresh_emu.generate(AC, 30, seed=54)
    m = mount({EB: eb(page_size="10", ttl="3600"),
               AC: {"page_size": "10", "ttl": "3600"}})
    # refresh/all before anything was listed loads both.
    res = run(["cat", m.path(".connfs", "refresh", "all")])
    assert res.returncode == 0
    assert records(res.stdout) == ["eventbridge: refreshed, 25 connections",
                                   "activecampaign: refreshed, 30 connections"]
    assert counts(fresh_emu) == {EB: 3, AC: 3}
    assert len(os.listdir(m.path(EB))) == 25
    assert counts(fresh_emu) == {EB: 3, AC: 3}

    res = run([BINARY, "refresh", m.dir])
    assert res.returncode == 0 and res.stdout.count("refreshed") == 2
    assert counts(fresh_emu) == {EB: 6, AC: 6}

    os.kill(m.proc.pid, signal.SIGHUP)
    assert wait_for(lambda: counts(fresh_emu) == {EB: 9, AC: 9}, 10)
    assert wait_for(lambda: "activecampaign: refreshed, 30" in m.logs(), 5)
    time.sleep(0.3)
    assert counts(fresh_emu) == {EB: 9, AC: 9}
    st = status(m)
    assert (st[EB]["walks"], st[AC]["walks"]) == (3, 3)
    assert "SIGHUP: refreshing every directory" in m.logs()
    assert m.proc.poll() is None

    # A refresh that fails says so, and so does the exit status.
    fresh_emu.inject(AC, "http403", count=None)
    res = run([BINARY, "refresh", m.dir])
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        "eventbridge: refreshed, 25 connections",
        "activecampaign: refresh failed, still serving the previous "
        "listing: activecampaign: Forbidden: You do not have permission"
            " (HTTP 403)"]
    assert len(os.listdir(m.path(AC))) == 30


def test_only_owner_or_root_may_refresh(fresh_emu, shared_dir):
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to act as another user")
    fresh_emu.generate(EB, 25, seed=55)
    m = Mount(shared_dir, fresh_emu, {EB: eb(page_size="10")},
              options=["allow_other"])
    try:
        assert "allow_other" in mount_options(m.dir)
        assert len(os.listdir(m.path(EB))) == 25
        assert fresh_emu.count(EB) == 3
        ref = m.path(".connfs", "refresh", EB)
        assert stat.S_IMODE(os.stat(ref).st_mode) == 0o400
        assert os.stat(ref).st_uid == os.getuid()

        res = run(NOBODY + ["cat", ref])
        assert res.returncode == 1 and "Permission denied" in res.stderr
        res = run(NOBODY + ["cat", m.path(".connfs", "refresh", "all")])
        assert res.returncode == 1 and "Permission denied" in res.stderr
        res = run(NOBODY + [BINARY, "refresh", m.dir, EB])
        assert res.returncode == 1 and "Permission denied" in res.stderr
        res = run(NOBODY + ["kill", "-HUP", str(m.proc.pid)])
        assert res.returncode != 0
        assert fresh_emu.count(EB) == 3

        # They may read the status and the connections.
        res = run(NOBODY + ["cat", m.path(".connfs", "status")])
        assert res.returncode == 0
        assert status_rows(res.stdout)[0].split()[:4] == [EB, EB, "fresh",
                                                          "25"]
        res = run(NOBODY + [BINARY, "status", m.dir])
        assert res.returncode == 0 and "fresh" in res.stdout
        res = run(NOBODY + ["ls", m.path(EB)])
        assert res.returncode == 0 and len(res.stdout.split()) == 25
        assert fresh_emu.count(EB) == 3

        # The owner (root here) may.
        res = run(["cat", ref])
        assert res.returncode == 0 and fresh_emu.count(EB) == 6
    finally:
        finish(m)


# --- 5. the status view is invisible to tree walkers -------------------------

def test_status_view_is_invisible_to_tree_walkers(mount, fresh_emu,
                                                  tmp_path):
    fresh_emu.generate(EB, 25, seed=61)
    fresh_emu.generate(AC, 30, seed=62)
    m = mount({EB: eb(page_size="10"), AC: {"page_size": "10"}})
    # Reachable by name...
    st = os.stat(m.path(".connfs", "status"))
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o444
    assert stat.S_ISDIR(os.stat(m.path(".connfs")).st_mode)
    assert os.listdir(m.path(".connfs")) == ["status", "status.json",
                                             "refresh", "changes",
                                             "changes.d"]
    assert os.listdir(m.path(".connfs", "refresh")) == [EB, AC, "all"]
    assert os.listdir(m.path(".connfs", "changes.d")) == [EB, AC]
    # ...but not listed.
    assert sorted(os.listdir(m.dir)) == sorted([EB, AC])
    out = run(["ls", "-a", m.dir], check=True).stdout.split()
    assert sorted(out) == sorted([".", "..", EB, AC])
    found = run(["find", m.dir], check=True).stdout.split("\n")[:-1]
    want = {m.dir, m.path(EB), m.path(AC)}
    want |= {m.path(EB, f) for f in os.listdir(m.path(EB))}
    want |= {m.path(AC, f) for f in os.listdir(m.path(AC))}
    assert len(found) == len(want) == 58 and set(found) == want
    for word in ("DIRECTORY", "RATE-LIMIT", "walk_entries"):
        for where in (m.dir, m.path(EB)):
            res = run(["grep", "-r", word, where])
            assert (res.returncode, res.stdout) == (1, ""), (word, where)
    names = run(["tar", "cf", "-", "-C", m.dir, "."], check=True,
                capture_output=True, text=False).stdout
    listing = run(["tar", "tf", "-"], input=names, check=True,
                  text=False).stdout.decode().split()
    assert not [n for n in listing if ".connfs" in n]
    assert len([n for n in listing if n.endswith(".json")]) == 55
    dest = tmp_path / "rsync"
    run(["rsync", "-a", m.dir + "/", str(dest) + "/"], check=True)
    assert sorted(os.listdir(dest)) == sorted([EB, AC])
    assert sum(len(fs) for _, _, fs in os.walk(dest)) == 55
    dest2 = tmp_path / "rsync-eb"
    run(["rsync", "-a", m.path(EB) + "/", str(dest2) + "/"], check=True)
    assert sorted(os.listdir(dest2)) == sorted(os.listdir(m.path(EB)))
    assert counts(fresh_emu) == {EB: 3, AC: 3}


# --- 6. --check --------------------------------------------------------------

ALL = (EB, AC, "nango", PS, "workato")


def result_lines(out):
    """--check's per-section result lines (without the credentials line
    that AWS sections add)."""
    return [ln for ln in out.splitlines() if ": credentials: " not in ln]


def check(cfg, tmp_path, env=None):
    return run([BINARY, "--check", "-o", "config=" + cfg],
               env=daemon_env(tmp_path, env))


def test_check_passes_and_fails_per_section(fresh_emu, tmp_path):
    listed = {}
    for i, p in enumerate(ALL):
        objs = fresh_emu.generate(p, 3, seed=70 + i)
        # Workato lists runtime (child) connections only when asked.
        listed[p] = sum(o.get("parent_id") is None for o in objs) \
            if p == "workato" else 3
    cfg = write_config(tmp_path / "config", fresh_emu,
                       {p: eb() if p == EB else {} for p in ALL})
    # Given a mount point too, --check still only checks.
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = run([BINARY, "--check", "-o", "config=" + cfg, str(mnt)],
              env=daemon_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert mounts_under(tmp_path) == []
    lines = result_lines(res.stdout)
    assert [ln.split(":")[0] for ln in lines] == list(ALL)
    for p, ln in zip(ALL, lines):
        assert ln == "%s: ok (%s, %d connection%s on the first page)" % (
            p, p, listed[p], "" if listed[p] == 1 else "s")
    assert res.stderr == ""
    assert "\neventbridge: credentials: environment (AWS_ACCESS_KEY_ID), " \
        "no expiry\n" in res.stdout
    assert counts(fresh_emu, ALL) == {p: 1 for p in ALL}

    # A wrong token: that section fails with the reason, the rest pass.
    res = check(cfg, tmp_path, {"ACTIVECAMPAIGN_API_TOKEN": "wrong-token"})
    assert res.returncode == 1
    lines = result_lines(res.stdout)
    assert lines[1] == ("activecampaign: FAILED: Forbidden: You do not have "
                        "permission (HTTP 403)")
    assert [ln.split(": ")[1][:2] for ln in lines] == \
        ["ok", "FA", "ok", "ok", "ok"]
    assert "wrong-token" not in res.stdout + res.stderr

    # An injected 403.
    fresh_emu.inject("nango", "http403")
    res = check(cfg, tmp_path)
    assert res.returncode == 1
    lines = result_lines(res.stdout)
    assert lines[2].startswith("nango: FAILED: ")
    assert lines[2].endswith("(HTTP 403)")
    assert sum(ln.split(": ")[1] == "FAILED" for ln in lines) == 1
    assert mounts_under(tmp_path) == []


def test_check_rejects_bad_configuration_before_any_request(fresh_emu,
                                                            tmp_path):
    bad = write_config(tmp_path / "bad", fresh_emu,
                       {EB: eb(bogus="1"), AC: {}})
    res = check(bad, tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr == "connfs: %s:3: [eventbridge] bogus: unknown key\n" \
        % bad
    cfg = write_config(tmp_path / "config", fresh_emu, {EB: eb(), PS: {}})
    env = daemon_env(tmp_path)
    del env["PERSONA_API_KEY"]
    res = run([BINARY, "--check", "-o", "config=" + cfg], env=env)
    assert res.returncode == 1 and res.stdout == ""
    assert "no API token" in res.stderr and "PERSONA_API_KEY" in res.stderr
    res = check(str(tmp_path / "missing"), tmp_path)
    assert res.returncode == 1 and "missing" in res.stderr
    assert fresh_emu.requests() == []
    assert mounts_under(tmp_path) == []


# --- 7. fstab ----------------------------------------------------------------

def test_fstab_mount_and_umount(fresh_emu, tmp_path):
    helper = shutil.which("mount.fuse3") or shutil.which(
        "mount.fuse3", path="/sbin:/usr/sbin")
    if not helper:
        pytest.skip("mount.fuse3 is not installed")
    if os.getuid() != 0:
        pytest.skip("mount(8) with an fstab needs root")
    fresh_emu.generate(EB, 12, seed=81)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BINARY, bindir / "connfs")
    cfg = write_config(tmp_path / "config", fresh_emu, {EB: eb()})
    log = tmp_path / "connfs.log"
    # nostore: the second mount must walk (and log it) before its `ls`
    # answers, not serve the first one's listing and refresh behind it.
    opts = ("config=%s,logfile=%s,loglevel=info,_netdev,allow_other,nostore"
            % (cfg, log))
    fstab = tmp_path / "fstab"
    fstab.write_text("# throwaway\nconnfs %s fuse.connfs %s 0 0\n"
                     % (mnt, opts))
    env = daemon_env(tmp_path)
    env["PATH"] = "%s:%s" % (bindir, env["PATH"])

    def unmounted_cleanly(res, before):
        assert res.returncode == 0, res.stderr
        assert not is_mounted(str(mnt))
        text = log.read_text()[before:]
        pid = daemon_pid(text)
        assert pid and wait_for(lambda: not pid_alive(pid), 10)
        assert "mounted 1 provider directory on %s" % mnt in text
        assert "listed 12 connections" in text
        assert not re.search(r"\b(error|warn):", text), text

    # 1. What mount(8) runs for that line: mount.fuse3 finds `connfs` on
    #    PATH and hands it the options, _netdev and allow_other included.
    try:
        res = run([helper, "connfs", str(mnt), "-t", "fuse.connfs",
                   "-o", opts], env=env)
        assert res.returncode == 0, res.stderr
        assert is_mounted(str(mnt))
        assert "allow_other" in mount_options(str(mnt))
        assert len(os.listdir(mnt / EB)) == 12
        res = run(["umount", str(mnt)])
        unmounted_cleanly(res, 0)
    finally:
        if is_mounted(str(mnt)):
            run(["umount", "-l", str(mnt)])

    # 2. `mount -T FSTAB MNT` itself. mount(8) clears PATH for helpers, so
    #    the shell of mount.fuse3 searches its default PATH: in a private
    #    mount namespace, /usr/local/sbin is replaced by our bin directory.
    if not shutil.which("unshare"):
        return
    start = len(log.read_text())
    script = ("set -e\n"
              "mount --bind '{bin}' /usr/local/sbin\n"
              "mount -T '{fstab}' '{mnt}'\n"
              "grep ' {mnt} fuse.connfs ' /proc/mounts\n"
              "ls '{mnt}/eventbridge' | wc -l\n"
              "umount '{mnt}'\n"
              "echo unmounted\n"
              "if grep ' {mnt} ' /proc/mounts; then exit 9; fi\n").format(
        bin=bindir, fstab=fstab, mnt=mnt)
    res = run(["unshare", "-m", "--propagation", "private", "sh", "-c",
               script], env=env)
    if res.returncode != 0 and "unshare failed" in res.stderr:
        pytest.skip("no mount namespaces here: " + res.stderr.strip())
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout.splitlines()
    assert out[0].startswith("connfs %s fuse.connfs ro," % mnt)
    assert "allow_other" in out[0].split()[3].split(",")
    assert out[1:] == ["12", "unmounted"]
    unmounted_cleanly(res, start)


# --- 8. uid=, gid=, umask= ---------------------------------------------------

def test_uid_gid_umask_options(mount, fresh_emu):
    fresh_emu.generate(EB, 5, seed=91)
    m = mount({EB: eb()}, options=["uid=1234", "gid=4321", "umask=027"])
    opts = mount_options(m.dir)
    assert "allow_other" not in opts and "ro" in opts
    for p in (m.dir, m.path(EB)):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (1234, 4321), p
        assert stat.S_IMODE(st.st_mode) == 0o550, p
    files = os.listdir(m.path(EB))
    assert len(files) == 5
    for f in files:
        st = os.stat(m.path(EB, f))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == \
            (1234, 4321, 0o440)
    out = run(["ls", "-ln", m.path(EB)], check=True).stdout.splitlines()[1:]
    assert all(ln.split()[:4] == ["-r--r-----", "1", "1234", "4321"]
               for ln in out)

    plain = mount({EB: eb()})
    assert "allow_other" not in mount_options(plain.dir)
    for p in [plain.dir, plain.path(EB)] + [plain.path(EB, f) for f in files]:
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
        assert stat.S_IMODE(st.st_mode) == (0o555 if os.path.isdir(p)
                                            else 0o444)


# --- 9. logging --------------------------------------------------------------

def test_logfile_at_error_level_has_no_info(mount, fresh_emu):
    fresh_emu.generate(EB, 5, seed=101)
    fresh_emu.generate(AC, 5, seed=102)
    fresh_emu.inject(AC, "http403", count=None)
    m = mount({EB: eb(), AC: {}}, options=["loglevel=error"])
    assert len(os.listdir(m.path(EB))) == 5
    with pytest.raises(PermissionError):
        os.listdir(m.path(AC))
    assert wait_for(lambda: "error:" in m.logs(), 5)
    lines = m.logs().splitlines()
    pid = m.proc.pid
    assert lines == ["connfs[%d]: error: activecampaign: Forbidden: You do "
                     "not have permission (HTTP 403)" % pid]


def test_bad_options_and_config_fail_before_detaching(fresh_emu, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = write_config(tmp_path / "config", fresh_emu, {EB: eb()})
    env = daemon_env(tmp_path)

    res = run([BINARY, "-o", "config=%s,loglevel=loud" % cfg, str(mnt)],
              env=env)
    assert res.returncode == 2
    assert res.stderr == ("connfs: -o loglevel=loud: use error, warn, info "
                          "or debug\n")
    # Background mode (no -f): reported on stderr, non-zero, no mount.
    bad = write_config(tmp_path / "bad", fresh_emu, {EB: eb(ttl="soon")})
    res = run([BINARY, "-o", "config=" + bad, str(mnt)], env=env)
    assert res.returncode == 1 and res.stderr.startswith(
        "connfs: %s:3: [eventbridge] ttl: " % bad)
    ps = write_config(tmp_path / "persona", fresh_emu, {PS: {}})
    noenv = dict(env)
    del noenv["PERSONA_API_KEY"]
    res = run([BINARY, "-o", "config=" + ps, str(mnt)], env=noenv)
    assert res.returncode == 1
    assert "no API token" in res.stderr and "PERSONA_API_KEY" in res.stderr
    res = run([BINARY, "-o", "config=" + cfg, str(tmp_path / "nonesuch")],
              env=env)
    assert res.returncode != 0 and "nonesuch" in res.stderr
    res = run([BINARY, "-o", "logfile=/nonexistent/dir/log,config=" + cfg,
               str(mnt)], env=env)
    assert res.returncode == 2 and "/nonexistent/dir/log" in res.stderr
    assert fresh_emu.requests() == []
    assert mounts_under(tmp_path) == []


class SyslogListener:
    """A minimal syslog daemon: a datagram socket at /dev/log."""

    PATH = "/dev/log"

    def __init__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.PATH)
        os.chmod(self.PATH, 0o666)
        self.sock.settimeout(0.1)
        self.msgs = []

    def poll(self, pred, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(pred(x) for x in self.msgs):
                return True
            try:
                self.msgs.append(self.sock.recv(65536).decode(
                    "utf-8", "replace"))
            except socket.timeout:
                pass
        return any(pred(x) for x in self.msgs)

    def close(self):
        self.sock.close()
        os.unlink(self.PATH)


def test_background_daemon_logs_to_syslog(fresh_emu, tmp_path):
    if os.path.exists(SyslogListener.PATH):
        pytest.skip("a syslog daemon owns /dev/log; its output is not "
                    "readable here")
    if os.getuid() != 0:
        pytest.skip("no syslog daemon, and only root may stand in for one")
    try:
        syslog = SyslogListener()
    except OSError as e:
        pytest.skip("cannot listen on /dev/log: %s" % e)
    fresh_emu.generate(EB, 5, seed=111)
    fresh_emu.generate(AC, 5, seed=112)
    fresh_emu.inject(AC, "http403", count=None)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cfg = write_config(tmp_path / "config", fresh_emu, {EB: eb(), AC: {}})
    pid = None
    try:
        res = run([BINARY, "-o", "config=%s,loglevel=info" % cfg, str(mnt)],
                  env=daemon_env(tmp_path))
        assert res.returncode == 0, res.stderr
        assert res.stdout == res.stderr == ""
        assert is_mounted(str(mnt))
        assert len(os.listdir(mnt / EB)) == 5
        with pytest.raises(PermissionError):
            os.listdir(mnt / AC)
        # LOG_DAEMON (3) with LOG_ERR (3) and LOG_INFO (6); tag connfs[PID].
        assert syslog.poll(lambda x: x.startswith("<27>") and
                           "activecampaign: Forbidden: You do not have "
                           "permission" in x, 5), syslog.msgs
        hello = [x for x in syslog.msgs if x.startswith("<30>") and
                 "mounted 2 provider directories on %s" % mnt in x]
        assert len(hello) == 1, syslog.msgs
        pid = daemon_pid(hello[0])
        assert pid and pid != os.getpid() and pid_alive(pid)
        # Other daemons may log here too: look at ours only.
        ours = [x for x in syslog.msgs if " connfs[%d]: " % pid in x]
        assert all(re.match(r"<\d+>\w{3} [ \d]\d \d\d:\d\d:\d\d "
                            r"connfs\[%d\]: " % pid, x) for x in ours), ours
        assert any(x.startswith("<30>") and "eventbridge: listed 5 "
                   "connections" in x for x in ours), ours
        assert any(x.startswith("<27>") for x in ours)
        for s in SECRETS:
            assert s not in "".join(syslog.msgs)
    finally:
        if is_mounted(str(mnt)):
            run(["fusermount3", "-u", str(mnt)])
        syslog.close()
    assert not is_mounted(str(mnt))
    assert pid and wait_for(lambda: not pid_alive(pid), 10)


def test_concurrent_status_readers_always_get_whole_renderings(mount,
                                                               fresh_emu):
    """Each rendering is its own node: readers never see two mixed."""
    fresh_emu.generate(EB, 30, seed=77)
    fresh_emu.generate(AC, 30, seed=78)
    # ttl=0: every listing walks again, so the status changes all the time.
    m = mount({EB: eb(page_size="10", ttl="0"),
               AC: {"page_size": "10", "ttl": "0"}})
    bad, reads = [], []
    stop = threading.Event()

    def lister():
        while not stop.is_set():
            os.listdir(m.path(EB))
            os.listdir(m.path(AC))

    def reader():
        while not stop.is_set():
            with open(m.path(".connfs", "status.json")) as f:
                text = f.read()
            try:
                json.loads(text)
            except ValueError as e:
                bad.append("%s: %r" % (e, text[-80:]))
            with open(m.path(".connfs", "status")) as f:
                lines = f.read().splitlines()
            if (len(lines) != 6 or not lines[0].startswith("DIRECTORY")
                    or not lines[4].startswith("store: ")
                    or lines[5] != "fleet: off"):
                bad.append("status table: %r" % lines)
            reads.append(1)

    listers = [threading.Thread(target=lister) for _ in range(3)]
    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in listers + readers:
        t.start()
    # Read while at least ten walks change the status under the readers.
    walked = wait_for(lambda: fresh_emu.count(EB) >= 30, 60)
    stop.set()
    for t in listers + readers:
        t.join()
    assert walked and len(reads) > 0 and bad == []
