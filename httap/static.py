"""The file domain: documents under one root, served safely and fast.

Rules of this file:
- A target is decoded once (percent-decoding to bytes, then strict UTF-8). NUL bytes and
  `..` segments are refused, and the real path (every symbolic link resolved) must lie
  under the real root. Only regular files are served; a directory only through its index.
- A served file has a cache entry whose responses (the 200 of the file and of each
  pre-compressed sibling, and their 304s) are built once and returned as the same
  objects on every request, so each head is encoded once. Nobody mutates them.
- Files up to `SMALL_FILE` bytes are kept in memory within a byte budget; the others go
  out from disk as a `FileBody` (os.sendfile).
- A request target is remembered with the file it resolved to, so a repeated target skips
  decoding; after `recheck` seconds the target is resolved and the file stat'ed again, so
  a changed, replaced or deleted file is noticed within that time.
- HEAD gets exactly the response GET would get (ranges included); the connection omits
  the body.
- Every reply states its caching (RFC 9111 section 5.2.2). A file's 200, 206 and 304 say
  `Cache-Control: no-cache` (revalidate: a 304 is cheap) unless a `cache` rule gives its
  path a lifetime (`max-age=N`); the 304 repeats it, as RFC 9110 section 15.4.5 asks.
  Refusals and redirects say `no-store` (see `error_response`).
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from collections.abc import Mapping
from functools import lru_cache
from time import monotonic
from typing import Optional
from urllib.parse import quote, unquote_to_bytes

from httap.http import FileBody, Request, Response, error_response, http_date, parse_http_date

SMALL_FILE = 256 * 1024  # files up to this size are kept in memory...
CACHE_BYTES = 32 * 1024 * 1024  # ...while all of them together fit in this budget
MAX_FILES = 1024  # cache entries; all are dropped when full
MAX_TARGETS = 1024  # remembered targets (query strings are endless); cleared when full

# Types that differ between Python versions and hosts, fixed so that every host agrees.
_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".json5": "application/json5",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".webp": "image/webp",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".gz": "application/gzip",
}
_UTF8_TYPES = ("application/javascript", "application/json")
_SIBLINGS = (("br", ".br"), ("gzip", ".gz"))  # pre-compressed siblings, preferred first
_CONDITIONAL = ("if-none-match", "if-modified-since", "range")
_RANGE_RE = re.compile(
    r"bytes=[ \t]*(?:([0-9]{1,18})-([0-9]{0,18})|-([0-9]{1,18}))[ \t]*", re.IGNORECASE
)
_QVALUE_RE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")

# A file's stat key: (st_mtime_ns, st_size, st_ino), or None when it is not a regular file.
_Key = Optional[tuple[int, int, int]]


class _Refused(Exception):
    """Resolution stopped with a ready answer: 400, 403, 404 or a redirect."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class _Representation:
    """One file as sent (the document or a pre-compressed sibling) and its prepared replies."""

    __slots__ = ("data", "etag", "mtime", "not_modified", "ok", "path", "size")

    def __init__(
        self,
        path: str,
        data: Optional[bytes],
        size: int,
        etag: str,
        mtime: int,
        ok: Response,
        not_modified: Response,
    ) -> None:
        self.path = path
        self.data = data  # None when the file is sent from disk
        self.size = size
        self.etag = etag
        self.mtime = mtime  # whole seconds, as Last-Modified says
        self.ok = ok
        self.not_modified = not_modified

    def partial(self, first: int, last: int) -> Response:
        """206 for bytes first..last (inclusive), from memory or from disk."""
        headers = [*self.ok.headers, ("Content-Range", f"bytes {first}-{last}/{self.size}")]
        if self.data is not None:
            return Response(206, headers, self.data[first : last + 1])
        return Response(206, headers, file=FileBody(self.path, first, last - first + 1))


class _Entry:
    """A served file: its identity representation, its encoded siblings, and the stat
    signature (file, then siblings) they were built from."""

    __slots__ = ("cost", "encoded", "identity", "signature", "vary")

    def __init__(
        self,
        signature: tuple[_Key, ...],
        identity: _Representation,
        encoded: dict[str, _Representation],
        vary: list[tuple[str, str]],
    ) -> None:
        self.signature = signature
        self.identity = identity
        self.encoded = encoded
        self.vary = vary
        self.cost = sum(len(r.data) for r in (identity, *encoded.values()) if r.data is not None)

    def pick(self, accept_encoding: Optional[str]) -> _Representation:
        """The best representation the client accepts (identity when in doubt)."""
        if self.encoded:
            for coding in _accepted_codings(accept_encoding):
                if coding in self.encoded:
                    return self.encoded[coding]
        return self.identity


