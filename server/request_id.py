"""The id of the HTTP request being served, where any code serving it can read it: the log lines
it writes (server/logs.py) and the ids of the engine requests it makes (`engine_request_id`).
The request-context middleware binds it for the request's whole life; tasks the request starts
inherit it (asyncio copies the context into each task)."""

from __future__ import annotations

import contextvars
import uuid

_REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id",
                                                                         default=None)


def current_request_id() -> str | None:
    return _REQUEST_ID.get()


def bind_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    return _REQUEST_ID.set(request_id)


def unbind_request_id(token: contextvars.Token[str | None]) -> None:
    _REQUEST_ID.reset(token)


def engine_request_id() -> str:
    """A fresh id for one engine request, derived from the HTTP request's id when there is
    one (`cot-<http id>-<8 hex>`: one HTTP request makes many engine requests, candidates and
    judge calls alike, so each gets its own suffix), else `cot-<32 hex>`."""
    request_id = current_request_id()
    if request_id is None:
        return f"cot-{uuid.uuid4().hex}"
    return f"cot-{request_id}-{uuid.uuid4().hex[:8]}"
