"""Waiting on a real server's observable state in the e2e tests (metrics, logs, processes),
never on a sleep: a guard only ever fires on a hang."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psutil

HANG_GUARD = 180  # seconds: only a hang ever waits this long


def wait_for(condition: Callable[[], bool], what: str, server: Any,
             timeout: float = HANG_GUARD) -> None:
    """Poll until `condition()` holds; past `timeout`, fail with `what` and the server's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {timeout} s\n" \
                                             f"{server.log_tail()}"
        time.sleep(0.05)


def wait_idle(server: Any, what: str = "engine requests still running",
              timeout: float = 60.0) -> None:
    """Until the engine runs and queues nothing. The gauges are the engine core's, reported
    after its next step: a request the API process has just finished (a stop string) can still
    count as running for a moment, so they are polled, never read once (`timeout`: only a guard
    against a hang)."""
    wait_for(lambda: (server.counter("vllm:num_requests_running")
                      + server.counter("vllm:num_requests_waiting")) == 0, what, server, timeout)


def engine_core(server: Any) -> psutil.Process:
    """The server's vLLM engine-core process (children that vanish while read are skipped)."""
    for child in psutil.Process(server.process.pid).children(recursive=True):
        try:
            if "EngineCore" in " ".join(child.cmdline()) + child.name():
                return child
        except psutil.Error:
            continue
    raise LookupError("no EngineCore process under the server")
