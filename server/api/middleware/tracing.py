"""One OpenTelemetry span per /v1 request (when tracing is on): started before the request is
served, continuing the client's W3C trace context (`traceparent`), bound for the routes to add
to (server/tracing.py), ended with the request's outcome once its last byte is sent."""

from __future__ import annotations

from server import tracing
from server.api.middleware.asgi import ASGIApp, Receive, Scope, Send
from server.api.request_record import RequestRecord
from server.api.state import ServerState

TRACED_PREFIX = "/v1/"


class TracingMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.tracing = state.tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record: RequestRecord | None = scope.get("state", {}).get("record")
        if (scope["type"] != "http" or not self.tracing.enabled or record is None
                or not scope["path"].startswith(TRACED_PREFIX)):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        span = self.tracing.start(f"{scope['method']} {record.route}", headers, {
            tracing.HTTP_METHOD: scope["method"], tracing.HTTP_ROUTE: record.route,
            tracing.REQUEST_ID: record.request_id})
        token = tracing.bind(span)
        try:
            await self.app(scope, receive, send)
        finally:
            tracing.unbind(token)
            if span is not None:
                span.end(record.status, record.failure)
