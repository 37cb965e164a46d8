"""Stopping while walks are in flight: SIGTERM during a SIGHUP refresh, or
during a cold readdir, against a slow emulator (every request takes
seconds), must end the walks, unmount and exit 0 at once instead of after
the refresh (measured 29 s before). The bound below is a deadline for
"stopped at all", far above the fraction of a second it takes, and far
below what finishing the walks would take (directories x pages x latency).
"""

import os
import signal
import subprocess
import threading
import time

from conftest import is_mounted

SLOW = ("activecampaign", "nango", "persona", "workato")
LATENCY_MS = 4000
# Finishing the walks would take at least 4 s for each of 7 pages.
STOP_DEADLINE = 5


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while not cond():
        if time.time() > end:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def slow_mount(mount, emu):
    for p in SLOW:
        emu.generate(p, 30)
    sections = {p: {"deadline": "120", "timeout": "60"} for p in SLOW}
    for p in SLOW[:3]:      # Workato's list is not paged
        sections[p]["page_size"] = "20"
    m = mount(sections)
    for p in SLOW:
        emu.set_latency(p, LATENCY_MS)
    return m


def assert_stops(m):
    t0 = time.time()
    m.proc.send_signal(signal.SIGTERM)
    try:
        rc = m.proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError("connfs still running %d s after SIGTERM" %
                             STOP_DEADLINE)
    assert rc == 0, m.output()
    assert not is_mounted(m.dir)
    return time.time() - t0


def test_sigterm_during_sighup_refresh(mount, fresh_emu):
    m = slow_mount(mount, fresh_emu)
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: sum(fresh_emu.count(p) for p in SLOW) >= 1, 30,
             "the refresh's first request")
    assert_stops(m)
    # The refresh got no further than the request in flight.
    assert sum(fresh_emu.count(p) for p in SLOW) == 1
    assert "listing stopped: connfs is shutting down" in m.logs()


def test_sigterm_during_cold_readdir(mount, fresh_emu):
    m = slow_mount(mount, fresh_emu)
    errors = []

    def lister(p):
        try:
            os.listdir(m.path(p))
        except OSError as exc:
            errors.append(exc.errno)

    threads = [threading.Thread(target=lister, args=(p,), daemon=True)
               for p in SLOW]
    for t in threads:
        t.start()
    wait_for(lambda: all(fresh_emu.count(p) >= 1 for p in SLOW), 30,
             "a request from every directory")
    assert_stops(m)
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert sum(fresh_emu.count(p) for p in SLOW) == len(SLOW)
    assert len(errors) == len(SLOW)


def test_unmount_during_sighup_refresh(mount, fresh_emu):
    """fusermount3 -u ends the session from outside: the walk in flight
    is aborted too, so the daemon exits at once."""
    m = slow_mount(mount, fresh_emu)
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: sum(fresh_emu.count(p) for p in SLOW) >= 1, 30,
             "the refresh's first request")
    subprocess.run(["fusermount3", "-u", m.dir], check=True)
    try:
        rc = m.proc.wait(timeout=STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        raise AssertionError("connfs still running %d s after unmounting"
                             % STOP_DEADLINE)
    assert rc == 0, m.output()
    assert sum(fresh_emu.count(p) for p in SLOW) == 1



def test_sighup_the_moment_the_mount_appears_refreshes(mount, fresh_emu,
                                                      tmp_path, monkeypatch):
    """A reload sent as soon as the mount is there (systemctl reload right
    after start) refreshes. It used to reach libfuse's own SIGHUP handler,
    which ends the session, while the daemon was still starting."""
    fresh_emu.generate("nango", 3)
    procs = []
    popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        procs.append(popen(*args, **kwargs))
        return procs[-1]

    def hup_when_mounted(path):
        while not procs:
            time.sleep(0.0005)
        while not is_mounted(path) and procs[0].poll() is None:
            pass
        procs[0].send_signal(signal.SIGHUP)

    monkeypatch.setattr(subprocess, "Popen", recording_popen)
    # Where the mount factory puts its first mount.
    sender = threading.Thread(target=hup_when_mounted, daemon=True,
                              args=(str(tmp_path / "m0" / "mnt"),))
    sender.start()
    m = mount({"nango": {}})
    sender.join(30)
    monkeypatch.undo()
    wait_for(lambda: "SIGHUP: refreshing every directory" in m.logs(), 30,
             "the refresh")
    assert m.proc.poll() is None, m.output()
    assert is_mounted(m.dir)
    assert len(os.listdir(m.path("nango"))) == 3


def test_no_invalid_idle_threads_warning(mount, fresh_emu):
    """libfuse 3.14 logs "Ignoring invalid max threads value 4294967295"
    when given its own "not set" value for max_idle_threads."""
    fresh_emu.generate("nango", 3)
    m = mount({"nango": {}})
    assert len(os.listdir(m.path("nango"))) == 3
    assert m.unmount() == 0
    assert "Ignoring invalid max threads" not in m.output()
    assert "invalid" not in m.output().lower()


def test_sigterm_with_directory_handles_still_open_frees_them(mount,
                                                               fresh_emu):
    """A directory (and a control file) still open when SIGTERM comes: the
    kernel never sends their releases, yet the daemon exits 0, which under
    ASan means it freed every handle (LeakSanitizer fails the exit)."""
    fresh_emu.generate("nango", 5, seed=1)
    m = mount({"nango": {}})
    d = os.open(m.path("nango"), os.O_RDONLY | os.O_DIRECTORY)
    c = os.open(m.path(".connfs", "status"), os.O_RDONLY)
    try:
        assert len(os.listdir(d)) == 5
        assert os.read(c, 9) == b"DIRECTORY"
        m.proc.terminate()
        assert m.proc.wait(timeout=10) == 0, m.output()
    finally:
        for fd in (d, c):
            try:
                os.close(fd)
            except OSError:         # the daemon is gone: ENOTCONN
                pass
