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
    {"selector": "coin"}, {"search": "tree"}, {"stop": ["a", "b", "c", "d", "e"]}, {"tools": []},
    {"stage_max_tokens": 0},
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
