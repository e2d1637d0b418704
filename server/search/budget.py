"""A request's compute budget, and the spending rule every search shape follows under one.

A budget caps what the search generates: every sampled candidate and every selection verdict
(`usage.completion_tokens`). It is given in tokens (`search_budget`), or in answers (a
`reasoning_effort` preset: so many times what one candidate per stage costs, whatever the
model's answers' length). Under a budget the search widens only where it pays to: each stage
starts with two candidates, takes them at once when they agree, and samples more (up to its
width) only while they disagree and the budget affords it; best-of-N adds chains the same way.

Nothing is started that the budget cannot afford by the search's own estimate: a batch's
candidates at the mean length of the stage's candidates so far (before the stage's first, the
mean of the request's candidates so far; before any, the stage's cap), its selection verdicts,
and one candidate of every stage after it. Where not even two candidates fit, a stage gets one
and no selection. An answer is never cut short for the budget (the caller's `max_tokens` does
that): where the estimate was short, the last single candidates can take the total past it.
Pure: no engine, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

FIRST_BATCH = 2  # candidates a budgeted stage starts with: enough to see whether they agree
MORE_BATCH = 2  # candidates added at a time while they disagree


@dataclass(frozen=True)
class SearchBudget:
    """At most `tokens` generated, or at most `answers` times one answer (one candidate per
    stage, as estimated while the search goes); both may be set (the lower binds)."""

    tokens: int | None = None
    answers: float | None = None

    def __post_init__(self) -> None:
        if self.tokens is None and self.answers is None:
            raise ValueError("a budget needs tokens or answers")


@dataclass
class Spending:
    """One search run's spending against its budget: the candidates' lengths seen so far, per
    stage, which make the estimates."""

    budget: SearchBudget
    caps: dict[str, int]  # each stage's token cap, by tag (the estimate before anything is seen)
    order: tuple[str, ...]  # the stages' tags, in order
    seen: dict[str, list[int]] = field(default_factory=dict)

    def saw(self, tag: str, token_counts: Sequence[int]) -> None:
        self.seen.setdefault(tag, []).extend(token_counts)

    def estimate(self, tag: str) -> float:
        """Tokens one more candidate of the stage is expected to cost."""
        own = self.seen.get(tag)
        if own:
            return sum(own) / len(own)
        every = [n for counts in self.seen.values() for n in counts]
        if every:
            return min(sum(every) / len(every), self.caps[tag])
        return float(self.caps[tag])

    def answer_estimate(self) -> float:
        """One candidate of every stage."""
        return sum(self.estimate(tag) for tag in self.order)

    def limit(self) -> float:
        limits = []
        if self.budget.tokens is not None:
            limits.append(float(self.budget.tokens))
        if self.budget.answers is not None:
            limits.append(self.budget.answers * self.answer_estimate())
        return min(limits)

    def affords(self, spent: int, tag: str, candidates: int, verdicts: int) -> bool:
        """Whether `candidates` more of stage `tag` and `verdicts` selection calls fit, with one
        candidate of each stage after it kept in reserve."""
        return self.affords_batches(spent, [(tag, candidates, verdicts)])

    def affords_batches(self, spent: int, batches: Sequence[tuple[str, int, int]]) -> bool:
        """Whether the batches (stage tag, candidates, verdicts) fit, in their order, with one
        candidate of each stage after the last one kept in reserve."""
        cost = sum(n * self.estimate(tag) + verdicts for tag, n, verdicts in batches)
        later = self.order[self.order.index(batches[-1][0]) + 1:]
        reserve = sum(self.estimate(t) for t in later)
        return spent + cost + reserve <= self.limit()

    def affords_answers(self, spent: int, answers: int, verdicts: int) -> bool:
        """Whether `answers` more whole answers (best-of-N chains) and `verdicts` fit."""
        return spent + answers * self.answer_estimate() + verdicts <= self.limit()
