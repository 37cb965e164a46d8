"""Workato end to end: one unpaged request for any number of connections,
exact bytes, duplicate names, filters, backups, cache lifetime and errors."""

import errno
import json
import os
import subprocess
import time

import pytest

from emulator.base import RawFloat, dumps
from conftest import (BINARY, daemon_env, dir_status, part, epoch_ns,
                      tar_round_trip, rsync_twice, wait_for, wait_listdir,
                      wait_walked)

P = "workato"


def wk(**keys):
    return {P: dict(keys)}


# --- expectations, computed independently of connfs ------------------------


def fname(c):
    """`name~id.json`."""
    return "%s~%d.json" % (part(c.get("name") or ""), c["id"])


def top(conns):
    """What the API lists without include_runtime_connections."""
    return [c for c in conns if c.get("parent_id") is None]


def conn(ident, name, parent=None, **extra):
    obj = {
        "id": ident, "application": "salesforce", "name": name,
        "description": None, "authorized_at": "2024-10-02T07:31:18.402Z",
        "authorization_status": "success", "authorization_error": None,
        "created_at": "2023-03-15T12:00:41.117Z",
        "updated_at": "2024-10-02T07:31:18.409Z", "external_id": None,
        "folder_id": 90211, "connection_lost_at": None,
        "connection_lost_reason": None, "parent_id": parent, "tags": [],
    }
    obj.update(extra)
    return obj


def use_everything(d, tmp_path):
    """ls -l, stat, cat, grep -r, find and tar of every file in d."""
    names = os.listdir(d)
    paths = [os.path.join(d, n) for n in names]
    subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
    for p in paths:
        os.stat(p)
    subprocess.run(["cat"] + paths, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["grep", "-rq", "application", d], check=True)
    subprocess.run(["find", d, "-type", "f"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "cf", str(tmp_path / "t.tar"), "-C", d, "."],
                   check=True)
    return names


# --- counts ------------------------------------------------------------------

def test_five_thousand_connections_cost_one_request(mount, fresh_emu):
    conns = fresh_emu.generate(P, 5000, seed=7)
    m = mount(wk(include_runtime_connections="true"))
    out = subprocess.run("ls %s | wc -l" % m.path(P), shell=True, check=True,
                         capture_output=True, text=True)
    assert int(out.stdout) == 5000
    assert fresh_emu.count(P) == 1
    want = {fname(c): c for c in conns}
    assert len(want) == 5000
    # Names repeat (runtime children share their parent's name).
    assert len({c["name"] for c in conns}) < 100
    files = os.listdir(m.path(P))
    assert sorted(files) == sorted(want)
    for f in files:
        p = m.path(P, f)
        size = os.stat(p).st_size
        with open(p, "rb") as fh:
            data = fh.read()
        assert size == len(data), f
        assert json.loads(data) == want[f]
    assert fresh_emu.count(P) == 1


@pytest.mark.parametrize("n", [0, 1, 300])
def test_any_listing_is_exactly_one_request(mount, fresh_emu, n):
    conns = fresh_emu.generate(P, n, seed=3)
    m = mount(wk())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c)
                                                   for c in top(conns))
    assert fresh_emu.count(P) == 1
    (r,) = fresh_emu.requests(P)
    assert r["path"] == "/api/connections"
    assert r["params"] == {"includes[]": ["tags"]}
    assert r["headers"]["authorization"].startswith("Bearer ")


def test_everything_within_the_ttl_costs_nothing(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 300, seed=8)
    m = mount(wk())
    names = use_everything(m.path(P), tmp_path)
    assert len(names) > 200
    assert fresh_emu.count(P) == 1
    assert len(use_everything(m.path(P), tmp_path)) == len(names)
    assert fresh_emu.count(P) == 1


# --- content -----------------------------------------------------------------

def test_files_are_the_api_objects_with_exact_sizes(mount, fresh_emu):
    conns = top(fresh_emu.generate(P, 200, seed=9))
    del conns[3]["updated_at"]                  # falls back to created_at
    conns[4]["updated_at"] = None
    fresh_emu.set_connections(P, conns)
    m = mount(wk())
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
        c = want[f]
        assert st.st_mtime_ns == epoch_ns(c.get("updated_at") or
                                          c["created_at"]), f
    assert os.stat(m.path(P, fname(conns[4]))).st_mtime_ns == \
        epoch_ns(conns[4]["created_at"])
    assert fresh_emu.count(P) == 1


