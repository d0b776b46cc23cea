"""``HEAD`` wherever ``GET`` is (RFC 9110 §9.3.2): the same status and headers, ``Content-Length`` included,
without the body. CDNs, caches and link checkers probe with it; FastAPI routes answer only the methods they list.

:class:`HeadAsGet` runs a HEAD request as the GET it mirrors and drops the body on the way out, so every GET
route answers HEAD by construction, with no second route to register (or to match on every request) and no
second operation in the OpenAPI document. A route that must not produce its body at all (an event stream that
would stay open) asks :func:`is_head`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_HEAD = "tadm.head"


def is_head(request: Request) -> bool:
    """The request is a HEAD that :class:`HeadAsGet` passes on as GET."""
    return bool(request.scope.get(_HEAD))


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET", _HEAD: True}, receive, without_body)
