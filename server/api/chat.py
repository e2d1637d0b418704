"""POST /v1/chat/completions: validation and wiring only."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server.api.errors import APIError
from server.api.protocol import ChatCompletion, ChatCompletionRequest, ErrorResponse
from server.api.serving import ChatService
from server.config import Settings
from server.images import ImageError, ImageLimits, decode_image_url
from server.search.interface import PromptTooLong

log = logging.getLogger(__name__)
router = APIRouter()
T = TypeVar("T")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 429, 500, 503, 504)}


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


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS)
async def create_chat_completion(body: ChatCompletionRequest, request: Request) -> Response:
    state = request.app.state
    settings: Settings = state.settings
    service: ChatService | None = getattr(state, "chat", None)
    if service is None or state.lifecycle.draining:
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
    try:
        params = body.to_search_params(settings)
    except ValueError as exc:
        raise APIError(400, str(exc), param="stage_max_tokens") from None
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
    try:
        conversation = body.to_conversation(lambda url: decode_image_url(url, limits))
    except ImageError as exc:
        raise APIError(413 if exc.too_large else 400, str(exc), param="messages",
                       code="invalid_image") from None

    if body.stream:
        return StreamingResponse(service.stream(body, conversation, params),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.request_timeout):
            result = await _cancel_on_disconnect(request,
                                                 service.complete(body, conversation, params))
    except TimeoutError:
        raise APIError(504, f"the request took longer than {settings.request_timeout} s",
                       code="timeout") from None
    except PromptTooLong as exc:
        raise APIError(400, f"the prompt does not fit the model's context: {exc}",
                       param="messages", code="context_length_exceeded") from None
    except asyncio.CancelledError:
        log.info("client disconnected; its search was aborted")
        return Response(status_code=499)
    finally:
        state.metrics.latency.observe(time.monotonic() - started)
    return JSONResponse(result.model_dump(exclude_none=True))
