"""The `httap` command as a child process: start-up line, serving, signals, `check`, the
environment, ./web.json5 and start-up failures."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from httap import __version__
from tests.helpers import HELLO, ROOT, free_port, wait_for
from tests.helpers.client import Client
from tests.helpers.processes import CLEAN_ENV, fetch, httap, one_line_error, stop, without

LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """spawn() merges os.environ into the child's: drop any HTTAP_* from it."""
    for key in list(os.environ):
        if key.startswith("HTTAP_"):
            monkeypatch.delenv(key)


def check(*args: str, **kwargs) -> dict:
    done = httap("check", *args, **kwargs)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- serve ----------------------------------------------------------------------------


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_startup_line_names_addresses_documents_and_gpio(spawn, docs):
    process = spawn(
        "serve",
        "--listen",
        "http://127.0.0.1:0",
        "--listen",
        "http://[::1]:0",
        "--documents",
        str(docs),
        "--gpio",
        "sim",
    )
    line = process.banner
    assert line.endswith("\n") and line.count("\n") == 1
    urls = re.findall(r"http://(127\.0\.0\.1|\[::1\]):(\d+)", line)
    assert [host for host, _ in urls] == ["127.0.0.1", "[::1]"], line
    assert all(int(port) > 0 for _, port in urls), line  # the real ports, not 0
    assert str(docs.resolve()) in line
    assert re.search(r"\bgpio\b.*\bsim\b", line), line
    assert __version__ in line
    reply = fetch(process)
    assert reply.status == 200 and reply.body == HELLO
    v6 = socket.create_connection(("::1", int(urls[1][1])), timeout=5)
    client = Client(v6)
    assert client.get("/hello.txt").body == HELLO
    client.close()
    process.signal(signal.SIGTERM)
    assert process.wait() == 0


def test_startup_line_default_gpio_backend(spawn, docs):
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs))
    assert re.search(r"\bgpio\b", process.banner), process.banner
    assert fetch(process, "/").body == b"<h1>home</h1>\n"


def test_sigterm_lets_a_large_download_finish(spawn, docs):
    big = os.urandom(20 * 1024 * 1024)
    (docs / "big.bin").write_bytes(big)
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(10)
    sock.connect((process.host, process.port))
    sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    data = sock.recv(64 * 1024)
    time.sleep(0.3)
    process.signal(signal.SIGTERM)

    # New connections are refused once the signal is handled; ours goes on.
    def refused() -> bool:
        try:
            socket.create_connection((process.host, process.port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False

    assert wait_for(refused)
    slow_until = time.monotonic() + 1.0
    while b"\r\n\r\n" not in data:
        data += sock.recv(64 * 1024)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ")
    body = bytearray(rest)
    while len(body) < len(big):
        if time.monotonic() < slow_until:  # go on slowly for a while, then at full speed
            time.sleep(0.05)
        chunk = sock.recv(1 << 20)
        assert chunk, f"cut after {len(body)} of {len(big)} bytes"
        body += chunk
    assert len(body) == len(big)
    assert hashlib.sha256(body).digest() == hashlib.sha256(big).digest()
    # Ours stays open: the server must not wait for us (nor for its grace period).
    sock.settimeout(5)
    assert sock.recv(10) == b"", "the connection was not closed after its last response"
    assert process.wait(timeout=5) == 0
    sock.close()
    assert "Traceback" not in process.proc.stderr.read()


def test_sigint_on_an_idle_server_exits_promptly(spawn, docs):
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs))
    sock = socket.create_connection((process.host, process.port), timeout=5)
    client = Client(sock)
    assert client.get("/hello.txt").status == 200  # a kept-alive, idle connection
    process.signal(signal.SIGINT)
    assert process.wait(timeout=5) == 0
    assert client.closed(timeout=1)
    client.close()
    out = process.proc.stdout.read()
    err = process.proc.stderr.read()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "stopped" in out


