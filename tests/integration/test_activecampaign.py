"""ActiveCampaign end to end: offset paging costs, exact bytes, names,
filters, backups, cache lifetime and errors."""

import errno
import json
import os
import subprocess
import time

import pytest

from conftest import (BINARY, daemon_env, dir_status, part, epoch_ns,
                      tar_round_trip, rsync_twice, wait_for, wait_listdir,
                      wait_walked)

P = "activecampaign"


def ac(**keys):
    return {P: dict(keys)}


# --- expectations, computed independently of connfs ------------------------


def fname(conn):
    """`name~id.json`."""
    return "%s~%s.json" % (part(conn.get("name") or ""), part(conn["id"]))


def want_mtime_ns(conn):
    return epoch_ns(conn.get("udate") or conn["cdate"])


def conn(ident, name, **extra):
    obj = {
        "service": "shopify", "externalid": "shop-%s.myshopify.com" % ident,
        "name": name, "isInternal": "0", "status": "1", "syncStatus": "0",
        "lastSync": None, "logoUrl": "", "linkUrl": "", "listId": "0",
        "cdate": "2024-01-09T16:02:10-05:00",
        "udate": "2024-06-30T11:20:03-04:00",
        "links": {"customers": "/api/3/connections/%s/customers" % ident},
        "id": str(ident),
    }
    obj.update(extra)
    return obj


def offsets(emu):
    return sorted(int(r["params"]["offset"][0]) for r in emu.requests(P)
                  if r["kind"] == "list")


def use_everything(d, tmp_path):
    """ls -l, stat, cat, grep -r, find and tar of every file in d."""
    names = os.listdir(d)
    paths = [os.path.join(d, n) for n in names]
    subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
    for p in paths:
        os.stat(p)
    subprocess.run(["cat"] + paths, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["grep", "-rq", "connections", d], check=True)
    subprocess.run(["find", d, "-type", "f"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "cf", str(tmp_path / "t.tar"), "-C", d, "."],
                   check=True)
    return names


# --- counts ------------------------------------------------------------------

def test_thousand_connections_cost_ten_requests(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 1000, seed=7)
    m = mount(ac())
    ls = subprocess.run("ls %s | wc -l" % m.path(P), shell=True, check=True,
                        capture_output=True, text=True)
    assert int(ls.stdout) == 1000
    assert fresh_emu.count(P) == 10
    assert offsets(fresh_emu) == list(range(0, 1000, 100))
    assert all(r["params"]["limit"] == ["100"]
               for r in fresh_emu.requests(P))
    # Within the TTL, everything else is served from memory.
    assert len(use_everything(m.path(P), tmp_path)) == 1000
    assert fresh_emu.count(P) == 10


@pytest.mark.parametrize("n,size,pages", [
    (0, 100, 1), (1, 100, 1), (100, 100, 1), (200, 50, 4), (201, 50, 5),
    (99, 10, 10),
])
def test_a_cold_listing_costs_exactly_ceil_n_over_page_size(
        mount, fresh_emu, n, size, pages):
    fresh_emu.generate(P, n, seed=3)
    m = mount(ac(page_size=str(size), rate="0"))
    assert len(os.listdir(m.path(P))) == n
    assert fresh_emu.count(P) == pages
    assert offsets(fresh_emu) == [i * size for i in range(pages)]
    assert all(r["status"] == 200 for r in fresh_emu.requests(P))


def test_pages_after_the_first_are_fetched_concurrently(mount, fresh_emu):
    fresh_emu.generate(P, 50, seed=4)
    latency = 0.3
    fresh_emu.set_latency(P, latency * 1000)
    m = mount(ac(page_size="10", rate="0", concurrency="4"))
    assert len(os.listdir(m.path(P))) == 50
    recs = sorted(fresh_emu.requests(P), key=lambda r: r["time"])
    assert recs[0]["params"]["offset"] == ["0"]
    rest = [r["time"] for r in recs[1:]]
    assert len(rest) == 4
    # A request that arrived before an earlier one could have been
    # answered (the emulator holds each for `latency`) ran concurrently.
    assert any(b < a + latency for a, b in zip(rest, rest[1:]))


