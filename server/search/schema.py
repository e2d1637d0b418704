"""Stage schemas (which tagged stages an answer has, which one is the answer) and tag parsing.

Everything here is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from server.search.repetition import LoopWatch, RepetitionRule, find_loop


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


@cache
def all_tags() -> frozenset[str]:
    """Every stage tag of every known schema, open and closing."""
    return frozenset(t for schema in SCHEMAS.values() for s in schema.stages
                     for t in (s.open_tag, s.close_tag))


@cache
def foreign_tags(stage: Stage) -> tuple[str, ...]:
    """The tags that must not appear inside `stage`'s text: every stage tag of every known
    schema (the other stages', another schema's such as <think>), its own opening tag
    included (past its very start), but not its own closing tag, which ends it."""
    return tuple(sorted((all_tags() | {stage.open_tag}) - {stage.close_tag}))


@cache
def leading_tags(stage: Stage) -> tuple[str, ...]:
    """The tags dropped at the start of `stage`'s text: its own opening tag again, and a
    closing tag (the model closing what came before once more), after which the stage may
    still follow."""
    return (stage.open_tag, *(t for t in foreign_tags(stage) if t.startswith("</")))


# what stage text hygiene did to a candidate (the trace's `cleaned`)
REPETITION = "repetition"


@dataclass(frozen=True)
class CleanStage:
    """What `clean_stage` made of a generated stage: its text is raw[start:end]."""

    text: str
    start: int
    end: int
    closed: bool  # the text ends at the stage's own closing tag, written by the model
    cut: bool = False  # cut short by hygiene: at a tag that does not belong, or at a loop
    ended: bool = False  # the raw text holds where the stage ends (closing tag, stop, tag)
    whole: bool = False  # something follows the text in the raw text: its last word is whole
    cleaned: tuple[str, ...] = ()  # what was dropped: "stripped <X>", "cut at <Y>", "repetition"


def clean_stage(stage: Stage, raw: str, stops: Sequence[str] = (),
                repetition: RepetitionRule | None = None) -> CleanStage:
    """A generated stage's text: cut at its closing tag or a caller's stop string, without
    its opening tag repeated, or a closing tag, at its start, cut before any other stage tag
    (another stage, or another schema, begun inside it: what follows is not this stage) and,
    under a `repetition` rule, after the first copy of a loop; stripped of surrounding
    space."""
    end, closed, ended = len(raw), False, False
    close = raw.find(stage.close_tag)
    if close >= 0:
        end, closed, ended = close, True, True
    for stop in stops:
        found = raw.find(stop, 0, end) if stop else -1
        if found >= 0:
            end, ended = found, True
    start, cleaned = _skip_space(raw, 0, end), []
    while lead := next((t for t in leading_tags(stage) if raw.startswith(t, start, end)), None):
        start = _skip_space(raw, start + len(lead), end)
        cleaned.append(f"stripped {lead}")
    tags = [(at, tag) for tag in foreign_tags(stage) if (at := raw.find(tag, start, end)) >= 0]
    if tags:
        end, tag = min(tags)
        closed, ended = False, True
        cleaned.append(f"cut at {tag}")
    while end > start and raw[end - 1].isspace():
        end -= 1
    loop = None if repetition is None else find_loop(raw[start:end], repetition)
    if loop is not None:
        end, closed = start + loop.end, False
        cleaned.append(REPETITION)
    return CleanStage(raw[start:end], start, end, closed, cut=bool(tags) or loop is not None,
                      ended=ended, whole=end < len(raw), cleaned=tuple(cleaned))


def clean_stage_text(stage: Stage, raw: str, stops: Sequence[str] = ()) -> tuple[str, bool]:
    """`clean_stage`'s text, and whether the model closed the stage itself (without a loop
    rule)."""
    clean = clean_stage(stage, raw, stops)
    return clean.text, clean.closed


class StageTextStream:
    """A stage's text while it is being generated, released only where it is final: each
    `feed` takes everything generated so far and returns what may be shown now, so that what
    is shown is always a prefix of what `clean_stage` makes of the whole generation (with the
    same stops and repetition rule). Held back: leading space, a repeated opening tag, a
    trailing part that could still become a tag or a stop string, trailing space and, under a
    repetition rule, the phrases repeated at the end (a loop keeps only its first copy) and a
    last word still being decoded."""

    def __init__(self, stage: Stage, stops: Sequence[str] = (),
                 repetition: RepetitionRule | None = None) -> None:
        self.stage = stage
        self.stops = tuple(s for s in stops if s)
        self.watch = None if repetition is None else LoopWatch(repetition)
        self.shown = ""

    def feed(self, raw: str, final: bool = False) -> str:
        """What more may be shown of `raw` (`final`: the generation is over)."""
        opening = self.stage.open_tag
        if opening.startswith(raw.lstrip()):
            return ""  # nothing yet, or the start of a repeated opening tag
        clean = clean_stage(self.stage, raw, self.stops)
        text = clean.text
        if not (clean.ended or final):
            text = text[:len(text) - _partial_tag(text, self.stage)]
            for stop in self.stops:
                text = text[:len(text) - _partial_suffix(text, stop)]
        if self.watch is not None:
            self.watch.feed(clean.text, clean.whole, clean.ended or final)
            text = text[:self.watch.settled]
        return self._show(text.rstrip())

    def finish(self, final: str) -> str:
        """The rest of the stage's final text (as the search chose it)."""
        return self._show(final)

    def _show(self, text: str) -> str:
        if not text.startswith(self.shown) or len(text) <= len(self.shown):
            return ""
        new, self.shown = text[len(self.shown):], text
        return new


def _skip_space(text: str, start: int, end: int) -> int:
    while start < end and text[start].isspace():
        start += 1
    return start


def _partial_tag(text: str, stage: Stage) -> int:
    """Length of the suffix of `text` that could still become a tag that ends `stage` (its
    closing tag, or a foreign one): from its last `<`, a proper prefix of such a tag."""
    at = text.rfind("<")
    rest = text[at:] if at >= 0 else ""
    tags = (stage.close_tag, *foreign_tags(stage))
    return len(rest) if rest and any(t.startswith(rest) and t != rest for t in tags) else 0


def _partial_suffix(text: str, end: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `end`."""
    for size in range(min(len(end) - 1, len(text)), 0, -1):
        if text.endswith(end[:size]):
            return size
    return 0
