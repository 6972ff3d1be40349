"""What `/?files` and `/?app` mean (docs/protocol.md, "Files"): files stored on the
device, and the web app's own update. The bodies come streamed (reply.Upload): never
whole in memory, written to the disk a part (at most 64 KiB) per loop turn.

- `PUT /?files/NAME` stores the body as NAME: written to a temporary file in
  `uploads.dir` (named `.upload-*`: a NAME never starts with "."), renamed into place
  once complete; 201 `{"name", "size"}`, 200 when it replaced a file. A body cut off,
  refused or timed out leaves nothing.
- `POST /?files` takes `multipart/form-data` (an HTML form), parsed as it streams by
  python-multipart (imported at the first form): each file part is stored by its file
  name, all renamed into place once the form is complete; 201 `{"files": [...]}`.
  Other fields are ignored.
- `GET /?files` lists `{"files": [{"name", "size", "modified"}]}` (regular files with
  a valid NAME, by name; `modified` in epoch seconds); `GET /?files/NAME` sends one as
  application/octet-stream, `Content-Disposition: attachment` with its name;
  `DELETE /?files/NAME` removes it (204).
- NAME: 1-255 bytes of UTF-8, no `/`, `\\`, NUL or other control characters (C0, DEL,
  C1), not starting with "."; else 400 `bad-name`.
- Sizes: a file over `uploads.limit`, or a folder that would hold more than
  `uploads.space` (the files in it, the uploads under way, less the file a PUT
  replaces), is 413 `too-large` as soon as the size is known: from Content-Length
  before any byte is read, else as the body grows; nothing is kept. A disk that fills
  first is 507 `no-space`.
- `PUT /?app` takes a `.tar.gz` or `.zip` (at most `uploads.limit` bytes), streamed to
  a temporary file likewise, then has `site` (httap/site.py) unpack, check and switch
  to it, a slice of work per loop turn; 200 with `GET /?app`'s object, 400
  `bad-archive` with the reason when it is refused (nothing changed).
  `POST /?app/rollback` switches back; `GET /?app` tells the current version.
- Writes need `uploads.role` when `auth` has users (`routes`: the rules go before
  `auth.routes`); none takes the hardware lease.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import time
from typing import Any, Optional
from urllib.parse import quote

from httap import extras, http
from httap.config import Route, UploadsConfig
from httap.manager.room import READS, Answer, Row, no_such
from httap.reply import Pending, Upload
from httap.unlink import unlinking

log = logging.getLogger("httap.files")

OCTETS = ("Content-Type", "application/octet-stream")
TEMPORARY = ".upload-"  # the prefix of a file being received: no NAME starts with "."
RETIRED = ".old-"  # the prefix of a file replaced or deleted, being freed
RETIRE_SLICE = 1 << 20  # bytes freed per loop turn
MAX_NAME = 255  # bytes of UTF-8 (the common file systems' limit for one name)
MAX_PART_HEAD = 8192  # bytes of one form part's header lines
# A write to the disk that took longer than this (seconds) means the kernel is holding
# the writer back (dirty pages over its bound; a slow SD card): the upload then pauses
# as long as the write took, so writing takes at most half of the loop's time.
SLOW_WRITE = 0.002
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f-\x9f]")
# multipart/form-data's boundary (RFC 2046 5.1.1): 1 to 70 characters.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def routes(role: str) -> tuple[Route, ...]:
    """The auth rules for the writes of `/?files` and `/?app`: `role` for each."""
    return (
        Route("/?files", role, ("PUT", "POST", "DELETE")),
        Route("/?app", role, ("PUT", "POST")),
    )


def check_name(name: Optional[str]) -> str:
    """`name` if it may name a stored file (see the module); 400 `bad-name` otherwise."""
    why = None
    if not name:
        why = "it is empty"
    elif len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        why = f"it is longer than {MAX_NAME} bytes of UTF-8"
    elif name.startswith("."):
        why = 'it starts with "."'
    elif _BAD_NAME.search(name):
        why = "it holds a /, a \\ or a control character"
    if why is not None:
        shown = repr(name if len(name or "") <= 40 else name[:37] + "...")
        raise http.HTTPError(400, "bad-name", f"the file name {shown} is refused: {why}")
    return name


class Files:
    """The `/?files` and `/?app` rooms over `settings` (uploads), on `loop`; `site` is
    the documents' versions (site.py: `unpack(path)`, `rollback()`, `shown()`), None
    when the app cannot be updated. `reserved` counts the bytes of uploads under way;
    `pauses`, the times an upload waited for the disk (SLOW_WRITE)."""

    def __init__(self, settings: UploadsConfig, loop: Any, site: Any = None) -> None:
        self.settings = settings
        self.folder = os.path.abspath(settings.dir) if settings.dir else ""
        self.loop = loop
        self.site = site
        self.reserved = 0
        self.pauses = 0
        self.installing = False  # an archive is being unpacked (one at a time)
        if self.folder:  # what a stopped server left: uploads cut off, files being freed
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.name.startswith((TEMPORARY, RETIRED)):
                        _remove(entry.path)

    def pace(self, upload: Upload, seconds: float) -> None:
        """`upload` wrote for `seconds`: past SLOW_WRITE it is `behind` (its connection
        reads nothing) for as long again, then resumes."""
        if seconds > SLOW_WRITE:
            upload.behind = True
            self.pauses += 1
            self.loop.call_later(seconds, upload.resume)

    def aside(self) -> str:
        """A new path in the folder for a file being freed (`retire`)."""
        return os.path.join(self.folder, RETIRED + os.urandom(8).hex())

    def retire(self, path: str) -> None:
        """Free the file at `path`, a name no client sees, a slice per loop turn
        (httap/unlink.py says why): it is shrunk by RETIRE_SLICE bytes a loop turn, a
        slow step followed by a pause as long (SLOW_WRITE), then removed."""
        steps = unlinking(path, RETIRE_SLICE)

        def step() -> None:
            started = time.perf_counter()
            if next(steps, 0):
                took = time.perf_counter() - started
                self.loop.call_later(took if took > SLOW_WRITE else 0.0, step)

        step()

    def rows(self) -> tuple[Row, ...]:
        """The dispatch rows (none without `uploads.dir`)."""
        if not self.folder:
            return ()
        found = (
            Row("files", "GET, HEAD, POST", None, self.collection, self._alone, streamed=_POST),
            Row("files/NAME", "GET, HEAD, PUT, DELETE", None, self.file, check_name, streamed=_PUT),
        )
        if self.site is None:
            return found
        return (
            *found,
            Row("app", "GET, HEAD, PUT", None, self.app, streamed=_PUT),
            Row("app/NAME", "POST", None, self.rollback, _rollback_only),
        )

    @staticmethod
    def _alone(name: Optional[str]) -> None:
        if name is not None:
            check_name(name)

    # -- /?files ---------------------------------------------------------------------

    def collection(self, request: http.Request, _: None) -> Any:
        """GET: the list; POST: a form's files."""
        if request.method in READS:
            return {"files": self._listing()}
        return Form(request, self)

    def file(self, request: http.Request, name: str) -> Any:
        path = os.path.join(self.folder, name)
        if request.method == "PUT":
            return Stored(request, self, self._ceiling(name))
        if request.method == "DELETE":
            if _regular(path) is None:
                raise _missing(name)
            retired = self.aside()
            os.rename(path, retired)  # gone at once for every client; freed in slices
            self.retire(retired)
            log.info("files: %s removed by %s", name, _who(request))
            return None
        info = _regular(path)
        if info is None:
            raise _missing(name)
        headers = [OCTETS, ("Content-Disposition", attachment(name))]
        return http.Response(200, headers, file=http.FileBody(path, 0, info.st_size))

    def _listing(self) -> list[dict[str, Any]]:
        found = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or _BAD_NAME.search(entry.name):
                    continue
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    found.append(
                        {"name": entry.name, "size": info.st_size, "modified": info.st_mtime}
                    )
        return sorted(found, key=lambda item: item["name"])

    def _ceiling(self, replaced: Optional[str]) -> int:
        """What `reserved` may grow to: `space` less what is stored, plus the size of
        the file `replaced` (a PUT that replaces a file frees its bytes)."""
        stored = 0
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if not entry.name.startswith(TEMPORARY):  # those are in `reserved`
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        stored += info.st_size
        if replaced is not None:
            info = _regular(os.path.join(self.folder, replaced))
            stored -= info.st_size if info is not None else 0
        return self.settings.space - stored

    # -- /?app -----------------------------------------------------------------------

    def app(self, request: http.Request, _: None) -> Any:
        if request.method in READS:
            return self.site.shown()
        return Archive(request, self, self._ceiling(None))

    def rollback(self, request: http.Request, action: str) -> Any:
        """POST /?app/rollback: the previous version; /?app/documents: the configured
        documents. Either answers `GET /?app`'s object."""
        if action == "documents":
            self.site.documents_again()
            log.info("app: configured documents served again, by %s", _who(request))
            return self.site.shown()
        try:
            self.site.rollback()
        except ValueError as err:  # site.Refused: there is nothing to go back to
            raise http.HTTPError(409, "no-previous", str(err)) from None
        log.info("app: rolled back by %s", _who(request))
        return self.site.shown()

    def install(self, path: str, request: http.Request) -> Pending:
        """Have `site` unpack, check and switch to the archive at `path`, a slice per
        loop turn; the archive is removed at the end, whatever the outcome. 409
        `installing` while another archive is being installed."""
        if self.installing:
            raise http.HTTPError(
                409, "installing", "another archive is being installed; try again when it is done"
            )
        self.installing = True
        done = Pending()
        steps = self.site.unpack(path)

        def step() -> None:
            try:
                next(steps)
            except StopIteration:
                finish(self.site.shown())
            except ValueError as err:  # site.Refused
                finish(http.HTTPError(400, "bad-archive", str(err)))
            except OSError as err:
                log.error("app: cannot install the archive: %s", err)
                finish(http.HTTPError(500, "install-failed", f"cannot install: {err.strerror}"))
            except Exception:
                log.exception("app: the install failed")
                finish(http.HTTPError(500, "install-failed", "the install failed; see the log"))
            else:
                self.loop.call_soon(step)

        def finish(outcome: Any) -> None:
            self.installing = False
            _remove(path)
            if not isinstance(outcome, Exception):
                log.info("app: updated by %s", _who(request))
            done.resolve(outcome)

        self.loop.call_soon(step)
        return done


