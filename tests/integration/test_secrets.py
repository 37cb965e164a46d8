"""No secret anywhere (issue 4, "Secrets").

A fault-heavy session on all five providers at once, at the highest log
level and with libfuse's debug output (-o debug, the same as -d), using
every way connfs gets credentials (environment, AWS session credentials,
an AWS profile file, token_file, token_command) and some wrong ones (so
that 401/403 and signature errors happen besides the injected faults).
Afterwards the whole mount, the hidden status files, every extended
attribute, the log and the daemon's stderr are searched for every
credential handed to it: none may appear. The mount is private:
default_permissions, and no allow_other.
"""

import os
import signal
import subprocess
import threading
import time

from conftest import SECRETS, Mount, is_mounted, process_gone
from emulator import CREDENTIALS

PROVIDERS = ("eventbridge", "activecampaign", "nango", "persona", "workato")
SESSION_SECRET = "connfs-test-secret-session"
SESSION_TOKEN = "connfs-test-session-token-5d2e"
WRONG = {
    "aws": "wrong-aws-secret-0451-do-not-log",
    "activecampaign": "wrong-ac-token-5150-do-not-log",
    "workato": "wrong-workato-token-7781-do-not-log",
}
ALL_SECRETS = SECRETS + [SESSION_SECRET, SESSION_TOKEN] + list(WRONG.values())


def common(**keys):
    base = {"ttl": "1", "timeout": "1", "deadline": "3", "rate": "0",
            "max_pages": "30"}
    base.update({k: str(v) for k, v in keys.items()})
    return base


def secret_file(tmp_path, name, value):
    p = tmp_path / name
    p.write_text(value + "\n")
    p.chmod(0o600)
    return str(p)


def run(*cmd):
    return subprocess.run(list(cmd), capture_output=True, text=True,
                          errors="replace")


def test_no_secret_anywhere_after_a_fault_heavy_session(mount, fresh_emu,
                                                       tmp_path):
    for p in PROVIDERS:
        fresh_emu.generate(p, 30, seed=5)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[prod]\naws_access_key_id = AKIDCONNFSTEST\n"
        "aws_secret_access_key = %s\n\n"
        "[bad]\naws_access_key_id = AKIDCONNFSTEST\n"
        "aws_secret_access_key = %s\n" % (SECRETS[0], WRONG["aws"]))
    keys = tmp_path / "keys"
    keys.mkdir()
    sections = {
        # AWS session credentials from the environment (below)
        "eventbridge": common(region="us-east-1", page_size=10),
        "eb-profile": common(type="eventbridge", profile="prod",
                             region="us-east-1", page_size=10),
        "eb-wrong": common(type="eventbridge", profile="bad",
                           region="us-east-1"),
        "activecampaign": common(page_size=10, token_file=secret_file(
            keys, "ac", CREDENTIALS["activecampaign"])),
        "ac-wrong": common(type="activecampaign", token_file=secret_file(
            keys, "ac-wrong", WRONG["activecampaign"])),
        "nango": common(page_size=10, token_command="cat %s" % secret_file(
            keys, "nango", CREDENTIALS["nango"])),
        "persona": common(page_size=10),            # from the environment
        "workato": common(token_command="cat %s" % secret_file(
            keys, "wk", CREDENTIALS["workato"])),
        "workato-wrong": common(type="workato", token_file=secret_file(
            keys, "wk-wrong", WRONG["workato"])),
    }
    env = {"AWS_ACCESS_KEY_ID": "AKIDCONNFSSESSION",
           "AWS_SECRET_ACCESS_KEY": SESSION_SECRET,
           "AWS_SESSION_TOKEN": SESSION_TOKEN,
           "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
           "AWS_CONFIG_FILE": str(aws / "config")}
    m = mount(sections, options=["loglevel=debug", "debug"], env=env)
    dirs = sorted(sections)
    assert sorted(os.listdir(m.dir)) == dirs

    # Every fault the emulator has (bar the slow ones), auth failures first.
    for p in PROVIDERS:
        fresh_emu.inject(p, "http401", count=1)
        fresh_emu.inject(p, "http403", count=1)
        fresh_emu.inject(p, "redirect", count=1)
    fresh_emu.random_faults(probability=0.4, seed=7)

    stop = time.monotonic() + 8
    errors = []

    def worker(d):
        while time.monotonic() < stop:
            try:
                for n in os.listdir(m.path(d))[:10]:
                    with open(m.path(d, n), "rb") as f:
                        f.read()
            except OSError as e:
                errors.append(e.errno)
            run("getfattr", "-d", "-m", "-", m.path(d))
            time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors, "the faults caused no error at all"

    # Calm again: the good accounts list, the wrong ones stay refused.
    fresh_emu.reset()
    time.sleep(1.2)
    for d in dirs:
        if "wrong" in d:
            assert run("ls", m.path(d)).returncode != 0
        else:
            assert len(os.listdir(m.path(d))) >= 20     # Workato: 23 top-level

    found = []

    def search(where, text):
        for s in ALL_SECRETS:
            if s in text:
                found.append("%s in %s" % (s[:6] + "...", where))

    grep = run("grep", "-r", "-F", "-l", *sum((["-e", s] for s in
                                                ALL_SECRETS), []), m.dir)
    assert grep.stdout == "", "grep found: %s" % grep.stdout
    # The refused accounts' directories cannot be read (EACCES): fine.
    for line in grep.stderr.splitlines():
        assert "-wrong: Permission denied" in line, line
    search("grep's messages", grep.stderr)
    for name in ("status", "status.json", "refresh/all"):
        with open(m.path(".connfs", name), errors="replace") as f:
            search(".connfs/" + name, f.read())
    xattrs = run("getfattr", "-R", "-d", "-m", "-", m.dir)
    assert "user.connfs.last_error" in xattrs.stdout
    search("xattrs", xattrs.stdout + xattrs.stderr)
    for f in ("status", "status.json"):
        x = run("getfattr", "-d", "-m", "-", m.path(".connfs", f))
        search("xattrs of .connfs/" + f, x.stdout + x.stderr)
    logs, out = m.logs(), m.output()
    search("the log", logs)
    search("stderr", out)
    assert not found, found

    # The session really was what it claims to be.
    assert "unique:" in out, "no libfuse debug output (-o debug)"
    assert "; retry 1 in" in logs                   # loglevel=debug: info shown
    assert "eb-wrong: InvalidSignatureException" in logs
    assert "ac-wrong: Forbidden" in logs
    assert "workato-wrong: Unauthorized" in logs
    assert "redirect not followed" in logs

    with open("/proc/mounts") as f:
        opts = next(line.split()[3] for line in f
                    if line.split()[1] == m.dir)
    assert "default_permissions" in opts.split(","), opts
    assert "allow_other" not in opts, opts
    assert is_mounted(m.dir)


