"""The selectors: each picks one candidate of a `Pool` (a stage's candidates, or best-of-N's
complete answers) and says how. The pure parts are in `selectors.py`; the engine calls (judge
comparisons, verifications) go through a `Chooser`, which the search run binds to its request.

- judge: knockout tournament of pairwise comparisons (both presentation orders averaged).
- verify: each candidate's own transcript + a yes/no question; highest P("yes") wins.
- vote: answers: the most common normalised answer; other stages: the consensus text.
- weighted_vote: answers weighted by their P("yes"); other stages: as verify.
- logprob: highest mean token log-probability.
- auto: nothing when all agree; a vote when nearly all agree (CLEAR_MAJORITY); verify
  otherwise.

Neither asks the engine what it already knows: candidates that show the judge the same text are
not compared (the earlier one goes through), and a verification question is asked once per
distinct prompt (its answer is every such candidate's score), and not at all when every
candidate would be asked the same (no score could tell them apart). On a model that samples the
same stage text often (this model's CAPTION, every short answer) most selection calls go.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from server.search.interface import ChoiceResult, Prompt, prompt_text
from server.search.params import Selector
from server.search.prompts import JUDGE_OPTIONS, Evidence, PromptBuilder
from server.search.schema import Stage
from server.search.selectors import (
    best_by_logprob,
    candidates_agree,
    consensus,
    knockout,
    majority,
    option_probability,
)
from server.search.trace import Candidate, Selection

# auto takes a vote only when one answer has more than this share of the candidates (at width
# 4: never short of all agreeing; at 8: seven of them). Measured on the validation split with the
# shipped model, whose verifier is right on about 80 % of decisive choices and a 3-of-4 vote on
# 67 %: at 0.5, stage-auto-4 scored 88.0 %; at 0.75, 90.4 % (stage-verify-4's figure).
CLEAR_MAJORITY = 0.75


class Chooser(Protocol):
    async def choose(self, prompt: Prompt, options: Sequence[str]) -> ChoiceResult: ...


@dataclass(frozen=True)
class Pool:
    """The candidates of one selection, with the prompts the model-based selectors need."""

    stage: Stage  # the stage they are candidates for (best-of-N: the answer stage)
    is_answer: bool  # they are answers: votes compare normalised answers
    candidates: tuple[Candidate, ...]
    transcripts: tuple[Prompt, ...]  # each candidate's own transcript, closed (verify)
    judge_prefix: Prompt  # what every judged pair continues (a stage's prompt)
    judge_firsts: tuple[Prompt, ...]  # each candidate as the first of a judged pair
    judge_shown: tuple[str, ...]  # each candidate as the second of a judged pair
    what: str  # "the CAPTION stage", "the complete answer"
    criterion: str
    evidence: tuple[Evidence, ...] = ()  # what each candidate's verification quotes

    def evidence_of(self, i: int) -> Evidence:
        return self.evidence[i] if i < len(self.evidence) else None

    @property
    def usable(self) -> list[int]:
        return [i for i, c in enumerate(self.candidates) if c.usable]

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.candidates]

    def logprob(self, i: int) -> float:
        return self.candidates[i].mean_logprob


class Selecting:
    """The selectors of one request: its chooser (engine calls and their usage), its prompts
    (native or prompted verification), its seeded random order of judged pairs, and whether
    each pair is judged in both orders."""

    def __init__(self, chooser: Chooser, prompts: PromptBuilder, rng: random.Random,
                 judge_both_orders: bool) -> None:
        self.chooser = chooser
        self.prompts = prompts
        self.rng = rng
        self.judge_both_orders = judge_both_orders
        self._by_name: dict[Selector, Callable[[Pool], Awaitable[Selection]]] = {
            Selector.JUDGE: self.judge, Selector.VERIFY: self.verify, Selector.VOTE: self.vote,
            Selector.WEIGHTED_VOTE: self.weighted_vote, Selector.LOGPROB: self.logprob,
            Selector.AUTO: self.auto}

    async def select(self, selector: Selector, pool: Pool) -> Selection:
        usable = pool.usable
        if len(usable) <= 1:
            return Selection(usable[0] if usable else 0, "only")
        return await self._by_name[selector](pool)

    # ------------------------------------------------------------------ free selectors

    async def logprob(self, pool: Pool) -> Selection:
        return Selection(best_by_logprob(pool.candidates), Selector.LOGPROB)

    async def vote(self, pool: Pool) -> Selection:
        usable = pool.usable
        if pool.is_answer:
            members, _ = majority(pool.texts, usable, pool.logprob)
        else:
            members = consensus(pool.texts, usable)
        return Selection(max(members, key=pool.logprob), Selector.VOTE)

    # ------------------------------------------------------------------ model-based selectors

    async def verify(self, pool: Pool) -> Selection:
        scores = await self.scores(pool)
        winner = max(pool.usable, key=lambda i: (scores[i] or 0.0, pool.logprob(i)))
        return Selection(winner, Selector.VERIFY, scores=tuple(scores))

    async def weighted_vote(self, pool: Pool) -> Selection:
        if not pool.is_answer:
            return await self.verify(pool)
        scores = await self.scores(pool)
        weights = [s or 0.0 for s in scores]
        members, _ = majority(pool.texts, pool.usable, lambda i: weights[i], weights)
        winner = max(members, key=lambda i: (weights[i], pool.logprob(i)))
        return Selection(winner, Selector.WEIGHTED_VOTE, scores=tuple(scores))

    async def auto(self, pool: Pool) -> Selection:
        """The cheapest selector that decides: no call when every candidate says the same, a
        vote when one answer (or one identical text) holds more than CLEAR_MAJORITY of them,
        verify otherwise."""
        if candidates_agree(pool.candidates):
            return Selection(best_by_logprob(pool.candidates), "agree")
        members, share = majority(pool.texts, pool.usable, pool.logprob)
        if share > CLEAR_MAJORITY:
            return Selection(max(members, key=pool.logprob), Selector.VOTE)
        return await self.verify(pool)

    async def judge(self, pool: Pool) -> Selection:
        outcome = await knockout(pool.usable, lambda pairs: self._judge_round(pool, pairs),
                                 self.rng)
        return Selection(outcome.winner, Selector.JUDGE, outcome.comparisons)

    async def scores(self, pool: Pool, known: dict[str, float] | None = None
                     ) -> list[float | None]:
        """P("yes") of each usable candidate (None for unusable ones): every distinct
        verification prompt asked once, all at once; none asked (all None) when there is only
        one. `known`: the answers to prompts asked before (by prompt text), used and added to
        (a retracing search scores a stage's candidates over several passes)."""
        known = {} if known is None else known
        questions = {i: self.prompts.verification(pool.transcripts[i], pool.stage,
                                                  pool.evidence_of(i)) for i in pool.usable}
        keys = {i: prompt_text(prompt) for i, (prompt, _) in questions.items()}
        if len(set(keys.values())) <= 1:
            return [None] * len(pool.candidates)
        asked: dict[str, tuple[Prompt, tuple[str, str]]] = {}
        for i, question in questions.items():
            if keys[i] not in known:
                asked.setdefault(keys[i], question)
        verdicts = await asyncio.gather(*(self.chooser.choose(*q) for q in asked.values()))
        for key, verdict in zip(asked, verdicts, strict=True):
            known[key] = option_probability(verdict.picked, verdict.logprobs, 0)
        scores: list[float | None] = [None] * len(pool.candidates)
        for i, key in keys.items():
            scores[i] = known[key]
        return scores

    async def _judge_round(self, pool: Pool, pairs: list[tuple[int, int]]
                           ) -> list[tuple[int, float | None]]:
        return list(await asyncio.gather(*(self._compare(pool, a, b) for a, b in pairs)))

    async def _compare(self, pool: Pool, a: int, b: int) -> tuple[int, float | None]:
        """Probability that `a` beats `b` (averaged over both presentation orders when asked).
        Two candidates that show the same text are not compared: the earlier one goes through,
        the judge's confidence unknown."""
        if pool.judge_shown[a] == pool.judge_shown[b]:
            return min(a, b), None
        orders = [(a, b), (b, a)] if self.judge_both_orders else [(a, b)]
        verdicts = await asyncio.gather(*(
            self.chooser.choose(PromptBuilder.judge(pool.judge_prefix, pool.judge_firsts[x],
                                                    pool.judge_shown[y], pool.what,
                                                    pool.criterion), JUDGE_OPTIONS)
            for x, y in orders))
        p_a = 0.0
        for (x, _), verdict in zip(orders, verdicts, strict=True):
            p_first = option_probability(verdict.picked, verdict.logprobs, 0)
            p_a += p_first if x == a else 1.0 - p_first
        p_a /= len(orders)
        return (a, p_a) if p_a >= 0.5 else (b, 1.0 - p_a)
