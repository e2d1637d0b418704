"""A quick held-out check of a freshly trained tiny model with transformers (no server):
greedy answers (accuracy, and whether the model writes the four stages well formed by itself),
judge accuracy (how often the judge prompt's "1"/"2" picks the right candidate), and the
verifier:

- written candidates: how often P("yes") > P("no") agrees with the label, on held-out verify
  examples (reference stages, misread, subtle and unrelated wrong ones), per stage and source;
- sampled candidates: a stage-level search on held-out questions as the server's `verify`
  selector runs it (sample `width` candidates of each stage, keep the one with the highest
  P("yes"), go on from it): the verdicts' accuracy on these on-policy candidates per stage, the
  "decisive pick" (among stages where some but not all candidates are right, how often the
  kept one is right, against the share of right candidates there, which a random pick gets),
  and the search's final accuracy.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from server.search.prompts import VERIFY_OPTIONS, PromptBuilder
from server.search.schema import LLAVA_COT, clean_stage_text
from server.search.trace import Candidate
from tinycot.examples import (
    TextExample,
    answer_example,
    chat_renderer,
    conversation,
    judge_example,
    stage_is_right,
    verdict_ids,
    verify_example,
    verify_item,
)
from tinycot.model import EOS
from tinycot.task import STAGE_TAGS, Example, held_out, is_correct

WELL_FORMED = re.compile("^" + r"\n\n".join(
    rf"<{t}>(?P<{t}>[^<]+)</{t}>" for t in STAGE_TAGS) + "$")
MAX_NEW_TOKENS = 200
SEARCH_QUESTIONS = 100  # held-out questions of the verify search (at most the check's n)
SEARCH_WIDTH = 4
SEARCH_TEMPERATURE = 0.6  # the server's default search temperature
STAGE_MAX_TOKENS = 96


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


def yes_probabilities(model: Any, processor: Any, items: list[TextExample], batch: int = 25
                      ) -> list[float]:
    """P("yes") of each verify prompt, renormalised over the two options (as the server's
    `verify` selector scores a candidate)."""
    import torch

    # each option's first token, as the server's engine adapter constrains the answer
    yes, no = verdict_ids(processor.tokenizer)
    out: list[float] = []
    for start in range(0, len(items), batch):
        inputs = _inputs(processor, items[start:start + batch])
        with torch.no_grad():
            logits = model(**inputs).logits[:, -1]
        out += torch.softmax(logits[:, [yes, no]].float(), dim=-1)[:, 0].tolist()
    return out


def _share(hits: list[bool]) -> float | None:
    return round(sum(hits) / len(hits), 4) if hits else None


def _agreement(rows: list[tuple[str, bool, float]]) -> dict[str, Any]:
    """(group, right, P(yes)) rows: per group the count, the share of right candidates, the
    verdicts' accuracy, and their accuracy on right and on wrong candidates apart."""
    groups: dict[str, list[tuple[bool, float]]] = {}
    for group, right, p in rows:
        groups.setdefault(group, []).append((right, p))
        groups.setdefault("all", []).append((right, p))
    return {g: {"n": len(v), "right_share": _share([r for r, _ in v]),
                "accuracy": _share([(p > 0.5) == r for r, p in v]),
                "yes_when_right": _share([p > 0.5 for r, p in v if r]),
                "no_when_wrong": _share([p <= 0.5 for r, p in v if not r])}
            for g, v in sorted(groups.items())}


def verify_written(model: Any, processor: Any, examples: list[Example], seed: int = 0,
                   per_question: int = 2) -> dict[str, Any]:
    """Verdicts on written held-out verify examples, per stage and per source."""
    render = chat_renderer(processor.tokenizer)
    rng = random.Random(f"check-verify:{seed}")
    items = [verify_example(e, rng, render) for e in examples for _ in range(per_question)]
    probabilities = yes_probabilities(model, processor, items)
    rows = [(i.kind.removeprefix("verify "), i.target == VERIFY_OPTIONS[0], p)
            for i, p in zip(items, probabilities, strict=True)]
    by_stage = [(kind.split()[0], right, p) for kind, right, p in rows]
    by_source = [(kind.split()[1], right, p) for kind, right, p in rows]
    return {"items": len(items), "accuracy": _agreement(rows)["all"]["accuracy"],
            "by_stage": _agreement(by_stage), "by_source": _agreement(by_source)}


def sample_stage(model: Any, processor: Any, prompts: list[TextExample], close_tag: str,
                 temperature: float, batch: int = 64) -> list[str]:
    """One sampled continuation of each prompt, up to the stage's closing tag."""
    import torch

    stop = [processor.tokenizer.convert_tokens_to_ids(t) for t in (close_tag, EOS)]
    texts: list[str] = []
    for start in range(0, len(prompts), batch):
        inputs = _inputs(processor, prompts[start:start + batch])
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=STAGE_MAX_TOKENS, do_sample=True,
                                 temperature=temperature, top_p=1.0, top_k=0,
                                 eos_token_id=stop, pad_token_id=processor.tokenizer.pad_token_id)
        new = out[:, inputs["input_ids"].shape[1]:]
        texts += processor.tokenizer.batch_decode(new, skip_special_tokens=True)
    return texts


