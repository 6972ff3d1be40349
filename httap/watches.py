"""Watches on pins: long-polls, kernel edge events by descriptor, and the sampler that
finds the changes nobody announces.

Rules of this file:
- A watch waits for its pin's level to leave the value it expects, or for its time to
  run out; it ends once, and tells its owner through `done(timed_out, error)`. What the
  owner answers (a reply, later an event) is not known here.
- Watches listen to the change source (`Pins.changed`): a write, a pulse, a safe value,
  the app or a simulated wire wakes them at once.
- An input whose board gives a descriptor (`Backend.watch`: libgpiod's line request,
  the simulated board's pipe) is heard by the kernel: the descriptor sits in the
  loop's selector from start to stop, and each edge read from it (`Backend.edges`) is
  announced with the kernel's timestamp as its time, whether anyone watches or not.
  The kernel keeps 16 edges per line and drops the oldest: a jump in the edges'
  sequence numbers is counted as lost (`/?stats` gpio.lost) and the level is read
  again, so that what the pin is now is never lost, only some of how it got there.
- An input without one (RPi.GPIO) announces nothing by itself: while such a pin is
  watched, the sampler reads it every `gpio.sample_interval` seconds and announces
  what changed to the change source, which every listener then hears. While anyone
  `follow`s (an event stream is open), every such input is read so. The sampler runs
  only while one of them is watched or followed.
- A board that fails a read ends that pin's watches with the error at once, not on
  every tick.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

from gpio import GpioError
from httap.pins import INPUT, Change, Pin, Pins

log = logging.getLogger("httap.watches")

READ = 1  # selectors.EVENT_READ
KERNEL_EVENTS = 16  # edges the kernel keeps per line (drivers/gpio/gpiolib-cdev.c)

Done = Callable[[bool, Optional[GpioError]], Any]  # done(timed_out, error)


class Watch:
    """One wait on `pin` for a level other than `value`."""

    __slots__ = ("done", "pin", "timer", "value")

    def __init__(self, pin: Pin, value: int, done: Done) -> None:
        self.pin = pin
        self.value = value
        self.done = done
        self.timer: Any = None


class EdgeReader:
    """One input's edge descriptor in the loop's selector: `on_event` reads its edges.
    `seqno` is the sequence number of the last edge read (the kernel's start at 1)."""

    __slots__ = ("fd", "pin", "seqno", "watches")

    def __init__(self, watches: Watches, pin: Pin, fd: int) -> None:
        self.watches = watches
        self.pin = pin
        self.fd = fd
        self.seqno = 0

    def on_event(self, mask: int) -> None:
        self.watches._read_edges(self)


class Watches:
    """The watches on `pins`, timed by `loop` (call_later, every, register); each input
    with an edge descriptor is in the loop's selector; the sampler reads the others
    every `interval` seconds while one is watched or followed."""

    def __init__(self, pins: Pins, loop: Any, interval: float) -> None:
        self.pins = pins
        self.loop = loop
        self.interval = interval
        self.watched: dict[int, Pin] = {}  # GPIO number -> a pin with watchers
        self.followers = 0  # how many follow every input (the event streams)
        self.followed: dict[int, Pin] = {}  # GPIO number -> an input read for them
        self.sampler: Any = None  # the loop's periodic task, while anything is watched
        self.readers: dict[int, EdgeReader] = {}  # GPIO number -> its edge descriptor
        self.edges = 0  # edges read from the descriptors
        self.lost = 0  # edges the kernel dropped before they were read
        pins.subscribe(self._changed)
        for pin in pins.by_name.values():
            if pin.mode == "in":
                self._listen(pin)

    def _listen(self, pin: Pin) -> None:
        """Put the input's edge descriptor, if its board has one, in the selector."""
        backend = self.pins.backend
        try:
            fd = backend.watch(pin.gpio)
            if fd is None:
                return
            pin.level = backend.read(pin.gpio)
        except GpioError as err:
            log.error("input %s gives no edges, it is sampled when watched: %s", pin.name, err)
            return
        reader = EdgeReader(self, pin, fd)
        try:
            self.loop.register(fd, READ, reader)
        except ValueError as err:  # beyond what select() can watch
            log.error("input %s: its edges cannot be watched, it is sampled: %s", pin.name, err)
            return
        self.readers[pin.gpio] = reader

    def stats(self) -> dict:
        """What `/?stats` says of the inputs: {"edges": read from the kernel, "lost":
        dropped by it before they were read, "sampled": how many inputs the sampler
        reads now}."""
        sampled = {n for n in self.watched if n not in self.readers} | set(self.followed)
        return {"edges": self.edges, "lost": self.lost, "sampled": len(sampled)}

    def watch(self, pin: Pin, value: int, current: int, wait: float, done: Done) -> Watch:
        """Wait up to `wait` seconds for `pin` to leave `value`; `current` is its level
        just read (it becomes the level the sampler compares with when nothing else
        watched the pin). `done` is called once, unless `drop` comes first."""
        watch = Watch(pin, value, done)
        watch.timer = self.loop.call_later(wait, lambda: self._end(watch, True))
        if not pin.watchers and pin.gpio not in self.followed and pin.gpio not in self.readers:
            pin.level = current  # else the sampler, or the edges, keep it
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
                if pin.mode != "in" or pin.gpio in self.readers:  # the kernel tells of these
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
        """The sampler runs while a pin without edges is watched or followed, and only then."""
        readers = self.readers
        if self.followed or any(number not in readers for number in self.watched):
            if self.sampler is None:
                self.sampler = self.loop.every(
                    self.interval, self._sample, name="gpio sampling", internal=True
                )
        elif self.sampler is not None:
            self.sampler.cancel()
            self.sampler = None

    def stop(self) -> None:
        """The server stops: every watch ends now, as timed out, and the edge
        descriptors leave the selector (the board closes them)."""
        for pin in list(self.watched.values()):
            for watch in list(pin.watchers):
                self._end(watch, True)
        for number in list(self.readers):
            self.loop.unregister(self.readers.pop(number).fd)

    def _read_edges(self, reader: EdgeReader) -> None:
        """The input's descriptor is readable: announce each edge that changes its
        level, at the kernel's time; after a gap in the sequence numbers, count what
        was lost and announce the level read now if it differs."""
        pin = reader.pin
        backend = self.pins.backend
        try:
            edges = backend.edges(pin.gpio)
        except GpioError as err:  # say it once; its watches end, it is sampled from now
            log.error(
                "input %s: its edges cannot be read, it is sampled instead: %s", pin.name, err
            )
            self.loop.unregister(self.readers.pop(pin.gpio).fd)
            for watch in list(pin.watchers):
                self._end(watch, False, err)
            return
        changed = self.pins.changed
        gap = False
        for edge in edges:
            seqno = edge.seqno
            if seqno is not None:
                if seqno != reader.seqno + 1:
                    self.lost += max(0, seqno - reader.seqno - 1)
                    gap = True
                reader.seqno = seqno
            if edge.level != pin.level:
                changed(pin, edge.level, INPUT, when=backend.wall(edge.ns))
        self.edges += len(edges)
        if gap or (len(edges) >= KERNEL_EVENTS and edges[-1].seqno is None):
            try:
                level = backend.read(pin.gpio)
            except GpioError as err:
                log.error("input %s cannot be read after lost edges: %s", pin.name, err)
                return
            if level != pin.level:
                changed(pin, level, INPUT)

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
        readers = self.readers
        for pin in list(watched.values()):
            if pin.gpio in readers:  # the kernel tells of its changes
                continue
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
