"""web.json5 + HTTAP_* environment + command-line flags -> one validated, frozen Config.

Rules of this file:
- The classes below are the schema: each setting is declared once, as its field's
  default: with its checker and its default (`setting`), or as a nested object of
  fixed keys (`section`). They are NamedTuples, not dataclasses: importing
  `dataclasses` loads `inspect` and `ast`, about 1 MiB of memory on a small board.
- Each source (file, environment, flags) is matched against the schema on its own, so
  every value keeps where it came from; flags win over the environment, which wins
  over the file, which wins over the defaults. Then every value, defaults included,
  goes through its checker.
- Every refusal is one `ConfigError` line naming the source, the dotted key, what was
  found and what is allowed.
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from functools import reduce
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Optional, Union

from gpio.pwm import HARDWARE_GPIOS, SYSFS_PWM

__all__ = [
    "GPIO_NUMBER",
    "PWM_DUTY",
    "PWM_FREQUENCY",
    "WAIT",
    "AuthConfig",
    "Config",
    "ConfigError",
    "Cors",
    "EventsConfig",
    "GpioConfig",
    "Limits",
    "ListenAddress",
    "LogConfig",
    "MqttConfig",
    "PinConfig",
    "Range",
    "Redirect",
    "Route",
    "SerialConfig",
    "Session",
    "Timeouts",
    "TlsConfig",
    "User",
    "default_documents",
    "load",
    "to_dict",
]


# Line breaks and other controls, which a message may quote from a value, a path or the
# parser: shown escaped, so that the message stays one line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Half of a UTF-16 pair, alone: JSON5's "\uD800" gives one, and so does a byte that is not
# UTF-8 in an environment variable or a flag (Python's surrogateescape). It is no
# character: no file name, log line or header can hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")


class ConfigError(Exception):
    """A configuration the server cannot run with; str() is the whole message, one line
    (`_CONTROL` characters in it escaped as JSON escapes them)."""

    def __init__(self, message: str) -> None:
        super().__init__(_CONTROL.sub(lambda found: json.dumps(found.group())[1:-1], message))


class StartupError(Exception):
    """The server cannot start with a valid configuration (a port taken, a device or an
    app that fails): one clear line for the user. Raised by the rooms that start things
    (listen.py, app.py, server.py), so it lives below them all, beside ConfigError."""


_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _describe(value: Any) -> str:
    """Show a found value briefly: containers by kind (they can be long), scalars as JSON,
    and a whole number past 64 bits by its size (Python refuses to print one of more
    than 4,300 digits, and nobody wants to read it)."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        digits = int(value.bit_length() * 0.30103) + 1  # at most one too many
        if 10 ** (digits - 1) > abs(value):
            digits -= 1
        return f"a whole number of {digits} digits"
    return json.dumps(value, ensure_ascii=False)


class Where(NamedTuple):
    """Where a value came from, so that its error sends the user straight to it."""

    source: str  # a file path, an environment variable, "command line" or "defaults"
    base: Path  # the directory that relative paths from this source start from
    key: str = ""  # the dotted key inside the source
    env: bool = False  # environment values are text named by their variable: no key, no type

    def child(self, name: str) -> Where:
        name = name if _PLAIN_KEY.fullmatch(name) else json.dumps(name)
        return self._replace(key=f"{self.key}.{name}" if self.key else name)

    def item(self, index: int) -> Where:
        return self._replace(key=f"{self.key}[{index}]")

    def error(self, message: str) -> ConfigError:
        place = self.source if self.env or not self.key else f"{self.source}: {self.key}"
        return ConfigError(f"{place}: {message}")

    def fail(self, found: str, expected: str) -> ConfigError:
        return self.error(f"found {found}, expected {expected}")

    def invalid(self, value: Any, expected: str, wrong_type: bool = False) -> ConfigError:
        """Refuse a value; name its JSON type when that is what is wrong ("5" is not 5)."""
        found = _describe(value)
        type_name = _TYPE_NAMES.get(type(value))
        if wrong_type and type_name and not self.env:
            found += f" ({type_name})"
        return self.fail(found, expected)


# A checker takes a raw value and where it came from, and returns the value to keep
# (converted, normalised) or raises the ConfigError that explains the refusal.
Checker = Callable[[Any, Where], Any]


def _show_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _alternatives(choices: tuple) -> str:
    shown = [json.dumps(choice) for choice in choices]
    return " or ".join(shown) if len(shown) <= 2 else "one of " + ", ".join(shown)


