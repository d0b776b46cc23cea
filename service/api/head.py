"""``HEAD`` wherever ``GET`` is (RFC 9110 §9.3.2): the same status and headers, ``Content-Length`` included,
without the body. CDNs, caches and link checkers probe with it; FastAPI routes answer only the methods they list.

:func:`get_route` registers an endpoint for both methods (HEAD is left out of the OpenAPI document, where it would
repeat GET's operation), and :class:`HeadBodyMiddleware` drops the body of every HEAD response, so no route (and
no server in front of the app) has to remember to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def get_route(router: APIRouter, path: str, **kwargs: Any) -> Callable:
    """Like ``@router.get(path, ...)``, and the same endpoint for HEAD."""

    def decorate(endpoint: Callable) -> Callable:
        router.add_api_route(path, endpoint, methods=["GET"], **kwargs)
        router.add_api_route(path, endpoint, methods=["HEAD"], **{**kwargs, "include_in_schema": False})
        return endpoint

    return decorate


class HeadBodyMiddleware:
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

        await self.app(scope, receive, without_body)
