"""A large file removed a slice at a time, so that the loop is never held up by one
unlink.

Why: ext4 frees a large file's blocks inside the unlink(2) call itself (its extents
are returned to the allocator, and the cached pages of a file just written dropped),
and so does a rename(2) over it; the unlink of a large file just written holds its
caller for tens of ms (65 ms measured for 50 MiB). ftruncate(2) frees only the blocks
past the new size: shrinking the file a slice at a time cuts that work into short
steps, and leaves the final unlink little to free.

Used by manager/files.py (a replaced or deleted upload) and site.py (a version no
longer kept).
"""

from __future__ import annotations

import os
from collections.abc import Iterator


def unlinking(path: str, step: int) -> Iterator[int]:
    """Remove the file at `path`: shrink it by `step` bytes (ftruncate) a time, giving
    the bytes left (> 0) after each, then unlink it once at most `step` bytes are left.
    The caller runs one step per loop turn. A link is not followed (O_NOFOLLOW: it is
    removed as it is); a file that cannot be opened or shrunk is removed as it is; one
    already gone is no error. OSError when the unlink itself fails (EACCES, EBUSY...)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            size = os.fstat(fd).st_size
            while size > step:
                size -= step
                os.ftruncate(fd, size)
                yield size
        except OSError:
            pass
        finally:
            os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
