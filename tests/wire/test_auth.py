"""Authentication: Basic credentials against scrypt hashes, roles per path prefix,
refusals as RFC 9110 asks, failed sign-ins slowed per address, and the Host gate."""

from __future__ import annotations

import base64
import logging
import os
import socket
import ssl
import subprocess
import sys
import time

import pytest

from httap import config, http
from httap.auth import Auth, hash_password, subject, verify_password
from tests.helpers import ROOT, wait_for
from tests.helpers.client import Client

SECRET = b"the secret plans\n"
CHEAP = 10  # scrypt cost for tests: the smallest `auth.users` accepts
ROLES = {"viewer": ["read"], "operator": ["viewer", "write"]}
ROUTES = [
    {"match": "/?gpio", "methods": ["POST", "PUT"], "role": "write"},
    {"match": "/?", "role": "read"},
    {"match": "/private", "role": "read"},
]
CHALLENGE = 'Basic realm="httap", charset="UTF-8"'


@pytest.fixture(scope="module")
def users():
    return {
        "alice": {"password": hash_password("wonder land", CHEAP), "role": "operator"},
        "bob": {"password": hash_password("builder", CHEAP), "role": "viewer"},
    }


@pytest.fixture
def docs(tmp_path):
    docs = tmp_path / "docs"
    (docs / "private").mkdir(parents=True)
    (docs / "hello.txt").write_bytes(b"hello, world\n")
    (docs / "private" / "plans.txt").write_bytes(SECRET)
    return docs


@pytest.fixture
def guarded(make_server, docs, tls_pair, users):
    """A server with an https:// and an http:// address; auth on."""

    def start(**overrides):
        settings = {
            "listen": ["https://127.0.0.1:0", "http://127.0.0.1:0"],
            "tls.certificate": tls_pair[0],
            "tls.key": tls_pair[1],
            "documents": str(docs),
            "gpio.backend": "sim",
            "gpio.pins": {"led": {"gpio": 4, "mode": "out"}},
            "auth.users": users,
            "auth.roles": ROLES,
            "auth.routes": ROUTES,
            **overrides,
        }
        return make_server(**{k.replace(".", "__"): v for k, v in settings.items()})

    return start


def secure_client(running, tls_pair, source: str | None = None) -> Client:
    ctx = ssl.create_default_context(cafile=tls_pair[0])
    return Client(ctx.wrap_socket(running.connect(source), server_hostname="localhost"))


def plain_client(running) -> Client:
    port = running.server.listeners[1].sock.getsockname()[1]
    return Client(socket.create_connection(("127.0.0.1", port), timeout=5))


