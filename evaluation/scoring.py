"""What the selectors got right and wrong, read from the returned traces (pure functions).

The shape questions come with the right text of every stage, so every candidate a search sampled
can be marked: right when its text is the reference stage's after whitespace normalisation (for
a CONCLUSION, when `tinycot.task.is_correct` accepts it), wrong otherwise, unusable when empty.
For best-of-N the candidates of the one choice are whole chains: a chain is right when its answer
is. `trace_facts` turns a response's `message.stages` into these marks (what the answers file
keeps), and from them, per configuration:

- oracle: the share of questions where some final candidate (a CONCLUSION candidate, or a
  best-of-N chain) was right: what a perfect selector would have scored on that search;
- decisive choices: the choices (a stage, or best-of-N's final choice among chains) where some
  but not all usable candidates were right, and the share where the selector kept a right one.
  Only these say anything about a selector: when all candidates are right, or all wrong, any pick
  scores the same. Tallied per stage and per deciding method (`selected_by`); the REASONING
  choices also by the result each candidate reaches (`tinycot.onpolicy.reaches_right`: its final
  count, colour or side, the outcome the verifier is trained to judge), where a miscount that
  lands on the right number is right;
- the judge's decisive comparisons: of its pairwise comparisons where exactly one of the pair was
  right, the share it decided for that one (50 % is a coin);
- how each stage was decided (`selected_by` counts: the selector's name, `only` for one usable
  candidate, `agree` when `auto` found them all saying the same);
- `mcnemar_p`, the exact paired test used to compare configurations.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from evaluation.records import Answer
from tinycot.onpolicy import reaches_right
from tinycot.task import is_correct

ANSWER_TAG = "CONCLUSION"
CHAINS = "chains"  # the key of best-of-N's final choice among whole chains
STAGE_ORDER = ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION", CHAINS)
BY_RESULT = "REASONING"  # the stage whose candidates are also marked by the result they reach
Mark = bool | None  # right, wrong, or unusable (empty)


def normalise_space(text: str) -> str:
    return " ".join(text.split())


def candidate_right(tag: str, text: str, reference: dict[str, str]) -> bool:
    """Whether one stage candidate is right: the reference text (whitespace aside), or for the
    CONCLUSION, the right answer."""
    if tag not in reference:
        return False
    if tag == ANSWER_TAG:
        return is_correct(text, reference[tag])
    return normalise_space(text) == normalise_space(reference[tag])


def _mark(tag: str, text: str | None, reference: dict[str, str]) -> Mark:
    return candidate_right(tag, text, reference) if text else None


def _pairs(stage: dict[str, Any]) -> list[list[int]]:
    return [[c["first"], c["second"], c["winner"]] for c in stage.get("comparisons") or ()]


def trace_facts(stages: list[dict[str, Any]] | None, reference: dict[str, str],
                best_of_n: bool) -> list[dict[str, Any]] | None:
    """The facts scoring needs from one response's `message.stages`, compact enough to keep in
    the answers file: per choice its key (the stage tag, or CHAINS), what decided it (`by`), the
    chosen index, each candidate's mark and the judge's comparisons [first, second, winner].
    Best-of-N gives one choice, among the chains (the last stage's candidates are their answers)."""
    if not stages:
        return None
    if best_of_n:
        last = stages[-1]
        answers = last["tag"] == ANSWER_TAG
        marks = [(answers and is_correct(c["text"], reference[ANSWER_TAG])) if c["text"]
                 else None for c in last["candidates"]]
        return [{"tag": CHAINS, "by": last.get("selected_by", ""),
                 "chosen": last["chosen_index"], "right": marks, "pairs": _pairs(last),
                 **_signals(last)}]
    facts = []
    for stage in stages:
        fact: dict[str, Any] = {
            "tag": stage["tag"], "by": stage.get("selected_by", ""),
            "chosen": stage["chosen_index"],
            "right": [_mark(stage["tag"], c["text"], reference) for c in stage["candidates"]],
            "pairs": _pairs(stage), **_signals(stage)}
        if stage["tag"] == BY_RESULT and BY_RESULT in reference:
            fact["reaches"] = [reaches_right(BY_RESULT, c["text"], reference[BY_RESULT])
                               if c["text"] else None for c in stage["candidates"]]
        if stage.get("fallback"):
            fact["fallback"] = True
        facts.append(fact)
    return facts


def _signals(stage: dict[str, Any]) -> dict[str, list[float | None]]:
    """Each candidate's verifier score and mean token log-probability, where the trace has
    them: what lets the report ask how another selector would have chosen."""
    candidates = stage["candidates"]
    out: dict[str, list[float | None]] = {}
    for key, name in (("score", "scores"), ("mean_logprob", "logprobs")):
        values = [c.get(key) for c in candidates]
        if any(v is not None for v in values):
            out[name] = [None if v is None else round(float(v), 4) for v in values]
    return out


def is_decisive(marks: list[Mark]) -> bool:
    """Some but not all usable candidates are right."""
    usable = [m for m in marks if m is not None]
    return any(usable) and not all(usable)


@dataclass
class Tally:
    n: int = 0
    right: int = 0

    def add(self, right: bool) -> None:
        self.n += 1
        self.right += bool(right)

    def merge(self, other: Tally) -> None:
        self.n += other.n
        self.right += other.right

    @property
    def accuracy(self) -> float | None:
        return self.right / self.n if self.n else None


@dataclass
class SelectionReport:
    config: str
    questions: int = 0  # answers (errors included: they count as no right candidate)
    oracle: int = 0  # questions with a right final candidate
    decisive: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))  # by stage
    by_result: Tally = field(default_factory=Tally)  # decisive REASONING choices, by result
    by_method: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    pairs: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))  # judge, by stage
    methods: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def oracle_share(self) -> float:
        return self.oracle / self.questions if self.questions else 0.0

    @property
    def all_decisive(self) -> Tally:
        return pooled(self.decisive.values())

    @property
    def all_decisive_by_result(self) -> Tally:
        """All decisive choices, with the REASONING ones judged by the result they reach."""
        return pooled([*(t for k, t in self.decisive.items() if k != BY_RESULT),
                       self.by_result])

    @property
    def all_pairs(self) -> Tally:
        return pooled(self.pairs.values())

    def add(self, answer: Answer) -> None:
        self.questions += 1
        if not answer.ok or not answer.trace:
            return
        last = answer.trace[-1]
        if last["tag"] in (ANSWER_TAG, CHAINS) and any(m is True for m in last["right"]):
            self.oracle += 1
        for fact in answer.trace:
            tag, marks, by = fact["tag"], fact["right"], fact.get("by", "")
            self.methods[tag][by] += 1
            if is_decisive(marks):
                kept = marks[fact["chosen"]] is True
                self.decisive[tag].add(kept)
                self.by_method[by].add(kept)
            reaches = fact.get("reaches")
            if reaches is not None and is_decisive(reaches):
                self.by_result.add(reaches[fact["chosen"]] is True)
            for first, second, winner in fact.get("pairs") or ():
                a, b = marks[first], marks[second]
                if a is not None and b is not None and a != b:
                    self.pairs[tag].add(marks[winner] is True)


