"""Plain HTTP (httpx) against a real server process on the real vLLM CPU engine."""

import itertools

import httpx

from tests.e2e.sse import stream_chunks

STAGES = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]


def post(server, body, **kw) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120, **kw)


def test_image_question_gets_the_conclusion_only(server, chat_body):
    response = post(server, chat_body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["object"] == "chat.completion" and data["model"] == "tiny-cot"
    assert data["id"].startswith("chatcmpl-") and isinstance(data["created"], int)
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert not choice["message"]["content"].endswith("</CONCLUSION>")  # cut at the tag
    assert "reasoning_content" not in choice["message"] and "stages" not in choice["message"]
    assert choice["finish_reason"] in ("stop", "length")
    usage = data["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_trace_has_four_well_formed_stages(server, chat_body):
    data = post(server, {**chat_body, "return_trace": True}).json()
    message = data["choices"][0]["message"]
    assert [s["tag"] for s in message["stages"]] == STAGES
    trace = message["reasoning_content"]
    boundaries = [trace.index(f"</{a}>\n\n<{b}>") for a, b in itertools.pairwise(STAGES)]
    assert trace.startswith("<SUMMARY>") and boundaries == sorted(boundaries)
    for stage in message["stages"]:
        assert f"<{stage['tag']}>{stage['text']}</{stage['tag']}>" in trace
        assert len(stage["candidates"]) == 1 and stage["chosen_index"] == 0
    assert message["content"] == message["stages"][-1]["text"]
    usage = data["usage"]
    answer_tokens = message["stages"][-1]["candidates"][0]["tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == (
        usage["completion_tokens"] - answer_tokens)


def test_budget_that_ends_before_the_conclusion_says_length(server, chat_body):
    data = post(server, {**chat_body, "max_tokens": 20, "return_trace": True,
                         "stage_max_tokens": 16}).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert sum(s["candidates"][s["chosen_index"]]["tokens"]
               for s in choice["message"]["stages"]) <= 20


def test_request_id_is_honoured_and_generated(server, chat_body):
    given = post(server, chat_body, headers={"X-Request-Id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    assert len(post(server, chat_body).headers["x-request-id"]) >= 16
    assert "request_id=abc-123" in server.log()


def test_streaming_sends_reasoning_then_content_then_usage_then_done(server, chat_body):
    body = {**chat_body, "stream": True, "return_trace": True,
            "stream_options": {"include_usage": True}}
    chunks = stream_chunks(server.base_url, body)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = "".join(d.get("reasoning_content", "") for d in deltas)
    content = "".join(d.get("content", "") for d in deltas)
    assert reasoning.startswith("<SUMMARY>")  # the boundaries the server writes, in order:
    assert 0 < reasoning.index("</SUMMARY>\n\n<CAPTION>") < reasoning.index(
        "</CAPTION>\n\n<REASONING>")
    assert reasoning.endswith("</REASONING>\n\n")  # the answer stage is sent once, as content
    assert deltas[0]["role"] == "assistant" and deltas[0].get("reasoning", "").startswith(
        "<SUMMARY>")  # the first chunk carries output: an honest time to first token
    assert all(d.get("reasoning") == d.get("reasoning_content") for d in deltas)
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("content" not in d for d in deltas[:first_content])
    assert not any(d.get("reasoning") for d in deltas[first_content:])
    # beam width 1: the stages stream token by token, and add up to the non-streamed answer
    assert sum(bool(d.get("reasoning")) for d in deltas) > len(STAGES) - 1
    whole = post(server, {**chat_body, "return_trace": True}).json()["choices"][0]["message"]
    assert whole["reasoning"].startswith(reasoning) and whole["content"] == content
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_n_choices_are_independent_searches(server, chat_body):
    data = post(server, {**chat_body, "n": 2, "temperature": 1.0, "seed": 7}).json()
    assert [c["index"] for c in data["choices"]] == [0, 1]


def test_models_health_ready(server):
    models = httpx.get(f"{server.base_url}/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny-cot"
    assert models["data"][0]["max_model_len"] == 2048
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.base_url}/ready").json() == {"status": "ready"}


def test_metrics_cover_requests_tokens_search_and_engine(server, chat_body):
    post(server, {**chat_body, "beam_width": 2})
    text = httpx.get(f"{server.base_url}/metrics").text
    for name in ('cot_server_requests_total{route="/v1/chat/completions",status="200"}',
                 "cot_server_request_duration_seconds_bucket", "cot_server_requests_in_flight",
                 'cot_server_tokens_total{kind="candidate"}',
                 'cot_server_tokens_total{kind="judge"}',
                 'cot_server_search_requests_total{beam_width="2",selector="judge"}',
                 'cot_server_stage_duration_seconds_count{stage="SUMMARY"}',
                 'cot_server_candidates_total{stage="CAPTION"}',
                 'cot_server_judge_comparisons_total{stage="REASONING"}',
                 'cot_server_search_cached_tokens_total{call="judge"}',
                 "vllm:num_requests_running"):
        assert name in text, name
