"""A Response from a search's result. The frame (ids, creation time, the settings a Response
echoes) is fixed before the search runs, so that the events of a stream and its final
Response agree; the final Response is built here for both routes, from the chat completion's
stages, answer, finish reason and usage.

The reasoning item holds the tagged stages before the answer, each followed by the schema's
separator, exactly as the chat stream sends them as reasoning; the answer stage is the message
item. A streamed and a non-streamed Response of the same search are therefore the same."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.api.protocol import ChatCompletion, StageOut, UsageOut
from server.api.responses.protocol import (
    IncompleteDetails,
    InputTokensDetails,
    ItemStatus,
    MessageItem,
    OutputText,
    OutputTokensDetails,
    ReasoningEcho,
    ReasoningItem,
    ReasoningText,
    ResponseObject,
    ResponsesRequest,
    ResponseStatus,
    ResponseUsage,
    SummaryText,
    new_id,
)
from server.search.params import SearchParams
from server.search.schema import StageSchema


def response_usage(usage: UsageOut) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=usage.prompt_tokens_details.cached_tokens),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(
            reasoning_tokens=usage.completion_tokens_details.reasoning_tokens,
            judge_tokens=usage.completion_tokens_details.judge_tokens),
        total_tokens=usage.total_tokens)


@dataclass(frozen=True)
class ResponseFrame:
    request: ResponsesRequest
    model: str
    schema: StageSchema
    temperature: float  # the sampling the search used, defaults applied
    top_p: float
    id: str = field(default_factory=lambda: new_id("resp"))
    reasoning_id: str = field(default_factory=lambda: new_id("rs"))
    message_id: str = field(default_factory=lambda: new_id("msg"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    @classmethod
    def of(cls, request: ResponsesRequest, params: SearchParams, model: str) -> ResponseFrame:
        return cls(request, model, params.schema, params.sampling.temperature,
                   params.sampling.top_p)

    def reasoning_text(self, stages: Sequence[StageOut]) -> str:
        """The stages before the answer, tagged, as the chat stream sends them."""
        schema = self.schema
        return "".join(schema.stage(s.tag).wrap(s.text) + schema.separator for s in stages
                       if s.tag != schema.answer_tag)

    def reasoning_item(self, text: str | None, status: ItemStatus) -> ReasoningItem:
        """The reasoning item with its text in the views asked for (`text` None: the
        item as a stream opens it, before its parts)."""
        parts = [] if text is None else [text]
        return ReasoningItem(
            id=self.reasoning_id, status=status,
            summary=[SummaryText(text=t) for t in parts] if self.request.wants_summary else [],
            content=[ReasoningText(text=t) for t in parts] if self.request.return_trace
            else None)

    def message_item(self, text: str | None, status: ItemStatus) -> MessageItem:
        parts = [] if text is None else [OutputText(text=text)]
        return MessageItem(id=self.message_id, status=status, content=parts)

    def response(self, status: ResponseStatus, output: Sequence[ReasoningItem | MessageItem] = (),
                 usage: UsageOut | None = None) -> ResponseObject:
        options = self.request.reasoning
        return ResponseObject(
            id=self.id, created_at=self.created_at, status=status, model=self.model,
            completed_at=None if status == "in_progress" else int(time.time()),
            incomplete_details=IncompleteDetails() if status == "incomplete" else None,
            output=list(output), instructions=self.request.instructions,
            max_output_tokens=self.request.max_output_tokens,
            temperature=self.temperature, top_p=self.top_p,
            reasoning=None if options is None else ReasoningEcho(
                effort=options.effort, summary=options.summary or options.generate_summary),
            metadata=self.request.metadata,
            usage=None if usage is None else response_usage(usage))

    def finished(self, reasoning: str, answer: str, finish_reason: str,
                 usage: UsageOut | None) -> ResponseObject:
        """The Response of a search that ended: `incomplete` when the token budget ran out
        (the reasoning item is complete all the same once the answer has begun)."""
        status: ResponseStatus = "incomplete" if finish_reason == "length" else "completed"
        reasoned: ItemStatus = "completed" if answer else status
        return self.response(status, [self.reasoning_item(reasoning, reasoned),
                                      self.message_item(answer, status)], usage)


def from_completion(frame: ResponseFrame, completion: ChatCompletion) -> ResponseObject:
    """The Response of the (one-choice) chat completion that ran the request."""
    message = completion.choices[0].message
    return frame.finished(frame.reasoning_text(message.stages or []), message.content or "",
                          completion.choices[0].finish_reason, completion.usage)
