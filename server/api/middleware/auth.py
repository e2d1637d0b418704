"""API keys: every /v1 route needs `Authorization: Bearer KEY` with one of `--api-key`'s keys
(when set); /metrics needs `--metrics-api-key` (when set). Compared in constant time against
every key; a refusal is a 401 in the OpenAI error shape."""

from __future__ import annotations

import hmac

from server.api.middleware.asgi import ASGIApp, Receive, Scope, Send, send_error
from server.config import Settings


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.api_keys = settings.api_keys
        self.metrics_keys = (settings.metrics_api_key,) if settings.metrics_api_key else ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        denied = self.denied(scope) if scope["type"] == "http" else None
        if denied:
            await send_error(send, 401, denied, code="invalid_api_key",
                             headers=[(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)

    def keys_for(self, path: str) -> tuple[str, ...]:
        if path.startswith("/v1/"):
            return self.api_keys
        return self.metrics_keys if path == "/metrics" else ()

    def denied(self, scope: Scope) -> str | None:
        """Why the request lacks a valid key for its route, or None if it may pass."""
        keys = self.keys_for(scope["path"])
        if not keys:
            return None
        given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        if not given.lower().startswith("bearer "):
            return "missing API key: send `Authorization: Bearer <key>`"
        token = given[7:].strip().encode()
        matches = [hmac.compare_digest(token, key.encode()) for key in keys]
        return None if any(matches) else "invalid API key"
