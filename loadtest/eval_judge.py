"""What the search's selector got right and wrong, read from the returned traces.

The shape questions come with the right text of every stage, so each candidate a search sampled
can be marked right (its text is the reference stage's, or for a CONCLUSION, the right answer)
or wrong. From that, per configuration:
- the oracle: the share of questions where some CONCLUSION candidate was right (what a perfect
  selector would have scored);
- per stage, the judge's decisive comparisons (exactly one of the pair right) and the share it
  decided for the right one (50 % is a coin);
- the stages the `auto` selector judged, and those it settled without the judge.
Pure functions over dictionaries as the server returns them (`message.stages`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from server.shapes_data import is_correct

Stages = list[dict[str, Any]]  # message.stages of one response


@dataclass
class JudgeTally:
    decisive: int = 0  # comparisons where exactly one of the pair was right
    right: int = 0  # of those, decided for the right one

    @property
    def accuracy(self) -> float | None:
        return self.right / self.decisive if self.decisive else None


@dataclass
class SelectionReport:
    config: str
    questions: int = 0
    oracle: int = 0  # questions with a right CONCLUSION among the candidates
    stages_with_choice: int = 0  # stages with more than one usable candidate
    stages_judged: int = 0  # of those, decided by the judge
    judge: dict[str, JudgeTally] = field(default_factory=lambda: defaultdict(JudgeTally))

    @property
    def oracle_share(self) -> float:
        return self.oracle / self.questions if self.questions else 0.0


def candidate_right(tag: str, text: str, reference: dict[str, str]) -> bool:
    if tag == "CONCLUSION":
        return is_correct(text, reference[tag])
    return text.strip() == reference[tag].strip()


def chain_right(stages: Stages, index: int, reference: dict[str, str]) -> bool:
    """Best-of-N: chain `index` is right when its CONCLUSION is (its earlier stages aside)."""
    last = stages[-1]
    return last["tag"] == "CONCLUSION" and candidate_right(
        "CONCLUSION", last["candidates"][index]["text"], reference)


def add_answer(report: SelectionReport, stages: Stages | None, reference: dict[str, str],
               whole_chains: bool) -> None:
    """Tally one response's trace; `whole_chains` for best-of-N, whose candidates are chains."""
    report.questions += 1
    if not stages:
        return
    last = stages[-1]
    if last["tag"] == "CONCLUSION" and any(
            candidate_right("CONCLUSION", c["text"], reference) for c in last["candidates"]):
        report.oracle += 1
    for stage in stages:
        usable = [c for c in stage["candidates"] if c["text"]]
        if len(usable) > 1 and not whole_chains:
            report.stages_with_choice += 1
            report.stages_judged += bool(stage["comparisons"])
        for comparison in stage["comparisons"]:
            first, second = comparison["first"], comparison["second"]
            if whole_chains:
                name = "complete answer"
                marks = [chain_right(stages, i, reference) for i in (first, second)]
            else:
                name = stage["tag"]
                marks = [candidate_right(name, stage["candidates"][i]["text"], reference)
                         for i in (first, second)]
            if marks[0] != marks[1]:
                tally = report.judge[name]
                tally.decisive += 1
                tally.right += marks[comparison["winner"] == second]  # the winner's mark


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar test on paired outcomes (questions one config got right and the
    other wrong): the chance of a split at least this lopsided if both were equally good."""
    n = a_only + b_only
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a_only, b_only) + 1)) / 2 ** n
    return min(1.0, 2 * tail)
