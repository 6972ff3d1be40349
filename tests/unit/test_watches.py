"""Watches (httap/watches.py): long-polls woken by the change source, and the sampler."""

from __future__ import annotations

import pytest

from gpio import GpioError
from gpio.sim import SimBackend
from httap.pins import Pins
from httap.watches import Watches
from tests.helpers.domain import BUTTON, settings

INTERVAL = 0.001


@pytest.fixture
def pins(manual_loop) -> Pins:
    """The PINS on a simulated board without edge descriptors: its inputs are sampled,
    as RPi.GPIO's are (the edge path has its own tests below)."""
    return Pins(settings().gpio.pins, SimBackend(clock=manual_loop.clock, edges=False), manual_loop)


@pytest.fixture
def watches(pins, manual_loop) -> Watches:
    return Watches(pins, manual_loop, INTERVAL)


def waiter(ends: list, label: str):
    return lambda timed_out, error: ends.append((label, timed_out, error))


def test_a_write_of_another_level_wakes_a_watch_and_the_same_level_does_not(pins, watches):
    led = pins.find("led")
    ends: list = []
    watches.watch(led, 0, 0, 5, waiter(ends, "led"))
    pins.set(led, 0, None)
    assert ends == []
    pins.set(led, 1, None)
    assert ends == [("led", False, None)]
    assert watches.watched == {} and watches.sampler is None and led.watchers == []


def test_a_watch_times_out_at_its_wait(pins, watches, manual_loop):
    ends: list = []
    watches.watch(pins.find("led"), 0, 0, 2.5, waiter(ends, "led"))
    manual_loop.advance(2.4)
    assert ends == []
    manual_loop.advance(0.1)
    assert ends == [("led", True, None)]
    assert manual_loop.pending == 0  # the sampler stopped with the last watch


def test_the_sampler_announces_an_unannounced_change_to_every_listener(pins, watches, manual_loop):
    heard = []
    pins.subscribe(lambda change: heard.append((change.pin.name, change.level)))
    button = pins.find("button")
    ends: list = []
    watches.watch(button, 1, 1, 5, waiter(ends, "button"))
    pins.backend.drive(BUTTON, 0)  # the real wire: nobody announces it
    assert ends == []
    manual_loop.advance(INTERVAL)
    assert ends == [("button", False, None)] and heard == [("button", 0)]


def test_a_later_watch_does_not_hide_a_change_from_an_earlier_one(pins, watches, manual_loop):
    """The level the sampler compares with is set by the first watch of a pin only: the
    second, started after an unannounced change, must not make the sampler miss it."""
    button = pins.find("button")
    ends: list = []
    watches.watch(button, 1, 1, 5, waiter(ends, "first"))
    pins.backend.drive(BUTTON, 0)
    watches.watch(button, 0, 0, 5, waiter(ends, "second"))
    manual_loop.advance(INTERVAL)
    assert ends == [("first", False, None)]
    assert [watch.value for watch in button.watchers] == [0]


def test_a_board_that_fails_a_read_ends_the_watches_at_once(pins, watches, manual_loop):
    ends: list = []
    watches.watch(pins.find("button"), 1, 1, 5, waiter(ends, "button"))
    del pins.backend.pins[BUTTON]  # the line is gone: the board refuses the read
    manual_loop.advance(INTERVAL)
    ((label, timed_out, error),) = ends
    assert (label, timed_out) == ("button", False) and isinstance(error, GpioError)
    assert watches.sampler is None


def test_a_dropped_watch_never_ends_and_stopping_ends_the_others(pins, watches, manual_loop):
    ends: list = []
    dropped = watches.watch(pins.find("led"), 0, 0, 5, waiter(ends, "dropped"))
    watches.watch(pins.find("button"), 1, 1, 5, waiter(ends, "kept"))
    watches.drop(dropped)
    pins.set(pins.find("led"), 1, None)
    watches.stop()
    assert ends == [("kept", True, None)]
    manual_loop.advance(10)
    assert ends == [("kept", True, None)] and manual_loop.pending == 0


def test_followers_have_every_input_sampled_from_its_level_now(pins, watches, manual_loop):
    heard = []
    pins.subscribe(lambda change: heard.append((change.pin.name, change.level, change.kind)))
    pins.backend.drive(BUTTON, 0)  # before anyone follows: not announced as new
    watches.follow()
    watches.follow()
    assert watches.sampler is not None and list(watches.followed) == [BUTTON]
    manual_loop.advance(INTERVAL)
    assert heard == []
    pins.backend.drive(BUTTON, 1)  # the wire, unannounced
    manual_loop.advance(INTERVAL)
    assert heard == [("button", 1, "input")]
    watches.unfollow()
    assert watches.sampler is not None  # one follower is left
    watches.unfollow()
    assert watches.sampler is None and watches.followed == {}


