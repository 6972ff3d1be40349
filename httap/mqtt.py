"""The MQTT bridge: the server speaks MQTT 3.1.1 to one broker from its own poll loop
(docs/protocol.md, "MQTT"). Its topics are PREFIX/ID/... (`mqtt.prefix`, the server's
`id`). Imported only when `mqtt.broker` is configured: it loads paho-mqtt.

Rules of this file:
- paho-mqtt 2.x does the protocol in its external-loop mode (paho's README, "External
  event loop support"): its socket sits in the loop's selector; `loop_read` runs when it
  is readable, `loop_write` when paho has bytes queued (it says so through
  `on_socket_register_write`) and the socket is writable, `loop_misc` (keep-alive pings,
  a silent broker's end) on a loop timer every MISC_EVERY seconds. No thread, no
  `loop_start()`.
- paho's `connect()` and `reconnect()` would block the loop: `socket.create_connection`
  (DNS and the TCP handshake, up to its timeout) and, for mqtts://, `do_handshake()`.
  So the bridge connects by itself: serialport.py's `Dialer` (a non-blocking connect the
  loop watches; a name looked up by a thread that runs getaddrinfo() and nothing else),
  then the TLS handshake driven on readiness (`do_handshake_on_connect=False`), within
  CONNECT_TIMEOUT in all; only then is the connected socket handed to paho, whose
  `reconnect()` takes it (`Link`) and queues CONNECT without blocking. paho 2.x has no
  public way to take a connected socket: `Link` overrides `_create_socket`, the one
  method where paho makes one; paho is pinned, and the tests run it against Mosquitto.
- An attempt that fails (refused, unreachable, no answer, a bad certificate, CONNECT
  refused, a link lost) is tried again after RETRY_FIRST seconds, doubling up to
  RETRY_MAX; a link that got its CONNACK starts again from RETRY_FIRST.
- Published: `status` (retained; `online` once connected; `offline` as the Last Will
  and on a clean stop), each pin's state (retained) on every change heard from the pins'
  change source and all of them on each connect, the app's events, the actions' replies
  and the refusals (`error`), and with `mqtt.discovery` the Home Assistant configs.
- A command is an HTTP request made in memory (`POST /?gpio/PIN`, `POST /?NAME`) that
  the manager answers, so it takes the path of one from the network: the same checks,
  the lease, the audit (the client is `mqtt`), the events and the same replies. MQTT is
  one more client (a session in the registry whose address is `mqtt`): it holds the
  lease until `timeouts.inactivity` seconds after its last command or until the link
  is lost. Under `auth`, the request's rule must be met by `mqtt.role`. A refused
  command is published on PREFIX/ID/error; it never ends the link.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any, Optional, Union
from urllib.parse import quote

import paho.mqtt.client as paho

from httap import __version__, http
from httap.config import mqtt_client_id
from httap.loop import READ, WRITE, Handle, Loop, Periodic
from httap.pins import INPUT, Change, Pin, Pins
from httap.reply import Pending
from httap.serialport import CONNECT_TIMEOUT, Dial, Dialer

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.config import Config
    from httap.manager import Manager
    from httap.session import Session, Sessions

log = logging.getLogger("httap.mqtt")

RETRY_FIRST = 1.0  # seconds before the first new attempt; doubles after each failure
RETRY_MAX = 60.0
MISC_EVERY = 1.0  # seconds between paho's loop_misc runs (keep-alive)
CLIENT = ("mqtt", 0)  # the bridge as a client: its sessions' address is "mqtt"
DISCOVERY = "homeassistant"  # Home Assistant's discovery prefix (its default)
_OBJECT_ID = re.compile(r"[^A-Za-z0-9_-]")  # what Home Assistant's object ids may not hold
_to_json = json.JSONEncoder(separators=(",", ":")).encode


class Link(paho.Client):
    """paho's client, given the socket the bridge has connected (`handed`) when its
    `reconnect()` asks for one, instead of opening it with blocking calls."""

    handed: Optional[socket.socket] = None

    def _create_socket(self) -> Any:
        sock, self.handed = self.handed, None
        if sock is None:  # paho reconnecting by itself (a CONNACK asking for MQTT 3.1)
            raise ConnectionError("the bridge hands paho a connected socket; none is there")
        return sock


class Handshake:
    """The TLS handshake of `sock` (an SSLSocket made with do_handshake_on_connect=False),
    driven on the loop's readiness events: `done(sock, None)` or `done(None, why)`."""

    def __init__(self, loop: Loop, sock: ssl.SSLSocket, done: Any, timeout: float) -> None:
        self.loop = loop
        self.sock: Optional[ssl.SSLSocket] = sock
        self.done = done
        loop.register(sock, WRITE, self)  # ValueError for a descriptor beyond select()
        self.timer = loop.call_later(
            timeout, lambda: self._end(f"no TLS handshake in {timeout:g} s")
        )

    def on_event(self, mask: int) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.loop.modify(sock, READ, self)
            return
        except ssl.SSLWantWriteError:
            self.loop.modify(sock, WRITE, self)
            return
        except (ssl.SSLError, ssl.CertificateError, OSError) as err:
            self._end(f"TLS handshake failed: {getattr(err, 'reason', None) or err}")
            return
        self.sock = None
        self.timer.cancel()
        self.loop.unregister(sock)
        self.done(sock, None)

    def abort(self) -> None:
        self._end("internal error during the TLS handshake; see the log")

    def cancel(self) -> None:
        """Give up without calling `done`."""
        self.timer.cancel()
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.unregister(sock)
            sock.close()

    def _end(self, why: str) -> None:
        if self.sock is not None:
            self.cancel()
            self.done(None, why)


