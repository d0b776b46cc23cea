"""Faults through real processes: poison jobs, cancellation, a full queue, a Redis restart, kill -9 (on the
single Redis and on the Redis Cluster) and SIGTERM of workers. Runs after the flow tests (file order); the
last tests stop workers.

A test that must act on a running job holds it mid-run (``stack.hold_jobs()``), so it never races the worker:
on any machine, however fast, the job is running when the test cancels it, kills its worker or stops it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from service.config import Settings
from service.queue.job_queue import JobQueue
from service.queue.jobs import DownscaleParams, Job
from service.redis_client import connect

pytestmark = pytest.mark.slow


def _upload(c, path, wait=120):
    r = c.post("/v1/images", headers={"Prefer": f"wait={wait}"}, files={"file": (path.name, path.read_bytes())})
    assert r.status_code == 201, r.text
    return r.json()


def _job_field(stack, job_id: str, field: str) -> str | None:
    client = stack.redis()
    try:
        value = client.hget(stack.keys.job(job_id), field)
        return value.decode() if value else None
    finally:
        client.close()


def _thumbnail_sha(stack, image_id: str) -> str:
    client = stack.redis()
    try:
        return json.loads(client.get(stack.keys.image(image_id)))["thumbnail_sha"]
    finally:
        client.close()


def _photo(photos, tmp_path: Path, box: tuple[int, int, int, int]) -> Path:
    """A crop of a Kodak photo no other test of the stack uploads: its reconstruction is not cached yet."""
    path = tmp_path / f"crop-{'-'.join(map(str, box))}.png"
    with Image.open(photos["full_png"]) as img:
        img.convert("RGB").crop(box).save(path)
    return path


def _held_reconstruction(stack, c, image: dict, fmt: str) -> dict:
    """Ask for a reconstruction (inside ``stack.hold_jobs()``); its job, once a worker holds it mid-run."""
    r = c.get(image["full_url"], params={"format": fmt})
    assert r.status_code == 202, r.text  # a fresh image: nothing cached
    return stack.held_job(c, r.json()["id"])


def _worker_counter(stack, name: str, sample: str) -> float:
    """A sample of a worker's Prometheus endpoint (0 until it is first counted)."""
    text = httpx.get(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.1)


@contextlib.contextmanager
def paused_workers(stack):
    """SIGSTOP every worker (a busy or frozen pool), SIGCONT on exit."""
    stack.signal_workers(signal.SIGSTOP)
    try:
        yield
    finally:
        stack.signal_workers(signal.SIGCONT)


def test_poison_job_is_dead_lettered_after_max_attempts(stack):
    stack.ensure_workers(1)
    with stack.client() as c:
        model_id = c.get("/v1/info").json()["models"][0]["model_id"]
    # The job's input is a directory where a file should be: every read fails with an OSError, a fault the
    # worker retries (a storage hiccup) until it gives up.
    image_id = "feedfacefeedfacefeed"
    (stack.storage_dir / "originals" / image_id).mkdir(parents=True)
    job = Job(id="0123456789abcdef01234567", model_id=model_id, priority="interactive",
              params=DownscaleParams(image_id=image_id, input_key=f"originals/{image_id}", original_bytes=1))

    async def enqueue():
        redis = connect(stack.settings)
        try:
            await JobQueue(redis, stack.keys).enqueue(job)
        finally:
            await redis.aclose()

    asyncio.run(enqueue())
    with stack.client() as c:
        final = stack.wait_job(c, job.id, ("failed",), timeout=60)
        assert final["attempts"] == 3
        assert final["error"]["type"] == "urn:tadm:problem:job-failed"
        assert "IsADirectoryError" in final["error"]["detail"] or "directory" in final["error"]["detail"]
        assert c.get("/readyz").status_code == 200
    client = stack.redis()
    try:
        entries = client.xrange(stack.keys.dead_letter)
        dead = [{k.decode(): v.decode() for k, v in f.items()} for _, f in entries]
    finally:
        client.close()
    assert [d["job"] for d in dead] == [job.id]
    (stack.storage_dir / "originals" / image_id).rmdir()


