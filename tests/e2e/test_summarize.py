"""The reason_summarize pipeline (Insight-V's reasoner and summariser) end to end on the real
engine and tiny model: the stage search writes the chain, a summariser call answers."""

import re

import httpx
import openai

from tests.e2e.sse import URL, joined, stream_chunks

PIPELINE = {"pipeline": "reason_summarize"}
SEARCH = {"beam_width": 2, "selector": "verify", "seed": 3, "return_trace": True}


def test_a_searched_chain_is_the_reasoning_and_the_summariser_answers(server, chat_body):
    before = server.counter("cot_server_summaries_total")
    body = {**chat_body, **SEARCH, **PIPELINE}
    response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=300)
    assert response.status_code == 200, response.text
    data = response.json()
    message = data["choices"][0]["message"]
    stages, summary = message["stages"], message["summary"]
    assert [s["tag"] for s in stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert all(len(s["candidates"]) == 2 for s in stages)  # the search did search
    assert summary["tag"] == "CONCLUSION" and summary["selected_by"] == "summarizer"
    assert message["content"] == summary["text"] != ""
    # the whole chain, the reasoner's own answer included, is the reasoning
    assert message["reasoning"].endswith(f"<CONCLUSION>{stages[-1]['text']}</CONCLUSION>")
    usage = data["usage"]
    details = usage["completion_tokens_details"]
    summary_tokens = summary["candidates"][0]["tokens"]
    assert details["summary_tokens"] == summary_tokens > 0
    candidates = sum(c["tokens"] for s in stages for c in s["candidates"])
    assert usage["completion_tokens"] == (candidates + details["judge_tokens"]
                                          + summary_tokens)
    assert details["reasoning_tokens"] == usage["completion_tokens"] - summary_tokens
    assert server.counter("cot_server_summaries_total") == before + 1
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert re.search(r'^cot_server_engine_calls_total\{kind="summary"\} [1-9]', metrics, re.M)


def test_streamed_the_chain_is_reasoning_deltas_and_the_answer_the_same_as_unstreamed(
        server, chat_body):
    body = {**chat_body, **SEARCH, **PIPELINE}
    whole = httpx.post(f"{server.base_url}{URL}", json=body, timeout=300).json()
    chunks = stream_chunks(server.base_url, {**body, "stream": True,
                                             "stream_options": {"include_usage": True}})
    message = whole["choices"][0]["message"]
    assert joined(chunks, "content") == message["content"]  # the same seed, the same search
    reasoning = joined(chunks, "reasoning")
    assert reasoning.strip() == message["reasoning"].strip()
    assert reasoning.count("<CONCLUSION>") == 1 and "<CONCLUSION>" not in joined(chunks,
                                                                                  "content")
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens_details"]["summary_tokens"] == (
        whole["usage"]["completion_tokens_details"]["summary_tokens"])


def test_greedy_streamed_without_a_trace_sends_only_the_summariser_answer(server, chat_body):
    chunks = stream_chunks(server.base_url, {**chat_body, **PIPELINE, "stream": True})
    assert joined(chunks, "reasoning") == ""
    answer = joined(chunks, "content")
    assert answer and "<" not in answer
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_the_openai_sdk_selects_the_pipeline_with_extra_body(server, chat_body):
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="none")
    completion = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"],
        extra_body={**PIPELINE, "return_trace": True})
    extra = completion.choices[0].message.model_extra or {}
    assert extra["summary"]["text"] == completion.choices[0].message.content
    assert completion.usage.completion_tokens_details.model_extra["summary_tokens"] > 0


def test_an_unknown_pipeline_is_a_400_naming_the_field(server, chat_body):
    response = httpx.post(f"{server.base_url}{URL}", json={**chat_body, "pipeline": "both"},
                          timeout=60)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "pipeline" and "reason_summarize" in error["message"]
