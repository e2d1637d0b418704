"""Trains the tiny model to answer shape questions in stages, to judge candidates and to
verify them.

    python -m tinycot.train OUT_DIR [--minutes 15] [--seed 0] [--steps N]
                            [--onpolicy FILE.jsonl ...]

Same architecture family and tokenizer approach as `tinycot.model` (Idefics3 / SmolVLM,
byte-level BPE with the stage tags as single plain tokens, the same chat template and image
processor), a little larger, trained with plain PyTorch on the CPU on examples generated on the
fly by `tinycot.task`, laid out by `tinycot.examples`. The tokenizer is trained on generated
text, so nothing but the code is needed to rebuild it.

Four kinds of batches: answer batches (the four stages), judge batches (pairwise, `1`/`2`)
and, after the warm-up, verify batches (pointwise, `yes`/`no`: is this stage correct?) and
summary batches (the summariser's answer after a whole chain, right or wrong on purpose). With
`--onpolicy` (files written by `python -m tinycot.onpolicy`) about half of the verify
examples are candidates the model itself sampled, labelled against the reference.

Seeds fix the weights' initialisation and the data stream: a run that completes its `--steps`
(default 2000, about 35 minutes on two cores) is reproducible. `--minutes` caps the time;
the learning-rate schedule follows whichever of steps and clock is further along, so a run
cut short by a slow or busy machine still anneals, but then depends on the machine's speed.

Writes the model (`save_pretrained`: config, safetensors, tokenizer, processor, chat template)
and `training_curve.json` (loss per step, and a held-out check: see `tinycot.check`).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from server.search.schema import LLAVA_COT
from tinycot import model as tiny_model
from tinycot.model import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    corpus_text,
)

# 6 M parameters: the 2.5 M model (192 wide, 4 layers, 3 heads) saw the shapes (its perception
# probe reached zero loss) but miscounted them in its reasoning, even after a right caption.
# The shipped model's architecture (2.5 M parameters); a 6-layer, 256-wide variant (6 M) was
# tried but not trained to the end.
TEXT = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 64}  # vLLM CPU: 64
VISION = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 64, "patch_size": 16}
BATCH = 16
STEPS = 2000
JUDGE_SHARE = 0.1  # share of batches that are judge examples, once judging starts
VERIFY_SHARE = 0.35  # share of batches that are verify examples, once judging starts
JUDGE_START = 0.1  # share of the run with answer batches only (judging needs perception)
ONPOLICY_SHARE = 0.5  # share of verify examples drawn from the on-policy files, if any
SUMMARY_SHARE = 0.15  # share of batches that are summariser examples, once judging starts
KINDS = ("answer", "judge", "verify", "summary")
PERCEPTION_WEIGHT = 1.0  # auxiliary loss: each image token names its cell's shape
ERROR_WEIGHT = 1.0  # auxiliary loss: each judged candidate's token says if it has gone wrong
PEAK_LR, WARMUP_STEPS, FINAL_LR_SHARE = 2e-3, 30, 0.05
TOKENIZER_EXAMPLES = 3000
CURVE_FILE = "training_curve.json"


# ----------------------------------------------------------------------------- tokenizer


def tokenizer_corpus(seed: int) -> list[str]:
    """Questions, answers, judge and verify prompts like the ones the model will see (each
    prompt's answer on a line of its own, as it is tokenised apart from the prompt), plus the
    project's tiny corpus."""
    from tinycot.examples import judge_example, verify_example
    from tinycot.task import dataset

    def flat(messages: list[dict[str, Any]], template_kwargs: Any = None) -> str:
        return "\n".join(p.get("text", "") for m in messages for p in m["content"])

    rng = random.Random(f"tokenizer:{seed}")
    lines = corpus_text().splitlines()
    lines.append(LLAVA_COT.format_instruction)
    for example in dataset(seed, TOKENIZER_EXAMPLES, split="tokenizer"):
        lines += [example.question, *example.answer_text.splitlines()]
    for example in dataset(seed, 200, split="tokenizer-judge"):
        lines += judge_example(example, rng, flat).prompt.splitlines()
    for example in dataset(seed, 200, split="tokenizer-verify"):
        item = verify_example(example, rng, flat)
        lines += [*item.prompt.splitlines(), item.target]
    return lines


def build_tokenizer(out: Path, seed: int) -> Any:
    """The shared tiny-model tokenizer, trained on this task's questions, answers, judge and
    verify prompts. The judge's and the verifier's options are single tokens (the server's
    constrained choice needs them so)."""
    from server.search.prompts import JUDGE_OPTIONS, VERIFY_OPTIONS

    tokenizer = tiny_model.build_tokenizer(out, tokenizer_corpus(seed))
    for option in (*JUDGE_OPTIONS, *VERIFY_OPTIONS):
        ids = tokenizer.encode(option, add_special_tokens=False)
        assert len(ids) == 1, f"option {option!r} is not a single token: {ids}"
    return tokenizer


# ----------------------------------------------------------------------------- model


def build_model(tokenizer: Any, seed: int) -> Any:
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, LlamaConfig
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (BOS, EOS, PAD, "<image>")}
    torch.manual_seed(seed)
    text_config = LlamaConfig(
        vocab_size=len(tokenizer), max_position_embeddings=2048, bos_token_id=ids[BOS],
        eos_token_id=ids[EOS], pad_token_id=ids[PAD], tie_word_embeddings=False, **TEXT)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(**VISION).to_dict(),
        text_config=text_config.to_dict(), scale_factor=2, image_token_id=ids["<image>"],
        pad_token_id=ids[PAD], tie_word_embeddings=False)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids[EOS]
    model.generation_config.pad_token_id = ids[PAD]
    return model


