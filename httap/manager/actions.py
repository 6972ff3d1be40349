"""User actions: `/?NAME` answered by a function the app registers.

- `@server.action("car/forward", methods=("POST",))` registers `function(request)`
  for `/?car/forward`; one function may answer several methods and read
  `request.method`. HEAD is answered wherever GET is.
- A method other than GET or HEAD may drive the hardware: it takes the lease.
- What the function returns is the reply (the dispatch finishes it): a JSON value
  (200), bytes (application/octet-stream), None (204), an `http.Response` of its own,
  or a `Pending` resolved later with any of these. An exception is a 500, an
  `HTTPError` its own status.
- While the function runs, the app's pin changes (`server.write`, `server.pwm`) are
  audited as this request's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Callable, Union

from httap import http
from httap.manager.room import READS, WRITES, Change, Row, cause_of
from httap.pins import Pins

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")


class Actions:
    """The registered actions. `standard` are the first path segments of the standard
    vocabulary, which no action may take (nor one that starts with "ping")."""

    def __init__(self, pins: Pins, standard: Iterable[str]) -> None:
        self.pins = pins
        self.standard = tuple(standard)
        self.registered: dict[str, Row] = {}  # name -> its row in the dispatch

    def names(self) -> list[str]:
        """The registered names, sorted (for discovery)."""
        return sorted(self.registered)

    def register(self, name: str, methods: Union[str, tuple[str, ...]] = ("GET",)) -> Callable:
        """Decorator: register `function(request)` under `/?NAME` for `methods` (one
        method name, or several: one function answers them all and reads
        `request.method`).

        Raises ValueError, naming the action, for a name that would shadow the standard
        vocabulary, a method not in METHODS, and a name already registered: the
        second registration would otherwise silently replace the first.
        """
        name = name.strip("/")
        first = name.split("/", 1)[0]
        if not name or first in self.standard or first.startswith("ping"):
            raise ValueError(
                f"action name {name!r} would shadow the standard vocabulary"
                f" ({', '.join(self.standard)}, ping…)"
            )
        methods = tuple(
            method.upper() for method in ((methods,) if isinstance(methods, str) else methods)
        )
        if not methods or not set(methods) <= set(METHODS):
            raise ValueError(
                f"action {name!r}: methods must name one or more of"
                f" {', '.join(METHODS)}, not {methods!r}"
            )

        def register(function: Callable) -> Callable:
            taken = self.registered.get(name)
            if taken is not None:
                raise ValueError(
                    f"action {name!r} is already registered, for {taken.methods};"
                    " register it once with every method it answers, e.g."
                    ' methods=("GET", "POST"), and read request.method'
                )
            allowed = {*methods, "HEAD"} if "GET" in methods else set(methods)
            self.registered[name] = Row(
                name,
                ", ".join(methods),
                WRITES,
                lambda request, _: self.run(request, name, function),
                allowed=frozenset(allowed),
            )
            return function

        return register

    def run(self, request: http.Request, name: str, function: Callable) -> Any:
        """Call the action `name`; a method other than GET or HEAD first needs the lease."""
        if request.method in READS:
            return self._call(request, function)
        return Change(
            f"{request.method} /?{name} is refused: an action other than GET may"
            " drive the hardware",
            lambda: self._call(request, function),
        )

    def _call(self, request: http.Request, function: Callable) -> Any:
        pins = self.pins
        pins.cause = cause_of(request)
        try:
            return function(request)
        finally:
            pins.cause = None
