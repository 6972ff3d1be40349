"""The device console, httap.js and the car page in a real browser: Debian's chromium,
headless, driven by playwright. Each test leaves a screenshot in tests/artifacts/."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

from httap.init import write_starter
from tests.helpers import ROOT, wait_for

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 844}
ARTIFACTS = ROOT / "tests" / "artifacts"
PINS = {
    "led": {"gpio": 17, "mode": "out", "initial": 0, "safe": 0},
    "relay": {"gpio": 27, "mode": "out", "initial": 1},
    "button": {"gpio": 4, "mode": "in", "pull": "up"},
    "motor": {"gpio": 18, "mode": "pwm", "frequency": 100, "duty": 0.25},
}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=PHONE)
    yield context.new_page()
    context.close()


def console(make_server, **overrides):
    return make_server(
        documents=str(ROOT / "static"), gpio__backend="sim", gpio__pins=PINS, **overrides
    )


def url(running) -> str:
    return f"http://127.0.0.1:{running.port}/"


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pin(running, number: int) -> int:
    return running.call(lambda: running.server.gpio.read(number))


def test_console_loads_without_errors_and_fits_a_phone(make_server, page):
    errors = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    running = console(make_server)
    page.goto(url(running))
    for name in ("led", "relay"):
        expect(page.get_by_role("switch", name=name)).to_be_visible()
    expect(page.get_by_role("switch", name="relay")).to_have_attribute("aria-checked", "true")
    expect(page.get_by_role("slider", name="motor")).to_have_value("0.25")
    expect(page.locator("[data-pin=button] output")).to_have_text("1")
    expect(page.locator("#session")).to_have_text(re.compile(r"^\d+$"))
    expect(page.locator("#chart-label")).to_contain_text("p99 lateness of", timeout=5000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.keyboard.press("Tab")  # the first switch takes the focus
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "led"
    screenshot(page, "console-phone")
    assert errors == []


def test_switch_drives_the_pin(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    switch = page.get_by_role("switch", name="led")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    assert pin(running, 17) == 1
    switch.focus()
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    assert pin(running, 17) == 0
    screenshot(page, "switch")


def test_input_change_shows_within_a_second(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    lamp = page.locator("[data-pin=button] output")
    expect(lamp).to_have_text("1")
    running.call(lambda: running.server.gpio.drive(4, 0))
    expect(lamp).to_have_text("0", timeout=1000)
    screenshot(page, "input")


def test_drive_control_on_the_simulated_board_changes_the_input_lamp(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    lamp = page.locator("[data-pin=button] output")
    drive = page.get_by_role("button", name="drive button")
    expect(lamp).to_have_text("1")
    expect(drive).to_have_text("drive 0")
    drive.click()
    expect(lamp).to_have_text("0", timeout=2000)
    expect(drive).to_have_text("drive 1")
    assert pin(running, 4) == 0
    screenshot(page, "drive")
    drive.click()
    expect(lamp).to_have_text("1", timeout=2000)
    assert pin(running, 4) == 1


@pytest.mark.usefixtures("standins")
def test_no_drive_control_on_a_real_board(make_server, page):
    # RPi.GPIO's stand-in
    running = make_server(documents=str(ROOT / "static"), gpio__backend="rpi", gpio__pins=PINS)
    page.goto(url(running))
    expect(page.locator("[data-pin=button] output")).to_have_text("1")
    expect(page.get_by_role("switch", name="led")).to_be_visible()
    assert page.get_by_role("button", name="drive button").count() == 0


def test_restart_shows_reconnecting_then_a_new_session(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    session = page.locator("#session")
    expect(session).not_to_have_text("-")
    first = session.text_content()
    running.stop()
    expect(page.locator("#reconnecting")).to_be_visible(timeout=5000)
    screenshot(page, "restart-reconnecting")
    console(make_server, listen=[f"http://127.0.0.1:{running.port}"])
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=10000)
    expect(session).not_to_have_text(first, timeout=10000)
    expect(page.get_by_role("switch", name="led")).to_be_visible()
    screenshot(page, "restart-reconnected")


def test_second_client_sees_another_client_driving(make_server, browser):
    # chromium connects from one address: with "connection" the lease is one TCP
    # connection, and each browser context has its own.
    running = console(make_server, session__exclusive="connection")
    driver, other = browser.new_context(viewport=PHONE), browser.new_context(viewport=PHONE)
    try:
        first, second = driver.new_page(), other.new_page()
        first.goto(url(running))
        first.get_by_role("switch", name="led").click()
        expect(first.get_by_role("switch", name="led")).to_have_attribute("aria-checked", "true")
        second.goto(url(running))
        second.get_by_role("switch", name="relay").click()
        expect(second.locator("#busy")).to_be_visible()
        expect(second.locator("#busy")).to_contain_text("Another client is driving")
        assert pin(running, 27) == 1
        expect(first.locator("#busy")).to_be_hidden()
        screenshot(second, "busy")
    finally:
        driver.close()
        other.close()


def car_speeds(running) -> dict:
    with urllib.request.urlopen(f"{url(running)}?car", timeout=5) as reply:
        return json.load(reply)


def test_car_stops_when_its_tab_closes(make_server, page):
    running = make_server(
        config_file=str(ROOT / "examples/car/web.json5"), listen=["http://127.0.0.1:0"]
    )
    page.goto(url(running))
    page.get_by_role("button", name="forward").hover()
    page.mouse.down()
    assert wait_for(lambda: car_speeds(running) == {"left": 1, "right": 1}, timeout=2)
    screenshot(page, "car-driving")
    page.close()
    closed = time.monotonic()
    assert wait_for(lambda: car_speeds(running) == {"left": 0, "right": 0}, timeout=1.5)
    assert time.monotonic() - closed < 1.5


def test_the_console_over_https_with_sign_in(make_server, browser, tls_pair):
    """Behind TLS and auth: an operator's click drives the pin; a viewer's is refused
    and the pin stays as it was."""
    from httap.auth import hash_password

    users = {
        "ada": {"password": hash_password("engine", 10), "role": "operator"},
        "val": {"password": hash_password("viewer", 10), "role": "viewer"},
    }
    running = console(
        make_server,
        listen=["https://127.0.0.1:0"],
        tls__certificate=tls_pair[0],
        tls__key=tls_pair[1],
        auth__users=users,
        auth__roles={"viewer": ["read"], "operator": ["viewer", "write"]},
        auth__routes=[
            {"match": "/?gpio", "methods": ["POST", "PUT"], "role": "write"},
            {"match": "/", "role": "read"},
        ],
    )
    address = f"https://localhost:{running.port}/"
    for user, password, expected in (("val", "viewer", 0), ("ada", "engine", 1)):
        context = browser.new_context(
            viewport=PHONE,
            ignore_https_errors=True,  # the test's own self-signed certificate
            http_credentials={"username": user, "password": password},
        )
        page = context.new_page()
        page.goto(address)
        switch = page.get_by_role("switch", name="led")
        expect(switch).to_be_visible()
        switch.click()
        if expected:
            expect(switch).to_have_attribute("aria-checked", "true")
        else:
            message = "POST /?gpio/led needs the role write, which val lacks"
            expect(page.locator("#error")).to_have_text(message)
            expect(switch).to_have_attribute("aria-checked", "false")
        assert pin(running, 17) == expected
        screenshot(page, f"https-{user}")
        context.close()
    unsigned = browser.new_context(ignore_https_errors=True)
    response = unsigned.request.get(address)
    assert response.status == 401
    assert response.headers["www-authenticate"] == 'Basic realm="httap", charset="UTF-8"'
    unsigned.close()


@pytest.mark.parametrize("name", ["console", "init", "blink", "buzzer", "car", "scpi", "simon"])
def test_a_page_asks_for_nothing_missing(make_server, page, tmp_path, name):
    """The access log of a page's load shows no 404: not even for /favicon.ico, which a
    browser asks for by itself, and which the server has for every documents directory.
    The page `httap init` writes gets its console.js and httap.js from the server."""
    access = tmp_path / "access.log"
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if name == "console":
        running = console(make_server, log__access=str(access))
    elif name == "init":
        write_starter(str(tmp_path / "device"))
        running = make_server(
            config_file=str(tmp_path / "device" / "web.json5"),
            listen=["http://127.0.0.1:0"],
            gpio__pins=PINS,
            log__access=str(access),
        )
    else:
        running = make_server(
            config_file=str(ROOT / "examples" / name / "web.json5"),
            listen=["http://127.0.0.1:0"],
            log__access=str(access),
        )
    page.goto(url(running))
    if name == "init":
        expect(page.get_by_role("switch", name="led")).to_be_visible()
    icon = '"GET /favicon.ico HTTP/1.1"'
    assert wait_for(lambda: icon in access.read_text()), access.read_text()
    requests = access.read_text().splitlines()
    assert [line for line in requests if icon in line and '" 200 ' in line], requests
    assert [line for line in requests if '" 404 ' in line] == []
    assert errors == []
