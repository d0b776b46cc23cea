"""Content-addressed storage keys: the key names the content, so a duplicate write is a no-op and a reader can
serve a key with a strong ETag and an immutable cache lifetime."""

from __future__ import annotations

import hashlib
import re

from model.thumbnail_formats import FORMATS as THUMBNAIL_FORMATS

from ..media import FORMATS

_SAFE = re.compile(r"^[0-9a-f]{8,64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(part: str) -> str:
    # Keys are built from hashes only; anything else would let a request address arbitrary paths.
    if not _SAFE.match(part):
        raise ValueError(f"key part must be lowercase hex but is {part!r}")
    return part


def original_key(image_id: str) -> str:
    """An uploaded original, kept until its thumbnail is stored (or for good with ``keep_originals``)."""
    return f"originals/{_check(image_id)}"


def thumbnail_key(sha: str, fmt: str = "png") -> str:
    """A thumbnail made by a worker, by the hash of its bytes, stored in ``fmt`` (png, webp or jxl). A record
    holds its key, so thumbnails stored before another format was chosen are read under their own."""
    return f"thumbnails/{_check(sha)}.{_thumbnail_format(fmt)}"


def uploaded_thumbnail_key(sha: str, fmt: str = "png") -> str:
    """A thumbnail a client sent to ``POST /v1/reconstructions`` (kept apart from the images' thumbnails)."""
    return f"inputs/{_check(sha)}.{_thumbnail_format(fmt)}"


def thumbnail_key_format(key: str) -> str:
    """The format of the thumbnail stored under ``key``, from its extension."""
    return _thumbnail_format(key.rpartition(".")[2])


def _thumbnail_format(fmt: str) -> str:
    if fmt not in THUMBNAIL_FORMATS:
        raise ValueError(f"a thumbnail is stored as {' or '.join(THUMBNAIL_FORMATS)}, not {fmt!r}")
    return fmt


def reconstruction_key(model_id: str, png_sha: str, fmt: str) -> str:
    """A reconstruction: (model id, thumbnail hash, format) decide its content."""
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {', '.join(FORMATS)} but is {fmt!r}")
    return f"reconstructions/{_check(model_id)}/{_check(png_sha)}.{fmt}"


def variants_prefix(model_id: str, png_sha: str) -> str:
    """Where the width variants of one thumbnail's reconstructions live (removed together with the image)."""
    return f"variants/{_check(model_id)}/{_check(png_sha)}/"


def variant_key(model_id: str, png_sha: str, width: int, fmt: str) -> str:
    """A reconstruction scaled down to ``width`` pixels, derived from the cached reconstruction in ``fmt``."""
    if fmt not in FORMATS or width < 1:
        raise ValueError(f"a variant needs a positive width and one of {', '.join(FORMATS)}, not {width!r}, {fmt!r}")
    return f"{variants_prefix(model_id, png_sha)}w{int(width)}.{fmt}"
