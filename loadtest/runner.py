"""The load loops: warm-up, then each level of the sweep as a closed loop (fixed concurrency)
or an open loop (Poisson arrivals). Every loop is bounded by a request count and/or a duration,
and every request by the per-request timeout, so a run always ends."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from tqdm import tqdm

from loadtest.client import RequestRecord, send_chat
from loadtest.config import Level, LoadConfig
from loadtest.stats import Summary, summarize
from loadtest.workload import WorkItem, load_jsonl, procedural_items

Send = Callable[[int], Coroutine[Any, Any, None]]


@dataclass
class LevelResult:
    level: Level
    records: list[RequestRecord]
    wall_s: float  # from the level's first request to its last response
    summary: Summary


@dataclass
class RunResult:
    config: LoadConfig
    started_at: str
    warmup: list[RequestRecord]
    levels: list[LevelResult]


@dataclass
class Budget:
    """How many requests a loop may still start: a count and/or a deadline (perf_counter)."""

    limit: int | None
    deadline: float | None
    started: int = 0

    def take(self, at: float | None = None) -> int | None:
        """The next request's index, or None once the count or the deadline is reached."""
        now = time.perf_counter() if at is None else at
        if self.limit is not None and self.started >= self.limit:
            return None
        if self.deadline is not None and now >= self.deadline:
            return None
        self.started += 1
        return self.started - 1


def load_items(config: LoadConfig) -> list[WorkItem]:
    if config.items:
        return list(config.items)
    if config.dataset:
        return load_jsonl(config.dataset)
    return procedural_items(config.num_items, config.seed, config.image_sizes)


def make_client(config: LoadConfig, pool_size: int) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(config.timeout_s),
                             headers=headers)


async def closed_loop(send: Send, concurrency: int, budget: Budget) -> None:
    async def worker() -> None:
        while (index := budget.take()) is not None:
            await send(index)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_loop(send: Send, rate: float, budget: Budget, rng: random.Random) -> None:
    """Start requests at Poisson arrival times (exponential gaps, mean 1/rate) without
    waiting for earlier ones; the schedule is absolute, so a late wake-up does not drift."""
    tasks: list[asyncio.Task[None]] = []
    start, arrival = time.perf_counter(), 0.0
    while (index := budget.take(at=start + arrival)) is not None:
        delay = start + arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(index)))
        arrival += rng.expovariate(rate)
    await asyncio.gather(*tasks)


async def run_level(config: LoadConfig, level: Level, item_cycle: Iterator[WorkItem],
                    request_limit: int | None, label: str | None = None) -> LevelResult:
    label = label or level.label
    records: list[RequestRecord] = []
    async with make_client(config, config.pool_size(level)) as client:
        with tqdm(total=request_limit, desc=label, unit="req", disable=not config.progress,
                  leave=True) as progress:
            level_start = time.perf_counter()

            async def send(index: int) -> None:
                body = config.request_body(next(item_cycle))
                records.append(await send_chat(
                    client, config.chat_url, body, index=index, level=label,
                    level_start=level_start, timeout_s=config.timeout_s))
                progress.update(1)

            deadline = None if config.duration_s is None else level_start + config.duration_s
            budget = Budget(limit=request_limit, deadline=deadline)
            if level.mode == "closed":
                await closed_loop(send, int(level.value), budget)
            else:
                await open_loop(send, level.value, budget, random.Random(config.seed))
            wall_s = time.perf_counter() - level_start
    records.sort(key=lambda r: r.index)
    summary = summarize([r.outcome() for r in records], wall_s, config.slo)
    return LevelResult(level=level, records=records, wall_s=wall_s, summary=summary)


async def run_load(config: LoadConfig) -> RunResult:
    """Run the warm-up and every level of the sweep, one after another."""
    items = load_items(config)
    item_cycle = itertools.cycle(items)  # round-robin over the whole run: few exact repeats
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    warmup: list[RequestRecord] = []
    if config.warmup:
        first = config.levels[0]
        warm_level = Level("closed", min(config.warmup, config.pool_size(first)))
        warm = await run_level(config, warm_level, item_cycle, config.warmup, "warmup")
        warmup = warm.records
    levels = [await run_level(config, level, item_cycle, config.request_bound)
              for level in config.levels]
    return RunResult(config=config, started_at=started_at, warmup=warmup, levels=levels)
