"""The router: which domain answers a request.

First the gates: an authority (the Host header, or an absolute-form target's, which
wins) that `hosts` does not list is refused (DNS rebinding), a configured redirect
answers its paths, and `auth` may refuse the request or hold it until its password's
turn to be checked. Then a target that starts with `/?` goes to the HTTaP manager,
everything else to the static files (and the few BUILT_IN files of the server's own app
that the documents lack). A gate's refusal is in its domain's format: JSON for `/?`, a
line of text for files. Whoever answers, the connection adds the reply headers (CORS).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Callable, Optional, Union

from httap import http
from httap.config import Config, Redirect
from httap.reply import Pending

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.loop import Loop
    from httap.manager import Manager
    from httap.static import StaticFiles

log = logging.getLogger("httap.server")  # the name the handler failures have always had

# Served from the server's own app (static/) when the documents lack them: the client
# library and the console's script, which any page may import, and the icon a browser
# asks for by itself, so that no page's load leaves a 404 in the log.
BUILT_IN = frozenset(("/httap.js", "/console.js", "/favicon.ico"))
MAX_AUTHORITIES = 256  # the hosts gate's remembered verdicts; cleared when full

Reply = Union[http.Response, Pending]


class Router:
    """`route(request)`: the gates, then the `manager` (a `/?` target) or the files.

    `static` is the documents' StaticFiles; the server replaces it when chroot makes
    the documents "/". `library` serves BUILT_IN from the server's own app.
    """

    def __init__(
        self,
        config: Config,
        loop: Loop,
        manager: Manager,
        static: StaticFiles,
        library: StaticFiles,
        auth: Optional[Auth],
    ) -> None:
        self.loop = loop
        self.manager = manager
        self.static = static
        self.library = library
        self.auth = auth
        self.redirects = config.redirect
        self.hosts = _allowed_hosts(config)
        self._authorities: dict[Optional[str], bool] = {}  # the hosts gate's verdicts

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
        if dynamic:  # what _dispatch does first, without its call: the hot path
            return self.manager.handle(request)
        return self._dispatch(request, False)

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
