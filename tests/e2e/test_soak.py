"""Soak: many requests of every kind (plain, searched, streamed, several choices, bad input,
deadlines, clients that leave mid-stream), sequential and concurrent, must leave the server as
it found them after warm-up: memory, open file descriptors and engine requests.

What is measured is the API process (the `cot-server serve` process: HTTP, search, image
decoding; psutil, RSS), not the vLLM engine-core child, whose KV cache is reserved up front; the
engine's side is checked through its own gauges (`vllm:num_requests_running` / `_waiting`).

`COT_SOAK_REQUESTS` sets how many requests run after warm-up (default 60, fast enough for every
test run; `make soak` runs 1000).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from server.images.decoding import encode_data_url
from tests.conftest import shapes_image

URL = "/v1/chat/completions"
REQUESTS = int(os.environ.get("COT_SOAK_REQUESTS", "60"))
WARMUP = 12
CONCURRENCY = 4
RSS_GROWTH = 0.10  # at most 10 % more resident memory than after warm-up
FD_SLACK = 8  # a few descriptors may come and go (log rotation, sockets being closed)


def request_kinds(chat_body: dict) -> list[tuple[str, dict]]:
    other_image = encode_data_url(shapes_image((64, 48)), "JPEG")
    text_only = {"model": chat_body["model"], "messages": [
        {"role": "user", "content": "How many shapes are there?"}]}
    return [
        ("plain", chat_body),
        ("text", text_only),
        ("beam", {**chat_body, "beam_width": 2, "return_trace": True}),
        ("logprob", {**chat_body, "beam_width": 3, "selector": "logprob", "seed": 7}),
        ("n", {**text_only, "n": 2, "max_tokens": 24}),
        ("stream", {**chat_body, "stream": True,
                    "stream_options": {"include_usage": True}}),
        ("other-image", {**chat_body, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": other_image}},
            {"type": "text", "text": "Describe it."}]}]}),
        ("bad", {**chat_body, "top_p": 1.5}),
        ("bad-image", {**chat_body, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}),
        ("deadline", {**chat_body, "beam_width": 4, "stage_max_tokens": 200,
                      "min_tokens": 200, "timeout": 0.3}),
        ("leave", {**chat_body, "stream": True, "beam_width": 4, "stage_max_tokens": 200,
                   "min_tokens": 200}),
    ]


EXPECTED = {"bad": 400, "bad-image": 400, "deadline": 504}


def send(base_url: str, kind: str, body: dict) -> str:
    """One request on a fresh connection; returns a short outcome for the failure message."""
    with httpx.Client(base_url=base_url, timeout=180) as client:
        if kind == "leave":  # read the first event, then hang up mid-search
            with client.stream("POST", URL, json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        break
            return "left"
        if body.get("stream"):
            with client.stream("POST", URL, json=body) as response:
                lines = [line for line in response.iter_lines() if line]
            ok = response.status_code == 200 and lines[-1] == "data: [DONE]"
            return "ok" if ok else f"{kind}: {response.status_code} {lines[-3:]}"
        response = client.post(URL, json=body)
        expected = EXPECTED.get(kind, 200)
        if response.status_code == expected:
            return "ok"
        return f"{kind}: {response.status_code} {response.text[:200]}"


def run_batch(base_url: str, kinds: list[tuple[str, dict]], count: int, start: int) -> list[str]:
    """`count` requests cycling through `kinds`: the first half one by one, the rest
    CONCURRENCY at a time."""
    picks = [kinds[(start + i) % len(kinds)] for i in range(count)]
    half = count // 2
    outcomes = [send(base_url, kind, body) for kind, body in picks[:half]]
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        outcomes += list(pool.map(lambda kb: send(base_url, *kb), picks[half:]))
    return outcomes


def wait_engine_idle(server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    busy = None
    while time.monotonic() < deadline:
        busy = (server.counter("vllm:num_requests_running"),
                server.counter("vllm:num_requests_waiting"),
                server.counter("cot_server_requests_in_flight"))
        if busy == (0, 0, 0):
            return
        time.sleep(0.2)
    raise AssertionError(f"still busy after the soak (running, waiting, in flight): {busy}")


def footprint(process: psutil.Process) -> tuple[int, int]:
    return process.memory_info().rss, process.num_fds()


def test_soak_leaves_no_leaks(server, chat_body):
    api = psutil.Process(server.process.pid)  # the API process (not the engine core)
    kinds = request_kinds(chat_body)

    warm = run_batch(server.base_url, kinds, WARMUP, 0)
    assert all(o in ("ok", "left") for o in warm), warm
    wait_engine_idle(server)
    time.sleep(1)
    rss_before, fds_before = footprint(api)

    started = time.monotonic()
    outcomes = run_batch(server.base_url, kinds, REQUESTS, WARMUP)
    elapsed = time.monotonic() - started
    failures = [o for o in outcomes if o not in ("ok", "left")]
    assert not failures, failures[:10]

    wait_engine_idle(server)
    deadline = time.monotonic() + 30  # closed client sockets are reaped: wait until they are
    while (fds_after := footprint(api)[1]) > fds_before + FD_SLACK and time.monotonic() < deadline:
        time.sleep(0.2)
    rss_after = footprint(api)[0]
    growth = (rss_after - rss_before) / rss_before
    print(f"soak: {REQUESTS} requests in {elapsed:.0f} s; API process RSS "
          f"{rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB ({growth:+.1%}), "
          f"fds {fds_before} -> {fds_after}")
    assert growth < RSS_GROWTH, f"RSS grew {growth:.1%} over {REQUESTS} requests"
    assert fds_after <= fds_before + FD_SLACK, (fds_before, fds_after)
    assert httpx.get(f"{server.base_url}/health", timeout=10).status_code == 200
