"""Error mapping on real `httpx.Response` objects, for answers a healthy dev server does not give on demand
(a full queue, a proxy's HTML error page). The live tests cover the problems the server does give."""

from __future__ import annotations

import httpx
import pytest

from service.client import (
    AuthError,
    InvalidInputError,
    Job,
    JobFailedError,
    NotFoundError,
    ServerError,
    UnavailableError,
    error_from_response,
)


def problem_response(status: int, slug: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": f"urn:tadm:problem:{slug}", "title": slug.replace("-", " "), "status": status,
            "detail": f"detail of {slug}", "instance": "/v1/images", "limit": 1000}
    return httpx.Response(status, json=body, headers={"Content-Type": "application/problem+json", **(headers or {})})


@pytest.mark.parametrize(
    ("status", "slug", "expected"),
    [
        (413, "payload-too-large", InvalidInputError),
        (422, "too-many-pixels", InvalidInputError),
        (404, "not-found", NotFoundError),
        (401, "unauthorized", AuthError),
        (403, "forbidden", AuthError),
        (500, "internal-error", ServerError),
    ],
)
def test_problem_types_map_to_their_exception(status: int, slug: str, expected: type) -> None:
    error = error_from_response(problem_response(status, slug))
    assert type(error) is expected
    assert (error.slug, error.status, error.type) == (slug, status, f"urn:tadm:problem:{slug}")
    assert error.problem.instance == "/v1/images"
    assert error.problem.extensions == {"limit": 1000}  # extension members are kept
    assert f"detail of {slug}" in str(error)


def test_queue_full_carries_retry_after() -> None:
    error = error_from_response(problem_response(503, "queue-full", {"Retry-After": "7"}))
    assert isinstance(error, UnavailableError)
    assert error.retry_after == 7.0


def test_an_error_page_without_a_problem_maps_by_status() -> None:
    gateway = error_from_response(httpx.Response(502, text="<html>Bad Gateway</html>"))
    assert isinstance(gateway, ServerError) and gateway.status == 502
    assert gateway.problem.type == "about:blank" and "Bad Gateway" in (gateway.problem.detail or "")
    missing = error_from_response(httpx.Response(404, text="nope"))
    assert isinstance(missing, NotFoundError)


def test_a_failed_job_raises_with_its_stored_problem() -> None:
    job = Job.from_json({
        "id": "j1", "kind": "upscale", "status": "failed", "progress": 0.4, "attempts": 3, "image_id": "i1",
        "result_url": None, "created_at": "t0", "updated_at": "t1",
        "error": {"type": "urn:tadm:problem:job-failed", "title": "Job failed", "status": 500,
                  "detail": "CUDA out of memory after 3 attempts"},
    })
    error = JobFailedError(job)
    assert error.job is job and job.done
    assert error.slug == "job-failed" and "out of memory" in str(error)