def basic(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return f"Authorization: Basic {token}\r\n"


ALICE = basic("alice", "wonder land")
BOB = basic("bob", "builder")


def put(client: Client, target: str, body: bytes, headers: str = ""):
    head = f"PUT {target} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
    client.send(head.encode() + body)
    return client.read()


def others_served(running, tls_pair) -> None:
    """A signed-in client on another address is answered at once."""
    client = secure_client(running, tls_pair, source="127.0.0.9")
    assert client.get("/hello.txt").status == 200
    assert client.get("/?gpio/led", headers=BOB).status == 200
    client.close()


def test_open_paths_need_no_credentials(guarded, tls_pair):
    running = guarded()
    client = secure_client(running, tls_pair)
    reply = client.get("/hello.txt")
    assert reply.status == 200 and reply.body == b"hello, world\n"


def test_no_credentials_get_401_with_a_challenge(guarded, tls_pair):
    running = guarded()
    client = secure_client(running, tls_pair)
    reply = client.get("/?gpio/led")
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == CHALLENGE
    assert reply.json() == {
        "error": "unauthorized",
        "message": "GET /?gpio/led needs a user with the role read",
    }
    page = client.get("/private/plans.txt")
    assert page.status == 401 and page.headers["www-authenticate"] == CHALLENGE
    assert page.body == b"GET /private/plans.txt needs a user with the role read\n"
    assert SECRET not in page.body
    others_served(running, tls_pair)


def test_roles_decide_reads_and_writes(guarded, tls_pair, caplog):
    running = guarded(**{"log.access": True})
    bob = secure_client(running, tls_pair)
    assert bob.get("/?gpio/led", headers=BOB).json()["value"] == 0
    assert bob.get("/private/plans.txt", headers=BOB).body == SECRET
    refused = put(bob, "/?gpio/led", b"1", BOB)
    assert refused.status == 403
    assert "www-authenticate" not in refused.headers
    assert refused.json() == {
        "error": "forbidden",
        "message": "PUT /?gpio/led needs the role write, which bob lacks",
    }
    assert running.call(lambda: running.server.gpio.read(4)) == 0
    alice = secure_client(running, tls_pair)
    with caplog.at_level(logging.INFO):
        done = put(alice, "/?gpio/led", b"1", ALICE)
        assert done.status == 200 and done.json()["value"] == 1
        wait_for(lambda: any(r.name == "httap.access" for r in caplog.records))
    assert running.call(lambda: running.server.gpio.read(4)) == 1
    audit = [r.getMessage() for r in caplog.records if r.name == "httap.audit"]
    assert any("user=alice led 0 -> 1 (PUT /?gpio/led)" in line for line in audit), audit
    access = [r.getMessage() for r in caplog.records if r.name == "httap.access"]
    assert any(line.startswith("127.0.0.1 - alice [") for line in access), access


def test_good_credentials_are_checked_once_then_remembered(guarded, tls_pair):
    running = guarded()
    client = secure_client(running, tls_pair)
    for _ in range(20):
        assert client.get("/?gpio/led", headers=BOB).status == 200
    other = secure_client(running, tls_pair)
    assert other.get("/?gpio/led", headers=BOB).status == 200
    assert running.call(lambda: running.server.auth.checks) == 1
    assert client.get("/?gpio/led").status == 401
    stats = client.get("/?stats", headers=BOB).json()
    assert stats["auth"] == {"checks": 1, "refused": 1}


def test_a_wrong_password_is_answered_late_and_the_address_waits(guarded, tls_pair):
    running = guarded()
    client = secure_client(running, tls_pair, source="127.0.0.2")
    started = time.monotonic()
    client.send(b"GET /?gpio/led HTTP/1.1\r\nHost: t\r\n" + basic("bob", "nope").encode() + b"\r\n")
    # While that reply is held back, another address is served at once...
    others_served(running, tls_pair)
    # ...and the same address gets 429 without any password being checked.
    checks = running.call(lambda: running.server.auth.checks)
    again = secure_client(running, tls_pair, source="127.0.0.2")
    early = again.get("/?gpio/led", headers=ALICE)  # (bob's header is remembered as good)
    assert early.status == 429 and early.json()["error"] == "too-many-attempts"
    assert 1 <= int(early.headers["retry-after"]) <= 2
    assert running.call(lambda: running.server.auth.checks) == checks
    reply = client.read()
    assert time.monotonic() - started >= 0.9  # held back for the first failure's second
    assert reply.status == 401 and reply.headers["www-authenticate"] == CHALLENGE
    assert reply.json()["message"] == "wrong user name or password"
    # Once the reply is out, a password is checked again.
    assert client.get("/?gpio/led", headers=ALICE).status == 200
    assert running.call(lambda: running.server.auth.checks) == checks + 1


def test_sign_ins_at_once_are_held_for_their_turns_and_all_answered(guarded, tls_pair):
    """Passwords arriving together are checked one per turn: each request is held
    meanwhile (a long-poll among them, whose own reply is then pending), a client that
    leaves while held is never checked, and everyone else is served throughout."""
    running = guarded()
    # As on a slow board: turns 0.3 s apart, so that every request but the first is held.
    running.call(lambda: setattr(running.server.auth, "_spacing", 0.3))
    sent = [
        ("127.0.0.11", ALICE, "/?gpio/led"),
        ("127.0.0.12", BOB, "/?gpio/led&wait=5&value=0"),
        ("127.0.0.13", basic("bob", "nope"), "/?gpio/led"),
        ("127.0.0.14", basic("alice", "guess"), "/?gpio/led"),
        ("127.0.0.15", basic("bob", "guess"), "/?gpio/led"),
    ]
    clients = []
    for source, header, target in sent:
        client = secure_client(running, tls_pair, source=source)
        client.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n{header}\r\n".encode())
        clients.append(client)
    clients[4].sock.close()  # gone while held
    others_served(running, tls_pair)
    alice, wrong, guess = clients[0].read(), clients[2].read(), clients[3].read()
    assert alice.status == 200 and alice.json()["value"] == 0
    assert wrong.status == 401 and guess.status == 401
    writer = secure_client(running, tls_pair, source="127.0.0.11")
    assert put(writer, "/?gpio/led", b"1", ALICE).status == 200  # remembered: no check
    bob = clients[1].read()
    assert bob.status == 200 and bob.json()["value"] == 1  # the long-poll saw the write
    assert wait_for(lambda: len(running.server.connections) == 5)
    assert running.call(lambda: running.server.auth.checks) == 4


def test_a_sign_in_held_past_the_inactivity_timeout_is_answered(guarded, tls_pair):
    """A refused sign-in's 401 is held back (1 s, 2 s, 4 s... for an address's failures
    in a row): a pending reply, so even one held longer than timeouts.inactivity gets
    its answer, and the connection goes on."""
    running = guarded(**{"timeouts.inactivity": 3})
    client = secure_client(running, tls_pair, source="127.0.0.21")
    client.sock.settimeout(4 + 10)
    for n, held in enumerate((1, 2, 4)):
        began = time.monotonic()
        reply = client.get("/?gpio/led", headers=basic("bob", f"guess{n}"))
        assert reply.status == 401 and reply.json()["message"] == "wrong user name or password"
        assert time.monotonic() - began >= held - 0.1
    assert client.get("/hello.txt").status == 200


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ("Authorization: Basic !!!!\r\n", "not base64"),
        ("Authorization: Bearer abc.def\r\n", "another scheme"),
        ("Authorization: Basic " + base64.b64encode(b"alice").decode() + "\r\n", "no colon"),
        ("Authorization: Basic " + base64.b64encode(b"al\xffce:x").decode() + "\r\n", "not UTF-8"),
        ("Authorization: Basic\r\n", "no token"),
        ("Authorization: Basic \u00e9t\u00e9\r\n", "not ASCII"),
        ("Authorization: Basic " + "A" * 6000 + "\r\n", "bytes without a colon"),
        ("Authorization: Basic YWxpY2U6eA\r\n", "padding missing"),
        ("Authorization: Basic YWxp Y2U6eA==\r\n", "a space inside"),
        ("Authorization: Basic " + base64.b64encode(b":secret").decode() + "\r\n", "no name"),
        (
            "Authorization: Basic " + base64.b64encode(b"\xed\xa0\x80:x").decode() + "\r\n",
            "a surrogate",
        ),
        ("Authorization: \r\n", "empty"),
    ],
)
def test_malformed_credentials_get_401_and_cost_no_check(guarded, tls_pair, header, why):
    running = guarded()
    client = secure_client(running, tls_pair)
    reply = client.get("/?gpio/led", headers=header)
    assert reply.status == 401, why
    assert reply.headers["www-authenticate"] == CHALLENGE
    assert reply.json()["message"] == (
        "malformed credentials: expected Basic with the base64 of user:password"
    )
    assert running.call(lambda: running.server.auth.checks) == 0
    assert client.get("/hello.txt").status == 200  # the same connection goes on
    others_served(running, tls_pair)


