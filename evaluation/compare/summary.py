"""The figures of a comparison, from the predictions alone (pure functions): per system its
accuracy with a 95 % Wilson interval, tokens and latency; for two systems the paired outcome of
every question (both right, only A, only B, neither) and the exact McNemar test."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from evaluation.compare.datasets import Item
from evaluation.compare.predictions import Prediction, latest
from evaluation.records import wilson
from evaluation.scoring import mcnemar_p

OUTCOMES = ("both", "only-a", "only-b", "neither")


@dataclass(frozen=True)
class SystemSummary:
    system: str
    questions: int  # of the dataset
    answered: int  # with a 200 response
    scored: int  # answered and scored (right or wrong)
    right: int
    accuracy: float  # right / questions: a missing or failed answer counts as wrong
    ci_low: float
    ci_high: float
    errors: int  # questions without a 200 response (not asked, or failed)
    undecided: int  # answered, but the scorer gave no verdict
    completion_tokens: float  # mean per answered question
    prompt_tokens: float
    latency_s: float  # mean per answered question
    latency_p50_s: float


@dataclass(frozen=True)
class PairedSummary:
    a: str
    b: str
    n: int
    both: int
    only_a: int
    only_b: int
    neither: int

    @property
    def points(self) -> float:
        """A's lead over B in percentage points."""
        return 100 * (self.only_a - self.only_b) / self.n if self.n else 0.0

    @property
    def p(self) -> float:
        return mcnemar_p(self.only_a, self.only_b)


@dataclass(frozen=True)
class Comparison:
    items: list[Item]
    systems: list[str]
    table: dict[str, dict[str, Prediction]]  # system -> item id -> its latest prediction
    summaries: list[SystemSummary]
    paired: PairedSummary | None

    def prediction(self, system: str, item: Item) -> Prediction | None:
        return self.table[system].get(item.id)

    def outcome(self, item: Item) -> str | None:
        """both / only-a / only-b / neither, for two systems."""
        if len(self.systems) != 2:
            return None
        a, b = (self.prediction(s, item) for s in self.systems)
        return outcome_of(bool(a and a.right), bool(b and b.right))


def outcome_of(right_a: bool, right_b: bool) -> str:
    if right_a:
        return "both" if right_b else "only-a"
    return "only-b" if right_b else "neither"


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def summarise(system: str, items: list[Item], mine: dict[str, Prediction]) -> SystemSummary:
    predictions = [mine[i.id] for i in items if i.id in mine]
    answered = [p for p in predictions if p.ok]
    right = sum(p.right for p in answered)
    low, high = wilson(right, len(items))
    latencies = [p.latency_s for p in answered]
    return SystemSummary(
        system=system, questions=len(items), answered=len(answered),
        scored=sum(p.correct is not None for p in answered), right=right,
        accuracy=right / len(items), ci_low=low, ci_high=high,
        errors=len(items) - len(answered),
        undecided=sum(p.correct is None for p in answered),
        completion_tokens=_mean([float(p.completion_tokens or 0) for p in answered]),
        prompt_tokens=_mean([float(p.prompt_tokens or 0) for p in answered]),
        latency_s=_mean(latencies),
        latency_p50_s=statistics.median(latencies) if latencies else 0.0)


def compare(items: list[Item], systems: list[str], predictions: list[Prediction]
            ) -> Comparison:
    ids = {i.id for i in items}
    table: dict[str, dict[str, Prediction]] = {s: {} for s in systems}
    for (system, item_id), p in latest(predictions).items():
        if system in table and item_id in ids:
            table[system][item_id] = p
    summaries = [summarise(s, items, table[s]) for s in systems]
    paired = None
    if len(systems) == 2:
        a, b = systems
        counts = dict.fromkeys(OUTCOMES, 0)
        for item in items:
            found_a, found_b = table[a].get(item.id), table[b].get(item.id)
            counts[outcome_of(bool(found_a and found_a.right),
                              bool(found_b and found_b.right))] += 1
        paired = PairedSummary(a, b, len(items), counts["both"], counts["only-a"],
                               counts["only-b"], counts["neither"])
    return Comparison(items, systems, table, summaries, paired)
