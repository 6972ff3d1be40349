"""`/?files` over real sockets (docs/protocol.md "Files"; manager/files.py): streamed
uploads by PUT, chunked and multipart/form-data, the list, downloads and deletes, names,
sizes and the folder's space, cut-off, slow and refused uploads, `Expect: 100-continue`,
and the roles an upload needs (the auth matrix of ESPHome's CVE-2021-41104)."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from httap.auth import hash_password
from httap.manager import files
from tests.helpers import wait_for
from tests.helpers.client import Asking, Client
from tests.helpers.dynamic import call, check_dynamic, check_error
from tests.helpers.readme import readme_command

LIMIT = 1 << 20
SPACE = 3 << 20
CHEAP = 10  # the smallest scrypt cost auth.users accepts
BOUNDARY = "----httapFormBoundary7MA4YWxk"


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "uploads"
    path.mkdir()
    return path


@pytest.fixture
def running(make_server, folder):
    return make_server(uploads__dir=str(folder), uploads__limit=LIMIT, uploads__space=SPACE)


@pytest.fixture
def client(running, connect):
    return connect(running)


def put(client: Client, name: str, body: bytes, headers: str = ""):
    return call(client, "PUT", f"/?files/{name}", body, headers)


def head(method: str, target: str, lines: str = "") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: test\r\n{lines}\r\n".encode()


def chunked(body: bytes, size: int) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def form(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body as a browser sends it: (field, file name or None, data)."""
    out = []
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        kind = "Content-Type: application/octet-stream\r\n" if filename is not None else ""
        out.append(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode())
        out.append(data + b"\r\n")
    out.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(out)


FORM = f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"


def stored(folder) -> dict[str, bytes]:
    """What the folder holds, temporary files included (names starting with "."); a
    file removed while this reads (an upload's temporary one) is left out."""
    found = {}
    for path in folder.iterdir():
        try:
            found[path.name] = path.read_bytes()
        except FileNotFoundError:
            pass
    return found


def served(running, connect) -> None:
    """Another client is answered at once."""
    other = connect(running)
    reply = other.get("/?")
    assert reply.status == 200 and "files" in reply.json()["Services"]


# -- every line of the contract -------------------------------------------------------


def test_put_stores_201_then_replaces_200_and_get_list_delete(running, client, folder, connect):
    data = os.urandom(200_000)
    reply = put(client, "log.csv", data)
    assert reply.status == 201
    check_dynamic(reply)
    assert reply.json() == {"name": "log.csv", "size": len(data)}
    assert stored(folder) == {"log.csv": data}
    reply = put(client, "log.csv", b"second")
    assert (reply.status, reply.json()) == (200, {"name": "log.csv", "size": 6})
    assert put(client, "empty", b"").json() == {"name": "empty", "size": 0}

    listing = call(client, "GET", "/?files")
    check_dynamic(listing)
    files = listing.json()["files"]
    assert [(item["name"], item["size"]) for item in files] == [("empty", 0), ("log.csv", 6)]
    assert abs(files[1]["modified"] - time.time()) < 60

    got = call(client, "GET", "/?files/log.csv")
    assert (got.status, got.body) == (200, b"second")
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["cache-control"] == "no-cache, no-store, must-revalidate"
    assert call(client, "HEAD", "/?files/log.csv").headers["content-length"] == "6"

    deleted = call(client, "DELETE", "/?files/log.csv")
    assert deleted.status == 204
    assert stored(folder) == {"empty": b""}
    check_error(call(client, "GET", "/?files/log.csv"), 404, "not-found", "log.csv")
    check_error(call(client, "DELETE", "/?files/log.csv"), 404, "not-found")
    served(running, connect)


def test_a_form_stores_each_file_part_by_its_file_name(running, client, folder):
    one, two = os.urandom(70_000), b"second file\r\n--not the boundary\r\n"
    body = form(("note", None, b"ignored"), ("a", "one.bin", one), ("b", "été.txt", two))
    reply = call(client, "POST", "/?files", body, FORM)
    assert reply.status == 201
    check_dynamic(reply)
    assert reply.json() == {
        "files": [{"name": "one.bin", "size": len(one)}, {"name": "été.txt", "size": len(two)}]
    }
    assert stored(folder) == {"one.bin": one, "été.txt": two}


