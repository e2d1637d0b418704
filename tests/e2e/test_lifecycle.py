"""A second real server (two-stage think/answer schema, prompted mode) that is shut down with
SIGTERM while requests are in flight: none may be lost."""

import signal
import threading
import time

import httpx
import pytest

from tests.conftest import start_server

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


def test_sigterm_drains_in_flight_searches_and_refuses_new_ones(second_server, chat_body):
    base = second_server.base_url
    body = {**chat_body, "beam_width": 4, "stage_max_tokens": 200}
    results: list[int] = []

    def call() -> None:
        results.append(httpx.post(f"{base}{URL}", json=body, timeout=120).status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while second_server.counter("cot_server_requests_running") < 4:  # all four are searching
        assert time.monotonic() < deadline, "the four searches did not start"
        time.sleep(0.05)
    second_server.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while httpx.get(f"{base}/ready").status_code != 503:
        assert time.monotonic() < deadline, "/ready did not turn 503 after SIGTERM"
        time.sleep(0.05)
    assert httpx.get(f"{base}/ready").json() == {"status": "draining"}
    refused = httpx.post(f"{base}{URL}", json=chat_body, timeout=10)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "not_ready"
    for thread in threads:
        thread.join(120)
    assert results == [200, 200, 200, 200]
    assert second_server.process.wait(60) == 0
