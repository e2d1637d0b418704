"""Chat completions: runs one search per choice and turns traces into OpenAI responses or SSE
chunks. Knows nothing of HTTP routing; knows nothing of vLLM."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace

from server import tracing
from server.api.errors import APIError, api_error_body, as_api_error
from server.api.outputs import answer_logprobs, retraces_out, stage_out, usage_out
from server.api.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    completion_id,
)
from server.api.streaming import DONE, ChatStream, sse, with_keepalive
from server.metrics import Metrics
from server.search.beam import StageChosen, StageSearch, StageText, Summarized
from server.search.params import SearchParams
from server.search.prompts import Conversation
from server.search.trace import StageResult, Trace

__all__ = ["ChatService", "choice_params", "sse"]
SearchEvent = StageText | StageChosen | Summarized | Trace
log = logging.getLogger(__name__)


def choice_params(params: SearchParams, index: int) -> SearchParams:
    """Choice 0 searches with the request's seed; choice i > 0 with one derived from it."""
    if index == 0 or params.sampling.seed is None:
        return params
    return replace(params, sampling=params.sampling.with_(seed=params.seed("choice", index)))


class ChatService:
    def __init__(self, search: StageSearch, metrics: Metrics, model_name: str,
                 keepalive: float = 15.0) -> None:
        self.search = search
        self.metrics = metrics
        self.model_name = model_name
        self.keepalive = keepalive  # seconds between SSE comments while a search is quiet

    async def _one(self, conversation: Conversation, params: SearchParams, index: int = 0,
                   stream_text: bool = False) -> AsyncIterator[SearchEvent]:
        """One choice's search, observed: each chosen stage (what picked it; a span from the
        previous stage's end to its own), and the finished search (counts; the request span's
        token counts)."""
        since = time.time_ns()
        async for event in self.search.run(conversation, params, stream_text):
            if isinstance(event, StageChosen):
                result = event.result
                self.metrics.stage_chosen(result.tag, result.selection.method)
                now = time.time_ns()
                tracing.record_span(f"stage {result.tag}", since, now,
                                    stage_attributes(result, index))
                since = now
            elif isinstance(event, Summarized):
                self.metrics.summarized(event.agreed)
                now = time.time_ns()
                tracing.record_span("summary", since, now, {
                    **stage_attributes(event.result, index), "cot.summary.agreed": event.agreed})
                since = now
            elif isinstance(event, Trace):
                self.metrics.search_done(params.selector, params.beam_width, event.usage,
                                         event.answer_tokens)
                for retrace in event.retraces:
                    self.metrics.retraced(retrace.stage)
                tracing.add_usage(event.usage.prompt_tokens, event.usage.completion_tokens)
            yield event

    async def _trace(self, conversation: Conversation, params: SearchParams, index: int
                     ) -> Trace:
        async for event in self._one(conversation, params, index):
            if isinstance(event, Trace):
                return event
        raise RuntimeError("search ended without a trace")

    async def complete(self, body: ChatCompletionRequest, conversation: Conversation,
                       params: SearchParams) -> ChatCompletion:
        traces = await asyncio.gather(*(self._trace(conversation, choice_params(params, i), i)
                                        for i in range(body.n)))
        choices = []
        for i, trace in enumerate(traces):
            message = AssistantMessage(content=trace.answer)
            if body.return_trace:
                message.reasoning = message.reasoning_content = trace.tagged_text()
                message.stages = [stage_out(s) for s in trace.stages]
                if trace.summary is not None:
                    message.summary = stage_out(trace.summary)
                message.retraces = retraces_out(trace, params)
            answer = trace.answer_stage
            logprobs = answer_logprobs(answer, params) if answer is not None else None
            choices.append(Choice(index=i, message=message, logprobs=logprobs,
                                  finish_reason=trace.finish_reason))  # type: ignore[arg-type]
        return ChatCompletion(id=completion_id(), model=self.model_name, choices=choices,
                              usage=usage_out(list(traces)))

    async def stream(self, body: ChatCompletionRequest, conversation: Conversation,
                     params: SearchParams, deadline: float,
                     on_error: Callable[[APIError], None] | None = None) -> AsyncIterator[str]:
        """SSE chunks (see `server.api.streaming`); `deadline` is on the event loop's clock.
        A failure after the stream began is its last event, and `on_error` hears of it."""
        stream = ChatStream(body, params, self.model_name)
        traces: list[Trace] = []
        events = self._merged(conversation, params, body.n)
        try:
            async for item in with_keepalive(events, self.keepalive, deadline):
                if isinstance(item, str):
                    yield item
                    continue
                index, event = item
                if isinstance(event, Trace):
                    traces.append(event)
                for chunk in stream.render(index, event):
                    yield chunk
        except Exception as exc:  # the stream has begun: the error is its last event
            error = as_api_error(exc)
            if error.status >= 500:
                log.exception("stream failed")
            if on_error is not None:
                on_error(error)
            yield sse(api_error_body(error))
        else:
            for chunk in stream.finish(traces):
                yield chunk
        finally:
            await events.aclose()
        yield DONE

    async def _merged(self, conversation: Conversation, params: SearchParams, n: int
                      ) -> AsyncGenerator[tuple[int, SearchEvent], None]:
        """Events of n concurrent searches (with stage text as it is decoded), as they come.
        With n == 1, no extra task."""
        if n == 1:
            async for event in self._one(conversation, params, 0, stream_text=True):
                yield 0, event
            return
        queue: asyncio.Queue[tuple[int, SearchEvent | BaseException | None]] = asyncio.Queue()

        async def pump(i: int) -> None:
            try:
                async for event in self._one(conversation, choice_params(params, i), i,
                                             stream_text=True):
                    await queue.put((i, event))
                await queue.put((i, None))
            except BaseException as exc:  # includes cancellation: the consumer must wake up
                await queue.put((i, exc))
                raise

        tasks = [asyncio.create_task(pump(i)) for i in range(n)]
        try:
            remaining = n
            while remaining:
                i, item = await queue.get()
                if item is None:
                    remaining -= 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield i, item
        finally:
            for task in tasks:
                task.cancel()


def stage_attributes(result: StageResult, index: int) -> dict[str, str | int | bool]:
    """What a stage's span says about how it was chosen."""
    return {"cot.choice": index, "cot.stage": result.tag,
            "cot.stage.candidates": len(result.candidates),
            "cot.stage.selected_by": result.selection.method,
            "cot.stage.chosen_index": result.chosen_index,
            "cot.stage.comparisons": len(result.comparisons),
            "cot.stage.tokens": result.chosen.token_count, "cot.stage.fallback": result.fallback}
