"""The body-size limit, before parsing: a declared Content-Length over the limit is refused at
once (413), and a body that grows past it while being read stops there (413)."""

from __future__ import annotations

from server.api.errors import APIError
from server.api.middleware.asgi import ASGIApp, Message, Receive, Scope, Send, send_error


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self.too_large)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise APIError(413, self.too_large)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def too_large(self) -> str:
        return f"request body is larger than {self.max_body_bytes} bytes"
