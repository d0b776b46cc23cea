"""Health, readiness, model info, metrics, and the web page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from ...errors import NotFound
from ...queue.registry import preview_notice, untrained_warning
from .. import metrics, schemas, usecases
from ..deps import ServicesDep

router = APIRouter(tags=["system"])
WEB_DIR = Path(__file__).resolve().parents[2] / "web"
_WEB_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@router.get("/healthz", response_model=schemas.Health)
async def healthz() -> schemas.Health:
    """The process is up (cheap: no Redis call)."""
    return schemas.Health(status="ok")


@router.get("/readyz", response_model=schemas.Readiness, responses={503: {"model": schemas.Readiness}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready when Redis answers and at least one worker renewed its heartbeat since this process started (not a
    heartbeat restored from the AOF or left by a dead worker); says so when a model is untrained (warning) or a
    preview (notice)."""
    try:
        await services.redis.ping()
        workers = await services.live_workers()
        redis_ok = True
    except (RedisError, OSError):
        workers, redis_ok = [], False
    ready = redis_ok and bool(workers)
    body = schemas.Readiness(status="ready" if ready else "not-ready", redis=redis_ok, workers=len(workers),
                             warning=untrained_warning(workers), notice=preview_notice(workers))
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/v1/info", response_model=schemas.ModelInfo, tags=["info"])
async def info(services: ServicesDep) -> schemas.ModelInfo:
    """What the live workers serve (read from their registrations; the API never loads a model)."""
    workers = await services.live_workers()
    models = {w.model.model_id: w.model for w in workers}
    return schemas.ModelInfo(
        workers=len(workers),
        models=[schemas.ModelSummary(**vars(model)) for model in sorted(models.values(), key=lambda m: m.model_id)],
        warning=untrained_warning(workers),
        notice=preview_notice(workers),
    )


@router.get("/v1/stats", response_model=schemas.Stats, tags=["info"])
async def stats(services: ServicesDep) -> schemas.Stats:
    """Store-wide totals: images, the bytes their uploads had and their thumbnails take, the saving, and how
    many were verified and how many fell back to a plain thumbnail."""
    return schemas.Stats(**await usecases.store_totals(services))


@router.get("/metrics", include_in_schema=False)
async def prometheus(services: ServicesDep) -> Response:
    try:
        for stream, length in (await services.queue.lengths()).items():
            metrics.QUEUE_LENGTH.labels(stream).set(length)
        metrics.LIVE_WORKERS.set(len(await services.live_workers()))
        totals = await services.records.totals()
        for name in ("images", "original_bytes", "stored_bytes", "verified", "fallbacks"):
            metrics.STORE.labels(name).set(totals[name])
    except (RedisError, OSError):
        pass  # the request counters still say something useful
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def web_page() -> Response:
    return await web_asset("index.html")


@router.get("/{asset}", include_in_schema=False)
async def web_asset(asset: str) -> Response:
    """The web page's static files (``service/web/``), by exact name only."""
    path = WEB_DIR / asset
    if "/" in asset or asset.startswith(".") or path.suffix not in _WEB_TYPES or not path.is_file():
        raise NotFound(f"no route or resource at /{asset}")
    return FileResponse(path, media_type=_WEB_TYPES[path.suffix])
