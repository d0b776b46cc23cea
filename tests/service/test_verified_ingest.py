"""Verified ingest with real pipelines in-process: the tiny preset's random weights give photos back as noise
(so the plain thumbnail must be stored), the shipped nano model gives a textured photo back better than bicubic
(so its thumbnail is kept, held within the bound on its deviation from a bicubic thumbnail); the record carries what was measured, the first ``/full`` is cached, the original
goes only once the image is final, and ``scale=auto`` hands a job from the 32x model to the 16x one."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.evaluation.metrics import block_deviations, psnr, rgb_to_y
from model.thumbnail import Thumbnail, plain_thumbnail, plain_thumbnail_image, plain_upscale
from service.queue.jobs import DownscaleParams, downscale_job
from service.queue.registry import ModelInfo, WorkerInfo
from service.storage import original_key, reconstruction_key, sha256_hex
from service.storage.records import image_id_for
from service.wiring import build_services

pytestmark = pytest.mark.anyio
NANO_16X = Path(__file__).resolve().parents[2] / "model" / "weights" / "nano-16x"


@pytest.fixture(scope="module")
def tiny16():
    from model import TADMPipeline

    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


@pytest.fixture(scope="module")
def tiny32():
    from model import TADMPipeline

    return TADMPipeline.from_preset("tiny", scale=32, pretrained=False)


class Run:
    """One in-process worker on a pipeline, with the services it writes to."""

    def __init__(self, settings, pipe, preset: str = "tiny") -> None:
        from service.worker.process import Worker

        self.settings, self.pipe = settings, pipe
        self.services = build_services(settings)
        self.worker = Worker(settings, pipe, ModelInfo(pipe.model_id, preset, pipe.scale, False), self.services)

    async def register(self) -> None:
        await self.worker.queue.ensure_groups(self.worker.streams)
        await self.worker.registry.heartbeat(WorkerInfo(self.worker.name, self.worker.model, time.time()), 60)

    async def upload(self, data: bytes, **extra) -> str:
        """Store an original and enqueue its downscale as the API does; the job id."""
        sha = sha256_hex(data)
        image_id = image_id_for(sha, self.pipe.model_id, self.pipe.scale)
        self.services.storage.put(original_key(image_id), data)
        params = DownscaleParams(image_id=image_id, input_key=original_key(image_id), original_bytes=len(data),
                                 original_sha256=sha, **extra)
        job = downscale_job(params, original_sha=sha, model_id=self.pipe.model_id, scale=self.pipe.scale,
                            priority="interactive")
        await self.services.queue.enqueue(job)
        return job.id

    async def step(self) -> int:
        entries = await self.worker.queue.read(self.worker.name, self.worker.streams, count=4, block_ms=100)
        await self.worker.process(entries)
        return len(entries)

    async def ingest(self, data: bytes):
        """Register, upload, run the downscale: the image record it leaves."""
        await self.register()
        job_id = await self.upload(data)
        await self.step()
        return await self.services.records.get((await self.services.queue.get(job_id)).params.image_id)

    async def close(self) -> None:
        await self.services.close()


def _crop(photos, box) -> tuple[bytes, np.ndarray]:
    with Image.open(photos["full_png"]) as img:
        image = img.convert("RGB").crop(box)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue(), np.asarray(image)


async def test_a_thumbnail_that_gives_the_photo_back_worse_than_bicubic_is_stored_plain(tiny16, settings, photos, api):
    run = Run(settings, tiny16)
    try:
        await run.register()
        data, original = _crop(photos, (0, 0, 320, 256))
        job_id = await run.upload(data)
        assert await run.step() == 1
        job = await run.services.queue.get(job_id)
        assert job.status == "succeeded", job.error
        record = await run.services.records.get(job.params.image_id)
        # Random weights reconstruct noise: far below bicubic, so the plain thumbnail is what is kept.
        quality = record.quality
        assert record.method == "plain" and quality["method"] == "plain"
        expected = plain_upscale(plain_thumbnail(Image.fromarray(original), 16))
        bicubic = psnr(rgb_to_y(original), rgb_to_y(np.asarray(expected)))
        assert quality["psnr_y"] == pytest.approx(bicubic, abs=1e-3)
        assert quality["bicubic_psnr_y"] == pytest.approx(bicubic, abs=1e-3)
        assert 0 < quality["ms_ssim_y"] <= 1 and quality["ssimulacra2"] < 100
        # The stored thumbnail is marked plain in its PNG and holds bicubic's pixels.
        stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
        assert stored.plain and stored.model_id is None and stored.original_size == (320, 256)
        assert np.array_equal(np.asarray(stored.image), np.asarray(plain_thumbnail(Image.fromarray(original), 16).image))
        # The verifying reconstruction is the first /full, in both default formats; the original is gone.
        for fmt in ("png", "webp"):
            assert run.services.storage.exists(reconstruction_key(tiny16.model_id, record.thumbnail_sha, fmt))
        cached = run.services.storage.get(reconstruction_key(tiny16.model_id, record.thumbnail_sha, "png"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(cached)).convert("RGB")), np.asarray(expected))
        assert not run.services.storage.exists(original_key(record.id))
        # The API shows it, the totals count it, and a re-sent file is found by its content hash.
        body = (await api.get(f"/v1/images/{record.id}")).json()
        assert body["method"] == "plain" and body["quality"]["psnr_y"] == pytest.approx(quality["psnr_y"])
        stats = (await api.get("/v1/stats")).json()
        assert stats["images"] == 1 and stats["fallbacks"] == 1 and stats["verified"] == 1
        assert stats["original_bytes"] == len(data) and stats["stored_bytes"] == record.thumbnail_bytes
        assert stats["saving"] == pytest.approx(1 - record.thumbnail_bytes / len(data), abs=1e-6)
        found = (await api.get("/v1/images", params={"sha256": sha256_hex(data)})).json()["items"]
        assert [item["id"] for item in found] == [record.id]
        metrics = (await api.get("/metrics")).text
        assert 'tadm_store{total="fallbacks"} 1.0' in metrics
        assert (await api.delete(f"/v1/images/{record.id}")).status_code == 204
        assert (await api.get("/v1/stats")).json()["images"] == 0
    finally:
        await run.close()


async def test_a_plain_thumbnail_is_reconstructed_by_bicubic_on_any_read(tiny16, settings, photos):
    run = Run(settings.model_copy(update={"verify_cached_formats": ""}), tiny16)
    try:
        data, original = _crop(photos, (128, 64, 448, 320))
        record = await run.ingest(data)
        key = reconstruction_key(tiny16.model_id, record.thumbnail_sha, "png")
        assert record.method == "plain" and not run.services.storage.exists(key)  # nothing cached by request
        from service.queue.jobs import UpscaleParams, upscale_job

        params = UpscaleParams(record.thumbnail_key, record.thumbnail_sha, "png", image_id=record.id)
        job = upscale_job(params, model_id=tiny16.model_id, priority="interactive")
        await run.services.queue.enqueue(job)
        await run.step()
        made = np.asarray(Image.open(io.BytesIO(run.services.storage.get(key))).convert("RGB"))
        expected = plain_upscale(plain_thumbnail(Image.fromarray(original), 16))
        assert np.array_equal(made, np.asarray(expected))
    finally:
        await run.close()


@pytest.fixture(scope="module")
def nano16():
    from model import TADMPipeline

    return TADMPipeline.from_pretrained(NANO_16X, device="cpu")


async def test_a_thumbnail_that_gives_the_photo_back_is_kept(nano16, settings, photos):
    nano = nano16
    run = Run(settings, nano, preset="nano")
    try:
        data, _ = _crop(photos, (256, 128, 512, 384))  # textured: where the model beats bicubic
        record = await run.ingest(data)
        quality = record.quality
        assert record.method == "tadm" and quality["psnr_y"] >= quality["bicubic_psnr_y"] - 0.5
        assert 0 < quality["thumbnail_deviation"] <= settings.verify_thumbnail_max_deviation
        assert quality["thumbnail_pulled_in"] is False  # within the bound as made: stored as made
        stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
        assert not stored.plain and stored.model_id == nano.model_id
        cached = run.services.storage.get(reconstruction_key(nano.model_id, record.thumbnail_sha, "png"))
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(cached))), np.asarray(nano.upscale(stored)))
    finally:
        await run.close()


async def test_the_colour_map_verification_fits_is_stored_and_served_and_raises_quality(nano16, settings, photos):
    data, original = _crop(photos, (256, 128, 512, 384))  # textured: the model's thumbnail is kept
    run = Run(settings, nano16, preset="nano")
    try:
        record = await run.ingest(data)
        stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
        cached = run.services.storage.get(reconstruction_key(nano16.model_id, record.thumbnail_sha, "png"))
    finally:
        await run.close()
    assert record.method == "tadm" and stored.colour_map is not None  # on by default
    assert record.quality["colour_map"] is True
    assert record.quality["colour_lattice"] == (None if stored.colour_lattice is None else
                                                "{}x{}".format(*stored.colour_lattice[:2]))
    served = np.asarray(nano16.upscale(stored))
    # the first /full is what any later read of the stored thumbnail gives, map and all, and what was measured
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(cached))), served)
    assert record.quality["psnr_y"] == pytest.approx(psnr(rgb_to_y(original), rgb_to_y(served)), abs=1e-3)
    # the map raised the quality, and the pixels are the model's (only the metadata grew, by 12 numbers)
    without = stored.with_colour_map(None)
    assert record.quality["psnr_y"] > psnr(rgb_to_y(original), rgb_to_y(np.asarray(nano16.upscale(without))))
    learned = nano16.downscale(Image.fromarray(original))
    assert np.array_equal(np.asarray(stored.image), np.asarray(learned.image))
    assert 0 < record.thumbnail_bytes - len(without.to_png()) < 200


async def test_with_the_colour_map_off_the_thumbnail_is_stored_as_the_model_made_it(nano16, settings, photos):
    data, original = _crop(photos, (256, 128, 512, 384))
    run = Run(settings.model_copy(update={"verify_colour_map": False}), nano16, preset="nano")
    try:
        record = await run.ingest(data)
        stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
    finally:
        await run.close()
    assert record.method == "tadm" and stored.colour_map is None
    assert record.quality["colour_map"] is False and record.quality["colour_lattice"] is None
    assert stored.to_png() == nano16.downscale(Image.fromarray(original)).to_png()


async def test_a_blotch_beyond_the_bound_is_pulled_in_and_the_rest_of_the_thumbnail_kept(nano16, settings, photos):
    # The same photo as above, with a bound its thumbnail meets on most blocks but not all.
    data, original = _crop(photos, (256, 128, 512, 384))
    learned = np.asarray(nano16.downscale(Image.fromarray(original)).image)
    reference = np.asarray(plain_thumbnail_image(Image.fromarray(original), 16))
    blocks = block_deviations(reference, learned)
    bound = float(np.percentile(blocks, 90))  # a tenth of the blocks go beyond it
    run = Run(settings.model_copy(update={"verify_thumbnail_max_deviation": bound}), nano16, preset="nano")
    try:
        record = await run.ingest(data)
        assert record.method == "tadm" and record.quality["thumbnail_deviation"] <= bound
        assert record.quality["thumbnail_pulled_in"] is True
        assert record.quality["psnr_y"] >= record.quality["bicubic_psnr_y"] - 0.5
        stored = np.asarray(Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key)).image)
        untouched = np.ones(learned.shape[:2], bool)
        for y, x in zip(*np.nonzero(blocks > bound), strict=True):
            untouched[y:y + 4, x:x + 4] = False
        assert untouched.any() and np.array_equal(stored[untouched], learned[untouched])
        assert not np.array_equal(stored, learned)
    finally:
        await run.close()


async def test_a_thumbnail_that_cannot_stay_near_a_thumbnail_and_give_the_photo_back_is_stored_plain(
        nano16, settings, photos):
    # Half a level: the thumbnail pulled in is the bicubic one, from which the model cannot rebuild the photo.
    run = Run(settings.model_copy(update={"verify_thumbnail_max_deviation": 0.5}), nano16, preset="nano")
    try:
        data, _ = _crop(photos, (256, 128, 512, 384))
        record = await run.ingest(data)
        assert record.method == "plain" and record.quality["thumbnail_deviation"] == 0.0
        assert Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key)).plain
    finally:
        await run.close()


async def test_without_verification_the_models_thumbnail_is_stored_unmeasured(tiny16, settings, photos):
    run = Run(settings.model_copy(update={"verify_uploads": False}), tiny16)
    try:
        data, _ = _crop(photos, (0, 0, 256, 192))
        record = await run.ingest(data)
        assert record.quality is None and record.method == "tadm"
        assert not run.services.storage.exists(reconstruction_key(tiny16.model_id, record.thumbnail_sha, "png"))
        assert (await run.services.records.totals())["verified"] == 0
    finally:
        await run.close()


async def test_a_photo_the_models_plain_rule_makes_plain_is_recorded_plain_even_unverified(tiny16, settings, photos):
    import copy

    from model.plain_rule import PlainRule

    ruled = copy.copy(tiny16)
    ruled.plain_rule = PlainRule(40.0)
    run = Run(settings.model_copy(update={"verify_uploads": False}), ruled)
    try:
        _, sharp = _crop(photos, (0, 0, 320, 256))
        # out of focus: bicubic from its 16x thumbnail gives it back nearly exactly, so the rule applies
        blurred = Image.fromarray(sharp).resize((20, 16), Image.Resampling.BOX).resize((320, 256),
                                                                                Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        blurred.save(buf, format="PNG")
        record = await run.ingest(buf.getvalue())
        assert record.method == "plain" and record.quality is not None
        assert record.quality["psnr_y"] == pytest.approx(record.quality["bicubic_psnr_y"], abs=1e-3)
        assert record.quality["bicubic_psnr_y"] > 40
        stored = Thumbnail.from_bytes(run.services.storage.get(record.thumbnail_key))
        assert stored.plain and np.array_equal(np.asarray(stored.image), np.asarray(plain_thumbnail_image(blurred, 16)))
        assert (await run.services.records.totals())["fallbacks"] == 1
        # a textured photo still gets the model's thumbnail, unmeasured
        png, _ = _crop(photos, (0, 0, 256, 192))
        textured = await run.ingest(png)
        assert textured.method == "tadm" and textured.quality is None
    finally:
        await run.close()


async def test_scale_auto_hands_a_missed_target_to_the_next_scale_then_stores_plain(tiny16, tiny32, settings, photos):
    settings = settings.model_copy(update={"verify_thumbnail_max_deviation": 255})  # random weights: noisy thumbnails
    run32, run16 = Run(settings, tiny32), Run(settings, tiny16)
    try:
        await run32.register()
        await run16.register()
        data, _ = _crop(photos, (0, 0, 384, 256))
        # A target noise cannot meet: 32x misses and hands over, 16x misses and is last: plain 16x is stored.
        job_id = await run32.upload(data, auto=True, next_scales=(16,), min_psnr_y=60.0)
        assert await run32.step() == 1
        handed = await run32.services.queue.get(job_id)
        assert handed.status == "queued" and handed.model_id == tiny16.model_id and handed.attempts == 0
        assert run32.services.storage.exists(original_key(handed.params.image_id))  # not final: kept
        assert await run16.step() == 1
        done = await run16.services.queue.get(job_id)
        assert done.status == "succeeded"
        record = await run16.services.records.get(done.params.image_id)
        assert record.auto and record.scale == 16 and record.method == "plain"
        assert not run16.services.storage.exists(original_key(record.id))

        # A target the first candidate meets: 32x is kept at once, nothing handed over.
        data, _ = _crop(photos, (384, 256, 768, 512))
        job_id = await run32.upload(data, auto=True, next_scales=(16,), min_psnr_y=0.0)
        await run32.step()
        done = await run32.services.queue.get(job_id)
        record = await run32.services.records.get(done.params.image_id)
        assert done.status == "succeeded" and record.scale == 32 and record.method == "tadm"
        assert await run16.step() == 0
    finally:
        await run32.close()
        await run16.close()


async def test_scale_auto_keeps_a_plain_thumbnail_the_rule_made_when_it_meets_the_target(tiny16, tiny32, settings, photos):
    import copy

    from model.plain_rule import PlainRule

    ruled32 = copy.copy(tiny32)
    ruled32.plain_rule = PlainRule(36.0)
    run32, run16 = Run(settings, ruled32), Run(settings, tiny16)
    try:
        await run32.register()
        await run16.register()
        _, sharp = _crop(photos, (0, 0, 384, 256))
        soft = Image.fromarray(sharp).resize((12, 8), Image.Resampling.BOX).resize((384, 256), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        soft.save(buf, format="PNG")
        # Random weights would miss a 35 dB target at both scales; the rule's plain 32x thumbnail meets it at once.
        job_id = await run32.upload(buf.getvalue(), auto=True, next_scales=(16,), min_psnr_y=35.0)
        assert await run32.step() == 1
        done = await run32.services.queue.get(job_id)
        record = await run32.services.records.get(done.params.image_id)
        assert done.status == "succeeded" and record.scale == 32 and record.method == "plain"
        assert record.quality["psnr_y"] == pytest.approx(record.quality["bicubic_psnr_y"], abs=1e-3)
        assert record.quality["psnr_y"] >= 36.0
        assert await run16.step() == 0  # nothing handed over
    finally:
        await run32.close()
        await run16.close()
