"""Watches on pins: long-polls, and the sampler that finds the changes nobody announces.

Rules of this file:
- A watch waits for its pin's level to leave the value it expects, or for its time to
  run out; it ends once, and tells its owner through `done(timed_out, error)`. What the
  owner answers (a reply, later an event) is not known here.
- Watches listen to the change source (`Pins.changed`): a write, a pulse, a safe value,
  the app or a simulated wire wakes them at once.
- An input changed by its real wire announces nothing: while a pin is watched, the
  sampler reads it every `gpio.sample_interval` seconds and announces what changed to
  the change source, which every listener then hears. The sampler runs only while
  something is watched. (Kernel edge events, by fd, will come here.)
- A board that fails a read ends that pin's watches with the error at once, not on
  every tick.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from gpio import GpioError
from httap.pins import Pin, Pins

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
        self.sampler: Any = None  # the loop's periodic task, while anything is watched
        pins.subscribe(self._changed)

    def watch(self, pin: Pin, value: int, current: int, wait: float, done: Done) -> Watch:
        """Wait up to `wait` seconds for `pin` to leave `value`; `current` is its level
        just read (it becomes the level the sampler compares with when nothing else
        watched the pin). `done` is called once, unless `drop` comes first."""
        watch = Watch(pin, value, done)
        watch.timer = self.loop.call_later(wait, lambda: self._end(watch, True))
        if not pin.watchers:
            pin.level = current
        pin.watchers.append(watch)
        self.watched[pin.gpio] = pin
        if self.sampler is None:
            self.sampler = self.loop.every(self.interval, self._sample, name="gpio sampling")
        return watch

    def drop(self, watch: Watch) -> None:
        """Forget `watch` (ended, or its client went away); the sampler stops with the last."""
        watch.timer.cancel()
        pin = watch.pin
        if watch in pin.watchers:
            pin.watchers.remove(watch)
        if not pin.watchers:
            self.watched.pop(pin.gpio, None)
        if not self.watched and self.sampler is not None:
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

    def _changed(self, pin: Pin, level: int) -> None:
        """The change source's listener: wake the watches that expected another level."""
        for watch in list(pin.watchers):
            if watch.value != level:
                self._end(watch, False)

    def _sample(self) -> None:
        """Find input changes by reading the watched pins (every `interval`)."""
        read = self.pins.backend.read
        for pin in list(self.watched.values()):
            try:
                level = read(pin.gpio)
            except GpioError as err:  # end its watches now, not on every tick
                for watch in list(pin.watchers):
                    self._end(watch, False, err)
                continue
            if level != pin.level:
                self.pins.changed(pin, level)
