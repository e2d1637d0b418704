"""Stage-level beam search: for each stage, branch into candidates, select one, append, go on.

    for stage in schema:
        candidates = branch(prefix, stage)          # one engine call, n = beam_width
        best       = select(candidates)             # judge | verify | vote | logprob | auto ...
        prefix    += best

Best-of-N, the paper's baseline, samples N whole answers (each stage greedy-width 1, sampled)
and selects once among them, with the same selectors. Retrace (retrace.py) keeps the best few
of each stage's candidates and goes back a stage where the verifier scores them all low.

Under a compute budget (budget.py) a stage starts with two candidates and samples more only
while they disagree and the budget affords them; best-of-N adds chains the same way.

Without branching (width 1: greedy answers, each best-of-N chain) there is nothing to select: the
model writes its stages in one engine call, which is cut into stages as it decodes
(`single_call.py`); the loop goes on from wherever that call could not be kept.

Every engine call is awaited concurrently with the request's other calls and with other
requests: nothing here blocks or serialises. Cancelling the task that consumes `run` cancels
every outstanding engine call (asyncio.gather propagates the cancellation).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from server import tracing
from server.search.budget import FIRST_BATCH, MORE_BATCH, Spending
from server.search.interface import (
    ChoiceResult,
    GenerateResult,
    Generation,
    PartialSink,
    PartialSinks,
    Prompt,
    PromptTooLong,
    Sampling,
    StageEngine,
)
from server.search.params import SearchParams, SearchShape
from server.search.prompts import Conversation, PromptBuilder, RenderChat
from server.search.repetition import LoopWatch
from server.search.retrace import Retrace
from server.search.schema import (
    FULL_ANSWER_CRITERION,
    Stage,
    StageTextStream,
    clean_stage,
)
from server.search.selection import Pool, Selecting
from server.search.selectors import best_by_logprob, candidates_agree
from server.search.single_call import OneCall
from server.search.trace import Candidate, Selection, StageResult, Trace, Usage

NO_ANSWER = Candidate("", 0, float("-inf"), False)
# span attribute names (besides server.tracing's gen_ai ones)
CALL_KIND, CANDIDATES, SELECTOR = "cot.call.kind", "cot.candidates", "cot.selector"
PROMPT_TOKENS, COMPLETION_TOKENS = tracing.PROMPT_TOKENS, tracing.COMPLETION_TOKENS


@dataclass(frozen=True)
class StageText:
    """More of a stage's text while it is generated (one-candidate stages only): final, since
    what is shown is always a prefix of the stage's final text."""

    tag: str
    text: str


@dataclass(frozen=True)
class StageChosen:
    result: StageResult
    usage: Usage  # the request's usage so far (a copy)


@dataclass(frozen=True)
class Summarized:
    """The summariser's answer (reason_summarize pipeline), once the search's chain is done."""

    result: StageResult
    agreed: bool  # it gave the search's own answer
    usage: Usage  # the request's usage so far (a copy)


class SearchObserver(Protocol):
    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        ...

    def engine_call(self, kind: str) -> None:
        """An engine call: "stage" (one stage's candidates), "stages" (a width-1 answer's
        stages in one call), "selection" (a selector's one-token call) or "summary" (the
        summariser's answer)."""
        ...


class _NoObserver:
    def stage_done(self, stage: str, seconds: float, candidates: int, comparisons: int) -> None:
        return None

    def engine_call(self, kind: str) -> None:
        return None


