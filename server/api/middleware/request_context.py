"""Request ids (honour X-Request-Id, echo it back, make it the request's log and engine id),
the access log, and the count of finished /v1 requests by route and status."""

from __future__ import annotations

import logging
import time
import uuid

from server.api.middleware.asgi import ASGIApp, Message, Receive, Scope, Send
from server.api.state import ServerState

log = logging.getLogger("server.access")
MAX_ID_LENGTH = 128


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.metrics = state.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")[:MAX_ID_LENGTH].strip()
        request_id = given or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.monotonic()
        status = 500
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            log.info("request_id=%s %s %s %d %.3fs", request_id, scope["method"], path, status,
                     time.monotonic() - started)
            if path.startswith("/v1/"):
                self.metrics.requests.labels(path, str(status)).inc()
