"""Stage-level beam search: for each stage, branch into candidates, select one, append, go on.

    for stage in schema:
        candidates = branch(prefix, stage)          # one engine call, n = beam_width
        best       = select(candidates)             # judge tournament | logprob | auto
        prefix    += best

Every engine call is awaited concurrently with the request's other calls and with other
requests: nothing here blocks or serialises. Cancelling the task that consumes `run` cancels
every outstanding engine call (asyncio.gather propagates the cancellation).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from server.search.interface import Prompt, PromptTooLong, Sampling, StageEngine
from server.search.prompts import JUDGE_OPTIONS, Conversation, PromptBuilder, RenderChat
from server.search.schema import FULL_ANSWER_CRITERION, Stage, StageSchema, clean_stage_text
from server.search.selectors import TournamentResult, best_by_logprob, candidates_agree, knockout
from server.search.trace import Candidate, StageResult, Trace, Usage


@dataclass(frozen=True)
class SearchParams:
    schema: StageSchema
    beam_width: int = 1
    selector: str = "judge"
    stage_max_tokens: Mapping[str, int] = field(default_factory=dict)
    default_stage_max_tokens: int = 128
    max_tokens: int | None = None  # budget for the returned path (all chosen stages)
    sampling: Sampling = field(default_factory=Sampling)
    stop: tuple[str, ...] = ()  # the caller's stop strings, applied to the answer stage
    judge_both_orders: bool = True
    prompted: bool = False

    @property
    def wants_logprobs(self) -> bool:
        return self.beam_width > 1 and self.selector in ("logprob", "auto")

    def stage_cap(self, stage: Stage) -> int:
        return self.stage_max_tokens.get(stage.tag, self.default_stage_max_tokens)

    def stage_seed(self, index: int) -> int | None:
        seed = self.sampling.seed
        return None if seed is None else seed + 7919 * index


@dataclass(frozen=True)
class StageChosen:
    result: StageResult


class SearchObserver(Protocol):
    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        ...


class _NoObserver:
    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        return None


class StageSearch:
    def __init__(self, engine: StageEngine, render_chat: RenderChat,
                 observer: SearchObserver | None = None) -> None:
        self.engine = engine
        self.render_chat = render_chat
        self.observer = observer or _NoObserver()

    async def run(self, conversation: Conversation, params: SearchParams
                  ) -> AsyncIterator[StageChosen | Trace]:
        """Yields each stage as it is chosen, then the finished Trace."""
        if params.selector == "best_of_n" and params.beam_width > 1:
            yield await self._best_of_n(conversation, params)
            return
        trace = Trace(params.schema.name, params.schema.answer_tag)
        async for result in self._stages(conversation, params, trace):
            yield StageChosen(result)
        yield trace

    async def _stages(self, conversation: Conversation, params: SearchParams, trace: Trace,
                      width: int | None = None) -> AsyncIterator[StageResult]:
        prompts = PromptBuilder(self.render_chat, params.schema, params.prompted)
        base = prompts.base(conversation)
        rng = random.Random(params.sampling.seed)
        chosen: list[tuple[Stage, Candidate]] = []
        width = params.beam_width if width is None else width
        for index, stage in enumerate(params.schema.stages):
            cap = params.stage_cap(stage)
            if params.max_tokens is not None:
                cap = min(cap, params.max_tokens - trace.path_tokens)
            if cap <= 0:
                trace.finish_reason = "length"
                return
            started = time.monotonic()
            prompt = prompts.stage(base, chosen, stage)
            try:
                candidates, fallback = await self._branch(
                    prompt, conversation, stage, cap, width, params, index, trace.usage)
            except PromptTooLong:
                if not trace.stages:
                    raise
                trace.finish_reason = "length"
                return
            result = await self._select(prompt, conversation, stage, candidates, params,
                                        trace.usage, rng, fallback)
            self.observer.stage_done(stage.tag, time.monotonic() - started,
                                     len(candidates), len(result.comparisons))
            trace.stages.append(result)
            chosen.append((stage, result.chosen))
            yield result
            if (stage.tag == params.schema.answer_tag and params.max_tokens is not None
                    and not result.chosen.closed and result.chosen.token_count >= cap
                    and cap < params.stage_cap(stage)):
                trace.finish_reason = "length"  # the caller's budget cut the answer short

    async def _branch(self, prompt: Prompt, conversation: Conversation, stage: Stage, cap: int,
                      width: int, params: SearchParams, index: int, usage: Usage
                      ) -> tuple[list[Candidate], bool]:
        stop = (stage.close_tag, *(params.stop if stage.tag == params.schema.answer_tag else ()))
        # Logprobs cost about a quarter of decode time on the CPU: only when a selector reads them.
        sampling = params.sampling.with_(n=width, max_tokens=cap, stop=stop,
                                         logprobs=params.wants_logprobs,
                                         seed=params.stage_seed(index))
        candidates = await self._generate(prompt, conversation, stage, sampling, usage)
        if any(c.usable for c in candidates) or sampling.temperature == 0.0:
            return candidates, False
        greedy = sampling.with_(n=1, temperature=0.0, seed=None)
        return await self._generate(prompt, conversation, stage, greedy, usage), True

    async def _generate(self, prompt: Prompt, conversation: Conversation, stage: Stage,
                        sampling: Sampling, usage: Usage) -> list[Candidate]:
        result = await self.engine.generate(prompt, conversation.images, sampling)
        generated = sum(g.token_count for g in result.generations)
        usage.add_generation(result.prompt_tokens, result.cached_tokens, generated)
        candidates = []
        for g in result.generations:
            # stop[0] is the closing tag; the rest are the caller's stop strings
            text, closed = clean_stage_text(stage, g.text, sampling.stop[1:])
            candidates.append(Candidate(text, g.token_count, g.mean_logprob, closed, g))
        return candidates

    async def _select(self, stage_prompt: Prompt, conversation: Conversation, stage: Stage,
                      candidates: list[Candidate], params: SearchParams, usage: Usage,
                      rng: random.Random, fallback: bool) -> StageResult:
        usable = [i for i, c in enumerate(candidates) if c.usable]
        make = lambda i, comps=(): StageResult(  # noqa: E731
            stage.name, stage.tag, tuple(candidates), i, tuple(comps), fallback)
        if len(usable) <= 1:
            return make(usable[0] if usable else 0)
        if params.selector == "logprob" or (params.selector == "auto"
                                           and candidates_agree(candidates)):
            return make(best_by_logprob(candidates))
        firsts = [c.as_prompt(stage.close_tag) for c in candidates]
        seconds = [stage.wrap(c.text) for c in candidates]

        outcome = await self._tournament(usable, stage_prompt, firsts, seconds,
                                         f"the {stage.tag} stage", stage.judge_criterion,
                                         conversation, params, usage, rng)
        return make(outcome.winner, outcome.comparisons)

    async def _tournament(self, entrants: Sequence[int], prefix: Prompt, firsts: list[Prompt],
                          seconds: list[str], what: str, criterion: str,
                          conversation: Conversation, params: SearchParams, usage: Usage,
                          rng: random.Random) -> TournamentResult:
        """Knockout among `entrants`; each round's comparisons go to the engine together."""
        async def judge_round(pairs: list[tuple[int, int]]) -> list[tuple[int, float | None]]:
            return list(await asyncio.gather(*(
                self._compare(prefix, firsts, seconds, what, criterion, conversation, a, b,
                              params, usage)
                for a, b in pairs)))

        return await knockout(entrants, judge_round, rng)

    async def _compare(self, prefix: Prompt, firsts: list[Prompt], seconds: list[str], what: str,
                       criterion: str, conversation: Conversation, a: int, b: int,
                       params: SearchParams, usage: Usage) -> tuple[int, float | None]:
        """Probability that `a` beats `b` (averaged over both presentation orders when asked)."""
        orders = [(a, b), (b, a)] if params.judge_both_orders else [(a, b)]
        verdicts = await asyncio.gather(*(
            self.engine.choose(PromptBuilder.judge(prefix, firsts[x], seconds[y], what,
                                                   criterion), conversation.images,
                               JUDGE_OPTIONS)
            for x, y in orders))
        p_a = 0.0
        for (x, _), verdict in zip(orders, verdicts, strict=True):
            usage.add_judge(verdict.prompt_tokens, verdict.cached_tokens)
            p_first = _first_probability(verdict.picked, verdict.logprobs)
            p_a += p_first if x == a else 1.0 - p_first
        p_a /= len(orders)
        return (a, p_a) if p_a >= 0.5 else (b, 1.0 - p_a)

    async def _best_of_n(self, conversation: Conversation, params: SearchParams) -> Trace:
        """The paper's baseline: N complete answers sampled independently, one judged best."""
        chains = [Trace(params.schema.name, params.schema.answer_tag)
                  for _ in range(params.beam_width)]

        async def sample_chain(i: int, trace: Trace) -> None:
            seed = params.sampling.seed
            chain_params = replace(params, sampling=params.sampling.with_(
                seed=None if seed is None else seed + 104729 * i))
            async for _ in self._stages(conversation, chain_params, trace, width=1):
                pass

        await asyncio.gather(*(sample_chain(i, t) for i, t in enumerate(chains)))
        usage = Usage()
        for chain in chains:
            usage.merge(chain.usage)
        prompts = PromptBuilder(self.render_chat, params.schema, params.prompted)
        base = prompts.base(conversation)
        firsts = [prompts.answer(base, [(stage, result.chosen) for stage, result
                                        in zip(params.schema.stages, chain.stages, strict=False)])
                  for chain in chains]
        texts = [chain.tagged_text() for chain in chains]

        outcome = await self._tournament(range(len(chains)), (), firsts, texts,
                                         "the complete answer", FULL_ANSWER_CRITERION,
                                         conversation, params, usage,
                                         random.Random(params.sampling.seed))
        winner = chains[outcome.winner]
        trace = Trace(params.schema.name, params.schema.answer_tag, usage=usage,
                      finish_reason=winner.finish_reason)
        for position, stage in enumerate(winner.stages):
            per_chain = tuple(c.stages[position].chosen if len(c.stages) > position
                              else Candidate("", 0, float("-inf"), False) for c in chains)
            last = position == len(winner.stages) - 1
            trace.stages.append(StageResult(stage.name, stage.tag, per_chain, outcome.winner,
                                            outcome.comparisons if last else ()))
        return trace


def _first_probability(picked: int, logprobs: list[float | None]) -> float:
    """Probability the judge prefers the first option, from the two options' logprobs where both
    are known, otherwise from the (greedy, constrained) pick alone."""
    first, second = logprobs[0], logprobs[1]
    if first is not None and second is not None:
        hi = max(first, second)
        e1, e2 = math.exp(first - hi), math.exp(second - hi)
        return e1 / (e1 + e2)
    return 1.0 if picked == 0 else 0.0
