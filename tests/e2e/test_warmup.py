"""Warm-up before ready, on a server of its own watched from its start: /ready says loading, then
warming while the warm-up runs, then ready; by then the warm-up has made every kind of engine
call a request makes, and no request has been counted. No timing is asserted."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.servers import launch
from tests.conftest import MODEL_DIR, ROOT, SERVER_ARGS

PATHS = ("one_call", "logprobs", "judge", "verify", "structured")


@pytest.fixture(scope="module")
def watched(tmp_path_factory, tiny_model_dir):
    """The server, and each /ready answer (status code, state) it gave until the first 200."""
    answers: list[tuple[int, str]] = []
    proc = launch(["-m", "server", "serve", "--model", str(MODEL_DIR), "--served-model-name",
                   "tiny-cot", *SERVER_ARGS], tmp_path_factory.mktemp("warmup") / "server.log",
                  model="tiny-cot", cwd=ROOT, poll_s=0.02,
                  watch=lambda r: answers.append((r.status_code, r.json()["status"])))
    # what the metrics said the moment it turned ready, before any request
    metrics = httpx.get(f"{proc.base_url}/metrics", timeout=10).text
    yield proc, answers, metrics
    proc.stop()


def sample(text: str, name: str, **labels: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples if s.name == name and labels.items() <= s.labels.items())


def test_ready_says_warming_until_the_warm_up_is_done(watched):
    server, answers, _ = watched
    assert answers[-1] == (200, "ready")
    before = answers[:-1]
    assert all(code == 503 for code, _ in before), answers
    states = [state for _, state in before]
    # in this order, each for as long as it lasted: loading (if seen), then warming
    assert states == sorted(states, key=["loading", "warming"].index), states
    assert "warming" in states, answers
    log = server.log()
    lines = [log.index(line) for line in ("model ", "warming up before ready: "
                                          + ", ".join(PATHS), "warm-up took ",
                                          "ready: taking requests")]
    assert lines == sorted(lines), server.log_tail()
    assert "warm-up path" not in log, server.log_tail()  # no path failed


def test_every_kind_of_engine_call_was_made_before_any_request(watched):
    _, _, metrics = watched
    for kind in ("stage", "stages", "selection"):
        assert sample(metrics, "cot_server_engine_calls_total", kind=kind) > 0, kind
    assert sample(metrics, "cot_server_judge_comparisons_total") > 0  # judged, not skipped
    for path in PATHS:
        assert sample(metrics, "cot_server_warmup_requests_total", path=path,
                      outcome="ok") == 1, path
    assert sample(metrics, "cot_server_warmup_requests_total", outcome="failed") == 0
    assert sample(metrics, "cot_server_warmup_seconds") > 0
    assert sample(metrics, "cot_server_readiness", state="ready") == 1
    # not requests: the request metrics are empty
    assert sample(metrics, "cot_server_requests_total") == 0
    assert sample(metrics, "cot_server_request_duration_seconds_count") == 0
    assert sample(metrics, "cot_server_time_to_first_token_seconds_count") == 0
    # the engine saw them: the image path, sampling with n > 1, token logprobs
    assert sample(metrics, "vllm:request_success_total") > 0
    assert re.search(r'^cot_server_search_requests_total\{beam_width="4",selector="verify"\} 1',
                     metrics, re.M)


def test_the_first_request_after_ready_is_served_and_counted(watched, chat_body):
    server, _, _ = watched
    response = httpx.post(f"{server.base_url}/v1/chat/completions",
                          json={**chat_body, "beam_width": 4}, timeout=120)
    assert response.status_code == 200, response.text
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert sample(metrics, "cot_server_requests_total", route="/v1/chat/completions",
                  status="200") == 1
