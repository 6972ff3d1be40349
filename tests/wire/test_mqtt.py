"""The MQTT bridge against a real Mosquitto on a free loopback port (docs/protocol.md,
"MQTT"): every topic of the table, retained status and state, commands to pins and
actions through the request path (checks, lease, roles, audit, events), refusals on the
error topic, Home Assistant discovery, a broker killed and restarted, a broker that
refuses (back-off), TLS, a wrong password. The Last Will on kill -9 of the server and
the loop's timing while the broker black-holes connections are in
tests/system/test_mqtt.py (a server process)."""

from __future__ import annotations

import json
import logging
import time

import pytest

from httap.auth import hash_password
from tests.helpers import wait_for
from tests.helpers.client import Client
from tests.helpers.dynamic import call, check_error
from tests.helpers.servers import BUTTON, LED, PINS, read_pin, values
from tests.helpers.sse import Sse

DEV = "dev1"
BASE = f"httap/{DEV}"
APP = """
from httap import HTTPError

def setup(server):
    @server.action("double", methods=("POST",))
    def double(request):
        number = request.json()["n"]
        server.write("led", 1)
        return {"twice": 2 * number}

    @server.action("car/stop", methods=("POST",))
    def stop(request):
        raise HTTPError(409, "parked", "the car is parked")

    @server.action("lookonly")
    def look(request):
        return {"ok": True}

    server.every(0.001, lambda: None, name="tick")
"""


@pytest.fixture
def start(make_server, tmp_path):
    """A server with the usual pins and the app above, bridged to `broker`."""

    def start_server(broker, **overrides):
        app = tmp_path / "app.py"
        app.write_text(APP)
        settings = {
            "id": DEV,
            "gpio__backend": "sim",
            "gpio__pins": PINS,
            "app": str(app),
            "mqtt__broker": broker if isinstance(broker, str) else broker.url,
            **overrides,
        }
        return make_server(**settings)

    return start_server


def connected(running) -> bool:
    return running.call(lambda: running.server.mqtt.connected)


def online(running, timeout: float = 10.0) -> None:
    assert wait_for(lambda: connected(running), timeout), "the bridge did not connect"


