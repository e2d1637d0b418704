"""One request's measurement, against a fake server (httpx.MockTransport, no network)."""

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from loadtest.client import RequestRecord, send_chat

URL = "http://fake/v1/chat/completions"


def sse(*chunks: dict | str) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    return "".join(lines).encode()


def delta(**fields: str) -> dict:
    return {"choices": [{"index": 0, "delta": fields}]}


async def send(handler: Callable, body: dict, timeout_s: float = 5.0) -> RequestRecord:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await send_chat(client, URL, body, index=0, level="test", level_start=0.0,
                               timeout_s=timeout_s)


async def test_stream_measures_ttft_from_reasoning_and_reads_final_usage() -> None:
    body = sse(delta(role="assistant", content=""), delta(reasoning_content="<SUMMARY>"),
               delta(content="blue"),
               {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 7}},
               "[DONE]")
    record = await send(lambda request: httpx.Response(200, content=body), {"stream": True})
    assert record.ok and record.status == 200
    assert record.output_tokens == 7 and record.prompt_tokens == 50
    assert record.ttft_s is not None and 0 <= record.ttft_s <= record.latency_s


async def test_stream_without_text_has_no_ttft() -> None:
    body = sse(delta(role="assistant", content=""), "[DONE]")
    record = await send(lambda request: httpx.Response(200, content=body), {"stream": True})
    assert record.ok and record.ttft_s is None and record.output_tokens is None


async def test_unstreamed_response_reads_usage_and_has_no_ttft() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is False
        return httpx.Response(200, json={"choices": [], "usage": {"completion_tokens": 12}})

    record = await send(handler, {"stream": False})
    assert record.ok and record.output_tokens == 12 and record.ttft_s is None


async def test_error_status_is_recorded_with_the_body() -> None:
    record = await send(lambda request: httpx.Response(
        429, json={"error": {"message": "busy"}}), {"stream": True})
    assert not record.ok and record.status == 429 and "busy" in (record.error or "")


@pytest.mark.parametrize("chunks", [
    (delta(content="a"),),  # cut off: no [DONE]
    (delta(content="a"), {"error": {"message": "engine died"}}),
])
async def test_incomplete_or_failed_stream_counts_as_status_zero(chunks: tuple) -> None:
    body = sse(*chunks)
    record = await send(lambda request: httpx.Response(200, content=body), {"stream": True})
    assert not record.ok and record.status == 0 and record.error


async def test_slow_server_is_cut_at_the_request_timeout() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json={})

    record = await send(handler, {"stream": False}, timeout_s=0.05)
    assert record.status == 0 and "timeout" in (record.error or "")
    assert record.latency_s < 1.0


async def test_connection_failure_is_a_record_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    record = await send(handler, {"stream": False})
    assert record.status == 0 and "ConnectError" in (record.error or "")