_PUT = frozenset(("PUT",))
_POST = frozenset(("POST",))


def _rollback_only(name: Optional[str]) -> str:
    if name not in ("rollback", "documents"):
        raise no_such(
            f"app/{name}", "the app's resources are /?app, /?app/rollback and /?app/documents"
        )
    return name


class _Temporary:
    """One file being received: a temporary file in the folder, counted in `files`'
    `reserved` while it grows, then renamed into place (`keep`) or removed (`drop`)."""

    __slots__ = ("fd", "files", "path", "size")

    def __init__(self, files: Files) -> None:
        import tempfile  # here: a server without uploads never loads shutil, bz2, lzma

        self.files = files
        self.fd, self.path = tempfile.mkstemp(prefix=TEMPORARY, dir=files.folder)
        self.size = 0

    def write(self, data: bytes) -> None:
        """Write all of `data`; 507 `no-space` when the disk is full (ENOSPC, EDQUOT)."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                view = view[written:]
                self.size += written
                self.files.reserved += written
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise http.HTTPError(
                    507, "no-space", "the device's disk is full; nothing was kept"
                ) from None
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.files.reserved -= self.size
        self.size = 0

    def keep(self, name: str) -> bool:
        """Rename into place as `name`; whether it replaced a file, which is then freed
        in slices (Files.retire). The old file is first renamed aside, so that the new
        one's rename does not replace a file: ext4 then writes out all of the new file's
        dirty pages in the renaming call (auto_da_alloc), 35 ms for 50 MiB measured,
        where the kernel's flusher would do it outside the loop. Between the two renames
        no request runs (the loop is single-threaded); see protocol.md Choices."""
        self.close()
        target = os.path.join(self.files.folder, name)
        replaced = _regular(target) is not None
        if replaced:
            retired = self.files.aside()
            os.rename(target, retired)
        os.rename(self.path, target)
        if replaced:
            self.files.retire(retired)
        return replaced

    def drop(self) -> None:
        self.close()
        self.files.retire(self.path)


class Stored(Upload):
    """`PUT /?files/NAME`'s body (see the module). `ceiling`: what the bytes of all the
    uploads under way may grow to (Files._ceiling)."""

    __slots__ = ("ceiling", "files", "name", "temporary")

    def __init__(self, request: http.Request, files: Files, ceiling: int) -> None:
        super().__init__(request, max(0, min(files.settings.limit, ceiling - files.reserved)))
        self.files = files
        self.ceiling = ceiling
        self.name: str = request.path.partition("/")[2]  # checked by the row's find
        self.temporary: Optional[_Temporary] = None

    def too_large(self, size: Optional[int] = None) -> http.HTTPError:
        return _too_large(self.files, size, self.ceiling)

    def write(self, data: bytes) -> None:
        if self.files.reserved + len(data) > self.ceiling:  # other uploads took the room
            raise self.too_large()
        started = time.perf_counter()
        if self.temporary is None:
            self.temporary = _Temporary(self.files)
        self.temporary.write(data)
        self.files.pace(self, time.perf_counter() - started)

    def end(self) -> Any:
        temporary = self.temporary or _Temporary(self.files)  # an empty file
        size = temporary.size
        replaced = temporary.keep(self.name)
        log.info("files: %s stored (%d bytes) by %s", self.name, size, _who(self.request))
        return Answer(200 if replaced else 201, {"name": self.name, "size": size})

    def abort(self) -> None:
        if self.temporary is not None:
            self.temporary.drop()


class Archive(Stored):
    """`PUT /?app`'s body: stored as a temporary file, then installed by `site`."""

    __slots__ = ()

    def end(self) -> Any:
        temporary = self.temporary or _Temporary(self.files)
        temporary.close()  # the file stays until `install` is done with it
        return self.files.install(temporary.path, self.request)


