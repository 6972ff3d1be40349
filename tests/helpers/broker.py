"""A real Mosquitto broker for the MQTT tests (and bench/mqtt.py), and a paho client that
watches it.

`Mosquitto` starts Debian's `mosquitto` (the Makefile's test tools install it) as a
child on a free loopback port, with a configuration file it writes: never the system
service. It can be killed and started again on the same port, with a password file
(`users`) or a TLS listener (`tls`: a certificate and key; the port is then TLS only).
`Watcher` is a paho-mqtt client in a thread of its own (a test is no loop) that records
every message on the topics it subscribes to.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple, Optional

import paho.mqtt.client as paho

from tests.helpers import free_port

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"  # sbin is off users' PATH


class Mosquitto:
    """One broker process on 127.0.0.1:`port` (free when not given), its files in `where`."""

    def __init__(
        self,
        where: Path,
        users: Optional[dict[str, str]] = None,
        tls: Optional[tuple[str, str]] = None,
        port: Optional[int] = None,
    ) -> None:
        self.where = where
        self.port = port or free_port()
        self.log = where / "mosquitto.log"
        lines = [
            f"user {getpass.getuser()}",  # run as root, it would become `mosquitto`
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if users:
            passwords = where / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), user, password], check=True
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            certificate, key = tls
            lines += [f"certfile {certificate}", f"keyfile {key}"]
        self.conf = where / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:  # listening?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    said = self.said()
                    raise AssertionError(f"mosquitto did not start: {said}") from None
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the broker is gone at once (its retained messages with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def said(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Message(NamedTuple):
    topic: str
    payload: bytes
    retain: bool


class Watcher:
    """A paho client of `broker` (TLS with `ca`), subscribed to `topics` (wildcards
    welcome); `messages` holds what came, in order."""

    def __init__(
        self,
        broker: Mosquitto,
        *topics: str,
        ca: Optional[str] = None,
        auth: Optional[tuple[str, str]] = None,
    ) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Condition()  # notified on each message
        self.subscribed = threading.Event()
        client = self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if ca:
            client.tls_set(ca_certs=ca)
        if auth:
            client.username_pw_set(*auth)
        client.on_message = self._on_message
        client.on_subscribe = lambda *args: self.subscribed.set()
        client.connect("127.0.0.1", broker.port, keepalive=10)
        client.loop_start()
        if topics:
            client.subscribe([(topic, 0) for topic in topics])
            assert self.subscribed.wait(5), "the broker did not acknowledge the subscription"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        with self.lock:
            self.messages.append(Message(message.topic, bytes(message.payload), message.retain))
            self.lock.notify_all()

    def on(self, topic: str) -> list[Message]:
        with self.lock:
            return [message for message in self.messages if message.topic == topic]

    def wait(self, topic: str, payload: Optional[bytes] = None, timeout: float = 5.0) -> Message:
        """The first message on `topic` (with `payload`, if given), waiting for it."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for message in self.messages:
                    if message.topic == topic and (payload is None or message.payload == payload):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {payload!r} on {topic}; got {self.messages[-20:]}")
                self.lock.wait(left)

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()

    def publish(self, topic: str, payload: Any, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
