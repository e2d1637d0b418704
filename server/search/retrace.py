"""Retracing search (LLaVA-CoT's SWIRES, "stage-wise retracing", over any stage schema):

    kept = [the question]
    for stage in schema:
        candidates += branch(each kept chain)        # width in all, shared among the chains
        score(candidates)                            # the verifier's P("yes"), each asked once
        if best(candidates) < threshold and retraces left and a stage before it:
            go back: the stage before branches again from its kept chains, then this one
        kept = best `keep` of the candidates         # the answer stage: the best one

A stage's candidates accumulate over its passes: a pass after a retrace adds to those of the
passes before (as the reference keeps its earlier reasoning candidates), so a retrace can only
add choices. Every chain's candidates of a pass are sampled at once (one engine call per kept
chain, all awaited together, batched with other requests'). Under a budget (budget.py) the
first pass samples two candidates (nothing is known yet of what candidates cost), a pass samples
one candidate per chain where the full width does not fit, or only the best chain's one, and a
retrace is taken only where the budget affords both passes again.

The trace keeps every candidate of every pass with its parent (the previous stage's candidate
it continues) and its pass, and each retrace (`Trace.retraces`); the chosen path is the
answer's chain. Its stages are final only once the answer is chosen, so they are yielded then.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

from server.search.budget import FIRST_BATCH, Spending
from server.search.interface import Prompt, PromptTooLong
from server.search.params import SearchParams
from server.search.prompts import PromptBuilder
from server.search.schema import Stage
from server.search.selection import Pool, Selecting
from server.search.trace import Candidate, Retraced, Selection, StageResult, Trace

Chain = list[tuple[Stage, Candidate]]


class Run(Protocol):
    """What the retracing search needs of its search run (`beam.SearchRun`)."""

    params: SearchParams
    path: tuple[Any, ...]
    prompts: PromptBuilder
    base: str
    trace: Trace
    selecting: Selecting
    spending: Spending | None

    def cap(self, stage: Stage, path_tokens: int | None = None) -> int: ...

    async def sample(self, prompt: Prompt, stage: Stage, cap: int, n: int,
                     seed_path: tuple[Any, ...]) -> tuple[list[Candidate], bool]: ...

    def append(self, result: StageResult) -> None: ...

    def cut_by_budget(self, result: StageResult, cap: int) -> bool: ...

    def stage_done(self, tag: str, seconds: float, candidates: int, comparisons: int
                   ) -> None: ...


@dataclass(frozen=True)
class Entry:
    """One candidate of a stage, where it came from, and its verifier score."""

    candidate: Candidate
    parent: int | None  # index of the previous stage's entry it continues
    attempt: int  # the pass over its stage that sampled it (0: the first)
    prompt: Prompt  # the prompt it continues
    score: float | None = None
    fallback: bool = False  # every sampled candidate of its call was empty: a greedy one


class Retrace:
    """One request's retracing search over its SearchRun (prompts, engine calls, usage)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.params = run.params
        self.stages = run.params.schema.stages
        self.entries: list[list[Entry]] = [[] for _ in self.stages]
        self.kept: list[list[int]] = [[] for _ in self.stages]
        self.attempts = [0] * len(self.stages)
        self.known: dict[str, float] = {}  # verification answers by prompt, asked once

    async def search(self) -> None:
        index = 0
        while index < len(self.stages):
            if not await self.branch(index):
                if not self.entries[index]:  # nothing of this stage: the answer ends here
                    self.run.trace.finish_reason = "length"
                    break
                # no room for another pass (the caller's max_tokens, the context): the stage
                # goes on with the candidates of its earlier passes
            else:
                best = self.best_score(index)
                if self.should_retrace(index, best):
                    assert best is not None
                    self.run.trace.retraces.append(Retraced(
                        self.stages[index].tag, best, self.stages[index - 1].tag))
                    index -= 1
                    continue
            self.kept[index] = self.keep(index)
            index += 1
        self.write_trace(index)

    # ------------------------------------------------------------------ branch and score

    def parents(self, index: int) -> list[int | None]:
        return list(self.kept[index - 1]) if index else [None]

    async def branch(self, index: int) -> bool:
        """One more pass over the stage: candidates from each kept chain, scored. False where
        no chain has room for the stage (the caller's max_tokens, or the model's context after
        the first stage); the first stage's prompt too long for the context is raised."""
        stage = self.stages[index]
        caps = {p: self.run.cap(stage, self.tokens(index, p)) for p in self.parents(index)}
        parents = [p for p, cap in caps.items() if cap > 0]
        if not parents:
            return False
        attempt, started = self.attempts[index], time.monotonic()
        self.attempts[index] += 1
        counts = self.shares(len(parents))
        spending = self.run.spending
        if spending is not None and not spending.seen:  # nothing to estimate from yet: two
            counts = self.shares(len(parents), min(FIRST_BATCH, self.params.beam_width))
        if not self.affords(index, sum(counts)):  # under a budget: one candidate per chain,
            counts = [1] * len(parents)  # or only the best chain's
            if not self.affords(index, len(parents)):
                parents, counts = parents[:1], [1]
        calls = [self._sample(stage, n, caps[p], p, index, attempt)
                 for p, n in zip(parents, counts, strict=True)]
        try:
            made = await asyncio.gather(*calls)
        except PromptTooLong:
            if index == 0:
                raise
            return False
        for entries in made:
            self.entries[index].extend(entries)
        await self.score(index)
        sampled = sum(e.attempt == attempt for e in self.entries[index])
        self.run.stage_done(stage.tag, time.monotonic() - started, sampled, 0)
        return True

    def shares(self, chains: int, width: int | None = None) -> list[int]:
        """The width (the request's) shared among the kept chains (the first ones one more
        where it does not divide), at least one each."""
        width = self.params.beam_width if width is None else width
        return [max(1, width // chains + (i < width % chains)) for i in range(chains)]

    async def _sample(self, stage: Stage, n: int, cap: int, parent: int | None, index: int,
                      attempt: int) -> list[Entry]:
        """`n` candidates continuing the chain of `parent` (the search run's sampling: one
        greedy candidate instead where none is usable)."""
        prompt = self.run.prompts.stage(self.run.base, self.chain(index, parent), stage)
        seed_path = (*self.run.path, "retrace", index, attempt, -1 if parent is None else parent)
        candidates, fallback = await self.run.sample(prompt, stage, cap, n, seed_path)
        return [Entry(c, parent, attempt, prompt, fallback=fallback) for c in candidates]

    async def score(self, index: int) -> None:
        """Every candidate of the stage scored (prompts asked before are not asked again)."""
        entries = self.entries[index]
        stage = self.stages[index]
        pool = Pool(
            stage=stage, is_answer=stage.tag == self.params.schema.answer_tag,
            candidates=tuple(e.candidate for e in entries),
            transcripts=tuple((*e.prompt, *e.candidate.as_prompt(stage.close_tag))
                              for e in entries),
            judge_prefix=(), judge_firsts=(), judge_shown=(), what=f"the {stage.tag} stage",
            criterion=stage.judge_criterion,
            evidence=tuple(self.run.prompts.evidence(self.chain(index, e.parent), stage)
                           for e in entries))
        try:
            scores = await self.run.selecting.scores(pool, self.known)
        except PromptTooLong:  # a verification outgrew the context: ranked by logprob
            scores = [e.score for e in entries]
        self.entries[index] = [replace(e, score=s) for e, s in zip(entries, scores, strict=True)]

    def best_score(self, index: int) -> float | None:
        scores = [e.score for e in self.entries[index] if e.score is not None]
        return max(scores) if scores else None

    def should_retrace(self, index: int, best: float | None) -> bool:
        """Back a stage: the best score is known and low, retraces are left, there is a stage
        before, and the budget affords that stage's pass and this one's again."""
        if index == 0 or best is None or best >= self.params.retrace_threshold:
            return False
        if len(self.run.trace.retraces) >= self.params.max_retraces:
            return False
        return self.affords(index - 1, self.params.beam_width, also=index)

    def keep(self, index: int) -> list[int]:
        """The best `keep` usable candidates of the stage (one at the answer stage), by score
        then mean logprob, one per distinct chain (the same text after the same parent is the
        same chain)."""
        entries = self.entries[index]
        usable = [i for i, e in enumerate(entries) if e.candidate.usable] or [0]
        ranked = sorted(usable, key=lambda i: (-(entries[i].score or 0.0),
                                               -entries[i].candidate.mean_logprob, i))
        last = index == len(self.stages) - 1
        want = 1 if last else max(1, self.params.keep)
        kept: list[int] = []
        seen: set[tuple[int | None, str]] = set()
        for i in ranked:
            key = (entries[i].parent, entries[i].candidate.text)
            if key not in seen:
                seen.add(key)
                kept.append(i)
            if len(kept) == want:
                break
        return kept

    # ------------------------------------------------------------------ chains and budget

    def chain(self, index: int, parent: int | None) -> Chain:
        """The stages before `index` along the chain ending in entry `parent` of stage
        index - 1."""
        chain: Chain = []
        at, p = index - 1, parent
        while p is not None and at >= 0:
            entry = self.entries[at][p]
            chain.append((self.stages[at], entry.candidate))
            at, p = at - 1, entry.parent
        return chain[::-1]

    def tokens(self, index: int, parent: int | None) -> int:
        return sum(c.token_count for _, c in self.chain(index, parent))

    def affords(self, index: int, candidates: int, also: int | None = None) -> bool:
        """Whether the budget (if any) affords a pass of `candidates` over stage `index`, and
        then a full pass over stage `also`."""
        spending = self.run.spending
        if spending is None:
            return True
        batches = [(self.stages[index].tag, candidates, candidates)]
        if also is not None:
            width = self.params.beam_width
            batches.append((self.stages[also].tag, width, width))
        return spending.affords_batches(self.run.trace.usage.completion_tokens, batches)

    # ------------------------------------------------------------------ trace

    def write_trace(self, reached: int) -> None:
        """Every stage settled along the best chain: each stage's candidates of every pass,
        the chain's one chosen."""
        last = min(reached, len(self.stages)) - 1
        if last < 0:
            return
        winner = self.kept[last][0] if self.kept[last] else self.keep(last)[0]
        path: list[int] = []
        at, i = last, winner
        while at >= 0:
            path.append(i)
            parent = self.entries[at][i].parent
            at -= 1
            if parent is None:
                break
            i = parent
        for index, chosen in enumerate(reversed(path)):
            entries = self.entries[index]
            scores = tuple(e.score for e in entries)
            method = "verify" if any(s is not None for s in scores) else (
                "only" if len(entries) == 1 else "agree")
            result = StageResult(self.stages[index], tuple(e.candidate for e in entries),
                                 Selection(chosen, method, scores=scores),
                                 fallback=entries[chosen].fallback,
                                 parents=tuple(e.parent for e in entries),
                                 attempts=tuple(e.attempt for e in entries))
            self.run.append(result)
        answer = self.run.trace.stages[-1] if self.run.trace.stages else None
        if answer is not None and answer.tag == self.params.schema.answer_tag:
            cap = self.run.cap(answer.stage, self.run.trace.path_tokens - answer.chosen.token_count)
            if self.run.cut_by_budget(answer, cap):
                self.run.trace.finish_reason = "length"