class Form(Upload):
    """`POST /?files`' multipart/form-data body (see the module): each file part goes
    to a temporary file as it arrives; all are renamed into place at the end."""

    __slots__ = (
        "ceiling",
        "complete",
        "disposition",
        "field",
        "files",
        "parser",
        "part",
        "received_parts",
        "value",
    )

    def __init__(self, request: http.Request, files: Files) -> None:
        super().__init__(request)
        self.files = files
        self.ceiling = files._ceiling(None)
        self.parser = self._parser(request.headers.get("content-type", ""))
        self.field = self.value = b""  # the header line being read, its name and value
        self.disposition: Optional[bytes] = None  # the part's Content-Disposition
        self.part: Optional[tuple[str, _Temporary]] = None  # a file part being received
        self.received_parts: list[tuple[str, _Temporary]] = []
        self.complete = False  # the closing boundary was seen

    def _parser(self, content_type: str) -> Any:
        kind, _, options = content_type.partition(";")
        match = re.search(r'boundary=(?:"([^"]*)"|([^;\s]*))', options)
        boundary = (match.group(1) or match.group(2)) if match else None
        if kind.strip().lower() != "multipart/form-data" or not boundary:
            raise http.HTTPError(
                415,
                "unsupported-type",
                "POST /?files takes multipart/form-data with a boundary (an HTML form with"
                " enctype=multipart/form-data); PUT /?files/NAME takes the file itself",
            )
        if not _BOUNDARY.fullmatch(boundary):
            raise http.HTTPError(400, "bad-form", "the multipart boundary is malformed")
        try:
            from python_multipart.multipart import MultipartParser  # only when a form arrives
        except ImportError:
            message = extras.forms("a form (POST /?files)")
            raise http.HTTPError(501, "not-installed", message) from None
        return MultipartParser(
            boundary.encode("latin-1"),
            {
                "on_part_begin": self._begin,
                "on_header_field": self._header,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def too_large(self, size: Optional[int] = None) -> http.HTTPError:
        return _too_large(self.files, size, self.ceiling)

    def write(self, data: bytes) -> None:
        from python_multipart.exceptions import MultipartParseError

        started = time.perf_counter()
        try:
            self.parser.write(data)
        except MultipartParseError as err:
            raise http.HTTPError(400, "bad-form", f"the form is malformed: {err}") from None
        self.files.pace(self, time.perf_counter() - started)

    def end(self) -> Any:
        self.parser.finalize()
        if not self.complete:
            raise http.HTTPError(400, "bad-form", "the form ended before its closing boundary")
        if not self.received_parts:
            raise http.HTTPError(400, "bad-form", "the form holds no file")
        stored = []
        for name, temporary in self.received_parts:
            size = temporary.size
            temporary.keep(name)
            stored.append({"name": name, "size": size})
        self.received_parts = []
        names = ", ".join(item["name"] for item in stored)
        log.info("files: %s stored by %s", names, _who(self.request))
        return Answer(201, {"files": stored})

    def abort(self) -> None:
        if self.part is not None:
            self.received_parts.append(self.part)
            self.part = None
        for _, temporary in self.received_parts:
            temporary.drop()
        self.received_parts = []

    # -- the parser's callbacks -------------------------------------------------------

    def _begin(self) -> None:
        self.field = self.value = b""
        self.disposition = None

    def _header(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]
        self._bounded()

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]
        self._bounded()

    def _bounded(self) -> None:
        if len(self.field) + len(self.value) > MAX_PART_HEAD:
            raise http.HTTPError(400, "bad-form", f"a part's header is over {MAX_PART_HEAD} bytes")

    def _header_end(self) -> None:
        if self.field.strip().lower() == b"content-disposition":
            self.disposition = self.value.strip()
        self.field = self.value = b""

    def _headers_done(self) -> None:
        """A part's head is in: a file part (with a file name) gets its temporary file."""
        if self.disposition is None:
            return
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.disposition)
        raw = options.get(b"filename")
        if raw is None:
            return  # a field that is not a file: ignored
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise http.HTTPError(400, "bad-name", "a file name in the form is not UTF-8") from None
        self.part = (check_name(name), _Temporary(self.files))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.part is None:
            return
        temporary = self.part[1]
        size = end - start
        if temporary.size + size > self.files.settings.limit:
            raise self.too_large()
        if self.files.reserved + size > self.ceiling:
            raise self.too_large()
        temporary.write(data[start:end])

    def _part_end(self) -> None:
        if self.part is not None:
            self.received_parts.append(self.part)
            self.part = None

    def _end(self) -> None:
        self.complete = True


