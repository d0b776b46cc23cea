"""Reading an uploaded file from a request: multipart field ``file`` or the raw body, never more than
``max_upload_bytes`` (a declared ``Content-Length`` over the limit is refused before reading a byte)."""

from __future__ import annotations

import re

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from model.thumbnail import SUPPORTED_SCALES

from ..errors import InvalidRequest, PayloadTooLarge

_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
OPENAPI_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}},
                           "required": ["file"]}
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_bytes = int(declared)
        except ValueError:
            raise InvalidRequest(f"Content-Length is not a number: {declared!r}") from None
        if declared_bytes > limit:
            raise PayloadTooLarge(f"the body declares {declared_bytes} bytes; the limit is {limit}",
                                  max_bytes=limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a body longer than it declared, or chunked without a length
            raise PayloadTooLarge(f"the body exceeds the limit of {limit} bytes", max_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_upload(request: Request, limit: int) -> bytes:
    """The uploaded file's bytes (multipart field ``file``, else the whole body)."""
    body = await read_limited(request, limit)
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body

    async def replay():
        yield body
        yield b""

    try:
        form = await MultiPartParser(request.headers, replay(), max_part_size=limit).parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"the multipart body cannot be parsed: {exc.message}") from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidRequest("the multipart body has no file field named `file`")
        return await upload.read()
    finally:
        await form.close()


def requested_wait(request: Request, default: float, maximum: float) -> float:
    """Seconds from ``Prefer: wait=N`` (RFC 7240), else ``default``; never above ``maximum``."""
    match = _WAIT.search(request.headers.get("prefer", ""))
    wait = float(match.group(1)) if match else default
    return max(0.0, min(wait, maximum))


def parse_scale(text: str) -> int | None:
    """An upload's ``scale``: 16 or 32, or None for ``auto``."""
    if text == "auto":
        return None
    if not text.isdigit() or int(text) not in SUPPORTED_SCALES:
        raise InvalidRequest(f"`scale` must be {', '.join(map(str, SUPPORTED_SCALES))} or auto but is {text!r}")
    return int(text)


def check_scale(scale: int | None) -> None:
    """A given ``scale`` parameter is one the models are made for (``None``: not given)."""
    if scale is not None and scale not in SUPPORTED_SCALES:
        raise InvalidRequest(f"`scale` must be {' or '.join(map(str, SUPPORTED_SCALES))} but is {scale}")
