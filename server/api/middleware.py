"""ASGI middleware: request ids (honour X-Request-Id, echo it back), body-size limit before
parsing, access log and per-route request counts."""

from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import Any

from server.api.errors import APIError, error_body

log = logging.getLogger("server.access")
Scope = dict[str, Any]


class RequestContextMiddleware:
    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:128].strip()
        request_id = request_id or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.monotonic()
        status = {"code": 500}
        id_header = (b"x-request-id", request_id.encode("latin-1"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), id_header]
            await send(message)

        denied = self._denied(scope, headers)
        declared = headers.get(b"content-length")
        if denied:
            await self._reject(send_with_id, 401, denied, code="invalid_api_key",
                               headers=[(b"www-authenticate", b"Bearer")])
        elif (declared is not None and declared.isdigit()
              and int(declared) > self.max_body_bytes):
            await self._reject(send_with_id, 413, "request body is larger than "
                               f"{self.max_body_bytes} bytes")
        else:
            received = 0

            async def limited_receive() -> dict[str, Any]:
                nonlocal received
                message = await receive()
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise APIError(413, f"request body is larger than {self.max_body_bytes} "
                                   "bytes")
                return message

            await self._counted(scope, limited_receive, send_with_id)
        path = scope["path"]
        seconds = time.monotonic() - started
        log.info("request_id=%s %s %s %d %.3fs", request_id, scope["method"], path,
                 status["code"], seconds)
        metrics = getattr(scope["app"].state, "metrics", None) if "app" in scope else None
        if metrics is not None and path.startswith("/v1/"):
            metrics.requests.labels(path, str(status["code"])).inc()

    async def _counted(self, scope: Scope, receive: Any, send: Any) -> None:
        """Count chat completions in flight (the drain on shutdown waits for them)."""
        state = scope["app"].state if "app" in scope else None
        if state is None or scope["path"] != "/v1/chat/completions":
            await self.app(scope, receive, send)
            return
        state.lifecycle.active += 1
        state.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            state.lifecycle.active -= 1
            state.metrics.in_flight.dec()

    @staticmethod
    def _denied(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        """Why the request lacks a valid key for its route, or None if it may pass."""
        settings = scope["app"].state.settings if "app" in scope else None
        if settings is None:
            return None
        path = scope["path"]
        if path.startswith("/v1/"):
            keys = settings.api_keys
        elif path == "/metrics" and settings.metrics_api_key:
            keys = (settings.metrics_api_key,)
        else:
            return None
        if not keys:
            return None
        given = headers.get(b"authorization", b"").decode("latin-1")
        if not given.lower().startswith("bearer "):
            return "missing API key: send `Authorization: Bearer <key>`"
        token = given[7:].strip().encode()
        # compare against every key, always, in constant time per key
        matches = [hmac.compare_digest(token, key.encode()) for key in keys]
        return None if any(matches) else "invalid API key"

    @staticmethod
    async def _reject(send: Any, status: int, message: str, code: str | None = None,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
        body = json.dumps(error_body(status, message, code=code)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                *(headers or [])]})
        await send({"type": "http.response.body", "body": body})