def test_an_unknown_user_is_refused_like_a_wrong_password(guarded, tls_pair):
    running = guarded()
    client = secure_client(running, tls_pair, source="127.0.0.3")
    reply = client.get("/?gpio/led", headers=basic("mallory", "builder"))
    assert reply.status == 401
    assert reply.json()["message"] == "wrong user name or password"
    assert running.call(lambda: running.server.auth.checks) == 1  # the decoy was checked


@pytest.mark.parametrize(
    "target",
    [
        "/?%67pio/led",
        "/?gpio%2Fled",
        "//private/plans.txt",
        "/./private/plans.txt",
        "/%70rivate/plans.txt",
        "/private%2Fplans.txt",
        "/private/./plans.txt",
        "/private//plans.txt",
        "http://t/private/plans.txt",
        "/%2e/private/plans.txt",
    ],
)
def test_encodings_do_not_slip_past_a_rule(guarded, tls_pair, target):
    running = guarded()
    client = secure_client(running, tls_pair)
    if target.startswith("/?"):
        reply = put(client, target, b"1")
        assert running.call(lambda: running.server.gpio.read(4)) == 0
    else:
        reply = client.get(target)
        assert SECRET not in reply.body
    assert reply.status in (400, 401, 404), reply
    head = client.get("/private/plans.txt", method="HEAD")
    assert head.status == 401
    others_served(running, tls_pair)


def test_a_get_rule_covers_head(guarded, tls_pair):
    routes = [{"match": "/hello", "methods": ["GET"], "role": "read"}]
    running = guarded(**{"auth.routes": routes})
    client = secure_client(running, tls_pair)
    assert client.get("/hello.txt", method="HEAD").status == 401
    assert client.get("/hello.txt", method="HEAD", headers=BOB).status == 200


