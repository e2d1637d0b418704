"""One chat-completion request and its measurement: time to first token, end-to-end latency,
output tokens, status. Never raises for a failed request; the failure is in the record."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from loadtest.stats import Outcome

ERROR_TEXT_LIMIT = 300
STREAMED_TEXT_FIELDS = ("content", "reasoning_content", "reasoning")


@dataclass
class RequestRecord:
    index: int
    level: str  # the load level's label, or "warmup"
    start_s: float  # since the level started
    latency_s: float
    ttft_s: float | None  # streaming only: first chunk carrying content or reasoning
    status: int  # HTTP status; 0 without a complete response (timeout, broken/failed stream)
    output_tokens: int | None  # usage.completion_tokens; None when the server sent no usage
    prompt_tokens: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    def outcome(self) -> Outcome:
        return Outcome(ok=self.ok, status=self.status, latency_s=self.latency_s,
                       ttft_s=self.ttft_s, output_tokens=self.output_tokens or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


@dataclass
class Measurement:
    """Filled in while a response arrives."""

    status: int = 0
    first_token_at: float | None = None
    usage: dict[str, Any] | None = None
    error: str | None = None


def carries_text(chunk: dict[str, Any]) -> bool:
    """Whether a stream chunk carries generated text (answer or reasoning)."""
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if any(delta.get(name) for name in STREAMED_TEXT_FIELDS):
            return True
    return False


def sse_payload(line: str) -> str | None:
    """The data of one server-sent-events line; None for other lines (blank, comments)."""
    if not line.startswith("data:"):
        return None
    return line[len("data:"):].strip()


async def read_stream(response: httpx.Response, measurement: Measurement) -> None:
    async for line in response.aiter_lines():
        payload = sse_payload(line)
        if payload is None or not payload:
            continue
        if payload == "[DONE]":
            return
        chunk = json.loads(payload)
        if "error" in chunk:
            measurement.error = f"stream error: {json.dumps(chunk['error'])[:ERROR_TEXT_LIMIT]}"
            return
        if measurement.first_token_at is None and carries_text(chunk):
            measurement.first_token_at = time.perf_counter()
        if chunk.get("usage"):
            measurement.usage = chunk["usage"]
    measurement.error = "stream ended without [DONE]"


async def exchange(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                   measurement: Measurement) -> None:
    async with client.stream("POST", url, json=body) as response:
        measurement.status = response.status_code
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            measurement.error = text[:ERROR_TEXT_LIMIT] or response.reason_phrase
        elif body.get("stream"):
            await read_stream(response, measurement)
        else:
            measurement.usage = json.loads(await response.aread()).get("usage")


async def send_chat(client: httpx.AsyncClient, url: str, body: dict[str, Any], *,
                    index: int, level: str, level_start: float,
                    timeout_s: float) -> RequestRecord:
    """POST one chat completion and measure it; the whole exchange is cut at timeout_s."""
    measurement = Measurement()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await exchange(client, url, body, measurement)
    except TimeoutError:
        measurement.status, measurement.error = 0, f"timeout after {timeout_s:g} s"
    except (httpx.HTTPError, json.JSONDecodeError) as error:
        measurement.error = f"{type(error).__name__}: {error}"[:ERROR_TEXT_LIMIT]
    finished = time.perf_counter()
    if measurement.error and measurement.status == 200:
        measurement.status = 0  # the headers said 200 but the response did not complete
    usage = measurement.usage or {}
    first = measurement.first_token_at
    return RequestRecord(
        index=index, level=level, start_s=started - level_start, latency_s=finished - started,
        ttft_s=None if first is None else first - started, status=measurement.status,
        output_tokens=usage.get("completion_tokens"), prompt_tokens=usage.get("prompt_tokens"),
        error=measurement.error)
