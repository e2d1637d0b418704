"""create_app(settings): the FastAPI app. The lifespan starts the engine in the background
(so /health answers while the model loads), warms it up (server/api/warmup.py; --no-warmup
skips it), turns /ready 200, then watches it; the singletons live on one typed `ServerState`
(`app.state.server`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from server import __version__
from server.api import chat, health, models
from server.api.admission import Admission
from server.api.errors import install_error_handlers
from server.api.middleware import install_middleware
from server.api.responses import router as responses
from server.api.serving import ChatService
from server.api.state import Readiness, ServerState
from server.api.warmup import warm_up
from server.config import Settings
from server.metrics import Metrics
from server.search.beam import StageSearch
from server.tracing import Tracing

log = logging.getLogger(__name__)
EngineFactory = Callable[[Settings], Awaitable[Any]]
WATCH_SECONDS = 1.0


async def _start_vllm(settings: Settings) -> Any:
    from server.engine import VllmEngine

    return await VllmEngine.start(settings)


async def _load_and_watch(state: ServerState, factory: EngineFactory) -> None:
    try:
        engine = await factory(state.settings)
    except Exception:
        log.exception("the engine failed to start")
        state.lifecycle.fail()
        return
    state.engine = engine
    search = StageSearch(engine, engine.render_chat, state.metrics)
    state.chat = ChatService(search, state.metrics, state.settings.model_name,
                             state.settings.stream_keepalive)
    log.info("model %s loaded", state.settings.model)
    if state.settings.warmup:
        state.lifecycle.warm()
        await warm_up(state.chat, state.settings, state.metrics, lambda: engine.dead)
    if not engine.dead:  # one that died in the warm-up is never ready
        state.lifecycle.serve()
        log.info("ready: taking requests")
    while not engine.dead:
        await asyncio.sleep(WATCH_SECONDS)
    grace = state.settings.engine_dead_grace
    log.error("the engine died; answering 503 for %g s, then exiting (status 1) so that the "
              "process is restarted", grace)
    state.lifecycle.fail(exit_after=grace)


def _is(state: ServerState, readiness: Readiness) -> Callable[[], float]:
    return lambda: float(state.lifecycle.readiness is readiness)


def create_app(settings: Settings, engine_factory: EngineFactory | None = None,
               tracing: Tracing | None = None) -> FastAPI:
    """The app; `engine_factory` and `tracing` replace the vLLM engine and the OTLP exporter
    (--otlp-traces-endpoint) where a test brings its own."""
    metrics = Metrics()
    admission = Admission(settings.max_concurrent_requests, settings.max_queued_requests,
                          settings.max_concurrent_sequences, settings.max_queued_sequences)
    state = ServerState(settings, metrics, admission,
                        tracing=tracing or Tracing.to_collector(settings.otlp_traces_endpoint))
    metrics.waiting.set_function(lambda: admission.waiting)
    metrics.running.set_function(lambda: admission.running)
    metrics.sequences_waiting.set_function(lambda: admission.waiting_sequences)
    metrics.sequences_running.set_function(lambda: admission.running_sequences)
    for readiness in Readiness:
        metrics.readiness.labels(readiness.value).set_function(_is(state, readiness))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(_load_and_watch(state, engine_factory or _start_vllm))
        yield
        loader.cancel()
        # decided before the shutdown, after which any engine looks dead (vLLM's `errored`)
        state.exit_status = 1 if state.engine_dead else 0
        if state.engine is not None:
            await state.engine.shutdown()
        await asyncio.to_thread(state.tracing.shutdown)

    app = FastAPI(title="cot-server", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible chat completions and responses for "
                              "chain-of-thought VLMs, with stage-level beam search.")
    app.state.server = state
    install_error_handlers(app)
    for module in (chat, responses, models, health):
        app.include_router(module.router)
    install_middleware(app, state)
    return app
