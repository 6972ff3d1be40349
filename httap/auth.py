"""Who may do what: HTTP Basic credentials checked against scrypt hashes, a role per
path prefix in Ioto's style, and failed sign-ins slowed per address.

Rules of this file:
- The rule for a request is the first `auth.routes` entry whose `match` starts the
  request's path and whose `methods` (if given) hold its method (GET covers HEAD too).
  No such entry, or one without a role: the request is open to all. CORS preflights
  are always open: browsers send them without credentials.
- Paths are compared as the domains will read them: `/?` paths percent-decoded as the
  manager decodes them; file paths decoded with empty and "." segments removed, as the
  file system resolves them. So `/%3fgpio`, `//private` or `/./private` cannot slip
  past a rule that `/?gpio` or `/private` would meet.
- Passwords cross the network readable in Basic, so they are refused over plain HTTP
  unless `auth.plain_http` says the network is trusted; a 403 says why, and no
  challenge is sent there, so that browsers do not prompt for one.
- Checking a password costs one scrypt run in the loop (tens of ms: the point of
  scrypt). So runs take turns: never two in a row, at least SPACING_FACTOR times a
  run's cost apart, and a request whose password must wait for its turn is held (the
  server's `Pending`) without holding up anyone else; past MAX_QUEUE seconds of queue,
  503. Good credentials are then cached, keyed by a keyed BLAKE2 of the header, so a
  browser's later requests cost a dictionary lookup. Bad ones cost the attacker: the
  401 is held back longer after each failure from that address, and attempts from it
  in the meantime get 429 without any scrypt run; IPv6 addresses count by their /64,
  which one host can fill.
- Replies follow RFC 9110: 401 with a `WWW-Authenticate` challenge for no, malformed
  or wrong credentials; 403 for good credentials without the role (asking again would
  not help); RFC 7617 for the Basic scheme (UTF-8 credentials).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os
import time
from collections.abc import Mapping
from typing import Callable, Optional
from urllib.parse import unquote

from httap import http
from httap.config import SCRYPT_HASH, AuthConfig, abilities

COST = 14  # log2 of scrypt's N for new hashes: 16 MiB and ~40 ms on a 2020s laptop core
BLOCK_SIZE = 8
SALT_BYTES = 16
FIRST_DELAY = 1.0  # seconds the 401 waits after an address's first failure; doubles after
MAX_DELAY = 30.0
FORGET_AFTER = 900.0  # seconds after its last failure that an address starts afresh
SPACING_FACTOR = 4  # scrypt runs take at most a quarter of the loop's time
MAX_QUEUE = 10.0  # seconds a request may wait for its turn to have its password checked
FAILURES_KEPT = 4096  # addresses whose failures are remembered; the oldest go first
CACHE_SIZE = 256  # good credentials remembered
CACHE_SECONDS = 900.0
ROLES_KEPT = 1024  # (method, target) pairs whose rule is remembered


def hash_password(password: str, cost: int = COST, block: int = BLOCK_SIZE) -> str:
    """A new hash for `auth.users`, in the format `httap passwd` prints."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password.encode(), salt, cost, block)
    return f"$scrypt$ln={cost},r={block},p=1${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    match = SCRYPT_HASH.fullmatch(stored)
    if match is None:
        return False
    salt, expected = _unb64(match["salt"]), _unb64(match["hash"])
    digest = _scrypt(password.encode(), salt, int(match["ln"]), int(match["r"]), len(expected))
    return hmac.compare_digest(digest, expected)


