"""Picking one candidate out of many, as pure logic: the knockout tournament (over an async
`judge_round` callback), the highest mean log-probability, answer votes and text consensus, and
the verifier's probability of "yes". The engine calls that feed them are in `selection.py`."""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from server.search.trace import Candidate, Comparison

# One round of a tournament: all its (first, second) pairs are judged at once; for each pair the
# callback returns the winner (one of the two indices) and the judge's confidence, if known.
JudgeRound = Callable[[list[tuple[int, int]]], Awaitable[list[tuple[int, float | None]]]]

NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"))}
_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")


@dataclass(frozen=True)
class TournamentResult:
    winner: int
    comparisons: tuple[Comparison, ...]


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


def best_by_logprob(candidates: Sequence[Candidate], among: Sequence[int] | None = None) -> int:
    """Index of the candidate (of `among`, default: the usable ones) with the highest mean token
    log-probability."""
    pool = list(among) if among is not None else [i for i, c in enumerate(candidates) if c.usable]
    pool = pool or list(range(len(candidates)))
    return max(pool, key=lambda i: candidates[i].mean_logprob)


def normalise(text: str) -> str:
    """An answer's comparable form: lower case, words and numbers only, number words as digits,
    a trailing full stop and extra spacing gone ("Three." == "3" == " three ")."""
    words = _WORD.findall(text.lower())
    return " ".join(NUMBER_WORDS.get(w, w) for w in words)


def candidates_agree(candidates: Sequence[Candidate]) -> bool:
    """True when every usable candidate says the same thing (normalised)."""
    return len({normalise(c.text) for c in candidates if c.usable}) <= 1


def answer_groups(texts: Sequence[str], among: Sequence[int]) -> dict[str, list[int]]:
    """Candidates (of `among`) grouped by their normalised answer, in first-seen order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in among:
        groups[normalise(texts[i])].append(i)
    return dict(groups)


def majority(texts: Sequence[str], among: Sequence[int], tiebreak: Callable[[int], float],
             weights: Sequence[float] | None = None) -> tuple[list[int], float]:
    """The candidates (of `among`) that give the answer with the most votes (each candidate
    counts its weight, default 1), and that answer's share of all votes. Between answers with
    equal votes, the one whose best member ranks highest by `tiebreak` wins."""
    groups = answer_groups(texts, among)

    def votes(members: list[int]) -> float:
        return sum(1.0 if weights is None else weights[i] for i in members)

    best = max(groups.values(), key=lambda m: (votes(m), max(tiebreak(i) for i in m)))
    everything = sum(votes(m) for m in groups.values())
    return best, (votes(best) / everything if everything > 0 else 0.0)


def consensus(texts: Sequence[str], among: Sequence[int]) -> list[int]:
    """The candidates whose text agrees most with the others' (minimum Bayes risk with a word
    sequence similarity): the centre of the sample. More than one when they tie."""
    words = {i: normalise(texts[i]).split() for i in among}

    def agreement(i: int) -> float:
        return sum(SequenceMatcher(None, words[i], words[j], autojunk=False).ratio()
                   for j in among if j != i)

    scores = {i: agreement(i) for i in among}
    top = max(scores.values())
    return [i for i in among if math.isclose(scores[i], top, abs_tol=1e-9)]


def option_probability(picked: int, logprobs: Sequence[float | None], option: int) -> float:
    """Probability of `option` among the options of a constrained one-token answer, from the
    options' logprobs where all are known (renormalised over the options), otherwise from the
    greedy pick alone."""
    if all(lp is not None for lp in logprobs):
        known = [lp for lp in logprobs if lp is not None]
        top = max(known)
        weights = [math.exp(lp - top) for lp in known]
        return weights[option] / sum(weights)
    return 1.0 if picked == option else 0.0
