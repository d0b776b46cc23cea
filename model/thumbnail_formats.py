"""The lossless formats a thumbnail is stored and moved in: PNG, lossless WebP and lossless JPEG XL.

Each carries the thumbnail's metadata (compact JSON, see :mod:`model.thumbnail`) in the format's own metadata
chunk, where image tools keep it: PNG in a ``tadm`` text chunk, WebP in its ``EXIF`` chunk and JPEG XL in its
``Exif`` box, both as the EXIF ImageDescription tag. EXIF costs 26 bytes around the JSON where the smallest XMP
packet costs about 150: a few percent of a 32x thumbnail. Encoding is deterministic (the same pixels and
metadata give the same bytes, so a content hash names a thumbnail) and writes the pixels alone: no colour
profile or EXIF of the photo rides along.

Reading checks, before decoding, that the file is coded losslessly: a WebP must hold a ``VP8L`` (lossless)
bitstream, not ``VP8`` (lossy); a JPEG XL must pass :func:`model.jxl_codestream.lossless_header`. Lossy coding
destroys what the rescaler hid in the thumbnail's low bits.

JPEG XL needs the ``pillow-jxl-plugin`` package (the ``jxl`` extra); :func:`jxl_available` says whether it is here.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, PngImagePlugin

from .jxl_codestream import JxlHeaderError, LossyJxlError, is_jxl, lossless_header, split_container

FORMATS = ("png", "webp", "jxl")
MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jxl": "image/jxl"}
CHUNK_KEY = "tadm"  # the PNG text chunk's keyword
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMAGE_DESCRIPTION = 0x010E  # the EXIF tag that carries the metadata in WebP and JPEG XL
# The codecs' effort, measured on learned thumbnails (docs/thumbnail-formats.md): libwebp's method 6 saves 0.3 %
# over method 4 at 20-30x the time, and libjxl's effort 8 gives smaller files than 9 or 10 in less time. `exact`
# keeps RGB values under any alpha untouched; one JPEG XL thread leaves the worker's other threads alone.
WEBP_OPTIONS = {"lossless": True, "quality": 100, "method": 4, "exact": True}
JXL_OPTIONS = {"lossless": True, "effort": 8, "num_threads": 1}


class FormatError(ValueError):
    """Bytes that are no readable thumbnail file."""


class LossyFormatError(FormatError):
    """A lossily coded file: its pixels are not the thumbnail's."""


@dataclass(frozen=True)
class DecodedFile:
    image: Image.Image
    metadata: str | None  # the JSON text of the metadata chunk, when there is one
    format: str


@lru_cache
def jxl_available() -> bool:
    """Whether this process can read and write JPEG XL (the plugin registers itself with Pillow on import)."""
    try:
        import pillow_jxl  # noqa: F401
    except ImportError:
        return False
    return True


def sniff_format(data: bytes) -> str | None:
    """``png``, ``webp`` or ``jxl`` from the magic bytes; None for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return "jxl" if is_jxl(data) else None


def encode(image: Image.Image, metadata: str, fmt: str) -> bytes:
    """``image``'s pixels with ``metadata`` in ``fmt``'s metadata chunk, losslessly and deterministically."""
    if fmt not in FORMATS:
        raise ValueError(f"`fmt` must be one of {FORMATS} but is {fmt!r}")
    pixels = Image.frombytes("RGB", image.size, image.convert("RGB").tobytes())  # nothing but the pixels
    buf = io.BytesIO()
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_text(CHUNK_KEY, metadata)
        pixels.save(buf, format="PNG", pnginfo=info, optimize=True)
    elif fmt == "webp":
        pixels.save(buf, format="WEBP", exif=exif_block(metadata), **WEBP_OPTIONS)
    else:
        _require_jxl()
        # An Exif box starts with the offset of its TIFF header; the plugin writes the block as given.
        pixels.save(buf, format="JXL", exif=b"\0\0\0\0" + exif_block(metadata), **JXL_OPTIONS)
    return buf.getvalue()


def decode(data: bytes, max_pixels: int) -> DecodedFile:
    """Check a thumbnail file's format and size from its headers, then decode it."""
    fmt = sniff_format(data)
    if fmt == "png":
        return _decode_png(data, max_pixels)
    if fmt == "webp":
        return _decode_webp(data, max_pixels)
    if fmt == "jxl":
        return _decode_jxl(data, max_pixels)
    raise FormatError("thumbnail must be a PNG, lossless WebP or lossless JPEG XL file (lossy formats destroy "
                      "what the rescaler hid in the thumbnail)")


