"""httap.config: real web.json5 files in tmp_path, real json5 parsing, whole error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from httap import config
from httap.config import ConfigError, ListenAddress
from tests.helpers import ROOT


def write(directory: Path, text: str, name: str = "web.json5") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path: Path, text: str, **kwargs) -> config.Config:
    kwargs.setdefault("env", {})
    return config.load(str(write(tmp_path, text)), **kwargs)


def error_of(tmp_path: Path, text: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text, **kwargs)
    return str(info.value)


@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch):
    """Run in a directory without web.json5, so load(None) means the defaults."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- defaults and happy paths ------------------------------------------------------------


def test_defaults(in_empty_dir):
    settings = config.load(None, env={})
    assert settings.source is None
    assert settings.id == "httap"
    assert settings.listen == (ListenAddress("http", "", 8080),)
    assert settings.documents == config.default_documents()
    assert settings.index == "index.html"
    assert dict(settings.mime) == {} and dict(settings.headers) == {}
    assert settings.cors.origins == ()
    assert (settings.timeouts.parse, settings.timeouts.inactivity, settings.timeouts.request) == (
        5,
        15,
        30,
    )
    limits = settings.limits
    assert (limits.connections, limits.header, limits.body, limits.uri, limits.requests) == (
        256,
        8192,
        1048576,
        2048,
        0,
    )
    assert (limits.subscribers, limits.event_buffer, settings.events.keepalive) == (16, 65536, 15)
    assert settings.session.exclusive == "client"
    assert (settings.gpio.backend, settings.gpio.sample_interval) == ("auto", 0.001)
    assert dict(settings.gpio.pins) == {} and dict(settings.serial) == {}
    assert settings.app is None and settings.user is None and settings.group is None
    assert settings.chroot is False
    assert settings.log.level == "info"


def test_default_documents_is_static_of_a_checkout():
    assert config.default_documents() == str(ROOT / "static")


def test_every_section(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "app.py").write_text("def setup(server): pass\n")
    settings = load_text(
        tmp_path,
        """
        // JSON5: comments, unquoted keys, trailing commas
        {
          id: "bench-1",
          listen: ["http://127.0.0.1:0", "http://[::1]:8081", "http://:9000"],
          documents: "www",
          index: "main.html",
          mime: {svg: "image/svg+xml", ".TXT": "text/plain; charset=utf-8"},
          headers: {"X-Frame-Options": "DENY"},
          cors: {origins: ["*", "http://localhost:3000"]},
          timeouts: {parse: 0.5, inactivity: 3, request: 60},
          limits: {connections: 10, header: 1024, body: 0, uri: 64, requests: 100,
                   subscribers: 3, event_buffer: 8192},
          session: {exclusive: "off"},
          gpio: {backend: "sim", sample_interval: 0.0001, pins: {
            button: {gpio: 4, pull: "up"},
            led: {gpio: 17, mode: "out", initial: 0, safe: 0},
            motor: {gpio: 18, mode: "pwm", frequency: 2000, duty: 0.25, safe: 0},
          }},
          serial: {
            scpi: {port: "loop://", baudrate: 115200, bytesize: 7, parity: "E",
                   stopbits: 1.5, timeout: 0.2, buffer: 16},
            gps: {port: "/dev/ttyUSB0"},
          },
          events: {keepalive: 0.5},
          app: "app.py",
          log: {level: "debug"},
          user: "pi",
          group: "gpio",
        }
        """,
    )
    assert settings.source == str(tmp_path / "web.json5")
    assert settings.id == "bench-1"
    assert [address.url for address in settings.listen] == [
        "http://127.0.0.1:0",
        "http://[::1]:8081",
        "http://:9000",
    ]
    assert settings.documents == str((tmp_path / "www").resolve())
    assert settings.index == "main.html"
    assert dict(settings.mime) == {".svg": "image/svg+xml", ".txt": "text/plain; charset=utf-8"}
    assert dict(settings.headers) == {"X-Frame-Options": "DENY"}
    assert settings.cors.origins == ("*", "http://localhost:3000")
    assert settings.timeouts == config.Timeouts(parse=0.5, inactivity=3, request=60)
    assert settings.limits == config.Limits(
        connections=10,
        header=1024,
        body=0,
        uri=64,
        requests=100,
        subscribers=3,
        event_buffer=8192,
    )
    assert settings.events == config.EventsConfig(keepalive=0.5)
    assert settings.session.exclusive == "off"
    assert settings.gpio.backend == "sim" and settings.gpio.sample_interval == 0.0001
    pins = settings.gpio.pins
    assert pins["button"] == config.PinConfig(
        gpio=4,
        mode="in",
        pull="up",
        initial=None,
        safe=None,
        frequency=100,
        duty=0,
        pwm="auto",
        persist=False,
    )
    assert (pins["led"].mode, pins["led"].initial, pins["led"].safe) == ("out", 0, 0)
    assert (pins["motor"].frequency, pins["motor"].duty) == (2000, 0.25)
    assert settings.serial["scpi"] == config.SerialConfig(
        port="loop://",
        baudrate=115200,
        bytesize=7,
        parity="E",
        stopbits=1.5,
        timeout=0.2,
        buffer=16,
    )
    assert settings.serial["gps"] == config.SerialConfig(
        port="/dev/ttyUSB0",
        baudrate=9600,
        bytesize=8,
        parity="N",
        stopbits=1,
        timeout=None,
        buffer=65536,
    )
    assert settings.app == str((tmp_path / "app.py").resolve())
    assert settings.log.level == "debug"
    assert (settings.user, settings.group) == ("pi", "gpio")


