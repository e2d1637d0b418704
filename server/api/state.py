"""The server's process-wide state, typed: the settings, the singletons the lifespan builds, the
tracer, and an explicit readiness state. One `ServerState` per app (`app.state.server`);
nothing per request lives here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from server.api.admission import Admission
from server.api.serving import ChatService
from server.config import Settings
from server.metrics import Metrics
from server.tracing import Tracing


class Readiness(StrEnum):
    LOADING = "loading"  # the engine is starting; /ready is 503
    WARMING = "warming"  # the engine is loaded, the warm-up searches run; /ready is 503
    READY = "ready"  # taking requests
    DRAINING = "draining"  # SIGTERM: in-flight requests finish, new ones get 503
    FAILED = "engine_dead"  # the engine failed to start or died; the process exits


@dataclass
class Lifecycle:
    """Readiness and the chat completions in flight (streaming ones included), which the drain
    on shutdown waits for. Transitions: LOADING [-> WARMING] -> READY -> DRAINING, or -> FAILED
    from any; a drain during loading or warm-up stays a drain."""

    readiness: Readiness = Readiness.LOADING
    active: int = 0
    request_exit: Callable[[], None] = field(default=lambda: None)

    @property
    def ready(self) -> bool:
        return self.readiness is Readiness.READY

    @property
    def failed(self) -> bool:
        return self.readiness is Readiness.FAILED

    @property
    def draining(self) -> bool:
        return self.readiness is Readiness.DRAINING

    def warm(self) -> None:
        if self.readiness is Readiness.LOADING:
            self.readiness = Readiness.WARMING

    def serve(self) -> None:
        if self.readiness in (Readiness.LOADING, Readiness.WARMING):
            self.readiness = Readiness.READY

    def drain(self) -> None:
        if self.readiness is not Readiness.FAILED:
            self.readiness = Readiness.DRAINING

    def fail(self, exit_after: float = 0.0) -> None:
        """FAILED: /health, /ready and new requests answer 503, and the process is asked to
        exit (status 1): at once, or `exit_after` seconds later (a timer on the running event
        loop), so that probes and load balancers see the 503s before the port closes."""
        self.readiness = Readiness.FAILED
        if exit_after > 0:
            asyncio.get_running_loop().call_later(exit_after, self.request_exit)
        else:
            self.request_exit()


@dataclass
class ServerState:
    settings: Settings
    metrics: Metrics
    admission: Admission
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    tracing: Tracing = field(default_factory=Tracing)  # off unless --otlp-traces-endpoint
    engine: Any = None  # the engine adapter, once loaded
    chat: ChatService | None = None  # the chat service, once the engine is loaded
    ignored_fields: set[str] = field(default_factory=set)  # request fields already logged
    exit_status: int | None = None  # the process's, decided as the lifespan shuts down

    @property
    def engine_dead(self) -> bool:
        """The engine failed to start or died: from the moment the engine says so (when the
        requests in flight fail), not only once the lifespan's watcher has failed the
        lifecycle."""
        return self.lifecycle.failed or bool(getattr(self.engine, "dead", False))


def server_state(app: Any) -> ServerState:
    """The typed state of a FastAPI / Starlette app built by `create_app`."""
    state: ServerState = app.state.server
    return state
