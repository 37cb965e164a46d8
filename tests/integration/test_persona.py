"""Persona end to end: cursor paging through links.next, Key-Inflection,
the status filter, backups, cache lifetime and errors."""

import errno
import json
import math
import os
import subprocess
import time
from datetime import datetime

import pytest

from conftest import (BINARY, daemon_env, dir_status, part, epoch_ns,
                      tar_round_trip, rsync_twice, wait_for, wait_listdir,
                      wait_walked)

P = "persona"
ORG = "org_Q4mTz8Yw1Lk2"


def ps(**keys):
    return {P: dict(keys)}


# --- expectations, computed independently of connfs ------------------------


def fname(c):
    """`cxn_id.json`."""
    return part(c["id"]) + ".json"


def api_order(conns):
    """Newest first, as Persona lists them."""
    def key(c):
        t = c["attributes"].get("created-at")
        return (-datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                if t else 0.0, c["id"])
    return sorted(conns, key=key)


def conn(ident, created="2025-06-17T08:05:51.000Z",
         updated="2025-07-01T10:00:00.250Z", status="active", **attrs):
    a = {"status": status, "source-organization-id": ORG,
         "destination-organization-id": "org_Hc5Vr2Lp8Xn3",
         "created-at": created}
    if updated is not False:
        a["updated-at"] = updated
    a.update(attrs)
    creator = {"data": {"type": "user", "id": "user_Ca5fe7Zu9Ri1"}}
    return {"type": "connect/connection", "id": ident, "attributes": a,
            "relationships": {"creator": creator}}


def use_everything(d, tmp_path):
    """ls -l, stat, cat, grep -r, find and tar of every file in d."""
    names = os.listdir(d)
    paths = [os.path.join(d, n) for n in names]
    subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
    for p in paths:
        os.stat(p)
    subprocess.run(["cat"] + paths, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["grep", "-rq", "connect/connection", d], check=True)
    subprocess.run(["find", d, "-type", "f"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "cf", str(tmp_path / "t.tar"), "-C", d, "."],
                   check=True)
    return names


def run_connfs(tmp_path, text):
    cfg = tmp_path / "c.conf"
    cfg.write_text(text)
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir(exist_ok=True)
    return subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, str(mnt)],
                          env=daemon_env(tmp_path), capture_output=True,
                          text=True, timeout=30)


# --- counts ------------------------------------------------------------------

@pytest.mark.parametrize("n,requests", [
    (0, 1), (1, 1), (100, 1), (200, 2), (250, 3), (300, 3),
])
def test_cursor_walk_costs_the_minimum(mount, fresh_emu, n, requests):
    conns = fresh_emu.generate(P, n, seed=3)
    m = mount(ps())
    out = subprocess.run("ls %s | wc -l" % m.path(P), shell=True, check=True,
                         capture_output=True, text=True)
    assert int(out.stdout) == n
    # The last full page says next: null, so N = k*100 costs k requests.
    assert requests == max(1, math.ceil(n / 100))
    assert fresh_emu.count(P) == requests
    recs = fresh_emu.requests(P)
    order = api_order(conns)
    for i, r in enumerate(recs):
        assert r["params"]["page[size]"] == ["100"]
        if i == 0:
            assert "page[after]" not in r["params"]
        else:
            # The cursor from links.next: the last id of the page before.
            assert r["params"]["page[after]"] == [order[i * 100 - 1]["id"]]
    assert all(r["status"] == 200 for r in recs)


def test_page_size_is_configurable_and_capped(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 20, seed=4)
    m = mount(ps(page_size="7"))
    assert len(os.listdir(m.path(P))) == 20
    assert [r["params"]["page[size]"] for r in fresh_emu.requests(P)] == \
        [["7"]] * 3
    r = run_connfs(tmp_path, "[persona]\nurl = %s\npage_size = 150\n"
                   % fresh_emu.url)
    assert r.returncode != 0
    assert "[persona] page_size: 150 is out of range" in r.stderr, r.stderr


