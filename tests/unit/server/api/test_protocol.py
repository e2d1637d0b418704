import pytest
from pydantic import ValidationError

from server.api.protocol import ChatCompletionRequest
from server.config import Settings
from server.search.repetition import RepetitionRule

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


def test_repetition_stop_is_on_by_default_and_the_flag_turns_it_off():
    assert req().to_search_params(SETTINGS).repetition == RepetitionRule()
    off = Settings(repetition_stop=False)
    assert req().to_search_params(off).repetition is None


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
    {"chat_template_kwargs": {"tokenize": True}}, {"reasoning_effort": "extreme"},
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


# ------------------------------------------------- checks as OpenAI and vLLM make them


def error_of(**fields) -> tuple[str, str]:
    """(location, message) of the one validation error of a request with `fields`."""
    with pytest.raises(ValidationError) as failed:
        ChatCompletionRequest.model_validate({"model": "m", "messages": [USER], **fields})
    errors = failed.value.errors()
    return ".".join(str(p) for p in errors[0]["loc"]), errors[0]["msg"]


@pytest.mark.parametrize("role", ["user", "system", "developer"])
@pytest.mark.parametrize("message", [{"content": None}, {}])
def test_null_or_missing_content_is_refused_outside_assistant_messages(role, message):
    loc, msg = error_of(messages=[{"role": role, **message}, USER])
    assert loc == "messages.0.content" and f"a {role} message needs content" in msg


def test_an_assistant_message_may_be_null_only_with_tool_calls_as_openai_allows():
    loc, msg = error_of(messages=[USER, {"role": "assistant", "content": None}, USER])
    assert loc == "messages.1.content" and "tool_calls" in msg
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    for carried in ({"tool_calls": [call]}, {"function_call": {"name": "f", "arguments": ""}}):
        body = req(messages=[USER, {"role": "assistant", "content": None, **carried}, USER])
        turn = body.to_conversation(str).messages[1]
        assert turn == {"role": "assistant", "content": []}  # the calls are not fed back
    loc, _ = error_of(messages=[USER, {"role": "assistant", "content": None, "tool_calls": []}])
    assert loc == "messages.1.content"


def test_content_part_lists_are_never_empty():
    loc, _ = error_of(messages=[{"role": "user", "content": []}])
    assert loc.startswith("messages.0.content")


@pytest.mark.parametrize("role", ["system", "developer", "assistant"])
def test_images_are_only_allowed_in_user_messages(role):
    image = {"type": "image_url", "image_url": {"url": "data:,"}}
    loc, msg = error_of(messages=[{"role": role, "content": [image]}, USER])
    assert loc == "messages.0.content" and "only allowed in user messages" in msg


def test_an_assistant_refusal_part_is_read_as_its_text_and_only_there():
    body = req(messages=[USER, {"role": "assistant", "content": [
        {"type": "refusal", "refusal": "I cannot"}]}, USER])
    assert body.to_conversation(str).messages[1]["content"] == [
        {"type": "text", "text": "I cannot"}]
    loc, _ = error_of(messages=[{"role": "user", "content": [
        {"type": "refusal", "refusal": "no"}]}])
    assert loc == "messages.0.content"


@pytest.mark.parametrize("field, value", [
    ("max_tokens", "5"), ("max_tokens", 5.0), ("max_tokens", True), ("n", "2"),
    ("temperature", "0.5"), ("temperature", True), ("top_p", "1"), ("seed", "3"),
    ("stream", "true"), ("stream", 1), ("logprobs", "yes"), ("top_k", 2.5),
    ("beam_width", "2"), ("return_trace", 1), ("timeout", "30"), ("min_p", False),
    ("stage_max_tokens", "8"), ("stop_token_ids", ["3"]), ("logit_bias", {"5": "1"}),
])
def test_types_are_json_types_as_openai_checks_them(field, value):
    extra = {"logprobs": True} if field == "top_logprobs" else {}
    loc, _ = error_of(**{field: value}, **extra)
    assert loc.split(".")[0] == field


def test_whole_numbers_are_numbers_too():
    body = req(temperature=1, top_p=1, frequency_penalty=1, timeout=5)
    assert (body.temperature, body.top_p, body.frequency_penalty, body.timeout) == (1, 1, 1, 5)


@pytest.mark.parametrize("field, default", [
    ("n", 1), ("stream", False), ("logprobs", False), ("frequency_penalty", 0.0),
    ("presence_penalty", 0.0)])
def test_null_is_the_default_where_openai_and_vllm_take_null(field, default):
    assert getattr(req(**{field: None}), field) == default
    schema = ChatCompletionRequest.model_json_schema()["properties"][field]
    assert {"type": "null"} in schema["anyOf"]  # and the schema says so


