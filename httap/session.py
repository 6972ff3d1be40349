"""Sessions, the registry of open ones, the hardware lease, and the safe state applied
when the driver goes away.

A session is one TCP connection: its id is unique for the life of the process and never
reused. The server opens one in the registry (`Sessions`) as it accepts a connection,
hands it to the connection (which gives it to every request as `request.session`), and
closes it when the connection ends. The lease says who may drive the hardware (`session.exclusive`):
- "client": the first client address that writes holds it until all of its
  connections have closed (a connection closes after `timeouts.inactivity` idle);
- "connection": the same, narrowed to the one connection that wrote;
- "off": everyone may write.
When the holder lets go, `on_release` runs: pins.py sets every output's safe value.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Optional

log = logging.getLogger("httap.session")

_ids = itertools.count(1)


class Session:
    """Per-connection state handed to handlers as `request.session`.

    Applications may keep their own attributes on it; `on_close(fn)` runs `fn` when the
    connection ends, for any reason.
    """

    def __init__(self, client: tuple, now: float) -> None:
        self.id = next(_ids)
        self.client = client
        self.address = client[0] if client else ""
        self.opened = now
        # Its last activity, in loop seconds: the start of its last request (of any
        # kind) or the end of its last reply, as its connection stamps them, so that the
        # idle time agrees with the connection's inactivity timeout.
        self.last_active = now
        self.closed = False
        self._on_close: Optional[list[Callable[[], Any]]] = None  # made at the first

    def on_close(self, callback: Callable[[], Any]) -> None:
        if self._on_close is None:
            self._on_close = []
        self._on_close.append(callback)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        callbacks, self._on_close = self._on_close or (), None
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("on_close callback %r of session %d failed", callback, self.id)

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.address}>"


class Sessions:
    """The registry of open sessions, one per accepted connection.

    `on_close(fn)` has `fn(session)` run after every session's close (the lease counts
    a client's connections this way).
    """

    def __init__(self) -> None:
        self.live: set[Session] = set()  # the open ones
        self.opened = 0  # how many were ever opened (GET /?stats: connections accepted)
        self._on_close: list[Callable[[Session], Any]] = []

    def open(self, client: tuple, now: float) -> Session:
        """A new session for a connection from `client`, opened at `now` (loop seconds)."""
        session = Session(client, now)
        self.live.add(session)
        self.opened += 1
        return session

    def close(self, session: Session) -> None:
        """Its connection has ended: the session's own callbacks run, then the registry's."""
        self.live.discard(session)
        session.close()
        for callback in self._on_close:
            callback(session)

    def on_close(self, callback: Callable[[Session], Any]) -> None:
        self._on_close.append(callback)


class Busy(Exception):
    """Another client holds the hardware; `what` says what was refused and what stays
    open, in words for the 503's message ("writing pin led is refused; reading pins
    stays open")."""

    def __init__(self, holder: str, held_for: float, what: str) -> None:
        super().__init__(holder)
        self.holder = holder
        self.held_for = held_for
        self.what = what


class Lease:
    """Who drives the hardware now. `acquire` raises Busy for anyone else.

    It hears of every session's close from the registry `sessions`, whose open ones it
    counts to know when a client's last connection has gone."""

    def __init__(self, mode: str, on_release: Callable[[], Any], sessions: Sessions) -> None:
        self.mode = mode
        self.on_release = on_release
        self.holder: Optional[Session] = None  # the session that took the lease
        self.since = 0.0
        self.sessions = sessions.live  # every open session, to count a client's
        self._on_change: list[Callable[[Optional[Session]], Any]] = []
        sessions.on_close(self.closed)

    def on_change(self, callback: Callable[[Optional[Session]], Any]) -> None:
        """Have `callback(holder)` run each time the holder changes: taken (a Session),
        passed to another connection of the same client (with "client"), or released
        (None, before the safe values are applied)."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        for callback in self._on_change:
            callback(self.holder)

    def acquire(self, session: Session, now: float, what: str) -> None:
        """Take the hardware for `session`, or raise Busy saying `what` was refused."""
        if self.mode == "off":
            return
        holder = self.holder
        if holder is None:
            self.holder, self.since = session, now
            self._changed()
        elif not self._same_holder(holder, session):
            raise Busy(self._describe(holder), now - self.since, what)

    def check(self, session: Session, now: float, what: str) -> None:
        """Busy if someone else holds the hardware; unlike `acquire`, takes nothing."""
        holder = self.holder
        if self.mode != "off" and holder is not None and not self._same_holder(holder, session):
            raise Busy(self._describe(holder), now - self.since, what)

    def _same_holder(self, holder: Session, session: Session) -> bool:
        if self.mode == "connection":
            return holder is session
        return holder.address == session.address

    @staticmethod
    def _describe(holder: Session) -> str:
        return f"{holder.address} (session {holder.id})"

    def closed(self, session: Session) -> None:
        """A connection ended (the registry has dropped its session); release when it was
        the holder's last."""
        holder = self.holder
        if holder is None or session is not holder:
            return  # the holder's own connection is still open
        if self.mode == "client":
            survivor = next((s for s in self.sessions if s.address == holder.address), None)
            if survivor is not None:
                self.holder = survivor  # the client still holds it through another link
                self._changed()
                return
        self.holder = None
        log.info("lease released by %s", self._describe(holder))
        self._changed()
        self.on_release()

    def holder_idle(self, now: float) -> float:
        """Seconds since the holding client's last activity, a request's start or a
        reply's end (for Retry-After)."""
        holder = self.holder
        if holder is None:
            return 0.0
        if self.mode == "connection":
            return now - holder.last_active
        return now - max(s.last_active for s in self.sessions if s.address == holder.address)
