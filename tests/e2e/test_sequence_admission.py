"""Admission in engine sequences on the real server: with room for 4 sequences running and 4
waiting, a beam-8 request (8 sequences) is refused with 429 while a beam-2 one is still
admitted, whatever the request counts say (8 running + 8 queued, far from full).

To hold requests in flight deterministically the engine core is stopped (SIGSTOP), as in
test_auth_and_faults.py: every engine call then waits, and the test waits on the server's own
gauges, never on a sleep; the long timeouts are only hang guards."""

import signal
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tests.e2e.waiting import HANG_GUARD, engine_core, wait_for

URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Any) -> Iterator[Any]:
    proc = start_server(tmp_path_factory.mktemp("sequences") / "server.log",
                        "--max-concurrent-sequences", "4", "--max-queued-sequences", "4")
    yield proc
    proc.stop(signal.SIGKILL)




class Call(threading.Thread):
    """One JSON chat completion in a thread of its own; its status and body once it ends."""

    def __init__(self, server: Any, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.url, self.body = f"{server.base_url}{URL}", body
        self.response: httpx.Response | None = None

    def run(self) -> None:
        self.response = httpx.post(self.url, json=self.body, timeout=HANG_GUARD)

    def result(self) -> httpx.Response:
        self.join(HANG_GUARD)
        assert not self.is_alive() and self.response is not None, f"hung: {self.body}"
        return self.response


def gauges(server: Any) -> tuple[float, float, float, float]:
    return (server.counter("cot_server_requests_running"),
            server.counter("cot_server_sequences_running"),
            server.counter("cot_server_requests_waiting"),
            server.counter("cot_server_sequences_waiting"))


def assert_server_busy(response: httpx.Response) -> dict[str, Any]:
    """429 in the OpenAI error shape, saying why, with Retry-After."""
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "server_busy"
    return body["error"]


def test_a_heavy_request_is_refused_while_a_light_one_is_admitted(limited, chat_body):
    core = engine_core(limited)
    assert gauges(limited) == (0, 0, 0, 0)
    core.suspend()  # from here on every engine call waits
    calls: list[Call] = []
    try:
        beam4 = Call(limited, {**chat_body, "beam_width": 4})  # 4 sequences: the whole budget
        beam4.start()
        calls.append(beam4)
        wait_for(lambda: gauges(limited) == (1, 4, 0, 0), "a beam-4 request running", limited)
        beam2 = Call(limited, {**chat_body, "beam_width": 2})  # no room to run: it waits
        beam2.start()
        calls.append(beam2)
        wait_for(lambda: gauges(limited) == (1, 4, 1, 2), "a beam-2 request queued", limited)

        heavy = httpx.post(f"{limited.base_url}{URL}", json={**chat_body, "beam_width": 8},
                           timeout=60)  # 2 + 8 sequences would wait: more than 4
        error = assert_server_busy(heavy)
        assert "4 running, 2 queued, this request 8" in error["message"]
        streamed = httpx.post(f"{limited.base_url}{URL}", timeout=60, json={
            **chat_body, "beam_width": 2, "n": 2, "stream": True})  # n counts too: 2 x 2
        assert streamed.headers["content-type"].startswith("application/json")
        assert_server_busy(streamed)
        assert gauges(limited) == (1, 4, 1, 2)  # the refused ones left no trace

        light = Call(limited, {**chat_body, "beam_width": 2})  # 2 + 2 <= 4: admitted to wait
        light.start()
        calls.append(light)
        wait_for(lambda: gauges(limited) == (1, 4, 2, 4), "a second beam-2 request queued",
                 limited)
    finally:
        core.resume()
    for call in calls:
        response = call.result()
        assert response.status_code == 200, response.text
        assert len(response.json()["choices"]) == 1
    wait_for(lambda: gauges(limited) == (0, 0, 0, 0), "the queue empty", limited)
    text = httpx.get(f"{limited.base_url}/metrics", timeout=10).text
    refused = [line for line in text.splitlines()
               if line.startswith("cot_server_requests_total{") and 'status="429"' in line]
    assert refused and float(refused[0].rsplit(" ", 1)[1]) == 2, refused