@pytest.mark.parametrize(
    ("body", "headers", "status", "code", "words"),
    [
        (
            b"a=1",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            415,
            "unsupported-type",
            ("multipart/form-data",),
        ),
        (form(("note", None, b"x")), FORM, 400, "bad-form", ("no file",)),
        (form(("a", "x.bin", b"data"))[:-20], FORM, 400, "bad-form", ("closing boundary",)),
        (form(("a", "../up.bin", b"data")), FORM, 400, "bad-name", ("/",)),
        (b"garbage without a boundary" * 10, FORM, 400, "bad-form", ("malformed",)),
    ],
)
def test_a_bad_form_is_400_and_nothing_is_kept(
    running, client, folder, connect, body, headers, status, code, words
):
    check_error(call(client, "POST", "/?files", body, headers), status, code, *words)
    assert stored(folder) == {}
    served(running, connect)


def test_limits_body_holds_for_bodies_in_memory_not_for_uploads(make_server, connect, folder):
    running = make_server(uploads__dir=str(folder), limits__body=1024)
    data = os.urandom(10_000)
    assert put(connect(running), "big", data).status == 201
    assert stored(folder) == {"big": data}
    client = connect(running)
    client.send(head("POST", "/?gpio", "Content-Length: 2000\r\n") + b"{" * 2000)
    reply = client.read()
    assert reply.status == 413 and b"(limits.body)" in reply.body


def test_files_is_a_service_only_when_configured(make_server, connect):
    running = make_server()
    client = connect(running)
    assert "files" not in client.get("/?").json()["Services"]
    check_error(call(client, "PUT", "/?files/a", b"x"), 404, "not-found")
    check_error(call(client, "GET", "/?files"), 404, "not-found")


def test_a_download_is_a_regular_file_of_the_folder_only(running, client, folder, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    (folder / "link").symlink_to(secret)
    (folder / "sub").mkdir()
    assert call(client, "GET", "/?files").json() == {"files": []}
    check_error(call(client, "GET", "/?files/link"), 404, "not-found")
    check_error(call(client, "GET", "/?files/sub"), 404, "not-found")


def test_a_replaced_or_deleted_file_is_freed_in_slices(make_server, connect, folder):
    """The old bytes go to a `.old-*` file that shrinks a slice per loop turn (an unlink
    of a large file just written holds the kernel, and so the loop, for tens of ms)."""
    running = make_server(uploads__dir=str(folder), uploads__limit=8 << 20)
    client = connect(running)
    first, second = os.urandom(6 << 20), os.urandom(5 << 20)
    assert put(client, "big", first).status == 201
    assert put(client, "big", second).status == 200
    assert call(client, "GET", "/?files/big").body == second
    assert call(client, "GET", "/?files").json()["files"][0]["size"] == len(second)
    assert wait_for(lambda: list(stored(folder)) == ["big"])
    assert call(client, "DELETE", "/?files/big").status == 204
    check_error(call(client, "GET", "/?files/big"), 404, "not-found")  # gone at once
    assert wait_for(lambda: stored(folder) == {})


def test_leftovers_of_a_stopped_server_are_removed_at_start(make_server, folder):
    for name in (".upload-abc", ".old-def"):
        (folder / name).write_bytes(b"x" * 100)
    (folder / "kept").write_bytes(b"kept")
    make_server(uploads__dir=str(folder))
    assert stored(folder) == {"kept": b"kept"}


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (".hidden", 'starts with "."'),
        ("..", 'starts with "."'),
        (".upload-x", 'starts with "."'),
        ("a%2F..%2F..%2Fetc%2Fpasswd", "/"),
        ("a/b", "/"),
        ("..%5Cwin.ini", 'starts with "."'),
        ("a%5Cb", "\\"),
        ("a%00b", "control"),
        ("a%0Ab", "control"),
        ("a%7Fb", "control"),
        ("a%C2%85b", "control"),  # U+0085, a C1 control
        ("x" * 256, "255 bytes"),
        ("%C3%A9" * 128, "255 bytes"),  # 128 characters, 256 bytes
    ],
)
def test_a_bad_name_is_400_and_nothing_is_written(running, client, folder, connect, name, why):
    check_error(put(client, name, b"data"), 400, "bad-name", why)
    assert stored(folder) == {}
    served(running, connect)


