"""API keys for writes and HMAC-signed, expiring read URLs (so a CDN or a browser fetches without the key).

A signed URL is ``<path>?expires=<unix time>&sig=<hex HMAC-SHA256(signing key, "<path>\\n<expires>")>``.
The expiry is rounded up to a multiple of the TTL, so every response within one window hands out the same URL
and a CDN can cache it. With no API keys configured (dev), URLs are unsigned and nothing needs a key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from fastapi import Request

from ..config import Settings
from ..errors import Forbidden, Unauthorized


def _signature(key: str, path: str, expires: int) -> str:
    return hmac.new(key.encode(), f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def sign_path(settings: Settings, path: str, now: float | None = None) -> str:
    """``path`` with ``expires`` and ``sig`` when keys are configured; unchanged otherwise."""
    if not settings.api_key_list:
        return path
    ttl = settings.signed_url_ttl_seconds
    expires = (math.floor((now or time.time()) / ttl) + 2) * ttl  # valid for at least one full TTL
    return f"{path}?expires={expires}&sig={_signature(settings.signing_key, path, expires)}"


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _key_ok(settings: Settings, key: str) -> bool:
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in settings.api_key_list)


def require_write(settings: Settings, request: Request) -> None:
    if not settings.api_key_list:
        return
    key = presented_key(request)
    if key is None:
        raise Unauthorized("this operation needs an API key: `Authorization: Bearer <key>` or `X-API-Key`")
    if not _key_ok(settings, key):
        raise Forbidden("the API key is not valid")


def require_read(settings: Settings, request: Request) -> None:
    """A valid API key, or a valid unexpired signature for this path."""
    if not settings.api_key_list:
        return
    key = presented_key(request)
    if key is not None:
        if not _key_ok(settings, key):
            raise Forbidden("the API key is not valid")
        return
    sig, expires = request.query_params.get("sig"), request.query_params.get("expires")
    if sig is None or expires is None:
        raise Unauthorized("this URL needs an API key or a signature (`expires` and `sig`)")
    try:
        expires_at = int(expires)
    except ValueError:
        raise Forbidden("the URL signature's `expires` is not a number") from None
    expected = _signature(settings.signing_key, request.url.path, expires_at)
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        raise Forbidden("the URL signature is not valid for this path")
    if expires_at < time.time():
        raise Forbidden("the signed URL has expired")
