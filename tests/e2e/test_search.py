"""Stage-level beam search end to end on the real engine and tiny model."""

import asyncio
import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.waiting import engine_core, wait_for, wait_idle

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
    # both orders of each pair judged; a pair that shows the same text twice is not asked
    judged = [c for s in stages for c in s["comparisons"] if c["confidence"] is not None]
    assert judge_tokens == 2 * len(judged)
    for stage in stages:
        texts = [c["text"] for c in stage["candidates"]]
        for c in stage["comparisons"]:
            assert (c["confidence"] is None) == (texts[c["first"]] == texts[c["second"]])
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


def _wait_idle(server) -> None:
    wait_idle(server, "engine requests still running after the client left")


def _post_raw(server, body: dict) -> socket.socket:
    """Send a JSON POST on a raw socket and read nothing: closing the socket is the client
    leaving at the moment the test chooses, not when a client timeout happens to fire."""
    address = urlsplit(server.base_url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((address.hostname, address.port))
    sock.sendall(b"POST " + URL.encode() + b" HTTP/1.1\r\nHost: test\r\n"
                 b"Content-Type: application/json\r\n"
                 + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


# 8 candidates held to 1000 tokens each (`min_tokens`): one stage alone is 8,000 generated
# tokens, so a search that stopped when its client left has generated far fewer.
LONG_STAGE = {"beam_width": 8, "min_tokens": 1000}
LONG_STAGE_TOKENS = 8 * 1000
# At most what a 4-token stage costs: 8 candidates, a greedy fallback, 14 one-token judge calls.
SHORT_STAGE_TOKENS = 8 * 4 + 4 + 14
STARTED = 8 * 50  # generated beyond the short stages: only the long stage can have made them
# The client leaves while the engine is stopped (SIGSTOP), so how fast the engine decodes cannot
# decide the test. It must be stopped with at least this much of the long stage still to come
# (else this test process woke too late, on a busy machine: it starts over); once resumed, the
# engine may finish the step it was in and the next few before it reads the aborts, never half
# of what was left.
LEFT_AT_PAUSE = LONG_STAGE_TOKENS // 2
ATTEMPTS = 3


def _wait_generated(server, tokens: float) -> None:
    """Until the engine has generated `tokens` in all (a counter: never stale, unlike the
    running-requests gauge between engine steps)."""
    wait_for(lambda: server.counter("vllm:generation_tokens_total") >= tokens,
             "the long stage did not start", server)


def _leave_with_the_engine_stopped(server, generated: float, before_long: int, leave) -> bool:
    """The long stage is under way: stop the engine core, call `leave` (the client goes away),
    wait until the server has ended the request, resume the engine and let it go idle. Then
    assert it aborted the search: once resumed, it generated less than half of what the long
    stage had left. False (nothing asserted) when the long stage was too far along when the
    engine stopped: the caller starts over."""
    core = engine_core(server)
    core.suspend()
    try:
        at_pause = server.counter("vllm:generation_tokens_total") - generated
        left = before_long + LONG_STAGE_TOKENS - at_pause
        leave()
        if left >= LEFT_AT_PAUSE:
            wait_for(lambda: server.counter("cot_server_requests_running") == 0,
                     "the server did not end the request of a client that left", server)
    finally:
        core.resume()
    _wait_idle(server)
    after = server.counter("vllm:generation_tokens_total") - generated - at_pause
    if left < LEFT_AT_PAUSE:
        return False
    assert after < left / 2, (at_pause, left, after)
    return True


def test_disconnect_mid_search_aborts_all_engine_work(server, chat_body):
    """The client leaves while the engine generates the first stage's candidates; the search
    is aborted (logged) and the engine, resumed, goes idle without finishing that stage."""
    for _ in range(ATTEMPTS):
        _wait_idle(server)
        generated = server.counter("vllm:generation_tokens_total")
        aborted = server.log().count("its search was aborted")
        sock = _post_raw(server, {**chat_body, **LONG_STAGE, "stage_max_tokens": 1000})
        try:
            _wait_generated(server, generated + STARTED)
        except BaseException:
            sock.close()
            raise
        if _leave_with_the_engine_stopped(server, generated, 0, sock.close):
            assert server.log().count("its search was aborted") == aborted + 1
            return
    pytest.fail(f"the long stage was over half done before the engine stopped, {ATTEMPTS} times")


@pytest.mark.parametrize("stages_done", [0, 1, 2, 3])
def test_disconnect_during_each_stage_aborts_all_engine_work(server, chat_body, stages_done):
    """Leave while stage `stages_done` (0: SUMMARY ... 3: CONCLUSION) is being searched: after
    the stages before it were sent, and once the engine works on it. That stage holds 8
    candidates to 1000 tokens each; the engine, resumed, goes idle without finishing it."""
    tags = ["summary", "caption", "reasoning", "conclusion"]
    caps = {tag: (1000 if i == stages_done else 4) for i, tag in enumerate(tags)}
    body = {**chat_body, **LONG_STAGE, "stage_max_tokens": caps, "stream": True,
            "return_trace": True}
    before_long = SHORT_STAGE_TOKENS * stages_done
    for _ in range(ATTEMPTS):
        _wait_idle(server)
        generated = server.counter("vllm:generation_tokens_total")
        chosen = 0
        with httpx.stream("POST", f"{server.base_url}{URL}", json=body,
                          timeout=120) as response:
            lines = response.iter_lines()  # kept: a dropped iterator would close the response
            if stages_done:
                for line in lines:
                    if line.startswith("data: {") and '"reasoning_content"' in line:
                        chosen += 1
                    if chosen == stages_done:
                        break  # the long stage is next
            assert chosen == stages_done
            _wait_generated(server, generated + before_long + STARTED)
            if _leave_with_the_engine_stopped(server, generated, before_long, response.close):
                return
    pytest.fail(f"the long stage was over half done before the engine stopped, {ATTEMPTS} times")


def test_min_tokens_holds_every_stage_open_to_its_length(server, chat_body):
    body = {**chat_body, "stage_max_tokens": 12, "min_tokens": 10, "ignore_eos": True,
            "return_trace": True}
    data = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120).json()
    stages = data["choices"][0]["message"]["stages"]
    assert len(stages) == 4
    assert all(10 <= s["candidates"][s["chosen_index"]]["tokens"] <= 12 for s in stages)