def test_the_empty_name_and_non_utf8_are_refused(running, client, folder):
    check_error(put(client, "", b"data"), 400, "bad-name", "empty")
    check_error(put(client, "%FF", b"data"), 400, "bad-path", "UTF-8")
    assert stored(folder) == {}


def test_names_of_255_bytes_and_of_any_script_are_stored(client, folder):
    for name in ("x" * 255, "%C3%A9" * 127, "%E2%9C%93%20ok.txt"):
        assert put(client, name, b"ok").status == 201
    assert sorted(stored(folder)) == sorted(["x" * 255, "é" * 127, "✓ ok.txt"])


# -- sizes and the folder's space -------------------------------------------------------


def test_a_declared_size_over_the_limit_is_413_before_any_byte(running, client, folder, connect):
    client.send(
        head("PUT", "/?files/big", f"Content-Length: {LIMIT + 1}\r\nExpect: 100-continue\r\n")
    )
    reply = client.read()
    check_error(reply, 413, "too-large", f"{LIMIT} bytes (uploads.limit)", "nothing was kept")
    assert reply.headers["connection"] == "close"  # the body is not read: see protocol.md
    assert client.closed()
    assert stored(folder) == {}
    served(running, connect)


def test_a_chunked_body_past_the_limit_is_413_as_it_grows(running, client, folder, connect):
    client.send(head("PUT", "/?files/big", "Transfer-Encoding: chunked\r\n"))
    client.send(chunked(b"x" * (LIMIT + 1), 65536))
    check_error(client.read(), 413, "too-large", "uploads.limit")
    assert client.closed()
    assert wait_for(lambda: stored(folder) == {})
    served(running, connect)


def test_a_form_file_past_the_limit_is_413(client, folder):
    body = form(("a", "big.bin", b"x" * (LIMIT + 1)))
    check_error(call(client, "POST", "/?files", body, FORM), 413, "too-large", "uploads.limit")
    assert wait_for(lambda: stored(folder) == {})


