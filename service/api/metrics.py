"""The API's Prometheus metrics (stable names)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("tadm_api_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("tadm_api_request_seconds", "HTTP request latency", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
QUEUE_LENGTH = Gauge("tadm_queue_length", "Unfinished jobs per stream", ["stream"])
STORE = Gauge("tadm_store", "Store-wide totals of the images stored now (images, original_bytes, stored_bytes, "
              "verified, fallbacks: those stored with a plain thumbnail)", ["total"])
LIVE_WORKERS = Gauge("tadm_live_workers", "Workers with a heartbeat renewed since this API process started")


class MetricsMiddleware:
    """Counts and times requests by route template (not raw path, which would explode the label set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # (method, route, status) -> its counter and histogram children: `labels()` looks them up under a lock,
        # which is a measurable share of a cached read.
        self._children: dict[tuple[str, str, str], tuple] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), str(status))
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (REQUESTS.labels(*key), LATENCY.labels(*key[:2]))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
