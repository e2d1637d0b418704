import pytest
from pydantic import ValidationError

from server.api.protocol import ChatCompletionRequest
from server.config import Settings

SETTINGS = Settings(beam_width=1, effort_high=6)
USER = {"role": "user", "content": [{"type": "text", "text": "hi"}]}


def req(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **kw})


def test_greedy_by_default_and_sampled_search_defaults_when_branching():
    greedy = req().to_search_params(SETTINGS)
    assert greedy.beam_width == 1 and greedy.sampling.temperature == 0.0
    search = req(beam_width=4).to_search_params(SETTINGS)
    assert search.sampling.temperature == SETTINGS.search_temperature
    assert search.sampling.top_p == SETTINGS.search_top_p
    explicit = req(beam_width=4, temperature=1.1, top_p=0.5, top_k=5).to_search_params(SETTINGS)
    assert (explicit.sampling.temperature, explicit.sampling.top_p,
            explicit.sampling.top_k) == (1.1, 0.5, 5)


def test_reasoning_effort_maps_to_a_beam_width_and_beam_width_wins():
    assert req(reasoning_effort="high").to_search_params(SETTINGS).beam_width == 6
    assert req(reasoning_effort="high", beam_width=2).to_search_params(SETTINGS).beam_width == 2


def test_budget_prefers_max_completion_tokens():
    assert req(max_tokens=10, max_completion_tokens=20).token_budget == 20
    assert req(max_tokens=10).to_search_params(SETTINGS).max_tokens == 10


def test_stage_caps_per_stage_case_insensitive_and_unknown_stages_rejected():
    params = req(stage_max_tokens={"summary": 7}).to_search_params(SETTINGS)
    assert params.stage_cap(params.schema.stages[0]) == 7
    assert params.stage_cap(params.schema.stages[1]) == SETTINGS.stage_max_tokens
    assert req(stage_max_tokens=9).to_search_params(SETTINGS).default_stage_max_tokens == 9
    with pytest.raises(ValueError, match="unknown stages"):
        req(stage_max_tokens={"plan": 3}).to_search_params(SETTINGS)


@pytest.mark.parametrize("bad", [
    {"messages": []},
    {"messages": [{"role": "system", "content": "only a system turn"}]},
    {"messages": [{"role": "robot", "content": "x"}]},
    {"messages": [{"role": "user", "content": [{"type": "audio", "audio": "x"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    {"temperature": 3}, {"top_p": 0}, {"max_tokens": 0}, {"beam_width": 17},
    {"selector": "coin"}, {"search": "tree"}, {"stop": ["a", "b", "c", "d", "e"]},
    {"stage_max_tokens": 0}, {"frequency_penalty": 3}, {"logit_bias": {"x": 1}},
    {"logit_bias": {"5": 101}}, {"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21},
    {"chat_template_kwargs": {"tokenize": True}}, {"reasoning_effort": "max"},
    {"response_format": {"type": "json_schema"}}, {"response_format": {"type": "xml"}},
    {"guided_regex": "(unclosed"}, {"guided_json": "{not json"}, {"guided_choice": []},
    {"guided_choice": ["a"], "guided_regex": "a"},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "extra": 1}]}]},
])
def test_bad_requests_fail_validation(bad):
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **bad})


def test_conversation_keeps_image_order_and_replaces_parts():
    body = req(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "A"}}, {"type": "text", "text": "q"},
        {"type": "image_url", "image_url": {"url": "B"}}]}])
    conversation = body.to_conversation(lambda url: url.lower())
    assert conversation.images == ("a", "b")
    assert [p["type"] for p in conversation.messages[0]["content"]] == ["image", "text", "image"]
    assert body.image_count == 2


def test_developer_messages_are_system_instructions():
    body = req(messages=[{"role": "developer", "content": "be brief"}, USER])
    assert body.to_conversation(lambda url: url).messages[0]["role"] == "system"


def test_unknown_fields_are_accepted_and_named_as_ignored():
    body = req(tools=[], parallel_tool_calls=False, service_tier="auto")
    assert body.ignored_fields == ["parallel_tool_calls", "service_tier", "tools"]
    assert req().ignored_fields == []


def test_assistant_turns_may_carry_their_reasoning_which_is_not_fed_back():
    body = req(messages=[USER, {"role": "assistant", "content": "4", "reasoning": "SECRET",
                                "reasoning_content": "SECRET"}, USER])
    conversation = body.to_conversation(lambda url: None)
    assert [m["content"] for m in conversation.messages][1] == [{"type": "text", "text": "4"}]
    assert "SECRET" not in repr(conversation.messages)


def test_sampling_extras_reach_the_engine_parameters():
    params = req(frequency_penalty=0.5, presence_penalty=-1, logit_bias={"17": -100},
                 stop_token_ids=[3], skip_special_tokens=False, logprobs=True, top_logprobs=2,
                 chat_template_kwargs={"enable_thinking": False}).to_search_params(SETTINGS)
    sampling = params.sampling
    assert (sampling.frequency_penalty, sampling.presence_penalty) == (0.5, -1)
    assert sampling.logit_bias == ((17, -100),) and not sampling.skip_special_tokens
    assert params.stop_token_ids == (3,) and params.answer_logprobs == 2
    assert req(logprobs=True).to_search_params(SETTINGS).answer_logprobs == 0
    assert req().to_search_params(SETTINGS).answer_logprobs is None
    conversation = req(chat_template_kwargs={"enable_thinking": False}).to_conversation(str)
    assert conversation.template_kwargs == {"enable_thinking": False}


@pytest.mark.parametrize("effort", ["none", "minimal"])
def test_reasoning_effort_none_or_minimal_is_greedy(effort):
    params = req(reasoning_effort=effort).to_search_params(Settings(beam_width=4))
    assert params.beam_width == 1 and params.sampling.temperature == 0.0


@pytest.mark.parametrize("fields, kind, value", [
    ({"response_format": {"type": "json_object"}}, "json_object", None),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "a", "schema": {"type": "object"}}}}, "json", '{"type": "object"}'),
    ({"structured_outputs": {"choice": ["A", "B"]}}, "choice", ("A", "B")),
    ({"structured_outputs": {"regex": "[0-9]+"}}, "regex", "[0-9]+"),
    ({"structured_outputs": {"json": '{"type": "integer"}'}}, "json", '{"type": "integer"}'),
    ({"guided_choice": ["yes", "no"]}, "choice", ("yes", "no")),
    ({"guided_json": {"type": "integer"}}, "json", '{"type": "integer"}'),
    ({"guided_grammar": 'root ::= "a"'}, "grammar", 'root ::= "a"'),
    ({"response_format": {"type": "text"}}, None, None),
])
def test_structured_output_fields_become_one_answer_constraint(fields, kind, value):
    constraint = req(**fields).to_search_params(SETTINGS).constraint
    if kind is None:
        assert constraint is None
    else:
        assert constraint is not None and (constraint.kind, constraint.value) == (kind, value)