def test_a_full_folder_refuses_what_does_not_fit(running, client, folder, connect):
    for name in ("a", "b"):
        assert put(client, name, b"x" * LIMIT).status == 201  # 2 MiB of 3 kept
    reply = put(client, "c", b"y" * (LIMIT - 10))
    assert reply.status == 201  # 10 bytes left
    check_error(put(client, "d", b"z" * 11), 413, "too-large", "uploads.space", "room for 10 more")
    assert reply.status == 201
    # A chunked one is refused as it grows past the room, a form's file too.
    other = connect(running)
    other.send(head("PUT", "/?files/e", "Transfer-Encoding: chunked\r\n") + chunked(b"e" * 20, 5))
    check_error(other.read(), 413, "too-large", "uploads.space")
    third = connect(running)
    check_error(call(third, "POST", "/?files", form(("f", "f", b"f" * 11)), FORM), 413, "too-large")
    # Replacing a file frees its bytes.
    # A file over the limit is told so, even where the folder's room is smaller still.
    big = put(connect(running), "d", b"w" * (LIMIT + 1))
    check_error(big, 413, "too-large", f"over the limit of {LIMIT} bytes (uploads.limit)")
    assert put(connect(running), "a", b"w" * (LIMIT + 10 - 1)).status == 413  # over the limit
    assert put(connect(running), "a", b"w" * LIMIT).status == 200
    assert wait_for(lambda: sorted(stored(folder)) == ["a", "b", "c"])
    assert stored(folder)["c"] == b"y" * (LIMIT - 10)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB file system of its own (tmpfs; needs root, else the test is skipped)."""
    where = tmp_path / "tiny"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield where
    subprocess.run(["umount", str(where)], check=True)


def test_a_disk_that_fills_is_507_and_nothing_is_kept(make_server, connect, tiny_disk):
    running = make_server(uploads__dir=str(tiny_disk))  # limit and space far above 256 KiB
    client = connect(running)
    check_error(put(client, "big", os.urandom(400_000)), 507, "no-space", "nothing was kept")
    assert client.closed()
    assert wait_for(lambda: stored(tiny_disk) == {})
    assert put(connect(running), "small", b"fits").status == 201  # the room came back
    served(running, connect)


# -- cut off, slow, chunked, pipelined ---------------------------------------------------


def test_a_cut_off_upload_leaves_nothing(running, connect, folder):
    client = connect(running)
    client.send(head("PUT", "/?files/cut", "Content-Length: 500000\r\n") + b"x" * 200_000)
    assert wait_for(lambda: any(name.startswith(".upload-") for name in stored(folder)))
    client.close()
    assert wait_for(lambda: stored(folder) == {})
    served(running, connect)


def test_a_stalled_upload_is_408_and_leaves_nothing(make_server, connect, folder):
    running = make_server(uploads__dir=str(folder), timeouts__request=0.5)
    client = connect(running)
    client.send(head("PUT", "/?files/stall", "Content-Length: 1000\r\n") + b"x" * 10)
    reply = client.read()
    assert reply.status == 408 and b"the body did not arrive within 0.5 s" in reply.body
    assert client.closed()
    assert stored(folder) == {}


def test_a_slow_upload_that_moves_goes_on_past_timeouts_request(make_server, connect, folder):
    """Twice timeouts.request in all, but never that long without a byte: it goes on."""
    running = make_server(uploads__dir=str(folder), timeouts__request=0.5)
    client = connect(running)
    data = os.urandom(10 * 4096)
    client.send(head("PUT", "/?files/slow", f"Content-Length: {len(data)}\r\n"))
    for i in range(0, len(data), 4096):
        time.sleep(0.1)
        client.send(data[i : i + 4096])
    assert client.read().status == 201
    assert stored(folder) == {"slow": data}


@pytest.mark.parametrize("size", [1, 7, 4096, 65536, 200_000])
def test_chunked_uploads_of_any_chunk_size(client, folder, size):
    data = os.urandom(150_000)
    body = chunked(data, size).replace(b"\r\n", b";ext=1\r\n", 1)  # an extension, once
    client.send(head("PUT", "/?files/c.bin", "Transfer-Encoding: chunked\r\n") + body)
    assert client.read().json() == {"name": "c.bin", "size": len(data)}
    assert stored(folder) == {"c.bin": data}


def test_a_chunked_upload_with_a_trailer_then_the_next_request(client, folder):
    body = b"5\r\nhello\r\n0\r\nChecksum: x\r\n\r\n"
    client.send(
        head("PUT", "/?files/t", "Transfer-Encoding: chunked\r\n") + body + head("GET", "/?files/t")
    )
    assert client.read().status == 201
    assert client.read().body == b"hello"  # the connection stays open after a whole body


def test_bad_chunk_framing_is_400_and_leaves_nothing(running, client, folder, connect):
    client.send(head("PUT", "/?files/bad", "Transfer-Encoding: chunked\r\n") + b"5\r\nhelloXX")
    reply = client.read()
    assert reply.status == 400 and b"chunk data is not followed by CRLF" in reply.body
    assert client.closed()
    assert stored(folder) == {}
    served(running, connect)


def test_an_upload_behind_the_disk_pauses_reading_then_resumes(
    make_server, connect, folder, monkeypatch
):
    """Every write counts as slow (SLOW_WRITE 0): after each part the connection reads
    nothing until the pause is over (BEHIND), and the upload still arrives whole, by
    PUT and by a form, while another client is served."""
    monkeypatch.setattr(files, "SLOW_WRITE", 0.0)
    running = make_server(uploads__dir=str(folder))
    data = os.urandom(300_000)
    assert put(connect(running), "paced", data).status == 201
    reply = call(connect(running), "POST", "/?files", form(("a", "form", data)), FORM)
    assert reply.status == 201
    assert stored(folder) == {"paced": data, "form": data}
    assert running.call(lambda: running.server.manager.files.pauses) >= 4  # 64 KiB a part
    served(running, connect)


# -- Expect: 100-continue ------------------------------------------------------------------


def test_an_accepted_head_gets_100_then_the_body_is_stored(client, folder):
    client.send(head("PUT", "/?files/c", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
    assert client.read().status == 100  # before any byte of the body was sent
    client.send(b"hello")
    assert client.read().status == 201
    assert stored(folder) == {"c": b"hello"}


def test_a_refused_head_gets_its_refusal_and_no_100(running, client, folder, connect):
    client.send(head("PUT", "/?files/.x", "Content-Length: 5\r\nExpect: 100-continue\r\n"))
    reply = client.read()
    check_error(reply, 400, "bad-name")
    assert reply.headers["connection"] == "close"
    assert client.closed()  # no 100 came first: read() returned the 400 itself
    assert stored(folder) == {}
    served(running, connect)


# -- 50 MiB while a 1 kHz task runs and another client is served ---------------------------


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_50_mib_streamed_while_others_are_served_and_a_1khz_task_runs(make_server, connect, folder):
    size = 50 << 20
    running = make_server(uploads__dir=str(folder), uploads__limit=size, uploads__space=size)
    ticks: list[float] = []
    task = running.call(lambda: running.server.every(0.001, lambda: ticks.append(time.monotonic())))
    uploader = connect(running, timeout=30)
    block = os.urandom(65536)
    before = rss()
    peak = before
    with Asking(connect(running), "/?gpio") as other:
        started = time.monotonic()
        first = len(ticks)
        uploader.send(head("PUT", "/?files/big.bin", f"Content-Length: {size}\r\n"))
        blocks = size // len(block)
        for i in range(blocks):
            uploader.send(block)
            if i % 16 == 0:
                peak = max(peak, rss())
            if i == blocks // 2:  # half-way, the upload under way: one more client is served
                assert connect(running).get("/?gpio").status == 200
        reply = uploader.read()
        seconds = time.monotonic() - started
    running.call(task.cancel)
    assert reply.json() == {"name": "big.bin", "size": size}
    assert os.path.getsize(folder / "big.bin") == size
    assert peak - before < 32 << 20  # never held whole (the client's blocks included)
    gaps = [b - a for a, b in zip(ticks[first:], ticks[first + 1 :])]
    print(
        f"\n50 MiB upload: {size / seconds / (1 << 20):.1f} MiB/s to the disk in {seconds:.2f} s;"
        f" 1 kHz task: {len(gaps)} runs, longest gap {max(gaps) * 1000:.2f} ms"
        f" (p99 {sorted(gaps)[int(len(gaps) * 0.99)] * 1000:.2f} ms);"
        f" {other.answered} replies to the other client; RSS +{(peak - before) >> 10} KiB"
    )


# -- the roles an upload needs (ESPHome CVE-2021-41104: an upload that skipped its check) --

ROLES = {"viewer": ["read"], "operator": ["viewer", "write"], "admin": ["operator"]}
ROUTES = [
    {"match": "/?gpio", "methods": ["POST", "PUT"], "role": "write"},
    {"match": "/?", "role": "read"},
]


@pytest.fixture(scope="module")
def users():
    return {
        name: {"password": hash_password(name + " pw", CHEAP), "role": name}
        for name in ("viewer", "operator", "admin")
    }


def credentials(user: str | None) -> str:
    if user is None:
        return ""
    import base64

    token = base64.b64encode(f"{user}:{user} pw".encode()).decode()
    return f"Authorization: Basic {token}\r\n"


@pytest.fixture
def guarded(make_server, folder, users):
    return make_server(
        uploads__dir=str(folder),
        auth__users=users,
        auth__roles=ROLES,
        auth__routes=ROUTES,
        auth__plain_http=True,
    )


def upload_by(client: Client, path: str, auth: str) -> tuple[int, bool]:
    """An upload of 10 bytes by `path`; its status and whether a 100 came first."""
    data = b"0123456789"
    if path == "put":
        reply = call(client, "PUT", "/?files/f", data, auth)
    elif path == "form":
        reply = call(client, "POST", "/?files", form(("a", "f", data)), FORM + auth)
    elif path == "chunked":
        client.send(
            head("PUT", "/?files/f", "Transfer-Encoding: chunked\r\n" + auth) + chunked(data, 3)
        )
        reply = client.read()
    else:  # 100-continue: the body only after the 100
        client.send(
            head("PUT", "/?files/f", f"Content-Length: 10\r\nExpect: 100-continue\r\n{auth}")
        )
        reply = client.read()
        if reply.status == 100:
            client.send(data)
            return client.read().status, True
    return reply.status, False


@pytest.mark.parametrize("path", ["put", "form", "chunked", "continue"])
@pytest.mark.parametrize(
    ("user", "status"), [(None, 401), ("viewer", 403), ("operator", 403), ("admin", 201)]
)
def test_nothing_is_written_without_the_uploads_role(guarded, connect, folder, path, user, status):
    client = connect(guarded)
    answer, continued = upload_by(client, path, credentials(user))
    assert answer == status
    assert continued == (path == "continue" and status == 201)  # no 100 for a refusal
    assert (stored(folder) == {"f": b"0123456789"}) == (status == 201)
    assert stored(folder) in ({}, {"f": b"0123456789"})
    if status != 201:
        check_error(
            call(connect(guarded), "DELETE", "/?files/f", b"", credentials(user)),
            status,
            "unauthorized" if user is None else "forbidden",
        )
    reader = connect(guarded)
    assert call(reader, "GET", "/?files", b"", credentials("viewer")).status == 200


@pytest.mark.parametrize("target", ["/?%66iles/f", "/?files/f&x=1", "/?files%2Ff"])
def test_an_encoded_target_meets_the_same_rule(guarded, connect, folder, target):
    reply = call(connect(guarded), "PUT", target, b"data", credentials("operator"))
    check_error(reply, 403, "forbidden", "admin")
    assert stored(folder) == {}


def test_a_sign_in_held_for_its_turn_then_gets_its_100_or_its_refusal(guarded, connect, folder):
    """A password checked just before makes the next one wait for its turn (auth.py):
    the upload's head is held, and only then answered 100 (the admin) or 403 (an
    operator), with no byte of the body read meanwhile."""
    assert call(connect(guarded), "GET", "/?files", b"", credentials("viewer")).status == 200
    admin, operator = connect(guarded), connect(guarded)
    for client, user in ((admin, "admin"), (operator, "operator")):
        expect = f"Content-Length: 10\r\nExpect: 100-continue\r\n{credentials(user)}"
        client.send(head("PUT", f"/?files/{user}", expect))
    assert admin.read().status == 100
    admin.send(b"0123456789")
    assert admin.read().status == 201
    check_error(operator.read(), 403, "forbidden", "admin")
    assert operator.closed()
    assert stored(folder) == {"admin": b"0123456789"}
    assert guarded.call(lambda: guarded.server.auth.checks) == 3


def test_uploads_need_https_unless_plain_http(make_server, folder, users, tls_pair, connect):
    running = make_server(
        listen=["https://127.0.0.1:0", "http://127.0.0.1:0"],
        tls__certificate=tls_pair[0],
        tls__key=tls_pair[1],
        uploads__dir=str(folder),
        auth__users=users,
        auth__roles=ROLES,
        auth__routes=ROUTES,
    )
    port = running.server.listeners[1].sock.getsockname()[1]
    client = Client(socket.create_connection(("127.0.0.1", port), timeout=5))
    client.send(
        head(
            "PUT",
            "/?files/f",
            f"Content-Length: 10\r\nExpect: 100-continue\r\n{credentials('admin')}",
        )
    )
    check_error(client.read(), 403, "https-required")
    assert client.closed()
    client.close()
    assert stored(folder) == {}


def test_a_config_whose_users_lack_the_uploads_role_does_not_start(make_server, folder, users):
    from httap.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape('uploads.role: no user has the role "keeper"')):
        make_server(
            uploads__dir=str(folder),
            uploads__role="keeper",
            auth__users=users,
            auth__roles=ROLES,
            auth__routes=ROUTES,
            auth__plain_http=True,
        )


def test_uploads_and_chroot_do_not_go_together(folder, tmp_path):
    from httap.config import ConfigError, load

    with pytest.raises(ConfigError, match=re.escape("uploads.dir: not with chroot")):
        load(None, env={}, overrides={"uploads.dir": str(folder), "chroot": True})


# -- curl -T FILE 'http://host/?files/NAME' --------------------------------------------


def test_curl_upload_of_a_named_file_stores_it(running, folder, tmp_path, connect):
    """curl appends the file's name to a URL whose path is `/` and sends `PUT
    /log.csv?files/stored.csv`: taken as `PUT /?files/stored.csv` (docs/protocol.md)."""
    local = tmp_path / "log.csv"
    local.write_bytes(b"t,v\n1,2\n")
    url = f"http://127.0.0.1:{running.port}/?files/stored.csv"
    done = subprocess.run(
        ["curl", "--silent", "--show-error", "-T", str(local), "-w", "\n%{http_code}", url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    body, _, status = done.stdout.rpartition("\n")
    assert (status, json.loads(body)) == ("201", {"name": "stored.csv", "size": 8})
    assert stored(folder) == {"stored.csv": b"t,v\n1,2\n"}
    served(running, connect)


@pytest.mark.parametrize("target", ["/a/log.csv?files/x", "/log.csv?gpio/led", "/log.csv"])
def test_other_puts_to_a_file_path_are_405(running, client, folder, target):
    """Only a one-segment path with an upload's target is taken as that target."""
    client.send(head("PUT", target, "Content-Length: 2\r\n") + b"hi")
    assert client.read().status == 405
    assert stored(folder) == {}


def test_a_named_put_is_not_an_upload_when_uploads_are_off(make_server, connect):
    client = connect(make_server())
    client.send(head("PUT", "/log.csv?files/log.csv", "Content-Length: 2\r\n") + b"hi")
    assert client.read().status == 405
    assert client.get("/?").status == 200


def test_a_form_without_python_multipart_is_501_naming_what_to_install(
    running, client, folder, connect, monkeypatch
):
    """python-multipart absent (None in sys.modules: `import` raises ModuleNotFoundError,
    as when it is not installed): the form is refused with what to install; PUT works."""
    for name in ("python_multipart", "python_multipart.multipart"):
        monkeypatch.setitem(sys.modules, name, None)
    reply = call(client, "POST", "/?files", form(("a", "x.bin", b"data")), FORM)
    check_error(reply, 501, "not-installed", "pip install 'httap[files]'", "PUT /?files/NAME")
    assert stored(folder) == {}
    assert put(connect(running), "x.bin", b"data").status == 201
    served(running, connect)


@pytest.mark.parametrize("name", ["log.csv", 'été "1".txt'])
def test_a_download_is_an_attachment_curl_saves_by_its_name(
    running, client, folder, tmp_path, connect, name
):
    """The README's `curl -OJ` saves `GET /?files/NAME` as NAME (RFC 6266; curl reads
    `filename`): `curl -O` alone finds no name in a URL whose path is `/`."""
    (folder / name).write_bytes(b"t,v\n1,2\n")
    reply = client.get("/?files/" + quote(name))
    assert reply.status == 200
    assert reply.headers["content-disposition"] == files.attachment(name)
    if name != "log.csv":
        assert reply.headers["content-disposition"].endswith(
            "filename*=UTF-8''%C3%A9t%C3%A9%20%221%22.txt"
        )
        return
    command = readme_command("Files and uploads", "-OJ")
    base = f"http://127.0.0.1:{running.port}"
    args = shlex.split(command.replace("http://pi:8080", base), comments=True)
    saved = tmp_path / "saved"
    saved.mkdir()
    done = subprocess.run(args, cwd=saved, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == {"log.csv": b"t,v\n1,2\n"}
    served(running, connect)