def test_listen_addresses_parse_and_render(in_empty_dir):
    urls = ["http://[::1]:8080", "http://:0", "http://localhost:65535", "HTTP://10.0.0.1:80"]
    listen = config.load(None, env={}, overrides={"listen": urls}).listen
    assert listen == (
        ListenAddress("http", "::1", 8080),
        ListenAddress("http", "", 0),
        ListenAddress("http", "localhost", 65535),
        ListenAddress("http", "10.0.0.1", 80),
    )
    assert str(listen[0]) == listen[0].url == "http://[::1]:8080"


def test_config_is_immutable(in_empty_dir):
    settings = config.load(None, env={}, overrides={"mime": {"js": "text/javascript"}})
    with pytest.raises(AttributeError):
        settings.timeouts.parse = 1
    with pytest.raises(TypeError):
        settings.mime[".css"] = "text/css"


# --- where the file comes from, and relative paths --------------------------------------


def test_web_json5_in_the_current_directory_is_read(tmp_path, monkeypatch):
    write(tmp_path, '{id: "here"}')
    monkeypatch.chdir(tmp_path)
    settings = config.load(None, env={})
    assert settings.id == "here"
    assert settings.source == str(tmp_path / "web.json5")


def test_relative_paths_in_the_file_start_from_its_directory(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "www").mkdir(parents=True)
    (site / "app.py").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = config.load(str(write(site, '{documents: "www", app: "app.py"}')), env={})
    assert settings.documents == str((site / "www").resolve())
    assert settings.app == str((site / "app.py").resolve())


def test_relative_paths_from_flags_and_environment_start_from_cwd(tmp_path, monkeypatch):
    (tmp_path / "www").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "app.py").write_text("")
    monkeypatch.chdir(tmp_path)
    flagged = config.load(None, env={}, overrides={"documents": "www", "app": "app.py"})
    assert flagged.documents == str((tmp_path / "www").resolve())
    assert flagged.app == str((tmp_path / "app.py").resolve())
    assert config.load(None, env={"HTTAP_STATICPATH": "other"}).documents == str(
        (tmp_path / "other").resolve()
    )


def test_missing_file_given_explicitly(tmp_path):
    missing = tmp_path / "nope" / "web.json5"
    with pytest.raises(ConfigError) as info:
        config.load(str(missing), env={})
    assert str(info.value) == f"config file not found: {missing}"