class Bridge:
    """The server's link to the broker of `config.mqtt`, in `loop`: it hears the
    `pins`' changes, and has the `manager` answer commands as the requests of one more
    client, a session of `sessions`, under `auth` (or None)."""

    def __init__(
        self,
        config: Config,
        loop: Loop,
        pins: Pins,
        manager: Manager,
        sessions: Sessions,
        auth: Optional[Auth],
    ) -> None:
        settings = config.mqtt
        assert settings.broker is not None
        self.broker = settings.broker
        self.settings = settings
        self.device = config.id
        self.inactivity = config.timeouts.inactivity
        self.loop = loop
        self.pins = pins
        self.manager = manager
        self.sessions = sessions
        self.auth = auth
        self.base = f"{settings.prefix}/{config.id}"
        self.status_topic = f"{self.base}/status"
        # System CAs unless `ca` names a file; the host name is checked (RFC 6125).
        self.tls = ssl.create_default_context(cafile=settings.ca) if self.broker.secure else None
        self.dialer = Dialer(loop)
        self.attempt: Union[Dial, Handshake, None] = None  # the connect under way
        self.retry: Optional[Handle] = None
        self.delay = RETRY_FIRST
        self.misc: Optional[Periodic] = None
        self.sock: Optional[socket.socket] = None  # paho's socket, while in the selector
        self.connected = False  # CONNACK received, and the link not lost since
        self.failures = 0  # attempts failed in a row (the first is logged as a warning)
        self.session: Optional[Session] = None  # the bridge as a client, while it drives
        self.idle: Optional[Handle] = None
        self.closed = False
        client = self.client = Link(
            paho.CallbackAPIVersion.VERSION2,
            client_id=mqtt_client_id(config),
            protocol=paho.MQTTv311,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.connect_async(self.broker.host, self.broker.port, settings.keepalive)  # no I/O
        pins.subscribe(self._changed)

    # -- connecting ------------------------------------------------------------------

    def start(self) -> None:
        """The first attempt; the loop does the rest."""
        self._attempt()

    def _attempt(self) -> None:
        self.retry = None
        log.debug("connecting to %s", self.broker.url)
        self.attempt = self.dialer.dial(self.broker.host, self.broker.port, self._dialed)

    def _dialed(self, sock: Optional[socket.socket], error: Optional[str]) -> None:
        self.attempt = None
        if sock is None:
            self._failed(error or "cannot connect")
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            self._hand_over(sock, None)
            return
        try:
            secure = self.tls.wrap_socket(
                sock, server_hostname=self.broker.host, do_handshake_on_connect=False
            )
        except (ssl.SSLError, OSError, ValueError) as err:
            sock.close()
            self._failed(f"cannot start TLS: {err}")
            return
        try:
            self.attempt = Handshake(self.loop, secure, self._hand_over, CONNECT_TIMEOUT)
        except ValueError as err:  # a descriptor beyond select()
            secure.close()
            self._failed(f"cannot watch the TLS handshake: {err}")

    def _hand_over(self, sock: Optional[socket.socket], error: Optional[str]) -> None:
        """A connected (and TLS-secured) socket: paho takes it and sends CONNECT."""
        self.attempt = None
        if sock is None:
            self._failed(error or "cannot connect")
            return
        self.client.handed = sock
        try:
            self.client.reconnect()
        except (OSError, ValueError) as err:
            self.client.handed = None
            sock.close()
            self._failed(f"cannot start MQTT: {err}")

    def _failed(self, why: str) -> None:
        """An attempt failed, or the link was lost: say so (a warning the first time in
        a row, then at debug level) and try again after the back-off delay."""
        if self.closed or self.retry is not None:
            return
        self.failures += 1
        level = logging.WARNING if self.failures == 1 else logging.DEBUG
        log.log(level, "%s: %s; trying again in %g s", self.broker.url, why, self.delay)
        self.retry = self.loop.call_later(self.delay, self._attempt)
        self.delay = min(self.delay * 2, RETRY_MAX)

    # -- paho's socket in the loop -------------------------------------------------------

    def _on_socket_open(self, client: Any, userdata: Any, sock: Any) -> None:
        self.sock = sock
        self.loop.register(sock, READ, self)
        self.misc = self.loop.every(
            MISC_EVERY, client.loop_misc, name="mqtt keep-alive", internal=True
        )

    def _on_register_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if sock is self.sock:
            self.loop.modify(sock, READ | WRITE, self)

    def _on_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        if sock is self.sock:
            self.loop.modify(sock, READ, self)

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        """paho closes its socket (a lost link, a refused CONNECT, a silent broker, or
        the bridge's own close): out of the loop, and the link's state ends."""
        self.loop.unregister(sock)
        self.sock = None
        if self.misc is not None:
            self.misc.cancel()
            self.misc = None
        was = self.connected
        self.connected = False
        if was:
            self.manager.watches.unfollow()
        self._end_session()
        self._failed("the link is closed" if was else "the broker closed the link")

    def on_event(self, mask: int) -> None:
        """paho's socket is ready. A TLS socket may hold decrypted bytes that select()
        cannot see: they are read before the loop waits again."""
        client = self.client
        if mask & READ:
            client.loop_read()
            sock = self.sock
            while isinstance(sock, ssl.SSLSocket) and sock is self.sock and sock.pending():
                client.loop_read()
        if mask & WRITE and self.sock is not None:
            client.loop_write()

    def abort(self) -> None:
        """The loop calls this when `on_event` raised: drop the link; it is tried again."""
        self._close_socket()

    def _close_socket(self) -> None:
        """Close paho's socket by paho's own close, so that its state and callbacks
        follow (paho has no public call for it: `disconnect()` waits for the broker)."""
        if self.client.socket() is not None:
            self.client._sock_close()

    # -- paho's events -----------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            level = logging.WARNING if not self.failures else logging.DEBUG
            log.log(level, "%s refused the connection: %s", self.broker.url, reason)
            return  # the broker closes the link; the next attempt follows
        log.info("connected to %s as %s", self.broker.url, self.base)
        self.connected = True
        self.failures = 0
        self.delay = RETRY_FIRST
        client.subscribe([(f"{self.base}/gpio/+/set", 0), (f"{self.base}/action/#", 0)])
        self.manager.watches.follow()  # the inputs are sampled: their changes are published
        client.publish(self.status_topic, "online", qos=1, retain=True)
        if self.settings.discovery:
            for pin in self.pins.by_name.values():
                topic, config = discovery(pin, self.device, self.base, self.pins.backend.name)
                client.publish(topic, _to_json(config), qos=1, retain=True)
        for pin in self.pins.by_name.values():
            client.publish(self._state_topic(pin), self._state(pin), retain=True)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        log.debug("disconnected from %s: %s", self.broker.url, reason)

    # -- the pins' state ---------------------------------------------------------------

    def _state_topic(self, pin: Pin) -> str:
        return f"{self.base}/gpio/{pin.name}"

    def _state(self, pin: Pin) -> str:
        """A pin's retained payload: its level ("0", "1"), or a PWM pin's setting as JSON."""
        if pin.wave is not None:
            return _to_json(self.pins.state(pin)["pwm"])  # as GET /?gpio/PIN says it
        return str(self.pins.backend.read(pin.gpio))

    def _changed(self, change: Change) -> None:
        """The pins' change source: every change is published, retained, whatever made
        it; a repeat is none, nor is an edge of a PWM wave that the sampler saw."""
        if not self.connected or change.repeat:
            return
        pin = change.pin
        if change.level is None:
            payload = self._state(pin)
        elif change.kind == INPUT and pin.wave is not None:
            return
        else:
            payload = str(change.level)
        self.client.publish(self._state_topic(pin), payload, retain=True)

    # -- the app's events --------------------------------------------------------------

    def event(self, name: str, data: Any) -> None:
        """`server.publish(name, data)`: data as JSON on PREFIX/ID/event/NAME (checked
        by the event room already). A name that is no topic ("+", "#") is logged."""
        if not self.connected:
            return
        try:
            self.client.publish(f"{self.base}/event/{name}", _to_json(data))
        except ValueError as err:
            log.warning("the event %r cannot be published: %s", name, err)

    # -- commands ----------------------------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        topic = message.topic
        rest = topic[len(self.base) + 1 :]
        if rest.startswith("gpio/") and rest.endswith("/set"):
            path, reply = "gpio/" + rest[5:-4], None
        elif rest.startswith("action/") and not rest.endswith("/reply"):
            path = rest[7:]
            reply = f"{topic}/reply"
        else:
            return  # an action's reply, which action/# hears too
        if message.retain:
            self._refused(
                topic,
                "retained",
                "a retained command is not run: it would run again on every connect;"
                " publish commands without the retain flag",
                reply,
            )
            return
        self.command(topic, path, message.payload, reply)

    def command(self, topic: str, path: str, body: bytes, reply: Optional[str]) -> None:
        """Run the command that came on `topic`: `POST /?PATH` with `body`, as a client
        whose address is `mqtt`; its reply goes to `reply` (an action's), a refusal to
        PREFIX/ID/error."""
        if reply is not None and path not in self.manager.actions.registered:
            names = ", ".join(self.manager.actions.names()) or "none"
            self._refused(
                topic, "unknown-action", f"no action is named {path!r}; the actions: {names}", reply
            )
            return
        request = http.Request("POST", "/?" + quote(path, safe="/"), "HTTP/1.1", {}, False)
        request.body = bytes(body)
        request.client = CLIENT
        request.session = self._active()
        if self.auth is not None:
            try:
                self.auth.admit(request, self.settings.role, f"mqtt.role ({self.settings.role})")
            except http.HTTPError as err:
                self._refused(topic, err.code, err.message, reply)
                return
        answer = self.manager.handle(request)
        if isinstance(answer, Pending):
            answer.bind(lambda response: self._answered(topic, response, reply))
        else:
            self._answered(topic, answer, reply)

    def _answered(self, topic: str, response: Any, reply: Optional[str]) -> None:
        """The manager's reply to a command: the body to `reply` (an action's); a
        refusal, its code and message, to PREFIX/ID/error (and to `reply` too)."""
        body = response.body if isinstance(response, http.Response) else b""
        if isinstance(response, http.Response) and response.status >= 400:
            try:
                error = json.loads(body)
                code, message = error["error"], error["message"]
            except (ValueError, KeyError, TypeError):
                code, message = "refused", f"status {response.status}"
            self._refused(topic, code, message, None)
        if reply is not None and self.connected:
            self.client.publish(reply, body)

    def _refused(self, topic: str, code: str, message: str, reply: Optional[str]) -> None:
        log.info("%s refused: %s", topic, message)
        if not self.connected:
            return
        refusal = _to_json({"topic": topic, "error": code, "message": message})
        self.client.publish(f"{self.base}/error", refusal)
        if reply is not None:
            self.client.publish(reply, _to_json({"error": code, "message": message}))

    # -- the bridge as a client of the lease ---------------------------------------------

    def _active(self) -> Session:
        """The bridge's session, opened by its first command and kept while commands
        come: `timeouts.inactivity` seconds after the last one, it closes (the lease
        goes with it, as a connection's)."""
        now = self.loop.now
        session = self.session
        if session is None:
            session = self.session = self.sessions.open(CLIENT, now)
            self.idle = self.loop.call_later(self.inactivity, self._check_idle)
        session.last_active = now
        return session

    def _check_idle(self) -> None:
        session = self.session
        self.idle = None
        if session is None:
            return
        left = session.last_active + self.inactivity - self.loop.clock()
        if left > 0:
            self.idle = self.loop.call_later(left, self._check_idle)
        else:
            self._end_session()

    def _end_session(self) -> None:
        session, self.session = self.session, None
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        if session is not None:
            self.sessions.close(session)

    # -- stopping ----------------------------------------------------------------------

    def close(self) -> None:
        """The server stops: `offline` (retained) and DISCONNECT, written as far as the
        socket takes them now (the broker publishes the Last Will otherwise), then the
        link is closed."""
        self.closed = True
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        if self.attempt is not None:
            self.attempt.cancel()
            self.attempt = None
        client = self.client
        if self.connected:
            client.publish(self.status_topic, "offline", qos=1, retain=True)
            client.disconnect()
            try:
                client.loop_write()
            except OSError:
                pass  # the broker's Last Will says it
        self._close_socket()
        self._end_session()


def discovery(pin: Pin, device: str, base: str, board: str) -> tuple[str, dict]:
    """The Home Assistant discovery topic and config of `pin` (Home Assistant's "MQTT
    Discovery"): a switch for an output, a binary sensor for an input, a number
    (the duty cycle, 0 to 1) for a PWM pin; all of one device, `device` (the
    server's id) on `board` (the backend's name), whose topics are under `base`
    (PREFIX/ID), available while its `status` says `online`."""
    state = f"{base}/gpio/{pin.name}"
    object_id = _OBJECT_ID.sub("_", f"{device}_{pin.name}")
    config: dict[str, Any] = {
        "name": pin.name,
        "unique_id": f"httap_{object_id}",
        "state_topic": state,
        "availability_topic": f"{base}/status",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [f"httap_{_OBJECT_ID.sub('_', device)}"],
            "name": device,
            "manufacturer": "httap",
            "model": f"GPIO over {board}",
            "sw_version": __version__,
        },
    }
    if pin.mode == "pwm":
        component = "number"
        config.update(
            command_topic=f"{state}/set",
            command_template='{"pwm": {"duty": {{ value }}}}',
            value_template="{{ value_json.duty }}",
            min=0,
            max=1,
            step=0.01,
            mode="slider",
        )
    elif pin.is_output:
        component = "switch"
        config.update(
            command_topic=f"{state}/set",
            payload_on="1",
            payload_off="0",
            state_on="1",
            state_off="0",
        )
    else:
        component = "binary_sensor"
        config.update(payload_on="1", payload_off="0")
    return f"{DISCOVERY}/{component}/{object_id}/config", config