def verify_search(model: Any, processor: Any, examples: list[Example], width: int = SEARCH_WIDTH,
                  temperature: float = SEARCH_TEMPERATURE, seed: int = 0) -> dict[str, Any]:
    """Stage-level search with the verifier on held-out questions (see the module's doc)."""
    import torch

    torch.manual_seed(seed)
    render: Callable[..., str] = chat_renderer(processor.tokenizer)
    prompts = PromptBuilder(render, LLAVA_COT)
    bases = [prompts.base(conversation(e)) for e in examples]
    chosen: list[list[str]] = [[] for _ in examples]
    rows: list[tuple[str, bool, float]] = []
    decisive: dict[str, list[bool]] = {}
    chance: dict[str, list[float]] = {}
    for stage in LLAVA_COT.stages:
        stage_prompts = []
        for e, base, done in zip(examples, bases, chosen, strict=True):
            prefix = [(LLAVA_COT.stages[i], Candidate(t, 0, 0.0, True))
                      for i, t in enumerate(done)]
            text = "".join(p for p in prompts.stage(base, prefix, stage) if isinstance(p, str))
            stage_prompts += [TextExample(text, "", e.image, ())] * width
        raw = sample_stage(model, processor, stage_prompts, stage.close_tag, temperature)
        texts = [clean_stage_text(stage, r)[0] for r in raw]
        verdicts = [verify_item(e, stage.tag, chosen[q], texts[q * width + k], render,
                                "verify sampled")
                    for q, e in enumerate(examples) for k in range(width)]
        probabilities = yes_probabilities(model, processor, verdicts)
        for q, e in enumerate(examples):
            reference = dict(e.stages)[stage.tag]
            group = range(q * width, (q + 1) * width)
            rights = [stage_is_right(stage.tag, texts[i], reference) for i in group]
            scores = [probabilities[i] for i in group]
            rows += [(stage.tag, r, p) for r, p in zip(rights, scores, strict=True)]
            pick = max(range(width), key=lambda k: scores[k])
            if any(rights) and not all(rights):
                decisive.setdefault(stage.tag, []).append(rights[pick])
                chance.setdefault(stage.tag, []).append(sum(rights) / width)
            chosen[q].append(texts[q * width + pick])
    correct = [is_correct(done[-1], e.conclusion) for done, e in zip(chosen, examples, strict=True)]
    all_decisive = [hit for hits in decisive.values() for hit in hits]
    all_chance = [c for cs in chance.values() for c in cs]
    return {
        "questions": len(examples), "width": width, "temperature": temperature,
        "accuracy": _share(correct),
        "verdicts": _agreement(rows),
        "decisive_pick": {
            "all": {"stages": len(all_decisive), "picked_right": _share(all_decisive),
                    "random_pick": round(sum(all_chance) / len(all_chance), 4)
                    if all_chance else None},
            **{tag: {"stages": len(hits), "picked_right": _share(hits),
                     "random_pick": round(sum(chance[tag]) / len(chance[tag]), 4)}
               for tag, hits in decisive.items()}},
    }


def check(model: Any, processor: Any, n: int, seed: int = 0) -> dict[str, Any]:
    render = chat_renderer(processor.tokenizer)
    examples = held_out(n, seed)
    answers = greedy_answers(model, processor,
                             [answer_example(e, render, EOS) for e in examples])
    formed = [WELL_FORMED.match(a.strip()) for a in answers]
    correct = [m is not None and is_correct(m["CONCLUSION"], e.conclusion)
               for m, e in zip(formed, examples, strict=True)]
    by_kind: dict[str, list[bool]] = {}
    formed_by_kind: dict[str, list[bool]] = {}
    for e, ok, m in zip(examples, correct, formed, strict=True):
        by_kind.setdefault(e.query.kind, []).append(ok)
        formed_by_kind.setdefault(e.query.kind, []).append(m is not None)
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
        "well_formed_by_kind": {k: round(sum(v) / len(v), 3)
                                for k, v in sorted(formed_by_kind.items())},
        "judge_accuracy": round(sum(p == j.target for p, j in zip(picks, judges, strict=True))
                                / n, 4),
        "judge_accuracy_by_kind": {k: f"{sum(v) / len(v):.2f} of {len(v)}"
                                   for k, v in sorted(judged.items())},
        "verify_written": verify_written(model, processor, examples, seed),
        "verify_search": verify_search(model, processor, examples[:SEARCH_QUESTIONS],
                                       seed=seed),
        "samples": [{"question": e.question, "expected": e.conclusion, "answer": a}
                    for e, a in zip(examples[:3], answers[:3], strict=True)],
    }
