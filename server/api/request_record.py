"""What the request-context middleware and the routes share about one request: its id, its
route template, when it arrived, the status sent, and the status of an error that ended a
stream after its 200 (so that the access log, the request counter and the request's span count
that stream as failed). The middleware makes it; routes find it on the request's state."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Match

UNMATCHED = "unmatched"  # the route label of every path no route serves
CLIENT_GONE = 499  # the client went away before the answer was complete (nginx's status)


@dataclass
class RequestRecord:
    request_id: str
    route: str  # the route template (`/v1/chat/completions`), never the raw path
    started: float = field(default_factory=time.monotonic)
    status: int = 500  # the HTTP status sent; 500 until a response starts
    failure: int | None = None  # the error status a stream ended with, after its 200

    def fail(self, status: int) -> None:
        """The stream ended with an error of `status` (the first failure is kept)."""
        if self.failure is None:
            self.failure = status

    @property
    def outcome(self) -> int:
        """The status the request is counted with."""
        return self.failure if self.failure is not None else self.status

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def request_record(request: Any) -> RequestRecord:
    """The record of a request the middleware has seen (a Starlette Request); a stand-in
    for one it has not (a route called directly, in tests)."""
    record = getattr(request.state, "record", None)
    if record is None:
        record = RequestRecord(getattr(request.state, "request_id", "-"), UNMATCHED)
        request.state.record = record
    return record


def route_template(scope: dict[str, Any] | Any) -> str:
    """The template of the route that serves this request's path (whatever its method:
    a 405 is still that route's), or UNMATCHED: the label metrics and logs use, so that no
    raw path, however made up, becomes a label of its own."""
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            return str(getattr(route, "path", UNMATCHED))
    return UNMATCHED
