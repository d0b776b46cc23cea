"""Image files as bytes, for the API and the worker: sniffing an upload's format, reading its size from the header,
and only then decoding (so a decompression bomb is refused before it costs memory); encoding results."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Literal, get_args

from PIL import Image

from .errors import CorruptImage, ImageTooSmall, InvalidRequest, TooManyPixels, UnsupportedMediaType

# Magic numbers: the bytes decide the format, never the Content-Type or the file name.
_SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
}
# The formats a reconstruction can be encoded in (the one list of them: the API's parameters, the storage keys and
# the settings check against it), and their media types.
ResultFormat = Literal["png", "webp", "jpeg"]
FORMATS: tuple[str, ...] = get_args(ResultFormat)
MEDIA_TYPES = {fmt: f"image/{fmt}" for fmt in FORMATS}


def sniff_format(data: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` from the magic bytes; ``None`` for anything else."""
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for fmt, signatures in _SIGNATURES.items():
        if any(data.startswith(sig) for sig in signatures):
            return fmt
    return None


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: its format and size."""

    format: str
    width: int
    height: int


def inspect_image(data: bytes, *, max_pixels: int, min_side: int = 1, allowed=("png", "jpeg", "webp")) -> ImageHeader:
    """Check an upload without decoding its pixels: format by magic bytes (415), size from the header (422).

    Raises the matching :mod:`service.errors` problem; returns the format and size.
    """
    if not data:
        raise InvalidRequest("the request has no body: send the image as multipart field `file` or as the raw body")
    fmt = sniff_format(data)
    if fmt is None or fmt not in allowed:
        names = "/".join(a.upper() for a in allowed)
        raise UnsupportedMediaType(f"the bytes are not a {names} image (the format is read from the content)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (then errors) on large images; we apply our own limit from the header below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:  # reads the header only
                width, height = img.size
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"the image header declares too many pixels: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for unreadable headers
        raise CorruptImage(f"the {fmt.upper()} header cannot be read: {exc}") from exc
    if width * height > max_pixels:
        raise TooManyPixels(
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
            width=width, height=height, max_pixels=max_pixels,
        )
    if width < min_side or height < min_side:
        raise ImageTooSmall(f"the image is {width}x{height}; both sides must be at least {min_side} pixels")
    return ImageHeader(fmt, width, height)


def decode_image(data: bytes) -> Image.Image:
    """Decode fully, only after :func:`inspect_image` accepted the header: a truncated or corrupt file raises
    ``CorruptImage``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
        return img
    except Exception as exc:
        raise CorruptImage(f"the image cannot be decoded: {exc}") from exc


def encode_image(image: Image.Image, fmt: str) -> bytes:
    """PIL image -> bytes in ``png``, ``webp`` or ``jpeg`` (lossy formats at quality 90)."""
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG")
    elif fmt == "webp":
        image.save(buf, format="WEBP", quality=90, method=4)
    elif fmt == "jpeg":
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    else:
        raise ValueError(f"`fmt` must be png, webp or jpeg but is {fmt!r}")
    return buf.getvalue()