def test_numbers_keep_the_digits_the_api_wrote(mount, fresh_emu):
    """Ids and values a double cannot carry come out digit for digit (a
    double rounds 2^64 + 1 to 2^64, 2^53 + 1 to 2^53, prints -0 as 0 and
    1e400 as null): two ids that differ past 2^53 stay two files."""
    big = 2 ** 64 + 1
    odd = [2 ** 53 + 1, 12345678901234567890, RawFloat("-0"),
           RawFloat("1.10"), RawFloat("1e400"), RawFloat("0.1e-5")]
    conns = [conn(big, "Big", counts=odd, total=RawFloat("2.50E+3")),
             conn(big - 1, "Big")]
    fresh_emu.set_connections(P, conns)
    m = mount(wk())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c) for c in conns)
    with open(m.path(P, fname(conns[0]))) as f:
        text = f.read()
    assert '\t"id":\t18446744073709551617,\n' in text
    assert ('\t"counts":\t[9007199254740993, 12345678901234567890, -0, '
            '1.10, 1e400, 0.1e-5],\n' in text), text
    assert '\t"total":\t2.50E+3\n' in text
    assert '\t"folder_id":\t90211,\n' in text
    assert json.loads(text) == json.loads(dumps(conns[0]))
    with open(m.path(P, fname(conns[1]))) as f:
        assert '\t"id":\t18446744073709551616,\n' in f.read()


def test_hard_names_and_duplicates(mount, fresh_emu):
    conns = [conn(418207, "Salesforce – Production"),
             conn(418233, "Salesforce – Production", parent=418207),
             conn(418230, "Salesforce – Production", parent=418207),
             conn(418220, "Café Zürich – Slack"),
             conn(418240, ".hidden-warehouse"),
             conn(418241, "-dash"),
             conn(418215, "Jira / Cloud: eng"),
             conn(418216, "50% ~ half"),
             conn(418217, ""),
             conn(418218, None),
             conn(418219, "new\nline")]
    fresh_emu.set_connections(P, conns)
    m = mount(wk(include_runtime_connections="true"))
    files = sorted(os.listdir(m.path(P)))
    assert files == sorted(fname(c) for c in conns)
    for name in ["Salesforce – Production~418207.json",
                 "Salesforce – Production~418233.json",
                 "Salesforce – Production~418230.json",
                 "Café Zürich – Slack~418220.json",
                 "%2Ehidden-warehouse~418240.json", "%2Ddash~418241.json",
                 "Jira %2F Cloud: eng~418215.json",
                 "50%25 %7E half~418216.json", "%00~418217.json",
                 "%00~418218.json", "new%0Aline~418219.json"]:
        assert name in files
    visible = subprocess.run(["ls", m.path(P)], check=True,
                             capture_output=True, text=True).stdout
    assert len(visible.splitlines()) == len(conns)
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f) == c


# --- query options -----------------------------------------------------------

def test_include_tags_false_drops_the_includes_parameter(mount, fresh_emu):
    conns = top(fresh_emu.generate(P, 40, seed=10))
    m = mount(wk(include_tags="false"))
    files = os.listdir(m.path(P))
    (r,) = fresh_emu.requests(P)
    assert r["params"] == {}
    assert sorted(files) == sorted(fname(c) for c in conns)
    by_name = {fname(c): c for c in conns}
    for f in files:
        with open(m.path(P, f)) as fh:
            obj = json.load(fh)
        assert "tags" not in obj
        assert obj == {k: v for k, v in by_name[f].items() if k != "tags"}


def test_runtime_connections_only_when_asked(mount, fresh_emu):
    conns = fresh_emu.generate(P, 100, seed=11)
    children = [c for c in conns if c["parent_id"] is not None]
    assert children
    # ("all" is reserved: .connfs/refresh/all refreshes every directory.)
    m = mount({P: {}, "everything": {"type": P,
                                     "include_runtime_connections": "yes"}})
    assert set(os.listdir(m.path(P))) == {fname(c) for c in top(conns)}
    assert set(os.listdir(m.path("everything"))) == {fname(c)
                                                     for c in conns}
    params = sorted((r["params"] for r in fresh_emu.requests(P)), key=len)
    assert params == [{"includes[]": ["tags"]},
                      {"includes[]": ["tags"],
                       "include_runtime_connections": ["true"]}]


