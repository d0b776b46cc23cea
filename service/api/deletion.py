"""Deleting an image: nothing of it may be computed, stored or served afterwards.

Its downscale job (while the thumbnail is being made) and its reconstruction jobs (one per format) are
cancelled; a worker that is already past its last cancellation check finds the job cancelled when it reports
success and takes back what it stored (``service.worker.batch``). The thumbnail, its reconstructions and their
width variants go with the last image that uses the thumbnail: images whose uploads have identical pixels share
one content-addressed thumbnail, and its reconstructions are theirs too.
"""

from __future__ import annotations

import asyncio
import re

from ..errors import NotFound
from ..media import MEDIA_TYPES
from ..queue.jobs import upscale_job_id
from ..storage import original_key, reconstruction_key
from ..storage.records import ImageRecord
from ..wiring import Services
from .variants import remove_variants

IMAGE_ID = re.compile(r"^[0-9a-f]{20}$")


async def delete_image(services: Services, image_id: str) -> None:
    """Delete image ``image_id``, stored or still being made; ``NotFound`` when it is neither."""
    known = IMAGE_ID.match(image_id) is not None
    record = await services.records.get(image_id) if known else None
    upload_job = await services.records.upload_job(image_id) if known else None
    if record is None and upload_job is None:
        raise NotFound(f"no image with id {image_id!r}")
    if upload_job is not None:
        await services.queue.cancel(upload_job)  # no-op once it finished
        await services.records.forget_upload_job(image_id)
    await asyncio.to_thread(services.storage.delete, original_key(image_id))
    if record is not None and await services.records.delete(record) == 0:
        await _delete_thumbnail_and_outputs(services, record)


async def _delete_thumbnail_and_outputs(services: Services, record: ImageRecord) -> None:
    for fmt in MEDIA_TYPES:
        await services.queue.cancel(upscale_job_id(record.thumbnail_sha, record.model_id, fmt))
    await asyncio.to_thread(services.storage.delete, record.thumbnail_key)
    for fmt in MEDIA_TYPES:
        await services.cache.remove(reconstruction_key(record.model_id, record.thumbnail_sha, fmt))
    await remove_variants(services, record.model_id, record.thumbnail_sha)