class Range(NamedTuple):
    """The numbers one setting or request parameter accepts: from `low` to `high`
    inclusive (`low` itself excluded if `above`), whole numbers only if `integer`.

    Each range is written once, here or beside its setting, and both the config's
    checker (`within`) and the request checks in the manager use it, so a value that
    web.json5 refuses is refused in a request too, with the same words.
    """

    low: float
    high: float
    noun: str = "a number of seconds"
    integer: bool = False
    above: bool = False

    def holds(self, value: Any) -> bool:
        """True for a number in the range: never a boolean, NaN or an infinity; a huge
        whole number is compared exactly (no conversion to float that could overflow)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if self.above:
            return self.low < value <= self.high
        return self.low <= value <= self.high

    def __str__(self) -> str:
        low, high = _show_number(self.low), _show_number(self.high)
        if self.above:
            return f"{self.noun} more than {low} and at most {high}"
        return f"{self.noun} from {low} to {high}"


def within(span: Range) -> Checker:
    """A number (never a boolean) in `span`."""
    expected = str(span)

    def check(value: Any, where: Where) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.invalid(value, expected, wrong_type=True)
        if not span.holds(value):
            raise where.invalid(value, expected)
        return value

    return check


def number(
    low: float, high: float, noun: str = "a number of seconds", *, integer: bool = False
) -> Checker:
    """A number (never a boolean) from low to high inclusive; whole if `integer`."""
    return within(Range(low, high, noun, integer))


def size(low: int, high: int) -> Checker:
    return number(low, high, "a whole number of bytes", integer=True)


def one_of(*choices: Any) -> Checker:
    """One of a few JSON values, compared within the same JSON type (true is not 1)."""
    expected = _alternatives(choices)

    def check(value: Any, where: Where) -> Any:
        kind = _TYPE_NAMES.get(type(value))
        for choice in choices:
            if kind == _TYPE_NAMES[type(choice)] and value == choice:
                return choice
        wrong_type = all(kind != _TYPE_NAMES[type(choice)] for choice in choices)
        raise where.invalid(value, expected, wrong_type)

    return check


def text(pattern: str = r".+", noun: str = "a non-empty string") -> Checker:
    """A string matching the whole pattern."""
    regex = re.compile(pattern)

    def check(value: Any, where: Where) -> str:
        if not isinstance(value, str):
            raise where.invalid(value, noun, wrong_type=True)
        if not regex.fullmatch(value):
            raise where.invalid(value, noun)
        return value

    return check


def optional(check: Checker) -> Checker:
    """null, or what `check` accepts."""
    return lambda value, where: None if value is None else check(value, where)


def list_of(item: Checker, noun: str, nonempty: bool = False) -> Checker:
    """A list whose items each pass `item`; kept as a tuple."""

    def check(value: Any, where: Where) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise where.invalid(value, noun, wrong_type=True)
        if nonempty and not value:
            raise where.fail("an empty list", f"{noun}, at least one")
        return tuple(item(each, where.item(index)) for index, each in enumerate(value))

    return check


def dict_of(
    key_pattern: str, key_noun: str, value: Checker, normalise: Callable[[str], str] = str
) -> Checker:
    """An object with free keys matching a pattern; kept as a read-only mapping."""
    regex = re.compile(key_pattern)

    def check(raw: Any, where: Where) -> Mapping:
        if not isinstance(raw, Mapping):
            raise where.invalid(raw, "an object", wrong_type=True)
        checked = {}
        for key, each in raw.items():
            if not isinstance(key, str) or not regex.fullmatch(key):
                raise where.fail(f"the key {json.dumps(key)}", key_noun)
            checked[normalise(key)] = value(each, where.child(key))
        return MappingProxyType(checked)

    return check


# The reasons a path cannot be resolved, in words that do not change with Python's version.
_LOOP = "a loop of symbolic links"
_NO_HOME = "no home directory for that user"


def unresolvable(err: BaseException) -> str:
    """Why a path could not be resolved, from what resolving it raised: a RuntimeError
    is a loop of symbolic links before Python 3.13, an OSError ELOOP from then on."""
    if isinstance(err, RuntimeError) or getattr(err, "errno", None) == errno.ELOOP:
        return _LOOP
    return (getattr(err, "strerror", None) or str(err)).rstrip(".")


def _path(value: Any, where: Where, expected: str, fits: Callable[[Path], bool]) -> str:
    """A path from a source, absolute and resolved against the source's base (`~` is a
    home directory), that `fits`. Kept resolved, so later symlink checks compare like
    with like. Every path the system cannot resolve or look at is refused with the
    reason: an unknown ~user, a loop of symbolic links, a name too long (ENAMETOOLONG),
    a directory that may not be searched."""
    if not isinstance(value, str):
        raise where.invalid(value, expected, wrong_type=True)
    if not value or "\x00" in value:
        raise where.invalid(value, expected)
    try:
        expanded = Path(value).expanduser()
    except (RuntimeError, OSError):  # RuntimeError before Python 3.12, then OSError
        raise where.fail(f"{json.dumps(value)} ({_NO_HOME})", expected) from None
    try:
        path = (where.base / expanded).resolve()
        fitting = fits(path)
    except (RuntimeError, OSError) as err:
        raise where.fail(f"{json.dumps(value)} ({unresolvable(err)})", expected) from None
    if not fitting:
        raise where.fail(json.dumps(value) + _unfit_reason(path, value), expected)
    return str(path)


def _unfit_reason(path: Path, value: str) -> str:
    """Why a resolved path does not fit, in brackets: a loop of symbolic links (from
    Python 3.13 resolve() leaves one in place rather than raising), else where it led."""
    try:
        path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f" ({_LOOP})"
    return "" if str(path) == value else f" ({path})"


def existing(kind: str) -> Checker:
    """The path of an existing "directory" or "file", relative to its source's base."""
    expected = f"the path of an existing {kind}"
    exists = Path.is_dir if kind == "directory" else Path.is_file
    return lambda value, where: _path(value, where, expected, exists)


def _any(path: Path) -> bool:
    """Any path fits (a folder that may not exist here, as /sys/class/pwm off a Pi)."""
    return True


def _file_in_directory(expected: str) -> Checker:
    """The path of a file to write (there or not) in an existing directory; a missing
    directory is named as the reason."""

    def check(value: Any, where: Where) -> str:
        missing: list[Path] = []

        def fits(path: Path) -> bool:
            if not path.parent.is_dir():
                missing.append(path.parent)
                return False
            return not path.is_dir()

        try:
            return _path(value, where, expected, fits)
        except ConfigError:
            if not missing:
                raise
            reason = f"the folder {missing[0]} does not exist"
            raise where.fail(f"{json.dumps(value)} ({reason})", expected) from None

    return check


_REQUIRED = object()


class _Setting(NamedTuple):
    """How a schema field is read: a value passed to `check`, or a `section` of fixed keys.

    It is the field's NamedTuple default, so that each key is declared once, in place;
    schema objects are built only by `load`, with every field given.
    """

    check: Optional[Checker] = None
    default: Any = _REQUIRED
    section: Optional[type] = None


def setting(check: Checker, default: Any = _REQUIRED) -> Any:
    """Declare a config key: its checker and its raw default (a function for a computed one)."""
    return _Setting(check, default)


def section(cls: type) -> Any:
    """Declare a key holding an object of fixed keys, merged key by key across sources."""
    return _Setting(section=cls)


def default_documents() -> str:
    """The browser app: `static/` in a source checkout, else where the wheel installs it."""
    package = Path(__file__).resolve().parent
    checkout = package.parent / "static"
    return str(checkout if checkout.is_dir() else package / "app")


def versions_folder(documents: str) -> str:
    """Where the versions of `documents` installed by `PUT /?app` live (site.py), beside
    it: `/srv/www` -> `/srv/www.versions`; "/" has no name: "/.versions"."""
    parent, name = os.path.split(os.path.abspath(documents))
    return os.path.join(parent, name + ".versions")


