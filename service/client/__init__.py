"""A typed Python client for the tadm HTTP API (v1, ``docs/http-contract.md``), sync and async, httpx only.

Importable without torch or the service's own dependencies::

    from service.client import Client

    with Client("http://127.0.0.1:8000") as tadm:
        image = tadm.upload("photo.png", scale=16)       # waits for the thumbnail
        png = tadm.thumbnail(image.id)                    # the stored thumbnail (lossless PNG)
        hr = tadm.reconstruct(image.id, format="webp")    # waits for the reconstruction
        tadm.delete(image.id)

        auto = tadm.upload("photo.png", scale="auto", min_psnr_y=30)  # the smallest thumbnail reaching 30 dB
        print(auto.scale, auto.method, auto.quality)      # what verification measured
        tadm.find(sha256_hex)                             # the images made from a file: is it stored already?
        tadm.ingest("photo.png").uploaded                 # upload unless stored (False: it was, nothing sent)
        tadm.stats().saving                               # store-wide totals

``AsyncClient`` has the same methods as coroutines. Each operation is written once, as a generator that yields
the HTTP calls and pauses it needs and receives the responses (`operations._Operations`); the two clients
(`clients`) only drive it with blocking or awaiting I/O, so their behaviour cannot drift apart. The resources
(`resources`) mirror the API's response schemas field for field (a test keeps them equal).

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

from .clients import AsyncClient, Client
from .errors import (
    APIError,
    AuthError,
    InvalidInputError,
    JobFailedError,
    MismatchError,
    NotFoundError,
    ServerError,
    TadmError,
    UnavailableError,
    WaitTimeoutError,
    error_from_response,
)
from .operations import Ingested
from .resources import Image, Job, ModelInfo, ModelQuality, ModelSummary, Problem, Quality, Stats

__all__ = [
    "APIError", "AsyncClient", "AuthError", "Client", "Image", "Ingested", "InvalidInputError", "Job", "JobFailedError",
    "MismatchError", "ModelInfo", "ModelQuality", "ModelSummary", "NotFoundError", "Problem", "Quality", "Stats", "ServerError", "TadmError",
    "UnavailableError", "WaitTimeoutError", "error_from_response",
]