def error_of(watcher, topic: str) -> dict:
    """The refusal published for a command on `topic`."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for message in watcher.on(f"{BASE}/error"):
            refusal = json.loads(message.payload)
            if refusal["topic"] == topic:
                return refusal
        time.sleep(0.005)
    raise AssertionError(f"no refusal of {topic}: {watcher.messages}")


# -- status and state -------------------------------------------------------------------


def test_status_and_every_pin_state_are_retained(start, mosquitto, watch):
    broker = mosquitto()
    running = start(broker)
    online(running)
    watcher = watch(broker, f"{BASE}/#")  # subscribes after they were published
    assert watcher.wait(f"{BASE}/status", b"online").retain
    assert watcher.wait(f"{BASE}/gpio/led", b"0").retain
    assert watcher.wait(f"{BASE}/gpio/button", b"1").retain  # pulled up
    buzzer = watcher.wait(f"{BASE}/gpio/buzzer")
    assert buzzer.retain
    assert json.loads(buzzer.payload) == {
        "frequency": 100,
        "duty": 0,
        "running": False,
        "kind": "soft",
    }


def test_every_change_is_published_whatever_made_it(start, mosquitto, watch, connect):
    broker = mosquitto()
    running = start(broker, session__exclusive="off")
    online(running)
    watcher = watch(broker, f"{BASE}/gpio/+")
    for pin in ("led", "button", "buzzer"):  # the retained ones first
        watcher.wait(f"{BASE}/gpio/{pin}")
    watcher.clear()
    client = connect(running)
    assert call(client, "POST", "/?gpio/led", "1").status == 200  # a request
    assert watcher.wait(f"{BASE}/gpio/led", b"1").retain is False  # live, not replayed
    running.call(lambda: running.server.write("led", 0))  # the app
    watcher.wait(f"{BASE}/gpio/led", b"0")
    assert call(client, "POST", "/?gpio/button", {"drive": 0}).status == 200  # a wire
    watcher.wait(f"{BASE}/gpio/button", b"0")
    running.call(lambda: running.server.gpio.drive(BUTTON, 1))  # the sampler finds it
    watcher.wait(f"{BASE}/gpio/button", b"1")
    assert call(client, "POST", "/?gpio/buzzer", {"pwm": {"frequency": 440, "duty": 0.5}})
    setting = watcher.wait(f"{BASE}/gpio/buzzer")
    assert json.loads(setting.payload) == {
        "frequency": 440,
        "duty": 0.5,
        "running": True,
        "kind": "soft",
    }
    assert call(client, "POST", "/?gpio/led", "0").status == 200  # a repeat: no change
    time.sleep(0.2)
    assert [m.payload for m in watcher.on(f"{BASE}/gpio/led")] == [b"1", b"0"]


# -- commands -----------------------------------------------------------------------------


def test_a_set_command_takes_the_request_path(start, mosquitto, watch, connect, caplog):
    broker = mosquitto()
    running = start(broker)
    online(running)
    stream = Sse(running.connect(), "/?events&types=gpio")
    stream.next()  # the state
    watcher = watch(broker, f"{BASE}/gpio/+", f"{BASE}/error")
    watcher.clear()
    with caplog.at_level(logging.INFO, logger="httap.audit"):
        watcher.publish(f"{BASE}/gpio/led/set", "1")
        watcher.wait(f"{BASE}/gpio/led", b"1")
    assert read_pin(running, LED) == 1
    event = stream.next()
    assert (event.event, event.data["pin"], event.data["cause"]) == ("gpio", "led", "write")
    audit = [r.getMessage() for r in caplog.records if r.name == "httap.audit"]
    assert any(" mqtt led 0 -> 1 (POST /?gpio/led)" in line for line in audit), audit
    watcher.clear()
    watcher.publish(f"{BASE}/gpio/17/set", '{"pulse": 0.05}')  # by number, a JSON body
    watcher.wait(f"{BASE}/gpio/led", b"0")
    watcher.wait(f"{BASE}/gpio/led", b"1")  # the pulse's end restores it
    assert values(running, LED)[-3:] == [1, 0, 1]
    stream.close()


@pytest.mark.parametrize(
    ("topic", "payload", "code", "words"),
    [
        (f"{BASE}/gpio/nope/set", "1", "unknown-pin", "no pin is named"),
        (f"{BASE}/gpio/5/set", "1", "not-declared", "GPIO 5"),
        (f"{BASE}/gpio/led/set", "7", "bad-value", "the body must be"),
        (f"{BASE}/gpio/led/set", '{"pulse": 99}', "bad-value", "a pulse is"),
        (f"{BASE}/gpio/button/set", "1", "mode-conflict", "is an input"),
        (f"{BASE}/action/nothing", "{}", "unknown-action", "double"),
        (f"{BASE}/action/lookonly", "{}", "method-not-allowed", "use GET"),
    ],
)
def test_a_refused_command_is_published_and_the_bridge_goes_on(
    start, mosquitto, watch, topic, payload, code, words
):
    broker = mosquitto()
    running = start(broker)
    online(running)
    watcher = watch(broker, f"{BASE}/#")
    watcher.publish(topic, payload)
    refusal = error_of(watcher, topic)
    assert refusal["error"] == code and words in refusal["message"], refusal
    assert connected(running)
    watcher.publish(f"{BASE}/gpio/led/set", "1")  # still served
    watcher.wait(f"{BASE}/gpio/led", b"1")


def test_a_retained_command_is_not_run(start, mosquitto, watch):
    broker = mosquitto()
    watcher = watch(broker, f"{BASE}/error")
    watcher.publish(f"{BASE}/gpio/led/set", "1", retain=True)  # waiting for the next connect
    running = start(broker)
    online(running)
    refusal = error_of(watcher, f"{BASE}/gpio/led/set")
    assert refusal["error"] == "retained", refusal
    assert read_pin(running, LED) == 0


def test_the_lease_mqtt_is_one_more_client(start, mosquitto, watch, connect):
    broker = mosquitto()
    running = start(broker, timeouts__inactivity=3)
    online(running)
    watcher = watch(broker, f"{BASE}/#")
    browser = connect(running)
    assert call(browser, "POST", "/?gpio/led", "1").status == 200  # the browser holds it
    watcher.publish(f"{BASE}/gpio/led/set", "0")
    refusal = error_of(watcher, f"{BASE}/gpio/led/set")
    assert refusal["error"] == "busy" and "127.0.0.1" in refusal["message"], refusal
    assert read_pin(running, LED) == 1
    browser.close()  # it lets go: the safe value (0), then MQTT may drive
    assert wait_for(lambda: running.call(lambda: running.server.manager.lease.holder is None))
    watcher.clear()
    watcher.publish(f"{BASE}/gpio/led/set", "1")
    watcher.wait(f"{BASE}/gpio/led", b"1")
    other = connect(running)
    reply = call(other, "POST", "/?gpio/led", "0")  # now the bridge holds it
    check_error(reply, 503, "busy", "mqtt (session")
    assert call(other, "GET", "/?gpio/led").json()["value"] == 1  # reads stay open
    watcher.clear()
    # timeouts.inactivity (3 s) after its last command, the bridge lets go: safe value
    watcher.wait(f"{BASE}/gpio/led", b"0", timeout=6)
    assert call(other, "POST", "/?gpio/led", "1").status == 200


def test_roles_under_auth_are_mqtt_role(start, mosquitto, watch):
    broker = mosquitto()
    auth = {
        "users": {"ann": {"password": hash_password("secret", cost=10), "role": "admin"}},
        "roles": {"admin": ["driver"]},
        "routes": [{"match": "/?gpio", "role": "driver", "methods": ["POST", "PUT"]}],
        "plain_http": True,
    }
    refused = start(broker, auth=auth)
    online(refused)
    watcher = watch(broker, f"{BASE}/#")
    watcher.publish(f"{BASE}/gpio/led/set", "1")
    refusal = error_of(watcher, f"{BASE}/gpio/led/set")
    assert refusal["error"] == "forbidden" and "needs the role driver" in refusal["message"]
    assert read_pin(refused, LED) == 0
    refused.stop()
    allowed = start(broker, auth=auth, mqtt__role="admin")  # admin includes driver
    online(allowed)
    watcher.clear()
    watcher.publish(f"{BASE}/gpio/led/set", "1")
    watcher.wait(f"{BASE}/gpio/led", b"1")


def test_actions_reply_on_their_reply_topic(start, mosquitto, watch):
    broker = mosquitto()
    running = start(broker)
    online(running)
    watcher = watch(broker, f"{BASE}/#")
    watcher.publish(f"{BASE}/action/double", '{"n": 21}')
    assert json.loads(watcher.wait(f"{BASE}/action/double/reply").payload) == {"twice": 42}
    watcher.wait(f"{BASE}/gpio/led", b"1")  # the action drove a pin
    watcher.publish(f"{BASE}/action/car/stop", "")  # a name with a slash; it refuses
    reply = json.loads(watcher.wait(f"{BASE}/action/car/stop/reply").payload)
    assert reply == {"error": "parked", "message": "the car is parked"}
    assert error_of(watcher, f"{BASE}/action/car/stop")["error"] == "parked"
    watcher.publish(f"{BASE}/action/double", "not json")
    assert error_of(watcher, f"{BASE}/action/double")["error"] == "bad-json"


def test_the_app_events_are_published(start, mosquitto, watch):
    broker = mosquitto()
    running = start(broker)
    online(running)
    watcher = watch(broker, f"{BASE}/event/#")
    running.call(lambda: running.server.publish("lap", {"time": 12.5, "car": [1, 2]}))
    message = watcher.wait(f"{BASE}/event/lap")
    assert json.loads(message.payload) == {"time": 12.5, "car": [1, 2]}
    assert not message.retain


# -- Home Assistant --------------------------------------------------------------------


def test_discovery_announces_each_pin_to_home_assistant(start, mosquitto, watch):
    broker = mosquitto()
    running = start(broker)
    online(running)
    watcher = watch(broker, "homeassistant/#", f"{BASE}/gpio/+")
    switch = watcher.wait("homeassistant/switch/dev1_led/config")
    sensor = watcher.wait("homeassistant/binary_sensor/dev1_button/config")
    number = watcher.wait("homeassistant/number/dev1_buzzer/config")
    assert switch.retain and sensor.retain and number.retain
    led, button, buzzer = (json.loads(m.payload) for m in (switch, sensor, number))
    assert led["state_topic"] == f"{BASE}/gpio/led"
    assert led["command_topic"] == f"{BASE}/gpio/led/set"
    assert (led["payload_on"], led["payload_off"]) == ("1", "0")
    assert led["availability_topic"] == f"{BASE}/status"
    assert led["unique_id"] == "httap_dev1_led" and led["device"]["identifiers"] == ["httap_dev1"]
    assert button["state_topic"] == f"{BASE}/gpio/button" and "command_topic" not in button
    assert (buzzer["min"], buzzer["max"]) == (0, 1)
    # What Home Assistant sends: payload_on, and the number's command_template rendered
    watcher.publish(led["command_topic"], led["payload_on"])
    watcher.wait(f"{BASE}/gpio/led", b"1")
    rendered = buzzer["command_template"].replace("{{ value }}", "0.25")
    watcher.publish(buzzer["command_topic"], rendered)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = [json.loads(m.payload) for m in watcher.on(f"{BASE}/gpio/buzzer")]
        if states and states[-1]["duty"] == 0.25:
            break
        time.sleep(0.01)
    assert states[-1] == {"frequency": 100, "duty": 0.25, "running": True, "kind": "soft"}


def test_no_discovery_when_it_is_off(start, mosquitto, watch):
    broker = mosquitto()
    running = start(broker, mqtt__discovery=False)
    online(running)
    watcher = watch(broker, "homeassistant/#", f"{BASE}/status")
    watcher.wait(f"{BASE}/status", b"online")
    time.sleep(0.2)
    assert [m.topic for m in watcher.messages] == [f"{BASE}/status"]


# -- the broker away ----------------------------------------------------------------------


def test_a_broker_killed_and_restarted_gets_the_state_again(start, mosquitto, watch, connect):
    broker = mosquitto()
    running = start(broker)
    online(running)
    broker.kill()  # retained messages die with it (no persistence)
    assert wait_for(lambda: not connected(running))
    client = connect(running)
    assert call(client, "POST", "/?gpio/led", "1").status == 200  # served meanwhile
    broker.start()  # the same port
    online(running, timeout=10)  # the back-off's next attempt
    watcher = watch(broker, f"{BASE}/#")
    assert watcher.wait(f"{BASE}/status", b"online").retain
    assert watcher.wait(f"{BASE}/gpio/led", b"1").retain  # the state now, republished


def test_a_broker_that_refuses_is_tried_again_with_back_off(start, caplog):
    from tests.helpers import free_port

    with caplog.at_level(logging.DEBUG, logger="httap.mqtt"):
        running = start(f"mqtt://127.0.0.1:{free_port()}")
        time.sleep(3.5)  # attempts at 0, 1 and 3 s
    tries = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert [line.rsplit(" in ", 1)[1] for line in tries[:3]] == ["1 s", "2 s", "4 s"], tries
    assert "Connection refused" in tries[0]
    assert [r.levelno for r in caplog.records if "trying again" in r.getMessage()][:2] == [
        logging.WARNING,
        logging.DEBUG,
    ]
    assert not connected(running)


def test_a_broker_named_by_a_host_name_is_looked_up_off_the_loop(start, mosquitto, watch):
    broker = mosquitto()
    running = start(f"mqtt://localhost:{broker.port}")  # ::1 refused, then 127.0.0.1
    online(running)
    watch(broker, f"{BASE}/status").wait(f"{BASE}/status", b"online")
    assert running.call(lambda: running.server.mqtt.dialer.looking_up) is False


# -- TLS and passwords ----------------------------------------------------------------------


def test_tls_to_the_broker(start, mosquitto, watch, tls_pair):
    broker = mosquitto(tls=tls_pair)
    running = start(f"mqtts://127.0.0.1:{broker.port}", mqtt__ca=tls_pair[0])
    online(running)
    watcher = watch(broker, f"{BASE}/status", ca=tls_pair[0])
    watcher.wait(f"{BASE}/status", b"online")
    assert isinstance(running.call(lambda: running.server.mqtt.sock), __import__("ssl").SSLSocket)


def test_a_broker_certificate_nobody_signed_is_refused(start, mosquitto, tls_pair, caplog):
    broker = mosquitto(tls=tls_pair)
    with caplog.at_level(logging.WARNING, logger="httap.mqtt"):
        running = start(f"mqtts://127.0.0.1:{broker.port}")  # the system's CAs
        assert wait_for(
            lambda: any("TLS handshake failed" in r.getMessage() for r in caplog.records)
        )
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert not connected(running)


def test_a_wrong_password_is_refused_and_said(start, mosquitto, caplog, connect):
    broker = mosquitto(users={"dev": "right"})
    with caplog.at_level(logging.WARNING, logger="httap.mqtt"):
        running = start(broker, mqtt__username="dev", mqtt__password="wrong")
        assert wait_for(lambda: "refused the connection" in caplog.text)
    assert "Not authorized" in caplog.text
    assert not connected(running)
    client = Client(running.connect())
    assert call(client, "GET", "/?").status == 200  # the server goes on
    client.close()
    good = start(broker, mqtt__username="dev", mqtt__password="right")
    online(good)