def test_cancelled_job_stops_and_stores_nothing(stack, photos, tmp_path):
    stack.ensure_workers(1)
    cancelled_sample = 'tadm_worker_jobs_total{kind="upscale",outcome="cancelled"}'
    with stack.client() as c:
        image = _upload(c, _photo(photos, tmp_path, (0, 0, 384, 256)))
        with stack.hold_jobs():
            job = _held_reconstruction(stack, c, image, "jpeg")
            worker = _job_field(stack, job["id"], "worker")
            before = _worker_counter(stack, worker, cancelled_sample)
            cancelled = c.delete(f"/v1/jobs/{job['id']}")
            assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
            # The worker notices between UNet batches (still held: only the cancellation lets the job go on)
            # and drops the job.
            _wait_for(lambda: _worker_counter(stack, worker, cancelled_sample) == before + 1,
                      f"worker {worker} dropping the cancelled job")
        result = f"reconstructions/{image['model_id']}/{_thumbnail_sha(stack, image['id'])}.jpeg"
        assert not (stack.storage_dir / result).exists()  # it stored nothing
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
        # ... and is free for the next one.
        follow_up = _upload(c, photos["small_webp"])
        assert c.get(follow_up["full_url"], headers={"Prefer": "wait=120"}).status_code == 200


async def _queue_full_checks(stack, photos) -> tuple[str, int]:
    from service.api.app import create_app

    # A second API replica on the same Redis and storage, configured with a queue bound of one job.
    settings = Settings(redis_url=stack.redis_url, key_prefix=stack.prefix, storage_dir=stack.storage_dir,
                        queue_max_length=1, upload_wait_seconds=0, retry_after_seconds=7)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica") as c:
            # A new replica counts a worker once it renewed its heartbeat (as /readyz does): wait for that, then
            # freeze the pool so that the first job stays queued.
            deadline = time.monotonic() + 30
            while (await c.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "the worker never renewed its heartbeat"
                await asyncio.sleep(0.2)
            stack.signal_workers(signal.SIGSTOP)
            first = await c.post("/v1/images", params={"priority": "background"},
                                 files={"file": ("a.png", photos["tiny_full_a"].read_bytes())})
            assert first.status_code == 202, first.text
            second = await c.post("/v1/images", params={"priority": "background"},
                                  files={"file": ("b.png", photos["tiny_full_b"].read_bytes())})
            return first.json()["id"], second.status_code, second.headers.get("retry-after"), second.json()


def test_full_queue_answers_503_and_keeps_the_queued_job(stack, photos, tmp_path):
    stack.ensure_workers(1)
    for name, box in (("tiny_full_a", (0, 0, 160, 96)), ("tiny_full_b", (160, 0, 320, 96))):
        path = tmp_path / f"{name}.png"
        with Image.open(photos["full_png"]) as img:
            img.crop(box).save(path)
        photos = {**photos, name: path}
    try:
        job_id, status, retry_after, problem = asyncio.run(_queue_full_checks(stack, photos))  # pauses the workers
    finally:
        stack.signal_workers(signal.SIGCONT)
    assert status == 503 and retry_after == "7"
    assert problem["type"] == "urn:tadm:problem:queue-full"
    with stack.client() as c:
        done = stack.wait_job(c, job_id, ("succeeded",), timeout=60)
        assert c.get(f"/v1/images/{done['image_id']}").status_code == 200
    assert not list(stack.storage_dir.glob("originals/*"))  # the refused upload left no original behind


def test_redis_restart_with_aof_loses_nothing(stack, photos, tmp_path):
    stack.ensure_workers(1)
    path = tmp_path / "aof.png"
    with Image.open(photos["full_png"]) as img:
        img.crop((320, 0, 512, 160)).save(path)
    with stack.client() as c:
        before = [i["id"] for i in c.get("/v1/images", params={"limit": 100}).json()["items"]]
        with paused_workers(stack):
            r = c.post("/v1/images", headers={"Prefer": "wait=0"}, files={"file": ("aof.png", path.read_bytes())})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            stack.redis_server.restart()  # SIGTERM, then a fresh server replaying the append-only file
        done = stack.wait_job(c, job_id, ("succeeded",), timeout=90)
        after = [i["id"] for i in c.get("/v1/images", params={"limit": 100}).json()["items"]]
        assert set(before) <= set(after) and done["image_id"] in after
        assert c.get(f"/v1/images/{done['image_id']}/thumbnail").status_code == 200


def test_kill_9_mid_job_is_reclaimed_and_stored_once(any_stack, photos, tmp_path):
    stack = any_stack  # on the single Redis, then on the Redis Cluster
    stack.ensure_workers(2)
    with stack.client() as c:
        image = _upload(c, _photo(photos, tmp_path, (384, 0, 768, 256)))
        with stack.hold_jobs():
            job = _held_reconstruction(stack, c, image, "png")
            victim = _job_field(stack, job["id"], "worker")
            os.kill(stack.workers[victim].pid, signal.SIGKILL)
            stack.workers[victim].wait(10)
        # Its heartbeat lapses; a live worker reclaims the entry and runs the job again.
        done = stack.wait_job(c, job["id"], ("succeeded",), timeout=120)
        assert done["attempts"] == 2
        assert _job_field(stack, job["id"], "worker") != victim
        full = c.get(image["full_url"])
        assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).size == (384, 256)
    model_id = image["model_id"]
    results = [p for p in (stack.storage_dir / "reconstructions" / model_id).iterdir() if p.suffix == ".png"]
    thumb_sha = _thumbnail_sha(stack, image["id"])
    assert [p.name for p in results if p.name.startswith(thumb_sha)] == [f"{thumb_sha}.png"]
    assert not list((stack.storage_dir / "reconstructions").rglob(".tmp-*"))


