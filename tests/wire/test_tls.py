"""https:// listeners: the handshake as a connection state, data both ways, and every
way a client can get TLS wrong, each answered while another client is served."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

from tests.helpers import open_fds, wait_for
from tests.helpers.client import Client
from tests.helpers.slowloris import slowloris

GOOD_REQUEST = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def docs(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hello.txt").write_bytes(b"hello, world\n")
    (docs / "big.bin").write_bytes(os.urandom(5 * 1024 * 1024 + 17))
    return docs


@pytest.fixture
def secure(make_server, docs, tls_pair):
    """A server with one https:// and one http:// address over the same documents."""
    certificate, key = tls_pair

    def start(**overrides):
        settings = {
            "listen": ["https://127.0.0.1:0", "http://127.0.0.1:0"],
            "tls.certificate": certificate,
            "tls.key": key,
            "documents": str(docs),
            "gpio.backend": "sim",
            "gpio.pins": {"led": {"gpio": 4, "mode": "out"}},
            **overrides,
        }
        return make_server(**{k.replace(".", "__"): v for k, v in settings.items()})

    return start


def client_context(tls_pair, **versions) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls_pair[0])
    for name, version in versions.items():
        setattr(ctx, name, version)
    return ctx


def tls_client(running, tls_pair, **versions) -> Client:
    raw = running.connect()
    ctx = client_context(tls_pair, **versions)
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # as a browser offers them
    return Client(ctx.wrap_socket(raw, server_hostname="localhost"))


def plain_port(running) -> int:
    return running.server.listeners[1].sock.getsockname()[1]


def served_in_plain(running) -> None:
    """Another client, on the plain address, is answered."""
    sock = socket.create_connection(("127.0.0.1", plain_port(running)), timeout=5)
    with sock:
        client = Client(sock)
        reply = client.get("/hello.txt")
        assert reply.status == 200 and reply.body == b"hello, world\n"


def test_requests_over_tls_share_one_kept_alive_connection(secure, tls_pair):
    running = secure()
    client = tls_client(running, tls_pair)
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert client.sock.selected_alpn_protocol() == "http/1.1"
    first = client.get("/hello.txt")
    assert first.status == 200 and first.body == b"hello, world\n"
    client.send(b"PUT /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n1")
    put = client.read()
    assert put.status == 200 and put.json()["value"] == 1
    assert running.call(lambda: running.server.gpio.read(4)) == 1
    again = client.get("/?gpio/led")
    assert again.json()["value"] == 1
    assert len(running.server.connections) == 1
    client.close()


def test_a_large_file_arrives_whole_over_tls(secure, tls_pair, docs):
    running = secure()
    client = tls_client(running, tls_pair)
    reply = client.get("/big.bin")
    expected = (docs / "big.bin").read_bytes()
    assert reply.status == 200
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(expected).digest()
    part = client.get("/big.bin", headers="Range: bytes=1000000-1999999\r\n")
    assert part.status == 206 and part.body == expected[1_000_000:2_000_000]
    client.close()


def test_pipelined_requests_in_one_record_are_all_answered_in_order(secure, tls_pair):
    running = secure()
    client = tls_client(running, tls_pair)
    targets = [f"/hello.txt?n={n}" if n % 2 else f"/?gpio/led&n={n}" for n in range(40)]
    client.send(b"".join(f"GET {t} HTTP/1.1\r\nHost: t\r\n\r\n".encode() for t in targets))
    for n in range(40):
        reply = client.read()
        assert reply.status == 200
        if n % 2:
            assert reply.body == b"hello, world\n"
        else:
            assert reply.json()["gpio"] == 4
    client.close()


def test_plain_http_to_the_https_port_gets_a_clear_400(secure):
    running = secure()
    sock = running.connect()
    client = Client(sock)
    reply = client.get("/hello.txt")
    assert reply.status == 400
    assert reply.body == b"bad request: this port speaks HTTPS; use an https:// URL\n"
    assert reply.headers["connection"] == "close"
    assert client.closed()
    served_in_plain(running)


