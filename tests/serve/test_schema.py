"""Schemathesis against the live service's OpenAPI document: no generated request, valid
(positive) or invalid (negative), gets a 5xx.

Cases are drawn from each operation's Hypothesis strategy and sent over HTTP (schemathesis'
pytest plugin is not used: its lazy fixtures do not work with this pytest).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 40


def test_no_generated_request_gets_a_server_error(live_server):
    schema = schemathesis.openapi.from_url(live_server + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/api/v1/predict", "/api/v1/model", "/healthz"}
    seen: dict[str, set[int]] = {}
    predict = next(op for op in operations if op.path == "/api/v1/predict")
    # the other operations take no input, so there is nothing to make invalid
    runs = [(op, GenerationMode.POSITIVE) for op in operations] + [
        (predict, GenerationMode.NEGATIVE)
    ]
    for operation, mode in runs:

        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case):
            response = case.call()
            seen.setdefault(case.path, set()).add(response.status_code)
            assert response.status_code < 500, f"{case.method} {case.path}: {response.text}"

        no_server_error()
    assert seen["/healthz"] == {200}
    assert any(400 <= status < 500 for status in seen["/api/v1/predict"])
