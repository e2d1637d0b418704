"""What every route that runs a search does around it: readiness and model checks, the request's
limits, image decoding off the event loop, admission, the deadline, cancelling the search when
the client goes away, and observing it (latency, time to first token, a stream's failure, the
request span's search attributes). Chat completions and responses share it, so that they
refuse, queue, time out, cancel and are counted alike; `names` lets a route that rewrites its
request as a chat completion request name fields in its own terms in the errors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from server.api.admission import Admission, request_sequences
from server.api.errors import APIError, ErrorResponse, api_error_body, as_api_error, renamed
from server.api.protocol import ChatCompletion, ChatCompletionRequest, InvalidField
from server.api.request_record import CLIENT_GONE, RequestRecord, request_record
from server.api.serving import ChatService
from server.api.state import ServerState
from server.api.streaming import DONE, KEEPALIVE, sse
from server.config import Settings
from server.images.decoding import ImageError
from server.images.remote import RemotePolicy
from server.images.urls import ImageLimits, decode_image_url
from server.metrics import Metrics
from server.search.params import SearchParams
from server.search.prompts import Conversation
from server.tracing import set_attributes

log = logging.getLogger(__name__)
T = TypeVar("T")
SAME_NAMES: Mapping[str, str] = {}
IGNORED_HEADER = "X-Ignored-Fields"

# Every status a generating route answers with, in the OpenAPI schema. "4XX" covers the rest of
# the client errors (405, 415, ...) and keeps FastAPI from advertising a 422 it never sends.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse}
    for code in (400, 401, 404, 413, 429, "4XX", 500, 503, 504)}


def stream_doc(description: str, item: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    """The 200 of a route that answers with JSON, or with `stream: true` with server-sent
    events; `itemSchema` (OpenAPI 3.2) describes one event."""
    return {200: {"description": description,
                  "content": {"text/event-stream": {"itemSchema": item}}}}


@dataclass(frozen=True)
class Prepared:
    """A request that passed every check, ready to run: its search and decoded conversation,
    and its deadline in seconds."""

    service: ChatService
    params: SearchParams
    conversation: Conversation
    timeout: float

    def complete(self, body: ChatCompletionRequest) -> Awaitable[ChatCompletion]:
        return self.service.complete(body, self.conversation, self.params)

    def stream(self, body: ChatCompletionRequest, deadline: float,
               on_error: Callable[[APIError], None]) -> AsyncIterator[str]:
        return self.service.stream(body, self.conversation, self.params, deadline, on_error)


def remote_policy(settings: Settings) -> RemotePolicy | None:
    if not settings.remote_images:
        return None
    return RemotePolicy.from_setting(settings.remote_image_domains,
                                     settings.remote_image_timeout)


async def prepare(state: ServerState, body: ChatCompletionRequest,
                  names: Mapping[str, str] = SAME_NAMES) -> Prepared:
    """Check what the request model cannot check alone (readiness, the served model, this
    server's limits) and decode its images."""
    settings = state.settings
    service = state.chat
    if state.engine_dead:  # until the process exits (--engine-dead-grace)
        raise APIError(503, "the engine has died; this server is exiting to be restarted",
                       code="engine_dead", headers={"Retry-After": "5"})
    if service is None or not state.lifecycle.ready:
        raise APIError(503, "the server is not ready to take requests", code="not_ready",
                       headers={"Retry-After": "5"})
    if body.model not in settings.served_names:
        raise APIError(404, f"model {body.model!r} does not exist; this server serves "
                       f"{settings.model_name!r}", param="model", code="model_not_found")
    if body.n > settings.max_n:
        raise APIError(400, f"n must be at most {settings.max_n}", param="n")
    if body.image_count > settings.limit_images_per_prompt:
        raise APIError(400, f"at most {settings.limit_images_per_prompt} images per request",
                       param=names.get("messages", "messages"))
    context = getattr(state.engine, "max_model_len", None)
    if body.token_budget is not None and context and body.token_budget > context:
        field = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        field = names.get(field, field)
        raise APIError(400, f"{field} is too large: {body.token_budget}; this model's context "
                       f"holds {context} tokens, prompt included", param=field,
                       code="invalid_value")
    try:
        params = body.to_search_params(settings)
    except InvalidField as exc:
        raise APIError(400, str(exc), param=names.get(exc.param, exc.param)) from None
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels,
                         remote_policy(settings))
    try:  # decoding is CPU work: keep it off the event loop
        conversation = await asyncio.to_thread(
            body.to_conversation, lambda url: decode_image_url(url, limits))
    except ImageError as exc:
        raise renamed(as_api_error(exc), names) from None
    timeout = min(settings.request_timeout, body.timeout or settings.request_timeout)
    set_attributes(search_attributes(body, params))
    return Prepared(service, params, conversation, timeout)


