"""Does the model know which of its own candidates is right? A linear read-out of its features.

    python -m tinycot readout --train round-a.jsonl --test round-b.jsonl [--model DIR]
                              [--stage REASONING] [--limit 3000]

For every on-policy candidate of a stage (files written by `python -m tinycot.onpolicy`, two
different seeds: one to fit on, one to test on), the verify prompt the server asks about it is
run through the model (transformers, no server) and the last token's hidden state is taken at
every layer. A logistic probe fitted on one file's candidates then scores the other file's.
Two figures per layer, beside the same figures for the model's own verdict (P("yes") over
P("no") at that token, what the `verify` selector reads):

- *AUC*: how well the score ranks right above wrong candidates over all questions. A question's
  kind and difficulty alone earn much of it (some kinds are mostly wrong), which tells nothing
  about which candidate to keep;
- *pairs*: among candidates of the same question after the same prefix, one right and one
  wrong, how often the right one scores higher. This is what a selector needs (50 %: a coin).

Labels are the stage's text against the reference (`tinycot.onpolicy.is_right`) or, with
`--outcome`, whether the stage leads to the right final answer (`reaches_right`: its last
number, colour, or left-or-not is the reference's).
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tinycot.onpolicy import reaches_right

DEFAULT_MODEL = "models/tiny-cot"
L2 = 1e-2  # the probe's weight penalty


@dataclass(frozen=True)
class Readout:
    """Scores of one stage's test candidates: per layer the probe's, and the model's own."""

    labels: list[bool]
    groups: list[int]  # candidates of the same question after the same prefix share a group
    own: list[float]  # log P(yes) - log P(no)
    layers: list[list[float]]  # probe scores, per layer


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The probability that a right candidate scores above a wrong one (ties count half);
    NaN without both kinds."""
    right = [s for s, y in zip(scores, labels, strict=True) if y]
    wrong = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not right or not wrong:
        return float("nan")
    wins = sum(1.0 if r > w else 0.5 if r == w else 0.0 for r in right for w in wrong)
    return wins / (len(right) * len(wrong))


def pair_accuracy(scores: Sequence[float], labels: Sequence[bool], groups: Sequence[int]
                  ) -> tuple[float, int]:
    """(share, pairs): among pairs of one right and one wrong candidate of the same group, the
    share where the right one scores higher (ties count half)."""
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    wins = pairs = 0.0
    for indices in members.values():
        right = [scores[i] for i in indices if labels[i]]
        wrong = [scores[i] for i in indices if not labels[i]]
        for r in right:
            for w in wrong:
                pairs += 1
                wins += 1.0 if r > w else 0.5 if r == w else 0.0
    return (wins / pairs if pairs else float("nan")), int(pairs)


def fit_probe(train: Any, labels: Any) -> Any:
    """A logistic probe (standardised inputs, L2 penalty, L-BFGS); returns a function from
    features to scores (logits)."""
    import torch

    mean, std = train.mean(0), train.std(0) + 1e-6
    x = (train - mean) / std
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=200)

    def closure() -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, labels)
        loss = loss + L2 * (weight * weight).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    weight, bias = weight.detach(), bias.detach()
    return lambda features: ((features - mean) / std) @ weight + bias


def candidates(paths: Sequence[str], stage: str, limit: int, seed: int) -> list[Any]:
    """The distinct on-policy candidates of `stage` in the files (tinycot.examples'
    SampledStage), right and wrong, shuffled, at most `limit`."""
    from tinycot.examples import OnPolicyPool
    from tinycot.onpolicy import load

    pool = OnPolicyPool(load(paths))
    items = pool.items.get((stage, True), []) + pool.items.get((stage, False), [])
    random.Random(seed).shuffle(items)
    return items[:limit]


def features(model: Any, processor: Any, items: Sequence[Any]) -> tuple[Any, list[float]]:
    """(hidden states of the verify prompt's last token, layers x items x width; the model's
    own log P(yes) - log P(no) there) for each candidate."""
    import torch

    from tinycot.examples import (
        IGNORE,
        chat_renderer,
        encode,
        sampled_verify_example,
        verdict_ids,
    )

    render = chat_renderer(processor.tokenizer)
    yes, no = verdict_ids(processor.tokenizer)
    states, own = [], []
    with torch.no_grad():
        for item in items:
            encoded = encode(processor, sampled_verify_example(item, render))
            # the prompt alone: the verdict (the only labelled tokens, at the end) left off
            target = sum(label != IGNORE for label in encoded["labels"])
            ids = encoded["input_ids"][:len(encoded["input_ids"]) - target]
            extra = ({"pixel_attention_mask": encoded["pixel_attention_mask"].unsqueeze(0)}
                     if encoded.get("pixel_attention_mask") is not None else {})
            out = model(input_ids=torch.tensor([ids]),
                        pixel_values=encoded["pixel_values"].unsqueeze(0),
                        output_hidden_states=True, **extra)
            states.append(torch.stack([h[0, -1] for h in out.hidden_states]))
            logits = out.logits[0, -1]
            own.append((logits[yes] - logits[no]).item())
    return torch.stack(states).transpose(0, 1), own


def labelled(items: Sequence[Any], outcome: bool) -> tuple[list[bool], list[int]]:
    labels: list[bool] = []
    groups: list[int] = []
    ids: dict[tuple[int, tuple[str, ...]], int] = {}
    for item in items:
        if outcome:
            labels.append(reaches_right(item.tag, item.text, dict(item.example.stages)[item.tag]))
        else:
            labels.append(bool(item.right))
        key = (id(item.example), item.prefix)
        groups.append(ids.setdefault(key, len(ids)))
    return labels, groups


def read_out(model_dir: str, train_paths: Sequence[str], test_paths: Sequence[str], stage: str,
             limit: int, outcome: bool) -> tuple[Readout, int]:
    """The test candidates' scores: the model's own and each layer's probe (fitted on the train
    candidates); and how many train candidates there were."""
    import torch
    from transformers import AutoProcessor, Idefics3ForConditionalGeneration

    processor = AutoProcessor.from_pretrained(model_dir)
    model = Idefics3ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    train_items = candidates(train_paths, stage, limit, seed=0)
    test_items = candidates(test_paths, stage, limit, seed=1)
    train_x, _ = features(model, processor, train_items)
    test_x, own = features(model, processor, test_items)
    train_y, _ = labelled(train_items, outcome)
    test_y, groups = labelled(test_items, outcome)
    target = torch.tensor(train_y, dtype=torch.float32)
    layers = []
    for layer in range(1, train_x.shape[0]):  # 0: the embedding of the same last token
        probe = fit_probe(train_x[layer], target)
        layers.append(probe(test_x[layer]).tolist())
    return Readout(test_y, groups, own, layers), len(train_items)


def table(readout: Readout) -> str:
    def row(name: str, scores: Sequence[float]) -> str:
        share, pairs = pair_accuracy(scores, readout.labels, readout.groups)
        return f"| {name} | {auc(scores, readout.labels):.3f} | {share:.1%} ({pairs}) |"

    lines = ["| score | AUC, all questions | right above wrong, same question (pairs) |",
             "|---|---|---|", row("the model's own P(yes)", readout.own)]
    lines += [row(f"probe on layer {i}", scores) for i, scores in enumerate(readout.layers, 1)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinycot readout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--train", action="append", required=True, metavar="FILE.jsonl",
                        help="on-policy candidates to fit the probes on (repeatable)")
    parser.add_argument("--test", action="append", required=True, metavar="FILE.jsonl",
                        help="on-policy candidates of other questions to score (repeatable)")
    parser.add_argument("--stage", default="REASONING")
    parser.add_argument("--limit", type=int, default=3000,
                        help="most candidates taken from each side (default: %(default)s)")
    parser.add_argument("--outcome", action="store_true",
                        help="label a candidate by the final result it leads to, not its text")
    args = parser.parse_args(argv)
    readout, fitted = read_out(args.model, args.train, args.test, args.stage, args.limit,
                               args.outcome)
    right = sum(readout.labels)
    print(f"{args.stage} candidates: probes fitted on {fitted}, scored on {len(readout.labels)} "
          f"({right} right) of other questions; labels: "
          f"{'the final result' if args.outcome else 'the text'}\n")
    print(table(readout))


if __name__ == "__main__":
    main()