def pooled(tallies: Iterable[Tally]) -> Tally:
    total = Tally()
    for t in tallies:
        total.merge(t)
    return total


def score(config: str, answers: list[Answer]) -> SelectionReport:
    report = SelectionReport(config)
    for a in answers:
        report.add(a)
    return report


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar test on paired outcomes (questions one config got right and the
    other wrong): the chance of a split at least this lopsided if both were equally good."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Paired:
    """Two configurations on the questions both answered (an error counts as wrong)."""

    a: str
    b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    a_only: int  # right by a, wrong by b
    b_only: int

    @property
    def points(self) -> float:
        """a's lead over b, in percentage points (from the counts: exact at the thresholds)."""
        return 100 * (self.a_only - self.b_only) / self.n if self.n else 0.0

    @property
    def p(self) -> float:
        return mcnemar_p(self.a_only, self.b_only)


def paired(a: str, answers_a: list[Answer], b: str, answers_b: list[Answer]) -> Paired:
    right_a = {x.index: x.ok and x.correct for x in answers_a}
    right_b = {x.index: x.ok and x.correct for x in answers_b}
    common = sorted(right_a.keys() & right_b.keys())
    n = len(common)
    return Paired(a, b, n,
                  sum(right_a[i] for i in common) / n if n else 0.0,
                  sum(right_b[i] for i in common) / n if n else 0.0,
                  sum(right_a[i] and not right_b[i] for i in common),
                  sum(right_b[i] and not right_a[i] for i in common))
