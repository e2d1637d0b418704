"""server/tracing.py against the real OpenTelemetry SDK, spans kept by an in-memory exporter."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server import tracing
from server.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


@pytest.fixture
def exported() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def test_a_request_span_continues_the_callers_w3c_trace(exported):
    on, exporter = exported
    request = on.start("POST /v1/chat/completions", {"traceparent": TRACEPARENT},
                       {tracing.HTTP_ROUTE: "/v1/chat/completions"})
    assert request is not None
    request.end(200)
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "POST /v1/chat/completions"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert span.attributes[tracing.HTTP_STATUS] == 200
    assert span.status.status_code is StatusCode.UNSET


def test_without_traceparent_a_new_trace_begins(exported):
    on, exporter = exported
    on.start("GET /v1/models", {}, {}).end(200)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and span.context.trace_id != 0


def test_the_bound_request_collects_attributes_usage_and_child_spans(exported):
    on, exporter = exported
    request = on.start("POST /v1/chat/completions", {}, {})
    token = tracing.bind(request)
    try:
        tracing.set_attributes({"cot.search.beam_width": 4})
        tracing.add_usage(100, 7)
        tracing.add_usage(20, 3)
        began = time.time_ns()
        tracing.record_span("stage SUMMARY", began, began + 1000, {"cot.stage": "SUMMARY"})
        with tracing.span("select", {"cot.selector": "judge"}) as outer, \
                tracing.span("compare", parent=outer) as inner:
            inner.set_attribute("cot.round", 1)
        with pytest.raises(ValueError), tracing.span("failing"):
            raise ValueError("boom")
        headers = tracing.trace_headers()
    finally:
        tracing.unbind(token)
    request.end(200, failure=504)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["POST /v1/chat/completions"]
    assert root.attributes["cot.search.beam_width"] == 4
    assert (root.attributes[tracing.PROMPT_TOKENS],
            root.attributes[tracing.COMPLETION_TOKENS]) == (120, 10)
    assert root.attributes[tracing.ERROR_TYPE] == "504"  # a stream that failed after its 200
    assert root.status.status_code is StatusCode.ERROR
    stage = spans["stage SUMMARY"]
    assert (stage.start_time, stage.end_time) == (began, began + 1000)
    for name in ("stage SUMMARY", "select", "failing"):
        assert spans[name].parent.span_id == root.context.span_id, name
    assert spans["compare"].parent.span_id == spans["select"].context.span_id
    assert spans["failing"].status.status_code is StatusCode.ERROR
    assert spans["failing"].events[0].name == "exception"
    assert headers["traceparent"].split("-")[1] == format(root.context.trace_id, "032x")


def test_client_errors_are_not_span_errors(exported):
    on, exporter = exported
    on.start("POST /v1/chat/completions", {}, {}).end(400)
    assert exporter.get_finished_spans()[0].status.status_code is StatusCode.UNSET


def test_outside_a_request_or_with_tracing_off_everything_is_a_no_op():
    tracing.set_attributes({"a": 1})
    tracing.add_usage(1, 1)
    tracing.record_span("stage", time.time_ns())
    with tracing.span("x") as nothing:
        assert nothing is None
    assert tracing.trace_headers() == {} and tracing.current() is None
    off = Tracing.to_collector(None)
    assert not off.enabled and off.start("x", {}, {}) is None
    off.shutdown()


def test_a_collector_endpoint_turns_tracing_on_and_an_unreachable_one_costs_nothing(
        monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")  # bounds the last export
    on = Tracing.to_collector("http://127.0.0.1:9")  # nothing listens there
    assert on.enabled
    began = time.monotonic()
    on.start("GET /v1/models", {}, {}).end(200)
    assert time.monotonic() - began < 0.5  # exported in the background
    on.shutdown()
    assert time.monotonic() - began < 5


def test_the_export_protocol_is_read_as_vllm_reads_it(monkeypatch):
    monkeypatch.setenv(tracing.PROTOCOL_VARIABLE, "http/protobuf")
    assert type(tracing.span_exporter("http://127.0.0.1:9/v1/traces")).__module__.endswith(
        "http.trace_exporter")
    monkeypatch.setenv(tracing.PROTOCOL_VARIABLE, "carrier-pigeon")
    with pytest.raises(ValueError, match="grpc or http/protobuf"):
        tracing.span_exporter("http://127.0.0.1:9")
