"""Trains the tiny model to answer shape questions in stages and to judge candidates.

    python -m server.train_tiny OUT_DIR [--minutes 15] [--seed 0] [--steps N]

Same architecture family and tokenizer approach as `server/tiny_model.py` (Idefics3 / SmolVLM,
byte-level BPE with the stage tags as single plain tokens, the same chat template and image
processor), a little larger, trained with plain PyTorch on the CPU on examples generated on the
fly by `server/shapes_data.py`, laid out by `server/train_examples.py`. The tokenizer is trained
on generated text, so nothing but the code is needed to rebuild it.

Seeds fix the weights' initialisation and the data stream: a run that completes its `--steps`
(default 1000, about 15 minutes on two cores) is reproducible. `--minutes` caps the time;
the learning-rate schedule follows whichever of steps and clock is further along, so a run
cut short by a slow or busy machine still anneals, but then depends on the machine's speed.

Writes the model (`save_pretrained`: config, safetensors, tokenizer, processor, chat template)
and `training_curve.json` (loss per step, and a held-out check: see `server/train_check.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from server import tiny_model
from server.search.schema import LLAVA_COT
from server.tiny_model import (
    BOS,
    CHAT_TEMPLATE,
    EOS,
    PAD,
    corpus_text,
)

TEXT = {"hidden_size": 192, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 64}  # vLLM CPU: 64
VISION = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 64, "patch_size": 16}
BATCH = 16
STEPS = 1000
JUDGE_SHARE = 0.4  # share of batches that are judge examples, once judging starts
JUDGE_START = 0.1  # share of the run with answer batches only (judging needs perception)
PERCEPTION_WEIGHT = 1.0  # auxiliary loss: each image token names its cell's shape
ERROR_WEIGHT = 1.0  # auxiliary loss: each judged candidate's token says if it has gone wrong
PEAK_LR, WARMUP_STEPS, FINAL_LR_SHARE = 2e-3, 30, 0.05
TOKENIZER_EXAMPLES = 3000
CURVE_FILE = "training_curve.json"


# ----------------------------------------------------------------------------- tokenizer


def tokenizer_corpus(seed: int) -> list[str]:
    """Questions, answers and judge prompts like the ones the model will see, plus the
    project's tiny corpus."""
    from server.shapes_data import dataset
    from server.train_examples import judge_example

    def flat(messages: list[dict[str, Any]]) -> str:
        return "\n".join(p.get("text", "") for m in messages for p in m["content"])

    rng = random.Random(f"tokenizer:{seed}")
    lines = corpus_text().splitlines()
    lines.append(LLAVA_COT.format_instruction)
    for example in dataset(seed, TOKENIZER_EXAMPLES, split="tokenizer"):
        lines += [example.question, *example.answer_text.splitlines()]
    for example in dataset(seed, 200, split="tokenizer-judge"):
        lines += judge_example(example, rng, flat).prompt.splitlines()
    return lines


def build_tokenizer(out: Path, seed: int) -> Any:
    """The shared tiny-model tokenizer, trained on this task's questions, answers and judge
    prompts."""
    return tiny_model.build_tokenizer(out, tokenizer_corpus(seed))


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


# ----------------------------------------------------------------------------- training


class Batches:
    """An endless, seeded stream of batches: answer batches and judge batches."""

    def __init__(self, processor: Any, seed: int, batch: int = BATCH) -> None:
        from server.train_examples import chat_renderer

        self.processor = processor
        self.render = chat_renderer(processor.tokenizer)
        self.data_rng = random.Random(f"train:{seed}")
        self.judge_rng = random.Random(f"train-judge:{seed}")
        self.kind_rng = random.Random(f"train-kind:{seed}")
        self.batch = batch
        self.pad_id = processor.tokenizer.convert_tokens_to_ids(PAD)

    def next(self, progress: float) -> tuple[str, dict[str, Any]]:
        from server.shapes_data import make_example
        from server.train_examples import answer_example, collate, encode, judge_example

        judging = self.kind_rng.random() < JUDGE_SHARE and progress >= JUDGE_START
        kind = "judge" if judging else "answer"
        items = []
        for _ in range(self.batch):
            example = make_example(self.data_rng)
            item = (judge_example(example, self.judge_rng, self.render) if kind == "judge"
                    else answer_example(example, self.render, EOS))
            items.append(encode(self.processor, item))
        return kind, collate(items, self.pad_id)