def _scrypt(password: bytes, salt: bytes, cost: int, block: int, length: int = 32) -> bytes:
    n = 1 << cost
    maxmem = 128 * block * (n + 2) + (1 << 20)
    return hashlib.scrypt(password, salt=salt, n=n, r=block, p=1, maxmem=maxmem, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def subject(target: str) -> str:
    """The path a rule is matched against: the target as its domain will read it."""
    if target.startswith("/?"):
        path = target[2:].partition("&")[0]
        return "/?" + (unquote(path, errors="replace") if "%" in path else path)
    path = target.partition("?")[0].partition("#")[0]
    decoded = unquote(path, errors="replace") if "%" in path else path
    segments = [part for part in decoded.split("/") if part not in ("", ".")]
    trailing = "/" if decoded.endswith("/") and segments else ""
    return "/" + "/".join(segments) + trailing


class _Failures:
    __slots__ = ("count", "last", "until")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0.0  # when the latest failure was seen
        self.until = 0.0  # no password from this address is checked before then


class Auth:
    """Decides, before any domain runs, whether a request may go on."""

    def __init__(self, settings: AuthConfig, clock: Callable[[], float]) -> None:
        self.routes = settings.routes
        self.plain_http = settings.plain_http
        self.users: Mapping[str, tuple[str, frozenset[str]]] = {
            name: (user.password, abilities(settings.roles, user.role))
            for name, user in settings.users.items()
        }
        self.roles = settings.roles
        self.challenge = (("WWW-Authenticate", f'Basic realm="{settings.realm}", charset="UTF-8"'),)
        self.clock = clock
        # Unknown names cost a check too, at the users' cost (one for all: the config
        # sees to it), so that the time of a refusal does not tell which names exist.
        stored = next(iter(self.users.values()), ("",))[0]
        match = SCRYPT_HASH.fullmatch(stored)
        cost, block = (int(match["ln"]), int(match["r"])) if match else (COST, BLOCK_SIZE)
        started = time.perf_counter()
        self.decoy = hash_password(os.urandom(8).hex(), cost, block)
        self._spacing = (time.perf_counter() - started) * SPACING_FACTOR
        self._free = 0.0  # when the next scrypt run may start
        self._key = os.urandom(32)
        self._cache: dict[bytes, tuple[str, float]] = {}  # keyed hash of the header -> user
        self._failures: dict[str, _Failures] = {}
        self._roles: dict[tuple[str, str], Optional[str]] = {}  # (method, target) -> role
        self.checks = 0  # scrypt runs, for /?stats and tests
        self.refused = 0

    def check(self, request: http.Request) -> float:
        """0 when the request may go on now (with `request.user` set if it signed in).
        Else the seconds to hold it before `finish(request)` checks its password: its
        turn among the scrypt runs. Raises the HTTPError that refuses it."""
        role = self._role_for(request)
        if role is None:
            return 0.0
        try:
            return self._admit(request, role)
        except http.HTTPError:
            self.refused += 1
            raise

    def finish(self, request: http.Request) -> None:
        """A held request's turn: check its password, then its role."""
        role = self._role_for(request)
        assert role is not None
        try:
            self._authorize(request, role, self._verify(request, self.clock()))
        except http.HTTPError:
            self.refused += 1
            raise

    def admit(self, request: http.Request, role: Optional[str], who: str) -> None:
        """For a client that signs in by other means than a password (the MQTT bridge,
        whose commands act with `mqtt.role`): 403 `forbidden` when the request's rule
        asks for a role that `role` (None: none) does not include; `who` names the
        client in the message."""
        needed = self._role_for(request)
        if needed is not None and (role is None or needed not in abilities(self.roles, role)):
            self.refused += 1
            raise http.HTTPError(
                403, "forbidden", f"{_what(request)} needs the role {needed}, which {who} lacks"
            )

    def _role_for(self, request: http.Request) -> Optional[str]:
        """The role the request's rule asks for; remembered per method and target, so
        that an open file costs one dictionary lookup."""
        method = request.method
        if method == "OPTIONS" and "access-control-request-method" in request.headers:
            return None
        key = (method, request.target)
        try:
            return self._roles[key]
        except KeyError:
            pass
        if len(self._roles) >= ROLES_KEPT:
            self._roles.clear()
        role = self._roles[key] = self._rule(method, request.target)
        return role

    def _rule(self, method: str, target: str) -> Optional[str]:
        path = subject(target)
        for route in self.routes:
            if path.startswith(route.match) and (
                route.methods is None
                or method in route.methods
                or (method == "HEAD" and "GET" in route.methods)
            ):
                return route.role
        return None

    def _admit(self, request: http.Request, role: str) -> float:
        if not request.tls and not self.plain_http:
            raise http.HTTPError(
                403,
                "https-required",
                f"{_what(request)} needs a password, and passwords are taken only over https here"
                " (auth.plain_http)",
            )
        header = request.headers.get("authorization")
        if header is None:
            raise http.HTTPError(
                401,
                "unauthorized",
                f"{_what(request)} needs a user with the role {role}",
                self.challenge,
            )
        now = self.clock()
        user = self._cached(header, now)
        if user is None:
            if _basic(header) is None:
                raise http.HTTPError(
                    401,
                    "unauthorized",
                    "malformed credentials: expected Basic with the base64 of user:password",
                    self.challenge,
                )
            self._not_waiting(request, now)
            start = max(now, self._free)
            if start - now > MAX_QUEUE:
                raise http.HTTPError(
                    503,
                    "sign-in-busy",
                    "too many sign-ins at once; try again in a few seconds",
                    (("Retry-After", str(round(MAX_QUEUE))),),
                )
            self._free = start + self._spacing
            if start > now:
                return start - now
            user = self._verify(request, now)
        self._authorize(request, role, user)
        return 0.0

    def _authorize(self, request: http.Request, role: str, user: str) -> None:
        request.user = user
        if role not in self.users[user][1]:
            raise http.HTTPError(
                403, "forbidden", f"{_what(request)} needs the role {role}, which {user} lacks"
            )

    def _key_of(self, header: str) -> bytes:
        return hashlib.blake2s(header.encode("latin-1"), key=self._key, digest_size=16).digest()

    def _cached(self, header: str, now: float) -> Optional[str]:
        cached = self._cache.get(self._key_of(header))
        return cached[0] if cached is not None and cached[1] > now else None

    def _not_waiting(self, request: http.Request, now: float) -> None:
        """An address still waiting out its last failure gets 429, and no check."""
        address = _address(request)
        failures = self._failures.get(address)
        if failures is not None and failures.until > now:
            seconds = str(max(1, round(failures.until - now + 0.5)))
            raise http.HTTPError(
                429,
                "too-many-attempts",
                f"too many failed sign-ins from {address}; try again in {seconds} s",
                (("Retry-After", seconds),),
            )

    def _verify(self, request: http.Request, now: float) -> str:
        """The user that the credentials name, by one scrypt run (or the cache, if
        another request with them has just been checked)."""
        header = request.headers["authorization"]
        user = self._cached(header, now)
        if user is not None:
            return user
        credentials = _basic(header)
        assert credentials is not None
        name, password = credentials
        stored, _ = self.users.get(name, (self.decoy, frozenset()))
        started = time.perf_counter()
        good = verify_password(password, stored) and name in self.users
        self._spacing = (time.perf_counter() - started) * SPACING_FACTOR
        self._free = max(self._free, now + self._spacing)
        self.checks += 1
        address = _address(request)
        if good:
            self._failures.pop(address, None)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[self._key_of(header)] = (name, now + CACHE_SECONDS)
            return name
        delay = self._failed(address, now)
        raise http.HTTPError(
            401, "unauthorized", "wrong user name or password", self.challenge, delay
        )

    def _failed(self, address: str, now: float) -> float:
        """Count a failure from `address`; the delay its 401 waits, during which no
        password from it is checked."""
        failures = self._failures.pop(address, None)  # re-inserted last: newest at the end
        if failures is None or now - failures.last > FORGET_AFTER:
            failures = _Failures()
        if len(self._failures) >= FAILURES_KEPT:
            del self._failures[next(iter(self._failures))]  # the least recently failed
        self._failures[address] = failures
        failures.count += 1
        failures.last = now
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (failures.count - 1))
        failures.until = now + delay
        return delay


def _what(request: http.Request) -> str:
    """The request as a refusal names it: its method and the path its rule saw."""
    return f"{request.method} {subject(request.target)}"


def _address(request: http.Request) -> str:
    """Whose failures these are: the client's address, or for IPv6 its /64 (one host's
    share)."""
    address = request.client[0] if request.client else "-"
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def _basic(header: str) -> Optional[tuple[str, str]]:
    """(user, password) from `Basic base64(user:password)`, UTF-8 as RFC 7617 asks."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    name, colon, password = text.partition(":")
    if not colon or not name:
        return None
    return name, password
