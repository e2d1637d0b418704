"""A quick held-out check of a freshly trained tiny model with transformers (no server):
greedy answers (accuracy, and whether the model writes the four stages well formed by itself)
and judge accuracy (how often the judge prompt's "1"/"2" picks the right candidate)."""

from __future__ import annotations

import random
import re
from typing import Any

from server.shapes_data import STAGE_TAGS, held_out, is_correct
from server.tiny_model import EOS
from server.train_examples import (
    TextExample,
    answer_example,
    chat_renderer,
    judge_example,
)

WELL_FORMED = re.compile("^" + r"\n\n".join(
    rf"<{t}>(?P<{t}>[^<]+)</{t}>" for t in STAGE_TAGS) + "$")
MAX_NEW_TOKENS = 200


def _inputs(processor: Any, items: list[TextExample]) -> Any:
    processor.tokenizer.padding_side = "left"
    try:
        return processor(text=[i.prompt for i in items], images=[[i.image] for i in items],
                         return_tensors="pt", padding=True)
    finally:
        processor.tokenizer.padding_side = "right"


def greedy_answers(model: Any, processor: Any, items: list[TextExample], batch: int = 25
                   ) -> list[str]:
    import torch

    texts = []
    for start in range(0, len(items), batch):
        inputs = _inputs(processor, items[start:start + batch])
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts += processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts


def judge_picks(model: Any, processor: Any, items: list[TextExample], batch: int = 25
                ) -> list[str]:
    import torch

    one, two = (processor.tokenizer.convert_tokens_to_ids(t) for t in ("1", "2"))
    picks = []
    for start in range(0, len(items), batch):
        inputs = _inputs(processor, items[start:start + batch])
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1]
        picks += ["1" if a >= b else "2" for a, b in logits[:, [one, two]].tolist()]
    return picks


def check(model: Any, processor: Any, n: int, seed: int = 0) -> dict[str, Any]:
    render = chat_renderer(processor.tokenizer)
    examples = held_out(n, seed)
    answers = greedy_answers(model, processor,
                             [answer_example(e, render, EOS) for e in examples])
    formed = [WELL_FORMED.match(a.strip()) for a in answers]
    correct = [m is not None and is_correct(m["CONCLUSION"], e.conclusion)
               for m, e in zip(formed, examples, strict=True)]
    by_kind: dict[str, list[bool]] = {}
    for e, ok in zip(examples, correct, strict=True):
        by_kind.setdefault(e.query.kind, []).append(ok)
    rng = random.Random(f"check-judge:{seed}")
    judges = [judge_example(e, rng, render) for e in examples]
    picks = judge_picks(model, processor, judges)
    judged: dict[str, list[bool]] = {}
    for pick, judge in zip(picks, judges, strict=True):
        judged.setdefault(judge.kind, []).append(pick == judge.target)
    return {
        "questions": n,
        "greedy_accuracy": round(sum(correct) / n, 4),
        "well_formed": round(sum(bool(m) for m in formed) / n, 4),
        "accuracy_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())},
        "judge_accuracy": round(sum(p == j.target for p, j in zip(picks, judges, strict=True))
                                / n, 4),
        "judge_accuracy_by_kind": {k: f"{sum(v) / len(v):.2f} of {len(v)}"
                                   for k, v in sorted(judged.items())},
        "samples": [{"question": e.question, "expected": e.conclusion, "answer": a}
                    for e, a in zip(examples[:3], answers[:3], strict=True)],
    }
