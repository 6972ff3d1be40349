"""aiohttp: /index.html through `web.static` over the docs directory, /?gpio/4 a handler.

With --tick an asyncio task sleeps to absolute 1 ms deadlines beside the server.
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from common import GPIO_BODY, GPIO_QUERY, INTERVAL, LATENESS_PATH, Lateness, arguments


async def gpio(request: web.Request) -> web.Response:
    if request.query_string != GPIO_QUERY:
        raise web.HTTPNotFound()
    return web.Response(body=GPIO_BODY, content_type="application/json")


async def ticker(lateness: Lateness) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INTERVAL
    while True:
        await asyncio.sleep(deadline - loop.time())
        deadline = lateness.tick(deadline, loop.time())


def make_app(docs: str, tick: bool) -> web.Application:
    app = web.Application()
    app.router.add_get("/", gpio)
    if tick:
        lateness = Lateness(INTERVAL)

        async def report(request: web.Request) -> web.Response:
            return web.Response(
                body=json.dumps(lateness.report()).encode(), content_type="application/json"
            )

        async def start(app: web.Application) -> None:
            app["ticker"] = asyncio.get_running_loop().create_task(ticker(lateness))

        app.router.add_get(LATENESS_PATH, report)
        app.on_startup.append(start)
    app.router.add_static("/", docs)
    return app


if __name__ == "__main__":
    args = arguments(__doc__)
    web.run_app(
        make_app(args.docs, args.tick),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        keepalive_timeout=200,
        print=None,
    )
