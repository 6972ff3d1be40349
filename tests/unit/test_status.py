"""The server about itself (httap/manager/status.py): discovery, ping, stats, loop mode."""

from __future__ import annotations

import pytest

from httap.manager.room import Change
from tests.helpers.domain import answer, build, request, session


@pytest.fixture
def manager():
    return build(id="bench-7", timeouts__inactivity=20)


def test_discovery_lists_the_services_and_the_actions_sorted(manager):
    manager.actions.register("zeta")(lambda asked: None)
    manager.actions.register("alpha/one")(lambda asked: None)
    client = session(manager)
    status, body = answer(manager.handle(request("GET", "/?", session=client)))
    assert status == 200
    assert body["Services"] == ["gpio", "events", "alpha/one", "zeta"]  # no `uploads`: no files
    assert (body["ID"], body["Simulated"], body["Timeout"], body["Session"]) == (
        "bench-7",
        True,
        20,
        client.id,
    )
    assert body["HTTaP_version"] == "1.0" and body["Serial"] == []


def test_ping_says_what_remains_of_the_inactivity_timeout(manager):
    client = session(manager)
    manager.loop.now = 7.5  # the session's last activity was at 0
    assert answer(manager.handle(request("GET", "/?ping", session=client))) == (
        200,
        {"Remain": 12.5, "Timeout": 20},
    )
    manager.loop.now = 99
    assert answer(manager.handle(request("GET", "/?ping", session=client)))[1]["Remain"] == 0


def test_stats_count_requests_and_connections():
    manager = build()
    opened = [session(manager, f"10.0.0.{n}") for n in range(5)]
    for closed in opened[:3]:
        manager.status.sessions.close(closed)
    manager.handle(request("GET", "/?gpio"))
    body = answer(manager.handle(request("GET", "/?stats")))[1]
    assert body["requests"] == 2 and body["connections"] == {"open": 2, "accepted": 5}
    assert "auth" not in body and body["uptime"] == 0
    collector = body["gc"]
    assert len(collector["collections"]) == 3 and collector["frozen"] >= 0
    assert collector["collections"][0] >= collector["collections"][1] >= 0


@pytest.mark.parametrize("body", [{"mode": "fast"}, {}, ["spin"], "spin"])
def test_the_loop_mode_takes_sleep_or_spin(manager, body):
    status, reply = answer(manager.handle(request("POST", "/?loop", body)))
    assert (status, reply["error"]) == (400, "bad-value") and manager.loop.mode == "sleep"


def test_setting_the_loop_mode_is_a_change(manager):
    change = manager.status.loop_mode(request("POST", "/?loop", {"mode": "spin"}), None)
    assert isinstance(change, Change) and manager.loop.mode == "sleep"
    assert change.make() == {"mode": "spin"} and manager.loop.mode == "spin"
    assert answer(manager.handle(request("GET", "/?loop"))) == (200, {"mode": "spin"})
