"""A typed Python client for the tadm HTTP API (v1, ``docs/http-contract.md``), sync and async, httpx only.

Importable without torch or the service's own dependencies::

    from service.client import Client

    with Client("http://127.0.0.1:8000") as tadm:
        image = tadm.upload("photo.png", scale=16)       # waits for the thumbnail
        png = tadm.thumbnail(image.id)                    # the stored thumbnail (lossless PNG)
        hr = tadm.reconstruct(image.id, format="webp")    # waits for the reconstruction
        tadm.delete(image.id)

``AsyncClient`` has the same methods as coroutines. Each operation is written once, as a generator that yields
the HTTP calls and pauses it needs and receives the responses (`_Operations`); the two clients only drive it
with blocking or awaiting I/O, so their behaviour cannot drift apart.

Errors (problem+json responses become exceptions that carry the problem and its stable type)::

    TadmError
     ├── APIError                  any problem+json (or non-JSON error) response; .problem, .type, .slug, .status
     │    ├── InvalidInputError    413 payload-too-large, 415 unsupported-media-type, 422 too-many-pixels,
     │    │                        image-too-small, corrupt-image, invalid-request
     │    ├── NotFoundError        404 not-found
     │    ├── MismatchError        409 thumbnail-mismatch
     │    ├── AuthError            401 unauthorized, 403 forbidden
     │    ├── UnavailableError     503 queue-full, not-ready; .retry_after (seconds or None)
     │    ├── ServerError          500 internal-error and anything else unexpected
     │    └── JobFailedError       a job ended failed or cancelled; .job (its error is the problem)
     └── WaitTimeoutError         a client-side wait ran out (also a TimeoutError); .job, the last state seen

Network failures are httpx's own exceptions (``httpx.TransportError``), passed through unchanged.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import quote

import httpx

__all__ = [
    "APIError", "AsyncClient", "AuthError", "Client", "Image", "InvalidInputError", "Job", "JobFailedError",
    "MismatchError", "ModelInfo", "ModelSummary", "NotFoundError", "Problem", "ServerError", "TadmError",
    "UnavailableError", "WaitTimeoutError",
]

PROBLEM_PREFIX = "urn:tadm:problem:"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ImageFormat = Literal["png", "webp", "jpeg"]
ImageSource = bytes | str | os.PathLike[str] | BinaryIO
ProgressCallback = Callable[["Job"], None]
T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem: ``type`` is stable (``urn:tadm:problem:<slug>``); ``extensions`` holds other members."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The last part of ``type`` (``not-found``), or the whole type when it is not one of ours."""
        return self.type.removeprefix(PROBLEM_PREFIX)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Problem:
        known = {"type", "title", "status", "detail", "instance"}
        return cls(
            type=str(data.get("type") or "about:blank"),
            title=str(data.get("title") or ""),
            status=int(data.get("status") or 0),
            detail=data.get("detail"),
            instance=data.get("instance"),
            extensions={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class Image:
    """A stored image: its thumbnail is kept, the original is not. ``saving`` = 1 - thumbnail/original bytes."""

    id: str
    width: int
    height: int
    scale: int
    model_id: str
    thumbnail_url: str
    full_url: str
    original_bytes: int
    thumbnail_bytes: int
    saving: float
    created_at: str | float

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Image:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Job:
    """A background job (``downscale`` after an upload, ``upscale`` for a reconstruction)."""

    id: str
    kind: str
    status: str
    progress: float
    attempts: int
    error: Problem | None
    image_id: str | None
    result_url: str | None
    created_at: str | float
    updated_at: str | float

    @property
    def done(self) -> bool:
        """True once the job can change no more (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=data["id"], kind=data["kind"], status=data["status"],
            progress=float(data.get("progress") or 0.0), attempts=int(data.get("attempts") or 0),
            error=Problem.from_json(data["error"]) if data.get("error") else None,
            image_id=data.get("image_id"), result_url=data.get("result_url"),
            created_at=data.get("created_at", ""), updated_at=data.get("updated_at", ""),
        )


@dataclass(frozen=True)
class ModelSummary:
    """One model a live worker serves. ``trained`` is False for random weights (the ``tiny`` test preset)."""

    model_id: str
    preset: str
    scale: int
    trained: bool


@dataclass(frozen=True)
class ModelInfo:
    """What the live workers serve (``GET /v1/info``); ``warning`` is set e.g. when a model is untrained."""

    workers: int
    models: list[ModelSummary]
    warning: str | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        models = [ModelSummary(m["model_id"], m["preset"], int(m["scale"]), bool(m["trained"]))
                  for m in data.get("models", [])]
        return cls(workers=int(data.get("workers", 0)), models=models, warning=data.get("warning"))


# ---------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------


class TadmError(Exception):
    """Base of every error this client raises itself."""


class APIError(TadmError):
    """The service answered with an error; ``problem`` is its problem+json body (synthesised if it had none)."""

    def __init__(self, problem: Problem, response: httpx.Response | None = None) -> None:
        self.problem = problem
        self.response = response
        message = f"{problem.status} {problem.slug}: {problem.detail or problem.title}"
        super().__init__(message)

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def slug(self) -> str:
        return self.problem.slug

    @property
    def status(self) -> int:
        return self.problem.status


class InvalidInputError(APIError):
    """The request or its image was refused (too large, not an image, too small, corrupt, bad parameters)."""


class NotFoundError(APIError):
    """No such image or job (never existed, deleted, or expired)."""


class MismatchError(APIError):
    """A thumbnail made by another model or at another scale than the service's workers serve."""


class AuthError(APIError):
    """A missing API key (401) or a wrong key or URL signature (403)."""


class UnavailableError(APIError):
    """The queue is full or no worker is live; ``retry_after`` says when to try again (seconds), if known."""

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("Retry-After") if self.response is not None else None
        try:
            return float(value) if value is not None else None
        except ValueError:  # an HTTP date: rare from this service, and the caller can read the header
            return None


class ServerError(APIError):
    """An unexpected failure inside the service."""


class JobFailedError(APIError):
    """A job ended ``failed`` (after its retries) or ``cancelled``; ``job`` is its final state."""

    def __init__(self, job: Job) -> None:
        self.job = job
        problem = job.error or Problem(PROBLEM_PREFIX + "job-failed", f"Job {job.status}", 500,
                                       detail=f"job {job.id} ended {job.status}")
        super().__init__(problem)


class WaitTimeoutError(TadmError, TimeoutError):
    """A client-side wait for a job ran out; the job goes on in the service. ``job`` is the last state seen."""

    def __init__(self, job: Job, timeout: float) -> None:
        self.job = job
        super().__init__(f"job {job.id} still {job.status} ({job.progress:.0%}) after {timeout:g} s")


_ERRORS_BY_SLUG: dict[str, type[APIError]] = {
    "payload-too-large": InvalidInputError,
    "unsupported-media-type": InvalidInputError,
    "too-many-pixels": InvalidInputError,
    "image-too-small": InvalidInputError,
    "corrupt-image": InvalidInputError,
    "invalid-request": InvalidInputError,
    "not-found": NotFoundError,
    "thumbnail-mismatch": MismatchError,
    "unauthorized": AuthError,
    "forbidden": AuthError,
    "queue-full": UnavailableError,
    "not-ready": UnavailableError,
}
# For error responses without a problem body (a proxy in front of the service, say).
_ERRORS_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthError, 403: AuthError, 404: NotFoundError, 409: MismatchError, 413: InvalidInputError,
    415: InvalidInputError, 422: InvalidInputError, 503: UnavailableError,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error response: by the problem's slug, else by the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "type" in body:
        problem = Problem.from_json({"status": response.status_code, **body})
        cls = _ERRORS_BY_SLUG.get(problem.slug) or _ERRORS_BY_STATUS.get(response.status_code, ServerError)
    else:
        text = response.text[:200] if response.content else None
        problem = Problem("about:blank", response.reason_phrase, response.status_code, detail=text)
        cls = _ERRORS_BY_STATUS.get(response.status_code, ServerError)
    return cls(problem, response)


# ---------------------------------------------------------------------------------------------------------------
# Operations: one generator per API call, driven by the sync or the async client
# ---------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------
# The clients
# ---------------------------------------------------------------------------------------------------------------


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
                else:
                    step = operation.send(self._http.request(step.method, step.url, **self._request_args(step)))
        except StopIteration as stop:
            return stop.value

    def info(self) -> ModelInfo:
        """The models the live workers serve, and a warning when one is untrained."""
        return self._run(self._ops.info())

    def upload(self, source: ImageSource, *, scale: int = 16, timeout: float = 300.0,
               progress: ProgressCallback | None = None) -> Image:
        """Upload an HR image (bytes, path or binary file) and wait until its thumbnail is stored."""
        return self._run(self._ops.upload(source, scale, timeout, progress))

    def submit_upload(self, source: ImageSource, *, scale: int = 16, wait: float = 0) -> Image | Job:
        """Upload without waiting client-side: the Image if ready within ``wait`` s, else the Job to poll."""
        return self._run(self._ops.submit_upload(source, scale, wait))

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
                else:
                    response = await self._http.request(step.method, step.url, **self._request_args(step))
                    step = operation.send(response)
        except StopIteration as stop:
            return stop.value

    async def info(self) -> ModelInfo:
        return await self._run(self._ops.info())

    async def upload(self, source: ImageSource, *, scale: int = 16, timeout: float = 300.0,
                     progress: ProgressCallback | None = None) -> Image:
        return await self._run(self._ops.upload(source, scale, timeout, progress))

    async def submit_upload(self, source: ImageSource, *, scale: int = 16, wait: float = 0) -> Image | Job:
        return await self._run(self._ops.submit_upload(source, scale, wait))

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
