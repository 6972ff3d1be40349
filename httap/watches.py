"""Watches on pins: long-polls, and the sampler that finds the changes nobody announces.

Rules of this file:
- A watch waits for its pin's level to leave the value it expects, or for its time to
  run out; it ends once, and tells its owner through `done(timed_out, error)`. What the
  owner answers (a reply, later an event) is not known here.
- Watches listen to the change source (`Pins.changed`): a write, a pulse, a safe value,
  the app or a simulated wire wakes them at once.
- An input changed by its real wire announces nothing: while a pin is watched, the
  sampler reads it every `gpio.sample_interval` seconds and announces what changed to
  the change source, which every listener then hears. While anyone `follow`s (an event
  stream is open), every input is read so. The sampler runs only while something is
  watched or followed. (Kernel edge events, by fd, will come here.)
- A board that fails a read ends that pin's watches with the error at once, not on
  every tick.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from gpio import GpioError
from httap.pins import Change, Pin, Pins

log = logging.getLogger("httap.watches")

Done = Callable[[bool, Optional[GpioError]], Any]  # done(timed_out, error)


class Watch:
    """One wait on `pin` for a level other than `value`."""

    __slots__ = ("done", "pin", "timer", "value")

    def __init__(self, pin: Pin, value: int, done: Done) -> None:
        self.pin = pin
        self.value = value
        self.done = done
        self.timer: Any = None


class Watches:
    """The watches on `pins`, timed by `loop` (call_later, every); the sampler reads
    every `interval` seconds while anything is watched."""

    def __init__(self, pins: Pins, loop: Any, interval: float) -> None:
        self.pins = pins
        self.loop = loop
        self.interval = interval
        self.watched: dict[int, Pin] = {}  # GPIO number -> a pin with watchers
        self.followers = 0  # how many follow every input (the event streams)
        self.followed: dict[int, Pin] = {}  # GPIO number -> an input read for them
        self.sampler: Any = None  # the loop's periodic task, while anything is watched
        pins.subscribe(self._changed)

    def watch(self, pin: Pin, value: int, current: int, wait: float, done: Done) -> Watch:
        """Wait up to `wait` seconds for `pin` to leave `value`; `current` is its level
        just read (it becomes the level the sampler compares with when nothing else
        watched the pin). `done` is called once, unless `drop` comes first."""
        watch = Watch(pin, value, done)
        watch.timer = self.loop.call_later(wait, lambda: self._end(watch, True))
        if not pin.watchers and pin.gpio not in self.followed:  # else the sampler has it
            pin.level = current
        pin.watchers.append(watch)
        self.watched[pin.gpio] = pin
        self._sampling()
        return watch

    def drop(self, watch: Watch) -> None:
        """Forget `watch` (ended, or its client went away); the sampler stops with the last."""
        watch.timer.cancel()
        pin = watch.pin
        if watch in pin.watchers:
            pin.watchers.remove(watch)
        if not pin.watchers:
            self.watched.pop(pin.gpio, None)
        self._sampling()

    def follow(self) -> None:
        """Have every input read by the sampler until `unfollow` (an event stream opens:
        it hears the inputs' changes). Each one starts from its level now, so that what
        changed before is not announced as new."""
        self.followers += 1
        if self.followers == 1:
            read = self.pins.backend.read
            for pin in self.pins.by_name.values():
                if pin.mode != "in":
                    continue
                try:
                    level = read(pin.gpio)
                except GpioError as err:
                    log.error(
                        "input %s cannot be read, so its changes are not heard: %s", pin.name, err
                    )
                    continue
                if not pin.watchers:
                    pin.level = level
                self.followed[pin.gpio] = pin
            self._sampling()

    def unfollow(self) -> None:
        """One follower less (its stream has ended); the last one stops the reading."""
        self.followers -= 1
        if not self.followers:
            self.followed.clear()
            self._sampling()

    def _sampling(self) -> None:
        """The sampler runs while a pin is watched or followed, and only then."""
        if self.watched or self.followed:
            if self.sampler is None:
                self.sampler = self.loop.every(self.interval, self._sample, name="gpio sampling")
        elif self.sampler is not None:
            self.sampler.cancel()
            self.sampler = None

    def stop(self) -> None:
        """The server stops: every watch ends now, as timed out."""
        for pin in list(self.watched.values()):
            for watch in list(pin.watchers):
                self._end(watch, True)

    def _end(self, watch: Watch, timed_out: bool, error: Optional[GpioError] = None) -> None:
        self.drop(watch)
        watch.done(timed_out, error)

    def _changed(self, change: Change) -> None:
        """The change source's listener: wake the watches that expected another level."""
        level = change.level
        if level is None:  # a new setting of a PWM wave: no level to compare
            return
        for watch in list(change.pin.watchers):
            if watch.value != level:
                self._end(watch, False)

    def _sample(self) -> None:
        """Find input changes by reading the watched and followed pins (every
        `interval`), each once."""
        read = self.pins.backend.read
        changed = self.pins.changed
        watched = self.watched
        for pin in list(watched.values()):
            try:
                level = read(pin.gpio)
            except GpioError as err:  # end its watches now, not on every tick
                for watch in list(pin.watchers):
                    self._end(watch, False, err)
                continue
            if level != pin.level:
                changed(pin, level)
        for number, pin in list(self.followed.items()):
            if number in watched:
                continue
            try:
                level = read(number)
            except GpioError as err:  # say it once, then stop reading it for the streams
                log.error(
                    "input %s cannot be read, so its changes are not heard: %s", pin.name, err
                )
                del self.followed[number]
                self._sampling()
                continue
            if level != pin.level:
                changed(pin, level)
