"""Chat completions: runs one search per choice and turns traces into OpenAI responses or SSE
chunks. Knows nothing of HTTP routing; knows nothing of vLLM."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace

from server.api.errors import api_error_body, as_api_error
from server.api.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    ComparisonOut,
    CompletionTokensDetails,
    Delta,
    PromptTokensDetails,
    StageCandidateOut,
    StageOut,
    UsageOut,
    completion_id,
)
from server.metrics import Metrics
from server.search.beam import StageChosen, StageSearch
from server.search.params import SearchParams
from server.search.prompts import Conversation
from server.search.schema import StageSchema
from server.search.trace import StageResult, Trace

log = logging.getLogger(__name__)


def choice_params(params: SearchParams, index: int) -> SearchParams:
    """Choice 0 searches with the request's seed; choice i > 0 with one derived from it."""
    if index == 0 or params.sampling.seed is None:
        return params
    return replace(params, sampling=params.sampling.with_(seed=params.seed("choice", index)))


def stage_out(result: StageResult) -> StageOut:
    finite = lambda x: x if x != float("-inf") else None  # noqa: E731
    scores = result.selection.scores or (None,) * len(result.candidates)
    return StageOut(
        name=result.name, tag=result.tag, text=result.text, chosen_index=result.chosen_index,
        selected_by=result.selection.method,
        candidates=[StageCandidateOut(text=c.text, tokens=c.token_count,
                                      mean_logprob=finite(c.mean_logprob), closed=c.closed,
                                      score=score)
                    for c, score in zip(result.candidates, scores, strict=True)],
        comparisons=[ComparisonOut(**c.__dict__) for c in result.comparisons],
        fallback=result.fallback)


def usage_out(traces: list[Trace]) -> UsageOut:
    prompt = sum(t.usage.prompt_tokens for t in traces)
    completion = sum(t.usage.completion_tokens for t in traces)
    return UsageOut(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=sum(t.usage.cached_tokens for t in traces)),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=completion - sum(t.answer_tokens for t in traces),
            judge_tokens=sum(t.usage.judge_tokens for t in traces)))


def stage_delta(result: StageResult, schema: StageSchema, trace_wanted: bool) -> list[Delta]:
    """A chosen stage as stream deltas: its tagged text as reasoning (when the trace is
    wanted; separated from the next stage as in the full trace), the answer as content."""
    answer = result.tag == schema.answer_tag
    deltas = []
    if trace_wanted:
        deltas.append(Delta(reasoning_content=result.stage.wrap(result.text)
                            + ("" if answer else schema.separator)))
    if answer:
        deltas.append(Delta(content=result.text))
    return deltas


def sse(payload: ChatCompletionChunk | dict) -> str:
    if isinstance(payload, ChatCompletionChunk):
        data = payload.model_dump(exclude_none=True)
        for choice in data["choices"]:  # OpenAI chunks always carry these keys
            choice.setdefault("finish_reason", None)
            choice.setdefault("logprobs", None)
        payload = data
    return f"data: {json.dumps(payload)}\n\n"


class ChatService:
    def __init__(self, search: StageSearch, metrics: Metrics, model_name: str) -> None:
        self.search = search
        self.metrics = metrics
        self.model_name = model_name

    async def _one(self, conversation: Conversation, params: SearchParams
                   ) -> AsyncIterator[StageChosen | Trace]:
        async for event in self.search.run(conversation, params):
            if isinstance(event, Trace):
                self.metrics.search_done(params.selector, params.beam_width, event.usage,
                                         event.answer_tokens)
            yield event

    async def _trace(self, conversation: Conversation, params: SearchParams) -> Trace:
        async for event in self._one(conversation, params):
            if isinstance(event, Trace):
                return event
        raise RuntimeError("search ended without a trace")

    async def complete(self, body: ChatCompletionRequest, conversation: Conversation,
                       params: SearchParams) -> ChatCompletion:
        traces = await asyncio.gather(*(self._trace(conversation, choice_params(params, i))
                                        for i in range(body.n)))
        choices = []
        for i, trace in enumerate(traces):
            message = AssistantMessage(content=trace.answer)
            if body.return_trace:
                message.reasoning_content = trace.tagged_text()
                message.stages = [stage_out(s) for s in trace.stages]
            choices.append(Choice(index=i, message=message,
                                  finish_reason=trace.finish_reason))  # type: ignore[arg-type]
        return ChatCompletion(id=completion_id(), model=self.model_name, choices=choices,
                              usage=usage_out(list(traces)))

    async def stream(self, body: ChatCompletionRequest, conversation: Conversation,
                     params: SearchParams, deadline: float) -> AsyncIterator[str]:
        """SSE chunks; `deadline` is on the event loop's clock."""
        chunk_id = completion_id()
        chunk = lambda choices, usage=None: ChatCompletionChunk(  # noqa: E731
            id=chunk_id, model=self.model_name, choices=choices, usage=usage)
        yield sse(chunk([ChunkChoice(index=i, delta=Delta(role="assistant", content=""))
                         for i in range(body.n)]))
        traces: list[Trace] = []
        events = self._merged(conversation, params, body.n)
        try:
            while True:
                async with asyncio.timeout_at(deadline):  # only while waiting on the search
                    try:
                        index, event = await anext(events)
                    except StopAsyncIteration:
                        break
                if isinstance(event, StageChosen):
                    for delta in stage_delta(event.result, params.schema,
                                             body.return_trace):
                        yield sse(chunk([ChunkChoice(index=index, delta=delta)]))
                else:
                    traces.append(event)
                    yield sse(chunk([ChunkChoice(index=index, delta=Delta(),
                                                 finish_reason=event.finish_reason)]))  # type: ignore[arg-type]
        except Exception as exc:  # the stream has begun: the error is its last event
            error = as_api_error(exc)
            if error.status >= 500:
                log.exception("stream failed")
            yield sse(api_error_body(error))
        else:
            if body.stream_options and body.stream_options.include_usage:
                yield sse(chunk([], usage_out(traces)))
        finally:
            await events.aclose()
        yield "data: [DONE]\n\n"

    async def _merged(self, conversation: Conversation, params: SearchParams, n: int
                      ) -> AsyncGenerator[tuple[int, StageChosen | Trace], None]:
        """Events of n concurrent searches, as they come. With n == 1, no extra task."""
        if n == 1:
            async for event in self._one(conversation, params):
                yield 0, event
            return
        queue: asyncio.Queue[tuple[int, StageChosen | Trace | BaseException | None]] = (
            asyncio.Queue())

        async def pump(i: int) -> None:
            try:
                async for event in self._one(conversation, choice_params(params, i)):
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
