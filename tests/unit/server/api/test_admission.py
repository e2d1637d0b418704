"""Admission control in requests and in engine sequences (server/api/admission.py), on its own:
no server, no engine. A request is a task holding a slot until the test lets it go."""

from __future__ import annotations

import asyncio

import pytest

from server.api.admission import Admission, request_sequences
from server.api.errors import APIError
from server.config import Settings


class Held:
    """A request of `weight` sequences that takes a slot and keeps it until `release()`."""

    def __init__(self, admission: Admission, weight: int) -> None:
        self.admission, self.weight = admission, weight
        self.started = asyncio.Event()
        self._done = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with self.admission.slot(self.weight):
            self.started.set()
            await self._done.wait()

    def release(self) -> None:
        self._done.set()


async def settle() -> None:
    """Let every task that can run do so (each slot change is one step of the event loop)."""
    for _ in range(5):
        await asyncio.sleep(0)


def refused(admission: Admission, weight: int) -> APIError:
    with pytest.raises(APIError) as caught:
        admission.check(weight)
    return caught.value


def state(admission: Admission) -> tuple[int, int, int, int]:
    return (admission.running, admission.running_sequences, admission.waiting,
            admission.waiting_sequences)


@pytest.mark.parametrize("n,beam_width,expected", [(1, 1, 1), (1, 4, 4), (4, 1, 4),
                                                    (2, 8, 16), (4, 16, 64)])
def test_a_request_weighs_n_times_beam_width_sequences(n: int, beam_width: int,
                                                       expected: int) -> None:
    assert request_sequences(n, beam_width) == expected


async def test_without_sequence_limits_only_requests_count() -> None:
    admission = Admission(limit=2, queue=1)
    first, second = Held(admission, 16), Held(admission, 16)
    await settle()
    assert first.started.is_set() and second.started.is_set()
    third = Held(admission, 16)
    await settle()
    assert state(admission) == (2, 32, 1, 16) and not third.started.is_set()
    error = refused(admission, 1)
    assert (error.status, error.code, error.headers) == (429, "server_busy", {"Retry-After": "1"})
    assert "engine sequences" not in error.message
    first.release()
    await settle()
    assert third.started.is_set() and state(admission) == (2, 32, 0, 0)
    second.release()
    third.release()
    await settle()
    assert state(admission) == (0, 0, 0, 0)


async def test_a_heavy_request_is_refused_where_a_light_one_still_queues() -> None:
    admission = Admission(limit=8, queue=8, sequences=4, queued_sequences=4)
    beam4 = Held(admission, request_sequences(1, 4))
    await settle()
    assert beam4.started.is_set() and state(admission) == (1, 4, 0, 0)
    beam2 = Held(admission, request_sequences(1, 2))  # no room to run: it waits
    await settle()
    assert not beam2.started.is_set() and state(admission) == (1, 4, 1, 2)
    error = refused(admission, request_sequences(1, 8))  # 2 + 8 queued > 4
    assert error.status == 429 and error.code == "server_busy"
    assert "4 running, 2 queued, this request 8" in error.message
    assert error.headers == {"Retry-After": "1"}
    refused(admission, request_sequences(2, 2))  # n counts too: 2 x 2 = 4
    admission.check(request_sequences(1, 2))  # 2 + 2 <= 4: admitted, to wait
    other = Held(admission, 2)
    await settle()
    assert state(admission) == (1, 4, 2, 4)
    beam4.release()
    await settle()
    assert beam2.started.is_set() and other.started.is_set()
    assert state(admission) == (2, 4, 0, 0)
    beam2.release()
    other.release()
    await settle()
    assert state(admission) == (0, 0, 0, 0)


async def test_the_queue_is_first_come_first_served_by_weight() -> None:
    admission = Admission(limit=8, queue=8, sequences=4)
    running = Held(admission, 3)
    await settle()
    heavy = Held(admission, 4)  # cannot run beside the 3
    await settle()
    light = Held(admission, 1)  # would fit beside the 3, but the heavy one came first
    await settle()
    assert not heavy.started.is_set() and not light.started.is_set()
    running.release()
    await settle()
    assert heavy.started.is_set() and not light.started.is_set()
    heavy.release()
    await settle()
    assert light.started.is_set()
    light.release()
    await settle()
    assert state(admission) == (0, 0, 0, 0)


async def test_a_request_heavier_than_the_budget_runs_alone() -> None:
    admission = Admission(limit=8, queue=8, sequences=4, queued_sequences=4)
    huge = Held(admission, 16)  # the budget is unused: it runs
    await settle()
    assert huge.started.is_set() and state(admission) == (1, 16, 0, 0)
    small = Held(admission, 1)  # nothing fits beside it
    await settle()
    assert not small.started.is_set()
    refused(admission, 16)  # the queue holds 1 already
    huge.release()
    await settle()
    assert small.started.is_set()
    small.release()
    await settle()


async def test_an_empty_sequence_queue_lets_nothing_wait() -> None:
    admission = Admission(limit=8, queue=8, sequences=4, queued_sequences=0)
    running = Held(admission, 4)
    await settle()
    refused(admission, 1)
    running.release()
    await settle()
    admission.check(1)


async def test_a_waiter_that_leaves_frees_its_place_and_wakes_the_next() -> None:
    admission = Admission(limit=8, queue=8, sequences=4)
    running = Held(admission, 2)
    await settle()
    heavy = Held(admission, 4)
    light = Held(admission, 2)
    await settle()
    assert state(admission) == (1, 2, 2, 6)
    heavy.task.cancel()  # its client went away while it waited
    await settle()
    assert heavy.task.cancelled()
    assert light.started.is_set() and state(admission) == (2, 4, 0, 0)
    running.release()
    light.release()
    await settle()
    assert state(admission) == (0, 0, 0, 0)


async def test_a_waiter_cancelled_as_it_is_granted_gives_its_slot_back() -> None:
    admission = Admission(limit=1, queue=1)
    running = Held(admission, 1)
    await settle()
    waiting = Held(admission, 1)
    await settle()
    running.release()
    await asyncio.sleep(0)  # `running` leaves its slot and grants it to `waiting` ...
    assert state(admission) == (1, 1, 0, 0)
    waiting.task.cancel()  # ... which is cancelled before it resumes
    await settle()
    assert waiting.task.cancelled() and not waiting.started.is_set()
    assert state(admission) == (0, 0, 0, 0)
    admission.check(1)


def test_sequence_limits_are_settings_off_by_default() -> None:
    settings = Settings()
    assert settings.max_concurrent_sequences is None and settings.max_queued_sequences is None
    assert Settings(max_concurrent_sequences=128, max_queued_sequences=0).max_queued_sequences == 0
    for bad in ({"max_concurrent_sequences": 0}, {"max_queued_sequences": -1}):
        with pytest.raises(ValueError):
            Settings(**bad)
