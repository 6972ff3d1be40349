"""Cross-origin requests (Fetch standard, "CORS protocol"): which pages may call this
server from another origin, and what every reply says about it.

Rules of this file:
- `cors.origins` lists the origins whose pages may read the replies ("*": any).
- A browser names the page behind every write (`Origin`). A page from an origin not
  listed may not drive the device, not even with a "simple" request that skips the
  preflight: its writes are 403 `origin-not-allowed`. Clients without a browser send
  no Origin and are not concerned; neither is the page this server served.
- A preflight (OPTIONS) is answered here, for any `/?` target.
- The header lines go on every reply, whoever made it: `headers` is the server's
  `reply_headers`, which the connection adds as it queues any reply (the one place
  CORS is applied).
"""

from __future__ import annotations

from typing import Optional

from httap import http
from httap.manager.room import Answer

EXPOSED = "HTTaP-Session, Retry-After, HTTaP-Serial-Timeout, HTTaP-Serial-Dropped"
VARY_ORIGIN = b"Vary: Origin\r\n"
MAX_ORIGINS = 64  # origins whose CORS lines are remembered; cleared when full
MAX_AGE = "600"  # seconds a browser may keep a preflight's answer


class Cors:
    """The CORS policy for `origins` (from `cors.origins`). `credentials`: sign-in is on
    (`auth`), so a listed origin may send it. `methods`: what a preflight allows."""

    def __init__(self, origins: tuple[str, ...], credentials: bool, methods: str) -> None:
        self.origins = origins
        self.credentials = credentials
        self.methods = methods
        self._lines: dict[str, bytes] = {}  # origin -> its CORS header lines

    def allowed(self, origin: Optional[str]) -> bool:
        origins = self.origins
        return origin is not None and ("*" in origins or origin in origins)

    def check_write(self, request: http.Request) -> None:
        """403 `origin-not-allowed` for a write from a page of an origin not listed."""
        origin = request.headers.get("origin")
        if origin is None or self.allowed(origin):
            return
        if origin.partition("://")[2] == request.authority:
            return  # the page this server served
        raise http.HTTPError(
            403,
            "origin-not-allowed",
            f"a page from {origin} may not drive this device; add it to cors.origins",
        )

    def preflight(self, request: http.Request) -> Answer:
        """204 to an OPTIONS request, with what a listed origin may send; 403
        `origin-not-allowed` for another origin."""
        allow = (("Allow", self.methods),)
        origin = request.headers.get("origin")
        if origin is None:
            return Answer(204, None, allow)
        if not self.allowed(origin):
            raise http.HTTPError(
                403,
                "origin-not-allowed",
                f"origin {origin} may not call this server; add it to cors.origins",
            )
        headers = request.headers.get("access-control-request-headers", "Content-Type")
        return Answer(
            204,
            None,
            (
                *allow,
                ("Access-Control-Allow-Methods", self.methods),
                ("Access-Control-Allow-Headers", headers),
                ("Access-Control-Max-Age", MAX_AGE),
            ),
        )

    def headers(self, request: http.Request, response: http.Response) -> bytes:
        """The CORS header lines of every reply to `request`, whoever made it (a gate,
        the files, this domain, a protocol error once the head is read): the connection
        adds them as it queues the reply. With `cors.origins` set, every reply says
        `Vary: Origin`; one to an allowed origin also names it in
        Access-Control-Allow-Origin, exposes the HTTaP headers, and, when `auth` is on
        and the origin is listed by name (not through "*"), says
        Access-Control-Allow-Credentials: true (Fetch standard, "CORS protocol"). A reply
        that names its own Access-Control-Allow-Origin (an action's) keeps it. Used only
        when `cors.origins` is set."""
        origin = request.headers.get("origin")
        if origin is None:
            return VARY_ORIGIN
        lines = self._lines.get(origin)
        if lines is None:
            lines = self._lines_for(origin)
        if lines is not VARY_ORIGIN and response.header("access-control-allow-origin"):
            return VARY_ORIGIN
        return lines

    def _lines_for(self, origin: str) -> bytes:
        """The lines for one origin, remembered (a bounded memo: origins are few)."""
        lines = VARY_ORIGIN
        if self.allowed(origin):
            credentials = self.credentials and origin in self.origins
            lines = (
                f"Access-Control-Allow-Origin: {origin}\r\n"
                f"Access-Control-Expose-Headers: {EXPOSED}\r\n"
                + ("Access-Control-Allow-Credentials: true\r\n" if credentials else "")
            ).encode("latin-1") + VARY_ORIGIN
        if len(self._lines) >= MAX_ORIGINS:
            self._lines.clear()
        self._lines[origin] = lines
        return lines
