"""A chat completion stream (fake chunks, as the chat service writes them) as the Responses
API's events, each checked against the official SDK's event schema."""

import json

import openai.types.responses as sdk
from pydantic import TypeAdapter

from server.api.responses.output import ResponseFrame
from server.api.responses.protocol import ResponsesRequest
from server.api.responses.streaming import response_events
from server.config import Settings

EVENTS = TypeAdapter(sdk.ResponseStreamEvent)
# the reasoning chunks of a chat stream: stages before the answer, as they are decoded
PIECES = ["<SUMMARY>pl", "an</SUMMARY>\n\n", "<CAPTION>shapes</CAPTION>\n\n"]
USAGE = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
         "prompt_tokens_details": {"cached_tokens": 4},
         "completion_tokens_details": {"reasoning_tokens": 5, "judge_tokens": 0}}


def chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None
          ) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish,
                                         "logprobs": None}]
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": choices, **({"usage": usage} if usage else {})}
    return f"data: {json.dumps(data)}\n\n"


def error(param: str | None) -> str:
    return "data: " + json.dumps({"error": {"message": "too long", "type": "invalid_request_error",
                                            "param": param, "code": "context_length_exceeded"}}
                                 ) + "\n\n"


def search(*, answer: list[str] | None = None, finish: str = "stop", trace: bool = True
           ) -> list[str]:
    """The chunks the chat service sends for one search (with a keep-alive comment)."""
    out = [chunk({"reasoning_content": s}) for s in PIECES] if trace else []
    out += [": keep-alive\n\n"]
    out += [chunk({"content": a}) for a in (["2 ", "red", ""] if answer is None else answer)]
    return [*out, chunk({}, finish), chunk(usage=USAGE), "data: [DONE]\n\n"]


def frame(body: dict) -> ResponseFrame:
    request = ResponsesRequest.model_validate({"model": "m", "input": "hi", **body})
    return ResponseFrame.of(request, request.to_chat().to_search_params(Settings()), "m")


async def replay(chat: list[str]):
    for event in chat:
        yield event


async def events(body: dict, chat: list[str]) -> list[dict]:
    out = []
    async for text in response_events(frame(body), replay(chat)):
        if text.startswith(":"):  # a keep-alive, passed on
            continue
        kind, data = text.removesuffix("\n\n").split("\n")
        parsed = json.loads(data.removeprefix("data: "))
        assert kind == f"event: {parsed['type']}"
        EVENTS.validate_python(parsed)  # strictly, against the SDK's schema
        out.append(parsed)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    return out


def of(kind: str, out: list[dict]) -> list[dict]:
    return [e for e in out if e["type"] == kind]


async def test_a_stream_opens_reasons_answers_and_completes_with_usage():
    out = await events({"return_trace": True}, search())
    types = [e["type"] for e in out]
    assert types[:5] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added",
                         "response.reasoning_text.delta"]
    assert types[-1] == "response.completed"
    reasoning = "".join(e["delta"] for e in of("response.reasoning_text.delta", out))
    assert reasoning == "".join(PIECES)
    answer = "".join(e["delta"] for e in of("response.output_text.delta", out))
    final = sdk.Response.model_validate(out[-1]["response"])
    assert answer == final.output_text == "2 red"
    assert final.output[0].content[0].text == reasoning
    assert final.usage and final.usage.output_tokens == 6 and final.usage.input_tokens == 10
    added = of("response.output_item.added", out)
    assert [(e["output_index"], e["item"]["type"]) for e in added] == [(0, "reasoning"),
                                                                        (1, "message")]
    done = of("response.output_item.done", out)
    assert [e["item"] for e in done] == out[-1]["response"]["output"]
    # the reasoning item is done before the message item is added
    assert types.index("response.output_item.done") < types.index("response.output_text.delta")
    assert len({e["response"]["id"] for e in out if "response" in e}) == 1


async def test_a_summary_streams_as_summary_text_and_without_a_trace_nothing_streams():
    out = await events({"reasoning": {"summary": "auto"}}, search())
    summary = "".join(e["delta"] for e in of("response.reasoning_summary_text.delta", out))
    assert summary == of("response.reasoning_summary_text.done", out)[0]["text"]
    assert summary == "".join(PIECES) and not of("response.reasoning_text.delta", out)
    plain = await events({}, search(trace=False))
    assert not [e for e in plain if "reasoning" in e["type"]]
    assert of("response.output_item.done", plain)[0]["item"]["summary"] == []


async def test_a_budget_that_ends_before_the_answer_is_an_incomplete_response():
    out = await events({"max_output_tokens": 20}, search(answer=[], finish="length"))
    assert out[-1]["type"] == "response.incomplete"
    response = sdk.Response.model_validate(out[-1]["response"])
    assert response.incomplete_details and response.output_text == ""
    assert [item.status for item in response.output] == ["incomplete", "incomplete"]
    assert of("response.output_text.done", out)[0]["text"] == ""


async def test_an_error_mid_stream_is_the_last_event_naming_the_responses_field():
    out = await events({}, [*search()[:3], error("messages"), "data: [DONE]\n\n"])
    assert out[-1]["type"] == "error" and out[-1]["param"] == "input"
    assert out[-1]["code"] == "context_length_exceeded"
    assert not of("response.completed", out)


async def test_a_stream_refused_before_it_began_ends_at_once_with_an_error_event():
    out = await events({}, [error(None), "data: [DONE]\n\n"])
    assert [e["type"] for e in out] == ["response.created", "response.in_progress",
                                        "response.output_item.added", "error"]


async def test_keep_alive_comments_are_passed_on():
    sent = [text async for text in response_events(frame({}), replay(search()))]
    assert ": keep-alive\n\n" in sent