# --- precedence ---------------------------------------------------------------------------


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load(None, env={}).timeouts.inactivity == 15
    write(tmp_path, "{timeouts: {inactivity: 10, parse: 2}}")
    assert config.load(None, env={}).timeouts.inactivity == 10
    env = {"HTTAP_KEEPALIVE": "20"}
    assert config.load(None, env=env).timeouts.inactivity == 20
    flagged = config.load(None, env=env, overrides={"timeouts.inactivity": 30})
    assert flagged.timeouts.inactivity == 30
    assert flagged.timeouts.parse == 2, "a flag in a section keeps the file's other keys"


def test_environment_variables(in_empty_dir):
    (in_empty_dir / "www").mkdir()
    settings = config.load(
        None,
        env={
            "HTTAP_KEEPALIVE": "4.5",
            "HTTAP_STATICPATH": str(in_empty_dir / "www"),
            "HTTAP_ROOTPAGE": "404",
            "HTTAP_USER": "nobody",
            "HTTAP_GROUP": "nogroup",
            "HTTAP_USELESS": "ignored",
        },
    )
    assert settings.timeouts.inactivity == 4.5
    assert settings.documents == str((in_empty_dir / "www").resolve())
    assert settings.index == "404", "a root page name stays text, even if it looks like a number"
    assert (settings.user, settings.group) == ("nobody", "nogroup")


def test_empty_environment_values_count_as_unset(in_empty_dir):
    settings = config.load(None, env={"HTTAP_KEEPALIVE": "", "HTTAP_TCPPORT": ""})
    assert settings.timeouts.inactivity == 15
    assert settings.listen[0].port == 8080


def test_os_environ_is_the_default_environment(in_empty_dir, monkeypatch):
    monkeypatch.setenv("HTTAP_ROOTPAGE", "start.html")
    assert config.load().index == "start.html"


def test_tcpport_sets_every_listen_port_unless_flags_give_listen(tmp_path):
    text = '{listen: ["http://127.0.0.1:80", "http://[::1]:81"]}'
    settings = load_text(tmp_path, text, env={"HTTAP_TCPPORT": "8000"})
    assert [address.url for address in settings.listen] == [
        "http://127.0.0.1:8000",
        "http://[::1]:8000",
    ]
    flagged = load_text(
        tmp_path, text, env={"HTTAP_TCPPORT": "8000"}, overrides={"listen": ["http://:1"]}
    )
    assert [address.url for address in flagged.listen] == ["http://:1"]


def test_none_flags_count_as_not_given(tmp_path):
    settings = load_text(tmp_path, '{index: "a.html"}', overrides={"index": None, "app": None})
    assert settings.index == "a.html"


# --- error messages ------------------------------------------------------------------------


def test_not_valid_json5_names_line_and_column(tmp_path):
    message = error_of(tmp_path, '{\n  id: "x",\n  timeouts: {\n    parse: ,\n  }\n}\n')
    assert message == f'{tmp_path / "web.json5"}: line 4 column 12: not valid JSON5: Unexpected ","'


def test_duplicate_keys_are_refused(tmp_path):
    message = error_of(tmp_path, "{id: 'a', id: 'b'}")
    assert (
        message == f'{tmp_path / "web.json5"}: not valid JSON5: Duplicate key "id" found in object'
    )


def test_empty_file(tmp_path):
    message = error_of(tmp_path, "  \n")
    assert (
        message == f"{tmp_path / 'web.json5'}: the file is empty; write {{}} for all the defaults"
    )


