"""Serial ports (pyserial) as selectable resources of the loop.

pyserial opens and configures the device; after that the loop does the I/O. The port's
file descriptor sits in the loop's selector, so a byte that arrives wakes the loop like
a request does, and its I/O never waits in a system call: no threads, no timeouts
inside pyserial.

Opening never blocks the loop either:
- A device path (or pyserial's `spy://`, `alt://`, `hwgrep://`, which name one) is
  opened by pyserial with O_NONBLOCK, so it does not wait for a carrier; configuring it
  is a few ioctls that do not wait. A port that is lost has its unsent output discarded
  before it is closed: Linux waits up to `closing_wait` (30 s by default) for a stalled
  line to drain on close (drivers/tty/tty_port.c, tty_port_close_start).
- `socket://HOST:PORT` is connected here, not by pyserial, whose `open()` waits up to
  5 s in a blocking connect and whose `close()` sleeps 0.3 s: each attempt is a
  non-blocking connect that the loop watches (`Dial`), bounded by CONNECT_TIMEOUT. An
  address is used as it is; a host name is looked up off the loop, by a thread that
  does nothing but `getaddrinfo()` (`Dialer`; the MQTT bridge dials its broker with it
  too), one at a time per port, and the same deadline bounds it.
- pyserial's other URLs (`rfc2217://`, `loop://`, `cp2110://`) connect with blocking
  calls or serve their bytes from a thread, without a descriptor for the loop: they
  are refused at start-up.

- Received bytes go into a bounded buffer (`serial.NAME.buffer`). On overflow the
  oldest bytes go and are counted; the count is handed to the next read, which reports
  it, so no byte is lost silently. When bytes arrive and stay there (no waiting read
  took them), the port's `on_arrival` listeners hear it (the event streams).
- A `Job` is one request's work on a port: bytes to write, then maybe a reply to read.
  Writes leave in the order the jobs were submitted; reads are served in order too,
  each taking its bytes from the buffer when it reaches the head of the queue.
- A port that cannot be opened, or that fails while open (an I/O error, or end of file
  when a USB adapter is pulled out), is closed and reopened with back-off through loop
  timers. Meanwhile its jobs finish with `error` set, and the rest of the server goes on.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import termios
import threading
from collections import deque
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from httap.config import SerialConfig
from httap.loop import READ, WRITE, Handle, Loop

log = logging.getLogger("httap.serial")

RETRY_FIRST = 0.5  # seconds before the first attempt to reopen a lost port
RETRY_MAX = 8.0  # the back-off doubles up to this
READ_SIZE = 65536
CONNECT_TIMEOUT = 5.0  # seconds for one attempt on socket://HOST:PORT, lookup included
DEVICE_SCHEMES = ("alt", "hwgrep", "spy")  # pyserial URLs that open a device path
AddressInfo = tuple  # one entry of socket.getaddrinfo(): (family, type, proto, name, address)


def endpoint(url: str) -> Optional[tuple[str, int]]:
    """(host, port) of a `socket://HOST:PORT` URL; None for a device path or a pyserial
    URL that names one (DEVICE_SCHEMES). ValueError, saying what to use, for a URL the
    loop cannot serve without blocking, or a malformed socket:// URL."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() in DEVICE_SCHEMES:
        return None
    if scheme.lower() != "socket":
        raise ValueError(
            f"{url!r}: pyserial's {scheme}:// blocks or needs a thread, which the loop does"
            " not allow; use a device path or socket://HOST:PORT"
        )
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number, or beyond 65535
        port = None
    if not parts.hostname or not port or parts.username or parts.path.strip("/") or parts.query:
        raise ValueError(
            f"{url!r} is not socket://HOST:PORT (a host name or address, then a TCP port"
            " from 1 to 65535, with no path or options)"
        )
    return parts.hostname, port