def build_processor(tokenizer: Any) -> Any:
    from transformers import Idefics3ImageProcessorPil, Idefics3Processor

    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": 128}, max_image_size={"longest_edge": 64},
        do_image_splitting=True)
    return Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                             image_seq_len=4, chat_template=CHAT_TEMPLATE)


def grow(model: Any) -> Any:
    """Deepen a trained model's language model without changing what it computes: after each
    layer a copy of that layer is inserted whose output projections (attention
    `o_proj`, MLP `down_proj`) are zero, so it adds nothing to the residual stream until
    training moves them (function-preserving growth, as in Net2Net). The copies start from the
    trained layer's features, not from noise. Returns the model (changed in place)."""
    import copy

    import torch

    text = model.model.text_model
    layers = []
    for layer in text.layers:
        new = copy.deepcopy(layer)
        with torch.no_grad():
            new.self_attn.o_proj.weight.zero_()
            new.mlp.down_proj.weight.zero_()
        layers += [layer, new]
    for index, layer in enumerate(layers):
        layer.self_attn.layer_idx = index
    text.layers = torch.nn.ModuleList(layers)
    for config in (model.config.text_config, text.config):
        config.num_hidden_layers = len(layers)
    return model


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Mix:
    """Shares of the batch kinds: answer batches only for the first `answer_only_until` of the
    run, then verify and judge batches at these shares, answer batches for the rest."""

    verify: float = VERIFY_SHARE
    judge: float = JUDGE_SHARE
    answer_only_until: float = JUDGE_START
    summary: float = SUMMARY_SHARE
    onpolicy: float = ONPOLICY_SHARE  # of the verify examples, where on-policy files are given
    # share of batches of matched on-policy pairs: a right and a wrong candidate of the same
    # question after the same prefix, side by side (logged as verify batches)
    pairs: float = 0.0


