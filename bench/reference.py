"""Baseline for the benchmark: stage-level beam search done the way the LLaVA-CoT reference code
does it (inference/demo/simple_inference.py), with Hugging Face transformers `generate`.

What it keeps from the reference, because that is what it costs:
- batch size 1: one `generate` at a time, for every candidate and every judge call;
- for each stage in turn, `beam_width` candidates sampled one after another (temperature 0.6,
  top_p 0.9), each from a freshly processed prompt (image re-encoded, no KV-cache reuse),
  stopped by a criterion that decodes the whole sequence after every token;
- a knockout between candidates (two drawn at random, the winner goes back), each comparison a
  separate `generate` on a new prompt with the image; in the reasoning stage each candidate is
  first checked alone (text only) and a candidate flagged "incorrect" loses at once;
- the judge is sampled like the candidates and read by substring ("I choose response 1", else
  response 2).

What differs, so that it runs on a random-weights model and terminates quickly:
- the stage's opening tag is appended to the prefix (a trained model writes it itself);
- a stage stops at its closing tag or at a per-stage token cap (the reference: 2048 tokens),
  and a capped stage gets its closing tag appended, so the judge always sees both candidates
  (the reference drops an unclosed candidate and can crash);
- judge and check calls are capped at `judge_max_tokens` (the reference: 2048).

Per question: 4·beam_width candidate calls and 4·(beam_width − 1) comparisons, each one
`generate`, except in the reasoning stage: 1 (first candidate flagged), 2 (second flagged) or
3 calls (two checks and the pairwise judge).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)

from bench.reference_prompts import (
    FIRST_WINS,
    FLAGGED,
    STAGES,
    judge_hint,
    judge_prompt,
    reasoning_check_prompt,
    stage_text,
)
from loadtest.workload import DEFAULT_IMAGE_SIZES, WorkItem, image_from_data_url, procedural_items

TEMPERATURE, TOP_P = 0.6, 0.9


@dataclass
class Comparison:
    stage: str
    first: int  # candidate numbers within the stage
    second: int
    winner: int
    calls: int  # generate calls this comparison took
    decided_by: str  # "judge", or "check" when a reasoning check flagged a candidate


@dataclass
class QuestionTrace:
    question: str
    stages: dict[str, str] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=lambda: {
        "candidate": 0, "judge": 0, "reasoning_check": 0})
    new_tokens: int = 0


class StopOnString(StoppingCriteria):
    """The reference's stop test: decode the whole sequence after every token and search it."""

    def __init__(self, stop: str, tokenizer: Any) -> None:
        self.stop, self.tokenizer = stop, tokenizer

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        done = self.stop in self.tokenizer.decode(input_ids[0], skip_special_tokens=True)
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool)