def _decode_png(data: bytes, max_pixels: int) -> DecodedFile:
    img = _open(data, "PNG", max_pixels)
    if img.mode not in ("RGB", "RGBA", "P", "L"):
        raise FormatError(f"thumbnail must be an 8-bit RGB PNG but its mode is {img.mode}")
    raw = img.info.get(CHUNK_KEY)
    return DecodedFile(img, raw if isinstance(raw, str) else None, "png")


def _decode_webp(data: bytes, max_pixels: int) -> DecodedFile:
    chunks = _riff_chunks(data)
    kinds = [fourcc for fourcc, _ in chunks]
    if b"ANIM" in kinds or b"ANMF" in kinds:
        raise FormatError("thumbnail is an animated WebP; a thumbnail is one still image")
    if b"VP8 " in kinds:
        raise LossyFormatError("thumbnail is a lossy WebP (VP8): lossy formats destroy what the rescaler hid in "
                               "the thumbnail; send PNG or lossless WebP")
    if b"VP8L" not in kinds:
        raise FormatError("thumbnail WebP holds no image")
    exif = next((payload for fourcc, payload in chunks if fourcc == b"EXIF"), None)
    img = _open(data, "WebP", max_pixels)
    return DecodedFile(img, None if exif is None else metadata_from_exif(exif), "webp")


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    end = 8 + struct.unpack_from("<I", data, 4)[0]  # the RIFF header's size; what follows is not the image's
    if end > len(data):
        raise FormatError("thumbnail WebP is truncated")
    chunks, pos = [], 12
    while pos < end:
        if pos + 8 > end:
            raise FormatError("thumbnail WebP is truncated")
        fourcc, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if pos + 8 + size > end:
            raise FormatError("thumbnail WebP is truncated")
        chunks.append((fourcc, data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return chunks


def _decode_jxl(data: bytes, max_pixels: int) -> DecodedFile:
    _require_jxl()
    try:
        parts = split_container(data)
        width, height = lossless_header(parts.codestream)
    except LossyJxlError as exc:
        raise LossyFormatError(f"thumbnail is a lossy JPEG XL ({exc}): lossy formats destroy what the rescaler "
                               "hid in the thumbnail; send PNG or lossless WebP") from exc
    except JxlHeaderError as exc:
        raise FormatError(f"thumbnail JPEG XL is refused: {exc}") from exc
    _check_pixels(width, height, max_pixels)  # the plugin decodes as it opens: check the header's size first
    img = _open(data, "JPEG XL", max_pixels)
    return DecodedFile(img, None if parts.exif is None else metadata_from_exif(parts.exif), "jxl")


def _open(data: bytes, name: str, max_pixels: int) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        _check_pixels(img.width, img.height, max_pixels)  # from the header, before decoding
        img.load()
    except FormatError:
        raise
    except Exception as exc:  # Pillow and its plugins raise many types for corrupt files
        raise FormatError(f"thumbnail {name} cannot be decoded: {exc}") from exc
    return img


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise FormatError(f"thumbnail of {width}x{height} exceeds {max_pixels} pixels")


def _require_jxl() -> None:
    if not jxl_available():
        raise FormatError("JPEG XL thumbnails need the pillow-jxl-plugin package (the `jxl` extra)")


def exif_block(metadata: str) -> bytes:
    """A TIFF-structured EXIF block whose only tag, ImageDescription, is ``metadata`` (ASCII JSON)."""
    exif = Image.Exif()
    exif[IMAGE_DESCRIPTION] = metadata
    return exif.tobytes()[6:]  # without the "Exif\0\0" marker of JPEG's APP1 segment


def metadata_from_exif(block: bytes) -> str | None:
    """The ImageDescription of an EXIF block (with or without a marker); None when it has none."""
    exif = Image.Exif()
    try:
        exif.load(block)
        value = exif.get(IMAGE_DESCRIPTION)
    except Exception as exc:  # Pillow raises many types for malformed TIFF structures
        raise FormatError(f"thumbnail's EXIF metadata cannot be read: {exc}") from exc
    return value if isinstance(value, str) else None