def test_plain_http_never_takes_a_password(guarded, tls_pair):
    running = guarded()
    client = plain_client(running)
    reply = client.get("/?gpio/led", headers=BOB)
    assert reply.status == 403
    assert "www-authenticate" not in reply.headers  # a browser must not be asked to send one
    assert reply.json() == {
        "error": "https-required",
        "message": "GET /?gpio/led needs a password, and passwords are taken only over https"
        " here (auth.plain_http)",
    }
    assert client.get("/hello.txt").status == 200
    assert running.call(lambda: running.server.auth.checks) == 0


def test_plain_http_takes_passwords_when_allowed(guarded, tls_pair):
    running = guarded(**{"auth.plain_http": True})
    client = plain_client(running)
    assert client.get("/?gpio/led").status == 401
    assert client.get("/?gpio/led", headers=BOB).status == 200


def test_cors_preflights_are_not_asked_for_credentials(guarded, tls_pair):
    running = guarded(**{"cors.origins": ["https://app.example"]})
    client = secure_client(running, tls_pair)
    reply = client.get(
        "/?gpio/led",
        method="OPTIONS",
        headers="Origin: https://app.example\r\nAccess-Control-Request-Method: PUT\r\n",
    )
    assert reply.status in (200, 204)
    plain_options = client.get("/?gpio/led", method="OPTIONS")
    assert plain_options.status == 401


# -- the policy, with a clock the test moves ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def policy(users, **overrides) -> tuple[Auth, Clock]:
    settings = config.load(
        env={},
        overrides={
            "listen": ["https://127.0.0.1:0"],
            "tls.certificate": str(ROOT / "pyproject.toml"),
            "tls.key": str(ROOT / "pyproject.toml"),
            "auth.users": users,
            "auth.roles": ROLES,
            "auth.routes": ROUTES,
            **overrides,
        },
    )
    clock = Clock()
    return Auth(settings.auth, clock), clock


def request(header: str | None, address: str = "10.0.0.1") -> http.Request:
    headers = {"authorization": header} if header else {}
    req = http.Request("GET", "/?gpio/led", "HTTP/1.1", headers, True)
    req.client, req.tls = (address, 1234), True
    return req


def refusal(auth: Auth, req: http.Request) -> http.HTTPError | None:
    """What the server would answer in the end: None to go on, else the refusal; a
    request held for its turn is finished when the clock reaches that turn."""
    try:
        wait = auth.check(req)
        if wait:
            auth.clock.now += wait
            auth.finish(req)
    except http.HTTPError as err:
        return err
    return None


def test_each_failure_doubles_the_wait_up_to_half_a_minute(users):
    auth, clock = policy(users)
    wrong = "Basic " + base64.b64encode(b"bob:wrong").decode()
    delays = []
    for _ in range(8):
        err = refusal(auth, request(wrong))
        assert err.status == 401
        delays.append(err.delay)
        early = refusal(auth, request(wrong))
        assert early.status == 429 and early.headers[0][0] == "Retry-After"
        clock.now += err.delay
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    # Another address never waited; a password checked good resets the address.
    right = "Basic " + base64.b64encode(b"bob:builder").decode()
    assert refusal(auth, request(right, "10.0.0.2")) is None
    alice = "Basic " + base64.b64encode(b"alice:wonder land").decode()
    assert refusal(auth, request(alice)) is None
    assert refusal(auth, request(wrong)).delay == 1
    # Fifteen quiet minutes forget an address's failures too.
    clock.now += 2
    assert refusal(auth, request(wrong)).delay == 2
    clock.now += 901
    assert refusal(auth, request(wrong)).delay == 1


def test_password_checks_take_turns_and_the_queue_is_bounded(users):
    """Many addresses at once: one scrypt run now, the others held for their turns,
    SPACING_FACTOR times a run's cost apart; past MAX_QUEUE seconds, 503."""
    auth, clock = policy(users)
    held = []
    for n in range(6):
        req = request("Basic " + base64.b64encode(f"bob:guess{n}".encode()).decode(), f"10.0.1.{n}")
        try:
            held.append((auth.check(req), req))
        except http.HTTPError as err:
            assert n == 0 and err.status == 401  # the first is checked at once
    assert auth.checks == 1
    waits = [wait for wait, _ in held]
    assert all(0 < a < b for a, b in zip(waits, waits[1:]))
    assert waits[0] == pytest.approx(auth._spacing, rel=0.5)
    for wait, req in held:  # each turn checks one password
        clock.now = 1000.0 + wait
        with pytest.raises(http.HTTPError) as caught:
            auth.finish(req)
        assert caught.value.status == 401
    assert auth.checks == 6
    auth._spacing = 4.0  # a slow board: a queue of three is over MAX_QUEUE
    statuses = []
    for n in range(5):
        req = request("Basic " + base64.b64encode(b"alice:wonder land").decode(), f"10.0.2.{n}")
        try:
            statuses.append(auth.check(req))
        except http.HTTPError as err:
            statuses.append(err.status)
            assert err.headers == (("Retry-After", "10"),)
    assert statuses[-1] == 503 and 503 not in statuses[:2]


