"""Width-bounded variants of a reconstruction (``?w=``): the cached reconstruction scaled down to at most ``w``
pixels wide (aspect kept, never enlarged), encoded in the same format and cached under its own content key in the
reconstruction cache's budget. No model runs for a variant: it is derived from the one reconstruction, and the
first request of each (reconstruction, width) pays a resize in a thread of the API process."""

from __future__ import annotations

import asyncio
import io

from PIL import Image

from ..errors import InvalidRequest
from ..media import encode_image
from ..storage import variant_key, variants_prefix
from ..wiring import Services


def check_width(services: Services, width: int | None) -> None:
    allowed = services.settings.variant_width_list
    if width is not None and width not in allowed:
        raise InvalidRequest(f"`w` must be one of {allowed} but is {width} (TADM_VARIANT_WIDTHS)")


async def width_variant(services: Services, model_id: str, thumbnail_sha: str, fmt: str, width: int,
                        source: bytes) -> bytes:
    """The variant of reconstruction ``source`` at most ``width`` wide: from the cache, else made and cached."""
    key = variant_key(model_id, thumbnail_sha, width, fmt)
    data = await services.cache.get(key)
    if data is not None:
        return data
    data = await asyncio.to_thread(_scaled_down, source, width, fmt)
    if data is not source:
        await services.cache.put(key, data)
    return data


def _scaled_down(source: bytes, width: int, fmt: str) -> bytes:
    with Image.open(io.BytesIO(source)) as img:
        if img.width <= width:  # already narrow enough: the reconstruction itself (same ETag)
            return source
        height = max(1, round(img.height * width / img.width))
        return encode_image(img.convert("RGB").resize((width, height), Image.Resampling.LANCZOS), fmt)


async def remove_variants(services: Services, model_id: str, thumbnail_sha: str) -> None:
    """Every cached variant of the reconstructions of one thumbnail (when its image is deleted)."""
    keys = await asyncio.to_thread(services.storage.list, variants_prefix(model_id, thumbnail_sha))
    for key in keys:
        await services.cache.remove(key)