def test_rate_limited_account_sees_no_429(mount, fresh_emu):
    fresh_emu.generate(P, 300, seed=5)
    fresh_emu.set_rate_limit(P, True)          # 5 requests/s, token bucket
    m = mount(ac(page_size="10"))
    assert len(os.listdir(m.path(P))) == 300
    statuses = [r["status"] for r in fresh_emu.requests(P)]
    assert len(statuses) == 30
    assert statuses == [200] * 30


# --- content -----------------------------------------------------------------

def test_files_are_the_api_objects_with_exact_sizes(mount, fresh_emu):
    conns = fresh_emu.generate(P, 150, seed=9)
    del conns[10]["udate"]                       # falls back to cdate
    conns[11]["udate"] = None
    fresh_emu.set_connections(P, conns)
    m = mount(ac())
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
        assert st.st_mtime_ns == want_mtime_ns(want[f]), f
    assert os.stat(m.path(P, fname(conns[10]))).st_mtime_ns == \
        epoch_ns(conns[10]["cdate"])
    assert fresh_emu.count(P) == 2


def test_hard_names_are_encoded_and_round_trip(mount, fresh_emu):
    names = ["Café Zürich", "Salesforce – Production", ".env", "-rf",
             "Northwind, Inc. / EU", "100% ~ done", "tab\there", "",
             "東京ストア", "..", "a.b-c", "  spaced  "]
    conns = [conn(i + 1, n) for i, n in enumerate(names)]
    conns.append(conn(99, None))
    fresh_emu.set_connections(P, conns)
    m = mount(ac())
    files = sorted(os.listdir(m.path(P)))
    assert files == sorted(fname(c) for c in conns)
    assert "Café Zürich~1.json" in files
    assert "Salesforce – Production~2.json" in files
    assert "%2Eenv~3.json" in files
    assert "%2Drf~4.json" in files
    assert "Northwind, Inc. %2F EU~5.json" in files
    assert "100%25 %7E done~6.json" in files
    assert "tab%09here~7.json" in files
    assert "%00~8.json" in files
    assert "%00~99.json" in files
    # Nothing is hidden from ls, and every file is the object.
    visible = subprocess.run(["ls", m.path(P)], check=True,
                             capture_output=True, text=True).stdout
    assert len(visible.splitlines()) == len(conns)
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f) == c


def test_duplicate_names_are_distinct_files(mount, fresh_emu):
    conns = [conn(7, "Acme, Inc."), conn(12, "Acme, Inc."),
             conn(3, "Acme, Inc.", service="bigcommerce")]
    fresh_emu.set_connections(P, conns)
    m = mount(ac())
    assert sorted(os.listdir(m.path(P))) == [
        "Acme, Inc.~12.json", "Acme, Inc.~3.json", "Acme, Inc.~7.json"]
    for c in conns:
        with open(m.path(P, "Acme, Inc.~%s.json" % c["id"])) as f:
            assert json.load(f) == c


