"""The Responses API request as a chat completion request, and a chat completion as a Response
(checked against the official SDK's schema)."""

import openai.types.responses as sdk
import pytest
from pydantic import ValidationError

from server.api.errors import invalid_request
from server.api.protocol import ChatCompletion
from server.api.responses.output import ResponseFrame, from_completion
from server.api.responses.protocol import FIELD_NAMES, ResponsesRequest
from server.config import Settings

SETTINGS = Settings(beam_width=1, effort_high=6)
IMAGE = "data:image/png;base64,AAAA"
REASONING = "<SUMMARY>plan</SUMMARY>\n\n<CAPTION>two shapes</CAPTION>\n\n"  # before the answer


def req(**kw) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"model": "m", "input": "hi", **kw})


def user(*parts) -> dict:
    return {"role": "user", "content": list(parts)}


def test_a_string_input_is_one_user_message_after_the_instructions():
    chat = req(instructions="be brief").to_chat()
    assert [(m.role, m.content) for m in chat.messages] == [("system", "be brief"),
                                                            ("user", "hi")]
    assert chat.n == 1 and chat.model == "m"


def test_items_become_chat_messages_and_reasoning_items_are_left_out():
    chat = req(input=[
        user({"type": "input_image", "image_url": IMAGE}, {"type": "input_text", "text": "q"}),
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": "2", "annotations": []}]},
        {"role": "developer", "content": "short answers"},
        user({"type": "input_image", "image_url": {"url": IMAGE}, "detail": "original"}),
    ]).to_chat()
    assert [m.role for m in chat.messages] == ["user", "assistant", "developer", "user"]
    first = chat.messages[0].parts()
    assert first[0].image_url.url == IMAGE and first[1].text == "q"
    assert chat.messages[1].parts()[0].text == "2"
    assert chat.image_count == 2


def test_sampling_budget_and_search_extras_are_passed_on():
    chat = req(max_output_tokens=64, temperature=0.3, top_p=0.5, seed=7, beam_width=3,
               selector="logprob", search="best_of_n", stage_max_tokens={"summary": 8},
               timeout=30).to_chat()
    assert (chat.max_completion_tokens, chat.temperature, chat.top_p, chat.seed) == (
        64, 0.3, 0.5, 7)
    params = chat.to_search_params(SETTINGS)
    assert params.beam_width == 3 and params.selector == "logprob"
    assert params.shape == "best_of_n" and params.max_tokens == 64
    assert chat.timeout == 30 and chat.stage_max_tokens == {"summary": 8}


@pytest.mark.parametrize("effort, width", [("none", 1), ("minimal", 1), ("high", 6),
                                           ("xhigh", 6), ("max", 6)])
def test_reasoning_effort_is_a_beam_width_preset(effort, width):
    chat = req(reasoning={"effort": effort}).to_chat()
    assert chat.to_search_params(SETTINGS).beam_width == width


def test_the_trace_is_asked_for_by_return_trace_or_a_reasoning_summary():
    assert not req().to_chat().return_trace
    assert req(return_trace=True).to_chat().return_trace
    assert req(reasoning={"summary": "auto"}).to_chat().return_trace
    assert req(reasoning={"generate_summary": "concise"}).wants_summary


def test_a_stream_asks_the_chat_stream_for_its_usage():
    chat = req(stream=True).to_chat()
    assert chat.stream and chat.stream_options and chat.stream_options.include_usage


def test_fields_this_server_does_not_read_are_ignored_and_named():
    body = req(store=True, tools=[], text={"format": {"type": "text"}}, include=[])
    assert body.ignored_fields == ["include", "store", "text", "tools"]
    body.to_chat()


