"""A bounded schemathesis run against the live stack's OpenAPI document: whatever the generated request, the
API answers without a server error (a 503 is allowed only as a documented, retryable problem).

Operations are driven with Hypothesis directly (schemathesis' pytest fixture loader does not support the
pinned pytest), ``max_examples`` per operation keeps the run short."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.slow
RETRYABLE = ("urn:tadm:problem:queue-full", "urn:tadm:problem:not-ready")
EXAMPLES_PER_OPERATION = 12


def _check(case, statuses: list[int]) -> None:
    response = case.call(timeout=60)
    statuses.append(response.status_code)
    if response.status_code >= 500:
        problem = response.json()
        assert response.status_code == 503 and problem["type"] in RETRYABLE, (case.method, case.path, problem)
        assert response.headers.get("retry-after")


def test_no_server_errors(stack):
    stack.ensure_workers(1)
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    statuses: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            _check(case, statuses)

        run()
    assert len(statuses) >= 3 * len(operations)  # the run really sent requests