def test_folder_and_project_filters(mount, fresh_emu):
    conns = top(fresh_emu.generate(P, 150, seed=12))
    conns[0]["project_id"] = 777
    conns[1]["project_id"] = 777
    fresh_emu.set_connections(P, conns)
    folder = conns[5]["folder_id"]
    m = mount({"folder": {"type": P, "folder_id": str(folder)},
               "project": {"type": P, "project_id": "777"},
               P: {}})
    assert sorted(os.listdir(m.dir)) == ["folder", "project", P]
    want = {fname(c) for c in conns if c["folder_id"] == folder}
    assert 1 < len(want) < len(conns)
    assert set(os.listdir(m.path("folder"))) == want
    assert set(os.listdir(m.path("project"))) == {fname(conns[0]),
                                                  fname(conns[1])}
    assert len(os.listdir(m.path(P))) == len(conns)
    params = [r["params"] for r in fresh_emu.requests(P)]
    assert {"includes[]": ["tags"], "folder_id": [str(folder)]} in params
    assert {"includes[]": ["tags"], "project_id": ["777"]} in params
    assert fresh_emu.count(P) == 3


@pytest.mark.parametrize("line,needle", [
    ("folder_id = abc", "[workato] folder_id:"),
    ("include_tags = maybe", "[workato] include_tags:"),
    ("project_id =", "[workato] project_id: must not be empty"),
])
def test_bad_options_fail_before_mounting(tmp_path, fresh_emu, line, needle):
    cfg = tmp_path / "c.conf"
    cfg.write_text("[workato]\nurl = %s\n%s\n" % (fresh_emu.url, line))
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir()
    r = subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, str(mnt)],
                       env=daemon_env(tmp_path), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr


# --- backups -----------------------------------------------------------------

def test_tar_round_trip_is_byte_identical(mount, fresh_emu, tmp_path):
    conns = fresh_emu.generate(P, 300, seed=6)
    m = mount(wk(include_runtime_connections="true"))
    out = tar_round_trip(m, tmp_path)
    assert len(os.listdir(out / P)) == len(conns)
    assert fresh_emu.count(P) == 1


def test_rsync_twice_transfers_nothing_the_second_time(mount, fresh_emu,
                                                       tmp_path):
    conns = fresh_emu.generate(P, 150, seed=11)
    m = mount(wk(include_runtime_connections="true"))
    rsync_twice(m, tmp_path, len(conns))
    assert fresh_emu.count(P) == 1


# --- cache lifetime and errors -----------------------------------------------

def test_new_connection_appears_after_ttl(mount, fresh_emu):
    conns = top(fresh_emu.generate(P, 30, seed=1))
    m = mount(wk(ttl="1", refresh_ahead="0"))
    assert len(os.listdir(m.path(P))) == len(conns)
    new = conn(999001, "Added – Later")
    fresh_emu.add_connection(P, new)
    assert fname(new) not in os.listdir(m.path(P))
    time.sleep(1.3)                             # past the TTL
    # The reader gets the expired listing at once and starts one walk ...
    assert len(os.listdir(m.path(P))) == len(conns)
    wait_walked(m, P, 2)
    # ... whose result is served once it is done (no further request).
    names = wait_listdir(m.path(P), lambda ns: len(ns) != len(conns))
    assert fname(new) in names and len(names) == len(conns) + 1
    assert fresh_emu.count(P) == 2


@pytest.mark.parametrize("fault", ["http401", "http403"])
def test_auth_failure_is_eacces_without_retry(mount, fresh_emu, fault):
    fresh_emu.generate(P, 5, seed=1)
    fresh_emu.inject(P, fault, count=100)
    m = mount(wk())
    with pytest.raises(PermissionError):
        os.listdir(m.path(P))
    assert fresh_emu.count(P) == 1
    assert os.listdir(m.dir) == [P]


def test_wrong_token_is_eacces_and_never_logged(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    m = mount(wk(), env={"WORKATO_API_TOKEN": "wrk-wrong-token-8086"})
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EACCES
    assert [r["status"] for r in fresh_emu.requests(P)] == [401]
    assert "wrk-wrong-token-8086" not in m.logs() + m.output()


def test_transient_500s_are_retried(mount, fresh_emu):
    conns = top(fresh_emu.generate(P, 20, seed=1))
    fresh_emu.inject(P, "http500", count=2)
    m = mount(wk())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c) for c in conns)
    assert [r["status"] for r in fresh_emu.requests(P)] == [500, 500, 200]


def test_failed_refresh_keeps_the_last_good_listing(mount, fresh_emu):
    fresh_emu.generate(P, 40, seed=6)
    m = mount(wk(ttl="1", refresh_ahead="0"))
    before = sorted(os.listdir(m.path(P)))
    with open(m.path(P, before[0]), "rb") as f:
        content = f.read()
    fresh_emu.add_connection(P, conn(999002, "Not Seen"))
    fresh_emu.inject(P, "invalid_json", count=50)
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
