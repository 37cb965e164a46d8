"""Nango end to end: page-number paging without a total, a strict server,
hostile connection ids, filters, backups, cache lifetime and errors."""

import errno
import json
import math
import os
import subprocess
import time

import pytest

from conftest import (BINARY, daemon_env, dir_status, part, epoch_ns,
                      tar_round_trip, rsync_twice, wait_for, wait_listdir,
                      wait_walked)

P = "nango"
ALLOWED = {"limit", "page", "integrationId", "search"}


def ng(**keys):
    return {P: dict(keys)}


# --- expectations, computed independently of connfs ------------------------


def fname(c):
    """`provider_config_key~connection_id.json`."""
    return "%s~%s.json" % (part(c["provider_config_key"]),
                           part(c["connection_id"]))


def name_hash(a, b):
    """The 64-bit FNV-1a style hash behind `~<16 hex>` suffixes."""
    mask, prime = (1 << 64) - 1, 1099511628211
    h = 1469598103934665603
    for ch in a.encode():
        h = ((h ^ ch) * prime) & mask
    h = (h * prime) & mask
    for ch in b.encode():
        h = ((h ^ ch) * prime) & mask
    return h


def tagged(stem, ident):
    return "%s~%016x.json" % (stem, name_hash("id", str(ident)))


def names(conns):
    """{file name: object}: identical names all get `~<hash of id>`."""
    raw = [fname(c) for c in conns]
    out = {}
    for n, c in zip(raw, conns):
        out[tagged(n[:-5], c["id"]) if raw.count(n) > 1 else n] = c
    return out


def expected_requests(n, limit, concurrency):
    """Page 0 alone, then windows of `concurrency` pages until a window
    holds a short page (page n // limit is the first short one)."""
    first_short = n // limit
    if first_short == 0:
        return 1
    return 1 + concurrency * math.ceil(first_short / concurrency)


def conn(ident, cid, pck="hubspot-prod", **extra):
    obj = {
        "id": ident, "connection_id": cid, "provider_config_key": pck,
        "provider": pck.split("-")[0], "errors": [], "end_user": None,
        "tags": {"organization_id": "org-%d" % (ident % 5)},
        "metadata": None,
        "created": "2025-02-14T09:30:00.%06d+00:00" % (ident % 1000000),
    }
    obj.update(extra)
    return obj


def strict_ok(emu):
    """connfs never trips Nango's strict validation or its 415."""
    for r in emu.requests(P):
        assert r["status"] not in (400, 415), r
        assert "content-type" not in r["headers"], r
        for k in r["params"]:
            assert k in ALLOWED or (k.startswith("tags[") and
                                    k.endswith("]")), k
            assert len(r["params"][k]) == 1, k


def pages(emu):
    return sorted(int(r["params"]["page"][0]) for r in emu.requests(P))