def test_good_credentials_are_checked_again_after_fifteen_minutes(users):
    auth, clock = policy(users)
    right = "Basic " + base64.b64encode(b"bob:builder").decode()
    assert refusal(auth, request(right)) is None
    clock.now += 899
    assert refusal(auth, request(right)) is None
    assert auth.checks == 1
    clock.now += 2
    assert refusal(auth, request(right)) is None
    assert auth.checks == 2


def test_ipv6_failures_count_per_64_and_the_table_stays_bounded(users, monkeypatch):
    import httap.auth

    auth, clock = policy(users)
    wrong = "Basic " + base64.b64encode(b"bob:wrong").decode()
    assert refusal(auth, request(wrong, "2001:db8:1:2::10")).status == 401
    neighbour = refusal(auth, request(wrong, "2001:db8:1:2:ffff::1"))
    assert neighbour.status == 429  # the same /64: the same host, as far as we can tell
    clock.now += 1
    assert refusal(auth, request(wrong, "2001:db8:1:3::10")).delay == 1  # another /64
    assert refusal(auth, request(wrong, "::ffff:10.9.9.9")).delay == 1
    clock.now += 1
    assert refusal(auth, request(wrong, "10.9.9.9")).delay == 2  # IPv4-mapped is IPv4
    monkeypatch.setattr(httap.auth, "FAILURES_KEPT", 3)
    for n in range(10):
        clock.now += 1
        refusal(auth, request(wrong, f"10.8.0.{n}"))
        assert len(auth._failures) <= 3


def test_per_pin_rules_are_refused_since_a_pin_has_other_names(tmp_path, users):
    """A pin is reached by name, by GPIO number and in a batch POST /?gpio: a rule on
    /?gpio/door alone would leave the other ways open."""
    alice = users["alice"]["password"]
    text = (
        f'{{auth: {{plain_http: true, users: {{a: {{password: "{alice}", role: "w"}}}},'
        ' routes: [{match: "/?gpio/door", role: "w"}]}}'
    )
    assert config_error(tmp_path, text) == (
        'auth.routes[0].match: found "/?gpio/door", expected "/?gpio" as a whole: a pin is'
        " also reached by its number and by a batch POST /?gpio; to guard one pin, drive it"
        " from an action and guard that"
    )


def test_only_ascii_digits_name_a_pin_by_number(make_server, docs):
    running = make_server(
        documents=str(docs), gpio__backend="sim", gpio__pins={"door": {"gpio": 4, "mode": "out"}}
    )
    client = Client(running.connect())
    assert client.get("/?gpio/4").json()["gpio"] == 4
    arabic_four = client.get("/?gpio/%D9%A4")
    assert arabic_four.status == 404 and arabic_four.json()["error"] == "unknown-pin"
    assert client.get("/?gpio/5").json()["error"] == "not-declared"


def test_subject_reads_paths_as_the_domains_do():
    assert subject("/?gpio%2Fled&value=1") == "/?gpio/led"
    assert subject("/?%67pio/led") == "/?gpio/led"
    assert subject("//a/./b//c/") == "/a/b/c/"
    assert subject("/%2e/a%2Fb?x#y") == "/a/b"
    assert subject("/") == "/"


def test_hashes_verify_only_their_password():
    stored = hash_password("correct horse", CHEAP)
    assert stored.startswith("$scrypt$ln=10,r=8,p=1$")
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert stored != hash_password("correct horse", CHEAP)  # a fresh salt each time


# -- httap passwd ---------------------------------------------------------------------


