"""Training examples for the tiny model, laid out exactly as the server prompts it.

- Answer examples: the chat-template prompt (image, question) followed by the four tagged stages
  as the server assembles them (`<SUMMARY>…</SUMMARY>` + blank line + `<CAPTION>` …), so greedy
  staged generation reproduces the format; loss on the assistant part only.
- Judge examples: the judge prompt the search builds (`PromptBuilder.judge`, as
  `server.search.beam` calls it) for one stage or for two complete answers (best-of-N), one
  candidate right and one wrong, and the answer token `1` or `2`. Built with the server's own
  prompt code, so a retrained model follows the prompt format of the code it is trained with.
- Verify examples: the pointwise check the search makes (`PromptBuilder.verify`): the
  candidate's own transcript (image, question, the stages before it, the candidate closed) and
  the question whether the stage is correct (quoting the CAPTION again for the stages after
  it); the answer is `yes` or `no`. Candidates are the
  reference stage (yes), a wrong one written for a misread or unrelated scene (no), or one the
  model itself sampled (`tinycot.onpolicy`), labelled against the reference and kept after the
  prefix the model actually had. Each stage of the transcript carries error-probe spans.
- Summary examples: the summariser's call (`PromptBuilder.summary`): a whole chain, right or
  wrong on purpose, then the request to answer again; the target is the right answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from server.search.interface import Prompt, prompt_text
from server.search.prompts import (
    JUDGE_OPTIONS,
    VERIFY_OPTIONS,
    Conversation,
    PromptBuilder,
    RenderChat,
    text_part,
)
from server.search.schema import FULL_ANSWER_CRITERION, LLAVA_COT
from server.search.trace import Candidate
from tinycot.onpolicy import is_right as stage_is_right
from tinycot.onpolicy import reaches_right
from tinycot.task import (
    COLOURS,
    GRID,
    KINDS,
    STAGE_TAGS,
    Example,
    Scene,
    dataset,
    perturb,
    random_scene,
    stage_texts,
    tagged,
    valid,
    wrong_stage,
)

IGNORE = -100
IMAGE_TOKEN = "<image>"
# Which judge call an example imitates ("FULL": two complete answers, as best-of-N asks).
JUDGE_WEIGHTS = {"SUMMARY": 5, "CAPTION": 35, "REASONING": 30, "CONCLUSION": 15, "FULL": 15}
# Share of wrong candidates that are near misses (one shape misread); the others are written
# for an unrelated scene, which is easier to tell apart and gets the judge started.
SUBTLE_SHARE = 0.5
# Which stage a verify example checks: the reasoning is where the model goes wrong most (it
# copies the wrong shapes out of a right caption), then the caption; the summary hardly ever.
VERIFY_WEIGHTS = {"SUMMARY": 3, "CAPTION": 22, "REASONING": 50, "CONCLUSION": 25}
# How a written wrong candidate is made: one shape misread (the stage alone), an unrelated
# scene, or a misread scene throughout (the stages before it written from it too).
VERIFY_WRONG = {"subtle": 60, "unrelated": 10, "misread": 30}
# Share of right candidates written after a misread prefix (the truth, not the transcript,
# decides the label). Rare: the model's captions are almost always right, and a reasoning check
# is mostly a check against the caption it quotes.
RIGHT_AFTER_MISREAD = 0.03


@dataclass(frozen=True)
class TextExample:
    prompt: str  # rendered chat prompt, ends with "Assistant:"
    target: str  # what the model should write
    image: Any
    cells: tuple[int, ...]  # what each local image token shows (see `cell_classes`)
    kind: str = "answer"  # or the judge call it imitates, e.g. "CAPTION subtle"
    # judge examples: (start, end, label) character spans of the prompt's two candidates,
    # label 1 where a candidate has gone wrong (a training-time target, see train_tiny)
    spans: tuple[tuple[int, int, int], ...] = ()


def cell_classes(scene: Scene) -> tuple[int, ...]:
    """The shape in each grid cell (0: empty, else 1 + colour × kinds + kind), in the order of
    the image tokens the processor makes: four 64 px tiles row by row, then in each tile the
    pixel-shuffled 2 × 2 patch blocks row by row; one 32 px cell per token. A training-time
    perception target for the image tokens; not part of the saved model."""
    colours, kinds = list(COLOURS), list(KINDS)
    grid = {(s.row, s.col): 1 + colours.index(s.colour) * len(kinds) + kinds.index(s.kind)
            for s in scene.shapes}
    half = GRID // 2
    return tuple(grid.get((tile_row * half + k // half, tile_col * half + k % half), 0)
                 for tile_row in range(half) for tile_col in range(half)
                 for k in range(half * half))


CELL_CLASSES = 1 + len(COLOURS) * len(KINDS)


def chat_renderer(tokenizer: Any) -> RenderChat:
    """The same rendering the engine adapter uses."""
    def render(messages: list[dict[str, Any]], template_kwargs: Mapping[str, Any] | None = None
               ) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=True,
                                                 **dict(template_kwargs or {})))
    return render


def conversation(example: Example) -> Conversation:
    message = {"role": "user", "content": [{"type": "image"}, text_part(example.question)]}
    return Conversation((message,), (example.image,))


def answer_example(example: Example, render: Callable[..., str], eos: str,
                   direct: bool = False) -> TextExample:
    """The staged answer to the example's question; `direct`: the answer alone (the CONCLUSION's
    text, no stages), for a model trained to answer directly (the comparison's baseline)."""
    prompt = PromptBuilder(render, LLAVA_COT).base(conversation(example))
    target = example.conclusion if direct else example.answer_text
    return TextExample(prompt, target + eos, example.image, cell_classes(example.scene))


def _wrong_stages(example: Example, rng: random.Random, subtle: bool
                  ) -> list[tuple[str, str]]:
    """A complete answer that goes wrong somewhere: from a misread (or unrelated) scene, or
    with one wrong reasoning or conclusion."""
    if rng.random() < 0.5:
        for _ in range(50):
            scene = perturb(example.scene, rng) if subtle else random_scene(rng)
            if valid(example.query, scene):
                misread = stage_texts(example.query, scene)
                if misread[-1][1] != example.conclusion:
                    return list(misread)
    stages = list(example.stages)
    index = rng.choice([2, 3])
    stages[index] = (stages[index][0], wrong_stage(example, stages[index][0], rng, subtle))
    return stages


def _candidate(text: str) -> Candidate:
    return Candidate(text, 0, 0.0, True)


def _spans(start: int, right: str, wrong: str, is_wrong: bool, tail: int
           ) -> list[tuple[int, int, int]]:
    """Error labels of one candidate written from character `start` (and `tail` characters
    after it, its closing tag): 0 while it agrees with the right text, 1 from the first
    character where the wrong one departs from it."""
    end = start + len(wrong if is_wrong else right) + tail
    if not is_wrong:
        return [(start, end, 0)]
    agree = next((i for i, (a, b) in enumerate(zip(right, wrong, strict=False)) if a != b),
                 min(len(right), len(wrong)))
    return [(start, start + agree, 0), (start + agree, end, 1)]


def judge_example(example: Example, rng: random.Random, render: Callable[..., str]
                  ) -> TextExample:
    """A judge call as the search makes it (`StageSearch._compare`): the transcript up to the
    first candidate, the second candidate, the question; the answer is 1 or 2."""
    which = rng.choices(list(JUDGE_WEIGHTS), weights=list(JUDGE_WEIGHTS.values()))[0]
    subtle = rng.random() < SUBTLE_SHARE
    prompts = PromptBuilder(render, LLAVA_COT)
    base = prompts.base(conversation(example))
    right_first = rng.random() < 0.5
    if which == "FULL":
        right_stages = list(example.stages)
        wrong_stages = _wrong_stages(example, rng, subtle)
        first, second = ((right_stages, wrong_stages) if right_first
                         else (wrong_stages, right_stages))
        prefix: Prompt = ()
        first_part = prompts.answer(base, [(stage, _candidate(text)) for stage, (_, text)
                                           in zip(LLAVA_COT.stages, first, strict=True)])
        second_part = tagged(second)
        right, wrong = tagged(right_stages), tagged(wrong_stages)
        first_start, second_skip, tail = len(base), 0, 0
        what, criterion = "the complete answer", FULL_ANSWER_CRITERION
    else:
        index = [tag for tag, _ in example.stages].index(which)
        stage = LLAVA_COT.stages[index]
        chosen = [(LLAVA_COT.stages[i], _candidate(text))
                  for i, (_, text) in enumerate(example.stages[:index])]
        right, wrong = example.stages[index][1], wrong_stage(example, which, rng, subtle)
        first_text, second_text = (right, wrong) if right_first else (wrong, right)
        prefix = prompts.stage(base, chosen, stage)
        first_part = _candidate(first_text).as_prompt(stage.close_tag)
        second_part = stage.wrap(second_text)
        first_start, second_skip = len(prompt_text(prefix)), len(stage.open_tag)
        tail = len(stage.close_tag)
        what, criterion = f"the {stage.tag} stage", stage.judge_criterion
    text = prompt_text(PromptBuilder.judge(prefix, first_part, second_part, what, criterion))
    second_start = text.rindex(second_part) + second_skip
    spans = (_spans(first_start, right, wrong, not right_first, tail)
             + _spans(second_start, right, wrong, right_first, tail))
    kind = f"{which} {'subtle' if subtle else 'unrelated'}"
    return TextExample(text, JUDGE_OPTIONS[0 if right_first else 1], example.image,
                       cell_classes(example.scene), kind, tuple(spans))



# ----------------------------------------------------------------------------- summary


SUMMARY_RIGHT_CHAIN = 0.5  # share of summary examples whose chain is the reference


def summary_example(example: Example, rng: random.Random, render: Callable[..., str],
                    eos: str) -> TextExample:
    """The summariser's call (`PromptBuilder.summary`): the reasoner's four stages, right (the
    reference) or wrong on purpose (written for a misread or unrelated scene, or with a wrong
    reasoning or conclusion), then the request to answer again; the target is the right
    answer whatever the chain says, so the model learns to overrule a wrong chain.
    Kind: "summary right|wrong"."""
    right = rng.random() < SUMMARY_RIGHT_CHAIN
    stages = list(example.stages) if right else _wrong_stages(
        example, rng, subtle=rng.random() < SUBTLE_SHARE)
    prompts = PromptBuilder(render, LLAVA_COT)
    chain = [(LLAVA_COT.stage(tag), _candidate(text)) for tag, text in stages]
    prompt = prompts.summary(prompts.base(conversation(example)), chain)
    target = example.conclusion + LLAVA_COT.answer_stage.close_tag + eos
    return TextExample(prompt_text(prompt), target, example.image, cell_classes(example.scene),
                       f"summary {'right' if right else 'wrong'}")

# ----------------------------------------------------------------------------- verify


def _stage_spans(start: int, text: str, reference: str, right: bool, tail: int
                 ) -> list[tuple[int, int, int]]:
    return _spans(start, text if right else reference, text, not right, tail)


def verify_item(example: Example, tag: str, prefix: list[str] | tuple[str, ...], text: str,
                render: Callable[..., str], kind: str, right: bool | None = None
                ) -> TextExample:
    """The verify call for the stage `tag` of `example` written as `text` after the stages
    `prefix` (texts, in order): target yes where `text` is right (by its text, unless `right`
    says otherwise). Error-probe spans on every stage of the transcript, against the
    reference."""
    index = STAGE_TAGS.index(tag)
    assert len(prefix) == index, (tag, len(prefix))
    reference = dict(example.stages)
    prompts = PromptBuilder(render, LLAVA_COT)
    base = prompts.base(conversation(example))
    chosen = [(LLAVA_COT.stages[i], _candidate(t)) for i, t in enumerate(prefix)]
    spans: list[tuple[int, int, int]] = []
    for i, (done, candidate) in enumerate(chosen):
        start = len(prompt_text(prompts.answer(base, chosen[:i]))) + len(done.open_tag)
        spans += _stage_spans(start, candidate.text, reference[done.tag],
                              stage_is_right(done.tag, candidate.text, reference[done.tag]),
                              len(done.close_tag))
    stage = LLAVA_COT.stages[index]
    head = prompts.stage(base, chosen, stage)
    said_right = stage_is_right(tag, text, reference[tag])
    spans += _stage_spans(len(prompt_text(head)), text, reference[tag], said_right,
                          len(stage.close_tag))
    right = said_right if right is None else right
    prompt = PromptBuilder.verify((*head, *_candidate(text).as_prompt(stage.close_tag)), stage,
                                  prompts.evidence(chosen, stage))
    return TextExample(prompt_text(prompt), VERIFY_OPTIONS[0 if right else 1], example.image,
                       cell_classes(example.scene), kind, tuple(spans))


def _misread(example: Example, rng: random.Random, index: int) -> list[str] | None:
    """The stages up to `index` written for a misread scene whose stage `index` differs from
    the reference's (None if no such scene turned up)."""
    tag, reference = STAGE_TAGS[index], dict(example.stages)
    for _ in range(50):
        scene = perturb(example.scene, rng)
        if not valid(example.query, scene):
            continue
        texts = [t for _, t in stage_texts(example.query, scene)][:index + 1]
        if not stage_is_right(tag, texts[-1], reference[tag]):
            return texts
    return None


def verify_example(example: Example, rng: random.Random, render: Callable[..., str],
                   tag: str | None = None, right: bool | None = None) -> TextExample:
    """A written verify example: a stage chosen by `VERIFY_WEIGHTS` (or `tag`), its candidate
    right (the reference) or wrong (see `VERIFY_WRONG`) about half the time (or as `right`
    says). Kind: "verify TAG reference|after-misread|subtle|unrelated|misread"."""
    tag = tag or rng.choices(list(VERIFY_WEIGHTS), weights=list(VERIFY_WEIGHTS.values()))[0]
    right = rng.random() < 0.5 if right is None else right
    index = STAGE_TAGS.index(tag)
    texts = [t for _, t in example.stages]
    if right:
        prefix, source = texts[:index], "reference"
        if index > 1 and rng.random() < RIGHT_AFTER_MISREAD:
            misread = _misread(example, rng, index - 1)
            if misread is not None:
                prefix, source = misread, "after-misread"
        return verify_item(example, tag, prefix, texts[index], render, f"verify {tag} {source}")
    source = rng.choices(list(VERIFY_WRONG), weights=list(VERIFY_WRONG.values()))[0]
    if source == "misread" and index > 0:
        misread = _misread(example, rng, index)
        if misread is not None:
            return verify_item(example, tag, misread[:index], misread[index], render,
                               f"verify {tag} misread")
        source = "subtle"
    if source == "misread":  # a summary reads no scene
        source = "subtle"
    text = wrong_stage(example, tag, rng, subtle=source == "subtle")
    return verify_item(example, tag, texts[:index], text, render, f"verify {tag} {source}")


@dataclass(frozen=True)
class SampledStage:
    """One stage text the model sampled (`tinycot.onpolicy`), after the prefix it had."""

    example: Example
    tag: str
    prefix: tuple[str, ...]
    text: str
    right: bool


class OnPolicyPool:
    """The on-policy records' candidates by stage and label, each with its example
    regenerated from the record's split, seed and index. Candidates repeated within a stage
    (the model often samples the same text) are kept once. `mixed`: the stages (one question,
    one prefix) whose candidates were some right and some wrong, as (right ones, wrong ones).
    Right by the text, or with `outcome` by the result it reaches (`reaches_right`: a
    REASONING that miscounts its way to the right number is right)."""

    def __init__(self, records: list[dict[str, Any]], outcome: bool = False) -> None:
        label = reaches_right if outcome else stage_is_right
        wanted: dict[tuple[str, int], int] = {}
        for rec in records:
            if rec["split"] == "held-out":
                raise ValueError("on-policy records of the held-out split")
            key = (rec["split"], int(rec["seed"]))
            wanted[key] = max(wanted.get(key, 0), int(rec["index"]) + 1)
        examples = {(split, seed): dataset(seed, n, split)
                    for (split, seed), n in wanted.items()}
        self.items: dict[tuple[str, bool], list[SampledStage]] = {}
        self.mixed: list[tuple[list[SampledStage], list[SampledStage]]] = []
        for rec in records:
            example = examples[(rec["split"], int(rec["seed"]))][int(rec["index"])]
            if [list(s) for s in example.stages] != [list(s) for s in rec["reference"]]:
                raise ValueError(f"record {rec['split']}:{rec['seed']}:{rec['index']} does not "
                                 "match its regenerated example")
            for position, stage in enumerate(rec["stages"]):
                tag, prefix = stage["tag"], tuple(stage["prefix"])
                if tag not in STAGE_TAGS or not STAGE_TAGS.index(tag) == position == len(prefix):
                    continue
                seen: set[str] = set()
                group: dict[bool, list[SampledStage]] = {True: [], False: []}
                for candidate in stage["candidates"]:
                    text = candidate["text"].strip()
                    if not text or text in seen or any(t in text for t in ("<", ">")):
                        continue
                    seen.add(text)
                    right = label(tag, text, dict(example.stages)[tag])
                    sampled = SampledStage(example, tag, prefix, text, right)
                    self.items.setdefault((tag, right), []).append(sampled)
                    group[right].append(sampled)
                if group[True] and group[False]:
                    self.mixed.append((group[True], group[False]))

    def __len__(self) -> int:
        return sum(len(v) for v in self.items.values())

    def counts(self) -> dict[str, int]:
        return {f"{tag} {'right' if right else 'wrong'}": len(v)
                for (tag, right), v in sorted(self.items.items())}

    def draw(self, rng: random.Random, tag: str, right: bool) -> SampledStage | None:
        pool = self.items.get((tag, right))
        return rng.choice(pool) if pool else None

    def draw_pair(self, rng: random.Random) -> tuple[SampledStage, SampledStage] | None:
        """A right and a wrong candidate of the same question after the same prefix."""
        if not self.mixed:
            return None
        right, wrong = rng.choice(self.mixed)
        return rng.choice(right), rng.choice(wrong)


def sampled_verify_example(sampled: SampledStage, render: Callable[..., str]) -> TextExample:
    """The verify call for a stage the model sampled, after the prefix it had."""
    return verify_item(sampled.example, sampled.tag, sampled.prefix, sampled.text, render,
                       f"verify {sampled.tag} onpolicy", sampled.right)


# ----------------------------------------------------------------------------- encoding


def verdict_ids(tokenizer: Any) -> tuple[int, int]:
    """The first token ids of the verifier's yes and no: what the server's one constrained
    token is scored on (they differ from the first token on)."""
    yes, no = (tokenizer(option, add_special_tokens=False)["input_ids"][0]
               for option in VERIFY_OPTIONS)
    assert yes != no, (yes, no)
    return yes, no


def _error_labels(processor: Any, prompt: str, prompt_ids: list[int],
                  spans: tuple[tuple[int, int, int], ...]) -> list[int]:
    """Per prompt token: the error label of the candidate character it ends on, else IGNORE.
    The text after the image is tokenised on its own (the image's expansion ends at a special
    token, so the ids agree) to map characters to tokens."""
    labels = [IGNORE] * len(prompt_ids)
    if not spans:
        return labels
    cut = prompt.index(IMAGE_TOKEN) + len(IMAGE_TOKEN)
    rest = processor.tokenizer(prompt[cut:], add_special_tokens=False,
                               return_offsets_mapping=True)
    offset = len(prompt_ids) - len(rest["input_ids"])
    assert prompt_ids[offset:] == rest["input_ids"], "prompt tokenisation differs"
    for i, (_, char_end) in enumerate(rest["offset_mapping"]):
        for start, end, label in spans:
            if start < cut + char_end <= end:
                labels[offset + i] = label
    return labels


def encode(processor: Any, item: TextExample) -> dict[str, Any]:
    """Token ids (image tokens expanded by the processor), labels on the target only, error
    labels on judged candidates, and the image tiles. The target starts at an added token (a
    stage tag) or is a lone digit, so tokenising prompt and target apart gives the ids the
    server's prompts give."""
    inputs = processor(text=[item.prompt], images=[[item.image]], return_tensors="pt")
    prompt_ids = inputs["input_ids"][0].tolist()
    target_ids = processor.tokenizer(item.target, add_special_tokens=False)["input_ids"]
    errors = _error_labels(processor, item.prompt, prompt_ids, item.spans)
    return {"input_ids": prompt_ids + target_ids,
            "labels": [IGNORE] * len(prompt_ids) + target_ids,
            "errors": errors + [IGNORE] * len(target_ids),
            "pixel_values": inputs["pixel_values"][0],
            "pixel_attention_mask": inputs["pixel_attention_mask"][0], "cells": item.cells}


def collate(items: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    import torch

    length = max(len(i["input_ids"]) for i in items)
    ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
    errors = torch.full((len(items), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        errors[row, :n] = torch.tensor(item["errors"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "errors": errors,
            "pixel_values": torch.stack([i["pixel_values"] for i in items]),
            "pixel_attention_mask": torch.stack([i["pixel_attention_mask"] for i in items]),
            "cells": torch.tensor([i["cells"] for i in items])}
