"""Verify examples: the server's verify prompt on the candidate's own transcript, labels from the
reference, about half right, the stages weighted; on-policy candidates after the prefix the
model had; the batch mix of training."""

import random
import re
from collections import Counter
from types import SimpleNamespace

import pytest

from server.search.prompts import VERIFY_OPTIONS
from tinycot.examples import (
    VERIFY_WEIGHTS,
    OnPolicyPool,
    sampled_verify_example,
    verify_example,
    verify_item,
)
from tinycot.task import STAGE_TAGS, dataset, tagged


def render(messages, template_kwargs=None):
    parts = [p.get("text", "<image>") for m in messages for p in m["content"]]
    return "User:" + "".join(parts) + "<end_of_utterance>\nAssistant:"


def _question(tag: str) -> str:
    return f"Is the {tag} stage above correct? Reply yes or no: "


def _split(item):
    """(stage tag, candidate text, the transcript's stages before it) of a verify prompt; checks
    that a stage after the CAPTION quotes the transcript's caption again, and no other does."""
    head, _, question = item.prompt.rpartition("\n\n[Verify] ")
    tag = question.split("Is the ")[1].split()[0]
    assert item.prompt.endswith(_question(tag))
    transcript = head.split("Assistant:", 1)[1]
    stages = [s for s in transcript.split("\n\n") if s]
    *before, last = stages
    assert last.startswith(f"<{tag}>") and last.endswith(f"</{tag}>")
    quoted = question.removesuffix(_question(tag))
    if STAGE_TAGS.index(tag) > STAGE_TAGS.index("CAPTION"):
        assert quoted == f"Again: {before[1]}\n"
    else:
        assert quoted == ""
    return tag, last[len(tag) + 2:-len(tag) - 3], before


def test_verify_prompts_are_the_candidates_transcript_and_labels_follow_the_reference():
    rng = random.Random(0)
    examples = dataset(0, 400, split="test-verify")
    items = [verify_example(e, rng, render) for e in examples]
    tags = Counter()
    for example, item in zip(examples, items, strict=True):
        tag, text, before = _split(item)
        tags[tag] += 1
        reference = dict(example.stages)
        assert item.kind.startswith(f"verify {tag} ")
        assert item.target in VERIFY_OPTIONS
        right = text == reference[tag]
        assert item.target == ("yes" if right else "no"), (item.kind, text, reference[tag])
        source = item.kind.split()[-1]
        assert (source in ("reference", "after-misread")) == right
        index = STAGE_TAGS.index(tag)
        assert len(before) == index
        if source in ("reference", "subtle", "unrelated"):  # after the reference stages
            assert before == tagged(example.stages[:index]).split("\n\n")[:index]
        if source == "after-misread":  # the right stage after a misread one
            assert before != tagged(example.stages[:index]).split("\n\n")[:index]
    share = sum(i.target == "yes" for i in items) / len(items)
    assert 0.4 < share < 0.6
    # the reasoning is checked most, the summary least (VERIFY_WEIGHTS)
    assert tags["REASONING"] > max(tags["CAPTION"], tags["CONCLUSION"])
    assert min(tags["CAPTION"], tags["CONCLUSION"]) > tags["SUMMARY"]
    assert {i.kind.split()[-1] for i in items} == {"reference", "after-misread", "subtle",
                                                    "unrelated", "misread"}


def test_stage_and_label_can_be_asked_for():
    rng = random.Random(1)
    for example in dataset(1, 40, split="test-verify"):
        for tag in VERIFY_WEIGHTS:
            for right in (True, False):
                item = verify_example(example, rng, render, tag, right)
                assert _split(item)[0] == tag
                assert item.target == ("yes" if right else "no")