def learning_rate(step: int, progress: float) -> float:
    if step < WARMUP_STEPS:
        return PEAK_LR * (step + 1) / WARMUP_STEPS
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return PEAK_LR * (FINAL_LR_SHARE + (1 - FINAL_LR_SHARE) * cosine)


def train(model: Any, batches: Batches, minutes: float, steps: int,
          log_every: int = 10) -> list[dict[str, Any]]:
    import torch

    from server.train_probes import ErrorProbe, PerceptionProbe

    probe, errors_probe = PerceptionProbe(model), ErrorProbe(model)
    optimizer = torch.optim.AdamW(
        [*model.parameters(), *probe.head.parameters(), *errors_probe.head.parameters()],
        lr=PEAK_LR, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    curve: list[dict[str, Any]] = []
    started = time.monotonic()
    step = 0
    while True:
        elapsed = time.monotonic() - started
        progress = max(step / steps, elapsed / (minutes * 60))
        if progress >= 1:
            break
        lr = learning_rate(step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        kind, batch = batches.next(progress)
        cells, errors = batch.pop("cells"), batch.pop("errors")
        loss = model(**batch).loss
        seen, noticed = probe.loss(cells), errors_probe.loss(errors)
        (loss + PERCEPTION_WEIGHT * seen + ERROR_WEIGHT * noticed).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        curve.append({"step": step, "kind": kind, "loss": round(loss.item(), 4),
                      "perception_loss": round(seen.item(), 4),
                      "error_loss": round(noticed.item(), 4), "lr": round(lr, 6),
                      "seconds": round(time.monotonic() - started, 1)})
        if step % log_every == 0:
            recent = curve[-log_every:]
            print(f"step {step:5d}  {curve[-1]['seconds']:7.1f}s  lr {lr:.2e}  answer "
                  f"{_mean(recent, 'loss', 'answer')}  judge {_mean(recent, 'loss', 'judge')}  "
                  f"perception {_mean(recent, 'perception_loss')}  "
                  f"errors {_mean(recent, 'error_loss', 'judge')}", flush=True)
    model.eval()
    return curve


def _mean(rows: list[dict[str, Any]], key: str, kind: str | None = None) -> str:
    values = [r[key] for r in rows if kind is None or r["kind"] == kind]
    return f"{sum(values) / len(values):.3f}" if values else "  -  "


def curve_summary(curve: list[dict[str, Any]], parts: int = 10) -> list[dict[str, Any]]:
    """Mean loss of answer and judge batches over each tenth of the run."""
    rows = []
    size = max(1, math.ceil(len(curve) / parts))
    for start in range(0, len(curve), size):
        chunk = curve[start:start + size]
        row: dict[str, Any] = {"steps": f"{chunk[0]['step']}-{chunk[-1]['step']}"}
        for kind in ("answer", "judge"):
            losses = [r["loss"] for r in chunk if r["kind"] == kind]
            row[kind] = round(sum(losses) / len(losses), 4) if losses else None
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m server.train_tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--minutes", type=float, default=15.0, help="most training time")
    parser.add_argument("--steps", type=int, default=STEPS, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", type=int, default=200,
                        help="held-out questions to check after training (0: none)")
    args = parser.parse_args(argv)

    # Threads that sleep rather than spin while they wait: on a busy machine spinning OpenMP
    # threads made training four times slower; on an idle one sleeping costs about 15 %.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out, args.seed)
    processor = build_processor(tokenizer)
    model = build_model(tokenizer, args.seed)
    params = sum(p.numel() for p in model.parameters())
    print(f"{params / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}", flush=True)
    curve = train(model, Batches(processor, args.seed), args.minutes, args.steps)

    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    summary = curve_summary(curve)
    record: dict[str, Any] = {"seed": args.seed, "steps": len(curve),
                              "seconds": curve[-1]["seconds"] if curve else 0,
                              "parameters": params, "batch": BATCH, "summary": summary,
                              "curve": curve}
    if args.check:
        from server.train_check import check

        model.to(torch.float32)
        record["check"] = check(model, processor, args.check)
    (out / CURVE_FILE).write_text(json.dumps(record, indent=1))
    (out / "cot_server_model.json").write_text(json.dumps(
        {"built_by": "python -m server.train_tiny", "seed": args.seed, "stage_mode": "native"}))
    print(json.dumps({k: v for k, v in record.items() if k != "curve"}, indent=1))


if __name__ == "__main__":
    main()
