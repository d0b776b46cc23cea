"""The two clients: `Client` (blocking) and `AsyncClient` (asyncio), each a driver of the shared operations."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from .operations import (
    ImageFormat,
    ImageSource,
    Ingested,
    ProgressCallback,
    Scale,
    T,
    _Call,
    _Operation,
    _Operations,
    _Sleep,
)
from .resources import Image, Job, ModelInfo, Stats


class _ClientBase:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, server_wait: float,
                 poll_interval: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self._ops = _Operations(server_wait, poll_interval, timeout)

    def _request_args(self, call: _Call) -> dict[str, Any]:
        args: dict[str, Any] = {"params": call.params, "headers": call.headers, "files": call.files}
        if call.timeout is not None:
            args["timeout"] = call.timeout
        return args


class Client(_ClientBase):
    """Blocking client. Use as a context manager, or call `close()`.

    Args:
        base_url: where the API listens, e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer`` when the service has ``TADM_API_KEYS`` set.
        timeout: seconds for one HTTP request (a server-side ``Prefer: wait`` is added on top).
        server_wait: seconds to let the service hold a request open before it answers 202 + job.
        poll_interval: seconds between job polls while waiting.
        transport: an httpx transport (tests, proxies); None for the network.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float = 30.0, server_wait: float = 10.0, poll_interval: float = 0.5,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, server_wait, poll_interval)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout,
                                  transport=transport)

    def _run(self, operation: _Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                if isinstance(step, _Sleep):
                    time.sleep(step.seconds)
                    step = operation.send(None)
                    continue
                try:
                    response = self._http.request(step.method, step.url, **self._request_args(step))
                except httpx.TransportError as exc:
                    step = operation.throw(exc)  # the operation may try again; if not, it re-raises it
                    continue
                step = operation.send(response)
        except StopIteration as stop:
            return stop.value

    def info(self) -> ModelInfo:
        """The models the live workers serve, and a warning when one is untrained."""
        return self._run(self._ops.info())

    def upload(self, source: ImageSource, *, scale: Scale = 16, timeout: float = 300.0,
               progress: ProgressCallback | None = None, min_psnr_y: float | None = None,
               min_ssimulacra2: float | None = None) -> Image:
        """Upload an HR image (bytes, path or binary file) and wait until its thumbnail is stored and verified.

        ``scale="auto"`` stores the most compact thumbnail whose reconstruction reaches ``min_psnr_y`` (dB) and
        ``min_ssimulacra2`` (each defaults to the service's setting)."""
        return self._run(self._ops.upload(source, scale, timeout, progress, min_psnr_y, min_ssimulacra2))

    def submit_upload(self, source: ImageSource, *, scale: Scale = 16, wait: float = 0,
                      min_psnr_y: float | None = None, min_ssimulacra2: float | None = None) -> Image | Job:
        """Upload without waiting client-side: the Image if ready within ``wait`` s, else the Job to poll."""
        return self._run(self._ops.submit_upload(source, scale, wait, min_psnr_y, min_ssimulacra2))

    def ingest(self, source: ImageSource, *, scale: Scale = 16, min_psnr_y: float | None = None,
               min_ssimulacra2: float | None = None, timeout: float = 600.0, retry_for: float = 600.0,
               sha256: str | None = None) -> Ingested:
        """Store a file unless it is stored already (looked up by SHA-256; ``sha256`` if the caller has it):
        the image, and whether it was uploaded now. 503s and network errors are retried for ``retry_for`` s."""
        return self._run(self._ops.ingest(source, scale, min_psnr_y, min_ssimulacra2, timeout, retry_for, sha256))

    def find(self, sha256: str) -> list[Image]:
        """The images made from an upload with this SHA-256 (hex); empty when the file is not stored."""
        return self._run(self._ops.find(sha256))

    def stats(self) -> Stats:
        """Store-wide totals: images, their uploads' and thumbnails' bytes, the saving, verified, fallbacks."""
        return self._run(self._ops.stats())

    def image(self, image_id: str) -> Image:
        return self._run(self._ops.image(image_id))

    def images(self, limit: int = 20) -> list[Image]:
        """The most recent images, newest first."""
        return self._run(self._ops.images(limit))

    def thumbnail(self, image_id: str) -> bytes:
        """The stored thumbnail PNG. Keep it lossless: a JPEG re-encode destroys what the rescaler hid in it."""
        return self._run(self._ops.thumbnail(image_id))

    def reconstruct(self, image_id: str, *, format: ImageFormat = "png", timeout: float = 600.0,
                    progress: ProgressCallback | None = None) -> bytes:
        """The reconstructed HR image, encoded as ``format``; waits (server-side, then polling) for the job."""
        return self._run(self._ops.finish(self._ops.submit_reconstruct(image_id, format,
                                                                       min(timeout, self._ops.server_wait)),
                                          timeout, progress))

    def submit_reconstruct(self, image_id: str, *, format: ImageFormat = "png", wait: float = 0) -> bytes | Job:
        """Ask for a reconstruction without waiting client-side: the bytes if cached, else the Job to poll."""
        return self._run(self._ops.submit_reconstruct(image_id, format, wait))

    def reconstruct_thumbnail(self, thumbnail_png: bytes, *, format: ImageFormat = "png", timeout: float = 600.0,
                              progress: ProgressCallback | None = None) -> bytes:
        """Reconstruct from a thumbnail PNG the caller stored itself (``POST /v1/reconstructions``)."""
        submitted = self._ops.submit_reconstruct_thumbnail(thumbnail_png, format,
                                                           min(timeout, self._ops.server_wait))
        return self._run(self._ops.finish(submitted, timeout, progress))

    def job(self, job_id: str) -> Job:
        return self._run(self._ops.job(job_id))

    def wait_job(self, job: Job | str, *, timeout: float = 600.0, progress: ProgressCallback | None = None) -> Job:
        """Poll a job until it succeeds (returned), fails or is cancelled (`JobFailedError`), or ``timeout``."""
        return self._run(self._ops.wait_job(job, timeout, progress))

    def result(self, job: Job) -> bytes:
        """The output of a succeeded reconstruction job."""
        return self._run(self._ops.result(job))

    def cancel_job(self, job_id: str) -> Job:
        return self._run(self._ops.cancel_job(job_id))

    def delete(self, image_id: str) -> None:
        """Delete an image: its thumbnail and cached reconstructions."""
        self._run(self._ops.delete(image_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """The asyncio twin of `Client`: the same arguments and methods, as coroutines. Use ``async with``."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, api_key: str | None = None,
                 timeout: float = 30.0, server_wait: float = 10.0, poll_interval: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, server_wait, poll_interval)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout,
                                       transport=transport)

    async def _run(self, operation: _Operation[T]) -> T:
        try:
            step = next(operation)
            while True:
                if isinstance(step, _Sleep):
                    await asyncio.sleep(step.seconds)
                    step = operation.send(None)
                    continue
                try:
                    response = await self._http.request(step.method, step.url, **self._request_args(step))
                except httpx.TransportError as exc:
                    step = operation.throw(exc)
                    continue
                step = operation.send(response)
        except StopIteration as stop:
            return stop.value

    async def info(self) -> ModelInfo:
        return await self._run(self._ops.info())

    async def upload(self, source: ImageSource, *, scale: Scale = 16, timeout: float = 300.0,
                     progress: ProgressCallback | None = None, min_psnr_y: float | None = None,
                     min_ssimulacra2: float | None = None) -> Image:
        return await self._run(self._ops.upload(source, scale, timeout, progress, min_psnr_y, min_ssimulacra2))

    async def submit_upload(self, source: ImageSource, *, scale: Scale = 16, wait: float = 0,
                            min_psnr_y: float | None = None, min_ssimulacra2: float | None = None) -> Image | Job:
        return await self._run(self._ops.submit_upload(source, scale, wait, min_psnr_y, min_ssimulacra2))

    async def ingest(self, source: ImageSource, *, scale: Scale = 16, min_psnr_y: float | None = None,
                     min_ssimulacra2: float | None = None, timeout: float = 600.0, retry_for: float = 600.0,
                     sha256: str | None = None) -> Ingested:
        return await self._run(self._ops.ingest(source, scale, min_psnr_y, min_ssimulacra2, timeout, retry_for,
                                                sha256))

    async def find(self, sha256: str) -> list[Image]:
        return await self._run(self._ops.find(sha256))

    async def stats(self) -> Stats:
        return await self._run(self._ops.stats())

    async def image(self, image_id: str) -> Image:
        return await self._run(self._ops.image(image_id))

    async def images(self, limit: int = 20) -> list[Image]:
        return await self._run(self._ops.images(limit))

    async def thumbnail(self, image_id: str) -> bytes:
        return await self._run(self._ops.thumbnail(image_id))

    async def reconstruct(self, image_id: str, *, format: ImageFormat = "png", timeout: float = 600.0,
                          progress: ProgressCallback | None = None) -> bytes:
        submitted = self._ops.submit_reconstruct(image_id, format, min(timeout, self._ops.server_wait))
        return await self._run(self._ops.finish(submitted, timeout, progress))

    async def submit_reconstruct(self, image_id: str, *, format: ImageFormat = "png",
                                 wait: float = 0) -> bytes | Job:
        return await self._run(self._ops.submit_reconstruct(image_id, format, wait))

    async def reconstruct_thumbnail(self, thumbnail_png: bytes, *, format: ImageFormat = "png",
                                    timeout: float = 600.0, progress: ProgressCallback | None = None) -> bytes:
        submitted = self._ops.submit_reconstruct_thumbnail(thumbnail_png, format,
                                                           min(timeout, self._ops.server_wait))
        return await self._run(self._ops.finish(submitted, timeout, progress))

    async def job(self, job_id: str) -> Job:
        return await self._run(self._ops.job(job_id))

    async def wait_job(self, job: Job | str, *, timeout: float = 600.0,
                       progress: ProgressCallback | None = None) -> Job:
        return await self._run(self._ops.wait_job(job, timeout, progress))

    async def result(self, job: Job) -> bytes:
        return await self._run(self._ops.result(job))

    async def cancel_job(self, job_id: str) -> Job:
        return await self._run(self._ops.cancel_job(job_id))

    async def delete(self, image_id: str) -> None:
        await self._run(self._ops.delete(image_id))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
