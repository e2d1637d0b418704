"""A second real server (two-stage think/answer schema, prompted mode) that is shut down with
SIGTERM while requests are in flight: none may be lost."""

import signal
import threading

import httpx
import pytest

from tests.conftest import start_server
from tests.e2e.waiting import engine_core, wait_for

URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    proc = start_server(tmp_path_factory.mktemp("lifecycle") / "server.log",
                        "--stage-schema", "think-answer", "--stage-mode", "prompted",
                        "--drain-timeout", "60")
    yield proc
    proc.stop(signal.SIGKILL)


def test_think_answer_schema_in_prompted_mode(second_server, chat_body):
    body = {**chat_body, "return_trace": True, "stage_max_tokens": {"think": 8, "answer": 8}}
    data = httpx.post(f"{second_server.base_url}{URL}", json=body, timeout=60).json()
    message = data["choices"][0]["message"]
    assert [s["tag"] for s in message["stages"]] == ["think", "answer"]
    assert message["reasoning_content"].startswith("<think>")
    assert message["content"] == message["stages"][1]["text"]


@pytest.mark.parametrize("selector", ["verify", "weighted_vote", "judge"])
def test_prompted_mode_selectors_ask_their_prompted_questions(second_server, chat_body, selector):
    body = {**chat_body, "beam_width": 3, "selector": selector, "temperature": 1.0, "seed": 2,
            "return_trace": True, "stage_max_tokens": {"think": 8, "answer": 8}}
    data = httpx.post(f"{second_server.base_url}{URL}", json=body, timeout=120).json()
    stages = data["choices"][0]["message"]["stages"]
    assert [s["tag"] for s in stages] == ["think", "answer"]
    asked = 0
    for stage in (s for s in stages if s["selected_by"] in ("verify", "weighted_vote")):
        usable = [c for c in stage["candidates"] if c["text"]]
        scores = [c["score"] for c in usable]
        if len({c["text"] for c in usable}) > 1:
            assert all(0.0 <= score <= 1.0 for score in scores), scores
            asked += 1
        else:  # every candidate would be asked the same: nothing is asked
            assert scores == [None] * len(usable)
    if selector == "verify":
        assert asked or all(len({c["text"] for c in s["candidates"] if c["text"]}) <= 1
                            for s in stages)


def test_sigterm_drains_in_flight_searches_and_refuses_new_ones(second_server, chat_body):
    """Four searches in flight when SIGTERM comes: the engine is paused until the four are in
    flight and the drain has begun, so none can end early however this machine schedules the
    test (the API process may read one request only after the previous one's engine calls were
    submitted); resumed, all four end 200, and the server exits 0."""
    base = second_server.base_url
    body = {**chat_body, "beam_width": 4, "stage_max_tokens": 200, "min_tokens": 200}
    results: list[int | str] = []

    def call() -> None:
        try:
            results.append(httpx.post(f"{base}{URL}", json=body, timeout=180).status_code)
        except httpx.HTTPError as exc:  # recorded, so a failure says what happened
            results.append(repr(exc))

    core = engine_core(second_server)
    core.suspend()
    try:
        threads = [threading.Thread(target=call) for _ in range(4)]
        for thread in threads:
            thread.start()
        # in flight is what the drain waits for: counted from the request's first byte
        wait_for(lambda: second_server.counter("cot_server_requests_in_flight") == 4,
                 "the four searches in flight together", second_server)
        assert not results
        second_server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: httpx.get(f"{base}/ready").status_code == 503,
                 "/ready turning 503 after SIGTERM", second_server)
        assert httpx.get(f"{base}/ready").json() == {"status": "draining"}
        refused = httpx.post(f"{base}{URL}", json=chat_body, timeout=10)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "not_ready"
        assert not results  # nothing could end while the engine was paused
    finally:
        core.resume()
    for thread in threads:
        thread.join(180)
    assert results == [200, 200, 200, 200], second_server.log_tail()
    assert second_server.process.wait(60) == 0