def test_everything_within_the_ttl_costs_nothing(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 230, seed=8)
    m = mount(ps())
    assert len(use_everything(m.path(P), tmp_path)) == 230
    assert fresh_emu.count(P) == 3
    assert len(use_everything(m.path(P), tmp_path)) == 230
    assert fresh_emu.count(P) == 3


# --- content -----------------------------------------------------------------

def test_files_are_the_api_objects_with_exact_sizes(mount, fresh_emu):
    conns = fresh_emu.generate(P, 150, seed=9)
    del conns[5]["attributes"]["updated-at"]        # falls back to created-at
    conns[6]["attributes"]["updated-at"] = None
    fresh_emu.set_connections(P, conns)
    m = mount(ps())
    want = {fname(c): c for c in conns}
    files = sorted(os.listdir(m.path(P)))
    assert files == sorted(want)
    for f in files:
        p = m.path(P, f)
        st = os.stat(p)
        with open(p, "rb") as fh:
            data = fh.read()
        assert st.st_size == len(data)
        assert data.endswith(b"}\n")
        assert json.loads(data) == want[f]
        assert st.st_mode & 0o777 == 0o444
        a = want[f]["attributes"]
        assert st.st_mtime_ns == epoch_ns(a.get("updated-at") or
                                          a["created-at"]), f
    for c in conns[5:7]:
        assert os.stat(m.path(P, fname(c))).st_mtime_ns == \
            epoch_ns(c["attributes"]["created-at"])
    assert fresh_emu.count(P) == 2


def test_key_inflection_kebab_is_always_sent(mount, fresh_emu):
    fresh_emu.generate(P, 250, seed=5)
    m = mount(ps())
    assert len(os.listdir(m.path(P))) == 250
    recs = fresh_emu.requests(P)
    assert len(recs) == 3
    assert all(r["headers"].get("key-inflection") == "kebab" for r in recs)
    assert all("content-type" not in r["headers"] for r in recs)


@pytest.mark.parametrize("created,updated", [
    ("createdAt", "updatedAt"), ("created_at", "updated_at")])
def test_other_inflections_still_give_the_right_mtime(mount, fresh_emu,
                                                      created, updated):
    # An account whose objects come back camel- or snake-inflected.
    conns = []
    for i, (c, u) in enumerate([("2024-02-29T12:00:00.000Z",
                                 "2024-03-01T12:00:00.125Z"),
                                ("2025-01-15T08:00:00.000Z", None)]):
        obj = conn("cxn_INFL%012d" % i, updated=False)
        a = obj["attributes"]
        del a["created-at"]
        a[created] = c
        if u:
            a[updated] = u
        conns.append(obj)
    fresh_emu.set_connections(P, conns)
    m = mount(ps())
    assert os.stat(m.path(P, fname(conns[0]))).st_mtime_ns == \
        epoch_ns("2024-03-01T12:00:00.125Z")
    assert os.stat(m.path(P, fname(conns[1]))).st_mtime_ns == \
        epoch_ns("2025-01-15T08:00:00.000Z")
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f) == c


def test_hostile_ids_survive_as_names_and_cursors(mount, fresh_emu):
    ids = ["cxn_a/b", "cxn_plus+sign", "cxn_amp&x=1", "cxn_pct%41",
           "cxn_space here", ".cxn_dot", "-cxn_dash", "cxn_tilde~1",
           "cxn_Café", "cxn_quote\"'"]
    conns = [conn(ident, created="2025-01-%02dT00:00:00.000Z" % (i + 1))
             for i, ident in enumerate(ids)]
    fresh_emu.set_connections(P, conns)
    m = mount(ps(page_size="2"))
    files = sorted(os.listdir(m.path(P)))
    assert files == sorted(fname(c) for c in conns)
    for name in ["cxn_a%2Fb.json", "cxn_plus+sign.json", "cxn_pct%2541.json",
                 "%2Ecxn_dot.json", "%2Dcxn_dash.json",
                 "cxn_tilde%7E1.json", "cxn_Café.json"]:
        assert name in files
    recs = fresh_emu.requests(P)
    assert [r["status"] for r in recs] == [200] * 5
    order = api_order(conns)
    assert [r["params"].get("page[after]") for r in recs] == \
        [None] + [[order[i]["id"]] for i in (1, 3, 5, 7)]
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f) == c


