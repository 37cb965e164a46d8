"""EventBridge end to end: counts, exact bytes, backups, cache, EROFS."""

import errno
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import (BINARY, config_text, daemon_env, tar_round_trip,
                      rsync_twice, dir_status, wait_for, wait_listdir,
                      wait_walked)

EB = {"eventbridge": {"region": "us-east-1"}}


def eb(**keys):
    return {"eventbridge": dict({"region": "us-east-1"}, **keys)}


def by_name(emu):
    return {c["Name"]: c for c in emu.connections("eventbridge")}


def test_thousand_connections_cost_ten_requests(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 1000, seed=7)
    m = mount(EB)
    names = os.listdir(m.path("eventbridge"))
    assert len(names) == 1000
    assert fresh_emu.count("eventbridge") == 10
    # Within the TTL, everything else is served from memory.
    subprocess.run(["ls", "-l", m.path("eventbridge")], check=True,
                   stdout=subprocess.DEVNULL)
    for n in names[:50]:
        os.stat(m.path("eventbridge", n))
    subprocess.run(["find", m.dir, "-type", "f"], check=True,
                   stdout=subprocess.DEVNULL)
    assert fresh_emu.count("eventbridge") == 10


def test_files_are_the_api_objects_with_exact_sizes(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 250, seed=3)
    m = mount(EB)
    want = by_name(fresh_emu)
    files = sorted(os.listdir(m.path("eventbridge")))
    assert files == sorted(n + ".json" for n in want)
    for f in files:
        p = m.path("eventbridge", f)
        st = os.stat(p)
        with open(p, "rb") as fh:
            data = fh.read()
        assert st.st_size == len(data)
        assert data.endswith(b"\n")
        obj = json.loads(data)
        assert obj == want[f[:-5]]
        assert st.st_mode & 0o777 == 0o444
        t = obj.get("LastModifiedTime", obj.get("CreationTime"))
        assert st.st_mtime == pytest.approx(t, abs=1e-3)
    assert fresh_emu.count("eventbridge") == 3


def test_seed_example_exponent_timestamps(mount, fresh_emu):
    page = [{
        "ConnectionArn": "arn:aws:events:us-east-1:210987654321:connection/"
                         "billing.zuora_v2/a9d4e1b0-2c77-4f1f-8e53-6b1f0c9d2e77",
        "Name": "billing.zuora_v2",
        "ConnectionState": "DEAUTHORIZED",
        "StateReason": "Credentials were removed by DeauthorizeConnection",
        "AuthorizationType": "OAUTH_CLIENT_CREDENTIALS",
        "CreationTime": 1.6901184E9,
    }]
    fresh_emu.set_connections("eventbridge", page)
    m = mount(EB)
    p = m.path("eventbridge", "billing.zuora_v2.json")
    with open(p) as f:
        assert json.load(f) == page[0]
    assert os.stat(p).st_mtime == 1690118400