def search_attributes(body: ChatCompletionRequest, params: SearchParams
                      ) -> dict[str, str | int | float | bool]:
    """What the request's span says about the search it runs."""
    attributes: dict[str, str | int | float | bool] = {
        "gen_ai.request.model": body.model, "gen_ai.request.n": body.n,
        "gen_ai.request.temperature": params.sampling.temperature,
        "gen_ai.request.top_p": params.sampling.top_p, "cot.search.beam_width":
        params.beam_width, "cot.search.selector": str(params.selector),
        "cot.search.shape": str(params.shape), "cot.stream": body.stream}
    if params.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = params.max_tokens
    return attributes


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


async def respond(request: Request, state: ServerState, run: Prepared,
                  body: ChatCompletionRequest, render: Callable[[ChatCompletion], Any],
                  headers: Mapping[str, str], names: Mapping[str, str] = SAME_NAMES
                  ) -> Response:
    """Run the search in an admission slot within the deadline and answer with `render` of
    its completion as JSON; 499 if the client went away (its search aborted); a failure raises
    the API error it maps to. Its latency is observed from the request's arrival."""
    record = request_record(request)
    try:
        async with (state.admission.slot(request_sequences(body.n, run.params.beam_width)),
                    asyncio.timeout(run.timeout)):
            result = await _cancel_on_disconnect(request, run.complete(body))
    except asyncio.CancelledError:
        log.info("request_id=%s client disconnected; its search was aborted",
                 record.request_id)
        return Response(status_code=CLIENT_GONE)
    except Exception as exc:
        error = as_api_error(exc, run.timeout)
        if error.status >= 500:
            log.exception("request_id=%s failed", record.request_id)
        raise renamed(error, names) from None
    finally:
        state.metrics.latency.observe(record.elapsed)
    return JSONResponse(render(result), headers=dict(headers))


def chat_stream(request: Request, state: ServerState, run: Prepared,
                body: ChatCompletionRequest) -> AsyncGenerator[str, None]:
    """The chat completion stream of the search, in an admission slot held to its last
    chunk; refused here, with a real 429 status, while one can still be sent."""
    weight = request_sequences(body.n, run.params.beam_width)
    state.admission.check(weight)
    deadline = asyncio.get_running_loop().time() + run.timeout
    record = request_record(request)
    return _observed(record, state.metrics, _admitted_stream(
        state.admission, weight,
        run.stream(body, deadline, lambda error: record.fail(error.status)), record))


async def _admitted_stream(admission: Admission, weight: int, chunks: AsyncIterator[str],
                           record: RequestRecord) -> AsyncGenerator[str, None]:
    try:
        async with admission.slot(weight):
            async for chunk in chunks:
                yield chunk
    except APIError as exc:  # the queue filled between the check and the start
        record.fail(exc.status)
        yield sse(api_error_body(exc))
        yield DONE


async def _observed(record: RequestRecord, metrics: Metrics, chunks: AsyncGenerator[str, None]
                    ) -> AsyncGenerator[str, None]:
    """The stream, observed: its time to first token (the first chunk with output, counted
    from the request's arrival), its latency (to its last chunk, or to the client's leaving,
    which fails it with 499), as a JSON completion's are."""
    first = True
    try:
        async for chunk in chunks:
            if first and chunk != KEEPALIVE and chunk != DONE and record.failure is None:
                first = False
                metrics.ttft.observe(record.elapsed)
            yield chunk
    except (asyncio.CancelledError, GeneratorExit):  # the client went away mid-stream
        record.fail(CLIENT_GONE)
        raise
    finally:
        metrics.latency.observe(record.elapsed)
        await chunks.aclose()


def event_stream(events: AsyncIterator[str], headers: Mapping[str, str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", **headers})


IGNORED_REMEMBERED = 1024  # names logged once each; beyond, a flood of new names is not kept


def ignored_fields_header(names: list[str], logged: set[str]) -> dict[str, str]:
    """Request fields this server accepted without using them: logged once per name (into
    `logged`, the server's bounded memory of what it has said), named in a response header
    (escaped to ASCII: a header cannot carry any name a JSON key can be)."""
    shown = [json.dumps(name)[1:-1] for name in names]
    new = [name for name, raw in zip(shown, names, strict=True) if raw not in logged]
    if new:
        log.warning("ignoring request fields this server does not use: %s (logged once)",
                    ", ".join(new))
        if len(logged) < IGNORED_REMEMBERED:
            logged.update(names)
    return {IGNORED_HEADER: ", ".join(shown)} if names else {}
