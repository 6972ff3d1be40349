"""http.server: ThreadingHTTPServer, HTTP/1.1, SimpleHTTPRequestHandler over the docs dir.

TCP_NODELAY is set on every accepted socket (`disable_nagle_algorithm`): without it the
headers and the body leave in two writes and Nagle's algorithm holds the second one.
The listen backlog is 128 (socketserver's default is 5). With --tick a thread sleeps to
absolute 1 ms deadlines beside the server: the threaded design's periodic task.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from common import GPIO_BODY, GPIO_QUERY, INTERVAL, LATENESS_PATH, Lateness, arguments

LATENESS = Lateness(INTERVAL)


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        if self.path == "/?" + GPIO_QUERY:
            self.reply(GPIO_BODY)
        elif self.path == LATENESS_PATH:
            self.reply(json.dumps(LATENESS.report()).encode())
        else:
            super().do_GET()

    def reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # no access log, as for every server here


class Server(ThreadingHTTPServer):
    request_queue_size = 128


def ticker() -> None:
    deadline = time.monotonic() + INTERVAL
    while True:
        now = time.monotonic()
        if deadline > now:
            time.sleep(deadline - now)
        deadline = LATENESS.tick(deadline, time.monotonic())


if __name__ == "__main__":
    args = arguments(__doc__)
    if args.tick:
        threading.Thread(target=ticker, name="ticker", daemon=True).start()
    handler = functools.partial(Handler, directory=args.docs)
    with Server(("127.0.0.1", args.port), handler) as server:
        server.serve_forever()