# ---------------------------------------------------------------------------------------
# The schema. Field order is the order of `httap check`'s output.

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_NAME_NOUN = 'letters, digits, "_" and "-", starting with a letter or "_"'
_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+"
_ORIGIN = rf"\*|https?://(?:{_HOST})(?::[0-9]{{1,5}})?"
# A header field's value is Latin-1 at most (RFC 9110 5.5: visible ASCII and obs-text, the
# bytes 0x80-0xFF), as http.py writes heads: a "€" would fail every reply that carries it.
_FIELD_TEXT = r"\x20-\x7e\x80-\xff"
_QUOTED = r'"[\t\x20\x21\x23-\x5b\x5d-\x7e\x80-\xff]*"'  # RFC 9110 5.6.4, without quoted-pair
_MIME_TYPE = rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*"
# Framing is the server's: a configured header must not be able to break it. Nor may it
# contradict the caching that `cache` states.
_HEADER_NAME = (
    rf"(?i)(?!(?:connection|content-length|transfer-encoding|cache-control|expires)\Z){_TOKEN}"
)
# `cache`: a file's path under `documents` ("/app.js") or a prefix ending with "*".
_CACHE_PATH = r"/[^\x00-\x1f\x7f*]*(?:\*|(?<!/))"
MAX_AGE = 31_536_000  # one year: the longest lifetime `cache` gives (RFC 9111 5.2.2.1)
_HEADER_VALUE = rf"[\t{_FIELD_TEXT}]*"
_PORT_NOUN = "a TCP port"
_LISTEN_NOUN = 'a URL like "http://HOST:PORT" (HOST empty for every address, [IPv6] in brackets)'
_LISTEN_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>\[[^\]]*\]|[A-Za-z0-9.-]*):(?P<port>[0-9]+)"
)
_SCHEMES = ("http", "https")


def url_of(scheme: str, host: str, port: int) -> str:
    """scheme://host:port, an IPv6 address in brackets (RFC 3986 3.2.2)."""
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class ListenAddress(NamedTuple):
    """One address to listen on, from a URL like http://HOST:PORT."""

    scheme: str
    host: str  # "" means every address
    port: int  # 0 lets the OS pick one

    @property
    def url(self) -> str:
        return url_of(self.scheme, self.host, self.port)

    def __str__(self) -> str:
        return self.url


_port = number(0, 65535, _PORT_NOUN, integer=True)


def _listen_address(value: Any, where: Where) -> ListenAddress:
    if not isinstance(value, str):
        raise where.invalid(value, _LISTEN_NOUN, wrong_type=True)
    match = _LISTEN_RE.fullmatch(value)
    if not match:
        raise where.invalid(value, _LISTEN_NOUN)
    scheme, host = match["scheme"].lower(), match["host"]
    if scheme not in _SCHEMES:
        raise where.invalid(value, f"the scheme {_alternatives(_SCHEMES)}")
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise where.invalid(value, "an IPv6 address between the brackets") from None
    port = int(match["port"])
    if port > 65535:
        raise where.invalid(value, f"{_PORT_NOUN} from 0 to 65535")
    return ListenAddress(scheme, host, port)


class TlsConfig(NamedTuple):
    """The certificate chain and key of every https:// address (PEM files)."""

    certificate: Optional[str] = setting(optional(existing("file")), None)
    key: Optional[str] = setting(optional(existing("file")), None)
    minimum: str = setting(one_of("1.2", "1.3"), "1.2")


# `httap passwd` writes these: scrypt's cost (log2 N), block size and parallelism, then
# the salt and the hash in base64 without padding (the PHC string format).
SCRYPT_HASH = re.compile(
    r"\$scrypt\$ln=(?P<ln>[0-9]{1,2}),r=(?P<r>[0-9]{1,2}),p=(?P<p>[0-9]{1,2})"
    r"\$(?P<salt>[A-Za-z0-9+/]{11,})\$(?P<hash>[A-Za-z0-9+/]{43,})"
)
# The costs (log2 N) a hash may have, and `httap passwd --cost` offers: ln 16 is 64 MiB
# and a fraction of a second per check, which the loop waits for; below 10 is too cheap.
SCRYPT_COSTS = range(10, 17)
_HASH_NOUN = 'a hash made by `httap passwd` ("$scrypt$ln=...")'
_ROLE_NOUN = 'a role name of letters, digits, "_" and "-"'
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")


def _password_hash(value: Any, where: Where) -> str:
    """A hash whose cost the loop can afford: scrypt blocks it while a password is checked."""
    if not isinstance(value, str):
        raise where.invalid(value, _HASH_NOUN, wrong_type=True)
    match = SCRYPT_HASH.fullmatch(value)
    if not match:
        raise where.fail("a value that is not such a hash", _HASH_NOUN)
    if not (
        int(match["ln"]) in SCRYPT_COSTS and 1 <= int(match["r"]) <= 8 and int(match["p"]) == 1
    ):
        raise where.fail(
            f"the cost {match['ln']},{match['r']},{match['p']}",
            f"ln from {SCRYPT_COSTS[0]} to {SCRYPT_COSTS[-1]}, r from 1 to 8 and p 1"
            " (`httap passwd --cost`): a check runs in the loop",
        )
    return value


class User(NamedTuple):
    password: str = setting(_password_hash)
    role: str = setting(text(_NAME, _ROLE_NOUN))


def _route_match(value: Any, where: Where) -> str:
    """A prefix that can match: written decoded, as paths are compared; not below
    `/?gpio/`, since a pin is also reachable by its number and in a batch write."""
    value = _match_text(value, where)
    if "%" in value:
        raise where.fail(json.dumps(value), "the path written decoded (no %xx): it is compared so")
    if value.startswith("/?") and "&" in value:
        raise where.fail(json.dumps(value), 'a path without "&": parameters are not compared')
    if value.startswith("/?gpio/"):
        raise where.fail(
            json.dumps(value),
            '"/?gpio" as a whole: a pin is also reached by its number and by a batch'
            " POST /?gpio; to guard one pin, drive it from an action and guard that",
        )
    return value


_match_text = text(r"/[^\x00-\x20\x7f]*", 'a path prefix like "/?gpio" or "/private/"')


