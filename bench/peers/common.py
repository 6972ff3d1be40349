"""What every peer shares: its command line, the GPIO reply and the 1 kHz task's figures."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.append(str(BENCH))  # after the libraries: bench/ has plain names (tools, load)

from lateness import INTERVAL, Lateness  # noqa: E402

GPIO_QUERY = "gpio/4"  # the target is /?gpio/4: the path is / and the query gpio/4
GPIO_BODY = b'{"gpio":4,"mode":"in","value":0}'
LATENESS_PATH = "/bench/lateness"

__all__ = ["GPIO_BODY", "GPIO_QUERY", "INTERVAL", "LATENESS_PATH", "Lateness", "arguments"]


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--docs", default=str(BENCH / "docs"), help="the static files")
    parser.add_argument(
        "--tick", action="store_true", help=f"run the 1 kHz task, figures at {LATENESS_PATH}"
    )
    return parser.parse_args()
