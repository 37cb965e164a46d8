"""connfs API emulator: the five providers' list APIs on one local port.

    from emulator import Emulator
    emu = Emulator(port=0).start()
    emu.generate("nango", 100)
    ... point connfs at emu.url ...
    emu.stop()

See server.py for the public API, the provider modules for each API's
behaviour, gen.py for synthetic data and __main__.py for the CLI.
"""

from .base import PROVIDERS
from .eventbridge import AWS_KEYS
from .server import Emulator, EmulatorClient
from . import gen

CREDENTIALS = {
    "eventbridge": AWS_KEYS,
    "activecampaign": "ac-test-token-3b8e1f",
    "nango": "3f1d8a52-9c4e-4b7a-8e21-6d0f5c9b2a71",
    "persona": "persona_sandbox_connfs_test_9a7c",
    "workato": "wrk-test-token-61c0d4",
}

__all__ = ["Emulator", "EmulatorClient", "CREDENTIALS", "PROVIDERS", "gen"]
