"""One engine call for a width-1 answer: the model writes its stages one after the other, as it
was trained to, and the call is cut into stages while it decodes.

    prompt = chat(prompt + images) + <SUMMARY>                     (as for the first stage)
    call   = summary</SUMMARY>\\n\\n<CAPTION>caption</CAPTION>\\n\\n<REASONING>...</CONCLUSION>
    stages = the call cut after each closing tag, and again after the separator and open tag
             that follow it

A stage is taken from the call only where it is exactly what the stage-by-stage search would
have made of it: it ends at its own closing tag (or, where the call ended in it, at its cap or
at EOS) within its cap, and the next stage begins after exactly the separator and open tag the
server renders between stages (`PromptBuilder.answer`), in the very tokens it renders them in,
so every later prompt is token for token the call's own and the prefix cache serves it. Where
that fails (a missing or misplaced tag, another stage's tag inside a stage, a stage past its
cap, other text or tokens between stages) the call is ended at once, and the search goes on
stage by stage from there (`SearchRun.stages`).

Each stage is handed on as soon as its closing tag is decoded, and a stage being decoded streams
its text (`StageTextStream`); a stage decoded again stage by stage streams on from what was shown
(the search streams only greedy answers this way: the same prompt decodes the same text). Where
nothing streams, the engine hands the call over every READ_EVERY tokens rather than at every
token (each hand-over costs the API process time that the engine core needs on a small CPU
machine): a stage past its cap, a broken format or a loop is then noticed up to that many tokens
later, and where one hand-over holds both a loop and a foreign tag or the cap, the stage is
decoded again on its own (where the loop is then cut) rather than cut at the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from server.search.interface import (
    GenerateResult,
    Generation,
    PartialSink,
    Prompt,
    Sampling,
    StageEngine,
)
from server.search.params import SearchParams
from server.search.prompts import PromptBuilder
from server.search.repetition import LoopWatch
from server.search.schema import Stage, StageTextStream, clean_stage
from server.search.trace import Candidate, StageResult, Trace

READ_EVERY = 16  # tokens between the hand-overs of a call whose text nothing streams


class Run(Protocol):
    """What the call needs of its search run (`beam.SearchRun`)."""

    params: SearchParams
    path: tuple[Any, ...]
    prompts: PromptBuilder
    base: str
    chosen: list[tuple[Stage, Candidate]]
    trace: Trace
    show_text: Callable[[str, str], None] | None
    text_streams: dict[str, StageTextStream]

    @property
    def engine(self) -> StageEngine: ...

    def cap(self, stage: Stage, path_tokens: int | None = None) -> int: ...

    async def call_engine(self, kind: str, prompt: Prompt, sampling: Sampling,
                          on_partial: PartialSink | None = None) -> GenerateResult: ...

    async def settle(self, prompt: Prompt, stage: Stage, candidates: list[Candidate],
                     fallback: bool, cap: int, started: float) -> StageResult: ...


@dataclass(frozen=True)
class _Text:
    """More of the stage being decoded."""

    tag: str
    text: str


@dataclass(frozen=True)
class _Settled:
    """A stage the call settled: its own part of the call, and the cap it had."""

    part: Generation
    cap: int


class OneCall:
    """One engine call over the run's first `stages`, cut into stages as it decodes. `results`
    yields each stage it settles; the stages after those are left to the stage-by-stage
    search."""

    def __init__(self, run: Run, stages: tuple[Stage, ...]) -> None:
        self.run = run
        self.engine = run.engine
        self.stages = stages
        self.glue = run.params.schema.separator  # between a closing tag and the next open tag
        # what the call hands on, in order; None: the call is over
        self.queue: asyncio.Queue[_Text | _Settled | None] = asyncio.Queue()
        self.bounds: list[int] = []  # text offsets: after each settled stage and the next tag
        self.current = 0  # the stage being decoded (its position in `stages`)
        self.start = 0  # where its text begins
        self.first_token = 0  # its first token
        self.closed_at: int | None = None  # where its closing tag ends, once decoded
        self.watch = self.loop_watch(stages[0])  # a loop in it, under the repetition rule
        self.settled: list[Generation] = []
        self.spent = 0  # tokens of the settled stages (the answer budget's share so far)
        self.stopped = False  # the call was ended here: nothing more is taken from it

    # ------------------------------------------------------------------ the consumer's side

    async def results(self) -> AsyncIterator[StageResult]:
        task = asyncio.create_task(self.call())
        try:
            started = time.monotonic()
            while (item := await self.queue.get()) is not None:
                if isinstance(item, _Text):
                    if self.run.show_text is not None:
                        self.run.show_text(item.tag, item.text)
                    continue
                yield await self.settle(item.part, item.cap, started)
                started = time.monotonic()
            prompt_tokens, cached, generated = await task
            self.run.trace.usage.add_generation(prompt_tokens, cached,
                                                generated - sum(p.token_count for p in
                                                                self.settled))
        finally:
            task.cancel()

    async def settle(self, part: Generation, cap: int, started: float) -> StageResult:
        """A stage from its part of the call, chosen as the search chooses a lone candidate."""
        run = self.run
        stage = run.params.schema.stages[len(run.trace.stages)]
        run.trace.usage.add_generation(0, 0, part.token_count)
        clean = clean_stage(stage, part.text, (), run.params.repetition_rule(stage))
        candidate = Candidate.of(part, clean, self.engine.split)
        prompt = run.prompts.stage(run.base, run.chosen, stage)
        return await run.settle(prompt, stage, [candidate], False, cap, started)

    # ------------------------------------------------------------------ the engine call

    async def call(self) -> tuple[int, int, int]:
        """The engine call; (prompt tokens, cached tokens, generated tokens)."""
        run, first = self.run, self.stages[0]
        try:
            sampling = run.params.stage_sampling(
                first, 1, run.cap(first), run.params.seed(*run.path, "stage", 0)).with_(
                max_tokens=self.budget(), stop=(self.stages[-1].close_tag,),
                partial_every=1 if run.show_text is not None else READ_EVERY)
            result = await run.call_engine("stages",
                                           run.prompts.stage(run.base, run.chosen, first),
                                           sampling, self.read)
            generation = result.generations[0]
            if not self.stopped:
                self.read(generation)
                self.ended(generation)
            return result.prompt_tokens, result.cached_tokens, generation.token_count
        finally:
            self.queue.put_nowait(None)

    def budget(self) -> int:
        """The call's max_tokens: the caps of its stages, within the caller's budget, and the
        tokens of the separators and open tags between them."""
        params = self.run.params
        total = sum(params.stage_cap(s) for s in self.stages)
        if params.max_tokens is not None:
            total = min(total, params.max_tokens - self.run.trace.path_tokens)
        return total + sum(len(self.engine.tokens_of(self.glue + s.open_tag))
                           for s in self.stages[1:])

    def cap(self, stage: Stage) -> int:
        return self.run.cap(stage, self.spent)

    def loop_watch(self, stage: Stage) -> LoopWatch | None:
        rule = self.run.params.repetition_rule(stage)
        return None if rule is None else LoopWatch(rule)

    # ------------------------------------------------------------------ reading the call

    def read(self, partial: Generation) -> bool:
        """The engine's sink: settle what the call has decoded so far; True ends the call."""
        while not self.stopped and len(self.settled) < len(self.stages):
            if self.closed_at is None and not self.read_stage(partial):
                break
            if len(self.settled) == len(self.stages) or not self.open_next(partial):
                break
        return self.stopped

    def read_stage(self, partial: Generation) -> bool:
        """The stage being decoded: shown so far, or settled once its closing tag is; True
        when it is settled."""
        stage = self.stages[self.current]
        raw = partial.text[self.start:]
        clean = clean_stage(stage, raw)
        if clean.cut:  # another stage's tag (or another schema's) inside this one
            return self.stop()
        if clean.closed:
            close = raw.find(stage.close_tag)
            return self.close(partial, stage, self.start + close + len(stage.close_tag))
        if len(partial.token_ids) - self.first_token > self.cap(stage):
            return self.stop()
        final = bool(partial.finish_reason)
        if (self.watch is not None
                and self.watch.feed(clean.text, clean.whole or final) is not None):
            return self.cut_short(partial, stage)
        self.show(stage, raw, final)
        return False

    def cut_short(self, partial: Generation, stage: Stage) -> bool:
        """The stage being decoded is caught in a loop: it is settled as far as it went (its
        candidate keeps the loop's first copy), and the call ends; the stages after it go on
        stage by stage."""
        parts = self.engine.split(partial, self.bounds)
        if parts is not None:
            self.settle_part(parts[-1], stage)
        return self.stop()

    def close(self, partial: Generation, stage: Stage, end: int) -> bool:
        """The stage's closing tag ends at `end`: settle it from its own tokens."""
        parts = self.engine.split(partial, [*self.bounds, end])
        if parts is None:
            return self.stop()
        part, own = parts[-2], end - self.start
        clean = clean_stage(stage, part.text[:own], (), self.run.params.repetition_rule(stage))
        if not clean.text or len(part.token_ids) > self.cap(stage):
            return self.stop()
        self.show(stage, part.text[:own], True)  # the rest of its text, now final
        # a last token that runs past the tag is kept, as a stop string keeps it
        self.settle_part(replace(part, text=part.text[:own]), stage)
        self.closed_at = end
        if clean.cut:
            return self.stop()  # a loop, cut short: what follows would not follow its text
        if len(part.text) > own and len(self.settled) < len(self.stages):
            return self.stop()  # the next stage would not begin as the server renders it
        return True

    def open_next(self, partial: Generation) -> bool:
        """After a closing tag: exactly the separator and the next open tag, in the tokens the
        server would render them in; then the next stage is being decoded."""
        assert self.closed_at is not None
        glue = self.glue + self.stages[self.current + 1].open_tag
        after = partial.text[self.closed_at:]
        if not glue.startswith(after[:len(glue)]):
            return self.stop()
        if len(after) < len(glue):
            return False
        start = self.closed_at + len(glue)
        parts = self.engine.split(partial, [*self.bounds, self.closed_at, start])
        if (parts is None or parts[-2].text != glue
                or parts[-2].token_ids != self.engine.tokens_of(glue)):
            return self.stop()
        self.bounds += [self.closed_at, start]
        self.first_token = sum(len(p.token_ids) for p in parts[:-1])
        self.current, self.start, self.closed_at = self.current + 1, start, None
        self.watch = self.loop_watch(self.stages[self.current])
        return True

    def ended(self, final: Generation) -> None:
        """The call ended inside a stage without its closing tag: by EOS, or at the stage's cap
        (the call's max_tokens): the stage is what the stage-by-stage search would have made of
        it, unclosed. Anything else is left to that search."""
        if self.stopped or self.closed_at is not None or len(self.settled) == len(self.stages):
            return
        stage = self.stages[self.current]
        tokens = len(final.token_ids) - self.first_token
        if final.finish_reason == "stop" or (final.finish_reason == "length"
                                             and tokens == self.cap(stage)):
            parts = self.engine.split(final, self.bounds)
            if parts is not None and clean_stage(stage, parts[-1].text).text:
                self.settle_part(parts[-1], stage)

    # ------------------------------------------------------------------ what is handed on

    def settle_part(self, part: Generation, stage: Stage) -> None:
        self.queue.put_nowait(_Settled(part, self.cap(stage)))
        self.settled.append(part)
        self.spent += part.token_count
        self.run.text_streams.pop(stage.tag, None)

    def show(self, stage: Stage, raw: str, final: bool = False) -> None:
        """More of the stage being decoded, where the search streams text."""
        if self.run.show_text is None:
            return
        stream = self.run.text_streams.get(stage.tag)
        if stream is None:
            stream = self.run.text_streams[stage.tag] = StageTextStream(
                stage, (), self.run.params.repetition_rule(stage))
        piece = stream.feed(raw, final)
        if piece:
            self.queue.put_nowait(_Text(stage.tag, piece))

    def stop(self) -> bool:
        """End the call here (the engine aborts it); nothing more is read from it."""
        self.stopped = True
        return False
