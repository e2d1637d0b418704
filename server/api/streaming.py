"""One streamed chat completion: the search's events as SSE chunks.

- A one-candidate stage streams as it is decoded (`StageText`); a searched stage is sent once
  chosen. Stages before the answer go out as `reasoning` deltas (with `return_trace`, tagged,
  as in the full trace; `reasoning_content` carries the same text for older clients); the
  answer stage goes out as `content`, once, with its token logprobs where asked for. In the
  reason_summarize pipeline the search's answer stage is reasoning too, and the summariser's
  answer (`Summarized`) is the `content`.
- Nothing is sent before there is output: the first chunk of a choice carries its role along
  with its first text, so a client's time to first token is the real one.
- While the search has nothing new, an SSE comment (`: keep-alive`) goes out every
  `keepalive` seconds, so proxies do not cut a long search.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from server.api.outputs import answer_logprobs, usage_of, usage_out
from server.api.protocol import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    UsageOut,
    completion_id,
)
from server.search.beam import StageChosen, StageText, Summarized
from server.search.params import SearchParams
from server.search.trace import StageResult, Trace, Usage

KEEPALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"


def sse(payload: ChatCompletionChunk | dict[str, Any]) -> str:
    if isinstance(payload, ChatCompletionChunk):
        data = payload.model_dump(exclude_none=True)
        for choice in data["choices"]:  # OpenAI chunks always carry these keys
            choice.setdefault("finish_reason", None)
            choice.setdefault("logprobs", None)
        payload = data
    return f"data: {json.dumps(payload)}\n\n"


async def with_keepalive(events: AsyncIterator[Any], keepalive: float, deadline: float
                         ) -> AsyncIterator[Any]:
    """`events`, with KEEPALIVE between them whenever `keepalive` seconds pass without one;
    TimeoutError past `deadline` (on the event loop's clock). Waiting for the next event is
    never cancelled by a keep-alive, only by the deadline or the consumer."""
    loop = asyncio.get_running_loop()
    while True:
        pending = asyncio.ensure_future(anext(events))
        try:
            while not pending.done():
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait({pending}, timeout=min(keepalive, left))
                if not pending.done() and loop.time() < deadline:
                    yield KEEPALIVE
        finally:
            if not pending.done():  # the deadline, or the consumer left: stop the read, and
                pending.cancel()  # wait until `events` is no longer running (so it can close)
                await asyncio.gather(pending, return_exceptions=True)
            elif not pending.cancelled():
                pending.exception()  # seen, even if the consumer left before reading it

        try:
            yield pending.result()
        except StopAsyncIteration:
            return


class ChatStream:
    """One streamed request's state: which choices have begun, what each stage has shown,
    each choice's usage so far. `render` turns a search event into SSE chunks."""

    def __init__(self, body: ChatCompletionRequest, params: SearchParams, model: str) -> None:
        self.body = body
        self.params = params
        self.model = model
        self.id = completion_id()
        options = body.stream_options
        self.continuous = bool(options and options.continuous_usage_stats)
        self.final_usage = bool(options and (options.include_usage or self.continuous))
        self.begun: set[int] = set()
        self.shown: dict[tuple[int, str], str] = {}  # (choice, stage tag) -> text sent
        self.usage: dict[int, Usage] = {}
        self.answer_tokens: dict[int, int] = {}

    def chunk(self, choices: list[ChunkChoice], usage: UsageOut | None = None) -> str:
        if usage is None and self.continuous:
            usage = self.usage_so_far()
        return sse(ChatCompletionChunk(id=self.id, model=self.model, choices=choices,
                                       usage=usage))

    def usage_so_far(self) -> UsageOut:
        return usage_of(list(self.usage.values()), sum(self.answer_tokens.values()))

    def delta(self, index: int, delta: Delta, logprobs: ChoiceLogprobs | None = None,
              finish_reason: str | None = None) -> str:
        if index not in self.begun:
            self.begun.add(index)
            delta.role = "assistant"
        return self.chunk([ChunkChoice(index=index, delta=delta, logprobs=logprobs,
                                       finish_reason=finish_reason)])  # type: ignore[arg-type]

    def render(self, index: int, event: StageText | StageChosen | Summarized | Trace
               ) -> list[str]:
        if isinstance(event, StageText):
            return self._text(index, event.tag, event.text)
        if isinstance(event, StageChosen):
            self.usage[index] = event.usage
            return self._chosen(index, event.result)
        if isinstance(event, Summarized):
            self.usage[index] = event.usage
            return self._answer(index, event.result)
        self.usage[index] = event.usage
        return [self.delta(index, Delta(), finish_reason=event.finish_reason)]

    def _is_answer(self, tag: str) -> bool:
        """The stage whose text is the answer (`content`): the search's answer stage, but for
        the reason_summarize pipeline, where the summariser's answer is."""
        return tag == self.params.schema.answer_tag and not self.params.summarized

    def _text(self, index: int, tag: str, text: str) -> list[str]:
        """More of a stage as it is decoded."""
        key = (index, tag)
        first = key not in self.shown
        self.shown[key] = self.shown.get(key, "") + text
        if self._is_answer(tag):
            return [self.delta(index, Delta(content=text))]
        if not self.body.return_trace:
            return []
        piece = (self.params.schema.stage(tag).open_tag if first else "") + text
        return [self.delta(index, Delta(reasoning=piece, reasoning_content=piece))]

    def _chosen(self, index: int, result: StageResult) -> list[str]:
        """A stage once chosen: what of it has not been shown yet, closed."""
        shown = self.shown.pop((index, result.tag), None)
        rest = result.text[len(shown):] if shown and result.text.startswith(shown) else (
            result.text if shown is None else "")
        if self._is_answer(result.tag):
            return self._answer(index, result, None if shown is None else rest)
        if not self.body.return_trace:
            return []
        stage = result.stage
        piece = (stage.open_tag if shown is None else "") + rest + stage.close_tag
        piece += self.params.schema.separator
        return [self.delta(index, Delta(reasoning=piece, reasoning_content=piece))]

    def _answer(self, index: int, result: StageResult, rest: str | None = None) -> list[str]:
        """The answer once chosen; `rest`: what of it has not been shown yet (None: nothing of
        it was shown)."""
        self.answer_tokens[index] = result.chosen.token_count
        logprobs = answer_logprobs(result, self.params)
        if rest == "" and logprobs is None:
            return []
        return [self.delta(index, Delta(content=result.text if rest is None else rest),
                           logprobs)]

    def finish(self, traces: list[Trace]) -> list[str]:
        if not self.final_usage:
            return []
        return [self.chunk([], usage_out(traces))]
