"""Push latency: from a write's request to its event at a subscriber of `GET /?events`.

    python bench/push.py latency --port P [--count N]   # prints the figures as JSON (µs)
    python bench/push.py hold --port P [--count N]      # N idle subscribers, read until killed

`latency` keeps one subscriber (types=gpio) and one writer on kept-alive sockets
(TCP_NODELAY); it toggles the output `led` of bench/web-push.json5 one write at a time,
and times each from just before the request is sent to the moment the subscriber has
read the whole event (the event leaves before the write's reply). `hold` opens N
streams, prints "ready", and reads whatever comes on them until it is killed, so that
their events never pile up.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time

TIMEOUT = 5.0  # seconds one event or reply may take
PIN = "led"
EVENTS = "/?events&types=gpio"


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def subscribe(port: int) -> socket.socket:
    """A stream, its head and `state` read."""
    sock = connect(port)
    sock.sendall(f"GET {EVENTS} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    seen = b""
    while b"event: state" not in seen or not seen.endswith(b"\n\n\r\n"):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"the stream was refused or closed: {seen[:200]!r}")
        seen += data
    if not seen.startswith(b"HTTP/1.1 200 "):
        raise ConnectionError(f"the stream was refused: {seen[:200]!r}")
    return sock


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def latency(port: int, count: int) -> dict:
    """`count` writes, each timed until its event is read at the subscriber (µs)."""
    stream = subscribe(port)
    writer = connect(port)
    requests = [
        (
            f"POST /?gpio/{PIN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Length: 1\r\n\r\n{level}"
        ).encode()
        for level in (0, 1)
    ]
    writer.sendall(f"GET /?gpio/{PIN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    reply = b""
    while not reply.endswith(b"}"):
        reply += writer.recv(65536)
    level = json.loads(reply.split(b"\r\n\r\n", 1)[1])["value"]  # each write changes it
    reply = b""
    times = []
    try:
        for step in range(count + 1):  # the first one takes the lease: not timed
            level = 1 - level
            start = time.perf_counter()
            writer.sendall(requests[level])
            seen = b""
            while not seen.endswith(b"}\n\n\r\n"):  # the end of one gpio event's chunk
                data = stream.recv(65536)
                if not data:
                    raise ConnectionError("the stream ended")
                seen += data
            if step:
                times.append((time.perf_counter() - start) * 1e6)
            while reply.count(b"\r\n\r\n") < 1 or not reply.rstrip().endswith(b"}"):
                reply += writer.recv(65536)
            reply = b""
    finally:
        stream.close()
        writer.close()
    times.sort()
    return {
        "count": len(times),
        "p50_us": percentile(times, 0.50),
        "p99_us": percentile(times, 0.99),
        "max_us": times[-1],
    }


def hold(port: int, count: int) -> None:
    """Open `count` streams and read them until killed."""
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = subscribe(port)
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in selector.select():
            if not key.fileobj.recv(65536):
                selector.unregister(key.fileobj)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("latency", "hold"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    if args.what == "latency":
        print(json.dumps(latency(args.port, args.count or 2000)))
    else:
        hold(args.port, args.count or 100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