def test_grep_finds_the_one_connection(mount, fresh_emu):
    conns = fresh_emu.generate("eventbridge", 300, seed=5)
    conns[123]["StateReason"] = "needle-4711 in one haystack"
    fresh_emu.set_connections("eventbridge", conns)
    m = mount(EB)
    out = subprocess.run(["grep", "-rl", "needle-4711", m.dir], check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == [m.path("eventbridge", conns[123]["Name"] + ".json")]


def test_tar_round_trip_is_byte_identical(mount, fresh_emu, tmp_path):
    fresh_emu.generate("eventbridge", 400, seed=9)
    m = mount(EB)
    out = tar_round_trip(m, tmp_path)
    assert len(os.listdir(out / "eventbridge")) == 400


def test_rsync_twice_transfers_nothing_the_second_time(mount, fresh_emu,
                                                       tmp_path):
    fresh_emu.generate("eventbridge", 200, seed=11)
    m = mount(EB)
    rsync_twice(m, tmp_path, 200)


def test_cp_r_copies_everything(mount, fresh_emu, tmp_path):
    fresh_emu.generate("eventbridge", 120, seed=2)
    m = mount(EB)
    subprocess.run(["cp", "-r", m.path("eventbridge"), str(tmp_path / "cp")],
                   check=True)
    subprocess.run(["diff", "-r", m.path("eventbridge"),
                    str(tmp_path / "cp")], check=True)


def test_new_connection_appears_after_ttl(mount, fresh_emu):
    conns = fresh_emu.generate("eventbridge", 30, seed=1)
    m = mount(eb(ttl="1", refresh_ahead="0"))
    assert len(os.listdir(m.path("eventbridge"))) == 30
    new = dict(conns[0], Name="zz-added-later",
               ConnectionArn=conns[0]["ConnectionArn"] + "-later")
    fresh_emu.add_connection("eventbridge", new)
    assert "zz-added-later.json" not in os.listdir(m.path("eventbridge"))
    time.sleep(1.3)                             # past the TTL
    # The reader gets the expired listing at once and starts one walk ...
    assert len(os.listdir(m.path("eventbridge"))) == 30
    wait_walked(m, "eventbridge", 2)
    # ... whose result is served once it is done (no further request).
    names = wait_listdir(m.path("eventbridge"), lambda ns: len(ns) != 30)
    assert "zz-added-later.json" in names and len(names) == 31
    assert fresh_emu.count("eventbridge") == 2


def test_a_listing_in_use_is_refreshed_ahead_of_its_ttl(mount, fresh_emu):
    """refresh_ahead 0.5, ttl 4: a listing read since it loaded is walked
    again at 2 s with no reader waiting or asking; the new listing is
    then served with no further request."""
    conns = fresh_emu.generate("eventbridge", 30, seed=1)
    m = mount(eb(ttl="4", refresh_ahead="0.5"))
    assert len(os.listdir(m.path("eventbridge"))) == 30
    new = dict(conns[0], Name="zz-added-ahead",
               ConnectionArn=conns[0]["ConnectionArn"] + "-ahead")
    fresh_emu.add_connection("eventbridge", new)
    # Nothing reads the directory now: the walk is the cache's own.
    wait_walked(m, "eventbridge", 2)
    names = wait_listdir(m.path("eventbridge"), lambda ns: len(ns) != 30)
    assert "zz-added-ahead.json" in names and len(names) == 31
    assert fresh_emu.count("eventbridge") == 2
    assert dir_status(m, "eventbridge")["stale"] is False


def test_concurrent_cold_readers_cause_one_walk(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 500, seed=4)
    fresh_emu.set_latency("eventbridge", 30)
    m = mount(EB)
    results = []

    def reader():
        results.append(len(os.listdir(m.path("eventbridge"))))

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [500] * 16
    assert fresh_emu.count("eventbridge") == 5


def test_writes_are_refused_with_erofs(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 3, seed=1)
    m = mount(EB)
    d = m.path("eventbridge")
    name = os.path.join(d, os.listdir(d)[0])
    attempts = [
        lambda: open(name, "w"),
        lambda: open(name, "a"),
        lambda: open(os.path.join(d, "new.json"), "w"),
        lambda: os.unlink(name),
        lambda: os.rename(name, name + ".bak"),
        lambda: os.mkdir(os.path.join(d, "sub")),
        lambda: os.mkdir(m.path("newdir")),
        lambda: os.rmdir(d),
        lambda: os.chmod(name, 0o644),
        lambda: os.utime(name, (0, 0)),
        lambda: os.symlink("x", os.path.join(d, "link")),
    ]
    for attempt in attempts:
        with pytest.raises(OSError) as exc:
            attempt()
        assert exc.value.errno == errno.EROFS


def test_unknown_names_are_enoent(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 3, seed=1)
    m = mount(EB)
    for p in (m.path("eventbridge", "nope.json"), m.path("nope"),
              m.path("eventbridge", "nope", "deeper")):
        with pytest.raises(FileNotFoundError):
            os.stat(p)


def test_stable_inodes_and_mtimes_across_remounts(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 50, seed=8)
    first = mount(EB)
    a = {n: (os.stat(first.path("eventbridge", n)).st_ino,
             os.stat(first.path("eventbridge", n)).st_mtime)
         for n in os.listdir(first.path("eventbridge"))}
    assert first.unmount() == 0
    second = mount(EB)
    b = {n: (os.stat(second.path("eventbridge", n)).st_ino,
             os.stat(second.path("eventbridge", n)).st_mtime)
         for n in os.listdir(second.path("eventbridge"))}
    assert a == b
    assert len({ino for ino, _ in a.values()}) == 50


def test_failed_refresh_keeps_the_last_good_listing(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 40, seed=6)
    m = mount(eb(ttl="1"))
    before = sorted(os.listdir(m.path("eventbridge")))
    with open(m.path("eventbridge", before[0]), "rb") as f:
        content = f.read()
    fresh_emu.inject("eventbridge", "http500", count=50)
    time.sleep(1.2)                             # past the TTL
    # Served at once from the expired listing; one walk refreshes behind.
    assert sorted(os.listdir(m.path("eventbridge"))) == before
    wait_walked(m, "eventbridge", 2)
    wait_for(lambda: dir_status(m, "eventbridge")["stale"],
             what="the failed refresh to mark the listing stale")
    assert "keeping the last good listing" in m.logs()
    assert sorted(os.listdir(m.path("eventbridge"))) == before
    with open(m.path("eventbridge", before[0]), "rb") as f:
        assert f.read() == content


@pytest.mark.parametrize("fault,err", [("http403", errno.EACCES),
                                       ("http401", errno.EACCES),
                                       ("http500", errno.EIO)])
def test_failure_with_nothing_cached(mount, fresh_emu, fault, err):
    fresh_emu.generate("eventbridge", 5, seed=1)
    fresh_emu.inject("eventbridge", fault, count=100)
    m = mount(eb(deadline="20"))
    with pytest.raises(OSError) as exc:
        os.listdir(m.path("eventbridge"))
    assert exc.value.errno == err
    # 401/403 are never retried; 5xx a bounded number of times.
    n = fresh_emu.count("eventbridge")
    assert n == 1 if err == errno.EACCES else 1 < n <= 6
    assert os.listdir(m.dir) == ["eventbridge"]


def test_wrong_secret_is_eacces_and_never_logged(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 5, seed=1)
    m = mount(EB, env={"AWS_SECRET_ACCESS_KEY": "wrong-secret-123"})
    with pytest.raises(PermissionError):
        os.listdir(m.path("eventbridge"))
    assert "InvalidSignatureException" in m.logs()
    assert "wrong-secret-123" not in m.logs()


def test_name_prefix_and_state_filters(mount, fresh_emu):
    conns = fresh_emu.generate("eventbridge", 100, seed=12)
    m = mount({"eventbridge": {"region": "us-east-1"},
               "failing": {"type": "eventbridge", "region": "us-east-1",
                           "state": "FAILED_CONNECTIVITY"},
               "billing": {"type": "eventbridge", "region": "us-east-1",
                           "name_prefix": "billing"}})
    assert sorted(os.listdir(m.dir)) == ["billing", "eventbridge", "failing"]
    failing = {c["Name"] + ".json" for c in conns
               if c.get("ConnectionState") == "FAILED_CONNECTIVITY"}
    billing = {c["Name"] + ".json" for c in conns
               if c["Name"].startswith("billing")}
    assert set(os.listdir(m.path("failing"))) == failing
    assert set(os.listdir(m.path("billing"))) == billing
    assert len(os.listdir(m.path("eventbridge"))) == 100


def test_session_token_credentials(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 10, seed=1)
    m = mount(EB, env={"AWS_ACCESS_KEY_ID": "AKIDCONNFSSESSION",
                       "AWS_SECRET_ACCESS_KEY": "connfs-test-secret-session",
                       "AWS_SESSION_TOKEN": "connfs-test-session-token-5d2e"})
    assert len(os.listdir(m.path("eventbridge"))) == 10
    assert "connfs-test-session-token-5d2e" not in m.logs()


def test_profile_credentials_from_shared_files(mount, fresh_emu, tmp_path):
    fresh_emu.generate("eventbridge", 7, seed=1)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[prod]\naws_access_key_id = AKIDCONNFSTEST\n"
        "aws_secret_access_key = connfs-test-secret-7f3a9c\n")
    (aws / "config").write_text("[profile prod]\nregion = eu-west-1\n")
    m = mount({"eventbridge": {"profile": "prod"}},
              env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                   "AWS_REGION": "",
                   "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
                   "AWS_CONFIG_FILE": str(aws / "config")})
    assert len(os.listdir(m.path("eventbridge"))) == 7
    assert fresh_emu.requests("eventbridge")[-1]["region"] == "eu-west-1"


