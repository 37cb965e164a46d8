"""The daemon under valgrind (memcheck) while parallel page walks run:
ActiveCampaign (a total, so every page is fetched at once by several
threads) and Nango (windows of concurrent pages until a short one), three
times each (fresh connections, then reused ones), with connections
reset by the server now and then. Any invalid read or write,
use of uninitialised memory or definite leak makes valgrind exit 99 and
the mount fixture fails the test. Skipped when valgrind is missing and
for sanitizer builds."""

import os
import shutil

import pytest

from conftest import BINARY


def sanitized():
    """An ASan build (make SAN=1) cannot run under valgrind."""
    with open(BINARY, "rb") as f:
        return b"__asan_init" in f.read()


pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None,
                       reason="valgrind is not installed"),
    pytest.mark.skipif(sanitized(), reason="ASan build: run without SAN=1"),
]

VALGRIND = ["valgrind", "--quiet", "--error-exitcode=99",
            "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--child-silent-after-fork=yes", "--fair-sched=yes"]


def test_parallel_walks_are_valgrind_clean(mount, fresh_emu):
    fresh_emu.generate("activecampaign", 230)
    fresh_emu.generate("nango", 170)
    m = mount({"activecampaign": {"page_size": "10", "concurrency": "8",
                                  "ttl": "0.01", "timeout": "60",
                                  "deadline": "300"},
               "nango": {"page_size": "10", "concurrency": "8",
                         "ttl": "0.01", "timeout": "60",
                         "deadline": "300"}},
              wrapper=VALGRIND)
    # Connections that die mid-response are what a shared connection
    # cache got wrong: one handle closing a connection another still used.
    for p in ("activecampaign", "nango"):
        fresh_emu.random_faults(p, probability=0.08, seed=3,
                                faults=["reset_mid", "reset_before"])
    for _ in range(3):
        for p, n in (("activecampaign", 230), ("nango", 170)):
            # Each read of the refresh file waits for a walk of its own.
            with open(m.path(".connfs", "refresh", p)) as f:
                assert "refreshed, %d connections" % n in f.read()
            assert len(os.listdir(m.path(p))) == n
    # 23 pages a walk for ActiveCampaign, plus the retries.
    assert fresh_emu.count("activecampaign") >= 3 * 23
    assert m.unmount() == 0, m.output()
