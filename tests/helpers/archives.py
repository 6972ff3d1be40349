"""Archives built in memory for the tests of the app's update (site.py, /?app, the
console): .tar.gz and .zip with any member, the bad ones included (links, devices,
`..`, absolute names, lying sizes)."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from typing import Optional

MTIME = 1_700_000_000  # the time every member has unless told (epoch seconds)


def tar_gz(*members: tarfile.TarInfo, data: Optional[dict[str, bytes]] = None) -> bytes:
    """A .tar.gz of `members` (TarInfo as given); a regular member's bytes from `data`."""
    data = data or {}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            body = data.get(member.name)
            tar.addfile(member, io.BytesIO(body) if body is not None else None)
    return out.getvalue()


def file_member(name: str, body: bytes, mtime: int = MTIME) -> tuple[tarfile.TarInfo, bytes]:
    """A regular member's header, and its bytes."""
    info = tarfile.TarInfo(name)
    info.size = len(body)
    info.mtime = mtime
    return info, body


def tar_of(files: dict[str, bytes], *extra: tarfile.TarInfo, mtime: int = MTIME) -> bytes:
    """A .tar.gz of regular files (name -> bytes), then the `extra` members."""
    members, data = [], {}
    for name, body in files.items():
        info, data[name] = file_member(name, body, mtime)
        members.append(info)
    return tar_gz(*members, *extra, data=data)


def special(name: str, kind: bytes, target: str = "") -> tarfile.TarInfo:
    """A member of another type (tarfile.SYMTYPE, LNKTYPE, CHRTYPE...), no data."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def zip_of(files: dict[str, bytes], modes: Optional[dict[str, int]] = None) -> bytes:
    """A .zip of name -> bytes, made on "Unix": `modes` gives a member's st_mode (a
    link, a fifo), a regular file's by default."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            info = zipfile.ZipInfo(name, (2023, 11, 14, 22, 13, 20))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix: the mode is in the high bits
            info.external_attr = (modes or {}).get(name, stat.S_IFREG | 0o644) << 16
            archive.writestr(info, body)
    return out.getvalue()
