"""Stage-level beam search end to end on the real engine and tiny model."""

import asyncio
import time

import httpx
import pytest

URL = "/v1/chat/completions"


def test_beam_of_4_with_judge_lists_candidates_comparisons_and_usage(server, chat_body):
    body = {**chat_body, "beam_width": 4, "return_trace": True, "seed": 11}
    data = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).json()
    stages = data["choices"][0]["message"]["stages"]
    assert len(stages) == 4
    for stage in stages:
        assert len(stage["candidates"]) == 4
        assert 0 <= stage["chosen_index"] < 4
        assert stage["text"] == stage["candidates"][stage["chosen_index"]]["text"]
        usable = [c for c in stage["candidates"] if c["text"]]
        if len(usable) > 1:
            assert len(stage["comparisons"]) == len(usable) - 1
            assert {c["round"] for c in stage["comparisons"]} == set(
                range(1, max(c["round"] for c in stage["comparisons"]) + 1))
            assert stage["comparisons"][-1]["winner"] == stage["chosen_index"]
    usage = data["usage"]
    candidate_tokens = sum(c["tokens"] for s in stages for c in s["candidates"])
    judge_tokens = usage["completion_tokens_details"]["judge_tokens"]
    assert judge_tokens == 2 * sum(len(s["comparisons"]) for s in stages)  # both orders
    assert usage["completion_tokens"] == candidate_tokens + judge_tokens
    answer = stages[-1]["candidates"][stages[-1]["chosen_index"]]["tokens"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == (
        usage["completion_tokens"] - answer)
    assert usage["prompt_tokens_details"]["cached_tokens"] > 0


def test_same_seed_gives_the_same_search(server, chat_body):
    body = {**chat_body, "beam_width": 3, "return_trace": True, "seed": 5}
    first, second = (httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).json()
                     for _ in range(2))
    assert first["choices"][0]["message"]["stages"] == second["choices"][0]["message"]["stages"]


def test_best_of_n_and_logprob_selectors(server, chat_body):
    for selector in ("best_of_n", "logprob", "auto"):
        body = {**chat_body, "beam_width": 3, "selector": selector, "return_trace": True}
        response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120)
        assert response.status_code == 200, (selector, response.text)
        stages = response.json()["choices"][0]["message"]["stages"]
        assert len(stages) == 4 and all(len(s["candidates"]) == 3 for s in stages)
        if selector == "logprob":
            assert all(not s["comparisons"] for s in stages)
        if selector == "best_of_n":
            assert len(stages[-1]["comparisons"]) == 2
            assert len({s["chosen_index"] for s in stages}) == 1  # one whole chain wins


def test_reasoning_effort_sets_the_width(server, chat_body):
    body = {**chat_body, "reasoning_effort": "high", "return_trace": True}
    data = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).json()
    assert len(data["choices"][0]["message"]["stages"][0]["candidates"]) == 4


def test_concurrent_searches_all_complete(server, chat_body):
    async def main():
        async with httpx.AsyncClient(base_url=server.base_url, timeout=180) as client:
            bodies = [{**chat_body, "beam_width": 2 + i % 3, "seed": i} for i in range(8)]
            return await asyncio.gather(*(client.post(URL, json=b) for b in bodies))
    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 8


def _wait_idle(server, timeout=10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = (server.counter("vllm:num_requests_running")
                + server.counter("vllm:num_requests_waiting"))
        if busy == 0:
            return time.monotonic()
        time.sleep(0.1)
    raise AssertionError("engine requests still running after the client left")


def test_disconnect_mid_search_aborts_all_engine_work(server, chat_body):
    """`min_tokens` makes every stage run to its 1000-token cap until the context is full:
    about 2,000 sequential decode steps of 8 candidates, far more than 1.5 s on any CPU."""
    body = {**chat_body, "beam_width": 8, "stage_max_tokens": 1000, "min_tokens": 1000}
    started = time.monotonic()
    try:
        httpx.post(f"{server.base_url}{URL}", json=body, timeout=1.5)
        raise AssertionError("the search was expected to outlast the client's timeout")
    except httpx.ReadTimeout:
        pass
    _wait_idle(server)
    assert time.monotonic() - started < 20  # the whole search would take minutes
    deadline = time.monotonic() + 5
    while "its search was aborted" not in server.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "its search was aborted" in server.log()


@pytest.mark.parametrize("stages_done", [0, 1, 2, 3])
def test_disconnect_during_each_stage_aborts_all_engine_work(server, chat_body, stages_done):
    """Leave while stage `stages_done` (0: SUMMARY ... 3: CONCLUSION) is being searched. That
    stage takes 1000 tokens per candidate (`min_tokens`: seconds of work): the engine must be
    idle long before it could have finished."""
    tags = ["summary", "caption", "reasoning", "conclusion"]
    caps = {tag: (1000 if i == stages_done else 4) for i, tag in enumerate(tags)}
    body = {**chat_body, "beam_width": 8, "stage_max_tokens": caps, "min_tokens": 1000,
            "stream": True, "return_trace": True}
    chosen = 0
    with httpx.stream("POST", f"{server.base_url}{URL}", json=body, timeout=60) as response:
        if stages_done == 0:  # nothing is sent before the first stage: wait until it runs
            while server.counter("cot_server_requests_running") < 1:
                time.sleep(0.05)
        else:
            for line in response.iter_lines():
                if line.startswith("data: {") and '"reasoning_content"' in line:
                    chosen += 1
                if chosen == stages_done:
                    break  # the long stage's candidates are being generated now
    left = time.monotonic()
    assert chosen == stages_done
    assert _wait_idle(server) - left < 5


def test_min_tokens_holds_every_stage_open_to_its_length(server, chat_body):
    body = {**chat_body, "stage_max_tokens": 12, "min_tokens": 10, "ignore_eos": True,
            "return_trace": True}
    data = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).json()
    stages = data["choices"][0]["message"]["stages"]
    assert len(stages) == 4
    assert all(10 <= s["candidates"][s["chosen_index"]]["tokens"] <= 12 for s in stages)