def passwd(*args: str, stdin: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "httap", "passwd", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_passwd_prints_a_hash_the_server_takes(tmp_path):
    result = passwd("--cost", "11", "carol", stdin="s3cret pass\n")
    assert result.returncode == 0, result.stderr
    stored = result.stdout.strip()
    assert stored.startswith("$scrypt$ln=11,r=8,p=1$")
    assert verify_password("s3cret pass", stored)
    assert result.stderr.startswith('in web.json5, under auth.users: "carol": {"password": "$')
    file = tmp_path / "web.json5"
    file.write_text(
        '{listen: ["http://127.0.0.1:0"], auth: {plain_http: true,'
        f' users: {{carol: {{password: "{stored}", role: "admin"}}}},'
        ' routes: [{match: "/", role: "admin"}]}}'
    )
    assert config.load(str(file), env={}).auth.users["carol"].password == stored


def passwd_on_a_terminal(first: str, second: str) -> tuple[int, str, str]:
    """`httap passwd` with a real pseudo-terminal as its input and error output: it asks
    twice. Returns its status, its output and what the terminal showed after the
    answers."""
    primary, secondary = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "httap", "passwd"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(secondary)
    shown = b""
    for answer in (first, second):
        while not shown.rstrip().endswith(b":"):
            shown += os.read(primary, 1024)
        os.write(primary, answer.encode() + b"\n")
        shown = b""
    out, _ = process.communicate(timeout=30)
    while True:
        try:
            data = os.read(primary, 1024)  # EIO once the child and its terminal are gone
        except OSError:
            break
        if not data:
            break
        shown += data
    os.close(primary)
    return process.returncode, out.decode(), shown.decode()


def test_passwd_on_a_terminal_asks_twice():
    status, out, _ = passwd_on_a_terminal("same words", "same words")
    assert status == 0 and verify_password("same words", out.strip())
    status, out, shown = passwd_on_a_terminal("one thing", "another")
    assert status == 2 and out == ""
    assert "httap passwd: the two passwords differ; nothing was written" in shown
    assert "one thing" not in shown and "another" not in shown  # never echoed


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ((), "\n", "httap passwd: an empty password; nothing was written"),
        (("--cost", "9"), "x\n", "argument --cost: invalid choice: 9"),
    ],
)
def test_passwd_refuses_what_it_cannot_use(args, stdin, message):
    result = passwd(*args, stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert not result.stdout


# -- configuration mistakes ------------------------------------------------------------


def config_error(tmp_path, text: str) -> str:
    file = tmp_path / "web.json5"
    file.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(file), env={})
    return str(caught.value).removeprefix(f"{file}: ")


def test_auth_mistakes_are_named(tmp_path, users):
    alice = users["alice"]["password"]
    user = f'users: {{alice: {{password: "{alice}", role: "operator"}}}}'
    assert config_error(tmp_path, "{auth: {users: {a: {password: 'x', role: 'r'}}}}") == (
        "auth.users.a.password: found a value that is not such a hash, expected a hash made"
        ' by `httap passwd` ("$scrypt$ln=...")'
    )
    weak = alice.replace("ln=10", "ln=4")
    assert config_error(
        tmp_path, f"{{auth: {{users: {{a: {{password: '{weak}', role: 'r'}}}}}}}}"
    ) == (
        "auth.users.a.password: found the cost 4,8,1, expected ln from 10 to 16, r from 1 to 8"
        " and p 1 (`httap passwd --cost`): a check runs in the loop"
    )
    assert config_error(tmp_path, f"{{auth: {{plain_http: true, {user}}}}}") == (
        "auth.users: no auth.routes entry asks for a role, so no password would ever be asked"
        ' for; add one like {match: "/?", role: "user"}'
    )
    routes = "routes: [{match: '/?', role: 'admin'}]"
    assert config_error(tmp_path, f"{{auth: {{plain_http: true, {user}, {routes}}}}}") == (
        'auth.routes[0].role: no user has the role "admin" (check auth.users and auth.roles)'
    )
    routes = "routes: [{match: '/?', role: 'operator'}]"
    assert config_error(tmp_path, f"{{auth: {{{user}, {routes}}}}}") == (
        "auth.routes: passwords are accepted only over https, and no listen address is"
        " https://; add one (with tls.certificate and tls.key), or set auth.plain_http to"
        " true on a network you trust"
    )
    assert config_error(tmp_path, "{auth: {routes: [{match: '/%70rivate'}]}}") == (
        'auth.routes[0].match: found "/%70rivate", expected the path written decoded (no %xx):'
        " it is compared so"
    )
    assert config_error(tmp_path, "{auth: {routes: [{match: '/?serial&x'}]}}") == (
        'auth.routes[0].match: found "/?serial&x", expected a path without "&": parameters'
        " are not compared"
    )
    assert config_error(tmp_path, "{auth: {realm: 'Gewächshaus'}}") == (
        'auth.realm: found "Gewächshaus", expected printable ASCII without quotes or backslashes'
    )
    other = hash_password("x", CHEAP + 1)
    two = f'users: {{a: {{password: "{alice}", role: "r"}}, b: {{password: "{other}", role: "r"}}}}'
    text = f"{{auth: {{plain_http: true, {two}, routes: [{{match: '/', role: 'r'}}]}}}}"
    assert config_error(tmp_path, text) == (
        "auth.users: the hashes have different costs (ln=10,r=8, ln=11,r=8); the time a check"
        " takes would tell which user names exist: make them all with the same"
        " `httap passwd --cost`"
    )
    assert config_error(tmp_path, "{auth: {routes: [{match: 'gpio'}]}}") == (
        'auth.routes[0].match: found "gpio", expected a path prefix like "/?gpio" or "/private/"'
    )