def test_tls_below_the_minimum_is_refused(secure, tls_pair):
    running = secure(**{"tls.minimum": "1.3"})
    with pytest.raises(ssl.SSLError):
        tls_client(running, tls_pair, maximum_version=ssl.TLSVersion.TLSv1_2)
    client = tls_client(running, tls_pair)
    assert client.sock.version() == "TLSv1.3"
    assert client.get("/hello.txt").status == 200
    served_in_plain(running)


def test_tls_1_2_is_accepted_by_default(secure, tls_pair):
    running = secure()
    client = tls_client(running, tls_pair, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert client.sock.version() == "TLSv1.2"
    assert client.get("/hello.txt").status == 200


def test_a_stalled_handshake_is_closed_at_the_parse_timeout(secure, tls_pair):
    """Silent clients and half a ClientHello alike are dropped at timeouts.parse, while
    another client is served."""
    running = secure(**{"timeouts.parse": 0.5})
    before = open_fds()
    silent = running.connect()
    hello = running.connect()
    hello.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello, cut short
    client = tls_client(running, tls_pair)
    assert client.get("/hello.txt").status == 200
    started = time.monotonic()
    for sock in (silent, hello):
        assert Client(sock).closed(timeout=5)
    assert time.monotonic() - started < 3
    assert wait_for(lambda: len(running.server.connections) == 1)
    served_in_plain(running)
    for sock in (silent, hello):
        sock.close()
    client.close()
    assert wait_for(lambda: open_fds() <= before)


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16" + os.urandom(300),  # a handshake record type, then noise
        b"\x16\x03\x03\xff\xff" + b"\x00" * 100,  # a record longer than TLS allows
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a ClientHello with no content
    ],
)
def test_a_broken_handshake_closes_that_connection_only(secure, tls_pair, garbage):
    running = secure()
    before = open_fds()
    bad = running.connect()
    bad.sendall(garbage)
    assert Client(bad).closed(timeout=5)
    bad.close()
    client = tls_client(running, tls_pair)
    assert client.get("/hello.txt").status == 200
    client.close()
    served_in_plain(running)
    assert wait_for(lambda: len(running.server.connections) == 0)
    assert wait_for(lambda: open_fds() <= before)


def test_a_certificate_the_client_does_not_trust_fails_on_the_client_side(secure, tls_pair):
    running = secure()
    raw = running.connect()
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
    raw.close()
    client = tls_client(running, tls_pair)
    assert client.get("/hello.txt").status == 200


def test_a_reset_in_the_middle_of_a_tls_download_leaks_nothing(secure, tls_pair):
    running = secure()
    before = open_fds()
    for _ in range(5):
        client = tls_client(running, tls_pair)
        client.send(GOOD_REQUEST.replace(b"/hello.txt", b"/big.bin"))
        client.sock.recv(10000)
        client.sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
        )
        client.sock.close()
    assert wait_for(lambda: len(running.server.connections) == 0)
    assert wait_for(lambda: open_fds() <= before)
    served_in_plain(running)


def test_the_tls_close_alert_is_sent_after_the_last_response(secure, tls_pair):
    running = secure()
    client = tls_client(running, tls_pair)
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    reply = client.read()
    assert reply.status == 200
    # A clean close_notify makes recv return b"" rather than raise SSLEOFError.
    client.sock.settimeout(5)
    assert client.sock.recv(100) == b""


def test_a_full_server_closes_new_tls_connections_without_plain_text(secure, tls_pair):
    running = secure(**{"limits.connections": 1})
    first = tls_client(running, tls_pair)
    assert first.get("/hello.txt").status == 200
    with pytest.raises((ssl.SSLError, OSError)):
        second = tls_client(running, tls_pair)
        second.get("/hello.txt")
    assert first.get("/hello.txt").status == 200