class Route(NamedTuple):
    """The role that requests whose path starts with `match` need (None: open to all)."""

    match: str = setting(_route_match)
    role: Optional[str] = setting(optional(text(_NAME, _ROLE_NOUN)), None)
    methods: Optional[tuple[str, ...]] = setting(
        optional(list_of(one_of(*_METHODS), "a list of methods", nonempty=True)), None
    )


class AuthConfig(NamedTuple):
    realm: str = setting(
        text(r"[ !#-\[\]-~]+", "printable ASCII without quotes or backslashes"), "httap"
    )
    users: Mapping[str, User] = setting(
        dict_of(
            r"[^:\x00-\x20\x7f]+",
            "user names without colons, spaces or controls",
            lambda value, where: _record(User, value, where),
        ),
        {},
    )
    roles: Mapping[str, tuple[str, ...]] = setting(
        dict_of(_NAME, _ROLE_NOUN, list_of(text(_NAME, _ROLE_NOUN), "a list of role names")),
        {},
    )
    routes: tuple[Route, ...] = setting(
        list_of(
            lambda value, where: _record(Route, value, where),
            'a list of objects like {match: "/?gpio", role: "write"}',
        ),
        [],
    )
    plain_http: bool = setting(one_of(True, False), False)  # Basic over http:// too


def abilities(roles: Mapping[str, tuple[str, ...]], role: str) -> frozenset[str]:
    """A role and everything it includes, in Ioto's style: a role's list names abilities
    and other roles, whose abilities it then has too."""
    found: set[str] = set()
    todo = [role]
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(roles.get(name, ()))
    return frozenset(found)


class Cors(NamedTuple):
    origins: tuple[str, ...] = setting(
        list_of(text(_ORIGIN, '"*" or an origin like "http://host:port"'), "a list of origins"),
        [],
    )


class Timeouts(NamedTuple):
    parse: float = setting(number(0.1, 3600), 5)
    inactivity: float = setting(number(3, 200), 15)
    request: float = setting(number(0.1, 3600), 30)


class Limits(NamedTuple):
    connections: int = setting(number(1, 100_000, "a number of connections", integer=True), 256)
    header: int = setting(size(256, 1 << 20), 8192)
    body: int = setting(size(0, 1 << 30), 1 << 20)
    uri: int = setting(size(64, 1 << 20), 2048)
    requests: int = setting(
        number(0, 10**9, "a number of requests (0 = unlimited)", integer=True), 0
    )
    # Event streams (GET /?events) open at once, and the bytes one may have queued and
    # unsent before it ends: a subscriber that does not read is never waited for.
    subscribers: int = setting(number(1, 10_000, "a number of event streams", integer=True), 16)
    event_buffer: int = setting(size(4096, 1 << 24), 65536)


class Session(NamedTuple):
    exclusive: str = setting(one_of("client", "connection", "off"), "client")


# Ranges that requests share with web.json5: the manager checks the same numbers with them.
GPIO_NUMBER = Range(0, 53, "a BCM GPIO number", integer=True)  # a Raspberry Pi's lines
# PWM is bit-banged on the loop's timers: past 10 kHz the edges are mostly jitter, and
# below 0.01 Hz (a 100 s period) a timer would lie days or years ahead.
PWM_FREQUENCY = Range(0.01, 10_000, "a frequency in Hz")
PWM_DUTY = Range(0, 1, "a duty cycle")
WAIT = Range(0, 3600, "a number of seconds")  # long-polls and serial reads, serial timeout
# An input's edges count once its level has held this long (libgpiod's debounce_period).
DEBOUNCE = Range(0, 1, "a number of seconds")


class PinConfig(NamedTuple):
    """One named pin; `initial`/`safe` None leave the level alone."""

    gpio: int = setting(within(GPIO_NUMBER))
    mode: str = setting(one_of("in", "out", "pwm"), "in")
    pull: str = setting(one_of("up", "down", "off"), "off")
    initial: Optional[int] = setting(optional(one_of(0, 1)), None)
    safe: Optional[int] = setting(optional(one_of(0, 1)), None)
    frequency: float = setting(within(PWM_FREQUENCY), 100)
    duty: float = setting(within(PWM_DUTY), 0)
    # The SoC's PWM (gpio/pwm.py, on GPIO 12, 13, 18, 19), the loop's timers, or the first
    # where the pin has a channel and the chip is there.
    pwm: str = setting(one_of("auto", "hardware", "soft"), "auto")
    persist: bool = setting(one_of(True, False), False)  # its last setting survives a restart
    debounce: float = setting(within(DEBOUNCE), 0)


# Pin settings that mean something only in some modes: given a value other than their
# default in another mode, they are a mistake worth stopping for.
_PIN_MODES = {
    "pull": ("in",),
    "initial": ("out", "pwm"),
    "safe": ("out", "pwm"),
    "frequency": ("pwm",),
    "duty": ("pwm",),
    "pwm": ("pwm",),
    "persist": ("out", "pwm"),
    "debounce": ("in",),
}


def _pin(value: Any, where: Where) -> PinConfig:
    pin = _record(PinConfig, value, where)
    for key, modes in _PIN_MODES.items():
        if pin.mode not in modes and getattr(pin, key) != _keys(PinConfig)[key].default:
            raise where.child(key).error(
                f"only for mode {_alternatives(modes)}; this pin's mode is {json.dumps(pin.mode)}"
            )
    if pin.pwm == "hardware" and pin.gpio not in HARDWARE_GPIOS:
        raise where.child("pwm").error(
            f'found "hardware" for GPIO {pin.gpio}; a Raspberry Pi has hardware PWM on GPIO'
            ' 12, 13, 18 and 19 only: expected "soft" or "auto" here'
        )
    return pin


_pin_map = dict_of(_NAME, f"pin names of {_NAME_NOUN}", _pin)


def _pins(value: Any, where: Where) -> Mapping[str, PinConfig]:
    """Named pins, no two on the same GPIO: two names driving one line is a wiring bug."""
    pins = _pin_map(value, where)
    users: dict[int, str] = {}
    for name, pin in pins.items():
        if pin.gpio in users:
            at = where.child(name).child("gpio")
            raise at.error(f"GPIO {pin.gpio} is already used by pin {json.dumps(users[pin.gpio])}")
        users[pin.gpio] = name
    return pins


