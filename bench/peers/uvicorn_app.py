"""uvicorn (httptools, uvloop) with a raw ASGI app.

/index.html is read once at start and served from memory with Content-Type, ETag and
Last-Modified (computed once; no conditional requests); /?gpio/4 is the JSON reply.
"""

from __future__ import annotations

import email.utils
import os

import uvicorn
from common import GPIO_BODY, GPIO_QUERY, arguments


def make_app(docs: str):
    path = os.path.join(docs, "index.html")
    with open(path, "rb") as file:
        page = file.read()
    stat = os.stat(path)
    static_headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(page)).encode()),
        (b"etag", f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'.encode()),
        (b"last-modified", email.utils.formatdate(stat.st_mtime, usegmt=True).encode()),
    ]
    gpio_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(GPIO_BODY)).encode()),
    ]
    gpio_query = GPIO_QUERY.encode()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/index.html":
            status, headers, body = 200, static_headers, page
        elif path == "/" and scope["query_string"] == gpio_query:
            status, headers, body = 200, gpio_headers, GPIO_BODY
        else:
            status, headers, body = 404, [(b"content-length", b"0")], b""
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


if __name__ == "__main__":
    args = arguments(__doc__)
    uvicorn.run(
        make_app(args.docs),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=200,
    )
