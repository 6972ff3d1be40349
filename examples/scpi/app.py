"""The scpi example: a serial bridge to a SCPI instrument.

With `port: "sim"` in web.json5, the simulated instrument (instrument.py) runs inside the
server's loop: its pty master is one more file in the selector, no thread. Any other
port is a real instrument, and this file does nothing.
"""

import importlib.util
import logging
from pathlib import Path

from httap.loop import READ

SIMULATED = "sim"


def _instrument_module():
    """instrument.py, beside this file (an app is loaded by path, not as a package)."""
    spec = importlib.util.spec_from_file_location(
        "scpi_instrument", Path(__file__).with_name("instrument.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup(server):
    port = server.serial["scpi"]
    if port.url != SIMULATED:
        return
    instrument = _instrument_module().Instrument()
    server.loop.register(instrument.master, READ, instrument)
    port.url = instrument.path  # the server opens its ports after setup
    logging.getLogger("scpi").info("simulated SCPI instrument on %s", instrument.path)
