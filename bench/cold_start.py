"""Part 6, cold start: a fresh server of ours, the moment /ready turns 200, gets a beam-4 request,
then `requests` more one after another (each a different question, so none is served from
another's prefix cache more than a later request would be); the first one's latency against
the median of the rest, with the warm-up before ready (the default) and with --no-warmup.
Target: the first request costs at most 1.5 times the median."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import httpx

from loadtest.servers import ServerProcess
from loadtest.workload import WorkItem

TARGET = 1.5  # first request after ready / median request, at most
BEAM = {"beam_width": 4, "selector": "judge"}
SIDES = {"warm-up": True, "no warm-up": False}  # report label -> --warmup


def request_bodies(items: Sequence[WorkItem], model: str, max_tokens: int, count: int
                   ) -> list[dict[str, Any]]:
    """`count` beam-4 requests, each on the next item (cycling if there are fewer)."""
    return [{"model": model, "messages": items[i % len(items)].messages(),
             "max_tokens": max_tokens, **BEAM} for i in range(count)]


def timed(server: ServerProcess, body: dict[str, Any], timeout: float = 600) -> float:
    """Seconds one chat completion took, from sending to the whole response."""
    began = time.perf_counter()
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=timeout)
    took = time.perf_counter() - began
    if response.status_code != 200:
        raise RuntimeError(f"cold-start request failed: {response.status_code} "
                           f"{response.text[:300]}")
    return took


def measure(start: Callable[[], ServerProcess], bodies: Sequence[dict[str, Any]]
            ) -> dict[str, Any]:
    """Start a server, send `bodies` in turn from the moment it is ready, stop it."""
    began = time.monotonic()
    server = start()
    ready_s = time.monotonic() - began
    try:
        latencies = [timed(server, body) for body in bodies]
        warmup_s = server.counter("cot_server_warmup_seconds")
    finally:
        server.stop()
    return {"ready_s": ready_s, "warmup_s": warmup_s, "first": latencies[0],
            "rest": latencies[1:]}


def verdict(run: dict[str, Any]) -> dict[str, Any]:
    """First / median of the rest, and whether it is within the target."""
    median = statistics.median(run["rest"])
    ratio = run["first"] / median
    return {"median": median, "ratio": ratio, "met": ratio <= TARGET}


def cold_start(start: Callable[[bool], ServerProcess], bodies: Sequence[dict[str, Any]]
               ) -> dict[str, dict[str, Any]]:
    """Both sides, one server at a time: without the warm-up first, then with it."""
    order = sorted(SIDES.items(), key=lambda side: side[1])
    return {label: measure(partial(start, warm), bodies) for label, warm in order}
