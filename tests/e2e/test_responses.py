"""POST /v1/responses with the official OpenAI SDK against a real server process on the real
vLLM CPU engine (the session's server: stage caps of 16 tokens)."""

import itertools

import httpx
import openai
import pytest

REASONING_STAGES = ["SUMMARY", "CAPTION", "REASONING"]  # the CONCLUSION is the message
QUESTION = "How many red shapes are there?"


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def question(image_url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "input_image", "image_url": image_url},
                                         {"type": "input_text", "text": QUESTION}]}]


def assert_reasoning(trace: str) -> None:
    """The tagged stages before the answer, in order, each closed: the boundaries the server
    writes (the model may write tags of its own inside a stage's text)."""
    assert trace.startswith(f"<{REASONING_STAGES[0]}>"), trace
    boundaries = [trace.index(f"</{a}>\n\n<{b}>")
                  for a, b in itertools.pairwise(REASONING_STAGES)]
    assert boundaries == sorted(boundaries), trace
    assert trace.rstrip().endswith(f"</{REASONING_STAGES[-1]}>"), trace  # no answer stage


def chat(server, body: dict) -> dict:
    response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]


def test_a_response_is_the_conclusion_with_usage(client, server, chat_body, image_url):
    response = client.responses.create(model="tiny-cot", input=question(image_url),
                                       extra_body={"seed": 3})
    assert response.status == "completed" and response.id.startswith("resp_")
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.summary == [] and not reasoning.content
    assert message.type == "message" and message.role == "assistant"
    # the same question asked as a chat completion takes the same (greedy) path
    assert response.output_text == chat(server, {**chat_body, "seed": 3})["content"]
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert 0 <= usage.output_tokens_details.reasoning_tokens <= usage.output_tokens


def test_return_trace_puts_the_tagged_stages_in_the_reasoning_item(client, server, chat_body,
                                                                    image_url):
    response = client.responses.create(model="tiny-cot", input=question(image_url),
                                       extra_body={"return_trace": True, "seed": 3})
    reasoning = response.output[0]
    assert reasoning.content is not None and reasoning.summary == []
    assert_reasoning(reasoning.content[0].text)
    stages = chat(server, {**chat_body, "seed": 3, "return_trace": True})["stages"]
    assert reasoning.content[0].text == "".join(
        f"<{s['tag']}>{s['text']}</{s['tag']}>\n\n" for s in stages[:-1])
    assert response.output_text == stages[-1]["text"]


def test_a_reasoning_summary_is_the_tagged_trace_and_instructions_are_taken(client, image_url):
    response = client.responses.create(model="tiny-cot", input=question(image_url),
                                       instructions="Answer the question about the picture.",
                                       reasoning={"summary": "auto"})
    assert_reasoning(response.output[0].summary[0].text)
    assert response.instructions == "Answer the question about the picture."


def test_a_stream_sends_deltas_that_make_up_the_final_response(client, image_url):
    ask = {"model": "tiny-cot", "input": question(image_url),
           "extra_body": {"return_trace": True, "seed": 3}}
    events = list(client.responses.create(**ask, stream=True))
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert reasoning == final.output[0].content[0].text
    assert_reasoning(reasoning)
    assert final.usage is not None and final.usage.output_tokens > 0
    # the same search, not streamed, is the same Response
    whole = client.responses.create(**ask)
    assert (whole.output_text, whole.output[0].content[0].text) == (text, reasoning)


def test_the_sdk_stream_helper_assembles_the_same_answer(client, image_url):
    with client.responses.stream(model="tiny-cot", input=question(image_url)) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text
    assert final.status == "completed"


def test_beam_width_2_searches(client, image_url):
    response = client.responses.create(model="tiny-cot", input=question(image_url),
                                       extra_body={"beam_width": 2, "selector": "logprob",
                                                   "seed": 5, "return_trace": True})
    assert response.status == "completed" and response.temperature == 0.6
    assert_reasoning(response.output[0].content[0].text)
    assert response.output[1].status == "completed"


def test_a_budget_that_ends_before_the_conclusion_is_incomplete(client, image_url):
    response = client.responses.create(model="tiny-cot", input=question(image_url),
                                       max_output_tokens=20)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[1].status == "incomplete"


def test_fields_this_server_does_not_read_are_accepted_and_named(server):
    response = httpx.post(f"{server.base_url}/v1/responses", timeout=120, json={
        "model": "tiny-cot", "input": QUESTION, "store": False, "tools": [],
        "truncation": "disabled"})
    assert response.status_code == 200, response.text
    assert response.headers["x-ignored-fields"] == "store, tools, truncation"
    assert response.json()["object"] == "response"


@pytest.mark.parametrize("change, param", [
    ({"input": []}, "input"),
    ({"temperature": 5}, "temperature"),
    ({"max_output_tokens": 5000}, "max_output_tokens"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input.0.content.0"),
    ({"reasoning": {"effort": "huge"}}, "reasoning.effort"),
    ({"extra_body": {"beam_width": 99}}, "beam_width"),
])
def test_bad_requests_are_openai_shaped_400s(client, image_url, change, param):
    kwargs = {"model": "tiny-cot", "input": question(image_url), **change}
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(**kwargs)
    body = bad.value.body
    assert body["type"] == "invalid_request_error" and body["param"] == param, body


def test_an_unknown_model_is_a_404(client, image_url):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.responses.create(model="gpt-4o", input=question(image_url))
    assert not_found.value.body["code"] == "model_not_found"


def test_a_prompt_too_long_is_a_400_or_a_last_error_event(client):
    words = " ".join(["red blue circle square"] * 750)  # far over the 2048-token context
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="tiny-cot", input=words)
    assert (bad.value.body["param"], bad.value.body["code"]) == ("input",
                                                                 "context_length_exceeded")
    events = list(client.responses.create(model="tiny-cot", input=words, stream=True))
    assert events[-1].type == "error"
    assert (events[-1].param, events[-1].code) == ("input", "context_length_exceeded")
