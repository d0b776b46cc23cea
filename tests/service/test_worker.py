"""The worker in-process with the real tiny pipeline: several upscale jobs share UNet calls (one
``pipe.denoise`` over all their latents) and get the same pictures as one-by-one upscaling."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.tiling import Tiling
from service.dev.server import TADM_COMMAND
from service.queue.jobs import UpscaleParams, upscale_job
from service.queue.registry import ModelInfo
from service.storage import reconstruction_key, sha256_hex, uploaded_thumbnail_key
from service.wiring import build_services

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pipe():
    from model import TADMPipeline

    return TADMPipeline.from_preset("tiny", scale=16, pretrained=False)


def with_brightening_step(pipe):
    """The pipeline with a thumbnail-consistency step that visibly acts: its correction adds 0.1 (12.75 levels)."""
    import copy

    import torch

    from model.consistency import ThumbnailConsistency

    stepped = copy.copy(pipe)
    stepped.consistency = ThumbnailConsistency(scale=16, channels=8, num_layers=3)
    with torch.no_grad():
        stepped.consistency.head.bias[:3] = 0.1
    return stepped


@pytest.mark.parametrize("step", [False, True], ids=["plain", "with-consistency-step"])
async def test_upscale_jobs_are_micro_batched(pipe, settings, photos, step):
    from service.worker.process import Worker

    plain = pipe
    pipe = with_brightening_step(pipe) if step else pipe
    settings = settings.model_copy(update={"tile_size": 8, "tile_stride": 6, "tile_batch_size": 16})
    services = build_services(settings)
    worker = Worker(settings, pipe, ModelInfo(pipe.model_id, "tiny", 16, False), services)
    try:
        await worker.queue.ensure_groups(worker.streams)
        thumbs, jobs = [], []
        for name in ("small_png", "small_jpeg", "small_webp"):
            with Image.open(photos[name]) as img:
                thumb = pipe.downscale(img)
            png = thumb.to_png()
            sha = sha256_hex(png)
            services.storage.put(uploaded_thumbnail_key(sha), png)
            params = UpscaleParams(thumbnail_key=uploaded_thumbnail_key(sha), thumbnail_sha=sha, format="png")
            job = upscale_job(params, model_id=pipe.model_id, priority="interactive")
            await worker.queue.enqueue(job)
            thumbs.append(thumb)
            jobs.append(job)

        calls: list[int] = []
        original = pipe.denoise

        def counting_denoise(latents, tiling, *args, **kwargs):  # a spy: records, then runs the real method
            calls.append((len(latents), tiling))
            return original(latents, tiling, *args, **kwargs)

        pipe.denoise = counting_denoise
        try:
            entries = await worker.queue.read(worker.name, worker.streams, count=4, block_ms=100)
            assert len(entries) == 3
            await worker.process(entries)
        finally:
            del pipe.denoise
        # One tiled pass over the three jobs' latents, with the settings' tiling passed whole.
        assert calls == [(3, Tiling(tile_size=8, tile_stride=6, tile_batch_size=16))]

        for job, thumb in zip(jobs, thumbs, strict=True):
            done = await worker.queue.get(job.id)
            assert done.status == "succeeded" and done.attempts == 1
            key = reconstruction_key(job.model_id, job.params.thumbnail_sha, job.params.format)
            batched = np.asarray(Image.open(io.BytesIO(services.storage.get(key))), dtype=np.int16)
            alone = np.asarray(pipe.upscale(thumb, tiling=Tiling(tile_size=8, tile_stride=6, tile_batch_size=1)),
                               dtype=np.int16)
            assert batched.shape == alone.shape
            assert np.abs(batched - alone).max() <= 1  # batching never changes a result (up to rounding)
            if step:  # the worker's batched path applies the step, not only pipe.upscale
                without = np.asarray(plain.upscale(thumb, tiling=Tiling(tile_size=8, tile_stride=6)), dtype=np.int16)
                assert 8 < float(batched.mean() - without.mean()) < 13
        assert not worker.in_flight
    finally:
        await services.close()


def test_the_worker_registers_what_its_weights_measured(pipe, settings, tmp_path):
    import json

    from model.plain_rule import PlainRule
    from service.worker.loading import load_model

    model_dir = pipe.save_pretrained(tmp_path / "model")
    record = {"model_id": pipe.model_id, "set": "kodak", "methods": {
        "tadm-tiny": {"images": 24, "psnr_y": 23.2, "ms_ssim_y": 0.74},
        "bicubic": {"images": 24, "psnr_y": 23.0, "ms_ssim_y": 0.72}}}
    stale = {**record, "model_id": "0000000000000000", "methods": {**record["methods"],
                                                                  "tadm-tiny": {"images": 24, "psnr_y": 30.0}}}
    (model_dir / "training.json").write_text(json.dumps({"stages": [], "evaluations": [record, stale]}))
    _, info = load_model(settings.model_copy(update={"model": model_dir, "device": "cpu"}))
    assert info.trained and info.preview  # 23.2 dB: above bicubic, below its + 1.5 dB bar
    assert info.quality["psnr_y"] == 23.2 and info.quality["release_psnr_y"] == 24.5  # not the other weights' 30
    assert info.quality["summary"].startswith("preview model: 23.20 dB PSNR-Y on kodak (24 photos)")
    assert info.plain_rule_psnr_y is None  # no plain_rule.json
    PlainRule(40.5).save(model_dir)
    _, ruled = load_model(settings.model_copy(update={"model": model_dir, "device": "cpu"}))
    assert ruled.plain_rule_psnr_y == 40.5 and ruled.model_id == info.model_id


async def test_the_worker_keeps_the_models_tiles_for_the_knobs_it_is_not_given(settings):
    from model import TADMPipeline
    from service.worker.process import Worker

    pipe = TADMPipeline.from_preset("tiny", scale=16, pretrained=False)
    pipe.default_tiling = Tiling(tile_size=8, tile_stride=6)  # as a preset with its own tiles (nano: 80/64) says
    settings = settings.model_copy(update={"tile_batch_size": 16})
    services = build_services(settings)
    try:
        worker = Worker(settings, pipe, ModelInfo(pipe.model_id, "tiny", 16, False), services)
        assert worker.runner.tiling == Tiling(tile_size=8, tile_stride=6, tile_batch_size=16)
    finally:
        await services.close()


def test_worker_without_its_model_is_a_one_line_error(settings, tmp_path):
    missing = tmp_path / "no-such-model"
    env = {"TADM_REDIS_URL": settings.redis_url, "TADM_KEY_PREFIX": settings.key_prefix, "TADM_MODEL": str(missing),
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([*TADM_COMMAND, "worker"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tadm worker: error:") and str(missing) in last and "tadm.json" in last
    assert "Traceback" not in result.stderr


def test_a_tile_stride_above_the_models_tile_is_a_one_line_error(settings):
    """TADM_TILE_STRIDE alone passes the settings' check at start; the worker refuses it once it knows its
    model's tile size (the tiny preset's: 96), before taking any job."""
    env = {"TADM_REDIS_URL": settings.redis_url, "TADM_KEY_PREFIX": settings.key_prefix, "TADM_TILE_STRIDE": "200",
           "TADM_DEVICE": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([*TADM_COMMAND, "worker", "--preset", "tiny"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tadm worker: error: TADM_TILE_SIZE / TADM_TILE_STRIDE do not fit model")
    assert last.endswith("`tile_stride` (200) larger than `tile_size` (96) would leave gaps")
    assert "Traceback" not in result.stderr


def test_the_preset_falls_back_to_random_weights_only_when_allowed(settings, tmp_path, monkeypatch):
    # Where a scale's nano weights are not shipped (here: an empty weights folder), a worker refuses to start,
    # and the dev server (which allows random weights) runs `tiny` instead, registered as untrained.
    from model import backbones
    from model.checkpoints import ModelDirectoryError
    from service.worker.loading import load_model

    monkeypatch.setattr(backbones, "SHIPPED_WEIGHTS_DIR", tmp_path)
    strict = settings.model_copy(update={"model": None, "model_preset": "nano", "model_scale": 32, "device": "cpu",
                                         "allow_random_weights": False})
    with pytest.raises(ModelDirectoryError, match="32x"):
        load_model(strict)
    pipe, info = load_model(strict.model_copy(update={"allow_random_weights": True}))
    assert (info.preset, info.scale, info.trained, info.quality) == ("tiny", 32, False, None)


async def test_a_held_reconstruction_waits_until_released_or_cancelled(pipe, settings, photos, tmp_path):
    """The hold the end-to-end workers run with (tests.service.held_worker), what the fault tests stand on:
    while its file exists a reconstruction stays after its first UNet batch, running with its progress reported;
    it goes on when the file goes, and stops when its job is cancelled meanwhile."""
    import asyncio

    from service.worker.process import Worker
    from tests.service.held_worker import FileHold

    hold = tmp_path / "hold"
    waiting = FileHold(hold)
    # 12 latent tiles, 4 per UNet call: held after the first of three batches
    settings = settings.model_copy(update={"tile_size": 8, "tile_stride": 8, "tile_batch_size": 4})
    services = build_services(settings)
    worker = Worker(settings, pipe, ModelInfo(pipe.model_id, "tiny", 16, False), services, hold=waiting)

    async def held(name: str) -> tuple[str, asyncio.Task]:
        """Start the reconstruction of photo ``name``'s thumbnail; its job id and task, once it is held."""
        with Image.open(photos[name]) as img:
            png = pipe.downscale(img).to_png()
        sha = sha256_hex(png)
        services.storage.put(uploaded_thumbnail_key(sha), png)
        params = UpscaleParams(thumbnail_key=uploaded_thumbnail_key(sha), thumbnail_sha=sha, format="png")
        job = upscale_job(params, model_id=pipe.model_id, priority="interactive")
        await worker.queue.enqueue(job)
        entries = await worker.queue.read(worker.name, worker.streams, count=1, block_ms=100)
        task = asyncio.create_task(worker.process(entries))
        while job.id not in waiting.holding:
            if task.done():
                task.result()  # raises what went wrong, if anything
                raise AssertionError("the reconstruction ran to its end while the hold file existed")
            await asyncio.sleep(0.01)
        return job.id, task

    try:
        await worker.queue.ensure_groups(worker.streams)
        hold.touch()
        released, task = await held("small_png")
        assert worker.in_flight.progress[released] == pytest.approx(0.1 + 0.8 * 4 / 12)  # after batch 1 of 3
        assert (await worker.queue.get(released)).status == "running" and not task.done()
        hold.unlink()
        await asyncio.wait_for(task, 120)
        assert (await worker.queue.get(released)).status == "succeeded" and not waiting.holding

        hold.touch()
        cancelled, task = await held("small_jpeg")
        await worker.queue.cancel(cancelled)
        worker.in_flight.cancel(cancelled)  # what the worker's monitor does when it sees the job cancelled
        await asyncio.wait_for(task, 120)  # it stops though the file is still there
        assert hold.exists() and (await worker.queue.get(cancelled)).status == "cancelled"
        done = (await worker.queue.get(released)).params
        assert services.storage.list("reconstructions/") == [reconstruction_key(pipe.model_id, done.thumbnail_sha,
                                                                                 done.format)]
    finally:
        await services.close()
