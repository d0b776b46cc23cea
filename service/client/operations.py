"""The API's operations as generators, one per call: each yields the HTTP requests (`_Call`) and pauses
(`_Sleep`) it needs and receives the responses, so that the sync and the async client drive the same code."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import httpx

from .errors import JobFailedError, ServerError, WaitTimeoutError, error_from_response
from .resources import PROBLEM_PREFIX, Image, Job, ModelInfo, Problem

ImageFormat = Literal["png", "webp", "jpeg"]
ImageSource = bytes | str | os.PathLike[str] | BinaryIO
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

    def submit_upload(self, source: ImageSource, scale: int, wait: float) -> _Operation[Image | Job]:
        name, data = _read_source(source)
        headers, timeout = self._prefer_wait(wait)
        call = _Call("POST", "/v1/images", params={"scale": scale}, headers=headers,
                     files={"file": (name, data)}, timeout=timeout)
        response = _checked((yield call), 201, 202, 200)
        body = response.json()
        return Job.from_json(body) if response.status_code == 202 else Image.from_json(body)

    def upload(self, source: ImageSource, scale: int, timeout: float,
               progress: ProgressCallback | None) -> _Operation[Image]:
        deadline = time.monotonic() + timeout
        result = yield from self.submit_upload(source, scale, min(timeout, self.server_wait))
        if isinstance(result, Image):
            return result
        job = yield from self.wait_job(result, deadline - time.monotonic(), progress)
        if not job.image_id:
            raise ServerError(Problem(PROBLEM_PREFIX + "internal-error", "Job without image", 500,
                                      detail=f"downscale job {job.id} succeeded without an image_id"))
        return (yield from self.image(job.image_id))

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
