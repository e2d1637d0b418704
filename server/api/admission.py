"""Admission control: at most `limit` chat completions run at once and at most `queue` wait
for a slot; anything beyond is refused at once with 429 and Retry-After (never a time-out after
a long wait)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from server.api.errors import APIError


class Admission:
    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.running = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(limit)

    def check(self) -> None:
        """Raise 429 if a new request could neither run nor wait now."""
        if self.running >= self.limit and self.waiting >= self.queue:
            raise APIError(429, f"the server is at capacity ({self.limit} running, "
                           f"{self.queue} queued); retry shortly", code="server_busy",
                           headers={"Retry-After": "1"})

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.check()
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
