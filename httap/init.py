"""`httap init [DIR]`: a starter web.json5 and static/index.html that start as they are.

The web.json5 is the template below, commented, with the pins commented out and a
README section named for each part. The page is the device console's own page
(static/index.html of the server's app) with a note on top: its script, /console.js,
and /httap.js come from the server itself (server.BUILT_IN), so the copy works and
stays small. Nothing is ever overwritten: every file is checked before any is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from httap.config import default_documents, unresolvable

CONFIG = "web.json5"
PAGE = Path("static") / "index.html"

WEB_JSON5 = """\
// Written by `httap init`. It starts as it is: `httap serve` in this directory.
// Each part names its README.md section; `httap check` prints every value in effect,
// defaults included. Keys and values: README "Configuration: web.json5".
{
  // The name `GET /?` gives this device.
  id: DEVICE_ID,

  // Every address, port 8080; https:// needs `tls` (README "TLS").
  listen: ["http://:8080"],

  // The browser app, relative to this file: static/index.html is the device console
  // (README "The browser console and httap.js"). Put your own pages there.
  documents: "static",

  // The pins (README "The HTTaP vocabulary"). "auto" finds the board: libgpiod, else
  // RPi.GPIO (README "Installing on a Raspberry Pi"). Where there is none, as on a
  // laptop, the server runs on the simulated board and its log says so.
  gpio: {
    backend: "auto",
    pins: {
      // Uncomment and edit; numbers are BCM GPIO numbers. `safe` is the value an output
      // takes when its driver's link drops: give it to what must stop, like a motor
      // (README "Sessions, the lease and safe values").
      // led:    { gpio: 17, mode: "out", initial: 0 },
      // button: { gpio: 4,  mode: "in",  pull: "up" },
      // motor:  { gpio: 18, mode: "pwm", frequency: 100, duty: 0, safe: 0 },
    },
  },

  // Serial ports (README "Serial ports"):
  // serial: { meter: { port: "/dev/ttyUSB0", baudrate: 115200 } },

  // Your own actions and timed tasks in Python (README "Your own actions"):
  // app: "app.py",

  // One client drives the hardware at a time (README "Sessions, the lease and safe values").
  session: { exclusive: "client" },

  // What is logged (README "Logs"): true logs every request to stderr.
  log: { level: "info", access: false },

  // Passwords, TLS and host names (README "Security"), e.g.:
  // hosts: ["pi.local"],
}
"""

NOTE = (
    "<!-- Written by `httap init`: the device console. Its script /console.js and the\n"
    "     library /httap.js come from the server itself; edit this page, or make your\n"
    '     own next to it (README "The browser console and httap.js"). -->\n'
)


class InitError(Exception):
    """init cannot write its files: one line for the user, saying what was written."""


def starter(name: str) -> dict[Path, bytes]:
    """The files init writes, by path relative to its directory; `name` becomes the id."""
    page = (Path(default_documents()) / "index.html").read_text(encoding="utf-8")
    doctype, _, rest = page.partition("\n")
    return {
        Path(CONFIG): WEB_JSON5.replace("DEVICE_ID", json.dumps(name)).encode(),
        PAGE: f"{doctype}\n{NOTE}{rest}".encode(),
    }


def write_starter(directory: str) -> list[Path]:
    """Write the starter files into `directory` (made if missing); returns their paths.

    Raises InitError, before writing anything, when one of them (or a folder on its
    way) already exists as something it cannot use, and when a file cannot be written.
    """
    root = Path(directory)
    try:
        if os.path.lexists(root):
            root.stat()  # a loop of symbolic links: resolve() lets it pass from Python 3.13
        name = root.resolve().name or "httap"
        files = {root / path: content for path, content in starter(name).items()}
        for path in (root, *{path.parent for path in files}):
            if path.exists() and not path.is_dir():
                raise InitError(f"{path} exists and is not a directory; nothing was written")
        for path in files:
            if path.exists() or path.is_symlink():
                raise InitError(
                    f"{path} exists; nothing was written (move it away, or init another DIR)"
                )
    except (OSError, RuntimeError) as err:  # a name too long; a loop of symbolic links
        reason = unresolvable(err)
        raise InitError(f"cannot use {directory}: {reason}; nothing was written") from None
    written = []
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("xb") as file:  # "x": never over a file made meanwhile
                file.write(content)
            written.append(path)
    except OSError as err:
        done = f" ({', '.join(map(str, written))} written)" if written else ""
        raise InitError(f"cannot write {err.filename or path}: {err.strerror}{done}") from None
    return written
