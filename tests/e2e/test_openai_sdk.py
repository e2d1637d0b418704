"""The official OpenAI SDK against a real server process on the real vLLM CPU engine."""

import openai
import pytest


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0)


def messages(image_url):
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                         {"type": "text", "text": "Which shape is red?"}]}]


def test_sdk_chat_completion_with_trace(client, image_url):
    completion = client.chat.completions.create(
        model="tiny-cot", messages=messages(image_url), max_completion_tokens=200,
        extra_body={"return_trace": True, "beam_width": 2, "selector": "logprob"})
    message = completion.choices[0].message
    assert isinstance(message.content, str)
    extra = message.model_extra or {}
    assert extra["reasoning_content"].startswith("<SUMMARY>")
    assert [s["tag"] for s in extra["stages"]] == ["SUMMARY", "CAPTION", "REASONING",
                                                   "CONCLUSION"]
    assert all(len(s["candidates"]) == 2 for s in extra["stages"])
    assert completion.usage is not None and completion.usage.completion_tokens > 0


def test_sdk_streaming(client, image_url):
    stream = client.chat.completions.create(
        model="tiny-cot", messages=messages(image_url), stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert isinstance(content, str)


def test_sdk_models_list(client):
    assert [m.id for m in client.models.list()] == ["tiny-cot"]


def test_sdk_errors_are_typed(client, image_url):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.chat.completions.create(model="gpt-4o", messages=messages(image_url))
    assert not_found.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="tiny-cot", messages=messages(image_url),
                                       extra_body={"beam_width": 99})
    assert bad.value.body["param"] == "beam_width"
    assert bad.value.body["type"] == "invalid_request_error"