class GpioConfig(NamedTuple):
    backend: str = setting(one_of("auto", "sim", "rpi", "gpiod"), "auto")
    sample_interval: float = setting(number(0.0001, 1), 0.001)
    pins: Mapping[str, PinConfig] = setting(_pins, {})
    # Where the kernel's PWM chips are (hardware PWM): tests point it to a tree of their own.
    sysfs_pwm: str = setting(lambda value, where: _path(value, where, "a path", _any), SYSFS_PWM)
    # The file that `persist: true` pins' settings are kept in; null: httap-state.json in
    # $STATE_DIRECTORY (systemd's StateDirectory=), else beside the config file.
    state_file: Optional[str] = setting(
        optional(_file_in_directory("a file path in an existing folder")), None
    )
    persist_interval: float = setting(number(0.1, 3600), 5)  # seconds between its writes, at least


class UploadsConfig(NamedTuple):
    """Files stored on the device (`/?files`) and the web app's update (`/?app`), off
    while `dir` is null: the folder they are kept in; `limit`, the most bytes of one
    file (and of an app's archive, and of it unpacked); `space`, of the whole folder;
    `role`, what a user needs to store, delete or update when `auth` has users."""

    dir: Optional[str] = setting(optional(existing("directory")), None)
    limit: int = setting(size(1, 1 << 40), 64 << 20)
    space: int = setting(size(1, 1 << 44), 256 << 20)
    role: str = setting(text(_NAME, _ROLE_NOUN), "admin")


class EventsConfig(NamedTuple):
    """The event streams of `GET /?events`: a comment every `keepalive` seconds keeps
    proxies and NATs from closing a quiet one."""

    keepalive: float = setting(number(0.1, 3600), 15)


class SerialConfig(NamedTuple):
    """One named serial port, with pyserial's settings; `buffer` is how many bytes are kept."""

    port: str = setting(text(noun="a device path or pyserial URL"))
    baudrate: int = setting(number(50, 4_000_000, "a baud rate", integer=True), 9600)
    bytesize: int = setting(one_of(5, 6, 7, 8), 8)
    parity: str = setting(one_of("N", "E", "O", "M", "S"), "N")
    stopbits: float = setting(one_of(1, 1.5, 2), 1)
    timeout: Optional[float] = setting(optional(within(WAIT)), None)
    buffer: int = setting(size(16, 1 << 24), 65536)


def _serial_port(value: Any, where: Where) -> SerialConfig:
    return _record(SerialConfig, value, where)


_ACCESS_NOUN = "true, false or the path of a file (in an existing directory) to append to"


def _access_log(value: Any, where: Where) -> Union[bool, str]:
    """false (off), true (to stderr) or a file path: absolute, and resolved against its source."""
    if isinstance(value, bool):
        return value
    return _file_in_directory(_ACCESS_NOUN)(value, where)


class Redirect(NamedTuple):
    """One `redirect` entry. `source` ("from") is a path, or a prefix when it ends with
    "*"; then what the star matched is appended to `target` ("to") without its "*".
    `scheme` limits the rule to requests that came over http:// or https:// (None: both),
    so that "every plain-HTTP request to https" does not redirect https to itself."""

    source: str
    target: str
    status: int
    scheme: Optional[str] = None


_REDIRECT_KEYS = ("from", "to", "status", "scheme")
_REDIRECT_PATH = r"/[^\x00-\x20\x7f-\U0010ffff?#*]*"  # printable ASCII; no query, no star
_REDIRECT_URL = re.compile(
    rf"(?P<origin>https?://(?:{_HOST})(?::[0-9]{{1,5}})?)?(?P<path>{_REDIRECT_PATH})?(?P<star>\*?)"
)
_REDIRECT_TO_NOUN = (
    'a path like "/new" or a URL like "https://host/new", with no query: the request\'s is kept'
)
_redirect_from = text(rf"{_REDIRECT_PATH}\*?", 'a path like "/old", or a prefix like "/docs/*"')
_redirect_status = one_of(301, 302, 303, 307, 308)
_redirect_scheme = optional(one_of("http", "https"))


def _redirect(value: Any, where: Where) -> Redirect:
    """Checked by hand rather than as a schema class: "from" cannot name a field."""
    if not isinstance(value, Mapping):
        raise where.invalid(value, 'an object like {from: "/old", to: "/new"}', wrong_type=True)
    for name in value:
        if name not in _REDIRECT_KEYS:
            raise _unknown_key(where, str(name), list(_REDIRECT_KEYS))
    for name in ("from", "to"):
        if name not in value:
            raise where.error(f'missing key "{name}"')
    source = _redirect_from(value["from"], where.child("from"))
    target, at = value["to"], where.child("to")
    if not isinstance(target, str):
        raise at.invalid(target, _REDIRECT_TO_NOUN, wrong_type=True)
    match = _REDIRECT_URL.fullmatch(target)
    if not match or not (match["origin"] or match["path"]):
        raise at.invalid(target, _REDIRECT_TO_NOUN)
    if match["star"] and not source.endswith("*"):
        raise at.error('ends with "*", but "from" is not a prefix ending with "*"')
    if not match["path"]:  # "https://host": the rest of a prefix goes after a "/"
        target = match["origin"] + "/" + match["star"]
    status = _redirect_status(value.get("status", 302), where.child("status"))
    scheme = _redirect_scheme(value.get("scheme"), where.child("scheme"))
    return Redirect(source, target, status, scheme)


class Broker(NamedTuple):
    """The MQTT broker, from a URL like mqtt://HOST:PORT (mqtts:// for TLS)."""

    secure: bool
    host: str
    port: int

    @property
    def url(self) -> str:
        return url_of("mqtts" if self.secure else "mqtt", self.host, self.port)

    def __str__(self) -> str:
        return self.url


_BROKER_NOUN = 'a URL like "mqtt://HOST:1883" or "mqtts://HOST:8883" (the port may be left out)'
_BROKER_RE = re.compile(
    r"(?P<scheme>mqtts?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/?",
    re.IGNORECASE,
)
# A topic level of MQTT 3.1.1 (section 4.7): no "/" inside, no wildcard, no NUL.
_TOPIC_LEVEL = r"[^/+#\x00]+"
_TOPIC_NOUN = 'topic levels separated by "/", without "+", "#" or empty levels'


