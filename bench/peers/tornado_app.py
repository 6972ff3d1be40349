"""tornado: /index.html through `StaticFileHandler` over the docs directory, /?gpio/4 a handler."""

from __future__ import annotations

import asyncio

from common import GPIO_BODY, GPIO_QUERY, arguments
from tornado.web import Application, HTTPError, RequestHandler, StaticFileHandler


class Gpio(RequestHandler):
    def get(self) -> None:
        if self.request.query != GPIO_QUERY:
            raise HTTPError(404)
        self.set_header("Content-Type", "application/json")
        self.write(GPIO_BODY)


async def main() -> None:
    args = arguments(__doc__)
    app = Application(
        [(r"/", Gpio), (r"/(.+)", StaticFileHandler, {"path": args.docs})],
        log_function=lambda handler: None,  # no access log, as for every server here
    )
    app.listen(args.port, address="127.0.0.1", idle_connection_timeout=200)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
