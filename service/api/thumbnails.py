"""Reading a thumbnail a client stored itself (``POST /v1/reconstructions``): its header, its metadata or the
query parameters that stand in for metadata a tool stripped, the size of the image it would reconstruct, and
the model that made it. Everything here runs before anything is stored or queued, so a refusal costs nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from model.thumbnail import LossyThumbnailError, Thumbnail, ThumbnailError, ThumbnailMismatchError
from model.thumbnail_formats import jxl_available, sniff_format

from ..errors import CorruptImage, InvalidRequest, ThumbnailMismatch, TooManyPixels, UnsupportedMediaType
from ..media import inspect_image
from ..queue.registry import ModelInfo
from ..wiring import Services


@dataclass(frozen=True)
class GivenMetadata:
    """What the client says about the thumbnail (query parameters); required where its PNG has no metadata."""

    scale: int | None = None
    width: int | None = None
    height: int | None = None
    model_id: str | None = None

    @property
    def size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width is not None and self.height is not None else None

    def check(self) -> None:
        if (self.width is None) != (self.height is None):
            raise InvalidRequest("`width` and `height` go together: give both or neither")


@dataclass(frozen=True)
class AcceptedThumbnail:
    """A thumbnail fit to queue: the bytes to store, in the format images' thumbnails are stored in (metadata
    included), and the model that reconstructs it."""

    data: bytes
    format: str
    model: ModelInfo


async def accept_thumbnail(services: Services, data: bytes, given: GivenMetadata) -> AcceptedThumbnail:
    """Check a posted thumbnail; raise the problem that refuses it, else return what to store and queue."""
    given.check()
    max_pixels = services.settings.max_image_pixels
    # 1. The header: a PNG or WebP not larger than any image we accept (a thumbnail bomb is refused undecoded;
    #    a JPEG XL's header is read by the parser, before it decodes).
    posted_format = sniff_format(data)
    if posted_format == "jxl" and not jxl_available():
        raise UnsupportedMediaType("this deployment reads no JPEG XL: post the thumbnail as PNG or lossless WebP")
    if posted_format != "jxl":
        inspect_image(data, max_pixels=max_pixels, allowed=("png", "webp"))
    # 2. Decode it with its metadata, or with the parameters standing in for stripped metadata.
    thumb = await asyncio.to_thread(_parse, data, given)
    # 3. The output: the reconstruction is width x height pixels, bounded like an upload (before any queueing).
    width, height = thumb.original_size
    if width * height > max_pixels:
        raise TooManyPixels(f"the thumbnail reconstructs a {width}x{height} image = {width * height} pixels; the "
                            f"limit is {max_pixels}", width=width, height=height, max_pixels=max_pixels)
    if posted_format == "jxl":
        await asyncio.to_thread(_check_own_jxl, thumb, data)
    # 4. The model that made it, among those workers have served; a plain thumbnail needs none (bicubic), only
    #    a worker of its scale to run the job.
    model = await (_model_for_plain(services, thumb) if thumb.plain else _model_for(services, thumb, given))
    if not thumb.plain and thumb.model_id is None:  # metadata restored from the parameters
        thumb = Thumbnail(thumb.image, thumb.scale, thumb.original_size, model.model_id)
    # 5. Stored as the service stores an image's thumbnail: the same thumbnail posted as PNG, WebP or JPEG XL, with
    #    or without its metadata, has one hash, the image's, and so one cached reconstruction. (Stripped of a colour
    #    map, model.colour_map, it is another thumbnail: its reconstruction lacks the map's correction.)
    fmt = services.settings.stored_thumbnail_format
    if posted_format == fmt == "jxl":  # shown above to be those very bytes
        return AcceptedThumbnail(data, fmt, model)
    return AcceptedThumbnail(await asyncio.to_thread(thumb.to_bytes, fmt), fmt, model)


def _check_own_jxl(thumb: Thumbnail, data: bytes) -> None:
    """No JPEG XL header tells lossless from lossy coding for sure (:mod:`model.jxl_codestream`), so a posted one
    is accepted only when it is byte for byte the service's own lossless encoding of its pixels and metadata: a
    thumbnail the service served."""
    if thumb.to_bytes("jxl") != data:
        raise UnsupportedMediaType("a JPEG XL thumbnail is accepted only as this service wrote it (whether a JPEG "
                                   "XL file was coded losslessly cannot be told from the file): post it as PNG or "
                                   "lossless WebP")


def _parse(data: bytes, given: GivenMetadata) -> Thumbnail:
    try:
        return Thumbnail.from_bytes(data, scale=given.scale, original_size=given.size)
    except ThumbnailMismatchError as exc:
        raise ThumbnailMismatch(f"the parameters contradict the thumbnail's metadata: {exc}") from exc
    except LossyThumbnailError as exc:
        raise UnsupportedMediaType(str(exc)) from exc
    except ThumbnailError as exc:
        if "no `tadm` metadata" in str(exc):
            raise InvalidRequest("the thumbnail has no `tadm` metadata (a tool stripped its text chunk?): give "
                                 "`scale`, `width` and `height` (the original's size) and `model` as query "
                                 "parameters") from exc
        if given.scale is not None or given.size is not None:
            raise InvalidRequest(f"the thumbnail does not fit the given parameters: {exc}") from exc
        raise CorruptImage(f"not a usable thumbnail: {exc}") from exc


async def _model_for_plain(services: Services, thumb: Thumbnail) -> ModelInfo:
    known = sorted((m for m in (await services.registry.known_models()).values() if m.scale == thumb.scale),
                   key=lambda m: m.model_id)
    if not known:
        raise ThumbnailMismatch(f"no worker has served scale {thumb.scale}x, which the plain thumbnail has",
                                scale=thumb.scale)
    return known[0]


async def _model_for(services: Services, thumb: Thumbnail, given: GivenMetadata) -> ModelInfo:
    known = await services.registry.known_models()
    served = ", ".join(f"{m.model_id} ({m.scale}x)" for m in known.values()) or "none yet"
    if thumb.model_id is not None and given.model_id not in (None, thumb.model_id):
        raise ThumbnailMismatch(f"the thumbnail was made by model {thumb.model_id}, not {given.model_id}",
                                model_id=thumb.model_id, scale=thumb.scale)
    wanted = thumb.model_id or given.model_id
    if wanted is None:
        # No metadata and no `model`: unambiguous only when a single known model works at this scale.
        candidates = [m for m in known.values() if m.scale == thumb.scale]
        if len(candidates) != 1:
            raise InvalidRequest(f"give `model`: the thumbnail carries no model id and {len(candidates)} known "
                                 f"models work at {thumb.scale}x; served models: {served}")
        return candidates[0]
    model = known.get(wanted)
    if model is None or model.scale != thumb.scale:
        raise ThumbnailMismatch(f"the thumbnail was made at {thumb.scale}x by model {wanted}, which no worker "
                                f"serves; served models: {served}", model_id=wanted, scale=thumb.scale)
    return model
