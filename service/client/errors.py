"""The client's exceptions (the hierarchy is drawn in the package docstring) and the mapping of an error
response to one of them."""

from __future__ import annotations

import httpx

from .resources import PROBLEM_PREFIX, Job, Problem


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
    "range-not-satisfiable": InvalidInputError,
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
    415: InvalidInputError, 416: InvalidInputError, 422: InvalidInputError, 503: UnavailableError,
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