def test_error_spans_mark_where_a_wrong_stage_departs_from_the_reference():
    example = dataset(2, 1, split="test-verify")[0]
    reference = dict(example.stages)
    wrong = reference["CAPTION"].replace(":", " -", 1)  # departs at the first colon
    item = verify_item(example, "REASONING", [reference["SUMMARY"], wrong],
                       reference["REASONING"], render, "verify REASONING onpolicy")
    assert item.target == "yes"
    marked = [(item.prompt[start:end], label) for start, end, label in item.spans]
    assert marked[0] == (reference["SUMMARY"] + "</SUMMARY>", 0)
    departs = wrong.index(" -")
    assert marked[1] == (wrong[:departs], 0)
    assert marked[2] == (wrong[departs:] + "</CAPTION>", 1)
    assert marked[3] == (reference["REASONING"] + "</REASONING>", 0)
    # a conclusion is right by its answer, whatever else it says
    item = verify_item(example, "CONCLUSION", [t for _, t in example.stages[:3]],
                       f" {reference['CONCLUSION']}.", render, "verify CONCLUSION onpolicy")
    assert item.target == "yes" and item.spans[-1][2] == 0


def _record(index, example, candidates_by_stage, split="onpolicy", seed=0):
    stages, prefix = [], []
    for (tag, text), candidates in zip(example.stages, candidates_by_stage, strict=True):
        stages.append({"tag": tag, "prefix": list(prefix), "chosen_index": 0,
                       "candidates": [{"text": c, "right": None} for c in candidates]})
        prefix.append(candidates[0] if candidates else text)
    return {"split": split, "seed": seed, "index": index,
            "reference": [list(s) for s in example.stages], "stages": stages}


def test_on_policy_candidates_are_regenerated_labelled_and_kept_once_per_stage():
    examples = dataset(0, 3, split="onpolicy")
    example = examples[2]
    ref = [t for _, t in example.stages]
    wrong_caption = ref[1].replace("Top left", "Top  left", 1).replace(".", ",", 1)
    record = _record(2, example, [[ref[0]] * 4, [wrong_caption, ref[1], ref[1].upper(), ""],
                                  ["x = 9.", "x = 9."], ["9", "9", ref[3]]])
    pool = OnPolicyPool([record])
    counts = pool.counts()
    assert counts["SUMMARY right"] == 1  # four times the same text: once
    assert counts["CAPTION right"] == 2 and counts["CAPTION wrong"] == 1  # empty dropped
    assert counts["REASONING wrong"] == 1 and "REASONING right" not in counts
    assert counts["CONCLUSION wrong"] == 1 and counts["CONCLUSION right"] == 1
    rng = random.Random(0)
    assert pool.draw(rng, "REASONING", True) is None
    sampled = pool.draw(rng, "REASONING", False)
    assert sampled.prefix == (ref[0], wrong_caption) and sampled.example.question == (
        example.question)
    item = sampled_verify_example(sampled, render)
    assert item.target == "no" and item.kind == "verify REASONING onpolicy"
    tag, text, before = _split(item)
    assert (tag, text) == ("REASONING", "x = 9.")
    assert before == [f"<SUMMARY>{ref[0]}</SUMMARY>", f"<CAPTION>{wrong_caption}</CAPTION>"]
    # matched pairs: only the stages with right and wrong candidates (CAPTION, CONCLUSION)
    assert sorted(right[0].tag for right, _ in pool.mixed) == ["CAPTION", "CONCLUSION"]
    for _ in range(10):
        right, wrong = pool.draw_pair(rng)
        assert right.right and not wrong.right
        assert (right.tag, right.prefix, right.example) == (wrong.tag, wrong.prefix,
                                                            wrong.example)
    assert OnPolicyPool([]).draw_pair(rng) is None


