"""Everything the report shows, computed from the answers file alone: per configuration its
summary and selection report, and the planned paired comparisons (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from evaluation.configs import (
    BEST_OF_N,
    GREEDY,
    RETRACE,
    SELECTORS,
    STAGE,
    ordered,
    try_parse,
)
from evaluation.records import Answer, Summary, by_config, summarise
from evaluation.scoring import Paired, SelectionReport, paired, score

WIDTH = 4  # the width the headline comparisons are made at


@dataclass
class Results:
    answers: dict[str, list[Answer]]  # the latest answer per question, by configuration
    summaries: dict[str, Summary]
    selection: dict[str, SelectionReport]

    @property
    def configs(self) -> list[str]:
        return list(self.summaries)

    @property
    def questions(self) -> int:
        """How many questions of the split the answers cover (the highest index + 1)."""
        return 1 + max((a.index for group in self.answers.values() for a in group), default=-1)

    def has(self, *names: str) -> bool:
        return all(n in self.summaries for n in names)

    def pair(self, a: str, b: str) -> Paired:
        return paired(a, self.answers[a], b, self.answers[b])

    def tokens(self, name: str) -> float:
        return self.summaries[name].completion_tokens

    def headroom(self) -> tuple[float, float] | None:
        """(greedy's accuracy, the best-of-4 oracle): what a search of four candidates could add
        at most over greedy, with a perfect pick among four sampled answers (the highest oracle
        of the best-of-N width-4 configurations with every candidate sampled)."""
        greedy = next((s.accuracy for n, s in self.summaries.items()
                       if (c := try_parse(n)) is not None and c.search == GREEDY), None)
        oracles = [self.selection[n].oracle_share for n in self.configs
                   if (c := try_parse(n)) is not None and c.search == BEST_OF_N
                   and c.width == WIDTH and not c.greedy]
        return None if greedy is None or not oracles else (greedy, max(oracles))


def analyse(answers: list[Answer]) -> Results:
    groups = by_config(answers)
    names = ordered(list(groups))
    return Results({n: groups[n] for n in names},
                   {n: summarise(n, groups[n]) for n in names},
                   {n: score(n, groups[n]) for n in names})


def stage_name(selector: str, width: int) -> str:
    return f"stage-{selector}-{width}"


def bon_name(selector: str, width: int) -> str:
    return f"bon-{selector}-{width}"


def planned_pairs(names: list[str]) -> list[tuple[str, str, str]]:
    """(a, b, what it asks) for the comparisons the report makes, among the configurations run:
    every stage configuration at width 4 against greedy; best-of-N at 4 against greedy; each
    stage-X-4 against bon-X-4 (same selector, similar compute); and per selector, the stage
    widths against each other (4 vs 2, 8 vs 4, 8 vs 2); a retracing or budgeted search against
    the fixed-width stage search of its selector at width 4 (and against greedy); a search
    with a greedy candidate against the same search with every candidate sampled."""
    present = set(names)
    pairs: list[tuple[str, str, str]] = []

    def add(a: str, b: str, why: str) -> None:
        if a in present and b in present:
            pairs.append((a, b, why))

    for name in names:
        config = try_parse(name)
        if config and config.search == STAGE and config.width == WIDTH and config.fixed:
            add(name, "greedy", "stage search against no search")
    for name in names:
        config = try_parse(name)
        if config and config.search == BEST_OF_N and config.width == WIDTH and config.fixed:
            add(name, "greedy", "best-of-N against no search")
    for selector in SELECTORS:
        add(stage_name(selector, WIDTH), bon_name(selector, WIDTH),
            "stage search against best-of-N, same selector")
    for selector in SELECTORS:
        add(stage_name(selector, 4), stage_name(selector, 2), "width 4 against 2")
        add(stage_name(selector, 8), stage_name(selector, 4), "width 8 against 4")
        add(stage_name(selector, 8), stage_name(selector, 2), "width 8 against 2")
    for name in names:
        config = try_parse(name)
        if config is None or config.search == BEST_OF_N or (config.fixed
                                                            and config.search != RETRACE):
            continue
        why = "retrace against keep-1" if config.search == RETRACE else "budget against fixed"
        add(name, stage_name(str(config.selector), WIDTH), f"{why} width {WIDTH}")
        add(name, "greedy", f"{'retrace' if config.search == RETRACE else 'budget'} against "
            "no search")
    for name in names:
        config = try_parse(name)
        if config is not None and config.greedy:
            add(name, replace(config, greedy=False).name, "greedy candidate against all sampled")
    return pairs


def comparisons(results: Results) -> list[tuple[Paired, str]]:
    return [(results.pair(a, b), why) for a, b, why in planned_pairs(results.configs)]