class StaticFiles:
    """Answers GET and HEAD for the files under `root`.

    `mime` maps ".ext" to a Content-Type, over the built-in table; `headers` are added to
    every file's 200 and 206 (not Cache-Control or Expires: `cache` decides those).
    `cache` maps a file's path under `root` ("/index.html") or a prefix ending with "*"
    ("/assets/*") to the whole seconds caches may reuse it without asking (0: never); the
    exact path wins, then the longest prefix; a file no rule names is revalidated every
    time. `recheck` is how many seconds a target is trusted to name the same, unchanged
    file; `cache_bytes` bounds the bytes kept in memory. `version` and `since` come from
    the documents' version (site.py): the version's name starts every ETag and `since`
    (epoch seconds) is the earliest Last-Modified, so that after a switch no file is a
    304 for what a client kept of another version (RFC 9110 sections 8.8.2 and 8.8.3).
    """

    def __init__(
        self,
        root: str,
        index: str = "index.html",
        mime: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        recheck: float = 1.0,
        cache_bytes: int = CACHE_BYTES,
        cache: Optional[Mapping[str, int]] = None,
        version: str = "",
        since: int = 0,
    ) -> None:
        self._root = os.path.realpath(root).rstrip(os.sep)  # "" when the root is "/"
        self._prefix = self._root + os.sep
        self._index = index
        self._types = _type_table(mime or {})
        self._extra = list((headers or {}).items())
        self._lifetimes = dict(cache or {})
        self._recheck = recheck
        self._cache_bytes = cache_bytes
        self._version = version + "-" if version else ""
        self._since = since
        self._cached = 0  # bytes of file data held by the entries in `_files`
        self._files: dict[str, _Entry] = {}  # real path -> entry
        self._targets: dict[str, tuple[str, float]] = {}  # target -> (real path, resolved at)
        self._not_allowed = error_response(405, "method not allowed: files answer GET and HEAD")
        self._not_allowed.headers.append(("Allow", "GET, HEAD"))

    def handle(self, request: Request) -> Response:
        """The hot path: a known target with no validators or range costs two dict lookups."""
        if request.method != "GET" and request.method != "HEAD":
            return self._not_allowed
        entry = None
        known = self._targets.get(request.target)
        if known is not None and monotonic() - known[1] < self._recheck:
            entry = self._files.get(known[0])
        if entry is None:
            try:
                entry = self._resolve(request.target)
            except _Refused as refusal:
                return refusal.response
        headers = request.headers
        if headers.keys().isdisjoint(_CONDITIONAL):
            return entry.pick(headers.get("accept-encoding")).ok
        return _conditional(entry, headers)

    # -- from a target to an entry -------------------------------------------------

    def _resolve(self, target: str) -> _Entry:
        """The slow path: decode and confine the target, then find or build its entry."""
        raw, mark, query = target.partition("#")[0].partition("?")
        path = _decode(raw)
        real = os.path.realpath(self._root + (path + self._index if path[-1] == "/" else path))
        if not self._inside(real):
            raise _Refused(error_response(403, f"forbidden: {raw}"))
        try:
            info = os.stat(real)
        except OSError:
            raise _Refused(error_response(404, f"not found: {raw}")) from None
        if stat.S_ISDIR(info.st_mode) and path[-1] != "/":
            raise _Refused(_redirect(path, mark + query))
        if not stat.S_ISREG(info.st_mode):
            raise _Refused(error_response(404, f"not found: {raw}"))
        try:
            entry = self._entry(real, info)
        except OSError as exc:
            if isinstance(exc, PermissionError):
                raise _Refused(error_response(403, f"forbidden: {raw}")) from None
            raise _Refused(error_response(404, f"not found: {raw}")) from None
        if len(self._targets) >= MAX_TARGETS:
            self._targets.clear()
        self._targets[target] = (real, monotonic())
        return entry

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._prefix)

    def _entry(self, real: str, info: os.stat_result) -> _Entry:
        """The entry of `real` while the file and its siblings are unchanged, else a new one."""
        signature = (_key(info), *(_file_key(real + suffix) for _, suffix in _SIBLINGS))
        entry = self._files.get(real)
        if entry is not None and entry.signature == signature:
            return entry
        old = self._files.pop(real, None)
        if old is not None:
            self._cached -= old.cost
        entry = self._build(real, signature)
        if len(self._files) >= MAX_FILES:
            self._files.clear()
            self._cached = 0
        self._files[real] = entry
        self._cached += entry.cost
        return entry

    # -- building an entry -----------------------------------------------------------

    def _build(self, real: str, signature: tuple[_Key, ...]) -> _Entry:
        """Read the file and its usable siblings and prepare every response they need."""
        siblings = {}
        sizes = [signature[0][1]]
        for (coding, suffix), key in zip(_SIBLINGS, signature[1:]):
            if key is not None:
                path = os.path.realpath(real + suffix)
                if self._inside(path):  # a sibling may be a link that leaves the root
                    siblings[coding] = path
                    sizes.append(key[1])
        in_memory = max(sizes) <= SMALL_FILE and self._cached + sum(sizes) <= self._cache_bytes
        content_type = self._content_type(real)
        vary = [("Vary", "Accept-Encoding")] if siblings else []
        # Said by every reply of the file and its siblings, 304s included.
        shared = [*vary, ("Cache-Control", self._cache_control(real[len(self._root) :]))]
        identity = self._representation(real, content_type, shared, None, in_memory)
        encoded = {
            coding: self._representation(path, content_type, shared, coding, in_memory)
            for coding, path in siblings.items()
        }
        return _Entry(signature, identity, encoded, vary)

    def _cache_control(self, path: str) -> str:
        """The Cache-Control of the file at `path` under the root ("/app.js"): the lifetime
        its exact rule or longest matching prefix gives, else revalidation every time."""
        seconds = self._lifetimes.get(path)
        if seconds is None:
            prefixes = [p for p in self._lifetimes if p[-1] == "*" and path.startswith(p[:-1])]
            if prefixes:
                seconds = self._lifetimes[max(prefixes, key=len)]
        return f"max-age={seconds}" if seconds else "no-cache"

    def _representation(
        self,
        path: str,
        content_type: str,
        shared: list[tuple[str, str]],
        coding: Optional[str],
        in_memory: bool,
    ) -> _Representation:
        """One file's 200 and 304, its validators taken from the descriptor it was read from."""
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            data = file.read() if in_memory else None
        coded = "-" + coding if coding else ""
        etag = f'"{self._version}{info.st_mtime_ns:x}-{info.st_size:x}{coded}"'
        mtime = max(info.st_mtime_ns // 10**9, self._since)
        validators = [("ETag", etag), ("Last-Modified", http_date(mtime)), *shared]
        # Ranges apply to the identity file only, so only its 200 advertises them.
        encoding = [("Content-Encoding", coding)] if coding else [("Accept-Ranges", "bytes")]
        headers = [("Content-Type", content_type), *validators, *encoding, *self._extra]
        if data is None:
            size = info.st_size
            ok = Response(200, headers, file=FileBody(path, 0, size))
        else:
            size = len(data)
            ok = Response(200, headers, data)
        not_modified = Response(304, validators)
        return _Representation(path, data, size, etag, mtime, ok, not_modified)

    def _content_type(self, path: str) -> str:
        """By the last extension only: `app.js.gz` asked for by name is a gzip file."""
        content_type = self._types.get(os.path.splitext(path)[1].lower())
        if content_type is None:
            return "application/octet-stream"
        if ";" not in content_type and (
            content_type.startswith("text/") or content_type in _UTF8_TYPES
        ):
            return content_type + "; charset=utf-8"
        return content_type


def _type_table(mime: Mapping[str, str]) -> dict[str, str]:
    """Extension -> type: Python's built-in table (never /etc/mime.types, which varies
    between hosts), then ours, then the configured overrides."""
    # A MimeTypes() holds Python's table only, but the first one also has the module
    # read /etc/mime.types into its own globals (init()): 0.4 MiB that nothing here
    # uses. `inited` says that is done; it is put back, for whoever calls init() later.
    inited, mimetypes.inited = mimetypes.inited, True
    try:
        builtin = mimetypes.MimeTypes().types_map  # (common, standard)
    finally:
        mimetypes.inited = inited
    overrides = {
        (ext if ext.startswith(".") else "." + ext).lower(): value for ext, value in mime.items()
    }
    return {**builtin[False], **builtin[True], **_TYPES, **overrides}


# -- conditional and range requests (RFC 9110 sections 13 and 14) --------------------


def _conditional(entry: _Entry, headers: dict[str, str]) -> Response:
    """304, 206, 416 or the full 200. A range is served from the identity file."""
    ranged = "range" in headers
    rep = entry.identity if ranged else entry.pick(headers.get("accept-encoding"))
    if _not_modified(rep, headers):
        return rep.not_modified
    if not ranged or not _if_range_holds(rep, headers.get("if-range")):
        return rep.ok
    spec = _parse_range(headers["range"])
    if spec is None:  # malformed or several ranges: RFC 9110 lets us send it all
        return rep.ok
    span = _satisfiable(spec, rep.size)
    if span is None:
        response = error_response(416, f"range not satisfiable: the file has {rep.size} bytes")
        response.headers += [("Content-Range", f"bytes */{rep.size}"), *entry.vary]
        return response
    return rep.partial(*span)


def _not_modified(rep: _Representation, headers: dict[str, str]) -> bool:
    """If-None-Match decides when present; If-Modified-Since only without it."""
    tags = headers.get("if-none-match")
    if tags is not None:
        return _etag_listed(rep.etag, tags)
    since = _http_date(headers.get("if-modified-since"))
    return since is not None and rep.mtime <= since


def _etag_listed(etag: str, tags: str) -> bool:
    """Weak comparison: `*`, or any listed tag equal to ours with or without W/."""
    for tag in tags.split(","):
        tag = tag.strip()
        if tag == "*" or tag == etag or (tag.startswith("W/") and tag[2:] == etag):
            return True
    return False


def _if_range_holds(rep: _Representation, value: Optional[str]) -> bool:
    """No If-Range, or one naming this exact version (strong ETag or equal date)."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == rep.etag
    return not value.startswith("W/") and _http_date(value) == rep.mtime


def _http_date(value: Optional[str]) -> Optional[int]:
    """Seconds since the epoch, or None when absent or unparseable."""
    return None if value is None else parse_http_date(value)


def _parse_range(value: str) -> Optional[tuple[Optional[int], Optional[int]]]:
    """One `bytes=` range as (first, last), or (None, n) for the last n bytes; None when
    malformed, several, or backwards."""
    match = _RANGE_RE.fullmatch(value)
    if match is None:
        return None
    first, last, suffix = match.groups()
    if suffix is not None:
        return None, int(suffix)
    if last and int(last) < int(first):
        return None
    return int(first), int(last) if last else None


def _satisfiable(spec: tuple[Optional[int], Optional[int]], size: int) -> Optional[tuple[int, int]]:
    """The inclusive byte span a parsed range selects in a file of `size` bytes, or None."""
    first, last = spec
    if first is None:
        return (max(0, size - last), size - 1) if last and size else None
    if first >= size:
        return None
    return first, size - 1 if last is None else min(last, size - 1)


@lru_cache(maxsize=64)
def _accepted_codings(header: Optional[str]) -> tuple[str, ...]:
    """The sibling codings an Accept-Encoding value allows, best first (br wins ties).

    Cached: a browser sends the same value on every request.
    """
    if not header:
        return ()
    weights = {}
    for member in header.lower().split(","):
        name, _, params = member.partition(";")
        weights[name.strip()] = _qvalue(params)
    other = weights.get("*", 0.0)
    ranked = {
        "br": weights.get("br", other),
        "gzip": weights.get("gzip", weights.get("x-gzip", other)),
    }
    return tuple(c for c in sorted(ranked, key=lambda c: -ranked[c]) if ranked[c] > 0)


def _qvalue(params: str) -> float:
    """The q of one list member: 1 when absent, 0 when malformed."""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip() == "q":
            value = value.strip()
            return float(value) if _QVALUE_RE.fullmatch(value) else 0.0
    return 1.0


# -- paths --------------------------------------------------------------------------


def _decode(raw: str) -> str:
    """Percent-decode once, then strict UTF-8; refuse what could name another place."""
    data = unquote_to_bytes(raw)
    if b"\0" in data:
        raise _bad("a NUL byte in the path")
    try:
        path = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the path is not valid UTF-8") from None
    if not path.startswith("/"):
        raise _bad("the path must start with /")
    if ".." in path.split("/"):
        raise _bad("'..' in the path")
    return path


def _bad(why: str) -> _Refused:
    return _Refused(error_response(400, f"bad request: {why}"))


def _redirect(path: str, query: str) -> Response:
    """301 to the directory with its slash, the query (`?...` as sent, or "") kept. The
    location is rebuilt from the segments, so `//host/dir` cannot become a redirect to
    another host."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    location = "/" + "".join(quote(part) + "/" for part in parts) + query
    response = error_response(301, f"moved permanently: {location}")
    response.headers.append(("Location", location))
    return response


def _key(info: os.stat_result) -> _Key:
    return (info.st_mtime_ns, info.st_size, info.st_ino) if stat.S_ISREG(info.st_mode) else None


def _file_key(path: str) -> _Key:
    try:
        return _key(os.stat(path))
    except OSError:
        return None