class ReferenceSearch:
    """The model, the processor and the stage-level beam search over them."""

    def __init__(self, model_dir: str, beam_width: int, stage_caps: dict[str, int],
                 judge_max_tokens: int, rng: random.Random) -> None:
        # any image-text-to-text checkpoint (the tiny model is Idefics3), on the GPU if any
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model = AutoModelForImageTextToText.from_pretrained(
            model_dir, dtype=torch.bfloat16).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.beam_width, self.stage_caps = beam_width, stage_caps
        self.judge_max_tokens, self.rng = judge_max_tokens, rng

    def generate(self, trace: QuestionTrace, kind: str, text: str, image: Any | None,
                 max_new_tokens: int, stop: str | None = None) -> str:
        tokenizer = self.processor.tokenizer
        inputs = self.processor(images=[image] if image is not None else None, text=text,
                                return_tensors="pt").to(self.device)
        criteria = StoppingCriteriaList([StopOnString(stop, tokenizer)] if stop else [])
        with torch.inference_mode():
            output = self.model.generate(**inputs, do_sample=True, temperature=TEMPERATURE,
                                         top_p=TOP_P, max_new_tokens=max_new_tokens,
                                         stopping_criteria=criteria)
        new_ids = output[0][inputs["input_ids"].shape[1]:]
        trace.calls[kind] += 1
        trace.new_tokens += len(new_ids)
        return tokenizer.decode(new_ids, skip_special_tokens=True)

    def chat(self, text: str, with_image: bool) -> str:
        content = [{"type": "image"}] if with_image else []
        content.append({"type": "text", "text": text})
        return self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True)

    def judge(self, trace: QuestionTrace, item: WorkItem, image: Any, stage: str,
              answers: tuple[str, str]) -> tuple[int, int, str]:
        """0 if the first answer wins, else 1; also the calls made and what decided."""
        responses = [stage_text(a, stage) or "" for a in answers]
        hint = judge_hint(answers[0], stage)
        calls = 0
        if stage == "REASONING":
            for loser, response in enumerate(responses):
                verdict = self.generate(trace, "reasoning_check", self.chat(
                    reasoning_check_prompt(hint, response), with_image=False), None,
                    self.judge_max_tokens)
                calls += 1
                if FLAGGED in verdict:
                    return 1 - loser, calls, "check"
        prompt = self.chat(judge_prompt(stage, item.question, hint, responses), with_image=True)
        verdict = self.generate(trace, "judge", prompt, image, self.judge_max_tokens)
        return (0 if FIRST_WINS in verdict else 1), calls + 1, "judge"

    def answer(self, item: WorkItem) -> QuestionTrace:
        trace = QuestionTrace(question=item.question)
        image = image_from_data_url(item.image_url)
        prompt = self.chat(item.question, with_image=True)
        answer_so_far = ""
        for stage in STAGES:
            opening, closing = f"<{stage}>", f"</{stage}>"
            pool = []  # (candidate number, the whole tagged answer with this candidate)
            for number in range(self.beam_width):
                raw = self.generate(trace, "candidate", prompt + answer_so_far + opening, image,
                                    self.stage_caps[stage], stop=closing)
                text = raw.split(closing, 1)[0]
                pool.append((number, answer_so_far + opening + text + closing))
            while len(pool) > 1:  # knockout: two drawn at random, the winner goes back
                first = pool.pop(self.rng.randrange(len(pool)))
                second = pool.pop(self.rng.randrange(len(pool)))
                verdict, calls, decided_by = self.judge(trace, item, image, stage,
                                                        (first[1], second[1]))
                winner = (first, second)[verdict]
                trace.comparisons.append(Comparison(stage, first[0], second[0], winner[0],
                                                    calls, decided_by))
                pool.append(winner)
            answer_so_far = pool[0][1]
            trace.stages[stage] = stage_text(answer_so_far, stage) or ""
        return trace


def stage_caps_of(stage_max_tokens: int | dict[str, int]) -> dict[str, int]:
    if isinstance(stage_max_tokens, int):
        return dict.fromkeys(STAGES, stage_max_tokens)
    return {stage: stage_max_tokens[stage] for stage in STAGES}


def run_baseline(model_dir: str, questions: Sequence[WorkItem], beam_width: int = 4,
                 stage_max_tokens: int | dict[str, int] = 128, judge_max_tokens: int = 64,
                 seed: int = 0) -> dict[str, Any]:
    """Answer every question in turn; questions/s counts the answering only (not loading)."""
    if beam_width < 1 or not questions:
        raise ValueError("need beam_width >= 1 and at least one question")
    torch.manual_seed(seed)
    loading = time.perf_counter()
    search = ReferenceSearch(model_dir, beam_width, stage_caps_of(stage_max_tokens),
                             judge_max_tokens, random.Random(seed))
    started = time.perf_counter()
    traces = [search.answer(item) for item in questions]
    wall_s = time.perf_counter() - started
    calls = {kind: sum(t.calls[kind] for t in traces) for kind in traces[0].calls}
    return {
        "method": "reference stage-level beam search (transformers generate, batch 1)",
        "model_dir": str(model_dir), "questions": len(traces), "beam_width": beam_width,
        "stage_max_tokens": stage_caps_of(stage_max_tokens),
        "judge_max_tokens": judge_max_tokens, "seed": seed,
        "load_s": started - loading, "wall_s": wall_s, "questions_per_s": len(traces) / wall_s,
        "generate_calls": sum(calls.values()), "calls_by_kind": calls,
        "new_tokens": sum(t.new_tokens for t in traces),
        "answers": [asdict(t) for t in traces],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default="models/tiny-cot", help="local model folder")
    parser.add_argument("--questions", type=int, default=4, help="number of questions")
    parser.add_argument("--beam-width", type=int, default=4, help="candidates per stage")
    parser.add_argument("--stage-max-tokens", type=int, default=128, help="token cap per stage")
    parser.add_argument("--judge-max-tokens", type=int, default=64, help="token cap per judge")
    parser.add_argument("--image-size", type=int, action="append",
                        help="procedural image side, repeatable (default: the load test's)")
    parser.add_argument("--seed", type=int, default=0, help="images, sampling and pairing")
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    transformers.logging.set_verbosity_error()
    sizes = tuple(args.image_size or DEFAULT_IMAGE_SIZES)
    items = procedural_items(args.questions, args.seed, sizes)
    result = run_baseline(args.model_dir, items, args.beam_width, args.stage_max_tokens,
                          args.judge_max_tokens, args.seed)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "answers"}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
