"""Request ids (honour X-Request-Id, echo it back, bind it for the request's log lines and
engine ids), the request's record (route template, outcome), the access log, and the count of
finished /v1 requests by route template and outcome."""

from __future__ import annotations

import logging
import uuid

from server.api.middleware.asgi import ASGIApp, Message, Receive, Scope, Send
from server.api.request_record import RequestRecord, route_template
from server.api.state import ServerState
from server.request_id import bind_request_id, unbind_request_id

log = logging.getLogger("server.access")
MAX_ID_LENGTH = 128
COUNTED_PREFIX = "/v1/"  # requests counted by route and status (probes and /metrics are not)


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
        record = RequestRecord(request_id, route_template(scope))
        state = scope.setdefault("state", {})
        state["request_id"], state["record"] = request_id, record
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        token = bind_request_id(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            failed = "" if record.failure is None else f" (stream failed: {record.failure})"
            log.info("request_id=%s %s %s %d %.3fs%s", request_id, scope["method"],
                     record.route, record.status, record.elapsed, failed)
            if scope["path"].startswith(COUNTED_PREFIX):
                self.metrics.requests.labels(record.route, str(record.outcome)).inc()
            unbind_request_id(token)