def use_everything(d, tmp_path):
    """ls -l, stat, cat, grep -r, find and tar of every file in d."""
    names = os.listdir(d)
    paths = [os.path.join(d, n) for n in names]
    subprocess.run(["ls", "-l", d], check=True, stdout=subprocess.DEVNULL)
    for p in paths:
        os.stat(p)
    subprocess.run(["cat"] + paths, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["grep", "-rq", "connection_id", d], check=True)
    subprocess.run(["find", d, "-type", "f"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["tar", "cf", str(tmp_path / "t.tar"), "-C", d, "."],
                   check=True)
    return names


# --- counts ------------------------------------------------------------------

@pytest.mark.parametrize("n,limit,conc", [
    (0, None, 4), (5, 10, 4), (10, 10, 4), (25, 10, 4), (45, 10, 2),
    (50, 10, 2), (61, 10, 3), (2500, None, 4),
])
def test_page_walk_costs_what_the_window_rule_implies(mount, fresh_emu, n,
                                                      limit, conc):
    fresh_emu.generate(P, n, seed=3)
    keys = {"concurrency": str(conc)}
    if limit:
        keys["page_size"] = str(limit)
    m = mount(ng(**keys))
    out = subprocess.run("ls %s | wc -l" % m.path(P), shell=True, check=True,
                         capture_output=True, text=True)
    assert int(out.stdout) == n
    want = expected_requests(n, limit or 2000, conc)
    assert fresh_emu.count(P) == want
    assert pages(fresh_emu) == list(range(want))
    assert {r["params"]["limit"][0] for r in fresh_emu.requests(P)} == \
        {str(limit or 2000)}
    strict_ok(fresh_emu)


def test_everything_within_the_ttl_costs_nothing(mount, fresh_emu, tmp_path):
    fresh_emu.generate(P, 300, seed=8)
    m = mount(ng())
    assert len(use_everything(m.path(P), tmp_path)) == 300
    assert fresh_emu.count(P) == 1
    assert len(use_everything(m.path(P), tmp_path)) == 300
    assert fresh_emu.count(P) == 1


def test_pages_after_the_first_are_fetched_concurrently(mount, fresh_emu):
    fresh_emu.generate(P, 45, seed=4)
    latency = 0.3
    fresh_emu.set_latency(P, latency * 1000)
    m = mount(ng(page_size="10", concurrency="4"))
    assert len(os.listdir(m.path(P))) == 45
    recs = sorted(fresh_emu.requests(P), key=lambda r: r["time"])
    assert recs[0]["params"]["page"] == ["0"] and len(recs) == 5
    rest = [r["time"] for r in recs[1:]]
    assert any(b < a + latency for a, b in zip(rest, rest[1:]))


# --- content -----------------------------------------------------------------

def test_files_are_the_api_objects_with_exact_sizes(mount, fresh_emu):
    conns = fresh_emu.generate(P, 200, seed=9)
    m = mount(ng())
    want = names(conns)
    assert len(want) == 200
    # The generator lists some connection ids twice in one integration.
    assert len({fname(c) for c in conns}) < 200
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
        # created: +00:00 with 1-6 fractional digits, to the microsecond
        assert st.st_mtime_ns == epoch_ns(want[f]["created"]), f
    assert fresh_emu.count(P) == 1
    strict_ok(fresh_emu)


def test_mtime_accepts_z_and_offsets(mount, fresh_emu):
    conns = [conn(1, "z", created="2023-06-03T14:53:22.051Z"),
             conn(2, "off", created="2024-05-01T14:34:56.5+02:00"),
             conn(3, "nofrac", created="2024-05-01T12:34:56+00:00")]
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    for c in conns:
        assert os.stat(m.path(P, fname(c))).st_mtime_ns == \
            epoch_ns(c["created"])
    assert os.stat(m.path(P, fname(conns[1]))).st_mtime_ns == \
        1714566896500000000


def test_hostile_connection_ids(mount, fresh_emu):
    conns = [
        conn(1, "acme/eu-west hubspot"),
        conn(2, "it's \"quoted\""),
        conn(3, "a/b/../c", "linear"),
        conn(4, "..", "jira"),
        conn(5, ".env"),
        conn(6, "-rf --no-preserve-root"),
        conn(7, "back\\slash|pipe@host:1;a=b+c~d,e", "google:drive"),
        conn(8, "zendesk tenant 42", "zendesk~support"),
        conn(9, "café-zürich", "notion@eu"),
        conn(10, "spaces {braces} [x]|$@", "salesforce prod"),
        conn(11, "100%", "hubspot-prod"),
    ]
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    files = sorted(os.listdir(m.path(P)))
    assert files == sorted(fname(c) for c in conns)
    for name in ["hubspot-prod~acme%2Feu-west hubspot.json",
                 "hubspot-prod~it's \"quoted\".json",
                 "linear~a%2Fb%2F..%2Fc.json", "jira~%2E..json",
                 "hubspot-prod~%2Eenv.json",
                 "hubspot-prod~%2Drf --no-preserve-root.json",
                 "google:drive~back\\slash|pipe@host:1;a=b+c%7Ed,e.json",
                 "zendesk%7Esupport~zendesk tenant 42.json",
                 "notion@eu~café-zürich.json",
                 "salesforce prod~spaces {braces} [x]|$@.json",
                 "hubspot-prod~100%25.json"]:
        assert name in files
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f) == c
    strict_ok(fresh_emu)


