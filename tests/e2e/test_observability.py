"""Observability on a real server process: with --otlp-traces-endpoint naming a collector that
is not there it starts and serves (spans are exported in the background; the spans themselves
are checked in-process, tests/unit/server/api/test_observed_app.py); --log-format json writes
one JSON object per line with the request id; streams are observed in the latency and TTFT
histograms; a stream that fails after its 200 counts as a failure and one the client leaves as
499; route labels are route templates."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.servers import free_port
from tests.conftest import start_server
from tests.e2e.waiting import engine_core, wait_for

URL = "/v1/chat/completions"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def observed(tmp_path_factory, tiny_model_dir):
    collector = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    proc = start_server(tmp_path_factory.mktemp("observed") / "server.log",
                        "--otlp-traces-endpoint", collector, "--log-format", "json",
                        "--gpu-memory-utilization", "0.1")  # beside the session server
    yield proc
    proc.stop()


def sample(server, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name and labels.items() <= s.labels.items())


def test_it_serves_with_an_unreachable_collector(observed, chat_body):
    # each call's client timeout is the guard: a blocking export would hang them
    response = httpx.post(f"{observed.base_url}{URL}", json=chat_body, timeout=120,
                          headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] is not None
    with httpx.stream("POST", f"{observed.base_url}{URL}", json={**chat_body, "stream": True},
                      timeout=120) as stream:
        assert stream.status_code == 200
        assert list(stream.iter_lines())[-2:] == ["data: [DONE]", ""]
    answered = httpx.post(f"{observed.base_url}/v1/responses", timeout=120, json={
        "model": "tiny-cot", "input": "How many red shapes are there?"})
    assert answered.status_code == 200 and answered.json()["status"] in ("completed",
                                                                         "incomplete")
    assert httpx.get(f"{observed.base_url}/health", timeout=10).status_code == 200


def test_json_logs_are_one_object_per_line_with_the_request_id(observed, chat_body):
    response = httpx.post(f"{observed.base_url}{URL}", json=chat_body, timeout=120,
                          headers={"x-request-id": "obs-json-1"})
    assert response.status_code == 200
    wait_for(lambda: "obs-json-1" in observed.log(), "the request's log line", observed)
    entries = []
    for line in observed.log().splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    assert entries and all({"time", "level", "logger", "message", "request_id"} <= set(e)
                           for e in entries)
    access = [e for e in entries if e["logger"] == "server.access"
              and e["request_id"] == "obs-json-1"]
    assert len(access) == 1 and f"POST {URL} 200" in access[0]["message"]
    loggers = {e["logger"] for e in entries}
    assert "uvicorn.error" in loggers, loggers  # uvicorn's lines are JSON too
    assert any(e["logger"].startswith("vllm") for e in entries)  # vLLM's lines are too
    text = [line for line in observed.log().splitlines() if not line.startswith("{")
            and (" server." in line or " INFO " in line or " WARNING " in line)]
    assert text == [], text[:3]  # no line of ours, uvicorn's or vLLM's in a text format


def test_streams_are_observed_in_latency_and_ttft(observed, chat_body):
    before = {name: sample(observed, name) for name in (
        "cot_server_time_to_first_token_seconds_count",
        "cot_server_request_duration_seconds_count")}
    ok = sample(observed, "cot_server_requests_total", route=URL, status="200")
    with httpx.stream("POST", f"{observed.base_url}{URL}", json={**chat_body, "stream": True},
                      timeout=120) as stream:
        assert stream.status_code == 200
        stream.read()
    # the middleware counts once the response is complete
    wait_for(lambda: sample(observed, "cot_server_requests_total", route=URL,
                            status="200") == ok + 1, "the stream counted 200", observed)
    for name, count in before.items():
        assert sample(observed, name) == count + 1, name


def test_a_stream_past_its_deadline_counts_as_a_failure_not_a_200(observed, chat_body):
    """The engine core is stopped (SIGSTOP) for the request, so its search cannot end before its
    deadline however fast the machine is; the stream's headers go out first all the same (the
    response starts before its body is iterated), and the abort at the deadline is a message to
    the core, not a wait for it."""
    ok = sample(observed, "cot_server_requests_total", route=URL, status="200")
    late = sample(observed, "cot_server_requests_total", route=URL, status="504")
    body = {**chat_body, "stream": True, "beam_width": 4, "return_trace": True,
            "timeout": 0.5}
    core = engine_core(observed)
    core.suspend()
    try:
        with httpx.stream("POST", f"{observed.base_url}{URL}", json=body,
                          timeout=120) as stream:
            assert stream.status_code == 200  # the stream begins before its search ends
            events = [json.loads(line[6:]) for line in stream.iter_lines()
                      if line.startswith("data: {")]
    finally:
        core.resume()
    assert events[-1]["error"]["code"] == "timeout"
    wait_for(lambda: sample(observed, "cot_server_requests_total", route=URL,
                            status="504") == late + 1, "the late stream counted 504", observed)
    assert sample(observed, "cot_server_requests_total", route=URL, status="200") == ok


def test_a_client_leaving_a_stream_is_counted_499(observed, chat_body):
    gone = sample(observed, "cot_server_requests_total", route=URL, status="499")
    body = {**chat_body, "stream": True, "beam_width": 4, "stage_max_tokens": 64}
    with httpx.stream("POST", f"{observed.base_url}{URL}", json=body, timeout=120) as stream:
        assert stream.status_code == 200
    wait_for(lambda: sample(observed, "cot_server_requests_total", route=URL,
                            status="499") == gone + 1, "the stream left counted 499", observed)


def test_route_labels_are_templates_never_raw_paths(observed):
    for path in ("/v1/made-up-path-123", "/v1/models/../x"):
        assert httpx.get(f"{observed.base_url}{path}", timeout=10).status_code == 404
    text = httpx.get(f"{observed.base_url}/metrics", timeout=10).text
    assert 'route="unmatched",status="404"' in text
    assert "made-up-path" not in text
    routes = {s.labels["route"] for family in text_string_to_metric_families(text)
              for s in family.samples if s.name == "cot_server_requests_total"}
    assert routes <= {URL, "/v1/responses", "/v1/models", "unmatched"}, routes