def numeric_addresses(host: str, port: int) -> Optional[list[AddressInfo]]:
    """The addresses of `host` when it is an IP address (no lookup: AI_NUMERICHOST);
    None when it is a name, to be looked up off the loop."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None


class Dial:
    """One attempt to connect to HOST:PORT without blocking the loop.

    Given the host's addresses (`addresses`), it tries each in turn with a non-blocking
    connect that the loop watches; the whole attempt, the name lookup included, is
    bounded by `timeout` seconds. `done(sock, None)` with a connected non-blocking socket,
    or `done(None, why)`, is called once; after `cancel()`, never.
    """

    def __init__(
        self,
        loop: Loop,
        host: str,
        port: int,
        done: Callable[[Optional[socket.socket], Optional[str]], Any],
        timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.where = f"{host}:{port}"
        self.done = done
        self.sock: Optional[socket.socket] = None  # the connect under way
        self.waiting: Optional[deque[AddressInfo]] = None  # addresses not tried yet
        self.error = f"no address for {self.where}"  # why the last address failed
        self.finished = False
        silence = f"no answer from {self.where} within {timeout:g} s"
        self.timer = loop.call_later(timeout, lambda: self._end(None, silence))

    def addresses(self, found: Union[list[AddressInfo], OSError]) -> None:
        """The host's addresses, or why they could not be found; only the first call counts."""
        if self.finished or self.waiting is not None:
            return
        if isinstance(found, OSError):
            self._end(None, f"cannot look up {self.where}: {found.strerror or found}")
            return
        self.waiting = deque(found)
        self._next()

    def _next(self) -> None:
        """Start a connect to the next address; done(None, ...) when none is left."""
        while self.waiting:
            family, kind, proto, _, address = self.waiting.popleft()
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as err:  # e.g. out of descriptors
                self.error = f"cannot connect to {self.where}: {err.strerror or err}"
                continue
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code == 0:
                self._end(sock, None)
                return
            if code != errno.EINPROGRESS:
                self.error = f"cannot connect to {self.where}: {os.strerror(code)}"
            else:
                try:
                    self.loop.register(sock, WRITE, self)
                except ValueError as err:  # a descriptor beyond select()
                    self.error = f"cannot watch a connect to {self.where}: {err}"
                else:
                    self.sock = sock
                    return
            sock.close()
        self._end(None, self.error)

    def on_event(self, mask: int) -> None:
        """The connect under way has finished (the socket is writable): how?"""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.loop.unregister(sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._end(sock, None)
            return
        sock.close()
        self.error = f"cannot connect to {self.where}: {os.strerror(code)}"
        self._next()

    def abort(self) -> None:
        """The loop calls this when `on_event` raised."""
        self._end(None, "internal error while connecting; see the log")

    def cancel(self) -> None:
        """Give up, without calling `done`."""
        self.finished = True
        self._release()

    def _release(self) -> None:
        self.timer.cancel()
        if self.sock is not None:
            self.loop.unregister(self.sock)
            self.sock.close()
            self.sock = None

    def _end(self, sock: Optional[socket.socket], error: Optional[str]) -> None:
        if self.finished:
            return
        self.finished = True
        self._release()
        self.done(sock, error)


class Dialer:
    """Dials HOST:PORT for one user (a serial port, the MQTT bridge), one `Dial` at a
    time, looking names up off the loop: an address is used as it is; a name is looked
    up by a thread that does nothing but `getaddrinfo()` (the C library has no
    non-blocking form; Python's asyncio does the same), one lookup at a time, whose
    answer goes to the latest attempt (a slow lookup that outlived an attempt answers the
    next one instead of a second thread being started)."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.looking_up = False  # a thread is looking a name up
        self.waiting: Optional[Dial] = None  # the attempt that waits for its answer

    def dial(
        self,
        host: str,
        port: int,
        done: Callable[[Optional[socket.socket], Optional[str]], Any],
        timeout: float = CONNECT_TIMEOUT,
    ) -> Dial:
        """A new attempt (a `Dial`, which calls `done` once) to connect to HOST:PORT
        within `timeout` seconds, the lookup included."""
        dialing = Dial(self.loop, host, port, done, timeout)
        found = numeric_addresses(host, port)
        if found is not None:
            dialing.addresses(found)
            return dialing
        self.waiting = dialing
        if not self.looking_up:  # else the lookup under way answers this attempt too
            self._look_up(host, port)
        return dialing

    def _look_up(self, host: str, port: int) -> None:
        """Look `host` up in a thread that does only that; the loop gets the answer."""
        self.looking_up = True
        loop = self.loop

        def look_up() -> None:
            try:
                found: Union[list[AddressInfo], OSError] = socket.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
            except OSError as err:  # socket.gaierror is one
                found = err
            loop.call_threadsafe(lambda: self._looked_up(found))

        threading.Thread(target=look_up, name=f"look up {host}", daemon=True).start()

    def _looked_up(self, found: Union[list[AddressInfo], OSError]) -> None:
        self.looking_up = False
        dialing, self.waiting = self.waiting, None
        if dialing is not None:
            dialing.addresses(found)


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
        self.opened = 0.0  # when the device was last opened (monotonic seconds)
        self.dialing: Optional[Dial] = None  # the attempt under way on socket://
        self.dialer = Dialer(loop)
        self._arrival: list[Callable[[SerialPort], Any]] = []

    def on_arrival(self, listener: Callable[[SerialPort], Any]) -> None:
        """Call `listener(port)` whenever bytes arrive and wait in `received`."""
        self._arrival.append(listener)

    # -- opening, losing and reopening ---------------------------------------------

    def start(self) -> None:
        """Open the port at start-up. A device that is absent is not fatal: its requests
        get 503 while the server keeps trying to open it. ValueError for a URL that the
        loop cannot serve (see `endpoint`)."""
        self._attempt(first=True)

    def _attempt(self, first: bool = False) -> None:
        """One attempt to open the device: a device path at once; socket:// through a
        Dial, which calls back when it is connected or has failed."""
        self.retry = None
        target = endpoint(self.url)
        if target is None:
            error = self._open_device()
            if error is not None:
                self._failed(error, first)
            return
        host, port = target
        log.debug("serial %s: connecting to %s", self.name, self.url)
        self.dialing = self.dialer.dial(
            host, port, lambda sock, error: self._dialed(sock, error, first)
        )

    def _dialed(self, sock: Optional[socket.socket], error: Optional[str], first: bool) -> None:
        self.dialing = None
        if sock is not None:
            error = self._watch(sock, sock.fileno())
        if error is not None:
            self._failed(error, first)

    def _failed(self, error: str, first: bool) -> None:
        """An attempt to open failed: say so (loudly the first time), and retry later."""
        if first:
            log.warning("serial %s: %s; retrying until it appears", self.name, error)
        else:
            log.debug("serial %s: %s", self.name, error)
            self.delay = min(self.delay * 2, RETRY_MAX)
        self._unavailable(error)

    def _open_device(self) -> Optional[str]:
        """Open a device path with pyserial and watch it; the reason it failed, or None."""
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
        return self._watch(device, fd)

    def _watch(self, device: Any, fd: int) -> Optional[str]:
        """Put an open device (a pyserial port, a socket) in the loop; why not, or None."""
        os.set_blocking(fd, False)
        try:
            self.loop.register(fd, READ, self)
        except ValueError as err:  # e.g. a descriptor beyond select()
            device.close()
            return f"{self.url} cannot be watched by the loop: {err}"
        self.device, self.fd, self.opened = device, fd, self.loop.clock()
        self.events = READ
        log.info("serial %s: open on %s at %d baud", self.name, self.url, self.config.baudrate)
        return None

    def _lost(self, reason: str) -> None:
        """The open device failed: close it, fail what waits on it, and reopen it later.
        Bytes still buffered are counted as dropped: they belong to a session with the
        device that has ended. A device lost soon after it opened (a bridge that accepts
        and hangs up at once) keeps backing off, instead of being reopened twice a
        second with two log lines each time."""
        log.warning("serial %s: %s; closed, retrying", self.name, reason)
        if self.loop.clock() - self.opened < RETRY_MAX:
            self.delay = min(self.delay * 2, RETRY_MAX)
        else:  # it had worked for a while: try again soon
            self.delay = RETRY_FIRST
        try:  # so that closing it does not wait for a stalled line to drain
            termios.tcflush(self.fd, termios.TCOFLUSH)
        except (termios.error, OSError):
            pass  # not a terminal (a socket), or gone already
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
        self.retry = self.loop.call_later(self.delay, self._attempt)

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
        if self.dialing is not None:
            self.dialing.cancel()
            self.dialing = None
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
        if buffer:
            for listener in self._arrival:
                listener(self)

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