def test_same_connection_id_in_two_integrations(mount, fresh_emu):
    conns = [conn(90412, "acme/eu-west hubspot", "hubspot-prod"),
             conn(90377, "acme/eu-west hubspot", "hubspot-sandbox"),
             conn(90500, "it's \"quoted\"", "hubspot-prod"),
             conn(90501, "it's \"quoted\"", "github-app")]
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    assert sorted(os.listdir(m.path(P))) == sorted([
        "hubspot-prod~acme%2Feu-west hubspot.json",
        "hubspot-sandbox~acme%2Feu-west hubspot.json",
        "hubspot-prod~it's \"quoted\".json",
        "github-app~it's \"quoted\".json"])
    for c in conns:
        with open(m.path(P, fname(c))) as f:
            assert json.load(f)["id"] == c["id"]


def test_identical_names_all_get_the_id_hash(mount, fresh_emu):
    # Two rows the API lists under the same (integration, connection id).
    conns = [conn(501, "dup"), conn(502, "dup"), conn(503, "other")]
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    stem = "hubspot-prod~dup"
    want = sorted([tagged(stem, 501), tagged(stem, 502),
                   "hubspot-prod~other.json"])
    assert sorted(os.listdir(m.path(P))) == want
    with open(m.path(P, tagged(stem, 502))) as f:
        assert json.load(f) == conns[1]


def test_overlong_name_is_cut_and_tagged(mount, fresh_emu):
    long_id = "x" * 255                      # Nango allows up to 255
    c = conn(77, long_id)
    fresh_emu.set_connections(P, [c])
    m = mount(ng())
    stem = ("hubspot-prod~" + long_id)[:255 - 5 - 17]
    assert os.listdir(m.path(P)) == [tagged(stem, 77)]
    assert len(tagged(stem, 77).encode()) == 255
    with open(m.path(P, tagged(stem, 77))) as f:
        assert json.load(f) == c


def test_lone_surrogate_in_one_object_does_not_hide_the_listing(mount,
                                                                 fresh_emu):
    conns = [conn(1, "ok-1"), conn(2, "ok-2"),
             conn(3, "bad", end_user={"id": "u1", "email": None,
                                      "display_name": "broken \udcff",
                                      "tags": None, "organization": None})]
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    assert len(os.listdir(m.path(P))) == 3


# --- filters -----------------------------------------------------------------

def test_integration_filter_is_a_comma_list(mount, fresh_emu):
    conns = fresh_emu.generate(P, 150, seed=12)
    m = mount(ng(integration="hubspot-prod,salesforce prod"))
    want = set(names([c for c in conns if c["provider_config_key"] in
                      ("hubspot-prod", "salesforce prod")]))
    assert want and len(want) < 150
    assert set(os.listdir(m.path(P))) == want
    (req,) = fresh_emu.requests(P)
    assert req["params"] == {"limit": ["2000"], "page": ["0"],
                             "integrationId": ["hubspot-prod,salesforce prod"]}
    strict_ok(fresh_emu)