def _too_large(files: Files, size: Optional[int], ceiling: int) -> http.HTTPError:
    """413 `too-large`, naming the bound that was passed: `uploads.limit` for a file
    declared (`size`, bytes) over it, else the smaller of it and the folder's room
    under `uploads.space`."""
    settings = files.settings
    room = ceiling - files.reserved
    what = "the file" if size is None else f"the file ({size} bytes)"
    if (size is not None and size > settings.limit) or settings.limit <= room:
        message = f"{what} is over the limit of {settings.limit} bytes (uploads.limit)"
    else:
        message = (
            f"{what} does not fit: the folder may hold {settings.space} bytes (uploads.space)"
            f" and has room for {max(0, room)} more"
        )
    return http.HTTPError(413, "too-large", message + "; nothing was kept")


def attachment(name: str) -> str:
    """The Content-Disposition of a download saved as `name` (a valid NAME): RFC 6266
    §4.1, `filename` as a quoted-string (RFC 9110 §5.6.4); a name beyond printable ASCII
    also as `filename*` in UTF-8 (RFC 8187 §3.2), with `filename` its ASCII fallback,
    "_" for each other character (RFC 6266 §4.3, Appendix D). `curl -OJ` reads
    `filename`; browsers prefer `filename*`."""
    fallback = "".join(c if " " <= c <= "~" else "_" for c in name)
    quoted = fallback.replace("\\", "\\\\").replace('"', '\\"')
    value = f'attachment; filename="{quoted}"'
    if fallback != name:
        value += "; filename*=UTF-8''" + quote(name, safe="!#$&+^`|")
    return value


def _regular(path: str) -> Optional[os.stat_result]:
    """The stat of the regular file at `path` (not a link followed), else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _missing(name: str) -> http.HTTPError:
    return http.HTTPError(404, "not-found", f"no file {name!r}; GET /?files lists them")


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _who(request: http.Request) -> str:
    client = request.client[0] if request.client else "-"
    return client if request.user is None else f"{client} user={request.user}"
