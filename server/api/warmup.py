"""Warm-up before ready: a few real searches through the server's own request path, so that the
first user request does not pay for what the engine does only the first time (compiling and
caching its kernels and samplers, the image processor, the structured-output backend).

Each warm-up path is a chat completion request as a client would send it (the server's model
name, a small generated picture as a data: URL, a question), validated by the wire model,
turned into search parameters and a conversation by the same code as a request (so the stage
mode, schema, chat template and image decoding are the server's own), and run by the app's
`ChatService`. Together they take every kind of engine call a request can make:

    one_call    width 1, streamed: the stages in one engine call, decoded as they go
    logprobs    width 1 with token logprobs: the answer stage as its own call with logprobs
    judge       width 4, n > 1 choices, seeded: n > 1 sampling, the judge's one-token calls
    verify      width 4, unseeded: one n = 4 call per stage, the verifier's one-token calls
    structured  width 1 with response_format json_object: the structured-output backend

Stage caps are small (`WARMUP_STAGE_TOKENS`): what is compiled or loaded the first time does not
depend on how long a stage is. The searching paths sample at WARMUP_TEMPERATURE, so that their
candidates differ and the judge and the verifier are asked (candidates of the same text are
neither judged nor verified). A path that fails is logged as a warning and the warm-up goes
on (a model may refuse one of them, as it would refuse such a request); only an engine that
died stops it. Warm-up is not a request: the HTTP request metrics (requests, latency, TTFT,
queue) never see it; the search metrics (engine calls, tokens, searches, stages) count its
engine work as vLLM's own counters do, and `cot_server_warmup_requests_total{path, outcome}`
says how much of it was warm-up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

from server.api.errors import APIError
from server.api.protocol import ChatCompletionRequest
from server.api.serving import ChatService
from server.config import Settings
from server.images.decoding import encode_data_url
from server.images.urls import ImageLimits, decode_image_url
from server.metrics import Metrics
from server.request_id import bind_request_id, unbind_request_id
from server.search.interface import EngineDead

log = logging.getLogger(__name__)
WARMUP_STAGE_TOKENS = 16  # per stage: enough to run every path, short on any model
WARMUP_WIDTH = 4  # candidates per stage of the searching paths (n > 1 sampling)
WARMUP_TEMPERATURE = 2.0  # the searching paths': the highest a request may ask
WARMUP_QUESTION = "How many shapes are in the picture, and which colours are they?"


@dataclass(frozen=True)
class WarmupPath:
    """One warm-up request: its name (the metric's `path` label) and the request fields that
    send it down its path (beyond model, messages and stage caps)."""

    name: str
    fields: Mapping[str, Any]


def warmup_paths(settings: Settings) -> tuple[WarmupPath, ...]:
    """The paths, each within this server's limits (`--max-n`)."""
    searching = {"beam_width": WARMUP_WIDTH, "temperature": WARMUP_TEMPERATURE}
    return (
        WarmupPath("one_call", {"beam_width": 1, "stream": True}),
        WarmupPath("logprobs", {"beam_width": 1, "logprobs": True, "top_logprobs": 2}),
        WarmupPath("judge", {**searching, "selector": "judge", "n": min(2, settings.max_n),
                             "seed": 0}),
        WarmupPath("verify", {**searching, "selector": "verify"}),
        WarmupPath("structured", {"beam_width": 1,
                                  "response_format": {"type": "json_object"}}),
    )


def warmup_image() -> Image.Image:
    """A small picture like a request's (a few coloured shapes on white)."""
    image = Image.new("RGB", (112, 84), "white")
    draw = ImageDraw.Draw(image)
    draw.polygon([(10, 70), (30, 20), (50, 70)], fill="green")
    draw.rectangle((62, 30, 100, 68), fill="orange")
    return image


def request_body(settings: Settings, path: WarmupPath, image_url: str | None) -> dict[str, Any]:
    """The request a client would send down `path` (with the picture unless this server takes
    no images)."""
    content: list[dict[str, Any]] = [{"type": "text", "text": WARMUP_QUESTION}]
    if image_url is not None:
        content.insert(0, {"type": "image_url", "image_url": {"url": image_url}})
    return {"model": settings.model_name, "messages": [{"role": "user", "content": content}],
            "stage_max_tokens": min(WARMUP_STAGE_TOKENS, settings.stage_max_tokens),
            **path.fields}


@dataclass
class WarmupReport:
    """How the warm-up went: seconds per path, the paths that failed (and why), and whether
    it stopped because the engine died."""

    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    engine_dead: bool = False
    total: float = 0.0

    def summary(self) -> str:
        each = ", ".join(f"{name} {s:.2f} s" + (" (failed)" if name in self.failed else "")
                         for name, s in self.seconds.items())
        return f"warm-up took {self.total:.2f} s ({each})"


async def run_path(service: ChatService, settings: Settings, body: ChatCompletionRequest
                   ) -> None:
    """One warm-up request, as the chat route runs it (without HTTP): its search parameters
    and conversation from the request, then the completion, or the stream drained to its end.
    A failure raises, a failed stream's last event included."""
    params = body.to_search_params(settings)
    limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
    conversation = await asyncio.to_thread(body.to_conversation,
                                           lambda url: decode_image_url(url, limits))
    async with asyncio.timeout(settings.request_timeout):
        if not body.stream:
            await service.complete(body, conversation, params)
            return
        failures: list[APIError] = []
        deadline = asyncio.get_running_loop().time() + settings.request_timeout
        async for _ in service.stream(body, conversation, params, deadline, failures.append):
            pass
        if failures:
            raise failures[0]


async def warm_up(service: ChatService, settings: Settings, metrics: Metrics,
                  engine_dead: Callable[[], bool],
                  paths: tuple[WarmupPath, ...] | None = None) -> WarmupReport:
    """Run each path once, in turn, and report; sets `cot_server_warmup_seconds` and counts
    each path's outcome. Engine calls are made under the request id `warmup-<path>` (their
    log lines and engine request ids say so)."""
    paths = warmup_paths(settings) if paths is None else paths
    image_url = (encode_data_url(warmup_image(), "PNG")
                 if settings.limit_images_per_prompt >= 1 else None)
    log.info("warming up before ready: %s", ", ".join(p.name for p in paths))
    report = WarmupReport()
    started = time.monotonic()
    for path in paths:
        began = time.monotonic()
        token = bind_request_id(f"warmup-{path.name}")
        try:
            body = ChatCompletionRequest.model_validate(request_body(settings, path, image_url))
            await run_path(service, settings, body)
        except Exception as exc:  # any failure: warn and go on, unless the engine died
            report.failed[path.name] = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, EngineDead) or engine_dead():
                report.engine_dead = True
        finally:
            unbind_request_id(token)
        report.seconds[path.name] = time.monotonic() - began
        outcome = "failed" if path.name in report.failed else "ok"
        metrics.warmup_requests.labels(path.name, outcome).inc()
        if report.engine_dead:
            log.error("warm-up path %s: the engine died (%s)", path.name,
                      report.failed[path.name])
            break
        if outcome == "failed":
            log.warning("warm-up path %s failed, going on without it (a request down this "
                        "path may pay the first-time cost): %s", path.name,
                        report.failed[path.name])
    report.total = time.monotonic() - started
    metrics.warmup_seconds.set(report.total)
    log.info("%s", report.summary())
    return report
