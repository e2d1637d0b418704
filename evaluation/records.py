"""What the evaluation records, and where: one `Answer` per question and configuration, kept as
one JSON line each in an append-only answers file (`<out stem>.<split>.answers.jsonl`), written as
soon as the answer arrives. A run that stops (crash, Ctrl-C, a server restart) loses nothing but
the requests in flight; the next run with the same file skips every (configuration, question)
already answered with status 200 and asks the rest again. Reports are always computed from the
whole file. Also each configuration's `Summary`, with a 95 % Wilson interval.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any

from evaluation.jsonlines import JsonLines

Key = tuple[str, int]  # (configuration, question index)


@dataclass
class Answer:
    config: str
    index: int  # the question's index in its split
    question: str
    expected: str  # the reference CONCLUSION
    answer: str | None  # message.content (the CONCLUSION); None without a 200 response
    correct: bool
    status: int  # HTTP status of the last attempt; 0 when no response came (connection, time-out)
    latency_s: float  # the last attempt's
    prompt_tokens: int | None = None
    completion_tokens: int | None = None  # every candidate and every judge / verifier token
    cached_tokens: int | None = None  # prompt tokens read from the prefix cache
    reasoning_tokens: int | None = None
    judge_tokens: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    attempts: int = 1
    split: str = "test"
    model: str = ""
    seed: int | None = None  # the request's seed (the same for every configuration)
    run: str = ""  # which invocation asked it (wall time is measured per run and configuration)
    concurrency: int = 0
    started: float = 0.0  # unix time the request (its last attempt) was sent
    finished: float = 0.0  # unix time its answer arrived
    trace: list[dict[str, Any]] | None = None  # compact trace facts (`scoring.trace_facts`)
    # a retracing search's retraces: [the stage scored low, its best score]; None for others
    retraces: list[list[Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def key(self) -> Key:
        return self.config, self.index

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class AnswerLog(JsonLines):
    """The append-only answers file."""

    def read(self) -> list[Answer]:
        """Every answer in the file, in the order written (unreadable lines skipped)."""
        answers = []
        for record in self.read_records():
            try:
                answers.append(Answer.from_dict(record))
            except TypeError:
                print(f"warning: skipped a record of {self.path} that is not an answer",
                      file=sys.stderr)
        return answers

    def append(self, answer: Answer) -> None:
        self.append_record(asdict(answer))


def latest(answers: list[Answer]) -> dict[Key, Answer]:
    """One answer per (configuration, question): the last one with status 200, otherwise the
    last one written."""
    out: dict[Key, Answer] = {}
    for a in answers:
        if a.ok or a.key not in out or not out[a.key].ok:
            out[a.key] = a
    return out


def done(answers: list[Answer]) -> set[Key]:
    """The (configuration, question) pairs a rerun skips: answered with status 200."""
    return {a.key for a in answers if a.ok}


def by_config(answers: list[Answer]) -> dict[str, list[Answer]]:
    """The latest answers, grouped by configuration and sorted by question index."""
    groups: dict[str, list[Answer]] = defaultdict(list)
    for a in latest(answers).values():
        groups[a.config].append(a)
    return {c: sorted(group, key=lambda a: a.index) for c, group in groups.items()}


@dataclass
class Summary:
    config: str
    questions: int  # questions with an answer record (errors included)
    answered: int  # of those, with status 200
    right: int
    accuracy: float  # right / questions: an error counts as wrong
    ci_low: float
    ci_high: float
    completion_tokens: float  # generated tokens per answered question
    prompt_tokens: float  # prompt tokens per answered question
    cached_share: float  # share of prompt tokens read from the prefix cache
    judge_tokens: float  # selection tokens (judge / verifier verdicts) per answered question
    latency_s: float  # mean per answered request
    wall_s_per_question: float  # wall time of the configuration's runs / their questions
    errors: int
    concurrency: str  # the concurrency (or concurrencies) the answers were asked at


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # (rounding can put a bound a hair on the wrong side of p at 0 or 1)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def wall_per_question(answers: list[Answer]) -> float:
    """Each run's span (first request sent to last answer in) summed, over the questions."""
    runs: dict[str, list[Answer]] = defaultdict(list)
    for a in answers:
        runs[a.run].append(a)
    span = sum(max(a.finished for a in group) - min(a.started for a in group)
               for group in runs.values())
    return span / len(answers) if answers else 0.0


def summarise(config: str, answers: list[Answer]) -> Summary:
    """The figures of one configuration, from its latest answers (one per question)."""
    n = len(answers)
    good = [a for a in answers if a.ok]
    right = sum(a.correct for a in good)
    low, high = wilson(right, n)
    prompt = sum(a.prompt_tokens or 0 for a in good)
    cached = sum(a.cached_tokens or 0 for a in good)
    concurrencies = sorted({a.concurrency for a in answers})
    return Summary(
        config=config, questions=n, answered=len(good), right=right,
        accuracy=right / n if n else 0.0, ci_low=low, ci_high=high,
        completion_tokens=_mean([float(a.completion_tokens or 0) for a in good]),
        prompt_tokens=_mean([float(a.prompt_tokens or 0) for a in good]),
        cached_share=cached / prompt if prompt else 0.0,
        judge_tokens=_mean([float(a.judge_tokens or 0) for a in good]),
        latency_s=_mean([a.latency_s for a in good]),
        wall_s_per_question=wall_per_question(answers),
        errors=n - len(good), concurrency="/".join(str(c) for c in concurrencies))
