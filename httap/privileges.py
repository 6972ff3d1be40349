"""Giving up root once the server holds what needed it: its sockets and its devices.

A server started as root (to bind port 80, to open the GPIO and serial devices) should
not keep root while it parses requests from the network. `resolve` looks the names up
first, before anything is opened, so that a typo fails fast and while /etc/passwd is
still in sight; `drop` then confines and demotes the process, in the only order that
works, since every step but the last needs root:

1. chroot into the documents directory (`chroot: true`), then chdir to its new "/";
2. setgroups to the user's supplementary groups, so that membership of `gpio` or
   `dialout` still opens what is opened later;
3. setgid;
4. setuid, last;
5. check that root cannot be taken back: a process that can has dropped nothing.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
from typing import NamedTuple, Optional

log = logging.getLogger("httap.privileges")


class PrivilegeError(Exception):
    """Privileges cannot be dropped as configured; str() is the whole one-line message."""


class Identity(NamedTuple):
    """Who the server becomes: a user, its group and its supplementary groups."""

    user: str
    uid: int
    group: str
    gid: int
    groups: tuple[int, ...]


def resolve(user: Optional[str], group: Optional[str], chroot: bool) -> Optional[Identity]:
    """The identity to become (None: stay who we are), refusing now what cannot work later.

    `group` defaults to the user's own group. A group alone is refused: a process that
    stays root can take any group back.
    """
    if group is not None and user is None:
        raise PrivilegeError(f'group "{group}" needs a user: set `user` (HTTAP_USER) too')
    if (user is not None or chroot) and os.geteuid() != 0:
        key, step = ("user", f'drop privileges to user "{user}"') if user else ("chroot", "chroot")
        raise PrivilegeError(
            f"cannot {step}: httap is not running as root (uid {os.geteuid()});"
            f" start it as root or remove `{key}`"
        )
    if user is None:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PrivilegeError(f'cannot drop privileges: there is no user "{user}"') from None
    if entry.pw_uid == 0:
        raise PrivilegeError(f'cannot drop privileges to user "{user}": it is root (uid 0)')
    if group is None:
        gid = entry.pw_gid
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            group = str(gid)  # a user whose primary group has no name: still a drop
    else:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PrivilegeError(f'cannot drop privileges: there is no group "{group}"') from None
    return Identity(user, entry.pw_uid, group, gid, tuple(os.getgrouplist(user, gid)))


def drop(identity: Optional[Identity], chroot: Optional[str] = None) -> None:
    """Confine the process to `chroot` if given, then become `identity` if given, for good."""
    if chroot is not None:
        try:
            os.chroot(chroot)
            os.chdir("/")
        except OSError as err:
            raise PrivilegeError(f"cannot chroot to {chroot}: {err.strerror}") from None
        log.info("chroot to %s", chroot)
        if identity is None:
            log.warning("chroot without `user`: a process that stays root can leave a chroot")
    if identity is None:
        return
    try:
        os.setgroups(identity.groups)
        os.setgid(identity.gid)
        os.setuid(identity.uid)
    except OSError as err:
        raise PrivilegeError(
            f'cannot drop privileges to user "{identity.user}": {err.strerror}'
        ) from None
    if _can_regain_root():
        raise PrivilegeError(
            f'dropped privileges to user "{identity.user}" but root can be taken back'
        )
    log.info(
        "dropped privileges to user %s (uid %d), group %s (gid %d)",
        identity.user,
        identity.uid,
        identity.group,
        identity.gid,
    )


def _can_regain_root() -> bool:
    try:
        os.setuid(0)
    except PermissionError:
        return False
    return True
