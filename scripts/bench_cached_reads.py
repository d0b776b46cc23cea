"""Cached reads of the API against a bare baseline, side by side, with wrk (Debian: `apt-get install wrk`).

Two uvicorn servers with the same command line run at once on one Redis: the service (`service.api.app:create_app`)
and a baseline app with one route that does one Redis GET (the image's record) and returns the same thumbnail
bytes from memory, the least any origin must do for this request. wrk loads one of them at a time, alternating
which goes first, for ``--rounds`` rounds; the script prints each run, the medians and their ratio.

    .venv/bin/python scripts/bench_cached_reads.py --duration 10 --rounds 3

The stored image is a Kodak photo's 16x thumbnail with its `tadm` metadata, written to storage and Redis the way a
worker writes them (no worker runs: a cached read needs none). ``--path full`` reads a cached reconstruction
(`/v1/images/{id}/full?format=webp`) instead of the thumbnail; the baseline then returns those bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench_common import KODAK_DIR

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere: the service package is the repository's

KODAK = KODAK_DIR / "kodak__kodim23.png"
PREFIX = "bench"
IMAGE_ID = "be" * 10


def baseline_app():
    """The bare route: one Redis GET, the same bytes from memory (uvicorn --factory bench_cached_reads:baseline_app)."""
    from fastapi import FastAPI, Response
    from redis.asyncio import Redis

    body = Path(os.environ["BENCH_BODY"]).read_bytes()
    media_type = os.environ["BENCH_MEDIA_TYPE"]
    redis = Redis.from_url(os.environ["TADM_REDIS_URL"])
    app = FastAPI()

    @app.get("/bench/{image_id}")
    async def read(image_id: str) -> Response:
        await redis.get(f"{PREFIX}:image:{image_id}")
        return Response(body, media_type=media_type)

    return app


def seed(redis_url: str, storage_dir: Path, workdir: Path) -> dict[str, Path]:
    """A stored image and its cached WebP reconstruction, as a worker leaves them; the bodies the baseline serves."""
    import asyncio

    from PIL import Image

    from model.thumbnail import Thumbnail, thumbnail_size
    from service.config import Settings
    from service.media import encode_image
    from service.storage import reconstruction_key, sha256_hex, thumbnail_key
    from service.storage.records import ImageRecord
    from service.wiring import build_services

    with Image.open(KODAK) as img:
        photo = img.convert("RGB")
    model_id = "0123456789abcdef"
    png = Thumbnail(photo.resize(thumbnail_size(photo.size, 16), Image.Resampling.BICUBIC), 16, photo.size,
                    model_id).to_png()
    full = encode_image(photo, "webp")
    sha = sha256_hex(png)

    async def store() -> None:
        services = build_services(Settings(redis_url=redis_url, key_prefix=PREFIX, storage_dir=storage_dir))
        try:
            services.storage.put(thumbnail_key(sha), png)
            await services.records.save(ImageRecord(
                id=IMAGE_ID, width=photo.width, height=photo.height, scale=16, model_id=model_id,
                thumbnail_key=thumbnail_key(sha), thumbnail_sha=sha, original_bytes=KODAK.stat().st_size,
                thumbnail_bytes=len(png), created_at=time.time()))
            await services.cache.put(reconstruction_key(model_id, sha, "webp"), full)
        finally:
            await services.close()

    asyncio.run(store())
    (workdir / "thumb.png").write_bytes(png)
    (workdir / "full.webp").write_bytes(full)
    return {"thumbnail": workdir / "thumb.png", "full": workdir / "full.webp"}


def start(name: str, factory: str, port: int, env: dict[str, str], args: argparse.Namespace,
          workdir: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(args.workers), "--app-dir", str(REPO / "scripts")]
    if not args.access_log:
        command.append("--no-access-log")
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit(f"no answer from {url} within {timeout} s")


def wrk(url: str, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
                          "--latency", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"{errors.group(1)} error responses from {url}:\n{out}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    return {"rps": rps, "p50_ms": ms("50%"), "p99_ms": ms("99%")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side (medians are reported)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes of each server")
    parser.add_argument("--path", choices=("thumbnail", "full"), default="thumbnail")
    parser.add_argument("--access-log", action="store_true", help="keep uvicorn's access log (as its default)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--note", default="", help="what else ran on the machine (recorded in the JSON)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    from service.dev.embedded_redis import EmbeddedRedis, free_port

    workdir = Path(tempfile.mkdtemp(prefix="tadm-bench-reads-"))
    redis = EmbeddedRedis(workdir / "redis", appendonly=False).start()
    procs: list[subprocess.Popen] = []
    try:
        bodies = seed(redis.url, workdir / "storage", workdir)
        media_type = "image/png" if args.path == "thumbnail" else "image/webp"
        env = {**os.environ, "TADM_REDIS_URL": redis.url, "TADM_KEY_PREFIX": PREFIX,
               "TADM_STORAGE_DIR": str(workdir / "storage"), "BENCH_BODY": str(bodies[args.path]),
               "BENCH_MEDIA_TYPE": media_type, "PYTHONPATH": str(REPO)}
        ports = {"service": free_port(), "baseline": free_port()}
        service_path = (f"/v1/images/{IMAGE_ID}/thumbnail" if args.path == "thumbnail"
                        else f"/v1/images/{IMAGE_ID}/full?format=webp")
        urls = {"service": f"http://127.0.0.1:{ports['service']}{service_path}",
                "baseline": f"http://127.0.0.1:{ports['baseline']}/bench/{IMAGE_ID}"}
        procs.append(start("service", "service.api.app:create_app", ports["service"], env, args, workdir))
        procs.append(start("baseline", "bench_cached_reads:baseline_app", ports["baseline"], env, args, workdir))
        for (name, url), proc in zip(urls.items(), procs, strict=True):
            wait_until_up(url, proc)
            body = httpx.get(url).content
            assert body == bodies[args.path].read_bytes(), f"{name} serves other bytes"
        runs: dict[str, list[dict[str, float]]] = {"service": [], "baseline": []}
        for round_ in range(args.rounds):
            order = ("service", "baseline") if round_ % 2 == 0 else ("baseline", "service")
            for name in order:
                result = wrk(urls[name], args)
                runs[name].append(result)
                print(f"round {round_ + 1} {name:<8} {result['rps']:>9.1f} req/s  p50 {result['p50_ms']:.2f} ms  "
                      f"p99 {result['p99_ms']:.2f} ms")
        medians = {name: statistics.median(r["rps"] for r in results) for name, results in runs.items()}
        ratio = medians["service"] / medians["baseline"]
        print(f"median: service {medians['service']:.1f} req/s, baseline {medians['baseline']:.1f} req/s, "
              f"ratio {ratio:.2f} (wrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} "
              f"rounds, {args.workers} uvicorn process(es) each, {args.path}, access log "
              f"{'on' if args.access_log else 'off'}, {os.cpu_count()} CPUs)")
        if args.json:
            record = {
                "command": shlex.join(["scripts/bench_cached_reads.py", *sys.argv[1:]]),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "environment": {"cpus": os.cpu_count(), "load_average_after": os.getloadavg(),
                                "python": sys.version.split()[0], "platform": platform.platform(),
                                "note": args.note},
                "runs": runs, "medians": medians, "ratio": ratio,
            }
            args.json.write_text(json.dumps(record, indent=2) + "\n")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
