"""What a dry run expects a file to take once stored: the PNG size of a plain bicubic thumbnail at the scale.

An estimate, made with Pillow only (no model, no server): the service's thumbnail has the same pixel count and is
a PNG too, but the model's thumbnail hides detail in its pixels and compresses a little differently.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from model.thumbnail import thumbnail_size

# scale=auto stores 32x when the photo comes back well enough from it, else 16x: estimate the larger, 16x.
AUTO_ESTIMATE_SCALE = 16


class UndecodableImage(Exception):
    """Pillow cannot read the image: the service would refuse it as corrupt."""


def estimated_thumbnail_bytes(data: bytes, scale: int) -> int:
    try:
        with warnings.catch_warnings():
            # A very large photo is the service's to refuse (too-many-pixels), not a reason to stop a dry run.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                size = thumbnail_size(image.size, scale)
                image.draft("RGB", size)  # JPEG: decode at 1/2..1/8 size directly, far faster for big photos
                thumbnail = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(str(exc) or type(exc).__name__) from exc
    buffer = io.BytesIO()
    thumbnail.save(buffer, format="PNG")
    return buffer.tell()
