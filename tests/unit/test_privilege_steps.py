"""Dropping root, in-process with `os` faked: the order of the steps, and the refusals when
not root. Real server processes started as root are in tests/system/test_privileges.py."""

from __future__ import annotations

import os
import pwd

import pytest

from httap import privileges

NOBODY = pwd.getpwnam("nobody")


class FakeOs:
    """Records the privilege calls; setuid(0) fails once the uid has been dropped."""

    def __init__(self, monkeypatch, euid: int = 0) -> None:
        self.calls: list[tuple] = []
        self.uid = euid
        monkeypatch.setattr(os, "geteuid", lambda: self.uid)
        for name in ("chroot", "chdir", "setgroups", "setgid"):
            monkeypatch.setattr(os, name, self._recorder(name))
        monkeypatch.setattr(os, "setuid", self.setuid)

    def _recorder(self, name: str):
        return lambda *args: self.calls.append((name, *args))

    def setuid(self, uid: int) -> None:
        if self.uid != 0:
            raise PermissionError(1, "Operation not permitted")
        self.calls.append(("setuid", uid))
        self.uid = uid


NOBODY_IDENTITY = privileges.Identity("nobody", 65534, "nogroup", 65534, (65534, 20))


def test_the_steps_run_in_the_only_order_that_works(monkeypatch):
    fake = FakeOs(monkeypatch)
    privileges.drop(NOBODY_IDENTITY, "/srv/www")
    assert fake.calls == [
        ("chroot", "/srv/www"),
        ("chdir", "/"),
        ("setgroups", (65534, 20)),
        ("setgid", 65534),
        ("setuid", 65534),
    ]


def test_a_drop_that_could_be_undone_is_refused(monkeypatch):
    monkeypatch.setattr(os, "setgroups", lambda groups: None)
    monkeypatch.setattr(os, "setgid", lambda gid: None)
    monkeypatch.setattr(os, "setuid", lambda uid: None)  # root is never given up
    with pytest.raises(privileges.PrivilegeError, match="root can be taken back"):
        privileges.drop(NOBODY_IDENTITY)


def test_the_group_defaults_to_the_users_own(monkeypatch):
    FakeOs(monkeypatch)
    identity = privileges.resolve("nobody", None, chroot=False)
    assert (identity.uid, identity.gid) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert identity.groups == tuple(os.getgrouplist("nobody", NOBODY.pw_gid))


@pytest.mark.parametrize(
    ("user", "chroot", "message"),
    [
        (
            "nobody",
            False,
            'cannot drop privileges to user "nobody": httap is not running as root (uid 1000);'
            " start it as root or remove `user`",
        ),
        (
            None,
            True,
            "cannot chroot: httap is not running as root (uid 1000);"
            " start it as root or remove `chroot`",
        ),
    ],
)
def test_without_root_there_is_nothing_to_drop(monkeypatch, user, chroot, message):
    FakeOs(monkeypatch, euid=1000)
    with pytest.raises(privileges.PrivilegeError) as refusal:
        privileges.resolve(user, None, chroot)
    assert str(refusal.value) == message


def test_nothing_to_drop_is_not_an_error(monkeypatch):
    fake = FakeOs(monkeypatch, euid=1000)
    assert privileges.resolve(None, None, chroot=False) is None
    privileges.drop(None)
    assert fake.calls == []
