"""Listening sockets: bind every configured address, accept in batches, pause on EMFILE.

Rules of this file:
- A listener accepts at most ACCEPTS_PER_TURN connections per wake-up, so that a flood
  of new clients cannot starve the connections already open.
- Out of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM), accepting stops for
  ACCEPT_PAUSE seconds instead of spinning on the error; any other accept error is that
  one client's (ECONNABORTED and friends) and is skipped.
- A descriptor too high for select() (`Loop.fd_limit`, where there is no epoll) is
  answered 503 as far as the socket takes it without waiting, and closed: registering
  it would stop the whole loop.
- What is handed on, to `accepted(sock, client, secure)`, is a non-blocking socket with
  TCP_NODELAY set, and the TLS set-up of an https:// listener (None for http://).
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING, Any, Callable, Optional

from httap import http
from httap.config import ListenAddress, StartupError
from httap.loop import READ, Loop

if TYPE_CHECKING:
    from httap.tls import Secure

log = logging.getLogger("httap.server")  # the name the warnings have always had

ACCEPTS_PER_TURN = 32
ACCEPT_PAUSE = 0.25  # seconds to stop accepting when the process is out of descriptors
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Listener:
    """One listening socket in the loop; accepts a bounded batch per wake-up."""

    __slots__ = ("listening", "secure", "sock", "url")

    def __init__(
        self, listening: Listening, sock: socket.socket, url: str, secure: Optional[Secure]
    ) -> None:
        self.listening = listening
        self.sock = sock
        self.url = url  # with the real port
        self.secure = secure  # the TLS set-up of an https:// listener

    def on_event(self, mask: int) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, client = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                if err.errno in OUT_OF_DESCRIPTORS:
                    self.listening.pause(err)
                    return
                continue  # ECONNABORTED and friends: that one client is gone
            self.listening.hand_on(sock, client, self.secure)


class Listening:
    """Every listening socket of the server, and the pause when descriptors run out."""

    def __init__(
        self, loop: Loop, accepted: Callable[[socket.socket, tuple, Optional[Secure]], Any]
    ) -> None:
        self.loop = loop
        self.accepted = accepted
        self.listeners: list[Listener] = []
        self._paused = False

    def open(
        self, addresses: tuple[ListenAddress, ...], backlog: int, secure: Optional[Secure]
    ) -> list[str]:
        """Bind and listen on every address (https:// ones with `secure`); returns their
        URLs with the real ports. StartupError, naming the address, when one cannot be."""
        for address in addresses:
            sock = bind(address, backlog)
            host, port = sock.getsockname()[:2]
            tls = secure if address.scheme == "https" else None
            listener = Listener(self, sock, address._replace(host=host, port=port).url, tls)
            self.listeners.append(listener)
            self.loop.register(sock, READ, listener)
        return [listener.url for listener in self.listeners]

    def hand_on(self, sock: socket.socket, client: tuple, secure: Optional[Secure]) -> None:
        """An accepted socket, made ready for the loop and handed to `accepted`."""
        sock.setblocking(False)
        fd_limit = self.loop.fd_limit
        if fd_limit is not None and sock.fileno() >= fd_limit:
            _unwatchable(sock, secure)
            return
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # reset by the client already
            sock.close()
            return
        self.accepted(sock, client, secure)

    def pause(self, err: OSError) -> None:
        """Out of descriptors: stop accepting for a moment instead of spinning on the error."""
        if self._paused:
            return
        log.warning("cannot accept: %s; pausing for %g s", err.strerror, ACCEPT_PAUSE)
        self._paused = True
        for listener in self.listeners:
            self.loop.unregister(listener.sock)
        self.loop.call_later(ACCEPT_PAUSE, self._resume)

    def _resume(self) -> None:
        self._paused = False
        for listener in self.listeners:  # none once closed
            self.loop.register(listener.sock, READ, listener)

    def close(self) -> None:
        """Stop listening: every socket out of the loop and closed."""
        for listener in self.listeners:
            self.loop.unregister(listener.sock)
            listener.sock.close()
        self.listeners.clear()


def bind(address: ListenAddress, backlog: int) -> socket.socket:
    """A non-blocking socket listening on `address` with `backlog`. An empty host is
    every address: IPv6 and IPv4 on one socket where there is IPv6. StartupError saying
    why (the port is taken, a port below 1024 without privileges...)."""
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
        sock.listen(backlog)
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


def _unwatchable(sock: socket.socket, secure: Optional[Secure]) -> None:
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
        head, body, _ = http.frame(None, reply, False)
        sock.send(head + body)
    except OSError:
        pass
    sock.close()
