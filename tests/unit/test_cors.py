"""CORS (httap/manager/cors.py): foreign writes refused, preflight, the header lines."""

from __future__ import annotations

import pytest

from httap import http
from httap.manager.cors import MAX_ORIGINS, VARY_ORIGIN, Cors
from tests.helpers.domain import answer, build, request

APP = "https://app.example"
METHODS = "GET, HEAD, POST, PUT, OPTIONS"


def from_origin(origin, method="POST", target="/?gpio/led", **extra):
    return request(method, target, 1, headers={"origin": origin, **extra} if origin else {})


@pytest.mark.parametrize(
    ("origins", "origin", "refused"),
    [
        ((), None, False),  # no browser behind it
        ((), "http://device.local", False),  # the page this server served
        ((), "http://evil.example", True),
        ((APP,), APP, False),
        (("*",), "http://evil.example", False),
    ],
)
def test_a_write_from_a_page_of_another_origin_is_refused(origins, origin, refused):
    cors = Cors(origins, False, METHODS)
    if not refused:
        cors.check_write(from_origin(origin))
        return
    with pytest.raises(http.HTTPError) as error:
        cors.check_write(from_origin(origin))
    assert (error.value.status, error.value.code) == (403, "origin-not-allowed")
    assert "add it to cors.origins" in error.value.message


def test_the_manager_refuses_the_foreign_write_before_anything_else():
    manager = build(cors__origins=[APP])
    refused = manager.handle(from_origin("http://evil.example", target="/?gpio/nope"))
    assert answer(refused)[0] == 403
    assert manager.pins.backend.read(17) == 0


def test_a_preflight_allows_a_listed_origin_only():
    cors = Cors((APP,), False, METHODS)
    plain = cors.preflight(from_origin(None, "OPTIONS"))
    assert (plain.status, plain.headers) == (204, (("Allow", METHODS),))
    listed = cors.preflight(
        from_origin(APP, "OPTIONS", **{"access-control-request-headers": "X-A"})
    )
    assert dict(listed.headers) == {
        "Allow": METHODS,
        "Access-Control-Allow-Methods": METHODS,
        "Access-Control-Allow-Headers": "X-A",
        "Access-Control-Max-Age": "600",
    }
    with pytest.raises(http.HTTPError) as error:
        cors.preflight(from_origin("http://evil.example", "OPTIONS"))
    assert error.value.status == 403


def test_the_manager_finishes_a_preflight_like_any_reply():
    response = build(cors__origins=[APP]).handle(from_origin(APP, "OPTIONS", target="/?anything"))
    assert response.status == 204 and response.header("httap-session") is not None


@pytest.mark.parametrize(
    ("origins", "credentials", "origin", "lines"),
    [
        ((APP,), False, None, VARY_ORIGIN),
        ((APP,), False, "http://evil.example", VARY_ORIGIN),
        ((APP,), False, APP, f"Access-Control-Allow-Origin: {APP}\r\n".encode()),
        ((APP,), True, APP, b"Access-Control-Allow-Credentials: true\r\n"),
        (("*",), True, APP, f"Access-Control-Allow-Origin: {APP}\r\n".encode()),
    ],
)
def test_the_lines_every_reply_carries(origins, credentials, origin, lines):
    cors = Cors(origins, credentials, METHODS)
    got = cors.headers(from_origin(origin, "GET"), http.Response(200))
    assert lines in got and got.endswith(VARY_ORIGIN)
    assert (b"Credentials" in got) == (credentials and origin in origins)


def test_a_reply_naming_its_own_origin_keeps_it_and_the_memo_is_bounded():
    cors = Cors(("*",), False, METHODS)
    own = http.Response(200, [("Access-Control-Allow-Origin", "https://x")])
    assert cors.headers(from_origin(APP, "GET"), own) == VARY_ORIGIN
    for n in range(MAX_ORIGINS + 5):
        cors.headers(from_origin(f"https://{n}.example", "GET"), http.Response(200))
    assert len(cors._lines) <= MAX_ORIGINS