def fd_targets(pid):
    d = "/proc/%d/fd" % pid
    return {int(fd): os.readlink(os.path.join(d, fd)) for fd in os.listdir(d)}


def auto_unmount_watcher(daemon):
    """The fusermount3 that libfuse left running to unmount after a crash:
    the daemon's only child named so (the daemon forked it at mount)."""
    with open("/proc/%d/task/%d/children" % (daemon, daemon)) as f:
        kids = [int(p) for p in f.read().split()]
    names = {}
    for pid in kids:
        with open("/proc/%d/comm" % pid) as f:
            names[pid] = f.read().strip()
    found = [pid for pid, name in names.items() if name == "fusermount3"]
    assert len(found) == 1, names
    return found[0]


def test_token_command_helper_inherits_nothing_of_the_daemon(fresh_emu,
                                                             tmp_path):
    """A password-manager agent left running by token_command holds only
    its own stdin, stdout and stderr, with no signal blocked; so after the
    daemon is killed, fusermount3's auto_unmount still removes the mount
    (the agent holds none of the daemon's descriptors)."""
    fresh_emu.generate("workato", 3, seed=1)
    tok = secret_file(tmp_path, "wk", CREDENTIALS["workato"])
    pids = tmp_path / "agents"
    agent = tmp_path / "agent.sh"
    # The agent keeps the command's stdout, as a careless one would.
    agent.write_text("sleep 300 &\necho $! >> %s\ncat %s\n" % (pids, tok))
    (tmp_path / "m").mkdir()
    m = Mount(tmp_path / "m", fresh_emu,
              {"workato": common(token_command="sh %s" % agent)})
    try:
        assert os.listdir(m.path("workato"))        # the token works
        helper = int(pids.read_text().split()[-1])
        fds = fd_targets(helper)
        assert sorted(fds) == [0, 1, 2], fds
        assert fds[0] == "/dev/null"
        assert fds[1].startswith("pipe:")
        daemon = fd_targets(m.proc.pid)
        assert "/dev/fuse" in daemon.values()
        assert fds[1] not in daemon.values()
        assert not [t for t in fds.values()
                    if t == "/dev/fuse" or t.startswith("socket:")], fds
        with open("/proc/%d/status" % helper) as f:
            status = f.read()
        assert "\nSigBlk:\t0000000000000000\n" in status, status
        watcher = auto_unmount_watcher(m.proc.pid)
        m.proc.kill()
        m.proc.wait()
        assert not process_gone(helper, wait=0)     # the agent lives on
        # fusermount3 waits for the last copy of its socket to close; had
        # the agent inherited one, it would wait for the agent.
        assert process_gone(watcher), "fusermount3 still waits"
        # Whether it then unmounts is libfuse's: 3.14 skips the unmount when
        # the kernel closes its socket before /dev/fuse (its probe open()
        # can get ECONNABORTED, not ENOTCONN), so the mount is not asserted.
    finally:
        for pid in pids.read_text().split() if pids.exists() else ():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        m.unmount()