def _broker(value: Any, where: Where) -> Broker:
    if not isinstance(value, str):
        raise where.invalid(value, _BROKER_NOUN, wrong_type=True)
    match = _BROKER_RE.fullmatch(value)
    if not match:
        raise where.invalid(value, _BROKER_NOUN)
    secure = match["scheme"].lower() == "mqtts"
    port = int(match["port"]) if match["port"] else (8883 if secure else 1883)
    if not 1 <= port <= 65535:
        raise where.invalid(value, f"{_PORT_NOUN} from 1 to 65535")
    return Broker(secure, match["host"].strip("[]"), port)


class MqttConfig(NamedTuple):
    """The MQTT bridge (httap/mqtt.py; docs/protocol.md, "MQTT"), off while `broker` is
    null. `password` may come from HTTAP_MQTT_PASSWORD instead; `role` is the role MQTT
    commands act with under `auth`; `ca` a PEM file of the CAs that sign the broker's
    certificate (the system's by default)."""

    broker: Optional[Broker] = setting(optional(_broker), None)
    prefix: str = setting(text(rf"{_TOPIC_LEVEL}(?:/{_TOPIC_LEVEL})*", _TOPIC_NOUN), "httap")
    username: Optional[str] = setting(optional(text(r"[^\x00]{1,256}", "a user name")), None)
    password: Optional[str] = setting(optional(text(r"[^\x00]{0,256}", "a password")), None)
    client_id: Optional[str] = setting(
        optional(text(r"[^\x00]{1,256}", "a client identifier of 1 to 256 characters")), None
    )
    # MQTT 3.1.1 section 3.1.2.10: two bytes of seconds; 0 (no keep-alive) would leave a
    # dead link unnoticed, and its Last Will unsent.
    keepalive: int = setting(number(5, 65535, "a number of seconds", integer=True), 30)
    discovery: bool = setting(one_of(True, False), True)
    role: Optional[str] = setting(optional(text(_NAME, _ROLE_NOUN)), None)
    ca: Optional[str] = setting(optional(existing("file")), None)


class LogConfig(NamedTuple):
    level: str = setting(one_of("debug", "info", "warning", "error"), "info")
    access: Union[bool, str] = setting(_access_log, False)  # False, True or a file path
    trace: bool = setting(one_of(True, False), False)  # request and response heads


class Config(NamedTuple):
    """Everything the server runs with. `source` is the file read, None for defaults only."""

    id: str = setting(text(), "httap")
    listen: tuple[ListenAddress, ...] = setting(
        list_of(_listen_address, 'a list of URLs like "http://:8080"', nonempty=True),
        ["http://:8080"],
    )
    documents: str = setting(existing("directory"), default_documents)
    index: str = setting(text(r"(?!\.\.?\Z)[^/\\\x00]+", 'a file name without "/"'), "index.html")
    mime: Mapping[str, str] = setting(
        dict_of(
            r"\.?[A-Za-z0-9_+-]+",
            'file extensions like ".svg"',
            text(_MIME_TYPE, 'a MIME type like "text/html"'),
            normalise=lambda extension: "." + extension.lstrip(".").lower(),
        ),
        {},
    )
    headers: Mapping[str, str] = setting(
        dict_of(
            _HEADER_NAME,
            "header names (HTTP tokens; not Connection, Content-Length or Transfer-Encoding,"
            " which the server sets, nor Cache-Control or Expires: set lifetimes with `cache`)",
            text(
                _HEADER_VALUE,
                "a header value of Latin-1 characters at most, without CR, LF or other controls",
            ),
        ),
        {},
    )
    cache: Mapping[str, int] = setting(
        dict_of(
            _CACHE_PATH,
            'file paths like "/index.html" or prefixes like "/assets/*"',
            number(0, MAX_AGE, "a whole number of seconds", integer=True),
        ),
        {},
    )
    tls: TlsConfig = section(TlsConfig)
    cors: Cors = section(Cors)
    timeouts: Timeouts = section(Timeouts)
    limits: Limits = section(Limits)
    session: Session = section(Session)
    gpio: GpioConfig = section(GpioConfig)
    serial: Mapping[str, SerialConfig] = setting(
        dict_of(_NAME, f"serial port names of {_NAME_NOUN}", _serial_port), {}
    )
    events: EventsConfig = section(EventsConfig)
    mqtt: MqttConfig = section(MqttConfig)
    uploads: UploadsConfig = section(UploadsConfig)
    redirect: tuple[Redirect, ...] = setting(
        list_of(_redirect, 'a list of objects like {from: "/old", to: "/new"}'), []
    )
    app: Optional[str] = setting(optional(existing("file")), None)
    log: LogConfig = section(LogConfig)
    user: Optional[str] = setting(optional(text(r"[^\s:]+", "a user name")), None)
    group: Optional[str] = setting(optional(text(r"[^\s:]+", "a group name")), None)
    chroot: bool = setting(one_of(True, False), False)  # confine to `documents` once started
    auth: AuthConfig = section(AuthConfig)
    hosts: tuple[str, ...] = setting(
        list_of(text(r"[A-Za-z0-9.-]+", 'a host name like "pi.local"'), "a list of host names"),
        [],
    )
    source: Optional[str] = None

    @property
    def https(self) -> tuple[ListenAddress, ...]:
        """The https:// addresses: they need `tls`."""
        return tuple(address for address in self.listen if address.scheme == "https")


# ---------------------------------------------------------------------------------------
# Matching sources against the schema.


def _keys(cls: type) -> dict[str, _Setting]:
    """The config keys of a schema class, in order: the fields `setting` or `section` declare."""
    return {name: each for name, each in cls._field_defaults.items() if isinstance(each, _Setting)}


def _given(cls: type, raw: Any, where: Where) -> dict:
    """One source's values as a tree of (value, where) leaves; unknown keys stop here."""
    if not isinstance(raw, Mapping):
        expected = "an object" if where.key else "an object at the top level"
        raise where.invalid(raw, expected, wrong_type=True)
    keys = _keys(cls)
    tree = {}
    for name, value in raw.items():
        if name not in keys:
            raise _unknown_key(where, str(name), sorted(keys))
        inner = keys[name].section
        at = where.child(name)
        tree[name] = _given(inner, value, at) if inner else (_text_only(value, at), at)
    return tree