def test_outcome_labels_count_a_reasoning_by_the_result_it_reaches():
    example = next(e for e in dataset(0, 20, split="onpolicy")
                   if re.search(r"\d+", dict(e.stages)["REASONING"]))
    ref = [t for _, t in example.stages]
    lucky = "Nothing counted. " + ref[2]  # other steps, the same result
    off = re.sub(r"\d+(?=\D*$)", "99", ref[2])  # the last number changed
    record = _record(0, example, [[ref[0]], [ref[1]], [lucky, off], [ref[3]]])
    by_text, by_outcome = OnPolicyPool([record]), OnPolicyPool([record], outcome=True)
    assert by_text.counts()["REASONING wrong"] == 2 and not by_text.mixed
    assert by_outcome.counts()["REASONING right"] == by_outcome.counts()["REASONING wrong"] == 1
    right, wrong = by_outcome.draw_pair(random.Random(0))
    assert (right.text, wrong.text) == (lucky, off)
    # the verify example's target follows the pool's label
    assert sampled_verify_example(right, render).target == "yes"
    assert sampled_verify_example(wrong, render).target == "no"
    assert sampled_verify_example(by_text.draw(random.Random(0), "REASONING", False),
                                  render).target == "no"


def test_on_policy_records_must_match_their_examples_and_never_be_held_out():
    example = dataset(0, 1, split="onpolicy")[0]
    candidates = [[t] for _, t in example.stages]
    with pytest.raises(ValueError, match="held-out"):
        OnPolicyPool([_record(0, example, candidates, split="held-out")])
    with pytest.raises(ValueError, match="does not match"):
        OnPolicyPool([_record(0, example, candidates, seed=1)])


def test_batches_mix_answers_then_verify_and_judge_by_the_shares():
    from tinycot import train

    tokenizer = SimpleNamespace(convert_tokens_to_ids=lambda t: 1, apply_chat_template=None)
    progress = [0.05] * 200 + [0.5] * 4000
    kinds = [train.Batches(SimpleNamespace(tokenizer=tokenizer), seed=0) for _ in range(2)]
    first, again = ([b.kind(p) for p in progress] for b in kinds)
    assert first == again  # the seed fixes the mix
    assert set(first[:200]) == {"answer"}
    shares = Counter(first[200:])
    assert abs(shares["verify"] / 4000 - train.VERIFY_SHARE) < 0.03
    assert abs(shares["judge"] / 4000 - train.JUDGE_SHARE) < 0.03


def test_direct_batches_are_answers_alone():
    from tinycot import train
    from tinycot.examples import answer_example
    from tinycot.task import dataset

    tokenizer = SimpleNamespace(convert_tokens_to_ids=lambda t: 1, apply_chat_template=None)
    direct = train.Batches(SimpleNamespace(tokenizer=tokenizer), seed=0, direct=True)
    assert {direct.kind(p) for p in (0.0, 0.5, 0.99) for _ in range(50)} == {"answer"}
    example = dataset(0, 1)[0]
    staged = answer_example(example, lambda *a, **k: "prompt", "<eos>")
    alone = answer_example(example, lambda *a, **k: "prompt", "<eos>", direct=True)
    assert alone.target == example.conclusion + "<eos>" and alone.prompt == staged.prompt
    assert staged.target == example.answer_text + "<eos>"


def test_parallel_batches_do_not_depend_on_the_number_of_workers(tiny_model_dir):
    """Batch `step` is built from its own seed, in whichever worker."""
    from transformers import AutoProcessor

    from tinycot import train

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    streams = []
    for workers in (1, 2):
        parallel = train.ParallelBatches(train.Batches(processor, seed=3, batch=2), 4, workers)
        try:
            streams.append([parallel.next(0.0) for _ in range(4)])
        finally:
            parallel.close()
    def same(x, y) -> bool:
        return x.shape == y.shape and bool((x == y).all())

    for (kind_a, a), (kind_b, b) in zip(*streams, strict=True):
        assert kind_a == kind_b and a.keys() == b.keys()
        assert all(same(a[key], b[key]) for key in a)
    first, second = streams[0][0][1], streams[0][1][1]
    assert not same(first["input_ids"], second["input_ids"])  # each step has its own examples
