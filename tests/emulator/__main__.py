"""Command line: run the emulator as a standalone server.

    cd tests && python3 -m emulator --port 4566 --data data/sample.json \
        --generate eventbridge=10000,activecampaign=500 --rate-limit nango

Prints `emulator listening on http://HOST:PORT` once ready and exits
cleanly on SIGTERM or SIGINT.  Without --data and --generate the demo data
in tests/data/sample.json is loaded; `--data none` starts empty.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from .base import PROVIDERS
from .server import Emulator

SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "data", "sample.json")


def _pairs(text):
    out = {}
    for item in filter(None, (text or "").split(",")):
        name, _, n = item.partition("=")
        if name not in PROVIDERS:
            raise SystemExit("unknown provider %r in --generate" % name)
        out[name] = int(n or 100)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m emulator",
                                 description="connfs API emulator")
    ap.add_argument("--port", type=int, default=4566)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--data", help="JSON file {provider: [...]}, or 'none'")
    ap.add_argument("--generate", help="provider=N[,provider=N...]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=0)
    ap.add_argument("--rate-limit", default="",
                    help="comma-separated providers whose documented limit is enforced")
    ap.add_argument("--port-file", help="write the bound port to this file")
    ap.add_argument("--quiet", action="store_true", help="no request logging (default)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(message)s")
    generate = _pairs(args.generate)
    data = args.data
    if data is None and not generate:
        data = SAMPLE
    if data == "none":
        data = None
    emu = Emulator(port=args.port, host=args.host, data=data,
                   verbose=args.verbose and not args.quiet)
    for name, n in generate.items():
        emu.generate(name, n, seed=args.seed)
    if args.latency_ms:
        emu.set_latency(None, args.latency_ms)
    for name in filter(None, args.rate_limit.split(",")):
        emu.set_rate_limit(name.strip(), True)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    emu.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % emu.port)
        os.replace(tmp, args.port_file)
    print("emulator listening on %s" % emu.url, flush=True)
    while not done.wait(0.5):
        pass
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
