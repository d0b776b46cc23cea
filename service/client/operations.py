"""The API's operations as generators, one per call: each yields the HTTP requests (`_Call`) and pauses
(`_Sleep`) it needs and receives the responses (or, thrown in, the network error that came instead), so that the
sync and the async client drive the same code."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import httpx

from .errors import JobFailedError, ServerError, UnavailableError, WaitTimeoutError, error_from_response
from .resources import PROBLEM_PREFIX, Image, Job, ModelInfo, Problem, Stats

ImageFormat = Literal["png", "webp", "jpeg"]
ImageSource = bytes | str | os.PathLike[str] | BinaryIO
# 16 or 32, or "auto": the most compact thumbnail whose verified reconstruction meets the quality target.
Scale = int | Literal["auto"]
ProgressCallback = Callable[["Job"], None]
T = TypeVar("T")


@dataclass(frozen=True)
class _Call:
    """One HTTP request an operation needs: the arguments of ``httpx.Client.request``."""

    method: str
    url: str
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes]] | None = None
    timeout: float | None = None  # None: the client's default


@dataclass(frozen=True)
class _Sleep:
    seconds: float


_Operation = Generator[_Call | _Sleep, httpx.Response | None, T]
# Longest pause between two tries of a request the service refused for now (no Retry-After) or that never arrived.
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True)
class Ingested:
    """What `ingest` did with one file: the stored image, and whether this call uploaded it (False: an image
    made from the same bytes was stored already, and nothing was sent)."""

    image: Image
    uploaded: bool


def _read_source(source: ImageSource) -> tuple[str, bytes]:
    """(file name, bytes) of an image given as bytes, a path or a binary file object."""
    if isinstance(source, bytes | bytearray):
        return "upload", bytes(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.name, path.read_bytes()
    return Path(getattr(source, "name", "upload")).name, source.read()


def _segment(identifier: str) -> str:
    """An id as one URL path segment: an id holding ``/`` or ``?`` must not reach another route."""
    return quote(identifier, safe="")


def _checked(response: httpx.Response | None, *ok: int) -> httpx.Response:
    assert response is not None  # the drivers send a response for every _Call
    if response.status_code not in ok:
        raise error_from_response(response)
    return response


class _Operations:
    """The API's operations as generators; shared by `Client` and `AsyncClient` (see the module docstring)."""

    def __init__(self, server_wait: float, poll_interval: float, request_timeout: float) -> None:
        self.server_wait = server_wait
        self.poll_interval = poll_interval
        self.request_timeout = request_timeout

    def _prefer_wait(self, seconds: float) -> tuple[dict[str, str], float]:
        """The ``Prefer: wait`` header for a server-side wait, and a read timeout that outlasts it."""
        seconds = max(0, int(seconds))
        return {"Prefer": f"wait={seconds}"}, seconds + self.request_timeout

    def info(self) -> _Operation[ModelInfo]:
        response = _checked((yield _Call("GET", "/v1/info")), 200)
        return ModelInfo.from_json(response.json())

    def stats(self) -> _Operation[Stats]:
        response = _checked((yield _Call("GET", "/v1/stats")), 200)
        return Stats.from_json(response.json())

    def find(self, sha256: str) -> _Operation[list[Image]]:
        response = _checked((yield _Call("GET", "/v1/images", params={"sha256": sha256.lower()})), 200)
        return [Image.from_json(item) for item in response.json()["items"]]

    def submit_upload(self, source: ImageSource, scale: Scale, wait: float, min_psnr_y: float | None = None,
                      min_ssimulacra2: float | None = None) -> _Operation[Image | Job]:
        name, data = _read_source(source)
        headers, timeout = self._prefer_wait(wait)
        params: dict[str, Any] = {"scale": scale}
        if min_psnr_y is not None:
            params["min_psnr_y"] = min_psnr_y
        if min_ssimulacra2 is not None:
            params["min_ssimulacra2"] = min_ssimulacra2
        call = _Call("POST", "/v1/images", params=params, headers=headers, files={"file": (name, data)},
                     timeout=timeout)
        response = _checked((yield call), 201, 202, 200)
        body = response.json()
        return Job.from_json(body) if response.status_code == 202 else Image.from_json(body)

    def upload(self, source: ImageSource, scale: Scale, timeout: float, progress: ProgressCallback | None,
               min_psnr_y: float | None = None, min_ssimulacra2: float | None = None) -> _Operation[Image]:
        deadline = time.monotonic() + timeout
        result = yield from self.submit_upload(source, scale, min(timeout, self.server_wait), min_psnr_y,
                                               min_ssimulacra2)
        if isinstance(result, Image):
            return result
        job = yield from self.wait_job(result, deadline - time.monotonic(), progress)
        if not job.image_id:
            raise ServerError(Problem(PROBLEM_PREFIX + "internal-error", "Job without image", 500,
                                      detail=f"downscale job {job.id} succeeded without an image_id"))
        return (yield from self.image(job.image_id))

    def ingest(self, source: ImageSource, scale: Scale, min_psnr_y: float | None, min_ssimulacra2: float | None,
               timeout: float, retry_for: float, sha256: str | None = None) -> _Operation[Ingested]:
        """Store a file once: look its SHA-256 up and upload it only when no image was made from it yet.

        A refusal for now (503 queue-full, not-ready) and a request lost on the network are tried again, after
        the Retry-After the service sent or a growing pause, for up to ``retry_for`` seconds: an upload is safe
        to repeat, as the service stores the same bytes once.
        """
        _, data = _read_source(source)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        stored = yield from self._retrying(lambda: self.find(digest), retry_for)
        if stored:
            return Ingested(closest(stored, scale), uploaded=False)
        image = yield from self._retrying(
            lambda: self.upload(data, scale, timeout, None, min_psnr_y, min_ssimulacra2), retry_for)
        return Ingested(image, uploaded=True)

    def _retrying(self, attempt: Callable[[], _Operation[T]], retry_for: float) -> _Operation[T]:
        deadline = time.monotonic() + retry_for
        backoff = 1.0
        while True:
            try:
                return (yield from attempt())
            except (UnavailableError, httpx.TransportError) as exc:
                hinted = exc.retry_after if isinstance(exc, UnavailableError) else None
                pause = hinted if hinted is not None else backoff
                if time.monotonic() + pause > deadline:
                    raise
                yield _Sleep(pause)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def image(self, image_id: str) -> _Operation[Image]:
        response = _checked((yield _Call("GET", f"/v1/images/{_segment(image_id)}")), 200)
        return Image.from_json(response.json())

    def images(self, limit: int) -> _Operation[list[Image]]:
        response = _checked((yield _Call("GET", "/v1/images", params={"limit": limit})), 200)
        return [Image.from_json(item) for item in response.json()["items"]]

    def thumbnail(self, image_id: str) -> _Operation[bytes]:
        response = _checked((yield _Call("GET", f"/v1/images/{_segment(image_id)}/thumbnail")), 200)
        return response.content

    def delete(self, image_id: str) -> _Operation[None]:
        _checked((yield _Call("DELETE", f"/v1/images/{_segment(image_id)}")), 204, 200)

    def submit_reconstruct(self, image_id: str, format: ImageFormat, wait: float) -> _Operation[bytes | Job]:
        headers, timeout = self._prefer_wait(wait)
        call = _Call("GET", f"/v1/images/{_segment(image_id)}/full", params={"format": format}, headers=headers,
                     timeout=timeout)
        response = _checked((yield call), 200, 202)
        return Job.from_json(response.json()) if response.status_code == 202 else response.content

    def submit_reconstruct_thumbnail(self, thumbnail_png: bytes, format: ImageFormat,
                                     wait: float) -> _Operation[bytes | Job]:
        headers, timeout = self._prefer_wait(wait)
        call = _Call("POST", "/v1/reconstructions", params={"format": format}, headers=headers,
                     files={"file": ("thumbnail.png", thumbnail_png)}, timeout=timeout)
        response = _checked((yield call), 200, 202)
        return Job.from_json(response.json()) if response.status_code == 202 else response.content

    def finish(self, submitted: _Operation[bytes | Job], timeout: float,
               progress: ProgressCallback | None) -> _Operation[bytes]:
        """Run a submit operation; if it gave a job, wait for it and fetch its result."""
        deadline = time.monotonic() + timeout
        result = yield from submitted
        if isinstance(result, bytes):
            return result
        job = yield from self.wait_job(result, deadline - time.monotonic(), progress)
        return (yield from self.result(job))

    def result(self, job: Job) -> _Operation[bytes]:
        if job.status != "succeeded" or not job.result_url:
            raise JobFailedError(job)
        response = _checked((yield _Call("GET", job.result_url)), 200)
        return response.content

    def job(self, job_id: str) -> _Operation[Job]:
        response = _checked((yield _Call("GET", f"/v1/jobs/{_segment(job_id)}")), 200)
        return Job.from_json(response.json())

    def cancel_job(self, job_id: str) -> _Operation[Job]:
        response = _checked((yield _Call("DELETE", f"/v1/jobs/{_segment(job_id)}")), 202, 200)
        return Job.from_json(response.json())

    def wait_job(self, job: Job | str, timeout: float, progress: ProgressCallback | None) -> _Operation[Job]:
        """Poll a job until it ends; raise `JobFailedError` unless it succeeded, `WaitTimeoutError` on timeout.

        ``progress`` is called with the job whenever its status or progress changed since the last call.
        """
        deadline = time.monotonic() + timeout
        current = job if isinstance(job, Job) else (yield from self.job(job))
        last_reported: tuple[str, float] | None = None
        while True:
            if progress is not None and (current.status, current.progress) != last_reported:
                progress(current)  # only on a change: polls that saw nothing new stay quiet
                last_reported = (current.status, current.progress)
            if current.done:
                if current.status != "succeeded":
                    raise JobFailedError(current)
                return current
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeoutError(current, timeout)
            yield _Sleep(min(self.poll_interval, left))
            current = yield from self.job(current.id)


def closest(images: list[Image], scale: Scale) -> Image:
    """Of the images made from one file, the one made as ``scale`` asks, else the first."""
    wanted = [image for image in images if (image.auto if scale == "auto" else image.scale == scale)]
    return (wanted or images)[0]