def test_a_watch_on_a_followed_input_does_not_hide_a_change_not_yet_sampled(
    pins, watches, manual_loop
):
    heard = []
    pins.subscribe(lambda change: heard.append((change.pin.name, change.level)))
    watches.follow()
    pins.backend.drive(BUTTON, 0)
    watches.watch(pins.find("button"), 0, 0, 5, waiter([], "button"))  # reads 0 first
    manual_loop.advance(INTERVAL)
    assert heard == [("button", 0)]  # the sampler still announces it


# -- kernel edge events, by descriptor -------------------------------------------------


@pytest.fixture
def edge_pins(manual_loop):
    """The PINS on a simulated board whose inputs give edges on a descriptor (a pipe),
    as libgpiod's line requests do; its pipes are closed at the end."""
    made = Pins(settings().gpio.pins, SimBackend(clock=manual_loop.clock), manual_loop)
    yield made
    made.backend.close()


def test_an_edge_is_announced_from_its_descriptor_at_the_kernels_time(edge_pins, manual_loop):
    watches = Watches(edge_pins, manual_loop, INTERVAL)
    heard = []
    edge_pins.subscribe(lambda change: heard.append((change.pin.name, change.level, change.time)))
    button = edge_pins.find("button")
    ends: list = []
    watches.watch(button, 1, 1, 5, waiter(ends, "button"))
    assert watches.sampler is None  # the kernel tells: nothing to sample
    manual_loop.now = 2.5
    edge_pins.backend.drive(BUTTON, 0)  # the real wire: only the descriptor tells
    manual_loop.now = 3.0  # the loop notices later than the edge happened
    assert ends == [] and manual_loop.ready() == 1
    assert ends == [("button", False, None)]
    assert heard == [("button", 0, edge_pins.backend.wall(2_500_000_000))]
    assert heard[0][2] == pytest.approx(2.5 + edge_pins.backend.epoch)
    assert watches.stats() == {"edges": 1, "lost": 0, "sampled": 0}
    assert manual_loop.ready() == 0  # read once


def test_lost_edges_are_counted_and_the_level_is_right(edge_pins, manual_loop):
    watches = Watches(edge_pins, manual_loop, INTERVAL)
    heard = []
    edge_pins.subscribe(lambda change: heard.append(change.level))
    for n in range(20):  # faster than the loop reads: the kernel keeps the last 16
        manual_loop.now += 0.001
        edge_pins.backend.drive(BUTTON, n % 2)
    manual_loop.ready()
    assert watches.stats() == {"edges": 16, "lost": 4, "sampled": 0}
    assert heard == [0, 1] * 8  # every edge kept is one change, in order
    assert edge_pins.find("button").level == edge_pins.backend.read(BUTTON) == 1


def test_streams_need_no_sampler_for_inputs_with_edges(edge_pins, manual_loop):
    watches = Watches(edge_pins, manual_loop, INTERVAL)
    watches.follow()
    assert watches.sampler is None and watches.followed == {}
    heard = []
    edge_pins.subscribe(lambda change: heard.append(change.level))
    edge_pins.backend.drive(BUTTON, 0)
    manual_loop.ready()
    assert heard == [0]
    watches.unfollow()


def test_stopping_takes_the_descriptors_out_of_the_loop(edge_pins, manual_loop):
    watches = Watches(edge_pins, manual_loop, INTERVAL)
    assert len(manual_loop.selector.get_map()) == 1  # the button's
    watches.stop()
    assert len(manual_loop.selector.get_map()) == 0


def test_a_board_that_fails_to_give_edges_ends_the_watches_and_samples(edge_pins, manual_loop):
    watches = Watches(edge_pins, manual_loop, INTERVAL)
    button = edge_pins.find("button")
    ends: list = []
    watches.watch(button, 1, 1, 5, waiter(ends, "button"))
    edge_pins.backend.unplug(BUTTON)  # the line is gone: its descriptor wakes, reads fail
    manual_loop.ready()
    ((label, timed_out, error),) = ends
    assert (label, timed_out) == ("button", False)
    assert f"GPIO {BUTTON} has not been set up" in str(error)
    assert watches.readers == {} and len(manual_loop.selector.get_map()) == 0
