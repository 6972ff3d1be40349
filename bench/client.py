"""A small HTTP/1.1 client for the lock-step round trip and the idle connections.

`python bench/client.py rtt --port P --target /index.html --count 10000` sends one
request at a time on one kept-alive socket (TCP_NODELAY), reads each full response
before the next send, and prints the round trips' figures as JSON (microseconds).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

TIMEOUT = 5.0  # seconds any one response may take


class Closed(Exception):
    """The server closed the connection or answered something unexpected."""


def request_bytes(port: int, target: str) -> bytes:
    # What wrk sends: a request line and Host, nothing else.
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one whole response (Content-Length framing) from `sock`; return its status."""
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise Closed("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).lower()
    status = int(head[9:12])
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        raise Closed(f"a response without Content-Length: {bytes(buffer[:end])!r}")
    stop = head.find(b"\r\n", start + 2)
    length = int(head[start + 17 : stop if stop >= 0 else len(head)])
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise Closed("the server closed the connection in a body")
        buffer += chunk
    del buffer[:total]
    return status


def exchange(sock: socket.socket, request: bytes, buffer: bytearray) -> None:
    sock.sendall(request)
    status = read_response(sock, buffer)
    if status != 200:
        raise Closed(f"status {status}")


def round_trips(port: int, target: str, count: int, warmup: int = 200) -> dict:
    request = request_bytes(port, target)
    buffer = bytearray()
    times = []
    clock = time.perf_counter_ns
    with connect(port) as sock:
        for _ in range(warmup):
            exchange(sock, request, buffer)
        for _ in range(count):
            start = clock()
            exchange(sock, request, buffer)
            times.append(clock() - start)
    times.sort()
    return {
        "count": count,
        "median_us": times[count // 2] / 1000,
        "p99_us": times[min(count - 1, int(count * 0.99))] / 1000,
        "min_us": times[0] / 1000,
        "mean_us": sum(times) / count / 1000,
    }


def open_idle(port: int, target: str, count: int) -> list[socket.socket]:
    """`count` kept-alive connections, each having sent one request and read the response."""
    request = request_bytes(port, target)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = connect(port)
            sockets.append(sock)
            exchange(sock, request, bytearray())
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["rtt"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    try:
        result = round_trips(args.port, args.target, args.count)
    except (OSError, Closed) as err:
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
