"""API keys, a client that hangs up, and a dying engine, each on its own real server process.

The engine tests kill the real engine core (the EngineCore child process) while requests are in
flight. To have them in flight deterministically, the core is first stopped (SIGSTOP): every
engine call made from then on waits, and what the test waits for is observable state (a
stream's first event, the server's running and waiting gauges, /health), never a sleep; the
long timeouts are only hang guards."""

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server
from tests.e2e.waiting import HANG_GUARD, engine_core, wait_for

URL = "/v1/chat/completions"
KEYS = "first-key-123,second-key-456"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    proc = start_server(tmp_path_factory.mktemp("auth") / "server.log", "--api-key", KEYS,
                        "--metrics-api-key", "metrics-key-789")
    yield proc
    proc.stop(signal.SIGKILL)


def test_v1_routes_need_a_valid_key(guarded, chat_body):
    base = guarded.base_url
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "first-key-123"}):
        response = httpx.post(f"{base}{URL}", json=chat_body, headers=headers, timeout=60)
        assert response.status_code == 401, headers
        error = response.json()["error"]
        assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert httpx.get(f"{base}/v1/models").status_code == 401
    for key in KEYS.split(","):
        ok = httpx.post(f"{base}{URL}", json=chat_body, timeout=60,
                        headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200


def test_probes_are_open_and_metrics_have_their_own_key(guarded):
    base = guarded.base_url
    assert httpx.get(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/ready").status_code == 200
    assert httpx.get(f"{base}/metrics").status_code == 401
    assert httpx.get(f"{base}/metrics", headers={
        "Authorization": "Bearer metrics-key-789"}).status_code == 200


def test_keys_never_reach_the_logs(guarded):
    log = guarded.log()
    assert "request_id=" in log  # the access log is there
    for secret in (*KEYS.split(","), "metrics-key-789", "wrong"):
        assert secret not in log


def ignored_signals(pid: int) -> set[int]:
    """The signals process `pid` ignores (its SigIgn mask in /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("SigIgn:")), 16)
    return {number for number in range(1, 65) if mask >> (number - 1) & 1}


def test_a_client_hanging_up_cannot_kill_the_server(guarded):
    """With SIGPIPE's default action, a write to a connection whose client has hung up (a
    stream left mid-search, as the soak's 'leave' clients do) kills the server silently: no
    error, no access line, the other connections reset. The server must ignore it."""
    pid = guarded.process.pid
    assert signal.SIGPIPE in ignored_signals(pid)
    os.kill(pid, signal.SIGPIPE)  # what such a write raises
    assert httpx.get(f"{guarded.base_url}/health", timeout=10).status_code == 200
    assert guarded.process.poll() is None






class Call(threading.Thread):
    """One chat completion in a thread of its own, JSON or streamed: its status, its `data:`
    lines (a stream's), its JSON body (otherwise), and events for its response headers and
    its first data line; `on_first_data` runs in this thread as soon as that line is read."""

    def __init__(self, base_url: str, body: dict[str, Any],
                 on_first_data: Callable[[], None] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = f"{base_url}{URL}"
        self.body = body
        self.on_first_data = on_first_data
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.lines: list[str] = []
        self.json: Any = None
        self.failure: Exception | None = None
        self.answered = threading.Event()  # the response's status line and headers are in
        self.first_data = threading.Event()

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=HANG_GUARD) as response:
                self.status, self.headers = response.status_code, dict(response.headers)
                self.answered.set()
                if not self.body.get("stream") or response.status_code != 200:
                    self.json = json.loads(response.read())
                    return
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.lines.append(line)
                        if not self.first_data.is_set() and self.on_first_data:
                            self.on_first_data()
                        self.first_data.set()
        except Exception as exc:  # recorded: the test says what happened
            self.failure = exc
        finally:
            self.answered.set()
            self.first_data.set()

    def finished(self) -> str:
        """The call, once it ended (a hang fails the test)."""
        self.join(HANG_GUARD)
        assert not self.is_alive(), f"hung: {self.body}"
        assert self.failure is None, repr(self.failure)
        return f"{self.status} {self.json or self.lines[-3:]}"


def assert_engine_dead(error: dict[str, Any], described: str) -> None:
    """The OpenAI error shape, saying the engine died."""
    assert set(error) == {"error"}, described
    detail = error["error"]
    assert detail["code"] == "engine_dead" and detail["type"] == "service_unavailable", described
    assert detail["message"] and "param" in detail, described


def assert_failed_stream(call: Call) -> list[str]:
    """A stream that had begun (200) and ends with an engine_dead error event, then [DONE];
    the chunks it had sent before."""
    described = call.finished()
    assert call.status == 200, described
    *before, error, done = call.lines
    assert done == "data: [DONE]", described
    assert_engine_dead(json.loads(error.removeprefix("data:")), described)
    return before


LONG = {"stage_max_tokens": 400, "min_tokens": 400}  # seconds of forced tokens


def begin_paused_stream(server: Any, core: Any, chat_body: dict[str, Any]) -> Call:
    """A long streamed answer that has begun, with the engine paused under it: the pause comes
    the moment the stream's first line is read, in the reading thread. Should this machine
    starve the test long enough for the whole answer to be generated first (the server then
    runs nothing), the engine is resumed and it is tried again."""
    for _ in range(3):
        begun = Call(server.base_url, {**chat_body, **LONG, "stream": True,
                                       "return_trace": True}, on_first_data=core.suspend)
        begun.start()
        assert begun.first_data.wait(HANG_GUARD) and begun.lines, begun.finished()
        if server.counter("cot_server_requests_running") == 1:
            return begun
        core.resume()
        begun.finished()
    pytest.fail("the long answer ended before the engine could be paused, three times")


def test_a_dead_engine_fails_every_request_in_flight_then_answers_503_until_it_exits(
        tmp_path, chat_body):
    server = start_server(tmp_path / "server.log", "--max-concurrent-requests", "4",
                          "--engine-dead-grace", "3600")  # it exits on SIGTERM, at the end
    base = server.base_url
    try:
        core = engine_core(server)
        begun = begin_paused_stream(server, core, chat_body)
        running = [Call(base, {**chat_body, "stage_max_tokens": 400}),  # width 1: one call
                   Call(base, {**chat_body, **LONG, "beam_width": 4}),
                   Call(base, {**chat_body, "stream": True})]  # admitted, nothing decoded
        for call in running:
            call.start()
        wait_for(lambda: server.counter("cot_server_requests_running") == 4,
                 "four requests running", server)
        queued = Call(base, {**chat_body, "stream": True})  # waiting for a slot
        queued.start()
        wait_for(lambda: server.counter("cot_server_requests_waiting") == 1,
                 "a fifth request queued", server)
        assert queued.answered.wait(HANG_GUARD) and queued.status == 200
        assert not running[2].lines and not queued.lines  # neither stream has begun
        core.kill()

        for call in running[:2]:
            described = call.finished()
            assert call.status == 503, described
            assert_engine_dead(call.json, described)
        assert any('"reasoning"' in chunk for chunk in assert_failed_stream(begun))
        for call in (running[2], queued):
            assert assert_failed_stream(call) == []

        health = httpx.get(f"{base}/health", timeout=10)  # vLLM said so before it failed them
        assert (health.status_code, health.json()) == (503, {"status": "engine_dead"})
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 503
        for body in (chat_body, {**chat_body, "stream": True}):
            refused = httpx.post(f"{base}{URL}", json=body, timeout=60)
            assert refused.status_code == 503 and refused.headers["retry-after"]
            assert_engine_dead(refused.json(), refused.text)
        assert server.process.poll() is None  # still answering, within its grace period

        server.process.send_signal(signal.SIGTERM)  # what the orchestrator sends: exit now
        assert server.process.wait(60) == 1, server.log_tail()
    finally:
        server.stop(signal.SIGKILL)


def test_a_dead_engine_makes_the_process_exit_nonzero_on_its_own(tmp_path, chat_body):
    server = start_server(tmp_path / "server.log")  # the default grace period
    try:
        core = engine_core(server)
        core.suspend()
        call = Call(server.base_url, chat_body)
        call.start()
        wait_for(lambda: server.counter("cot_server_requests_running") == 1,
                 "the request running", server)
        core.kill()
        described = call.finished()
        assert call.status == 503, described
        assert_engine_dead(call.json, described)
        assert server.process.wait(HANG_GUARD) == 1, server.log_tail()
        assert "the engine died; answering 503 for 5 s, then exiting (status 1)" in server.log()
    finally:
        server.stop(signal.SIGKILL)
