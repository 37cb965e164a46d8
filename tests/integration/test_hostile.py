"""Hostile data from the APIs and hostile input from the user (issue 4).

From the API (emulator/gen.py `hostile()`): names with `/`, `.`, `..`, a
leading `-`, control characters, U+FFFD, lone UTF-16 surrogates, NUL, empty
names, 1,000-byte names, many objects with the same name, 200-deep nesting
and a 1 MB string, on every provider. Every file must get a safe, unique
name that depends only on the connection (not on the order the API lists
it in, nor on page boundaries), every file must hold the object, and
nothing may crash.

From the user: configuration files with bad syntax, wrong types, unknown
keys, a directory or a missing file as config=, token commands that fail,
print nothing or hang, a literal token in a world-readable file, plain
http:// to a remote host: a clear message and a non-zero exit before
mounting. A token command that starts failing after the mount is a logged
error while the last good listing is served.
"""

import errno
import json
import os
import random
import subprocess
import sys
import time

import pytest

from conftest import (BINARY, daemon_env, dir_status, is_mounted,
                      process_gone, wait_for)
from emulator import CREDENTIALS, gen

PROVIDERS = ("eventbridge", "activecampaign", "nango", "persona", "workato")
HOSTILE_N = 60          # 18 patterns, each three times or more


def section(provider, **keys):
    s = {"rate": "0"}
    if provider == "eventbridge":
        s["region"] = "us-east-1"
    s.update({k: str(v) for k, v in keys.items()})
    return {provider: s}


def file_id(provider, obj):
    if provider == "eventbridge":
        return obj["ConnectionArn"]
    return str(obj["id"])


def representable(v):
    """What a C string can hold: NUL and lone surrogates become U+FFFD.

    The JSON parser (providers/json.c) maps the escapes \\u0000 and a
    surrogate without its pair to U+FFFD rather than cutting the string at
    the NUL or rejecting the whole page.
    """
    if isinstance(v, str):
        return "".join("\ufffd" if c == "\x00" or 0xd800 <= ord(c) <= 0xdfff
                       else c for c in v)
    if isinstance(v, dict):
        return {representable(k): representable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [representable(x) for x in v]
    return v


def listed(provider, objs):
    if provider == "workato":       # runtime children are not listed
        objs = [o for o in objs if o.get("parent_id") is None]
    return {file_id(provider, representable(o)): representable(o)
            for o in objs}


def safe(name):
    """name is bytes, as the kernel passes it."""
    assert name not in (b".", b".."), name
    assert b"/" not in name and b"\x00" not in name, name
    assert not any(c < 0x20 or c == 0x7f for c in name), name
    assert len(name) <= 255, (len(name), name[:60])
    assert not name.startswith((b".", b"-")), name
    name.decode("utf-8")            # readable: invalid UTF-8 is encoded
    assert name.endswith(b".json"), name


def check_directory(m, provider, objs):
    """Names safe and unique, one file per id, each holding its object."""
    d = os.fsencode(m.path(provider))
    names = os.listdir(d)
    for n in names:
        safe(n)
    want = listed(provider, objs)
    assert len(names) == len(set(names)) == len(want), \
        "%d files for %d ids" % (len(names), len(want))
    seen = {}
    for n in names:
        with open(os.path.join(d, n), "rb") as f:
            data = f.read()
        assert len(data) == os.stat(os.path.join(d, n)).st_size
        obj = json.loads(data)
        ident = file_id(provider, obj)
        assert ident in want, "unexpected object %r" % ident[:80]
        assert ident not in seen, "%r in %s and %s" % (ident, seen.get(ident), n)
        seen[ident] = n
        expect = want[ident]
        if provider == "workato" and "tags" not in obj:
            expect = {k: v for k, v in expect.items() if k != "tags"}
        assert obj == expect, "content of %r" % n
    return sorted(names)


def page_size(emu, provider, objs, candidates):
    """The first size whose page-ending objects can serve as cursors.

    Persona's cursor is the last id of a page, sent back percent-encoded
    in the query. An id holding a lone surrogate cannot be percent-encoded
    (the emulator answers 500), one holding NUL cannot survive a C string,
    and an empty one is no cursor at all (connfs refuses the page); real
    Persona ids are cxn_ + letters and digits. So the page boundaries are
    placed next to, not on, those three patterns.
    """
    if provider != "persona":
        return candidates[0]
    order = sorted(objs, key=emu.providers[provider].sort_key)
    for size in candidates:
        # The last of each page but the last, the first of each but the
        # first (the emulator builds `links.prev` from it).
        edges = order[size - 1:len(order) - 1:size] + order[size::size]
        if all(o["id"] and representable(o["id"]) == o["id"]
               for o in edges):
            return size
    raise AssertionError("no usable page size in %r" % (candidates,))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_hostile_names_are_safe_unique_stable_and_order_free(
        mount, fresh_emu, provider):
    objs = gen.hostile(provider, HOSTILE_N)
    fresh_emu.set_connections(provider, objs)
    # Small pages: Persona's cursors are hostile ids, and the page
    # boundaries fall between hostile objects.
    m = mount(section(provider, page_size=page_size(
        fresh_emu, provider, objs, range(7, 60)))
        if provider != "workato" else section(provider))
    first = check_directory(m, provider, objs)
    assert m.unmount() == 0

    # The same data again: the same names.
    m = mount(section(provider))
    assert check_directory(m, provider, objs) == first
    assert m.unmount() == 0

    # Another API order, other page boundaries, pages arriving in
    # another order (concurrency): still the same names. The emulator
    # sorts as each API does (by name, id or creation time), so for the
    # providers that list newest first the creation times are shuffled
    # too; names never depend on them.
    rnd = random.Random(11)
    shuffled = [dict(o) for o in objs]
    rnd.shuffle(shuffled)
    if provider == "nango":
        times = [o["created"] for o in shuffled]
        rnd.shuffle(times)
        for o, t in zip(shuffled, times):
            o["created"] = t
    if provider == "persona":
        times = [o["attributes"]["created-at"] for o in shuffled]
        rnd.shuffle(times)
        for o, t in zip(shuffled, times):
            o["attributes"] = dict(o["attributes"], **{"created-at": t})
    fresh_emu.set_connections(provider, shuffled)
    keys = {"page_size": 3, "concurrency": 8} \
        if provider in ("activecampaign", "nango") else \
        {"page_size": page_size(fresh_emu, provider, shuffled,
                                range(4, 60))} \
        if provider != "workato" else {}
    m = mount(section(provider, **keys))
    assert check_directory(m, provider, shuffled) == first
    assert os.listdir(m.dir) == [provider]


def test_absurd_nesting_is_refused_without_a_crash(mount, fresh_emu):
    """Nesting past the parser's limit (1,000): an error, no crash."""
    objs = gen.generate("workato", 3, seed=1)
    deep = gen.make("workato", 99)
    v = "bottom"
    for _ in range(3000):
        v = [v]
    deep["x-nested"] = v
    fresh_emu.set_connections("workato", objs + [deep])
    m = mount(section("workato"))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20000)    # the emulator serialises recursively
    try:
        with pytest.raises(OSError) as exc:
            os.listdir(m.path("workato"))
    finally:
        sys.setrecursionlimit(limit)
    assert exc.value.errno == errno.EIO
    assert "workato: bad response" in m.logs()
    # Nothing was cached: without the monster the next look succeeds.
    fresh_emu.remove_connection("workato", deep["id"])
    assert len(os.listdir(m.path("workato"))) == len(
        [o for o in objs if o.get("parent_id") is None])
    assert os.listdir(m.dir) == ["workato"]


