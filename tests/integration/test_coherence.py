"""Files stay whole and current while listings refresh under readers.

Each connection version is a kernel node of its own: a reader of one open
file gets one version whole, a size the kernel hands out always belongs to
the bytes behind it, and after the last refresh every name, size and
listing the kernel caches is the current one. The deterministic tests
below reproduce, one each, the ways files came out cut, mixed or stale;
the churn test runs real tools against a listing rewritten continuously.
"""

import json
import os
import random
import subprocess
import tarfile
import threading
import time

from conftest import part

EB, NG, PS = "eventbridge", "nango", "persona"
ROUNDS = 200


def eb(**keys):
    return dict({"region": "us-east-1"}, **keys)


def fname(conn):
    return part(conn["Name"]) + ".json"


def refresh(m, name=EB):
    with open(m.path(".connfs", "refresh", name)) as f:
        out = f.read()
    assert "refreshed" in out, out


def replace(emu, provider, old, new):
    conns = [new if c is old or c == old else c
             for c in emu.connections(provider)]
    emu.set_connections(provider, conns)


def read_whole(path):
    """Opens, fstats and reads one file: its size and its bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        chunks = []
        while True:
            b = os.read(fd, 1 << 16)
            if not b:
                break
            chunks.append(b)
        return size, b"".join(chunks)
    finally:
        os.close(fd)


def assert_mount_equals_emulator(m, emu, provider=EB):
    want = {fname(c): c for c in emu.connections(provider)}
    for _ in range(2):      # the second listing may come from the kernel
        assert sorted(os.listdir(m.path(provider))) == sorted(want)
    for name, conn in want.items():
        path = m.path(provider, name)
        size, data = read_whole(path)
        assert os.stat(path).st_size == size == len(data), name
        assert json.loads(data) == conn, name


def test_old_dir_handle_after_a_refresh_hands_out_no_old_sizes(mount,
                                                                fresh_emu):
    conns = fresh_emu.generate(EB, 30, seed=3)
    m = mount({EB: eb()})
    d = m.path(EB)
    names = sorted(os.listdir(d))
    victim = conns[7]
    path = os.path.join(d, fname(victim))
    with open(path, "rb") as f:
        old = f.read()
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        grown = dict(victim, Description="grown " * 2000)
        replace(fresh_emu, EB, victim, grown)
        refresh(m)
        assert sorted(os.listdir(fd)) == names
        size, data = read_whole(path)
        assert os.stat(path).st_size == size == len(data) > len(old)
        assert json.loads(data) == grown
    finally:
        os.close(fd)


def test_listing_read_across_a_refresh_is_one_listing_then_current(
        mount, fresh_emu):
    """A handle in the middle of its listing when a refresh lands keeps
    its listing (names only); the kernel's cached listing, names and
    sizes are the new ones afterwards."""
    conns = fresh_emu.generate(EB, 2000, seed=4)
    m = mount({EB: eb()})
    d = m.path(EB)
    before = sorted(os.listdir(d))
    grow = sorted(conns, key=fname)[-5]        # late in the listing
    gone = sorted(conns, key=fname)[-3]
    added = dict(conns[0], Name="zzz-added", ConnectionArn="arn:added")
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        it = os.scandir(fd)
        seen = [next(it).name]
        grown = dict(grow, Description="y" * 3000)
        fresh_emu.set_connections(
            EB, [grown if c is grow else c for c in conns if c is not gone]
            + [added])
        refresh(m)
        seen += [e.name for e in it]
        it.close()
    finally:
        os.close(fd)
    assert sorted(seen) == before
    for name in seen:
        if name == fname(gone):
            assert not os.path.exists(os.path.join(d, name))
            continue
        size, data = read_whole(os.path.join(d, name))
        assert size == len(data)
        json.loads(data)
    assert_mount_equals_emulator(m, fresh_emu)


def test_handle_opened_before_a_refresh_never_resurrects_the_old_listing(
        mount, fresh_emu):
    conns = fresh_emu.generate(EB, 40, seed=5)
    m = mount({EB: eb()})
    d = m.path(EB)
    os.listdir(d)
    a = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fresh_emu.set_connections(EB, conns[5:] + [
            dict(conns[0], Name="new-one", ConnectionArn="arn:new-one")])
        refresh(m)
        b = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        os.listdir(a)
        os.close(b)
    finally:
        os.close(a)
    assert_mount_equals_emulator(m, fresh_emu)


def test_one_open_file_reads_one_version_across_a_refresh(mount, fresh_emu):
    """Larger than one read request, read a page at a time (no
    readahead) while a refresh replaces its content: one version."""
    conns = fresh_emu.generate(EB, 3, seed=6)
    a = dict(conns[1], Description="a" * 600_000)
    b = dict(conns[1], Description="b" * 600_000)
    fresh_emu.set_connections(EB, [conns[0], a, conns[2]])
    m = mount({EB: eb()})
    path = m.path(EB, fname(a))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        size = os.fstat(fd).st_size
        head = os.read(fd, 4096)
        replace(fresh_emu, EB, a, b)
        refresh(m)
        rest = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            rest.append(chunk)
        whole = head + b"".join(rest)
        assert os.fstat(fd).st_size == size == len(whole)
    finally:
        os.close(fd)
    assert json.loads(whole) == a
    size, data = read_whole(path)
    assert size == len(data) and json.loads(data) == b


def test_old_version_read_to_its_end_then_closed(mount, fresh_emu):
    """The last reader of a replaced version closes it the moment its
    last read returns, so the kernel's FORGET can come while the thread
    that sent the reply is still in fuse_reply_buf(). The version must
    outlive that call (ASan saw it freed under the reply once)."""
    conns = fresh_emu.generate(EB, 2, seed=7)
    cur = dict(conns[1], Description="0" * 128_000)
    fresh_emu.set_connections(EB, [conns[0], cur])
    m = mount({EB: eb()})
    path = m.path(EB, fname(cur))
    for i in range(1, ROUNDS + 1):
        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            new = dict(cur, Description=str(i % 10) * 128_000)
            replace(fresh_emu, EB, cur, new)
            refresh(m)
            data = os.read(fd, size + 1)
        finally:
            os.close(fd)
        assert json.loads(data) == cur
        cur = new


def test_unchanged_refresh_keeps_kernel_caches(mount, fresh_emu):
    """A refresh that changes nothing hands the kernel nothing new: the
    inode numbers and bytes are the same, and no file is looked up anew
    (stat of every file costs no list request either way)."""
    fresh_emu.generate(EB, 50, seed=7)
    m = mount({EB: eb()})
    d = m.path(EB)
    first = {n: os.stat(os.path.join(d, n)).st_ino for n in os.listdir(d)}
    calls = fresh_emu.count(EB)
    refresh(m)
    assert fresh_emu.count(EB) == calls + 1
    assert {n: os.stat(os.path.join(d, n)).st_ino
            for n in os.listdir(d)} == first
    assert fresh_emu.count(EB) == calls + 1


def test_ttl_zero_walks_once_per_directory_read(mount, fresh_emu):
    """ttl = 0: opendir always walks; the lookups and stats of ls -l
    reuse that listing instead of walking once per file."""
    fresh_emu.generate(NG, 400, seed=8)
    m = mount({NG: {"ttl": "0"}})
    d = m.path(NG)
    assert len(os.listdir(d)) == 400
    walk = fresh_emu.count(NG)
    assert walk >= 1
    out = subprocess.run(["ls", "-l", d], capture_output=True, text=True,
                         check=True).stdout
    assert len(out.splitlines()) == 401
    assert fresh_emu.count(NG) == 2 * walk
    for n in os.listdir(d)[:20]:
        size, data = read_whole(os.path.join(d, n))
        assert size == len(data)
    assert fresh_emu.count(NG) == 3 * walk


def test_refresh_files_of_many_directories(mount, fresh_emu):
    """Every directory's refresh file works, however many there are (a
    fixed table of 64 results answered ENOMEM past it)."""
    sections = {"p%02d" % i: {"type": PS} for i in range(70)}
    m = mount(sections)
    for name in sections:
        refresh(m, name)
    with open(m.path(".connfs", "refresh", "all")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 70 and all("refreshed" in x for x in lines)


# --- churn ---------------------------------------------------------------

def churner(emu, base, stop, seed):
    """Rewrites 12 connections every 50 ms: sizes and mtimes change; three
    of them are larger than one read request."""
    rng = random.Random(seed)
    conns = list(base)
    n = 0
    while not stop.is_set():
        n += 1
        for i in rng.sample(range(len(conns)), 12) + [0, 1, 2]:
            big = i < 3
            c = dict(conns[i])
            c["Description"] = ("%d-" % n) * rng.randrange(
                40_000 if big else 1, 70_000 if big else 400)
            c["LastModifiedTime"] = round(1_700_000_000 + n + rng.random(), 3)
            conns[i] = c
        emu.set_connections(EB, conns)
        time.sleep(0.05)


def check_file(path, problems):
    try:
        size, data = read_whole(path)
    except FileNotFoundError:
        problems.append("vanished: " + path)
        return
    if size != len(data):
        problems.append("size %d, %d bytes: %s" % (size, len(data), path))
        return
    try:
        obj = json.loads(data)
    except ValueError:
        problems.append("invalid JSON: " + path)
        return
    if fname(obj) != os.path.basename(path):
        problems.append("wrong connection: " + path)


def run_reader(fn, stop, problems):
    while not stop.is_set():
        try:
            fn()
        except Exception as e:          # a failed tool is a problem too
            problems.append("%s: %r" % (fn.__name__, e))


def test_churn_files_whole_and_current(mount, fresh_emu, tmp_path):
    base = fresh_emu.generate(EB, 300, seed=9)
    m = mount({EB: eb(ttl="1")})
    d = m.path(EB)
    assert len(os.listdir(d)) == 300
    stop, problems = threading.Event(), []
    counts = {"cat": 0, "tar": 0, "rsync": 0, "ls": 0, "handle": 0}

    def cat():
        for n in os.listdir(d):
            check_file(os.path.join(d, n), problems)
        counts["cat"] += 1

    def tar():
        p = subprocess.run(["tar", "cf", "-", "-C", d, "."],
                           capture_output=True, check=False)
        if p.returncode != 0:
            problems.append("tar exit %d: %s" % (p.returncode, p.stderr))
            return
        with tarfile.open(fileobj=__import__("io").BytesIO(p.stdout)) as t:
            for mem in t.getmembers():
                if not mem.isfile():
                    continue
                data = t.extractfile(mem).read()
                try:
                    obj = json.loads(data)
                except ValueError:
                    problems.append("tar: invalid member " + mem.name)
                    continue
                if fname(obj) != os.path.basename(mem.name):
                    problems.append("tar: wrong member " + mem.name)
        counts["tar"] += 1

    def rsync():
        dest = str(tmp_path / "rsync") + "/"
        p = subprocess.run(["rsync", "-a", d + "/", dest],
                           capture_output=True, text=True, check=False)
        if p.returncode != 0:
            problems.append("rsync exit %d: %s" % (p.returncode, p.stderr))
            return
        for n in os.listdir(dest):
            check_file(os.path.join(dest, n), problems)
        counts["rsync"] += 1

    def ls_l():
        out = subprocess.run(["ls", "-l", "--time-style=+", d],
                             capture_output=True, text=True,
                             check=True).stdout
        if len(out.splitlines()) != 301:
            problems.append("ls -l: %d lines" % len(out.splitlines()))
        counts["ls"] += 1

    def old_handle():
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            it = os.scandir(fd)
            first = next(it).name
            time.sleep(0.3)         # let refreshes land under the handle
            names = [first] + [e.name for e in it]
            it.close()
        finally:
            os.close(fd)
        if len(names) != 300:
            problems.append("handle listed %d names" % len(names))
        for n in names:
            check_file(os.path.join(d, n), problems)
        counts["handle"] += 1

    threads = [threading.Thread(target=churner,
                                args=(fresh_emu, base, stop, 1))]
    threads += [threading.Thread(target=run_reader, args=(f, stop, problems))
                for f in (cat, tar, rsync, ls_l, old_handle)]
    for t in threads:
        t.start()
    time.sleep(10)
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert all(counts.values()), counts
    refresh(m)
    assert_mount_equals_emulator(m, fresh_emu)