def test_sigterm_drains_the_batch_in_hand(stack, photos, tmp_path):
    stack.ensure_workers(1)
    with stack.client() as c:
        image = _upload(c, _photo(photos, tmp_path, (0, 256, 384, 512)))
        with stack.hold_jobs():
            job = _held_reconstruction(stack, c, image, "webp")
            name = _job_field(stack, job["id"], "worker")
            proc = stack.workers[name]
            proc.send_signal(signal.SIGTERM)
            _wait_for(lambda: "stopping after the current batch" in stack.log(name), f"{name} stopping")
        assert proc.wait(120) == 0
        final = c.get(f"/v1/jobs/{job['id']}").json()
        assert final["status"] == "succeeded" and final["attempts"] == 1  # finished by the same worker
        assert name not in stack.live_worker_names()  # it unregistered on the way out


def test_kill_9_mid_verification_keeps_the_original_until_the_image_is_final(stack, photos, tmp_path):
    """A verifying worker killed while it reconstructs the new thumbnail: nothing is stored yet and the original
    is kept; another worker finishes the job, and only then is the original deleted."""
    stack.stop_workers()  # the stack's workers do not verify: these two do
    try:
        with stack.client() as c:
            with stack.hold_jobs():
                victim = stack.start_worker(verify=True)
                stack.wait_for_workers(1)
                path = _photo(photos, tmp_path, (128, 128, 448, 384))
                r = c.post("/v1/images", headers={"Prefer": "wait=0"}, files={"file": (path.name, path.read_bytes())})
                assert r.status_code == 202, r.text
                job = r.json()
                # Past the downscale (0.1) and into the verifying reconstruction's tiles.
                _wait_for(lambda: c.get(f"/v1/jobs/{job['id']}").json()["progress"] > 0.1, "verification running")
                original = stack.storage_dir / "originals" / job["image_id"]
                assert original.is_file() and c.get(f"/v1/images/{job['image_id']}").status_code == 404
                os.kill(stack.workers[victim].pid, signal.SIGKILL)
                stack.workers[victim].wait(10)
                assert original.is_file()
                stack.start_worker(verify=True)
            done = stack.wait_job(c, job["id"], ("succeeded",), timeout=240)
            assert done["attempts"] == 2 and _job_field(stack, job["id"], "worker") != victim
            image = c.get(f"/v1/images/{job['image_id']}").json()
            # Random weights give the photo back as noise: the plain thumbnail was stored, measured.
            assert image["method"] == "plain" and image["quality"]["psnr_y"] > 20
            assert not original.exists()
            assert c.get(image["full_url"]).status_code == 200  # the verifying reconstruction, cached
    finally:
        stack.stop_workers()
        stack.ensure_workers(2)