# --- hostile user input ------------------------------------------------------

def run_connfs(tmp_path, config=None, mode=0o600, env=None, config_path=None,
               timeout=30):
    if config_path is None:
        config_path = tmp_path / "hostile.conf"
        config_path.write_text(config)
        config_path.chmod(mode)
    mnt = tmp_path / "never"
    mnt.mkdir(exist_ok=True)
    t0 = time.monotonic()
    r = subprocess.run([BINARY, "-f", "-o", "config=%s" % config_path,
                        str(mnt)], env=daemon_env(tmp_path, env),
                       capture_output=True, text=True, timeout=timeout)
    r.elapsed = time.monotonic() - t0
    assert not is_mounted(str(mnt))
    return r, str(config_path)


W = "[workato]\nurl = http://127.0.0.1:9\n"


@pytest.mark.parametrize("config,needle", [
    ("[workato\n", ":1: missing ']' in section header"),
    ("[]\n", ":1: [] is not a usable directory name"),
    ("[.hidden]\ntype = workato\n", "is not a usable directory name"),
    ("[all]\ntype = workato\n", ":1: [all] is a reserved section name"),
    ("just some words\n", ":1: expected 'key = value' or '[section]'"),
    ("\x00\x01\x02binary", "cannot read, or not text"),
    ("# only a comment\n", "no [section]: nothing to mount"),
    (W + "timeout = -1\n", ":3: [workato] timeout: -1 is out of range"),
    (W + "deadline = soon\n", ":3: [workato] deadline: 'soon' is not a number"),
    (W + "ttl = 1e999\n", "[workato] ttl:"),
    (W + "concurrency = 99\n", ":3: [workato] concurrency: 99 is out of range"),
    (W + "max_body_mb = 0\n", ":3: [workato] max_body_mb: 0 is out of range"),
    (W + "max_pages = many\n", ":3: [workato] max_pages:"),
    (W + "rate = fast\n", ":3: [workato] rate: 'fast' is not a rate"),
    (W + "nonsense = 1\n", ":3: [workato] nonsense: unknown key"),
    (W + "token = a\ntoken_file = /x\n", "give only one of token, token_file"),
    ("[activecampaign]\nurl = http://10.1.2.3\n",
     ":2: [activecampaign] url: plain http:// is only allowed for loopback"),
    ("[workato]\nurl = http://example.com\n", "plain http:// is only allowed"),
    ("[nango]\nurl = ftp://127.0.0.1/\n", "[nango] url:"),
])
def test_bad_config_fails_before_mounting(tmp_path, config, needle):
    r, path = run_connfs(tmp_path, config)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert path in r.stderr