def test_tag_and_search_filters_reach_the_api(mount, fresh_emu):
    conns = fresh_emu.generate(P, 150, seed=13)
    # Tags must all match: only conns[3] has both.
    conns[3]["tags"].update({"team/name.x": "platform",
                             "organization_id": "org-x"})
    conns[4]["tags"].update({"team/name.x": "platform"})
    conns[5]["tags"].update({"organization_id": "org-x"})
    fresh_emu.set_connections(P, conns)
    m = mount({"acme": {"type": P, "tags.Organization_ID": "org-acme"},
               "team": {"type": P, "tags.team/name.x": "platform",
                        "tags.organization_id": "org-x"},
               "search": {"type": P, "search": "GLOBEX"}})
    acme = set(names([c for c in conns
                      if c["tags"].get("organization_id") == "org-acme"]))
    assert acme and len(acme) < 150
    assert set(os.listdir(m.path("acme"))) == acme
    assert os.listdir(m.path("team")) == [fname(conns[3])]

    def found(c):
        eu = c["end_user"] or {}
        return any("globex" in (v or "").lower() for v in
                   (c["connection_id"], eu.get("display_name"),
                    eu.get("email")))
    search = set(names([c for c in conns if found(c)]))
    assert search and len(search) < 150
    assert set(os.listdir(m.path("search"))) == search
    params = [r["params"] for r in fresh_emu.requests(P)]
    assert {"limit": ["2000"], "page": ["0"],
            "tags[organization_id]": ["org-acme"]} in params
    assert {"limit": ["2000"], "page": ["0"],
            "tags[team/name.x]": ["platform"],
            "tags[organization_id]": ["org-x"]} in params
    assert {"limit": ["2000"], "page": ["0"], "search": ["GLOBEX"]} in params
    strict_ok(fresh_emu)


def test_filters_apply_to_every_page(mount, fresh_emu):
    conns = fresh_emu.generate(P, 400, seed=14)
    m = mount(ng(integration="hubspot-prod", page_size="10",
                 concurrency="2", rate="0"))
    want = set(names([c for c in conns
                      if c["provider_config_key"] == "hubspot-prod"]))
    assert set(os.listdir(m.path(P))) == want
    assert fresh_emu.count(P) == expected_requests(len(want), 10, 2)
    assert all(r["params"]["integrationId"] == ["hubspot-prod"]
               for r in fresh_emu.requests(P))
    strict_ok(fresh_emu)


def test_sections_are_separate_directories(mount, fresh_emu):
    conns = fresh_emu.generate(P, 80, seed=2)
    m = mount({P: {}, "jira": {"type": P, "integration": "jira"}})
    assert sorted(os.listdir(m.dir)) == ["jira", P]
    assert len(os.listdir(m.path(P))) == 80
    assert set(os.listdir(m.path("jira"))) == set(names(
        [c for c in conns if c["provider_config_key"] == "jira"]))
    assert fresh_emu.count(P) == 2


@pytest.mark.parametrize("line,needle", [
    ("tags.1bad = x", "[nango] tags.1bad: '1bad' is not a valid tag key"),
    ("tags.ok =", "[nango] tags.ok: must be 1-255 characters"),
    ("search =", "[nango] search: must be 1-255 characters"),
])
def test_bad_filters_fail_before_mounting(tmp_path, fresh_emu, line, needle):
    cfg = tmp_path / "c.conf"
    cfg.write_text("[nango]\nurl = %s\n%s\n" % (fresh_emu.url, line))
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir()
    r = subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, str(mnt)],
                       env=daemon_env(tmp_path), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert fresh_emu.count(P) == 0


# --- backups -----------------------------------------------------------------

def test_tar_round_trip_is_byte_identical(mount, fresh_emu, tmp_path):
    conns = fresh_emu.generate(P, 250, seed=6)
    conns[0]["connection_id"] = "acme/eu-west hubspot"
    conns[1]["connection_id"] = "it's \"quoted\""
    conns[2]["connection_id"] = ".hidden"
    fresh_emu.set_connections(P, conns)
    m = mount(ng())
    out = tar_round_trip(m, tmp_path)
    assert sorted(os.listdir(out / P)) == sorted(names(conns))
    assert fresh_emu.count(P) == 1


