"""The API application factory. ``create_app(settings)`` builds the FastAPI app; its lifespan opens the Redis
connection pool and the storage backend once per process."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.exceptions import RedisError

from ..config import Settings, get_settings
from ..wiring import build_services
from . import problems
from .head import HeadAsGet
from .metrics import MetricsMiddleware
from .routes import images, jobs, reconstructions, system


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.api_key_list and not settings.signing_key:
        raise ValueError("TADM_SIGNING_KEY must be set when TADM_API_KEYS is (signed read URLs need it)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.services = build_services(settings, memory_bytes=settings.api_memory_cache_bytes)
        try:
            await app.state.services.started()
        except (RedisError, OSError):
            pass  # Redis is down: the start is read when it first answers (readiness waits for it anyway)
        try:
            yield
        finally:
            await app.state.services.close()

    app = FastAPI(
        title="tadm",
        version="1.0.0",
        summary="Storage-saving image service: 16x/32x thumbnails, HR reconstruction on demand (TADM).",
        lifespan=lifespan,
    )
    problems.install(app)
    app.add_middleware(HeadAsGet)
    app.add_middleware(MetricsMiddleware)
    app.include_router(images.router)
    app.include_router(reconstructions.router)
    app.include_router(jobs.router)
    _documentation_after_the_api(app)
    app.include_router(system.router)  # last: its `/{asset}` route must not shadow the API
    return app


def _documentation_after_the_api(app: FastAPI) -> None:
    """Routes are tried in order on every request, so FastAPI's documentation pages (added first, when the app is
    made) move behind the API's routes: a cached read then matches a few routes fewer (still before the page's
    catch-all ``/{asset}``)."""
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    routes = app.router.routes
    routes[:] = [r for r in routes if getattr(r, "path", None) not in docs] + \
        [r for r in routes if getattr(r, "path", None) in docs]
