"""Admission control, in requests and in engine sequences: at most `limit` chat completions run
at once and at most `queue` wait for a slot; with sequence limits, the requests running also
weigh at most `sequences` engine sequences together and those waiting `queued_sequences`, each
request weighing what it keeps in the engine at its busiest (`request_sequences`). Anything
beyond is refused at once with 429 and Retry-After (never a time-out after a long wait).

Waiting is first come, first served: a request that does not fit yet holds back the ones
behind it, so a heavy request is never overtaken for ever by light ones. A request heavier
than a whole budget fits it only while that budget is unused (it then runs, or waits, alone):
the limits bound the load, not what one request may ask for (beam_width and --max-n do)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from server.api.errors import APIError


def request_sequences(n: int, beam_width: int) -> int:
    """Engine sequences a request keeps in the engine at once at its busiest. Its n choices are
    searched concurrently; each search sends one engine sequence per candidate of a stage
    (vLLM v1 runs a call of n > 1 as n requests, and its `vllm:num_requests_*` gauges count
    them), then its selector's one-token calls, at most beam_width at once (the judge's first
    round asks beam_width / 2 pairs in both orders, verify one call per candidate); best-of-N
    runs beam_width chains of one sequence each. A width-1 answer is one sequence per choice."""
    return n * beam_width


def _fits(used: int, weight: int, budget: int | None) -> bool:
    """`weight` more fits a budget with `used` taken (None: no budget); one heavier than the
    whole budget only while nothing else is in it."""
    if budget is None:
        return True
    return used + weight <= budget or (used == 0 and budget > 0)


@dataclass(eq=False)
class _Waiter:
    weight: int
    granted: asyncio.Future[None]


class Admission:
    def __init__(self, limit: int, queue: int, sequences: int | None = None,
                 queued_sequences: int | None = None) -> None:
        self.limit = limit
        self.queue = queue
        self.sequences = sequences  # None: no sequence limits on running requests ...
        self.queued_sequences = queued_sequences  # ... or on waiting ones
        self.running = 0
        self.waiting = 0
        self.running_sequences = 0
        self.waiting_sequences = 0
        self._waiters: deque[_Waiter] = deque()

    def _can_run(self, weight: int) -> bool:
        return (not self._waiters and self.running < self.limit
                and _fits(self.running_sequences, weight, self.sequences))

    def _can_wait(self, weight: int) -> bool:
        return (self.waiting < self.queue
                and _fits(self.waiting_sequences, weight, self.queued_sequences))

    def check(self, weight: int = 1) -> None:
        """Raise 429 if a new request of `weight` engine sequences could neither run nor wait
        now."""
        if self._can_run(weight) or self._can_wait(weight):
            return
        capacity = f"{self.running} running, {self.waiting} queued"
        if self.sequences is not None or self.queued_sequences is not None:
            capacity += (f"; engine sequences: {self.running_sequences} running, "
                         f"{self.waiting_sequences} queued, this request {weight}")
        raise APIError(429, f"the server is at capacity ({capacity}); retry shortly",
                       code="server_busy", headers={"Retry-After": "1"})

    @contextlib.asynccontextmanager
    async def slot(self, weight: int = 1) -> AsyncIterator[None]:
        """Hold a slot for a request of `weight` engine sequences (`request_sequences`): at
        once if it fits, else after the requests ahead of it; 429 if it can do neither."""
        self.check(weight)
        if self._can_run(weight):
            self._start(weight)
        else:
            await self._wait(weight)
        try:
            yield
        finally:
            self._finish(weight)

    async def _wait(self, weight: int) -> None:
        waiter = _Waiter(weight, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self.waiting += 1
        self.waiting_sequences += weight
        try:
            await waiter.granted
        except BaseException:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._finish(weight)  # granted, then cancelled before it could run
            else:
                self._waiters.remove(waiter)
                self._left_queue(weight)
                self._wake()  # the one behind it may fit where it did not
            raise

    def _start(self, weight: int) -> None:
        self.running += 1
        self.running_sequences += weight

    def _left_queue(self, weight: int) -> None:
        self.waiting -= 1
        self.waiting_sequences -= weight

    def _finish(self, weight: int) -> None:
        self.running -= 1
        self.running_sequences -= weight
        self._wake()

    def _wake(self) -> None:
        """Start the waiters at the head of the queue, in order, while they fit."""
        while self._waiters:
            head = self._waiters[0]
            if self.running >= self.limit or not _fits(self.running_sequences, head.weight,
                                                       self.sequences):
                return
            self._waiters.popleft()
            self._left_queue(head.weight)
            self._start(head.weight)
            head.granted.set_result(None)
