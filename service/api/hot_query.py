"""Query parameters of the hot read routes, parsed by hand.

FastAPI's declared query parameters cost ~60 µs a request in validation (measured in-process: three parameters
on an otherwise empty route), a quarter of a cached ``/full`` read. The hot routes read them here instead, with
the same checks and the same 422 ``invalid-request`` problem, and document them in the OpenAPI document through
``openapi_extra`` (:data:`FULL_PARAMETERS`).
"""

from __future__ import annotations

from starlette.datastructures import QueryParams

from model.thumbnail_formats import FORMATS as THUMBNAIL_FORMATS

from ..errors import InvalidRequest
from ..media import FORMATS
from ..redis_keys import PRIORITIES


def choice(query: QueryParams, name: str, allowed: tuple[str, ...]) -> str | None:
    """The value of ``name`` when given (one of ``allowed``), else None."""
    value = query.get(name)
    if value is not None and value not in allowed:
        raise InvalidRequest(f"query.{name}: Input should be {' or '.join(repr(a) for a in allowed)}")
    return value


def positive_int(query: QueryParams, name: str) -> int | None:
    """The value of ``name`` when given (a whole number of at least 1), else None."""
    value = query.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise InvalidRequest(f"query.{name}: Input should be a whole number of at least 1, not {value!r}")
    return int(value)


def _parameter(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FULL_PARAMETERS = [
    _parameter("format", {"type": "string", "enum": list(FORMATS)},
               "the reconstruction's format (default: the one `Accept` prefers, with `Vary: Accept`)"),
    _parameter("w", {"type": "integer", "minimum": 1},
               "at most this many pixels wide (one of TADM_VARIANT_WIDTHS), derived from the cached reconstruction"),
    _parameter("priority", {"type": "string", "enum": list(PRIORITIES), "default": "interactive"},
               "the queue a reconstruction job goes to when none is cached"),
]

THUMBNAIL_PARAMETERS = [
    _parameter("format", {"type": "string", "enum": list(THUMBNAIL_FORMATS)},
               "the thumbnail's format, lossless in each (default: PNG, or WebP or JPEG XL where `Accept` names "
               "them, with `Vary: Accept`)"),
]
