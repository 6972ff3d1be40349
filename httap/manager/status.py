"""What `/?` (discovery), `/?ping`, `/?stats` and `/?loop` mean: the server about itself.

- `GET /?`: the HTTaP version, this device's ID, the services (files, gpio, events,
  serial when ports are configured, then the app's actions), whether the board is simulated, the
  inactivity timeout and the client's session (docs/protocol.md, "Discovery").
- `GET /?ping…`: how long this connection may stay idle before it closes (`Remain`, s).
- `GET /?stats`: the loop's figures, requests, connections, uptime, the garbage
  collector's runs, sign-in counts, and the inputs' edges (read from the kernel, lost
  before they were read, sampled inputs).
- `GET /?loop` reads the loop's mode; `POST {"mode": "spin"}` sets it, with the lease:
  spinning changes how the hardware is timed (and what the device's CPU does).
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, Callable, Optional

from httap import __version__, http
from httap.loop import MODES
from httap.manager.room import Change

if TYPE_CHECKING:
    from httap.auth import Auth
    from httap.config import Config
    from httap.session import Sessions

HTTAP_VERSION = "1.0"


class Status:
    """The server about itself. `actions()` lists the app's action names; `connections`
    is the open connections (only counted); `auth` the sign-in gate, or None."""

    def __init__(
        self,
        config: Config,
        loop: Any,
        simulated: bool,
        actions: Callable[[], list[str]],
        sessions: Sessions,
        auth: Optional[Auth],
        gpio: Optional[Callable[[], dict]] = None,
    ) -> None:
        self.config = config
        self.gpio = gpio  # the inputs' figures (Watches.stats): edges read and lost
        self.loop = loop
        self.simulated = simulated
        self.actions = actions
        self.sessions = sessions  # the open ones, and how many were ever opened
        self.auth = auth
        self.requests = 0  # `/?` requests handled

    def discovery(self, request: http.Request, _: None) -> dict:
        config = self.config
        services = ["files", "gpio", "events"] if config.uploads.dir else ["gpio", "events"]
        if config.serial:
            services.append("serial")
        services.extend(self.actions())
        return {
            "HTTaP_version": HTTAP_VERSION,
            "ID": config.id,
            "Server": f"httap/{__version__}",
            "Services": services,
            "Serial": sorted(config.serial),
            "Simulated": self.simulated,
            "Timeout": config.timeouts.inactivity,
            "Session": request.session.id,
        }

    def ping(self, request: http.Request, _: None) -> dict:
        """Remain: the inactivity timeout less the time since this connection's last
        activity (which the connection stamps once this request is routed)."""
        timeout = self.config.timeouts.inactivity
        idle = self.loop.now - request.session.last_active
        return {"Remain": round(max(0.0, timeout - idle), 3), "Timeout": timeout}

    def stats(self, request: http.Request, _: None) -> dict:
        loop = self.loop
        stats = {
            **loop.stats(),
            "requests": self.requests,
            "connections": {"open": len(self.sessions.live), "accepted": self.sessions.opened},
            "uptime": round(loop.clock() - loop.started, 3),
            # The cyclic collector: its runs per generation since the start, and the
            # objects it never walks (the start-up's, frozen: server.serve_forever).
            "gc": {
                "collections": [generation["collections"] for generation in gc.get_stats()],
                "frozen": gc.get_freeze_count(),
            },
        }
        auth = self.auth
        if auth is not None:  # how many passwords were checked, how many requests refused
            stats["auth"] = {"checks": auth.checks, "refused": auth.refused}
        if self.gpio is not None:
            stats["gpio"] = self.gpio()
        return stats

    def loop_mode(self, request: http.Request, _: None) -> Any:
        """{"mode": "sleep" or "spin"}; a POST sets it first (400 for another body)."""
        if request.method != "POST":
            return {"mode": self.loop.mode}
        body = request.json()
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode not in MODES:
            raise http.HTTPError(
                400, "bad-value", 'the body must be {"mode": "sleep"} or {"mode": "spin"}'
            )

        def switch() -> dict:
            self.loop.mode = mode
            return {"mode": mode}

        return Change(
            "setting the loop's mode is refused (it changes how the hardware is timed);"
            " GET /?loop stays open",
            switch,
        )
