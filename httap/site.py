"""The documents' versions: the browser app replaced by an archive, and rolled back.

No URL is known here: `/?app` (manager/files.py) comes here.

Rules of this file:
- The configured `documents` folder is never written. Versions live beside it, in
  `DOCUMENTS.versions/` (`/srv/www` -> `/srv/www.versions`): one folder per installed
  archive, and `state.json`, which names the current version and the previous one.
- An archive (`.tar.gz` or `.zip`, told apart by its first bytes, not its name) is
  unpacked into a staging folder `.new-*`, checked member by member as it is unpacked,
  then renamed into place and made current by replacing `state.json` (written to a
  temporary file, flushed to the disk, then renamed over the old one: rename(2) is
  atomic), and by handing the new root to `switched` at once. A refused archive leaves
  nothing behind and changes nothing.
- Checks (`Refused`, whose message is the reason): an archive of one of the two kinds
  that opens; at most `members` members; names relative, without `..` (no member
  leaves its folder); only regular files and folders (no symbolic or hard links, no
  devices or fifos); at most `limit` bytes unpacked, by the sizes the archive declares
  before a byte is written and by the bytes really written (a header may lie); the
  `index` file at the top, or in the archive's one top folder (then that folder is
  served). Tar members also pass tarfile's own `data` filter (PEP 706) where Python has
  it (3.8.17+, 3.9.17+, 3.10.12+, 3.11.4+); our checks come first, so the reasons are
  the same on every Python.
- Files are written by us, not by tarfile or zipfile, so that the bytes are counted
  as they are written and the work can be cut into slices (`unpack` yields after
  every CHUNK bytes): modes, owners and times in the archive are ignored (files get
  the process's umask and the time they are written).
- The state keeps two versions: the current one and the previous (None stands for the
  configured documents). `rollback` swaps them; `documents_again` makes the configured
  documents current (the version it replaces kept as the previous). Older folders
  are removed after a switch, in slices too.
- Each version has a `since`: the whole second it became current, later than the
  `since` of the version it replaced (and than the newest file of the configured
  documents, when it replaced them). Served files take it as the floor of their
  Last-Modified, and the version's name goes into their ETag (static.py), so that a
  file with the same name, size and time in both versions is never wrongly a 304.
  After switches in quick succession, `since` may run a second or so ahead of the clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, Callable, NamedTuple, Optional

from httap.config import versions_folder
from httap.unlink import unlinking

if TYPE_CHECKING:
    import tarfile
    import zipfile

log = logging.getLogger("httap.site")

MAX_MEMBERS = 10_000  # files and folders in one archive
CHUNK = 64 * 1024  # bytes read, written or hashed between two yields of `unpack`
STATE = "state.json"
STAGING = ".new-"
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip's end
TAR_BLOCK = 512  # a tar member's header, and the unit its data is padded to
HEADER = 3 * TAR_BLOCK  # the most a member's headers may take (a long name, a pax record)


class Refused(ValueError):
    """The archive is not installed; the message says why (a 400's reason)."""


class Version(NamedTuple):
    """One installed archive: its folder under the versions folder, the folder served
    (itself, or its one top folder), the archive's SHA-256 (hex) and size (bytes), when
    it was installed and since when it is current (epoch seconds)."""

    name: str
    root: str
    digest: str
    size: int
    time: float
    since: int

    def shown(self) -> dict[str, Any]:
        """What `GET /?app` says of it."""
        return {"digest": self.digest, "size": self.size, "time": round(self.time, 3)}


class Site:
    """The documents' versions beside `documents`: which one is served (`root`, `tag`,
    `since`), installing an archive, rolling back.

    `limit` caps the bytes unpacked (`uploads.limit`), `members` the members of an
    archive; `index` is the file that must be there (`index`). `switched()` is called
    after every switch, when `root`, `tag` and `since` name the new version.
    """

    def __init__(
        self,
        documents: str,
        limit: int,
        index: str = "index.html",
        members: int = MAX_MEMBERS,
        switched: Optional[Callable[[], Any]] = None,
    ) -> None:
        self.documents = os.path.abspath(documents)
        self.folder = versions_folder(documents)
        self.limit = limit
        self.index = index
        self.members = members
        self.switched = switched
        self.current: Optional[Version] = None
        self.previous: Optional[Version] = None
        self._since = 0  # of the configured documents, once a rollback makes them current
        self._load()

    # -- what is served --------------------------------------------------------------

    @property
    def root(self) -> str:
        """The folder to serve now."""
        if self.current is None:
            return self.documents
        return os.path.join(self.folder, self.current.root)

    @property
    def tag(self) -> str:
        """What sets this version's ETags apart from other versions' ("" for the
        configured documents)."""
        return "" if self.current is None else self.current.name

    @property
    def since(self) -> int:
        """The floor of Last-Modified while this version is current (epoch seconds)."""
        return self._since if self.current is None else self.current.since

    def shown(self) -> dict[str, Any]:
        """`GET /?app`: the current version and the one a rollback brings back
        (None: the configured documents)."""
        previous = self.previous.shown() if self.previous is not None else None
        if self.current is None:
            return {"digest": None, "size": None, "time": None, "previous": previous}
        return {**self.current.shown(), "previous": previous}

    # -- installing ---------------------------------------------------------------

    def unpack(self, archive: str) -> Iterator[None]:
        """Install the archive at `archive`, a slice of work at a time: every step of
        the iterator reads and writes at most about CHUNK bytes. When it is exhausted,
        the new version is current. Raises Refused (nothing changed) or OSError (the
        versions folder cannot be written; nothing changed)."""
        # Here, not at the top: a server that installs no archive never loads them
        # (hashlib brings OpenSSL's libcrypto; tempfile brings shutil, bz2 and lzma).
        import hashlib
        import shutil
        import tempfile

        digest = hashlib.sha256()
        with open(archive, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            kind = _kind(file.read(4))
            file.seek(0)
            for block in iter(lambda: file.read(CHUNK), b""):
                digest.update(block)
                yield
        os.makedirs(self.folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=STAGING, dir=self.folder)
        try:
            with open(archive, "rb") as file:
                yield from (self._untar if kind == "tar" else self._unzip)(file, staging)
            top = self._top(staging)
            name = f"{digest.hexdigest()[:12]}-{os.path.basename(staging)[len(STAGING) :]}"
            os.rename(staging, os.path.join(self.folder, name))
        except GeneratorExit:  # dropped unfinished: no more steps to take
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except BaseException:
            yield from _removing(staging)
            raise
        installed = time.time()
        root = name if top is None else os.path.join(name, top)
        version = Version(name, root, digest.hexdigest(), size, installed, 0)
        self._switch(version, self.current)
        log.info("app: switched to %s (sha256 %s, %d bytes)", name, version.digest, size)
        yield from self._pruning()

    def rollback(self) -> None:
        """Switch back to the previous version; the current one becomes the previous
        (a second rollback undoes the first). Refused when there is none."""
        if self.current is None and self.previous is None:
            raise Refused("there is no previous version to go back to")
        self._switch(self.previous, self.current)
        log.info("app: rolled back to %s", self.current.name if self.current else "documents")

    def documents_again(self) -> None:
        """Serve the configured documents; the version served until now becomes the
        previous one (a rollback brings it back). Nothing changes when they are served
        already. The way back to them once two updates have replaced them: only two
        versions are kept, and a rollback swaps those."""
        if self.current is None:
            return
        self._switch(None, self.current)
        log.info("app: switched back to the configured documents")

    # -- unpacking ------------------------------------------------------------------

    def _untar(self, file: IO[bytes], staging: str) -> Iterator[None]:
        """The members of a .tar.gz, read as a stream. The decompressed stream is capped
        too: each member lets through its data and three blocks of header for the next,
        since tarfile reads headers (long names, pax records) into memory whole."""
        import gzip
        import tarfile

        read_ahead = 2 * tarfile.RECORDSIZE  # what tarfile may read past what it needs
        stream = _Capped(gzip.GzipFile(fileobj=file, mode="rb"), HEADER + read_ahead)
        written = count = 0
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    yield  # a slice per member too: empty files cost a file each
                    count += 1
                    path = self._check(member.name, count, _tar_type(member))
                    stream.allow(-(-member.size // TAR_BLOCK) * TAR_BLOCK + HEADER)
                    if path is None:
                        continue
                    if hasattr(tarfile, "data_filter"):
                        tarfile.data_filter(member, staging)
                    if member.isdir():
                        _folder(staging, path)
                        continue
                    if written + member.size > self.limit:
                        raise self._too_large()
                    source = tar.extractfile(member)
                    written = yield from self._copy(source, staging, path, written)
        except getattr(tarfile, "FilterError", ()) as err:  # (): Python has no data filter
            raise Refused(f"tarfile's data filter refuses a member: {err}") from None
        except _damaged() as err:
            raise Refused(f"the archive is damaged: {err}") from None
        except _TooMuch:
            raise Refused(f"a member's headers take more than {HEADER} bytes") from None

    def _unzip(self, file: IO[bytes], staging: str) -> Iterator[None]:
        """The members of a .zip, from its central directory: the count and the sizes
        it declares are checked before a byte is written."""
        import zipfile

        try:
            with zipfile.ZipFile(file) as archive:
                infos = archive.infolist()
                if len(infos) > self.members:
                    raise self._too_many()
                if sum(info.file_size for info in infos) > self.limit:
                    raise self._too_large()
                written = 0
                for count, info in enumerate(infos, 1):
                    yield
                    path = self._check(info.filename, count, _zip_type(info))
                    if path is None:
                        continue
                    if info.is_dir():
                        _folder(staging, path)
                        continue
                    try:
                        source = archive.open(info)
                    except OSError as err:  # its offset is outside the file: seek's EINVAL
                        raise Refused(f"the archive is damaged: {err}") from None
                    with source:
                        written = yield from self._copy(source, staging, path, written)
        except (*_damaged(), NotImplementedError, RuntimeError) as err:  # method, password
            raise Refused(f"the archive is damaged or unsupported: {err}") from None

    def _check(self, name: str, count: int, kind: str) -> Optional[str]:
        """The member's path under the staging folder ("a/b"), None for the top folder
        itself ("./"); Refused when it is one too many, leaves its folder or is no file
        or folder."""
        if count > self.members:
            raise self._too_many()
        shown = json.dumps(name)
        if kind != "file" and kind != "folder":
            article = "an" if kind[0] in "aeiou" else "a"
            raise Refused(
                f"the member {shown} is {article} {kind}: only files and folders may be unpacked"
            )
        if name.startswith("/"):
            raise Refused(f"the member {shown} has an absolute path: it would leave its folder")
        if "\0" in name:
            raise Refused(f"the member {shown} has a NUL byte in its name")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise Refused(f"the member {shown} has '..' in its path: it would leave its folder")
        return "/".join(parts) or None

    def _copy(self, source: IO[bytes], staging: str, path: str, written: int) -> Iterator[None]:
        """Write one member at `path`, counting the bytes really written into `written`
        (the total so far); returns the new total. Refused past `limit`."""
        try:
            out = open(_target(staging, path), "wb")  # noqa: SIM115 (only the open may collide)
        except (IsADirectoryError, NotADirectoryError, FileExistsError):
            raise _collides(path) from None
        with out:
            while True:
                block = source.read(CHUNK)
                if not block:
                    return written
                written += len(block)
                if written > self.limit:
                    raise self._too_large()
                out.write(block)
                yield

    def _top(self, staging: str) -> Optional[str]:
        """None when the index is at the top; the one top folder when it holds it;
        Refused otherwise."""
        if os.path.isfile(os.path.join(staging, self.index)):
            return None
        entries = os.listdir(staging)
        if len(entries) == 1 and os.path.isfile(os.path.join(staging, entries[0], self.index)):
            return entries[0]
        if not entries:
            raise Refused("the archive is empty")
        raise Refused(
            f"the archive has no {self.index} (`index`) at its top or in its one top folder"
        )

    def _too_large(self) -> Refused:
        return Refused(f"the archive unpacks to more than {self.limit} bytes (uploads.limit)")

    def _too_many(self) -> Refused:
        return Refused(f"the archive has more than {self.members} members")

    # -- switching and its state ------------------------------------------------------

    def _switch(self, current: Optional[Version], previous: Optional[Version]) -> None:
        """Make `current` the served version (None: the documents) and keep `previous`:
        the state file first (atomically), then memory, then `switched`."""
        floor = self.since + 1
        if self.current is None:  # the documents' files keep their own times: past them
            floor = max(floor, _newest(self.documents) + 1)
        since = max(int(time.time()), floor)
        if current is not None:
            current = current._replace(since=since)
        self._save(current, previous, since)
        self.current, self.previous = current, previous
        if current is None:
            self._since = since
        if self.switched is not None:
            self.switched()

    def _save(self, current: Optional[Version], previous: Optional[Version], since: int) -> None:
        """Replace the state file by a rename (atomic). Not fsync'ed: on ext4 (data=ordered)
        that would write out every dirty page of the version just unpacked in the call
        (27 ms measured for 50 MiB, far more on an SD card); the kernel writes them, then
        the rename, within its commit interval (docs/protocol.md, Choices)."""
        state = {
            "current": current._asdict() if current else None,
            "previous": previous._asdict() if previous else None,
            "since": since,
        }
        import tempfile  # here: only a switch writes the state

        handle, temporary = tempfile.mkstemp(prefix=".state-", dir=self.folder)
        try:
            with os.fdopen(handle, "w") as file:
                json.dump(state, file)
            os.replace(temporary, os.path.join(self.folder, STATE))
        except BaseException:
            os.unlink(temporary)
            raise

    def _load(self) -> None:
        """The state a previous run left, if any. A version whose folder is gone, or a
        state that cannot be read, is logged and the configured documents are served."""
        path = os.path.join(self.folder, STATE)
        try:
            with open(path) as file:
                state = json.load(file)
            current, previous = (_version(state[key]) for key in ("current", "previous"))
            since = int(state["since"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("app: cannot read %s (%s): serving the documents", path, err)
            return
        if current is not None and not os.path.isdir(os.path.join(self.folder, current.root)):
            log.warning("app: the version %s is gone: serving the documents", current.name)
            current = None
        self.current, self.previous, self._since = current, previous, since
        for _ in self._pruning():  # at start-up: no loop to hold up yet
            pass

    def _pruning(self) -> Iterator[None]:
        """Remove every version but the current and the previous, and staging folders
        left by an earlier run, a slice at a time (`_removing`)."""
        keep = {version.name for version in (self.current, self.previous) if version}
        with os.scandir(self.folder) as entries:
            old = [e for e in entries if e.is_dir(follow_symlinks=False) and e.name not in keep]
        for entry in old:
            if not entry.name.startswith(STAGING) or self._stale(entry):
                yield from _removing(entry.path)

    @staticmethod
    def _stale(entry: os.DirEntry) -> bool:
        """A staging folder left by an earlier run (an unpacking may be going on now)."""
        return entry.stat().st_mtime < time.time() - 3600


class _TooMuch(Exception):
    """The decompressed stream passed its cap."""


class _Capped:
    """A readable stream that raises _TooMuch once more bytes came out than `cap` and
    what `allow` added since."""

    def __init__(self, stream: IO[bytes], cap: int) -> None:
        self._stream = stream
        self._left = cap

    def allow(self, more: int) -> None:
        self._left += more

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size if size >= 0 else self._left + 1)
        self._left -= len(data)
        if self._left < 0:
            raise _TooMuch
        return data


def _kind(head: bytes) -> str:
    """ "tar" (a gzip stream) or "zip" by the first bytes; Refused otherwise."""
    if head.startswith(GZIP_MAGIC):
        return "tar"
    if head in ZIP_MAGIC:
        return "zip"
    raise Refused("the body is not a .tar.gz or .zip archive (by its first bytes)")


def _damaged() -> tuple[type[BaseException], ...]:
    """What the libraries raise for a damaged archive (OverflowError: tarfile, for a pax
    record whose length does not fit a C integer). Asked in an `except` clause of the
    unpacking, once the libraries are loaded."""
    import gzip
    import tarfile
    import zipfile
    import zlib

    return (
        tarfile.TarError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        gzip.BadGzipFile,
        OverflowError,
    )


def _tar_type(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "folder"
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    return "fifo" if member.isfifo() else "special member"


def _zip_type(info: zipfile.ZipInfo) -> str:
    """By the Unix mode in the high bits of its external attributes, when it has one."""
    if info.flag_bits & 0x1:
        return "encrypted file"
    mode = info.external_attr >> 16
    if info.is_dir() or stat.S_ISDIR(mode):
        return "folder"
    if mode == 0 or stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "fifo" if stat.S_ISFIFO(mode) else "special member"


def _target(staging: str, path: str) -> str:
    """The file's place under `staging`, its folders made."""
    folder, _, _ = path.rpartition("/")
    if folder:
        _folder(staging, folder, path)
    return os.path.join(staging, path)


def _folder(staging: str, path: str, member: Optional[str] = None) -> None:
    """Make the folder `path` under `staging` (for `member`, by default itself)."""
    try:
        os.makedirs(os.path.join(staging, path), exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _collides(member or path) from None


def _collides(member: str) -> Refused:
    return Refused(f"the member {json.dumps(member)} collides with another member")


def _removing(folder: str) -> Iterator[None]:
    """Remove `folder` and all it holds, a slice at a time: each file is shrunk by
    CHUNK bytes a step, then removed (httap/unlink.py says why). What cannot be removed
    is left (as rmtree's ignore_errors)."""
    for place, folders, names in os.walk(folder, topdown=False):
        for name in names:
            with contextlib.suppress(OSError):
                for _ in unlinking(os.path.join(place, name), CHUNK):
                    yield
            yield
        for name in folders:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(place, name))
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _newest(folder: str) -> int:
    """The latest modification time of the files under `folder` (whole seconds), as
    their Last-Modified says; 0 when there are none."""
    newest = 0
    for place, _, names in os.walk(folder):
        for name in names:
            try:
                newest = max(newest, int(os.stat(os.path.join(place, name)).st_mtime))
            except OSError:
                continue
    return newest


def _version(record: Optional[dict[str, Any]]) -> Optional[Version]:
    return None if record is None else Version(**record)