def test_config_that_is_a_directory_or_missing(tmp_path):
    r, _ = run_connfs(tmp_path, config_path=tmp_path)
    assert r.returncode != 0
    assert "%s: not a readable regular file" % tmp_path in r.stderr, r.stderr
    missing = tmp_path / "no-such-config"
    r, _ = run_connfs(tmp_path, config_path=missing)
    assert r.returncode != 0
    assert "%s: No such file or directory" % missing in r.stderr, r.stderr


def test_literal_token_in_a_readable_config_is_refused(tmp_path):
    token = CREDENTIALS["workato"]
    text = "[workato]\nurl = http://127.0.0.1:9\ntoken = %s\n" % token
    for mode in (0o644, 0o640, 0o604):
        r, path = run_connfs(tmp_path, text, mode=mode)
        assert r.returncode != 0
        assert "readable by group or others" in r.stderr, r.stderr
        assert "chmod 600 %s" % path in r.stderr
        assert token not in r.stderr + r.stdout


@pytest.mark.parametrize("command,needle", [
    ("false", "token_command failed (exit status 1)"),
    ("exit 7", "token_command failed (exit status 7)"),
    ("true", "token_command printed no token"),
    ("printf '\\n\\n'", "token_command printed no token"),
    ("/nonexistent/password-manager", "token_command failed"),
    ("printf 'abc\\001def'", "control characters"),
])
def test_failing_token_command_fails_before_mounting(tmp_path, command,
                                                     needle):
    r, path = run_connfs(tmp_path, W + "token_command = %s\n" % command)
    assert r.returncode != 0
    assert "[workato] token_command:" in r.stderr, r.stderr
    assert needle in r.stderr, r.stderr


def test_hanging_token_command_fails_before_mounting(tmp_path):
    pids = tmp_path / "pids"
    hang = tmp_path / "hang.sh"
    hang.write_text("sleep 60 &\necho $$ $! > %s\nwait\n" % pids)
    r, _ = run_connfs(tmp_path, W + "token_command = sh %s\n" % hang,
                      timeout=20)
    assert r.returncode != 0
    assert "token_command did not finish within 10 s" in r.stderr, r.stderr
    # The command's whole process group is gone, not left behind: the
    # shell and the helper it started in the background.
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    assert all(process_gone(p) for p in started)


def test_token_command_failing_after_mount_keeps_the_listing(
        mount, fresh_emu, tmp_path):
    fresh_emu.generate("workato", 12, seed=4)
    tokfile = tmp_path / "tok"
    tokfile.write_text(CREDENTIALS["workato"] + "\n")
    m = mount(section("workato", ttl=1,
                      token_command="cat %s" % tokfile))
    before = sorted(os.listdir(m.path("workato")))
    assert before
    tokfile.unlink()                # the password manager is locked now
    time.sleep(1.2)                 # past the TTL
    # Served at once; the refresh (ahead, or started by this read) fails
    # behind it and keeps the listing.
    assert sorted(os.listdir(m.path("workato"))) == before
    wait_for(lambda: dir_status(m, "workato")["stale"],
             what="the failed refresh")
    logs = m.logs()
    assert "token_command failed (exit status 1)" in logs, logs
    assert "keeping the last good listing" in logs
    assert sorted(os.listdir(m.path("workato"))) == before
    tokfile.write_text(CREDENTIALS["workato"] + "\n")

    # A read past min(ttl, 5 s) after the failure starts one walk, which
    # succeeds; until then and meanwhile the same listing is served.
    def recovered():
        assert sorted(os.listdir(m.path("workato"))) == before
        return dir_status(m, "workato")["stale"] is False
    wait_for(recovered, what="a successful refresh")
    with open(m.path(".connfs", "status.json")) as f:
        row = json.load(f)[0]
    assert row["stale"] is False and row["state"] in ("fresh", "walking")