def test_url_with_api_3_suffix_is_accepted(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    m = mount(ac(url=fresh_emu.url + "/api/3"))
    assert len(os.listdir(m.path(P))) == 5
    assert [r["path"] for r in fresh_emu.requests(P)] == ["/api/3/connections"]


# --- filters -----------------------------------------------------------------

def test_filters_reach_the_api_and_restrict_the_listing(mount, fresh_emu):
    conns = fresh_emu.generate(P, 120, seed=12)
    target = conns[40]["externalid"]
    m = mount({"shops": {"type": P, "service": "shopify"},
               "one": {"type": P, "externalid": target},
               "both": {"type": P, "service": conns[40]["service"],
                        "externalid": target}})
    shops = {fname(c) for c in conns if c["service"] == "shopify"}
    assert shops and len(shops) < 120
    assert set(os.listdir(m.path("shops"))) == shops
    one = {fname(c) for c in conns if c["externalid"] == target}
    assert set(os.listdir(m.path("one"))) == one
    assert set(os.listdir(m.path("both"))) == one
    params = [r["params"] for r in fresh_emu.requests(P)]
    assert len(params) == 3
    assert {"limit": ["100"], "offset": ["0"],
            "filters[service]": ["shopify"]} in params
    assert {"limit": ["100"], "offset": ["0"],
            "filters[externalid]": [target]} in params
    assert {"limit": ["100"], "offset": ["0"],
            "filters[service]": [conns[40]["service"]],
            "filters[externalid]": [target]} in params


def test_sections_are_separate_directories(mount, fresh_emu):
    conns = fresh_emu.generate(P, 60, seed=2)
    m = mount({P: {}, "woo": {"type": P, "service": "woocommerce"}})
    assert sorted(os.listdir(m.dir)) == [P, "woo"]
    assert len(os.listdir(m.path(P))) == 60
    assert set(os.listdir(m.path("woo"))) == {
        fname(c) for c in conns if c["service"] == "woocommerce"}
    assert fresh_emu.count(P) == 2


# --- backups -----------------------------------------------------------------

def test_tar_round_trip_is_byte_identical(mount, fresh_emu, tmp_path):
    conns = fresh_emu.generate(P, 250, seed=6)
    conns[0]["name"] = ".hidden shop"
    conns[1]["name"] = "Café / Zürich"
    fresh_emu.set_connections(P, conns)
    m = mount(ac())
    out = tar_round_trip(m, tmp_path)
    assert len(os.listdir(out / P)) == 250
    assert fresh_emu.count(P) == 3


def test_rsync_twice_transfers_nothing_the_second_time(mount, fresh_emu,
                                                       tmp_path):
    fresh_emu.generate(P, 120, seed=11)
    m = mount(ac())
    rsync_twice(m, tmp_path, 120)
    assert fresh_emu.count(P) == 2


# --- cache lifetime and errors -----------------------------------------------

def test_new_connection_appears_after_ttl(mount, fresh_emu):
    fresh_emu.generate(P, 30, seed=1)
    m = mount(ac(ttl="1", refresh_ahead="0"))
    assert len(os.listdir(m.path(P))) == 30
    new = conn(5000, "Added Later")
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


@pytest.mark.parametrize("fault", ["http401", "http403"])
def test_auth_failure_is_eacces_without_retry(mount, fresh_emu, fault):
    fresh_emu.generate(P, 5, seed=1)
    fresh_emu.inject(P, fault, count=100)
    m = mount(ac())
    with pytest.raises(PermissionError):
        os.listdir(m.path(P))
    assert fresh_emu.count(P) == 1
    # Nothing was cached: the next look asks again (and fails again).
    fresh_emu.reset()
    fresh_emu.inject(P, fault, count=100)
    with pytest.raises(PermissionError):
        os.listdir(m.path(P))
    assert fresh_emu.count(P) == 1
    assert os.listdir(m.dir) == [P]


def test_wrong_token_is_eacces_and_never_logged(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    m = mount(ac(), env={"ACTIVECAMPAIGN_API_TOKEN": "wrong-ac-token-0042"})
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EACCES
    assert fresh_emu.count(P) == 1
    assert "wrong-ac-token-0042" not in m.logs()
    assert all(r["status"] == 403 for r in fresh_emu.requests(P))


def test_transient_500s_are_retried(mount, fresh_emu):
    conns = fresh_emu.generate(P, 20, seed=1)
    fresh_emu.inject(P, "http500", count=2)
    m = mount(ac())
    assert sorted(os.listdir(m.path(P))) == sorted(fname(c) for c in conns)
    assert [r["status"] for r in fresh_emu.requests(P)] == [500, 500, 200]


def test_failed_refresh_keeps_the_last_good_listing(mount, fresh_emu):
    fresh_emu.generate(P, 40, seed=6)
    m = mount(ac(ttl="1", refresh_ahead="0"))
    before = sorted(os.listdir(m.path(P)))
    with open(m.path(P, before[0]), "rb") as f:
        content = f.read()
    fresh_emu.add_connection(P, conn(7777, "Not Seen"))
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


def test_endless_total_is_refused_by_max_pages(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    fresh_emu.inject(P, "endless", count=1)      # meta.total 999999999
    m = mount(ac(max_pages="50"))
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EIO
    assert fresh_emu.count(P) == 1
    assert "more than max_pages (50)" in m.logs()


def test_filter_must_not_be_empty(tmp_path, fresh_emu):
    cfg = tmp_path / "c.conf"
    cfg.write_text("[activecampaign]\nurl = %s\nservice =\n" % fresh_emu.url)
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir()
    r = subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, str(mnt)],
                       env=daemon_env(tmp_path), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert "[activecampaign] service: must not be empty" in r.stderr
