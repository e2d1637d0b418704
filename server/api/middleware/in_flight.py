"""Chat completions and responses in flight, streamed ones until their last byte: the drain on
SIGTERM waits for them, and a gauge shows them."""

from __future__ import annotations

from server.api.middleware.asgi import ASGIApp, Receive, Scope, Send
from server.api.state import ServerState

GENERATING_PATHS = frozenset({"/v1/chat/completions", "/v1/responses"})


class InFlightMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in GENERATING_PATHS:
            await self.app(scope, receive, send)
            return
        self.state.lifecycle.active += 1
        self.state.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.lifecycle.active -= 1
            self.state.metrics.in_flight.dec()