# -- the Host gate --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("pi.local", 200),
        ("PI.local.:8080", 200),
        ("localhost:8080", 200),
        ("192.168.1.20", 200),
        ("[::1]:8080", 200),
        ("evil.example", 421),
        ("pi.local.evil.example", 421),
        ("", 421),
    ],
)
def test_hosts_refuses_names_it_does_not_serve(make_server, docs, host, status):
    running = make_server(documents=str(docs), hosts=["pi.local"], gpio__backend="sim")
    client = Client(running.connect())
    client.send(f"GET /hello.txt HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    reply = client.read()
    assert reply.status == status
    client.send(f"GET /?ping HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    dynamic = client.read()
    assert dynamic.status == status
    if status == 421:
        message = f"misdirected request: this server does not answer for the host {host!r} (hosts)"
        assert reply.body == (message + "\n").encode()
        assert dynamic.json() == {"error": "misdirected", "message": message}
    good = Client(running.connect())
    good.send(b"GET /hello.txt HTTP/1.1\r\nHost: pi.local\r\n\r\n")
    assert good.read().status == 200


@pytest.mark.parametrize(
    ("target", "host", "status", "named"),
    [
        ("http://evil.example/hello.txt", "pi.local", 421, "evil.example"),
        ("http://evil.example:8080/?ping", "127.0.0.1", 421, "evil.example:8080"),
        ("http://pi.local/hello.txt", "evil.example", 200, None),
        ("https://[::1]:8443/?ping", "evil.example", 200, None),
    ],
)
def test_hosts_judges_the_authority_the_request_is_for(
    make_server, docs, target, host, status, named
):
    """RFC 9112 3.2.2: an absolute-form target's authority wins over Host, for the gate too."""
    running = make_server(documents=str(docs), hosts=["pi.local"], gpio__backend="sim")
    client = Client(running.connect())
    client.send(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    reply = client.read()
    assert reply.status == status, reply.body
    if named is not None:
        assert f"does not answer for the host {named!r} (hosts)" in reply.body.decode()
    assert client.get("/hello.txt", headers="").status == 421  # Client sends "Host: test"
    good = Client(running.connect())
    good.send(b"GET /hello.txt HTTP/1.1\r\nHost: pi.local\r\n\r\n")
    assert good.read().status == 200


# -- CORS on every reply, whoever answers ----------------------------------------------

APP_ORIGIN = "https://app.example"
FROM_APP = f"Origin: {APP_ORIGIN}\r\n"
EXPLODING_APP = """
def setup(server):
    @server.action("explode")
    def explode(request):
        raise RuntimeError("boom")
"""


def check_cors(reply, credentials: bool = True) -> None:
    """What a page from an allowed origin needs to read a reply (Fetch standard)."""
    assert reply.headers.get("access-control-allow-origin") == APP_ORIGIN, reply.raw_head
    exposed = [name.strip() for name in reply.headers["access-control-expose-headers"].split(",")]
    assert "HTTaP-Session" in exposed and "Retry-After" in exposed
    allowed = reply.headers.get("access-control-allow-credentials")
    assert allowed == ("true" if credentials else None), reply.raw_head
    assert b"\r\nVary: Origin" in reply.raw_head


def held_then_429(running, tls_pair):
    """A wrong password (its 401 is held 1 s), then another try from that address."""
    first = secure_client(running, tls_pair, source="127.0.0.2")
    first.send(
        b"GET /?gpio/led HTTP/1.1\r\nHost: t\r\n"
        + (basic("bob", "no") + FROM_APP + "\r\n").encode()
    )
    time.sleep(0.3)
    second = secure_client(running, tls_pair, source="127.0.0.2").get(
        "/?gpio/led", headers=ALICE + FROM_APP
    )
    return [second, first.read()]


def busy(running, tls_pair):
    holder = secure_client(running, tls_pair, source="127.0.0.3")
    assert put(holder, "/?gpio/led", b"1", ALICE).status == 200
    other = secure_client(running, tls_pair, source="127.0.0.4")
    return [put(other, "/?gpio/led", b"0", ALICE + FROM_APP)]


def protocol_error(data: bytes):
    def send(running, tls_pair):
        client = secure_client(running, tls_pair)
        client.send(data)
        reply = client.read()
        assert client.closed()
        return [reply]

    return send


def asking(target: str, headers: str = "", method: str = "GET"):
    def send(running, tls_pair):
        return [secure_client(running, tls_pair).get(target, headers + FROM_APP, method)]

    return send


CORS_CASES = {
    # name: (what the client does, the status of each reply)
    "401": (asking("/?gpio/led"), [401]),
    "401 for a file": (asking("/private/plans.txt"), [401]),
    "403": (lambda r, t: [put(secure_client(r, t), "/?gpio/led", b"1", BOB + FROM_APP)], [403]),
    "429 and the held 401": (held_then_429, [429, 401]),
    "503": (busy, [503]),
    "413": (
        protocol_error(
            b"PUT /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n"
            + FROM_APP.encode()
            + b"\r\n"
        ),
        [413],
    ),
    "400 in a chunked body": (
        protocol_error(
            b"PUT /?gpio/led HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
            + FROM_APP.encode()
            + b"\r\nzz\r\n"
        ),
        [400],
    ),
    "408 in a body": (
        protocol_error(
            b"PUT /?gpio/led HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n"
            + FROM_APP.encode()
            + b"\r\n1"
        ),
        [408],
    ),
    "302": (asking("/old"), [302]),
    "301 of a directory": (asking("/guide?x"), [301]),
    "500": (asking("/?explode", ALICE), [500]),
    "404": (asking("/?nothing", BOB), [404]),
    "200 signed in": (asking("/?gpio/led", BOB), [200]),
    "200 a file": (asking("/hello.txt"), [200]),
    "204 preflight": (
        asking("/?gpio/led", "Access-Control-Request-Method: PUT\r\n", "OPTIONS"),
        [204],
    ),
}


@pytest.mark.parametrize("case", CORS_CASES)
def test_every_reply_to_an_allowed_origin_carries_cors(guarded, docs, tls_pair, tmp_path, case):
    """With `cors.origins` and `auth`, a page from the origin can read every reply, a
    gate's refusal included, and sign in (Access-Control-Allow-Credentials)."""
    (docs / "guide").mkdir()
    app = tmp_path / "app.py"
    app.write_text(EXPLODING_APP)
    running = guarded(
        **{
            "cors.origins": [APP_ORIGIN],
            "limits.body": 1024,
            "timeouts.request": 0.5,
            "redirect": [{"from": "/old", "to": "/hello.txt"}],
            "app": str(app),
        }
    )
    act, statuses = CORS_CASES[case]
    replies = act(running, tls_pair)
    assert [reply.status for reply in replies] == statuses
    for reply in replies:
        check_cors(reply)
    others_served(running, tls_pair)


def test_the_host_gates_421_carries_cors_too(make_server, docs):
    running = make_server(
        documents=str(docs), hosts=["pi.local"], cors__origins=[APP_ORIGIN], gpio__backend="sim"
    )
    client = Client(running.connect())
    reply = client.get("/?ping", headers=FROM_APP)
    assert reply.status == 421
    check_cors(reply, credentials=False)  # no auth: nothing to share


def test_cors_names_only_allowed_origins_and_credentials_only_listed_ones(guarded, tls_pair):
    running = guarded(**{"cors.origins": ["*", "https://named.example"]})
    client = secure_client(running, tls_pair)
    anyone = client.get("/?gpio/led", headers="Origin: https://anyone.example\r\n")
    assert anyone.status == 401
    assert anyone.headers["access-control-allow-origin"] == "https://anyone.example"
    assert "access-control-allow-credentials" not in anyone.headers  # "*": no passwords
    named = client.get("/?gpio/led", headers=BOB + "Origin: https://named.example\r\n")
    assert named.headers["access-control-allow-credentials"] == "true"
    plain = client.get("/hello.txt")  # no Origin: the reply still varies with it
    assert "access-control-allow-origin" not in plain.headers
    assert b"\r\nVary: Origin" in plain.raw_head
    strict = guarded(**{"cors.origins": [APP_ORIGIN]})
    other = secure_client(strict, tls_pair).get(
        "/?gpio/led", headers="Origin: https://evil.example\r\n"
    )
    assert other.status == 401
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-credentials" not in other.headers
    assert b"\r\nVary: Origin" in other.raw_head
