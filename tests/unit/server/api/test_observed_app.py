"""The app built in-process (create_app) on a FAKE engine (tests/unit/server/search/
fake_engine.py), with spans kept by an in-memory exporter: what a real-server test cannot see
(the spans themselves) and the observations of requests the real engine will not fail on cue
(a stream that fails midway). tests/e2e/test_observability.py runs the real server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server.api.state import ServerState, server_state
from server.app import create_app
from server.config import Settings
from server.request_id import current_request_id
from server.tracing import Tracing
from tests.unit.server.search.fake_engine import FakeEngine, render_chat_fake

URL = "/v1/chat/completions"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"
BODY = {"model": "fake", "messages": [{"role": "user", "content": "How many?"}]}


class ServedFake(FakeEngine):
    """The FAKE engine as the app holds one; `fail_from` makes its n-th generate call and
    those after it fail; it notes the HTTP request id each call is made under."""

    dead = False
    max_model_len = 4096

    def __init__(self, fail_from: int | None = None) -> None:
        super().__init__()
        self.fail_from = fail_from
        self.request_ids: list[str | None] = []

    def render_chat(self, messages: list[dict[str, Any]], kwargs: Any = None) -> str:
        return render_chat_fake(messages, kwargs)

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.request_ids.append(current_request_id())
        if self.fail_from is not None and len(self.generate_calls) + 1 >= self.fail_from:
            self.generate_calls.append(("failed", args[2]))
            raise RuntimeError("the FAKE engine fails on cue")
        return await super().generate(*args, **kwargs)

    async def shutdown(self) -> None:
        pass


@contextlib.asynccontextmanager
async def served(engine: ServedFake, traced: bool = True
                 ) -> AsyncIterator[tuple[httpx.AsyncClient, ServerState, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def factory(_: Settings) -> ServedFake:
        return engine

    app = create_app(Settings(served_model_name=("fake",), stage_max_tokens=16, warmup=False),
                     engine_factory=factory, tracing=Tracing(provider) if traced else None)
    state = server_state(app)
    async with app.router.lifespan_context(app):
        while not state.lifecycle.ready:
            await asyncio.sleep(0.01)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, state, exporter


def sample(of: ServerState, name: str, **labels: str) -> float:
    value = of.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def events(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


async def test_one_span_per_request_continuing_the_trace_with_search_attributes_and_stages():
    engine = ServedFake()
    async with served(engine) as (client, _, exporter):
        response = await client.post(URL, json={**BODY, "beam_width": 2}, headers={
            "traceparent": TRACEPARENT, "x-request-id": "req-7"})
        assert response.status_code == 200, response.text
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert root.name == "POST /v1/chat/completions"
    assert format(root.context.trace_id, "032x") == TRACE_ID  # the caller's trace
    attributes = root.attributes
    assert attributes["gen_ai.request.id"] == "req-7"
    assert attributes["http.route"] == URL and attributes["http.response.status_code"] == 200
    assert attributes["cot.search.beam_width"] == 2
    assert attributes["cot.search.selector"] == "judge"
    assert attributes["cot.search.shape"] == "stage" and attributes["cot.stream"] is False
    usage = response.json()["usage"]
    assert attributes["gen_ai.usage.prompt_tokens"] == usage["prompt_tokens"] > 0
    assert attributes["gen_ai.usage.completion_tokens"] == usage["completion_tokens"] > 0
    stages = [s for s in spans if s.name.startswith("stage ")]
    assert [s.attributes["cot.stage"] for s in stages] == [
        "SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    for stage in stages:
        assert stage.parent.span_id == root.context.span_id
        assert stage.attributes["cot.stage.candidates"] == 2
        assert stage.attributes["cot.stage.selected_by"]
        assert root.start_time <= stage.start_time <= stage.end_time <= root.end_time
    assert all(before.end_time <= after.start_time
               for before, after in itertools.pairwise(stages))
    # the search's engine calls ran under the HTTP request's id (engine ids derive from it)
    assert engine.request_ids and set(engine.request_ids) == {"req-7"}



async def test_each_candidate_batch_and_selection_has_its_span():
    """Per stage: one `engine stage` span (the stage's candidates, one engine call), one
    `selection <TAG>` span with the selector, the pick and its comparisons, and one
    `engine selection` span per one-token judge call (FAKE engine)."""
    engine = ServedFake()
    async with served(engine) as (client, state, exporter):
        response = await client.post(URL, json={**BODY, "beam_width": 3, "selector": "judge",
                                                "return_trace": True})
        assert response.status_code == 200, response.text
        one_token_calls = sample(state, "cot_server_engine_calls_total", kind="selection")
    spans = exporter.get_finished_spans()
    (root,) = [s for s in spans if s.kind is SpanKind.SERVER]
    batches = [s for s in spans if s.name == "engine stage"]
    selections = [s for s in spans if s.name.startswith("selection ")]
    calls = [s for s in spans if s.name == "engine selection"]
    stages = response.json()["choices"][0]["message"]["stages"]
    assert len(batches) == len(stages) == 4
    for batch in batches:
        assert batch.attributes["cot.call.kind"] == "stage"
        assert batch.attributes["cot.candidates"] == 3
        assert batch.attributes["gen_ai.usage.completion_tokens"] > 0
    assert [s.attributes["cot.stage"] for s in selections] == [s["tag"] for s in stages]
    for span, stage in zip(selections, stages, strict=True):
        assert span.attributes["cot.selector"] == "judge"
        assert span.attributes["cot.candidates"] == 3
        assert span.attributes["cot.selection.chosen_index"] == stage["chosen_index"]
        assert span.attributes["cot.selection.method"] == stage["selected_by"]
        assert span.attributes["cot.selection.comparisons"] == len(stage["comparisons"])
    assert len(calls) == one_token_calls >= sum(len(s["comparisons"]) for s in stages) > 0
    for span in [*batches, *selections, *calls]:
        assert span.parent.span_id == root.context.span_id
        assert root.start_time <= span.start_time <= span.end_time <= root.end_time

async def test_a_stream_that_fails_midway_is_counted_logged_and_traced_as_a_failure(caplog):
    caplog.set_level(logging.INFO, "server.access")
    async with served(ServedFake(fail_from=2)) as (client, state, exporter):
        response = await client.post(URL, json={**BODY, "beam_width": 2, "stream": True,
                                                "return_trace": True})
        assert response.status_code == 200  # the stream had begun
        sent = events(response.text)
        assert "reasoning" in sent[0]["choices"][0]["delta"]  # a stage went out first
        assert sent[-1]["error"]["code"] == "engine_error"
        assert sample(state, "cot_server_requests_total", route=URL, status="500") == 1
        assert sample(state, "cot_server_requests_total", route=URL, status="200") == 0
        assert sample(state, "cot_server_request_duration_seconds_count") == 1
    (root,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["error.type"] == "500"
    assert root.attributes["http.response.status_code"] == 200
    assert re.search(r"POST /v1/chat/completions 200 [0-9.]+s \(stream failed: 500\)",
                     caplog.text), caplog.text


async def test_streams_are_observed_in_the_latency_and_ttft_histograms():
    async with served(ServedFake()) as (client, state, _):
        stream = await client.post(URL, json={**BODY, "stream": True})
        assert stream.status_code == 200 and events(stream.text)[-1]["choices"]
        assert sample(state, "cot_server_time_to_first_token_seconds_count") == 1
        assert sample(state, "cot_server_request_duration_seconds_count") == 1
        ttft = sample(state, "cot_server_time_to_first_token_seconds_sum")
        assert 0 < ttft <= sample(state, "cot_server_request_duration_seconds_sum")
        plain = await client.post(URL, json=BODY)
        assert plain.status_code == 200
        assert sample(state, "cot_server_request_duration_seconds_count") == 2
        assert sample(state, "cot_server_time_to_first_token_seconds_count") == 1  # streams
        assert sample(state, "cot_server_requests_total", route=URL, status="200") == 2
        responses = await client.post("/v1/responses", json={
            "model": "fake", "input": "How many?", "stream": True})
        assert responses.status_code == 200 and "response.completed" in responses.text
        assert sample(state, "cot_server_time_to_first_token_seconds_count") == 2


async def test_route_labels_are_templates_and_unknown_paths_are_one_label():
    async with served(ServedFake(), traced=False) as (client, state, _):
        for path in ("/v1/nope", "/v1/x/1", "/v1/x/2", "/v1/chat/completions/extra"):
            assert (await client.get(path)).status_code == 404
        assert (await client.get(URL)).status_code == 405
        assert (await client.get("/v1/models")).status_code == 200
        assert (await client.get("/health")).status_code == 200
        labels = {(s.labels["route"], s.labels["status"])
                  for metric in state.metrics.registry.collect()
                  if metric.name == "cot_server_requests"
                  for s in metric.samples if s.name.endswith("_total")}
    assert labels == {("unmatched", "404"), (URL, "405"), ("/v1/models", "200")}
    assert sample(state, "cot_server_requests_total", route="unmatched", status="404") == 4


async def test_tracing_is_off_without_an_endpoint_and_readiness_is_a_metric():
    async with served(ServedFake(), traced=False) as (client, state, exporter):
        assert not state.tracing.enabled
        assert (await client.post(URL, json=BODY)).status_code == 200
        assert sample(state, "cot_server_readiness", state="ready") == 1
        assert sample(state, "cot_server_readiness", state="loading") == 0
        state.lifecycle.drain()
        assert sample(state, "cot_server_readiness", state="draining") == 1
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("effort", ["none", "high"])
async def test_selector_decisions_are_counted_per_stage(effort):
    async with served(ServedFake(), traced=False) as (client, state, _):
        body = {**BODY, "reasoning_effort": effort}
        assert (await client.post(URL, json=body)).status_code == 200
        counted = {(s.labels["stage"], s.labels["selected_by"]): s.value
                   for metric in state.metrics.registry.collect()
                   if metric.name == "cot_server_stage_selections"
                   for s in metric.samples if s.name.endswith("_total")}
    assert {stage for stage, _ in counted} == {"SUMMARY", "CAPTION", "REASONING", "CONCLUSION"}
    assert all(value == 1 for value in counted.values())