def openssl(*args) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not-pem", "are not a PEM certificate and key"),
        ("mismatch", "does not belong to the certificate"),
        ("encrypted", "is protected by a passphrase"),
    ],
)
def test_unusable_certificate_files_stop_the_start_with_one_line(tmp_path, tls_pair, case, message):
    certificate, key = tls_pair
    if case == "not-pem":
        certificate = tmp_path / "cert.pem"
        certificate.write_text("not a certificate\n")
    elif case == "mismatch":
        key = tmp_path / "other.pem"
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    else:
        key = tmp_path / "locked.pem"
        openssl("pkey", "-in", tls_pair[1], "-aes256", "-passout", "pass:secret", "-out", key)
    command = [sys.executable, "-m", "httap", "serve", "--listen", "https://127.0.0.1:0"]
    command += ["--tls-certificate", str(certificate), "--tls-key", str(key), "--gpio", "sim"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("httap: cannot set up TLS: ")
    assert message in lines[-1]
    assert "Traceback" not in result.stderr


def test_check_loads_the_pair_as_serve_would(tmp_path, tls_pair):
    bad = tmp_path / "cert.pem"
    bad.write_text("not a certificate\n")
    command = [sys.executable, "-m", "httap", "check", "--config", str(tmp_path / "web.json5")]
    for certificate, status in ((tls_pair[0], 0), (bad, 1)):
        (tmp_path / "web.json5").write_text(
            f'{{listen: ["https://127.0.0.1:0"], tls: {{certificate: "{certificate}",'
            f' key: "{tls_pair[1]}"}}}}'
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == status, result.stderr
    assert result.stderr.startswith("httap: cannot set up TLS: ")
    assert "are not a PEM certificate and key" in result.stderr


def test_make_run_tls_serves_over_https(spawn, tls_pair, tmp_path):
    """What `make run-tls` runs, with the pair its Makefile rule made."""
    certificate, key = tls_pair
    process = spawn(
        "serve",
        "--listen",
        "https://127.0.0.1:0",
        "--gpio",
        "sim",
        "--tls-certificate",
        certificate,
        "--tls-key",
        key,
    )
    assert process.banner.startswith("httap ") and "https://127.0.0.1:" in process.banner
    raw = socket.create_connection((process.host, process.port), timeout=5)
    ctx = ssl.create_default_context(cafile=certificate)
    client = Client(ctx.wrap_socket(raw, server_hostname="localhost"))
    reply = client.get("/")
    assert reply.status == 200 and b"<html" in reply.body.lower()
    assert client.get("/?").json()["Serial"] == []
    client.close()
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"


def test_a_slow_reader_over_tls_is_not_taken_for_an_idle_one(secure, tls_pair, docs):
    """A reader that keeps taking bytes, slower than the inactivity timeout would allow
    for the whole file, gets all of it: each TLS record that leaves counts as progress."""
    size = 192 * 1024
    (docs / "slow.bin").write_bytes(os.urandom(size))
    running = secure(**{"timeouts.inactivity": 3})
    running.server.listeners[0].sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect((running.host, running.port))
    ctx = client_context(tls_pair)
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    sock.settimeout(10)
    sock.sendall(b"GET /slow.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    started = time.monotonic()
    while len(got) < size:
        data = sock.recv(4096)
        assert data, f"closed after {len(got)} bytes in {time.monotonic() - started:.1f} s"
        got += data
        time.sleep(0.2)  # about 20 KB/s: the kernel's buffers take over 3 s to drain
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    while len(body) < size:
        body += sock.recv(65536)
    assert body == (docs / "slow.bin").read_bytes()
    assert time.monotonic() - started > 3  # it did outlast the inactivity timeout
    sock.close()


def client_hello() -> bytes:
    """A real ClientHello, as the first flight a browser sends."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_slowloris_over_tls(secure, tls_pair):
    """200 connections dribbling a ClientHello a byte a second are all dropped at
    timeouts.parse, while a TLS client is served throughout."""
    parse = 2
    running = secure(**{"timeouts.parse": parse})
    before = open_fds()
    good = tls_client(running, tls_pair)

    def meanwhile() -> None:
        assert good.get("/hello.txt").body == b"hello, world\n"

    seen = slowloris(running.connect, client_hello(), 200, parse + 4, meanwhile)
    assert len(seen.lasted) == 200, f"{200 - len(seen.lasted)} still open after {parse + 4} s"
    assert set(seen.answers) == {b""}  # closed, with nothing said in plain text
    assert min(seen.lasted) >= parse - 0.3 and max(seen.lasted) <= parse + 2.5
    assert len(seen.latencies) > 10 and max(seen.latencies) < 1.0, max(seen.latencies)
    good.close()
    assert wait_for(lambda: len(running.server.connections) == 0)
    assert wait_for(lambda: open_fds() <= before)
    served_in_plain(running)