def test_not_utf8(tmp_path):
    path = tmp_path / "web.json5"
    path.write_bytes(b'{id: "\xff"}')
    with pytest.raises(ConfigError, match=r"web\.json5: not UTF-8 text \(bad byte at offset 6\)$"):
        config.load(str(path), env={})


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000,
        "{id: " + "[" * 5000 + "]" * 5000 + "}",
        "{gpio: {pins: " + "{a: " * 5000 + "1" + "}" * 5000 + "}}",
    ],
)
def test_deep_nesting_is_one_line(tmp_path, text):
    """The JSON5 parser recursed past Python's limit: a RecursionError traceback."""
    message = error_of(tmp_path, text)
    assert message == (
        f"{tmp_path / 'web.json5'}: not valid JSON5: objects and lists nest too deep (a"
        " configuration needs a few levels)"
    )


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize(
    "text",
    ["{a: " + "[" * 5000 + "]" * 5000 + "}", "{timeouts: {inactivity: 0x" + "f" * 5000 + "}}"],
    ids=["nested", "huge-number"],
)
def test_a_hostile_config_is_one_line_and_exit_2(tmp_path, command, text):
    path = write(tmp_path, text)
    done = subprocess.run(
        [sys.executable, "-m", "httap", command, "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr[-500:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-500:]
    assert lines[0].startswith(f"httap: {path}: ")
    assert done.stdout == ""


def test_top_level_must_be_an_object(tmp_path):
    message = error_of(tmp_path, "[1, 2]")
    assert message == f"{tmp_path / 'web.json5'}: found a list, expected an object at the top level"


def test_file_errors_start_with_the_path_as_given(tmp_path, monkeypatch):
    write(tmp_path, "{timeouts: {parse: 'soon'}}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        config.load(None, env={})
    assert str(info.value) == (
        'web.json5: timeouts.parse: found "soon" (a string),'
        " expected a number of seconds from 0.1 to 3600"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{limits: {bodyy: 1}}",
            "limits.bodyy: unknown key; allowed keys in limits:"
            " body, connections, event_buffer, header, requests, subscribers, uri;"
            ' did you mean "body"?',
        ),
        (
            "{zzz: 1}",
            "zzz: unknown key; allowed keys at the top level: app, auth, cache, chroot, cors,"
            " documents, events, gpio, group, headers, hosts, id, index, limits, listen, log,"
            " mime,"
            " redirect, serial, session, timeouts, tls, uploads, user",
        ),
        (
            "{gpio: {pins: {led: {gpio: 17, mdoe: 'out'}}}}",
            "gpio.pins.led.mdoe: unknown key; allowed keys in gpio.pins.led: duty, frequency,"
            ' gpio, initial, mode, persist, pull, pwm, safe; did you mean "mode"?',
        ),
    ],
)
def test_unknown_keys(tmp_path, text, message):
    assert error_of(tmp_path, text) == f"{tmp_path / 'web.json5'}: {message}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # numbers: type, range, whole
        (
            "{timeouts: {inactivity: 2}}",
            "timeouts.inactivity: found 2, expected a number of seconds from 3 to 200",
        ),
        (
            "{timeouts: {request: true}}",
            "timeouts.request: found true (a boolean), expected a"
            " number of seconds from 0.1 to 3600",
        ),
        (
            "{timeouts: {parse: NaN}}",
            "timeouts.parse: found NaN, expected a number of seconds from 0.1 to 3600",
        ),
        (
            "{limits: {body: 1.5}}",
            "limits.body: found 1.5, expected a whole number of bytes from 0 to 1073741824",
        ),
        (
            "{limits: {header: '8k'}}",
            'limits.header: found "8k" (a string), expected a whole'
            " number of bytes from 256 to 1048576",
        ),
        (
            "{gpio: {sample_interval: 2}}",
            "gpio.sample_interval: found 2, expected a number of seconds from 0.0001 to 1",
        ),
        (
            "{limits: {subscribers: 0}}",
            "limits.subscribers: found 0, expected a number of event streams from 1 to 10000",
        ),
        (
            "{limits: {event_buffer: 1024}}",
            "limits.event_buffer: found 1024, expected a whole number of bytes from 4096"
            " to 16777216",
        ),
        (
            "{events: {keepalive: 0}}",
            "events.keepalive: found 0, expected a number of seconds from 0.1 to 3600",
        ),
        # choices
        (
            "{session: {exclusive: 'all'}}",
            'session.exclusive: found "all", expected one of "client", "connection", "off"',
        ),
        (
            "{gpio: {backend: 1}}",
            'gpio.backend: found 1 (a number), expected one of "auto", "sim", "rpi", "gpiod"',
        ),
        (
            "{log: {level: 'trace'}}",
            'log.level: found "trace", expected one of "debug", "info", "warning", "error"',
        ),
        # sections and lists of the wrong shape
        ("{timeouts: 5}", "timeouts: found 5 (a number), expected an object"),
        (
            "{listen: 'http://:80'}",
            'listen: found "http://:80" (a string), expected a list of URLs like "http://:8080"',
        ),
        (
            "{listen: []}",
            "listen: found an empty list, expected a list of URLs like"
            ' "http://:8080", at least one',
        ),
        # listen URLs
        (
            "{listen: ['ftp://:21']}",
            'listen[0]: found "ftp://:21", expected the scheme "http" or "https"',
        ),
        (
            "{listen: ['http://:80', 'https://:443']}",
            "listen: https://:443 needs tls.certificate and tls.key (PEM files;"
            " `make run-tls` shows how to make a self-signed pair)",
        ),
        (
            "{listen: ['https://:443'], tls: {certificate: 'web.json5'}}",
            "listen: https://:443 needs tls.key (PEM files;"
            " `make run-tls` shows how to make a self-signed pair)",
        ),
        (
            "{tls: {minimum: '1.1'}}",
            'tls.minimum: found "1.1", expected "1.2" or "1.3"',
        ),
        (
            "{listen: ['http://:1', 'http://:70000']}",
            'listen[1]: found "http://:70000", expected a TCP port from 0 to 65535',
        ),
        (
            "{listen: ['http://[fe80::zz]:80']}",
            'listen[0]: found "http://[fe80::zz]:80",'
            " expected an IPv6 address between the brackets",
        ),
        (
            "{listen: ['localhost:80']}",
            'listen[0]: found "localhost:80", expected a URL like'
            ' "http://HOST:PORT" (HOST empty for every address, [IPv6] in brackets)',
        ),
        # strings
        ("{id: ''}", 'id: found "", expected a non-empty string'),
        (
            "{index: 'pages/a.html'}",
            'index: found "pages/a.html", expected a file name without "/"',
        ),
        ("{user: 1000}", "user: found 1000 (a number), expected a user name"),
        (
            "{cors: {origins: ['example.com']}}",
            'cors.origins[0]: found "example.com",'
            ' expected "*" or an origin like "http://host:port"',
        ),
        (
            "{documents: 'a\\u0000b'}",
            'documents: found "a\\u0000b", expected the path of an existing directory',
        ),
        # free-key objects
        (
            "{mime: {'a/b': 'text/plain'}}",
            'mime: found the key "a/b", expected file extensions like ".svg"',
        ),
        (
            "{mime: {md: 'markdown'}}",
            'mime.md: found "markdown", expected a MIME type like "text/html"',
        ),
        (
            "{headers: {'X-A': 'a\\r\\nSet-Cookie: x'}}",
            'headers.X-A: found "a\\r\\nSet-Cookie: x", expected a header value of Latin-1'
            " characters at most, without CR, LF or other controls",
        ),
        (  # http.py writes heads in Latin-1: every static reply was a 500
            "{headers: {'X-A': 'caf\u00e9 \u20ac'}}",
            'headers.X-A: found "café €", expected a header value of Latin-1 characters at'
            " most, without CR, LF or other controls",
        ),
        (
            """{mime: {txt: 'text/plain; charset="\u20ac"'}}""",
            'mime.txt: found "text/plain; charset=\\"€\\"", expected a MIME type like "text/html"',
        ),
        (  # a lone surrogate, from a JSON5 escape: a UnicodeEncodeError traceback before
            "{documents: '\\ud800'}",
            'documents: found "\\ud800", which is not text (a lone surrogate)',
        ),
        (
            "{gpio: {pins: {led: {gpio: 17, mode: 'out', x: ['\\udfff']}}}}",
            'gpio.pins.led.x[0]: found "\\udfff", which is not text (a lone surrogate)',
        ),
        (  # the resolved path quoted a line break: two lines
            "{documents: 'a\\nb'}",
            'documents: found "a\\nb" ({tmp_path}/a\\nb), expected the path of an existing'
            " directory",
        ),
        (
            "{headers: {'Content-Length': '5'}}",
            'headers: found the key "Content-Length",'
            " expected header names (HTTP tokens; not Connection, Content-Length or"
            " Transfer-Encoding, which the server sets, nor Cache-Control or Expires: set"
            " lifetimes with `cache`)",
        ),
        # pins
        (
            "{gpio: {pins: {led: {gpio: 99}}}}",
            "gpio.pins.led.gpio: found 99, expected a BCM GPIO number from 0 to 53",
        ),
        ("{gpio: {pins: {led: {mode: 'out'}}}}", 'gpio.pins.led: missing key "gpio"'),
        (
            "{gpio: {pins: {'1led': {gpio: 2}}}}",
            'gpio.pins: found the key "1led", expected pin'
            ' names of letters, digits, "_" and "-", starting with a letter or "_"',
        ),
        (
            "{gpio: {pins: {a: {gpio: 5}, b: {gpio: 5, mode: 'out'}}}}",
            'gpio.pins.b.gpio: GPIO 5 is already used by pin "a"',
        ),
        (
            "{gpio: {pins: {button: {gpio: 4, safe: 0}}}}",
            'gpio.pins.button.safe: only for mode "out" or "pwm"; this pin\'s mode is "in"',
        ),
        (
            "{gpio: {pins: {led: {gpio: 4, mode: 'out', duty: 0.5}}}}",
            'gpio.pins.led.duty: only for mode "pwm"; this pin\'s mode is "out"',
        ),
        (
            "{gpio: {pins: {led: {gpio: 4, mode: 'out', pull: 'up'}}}}",
            'gpio.pins.led.pull: only for mode "in"; this pin\'s mode is "out"',
        ),
        (
            "{gpio: {pins: {led: {gpio: 4, mode: 'out', safe: true}}}}",
            "gpio.pins.led.safe: found true (a boolean), expected 0 or 1",
        ),
        (  # its first edge would be 3,000 years away: past what select() can wait
            "{gpio: {pins: {m: {gpio: 4, mode: 'pwm', frequency: 1e-11}}}}",
            "gpio.pins.m.frequency: found 1e-11, expected a frequency in Hz from 0.01 to 10000",
        ),
        (  # PWM is bit-banged on the loop's timers, as requests are told
            "{gpio: {pins: {m: {gpio: 4, mode: 'pwm', frequency: 20000}}}}",
            "gpio.pins.m.frequency: found 20000, expected a frequency in Hz from 0.01 to 10000",
        ),
        (
            "{gpio: {pins: {m: {gpio: 4, mode: 'pwm', duty: -Infinity}}}}",
            "gpio.pins.m.duty: found -Infinity, expected a duty cycle from 0 to 1",
        ),
        (
            "{serial: {s: {port: 'loop://', timeout: 3601}}}",
            "serial.s.timeout: found 3601, expected a number of seconds from 0 to 3600",
        ),
        (  # Python will not print a whole number of more than 4,300 digits
            "{timeouts: {inactivity: 0x" + "f" * 4000 + "}}",
            "timeouts.inactivity: found a whole number of 4817 digits, expected a"
            " number of seconds from 3 to 200",
        ),
        (
            "{limits: {body: -" + "9" * 4000 + "}}",
            "limits.body: found a whole number of 4000 digits, expected a whole"
            " number of bytes from 0 to 1073741824",
        ),
        # serial ports
        ("{serial: {s: {baudrate: 9600}}}", 'serial.s: missing key "port"'),
        (
            "{serial: {s: {port: 'loop://', baudrate: 10}}}",
            "serial.s.baudrate: found 10, expected a baud rate from 50 to 4000000",
        ),
        (
            "{serial: {s: {port: 'loop://', stopbits: 3}}}",
            "serial.s.stopbits: found 3, expected one of 1, 1.5, 2",
        ),
        (
            "{serial: {s: {port: 'loop://', parity: 'X'}}}",
            'serial.s.parity: found "X", expected one of "N", "E", "O", "M", "S"',
        ),
        # privileges
        ("{chroot: 'yes'}", 'chroot: found "yes" (a string), expected true or false'),
        ("{chroot: 1}", "chroot: found 1 (a number), expected true or false"),
    ],
)
def test_bad_values(tmp_path, text, message):
    message = message.replace("{tmp_path}", str(tmp_path))
    assert error_of(tmp_path, text) == f"{tmp_path / 'web.json5'}: {message}"


