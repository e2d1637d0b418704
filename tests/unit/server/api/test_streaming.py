"""The chat stream's pure logic, on a FAKE engine (tests/unit/server/search/fake_engine.py)."""

import asyncio
import json

import pytest

from server.api.protocol import ChatCompletionRequest
from server.api.serving import ChatService
from server.api.streaming import KEEPALIVE, with_keepalive
from server.config import Settings
from server.metrics import Metrics
from server.search.beam import StageSearch
from server.search.prompts import Conversation
from tests.unit.server.search.fake_engine import FakeEngine, render_chat_fake

USER = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
CONV = Conversation(({"role": "user", "content": [{"type": "text", "text": "hi"}]},))


async def slow(items, delay):
    for item in items:
        await asyncio.sleep(delay)
        yield item


async def test_keepalives_fill_the_silence_without_losing_events():
    loop = asyncio.get_running_loop()
    out = [x async for x in with_keepalive(slow([1, 2], 0.2), 0.03, loop.time() + 10)]
    assert [x for x in out if x != KEEPALIVE] == [1, 2]
    assert out.count(KEEPALIVE) >= 2 and out[0] == KEEPALIVE


async def test_a_passed_deadline_ends_the_wait():
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        async for _ in with_keepalive(slow([1], 5), 0.05, loop.time() + 0.2):
            pass


async def stream(body: dict, engine: FakeEngine, keepalive: float = 15.0) -> list[dict | str]:
    request = ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **body})
    params = request.to_search_params(Settings())
    service = ChatService(StageSearch(engine, render_chat_fake), Metrics(), "m", keepalive)
    deadline = asyncio.get_running_loop().time() + 30
    out: list[dict | str] = []
    async for event in service.stream(request, CONV, params, deadline):
        out.append(json.loads(event[6:]) if event.startswith("data: {") else event.strip())
    return out


async def test_the_first_chunk_carries_output_and_the_role():
    chunks = await stream({"stream": True, "return_trace": True}, FakeEngine())
    first = chunks[0]
    assert isinstance(first, dict)
    delta = first["choices"][0]["delta"]
    assert delta["role"] == "assistant" and delta["reasoning"].startswith("<SUMMARY>")
    roles = [c["choices"][0]["delta"].get("role") for c in chunks[:-1]
             if isinstance(c, dict) and c["choices"]]
    assert roles.count("assistant") == 1
    assert chunks[-1] == "data: [DONE]"


async def test_one_candidate_stages_stream_word_by_word_and_add_up():
    chunks = await stream({"stream": True, "return_trace": True}, FakeEngine(
        script=lambda stage, s, i: f"the {stage} text here"))
    deltas = [c["choices"][0]["delta"] for c in chunks if isinstance(c, dict) and c["choices"]]
    reasoning = "".join(d.get("reasoning") or "" for d in deltas)
    assert reasoning == ("<SUMMARY>the SUMMARY text here</SUMMARY>\n\n"
                         "<CAPTION>the CAPTION text here</CAPTION>\n\n"
                         "<REASONING>the REASONING text here</REASONING>\n\n")
    assert "".join(d.get("content") or "" for d in deltas) == "the CONCLUSION text here"
    assert sum(bool(d.get("content")) for d in deltas) > 1  # the answer token by token too


async def test_a_quiet_search_sends_keepalive_comments():
    chunks = await stream({"stream": True, "beam_width": 2, "selector": "logprob"},
                          FakeEngine(delay=0.1), keepalive=0.02)
    assert ": keep-alive" in chunks
    assert any(isinstance(c, dict) and c["choices"] and c["choices"][0]["delta"].get("content")
               for c in chunks)


async def test_after_a_deadline_the_events_can_be_closed():
    loop = asyncio.get_running_loop()
    events = slow([1], 5)
    with pytest.raises(TimeoutError):
        async for _ in with_keepalive(events, 0.05, loop.time() + 0.1):
            pass
    await events.aclose()  # not "already running"


def deltas(chunks: list[dict | str], key: str) -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks
                   if isinstance(c, dict) and c.get("choices"))


@pytest.mark.parametrize("width", [1, 2])
async def test_reason_summarize_streams_the_whole_chain_as_reasoning_and_the_summary_as_content(
        width):
    engine = FakeEngine()
    base_generate = engine.generate

    async def generate(prompt, images, sampling, on_partial=None):
        if "[Summarize]" in "".join(p for p in prompt if isinstance(p, str)):
            engine.script = lambda stage, s, i: "the summary"
        return await base_generate(prompt, images, sampling, on_partial)
    engine.generate = generate
    chunks = await stream({"stream": True, "return_trace": True, "beam_width": width,
                           "pipeline": "reason_summarize",
                           "stream_options": {"include_usage": True}}, engine)
    reasoning = deltas(chunks, "reasoning")
    assert reasoning.startswith("<SUMMARY>") and reasoning.endswith("</CONCLUSION>\n\n")
    assert "<CONCLUSION>CONCLUSION candidate" in reasoning
    assert deltas(chunks, "content") == "the summary"
    usage = chunks[-2]["usage"]
    assert usage["completion_tokens_details"]["summary_tokens"] > 0
    answer_tokens = engine.results[-1].generations[0].token_count  # the summariser's
    assert usage["completion_tokens_details"]["reasoning_tokens"] == (
        usage["completion_tokens"] - answer_tokens)