def test_sigterm_on_an_idle_server_exits_promptly(spawn, docs):
    process = spawn("serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs))
    process.signal(signal.SIGTERM)
    assert process.wait(timeout=5) == 0


def test_sigterm_answers_a_waiting_long_poll_and_exits(spawn, docs, tmp_path):
    """A long-poll would hold its connection for its whole wait: a stop answers it at once
    (with "timeout": true), so the server exits without using up the stop's grace period."""
    config = tmp_path / "web.json5"
    config.write_text('{gpio: {backend: "sim", pins: {button: {gpio: 4, mode: "in"}}}}')
    process = spawn(
        "serve", "--config", str(config), "--listen", "http://127.0.0.1:0", "--documents", str(docs)
    )
    client = Client(socket.create_connection((process.host, process.port), timeout=10))
    client.send(b"GET /?gpio/button&wait=60&value=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    process.signal(signal.SIGTERM)
    reply = client.read()
    assert reply.status == 200
    assert reply.json()["timeout"] is True
    assert reply.headers["connection"] == "close"
    assert process.wait(timeout=8) == 0  # well inside the 10 s grace period
    client.close()


def test_port_in_use_is_one_clear_line(docs):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = httap("serve", "--listen", f"http://127.0.0.1:{port}", "--documents", str(docs))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    # One line of its own; log records (a GPIO notice) may come before it.
    lines = [line for line in done.stderr.splitlines() if not LOG_RECORD.match(line)]
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}" in lines[0]
    assert "in use" in lines[0]
    assert "listening" not in done.stdout


def test_serve_with_a_bad_config_is_one_clear_line(tmp_path, docs):
    bad = tmp_path / "bad.json5"
    bad.write_text("{limits: {connections: 0}}")
    done = httap("serve", "--config", str(bad), "--documents", str(docs))
    one_line_error(done, str(bad), "limits.connections", "0")


def test_one_listening_line_per_address(spawn, docs):
    process = spawn(
        "serve",
        *("--listen", "http://127.0.0.1:0", "--listen", "http://127.0.0.1:0"),
        *("--documents", str(docs), "--gpio", "sim"),
    )
    urls = re.findall(r"http://127\.0\.0\.1:\d+", process.banner)
    assert len(set(urls)) == 2, process.banner
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    everything = process.banner + process.proc.stdout.read() + process.proc.stderr.read()
    assert everything.count("listening on") == 1, everything
    assert [everything.count(url) for url in urls] == [1, 1], everything


# -- warnings at start-up: the server starts, and the log says why / would fail ---------


def warnings_of(process) -> list[str]:
    """Stop the server cleanly; its WARNING lines."""
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    log = process.proc.stderr.read()
    assert "Traceback" not in log
    return [line for line in log.splitlines() if " WARNING httap.server: " in line]


def serve_docs(spawn, docs: Path, *args: str):
    return spawn(
        "serve",
        *("--listen", "http://127.0.0.1:0", "--documents", str(docs), "--gpio", "sim"),
        *args,
    )


def test_documents_without_their_index_warn_at_start_up(spawn, docs):
    (docs / "index.html").unlink()
    process = serve_docs(spawn, docs)
    assert fetch(process, "/").status == 404
    assert fetch(process, "/hello.txt").body == HELLO  # the rest is served as ever
    (warning,) = warnings_of(process)
    assert f"documents {docs.resolve()}: there is no index.html" in warning
    assert "httap init" in warning and "`index`" in warning


def test_an_index_that_links_out_warns_at_start_up(spawn, docs):
    (docs / "index.html").unlink()
    (docs / "index.html").symlink_to("/etc/hostname")
    process = serve_docs(spawn, docs)
    assert fetch(process, "/").status == 403
    assert fetch(process, "/hello.txt").body == HELLO
    (warning,) = warnings_of(process)
    assert f"documents {docs.resolve()}: index.html cannot be read" in warning
    assert "link out of the directory, so / answers 403" in warning


def test_unreadable_documents_warn_at_start_up(spawn, tmp_path):
    """As root, the server becomes `nobody`, who cannot enter a directory of mode 700;
    otherwise the directory is made mode 000 for this user."""
    top = Path(tempfile.mkdtemp(prefix="httap-docs-"))  # tmp_path is private to its user
    top.chmod(0o755)
    www = top / "www"
    www.mkdir()
    (www / "index.html").write_bytes(b"<h1>home</h1>\n")
    settings = tmp_path / "web.json5"
    if os.geteuid() == 0:
        settings.write_text('{user: "nobody"}')
        www.chmod(0o700)
    else:
        settings.write_text("{}")
        www.chmod(0o000)
    try:
        process = serve_docs(spawn, www, "--config", str(settings))
        assert fetch(process, "/").status == 404
        assert fetch(process, "/?").status == 200  # the server itself runs on
        (warning,) = warnings_of(process)
    finally:
        www.chmod(0o755)
        shutil.rmtree(top)
    assert f"documents {www}: this server's user (uid " in warning
    assert "cannot open files in the directory, so every file answers 404" in warning
    assert f"chmod a+rx {www}" in warning


@pytest.mark.parametrize("command", ["serve", "check"])
def test_config_naming_a_directory_is_one_line(tmp_path, command):
    (tmp_path / "web.json5").write_text("{}")
    done = httap(command, "--config", str(tmp_path))
    one_line_error(done, f"config file {tmp_path} is a directory", str(tmp_path / "web.json5"))
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(httap(command, "--config", str(empty)), f"{empty} is a directory")
    assert "did you mean" not in line


# -- check ----------------------------------------------------------------------------


def test_check_prints_effective_values_with_defaults(tmp_path, docs):
    file = tmp_path / "web.json5"
    file.write_text(
        "// a comment\n{\n  id: 'bench',\n  documents: 'www',\n"
        "  timeouts: {parse: 2,},\n  limits: {requests: 7},\n}\n"
    )
    values = check("--config", str(file))
    assert values["id"] == "bench"
    assert values["documents"] == str(docs.resolve())  # relative to the file
    assert values["timeouts"] == {"parse": 2, "inactivity": 15, "request": 30}
    assert values["limits"]["requests"] == 7
    assert values["limits"]["connections"] == 256  # defaults filled in
    assert values["listen"] == ["http://:8080"]
    assert values["index"] == "index.html"
    assert values["gpio"]["backend"] == "auto"
    # Where the schema's default is null, the value in effect (beside the file; id).
    assert values["gpio"]["state_file"] == str(tmp_path / "httap-state.json")
    assert values["mqtt"]["client_id"] == "httap-bench"
    # What check prints is itself a valid configuration that means the same.
    again = tmp_path / "again.json"
    again.write_text(json.dumps(values))
    assert check("--config", str(again)) == values


def test_check_without_a_file_prints_the_defaults(tmp_path):
    values = check(cwd=tmp_path)
    assert values["timeouts"] == {"parse": 5, "inactivity": 15, "request": 30}
    assert values["limits"]["header"] == 8192


@pytest.mark.parametrize(
    ("content", "parts"),
    [
        ("{limitz: {}}", ["limitz", "unknown key", "limits"]),
        ("{limits: {hedaer: 1024}}", ["limits.hedaer", "unknown key", "header"]),
        ("{timeouts: {parse: '5'}}", ["timeouts.parse", '"5"', "a number of seconds"]),
        ("{limits: {connections: 0}}", ["limits.connections", "0", "from 1 to 100000"]),
        ("{timeouts: {inactivity: 1}}", ["timeouts.inactivity", "1", "from 3 to 200"]),
        ("{listen: ['ftp://:21']}", ["listen[0]", "ftp://:21", "http"]),
        ("{documents: 'no/such/dir'}", ["documents", "no/such/dir", "existing directory"]),
        ("{id: 'x',, }", ["JSON5", "line 1"]),
        ("{id: 'x'", ["JSON5"]),
        ("", ["empty"]),
    ],
    ids=[
        "unknown",
        "unknown-nested",
        "type",
        "range",
        "range-min",
        "scheme",
        "no-dir",
        "json5",
        "unclosed",
        "empty",
    ],
)
def test_check_refuses_a_bad_config_in_one_line(tmp_path, content, parts):
    file = tmp_path / "web.json5"
    file.write_text(content)
    one_line_error(httap("check", "--config", str(file)), str(file), *parts)


def test_check_missing_file(tmp_path):
    missing = tmp_path / "nope.json5"
    one_line_error(httap("check", "--config", str(missing)), str(missing), "not found")


def test_usage_errors_exit_2_without_traceback():
    for args in ([], ["frobnicate"], ["serve", "--no-such-flag"]):
        done = httap(*args)
        assert done.returncode == 2, args
        assert "Traceback" not in done.stderr
        assert "usage" in done.stderr


# -- the environment and ./web.json5 --------------------------------------------------


def test_environment_overrides_show_in_check(tmp_path, docs):
    file = tmp_path / "web.json5"
    file.write_text("{timeouts: {inactivity: 20}, index: 'index.html', listen: ['http://:1']}")
    env = {
        "HTTAP_TCPPORT": "8123",
        "HTTAP_KEEPALIVE": "7",
        "HTTAP_STATICPATH": str(docs),
        "HTTAP_ROOTPAGE": "hello.txt",
    }
    values = check("--config", str(file), env=env)
    assert values["listen"] == ["http://:8123"]  # the environment beats the file
    assert values["timeouts"]["inactivity"] == 7
    assert values["documents"] == str(docs.resolve())
    assert values["index"] == "hello.txt"


@pytest.mark.parametrize(
    ("variable", "value", "parts"),
    [
        ("HTTAP_TCPPORT", "http", ["HTTAP_TCPPORT", '"http"', "TCP port"]),
        ("HTTAP_TCPPORT", "70000", ["HTTAP_TCPPORT", "70000", "0 to 65535"]),
        ("HTTAP_KEEPALIVE", "1", ["HTTAP_KEEPALIVE", "1", "from 3 to 200"]),
        ("HTTAP_STATICPATH", "/no/such/dir", ["HTTAP_STATICPATH", "/no/such/dir"]),
    ],
)
def test_bad_environment_value_is_one_line(tmp_path, variable, value, parts):
    one_line_error(httap("check", cwd=tmp_path, env={variable: value}), *parts)


def test_environment_takes_effect_when_serving(spawn, docs, tmp_path):
    (docs / "home.html").write_bytes(b"<h1>root page</h1>\n")
    port = free_port()
    env = {
        "HTTAP_TCPPORT": str(port),
        "HTTAP_STATICPATH": str(docs),
        "HTTAP_ROOTPAGE": "home.html",
        "HTTAP_KEEPALIVE": "3",
    }
    process = spawn("serve", cwd=tmp_path, env=env)
    assert process.port == port
    assert str(docs.resolve()) in process.banner
    assert fetch(process, "/").body == b"<h1>root page</h1>\n"
    sock = socket.create_connection((process.host, port), timeout=10)
    client = Client(sock)
    assert client.get("/hello.txt").status == 200
    began = time.monotonic()
    assert client.closed(timeout=3 + 3)  # HTTAP_KEEPALIVE is the inactivity timeout
    assert time.monotonic() - began >= 3 - 0.5
    client.close()


def test_flags_beat_the_environment(spawn, docs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "hello.txt").write_bytes(b"from the environment\n")
    env = {"HTTAP_TCPPORT": str(free_port()), "HTTAP_STATICPATH": str(other)}
    process = spawn(
        "serve", "--listen", "http://127.0.0.1:0", "--documents", str(docs), cwd=tmp_path, env=env
    )
    assert process.port != int(env["HTTAP_TCPPORT"])
    assert str(docs.resolve()) in process.banner
    assert str(other.resolve()) not in process.banner
    assert fetch(process).body == HELLO


def test_web_json5_in_the_working_directory_is_read(spawn, tmp_path, docs):
    (tmp_path / "web.json5").write_text(
        "{id: 'from-cwd', listen: ['http://127.0.0.1:0'], documents: 'www', index: 'hello.txt'}"
    )
    assert check(cwd=tmp_path)["id"] == "from-cwd"
    process = spawn("serve", cwd=tmp_path)
    assert str(docs.resolve()) in process.banner
    assert fetch(process, "/").body == HELLO


def test_bad_web_json5_in_the_working_directory_is_reported(tmp_path):
    (tmp_path / "web.json5").write_text("{limits: {uri: 1}}")
    for command in ("check", "serve"):
        one_line_error(httap(command, cwd=tmp_path), "web.json5", "limits.uri", "from 64")


# -- the console script ---------------------------------------------------------------


def test_console_script_and_version(tmp_path):
    script = Path(sys.executable).parent / "httap"
    assert script.is_file() and os.access(script, os.X_OK)
    done = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=20, cwd=tmp_path
    )
    assert done.returncode == 0
    assert done.stdout.strip() == f"httap {__version__}"
    done = httap("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"httap {__version__}"
    done = subprocess.run(
        [str(script), "check"],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
        env=CLEAN_ENV,
    )
    assert done.returncode == 0 and json.loads(done.stdout)["id"] == "httap"


# -- what the help and the README say is what the command does ------------------------


@pytest.mark.parametrize("command", [(), ("serve",)])
def test_help_shows_a_command_that_serves_and_names_the_config_file(spawn, tmp_path, command):
    done = httap(*command, "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "else ./web.json5 when there is one" in text and "--config" in text
    (example,) = re.findall(r"^ +httap (serve .*)$", done.stdout, re.MULTILINE)
    args = example.replace(":8080", ":0").split()  # the same command on a free port
    process = spawn(*args, cwd=tmp_path)  # an empty directory: no web.json5 needed
    assert "gpio sim" in process.banner
    page = fetch(process, "/")
    assert page.status == 200 and b"console.js" in page.body  # the browser console


def test_passwd_cost_range_is_the_same_in_help_readme_and_config(tmp_path):
    shown = " ".join(httap("passwd", "--help").stdout.split())
    low, high = map(int, re.search(r"scrypt's N, (\d+) to (\d+)", shown).groups())
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"`--cost` is log2 of scrypt's N, {low} to {high}" in readme
    assert f"from ln {low} to {high}." in readme
    for cost in (low - 1, high + 1):
        refused = httap("passwd", "--cost", str(cost), input="pass\n")
        assert refused.returncode == 2 and f"invalid choice: {cost}" in refused.stderr
    for cost in (low, high):  # passwd makes it, and the server takes it
        made = httap("passwd", "--cost", str(cost), input="pass\n")
        assert made.returncode == 0, made.stderr
        (tmp_path / "web.json5").write_text(
            f'{{auth: {{routes: [{{match: "/?", role: "r"}}], plain_http: true,'
            f' users: {{ann: {{password: "{made.stdout.strip()}", role: "r"}}}}}}}}'
        )
        assert check(cwd=tmp_path)["auth"]["users"]["ann"]["password"] == made.stdout.strip()


# -- optional libraries that are not installed -----------------------------------------

FLEET = str(ROOT / "examples" / "fleet" / "lab1.json5")


def test_mqtt_without_paho_is_one_line_naming_what_to_install(tmp_path):
    env = without(tmp_path, "paho")
    done = httap("serve", "--config", FLEET, env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if not LOG_RECORD.match(line)]
    assert len(lines) == 1, done.stderr
    assert "mqtt.broker" in lines[0] and "pip install 'httap[mqtt]'" in lines[0]
    assert "make run EXTRAS=mqtt" in lines[0]
    checked = httap("check", "--config", FLEET, env=env)
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["mqtt"]["broker"] == "mqtt://127.0.0.1:1883"
    assert checked.stderr.splitlines() == [f"httap check: error: {lines[0][len('httap: ') :]}"]


@pytest.mark.parametrize(
    "backend, module, extra", [("gpiod", "gpiod", "gpiod"), ("rpi", "RPi", "rpi")]
)
def test_a_gpio_backend_without_its_library_names_what_to_install(
    tmp_path, docs, backend, module, extra
):
    env = without(tmp_path, module)
    done = httap("serve", "--gpio", backend, "--documents", str(docs), env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"gpio.backend {backend}" in done.stderr
    assert f"pip install 'httap[{extra}]'" in done.stderr
    config = tmp_path / "web.json5"
    config.write_text(f'{{gpio: {{backend: "{backend}"}}}}')
    checked = httap("check", "--config", str(config), env=env)
    assert checked.returncode == 1
    assert checked.stderr.startswith("httap check: error: gpio.backend")


def test_uploads_without_python_multipart_warn_and_serve(spawn, tmp_path, docs):
    env = without(tmp_path, "python_multipart")
    store = tmp_path / "store"
    store.mkdir()
    config = tmp_path / "web.json5"
    config.write_text(json.dumps({"uploads": {"dir": str(store)}}))
    checked = httap("check", "--config", str(config), env=env)
    assert checked.returncode == 0
    (line,) = checked.stderr.splitlines()
    assert line.startswith("httap check: warning: uploads as forms")
    assert "pip install 'httap[files]'" in line and "PUT /?files/NAME works" in line
    process = spawn(
        "serve",
        *("--config", str(config), "--listen", "http://127.0.0.1:0", "--documents", str(docs)),
        *("--gpio", "sim"),
        env=env,
    )
    assert fetch(process).status == 200
    assert any("pip install 'httap[files]'" in line for line in warnings_of(process))


def test_startup_line_names_the_app_version_served(spawn, docs, tmp_path):
    """After an app update (PUT /?app), the line names the folder really served."""
    from httap.site import Site
    from tests.helpers.archives import tar_of

    archive = tmp_path / "site.tar.gz"
    archive.write_bytes(tar_of({"index.html": b"<h1>new</h1>"}))
    site = Site(str(docs), 1 << 20)
    for _ in site.unpack(str(archive)):
        pass
    process = serve_docs(spawn, docs)
    assert f"| documents {site.root} (PUT /?app; configured: {docs}) |" in process.banner
    assert fetch(process, "/").body == b"<h1>new</h1>"
    stop(process)
