"""POST /v1/chat/completions: validation and wiring only (the checks, admission, deadline and
disconnect handling it shares with /v1/responses are in handling.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from server.api.handling import (
    ERRORS,
    chat_stream,
    event_stream,
    ignored_fields_header,
    prepare,
    respond,
    stream_doc,
)
from server.api.protocol import ChatCompletion, ChatCompletionRequest
from server.api.state import server_state

router = APIRouter()

STREAM = stream_doc(
    "The completion (JSON), or with `stream: true` its chunks as server-sent events, ending "
    "with `data: [DONE]`",
    {"type": "object", "required": ["data"], "properties": {"data": {
        "type": "string", "description": "a chat.completion.chunk or an error object as JSON, "
                                         "or [DONE] at the end"}}})


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             responses={**STREAM, **ERRORS})
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    state = server_state(request.app)
    run = await prepare(state, body)
    headers = ignored_fields_header(body.ignored_fields, state.ignored_fields)
    if body.stream:
        return event_stream(chat_stream(request, state, run, body), headers)
    return await respond(request, state, run, body, wire, headers)


def wire(result: ChatCompletion) -> dict[str, Any]:
    """The completion as JSON, as its schema says: nulls are kept (a candidate's mean_logprob, a
    comparison's confidence, a choice's logprobs), the trace fields are left out unless asked
    for."""
    data = result.model_dump()
    for choice in data["choices"]:
        message = choice["message"]
        for key in ("reasoning", "reasoning_content", "stages"):
            if message.get(key) is None:
                message.pop(key, None)
    return data