def _text_only(value: Any, where: Where) -> Any:
    """`value`, with every string in it (keys too) checked to be text: a lone surrogate
    (`_SURROGATE`) is refused here, whatever the key, before any checker or system call
    sees it."""
    if isinstance(value, str) and _SURROGATE.search(value):
        raise where.error(f"found {json.dumps(value)}, which is not text (a lone surrogate)")
    if isinstance(value, Mapping):
        for key, each in value.items():
            _text_only(key, where)
            _text_only(each, where.child(key))
    elif isinstance(value, (list, tuple)):
        for index, each in enumerate(value):
            _text_only(each, where.item(index))
    return value


def _unknown_key(parent: Where, name: str, allowed: list[str]) -> ConfigError:
    scope = f"in {parent.key}" if parent.key else "at the top level"
    message = f"unknown key; allowed keys {scope}: {', '.join(allowed)}"
    import difflib  # only when there is an error to explain

    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        message += f'; did you mean "{close[0]}"?'
    return parent.child(name).error(message)


def _merge(low: dict, high: dict) -> dict:
    """Overlay one source's tree on another: sections merge key by key, values replace."""
    merged = dict(low)
    for name, value in high.items():
        both_sections = isinstance(value, dict) and isinstance(merged.get(name), dict)
        merged[name] = _merge(merged[name], value) if both_sections else value
    return merged


def _build(cls: type, given: dict, where: Where) -> Any:
    """Check every value where it came from, fill in defaults (checked too), and freeze."""
    values = {}
    for name, declared in _keys(cls).items():
        if declared.section:
            values[name] = _build(declared.section, given.get(name, {}), where.child(name))
            continue
        if name in given:
            value, at = given[name]
        else:
            value, at = declared.default, where.child(name)
            if value is _REQUIRED:
                raise where.error(f'missing key "{name}"')
            if callable(value):
                value = value()
        values[name] = declared.check(value, at)
    return cls(**values)


def _record(cls: type, value: Any, where: Where) -> Any:
    """An object of fixed keys inside a value (a pin, a serial port), checked in one go."""
    return _build(cls, _given(cls, value, where), where)


# ---------------------------------------------------------------------------------------
# Sources.


def _number_text(value: str) -> Any:
    """Environment values are text: read numbers as numbers, leave the rest to be refused."""
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return value


# The original HTTaP server's variables: name -> (dotted key, how to read the text).
# HTTAP_TCPPORT is apart: it sets the port of every listen address.
_ENVIRONMENT = {
    "HTTAP_KEEPALIVE": ("timeouts.inactivity", _number_text),
    "HTTAP_STATICPATH": ("documents", str),
    "HTTAP_ROOTPAGE": ("index", str),
    "HTTAP_USER": ("user", str),
    "HTTAP_GROUP": ("group", str),
    # Ours: the broker's password stays out of the file.
    "HTTAP_MQTT_PASSWORD": ("mqtt.password", str),
}
_FILE_NAME = "web.json5"
_JSON5_ERROR = re.compile(r"<string>:(\d+) (.*) at column (\d+)", re.DOTALL)


def _nest(flat: Mapping[str, Any]) -> dict:
    """{"gpio.backend": "sim"} -> {"gpio": {"backend": "sim"}}."""
    tree: dict = {}
    for dotted, value in flat.items():
        *parents, last = dotted.split(".")
        node = tree
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
    return tree


def _find(path: Optional[str]) -> Optional[Path]:
    if path is None:
        here = Path(_FILE_NAME)
        return here if here.is_file() else None
    try:
        is_dir, is_file = Path(path).is_dir(), Path(path).is_file()
    except OSError as err:  # a name too long, a directory that may not be searched
        raise ConfigError(f"config file {path}: cannot read: {err.strerror}") from None
    if is_dir:
        inside = Path(path) / _FILE_NAME
        hint = f"; did you mean {inside}?" if inside.is_file() else ""
        raise ConfigError(f"config file {path} is a directory: name the file{hint}")
    if not is_file:
        raise ConfigError(f"config file not found: {path}")
    return Path(path)


def _read(path: Path) -> Any:
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {err.start})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    if not content.strip():
        raise ConfigError(f"{path}: the file is empty; write {{}} for all the defaults")
    loaded = "json5" in sys.modules
    try:
        return _json5(path, content)
    finally:
        if not loaded:
            _unload("json5")


def _json5(path: Path, content: str) -> Any:
    """`content` (of the file at `path`) parsed as JSON5; ConfigError if it is not."""
    import json5  # only when there is a file: a server on the defaults never loads it

    try:
        return json5.loads(content, allow_duplicate_keys=False)
    except RecursionError:  # the parser recurses once per level of nesting
        raise ConfigError(
            f"{path}: not valid JSON5: objects and lists nest too deep (a configuration"
            " needs a few levels)"
        ) from None
    except ValueError as err:
        message = str(err)
        match = _JSON5_ERROR.fullmatch(message)
        if match:
            line, what, column = match.groups()
            message = f"line {line} column {column}: not valid JSON5: {what}"
        else:
            message = f"not valid JSON5: {message}"
        raise ConfigError(f"{path}: {message}") from None


def _unload(package: str) -> None:
    """Drop `package` and its modules, imported for a one-off job (json5: 0.5 MiB of
    code, for one parse at start-up), and collect them, so that the memory goes back to
    the allocator before the server's own modules are imported into it. A later import
    loads it afresh."""
    for name in [name for name in sys.modules if name.partition(".")[0] == package]:
        del sys.modules[name]
    gc.collect()