class StageSearch:
    """The search over one engine; `run` serves one request (one choice) at a time."""

    def __init__(self, engine: StageEngine, render_chat: RenderChat,
                 observer: SearchObserver | None = None) -> None:
        self.engine = engine
        self.render_chat = render_chat
        self.observer = observer or _NoObserver()

    async def run(self, conversation: Conversation, params: SearchParams,
                  stream_text: bool = False
                  ) -> AsyncIterator[StageText | StageChosen | Summarized | Trace]:
        """Yields each stage as it is chosen, then (reason_summarize pipeline) the summariser's
        answer, then the finished Trace; with `stream_text`, a search without branching also
        yields each stage's text as it is decoded."""
        run = SearchRun(self, conversation, params)
        if params.shape in (SearchShape.BEST_OF_N, SearchShape.RETRACE) and params.branching:
            # every stage is final only once the answer is chosen
            await (run.best_of_n() if params.shape is SearchShape.BEST_OF_N
                   else Retrace(run).search())
            for result in run.trace.stages:
                yield StageChosen(result, replace(run.trace.usage))
        elif stream_text and not params.branching:
            async for event in run.streamed():
                yield event
        else:
            async for result in run.stages(params.beam_width):
                yield StageChosen(result, replace(run.trace.usage))
        if params.summarized and run.trace.finish_reason != "length":
            summary = await run.summarize()
            yield Summarized(summary, run.trace.summary_agreed, replace(run.trace.usage))
        yield run.trace


