"""Picking one candidate out of many: a knockout tournament judged by the model, or the highest
mean token log-probability. The tournament is pure logic over an async `judge_round` callback."""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from server.search.trace import Candidate, Comparison

# One round of a tournament: all its (first, second) pairs are judged at once; for each pair the
# callback returns the winner (one of the two indices) and the judge's confidence, if known.
JudgeRound = Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, float | None]]]]

SELECTORS = ("judge", "logprob", "best_of_n", "auto")


@dataclass(frozen=True)
class TournamentResult:
    winner: int
    comparisons: tuple[Comparison, ...]

    @property
    def rounds(self) -> int:
        return max((c.round for c in self.comparisons), default=0)


async def knockout(entrants: Sequence[int], judge_round: JudgeRound,
                   rng: random.Random | None = None) -> TournamentResult:
    """Single elimination over `entrants` (candidate indices): ceil(log2 N) rounds, N-1
    comparisons. Pairs of a round are judged together. With an `rng`, the order inside each pair
    is shuffled, so no candidate is always shown first (position bias)."""
    alive = list(entrants)
    if not alive:
        raise ValueError("a tournament needs at least one entrant")
    comparisons: list[Comparison] = []
    round_no = 0
    while len(alive) > 1:
        round_no += 1
        pairs = [(alive[i], alive[i + 1]) for i in range(0, len(alive) - 1, 2)]
        if rng is not None:
            pairs = [(b, a) if rng.random() < 0.5 else (a, b) for a, b in pairs]
        verdicts = await judge_round(pairs)
        survivors = []
        for (first, second), (winner, confidence) in zip(pairs, verdicts, strict=True):
            if winner not in (first, second):
                raise ValueError(f"judge returned {winner}, not one of {first}, {second}")
            comparisons.append(Comparison(round_no, first, second, winner, confidence))
            survivors.append(winner)
        if len(alive) % 2:  # odd one out gets a bye
            survivors.append(alive[-1])
        alive = survivors
    return TournamentResult(alive[0], tuple(comparisons))


def expected_rounds(n: int) -> int:
    return math.ceil(math.log2(n)) if n > 1 else 0


def best_by_logprob(candidates: Sequence[Candidate]) -> int:
    """Index of the usable candidate with the highest mean token log-probability."""
    usable = [i for i, c in enumerate(candidates) if c.usable] or list(range(len(candidates)))
    return max(usable, key=lambda i: candidates[i].mean_logprob)


def candidates_agree(candidates: Sequence[Candidate]) -> bool:
    """True when every usable candidate says the same thing (ignoring case and spacing)."""
    texts = {" ".join(c.text.lower().split()) for c in candidates if c.usable}
    return len(texts) <= 1
