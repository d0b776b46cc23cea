"""Load test of the HTTP API: uploads (downscale on a worker) and cached thumbnail GETs.

Against a running server (``--url``), or, without one, it starts ``tadm serve --dev`` (the tiny preset on CPU)
in a temporary directory and stops it afterwards. Images are distinct crops of the Kodak photographs, so
every upload is a new image (no deduplication shortcut).

    .venv/bin/python scripts/loadtest.py --uploads 48 --gets 2000 --concurrency 8

Prints requests/s and p50/p95 latency for each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from bench_common import KODAK_DIR as KODAK

REPO = Path(__file__).resolve().parents[1]


def crops(count: int, size: tuple[int, int]) -> list[bytes]:
    """``count`` distinct PNG crops of the Kodak photographs."""
    files = sorted(KODAK.glob("*.png"))
    if not files:
        sys.exit(f"no Kodak photographs under {KODAK} (set TADM_KODAK_DIR)")
    out = []
    w, h = size
    for i in range(count):
        with Image.open(files[i % len(files)]) as opened:
            img = opened.convert("RGB")
        if img.width < w or img.height < h:  # a portrait photo for a landscape size
            img = img.transpose(Image.Transpose.ROTATE_90)
        step = i // len(files)
        x, y = (step * 37) % (img.width - w + 1), (step * 23) % (img.height - h + 1)
        crop = img.crop((x, y, x + w, y + h))
        if step % 2:  # full-size crops repeat after one pass; a mirror makes them new images
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        buf = io.BytesIO()
        crop.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def summary(name: str, latencies: list[float], wall: float, errors: int) -> str:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)] * 1000
    return (f"{name:<22} {len(latencies):>6} req  {len(latencies) / wall:>8.1f} req/s  p50 {p50:>8.1f} ms  "
            f"p95 {p95:>8.1f} ms  errors {errors}")


async def run_phase(concurrency: int, jobs: list, call) -> tuple[list[float], float, int]:
    queue: asyncio.Queue = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    latencies: list[float] = []
    errors = 0

    async def worker():
        nonlocal errors
        while not queue.empty():
            job = queue.get_nowait()
            start = time.perf_counter()
            ok = await call(job)
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start, errors


async def main_async(args: argparse.Namespace, url: str) -> None:
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        info = (await client.get("/v1/info")).json()
        print(f"server {url}: {info['workers']} worker(s), models {[m['preset'] for m in info['models']]}")
        images = crops(args.uploads, (args.width, args.height))
        ids: list[str] = []

        async def upload(data: bytes) -> bool:
            r = await client.post("/v1/images", headers={"Prefer": "wait=120"}, files={"file": ("i.png", data)})
            if r.status_code == 201:
                ids.append(r.json()["id"])
                return True
            return False

        lat, wall, err = await run_phase(args.concurrency, images, upload)
        print(summary(f"upload {args.width}x{args.height}", lat, wall, err))
        if not ids:
            sys.exit("no upload succeeded")
        paths = [f"/v1/images/{ids[i % len(ids)]}/thumbnail" for i in range(args.gets)]

        async def get(path: str) -> bool:
            return (await client.get(path)).status_code == 200

        lat, wall, err = await run_phase(args.concurrency, paths, get)
        print(summary("thumbnail GET", lat, wall, err))


def start_dev_server() -> tuple[subprocess.Popen, str, Path]:
    from service.dev.embedded_redis import free_port

    workdir = Path(tempfile.mkdtemp(prefix="tadm-load-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "TADM_REDIS_URL"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--dev", "--port", str(port)],
                            cwd=workdir, env=env, stdout=open(workdir / "server.log", "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url, workdir
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            sys.exit(f"dev server exited; see {workdir / 'server.log'}")
        time.sleep(0.5)
    proc.terminate()
    sys.exit("dev server not ready after 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a running server (default: start `tadm serve --dev`)")
    parser.add_argument("--uploads", type=int, default=48, help="distinct images to upload")
    parser.add_argument("--gets", type=int, default=2000, help="thumbnail GETs")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=192)
    args = parser.parse_args()
    proc = None
    url = args.url
    if url is None:
        proc, url, workdir = start_dev_server()
        print(f"started `tadm serve --dev` in {workdir}")
    try:
        asyncio.run(main_async(args, url))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
