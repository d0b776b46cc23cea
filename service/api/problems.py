"""Every error becomes an RFC 9457 ``application/problem+json`` response here, and only here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import PROBLEM_TYPE_PREFIX, InvalidRequest, NotFound, NotReady, ProblemError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(exc: ProblemError, request: Request) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.to_problem(instance=request.url.path), status_code=exc.status, headers=headers,
                        media_type=PROBLEM_MEDIA_TYPE)


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg')}")
        return problem_response(InvalidRequest("; ".join(parts) or "invalid request"), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return problem_response(NotFound(f"no route or resource at {request.url.path}"), request)
        slug = {405: "method-not-allowed"}.get(exc.status_code, "http-error")
        body = {"type": PROBLEM_TYPE_PREFIX + slug, "title": str(exc.detail), "status": exc.status_code,
                "detail": str(exc.detail), "instance": request.url.path}
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_MEDIA_TYPE,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RedisError)
    async def _redis_down(request: Request, exc: RedisError) -> JSONResponse:
        logger.warning("Redis error on %s %s: %s", request.method, request.url.path, exc)
        return problem_response(NotReady("the job store (Redis) is unreachable; retry shortly", retry_after=5),
                                request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(ProblemError("an unexpected error occurred; it has been logged"), request)
