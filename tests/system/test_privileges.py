"""Dropping root and chroot: real server processes started as root, checked through /proc.
The order of the steps and the refusals when not root, with `os` faked in-process, are in
tests/unit/test_privilege_steps.py."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import HELLO, ROOT
from tests.helpers.processes import CLEAN_ENV, fetch, httap, stop

NOBODY = pwd.getpwnam("nobody")
as_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="dropping privileges and chroot need root: run the suite as root, as CI does",
)


@pytest.fixture
def docs():
    """A documents directory that nobody can read: pytest's tmp_path is private to root."""
    top = Path(tempfile.mkdtemp(prefix="httap-docs-"))
    top.chmod(0o755)
    www = top / "www"
    www.mkdir(mode=0o755)
    (www / "index.html").write_bytes(b"<h1>home</h1>\n")
    (www / "hello.txt").write_bytes(HELLO)
    (www / "passwd").symlink_to("/etc/passwd")
    yield www
    shutil.rmtree(top)


def serve(spawn, docs: Path, settings: str = "{}", env: dict | None = None):
    web = docs.parent / "web.json5"
    web.write_text(settings)
    return spawn(
        "serve",
        "--config",
        str(web),
        "--listen",
        "http://127.0.0.1:0",
        "--documents",
        str(docs),
        "--gpio",
        "sim",
        env={**CLEAN_ENV, **(env or {})},
    )


def ids(process) -> dict[str, list[int]]:
    """The Uid, Gid and Groups lines of the process's /proc status, as numbers."""
    status = Path(f"/proc/{process.proc.pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status)
    return {key: [int(each) for each in fields[key].split()] for key in ("Uid", "Gid", "Groups")}


@as_root
def test_drops_to_the_user_and_group_of_the_environment_and_still_serves(spawn, docs):
    process = serve(spawn, docs, env={"HTTAP_USER": "nobody", "HTTAP_GROUP": "nogroup"})
    assert ids(process) == {
        "Uid": [NOBODY.pw_uid] * 4,  # real, effective, saved, filesystem
        "Gid": [NOBODY.pw_gid] * 4,
        "Groups": os.getgrouplist("nobody", NOBODY.pw_gid),
    }
    reply = fetch(process, "/hello.txt")
    assert (reply.status, reply.body) == (200, HELLO)
    assert fetch(process, "/?gpio").status == 200
    log = stop(process)
    # The drop came before the start-up line (stdout), which alone says "listening on".
    assert (
        "INFO httap.privileges: dropped privileges to user nobody"
        f" (uid {NOBODY.pw_uid}), group nogroup (gid {NOBODY.pw_gid})"
    ) in log
    assert "listening on" not in log
    assert "chroot" not in log


@as_root
def test_chroot_confines_the_server_to_its_documents(spawn, docs):
    process = serve(spawn, docs, '{user: "nobody", group: "nogroup", chroot: true}')
    assert os.readlink(f"/proc/{process.proc.pid}/root") == str(docs)
    assert ids(process)["Uid"] == [NOBODY.pw_uid] * 4
    reply = fetch(process, "/hello.txt")
    assert (reply.status, reply.body) == (200, HELLO)
    assert fetch(process, "/").body == b"<h1>home</h1>\n"
    for built_in in ("/httap.js", "/console.js", "/favicon.ico"):  # read before the chroot
        reply = fetch(process, built_in)
        assert (reply.status, reply.body) == (200, (ROOT / "static" / built_in[1:]).read_bytes())
    for target in ("/passwd", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/etc/passwd"):
        reply = fetch(process, target)
        assert reply.status in (400, 403, 404), target
        assert b"root:" not in reply.body, target
    log = stop(process)
    steps = [
        f"INFO httap.privileges: chroot to {docs}",
        "INFO httap.privileges: dropped privileges to user nobody",
    ]
    assert [log.index(step) for step in steps] == sorted(log.index(step) for step in steps)


@as_root
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('{user: "no-such-user"}', 'cannot drop privileges: there is no user "no-such-user"'),
        (
            '{user: "nobody", group: "no-such-group"}',
            'cannot drop privileges: there is no group "no-such-group"',
        ),
        ('{group: "nogroup"}', 'group "nogroup" needs a user: set `user` (HTTAP_USER) too'),
        ('{user: "root"}', 'cannot drop privileges to user "root": it is root (uid 0)'),
    ],
)
def test_a_drop_that_cannot_work_is_one_clear_line(docs, settings, message):
    web = docs.parent / "web.json5"
    web.write_text(settings)
    done = httap(
        "serve", "--config", str(web), "--listen", "http://127.0.0.1:0", "--documents", str(docs)
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert "Traceback" not in done.stderr
    assert done.stderr == f"httap: {message}\n"
