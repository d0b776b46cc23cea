"""The thumbnail container: a standard 8-bit RGB image (PNG, lossless WebP or lossless JPEG XL) with its metadata
in the format's own metadata chunk (:mod:`model.thumbnail_formats`).

Importable without torch: the API process reads and validates thumbnails with Pillow alone.

The metadata is compact JSON: ``{"v": 1, "scale": 16, "w": 768, "h": 512, "model": "<model id>"}``, and
``"cmap": [12 numbers]`` where the sender stored a colour map for the receiver (:mod:`model.colour_map`), and
``"clat": [rows, cols, "<base64>"]`` where it stored a lattice of colour maps (its 12 x rows x cols integer
coefficients as little-endian int16, zlib-compressed)
(:mod:`model.colour_lattice`); readers that do not know a key reconstruct without it. A thumbnail
is the information the learned rescaler hid in 1/256 (16x) or 1/1024 (32x) of the pixels; re-encoding it with a
lossy codec (JPEG, lossy WebP, lossy JPEG XL) destroys that information, so it is stored and moved losslessly.

A *plain* thumbnail (``"method": "plain"`` in the chunk, no model) is the same size made by classical bicubic
resampling and reconstructed by bicubic upsampling (:func:`plain_thumbnail`, :func:`plain_upscale`): what the
service stores when the model's thumbnail was shown to give the photo back worse than bicubic would.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from dataclasses import dataclass, replace

from PIL import Image

from .thumbnail_formats import PNG_SIGNATURE, FormatError, LossyFormatError, decode, encode

FORMAT_VERSION = 1
SUPPORTED_SCALES = (16, 32)
METHODS = ("tadm", "plain")  # the learned rescaler's thumbnail, or classical resampling's
# A colour map is 12 numbers (a 3x3 matrix and an offset on [-1, 1] pixels); a coefficient beyond this is no
# colour correction but a broken or hostile file.
COLOUR_MAP_LENGTH = 12
COLOUR_MAP_MAX_ABS = 16.0
# A lattice of colour maps: rows x cols points (each 2 to this many), 12 integer coefficients per point in units of
# 1/256 (model.colour_lattice), each within ±16 as a colour map's are.
COLOUR_LATTICE_MAX_SIDE = 16
COLOUR_LATTICE_PER_POINT = 12
COLOUR_LATTICE_MAX_ABS = 16 * 256
# A 4096x4096 thumbnail stands for a 65536x65536 (4.3 Gpx) original at 16x: anything larger is not ours.
MAX_THUMBNAIL_PIXELS = 4096 * 4096


class ThumbnailError(ValueError):
    """A thumbnail that cannot be used: no thumbnail format, bad metadata, or a size that contradicts its metadata."""


class LossyThumbnailError(ThumbnailError):
    """A thumbnail in a lossily coded file (lossy WebP or JPEG XL): its hidden information is gone."""


class ThumbnailMismatchError(ThumbnailError):
    """A valid thumbnail made by another model or with another scale than the one asked to upscale it."""


def thumbnail_size(original_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """(width, height) of the thumbnail of an image of ``original_size``: the padded size divided by ``scale``."""
    w, h = original_size
    return math.ceil(w / scale), math.ceil(h / scale)


@dataclass(frozen=True)
class Thumbnail:
    """The 8-bit LR image plus what the receiver needs to reconstruct the original.

    Attributes:
        image: RGB PIL image of size ``thumbnail_size(original_size, scale)``.
        scale: 16 or 32.
        original_size: (width, height) of the HR image, so the receiver can crop the padding.
        model_id: id of the model that made it; ``None`` for a bare PNG whose scale and size the caller supplied,
            and for a plain thumbnail.
        method: ``tadm`` (the learned rescaler's) or ``plain`` (bicubic resampling, upsampled by bicubic).
        colour_map: the sender's colour map for the receiver's low frequencies (:mod:`model.colour_map`), 12
            numbers, or None; only a ``tadm`` thumbnail carries one.
        colour_lattice: the sender's lattice of colour maps applied after the map (:mod:`model.colour_lattice`),
            ``(rows, cols, *coefficients)`` in integers, or None; only a ``tadm`` thumbnail carries one.
    """

    image: Image.Image
    scale: int
    original_size: tuple[int, int]
    model_id: str | None
    method: str = "tadm"
    colour_map: tuple[float, ...] | None = None
    colour_lattice: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ThumbnailError(f"`method` must be one of {METHODS} but is {self.method!r}")
        if self.colour_map is not None:
            object.__setattr__(self, "colour_map", checked_colour_map(self.colour_map))
            if self.method == "plain":
                raise ThumbnailError("a plain thumbnail is reconstructed by bicubic alone: it carries no colour map")
        if self.colour_lattice is not None:
            object.__setattr__(self, "colour_lattice", checked_colour_lattice(self.colour_lattice))
            if self.method == "plain":
                raise ThumbnailError("a plain thumbnail is reconstructed by bicubic alone: it carries no colour "
                                     "lattice")
        if self.method == "plain" and self.model_id is not None:
            raise ThumbnailError("a plain thumbnail is made by no model: its `model_id` must be None")
        if self.scale not in SUPPORTED_SCALES:
            raise ThumbnailError(f"`scale` must be one of {SUPPORTED_SCALES} but is {self.scale}")
        w, h = self.original_size
        if w < 1 or h < 1:
            raise ThumbnailError(f"`original_size` must be positive but is {self.original_size}")
        expected = thumbnail_size(self.original_size, self.scale)
        if self.image.size != expected:
            raise ThumbnailError(
                f"thumbnail is {self.image.size[0]}x{self.image.size[1]} but an original of {w}x{h} at "
                f"{self.scale}x needs {expected[0]}x{expected[1]}"
            )
        if self.image.mode != "RGB":
            object.__setattr__(self, "image", self.image.convert("RGB"))

    @property
    def plain(self) -> bool:
        return self.method == "plain"

    @property
    def metadata(self) -> dict:
        meta: dict[str, object] = {"v": FORMAT_VERSION, "scale": self.scale, "w": self.original_size[0], "h": self.original_size[1],
                "model": self.model_id}
        if self.plain:  # absent means tadm: thumbnails written before plain ones existed read the same
            meta["method"] = "plain"
        if self.colour_map is not None:
            meta["cmap"] = list(self.colour_map)
        if self.colour_lattice is not None:
            meta["clat"] = encoded_colour_lattice(self.colour_lattice)
        return meta

    def with_colour_map(self, colour_map: tuple[float, ...] | None,
                        colour_lattice: tuple[int, ...] | None = None) -> Thumbnail:
        """This thumbnail with ``colour_map`` and ``colour_lattice`` (None: without); the same object when nothing
        changes."""
        if colour_map == self.colour_map and colour_lattice == self.colour_lattice:
            return self
        return replace(self, colour_map=colour_map, colour_lattice=colour_lattice)

    def to_bytes(self, fmt: str = "png") -> bytes:
        """The file in ``fmt`` (``png``, ``webp`` or ``jxl``): pixels lossless, metadata in the format's own chunk;
        the same thumbnail always gives the same bytes."""
        return encode(self.image, json.dumps(self.metadata, separators=(",", ":")), fmt)

    def to_png(self) -> bytes:
        """The PNG bytes, pixels lossless, metadata in the ``tadm`` text chunk."""
        return self.to_bytes("png")

    def check_compatible(self, model_id: str, scale: int) -> None:
        """Raise :class:`ThumbnailMismatchError` unless this thumbnail can be upscaled by (model_id, scale)."""
        if self.scale != scale:
            raise ThumbnailMismatchError(f"thumbnail was made at {self.scale}x but the model upscales {scale}x")
        if self.model_id is not None and self.model_id != model_id:
            raise ThumbnailMismatchError(
                f"thumbnail was made by model {self.model_id} but this is model {model_id}"
            )

    @classmethod
    def from_png(
        cls,
        data: bytes,
        *,
        scale: int | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> Thumbnail:
        """Parse PNG bytes (:meth:`from_bytes`, refusing other formats)."""
        if not data.startswith(PNG_SIGNATURE):
            raise ThumbnailError("thumbnail must be a PNG file (lossy formats destroy the hidden information)")
        return cls.from_bytes(data, scale=scale, original_size=original_size)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        scale: int | None = None,
        original_size: tuple[int, int] | None = None,
    ) -> Thumbnail:
        """Parse a PNG, lossless WebP or lossless JPEG XL thumbnail (the format read from the magic bytes). One
        without metadata is accepted only when ``scale`` and ``original_size`` are given; given values that
        contradict the metadata are an error. A lossy file raises :class:`LossyThumbnailError`."""
        try:
            decoded = decode(data, MAX_THUMBNAIL_PIXELS)
        except LossyFormatError as exc:
            raise LossyThumbnailError(str(exc)) from exc
        except FormatError as exc:
            raise ThumbnailError(str(exc)) from exc
        img, raw = decoded.image, decoded.metadata
        if raw is None:
            if scale is None or original_size is None:
                raise ThumbnailError(
                    "thumbnail has no `tadm` metadata chunk; give its scale and original size explicitly"
                )
            return cls(img.convert("RGB"), scale, tuple(original_size), None)  # type: ignore[arg-type]
        try:
            meta = json.loads(raw)
            version, meta_scale = int(meta["v"]), int(meta["scale"])
            size = (int(meta["w"]), int(meta["h"]))
            model_id = meta.get("model")
            method = str(meta.get("method", "tadm"))
            colour_map, colour_lattice = meta.get("cmap"), meta.get("clat")
        except (ValueError, KeyError, TypeError) as exc:
            raise ThumbnailError(f"thumbnail's `tadm` metadata is malformed: {raw[:100]!r}") from exc
        if colour_lattice is not None:
            colour_lattice = decoded_colour_lattice(colour_lattice)
        if version > FORMAT_VERSION:
            raise ThumbnailError(f"thumbnail format version {version} is newer than supported ({FORMAT_VERSION})")
        if scale is not None and scale != meta_scale:
            raise ThumbnailMismatchError(f"thumbnail was made at {meta_scale}x but {scale}x was asked for")
        if original_size is not None and tuple(original_size) != size:
            raise ThumbnailError(f"thumbnail records original size {size} but {tuple(original_size)} was given")
        if method not in METHODS:
            raise ThumbnailError(f"thumbnail's `tadm` metadata names an unknown method {method!r}")
        if method == "plain":
            model_id = None
        return cls(img.convert("RGB"), meta_scale, size, model_id if isinstance(model_id, str) else None, method,
                   colour_map, colour_lattice)


def checked_colour_map(values: object) -> tuple[float, ...]:
    """``values`` as a colour map: exactly 12 finite numbers, none beyond :data:`COLOUR_MAP_MAX_ABS`."""
    if not isinstance(values, (list, tuple)) or len(values) != COLOUR_MAP_LENGTH:
        raise ThumbnailError(f"a thumbnail's colour map must be a list of {COLOUR_MAP_LENGTH} numbers "
                             f"but is {str(values)[:100]!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ThumbnailError(f"a thumbnail's colour map must hold numbers only but is {str(values)[:100]!r}")
    checked = tuple(float(v) for v in values)
    if not all(math.isfinite(v) and abs(v) <= COLOUR_MAP_MAX_ABS for v in checked):
        raise ThumbnailError(f"a thumbnail's colour map must hold finite numbers within ±{COLOUR_MAP_MAX_ABS:g} "
                             f"but is {list(checked)}")
    return checked


def checked_colour_lattice(values: object) -> tuple[int, ...]:
    """``values`` as a lattice of colour maps: ``rows, cols`` (each 2 to :data:`COLOUR_LATTICE_MAX_SIDE`) and
    12 x rows x cols integers within ±:data:`COLOUR_LATTICE_MAX_ABS`."""
    shown = str(values)[:100]
    if not isinstance(values, (list, tuple)) or len(values) < 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ThumbnailError(f"a thumbnail's colour lattice must be a list of integers but is {shown!r}")
    rows, cols = values[0], values[1]
    if not (2 <= rows <= COLOUR_LATTICE_MAX_SIDE and 2 <= cols <= COLOUR_LATTICE_MAX_SIDE):
        raise ThumbnailError(f"a thumbnail's colour lattice must have 2 to {COLOUR_LATTICE_MAX_SIDE} rows and "
                             f"columns but has {rows}x{cols}")
    needed = COLOUR_LATTICE_PER_POINT * rows * cols
    if len(values) != 2 + needed:
        raise ThumbnailError(f"a thumbnail's {rows}x{cols} colour lattice needs {needed} coefficients but has "
                             f"{len(values) - 2}")
    if any(abs(v) > COLOUR_LATTICE_MAX_ABS for v in values[2:]):
        raise ThumbnailError(f"a thumbnail's colour lattice coefficients must lie within ±{COLOUR_LATTICE_MAX_ABS}")
    return tuple(values)


def encoded_colour_lattice(lattice: tuple[int, ...]) -> list:
    """The metadata form of a lattice ``(rows, cols, *coefficients)``: ``[rows, cols, base64(zlib(int16 LE))]``
    (about 60 % of the bytes of the integers written out in JSON)."""
    raw = b"".join(v.to_bytes(2, "little", signed=True) for v in lattice[2:])
    return [lattice[0], lattice[1], base64.b64encode(zlib.compress(raw, 9)).decode("ascii")]


def decoded_colour_lattice(value: object) -> tuple[int, ...]:
    """A lattice from its metadata form (:func:`encoded_colour_lattice`); anything else is a ThumbnailError that
    names the colour lattice. The decompression is bounded by the largest lattice there can be."""
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[2], str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[:2])):
        raise ThumbnailError(f"a thumbnail's colour lattice must be [rows, cols, data] but is {str(value)[:100]!r}")
    most = 2 * COLOUR_LATTICE_PER_POINT * COLOUR_LATTICE_MAX_SIDE ** 2
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(value[2][:4 * most], validate=True), most + 1)
    except (binascii.Error, zlib.error) as exc:
        raise ThumbnailError(f"a thumbnail's colour lattice data is not base64 of zlib data: {exc}") from exc
    if len(raw) % 2 or len(raw) > most or not inflater.eof:
        raise ThumbnailError("a thumbnail's colour lattice data does not hold whole 16-bit coefficients")
    coefficients = (int.from_bytes(raw[i:i + 2], "little", signed=True) for i in range(0, len(raw), 2))
    return checked_colour_lattice((value[0], value[1], *coefficients))


def plain_thumbnail_image(image: Image.Image, scale: int) -> Image.Image:
    """Pillow's bicubic (antialiased) downscale of an RGB image to its thumbnail size at ``scale``."""
    return image.resize(thumbnail_size(image.size, scale), Image.Resampling.BICUBIC)


def plain_thumbnail(image: Image.Image, scale: int) -> Thumbnail:
    """The plain thumbnail of an RGB image: bicubic resampling, marked ``plain``, made by no model."""
    return Thumbnail(plain_thumbnail_image(image, scale), scale, image.size, None, "plain")


def plain_upscale(thumbnail: Thumbnail) -> Image.Image:
    """Bicubic upsampling of a thumbnail's pixels to its original size (how a plain thumbnail is reconstructed)."""
    return thumbnail.image.resize(thumbnail.original_size, Image.Resampling.BICUBIC)