def test_rsync_twice_transfers_nothing_the_second_time(mount, fresh_emu,
                                                       tmp_path):
    conns = fresh_emu.generate(P, 120, seed=11)
    m = mount(ng())
    rsync_twice(m, tmp_path, len(conns))
    assert fresh_emu.count(P) == 1


# --- cache lifetime and errors -----------------------------------------------

def test_new_connection_appears_after_ttl(mount, fresh_emu):
    fresh_emu.generate(P, 30, seed=1)
    m = mount(ng(ttl="1", refresh_ahead="0"))
    assert len(os.listdir(m.path(P))) == 30
    new = conn(99999, "added later", created="2030-01-01T00:00:00+00:00")
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
    m = mount(ng())
    with pytest.raises(PermissionError):
        os.listdir(m.path(P))
    assert fresh_emu.count(P) == 1
    assert os.listdir(m.dir) == [P]


@pytest.mark.parametrize("key,code", [
    ("not-a-uuid-secret", "invalid_secret_key_format"),
    ("0b5d7c1e-2f3a-4b6c-8d9e-0a1b2c3d4e5f", "unknown_account"),
])
def test_wrong_secret_key_is_eacces_and_never_logged(mount, fresh_emu, key,
                                                     code):
    fresh_emu.generate(P, 5, seed=1)
    m = mount(ng(), env={"NANGO_SECRET_KEY": key})
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EACCES
    assert [r["status"] for r in fresh_emu.requests(P)] == [401]
    assert code in m.logs()
    assert key not in m.logs() + m.output()


def test_transient_500s_are_retried(mount, fresh_emu):
    conns = fresh_emu.generate(P, 20, seed=1)
    fresh_emu.inject(P, "http500", count=2)
    m = mount(ng())
    assert sorted(os.listdir(m.path(P))) == sorted(names(conns))
    assert [r["status"] for r in fresh_emu.requests(P)] == [500, 500, 200]


def test_429_waits_for_the_reset_and_succeeds(mount, fresh_emu):
    conns = fresh_emu.generate(P, 20, seed=1)
    fresh_emu.inject(P, "http429", count=1)
    m = mount(ng())
    assert len(os.listdir(m.path(P))) == len(conns)
    recs = fresh_emu.requests(P)
    assert [r["status"] for r in recs] == [429, 200]
    # Retry-After: 1 (and X-RateLimit-Reset one second ahead) were honoured.
    assert recs[1]["time"] - recs[0]["time"] >= 0.9


def test_endless_paging_stops_at_max_pages(mount, fresh_emu):
    fresh_emu.generate(P, 5, seed=1)
    fresh_emu.inject(P, "endless", count=1)      # every page comes back full
    m = mount(ng(page_size="10", concurrency="2", max_pages="6"))
    with pytest.raises(OSError) as exc:
        os.listdir(m.path(P))
    assert exc.value.errno == errno.EIO
    assert 1 < fresh_emu.count(P) <= 6
    assert "max_pages (6)" in m.logs()
    strict_ok(fresh_emu)


def test_max_pages_counts_pages_not_windows(mount, fresh_emu):
    conns = fresh_emu.generate(P, 25, seed=1)      # pages 0, 1, 2 (short)
    m = mount(ng(page_size="10", concurrency="4", max_pages="3"))
    assert sorted(os.listdir(m.path(P))) == sorted(names(conns))
    assert fresh_emu.count(P) <= 3


def test_failed_refresh_keeps_the_last_good_listing(mount, fresh_emu):
    fresh_emu.generate(P, 40, seed=6)
    m = mount(ng(ttl="1", refresh_ahead="0"))
    before = sorted(os.listdir(m.path(P)))
    with open(m.path(P, before[0]), "rb") as f:
        content = f.read()
    fresh_emu.add_connection(P, conn(424242, "not seen"))
    fresh_emu.inject(P, "http403", count=50)
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
