"""The client against a live `tadm serve --dev` (a real API, worker, Redis and storage in a subprocess).

The dev server runs the shipped `nano` model at 16x: these tests check the contract (sizes, formats, ids, errors)
and that what the server reports of its model is what the shipped weights measured, and that a reconstruction
through the whole service restores the photograph as closely as the model does in-process.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from PIL import Image as PILImage

from model.thumbnail import Thumbnail
from service.client import (
    AsyncClient,
    Client,
    Image,
    InvalidInputError,
    Job,
    JobFailedError,
    MismatchError,
    NotFoundError,
)
from service.config import Settings

pytestmark = pytest.mark.slow


def photo_crop(kodak_dir: Path, name: str, box: tuple[int, int, int, int]) -> bytes:
    """A crop of a Kodak photo as PNG bytes: a fresh upload (no duplicate), small enough to process quickly."""
    with PILImage.open(kodak_dir / name) as photo:
        buffer = io.BytesIO()
        photo.crop(box).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(size: tuple[int, int], color: tuple[int, int, int] = (120, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    PILImage.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photo(kodak_dir: Path) -> Path:
    # Not kodim23, which the browser test uploads: that test must find no cached reconstruction to short-cut.
    return kodak_dir / "kodak__kodim01.png"


@pytest.fixture(scope="module")
def uploaded(server_url: str, photo: Path) -> Image:
    """A Kodak photo uploaded once for the module (the upload is checked in `test_upload_stores_a_thumbnail`)."""
    with Client(server_url) as tadm:
        return tadm.upload(photo, scale=16)


def test_info_names_the_shipped_model_and_what_it_measured(client: Client) -> None:
    from model.backbones import SHIPPED_WEIGHTS_DIR
    from model.quality import measured_quality

    info = client.info()
    assert info.workers >= 1
    (model,) = info.models
    assert (model.preset, model.scale, model.trained) == ("nano", 16, True)
    assert info.warning is None  # a trained model runs: no untrained-model warning
    shipped = measured_quality(SHIPPED_WEIGHTS_DIR / "nano-16x", model.model_id, 16)
    assert shipped is not None, "the shipped weights have no recorded evaluation"
    assert model.quality is not None and model.quality.psnr_y == shipped.psnr_y
    assert model.quality.preview is shipped.preview
    assert (info.notice is not None) is shipped.preview
    if shipped.preview:
        assert info.notice.startswith("preview model:") and "PSNR-Y" in info.notice


def test_upload_stores_a_thumbnail(uploaded: Image, photo: Path) -> None:
    assert (uploaded.width, uploaded.height, uploaded.scale) == (768, 512, 16)
    assert uploaded.original_bytes == photo.stat().st_size
    assert 0 < uploaded.thumbnail_bytes < uploaded.original_bytes
    assert uploaded.saving == pytest.approx(1 - uploaded.thumbnail_bytes / uploaded.original_bytes)


def test_thumbnail_is_the_lossless_png_with_its_metadata(client: Client, uploaded: Image, server_url: str) -> None:
    data = client.thumbnail(uploaded.id)
    # The record counts the bytes stored, in the format the server stores (TADM_THUMBNAIL_FORMAT), not this PNG's.
    stored_format = Settings().stored_thumbnail_format  # the dev server's: the same environment decides
    stored = httpx.get(f"{server_url}/v1/images/{uploaded.id}/thumbnail", params={"format": stored_format})
    assert len(stored.content) == uploaded.thumbnail_bytes
    thumbnail = Thumbnail.from_png(data)
    assert thumbnail.image.size == (768 // 16, 512 // 16)
    assert thumbnail.original_size == (768, 512)
    assert thumbnail.model_id == uploaded.model_id


def test_duplicate_upload_returns_the_same_image(client: Client, uploaded: Image, photo: Path) -> None:
    again = client.upload(photo.read_bytes(), scale=16)
    assert again.id == uploaded.id


def test_submit_upload_then_poll_its_job(client: Client, kodak_dir: Path) -> None:
    crop = photo_crop(kodak_dir, "kodak__kodim02.png", (256, 128, 512, 384))
    submitted = client.submit_upload(crop, scale=16, wait=0)
    if isinstance(submitted, Job):  # wait=0: the service answers before the worker is done, as a rule
        assert submitted.kind == "downscale" and submitted.image_id
        job = client.wait_job(submitted, timeout=120)
        assert job.result_url and job.image_id == submitted.image_id
        submitted = client.image(job.image_id)
    assert (submitted.width, submitted.height) == (256, 256)


def test_recent_images_list_the_upload(client: Client, uploaded: Image) -> None:
    assert uploaded.id in [image.id for image in client.images(limit=10)]
    assert client.image(uploaded.id) == uploaded


def test_reconstruct_waits_for_the_full_size_image(client: Client, uploaded: Image, photo: Path) -> None:
    import numpy as np

    from model.evaluation.metrics import y_metrics

    data = client.reconstruct(uploaded.id, format="png", timeout=240)
    with PILImage.open(io.BytesIO(data)) as hr, PILImage.open(photo) as original:
        assert (hr.format, hr.size) == ("PNG", (768, 512))
        restored = np.asarray(hr.convert("RGB"))
        reference = np.asarray(original.convert("RGB"))
    # The trained model through the whole service (queue, worker, LoRA merged, cache) restores kodim01 as the
    # evaluation measured in-process (21.33 dB; bicubic at 16x 20.61 dB; the untrained tiny preset 16.2 dB).
    assert y_metrics(reference, restored)["psnr_y"] > 21.0


def test_submit_then_poll_a_reconstruction(client: Client, uploaded: Image) -> None:
    # WebP: another cache entry than the PNG above, so this runs a job unless the server answers at once.
    submitted = client.submit_reconstruct(uploaded.id, format="webp")
    if isinstance(submitted, Job):
        seen: list[Job] = []
        job = client.wait_job(submitted, timeout=240, progress=seen.append)
        assert job.status == "succeeded" and job.kind == "upscale" and job.result_url
        assert seen[-1].status == "succeeded"
        assert all(0.0 <= state.progress <= 1.0 for state in seen)
        submitted = client.result(job)
    with PILImage.open(io.BytesIO(submitted)) as hr:
        assert (hr.format, hr.size) == ("WEBP", (768, 512))


def test_cancel_a_reconstruction(client: Client, uploaded: Image) -> None:
    submitted = client.submit_reconstruct(uploaded.id, format="jpeg")
    if not isinstance(submitted, Job):
        pytest.skip("the JPEG reconstruction was already cached: nothing to cancel")
    cancelled = client.cancel_job(submitted.id)
    assert cancelled.id == submitted.id
    # A job can finish between the two requests; otherwise it is cancelled, and waiting for it says so.
    assert cancelled.status in ("cancelled", "succeeded")
    if cancelled.status == "cancelled":
        with pytest.raises(JobFailedError) as caught:
            client.wait_job(cancelled.id, timeout=10)
        assert caught.value.job.status == "cancelled"


def test_reconstruct_from_a_thumbnail_the_caller_kept(client: Client, uploaded: Image) -> None:
    data = client.reconstruct_thumbnail(client.thumbnail(uploaded.id), format="png", timeout=240)
    with PILImage.open(io.BytesIO(data)) as hr:
        assert hr.size == (768, 512)


def test_delete_then_the_image_is_gone(client: Client) -> None:
    image = client.upload(png_bytes((64, 48)), scale=16)
    client.delete(image.id)
    with pytest.raises(NotFoundError) as caught:
        client.image(image.id)
    assert caught.value.status == 404 and caught.value.slug == "not-found"
    with pytest.raises(NotFoundError):
        client.thumbnail(image.id)
    assert image.id not in [i.id for i in client.images(limit=100)]


# ---- error paths: each maps to its problem type and leaves what is stored intact ----------------------------


@pytest.mark.parametrize(
    ("payload", "slug", "status"),
    [
        (b"this is not an image at all", "unsupported-media-type", 415),
        (png_bytes((64, 64))[:60], "corrupt-image", 422),  # a PNG cut off inside its first chunk
        (png_bytes((8, 8)), "image-too-small", 422),  # smaller than the 16x scale
    ],
    ids=["not-an-image", "truncated-png", "too-small"],
)
def test_bad_files_are_refused_with_their_problem_type(client: Client, uploaded: Image, payload: bytes,
                                                       slug: str, status: int) -> None:
    with pytest.raises(InvalidInputError) as caught:
        client.upload(payload, scale=16)
    problem = caught.value.problem
    assert (problem.slug, problem.status) == (slug, status)
    assert problem.type == f"urn:tadm:problem:{slug}"
    assert problem.detail
    assert client.image(uploaded.id) == uploaded  # nothing stored was lost


def test_a_scale_the_contract_does_not_know_is_an_invalid_request(client: Client) -> None:
    with pytest.raises(InvalidInputError) as caught:
        client.upload(png_bytes((64, 64)), scale=7)
    assert caught.value.slug == "invalid-request"


def test_unknown_ids_are_not_found(client: Client) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.image("no-such-image")
    assert caught.value.type == "urn:tadm:problem:not-found"
    with pytest.raises(NotFoundError):
        client.job("no-such-job")
    with pytest.raises(NotFoundError):
        client.reconstruct("no-such-image", timeout=5)
    with pytest.raises(NotFoundError):
        client.delete("no-such-image")
    with pytest.raises(NotFoundError):  # an id is one path segment: it cannot climb to another route
        client.image("../info")


def test_a_thumbnail_of_another_model_is_a_mismatch(client: Client, uploaded: Image) -> None:
    theirs = Thumbnail.from_png(client.thumbnail(uploaded.id))
    foreign = Thumbnail(theirs.image, theirs.scale, theirs.original_size, model_id="another-model").to_png()
    with pytest.raises(MismatchError) as caught:
        client.reconstruct_thumbnail(foreign, timeout=5)
    assert (caught.value.slug, caught.value.status) == ("thumbnail-mismatch", 409)


# ---- the async twin -----------------------------------------------------------------------------------------


def test_async_client_uploads_reconstructs_and_maps_errors(server_url: str, kodak_dir: Path) -> None:
    crop = photo_crop(kodak_dir, "kodak__kodim03.png", (0, 0, 256, 192))
    seen: list[Job] = []

    async def scenario() -> tuple[Image, bytes, str]:
        # server_wait=0: the service answers 202 at once, so both waits go through the async polling loop.
        async with AsyncClient(server_url, server_wait=0, poll_interval=0.2) as tadm:
            image = await tadm.upload(crop, scale=16, progress=seen.append)
            # JPEG: verification cached the first PNG and WebP, so this one is made by a job
            data = await tadm.reconstruct(image.id, format="jpeg", timeout=240, progress=seen.append)
            try:
                await tadm.upload(b"not an image", scale=16)
            except InvalidInputError as exc:
                return image, data, exc.slug
            raise AssertionError("a bad file was accepted")

    image, data, slug = asyncio.run(scenario())
    assert (image.width, image.height) == (256, 192)
    with PILImage.open(io.BytesIO(data)) as hr:
        assert hr.size == (256, 192)
    assert slug == "unsupported-media-type"
    assert [job.kind for job in seen if job.status == "succeeded"] == ["downscale", "upscale"]
