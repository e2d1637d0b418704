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


def engine_core(server: Any) -> psutil.Process:
    """The server's vLLM engine-core process."""
    children = psutil.Process(server.process.pid).children(recursive=True)
    return next(p for p in children if "EngineCore" in " ".join(p.cmdline()) + p.name())
