"""Pure ASGI middleware, one job each, outermost first: request context (request ids, the
request's record, access log, request counts), tracing (a span per /v1 request), API keys,
body-size limit, chat completions in flight."""

from __future__ import annotations

from fastapi import FastAPI

from server.api.middleware.auth import ApiKeyMiddleware
from server.api.middleware.body_limit import BodyLimitMiddleware
from server.api.middleware.in_flight import InFlightMiddleware
from server.api.middleware.request_context import RequestContextMiddleware
from server.api.middleware.tracing import TracingMiddleware
from server.api.state import ServerState


def install_middleware(app: FastAPI, state: ServerState) -> None:
    # Starlette runs the middleware added last first.
    app.add_middleware(InFlightMiddleware, state=state)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=state.settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, settings=state.settings)
    app.add_middleware(TracingMiddleware, state=state)
    app.add_middleware(RequestContextMiddleware, state=state)
