"""Every selector, in both search shapes, through the real server on the real engine: the answer
is well formed, the trace says how each stage was picked, verification scores are
probabilities, and `n > 1` and streaming work with the model-based selectors."""


import httpx
import pytest
from openai import OpenAI

from tests.e2e.sse import joined, stream_chunks

pytestmark = pytest.mark.e2e
URL = "/v1/chat/completions"
SELECTORS = ["judge", "verify", "vote", "weighted_vote", "logprob", "auto"]
TAGS = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
SCORING = {"verify", "weighted_vote"}  # selectors that ask the verifier about every candidate


def post(server, body: dict) -> dict:
    response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("selector", SELECTORS)
def test_stage_search_with_each_selector(server, chat_body, selector):
    data = post(server, {**chat_body, "beam_width": 3, "selector": selector, "seed": 3,
                         "temperature": 1.0, "return_trace": True})
    message = data["choices"][0]["message"]
    stages = message["stages"]
    assert [s["tag"] for s in stages] == TAGS
    assert message["content"] == stages[-1]["text"]
    for stage in stages:
        assert len(stage["candidates"]) == 3
        usable = [c for c in stage["candidates"] if c["text"]]
        assert stage["selected_by"] in (selector, "only", "agree", "vote", "verify")
        if len(usable) > 1 and selector in SCORING and (
                selector == "verify" or stage["tag"] == "CONCLUSION"):
            assert stage["selected_by"] == selector
            scores = [c["score"] for c in stage["candidates"] if c["text"]]
            if len({c["text"] for c in usable}) > 1:
                assert all(0.0 <= s <= 1.0 for s in scores), scores
            else:  # one question for all of them could not tell them apart: none is asked
                assert scores == [None] * len(usable)
        if stage["selected_by"] in ("vote", "logprob", "agree", "only"):
            assert all(c["score"] is None for c in stage["candidates"])
    judge_tokens = data["usage"]["completion_tokens_details"]["judge_tokens"]
    if selector in ("vote", "logprob"):
        assert judge_tokens == 0  # these ask the engine nothing
    if selector in ("judge", "verify"):
        # nothing is asked where the candidates are the same text
        assert judge_tokens > 0 or all(len({c["text"] for c in s["candidates"] if c["text"]}) <= 1
                                       for s in stages)


@pytest.mark.parametrize("selector", ["judge", "verify", "vote", "weighted_vote"])
def test_best_of_n_with_each_selector(server, chat_body, selector):
    data = post(server, {**chat_body, "beam_width": 3, "search": "best_of_n",
                         "selector": selector, "seed": 5, "temperature": 1.0,
                         "return_trace": True})
    stages = data["choices"][0]["message"]["stages"]
    assert [s["tag"] for s in stages] == TAGS
    assert all(len(s["candidates"]) == 3 for s in stages)  # one per chain
    winner = stages[-1]["chosen_index"]
    assert all(s["chosen_index"] == winner for s in stages)  # the whole chain is kept
    assert data["choices"][0]["message"]["content"] == stages[-1]["candidates"][winner]["text"]
    if selector == "verify" and len({c["text"] for c in stages[-1]["candidates"]}) > 1:
        assert all(c["score"] is not None for c in stages[-1]["candidates"] if c["text"])


def test_legacy_best_of_n_selector_is_best_of_n_with_the_judge(server, chat_body):
    data = post(server, {**chat_body, "beam_width": 2, "selector": "best_of_n",
                         "return_trace": True, "seed": 1})
    stages = data["choices"][0]["message"]["stages"]
    assert all(len(s["candidates"]) == 2 for s in stages)
    assert stages[-1]["selected_by"] in ("judge", "only")


def test_verify_with_several_choices_through_the_openai_sdk(server, chat_body):
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused")
    completion = client.chat.completions.create(
        model="tiny-cot", messages=chat_body["messages"], n=2, seed=9,
        extra_body={"beam_width": 2, "selector": "verify", "return_trace": True})
    assert len(completion.choices) == 2
    for choice in completion.choices:
        stages = choice.message.model_extra["stages"]
        assert [s["tag"] for s in stages] == TAGS
        assert choice.message.content == stages[-1]["text"]


def test_streamed_search_with_verify_sends_each_stage_then_the_answer(server, chat_body):
    body = {**chat_body, "beam_width": 2, "selector": "verify", "stream": True,
            "return_trace": True, "stream_options": {"include_usage": True}}
    chunks = stream_chunks(server.base_url, body)
    reasoning, content = joined(chunks, "reasoning_content"), joined(chunks, "content")
    assert reasoning.startswith("<SUMMARY>")  # the boundaries the server writes, in order
    assert 0 < reasoning.index("</SUMMARY>\n\n<CAPTION>") < reasoning.index(
        "</CAPTION>\n\n<REASONING>")
    assert reasoning.endswith("</REASONING>\n\n") and content  # the answer: as content only
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_a_greedy_candidate_is_the_greedy_continuation_of_each_chosen_prefix(server, chat_body):
    """greedy_candidate: candidate 0 of a stage is what greedy decoding writes there, whatever
    the seed, and the others are sampled (at temperature 2 they are not all that same text);
    in best-of-N the first whole answer is the greedy answer."""
    greedy = post(server, {**chat_body, "beam_width": 1, "return_trace": True})
    greedy_stages = greedy["choices"][0]["message"]["stages"]
    sampled = []
    for seed in range(4):
        data = post(server, {**chat_body, "beam_width": 4, "selector": "logprob", "seed": seed,
                             "temperature": 2.0, "top_p": 1.0, "greedy_candidate": True,
                             "return_trace": True})
        stages = data["choices"][0]["message"]["stages"]
        assert [s["tag"] for s in stages] == TAGS
        assert all(len(s["candidates"]) == 4 for s in stages)
        # the first stage's prefix is the question for every request: the same greedy text
        assert stages[0]["candidates"][0]["text"] == greedy_stages[0]["text"]
        sampled += [c["text"] for c in stages[0]["candidates"][1:]]
    assert any(text != greedy_stages[0]["text"] for text in sampled), sampled
    bon = post(server, {**chat_body, "beam_width": 3, "search": "best_of_n", "selector": "vote",
                        "seed": 5, "temperature": 1.5, "greedy_candidate": True,
                        "return_trace": True})
    bon_stages = bon["choices"][0]["message"]["stages"]
    assert [s["candidates"][0]["text"] for s in bon_stages] == [s["text"] for s in greedy_stages]