class Batches:
    """An endless, seeded stream of batches: answer, judge and verify batches. Given the same
    seed and the same on-policy records, the same stream. `direct`: answer batches only, each
    the answer alone (a model that answers without stages)."""

    def __init__(self, processor: Any, seed: int | str, batch: int = BATCH,
                 onpolicy: Any = None, mix: Mix | None = None, direct: bool = False) -> None:
        from tinycot.examples import chat_renderer

        self.seed = seed
        self.direct = direct
        self.processor = processor
        self.render = chat_renderer(processor.tokenizer)
        self.data_rng = random.Random(f"train:{seed}")
        self.judge_rng = random.Random(f"train-judge:{seed}")
        self.verify_rng = random.Random(f"train-verify:{seed}")
        self.kind_rng = random.Random(f"train-kind:{seed}")
        self.batch = batch
        self.pad_id = processor.tokenizer.convert_tokens_to_ids(PAD)
        self.onpolicy = onpolicy if onpolicy else None  # an examples.OnPolicyPool
        self.mix = mix or Mix()

    def kind(self, progress: float) -> str:
        draw = self.kind_rng.random()
        if self.direct or progress < self.mix.answer_only_until:
            return "answer"
        for kind, share in (("verify", self.mix.verify), ("judge", self.mix.judge),
                            ("summary", self.mix.summary), ("pairs", self.mix.pairs)):
            if draw < share:
                return kind
            draw -= share
        return "answer"

    def verify_item(self) -> Any:
        from tinycot.examples import VERIFY_WEIGHTS, sampled_verify_example, verify_example
        from tinycot.task import make_example

        rng = self.verify_rng
        tag = rng.choices(list(VERIFY_WEIGHTS), weights=list(VERIFY_WEIGHTS.values()))[0]
        right = rng.random() < 0.5
        if self.onpolicy is not None and rng.random() < self.mix.onpolicy:
            sampled = self.onpolicy.draw(rng, tag, right)
            if sampled is not None:
                return sampled_verify_example(sampled, self.render)
        return verify_example(make_example(self.data_rng), rng, self.render, tag, right)

    def verify_pairs(self) -> list[Any]:
        """Half a batch of matched on-policy pairs (a right and a wrong candidate of one
        question after one prefix: what a selector must tell apart, which the question alone
        cannot), as verify examples; none where the pool has no such pairs."""
        from tinycot.examples import sampled_verify_example

        items: list[Any] = []
        while self.onpolicy is not None and len(items) + 2 <= self.batch:
            pair = self.onpolicy.draw_pair(self.verify_rng)
            if pair is None:
                return []
            items += [sampled_verify_example(sampled, self.render) for sampled in pair]
        return items

    def next(self, progress: float) -> tuple[str, dict[str, Any]]:
        return self.build(self.kind(progress))

    def build(self, kind: str) -> tuple[str, dict[str, Any]]:
        import torch

        from tinycot.examples import (
            answer_example,
            collate,
            encode,
            judge_example,
            summary_example,
        )
        from tinycot.task import make_example

        items = []
        if kind == "pairs":
            items = [encode(self.processor, item) for item in self.verify_pairs()]
            kind = "verify"  # logged as verify batches; a pool without pairs: plain ones
        pairs = torch.tensor(len(items) // 2)  # rows 2k (right), 2k + 1 (wrong), k < pairs
        while len(items) < self.batch:
            if kind == "verify":
                item = self.verify_item()
            elif kind == "judge":
                item = judge_example(make_example(self.data_rng), self.judge_rng, self.render)
            elif kind == "summary":
                item = summary_example(make_example(self.data_rng), self.judge_rng,
                                       self.render, EOS)
            else:
                item = answer_example(make_example(self.data_rng), self.render, EOS,
                                      self.direct)
            items.append(encode(self.processor, item))
        return kind, {**collate(items, self.pad_id), "pairs": pairs}


class ParallelBatches:
    """The batches of a whole run built ahead in worker processes (data generation, not the
    model, bounds a step on a GPU): the kinds follow the run's step-based progress, and batch
    `step` is built from its own seed (`<seed>:<step>`), so the stream depends on the seed and
    the step count, not on how many workers build it or how fast."""

    def __init__(self, batches: Batches, steps: int, workers: int) -> None:
        import multiprocessing

        self.kinds = iter(enumerate([batches.kind(step / steps) for step in range(steps)]))
        # spawned, not forked: a fork copies whatever locks another thread of this process
        # holds (torch's, a logger's) and can hang the worker; they only render and tokenise
        self.pool = multiprocessing.get_context("spawn").Pool(
            workers, initializer=_start_worker,
            initargs=(batches.processor, batches.seed, batches.batch, batches.onpolicy,
                      batches.mix, batches.direct))
        # a bounded window ahead: unbounded, the workers outrun the model and fill the memory
        self.ahead: collections.deque[Any] = collections.deque()
        for _ in range(4 * workers):
            self._submit()

    def _submit(self) -> None:
        step_kind = next(self.kinds, None)
        if step_kind is not None:
            self.ahead.append(self.pool.apply_async(_build, (step_kind,)))

    def next(self, progress: float) -> tuple[str, dict[str, Any]]:
        result = self.ahead.popleft().get()
        self._submit()
        return result

    def close(self) -> None:
        self.pool.terminate()


_WORKER: dict[str, tuple[Any, ...]] = {}  # in a worker of ParallelBatches: Batches' arguments


def _start_worker(processor: Any, seed: int | str, batch: int, onpolicy: Any, mix: Mix,
                  direct: bool) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["args"] = (processor, seed, batch, onpolicy, mix, direct)


def _build(step_kind: tuple[int, str]) -> tuple[str, dict[str, Any]]:
    step, kind = step_kind
    processor, seed, batch, onpolicy, mix, direct = _WORKER["args"]
    return Batches(processor, f"{seed}:{step}", batch, onpolicy, mix, direct).build(kind)


def learning_rate(step: int, progress: float, peak: float = PEAK_LR) -> float:
    if step < WARMUP_STEPS:
        return peak * (step + 1) / WARMUP_STEPS
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return peak * (FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * cosine)


def ranking_loss(logits: Any, labels: Any, pairs: int, verdict_ids: tuple[int, int]
                 ) -> tuple[Any, float]:
    """The pairwise (Bradley-Terry) loss of a batch whose rows 2k and 2k + 1, k < `pairs`, are
    a right and a wrong candidate of one question: each row's score is its verdict's logit
    margin, logit(yes) - logit(no), where the verdict is predicted (the position before its
    first label); the loss is -log sigmoid(right's score - wrong's). What a selector needs,
    which two independent yes/no losses only imply. Also the share of pairs ranked right."""
    import torch
    import torch.nn.functional as F

    from tinycot.examples import IGNORE

    rows = labels[:2 * pairs]
    before = (rows != IGNORE).int().argmax(dim=1) - 1
    at = logits[torch.arange(len(rows)), before]
    yes, no = verdict_ids
    score = at[:, yes] - at[:, no]
    margin = score[0::2] - score[1::2]
    return F.softplus(-margin).mean(), (margin > 0).float().mean().item()


def train(model: Any, batches: Batches | ParallelBatches, minutes: float, steps: int,
          log_every: int = 10, peak_lr: float = PEAK_LR, device: str = "cpu",
          ranking: float = 0.0, verdict_ids: tuple[int, int] = (0, 0)
          ) -> list[dict[str, Any]]:
    """`ranking`: weight of the pairwise loss on pair batches (`ranking_loss`, on the
    `verdict_ids` yes and no tokens) beside each row's own token loss."""
    import torch

    from tinycot.probes import ErrorProbe, PerceptionProbe

    probe, errors_probe = PerceptionProbe(model), ErrorProbe(model)
    for module in (model, probe.head, errors_probe.head):
        module.to(device)
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *probe.head.parameters(), *errors_probe.head.parameters()],
        lr=peak_lr, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    curve: list[dict[str, Any]] = []
    started = time.monotonic()
    step = 0
    while True:
        elapsed = time.monotonic() - started
        progress = max(step / steps, elapsed / (minutes * 60))
        if progress >= 1:
            break
        lr = learning_rate(step, progress, peak_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        kind, batch = batches.next(progress)
        pairs = int(batch.pop("pairs", 0))
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
        cells, errors = batch.pop("cells"), batch.pop("errors")
        out = model(**batch)
        loss = out.loss
        seen, noticed = probe.loss(cells), errors_probe.loss(errors)
        total = loss + PERCEPTION_WEIGHT * seen + ERROR_WEIGHT * noticed
        ranked: dict[str, float] = {}
        if ranking and pairs:
            rank_loss, ranked_right = ranking_loss(out.logits, batch["labels"], pairs,
                                                   verdict_ids)
            total = total + ranking * rank_loss
            ranked = {"rank_loss": round(rank_loss.item(), 4),
                      "ranked_right": round(ranked_right, 4)}
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        curve.append({"step": step, "kind": kind, "loss": round(loss.item(), 4),
                      "perception_loss": round(seen.item(), 4),
                      "error_loss": round(noticed.item(), 4), "lr": round(lr, 6),
                      "seconds": round(time.monotonic() - started, 1), **ranked})
        if step % log_every == 0:
            recent = curve[-log_every:]
            kinds = "  ".join(f"{kind} {_mean(recent, 'loss', kind)}" for kind in KINDS)
            ranks = [r for r in recent if "rank_loss" in r]
            print(f"step {step:5d}  {curve[-1]['seconds']:7.1f}s  lr {lr:.2e}  {kinds}  "
                  f"perception {_mean(recent, 'perception_loss')}  "
                  f"errors {_mean(recent, 'error_loss', 'judge', 'verify')}"
                  + (f"  ranking {_mean(ranks, 'rank_loss')} ({_mean(ranks, 'ranked_right')} "
                     "ranked right)" if ranks else ""), flush=True)
    model.eval().to("cpu")
    return curve


def _mean(rows: list[dict[str, Any]], key: str, *kinds: str) -> str:
    values = [r[key] for r in rows if not kinds or r["kind"] in kinds]
    return f"{sum(values) / len(values):.3f}" if values else "  -  "


def curve_summary(curve: list[dict[str, Any]], parts: int = 10) -> list[dict[str, Any]]:
    """Mean loss of each kind of batch over each tenth of the run; where the ranking loss was
    on, its mean and the share of pairs ranked right."""
    rows = []
    size = max(1, math.ceil(len(curve) / parts))
    for start in range(0, len(curve), size):
        chunk = curve[start:start + size]
        row: dict[str, Any] = {"steps": f"{chunk[0]['step']}-{chunk[-1]['step']}"}
        for kind in KINDS:
            losses = [r["loss"] for r in chunk if r["kind"] == kind]
            row[kind] = round(sum(losses) / len(losses), 4) if losses else None
        ranked = [r for r in chunk if "rank_loss" in r]
        if ranked:  # pair batches under the ranking loss
            for key, name in (("rank_loss", "ranking"), ("ranked_right", "ranked_right")):
                row[name] = round(sum(r[key] for r in ranked) / len(ranked), 4)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tinycot.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--minutes", type=float, default=40.0, help="most training time")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", type=int, default=200,
                        help="held-out questions to check after training (0: none)")
    parser.add_argument("--init", metavar="MODEL_DIR", help="start from this trained model "
                        "(its weights and tokenizer) instead of building a new one")
    parser.add_argument("--verify-share", type=float, default=VERIFY_SHARE)
    parser.add_argument("--judge-share", type=float, default=JUDGE_SHARE)
    parser.add_argument("--summary-share", type=float, default=SUMMARY_SHARE,
                        help="share of summariser batches (default: %(default)s)")
    parser.add_argument("--answer-only-until", type=float, default=JUDGE_START,
                        help="share of the run with answer batches only")
    parser.add_argument("--peak-lr", type=float, default=PEAK_LR)
    parser.add_argument("--direct", action="store_true",
                        help="train a model that answers directly (the answer alone, no "
                             "stages, no judge or verify batches): the comparison's baseline")
    parser.add_argument("--device", default="cpu", help="torch device (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=0,
                        help="build batches in this many worker processes (for a GPU, where "
                             "data generation bounds a step); the stream is then seeded per "
                             "step (default: %(default)s: in this process)")
    parser.add_argument("--onpolicy-share", type=float, default=ONPOLICY_SHARE,
                        help="share of verify examples drawn from the --onpolicy files "
                             "(default: %(default)s)")
    parser.add_argument("--pair-share", type=float, default=0.0,
                        help="share of batches of matched on-policy pairs: a right and a wrong "
                             "candidate of the same question (default: %(default)s)")
    parser.add_argument("--ranking", type=float, default=0.0, metavar="WEIGHT",
                        help="weight of a pairwise (Bradley-Terry) loss on the pair batches: "
                             "the right candidate's yes-no margin above the wrong one's "
                             "(default: %(default)s: none)")
    parser.add_argument("--outcome-labels", action="store_true",
                        help="label the on-policy REASONING candidates by the result they "
                             "reach, not by their text (what a selector's choice is judged by)")
    parser.add_argument("--grow", action="store_true",
                        help="with --init: insert a zero-output copy after each language-model "
                             "layer (twice the depth, the same function to start with)")
    parser.add_argument("--onpolicy", action="append", default=[], metavar="FILE.jsonl",
                        help="candidates the model sampled (python -m tinycot.onpolicy), for "
                        "verify examples; may be given more than once")
    args = parser.parse_args(argv)

    # Threads that sleep rather than spin while they wait: on a busy machine spinning OpenMP
    # threads made training four times slower; on an idle one sleeping costs about 15 %.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from tinycot.examples import verdict_ids

    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pool = None
    if args.onpolicy:
        from tinycot.examples import OnPolicyPool
        from tinycot.onpolicy import load

        pool = OnPolicyPool(load(args.onpolicy), outcome=args.outcome_labels)
        print(f"on-policy candidates from {', '.join(args.onpolicy)}: {pool.counts()}",
              flush=True)
    if args.init:
        from transformers import AutoProcessor, Idefics3ForConditionalGeneration

        torch.manual_seed(args.seed)
        processor = AutoProcessor.from_pretrained(args.init)
        model = Idefics3ForConditionalGeneration.from_pretrained(args.init,
                                                                 torch_dtype=torch.float32)
        tokenizer = processor.tokenizer
        if args.grow:
            grow(model)
    else:
        tokenizer = build_tokenizer(out, args.seed)
        processor = build_processor(tokenizer)
        model = build_model(tokenizer, args.seed)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}", flush=True)
    mix = Mix(args.verify_share, args.judge_share, args.answer_only_until,
              args.summary_share, args.onpolicy_share, args.pair_share)
    batches = Batches(processor, args.seed, onpolicy=pool, mix=mix, direct=args.direct)
    stream = ParallelBatches(batches, args.steps, args.workers) if args.workers else batches
    try:
        curve = train(model, stream, args.minutes, args.steps, peak_lr=args.peak_lr,
                      device=args.device, ranking=args.ranking,
                      verdict_ids=verdict_ids(tokenizer))
    finally:
        if isinstance(stream, ParallelBatches):
            stream.close()

    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    summary = curve_summary(curve)
    record: dict[str, Any] = {"seed": args.seed, "steps": len(curve),
                              "seconds": curve[-1]["seconds"] if curve else 0,
                              "parameters": params, "batch": BATCH, "summary": summary,
                              "shares": {**asdict(mix),
                                         "onpolicy": mix.onpolicy if pool else 0.0},
                              "init": args.init, "peak_lr": args.peak_lr,
                              "ranking": args.ranking,
                              "direct": args.direct, "device": args.device,
                              "workers": args.workers,
                              "onpolicy": {"files": args.onpolicy,
                                           "outcome_labels": args.outcome_labels,
                                           "candidates": pool.counts() if pool else {}},
                              "curve": curve}
    (out / CURVE_FILE).write_text(json.dumps(record, indent=1))  # kept if the check fails
    if args.check:
        from tinycot.check import check

        model.to(torch.float32)
        record["check"] = check(model, processor, args.check)
        (out / CURVE_FILE).write_text(json.dumps(record, indent=1))
    (out / "cot_server_model.json").write_text(json.dumps(
        {"built_by": "python -m tinycot.train", "seed": args.seed, "stage_mode": "native",
         **({"answers": "direct: the answer alone, no stages"} if args.direct else {})}))
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}, indent=1))


if __name__ == "__main__":
    main()
