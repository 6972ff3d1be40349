"""The `mqtt` section of web.json5: its values, HTTAP_MQTT_PASSWORD, and every refusal
naming the file, the key, what was found and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from httap import config
from httap.config import Broker, ConfigError


def load_text(tmp_path: Path, text: str, env=None) -> config.Config:
    path = tmp_path / "web.json5"
    path.write_text(text, encoding="utf-8")
    return config.load(str(path), env=env or {})


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, text)
    return str(info.value).split(": ", 1)[1]  # after the file's path


def test_off_by_default_and_the_defaults(tmp_path):
    settings = load_text(tmp_path, "{}").mqtt
    assert settings.broker is None
    assert (settings.prefix, settings.keepalive, settings.discovery) == ("httap", 30, True)


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("mqtt://pi.local", Broker(False, "pi.local", 1883)),
        ("mqtts://pi.local", Broker(True, "pi.local", 8883)),
        ("mqtt://10.0.0.2:1884", Broker(False, "10.0.0.2", 1884)),
        ("MQTTS://[::1]:8884/", Broker(True, "::1", 8884)),
    ],
)
def test_broker_urls(tmp_path, url, broker):
    settings = load_text(tmp_path, f'{{mqtt: {{broker: "{url}"}}}}').mqtt
    assert settings.broker == broker
    assert (
        config.to_dict(load_text(tmp_path, f'{{mqtt: {{broker: "{url}"}}}}'))["mqtt"]["broker"]
        == broker.url
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{mqtt: {broker: "http://pi:1883"}}',
            'mqtt.broker: found "http://pi:1883", expected a URL like "mqtt://HOST:1883" or'
            ' "mqtts://HOST:8883" (the port may be left out)',
        ),
        (
            '{mqtt: {broker: "mqtt://pi:0"}}',
            'mqtt.broker: found "mqtt://pi:0", expected a TCP port from 1 to 65535',
        ),
        (
            '{mqtt: {broker: "mqtt://pi", prefix: "a/+/b"}}',
            'mqtt.prefix: found "a/+/b", expected topic levels separated by "/", without'
            ' "+", "#" or empty levels',
        ),
        (
            '{mqtt: {broker: "mqtt://pi", keepalive: 2}}',
            "mqtt.keepalive: found 2, expected a number of seconds from 5 to 65535",
        ),
        (
            '{mqtt: {broker: "mqtt://pi", role: "a b"}}',
            'mqtt.role: found "a b", expected a role name of letters, digits, "_" and "-"',
        ),
        (
            '{mqtt: {brokr: "mqtt://pi"}}',
            "mqtt.brokr: unknown key; allowed keys in mqtt: broker, ca, client_id, discovery,"
            ' keepalive, password, prefix, role, username; did you mean "broker"?',
        ),
        (
            '{id: "lab/pi", mqtt: {broker: "mqtt://pi"}}',
            'id: found "lab/pi", expected one MQTT topic level (no "/", "+" or "#") since'
            " mqtt.broker is set: topics are PREFIX/ID/...",
        ),
        (
            '{mqtt: {broker: "mqtt://pi", password: "s3cret"}}',
            "mqtt.password: given without mqtt.username, which MQTT 3.1.1 needs to send a"
            " password (section 3.1.2.9); set mqtt.username",
        ),
        (
            '{mqtt: {broker: "mqtt://pi", role: "admin"}}',
            'mqtt.role: found "admin", but auth has no users, so no rule is checked and the'
            " role would do nothing; add auth.users (with that role) or remove mqtt.role",
        ),
        (
            "{uploads: {limit: 2000, space: 1000}}",
            "uploads.limit: found 2000, more than uploads.space (1000): no file could be that"
            " large; expected at most uploads.space (bytes)",
        ),
    ],
)
def test_refusals_name_the_key(tmp_path, text, message):
    assert error_of(tmp_path, text) == message


def test_a_ca_is_for_a_tls_broker(tmp_path):
    (tmp_path / "ca.pem").write_text("")
    message = error_of(tmp_path, '{mqtt: {broker: "mqtt://pi", ca: "ca.pem"}}')
    assert message == "mqtt.ca: given, but mqtt.broker mqtt://pi:1883 is not mqtts://"


def test_the_password_may_come_from_the_environment_and_is_never_shown(tmp_path):
    text = '{mqtt: {broker: "mqtt://pi", username: "dev"}}'
    settings = load_text(tmp_path, text, env={"HTTAP_MQTT_PASSWORD": "s3cret"})
    assert (settings.mqtt.username, settings.mqtt.password) == ("dev", "s3cret")
    shown = config.to_dict(settings)["mqtt"]
    assert shown["password"] == "(hidden)" and "s3cret" not in str(config.to_dict(settings))
