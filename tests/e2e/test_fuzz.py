"""Schema-driven fuzzing (schemathesis) of the real server against its own OpenAPI schema.

Two passes, both bounded:
- the schema as served: positive and negative (schema-violating) requests for
  `POST /v1/chat/completions` and `GET /v1/models`; most end as 400 or 404, which is the point;
- a narrowed copy of the schema (model pinned to the served one, small beam, caps and budgets)
  whose valid requests get past validation into the search on the real engine.

Every response must be a non-5xx whose status, content type and body the schema declares.
`COT_FUZZ_EXAMPLES` changes how many requests each operation gets.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.waiting import wait_idle

EXAMPLES = int(os.environ.get("COT_FUZZ_EXAMPLES", "40"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
OPERATIONS = {("POST", "/v1/chat/completions"), ("GET", "/v1/models")}
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                         database=None, suppress_health_check=list(HealthCheck))


def served_schema(server) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


def only(raw: dict[str, Any]) -> dict[str, Any]:
    """The schema with just the operations under test."""
    raw = copy.deepcopy(raw)
    raw["paths"] = {path: {m: op for m, op in ops.items() if (m.upper(), path) in OPERATIONS}
                    for path, ops in raw["paths"].items()
                    if any((m.upper(), path) in OPERATIONS for m in ops)}
    return raw


def narrowed(raw: dict[str, Any], model: str) -> dict[str, Any]:
    """Valid requests of this schema pass validation and reach the engine, cheaply."""
    raw = only(raw)
    raw["paths"] = {"/v1/chat/completions": raw["paths"]["/v1/chat/completions"]}
    props = raw["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    small = lambda hi: {"type": "integer", "minimum": 1, "maximum": hi}  # noqa: E731
    props["model"] = {"type": "string", "enum": [model]}
    props["n"] = small(2)
    # seeded, so a failure that depends on what the engine wrote can be reproduced
    props["seed"] = {"type": "integer", "minimum": 0, "maximum": 3}
    props["beam_width"] = {"anyOf": [small(2), {"type": "null"}]}
    props["stage_max_tokens"] = {"anyOf": [small(8), {"type": "null"}]}
    props["max_tokens"] = props["max_completion_tokens"] = {"anyOf": [small(64),
                                                                      {"type": "null"}]}
    # a short deadline would end in a (documented, deliberate) 504, which reads as a 5xx here
    props["timeout"] = {"anyOf": [{"type": "number", "minimum": 60, "maximum": 120},
                                  {"type": "null"}]}
    props["reasoning_effort"] = {"anyOf": [{"type": "string", "enum": ["low"]},
                                           {"type": "null"}]}
    props["messages"]["maxItems"] = 3
    return raw


def configured(raw: dict[str, Any], base_url: str) -> Any:
    schema = schemathesis.openapi.from_dict(raw)
    schema.config.update(base_url=base_url, request_timeout=60)
    return schema


@pytest.fixture(scope="module")
def raw_schema(server) -> dict[str, Any]:
    return served_schema(server)


def test_the_schema_declares_the_error_responses(raw_schema):
    responses = raw_schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    for status in ("200", "400", "401", "404", "413", "429", "4XX", "500", "503", "504"):
        assert status in responses, status
    assert "422" not in responses  # validation errors are 400s, never FastAPI's 422
    error = raw_schema["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    assert "text/event-stream" in responses["200"]["content"]


def fuzz(schema: Any, method: str, path: str, modes: list[GenerationMode],
         checks: list[Any]) -> None:
    """Run hypothesis over `modes` of one operation. (schemathesis's pytest plugin is not
    used: its `parametrize` reads a pytest-internal attribute that pytest 9 removed.)"""
    operation = schema[path][method]
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes))

    @FUZZ_SETTINGS
    @given(case=cases)
    def run(case: Any) -> None:
        case.call_and_validate(checks=checks, timeout=60)

    run()


@pytest.mark.parametrize("method, path", sorted(OPERATIONS))
def test_fuzz_the_served_schema(server, raw_schema, method, path):
    schema = configured(only(raw_schema), server.base_url)
    # negative_data_rejection: a request that violates the schema must get a 4xx
    fuzz(schema, method, path, [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
         [*CHECKS, negative_data_rejection])


def test_fuzz_requests_that_reach_the_engine(server, raw_schema):
    schema = configured(narrowed(raw_schema, server.model), server.base_url)
    fuzz(schema, "POST", "/v1/chat/completions", [GenerationMode.POSITIVE], CHECKS)


def test_the_server_is_healthy_after_fuzzing(server, chat_body):
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
    assert httpx.post(f"{server.base_url}/v1/chat/completions", json=chat_body,
                      timeout=120).status_code == 200
    wait_idle(server, "engine requests left after fuzzing")
