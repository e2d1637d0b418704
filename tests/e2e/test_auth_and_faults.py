"""API keys, and a dying engine, each on its own real server process."""

import signal
import threading
import time

import httpx
import psutil
import pytest

from tests.conftest import start_server

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


def engine_core(server) -> psutil.Process:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return next(p for p in children if "EngineCore" in " ".join(p.cmdline()) + p.name())


def test_a_dead_engine_fails_requests_with_5xx_and_the_process_exits_nonzero(tmp_path,
                                                                              chat_body):
    server = start_server(tmp_path / "server.log")
    try:
        results: list[httpx.Response | Exception] = []
        body = {**chat_body, "beam_width": 8, "stage_max_tokens": 400, "min_tokens": 400}

        def call() -> None:
            try:
                results.append(httpx.post(f"{server.base_url}{URL}", json=body, timeout=60))
            except httpx.HTTPError as exc:
                results.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 60
        while server.counter("cot_server_requests_running") < 1:  # the search is under way
            assert time.monotonic() < deadline, "the search did not start"
            time.sleep(0.05)
        engine_core(server).kill()
        deadline = time.monotonic() + 30
        healthy = True
        while healthy and time.monotonic() < deadline:  # 503, then the process is gone
            try:
                healthy = httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            time.sleep(0.05)
        assert not healthy
        thread.join(60)
        [result] = results
        assert isinstance(result, httpx.Response), result
        assert result.status_code >= 500 and result.json()["error"]["message"]
        assert server.process.wait(60) != 0
    finally:
        server.stop(signal.SIGKILL)