def run_connfs(tmp_path, config, env=None, args=()):
    cfg = tmp_path / "bad.conf"
    cfg.write_text(config)
    cfg.chmod(0o600)
    mnt = tmp_path / "never"
    mnt.mkdir(exist_ok=True)
    return subprocess.run([BINARY, "-f", "-o", "config=%s" % cfg, *args,
                           str(mnt)], env=daemon_env(tmp_path, env),
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("config,needle", [
    ("[eventbridge]\nregion = us-east-1\nbogus = 1\n", ":3: [eventbridge] bogus: unknown key"),
    ("[eventbridge]\nttl = soon\n", ":2: [eventbridge] ttl: 'soon' is not a number"),
    ("[eventbridge]\npage_size = 500\n", ":2: [eventbridge] page_size: 500 is out of range"),
    ("[x]\ntype = nosuch\n", ":2: [x] type: unknown provider type 'nosuch'"),
    ("[eventbridge]\n[eventbridge]\n", ":2: duplicate section [eventbridge]"),
    ("[eventbridge]\nregion = a\nregion = b\n", ":3: duplicate key 'region'"),
    ("region = us-east-1\n", ":1: key outside any [section]"),
    ("[eventbridge]\nurl = http://example.com\n", "plain http:// is only allowed"),
])
def test_bad_config_fails_before_mounting(tmp_path, config, needle):
    r = run_connfs(tmp_path, config)
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr
    assert str(tmp_path / "bad.conf") in r.stderr


def test_missing_credentials_and_region_are_named(tmp_path):
    r = run_connfs(tmp_path, "[eventbridge]\nregion = us-east-1\n",
                   env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
    assert r.returncode != 0 and "no AWS credentials" in r.stderr
    r = run_connfs(tmp_path, "[eventbridge]\n", env={"AWS_REGION": ""})
    assert r.returncode != 0 and "no AWS region" in r.stderr


def test_no_config_file_mounts_from_environment(tmp_path, fresh_emu):
    fresh_emu.generate("eventbridge", 4, seed=1)
    mnt = tmp_path / "envmnt"
    mnt.mkdir()
    env = daemon_env(tmp_path, {"AWS_ENDPOINT_URL": fresh_emu.url,
                                "ACTIVECAMPAIGN_API_TOKEN": "",
                                "NANGO_SECRET_KEY": "", "PERSONA_API_KEY": "",
                                "WORKATO_API_TOKEN": ""})
    p = subprocess.Popen([BINARY, "-f", str(mnt)], env=env,
                         stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 10
        while not os.path.ismount(mnt) and time.time() < deadline:
            time.sleep(0.05)
        assert os.listdir(mnt) == ["eventbridge"]
        assert len(os.listdir(mnt / "eventbridge")) == 4
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)])
        assert p.wait(timeout=10) == 0


def test_sigterm_unmounts_cleanly(mount, fresh_emu):
    fresh_emu.generate("eventbridge", 3, seed=1)
    m = mount(EB)
    assert len(os.listdir(m.path("eventbridge"))) == 3
    m.proc.terminate()
    assert m.proc.wait(timeout=10) == 0
    assert not os.path.ismount(m.dir)


def test_background_daemon_detaches_and_exits_zero(tmp_path, fresh_emu):
    fresh_emu.generate("eventbridge", 2, seed=1)
    cfg = tmp_path / "c"
    cfg.write_text(config_text({"eventbridge": {"region": "us-east-1",
                                                "url": fresh_emu.url}}))
    mnt = tmp_path / "bg"
    mnt.mkdir()
    r = subprocess.run([BINARY, "-o", "config=%s" % cfg, str(mnt)],
                       env=daemon_env(tmp_path), timeout=20)
    assert r.returncode == 0
    try:
        assert len(os.listdir(mnt / "eventbridge")) == 2
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
