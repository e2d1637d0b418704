"""The load loops with a fake send (no server): bounds, concurrency, arrivals."""

import asyncio
import random
import time

from loadtest.runner import Budget, closed_loop, open_loop


class FakeSend:
    """Records the indices sent and the most requests in flight at once."""

    def __init__(self, seconds: float = 0.01) -> None:
        self.seconds, self.in_flight, self.most_in_flight = seconds, 0, 0
        self.indices: list[int] = []
        self.started_at: list[float] = []

    async def __call__(self, index: int) -> None:
        self.indices.append(index)
        self.started_at.append(time.perf_counter())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.seconds)
        self.in_flight -= 1


def test_budget_stops_at_the_count_or_the_deadline() -> None:
    by_count = Budget(limit=2, deadline=None)
    assert [by_count.take(), by_count.take(), by_count.take()] == [0, 1, None]
    by_deadline = Budget(limit=None, deadline=10.0)
    assert by_deadline.take(at=9.9) == 0 and by_deadline.take(at=10.0) is None


async def test_closed_loop_sends_exactly_the_count_at_the_concurrency() -> None:
    send = FakeSend()
    await closed_loop(send, concurrency=3, budget=Budget(limit=10, deadline=None))
    assert sorted(send.indices) == list(range(10))
    assert send.most_in_flight == 3


async def test_closed_loop_stops_at_its_duration() -> None:
    # bounds wide enough for a busy machine (a stall adds time, and fewer requests fit)
    send = FakeSend(seconds=0.02)
    started = time.perf_counter()
    await closed_loop(send, concurrency=2, budget=Budget(limit=None, deadline=started + 0.5))
    elapsed = time.perf_counter() - started
    assert 0.5 <= elapsed < 2.0
    assert 4 <= len(send.indices) <= 2 * 25 + 2


async def test_open_loop_does_not_wait_for_earlier_requests() -> None:
    send = FakeSend(seconds=0.2)
    await open_loop(send, rate=200.0, budget=Budget(limit=8, deadline=None),
                    rng=random.Random(0))
    assert sorted(send.indices) == list(range(8))
    assert send.most_in_flight > 1  # arrivals every ~5 ms, each request takes 200 ms


async def test_open_loop_follows_the_poisson_schedule() -> None:
    send = FakeSend(seconds=0.0)
    rate, count = 100.0, 20
    before = time.perf_counter()  # the schedule counts from open_loop's start, just after
    await open_loop(send, rate=rate, budget=Budget(limit=count, deadline=None),
                    rng=random.Random(1))
    rng, expected, arrival = random.Random(1), [], 0.0
    for _ in range(count):
        expected.append(arrival)
        arrival += rng.expovariate(rate)
    actual = [t - before for t in send.started_at]
    assert all(a >= e for a, e in zip(actual, expected, strict=True))  # never early
    assert actual[-1] - expected[-1] < 0.5  # nor drifting late (a stall allowed)
