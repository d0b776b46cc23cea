"""The service's errors. Domain modules raise them; ``service.api.problems`` maps them to RFC 9457 responses
in one place, and a failed job stores the same problem in its ``error`` (``service.worker.failures``).

Hierarchy (slug, HTTP status)::

    ProblemError                        internal-error          500
    ├── PayloadTooLarge                 payload-too-large       413
    ├── UnsupportedMediaType            unsupported-media-type  415
    ├── InvalidRequest                  invalid-request         422
    │   ├── TooManyPixels               too-many-pixels         422
    │   ├── ImageTooSmall               image-too-small         422
    │   └── CorruptImage                corrupt-image           422
    ├── ThumbnailMismatch               thumbnail-mismatch      409
    ├── NotFound                        not-found               404
    ├── RangeNotSatisfiable             range-not-satisfiable   416  (+ Content-Range: bytes */size)
    ├── Unauthorized                    unauthorized            401
    ├── Forbidden                       forbidden               403
    ├── QueueFull                       queue-full              503  (+ Retry-After)
    ├── NotReady                        not-ready               503
    └── JobFailed                       job-failed              500  (inside a job's `error`)
"""

from __future__ import annotations

PROBLEM_TYPE_PREFIX = "urn:tadm:problem:"


class ProblemError(Exception):
    """Base class: an error with a stable problem ``slug``, an HTTP ``status`` and a human ``title``."""

    slug = "internal-error"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, *, retry_after: int | None = None, **extensions: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug

    def to_problem(self, instance: str | None = None) -> dict:
        """The RFC 9457 body."""
        body = {"type": self.type, "title": self.title, "status": self.status, "detail": self.detail,
                "instance": instance}
        body.update(self.extensions)
        return body


class PayloadTooLarge(ProblemError):
    slug, status, title = "payload-too-large", 413, "Payload too large"


class UnsupportedMediaType(ProblemError):
    slug, status, title = "unsupported-media-type", 415, "Unsupported media type"


class InvalidRequest(ProblemError):
    slug, status, title = "invalid-request", 422, "Invalid request"


class TooManyPixels(InvalidRequest):
    slug, title = "too-many-pixels", "Too many pixels"


class ImageTooSmall(InvalidRequest):
    slug, title = "image-too-small", "Image too small"


class CorruptImage(InvalidRequest):
    slug, title = "corrupt-image", "Corrupt image"


class ThumbnailMismatch(ProblemError):
    slug, status, title = "thumbnail-mismatch", 409, "Thumbnail of another model or scale"


class NotFound(ProblemError):
    slug, status, title = "not-found", 404, "Not found"


class Unauthorized(ProblemError):
    slug, status, title = "unauthorized", 401, "Unauthorized"


class Forbidden(ProblemError):
    slug, status, title = "forbidden", 403, "Forbidden"


class QueueFull(ProblemError):
    slug, status, title = "queue-full", 503, "Queue full"


class NotReady(ProblemError):
    slug, status, title = "not-ready", 503, "Not ready"


class JobFailed(ProblemError):
    slug, status, title = "job-failed", 500, "Job failed"



class RangeNotSatisfiable(ProblemError):
    slug, status, title = "range-not-satisfiable", 416, "Range not satisfiable"