def test_ids_differing_after_a_nul_are_distinct(mount, fresh_emu):
    conns = [conn("cxn_nul\u0000a", created="2025-01-01T00:00:00.000Z"),
             conn("cxn_nul\u0000b", created="2025-01-02T00:00:00.000Z")]
    fresh_emu.set_connections(P, conns)
    m = mount(ps())
    assert len(os.listdir(m.path(P))) == 2


# --- filters -----------------------------------------------------------------

def test_status_filter_reaches_every_page(mount, fresh_emu):
    conns = fresh_emu.generate(P, 400, seed=12)
    m = mount(ps(status="active"))
    want = {fname(c) for c in conns if c["attributes"]["status"] == "active"}
    assert 100 < len(want) < 400
    assert set(os.listdir(m.path(P))) == want
    recs = fresh_emu.requests(P)
    assert len(recs) == math.ceil(len(want) / 100)
    assert all(r["params"]["filter[status]"] == ["active"] for r in recs)


def test_sections_are_separate_directories(mount, fresh_emu):
    conns = fresh_emu.generate(P, 90, seed=2)
    m = mount({P: {}, "pending": {"type": P, "status": "pending"},
               "inactive": {"type": P, "status": "inactive"}})
    assert sorted(os.listdir(m.dir)) == ["inactive", "pending", P]
    assert len(os.listdir(m.path(P))) == 90
    for st in ("pending", "inactive"):
        assert set(os.listdir(m.path(st))) == {
            fname(c) for c in conns if c["attributes"]["status"] == st}
    assert fresh_emu.count(P) == 3


def test_unknown_status_fails_before_mounting(tmp_path, fresh_emu):
    r = run_connfs(tmp_path, "[persona]\nurl = %s\nstatus = enabled\n"
                   % fresh_emu.url)
    assert r.returncode != 0
    assert "[persona] status: 'enabled' is not pending, active or inactive" \
        in r.stderr, r.stderr


# --- backups -----------------------------------------------------------------

def test_tar_round_trip_is_byte_identical(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 250, seed=6)
    m = mount(ps())
    out = tar_round_trip(m, tmp_path)
    assert len(os.listdir(out / P)) == 250
    assert fresh_emu.count(P) == 3


def test_rsync_twice_transfers_nothing_the_second_time(mount, fresh_emu,
                                                       tmp_path):
    fresh_emu.generate(P, 120, seed=11)
    m = mount(ps())
    rsync_twice(m, tmp_path, 120)
    assert fresh_emu.count(P) == 2


# --- cache lifetime and errors -----------------------------------------------

def test_new_connection_appears_after_ttl(mount, fresh_emu):
    fresh_emu.generate(P, 30, seed=1)
    m = mount(ps(ttl="1", refresh_ahead="0"))
    assert len(os.listdir(m.path(P))) == 30
    new = conn("cxn_AddedLater0001", created="2030-01-01T00:00:00.000Z")
    fresh_emu.add_connection(P, new)
    assert fname(new) not in os.listdir(m.path(P))
    time.sleep(1.3)                             # past the TTL
    # The reader gets the expired listing at once and starts one walk ...
    assert len(os.listdir(m.path(P))) == 30
    wait_walked(m, P, 2)
    # ... whose result is served once it is done (no further request).
    names = wait_listdir(m.path(P), lambda ns: len(ns) != 30)
    assert fname(new) in names and len(names) == 31
    assert fresh_emu.count(P) == 2


