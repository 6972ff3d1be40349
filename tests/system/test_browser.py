"""The device console, httap.js and the example pages in a real browser: Debian's
chromium, headless, driven by playwright. Each test leaves a screenshot in
tests/artifacts/.

Where the browser has EventSource (chromium does), the console and httap.js follow the
event stream `/?events` and never long-poll: every page these tests open is checked for
that at the end (no `wait=` but `wait=0`, which a serial read uses to take what is
there). The fallback, long-polling where EventSource is missing, has its own test."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from httap.init import write_starter
from tests.helpers import ROOT, wait_for
from tests.helpers.archives import tar_of
from tests.helpers.serialline import Device
from tests.helpers.servers import history

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


LONG_POLL = re.compile(r"[?&]wait=(?!0(?:&|$))")


@pytest.fixture
def open_page(browser):
    """`open_page(**context_options)`: a page in a browser context of its own (its own
    connections, as another client's). At the end, no page may have long-polled."""
    opened = []

    def open_(**options):
        context = browser.new_context(**{"viewport": PHONE, **options})
        page = context.new_page()
        urls = []
        page.on("request", lambda request: urls.append(request.url))
        opened.append((context, urls))
        return page

    yield open_
    for context, _ in opened:
        context.close()
    long_polls = [url for _, urls in opened for url in urls if LONG_POLL.search(url)]
    assert long_polls == [], "a page long-polled though the browser has EventSource"


@pytest.fixture
def page(open_page):
    return open_page()


def console(make_server, **overrides):
    settings = {"documents": str(ROOT / "static"), "gpio__backend": "sim", "gpio__pins": PINS}
    return make_server(**{**settings, **overrides})


def url(running) -> str:
    return f"http://127.0.0.1:{running.port}/"


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def pin(running, number: int) -> int:
    return running.call(lambda: running.server.gpio.read(number))


def post(running, path: str, body) -> dict:
    """Another client's write: `POST /?path` with a JSON body, on a connection of its own."""
    request = urllib.request.Request(
        f"{url(running)}?{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return json.load(reply)


def get(running, path: str) -> dict:
    with urllib.request.urlopen(f"{url(running)}?{path}", timeout=5) as reply:
        return json.load(reply)


def subscribers(running) -> int:
    """The event streams open on the server."""
    return running.call(lambda: len(running.server.manager.events.subscribers))


def blink(make_server, **overrides):
    """The blink example (its app toggles the led every 0.5 s) under the console."""
    return make_server(
        config_file=str(ROOT / "examples/blink/web.json5"),
        listen=["http://127.0.0.1:0"],
        documents=str(ROOT / "static"),
        **overrides,
    )


def record_switch(page, name: str) -> None:
    """From now on, the page keeps every value its switch `name` shows, in window.seen
    (a value shown again, as a write's reply and its event both show it, once). The
    whole page is observed and the switch found again on each change: the console may
    draw a pin's row anew (when its event stream's state arrives), and an observer of
    the old element would hear nothing more."""
    page.evaluate(
        """(name) => {
            const shown = () => document
                .querySelector(`[role=switch][aria-label="${name}"]`)
                ?.getAttribute("aria-checked");
            window.seen = [shown()];
            new MutationObserver(() => {
                const value = shown();
                if (value != null && value !== window.seen.at(-1)) window.seen.push(value);
            }).observe(document.body, {
                subtree: true,
                childList: true,
                attributes: true,
                attributeFilter: ["aria-checked"],
            });
        }""",
        name,
    )


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
    expect(page.locator("#chart-label")).to_contain_text("lateness", timeout=5000)
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


def test_the_page_resyncs_after_a_server_restart(make_server, page):
    """The stream drops: "reconnecting", the controls disabled. The server comes back
    with other values (relay starts at 0): the page shows them, with a new session, and
    follows the new server's changes."""
    running = console(make_server)
    page.goto(url(running))
    session = page.locator("#session")
    relay = page.get_by_role("switch", name="relay")
    expect(session).not_to_have_text("-")
    expect(relay).to_have_attribute("aria-checked", "true")
    first = session.text_content()
    running.stop()
    expect(page.locator("#reconnecting")).to_be_visible(timeout=5000)
    expect(relay).to_be_disabled()
    screenshot(page, "restart-reconnecting")
    pins = {**PINS, "relay": {**PINS["relay"], "initial": 0}}
    again = console(make_server, listen=[f"http://127.0.0.1:{running.port}"], gpio__pins=pins)
    expect(page.locator("#reconnecting")).to_be_hidden(timeout=10000)
    expect(session).not_to_have_text(first, timeout=10000)
    expect(relay).to_have_attribute("aria-checked", "false", timeout=5000)
    expect(relay).to_be_enabled()
    post(again, "gpio/relay", 1)
    expect(relay).to_have_attribute("aria-checked", "true", timeout=2000)
    screenshot(page, "restart-reconnected")


def test_the_busy_banner_comes_and_goes_with_the_lease(make_server, open_page):
    """With "connection" (chromium connects from one address, and each browser context
    has its own connections), a click on the first page takes the lease: the second
    page says "another client is driving" without having tried, and its write is
    refused; once the first page is gone, the banner goes by itself and the second
    page drives."""
    running = console(make_server, session__exclusive="connection")
    first, second = open_page(), open_page()
    first.goto(url(running))
    second.goto(url(running))
    expect(second.get_by_role("switch", name="led")).to_be_visible()
    expect(second.locator("#busy")).to_be_hidden()
    first.get_by_role("switch", name="led").click()
    expect(first.get_by_role("switch", name="led")).to_have_attribute("aria-checked", "true")
    busy = second.locator("#busy")
    expect(busy).to_be_visible(timeout=2000)
    expect(busy).to_contain_text("Another client is driving (127.0.0.1, session")
    expect(second.get_by_role("switch", name="led")).to_have_attribute("aria-checked", "true")
    second.get_by_role("switch", name="relay").click()
    expect(busy).to_be_visible()
    assert pin(running, 27) == 1
    expect(first.locator("#busy")).to_be_hidden()
    screenshot(second, "busy")
    first.context.close()  # its connections close: the lease goes, the led to its safe 0
    expect(busy).to_be_hidden(timeout=3000)
    expect(second.get_by_role("switch", name="led")).to_have_attribute("aria-checked", "false")
    second.get_by_role("switch", name="relay").click()
    expect(second.get_by_role("switch", name="relay")).to_have_attribute("aria-checked", "false")
    assert pin(running, 27) == 0
    expect(busy).to_be_hidden()


def test_a_second_clients_write_shows_on_the_first_page(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    relay = page.get_by_role("switch", name="relay")
    expect(relay).to_have_attribute("aria-checked", "true")
    post(running, "gpio/relay", 0)
    expect(relay).to_have_attribute("aria-checked", "false", timeout=1000)
    post(running, "gpio/motor", {"pwm": {"duty": 0.75}})
    expect(page.get_by_role("slider", name="motor")).to_have_value("0.75", timeout=1000)
    expect(page.locator("#log")).to_contain_text("gpio relay = 0 (write)")
    screenshot(page, "second-client")


def test_an_apps_blinking_shows_on_the_switch(make_server, page):
    """The app toggles the led every 0.5 s; nobody touches the page, whose switch follows
    every change."""
    running = blink(make_server)
    page.goto(url(running))
    expect(page.get_by_role("switch", name="led")).to_be_visible()
    record_switch(page, "led")
    # 0.5 s apart: 4 changes after the first value in about 2 s
    page.wait_for_function("window.seen.length >= 5", timeout=5000)
    assert len(history(running, 17)) >= 5
    screenshot(page, "blinking")


def test_the_pulse_button_pulses_the_pin_and_the_switch_shows_it(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    led = page.get_by_role("switch", name="led")
    expect(led).to_have_attribute("aria-checked", "false")
    record_switch(page, "led")
    page.get_by_label("pulse led seconds").fill("0.3")
    page.get_by_role("button", name="pulse led", exact=True).click()
    expect(led).to_have_attribute("aria-checked", "true", timeout=1000)
    expect(led).to_have_attribute("aria-checked", "false", timeout=2000)
    assert page.evaluate("window.seen") == ["false", "true", "false"]
    times = [when for when, value in history(running, 17) if value == 1]
    assert len(times) == 1  # one pulse
    expect(page.locator("#log")).to_contain_text("gpio led = 1 (pulse)")


def test_pwm_frequency_and_duty_are_set_from_the_page(make_server, page):
    running = console(make_server)
    page.goto(url(running))
    frequency = page.get_by_label("motor frequency")
    expect(frequency).to_have_value("100")
    frequency.fill("440")
    frequency.press("Enter")
    assert wait_for(lambda: get(running, "gpio/motor")["pwm"]["frequency"] == 440)
    assert get(running, "gpio/motor")["pwm"]["duty"] == 0.25  # kept
    page.get_by_role("slider", name="motor").fill("0.5")
    assert wait_for(
        lambda: (
            get(running, "gpio/motor")["pwm"]
            == {"frequency": 440, "duty": 0.5, "running": True, "kind": "soft"}
        )
    )
    post(running, "gpio/motor", {"pwm": {"frequency": 50}})  # another client's change
    expect(frequency).to_have_value("50", timeout=5000)  # the event, under a loaded suite
    screenshot(page, "pwm")


APP = """
def setup(server):
    @server.action("score", methods=("GET", "POST"))
    def score(request):
        points = request.json()["points"] if request.method == "POST" else 0
        server.publish("score", {"points": points})
        return {"points": points}
"""


def test_the_actions_panel_calls_the_apps_actions_and_the_log_shows_the_events(
    make_server, page, tmp_path
):
    (tmp_path / "app.py").write_text(APP)
    running = console(make_server, app=str(tmp_path / "app.py"))
    page.goto(url(running))
    page.get_by_label("body of score").fill('{"points": 3}')
    page.get_by_role("button", name="call score").click()
    expect(page.get_by_label("reply of score")).to_have_text('{"points":3}')
    expect(page.locator("#log")).to_contain_text('app score: {"points":3}', timeout=1000)
    page.get_by_label("method of score").select_option("GET")
    page.get_by_role("button", name="call score").click()
    expect(page.get_by_label("reply of score")).to_have_text('{"points":0}')
    page.get_by_label("body of score").fill("{points")
    page.get_by_label("method of score").select_option("POST")
    page.get_by_role("button", name="call score").click()
    expect(page.get_by_label("reply of score")).to_have_text("the body is not JSON")
    page.get_by_label("body of score").fill("")
    page.get_by_label("method of score").select_option("DELETE")
    page.get_by_role("button", name="call score").click()
    expect(page.get_by_label("reply of score")).to_have_text(
        "405: DELETE is not allowed here; use GET, POST"
    )
    screenshot(page, "actions")


def test_the_serial_terminal_shows_bytes_as_they_arrive(make_server, page):
    device = Device()
    try:
        running = console(make_server, serial={"meter": {"port": device.path}})
        page.goto(url(running))
        screen = page.get_by_label("received from meter")
        expect(screen).to_be_visible()
        device.send(b"hello\n")
        expect(screen).to_have_text("hello\n", timeout=1000)
        device.send("caf\u00e9 \u2713\r\n".encode())
        expect(screen).to_have_text("hello\ncaf\u00e9 \u2713\r\n", timeout=1000)
        page.get_by_label("view of meter").select_option("hex")
        expect(screen).to_contain_text("68 65 6c 6c 6f 0a")
        expect(page.locator("#log")).to_contain_text("serial meter:")
        page.get_by_label("view of meter").select_option("text")
        page.get_by_label("line ending for meter").select_option("CR LF")
        page.get_by_label("send to meter").fill("*IDN?")
        page.get_by_label("send to meter").press("Enter")
        assert device.expect(7) == b"*IDN?\r\n"
        expect(screen).to_contain_text("*IDN?")
        device.send(b"ACME,1\n")
        expect(screen).to_contain_text("ACME,1", timeout=1000)
        screenshot(page, "serial")
    finally:
        device.unplug()


def test_the_loop_panel_shows_each_tasks_lateness(make_server, page):
    """The blink app's task, and the stream's keep-alive. No sampler: the simulated
    board's inputs give their edges on a descriptor, as libgpiod's do."""
    running = blink(make_server, gpio__pins=PINS)
    page.goto(url(running))
    task = page.locator("[data-task='setup.toggle']")
    expect(task).to_contain_text("setup.toggle every 500 ms,", timeout=5000)
    expect(task).to_contain_text(
        re.compile(r"late by median [\d.]+ [µm]?s, p99 [\d.]+ [µm]?s, max [\d.]+ [µm]?s")
    )
    label = page.locator("#chart-label")
    expect(label).to_contain_text("setup.toggle, every 500 ms: p99 lateness", timeout=5000)
    expect(label).to_contain_text("% of its period")
    expect(label).to_contain_text("chart 0 to")
    points = page.locator("#chart .p99")
    expect(points).to_have_attribute("points", re.compile(r"\d \S+,\S+"), timeout=6000)
    choices = page.get_by_label("task in the chart").locator("option")
    expect(choices.filter(has_text="event keep-alive (the server's own)")).to_have_count(1)
    expect(choices.first).to_have_text("setup.toggle")  # the app's tasks first
    keeper = page.locator("[data-task='event keep-alive']")
    expect(keeper).to_contain_text("event keep-alive (the server's own) every 15 s")
    expect(task).not_to_contain_text("the server's own")
    expect(choices.filter(has_text="gpio sampling")).to_have_count(0)
    page.get_by_label("task in the chart").select_option("event keep-alive")  # every 15 s
    expect(label).to_have_text("event keep-alive, every 15 s: no run yet, so no lateness.")
    screenshot(page, "loop")


def test_httap_js_events_per_filter_and_watch_by_gpio_number(make_server, page, docs):
    """On a page of one's own (the built-in /httap.js): one EventStream per filter, its
    `pins` limited to the pins asked for; a watch of a pin by its GPIO number follows it
    from the shared stream; `close()` ends every stream."""
    running = make_server(documents=str(docs), gpio__backend="sim", gpio__pins=PINS)
    page.goto(url(running))
    page.evaluate(
        """async () => {
            const { HTTaP } = await import("/httap.js");
            const dev = (window.dev = new HTTaP());
            const led = dev.events({ types: ["gpio"], pins: ["led"] });
            window.same = led === dev.events({ types: ["gpio"], pins: ["led"] });
            window.filtered = new Promise((resolve) => led.addEventListener("state", () =>
                resolve(Object.keys(led.pins))));
            window.values = [];
            dev.watch("gpio/27", (state) => window.values.push(state.value));
        }"""
    )
    assert page.evaluate("window.same") is True
    assert page.evaluate("window.filtered") == ["led"]
    page.wait_for_function("window.values.length === 1")
    post(running, "gpio/relay", 0)
    post(running, "gpio/led", 1)  # not the watched pin: no call
    post(running, "gpio/relay", 1)
    page.wait_for_function("window.values.length === 3")
    assert page.evaluate("window.values") == [1, 0, 1]
    assert page.evaluate("[...dev.streams.keys()]") == [
        "&types=gpio&pins=led",
        "&types=gpio,serial,app,lease",
    ]
    assert subscribers(running) == 2
    page.evaluate("dev.close()")
    assert page.evaluate("dev.streams.size") == 0
    assert wait_for(lambda: subscribers(running) == 0)


def test_without_event_source_the_console_long_polls(make_server, browser):
    """httap.js's fallback: in a browser without EventSource, watch() long-polls, and the
    console's lamps still follow their inputs."""
    running = console(make_server)
    context = browser.new_context(viewport=PHONE)
    try:
        context.add_init_script("delete window.EventSource")
        page = context.new_page()
        urls = []
        page.on("request", lambda request: urls.append(request.url))
        page.goto(url(running))
        lamp = page.locator("[data-pin=button] output")
        expect(lamp).to_have_text("1")
        running.call(lambda: running.server.gpio.drive(4, 0))
        expect(lamp).to_have_text("0", timeout=1000)
        assert [u for u in urls if "/?gpio/button&wait=" in u], urls
        assert [u for u in urls if "/?events" in u] == []
        assert page.evaluate("typeof EventSource") == "undefined"
    finally:
        context.close()


def test_a_refused_stream_is_stale_then_resyncs(make_server, page):
    """Past limits.subscribers the stream is refused (503): the page says its values may
    be out of date, and opens the stream again later, then follows changes again."""
    running = console(make_server, limits__subscribers=1)
    other = running.connect()
    other.sendall(b"GET /?events HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200 OK" in other.recv(4096)
    page.goto(url(running))
    expect(page.locator("#stale")).to_be_visible(timeout=3000)
    post(running, "gpio/relay", 0)  # unseen: no stream
    other.close()
    expect(page.locator("#stale")).to_be_hidden(timeout=6000)
    expect(page.get_by_role("switch", name="relay")).to_have_attribute("aria-checked", "false")
    post(running, "gpio/relay", 1)
    expect(page.get_by_role("switch", name="relay")).to_have_attribute("aria-checked", "true")


@pytest.mark.parametrize("width", [390, 1280])
def test_the_console_fits_a_phone_and_a_desktop(make_server, open_page, width):
    """The screenshots docs/console.png (390 px) and docs/console-wide.png (1280 px)
    come from here: the blink app with its actions, a serial port and a PWM pin."""
    device = Device()
    try:
        pins = {**PINS, "led": {"gpio": 17, "mode": "out", "initial": 0}}
        running = blink(make_server, gpio__pins=pins, serial={"meter": {"port": device.path}})
        page = open_page(viewport={"width": width, "height": 900})
        page.goto(url(running))
        expect(page.get_by_label("received from meter")).to_be_visible()
        device.send(b"*IDN? ACME,DMM-1,42,1.0\n")
        expect(page.get_by_label("received from meter")).to_contain_text("ACME", timeout=1000)
        expect(page.locator("[data-task='setup.toggle']")).to_be_visible(timeout=5000)
        page.wait_for_timeout(4500)  # a few points on the chart
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        screenshot(page, f"console-{width}")
    finally:
        device.unplug()


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


def test_the_console_over_https_with_sign_in(make_server, browser, open_page, tls_pair):
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
        page = open_page(
            ignore_https_errors=True,  # the test's own self-signed certificate
            http_credentials={"username": user, "password": password},
        )
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


def uploading(make_server, tmp_path, **overrides):
    """The console over a copy of static/index.html (the app an update replaces), with
    `uploads` in tmp_path/uploads."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_bytes((ROOT / "static" / "index.html").read_bytes())
    (tmp_path / "uploads").mkdir()
    return console(
        make_server, documents=str(www), uploads__dir=str(tmp_path / "uploads"), **overrides
    )


def record_progress(page, bar: str) -> None:
    """From now on, window.progress keeps every value the progress bar `bar` shows."""
    page.evaluate(
        """(selector) => {
            const bar = document.querySelector(selector);
            window.progress = [];
            new MutationObserver(() => window.progress.push(Number(bar.getAttribute("value"))))
              .observe(bar, { attributes: true, attributeFilter: ["value"] });
        }""",
        bar,
    )


def slow_uploads(page, bytes_per_second: int) -> None:
    """Chromium sends request bodies at most this fast (its network emulation), so the
    upload lasts long enough to report its progress."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


def test_an_upload_through_the_console_shows_its_progress(make_server, page, tmp_path):
    running = uploading(make_server, tmp_path)
    page.goto(url(running))
    expect(page.locator("#files")).to_be_visible()
    record_progress(page, "#upload-progress")
    slow_uploads(page, 1 << 20)
    data = os.urandom(3 << 20)
    page.set_input_files(
        "#pick", files=[{"name": "log.csv", "mimeType": "text/csv", "buffer": data}]
    )
    expect(page.locator("#upload-progress")).to_be_visible()
    row = page.locator("[data-file='log.csv']")
    expect(row).to_be_visible(timeout=15000)
    expect(page.locator("#upload-status")).to_have_text("log.csv: done")
    expect(page.locator("#upload-progress")).to_be_hidden()
    assert (tmp_path / "uploads" / "log.csv").read_bytes() == data
    seen = page.evaluate("window.progress")
    assert [value for value in seen if 0 < value < 100], seen  # the upload's own progress
    assert seen[-1] == 100 and seen == sorted(seen), seen
    with page.expect_download() as download:
        row.get_by_role("link", name="log.csv").click()
    assert download.value.suggested_filename == "log.csv"
    assert Path(download.value.path()).read_bytes() == data
    screenshot(page, "upload")
    row.get_by_role("button", name="delete log.csv").click()
    expect(row).to_have_count(0)
    assert not (tmp_path / "uploads" / "log.csv").exists()


def test_an_app_update_reloads_into_the_new_version_and_rolls_back(make_server, page, tmp_path):
    running = uploading(make_server, tmp_path)
    page.goto(url(running))
    expect(page.locator("#app-version")).to_have_text("as configured (documents)")
    expect(page.locator("#rollback")).to_be_hidden()
    console_page = (ROOT / "static" / "index.html").read_text()
    new = console_page.replace("<h1>httap console</h1>", "<h1>httap console, version 2</h1>")
    archive = tar_of({"site/index.html": new.encode()})
    with page.expect_event("load"):
        page.set_input_files(
            "#app-archive",
            files=[{"name": "site.tar.gz", "mimeType": "application/gzip", "buffer": archive}],
        )
    expect(page.locator("h1")).to_have_text("httap console, version 2")
    digest = get(running, "app")["digest"]
    expect(page.locator("#app-version")).to_contain_text(digest[:12])
    screenshot(page, "app-updated")
    with page.expect_event("load"):
        page.get_by_role("link", name="switch back to the previous version").click()
    expect(page.locator("h1")).to_have_text("httap console")
    expect(page.locator("#app-version")).to_have_text("as configured (documents)")
    assert get(running, "app")["previous"]["digest"] == digest


def test_a_file_dropped_on_the_console_is_uploaded(make_server, page, tmp_path):
    running = uploading(make_server, tmp_path)
    page.goto(url(running))
    expect(page.locator("#files")).to_be_visible()
    dropped = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["a,b\\n1,2\\n"], "dropped.csv", { type: "text/csv" }));
            return transfer;
        }"""
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": dropped})
    expect(page.locator("#drop")).to_have_class("drop over")
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    expect(page.locator("[data-file='dropped.csv']")).to_be_visible()
    assert (tmp_path / "uploads" / "dropped.csv").read_bytes() == b"a,b\n1,2\n"
    expect(page.locator("#drop")).to_have_class("drop")
