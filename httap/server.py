"""The server: listening sockets, accepted connections, the router and the public API.

The router is short. First the gates: an authority (the Host header, or an
absolute-form target's, which wins) that `hosts` does not list is refused (DNS
rebinding), a configured redirect answers its paths, and `auth` may refuse the
request. Then a target that starts with `/?` goes to the HTTaP manager, everything
else to the static files. Whoever answers, `reply_headers` adds CORS to the reply.
"""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import logging
import math
import os
import socket
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from gpio import GpioError, open_backend
from httap import http
from httap.config import Config, ListenAddress, Redirect, default_documents
from httap.connection import Connection, Pending
from httap.logs import Logs
from httap.loop import MAX_DELAY, READ, Handle, Loop, Periodic, callback_checked, seconds
from httap.manager import Manager
from httap.pins import Pins
from httap.serialport import SerialPort, endpoint
from httap.session import Lease
from httap.static import StaticFiles

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.tls import Secure

log = logging.getLogger("httap.server")

ACCEPTS_PER_TURN = 32
ACCEPT_PAUSE = 0.25  # seconds to stop accepting when the process is out of descriptors
STOP_GRACE = 10.0  # seconds that responses in flight get to finish on a graceful stop
# Served from the server's own app (static/) when the documents lack them: the client
# library and the console's script, which any page may import, and the icon a browser
# asks for by itself, so that no page's load leaves a 404 in the log.
BUILT_IN = frozenset(("/httap.js", "/console.js", "/favicon.ico"))
MAX_AUTHORITIES = 256  # the hosts gate's remembered verdicts; cleared when full

Reply = Union[http.Response, Pending]


class StartupError(Exception):
    """The server cannot start: one clear line for the user."""


class Listener:
    """A listening socket in the loop; accepts a bounded batch per wake-up."""

    def __init__(
        self, server: Server, sock: socket.socket, url: str, secure: Optional[Secure] = None
    ) -> None:
        self.server = server
        self.sock = sock
        self.url = url
        self.secure = secure  # the TLS set-up of an https:// listener

    def on_event(self, mask: int) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, client = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.server.pause_accepting(err)
                    return
                continue  # ECONNABORTED and friends: that one client is gone
            self.server.accepted(sock, client, self.secure)


