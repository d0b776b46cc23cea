"""The codecs a user would pick instead of a thumbnail, each squeezed into the same number of bytes.

A codec's quality is chosen as the highest one whose file is not larger than the byte budget (the thumbnail PNG
being compared against). File size grows with quality for all three codecs, so a bisection over the quality
range finds it with about seven encodes; when even the lowest quality is too large, the lowest is used and its
real size is reported (the table then shows a larger bpp than the budget, never a hidden overshoot).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, features

# format name for Pillow, lowest and highest quality setting, extra save options
CODECS: dict[str, tuple[str, int, int, dict]] = {
    "jpeg": ("JPEG", 1, 95, {"optimize": True}),  # Pillow documents quality above 95 as wasteful
    "webp": ("WEBP", 0, 100, {"method": 6}),
    "avif": ("AVIF", 0, 100, {"speed": 4}),
    "jxl": ("JXL", 1, 99, {"effort": 7}),  # the pillow-jxl-plugin wheel (`tadm[jxl]`); 100 would be lossless
}
# Pillow's name for the feature that a codec needs at run time (JPEG XL comes from a plugin, not a feature).
_FEATURES = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}


def _jxl_plugin() -> bool:
    try:
        import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow on import
    except ImportError:
        return False
    return True


class CodecUnavailableError(RuntimeError):
    """The installed Pillow cannot encode this format."""


@dataclass(frozen=True)
class Encoded:
    codec: str
    quality: int
    data: bytes
    within_budget: bool

    @property
    def size(self) -> int:
        return len(self.data)


def codec_available(codec: str) -> bool:
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose one of {sorted(CODECS)}")
    if codec == "jxl":
        return _jxl_plugin()
    return bool(features.check(_FEATURES[codec]))


def encode(image: Image.Image, codec: str, quality: int) -> bytes:
    """``image`` encoded with ``codec`` at ``quality``."""
    if not codec_available(codec):
        raise CodecUnavailableError(f"this Pillow build cannot write {codec} (PIL.features.check is False, or "
                                    "for jxl the pillow-jxl-plugin wheel is missing)")
    fmt, _, _, options = CODECS[codec]
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=quality, **options)
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def encode_within(image: Image.Image, codec: str, budget: int) -> Encoded:
    """The highest-quality encoding of ``image`` whose size is at most ``budget`` bytes (or the lowest quality)."""
    if budget < 1:
        raise ValueError(f"`budget` must be a positive number of bytes but is {budget}")
    _, low, high, _ = CODECS[codec]
    best = encode(image, codec, low)
    if len(best) > budget:
        return Encoded(codec, low, best, within_budget=False)
    best_quality = low
    lo, hi = low + 1, high
    while lo <= hi:  # invariant: best_quality fits; every quality above hi is known not to fit
        mid = (lo + hi) // 2
        data = encode(image, codec, mid)
        if len(data) <= budget:
            best, best_quality, lo = data, mid, mid + 1
        else:
            hi = mid - 1
    return Encoded(codec, best_quality, best, within_budget=True)