def load(
    path: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> Config:
    """The effective configuration: flags > environment > file > defaults.

    `path` None reads ./web.json5 if there is one. `overrides` are the command-line
    flags by dotted key; None values count as not given. Empty environment values too.
    """
    env = os.environ if env is None else env
    cwd = Path.cwd()
    file = _find(path)
    trees = []
    if file is not None:
        trees.append(_given(Config, _read(file), Where(str(file), file.absolute().parent)))
    for variable, (key, parse) in _ENVIRONMENT.items():
        if env.get(variable):
            value = parse(env[variable])
            trees.append(_given(Config, _nest({key: value}), Where(variable, cwd, env=True)))
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    trees.append(_given(Config, _nest(flags), Where("command line", cwd)))
    config = _build(Config, reduce(_merge, trees, {}), Where("defaults", cwd))

    listen = config.listen
    if env.get("HTTAP_TCPPORT"):
        port = _port(_number_text(env["HTTAP_TCPPORT"]), Where("HTTAP_TCPPORT", cwd, env=True))
        if "listen" not in flags:
            listen = tuple(address._replace(port=port) for address in listen)
    source = str(file.absolute()) if file is not None else None
    config = config._replace(listen=listen, source=source)
    place = str(file) if file is not None else "configuration"
    _check_tls(config, place)
    _check_auth(config, place)
    _check_mqtt(config, place)
    if config.uploads.limit > config.uploads.space:
        raise ConfigError(
            f"{place}: uploads.limit: found {config.uploads.limit}, more than uploads.space"
            f" ({config.uploads.space}): no file could be that large; expected at most"
            " uploads.space (bytes)"
        )
    if config.chroot and config.uploads.dir is not None:
        raise ConfigError(
            f"{place}: uploads.dir: not with chroot, which confines the server to"
            " `documents`, out of reach of the uploads folder; leave chroot false (the"
            " systemd unit's sandbox confines it instead)"
        )
    return config


def _check_tls(config: Config, place: str) -> None:
    """An https:// address needs both files; said where the user will look for them."""
    secure = config.https
    if not secure or (config.tls.certificate and config.tls.key):
        return
    missing = " and ".join(
        f"tls.{name}" for name in ("certificate", "key") if not getattr(config.tls, name)
    )
    raise ConfigError(
        f"{place}: listen: {secure[0].url} needs {missing} (PEM files; `make run-tls`"
        " shows how to make a self-signed pair)"
    )


def _check_auth(config: Config, place: str) -> None:
    """Settings that are each valid but together would lock everyone out, or ask for
    passwords nobody could give."""
    auth = config.auth
    granted = set().union(*(abilities(auth.roles, user.role) for user in auth.users.values()))
    if auth.users and config.uploads.dir is not None and config.uploads.role not in granted:
        raise ConfigError(
            f"{place}: uploads.role: no user has the role {json.dumps(config.uploads.role)},"
            " which storing files and updating the app need when auth has users (check"
            " auth.users and auth.roles)"
        )
    guarded = False
    for index, route in enumerate(auth.routes):
        if route.role is None:
            continue
        guarded = True
        if route.role not in granted:
            raise ConfigError(
                f"{place}: auth.routes[{index}].role: no user has the role"
                f" {json.dumps(route.role)} (check auth.users and auth.roles)"
            )
    costs = {
        tuple(SCRYPT_HASH.fullmatch(user.password).group("ln", "r")) for user in auth.users.values()
    }
    if len(costs) > 1:
        shown = ", ".join(f"ln={ln},r={r}" for ln, r in sorted(costs))
        raise ConfigError(
            f"{place}: auth.users: the hashes have different costs ({shown}); the time a"
            " check takes would tell which user names exist: make them all with the same"
            " `httap passwd --cost`"
        )
    if auth.users and not guarded:
        raise ConfigError(
            f"{place}: auth.users: no auth.routes entry asks for a role, so no password would"
            ' ever be asked for; add one like {match: "/?", role: "user"}'
        )
    if guarded and not config.https and not auth.plain_http:
        raise ConfigError(
            f"{place}: auth.routes: passwords are accepted only over https, and no listen"
            " address is https://; add one (with tls.certificate and tls.key), or set"
            " auth.plain_http to true on a network you trust"
        )


def _check_mqtt(config: Config, place: str) -> None:
    """The bridge names its topics after `id`, so it must be one topic level; `ca` is
    for a TLS broker only; a password goes with a user name; `role` with auth's users."""
    mqtt = config.mqtt
    if mqtt.broker is None:
        return
    if not re.fullmatch(_TOPIC_LEVEL, config.id):
        raise ConfigError(
            f"{place}: id: found {json.dumps(config.id)}, expected one MQTT topic level"
            ' (no "/", "+" or "#") since mqtt.broker is set: topics are PREFIX/ID/...'
        )
    if mqtt.ca is not None and not mqtt.broker.secure:
        raise ConfigError(
            f"{place}: mqtt.ca: given, but mqtt.broker {mqtt.broker.url} is not mqtts://"
        )
    if mqtt.password is not None and mqtt.username is None:
        raise ConfigError(  # MQTT 3.1.1 section 3.1.2.9: no password without a user name
            f"{place}: mqtt.password: given without mqtt.username, which MQTT 3.1.1 needs"
            " to send a password (section 3.1.2.9); set mqtt.username"
        )
    if mqtt.role is not None and not config.auth.users:
        raise ConfigError(
            f"{place}: mqtt.role: found {json.dumps(mqtt.role)}, but auth has no users,"
            " so no rule is checked and the role would do nothing; add auth.users (with"
            " that role) or remove mqtt.role"
        )


def mqtt_client_id(config: Config) -> str:
    """The MQTT client identifier in effect: `mqtt.client_id`, else "httap-ID"."""
    return config.mqtt.client_id or f"httap-{config.id}"


def to_dict(config: Config) -> dict:
    """The effective values as JSON data shaped like web.json5 (a valid one), defaults filled in."""
    return _plain(config)


def _plain(value: Any) -> Any:
    if isinstance(value, (ListenAddress, Broker)):
        return value.url
    if isinstance(value, MqttConfig) and value.password is not None:  # never shown
        return {**_plain(value._replace(password=None)), "password": "(hidden)"}
    if isinstance(value, Redirect):
        return {key: each for key, each in zip(_REDIRECT_KEYS, value) if each is not None}
    if hasattr(value, "_fields"):  # a schema object (a NamedTuple), not a list
        return {name: _plain(getattr(value, name)) for name in _keys(type(value))}
    if isinstance(value, Mapping):
        return {key: _plain(each) for key, each in value.items()}
    if isinstance(value, tuple):
        return [_plain(each) for each in value]
    return value
