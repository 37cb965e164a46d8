"""All five providers in one mount, populated from tests/data/sample.json:
the root, cross-provider grep, whole-mount backups, and failures that stay
within one provider directory."""

import errno
import os
import subprocess
import threading
import time

import pytest

from conftest import (ROOT, SECRETS, dir_status, part, tar_round_trip,
                      wait_for, wait_walked)

SAMPLE = os.path.join(ROOT, "tests", "data", "sample.json")
FIVE = ["activecampaign", "eventbridge", "nango", "persona", "workato"]
FOUR = ["activecampaign", "nango", "persona", "workato"]
NEEDLE = "needle-8d1f-only-here"


def sections(names=FIVE, **keys):
    out = {}
    for p in names:
        out[p] = dict(keys)
        if p == "eventbridge":
            out[p]["region"] = "us-east-1"
    return out


def fname(provider, c):
    if provider == "eventbridge":
        stem = part(c["Name"])
    elif provider in ("activecampaign", "workato"):
        stem = "%s~%s" % (part(c.get("name") or ""), part(str(c["id"])))
    elif provider == "nango":
        stem = "%s~%s" % (part(c["provider_config_key"]),
                          part(c["connection_id"]))
    else:
        stem = part(c["id"])
    return stem + ".json"


def load_sample(emu):
    """sample.json, with NEEDLE in exactly one connection per provider.

    Returns {provider: the file name of that connection}."""
    emu.load(SAMPLE)
    where = {}
    for p, index in (("eventbridge", 0), ("activecampaign", 3), ("nango", 0),
                     ("persona", 2), ("workato", 0)):
        conns = emu.connections(p)
        c = conns[index]
        if p == "eventbridge":
            c["StateReason"] = "see " + NEEDLE
        elif p == "activecampaign":
            c["linkUrl"] = "https://shop.example/" + NEEDLE
        elif p == "nango":
            c["metadata"] = {"note": NEEDLE}
        elif p == "persona":
            c["attributes"]["x-note"] = NEEDLE
        else:
            assert c["parent_id"] is None
            c["description"] = NEEDLE
        emu.set_connections(p, conns)
        where[p] = fname(p, c)
    return where


def in_parallel(fn, names):
    """{name: fn(name)} (or the exception it raised), all at once."""
    results = {}

    def run(n):
        try:
            results[n] = fn(n)
        except OSError as e:
            results[n] = e

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_root_shows_the_five_directories_and_grep_finds_one_each(
        mount, fresh_emu):
    where = load_sample(fresh_emu)
    m = mount(sections())
    assert sorted(os.listdir(m.dir)) == FIVE
    ls = subprocess.run(["ls", m.dir], check=True, capture_output=True,
                        text=True).stdout.split()
    assert ls == FIVE
    out = subprocess.run(["grep", "-rl", NEEDLE, m.dir], check=True,
                         capture_output=True, text=True).stdout
    assert sorted(out.splitlines()) == sorted(
        m.path(p, f) for p, f in where.items())
    for p in FIVE:
        assert fresh_emu.count(p) == 1
    # No credential ever reaches a file.
    for s in SECRETS:
        r = subprocess.run(["grep", "-rlF", s, m.dir], capture_output=True)
        assert r.returncode == 1 and r.stdout == b""


def test_every_sample_connection_is_a_file(mount, fresh_emu):
    load_sample(fresh_emu)
    m = mount(sections())
    for p in FIVE:
        conns = fresh_emu.connections(p)
        if p == "workato":
            conns = [c for c in conns if c.get("parent_id") is None]
        assert sorted(os.listdir(m.path(p))) == sorted(
            fname(p, c) for c in conns), p


def test_whole_mount_backups_round_trip(mount, fresh_emu, tmp_path):
    load_sample(fresh_emu)
    m = mount(sections())
    out = tar_round_trip(m, tmp_path)
    assert sorted(os.listdir(out)) == FIVE
    dest = str(tmp_path / "rsync") + "/"
    subprocess.run(["rsync", "-a", m.dir + "/", dest], check=True)
    again = subprocess.run(["rsync", "-a", "-i", m.dir + "/", dest],
                           check=True, capture_output=True, text=True)
    assert again.stdout.strip() == ""
    subprocess.run(["diff", "-r", m.dir, dest], check=True)
    for p in FIVE:
        assert fresh_emu.count(p) == 1


def test_one_failing_provider_leaves_the_others_alone(mount, fresh_emu):
    load_sample(fresh_emu)
    fresh_emu.inject("nango", "http403", count=100)
    m = mount(sections())
    assert sorted(os.listdir(m.dir)) == FIVE
    for p in FIVE:
        if p == "nango":
            with pytest.raises(PermissionError):
                os.listdir(m.path(p))
        else:
            assert len(os.listdir(m.path(p))) > 5
    out = subprocess.run(["grep", "-rl", NEEDLE, m.dir], capture_output=True,
                         text=True)
    assert out.returncode == 2          # grep reports the unreadable dir
    assert len(out.stdout.splitlines()) == 4


FAULTS = {"activecampaign": "http500", "nango": "http502",
          "persona": "http503", "workato": "http504"}


def test_server_errors_with_nothing_cached_are_eio_after_bounded_retries(
        mount, fresh_emu):
    load_sample(fresh_emu)
    for p, fault in FAULTS.items():
        fresh_emu.inject(p, fault, count=100)
    m = mount(sections(FOUR))
    results = in_parallel(lambda p: os.listdir(m.path(p)), FOUR)
    for p in FOUR:
        assert isinstance(results[p], OSError), (p, results[p])
        assert results[p].errno == errno.EIO, (p, results[p])
        assert 1 < fresh_emu.count(p) <= 6, p
    assert sorted(os.listdir(m.dir)) == FOUR


def test_server_errors_on_refresh_keep_every_last_good_listing(mount,
                                                               fresh_emu):
    load_sample(fresh_emu)
    # refresh_ahead 0: the only refresh is the one a reader starts.
    m = mount(sections(FOUR, ttl="1", refresh_ahead="0"))
    before = in_parallel(lambda p: sorted(os.listdir(m.path(p))), FOUR)
    for p, fault in FAULTS.items():
        fresh_emu.inject(p, fault, count=100)
    time.sleep(1.2)                             # past the TTL
    # Each reader gets the expired listing at once and starts one walk.
    after = in_parallel(lambda p: sorted(os.listdir(m.path(p))), FOUR)
    assert after == before
    for p in FOUR:
        wait_walked(m, p, 2)
        wait_for(lambda: dir_status(m, p)["stale"], what=p + " stale")
        assert 2 < fresh_emu.count(p) <= 7, p
    # (A read a second after the failure may start the next walk: the
    # counts are taken before.)
    after = in_parallel(lambda p: sorted(os.listdir(m.path(p))), FOUR)
    assert after == before
    logs = m.logs()
    for p in FOUR:
        assert any(line.startswith("connfs[") and (" %s:" % p) in line and
                   "keeping the last good listing" in line
                   for line in logs.splitlines()), p
