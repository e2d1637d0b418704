"""On-policy candidates: labels against the reference stages, prefixes, shares, resuming."""

import asyncio
import json

import httpx
import pytest

from tinycot.onpolicy import (
    done_indices,
    final_result,
    is_right,
    label_stages,
    load,
    reaches_right,
    request_body,
    squash,
    wait_ready,
    wrong_shares,
)
from tinycot.task import dataset

REFERENCE = {
    "SUMMARY": "The question asks how many red shapes there are. I will list the shapes by "
               "quarter and count the red ones.",
    "CAPTION": "Top left: red circle. Top right: none. Bottom left: blue square. "
               "Bottom right: none.",
    "REASONING": "Red: circle = 1. So there is 1 red shape.",
    "CONCLUSION": "1",
}


def _stage(tag, texts, chosen=0):
    return {"name": tag.lower(), "tag": tag, "text": texts[chosen], "chosen_index": chosen,
            "candidates": [{"text": t, "tokens": 3, "mean_logprob": -0.1, "closed": True}
                           for t in texts],
            "comparisons": []}


def test_stage_texts_are_right_when_they_say_the_reference_whitespace_and_case_aside():
    assert squash("  Top left:\n red  circle. ") == "top left: red circle."
    assert is_right("CAPTION", "top left: RED circle.  Top right: none. Bottom left: blue "
                    "square.\nBottom right: none.", REFERENCE["CAPTION"])
    assert not is_right("CAPTION", "Top left: red square. Top right: none. Bottom left: blue "
                        "square. Bottom right: none.", REFERENCE["CAPTION"])
    assert not is_right("REASONING", "", "")
    # the conclusion by its answer: number words, trailing words and punctuation aside
    assert is_right("CONCLUSION", "one", "1") and is_right("CONCLUSION", "1 shape.", "1")
    assert not is_right("CONCLUSION", "2", "1") and not is_right("CONCLUSION", "", "1")


def test_labelled_stages_keep_the_prefix_the_model_had_and_every_candidate():
    wrong_caption = REFERENCE["CAPTION"].replace("blue square", "blue circle")
    stages = [_stage("SUMMARY", [REFERENCE["SUMMARY"]] * 4),
              _stage("CAPTION", [wrong_caption, REFERENCE["CAPTION"], wrong_caption, ""]),
              _stage("REASONING", ["Red: circle = 1. So there is 1 red shape.",
                                   "Red: circle, circle = 2. So there are 2 red shapes."], 1),
              _stage("CONCLUSION", ["2", "two", "1."], 0)]
    labelled = label_stages(stages, REFERENCE)
    assert [s["tag"] for s in labelled] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
    assert [c["right"] for c in labelled[0]["candidates"]] == [True] * 4
    assert [c["right"] for c in labelled[1]["candidates"]] == [False, True, False, False]
    assert [c["right"] for c in labelled[2]["candidates"]] == [True, False]
    assert [c["right"] for c in labelled[3]["candidates"]] == [False, False, True]
    # each stage's prefix: the texts chosen before it, as the model had them
    assert labelled[0]["prefix"] == []
    assert labelled[2]["prefix"] == [REFERENCE["SUMMARY"], wrong_caption]
    assert labelled[3]["prefix"][-1] == "Red: circle, circle = 2. So there are 2 red shapes."
    assert labelled[3]["chosen_index"] == 0

    shares = wrong_shares([{"stages": labelled}])
    assert shares["SUMMARY"] == {"candidates": 4, "wrong": 0, "stages": 1, "mixed": 0,
                                 "wrong_share": 0.0}
    assert shares["CAPTION"]["wrong"] == 3 and shares["CAPTION"]["mixed"] == 1
    assert shares["CONCLUSION"]["wrong_share"] == round(2 / 3, 4)


def test_resuming_skips_written_indices_and_a_torn_line(tmp_path):
    path = tmp_path / "round.jsonl"
    assert done_indices(path) == set()
    lines = [json.dumps({"index": i, "stages": []}) for i in (0, 3, 7)]
    path.write_text("\n".join(lines) + '\n{"index": 9, "sta')
    assert done_indices(path) == {0, 3, 7}
    assert [r["index"] for r in load([path])] == [0, 3, 7]


def test_the_request_asks_for_a_traced_logprob_search_with_the_image():
    example = dataset(0, 1, split="onpolicy")[0]
    body = request_body(example, 5, 0.8)
    assert body["beam_width"] == 4 and body["selector"] == "logprob"
    assert body["return_trace"] is True and body["temperature"] == 0.8
    assert body["stage_max_tokens"] == 96 and body["max_tokens"] == 512
    image, text = body["messages"][0]["content"]
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert text == {"type": "text", "text": example.question}


def test_final_results_of_each_reasoning_kind():
    assert final_result("Red: circle, square = 2. So there are 2 red shapes.") == "2"
    assert final_result("Red: none = 0. Blue: circle = 1. Blue is the most common.") == "blue"
    assert final_result("The left side is left of the right side.") == "yes"
    assert final_result("The right side is not left of the left side.") == "no"
    assert final_result("no numbers") is None


def test_a_reasoning_reaches_the_right_answer_by_its_result_other_stages_by_their_text():
    reference = "Red: circle, square = 2. So there are 2 red shapes."
    miscounted = "Red: circle, circle = 2. So there are 2 red shapes."
    assert reaches_right("REASONING", miscounted, reference)
    assert not is_right("REASONING", miscounted, reference)
    assert not reaches_right("REASONING", "Red: circle = 1. So there is 1 red shape.", reference)
    assert not reaches_right("REASONING", "   ", "")
    assert not reaches_right("CAPTION", "Top left: red circle.", "Top left: red square.")
    assert reaches_right("CONCLUSION", "2", "2")


def _ready_after(calls_before_ready):
    """A fake server (httpx.MockTransport, pure logic): refuses to connect once, then answers
    /ready 503 until `calls_before_ready` calls have been made, then 200."""
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.ConnectError("not listening yet", request=request)
        return httpx.Response(200 if len(calls) > calls_before_ready else 503)

    return calls, httpx.AsyncClient(transport=httpx.MockTransport(handler),
                                    base_url="http://server")


def test_sampling_waits_for_ready_through_refusals_and_503s():
    calls, client = _ready_after(3)
    asyncio.run(wait_ready(client, timeout=5, every=0))
    assert calls == ["/ready"] * 4


def test_waiting_for_ready_gives_up_after_the_timeout():
    calls, client = _ready_after(10**9)
    with pytest.raises(TimeoutError, match="not ready within"):
        asyncio.run(wait_ready(client, timeout=0.05, every=0.01))
    assert len(calls) > 1