def test_paths_must_exist_and_show_where_they_resolve(tmp_path):
    missing = (tmp_path / "www").resolve()
    assert error_of(tmp_path, "{documents: 'www'}") == (
        f'{tmp_path / "web.json5"}: documents: found "www" ({missing}),'
        " expected the path of an existing directory"
    )
    (tmp_path / "app").mkdir()
    assert error_of(tmp_path, "{app: 'app'}") == (
        f'{tmp_path / "web.json5"}: app: found "app" ({(tmp_path / "app").resolve()}),'
        " expected the path of an existing file"
    )


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("documents", "loop", "a loop of symbolic links"),
        ("app", "loop/app.py", "a loop of symbolic links"),
        ("log.access", "~nobody-here/access.log", "no home directory for that user"),
        ("tls.certificate", "a" * 300, "File name too long"),
        ("documents", "/a" * 3000, "File name too long"),
    ],
    ids=["loop", "inside-a-loop", "unknown-user", "long-name", "long-path"],
)
def test_a_path_the_system_cannot_resolve_is_one_line(tmp_path, key, value, reason):
    """The campaign's find: these raised RuntimeError or OSError, a traceback."""
    (tmp_path / "loop").symlink_to("loop")
    section, _, name = key.rpartition(".")
    setting = f"{{{name}: {json.dumps(value)}}}"
    text = f"{{{section}: {setting}}}" if section else setting
    message = error_of(tmp_path, text)
    assert message.startswith(f"{tmp_path / 'web.json5'}: {key}: found {json.dumps(value)} (")
    assert f"({reason.format(tmp_path=tmp_path)}), expected " in message


