"""Runs the API emulator for the benchmark, in its own process.

    PYTHONPATH=tests python3 tests/bench/emulator_server.py --port 0 \
        --port-file F --data none

The same command line as `python3 -m emulator`, with one difference: the
emulator's sockets get TCP_NODELAY. Its handler writes the response head
and the body in two send() calls; with Nagle's algorithm on, the body then
waits for the client's delayed ACK of the head (40 ms on Linux), so every
request took ~40 ms more than the latency asked for (a 20 ms page took
~64 ms) and the benchmark measured Nagle instead of connfs.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator import server  # noqa: E402
from emulator.__main__ import main  # noqa: E402

server._Handler.disable_nagle_algorithm = True

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
