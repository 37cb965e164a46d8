"""The persistent listing store, refresh behind readers, and the change
journal: a remount serves the saved listing at once, byte for byte, with
the API down; a walk longer than the deadline goes on and is served; every
change between two walks is one journal line; a broken store is survived
and reported; a listing is never shown for another account."""

import errno
import json
import os
import select
import sqlite3
import subprocess
import time

import pytest

from conftest import BINARY, Mount, part

EB, NG, AC = "eventbridge", "nango", "activecampaign"


def eb(**keys):
    return dict({"region": "us-east-1"}, **keys)


def fname(conn):
    return part(conn["Name"]) + ".json"


def wait_for(pred, timeout=30, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting")


def xattr(path, name):
    return os.getxattr(path, "user.connfs." + name).decode()


def refresh(m, name=EB):
    with open(m.path(".connfs", "refresh", name)) as f:
        return f.read().strip()


def snapshot_tree(d):
    """name -> (bytes, size, mtime_ns, inode) of every file."""
    out = {}
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        st = os.stat(p)
        with open(p, "rb") as f:
            out[n] = (f.read(), st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def changes(m, section=None):
    p = (m.path(".connfs", "changes") if section is None
         else m.path(".connfs", "changes.d", section))
    with open(p) as f:
        return [json.loads(line) for line in f.read().splitlines()]


def remount(tmp_path, emu, sections, name, options=()):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    return Mount(d, emu, sections, options=[
        "cache_dir=" + str(tmp_path / "store")] + list(options))


@pytest.fixture
def mounts():
    ms = []
    yield ms
    for m in ms:
        assert m.unmount() == 0, m.output()


def test_remount_serves_the_saved_listing_byte_identical_with_api_down(
        fresh_emu, tmp_path, mounts):
    fresh_emu.generate(EB, 250, seed=21)
    sections = {EB: eb()}
    m = remount(tmp_path, fresh_emu, sections, "a")
    mounts.append(m)
    before = snapshot_tree(m.path(EB))
    assert len(before) == 250
    assert m.unmount() == 0
    mounts.clear()
    calls = fresh_emu.count(EB)
    fresh_emu.inject(EB, "http500", count=1000)
    m = remount(tmp_path, fresh_emu, sections, "b")
    mounts.append(m)
    assert xattr(m.path(EB), "state") == "stored"
    assert snapshot_tree(m.path(EB)) == before
    # The background refresh fails; the saved listing stays in use.
    wait_for(lambda: xattr(m.path(EB), "last_error") != "-"
             and xattr(m.path(EB), "walking") == "0")
    assert fresh_emu.count(EB) > calls
    assert xattr(m.path(EB), "state") == "stored"
    assert snapshot_tree(m.path(EB)) == before
    with open(m.path(".connfs", "status")) as f:
        assert "store: " + str(tmp_path / "store") in f.read()
    # The API is back: one walk, fresh, nothing changed, nothing journaled,
    # and the saved listing's age restarts (a later mount sees it young).
    fresh_emu.reset()
    saved = walked_at(tmp_path)
    t0 = time.time()
    assert refresh(m).startswith("eventbridge: refreshed, 250 connections")
    assert fresh_emu.count(EB) == 3
    assert xattr(m.path(EB), "state") == "fresh"
    assert snapshot_tree(m.path(EB)) == before
    assert changes(m) == []
    assert walked_at(tmp_path) >= t0 > saved


def walked_at(tmp_path):
    """The walk time of the one saved listing, read from the store."""
    con = sqlite3.connect("file:%s?mode=ro" % (tmp_path / "store" /
                                               "connfs.db"), uri=True)
    try:
        (t,), = con.execute("SELECT walked_at FROM listings").fetchall()
    finally:
        con.close()
    return t


def test_journal_has_exactly_the_changes_of_a_refresh(mount, fresh_emu):
    conns = fresh_emu.generate(EB, 30, seed=22)
    m = mount({EB: eb()})
    assert len(os.listdir(m.path(EB))) == 30
    assert changes(m) == []                 # a first walk records nothing
    added = dict(conns[0], Name="brand-new", ConnectionArn="arn:new")
    removed = conns[1]
    modified = dict(conns[2], ConnectionState="FAILED_CONNECTIVITY"
                    if conns[2]["ConnectionState"] != "FAILED_CONNECTIVITY"
                    else "AUTHORIZED", Description="d" * 300)
    renamed = dict(conns[3], Name=conns[3]["Name"] + "-renamed")
    new = [conns[0], modified, renamed] + conns[4:] + [added]
    fresh_emu.set_connections(EB, new)
    assert "refreshed, 30 connections" in refresh(m)
    got = {(c["kind"], c["file"]): c for c in changes(m)}
    assert set(got) == {
        ("added", fname(added)), ("removed", fname(removed)),
        ("modified", fname(modified)), ("renamed", fname(renamed))}
    mod = got[("modified", fname(modified))]
    assert mod["changes"]["ConnectionState"] == {
        "old": conns[2]["ConnectionState"],
        "new": modified["ConnectionState"]}
    assert mod["fields"] == ["Description"]
    assert mod["id"] == modified["ConnectionArn"]
    assert got[("renamed", fname(renamed))]["old_file"] == fname(conns[3])
    assert all(c["section"] == EB for c in got.values())
    assert changes(m, EB) == changes(m)
    # grep answers "when did it break".
    out = subprocess.run(["grep", "-c", modified["ConnectionState"],
                          m.path(".connfs", "changes")],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "1"
    # Nothing changed: nothing more.
    assert "refreshed" in refresh(m)
    assert len(changes(m)) == 4


def test_tail_follows_the_journal(mount, fresh_emu):
    conns = fresh_emu.generate(NG, 5, seed=23)
    m = mount({NG: {}})
    os.listdir(m.path(NG))
    path = m.path(".connfs", "changes")
    tail = subprocess.Popen(["tail", "-n", "+1", "-f", "-s", "0.1", path],
                            stdout=subprocess.PIPE)
    try:
        for i in range(3):
            fresh_emu.add_connection(NG, dict(
                conns[0], connection_id="tail-%d" % i, id=1000 + i))
            assert "refreshed" in refresh(m, NG)
        out = b""
        end = time.monotonic() + 30
        while out.count(b"\n") < 3 and time.monotonic() < end:
            if select.select([tail.stdout], [], [], 0.5)[0]:
                out += os.read(tail.stdout.fileno(), 65536)
        lines = out.decode().splitlines(keepends=True)
    finally:
        tail.kill()
        tail.wait()
    assert [json.loads(x)["kind"] for x in lines] == ["added"] * 3
    assert os.stat(path).st_size == sum(len(x) for x in lines)


def test_cold_walk_longer_than_the_deadline_goes_on_and_is_served(
        mount, fresh_emu):
    fresh_emu.generate(EB, 500, seed=24)
    fresh_emu.set_latency(EB, 300)
    m = mount({EB: eb(deadline="0.5", page_size="100")})
    with pytest.raises(OSError) as e:
        os.listdir(m.path(EB))
    assert e.value.errno == errno.ETIMEDOUT
    # The walk goes on in the background; a second reader starts none.
    with pytest.raises(OSError):
        os.listdir(m.path(EB))
    wait_for(lambda: xattr(m.path(EB), "state") == "fresh", timeout=60)
    calls = fresh_emu.count(EB)
    assert calls == 5
    assert len(os.listdir(m.path(EB))) == 500
    assert fresh_emu.count(EB) == calls


def test_reader_during_a_slow_refresh_gets_the_old_listing(mount, fresh_emu):
    conns = fresh_emu.generate(EB, 40, seed=25)
    m = mount({EB: eb(ttl="1", refresh_ahead="0")})
    old = sorted(os.listdir(m.path(EB)))
    calls = fresh_emu.count(EB)
    fresh_emu.set_latency(EB, 1500)
    fresh_emu.set_connections(EB, conns[:20])
    time.sleep(1.2)                 # the listing expires
    # Served at once from the old listing; one walk starts behind.
    assert sorted(os.listdir(m.path(EB))) == old
    assert sorted(os.listdir(m.path(EB))) == old
    wait_for(lambda: xattr(m.path(EB), "state") == "fresh"
             and fresh_emu.count(EB) == calls + 1)
    wait_for(lambda: len(os.listdir(m.path(EB))) == 20)
    assert fresh_emu.count(EB) == calls + 1


def test_another_account_never_sees_the_saved_listing(fresh_emu, tmp_path,
                                                      mounts):
    fresh_emu.generate(AC, 12, seed=26)
    m = remount(tmp_path, fresh_emu, {AC: {}}, "a")
    mounts.append(m)
    assert len(os.listdir(m.path(AC))) == 12
    assert m.unmount() == 0
    mounts.clear()
    fresh_emu.inject(AC, "http500", count=1000)
    # Another URL (another account) on the same store: nothing stored.
    other = {AC: {"url": fresh_emu.url + "/other"}}
    m = remount(tmp_path, fresh_emu, other, "b")
    mounts.append(m)
    with pytest.raises(OSError):
        os.listdir(m.path(AC))
    assert m.unmount() == 0
    mounts.clear()
    # Another token: nothing stored either.
    m = remount(tmp_path, fresh_emu, {AC: {"token": "another-token"}}, "c")
    mounts.append(m)
    with pytest.raises(OSError):
        os.listdir(m.path(AC))
    assert "another-token" not in m.logs()


def test_corrupt_store_is_moved_aside_and_survived(fresh_emu, tmp_path,
                                                   mounts):
    fresh_emu.generate(NG, 10, seed=27)
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    db = store / "connfs.db"
    db.write_bytes(b"this is not a database" * 100)
    db.chmod(0o600)
    m = remount(tmp_path, fresh_emu, {NG: {}}, "a")
    mounts.append(m)
    assert len(os.listdir(m.path(NG))) == 10
    aside = [p for p in os.listdir(store) if p.startswith("connfs.db.corrupt-")]
    assert len(aside) == 1
    assert (store / aside[0]).read_bytes() == b"this is not a database" * 100
    assert "corrupt" in m.logs()
    assert m.unmount() == 0
    mounts.clear()
    # The fresh store kept the listing.
    fresh_emu.inject(NG, "http500", count=1000)
    m = remount(tmp_path, fresh_emu, {NG: {}}, "b")
    mounts.append(m)
    assert len(os.listdir(m.path(NG))) == 10


def test_tampered_saved_listing_is_never_served(fresh_emu, tmp_path, mounts):
    fresh_emu.generate(NG, 6, seed=28)
    m = remount(tmp_path, fresh_emu, {NG: {}}, "a")
    mounts.append(m)
    assert len(os.listdir(m.path(NG))) == 6
    assert m.unmount() == 0
    mounts.clear()
    con = sqlite3.connect(str(tmp_path / "store" / "connfs.db"))
    tables = [r[0] for r in con.execute(
        "select name from sqlite_master where type = 'table'")]
    item = [t for t in tables if "item" in t][0]
    cols = [r[1] for r in con.execute("pragma table_info(%s)" % item)]
    con.execute("update %s set %s = '../escape.json'" % (
        item, [c for c in cols if "name" in c][0]))
    con.commit()
    con.close()
    fresh_emu.inject(NG, "http500", count=1000)
    m = remount(tmp_path, fresh_emu, {NG: {}}, "b")
    mounts.append(m)
    with pytest.raises(OSError):
        os.listdir(m.path(NG))
    assert "not served" in m.logs()


def test_unwritable_store_carries_on_in_memory(fresh_emu, tmp_path, mounts):
    fresh_emu.generate(NG, 7, seed=29)
    (tmp_path / "notadir").write_text("x")
    m = remount(tmp_path, fresh_emu, {NG: {}}, "a",
                options=["cache_dir=" + str(tmp_path / "notadir" / "s")])
    mounts.append(m)
    assert len(os.listdir(m.path(NG))) == 7
    with open(m.path(".connfs", "status")) as f:
        assert "unavailable" in f.read()
    assert "carrying on in memory" in m.logs()


def test_store_open_to_others_is_refused(fresh_emu, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    store.chmod(0o755)
    with pytest.raises(RuntimeError) as e:
        remount(tmp_path, fresh_emu, {NG: {}}, "a")
    assert str(store) in str(e.value)


def test_two_mounts_share_one_store(fresh_emu, tmp_path, mounts):
    fresh_emu.generate(NG, 50, seed=30)
    fresh_emu.generate(EB, 50, seed=31)
    a = remount(tmp_path, fresh_emu, {NG: {}}, "a")
    b = remount(tmp_path, fresh_emu, {EB: eb()}, "b")
    mounts += [a, b]
    for _ in range(3):
        assert "refreshed" in refresh(a, NG)
        assert "refreshed" in refresh(b, EB)
    ta, tb = snapshot_tree(a.path(NG)), snapshot_tree(b.path(EB))
    for m in (a, b):
        assert m.unmount() == 0
    mounts.clear()
    fresh_emu.inject(NG, "http500", count=1000)
    fresh_emu.inject(EB, "http500", count=1000)
    c = remount(tmp_path, fresh_emu, {NG: {}, EB: eb()}, "c")
    mounts.append(c)
    assert snapshot_tree(c.path(NG)) == ta
    assert snapshot_tree(c.path(EB)) == tb


def test_nostore_keeps_nothing(fresh_emu, tmp_path, mounts):
    fresh_emu.generate(NG, 3, seed=32)
    d = tmp_path / "a"
    d.mkdir()
    m = Mount(d, fresh_emu, {NG: {}}, options=["nostore"])
    mounts.append(m)
    assert len(os.listdir(m.path(NG))) == 3
    with open(m.path(".connfs", "status")) as f:
        assert "store: off" in f.read()
    assert not (tmp_path / "store").exists()


def test_refresh_wait_returns_when_the_new_listing_is_served(mount,
                                                             fresh_emu):
    conns = fresh_emu.generate(EB, 300, seed=33)
    m = mount({EB: eb(deadline="0.3", page_size="100")})
    fresh_emu.set_latency(EB, 250)
    with pytest.raises(OSError):
        os.listdir(m.path(EB))
    wait_for(lambda: xattr(m.path(EB), "walking") == "0", timeout=60)
    fresh_emu.set_connections(EB, conns[:150])
    calls = fresh_emu.count(EB)
    r = subprocess.run([BINARY, "refresh", "--wait", m.dir, EB],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "still walking" in r.stdout
    assert "eventbridge: the new listing is served" in r.stdout
    # Served at once, with no walk of its own.
    assert len(os.listdir(m.path(EB))) == 150
    assert fresh_emu.count(EB) == calls + 2
