"""Asking an OpenAI-compatible endpoint with retries, shared by the shapes evaluation and the
comparison of systems: connection errors, 429 and 503 are retried with exponential backoff (the
server's Retry-After honoured); anything else is the answer, kept with its status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

RETRY_STATUSES = (429, 503)
MAX_BACKOFF_S = 30.0


def backoff(attempt: int, retry_after: str | None = None) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...): 1, 2, 4, ... capped, or the server's
    Retry-After when it asks for longer."""
    wait = min(MAX_BACKOFF_S, 2.0 ** (attempt - 1))
    try:
        return max(wait, min(MAX_BACKOFF_S, float(retry_after))) if retry_after else wait
    except ValueError:
        return wait


@dataclass
class Posted:
    """The last attempt's outcome: the 200 response, or the status and error of the last
    failure (status 0: no response at all)."""

    response: httpx.Response | None
    status: int
    error: str | None
    attempts: int
    latency_s: float  # of the last attempt
    started: float  # unix time the last attempt was sent
    finished: float


async def post_with_retries(client: httpx.AsyncClient, path: str, body: dict[str, Any],
                            retries: int, sleep: Callable[[float], Awaitable[None]],
                            delay: Callable[[int, str | None], float] = backoff) -> Posted:
    attempt = 0
    while True:
        attempt += 1
        started, clock = time.time(), time.monotonic()
        response, status, error, retry_after = None, 0, None, None
        try:
            reply = await client.post(path, json=body)
        except httpx.TimeoutException as exc:
            timeout = client.timeout.read
            error = f"{type(exc).__name__}: no answer within {timeout:g} s" if timeout else repr(
                exc)
            retryable = isinstance(exc, httpx.ConnectTimeout)
        except httpx.TransportError as exc:  # connection refused / reset, broken protocol
            error = f"{type(exc).__name__}: {exc}"[:300]
            retryable = True
        else:
            status = reply.status_code
            retryable = status in RETRY_STATUSES
            retry_after = reply.headers.get("retry-after")
            if status == 200:
                response = reply
            else:
                error = reply.text[:300]
        posted = Posted(response, status, error, attempt, round(time.monotonic() - clock, 4),
                        round(started, 4), round(time.time(), 4))
        if retryable and attempt <= retries:
            await sleep(delay(attempt, retry_after))
            continue
        return posted
