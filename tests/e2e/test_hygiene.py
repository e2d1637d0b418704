"""Stage text hygiene end to end on the real engine and tiny model (issue 15): no stage tag ever
reaches a returned text, and a stage caught in a loop is closed early."""

import json
import re

import httpx
import pytest
from transformers import AutoTokenizer

from server.search.single_call import READ_EVERY

URL = "/v1/chat/completions"
STAGES = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")
TAG = re.compile(r"</?(?:SUMMARY|CAPTION|REASONING|CONCLUSION|think|answer)>")
# Without an image, the tiny model (trained on pictures) writes other stages' tags inside its
# stages: "g Blue is 1.</REASONING>\n\n<CONCLUSION>1" came back as an answer (issue 15).
TEXT_ONLY = ("What colour is the circle?", "hello", "How many blue shapes are there?")
CAP = 300  # per stage: a loop left alone would run to it


def post(server, body: dict) -> dict:
    response = httpx.post(f"{server.base_url}{URL}", json=body, timeout=300)
    assert response.status_code == 200, response.text
    return response.json()


def streamed_content(server, body: dict) -> str:
    content = ""
    with httpx.stream("POST", f"{server.base_url}{URL}", json={**body, "stream": True},
                      timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                for choice in json.loads(line[len("data: "):])["choices"]:
                    content += choice["delta"].get("content") or ""
    return content


def test_no_stage_tag_reaches_a_returned_text_and_the_trace_says_what_was_cut(server):
    cuts = []
    for question in TEXT_ONLY:
        body = {"model": "tiny-cot", "messages": [{"role": "user", "content": question}],
                "return_trace": True, "stage_max_tokens": 64}
        message = post(server, body)["choices"][0]["message"]
        assert not TAG.search(message["content"]), message["content"]
        for stage in message["stages"]:
            for candidate in stage["candidates"]:
                assert not TAG.search(candidate["text"]), candidate
                cuts += [c for c in candidate["cleaned"] if c.startswith("cut at <")]
        # the tagged path holds each stage's own tags once, in order, and nothing else
        assert TAG.findall(message["reasoning"]) == [
            t for s in STAGES for t in (f"<{s}>", f"</{s}>")]
        assert streamed_content(server, body) == message["content"]  # greedy: the same
    assert cuts, "the model wrote no tag inside a stage: find another input"


@pytest.fixture(scope="module")
def red(tiny_model_dir) -> str:
    """The token " red", which a logit bias makes the model write over and over: a loop as
    deterministic as can be (the plain red picture of the issue no longer loops once the tags
    it wrote inside its stages are cut)."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    [token] = tokenizer.encode(" red", add_special_tokens=False)
    return str(token)


@pytest.mark.parametrize("search", [{}, {"beam_width": 2, "seed": 3, "selector": "logprob"}],
                         ids=["one-call", "two-candidates"])
def test_a_stage_caught_in_a_loop_is_closed_early_after_its_first_copy(server, chat_body, red,
                                                                       search):
    body = {**chat_body, "logit_bias": {red: 100}, "stage_max_tokens": CAP,
            "return_trace": True, **search}
    generated = server.counter("vllm:generation_tokens_total")
    data = post(server, body)
    spent = server.counter("vllm:generation_tokens_total") - generated
    stages = data["choices"][0]["message"]["stages"]
    assert [s["tag"] for s in stages] == list(STAGES)
    candidates = [c for s in stages for c in s["candidates"]]
    assert len(candidates) == 4 * search.get("beam_width", 1)
    for candidate in candidates:
        assert (candidate["text"], candidate["closed"]) == ("red", False)
        assert candidate["cleaned"] == ["repetition"]
        # ended at the loop (seen after 12 words), not at the cap: the engine hands a call's
        # text over every READ_EVERY tokens (one hand-over missed on a busy machine allowed)
        assert candidate["tokens"] <= 13 + 2 * READ_EVERY < CAP / 5
    assert data["choices"][0]["message"]["content"] == "red"
    assert data["usage"]["completion_tokens"] == sum(c["tokens"] for c in candidates)
    assert spent < len(candidates) * CAP / 5  # the engine stopped too
    if not search:
        assert streamed_content(server, body) == "red"  # never more than the first copy
