"""POST /v1/chat/completions: validation and wiring only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server.api.admission import Admission
from server.api.errors import APIError, ErrorResponse, api_error_body, as_api_error
from server.api.protocol import ChatCompletion, ChatCompletionRequest
from server.api.serving import sse
from server.api.state import server_state
from server.config import Settings
from server.images.decoding import ImageError
from server.images.remote import RemotePolicy
from server.images.urls import ImageLimits, decode_image_url

log = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")

# Every status the route answers with, in the OpenAPI schema. "4XX" covers the rest of the
# client errors (405, 415, ...) and keeps FastAPI from advertising a 422 it never sends.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse}
    for code in (400, 401, 404, 413, 429, "4XX", 500, 503, 504)}
# With `stream: true` the 200 is an event stream; `itemSchema` (OpenAPI 3.2) describes one event.
STREAM: dict[int | str, dict[str, Any]] = {200: {
    "description": "The completion (JSON), or with `stream: true` its chunks as server-sent "
                   "events, ending with `data: [DONE]`",
    "content": {"text/event-stream": {"itemSchema": {
        "type": "object", "required": ["data"], "properties": {"data": {
            "type": "string", "description": "a chat.completion.chunk or an error object as "
                                             "JSON, or [DONE] at the end"}}}}}}}


def remote_policy(settings: Settings) -> RemotePolicy | None:
    if not settings.remote_images:
        return None
    return RemotePolicy.from_setting(settings.remote_image_domains,
                                     settings.remote_image_timeout)


async def _cancel_on_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Run `work`; if the client goes away first, cancel it (which aborts its engine calls)."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await task
    finally:
        watcher.cancel()


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             responses={**STREAM, **ERRORS})
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    state = server_state(request.app)
    settings = state.settings
    service = state.chat
    if service is None or not state.lifecycle.ready:
        raise APIError(503, "the server is not ready to take requests", code="not_ready",
                       headers={"Retry-After": "5"})
    if body.model != settings.model_name:
        raise APIError(404, f"model {body.model!r} does not exist; this server serves "
                       f"{settings.model_name!r}", param="model", code="model_not_found")
    if body.n > settings.max_n:
        raise APIError(400, f"n must be at most {settings.max_n}", param="n")
    if body.image_count > settings.limit_images_per_prompt:
        raise APIError(400, f"at most {settings.limit_images_per_prompt} images per request",
                       param="messages")
    context = getattr(state.engine, "max_model_len", None)
    if body.token_budget is not None and context and body.token_budget > context:
        field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise APIError(400, f"{field} is too large: {body.token_budget}; this model's context "
                       f"holds {context} tokens, prompt included", param=field,
                       code="invalid_value")
    try:
        params = body.to_search_params(settings)
    except ValueError as exc:
        raise APIError(400, str(exc), param="stage_max_tokens") from None
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels,
                         remote_policy(settings))
    try:  # decoding is CPU work: keep it off the event loop
        conversation = await asyncio.to_thread(
            body.to_conversation, lambda url: decode_image_url(url, limits))
    except ImageError as exc:
        raise as_api_error(exc) from None

    admission = state.admission
    timeout = min(settings.request_timeout, body.timeout or settings.request_timeout)
    if body.stream:
        admission.check()  # refuse with a real 429 status while we still can
        deadline = asyncio.get_running_loop().time() + timeout
        return StreamingResponse(_admitted_stream(admission, service.stream(
                                     body, conversation, params, deadline)),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    started = time.monotonic()
    try:
        async with admission.slot(), asyncio.timeout(timeout):
            result = await _cancel_on_disconnect(request,
                                                 service.complete(body, conversation, params))
    except asyncio.CancelledError:
        log.info("request_id=%s client disconnected; its search was aborted",
                 request.state.request_id)
        return Response(status_code=499)
    except APIError:
        raise
    except Exception as exc:
        error = as_api_error(exc, timeout)
        if error.status >= 500:
            log.exception("request_id=%s failed", request.state.request_id)
        raise error from None
    finally:
        state.metrics.latency.observe(time.monotonic() - started)
    return JSONResponse(wire(result))


def wire(result: ChatCompletion) -> dict[str, Any]:
    """The completion as JSON, as its schema says: nulls are kept (a candidate's mean_logprob, a
    comparison's confidence, a choice's logprobs), the trace fields are left out unless asked
    for."""
    data = result.model_dump()
    for choice in data["choices"]:
        message = choice["message"]
        for key in ("reasoning_content", "stages"):
            if message.get(key) is None:
                message.pop(key, None)
    return data


async def _admitted_stream(admission: Admission, chunks: AsyncIterator[str]
                           ) -> AsyncIterator[str]:
    """Hold an admission slot for the whole stream."""
    try:
        async with admission.slot():
            async for chunk in chunks:
                yield chunk
    except APIError as exc:  # the queue filled between the check and the start
        yield sse(api_error_body(exc))
        yield "data: [DONE]\n\n"
