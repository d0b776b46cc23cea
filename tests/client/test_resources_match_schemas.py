"""The client's resources are the API's response schemas: the same fields, and what the API sends reads back
field for field. The client cannot import the schemas (it needs only httpx), so this test is what keeps the two
copies equal: a field added to one side alone, or read into another type, fails here."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

import pytest

from service import client, errors
from service.api import schemas
from service.client.errors import _ERRORS_BY_SLUG
from service.client.resources import TERMINAL_STATUSES

PAIRS = [
    (client.Problem, schemas.Problem),
    (client.Image, schemas.Image),
    (client.Quality, schemas.Quality),
    (client.Stats, schemas.Stats),
    (client.Job, schemas.Job),
    (client.ModelQuality, schemas.ModelQuality),
    (client.ModelSummary, schemas.ModelSummary),
    (client.ModelInfo, schemas.ModelInfo),
]
# Members the client adds on purpose: a problem's members beyond the five of RFC 9457.
CLIENT_ONLY = {client.Problem: {"extensions"}}

PROBLEM = {"type": "urn:tadm:problem:corrupt-image", "title": "Corrupt image", "status": 422,
           "detail": "the PNG header cannot be read", "instance": "/v1/images"}
QUALITY = {"evaluation_set": "kodak", "images": 24, "psnr_y": 23.4, "bicubic_psnr_y": 23.01, "ms_ssim_y": 0.75,
           "bicubic_ms_ssim_y": None, "release_psnr_y": 24.51, "preview": True, "summary": "preview model: 23.40 dB"}
# One example body per schema, as the API sends it, with every field set (None where a field can be).
EXAMPLES: dict[type, dict[str, Any]] = {
    schemas.Problem: PROBLEM,
    schemas.Image: {"id": "ab" * 10, "width": 768, "height": 512, "scale": 16, "model_id": "0123456789abcdef",
                    "thumbnail_url": "/v1/images/abab/thumbnail", "full_url": "/v1/images/abab/full",
                    "original_bytes": 560949, "thumbnail_bytes": 669, "saving": 0.998807, "created_at": 1.7e9,
                    "method": "plain", "auto": True, "quality": {
                        "method": "plain", "psnr_y": 31.25, "ms_ssim_y": 0.91, "ssimulacra2": 41.5,
                        "bicubic_psnr_y": 31.25, "thumbnail_deviation": 0.0, "thumbnail_pulled_in": False,
                        "colour_map": False, "colour_lattice": None}},
    schemas.Quality: {"method": "tadm", "psnr_y": 27.5, "ms_ssim_y": None, "ssimulacra2": -3.25,
                      "bicubic_psnr_y": 26.0, "thumbnail_deviation": 47.5, "thumbnail_pulled_in": True,
                      "colour_map": True, "colour_lattice": "8x6"},
    schemas.Stats: {"images": 3, "original_bytes": 3_000_000, "stored_bytes": 12_000, "saving": 0.996,
                    "verified": 3, "fallbacks": 1},
    schemas.Job: {"id": "0123456789abcdef01234567", "kind": "upscale", "status": "failed", "progress": 0.5,
                  "attempts": 2, "error": PROBLEM, "image_id": "ab" * 10, "result_url": None,
                  "created_at": 1.7e9, "updated_at": 1.7e9 + 3.5},
    schemas.ModelQuality: QUALITY,
    schemas.ModelSummary: {"model_id": "0123456789abcdef", "preset": "nano", "scale": 32, "trained": True,
                           "quality": QUALITY, "plain_rule_psnr_y": 37.4},
    schemas.ModelInfo: {"workers": 2, "models": [{"model_id": "0123456789abcdef", "preset": "tiny", "scale": 16,
                                                 "trained": False, "quality": None, "plain_rule_psnr_y": None}],
                        "warning": "untrained",
                        "notice": "preview model: 23.40 dB"},
}


def plain(value: Any) -> Any:
    """A client resource as the JSON-like value the schema dumps (without the client's own members)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip = CLIENT_ONLY.get(type(value), set())
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


@pytest.mark.parametrize(("resource", "schema"), PAIRS, ids=[s.__name__ for _, s in PAIRS])
def test_client_resources_have_the_schemas_fields(resource: type, schema: type) -> None:
    client_fields = {f.name for f in dataclasses.fields(resource)} - CLIENT_ONLY.get(resource, set())
    assert client_fields == set(schema.model_fields)


@pytest.mark.parametrize(("resource", "schema"), PAIRS, ids=[s.__name__ for _, s in PAIRS])
def test_what_the_api_sends_reads_back_field_for_field(resource: type, schema: type) -> None:
    body = schema.model_validate(EXAMPLES[schema]).model_dump(mode="json")
    assert set(body) == set(EXAMPLES[schema])  # the example sets every field
    assert plain(resource.from_json(body)) == body


def test_the_clients_terminal_statuses_are_the_apis() -> None:
    statuses = set(get_args(schemas.Job.model_fields["status"].annotation))
    assert TERMINAL_STATUSES == statuses - {"queued", "running"}


def every_problem_class(base: type = errors.ProblemError) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *every_problem_class(sub)]
    return found


def test_every_problem_the_api_answers_has_its_client_exception() -> None:
    # job-failed reaches the client inside a job (JobFailedError), never as a response of its own.
    answered = {cls.slug for cls in every_problem_class() if cls is not errors.JobFailed}
    assert answered <= set(_ERRORS_BY_SLUG)
