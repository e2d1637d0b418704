"""A streamed Response: the chat completion stream of the search, read back chunk by chunk, as
the Responses API's events (`event:` and `data:` lines, each with its `type` and
`sequence_number`). The chat stream's wire format is the contract read here, so the chat
service's deadline, keep-alives, error mapping and usage serve both endpoints unchanged.

Order: at once, response.created, response.in_progress and the reasoning item (output 0) added
with its parts (the views of the trace asked for); a text delta per reasoning chunk of the chat
stream; when the answer begins (or the search ends), the reasoning parts and item done, the
message item (output 1) added with its output_text part; a delta per answer chunk; its part and
item done; then response.completed (or response.incomplete when the token budget ran out) with
the usage. A failure is an `error` event, and the stream ends. Keep-alive comments pass on."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from server.api.errors import ErrorResponse, rename_param
from server.api.protocol import ChatCompletionChunk, UsageOut
from server.api.responses.output import ResponseFrame
from server.api.responses.protocol import FIELD_NAMES, ResponsesRequest


@dataclass(frozen=True)
class PartEvents:
    """The events of one kind of text part: opened, a delta at a time, its text done, done."""

    added: str
    delta: str
    text_done: str
    part_done: str
    index_key: str  # which index the events give the part by
    part_type: str
    part_extra: dict[str, Any] = field(default_factory=dict)  # what the part object carries
    text_extra: dict[str, Any] = field(default_factory=dict)  # what the text events carry

    def part(self, text: str) -> dict[str, Any]:
        return {"type": self.part_type, "text": text, **self.part_extra}


SUMMARY = PartEvents("response.reasoning_summary_part.added",
                     "response.reasoning_summary_text.delta",
                     "response.reasoning_summary_text.done",
                     "response.reasoning_summary_part.done", "summary_index", "summary_text")
REASONING_TEXT = PartEvents("response.content_part.added", "response.reasoning_text.delta",
                            "response.reasoning_text.done", "response.content_part.done",
                            "content_index", "reasoning_text")
OUTPUT_TEXT = PartEvents("response.content_part.added", "response.output_text.delta",
                         "response.output_text.done", "response.content_part.done",
                         "content_index", "output_text", {"annotations": []}, {"logprobs": []})


def reasoning_parts(request: ResponsesRequest) -> list[PartEvents]:
    return [kind for kind, wanted in ((SUMMARY, request.wants_summary),
                                      (REASONING_TEXT, request.return_trace)) if wanted]


class EventWriter:
    """Formats events as server-sent events, numbering them in the order they are sent."""

    def __init__(self) -> None:
        self.sequence = 0

    def __call__(self, kind: str, **fields: Any) -> str:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data)}\n\n"


class ItemEvents:
    """One output item's events: added, each of its text parts opened, deltas, closed, done."""

    def __init__(self, emit: EventWriter, index: int, item_id: str,
                 parts: list[PartEvents]) -> None:
        self.emit = emit
        self.index = index
        self.item_id = item_id
        self.parts = parts
        self.opened = self.closed = False

    def _where(self, kind: PartEvents) -> dict[str, Any]:
        return {"item_id": self.item_id, "output_index": self.index, kind.index_key: 0}

    def open(self, item: BaseModel) -> list[str]:
        self.opened = True
        return [self.emit("response.output_item.added", output_index=self.index,
                          item=item.model_dump()),
                *(self.emit(kind.added, **self._where(kind), part=kind.part(""))
                  for kind in self.parts)]

    def delta(self, text: str) -> list[str]:
        return [self.emit(kind.delta, **self._where(kind), delta=text, **kind.text_extra)
                for kind in self.parts]

    def close(self, item: BaseModel, text: str) -> list[str]:
        self.closed = True
        events = []
        for kind in self.parts:
            events.append(self.emit(kind.text_done, **self._where(kind), text=text,
                                    **kind.text_extra))
            events.append(self.emit(kind.part_done, **self._where(kind), part=kind.part(text)))
        events.append(self.emit("response.output_item.done", output_index=self.index,
                                item=item.model_dump()))
        return events


def chat_payload(event: str) -> ChatCompletionChunk | ErrorResponse | None:
    """One event of the chat completion stream: a chunk, an error, or None for `[DONE]`."""
    data = event.removeprefix("data: ").strip()
    if data == "[DONE]":
        return None
    payload = json.loads(data)
    if "error" in payload:
        return ErrorResponse.model_validate(payload)
    return ChatCompletionChunk.model_validate(payload)


class ResponseStream:
    """One streamed Response: what the search has produced so far, and its events."""

    def __init__(self, frame: ResponseFrame) -> None:
        self.frame = frame
        self.emit = EventWriter()
        self.reasoning_item = ItemEvents(self.emit, 0, frame.reasoning_id,
                                         reasoning_parts(frame.request))
        self.message_item = ItemEvents(self.emit, 1, frame.message_id, [OUTPUT_TEXT])
        self.reasoning = ""
        self.answer = ""
        self.finish_reason = "stop"
        self.usage: UsageOut | None = None

    async def events(self, chat: AsyncGenerator[str, None]) -> AsyncIterator[str]:
        for out in self.start():  # at once: the chat stream sends nothing before output
            yield out
        async with contextlib.aclosing(chat):
            async for event in chat:
                if event.startswith(":"):  # an SSE comment: a keep-alive
                    yield event
                    continue
                payload = chat_payload(event)
                if payload is None:
                    break
                if isinstance(payload, ErrorResponse):  # the stream's last event
                    yield self.error(payload)
                    return
                for out in self.on_chunk(payload):
                    yield out
        for out in self.finish():
            yield out

    def start(self) -> list[str]:
        response = self.frame.response("in_progress").model_dump()
        return [self.emit("response.created", response=response),
                self.emit("response.in_progress", response=response),
                *self.reasoning_item.open(self.frame.reasoning_item(None, "in_progress"))]

    def on_chunk(self, chunk: ChatCompletionChunk) -> list[str]:
        events: list[str] = []
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.reasoning_content:
                self.reasoning += choice.delta.reasoning_content
                events += self.reasoning_item.delta(choice.delta.reasoning_content)
            if choice.delta.content:
                if not self.message_item.opened:  # the answer has begun: reasoning is done
                    events += self.reasoning_item.close(
                        self.frame.reasoning_item(self.reasoning, "completed"), self.reasoning)
                    events += self.message_item.open(self.frame.message_item(None,
                                                                             "in_progress"))
                self.answer += choice.delta.content
                events += self.message_item.delta(choice.delta.content)
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        return events

    def finish(self) -> list[str]:
        events: list[str] = []
        response = self.frame.finished(self.reasoning, self.answer, self.finish_reason,
                                       self.usage)
        reasoning, message = response.output
        if not self.reasoning_item.closed:
            events += self.reasoning_item.close(reasoning, self.reasoning)
        if not self.message_item.opened:
            events += self.message_item.open(self.frame.message_item(None, "in_progress"))
        events += self.message_item.close(message, self.answer)
        kind = "response.completed" if response.status == "completed" else "response.incomplete"
        events.append(self.emit(kind, response=response.model_dump()))
        return events

    def error(self, failure: ErrorResponse) -> str:
        error = failure.error
        return self.emit("error", code=None if error.code is None else str(error.code),
                         message=error.message, param=rename_param(error.param, FIELD_NAMES))


def response_events(frame: ResponseFrame, chat: AsyncGenerator[str, None]) -> AsyncIterator[str]:
    """The Responses API events of a chat completion stream."""
    return ResponseStream(frame).events(chat)
