"""Drive every httap device of a broker, through the broker alone (README "Example: fleet").

    python examples/fleet/drive.py [--broker mqtt://127.0.0.1:1883] [--rounds 3]

It finds the devices by their retained PREFIX/ID/status (`online`), then, round after
round, lights each one's `led` and puts it out again: it publishes PREFIX/ID/gpio/led/set
and waits for the retained state PREFIX/ID/gpio/led to say so, printing the time each
took. A refused command (another client drives that device: the lease) is printed from
PREFIX/ID/error. It needs paho-mqtt (`pip install 'httap[mqtt]'`).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from urllib.parse import urlsplit

import paho.mqtt.client as paho

WAIT = 3.0  # seconds a device may take to answer


class Fleet:
    """What the broker says of the devices under `prefix`: who is online, each led's level."""

    def __init__(self, broker: str, prefix: str) -> None:
        self.prefix = prefix
        self.online: set[str] = set()
        self.leds: dict[str, bytes] = {}
        self.changed = threading.Condition()
        url = urlsplit(broker)
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._heard
        self.client.connect(url.hostname, url.port or 1883)
        self.client.subscribe(
            [(f"{prefix}/+/status", 1), (f"{prefix}/+/gpio/led", 1), (f"{prefix}/+/error", 1)]
        )
        self.client.loop_start()

    def _heard(self, client, userdata, message) -> None:
        device, _, what = message.topic[len(self.prefix) + 1 :].partition("/")
        with self.changed:
            if what == "status":
                (self.online.add if message.payload == b"online" else self.online.discard)(device)
            elif what == "gpio/led":
                self.leds[device] = message.payload
            elif what == "error":
                refusal = json.loads(message.payload)
                print(f"{device}: refused: {refusal['error']}: {refusal['message']}")
            self.changed.notify_all()

    def set_led(self, device: str, level: int) -> float:
        """Publish the command, wait for the state: the seconds it took (NaN: no answer)."""
        started = time.perf_counter()
        with self.changed:
            self.client.publish(f"{self.prefix}/{device}/gpio/led/set", str(level))
            answered = self.changed.wait_for(
                lambda: self.leds.get(device) == str(level).encode(), WAIT
            )
        return time.perf_counter() - started if answered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--prefix", default="httap")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    fleet = Fleet(options.broker, options.prefix)
    time.sleep(1.0)  # the retained statuses arrive
    devices = sorted(fleet.online)
    print("online:", ", ".join(devices) or "none")
    for number in range(options.rounds):
        for device in devices:
            on, off = fleet.set_led(device, 1), fleet.set_led(device, 0)
            print(f"round {number + 1} {device}: led on {on * 1e3:.1f} ms, off {off * 1e3:.1f} ms")
    fleet.client.loop_stop()
    fleet.client.disconnect()


if __name__ == "__main__":
    main()