@pytest.mark.parametrize("seed", [-1, -(2**63), 2**63 - 1, 0])
def test_seeds_take_the_signed_64_bit_range_and_negative_ones_reproduce(seed):
    params = req(seed=seed).to_search_params(SETTINGS)
    assert params.sampling.seed is not None and 0 <= params.sampling.seed < 2**63
    assert params.sampling.seed == req(seed=seed).to_search_params(SETTINGS).sampling.seed
    if seed >= 0:
        assert params.sampling.seed == seed


@pytest.mark.parametrize("seed", [-(2**63) - 1, 2**63])
def test_seeds_beyond_64_bits_are_refused(seed):
    assert error_of(seed=seed)[0] == "seed"


@pytest.mark.parametrize("fields, param", [
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"stop": ""}, "stop"),
    ({"stop": ["a", ""]}, "stop"), ({"top_logprobs": 3}, "top_logprobs"),
    ({"logprobs": False, "top_logprobs": 0}, "top_logprobs"),
    ({"messages": [{"role": "system", "content": "x"}]}, "messages"),
    ({"stage_max_tokens": {"summary": 0}}, "stage_max_tokens"),
    ({"chat_template_kwargs": {"messages": []}}, "chat_template_kwargs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"), ({"top_p": 1.01}, "top_p"),
    ({"temperature": 2.01}, "temperature"), ({"top_logprobs": 21, "logprobs": True},
                                             "top_logprobs"),
    ({"presence_penalty": -2.5}, "presence_penalty"), ({"n": 0}, "n"),
])
def test_each_refusal_names_its_field(fields, param):
    assert error_of(**fields)[0].split(".")[0] == param


def test_stream_options_come_with_stream_and_the_edges_of_each_range_pass():
    assert req(stream=True, stream_options={"include_usage": True}).stream_options
    edges = req(temperature=0, top_p=1, max_tokens=1, max_completion_tokens=1, n=1,
                logprobs=True, top_logprobs=20, stop=["a", "b", "c", "d"],
                frequency_penalty=-2, presence_penalty=2, repetition_penalty=3.5)
    assert edges.top_logprobs == 20 and edges.repetition_penalty == 3.5  # vLLM: any > 0


@pytest.mark.parametrize("effort, width", [("xhigh", 6), ("max", 6), ("high", 6),
                                           ("minimal", 1)])
def test_openais_efforts_above_high_are_the_high_preset(effort, width):
    assert req(reasoning_effort=effort).to_search_params(SETTINGS).beam_width == width


def test_a_json_schema_format_needs_openais_name_and_without_a_schema_is_any_json():
    for bad in ({"schema": {}}, {"name": "has space", "schema": {}}, {"name": "x" * 65}):
        loc, _ = error_of(response_format={"type": "json_schema", "json_schema": bad})
        assert loc.startswith("response_format.json_schema")
    constraint = req(response_format={"type": "json_schema", "json_schema": {
        "name": "answer"}}).to_search_params(SETTINGS).constraint
    assert constraint is not None and constraint.kind == "json_object"


def test_retrace_ranks_by_the_verifier_and_another_selector_is_refused():
    from server.api.protocol import InvalidField

    params = req(search="retrace", beam_width=4).to_search_params(SETTINGS)
    assert params.shape == "retrace" and params.selector == "verify"
    assert params.keep == SETTINGS.retrace_keep
    assert params.retrace_threshold == SETTINGS.retrace_threshold
    assert req(search="retrace", selector="verify").to_search_params(SETTINGS).selector == "verify"
    for other in ("judge", "best_of_n"):
        with pytest.raises(InvalidField) as refused:
            req(search="retrace", selector=other).to_search_params(SETTINGS)
        assert refused.value.param == "selector"


def test_a_budget_comes_from_search_budget_or_the_effort_preset_it_came_with():
    settings = Settings(effort_medium=4, effort_budget_medium=2.0, effort_budget_high=None)
    assert req(search_budget=200).to_search_params(settings).budget.tokens == 200
    medium = req(reasoning_effort="medium").to_search_params(settings)
    assert medium.beam_width == 4 and medium.budget.answers == 2.0
    assert req(reasoning_effort="high").to_search_params(settings).budget is None
    # a width of its own: the preset's budget does not come with it
    assert req(reasoning_effort="medium", beam_width=4).to_search_params(settings).budget is None
    assert req(reasoning_effort="none").to_search_params(settings).budget is None
    assert req().to_search_params(settings).budget is None
    # search_budget wins over the preset's
    both = req(reasoning_effort="medium", search_budget=99).to_search_params(settings)
    assert both.budget.tokens == 99 and both.budget.answers is None
    with pytest.raises(ValidationError):
        req(search_budget=0)


def test_a_greedy_candidate_comes_from_the_request_or_the_server():
    assert req(beam_width=4).to_search_params(SETTINGS).greedy_candidate is False
    assert req(beam_width=4, greedy_candidate=True).to_search_params(SETTINGS).greedy_candidate
    server = Settings(greedy_candidate=True)
    assert req(beam_width=4).to_search_params(server).greedy_candidate is True
    assert req(beam_width=4, greedy_candidate=False).to_search_params(
        server).greedy_candidate is False