def test_a_config_file_named_too_long_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / ("a" * 300)), env={})
    assert (
        str(info.value) == f"config file {tmp_path / ('a' * 300)}: cannot read: File name too long"
    )


def test_environment_errors_name_the_variable(in_empty_dir):
    with pytest.raises(ConfigError) as info:
        config.load(None, env={"HTTAP_KEEPALIVE": "abc"})
    assert (
        str(info.value)
        == 'HTTAP_KEEPALIVE: found "abc", expected a number of seconds from 3 to 200'
    )
    with pytest.raises(ConfigError) as info:
        config.load(None, env={"HTTAP_TCPPORT": "99999"}, overrides={"listen": ["http://:1"]})
    assert str(info.value) == "HTTAP_TCPPORT: found 99999, expected a TCP port from 0 to 65535"
    with pytest.raises(ConfigError) as info:
        config.load(None, env={"HTTAP_ROOTPAGE": "a/b"})
    assert str(info.value) == 'HTTAP_ROOTPAGE: found "a/b", expected a file name without "/"'


def test_flag_errors_name_the_command_line(in_empty_dir):
    with pytest.raises(ConfigError) as info:
        config.load(None, env={}, overrides={"gpio.backend": "pigpio"})
    assert str(info.value) == (
        'command line: gpio.backend: found "pigpio", expected one of "auto", "sim", "rpi", "gpiod"'
    )
    with pytest.raises(ConfigError) as info:
        config.load(None, env={}, overrides={"gpio.backnd": "sim"})
    assert str(info.value).startswith("command line: gpio.backnd: unknown key;")
    assert str(info.value).endswith('did you mean "backend"?')


# --- to_dict -------------------------------------------------------------------------------


def test_to_dict_is_json_and_loads_back_to_the_same_config(tmp_path):
    (tmp_path / "www").mkdir()
    settings = load_text(
        tmp_path,
        """{
          listen: ["http://[::1]:0"], documents: "www", mime: {js: "text/javascript"},
          gpio: {pins: {b: {gpio: 4}, m: {gpio: 18, mode: "pwm", duty: 0.5}}},
          serial: {s: {port: "loop://"}},
        }""",
    )
    data = config.to_dict(settings)
    assert data["listen"] == ["http://[::1]:0"]
    assert data["gpio"]["pins"]["m"]["duty"] == 0.5
    assert "source" not in data, "the output is a valid web.json5, not a report"
    again = tmp_path / "again"
    again.mkdir()
    reloaded = config.load(str(write(again, json.dumps(data))), env={})
    assert reloaded == settings._replace(source=reloaded.source)