@pytest.mark.parametrize("bad", [
    {"input": []},
    {"input": [{"role": "system", "content": "only instructions"}]},
    {"input": [user({"type": "input_file", "file_id": "f"})]},
    {"input": [user({"type": "input_image", "file_id": "f"})]},
    {"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
    {"input": [{"role": "robot", "content": "x"}]},
    {"reasoning": {"effort": "huge"}},
    {"previous_response_id": "resp_1"},
    {"temperature": "hot"},
    {"stream": "maybe"},
])
def test_bad_requests_fail_validation(bad):
    with pytest.raises(ValidationError):
        req(**bad)


@pytest.mark.parametrize("bad, param", [
    ({"temperature": 5}, "temperature"), ({"top_p": 0}, "top_p"),
    ({"max_output_tokens": 0}, "max_output_tokens"), ({"beam_width": 17}, "beam_width"),
    ({"selector": "coin"}, "selector"), ({"seed": -2**63 - 1}, "seed"),
])
def test_out_of_range_values_fail_in_the_chat_request_naming_the_responses_field(bad, param):
    with pytest.raises(ValidationError) as failed:
        req(**bad).to_chat()
    error = invalid_request(failed.value.errors(), FIELD_NAMES)
    assert (error.status, error.param) == (400, param)
    assert error.message.startswith(param)


def stage(tag: str, text: str) -> dict:
    return {"name": tag.lower(), "tag": tag, "text": text, "chosen_index": 0,
            "selected_by": "only", "comparisons": [],
            "candidates": [{"text": text, "tokens": 2, "mean_logprob": -0.5, "closed": True}]}


def completion(content: str, finish_reason: str = "stop", trace: bool = True,
               answered: bool = True) -> ChatCompletion:
    """A one-choice chat completion; with the trace, its stages (the answer's when reached)."""
    stages = [stage("SUMMARY", "plan"), stage("CAPTION", "two shapes")]
    stages += [stage("CONCLUSION", content)] if answered else []
    return ChatCompletion.model_validate({
        "id": "chatcmpl-1", "model": "m", "choices": [{
            "index": 0, "finish_reason": finish_reason,
            "message": {"content": content, "reasoning_content": "unused",
                        "stages": stages if trace else None}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 5, "judge_tokens": 2}}})


def response_of(body: ResponsesRequest, result: ChatCompletion) -> sdk.Response:
    params = body.to_chat().to_search_params(SETTINGS)
    data = from_completion(ResponseFrame.of(body, params, "m"), result).model_dump()
    return sdk.Response.model_validate(data)  # strictly, against the SDK's schema


def test_a_completion_is_a_reasoning_item_then_the_answer_with_usage():
    response = response_of(req(return_trace=True), completion("2"))
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.incomplete_details is None
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert reasoning.content and reasoning.content[0].text == REASONING
    assert reasoning.summary == []
    assert message.type == "message" and message.id.startswith("msg_")
    assert message.status == "completed" and response.output_text == "2"
    assert response.usage is not None
    usage = response.usage
    assert (usage.input_tokens, usage.input_tokens_details.cached_tokens, usage.output_tokens,
            usage.output_tokens_details.reasoning_tokens, usage.total_tokens) == (10, 4, 6, 5, 16)
    assert (response.temperature, response.top_p) == (0.0, 1.0)  # greedy: width 1


def test_the_trace_is_the_summary_when_a_summary_is_asked_for_and_hidden_otherwise():
    summarised = response_of(req(reasoning={"summary": "detailed"}), completion("2"))
    assert summarised.output[0].summary[0].text == REASONING
    assert summarised.output[0].content is None
    assert summarised.reasoning and summarised.reasoning.summary == "detailed"
    plain = response_of(req(), completion("2", trace=False))
    assert plain.output[0].summary == [] and plain.output[0].content is None


def test_a_budget_that_ran_out_is_an_incomplete_response():
    before = response_of(req(max_output_tokens=20, return_trace=True),
                         completion("", "length", answered=False))
    assert before.status == "incomplete"
    assert before.incomplete_details and before.incomplete_details.reason == "max_output_tokens"
    assert [item.status for item in before.output] == ["incomplete", "incomplete"]
    assert before.max_output_tokens == 20 and before.output_text == ""
    assert before.output[0].content[0].text == REASONING
    within = response_of(req(max_output_tokens=20), completion("2 red", "length"))
    assert [item.status for item in within.output] == ["completed", "incomplete"]


def test_retrace_and_budget_fields_pass_on_and_medium_effort_carries_a_budget():
    chat = req(search="retrace", beam_width=4, search_budget=300, retrace_keep=3,
               retrace_threshold=0.7, max_retraces=1, greedy_candidate=True).to_chat()
    params = chat.to_search_params(SETTINGS)
    assert params.greedy_candidate is True
    assert params.shape == "retrace" and params.selector == "verify"
    assert params.budget.tokens == 300 and params.keep == 3
    assert params.retrace_threshold == 0.7 and params.max_retraces == 1
    medium = req(reasoning={"effort": "medium"}).to_chat().to_search_params(SETTINGS)
    assert medium.beam_width == SETTINGS.effort_medium
    assert medium.budget.answers == SETTINGS.effort_budget_medium
