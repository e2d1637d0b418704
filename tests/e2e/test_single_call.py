"""A width-1 answer in one engine call, end to end on the real engine and the tiny model: the
engine calls a request makes (the /metrics counter), the same answer and stages as stage by
stage (a second server with --no-single-call), streaming, and an answer stage that samples
otherwise (structured output, logprobs) in a call of its own."""

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from server.images.decoding import encode_data_url
from tests.conftest import ServerProcess, start_server
from tinycot.task import held_out

URL = "/v1/chat/completions"
STAGES = ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]


@pytest.fixture(scope="module")
def per_stage_server(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir
                     ) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path_factory.mktemp("per-stage") / "server.log", "--no-single-call")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def questions() -> list[dict]:
    """Shape questions, which the tiny model answers in its trained format (each stage closed
    by the model within a 128-token cap)."""
    return [{"model": "tiny-cot", "return_trace": True, "stage_max_tokens": 128,
             "max_tokens": 600, "messages": [{"role": "user", "content": [
                 {"type": "image_url", "image_url": {"url": encode_data_url(e.image, "PNG")}},
                 {"type": "text", "text": e.question}]}]} for e in held_out(3, seed=1)]


def engine_calls(server: ServerProcess) -> dict[str, float]:
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    return {kind: float(value) for kind, value in re.findall(
        r'^cot_server_engine_calls_total\{kind="(\w+)"\} (\S+)$', text, re.M)}


def ask(server: ServerProcess, body: dict) -> tuple[dict, dict[str, float]]:
    """The response, and the engine calls it made by kind."""
    before = engine_calls(server)
    response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=120)
    assert response.status_code == 200, response.text
    after = engine_calls(server)
    return response.json(), {k: v - before.get(k, 0) for k, v in after.items()
                             if v != before.get(k, 0)}


def rounded(value):
    """Floats to 4 places (logprobs from two engines agree to that, not to the last bit)."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def test_a_greedy_answer_is_one_engine_call_with_the_stages_stage_by_stage_makes(
        server, per_stage_server, questions):
    for body in questions:
        one, one_calls = ask(server, body)
        apart, apart_calls = ask(per_stage_server, body)
        assert one_calls == {"stages": 1} and apart_calls == {"stage": 4}
        ours, theirs = one["choices"][0]["message"], apart["choices"][0]["message"]
        assert [s["tag"] for s in ours["stages"]] == STAGES
        assert all(s["candidates"][0]["closed"] for s in ours["stages"])
        assert ours["content"] == theirs["content"] and ours["reasoning"] == theirs["reasoning"]
        assert ours["stages"] == theirs["stages"]  # texts, token counts, closed, selected_by
        # one prompt instead of four; the separators and tags between stages are generated
        assert one["usage"]["prompt_tokens"] < apart["usage"]["prompt_tokens"]
        assert one["usage"]["completion_tokens"] > apart["usage"]["completion_tokens"]


def test_a_streamed_greedy_answer_streams_each_stage_while_it_is_decoded(server, questions):
    body = {**questions[0], "stream": True}
    before = engine_calls(server)
    with httpx.stream("POST", f"{server.base_url}{URL}", json=body, timeout=120) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: {")]
    after = engine_calls(server)
    assert {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)} == {
        "stages": 1}
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in lines
              if json.loads(line[6:])["choices"]]
    reasoning = [d.get("reasoning", "") for d in deltas]
    for tag in STAGES[:-1]:  # a stage's text comes in pieces before its closing tag does
        opened = next(i for i, r in enumerate(reasoning) if f"<{tag}>" in r)
        closed = next(i for i, r in enumerate(reasoning) if f"</{tag}>" in r)
        assert closed > opened and all(reasoning[opened:closed])
    content = "".join(d.get("content") or "" for d in deltas)
    whole = ask(server, questions[0])[0]["choices"][0]["message"]
    assert whole["reasoning"].startswith("".join(reasoning)) and whole["content"] == content


@pytest.mark.parametrize("apart", [{"structured_outputs": {"regex": "[0-9a-z ]{1,12}"}},
                                   {"logprobs": True, "top_logprobs": 2}])
def test_an_answer_that_samples_otherwise_is_its_own_call_after_one_for_the_rest(
        server, per_stage_server, questions, apart):
    body = {**questions[1], **apart}
    one, one_calls = ask(server, body)
    theirs, apart_calls = ask(per_stage_server, body)
    assert one_calls == {"stages": 1, "stage": 1} and apart_calls == {"stage": 4}
    assert rounded(one["choices"][0]) == rounded(theirs["choices"][0])
    if "structured_outputs" in apart:
        assert re.fullmatch("[0-9a-z ]{1,12}", one["choices"][0]["message"]["content"])
    else:
        assert one["choices"][0]["logprobs"]["content"]


def test_each_best_of_n_chain_is_one_call_and_a_seed_repeats_the_search(server, questions):
    body = {**questions[2], "search": "best_of_n", "beam_width": 3, "selector": "logprob",
            "seed": 4}
    first, calls = ask(server, body)
    assert calls.get("stages") == 3  # one per chain (a chain that broke the format goes on
    second, _ = ask(server, body)  # stage by stage from there)
    stages = first["choices"][0]["message"]["stages"]
    assert len(stages) == 4 and all(len(s["candidates"]) == 3 for s in stages)
    assert stages == second["choices"][0]["message"]["stages"]


def test_reasoning_effort_minimal_and_none_answer_greedily_in_one_call(server, questions):
    body = questions[0]
    greedy, _ = ask(server, body)
    for effort in ("minimal", "none"):
        data, calls = ask(server, {**body, "reasoning_effort": effort, "seed": 3})
        assert calls == {"stages": 1}
        message = data["choices"][0]["message"]
        assert all(len(s["candidates"]) == 1 for s in message["stages"])
        assert message["content"] == greedy["choices"][0]["message"]["content"]