class Server:
    """Owns the loop's sockets; `route` decides which domain answers a request."""

    def __init__(self, config: Config, loop: Optional[Loop] = None) -> None:
        self.config = config
        try:
            self.logs = Logs.open(config.log)
        except OSError as err:
            message = f"cannot open the access log {config.log.access}: {err.strerror}"
            raise StartupError(message) from None
        self.loop = loop or Loop(Loop.selector_for(config.limits.connections))
        self.serve_documents_from(config.documents)
        # Read once, now, and never rechecked: a chroot leaves the app's files out of reach.
        self.library = StaticFiles(
            default_documents(),
            config.index,
            config.mime,
            config.headers,
            recheck=math.inf,
            cache=config.cache,
        )
        for path in BUILT_IN:
            self.library.handle(http.Request("GET", path, "HTTP/1.1", {}, False))
        self.redirects = config.redirect
        self.hosts = _allowed_hosts(config)
        self._authorities: dict[Optional[str], bool] = {}  # the hosts gate's verdicts
        self.auth: Optional[Auth] = None
        if any(route.role for route in config.auth.routes):
            from httap.auth import Auth  # scrypt and friends, only when passwords are asked

            self.auth = Auth(config.auth, lambda: self.loop.now)
        self.secure = tls_setup(config)
        self.listeners: list[Listener] = []
        self.connections: set[Connection] = set()
        self.stopping = False
        self._paused = False
        # The serial ports: the app may repoint one (`url`) in setup, then they open.
        self.serial = {
            name: SerialPort(name, settings, self.loop) for name, settings in config.serial.items()
        }
        try:
            self.pins = Pins(config.gpio.pins, open_backend(config.gpio.backend), self.loop)
        except GpioError as err:
            raise StartupError(f"cannot set up the GPIO pins: {err}") from None
        lease = Lease(config.session.exclusive, self.pins.apply_safe_values)
        self.manager = Manager(
            config, self.loop, self.pins, lease, self.serial, self.auth, self.connections
        )
        # reply_headers(request, response) -> bytes: header lines that every reply
        # carries besides its own, whoever made it; the one place CORS is applied. The
        # connection calls it as it queues any reply, a late one or a protocol error's.
        # None without `cors.origins`: then no reply pays for it.
        self.reply_headers: Optional[Callable[[http.Request, http.Response], bytes]] = (
            self.manager.cors.headers if config.cors.origins else None
        )
        if config.app:
            self.load_app(config.app)
        for name, port in self.serial.items():  # all checked before any opens
            try:
                endpoint(port.url)
            except ValueError as err:
                self.close()
                raise StartupError(f"serial.{name}.port: {err}") from None
        for port in self.serial.values():
            port.start()

    # -- the public API for applications -----------------------------------------

    def action(self, name: str, methods: tuple[str, ...] = ("GET",)) -> Callable:
        """Decorator: `@server.action("car/forward", methods=("POST",))` serves `/?car/forward`."""
        return self.manager.actions.register(name, methods)

    def pin(self, name: str) -> Any:
        """A declared pin (`gpio.Pin`), by name or GPIO number."""
        return self.pins.declared(name)

    def state(self, name: str) -> dict:
        """A declared pin's state, as `GET /?gpio/NAME` gives it."""
        return self.pins.state_of(name)

    def read(self, name: str) -> int:
        """A declared pin's level."""
        return self.state(name)["value"]

    def write(self, name: str, value: Any) -> None:
        """Drive a declared output as a request would (ends its pulse or PWM, wakes
        its long-polls). Use this rather than `server.gpio.write`, which bypasses that."""
        self.pins.write(name, value)

    def pwm(
        self, name: str, frequency: Optional[float] = None, duty: Optional[float] = None
    ) -> None:
        """Start or change the wave of a declared "pwm" pin."""
        self.pins.pwm(name, frequency, duty)

    @property
    def gpio(self) -> Any:
        """The GPIO backend (a `gpio.Backend`; the simulated board where there is no GPIO)."""
        return self.pins.backend

    def load_app(self, path: str) -> None:
        """Import a Python file and call its `setup(server)`; errors name the file and line."""
        spec = importlib.util.spec_from_file_location(f"httap_app_{Path(path).stem}", path)
        if spec is None or spec.loader is None:
            raise StartupError(f"cannot load the app {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            setup = getattr(module, "setup", None)
            if not callable(setup):
                raise StartupError(f"cannot load the app {path}: it has no setup(server) function")
            setup(self)
        except StartupError:
            raise
        except Exception as err:
            line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else None
            for frame in traceback.extract_tb(err.__traceback__):
                if frame.filename == path:
                    line = frame.lineno
            where = f"{path}, line {line}" if line else path
            raise StartupError(
                f"cannot load the app {where}: {type(err).__name__}: {err}"
            ) from None

    def every(
        self, interval: float, callback: Callable[[], Any], name: Optional[str] = None
    ) -> Periodic:
        """A periodic task on absolute deadlines, every `interval` seconds (1 µs to a
        year); `name` labels it in `GET /?stats` and the log. ValueError or TypeError
        here, at the call, for a bad interval or callback."""
        return self.loop.every(interval, callback, name)

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` once, `delay` seconds from now (0 to a year). ValueError or
        TypeError here, at the call, for a bad delay or callback."""
        delay = seconds(delay, "delay", 0.0, MAX_DELAY)
        return self.loop.call_later(delay, callback_checked(callback))

    def call_at(self, when: float, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` once at `when`, a `time.monotonic()` time from 0 (a time
        past runs at once) to a year from now. ValueError or TypeError here, at the
        call, for a bad time or callback."""
        limit = self.loop.clock() + MAX_DELAY
        when = seconds(when, "when, a time.monotonic() time up to a year from now,", 0.0, limit)
        return self.loop.call_at(when, callback_checked(callback))

    def idle(self, callback: Callable[[], Any]) -> Handle:
        """Run `callback()` on every iteration of the loop (TypeError if it is not callable)."""
        return self.loop.idle(callback_checked(callback))

    @property
    def mode(self) -> str:
        """The loop's mode: "sleep" (the default) or "spin" (never waits: 100% CPU)."""
        return self.loop.mode

    @mode.setter
    def mode(self, mode: str) -> None:
        self.loop.mode = mode

    def serve_documents_from(self, root: str) -> None:
        """Serve the static files under `root`: "/" once chroot has made it the documents.

        A fresh StaticFiles, since every path the old one resolved or cached is gone.
        """
        config = self.config
        self.static = StaticFiles(
            root, config.index, config.mime, config.headers, cache=config.cache
        )
        self.documents_root = root

    def check_documents(self) -> None:
        """Log a WARNING for documents that cannot answer `/`: a directory this process
        cannot enter (every file would be 404), or an `index` that is missing (404),
        unreadable or a link out of the directory (403). Run it once the process is
        the user it serves as (after privileges are dropped): that user's rights count.
        `/` is resolved as a request's would be."""
        shown, index = self.config.documents, self.config.index
        if not os.access(self.documents_root, os.X_OK):
            log.warning(
                "documents %s: this server's user (uid %d) cannot open files in the"
                " directory, so every file answers 404; give it access (chmod a+rx %s)",
                shown,
                os.geteuid(),
                shown,
            )
            return
        status = self.static.handle(http.Request("GET", "/", "HTTP/1.1", {}, False)).status
        if status == 404:
            log.warning(
                "documents %s: there is no %s, so / answers 404; add one (`httap init`"
                " writes a starter page) or set `index` to the page to serve",
                shown,
                index,
            )
        elif status != 200:
            log.warning(
                "documents %s: %s cannot be read by this server's user (uid %d) or is a"
                " link out of the directory, so / answers %d; make it a readable file"
                " (chmod a+r) inside %s",
                shown,
                index,
                os.geteuid(),
                status,
                shown,
            )

    # -- listening and accepting -------------------------------------------------

    def listen(self) -> list[str]:
        """Open every configured address; returns their URLs with the real ports."""
        for address in self.config.listen:
            sock = self._bind(address)
            host, port = sock.getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            secure = self.secure if address.scheme == "https" else None
            listener = Listener(self, sock, f"{address.scheme}://{shown}:{port}", secure)
            self.listeners.append(listener)
            self.loop.register(sock, READ, listener)
        return [listener.url for listener in self.listeners]

    def _bind(self, address: ListenAddress) -> socket.socket:
        host = address.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if host == "" and socket.has_ipv6:
            family, host = socket.AF_INET6, "::"
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            if host != "::":
                raise StartupError(f"cannot listen on {address.url}: no IPv6 here") from None
            family, host = socket.AF_INET, "0.0.0.0"
            sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and address.host == "":
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind((host, address.port))
            sock.listen(min(1024, max(128, self.config.limits.connections)))
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            reason = err.strerror or str(err)
            if err.errno == errno.EADDRINUSE:
                reason = "the address is already in use (another server? pick another port)"
            elif err.errno == errno.EACCES:
                reason = "permission denied (ports below 1024 need privileges)"
            raise StartupError(f"cannot listen on {address.url}: {reason}") from None
        return sock

    def accepted(self, sock: socket.socket, client: tuple, secure: Optional[Secure] = None) -> None:
        sock.setblocking(False)
        fd_limit = self.loop.fd_limit
        if fd_limit is not None and sock.fileno() >= fd_limit:
            self._unwatchable(sock, secure)
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # reset by the client already
            sock.close()
            return
        full = len(self.connections) >= self.config.limits.connections
        if full and secure is not None:
            sock.close()  # a plain-text 503 means nothing to a TLS client
            return
        connection = Connection(self, sock, client, secure)
        self.connections.add(connection)
        connection.start()
        if full:
            limit = self.config.limits.connections
            connection.refuse(
                503,
                f"service unavailable: {limit} connections are open,"
                " the limit (limits.connections)",
            )
        else:
            self.manager.connection_opened(connection)

    def _unwatchable(self, sock: socket.socket, secure: Optional[Secure]) -> None:
        """A descriptor too high for select(): answer 503 as far as the socket takes it
        without waiting, and close; registering it would stop the whole loop."""
        log.warning(
            "descriptor %d is beyond select(); refusing a connection (lower"
            " limits.connections or the files open at once)",
            sock.fileno(),
        )
        if secure is not None:
            sock.close()
            return
        reply = http.error_response(
            503, "service unavailable: too many descriptors open; try again shortly"
        )
        try:
            sock.send(
                reply.head_bytes() + http.date_line() + http.CLOSE_LINE + b"\r\n" + reply.body
            )
        except OSError:
            pass
        sock.close()

    def pause_accepting(self, err: OSError) -> None:
        """Out of descriptors: stop accepting for a moment instead of spinning on the error."""
        if self._paused:
            return
        log.warning("cannot accept: %s; pausing for %g s", err.strerror, ACCEPT_PAUSE)
        self._paused = True
        for listener in self.listeners:
            self.loop.unregister(listener.sock)
        self.loop.call_later(ACCEPT_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._paused = False
        if self.stopping:
            return
        for listener in self.listeners:
            self.loop.register(listener.sock, READ, listener)

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self.manager.connection_closed(connection)
        if self.stopping and not self.connections:
            self.loop.stop()

    # -- requests ----------------------------------------------------------------

    def route(self, request: http.Request) -> Reply:
        dynamic = request.target.startswith("/?")
        if self.hosts is not None and not self._for_us(request.authority):
            host = request.authority
            message = f"misdirected request: this server does not answer for the host {host!r}"
            refusal = http.HTTPError(421, "misdirected", message + " (hosts)")
            return self._refuse(request, dynamic, refusal)
        if self.redirects and not dynamic:
            moved = _redirect(self.redirects, request)
            if moved is not None:
                return moved
        if self.auth is not None:
            try:
                wait = self.auth.check(request)
            except http.HTTPError as refusal:
                return self._refuse(request, dynamic, refusal)
            if wait:
                return self._hold_for_sign_in(request, dynamic, wait)
        return self._dispatch(request, dynamic)

    def _for_us(self, authority: Optional[str]) -> bool:
        """The hosts gate's verdict on the authority a request is for, remembered."""
        verdict = self._authorities.get(authority)
        if verdict is None:
            verdict = _host_allowed(self.hosts, authority)
            if len(self._authorities) >= MAX_AUTHORITIES:
                self._authorities.clear()
            self._authorities[authority] = verdict
        return verdict

    def _dispatch(self, request: http.Request, dynamic: bool) -> Reply:
        """Past the gates: the HTTaP manager or the files."""
        if dynamic:
            return self.manager.handle(request)
        response = self.static.handle(request)
        if response.status == 404 and request.target.partition("?")[0] in BUILT_IN:
            return self.library.handle(request)  # every page can import /httap.js
        return response

    def _hold_for_sign_in(self, request: http.Request, dynamic: bool, wait: float) -> Pending:
        """Hold the request until its password's turn to be checked, then route it."""

        def turn() -> Reply:
            try:
                self.auth.finish(request)
            except http.HTTPError as refusal:
                return self._refuse(request, dynamic, refusal)
            try:
                return self._dispatch(request, dynamic)
            except Exception:
                log.exception("handler failed for %r", request)
                return http.error_response(500, "internal server error: the handler failed")

        return self._later(wait, turn)

    def _later(self, delay: float, reply: Callable[[], Reply]) -> Pending:
        """A reply that `reply()` makes in `delay` seconds, unless the client leaves first."""
        held = Pending()
        timer = self.loop.call_later(delay, lambda: held.hand_over(reply()))
        held.on_cancel(timer.cancel)
        return held

    def _refuse(self, request: http.Request, dynamic: bool, refusal: http.HTTPError) -> Reply:
        """A gate's refusal, in its domain's format: JSON for `/?`, a line of text for
        files; held back `refusal.delay` seconds (a failed sign-in) without blocking."""
        if dynamic:
            response = self.manager.finish(request, refusal)
        else:
            response = http.error_response(refusal.status, refusal.message)
            response.headers.extend(refusal.headers)
        if not refusal.delay:
            return response
        return self._later(refusal.delay, lambda: response)

    # -- running and stopping ----------------------------------------------------

    def serve_forever(self) -> None:
        """Run the loop until `stop()` has finished; then release every socket."""
        try:
            self.loop.run()
        finally:
            self.close()

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop accepting, let the responses in flight finish (at most `grace` s), then stop.

        A second call stops at once.
        """
        if self.stopping:
            self.loop.stop()
            return
        self.stopping = True
        self.loop.call_later(grace, self.loop.stop)  # first, so that nothing below can undo it
        for listener in self.listeners:
            self.loop.unregister(listener.sock)
            listener.sock.close()
        self.listeners.clear()
        for step in (self.manager.stop, *(port.stop for port in self.serial.values())):
            try:
                step()
            except Exception:
                log.exception("stopping: %r failed", step)
        for connection in list(self.connections):
            connection.shutdown()
        if not self.connections:
            self.loop.stop()

    def close(self) -> None:
        for listener in self.listeners:
            listener.sock.close()
        self.listeners.clear()
        for connection in list(self.connections):
            connection.abort()
        self.pins.close()
        for port in self.serial.values():
            port.close()
        if self.logs is not None:
            self.logs.close()
        self.loop.close()


def _allowed_hosts(config: Config) -> Optional[frozenset[str]]:
    """The names a Host header may give, or None when any is fine (`hosts` empty)."""
    if not config.hosts:
        return None
    return frozenset(name.lower().rstrip(".") for name in (*config.hosts, "localhost"))


def _host_allowed(hosts: frozenset[str], authority: Optional[str]) -> bool:
    """A listed name, localhost, or an IP address: a page from another site can make
    a browser send its own name here (DNS rebinding), never an address literal.

    `authority` is `request.authority`, whose syntax the parser has checked (so only a
    port follows a ":" outside brackets); None: an HTTP/1.0 request that names none,
    which no browser sends."""
    if authority is None:
        return True
    host = authority.lower()
    if host.startswith("["):
        name = host[1 : host.find("]")]
    else:
        name = host.partition(":")[0]
    name = name.rstrip(".")
    if name in hosts:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def tls_setup(config: Config) -> Optional[Secure]:
    """The TLS set-up, made only when an https:// address is configured (see tls.py)."""
    if not config.https:
        return None
    from httap.tls import Secure, TlsSetupError

    try:
        return Secure(config.tls)
    except TlsSetupError as err:
        raise StartupError(f"cannot set up TLS: {err}") from None


def _redirect(rules: tuple[Redirect, ...], request: http.Request) -> Optional[http.Response]:
    """The first rule whose `source` matches the target's path, as a response with its
    `Location`; the query string is kept. Paths are compared as sent (percent-encoded)."""
    path, mark, query = request.target.partition("#")[0].partition("?")
    scheme = "https" if request.tls else "http"
    for rule in rules:
        if rule.scheme is not None and rule.scheme != scheme:
            continue
        if rule.source.endswith("*"):
            prefix = rule.source[:-1]
            if not path.startswith(prefix):
                continue
            base, rest = rule.target.rstrip("*"), path[len(prefix) :]
            if base.endswith("/"):  # "/" + "/evil.com" would name another host
                rest = rest.lstrip("/")
            location = base + rest
        elif path == rule.source:
            location = rule.target
        else:
            continue
        location += mark + query
        response = http.error_response(rule.status, f"redirect to {location}")
        response.headers.append(("Location", location))
        return response
    return None
