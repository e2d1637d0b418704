"""The retracing search (search=retrace) and compute budgets (search_budget, the
reasoning_effort presets) through the real server on the real engine."""

import itertools

import httpx
import pytest

from server.search.selectors import normalise
from tests.e2e.sse import joined, stream_chunks

pytestmark = pytest.mark.e2e
URL = "/v1/chat/completions"
TAGS = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]


def post(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}{URL}", json=body, timeout=300)


def ok(server, body: dict) -> dict:
    response = post(server, body)
    assert response.status_code == 200, response.text
    return response.json()


def retraces_counted(server) -> float:
    text = httpx.get(f"{server.base_url}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cot_server_retraces_total{"))


def check_chain(stages: list[dict]) -> None:
    """The chosen candidates make one chain: each continues the previous stage's chosen one."""
    assert [s["tag"] for s in stages] == TAGS
    for before, stage in itertools.pairwise(stages):
        chosen = stage["candidates"][stage["chosen_index"]]
        assert chosen["parent"] == before["chosen_index"]
        assert all(0 <= c["parent"] < len(before["candidates"]) for c in stage["candidates"])
    assert all(stages[0]["candidates"][i]["parent"] is None
               for i in range(len(stages[0]["candidates"])))


def test_retrace_goes_back_where_every_candidate_scores_below_the_threshold(server, chat_body):
    """Threshold 1: every stage the verifier scored sends the search back, until the cap."""
    before = retraces_counted(server)
    data = ok(server, {**chat_body, "search": "retrace", "beam_width": 4, "seed": 11,
                       "temperature": 1.0, "retrace_threshold": 1.0, "max_retraces": 2,
                       "return_trace": True})
    message = data["choices"][0]["message"]
    stages, retraces = message["stages"], message["retraces"]
    check_chain(stages)
    assert message["content"] == stages[-1]["text"]
    scored = [s for s in stages[1:] if any(c["score"] is not None for c in s["candidates"])]
    assert len(retraces) == (2 if scored else 0)
    for retrace in retraces:
        assert TAGS.index(retrace["back_to"]) == TAGS.index(retrace["stage"]) - 1
        assert 0.0 <= retrace["best_score"] < 1.0
    by_tag = {s["tag"]: s for s in stages}
    for tag in {r["back_to"] for r in retraces} | {r["stage"] for r in retraces}:
        assert max(c["attempt"] for c in by_tag[tag]["candidates"]) >= 1  # sampled again
    assert data["usage"]["completion_tokens_details"]["judge_tokens"] > 0 or not scored
    assert retraces_counted(server) == before + len(retraces)


def test_retrace_at_threshold_zero_never_goes_back_and_keeps_two(server, chat_body):
    data = ok(server, {**chat_body, "search": "retrace", "beam_width": 4, "seed": 4,
                       "temperature": 1.0, "retrace_threshold": 0.0, "return_trace": True})
    message = data["choices"][0]["message"]
    assert message["retraces"] == []
    check_chain(message["stages"])
    for stage in message["stages"]:
        assert {c["attempt"] for c in stage["candidates"]} == {0}
        assert len({c["parent"] for c in stage["candidates"]}) <= 2  # at most 2 kept go on


def test_retrace_streams_its_stages_once_the_answer_is_chosen(server, chat_body):
    body = {**chat_body, "search": "retrace", "beam_width": 2, "seed": 2, "stream": True,
            "return_trace": True, "stream_options": {"include_usage": True}}
    chunks = stream_chunks(server.base_url, body)
    reasoning, content = joined(chunks, "reasoning_content"), joined(chunks, "content")
    assert reasoning.startswith("<SUMMARY>") and reasoning.endswith("</REASONING>\n\n")
    whole = ok(server, {k: v for k, v in body.items() if k not in ("stream", "stream_options")})
    assert content == whole["choices"][0]["message"]["content"]  # same seed, same answer
    assert chunks[-1]["usage"]["completion_tokens"] == whole["usage"]["completion_tokens"]


