"""Training examples for the tiny model, laid out exactly as the server prompts it.

- Answer examples: the chat-template prompt (image, question) followed by the four tagged stages
  as the server assembles them (`<SUMMARY>…</SUMMARY>` + blank line + `<CAPTION>` …), so greedy
  staged generation reproduces the format; loss on the assistant part only.
- Judge examples: the judge prompt of `server.search.prompts.PromptBuilder.judge` for one stage
  (or for two complete answers, as best-of-N asks), one candidate right and one wrong, and the
  answer token `1` or `2`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.search.prompts import Conversation, PromptBuilder, text_part
from server.search.schema import FULL_ANSWER_CRITERION, LLAVA_COT
from server.shapes_data import Example, perturb, stage_texts, tagged, valid, wrong_stage

IGNORE = -100
# Which judge call an example imitates ("FULL": two complete answers, as best-of-N asks).
JUDGE_WEIGHTS = {"SUMMARY": 5, "CAPTION": 35, "REASONING": 25, "CONCLUSION": 15, "FULL": 20}


@dataclass(frozen=True)
class TextExample:
    prompt: str  # rendered chat prompt, ends with "Assistant:"
    target: str  # what the model should write
    image: Any


def chat_renderer(tokenizer: Any) -> Callable[[list[dict[str, Any]]], str]:
    """The same rendering the engine adapter uses."""
    def render(messages: list[dict[str, Any]]) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=True))
    return render


def conversation(example: Example) -> Conversation:
    message = {"role": "user", "content": [{"type": "image"}, text_part(example.question)]}
    return Conversation((message,), (example.image,))


def answer_example(example: Example, render: Callable[..., str], eos: str) -> TextExample:
    prompt = PromptBuilder(render, LLAVA_COT).base(conversation(example))
    return TextExample(prompt, example.answer_text + eos, example.image)


def _wrong_chain(example: Example, rng: random.Random) -> str:
    """A complete answer that goes wrong somewhere: from a misread scene, or with one wrong
    reasoning or conclusion."""
    if rng.random() < 0.5:
        for _ in range(50):
            scene = perturb(example.scene, rng)
            if valid(example.query, scene):
                stages = stage_texts(example.query, scene)
                if stages[-1][1] != example.conclusion:
                    return tagged(stages)
    stages = list(example.stages)
    index = rng.choice([2, 3])
    stages[index] = (stages[index][0], wrong_stage(example, stages[index][0], rng))
    return tagged(stages)


def judge_example(example: Example, rng: random.Random, render: Callable[..., str]
                  ) -> TextExample:
    which = rng.choices(list(JUDGE_WEIGHTS), weights=list(JUDGE_WEIGHTS.values()))[0]
    prompts = PromptBuilder(render, LLAVA_COT)
    if which == "FULL":
        chosen: list[Any] = []
        what, criterion = "a complete answer", FULL_ANSWER_CRITERION
        right, wrong = example.answer_text, _wrong_chain(example, rng)
    else:
        index = [tag for tag, _ in example.stages].index(which)
        stage = LLAVA_COT.stages[index]
        chosen = [(LLAVA_COT.stages[i], text) for i, (_, text) in
                  enumerate(example.stages[:index])]
        what, criterion = f"the {stage.tag} stage", stage.judge_criterion
        right, wrong = example.stages[index][1], wrong_stage(example, which, rng)
    right_first = rng.random() < 0.5
    first, second = (right, wrong) if right_first else (wrong, right)
    prompt = prompts.judge(conversation(example), chosen, what, criterion, first, second)
    return TextExample(prompt, "1" if right_first else "2", example.image)


def encode(processor: Any, item: TextExample) -> dict[str, Any]:
    """Token ids (image tokens expanded by the processor), labels on the target only, and the
    image tiles. The target starts at an added token (a stage tag) or is a lone digit, so
    tokenising prompt and target apart gives the ids the server's prompts give."""
    inputs = processor(text=[item.prompt], images=[[item.image]], return_tensors="pt")
    prompt_ids = inputs["input_ids"][0].tolist()
    target_ids = processor.tokenizer(item.target, add_special_tokens=False)["input_ids"]
    return {"input_ids": prompt_ids + target_ids,
            "labels": [IGNORE] * len(prompt_ids) + target_ids,
            "pixel_values": inputs["pixel_values"][0],
            "pixel_attention_mask": inputs["pixel_attention_mask"][0]}


def collate(items: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    import torch

    length = max(len(i["input_ids"]) for i in items)
    ids = torch.full((len(items), length), pad_id, dtype=torch.long)
    labels = torch.full((len(items), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(items), length), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        labels[row, :n] = torch.tensor(item["labels"])
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask,
            "pixel_values": torch.stack([i["pixel_values"] for i in items]),
            "pixel_attention_mask": torch.stack([i["pixel_attention_mask"] for i in items])}
