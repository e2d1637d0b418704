"""Stage schemas (which tagged stages an answer has, which one is the answer) and tag parsing.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    tag: str
    judge_criterion: str

    @property
    def open_tag(self) -> str:
        return f"<{self.tag}>"

    @property
    def close_tag(self) -> str:
        return f"</{self.tag}>"

    def wrap(self, text: str) -> str:
        return f"{self.open_tag}{text}{self.close_tag}"


@dataclass(frozen=True)
class StageSchema:
    name: str
    stages: tuple[Stage, ...]
    answer_tag: str
    format_instruction: str
    separator: str = "\n\n"
    # The stage that states what the later stages must agree with (LLaVA-CoT: the CAPTION, the
    # image put into words). A verification of a later stage quotes it again after the
    # candidate, so the check reads the evidence with the claim already in view.
    evidence_tag: str | None = None

    @property
    def answer_stage(self) -> Stage:
        return next(s for s in self.stages if s.tag == self.answer_tag)

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(s.tag for s in self.stages)

    def stage(self, tag: str) -> Stage:
        return next(s for s in self.stages if s.tag == tag)

    def evidence_for(self, tag: str) -> Stage | None:
        """The evidence stage a verification of stage `tag` quotes: only for stages after it."""
        if self.evidence_tag is None or self.tags.index(tag) <= self.tags.index(self.evidence_tag):
            return None
        return self.stage(self.evidence_tag)

    def tagged_text(self, stages: Sequence[tuple[str, str]]) -> str:
        """(tag, text) pairs as one tagged answer, stages apart by the separator."""
        return self.separator.join(self.stage(tag).wrap(text) for tag, text in stages)


LLAVA_COT = StageSchema(
    name="llava-cot",
    stages=(
        Stage("summary", "SUMMARY", "Which response better outlines how to approach the question "
              "(the plan, not the detailed reasoning)?"),
        Stage("caption", "CAPTION", "Which response describes the parts of the image that matter "
              "for the question more thoroughly and with fewer errors?"),
        Stage("reasoning", "REASONING", "Which response reasons step by step more correctly "
              "towards the answer?"),
        Stage("conclusion", "CONCLUSION", "Which conclusion follows the reasoning better and "
              "answers the question directly, without refusing?"),
    ),
    answer_tag="CONCLUSION",
    evidence_tag="CAPTION",
    format_instruction=(
        "Answer in four stages, each inside its own tags and in this order: "
        "<SUMMARY>what the question asks and how you will approach it</SUMMARY> "
        "<CAPTION>the parts of the image that matter for the question</CAPTION> "
        "<REASONING>step-by-step logic towards the answer</REASONING> "
        "<CONCLUSION>the final answer, short and direct</CONCLUSION>"
    ),
)

THINK_ANSWER = StageSchema(
    name="think-answer",
    stages=(
        Stage("think", "think", "Which response reasons more correctly about the question?"),
        Stage("answer", "answer", "Which answer is more correct and more direct?"),
    ),
    answer_tag="answer",
    format_instruction=(
        "First think about the question inside <think></think> tags, "
        "then give the final answer inside <answer></answer> tags."
    ),
)

SCHEMAS: dict[str, StageSchema] = {s.name: s for s in (LLAVA_COT, THINK_ANSWER)}

FULL_ANSWER_CRITERION = "Which complete answer is more correct and better reasoned?"


def get_schema(name: str) -> StageSchema:
    try:
        return SCHEMAS[name]
    except KeyError:
        raise ValueError(f"unknown stage schema {name!r}; known: {', '.join(SCHEMAS)}") from None


def clean_stage_text(stage: Stage, raw: str, stops: Sequence[str] = ()) -> tuple[str, bool]:
    """Cut a generated stage at its closing tag (or a caller's stop string) and drop a
    repeated opening tag.

    Returns the stage's text (stripped) and whether the model closed the stage itself.
    """
    text = raw
    closed = stage.close_tag in text
    if closed:
        text = text.split(stage.close_tag, 1)[0]
    for stop in stops:
        text = text.split(stop, 1)[0]
    text = text.strip()
    if text.startswith(stage.open_tag):
        text = text[len(stage.open_tag):].strip()
    return text, closed


class StageTextStream:
    """A stage's text while it is being generated, released only where it is final: each
    `feed` takes everything generated so far and returns what may be shown now, so that what
    is shown is always a prefix of what `clean_stage_text` makes of the whole generation.
    Held back: leading space, a repeated opening tag, a trailing part that could still become
    the closing tag or a stop string, trailing space."""

    def __init__(self, stage: Stage, stops: Sequence[str] = ()) -> None:
        self.stage = stage
        self.stops = tuple(s for s in stops if s)
        self.shown = ""

    def feed(self, raw: str) -> str:
        text = raw
        for end in (self.stage.close_tag, *self.stops):
            text = text.split(end, 1)[0]
        text = text.lstrip()
        opening = self.stage.open_tag
        if opening.startswith(text):
            return ""  # nothing yet, or the start of a repeated opening tag
        if text.startswith(opening):
            text = text[len(opening):].lstrip()
        for end in (self.stage.close_tag, *self.stops):
            text = text[:len(text) - _partial_suffix(text, end)]
        return self._show(text.rstrip())

    def finish(self, final: str) -> str:
        """The rest of the stage's final text (as the search chose it)."""
        return self._show(final)

    def _show(self, text: str) -> str:
        if not text.startswith(self.shown) or len(text) <= len(self.shown):
            return ""
        new, self.shown = text[len(self.shown):], text
        return new


def _partial_suffix(text: str, end: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `end`."""
    for size in range(min(len(end) - 1, len(text)), 0, -1):
        if text.endswith(end[:size]):
            return size
    return 0