def test_retrace_with_n_choices_searches_each(server, chat_body):
    data = ok(server, {**chat_body, "search": "retrace", "beam_width": 2, "n": 2, "seed": 6,
                       "temperature": 1.0, "return_trace": True})
    assert [c["index"] for c in data["choices"]] == [0, 1]
    for choice in data["choices"]:
        check_chain(choice["message"]["stages"])


def test_retrace_with_another_selector_is_a_400_naming_selector(server, chat_body):
    response = post(server, {**chat_body, "search": "retrace", "beam_width": 2,
                             "selector": "judge"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "selector" and "verify" in error["message"]
    assert error["type"] == "invalid_request_error"


def test_streamed_best_of_n_sends_its_answer(server, chat_body):
    body = {**chat_body, "search": "best_of_n", "selector": "vote", "beam_width": 2, "seed": 3,
            "stream": True}
    content = joined(stream_chunks(server.base_url, body), "content")
    whole = ok(server, {k: v for k, v in body.items() if k != "stream"})
    assert content and content == whole["choices"][0]["message"]["content"]


# ----------------------------------------------------------------------------- budgets


def test_a_budget_below_one_answer_gives_each_stage_one_candidate(server, chat_body):
    data = ok(server, {**chat_body, "beam_width": 4, "selector": "verify", "search_budget": 1,
                      "temperature": 1.0, "seed": 1, "return_trace": True})
    stages = data["choices"][0]["message"]["stages"]
    assert [s["tag"] for s in stages] == TAGS
    assert all(len(s["candidates"]) == 1 and s["selected_by"] == "only" for s in stages)
    assert data["usage"]["completion_tokens_details"]["judge_tokens"] == 0


def test_a_large_budget_widens_only_where_the_first_two_disagree(server, chat_body):
    data = ok(server, {**chat_body, "beam_width": 6, "selector": "verify", "seed": 8,
                       "temperature": 1.0, "search_budget": 100_000, "return_trace": True})
    stages = data["choices"][0]["message"]["stages"]
    assert [s["tag"] for s in stages] == TAGS
    for stage in stages:
        if stage["fallback"]:  # the first two were empty: one greedy candidate instead
            assert len(stage["candidates"]) == 1
            continue
        texts = [normalise(c["text"]) for c in stage["candidates"]]
        assert len(texts) in (2, 4, 6)
        first_two = {t for t in texts[:2] if t}  # an empty candidate agrees with anything
        if len(texts) > 2:
            assert len(first_two) == 2  # widened because the first two differed
        else:
            assert len(first_two) <= 1


def test_a_budget_of_tokens_holds_the_search_near_it(server, chat_body):
    """Twice a greedy answer's tokens, at width 8 (which alone costs over 8 answers): the search
    keeps to the budget by its estimates, which may fall short by at most the single candidates
    it ends with (an answer is never cut for the budget): within one more answer."""
    greedy = ok(server, {**chat_body})["usage"]["completion_tokens"]
    budget = 2 * greedy
    for seed in (1, 2, 3):
        data = ok(server, {**chat_body, "beam_width": 8, "selector": "verify", "seed": seed,
                           "temperature": 1.0, "search_budget": budget, "return_trace": True})
        assert data["usage"]["completion_tokens"] <= budget + greedy
        stages = data["choices"][0]["message"]["stages"]
        assert [s["tag"] for s in stages] == TAGS and data["choices"][0]["message"]["content"]
        assert sum(len(s["candidates"]) for s in stages) < 8 * len(TAGS)


def test_reasoning_effort_medium_is_width_4_within_two_answers(server, chat_body):
    data = ok(server, {**chat_body, "reasoning_effort": "medium", "selector": "verify",
                       "seed": 5, "temperature": 1.0, "return_trace": True})
    stages = data["choices"][0]["message"]["stages"]
    assert all(1 <= len(s["candidates"]) <= 4 for s in stages)
    assert any(len(s["candidates"]) < 4 for s in stages)  # not the full width everywhere
