"""create_app(settings): the FastAPI app. The lifespan starts the engine in the background
(so /health answers while the model loads and /ready turns 200 once it has) and puts the
singletons on app.state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from server import __version__
from server.api import chat, health, models
from server.api.admission import Admission
from server.api.errors import install_error_handlers
from server.api.middleware import RequestContextMiddleware
from server.api.serving import ChatService
from server.config import Settings
from server.metrics import Metrics
from server.search.beam import StageSearch

log = logging.getLogger(__name__)
EngineFactory = Callable[[Settings], Awaitable[Any]]


@dataclass
class Lifecycle:
    """Process-wide serving state: loading → ready → draining, or failed."""

    draining: bool = False
    failed: bool = False
    active: int = 0  # chat completions in flight, streaming ones included
    request_exit: Callable[[], None] = field(default=lambda: None)


async def _start_vllm(settings: Settings) -> Any:
    from server.engine import VllmEngine

    return await VllmEngine.start(settings)


async def _load_and_watch(app: FastAPI, factory: EngineFactory) -> None:
    state = app.state
    try:
        engine = await factory(state.settings)
    except Exception:
        log.exception("the engine failed to start")
        state.lifecycle.failed = True
        state.lifecycle.request_exit()
        return
    state.engine = engine
    search = StageSearch(engine, engine.render_chat, state.metrics)
    state.chat = ChatService(search, state.metrics, state.settings.model_name)
    log.info("model %s loaded; ready", state.settings.model)
    while not engine.dead:
        await asyncio.sleep(1.0)
    log.error("the engine died; exiting so that the process is restarted")
    state.lifecycle.failed = True
    state.lifecycle.request_exit()


def create_app(settings: Settings, engine_factory: EngineFactory | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = asyncio.create_task(_load_and_watch(app, engine_factory or _start_vllm))
        yield
        loader.cancel()
        engine = getattr(app.state, "engine", None)
        if engine is not None:
            await engine.shutdown()

    app = FastAPI(title="cot-server", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible chat completions for chain-of-thought VLMs, "
                              "with stage-level beam search.")
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.lifecycle = Lifecycle()
    app.state.chat = None
    app.state.admission = Admission(settings.max_concurrent_requests,
                                    settings.max_queued_requests)
    app.state.metrics.waiting.set_function(lambda: app.state.admission.waiting)
    app.state.metrics.running.set_function(lambda: app.state.admission.running)
    install_error_handlers(app)
    for module in (chat, models, health):
        app.include_router(module.router)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