def test_expired_cursor_restarts_the_walk_once(mount, fresh_emu):
    conns = fresh_emu.generate(P, 250, seed=7)
    fresh_emu.inject(P, "invalid_token", count=1)
    m = mount(ps())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c) for c in conns)
    assert [r["status"] for r in fresh_emu.requests(P)] == \
        [200, 404, 200, 200, 200]
    assert "restarting the listing once" in m.logs()


def test_cursor_refused_again_after_restart_is_eio(mount, fresh_emu):
    fresh_emu.generate(P, 250, seed=7)
    fresh_emu.inject(P, "invalid_token", count=100)
    m = mount(ps())
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EIO
    assert [r["status"] for r in fresh_emu.requests(P)] == [200, 404, 200, 404]


def test_repeated_cursor_stops_the_walk(mount, fresh_emu):
    fresh_emu.generate(P, 30, seed=7)
    fresh_emu.inject(P, "cursor_loop", count=100)
    m = mount(ps(page_size="10"))
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EIO
    assert fresh_emu.count(P) == 2
    assert "pagination loop" in m.logs()


def test_endless_cursors_stop_at_max_pages(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=7)
    fresh_emu.inject(P, "endless", count=1)
    m = mount(ps(page_size="10", max_pages="5"))
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EIO
    assert fresh_emu.count(P) == 5
    assert "after 5 pages (max_pages)" in m.logs()


@pytest.mark.parametrize("fault", ["http401", "http403"])
def test_auth_failure_is_eacces_without_retry(mount, fresh_emu, fault):
    fresh_emu.generate(P, 5, seed=1)
    fresh_emu.inject(P, fault, count=100)
    m = mount(ps())
    with pytest.raises(PermissionError):
        os.listdir(m.path(P))
    assert fresh_emu.count(P) == 1
    assert os.listdir(m.dir) == [P]


def test_wrong_key_is_eacces_and_never_logged(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    m = mount(ps(), env={"PERSONA_API_KEY": "persona_wrong_key_5150"})
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EACCES
    assert [r["status"] for r in fresh_emu.requests(P)] == [401]
    assert "Token is invalid" in m.logs()
    assert "persona_wrong_key_5150" not in m.logs() + m.output()


def test_transient_500s_are_retried(mount, fresh_emu):
    conns = fresh_emu.generate(P, 20, seed=1)
    fresh_emu.inject(P, "http500", count=2)
    m = mount(ps())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c) for c in conns)
    assert [r["status"] for r in fresh_emu.requests(P)] == [500, 500, 200]


def test_429_waits_for_ratelimit_reset_seconds(mount, fresh_emu):
    conns = fresh_emu.generate(P, 20, seed=1)
    fresh_emu.inject(P, "http429", count=1)
    m = mount(ps())
    assert len(os.listdir(m.path(P))) == len(conns)
    recs = fresh_emu.requests(P)
    assert [r["status"] for r in recs] == [429, 200]
    # RateLimit-Reset counts seconds to the reset (no Retry-After).
    assert recs[1]["time"] - recs[0]["time"] >= 0.9


def test_failed_refresh_keeps_the_last_good_listing(mount, fresh_emu):
    fresh_emu.generate(P, 40, seed=6)
    m = mount(ps(ttl="1", refresh_ahead="0"))
    before = sorted(os.listdir(m.path(P)))
    with open(m.path(P, before[0]), "rb") as f:
        content = f.read()
    fresh_emu.add_connection(P, conn("cxn_NotSeen0000001"))
    fresh_emu.inject(P, "wrong_shape", count=50)
    time.sleep(1.2)                             # past the TTL
    # Served at once; the one walk this read starts fails behind it.
    assert sorted(os.listdir(m.path(P))) == before
    wait_walked(m, P, 2)
    wait_for(lambda: dir_status(m, P)["stale"], what="the failed refresh")
    assert fresh_emu.count(P) == 2
    assert sorted(os.listdir(m.path(P))) == before
    with open(m.path(P, before[0]), "rb") as f:
        assert f.read() == content
    assert "keeping the last good listing" in m.logs()
