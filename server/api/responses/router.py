"""POST /v1/responses: the request becomes a chat completion request and runs through the same
checks, admission, deadline and disconnect handling as chat completions; wiring only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from server.api import handling
from server.api.errors import invalid_request
from server.api.protocol import ChatCompletionRequest
from server.api.responses.output import ResponseFrame, from_completion
from server.api.responses.protocol import FIELD_NAMES, ResponseObject, ResponsesRequest
from server.api.responses.streaming import response_events
from server.api.state import server_state

router = APIRouter()

STREAM = handling.stream_doc(
    "The Response (JSON), or with `stream: true` its events as server-sent events, from "
    "response.created to response.completed (or response.incomplete, or an error event)",
    {"type": "object", "required": ["event", "data"], "properties": {
        "event": {"type": "string", "description": "the event's type"},
        "data": {"type": "string", "description": "the event as JSON, with its `type` and "
                                                  "`sequence_number`"}}})


def chat_request(body: ResponsesRequest) -> ChatCompletionRequest:
    """The chat completion request that runs `body`; a value out of range is a 400 naming the
    Responses field."""
    try:
        return body.to_chat()
    except ValidationError as exc:
        raise invalid_request(exc.errors(), FIELD_NAMES) from None


@router.post("/v1/responses", response_model=ResponseObject,
             responses={**STREAM, **handling.ERRORS})
async def create_response(body: ResponsesRequest, request: Request) -> Response:
    state = server_state(request.app)
    chat = chat_request(body)
    run = await handling.prepare(state, chat, FIELD_NAMES)
    frame = ResponseFrame.of(body, run.params, state.settings.model_name)
    headers = handling.ignored_fields_header(body.ignored_fields, state.ignored_fields)
    if body.stream:
        events = response_events(frame, handling.chat_stream(request, state, run, chat))
        return handling.event_stream(events, headers)
    return await handling.respond(
        request, state, run, chat,
        lambda completion: from_completion(frame, completion).model_dump(), headers, FIELD_NAMES)