class SearchRun:
    """One search's state: conversation, parameters, prompts, the stages chosen so far, the trace
    (with its usage) and the selectors bound to this request. `path` names the run among its
    request's runs (best-of-N's chains) so that each derives its own seeds."""

    def __init__(self, search: StageSearch, conversation: Conversation, params: SearchParams,
                 path: tuple[Any, ...] = ()) -> None:
        self.search = search
        self.conversation = conversation
        self.params = params
        self.path = path
        self.prompts = PromptBuilder(search.render_chat, params.schema, params.prompted)
        self.base = self.prompts.base(conversation)
        self.trace = Trace(params.schema)
        self.chosen: list[tuple[Stage, Candidate]] = []
        self.selecting = Selecting(self, self.prompts, random.Random(params.seed(*path, "order")),
                                   params.judge_both_orders)
        self.show_text: Callable[[str, str], None] | None = None  # (tag, text) while decoding
        self.text_streams: dict[str, StageTextStream] = {}  # what a stage has shown so far
        self.spending = None if params.budget is None else Spending(
            params.budget, {s.tag: params.stage_cap(s) for s in params.schema.stages},
            params.schema.tags)

    # ------------------------------------------------------------------ the loop

    async def stages(self, width: int) -> AsyncIterator[StageResult]:
        async for result in self.one_call(width):
            yield result
        done = len(self.trace.stages)  # the loop goes on from where one call could not
        for index, stage in enumerate(self.params.schema.stages[done:], done):
            cap = self.cap(stage)
            if cap <= 0:
                self.trace.finish_reason = "length"
                return
            started = time.monotonic()
            prompt = self.prompts.stage(self.base, self.chosen, stage)
            try:
                candidates, fallback = await self.branch(prompt, stage, cap, width, index)
            except PromptTooLong:
                if not self.trace.stages:
                    raise
                self.trace.finish_reason = "length"
                return
            yield await self.settle(prompt, stage, candidates, fallback, cap, started)

    async def settle(self, prompt: Prompt, stage: Stage, candidates: list[Candidate],
                     fallback: bool, cap: int, started: float) -> StageResult:
        """Select among a stage's candidates and append the chosen one."""
        selection = await self.select(self.stage_pool(prompt, stage, candidates))
        result = StageResult(stage, tuple(candidates), selection, fallback)
        self.stage_done(stage.tag, time.monotonic() - started, len(candidates),
                        selection.judged)
        self.append(result)
        if self.cut_by_budget(result, cap):
            self.trace.finish_reason = "length"
        return result

    async def one_call(self, width: int) -> AsyncIterator[StageResult]:
        """Without branching, the stages one engine call settles (single_call.py). Streamed,
        only greedy: a stage decoded again must begin with the text already shown."""
        together = self.params.one_call_stages() if width == 1 else ()
        sampled_stream = self.show_text is not None and self.params.sampling.temperature > 0
        if not together or sampled_stream or self.cap(together[0]) <= 0:
            return
        async for result in OneCall(self, together).results():
            yield result

    async def streamed(self) -> AsyncIterator[StageText | StageChosen]:
        """The one-candidate search, with each stage's text as it is decoded: the search runs
        as a task that fills a queue; cancelling the consumer cancels it (and its engine
        call)."""
        queue: asyncio.Queue[StageText | StageChosen] = asyncio.Queue()
        self.show_text = lambda tag, text: queue.put_nowait(StageText(tag, text))

        async def drive() -> None:
            async for result in self.stages(1):
                queue.put_nowait(StageChosen(result, replace(self.trace.usage)))

        task = asyncio.create_task(drive())
        getter: asyncio.Future[StageText | StageChosen] | None = None
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                task.result()  # the search's failure, if it failed
                break
        finally:
            task.cancel()
            if getter is not None:  # a consumer that left while waiting: no task left pending
                getter.cancel()

    def stage_done(self, tag: str, seconds: float, candidates: int, comparisons: int) -> None:
        self.search.observer.stage_done(tag, seconds, candidates, comparisons)

    def append(self, result: StageResult) -> None:
        self.trace.stages.append(result)
        self.chosen.append((result.stage, result.chosen))

    def cap(self, stage: Stage, path_tokens: int | None = None) -> int:
        """The stage's cap, within what the caller's budget leaves after `path_tokens` (by
        default the chosen stages')."""
        cap = self.params.stage_cap(stage)
        if self.params.max_tokens is not None:
            spent = self.trace.path_tokens if path_tokens is None else path_tokens
            cap = min(cap, self.params.max_tokens - spent)
        return cap

    def cut_by_budget(self, result: StageResult, cap: int) -> bool:
        """The caller's token budget, not the stage's own cap, cut the answer short."""
        return (result.tag == self.params.schema.answer_tag
                and self.params.max_tokens is not None and not result.chosen.closed
                and result.chosen.token_count >= cap and cap < self.params.stage_cap(result.stage))

    # ------------------------------------------------------------------ branch

    async def branch(self, prompt: Prompt, stage: Stage, cap: int, width: int, index: int
                     ) -> tuple[list[Candidate], bool]:
        """`width` candidates of `stage` (under a budget: as many as they need and it affords);
        if none is usable, one greedy candidate instead."""
        seed_path = (*self.path, "stage", index)
        if self.spending is None or width == 1:
            return await self.sample(prompt, stage, cap, width, seed_path)
        return await self.widen(prompt, stage, cap, width, seed_path)

    async def sample(self, prompt: Prompt, stage: Stage, cap: int, n: int,
                     seed_path: tuple[Any, ...]) -> tuple[list[Candidate], bool]:
        sampling = self.params.stage_sampling(stage, n, cap, self.params.seed(*seed_path))
        greedy = sampling.with_(n=1, temperature=0.0, seed=None)
        with_greedy = self.params.greedy_candidate and n > 1 and sampling.temperature > 0
        if with_greedy:
            # the greedy continuation first, beside n - 1 samples (two calls, batched together)
            best, others = await asyncio.gather(
                self.generate(prompt, stage, greedy),
                self.generate(prompt, stage, sampling.with_(n=n - 1)))
            candidates = [*best, *others]
        else:
            candidates = await self.generate(prompt, stage, sampling)
        # none usable: one greedy candidate instead (unless one was among them already)
        if any(c.usable for c in candidates) or sampling.temperature == 0.0 or with_greedy:
            return candidates, False
        return await self.generate(prompt, stage, greedy), True

    async def widen(self, prompt: Prompt, stage: Stage, cap: int, width: int,
                    seed_path: tuple[Any, ...]) -> tuple[list[Candidate], bool]:
        """Under a budget: two candidates (one where two do not fit), then more while they
        disagree, up to `width`, as long as the budget affords them and their selection."""
        assert self.spending is not None
        first = min(FIRST_BATCH, width)
        if not self.affords(stage, first, first):
            first = 1
        candidates, fallback = await self.sample(prompt, stage, cap, first, seed_path)
        more = 0
        while not fallback and len(candidates) < width and not candidates_agree(candidates):
            n = min(MORE_BATCH, width - len(candidates))
            if not self.affords(stage, n, len(candidates) + n):
                break
            more += 1
            sampling = self.params.stage_sampling(stage, n, cap,
                                                  self.params.seed(*seed_path, "more", more))
            candidates += await self.generate(prompt, stage, sampling)
        return candidates, fallback

    def affords(self, stage: Stage, candidates: int, among: int) -> bool:
        """The budget affords `candidates` more of the stage and the selection among `among`."""
        assert self.spending is not None
        return self.spending.affords(self.trace.usage.completion_tokens, stage.tag, candidates,
                                     self.params.verdicts(among))

    def sinks(self, stage: Stage, sampling: Sampling) -> PartialSinks | None:
        """What reads a stage's candidates while they are decoded, if anything: a
        one-candidate stage's text, shown where the search streams it (on from what a one-call
        answer already showed of it); under the repetition rule, each candidate, which is
        ended as soon as it is cut short (a loop, or a tag that does not belong there: nothing
        after either is kept), but not before the caller's `min_tokens`."""
        show = self.show_text if sampling.n == 1 else None
        rule = self.params.repetition_rule(stage)
        if show is None and rule is None:
            return None
        stops = sampling.stop[1:]  # stop[0] is the closing tag
        stream = None if show is None else (self.text_streams.pop(stage.tag, None)
                                            or StageTextStream(stage, stops, rule))

        def reader() -> PartialSink:
            watch = None if rule is None else LoopWatch(rule)

            def sink(partial: Generation) -> bool:
                final = bool(partial.finish_reason)
                if show is not None and stream is not None:
                    piece = stream.feed(partial.text, final)
                    if piece:
                        show(stage.tag, piece)
                if watch is None:
                    return False
                clean = clean_stage(stage, partial.text, stops)
                cut = clean.cut or watch.feed(clean.text, clean.whole or final) is not None
                return cut and len(partial.token_ids) >= sampling.min_tokens
            return sink
        return reader() if sampling.n == 1 else [reader() for _ in range(sampling.n)]

    async def generate(self, prompt: Prompt, stage: Stage, sampling: Sampling
                       ) -> list[Candidate]:
        result = await self.call_engine("stage", prompt, sampling, self.sinks(stage, sampling))
        generated = sum(g.token_count for g in result.generations)
        self.trace.usage.add_generation(result.prompt_tokens, result.cached_tokens, generated)
        if self.spending is not None:
            self.spending.saw(stage.tag, [g.token_count for g in result.generations])
        return self.candidates(stage, sampling, result)

    def candidates(self, stage: Stage, sampling: Sampling, result: GenerateResult
                   ) -> list[Candidate]:
        """A call's generations as the stage's candidates, cleaned (`clean_stage`)."""
        rule = self.params.repetition_rule(stage)
        candidates = []
        for g in result.generations:
            clean = clean_stage(stage, g.text, sampling.stop[1:], rule)
            candidate = Candidate.of(g, clean, self.engine.split)
            # a constrained answer ends where its grammar does, without the closing tag
            if sampling.constraint is not None and g.finish_reason == "stop" and not clean.cut:
                candidate = replace(candidate, closed=True)
            candidates.append(candidate)
        return candidates

    async def call_engine(self, kind: str, prompt: Prompt, sampling: Sampling,
                          on_partial: PartialSinks | None = None) -> GenerateResult:
        """One generating engine call on this request's images, counted by kind."""
        self.search.observer.engine_call(kind)
        with tracing.span(f"engine {kind}", {CALL_KIND: kind, CANDIDATES: sampling.n,
                                             "cot.call.max_tokens": sampling.max_tokens}) as span:
            result = await self.engine.generate(prompt, self.conversation.images, sampling,
                                                on_partial)
            if span is not None:
                span.set_attributes({
                    PROMPT_TOKENS: result.prompt_tokens,
                    "cot.call.cached_tokens": result.cached_tokens,
                    COMPLETION_TOKENS: sum(g.token_count for g in result.generations)})
        return result

    @property
    def engine(self) -> StageEngine:
        return self.search.engine

    # ------------------------------------------------------------------ select

    async def select(self, pool: Pool) -> Selection:
        """The selector's pick; where its prompts outgrow the context (a pairwise judge shows
        two long candidates at once), the free logprob pick instead of failing the request."""
        with tracing.span(f"selection {pool.stage.tag}", {
                "cot.stage": pool.stage.tag, SELECTOR: self.params.selector,
                CANDIDATES: len(pool.candidates)}) as span:
            try:
                selection = await self.selecting.select(self.params.selector, pool)
            except PromptTooLong:
                selection = Selection(best_by_logprob(pool.candidates), "logprob (context full)")
            if span is not None:
                span.set_attributes({"cot.selection.method": selection.method,
                                     "cot.selection.chosen_index": selection.winner,
                                     "cot.selection.comparisons": selection.judged})
            return selection

    async def choose(self, prompt: Prompt, options: Sequence[str]) -> ChoiceResult:
        """One constrained one-token call for a selector (Chooser), counted in the usage."""
        self.search.observer.engine_call("selection")
        with tracing.span("engine selection", {CALL_KIND: "selection",
                                               "cot.call.options": len(options)}) as span:
            verdict = await self.search.engine.choose(prompt, self.conversation.images, options)
            if span is not None:
                span.set_attributes({PROMPT_TOKENS: verdict.prompt_tokens,
                                     "cot.call.cached_tokens": verdict.cached_tokens})
        self.trace.usage.add_judge(verdict.prompt_tokens, verdict.cached_tokens)
        return verdict

    def stage_pool(self, prompt: Prompt, stage: Stage, candidates: list[Candidate]) -> Pool:
        firsts = tuple(c.as_prompt(stage.close_tag) for c in candidates)
        return Pool(stage=stage, is_answer=stage.tag == self.params.schema.answer_tag,
                    candidates=tuple(candidates),
                    transcripts=tuple((*prompt, *first) for first in firsts),
                    judge_prefix=prompt, judge_firsts=firsts,
                    judge_shown=tuple(stage.wrap(c.text) for c in candidates),
                    what=f"the {stage.tag} stage", criterion=stage.judge_criterion,
                    evidence=(self.prompts.evidence(self.chosen, stage),) * len(candidates))

    # ------------------------------------------------------------------ best-of-N

    async def best_of_n(self) -> Trace:
        """N complete answers sampled independently (under a budget: two, then more while their
        answers differ and it affords them), then one selected among them."""
        chains = await self.chains()
        selection = await self.select(self.chain_pool(chains))
        winner = chains[selection.winner]
        self.trace.finish_reason = winner.trace.finish_reason
        for position, stage in enumerate(winner.trace.stages):
            per_chain = tuple(c.trace.stages[position].chosen if len(c.trace.stages) > position
                              else NO_ANSWER for c in chains)
            last = position == len(winner.trace.stages) - 1
            self.trace.stages.append(StageResult(
                stage.stage, per_chain, selection if last else Selection(selection.winner,
                                                                          selection.method)))
        return self.trace

    async def chains(self) -> list[SearchRun]:
        width, chains = self.params.beam_width, list[SearchRun]()
        chain_params = replace(self.params, budget=None)  # a chain does not branch
        while len(chains) < width:
            n = width if self.spending is None else min(
                FIRST_BATCH if not chains else MORE_BATCH, width - len(chains))
            if self.spending is not None and not self.spending.affords_answers(
                    self.trace.usage.completion_tokens, n, self.params.verdicts(len(chains) + n)):
                if chains:
                    break
                n = 1
            batch = [SearchRun(self.search, self.conversation,
                               self.chain_params(chain_params, len(chains) + i),
                               (*self.path, "chain", len(chains) + i)) for i in range(n)]
            await asyncio.gather(*(chain.complete() for chain in batch))
            for chain in batch:
                self.trace.usage.merge(chain.trace.usage)
                if self.spending is not None:
                    for result in chain.trace.stages:
                        self.spending.saw(result.tag, [result.chosen.token_count])
            chains += batch
            if self.spending is not None and candidates_agree([c.answer for c in chains]):
                break
        return chains

    def chain_params(self, params: SearchParams, index: int) -> SearchParams:
        """A chain's parameters: the first is greedy where the request asks for a greedy
        candidate."""
        if index == 0 and params.greedy_candidate:
            return replace(params, sampling=params.sampling.with_(temperature=0.0))
        return params

    async def complete(self) -> None:
        async for _ in self.stages(1):
            pass

    # ------------------------------------------------------------------ summary

    async def summarize(self) -> StageResult:
        """The summariser's answer (Insight-V's summary agent): one more engine call that reads
        the question, the image and the search's whole chain, and writes the answer stage
        again, under the answer stage's sampling and within what the caller's token budget
        leaves. It is the request's answer, and the chain all reasoning."""
        stage = self.params.schema.answer_stage
        chain = [(s.stage, s.chosen) for s in self.trace.stages]
        sampling = self.params.stage_sampling(stage, 1, max(self.cap(stage), 1),
                                              self.params.seed(*self.path, "summary"))
        prompt = self.prompts.summary(self.base, chain)
        result = await self.call_engine("summary", prompt, sampling)
        self.trace.usage.add_summary(result.prompt_tokens, result.cached_tokens,
                                     sum(g.token_count for g in result.generations))
        candidates = self.candidates(stage, sampling, result)
        summary = StageResult(stage, tuple(candidates), Selection(0, "summarizer"))
        self.trace.summary = summary
        if not summary.chosen.closed and summary.chosen.token_count >= sampling.max_tokens:
            self.trace.finish_reason = "length"
        return summary

    @property
    def answer(self) -> Candidate:
        """This run's answer, as a candidate of the whole chain: the answer stage's text with
        the chain's mean token log-probability."""
        done = [c for s, c in self.chosen if s.tag == self.params.schema.answer_tag]
        if not done:
            return NO_ANSWER
        tokens = sum(c.token_count for _, c in self.chosen)
        total = sum(c.mean_logprob * c.token_count for _, c in self.chosen if c.token_count)
        return Candidate(done[0].text, tokens, total / tokens if tokens else float("-inf"),
                         done[0].closed)

    def chain_pool(self, chains: list[SearchRun]) -> Pool:
        stage = self.params.schema.answer_stage
        transcripts: list[Prompt] = []
        for chain in chains:
            before = [(s, c) for s, c in chain.chosen if s.tag != stage.tag]
            answer = next((c for s, c in chain.chosen if s.tag == stage.tag), NO_ANSWER)
            transcripts.append((*self.prompts.stage(self.base, before, stage),
                                *answer.as_prompt(stage.close_tag)))
        return Pool(stage=stage, is_answer=True, candidates=tuple(c.answer for c in chains),
                    transcripts=tuple(transcripts), judge_prefix=(),
                    judge_firsts=tuple(self.prompts.answer(self.base, c.chosen) for c in chains),
                    judge_shown=tuple(c.trace.tagged_text() for c in chains),
                    what="the complete answer", criterion=FULL_ANSWER_CRITERION,
                    evidence=tuple(self.prompts.evidence(c.chosen, stage) for c in chains))
