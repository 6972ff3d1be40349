"""The server: the composition root. The one module that knows every other.

It builds the loop, the logs, the files, the HTTaP manager, the gates (router.py), the
serial ports and the listening sockets (listen.py), and wires them: an accepted socket
becomes a Connection owned by the server (the connection's `Owner`: its `route` is the
router's), with a session from the registry (session.py) that the connection hands to
every request. The application API (app.py) is the Server's base class, so an app's
`setup(server)` calls it on the server itself. With `mqtt.broker`, the MQTT bridge
(mqtt.py) joins them as one more client of the manager. Then: start, stop, close.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import sys
from typing import TYPE_CHECKING, Callable, Optional

from gpio import GpioError, open_backend
from httap import extras, http
from httap.app import App
from httap.config import Config, StartupError, default_documents, versions_folder
from httap.connection import Connection
from httap.listen import Listening
from httap.logs import Logs
from httap.loop import Loop
from httap.manager import Manager
from httap.pins import Pins
from httap.router import BUILT_IN, Router
from httap.session import Lease, Sessions
from httap.static import StaticFiles

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.mqtt import Bridge
    from httap.persist import Persist
    from httap.serialport import SerialPort
    from httap.site import Site
    from httap.tls import Secure

log = logging.getLogger("httap.server")

STOP_GRACE = 10.0  # seconds that responses in flight get to finish on a graceful stop


class Server(App):
    """Builds every room and wires them; owns the connections (their `Owner`)."""

    def __init__(self, config: Config, loop: Optional[Loop] = None) -> None:
        missing = extras.errors(config)  # before anything opens: nothing to close
        if missing:
            raise StartupError(missing[0])
        for line in extras.warnings(config):
            log.warning("%s", line)
        self.config = config
        self.limits = config.limits  # what a connection reads: its Owner interface
        self.timeouts = config.timeouts
        try:
            self.logs = Logs.open(config.log)
        except OSError as err:
            message = f"cannot open the access log {config.log.access}: {err.strerror}"
            raise StartupError(message) from None
        self.log_request = None if self.logs is None else self.logs.request
        self.log_response = None if self.logs is None else self.logs.response
        self.loop = loop or Loop()
        self.sessions = Sessions()
        self.connections: set[Connection] = set()
        self.stopping = False
        self.auth: Optional[Auth] = None
        passwords = config.auth
        if config.uploads.dir is not None and passwords.users:  # uploads need their role
            from httap.manager.files import routes as upload_routes

            guarded = (*upload_routes(config.uploads.role), *passwords.routes)
            passwords = passwords._replace(routes=guarded)
        if any(route.role for route in passwords.routes):
            from httap.auth import Auth  # scrypt and friends, only when passwords are asked

            self.auth = Auth(passwords, lambda: self.loop.now)
        # The serial ports: the app may repoint one (`url`) in setup, then they open.
        # serialport.py (and termios) is loaded only when ports are configured.
        self.serial: dict[str, SerialPort] = {}
        if config.serial:
            from httap.serialport import SerialPort

            self.serial = {
                name: SerialPort(name, settings, self.loop)
                for name, settings in config.serial.items()
            }
        # Outputs that survive a restart: their kept settings win over `initial`.
        # persist.py is loaded only when a pin has `persist: true`.
        self.persist: Optional[Persist] = None
        declared = config.gpio.pins
        if any(pin.persist for pin in declared.values()):
            from httap.persist import Persist, state_path

            self.persist = Persist(state_path(config), config.gpio, self.loop)
            declared = self.persist.restore(declared)
        try:
            self.pins = Pins(
                declared, open_backend(config.gpio.backend), self.loop, config.gpio.sysfs_pwm
            )
        except GpioError as err:
            raise StartupError(f"cannot set up the GPIO pins: {err}") from None
        if self.persist is not None:
            self.persist.follow(self.pins)
        lease = Lease(config.session.exclusive, self.pins.apply_safe_values, self.sessions)
        # The documents' versions (site.py): what a previous run switched to is served,
        # also once uploads are off (then none can be installed or rolled back). Built
        # only with `uploads.dir` or a versions folder. Not under chroot, which leaves
        # the versions beside the documents out of reach.
        self.site: Optional[Site] = None
        if not config.chroot and (
            config.uploads.dir is not None or os.path.isdir(versions_folder(config.documents))
        ):
            from httap.site import Site

            self.site = Site(
                config.documents, config.uploads.limit, config.index, switched=self._switched
            )
        self.manager = Manager(
            config, self.loop, self.pins, lease, self.sessions, self.serial, self.auth, self.site
        )
        # Read once, now, and never rechecked: a chroot leaves the app's files out of reach.
        library = StaticFiles(
            default_documents(),
            config.index,
            config.mime,
            config.headers,
            recheck=math.inf,
            cache=config.cache,
        )
        for path in BUILT_IN:
            library.handle(http.Request("GET", path, "HTTP/1.1", {}, False))
        self.documents_root = config.documents if self.site is None else self.site.root
        files = self._files(self.documents_root)
        self.router = Router(config, self.loop, self.manager, files, library, self.auth)
        self.route = self.router.route
        # Which heads' bodies come in parts; None (no question asked) when no row streams.
        streamed = any(row.streamed for row in self.manager.table)
        self.streams_body = self.manager.streams_body if streamed else None
        # reply_headers(request, response) -> bytes: header lines that every reply
        # carries besides its own, whoever made it; the one place CORS is applied. The
        # connection calls it as it queues any reply, a late one or a protocol error's.
        # None without `cors.origins`: then no reply pays for it.
        self.reply_headers: Optional[Callable[[http.Request, http.Response], bytes]] = (
            self.manager.cors.headers if config.cors.origins else None
        )
        self.secure = tls_setup(config)
        self.listening = Listening(self.loop, self.accepted)
        self.listeners = self.listening.listeners
        if config.app:
            self.load_app(config.app)
        for name, port in self.serial.items():  # all checked before any opens
            from httap.serialport import endpoint

            try:
                endpoint(port.url)
            except ValueError as err:
                self.close()
                raise StartupError(f"serial.{name}.port: {err}") from None
        for port in self.serial.values():
            port.start()
        self.mqtt: Optional[Bridge] = None
        if config.mqtt.broker is not None:
            from httap.mqtt import Bridge  # paho-mqtt, only when a broker is configured

            self.mqtt = Bridge(config, self.loop, self.pins, self.manager, self.sessions, self.auth)
            self.mqtt.start()

    # -- the documents -----------------------------------------------------------

    def _files(self, root: str) -> StaticFiles:
        config, site = self.config, self.site
        version = {} if site is None else {"version": site.tag, "since": site.since}
        return StaticFiles(
            root, config.index, config.mime, config.headers, cache=config.cache, **version
        )

    def _switched(self) -> None:
        """The site switched versions: the next request is served from the new root,
        with validators of its own (a fresh StaticFiles: nothing of the old is kept)."""
        self.serve_documents_from(self.site.root)

    def serve_documents_from(self, root: str) -> None:
        """Serve the static files under `root`: "/" once chroot has made it the documents.

        A fresh StaticFiles, since every path the old one resolved or cached is gone.
        """
        self.router.static = self._files(root)
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
        root = http.Request("GET", "/", "HTTP/1.1", {}, False)
        status = self.router.static.handle(root).status
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

    # -- connections -------------------------------------------------------------

    def listen(self) -> list[str]:
        """Open every configured address; returns their URLs with the real ports."""
        backlog = min(1024, max(128, self.config.limits.connections))
        return self.listening.open(self.config.listen, backlog, self.secure)

    def accepted(self, sock: socket.socket, client: tuple, secure: Optional[Secure]) -> None:
        """A new client (listen.py made its socket ready): a Connection with its session,
        or, over limits.connections, a 503 and no session."""
        limit = self.config.limits.connections
        full = len(self.connections) >= limit
        if full and secure is not None:
            sock.close()  # a plain-text 503 means nothing to a TLS client
            return
        if client:  # (host, port[, flowinfo, scope_id]): one host string for all the
            client = (sys.intern(client[0]), *client[1:])  # connections from a host
        session = None if full else self.sessions.open(client, self.loop.now)
        connection = Connection(self, sock, client, secure, session)
        self.connections.add(connection)
        connection.start()
        if full:
            connection.refuse(
                503,
                f"service unavailable: {limit} connections are open,"
                " the limit (limits.connections)",
            )

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if connection.session is not None:
            self.sessions.close(connection.session)
        if self.stopping and not self.connections:
            self.loop.stop()

    # -- running and stopping ----------------------------------------------------

    def serve_forever(self) -> None:
        """Run the loop until `stop()` has finished; then release every socket.

        What the start-up built (modules, the config, the rooms: some 18,000 objects)
        lives as long as the server. It is collected once, then frozen (gc.freeze()),
        so that the cyclic garbage collector never walks it again: a full collection
        took 3-14 ms of the loop's time before, and takes microseconds on what is new
        since (docs/performance.md). Thawed when the loop ends.
        """
        gc.collect()
        gc.freeze()
        try:
            self.loop.run()
        finally:
            gc.unfreeze()
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
        self.listening.close()
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
        self.listening.close()
        for connection in list(self.connections):
            connection.close()
        self.pins.close()  # the safe values first: they are what is kept, and published
        if self.persist is not None:
            self.persist.close()
        if self.mqtt is not None:
            self.mqtt.close()
        for port in self.serial.values():
            port.close()
        if self.logs is not None:
            self.logs.close()
        self.loop.close()


def tls_setup(config: Config) -> Optional[Secure]:
    """The TLS set-up, made only when an https:// address is configured (see tls.py)."""
    if not config.https:
        return None
    from httap.tls import Secure, TlsSetupError

    try:
        return Secure(config.tls)
    except TlsSetupError as err:
        raise StartupError(f"cannot set up TLS: {err}") from None
