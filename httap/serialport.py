"""Serial ports (pyserial) as selectable resources of the loop.

pyserial opens and configures the device; after that the loop does the I/O. The port's
file descriptor sits in the loop's selector, so a byte that arrives wakes the loop like
a request does, and nothing ever waits in a system call: no threads, no timeouts inside
pyserial.

- Received bytes go into a bounded buffer (`serial.NAME.buffer`). On overflow the
  oldest bytes go and are counted; the count is handed to the next read, which reports
  it, so no byte is lost silently.
- A `Job` is one request's work on a port: bytes to write, then maybe a reply to read.
  Writes leave in the order the jobs were submitted; reads are served in order too,
  each taking its bytes from the buffer when it reaches the head of the queue.
- A port that cannot be opened, or that fails while open (an I/O error, or end of file
  when a USB adapter is pulled out), is closed and reopened with back-off through loop
  timers. Meanwhile its jobs finish with `error` set, and the rest of the server goes on.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from typing import Any, Callable, Optional

from httap.config import SerialConfig
from httap.loop import READ, WRITE, Handle, Loop

log = logging.getLogger("httap.serial")

RETRY_FIRST = 0.5  # seconds before the first attempt to reopen a lost port
RETRY_MAX = 8.0  # the back-off doubles up to this
READ_SIZE = 65536


class Job:
    """One request's work on a port: write `data`, then, if `reads`, read a reply.

    A read is satisfied by the first `until` (returned with it), by `count` bytes, or,
    with neither, by any byte at all. After `wait` seconds it takes what is there
    instead (at most `count` bytes) and is marked `timed_out`.
    """

    def __init__(
        self,
        data: bytes = b"",
        reads: bool = True,
        until: Optional[bytes] = None,
        count: Optional[int] = None,
        wait: float = 0.0,
    ) -> None:
        self.data = data
        self.reads = reads
        self.until = until
        self.count = count
        self.wait = wait
        self.left = memoryview(data)  # what is still to be written
        self.received = b""
        self.timed_out = False
        self.dropped = 0  # bytes the buffer dropped before this read took its bytes
        self.error: Optional[str] = None
        self.expired = wait <= 0
        self.timer: Optional[Handle] = None
        self.done: Callable[[Job], Any] = lambda job: None
        self.cancelled = False

    @property
    def written(self) -> int:
        return len(self.data) - len(self.left)

    def take(self, buffer: bytearray) -> Optional[bytes]:
        """The bytes this read takes from `buffer` now, or None if it must wait more."""
        end = None
        if self.until is not None:
            found = buffer.find(self.until)
            if found >= 0:
                end = found + len(self.until)
        if self.count is not None and len(buffer) >= self.count:
            end = self.count if end is None else min(end, self.count)
        if end is None and self.until is None and self.count is None and buffer:
            end = len(buffer)
        if end is None:
            if not self.expired:
                return None
            self.timed_out = True
            end = len(buffer) if self.count is None else min(len(buffer), self.count)
        data = bytes(buffer[:end])
        del buffer[:end]
        return data


class SerialPort:
    """One configured port in the loop. `url` is where it is opened: the configured
    `port`, which an application may point elsewhere before the server starts (the scpi
    example points it at its simulated instrument)."""

    def __init__(self, name: str, config: SerialConfig, loop: Loop) -> None:
        self.name = name
        self.config = config
        self.url = config.port
        self.loop = loop
        self.device: Optional[Any] = None  # a pyserial port
        self.fd = -1
        self.events = 0
        self.received = bytearray()
        self.dropped = 0
        self.writing: deque[Job] = deque()
        self.reading: deque[Job] = deque()
        self.problem = "not opened yet"
        self.delay = RETRY_FIRST
        self.retry: Optional[Handle] = None

    # -- opening, losing and reopening ---------------------------------------------

    def start(self) -> None:
        """Open the port at start-up. A device that is absent is not fatal: its requests
        get 503 while the server keeps trying to open it."""
        error = self._open()
        if error is not None:
            log.warning("serial %s: %s; retrying until it appears", self.name, error)
            self._unavailable(error)

    def _open(self) -> Optional[str]:
        """Open and register the device; the reason it failed, or None."""
        import serial  # here, not at the top: a server without ports never loads pyserial

        settings = self.config
        try:
            device = serial.serial_for_url(
                self.url,
                baudrate=settings.baudrate,
                bytesize=settings.bytesize,
                parity=settings.parity,
                stopbits=settings.stopbits,
                timeout=0,
                write_timeout=0,
            )
        except (OSError, ValueError) as err:  # SerialException is an OSError
            return f"cannot open {self.url}: {err}"
        try:
            fd = device.fileno()
        except (AttributeError, OSError):
            device.close()
            return f"{self.url} has no file descriptor for the loop to watch"
        os.set_blocking(fd, False)
        try:
            self.loop.register(fd, READ, self)
        except ValueError as err:  # e.g. a descriptor beyond select()
            device.close()
            return f"{self.url} cannot be watched by the loop: {err}"
        self.device, self.fd, self.delay = device, fd, RETRY_FIRST
        self.events = READ
        log.info("serial %s: open on %s at %d baud", self.name, self.url, settings.baudrate)
        return None

    def _retry(self) -> None:
        self.retry = None
        error = self._open()
        if error is not None:
            log.debug("serial %s: %s", self.name, error)
            self.delay = min(self.delay * 2, RETRY_MAX)
            self._unavailable(error)

    def _lost(self, reason: str) -> None:
        """The open device failed: close it, fail what waits on it, and reopen it later.
        Bytes still buffered are counted as dropped: they belong to a session with the
        device that has ended."""
        log.warning("serial %s: %s; closed, retrying", self.name, reason)
        self._close_device()
        self.dropped += len(self.received)
        self.received.clear()
        self._unavailable(reason)

    def _unavailable(self, reason: str) -> None:
        self.problem = reason
        jobs = [*self.writing, *self.reading]
        self.writing.clear()
        self.reading.clear()
        for job in jobs:
            self._finish(job, reason)
        if self.retry is not None:  # one retry at a time, or the device opens twice
            self.retry.cancel()
        self.retry = self.loop.call_later(self.delay, self._retry)

    def _close_device(self) -> None:
        if self.device is None:
            return
        self.loop.unregister(self.fd)
        try:
            self.device.close()
        except OSError:  # pyserial's SerialException is one
            pass  # it is gone already
        self.device, self.fd, self.events = None, -1, 0

    @property
    def is_open(self) -> bool:
        return self.device is not None

    # -- jobs ----------------------------------------------------------------------

    def submit(self, job: Job, done: Callable[[Job], Any]) -> None:
        """Start `job`; `done(job)` is called when it is over, maybe before this returns.
        On a port that is not open the job ends at once with `error` set."""
        job.done = done
        if self.device is None:
            self._finish(job, self.problem)
        elif job.data:
            self.writing.append(job)
            self._flush()
        else:
            self._start_read(job)

    def cancel(self, job: Job) -> None:
        """Nobody waits for `job` any more. Its bytes still go out (a command cut short
        would confuse the device), but its read gives up its place."""
        job.cancelled = True
        if job in self.reading:
            self.reading.remove(job)
            if job.timer is not None:
                job.timer.cancel()
            self._serve()

    def stop(self) -> None:
        """The server is stopping: every waiting read answers now with what is there."""
        for job in self.reading:
            job.expired = True
        self._serve()

    def close(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        self._close_device()

    def _start_read(self, job: Job) -> None:
        if job.cancelled:
            return
        if not job.reads:
            self._finish(job)
            return
        if not job.expired:
            job.timer = self.loop.call_later(job.wait, lambda: self._expire(job))
        self.reading.append(job)
        self._serve()

    def _expire(self, job: Job) -> None:
        job.expired = True
        self._serve()

    def _serve(self) -> None:
        """Answer the reads at the head of the queue that can be answered now."""
        while self.reading:
            job = self.reading[0]
            data = job.take(self.received)
            if data is None:
                return
            self.reading.popleft()
            job.received = data
            job.dropped, self.dropped = self.dropped, 0
            self._finish(job)

    def _finish(self, job: Job, error: Optional[str] = None) -> None:
        if job.timer is not None:
            job.timer.cancel()
        job.error = error
        if not job.cancelled:
            job.done(job)

    # -- I/O -----------------------------------------------------------------------

    def on_event(self, mask: int) -> None:
        if mask & READ:
            self._receive()
        if mask & WRITE and self.device is not None:
            self._flush()

    def abort(self) -> None:
        """The loop calls this when `on_event` raised: treat the port as lost."""
        self._lost("internal error while serving the port; see the log")

    def _receive(self) -> None:
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as err:
            self._lost(f"read failed: {err.strerror or err}")
            return
        if not data:
            self._lost("the device has gone (end of file)")
            return
        buffer = self.received
        buffer += data
        excess = len(buffer) - self.config.buffer
        if excess > 0:
            del buffer[:excess]
            self.dropped += excess
        self._serve()

    def _flush(self) -> None:
        """Write the queued bytes in order, as far as the device takes them now."""
        while self.writing:
            job = self.writing[0]
            try:
                written = os.write(self.fd, job.left)
            except BlockingIOError:
                break
            except OSError as err:
                self._lost(f"write failed: {err.strerror or err}")
                return
            job.left = job.left[written:]
            if job.left:
                break
            self.writing.popleft()
            self._start_read(job)
        events = READ | WRITE if self.writing else READ
        if events != self.events:
            self.events = events
            self.loop.modify(self.fd, events, self)
