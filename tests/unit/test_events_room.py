"""The events room's history (httap/manager/events.py): what a stream that resumes is
replayed, on one manager built without a server."""

from __future__ import annotations

import json

from httap.manager.events import TYPES
from tests.helpers.domain import LED, build


def replayed(events, after: int) -> list[tuple[str, dict]]:
    """The (type, data) of each event replayed to a stream resuming after id `after`."""
    text = events._replay(str(after), frozenset(TYPES), None).decode()
    frames = [block.split("\n") for block in text.split("\n\n") if block]
    return [(lines[1][len("event: ") :], json.loads(lines[2][len("data: ") :])) for lines in frames]


def test_changes_nobody_heard_are_replayed_as_they_were():
    manager = build()
    events, pins = manager.events, manager.pins
    start = events.last_id
    led = pins.find("led")
    for level in (1, 0, 1):
        pins.set(led, level, None)
    assert [(kind, data["value"], data["gpio"]) for kind, data in replayed(events, start)] == [
        ("gpio", 1, LED),
        ("gpio", 0, LED),
        ("gpio", 1, LED),
    ]


def test_an_app_event_says_its_data_as_published_not_as_changed_later():
    manager = build()
    events = manager.events
    start = events.last_id
    data = {"count": 1}
    events.publish("counter", data)
    data["count"] = 2  # the app goes on with its own object
    assert replayed(events, start) == [("app", {"name": "counter", "data": {"count": 1}})]
